//! Choosing the inner loops at run time, so one generic x86_64 binary uses AVX2 where the
//! processor has it.

use llama2_core::Kernels;

/// The `--kernels` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum KernelChoice {
    /// The best this processor supports.
    #[default]
    Auto,
    /// The best this processor supports without AMX tiles (AVX-512 for every product).
    NoAmx,
    /// The reference loops, summing in llama2.c's order.
    Scalar,
}

impl KernelChoice {
    /// The kernels this choice means on the running processor.
    pub fn resolve(self) -> Kernels {
        match self {
            KernelChoice::Scalar => Kernels::scalar(),
            KernelChoice::Auto => Kernels::detect(),
            KernelChoice::NoAmx => Kernels::detect().without_amx(),
        }
    }
}
