//! Flags shared by generation and `bench`: how the engine runs (kernels, threads, prompt
//! batch size), never what it computes. Both commands flatten [`EngineArgs`].

use clap::Args;
use llama2_core::{Batch, Config};

use crate::kernels::KernelChoice;
use crate::stdio::note;

/// How the engine runs; none of these change the output.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// Inner loops: the processor's SIMD (auto) or the scalar reference.
    #[arg(long, value_enum, default_value_t = KernelChoice::Auto)]
    pub kernels: KernelChoice,

    /// Threads to run on [default: the available cores]; more than the available cores
    /// are capped to them.
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    pub threads: Option<usize>,

    /// Prompt tokens run through the model at once; 1 runs them one by one. Never changes
    /// the output, only the speed [default: what suits the matrix kernels for the model:
    /// 16 to 256 tokens, as many as keep a product's input within about 1 MiB]
    #[arg(long, value_name = "N", value_parser = parse_batch)]
    pub batch_size: Option<usize>,
}

impl EngineArgs {
    /// Prompt tokens per batch for a model of `config`: `--batch-size`, else
    /// [`Batch::preferred_capacity`].
    pub fn batch_size(&self, config: &Config) -> usize {
        self.batch_size
            .unwrap_or_else(|| Batch::preferred_capacity(config))
    }

    /// The threads to run on: the ones asked for, at most the available cores (with a note
    /// on stderr when capped: more threads than cores only take turns, which can make each
    /// token orders of magnitude slower), else the available cores.
    pub fn threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map(|n| n.get());
        match (self.threads, cores) {
            (Some(asked), Ok(cores)) if asked > cores => {
                note!("llama2: --threads {asked} is more than the {cores} available cores; using {cores}");
                cores
            }
            (Some(asked), _) => asked,
            (None, cores) => cores.unwrap_or(1),
        }
    }
}

/// Batch sizes are at least one.
pub fn parse_batch(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a batch size, 1 or more".to_string()),
    }
}

/// Threads are at least one.
pub fn parse_threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a number of threads, 1 or more".to_string()),
    }
}
