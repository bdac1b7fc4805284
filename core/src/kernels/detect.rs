//! Run-time CPU feature detection (feature `std`): the one place that decides which SIMD
//! kernels a host may run, so the CLI, the C API and the fuzz targets all pick the same.

// `is_x86_feature_detected!` lives in std; only builds with the `std` feature get here.
extern crate std;

use super::Kernels;

impl Kernels {
    /// The fastest kernels the running processor supports: on x86_64, AVX2+FMA with
    /// AVX-512F for the f32 products and AVX512-VNNI for the Q8 dot products, or AVX2+FMA
    /// alone, F16C for the F16 weight products and AMX tiles for the Q8_0 products where
    /// present (the tiles granted by the OS), checked at run time;
    /// elsewhere [`Kernels::native`].
    pub fn detect() -> Kernels {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512vnni")
                && std::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: AVX2, FMA, AVX-512F, AVX512-VNNI and AVX512-VL were just detected.
                return with_amx(with_f16c(unsafe { Kernels::avx512_vnni_unchecked() }));
            }
            // SAFETY: AVX2 and FMA were just detected on this processor.
            return with_f16c(unsafe { Kernels::avx2_fma_unchecked() });
        }
        Kernels::native()
    }
}

/// `kernels` with the AMX tile products if the processor has AMX-INT8 and AVX512-BW and
/// the OS grants the tiles (asked for here, once per call).
#[cfg(target_arch = "x86_64")]
fn with_amx(kernels: Kernels) -> Kernels {
    if std::is_x86_feature_detected!("avx512bw") && super::x86_amx::available() {
        // SAFETY: AMX-TILE, AMX-INT8 and AVX512-BW were just detected and the tiles granted.
        unsafe { kernels.with_amx_unchecked() }
    } else {
        kernels
    }
}

/// `kernels` with F16C conversions if the processor has F16C.
#[cfg(target_arch = "x86_64")]
fn with_f16c(kernels: Kernels) -> Kernels {
    if std::is_x86_feature_detected!("f16c") {
        // SAFETY: F16C was just detected.
        unsafe { kernels.with_f16c_unchecked() }
    } else {
        kernels
    }
}
