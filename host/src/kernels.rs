//! Choosing the inner loops at run time, so one generic x86_64 binary uses AVX2 where the
//! processor has it.

use llama2_core::Kernels;

/// The `--kernels` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KernelChoice {
    /// The best this processor supports.
    #[default]
    Auto,
    /// The reference loops, summing in llama2.c's order.
    Scalar,
}

impl KernelChoice {
    pub fn resolve(self) -> Kernels {
        match self {
            KernelChoice::Scalar => Kernels::scalar(),
            KernelChoice::Auto => detect(),
        }
    }
}

/// The best kernels of the running processor.
pub fn detect() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        if std::is_x86_feature_detected!("avx512vnni") && std::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: AVX2, FMA, AVX512-VNNI and AVX512-VL were just detected.
            return unsafe { Kernels::avx512_vnni_unchecked() };
        }
        // SAFETY: AVX2 and FMA were just detected on this processor.
        return unsafe { Kernels::avx2_fma_unchecked() };
    }
    Kernels::native()
}
