//! Run-time CPU feature detection (feature `std`): the one place that decides which SIMD
//! kernels a host may run, so the CLI, the C API and the fuzz targets all pick the same.

// `is_x86_feature_detected!` lives in std; only builds with the `std` feature get here.
extern crate std;

use super::Kernels;

impl Kernels {
    /// The fastest kernels the running processor supports: on x86_64, AVX2+FMA+F16C with
    /// AVX512-VNNI for the Q8 dot products, or AVX2+FMA+F16C alone, checked at run time;
    /// elsewhere [`Kernels::native`].
    pub fn detect() -> Kernels {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            if std::is_x86_feature_detected!("avx512vnni")
                && std::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: AVX2, FMA, F16C, AVX512-VNNI and AVX512-VL were just detected.
                return unsafe { Kernels::avx512_vnni_unchecked() };
            }
            // SAFETY: AVX2, FMA and F16C were just detected on this processor.
            return unsafe { Kernels::avx2_fma_unchecked() };
        }
        Kernels::native()
    }
}
