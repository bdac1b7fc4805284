//! Command-line definition: llama2.c's flags, with long forms and `--help`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::args::EngineArgs;

/// Run Llama-architecture models: llama2.c files and GGUF files.
///
/// `llama2 MODEL [options]` generates text like llama2.c's `run`, with the same flags,
/// defaults and, for the same seed, the same tokens. MODEL is a llama2.c file (v0, v1 or v2)
/// or a GGUF file of the llama architecture, in any of the weight types F32, F16, BF16,
/// Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K (mixed per tensor as
/// llama-quantize writes them); a GGUF file carries its tokenizer.
#[derive(Debug, Parser)]
#[command(
    name = "llama2",
    version,
    args_conflicts_with_subcommands = true,
    allow_negative_numbers = true,
    subcommand_negates_reqs = true,
    after_help = "Examples:\n  llama2 stories260K.bin -z tok512.bin -t 0 -n 200 -i \"Once upon a time\"\n  llama2 stories260K.gguf -t 0 -n 200 -i \"Once upon a time\""
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print a model file's format, config and memory needs.
    Info {
        /// Model file (llama2.c v0, v1 or v2, or GGUF).
        model: PathBuf,
    },
    /// Measure prompt-processing and generation speed against the memory bandwidth.
    Bench(crate::bench::BenchArgs),
    /// Convert a model between the llama2.c formats and GGUF (either direction).
    Convert(crate::convert::ConvertArgs),
    /// Quantize an fp32 model (v0 or v1) to Q8_0 (version 2), as llama2.c's export does.
    Quantize {
        /// fp32 model to read.
        input: PathBuf,
        /// Q8_0 model to write.
        output: PathBuf,
        /// Values per quantization group [default: the largest power of two up to 64 that
        /// divides dim and hidden_dim].
        #[arg(long, value_name = "N")]
        group_size: Option<usize>,
        /// Quantize even if some weights are NaN or infinite (refused by default; they are
        /// listed by tensor either way).
        #[arg(long)]
        allow_non_finite: bool,
    },
}

/// Generation settings, named as in llama2.c.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Model file: llama2.c (v0, v1 or v2 layout) or GGUF (told apart by its first bytes).
    #[arg(required = true)]
    pub model: Option<PathBuf>,

    /// Temperature; 0 picks the most likely token every time.
    #[arg(
        short = 't',
        long,
        default_value_t = 1.0,
        value_name = "FLOAT",
        allow_hyphen_values = true
    )]
    pub temperature: f32,

    /// Nucleus sampling: sample from the smallest set of tokens whose probability exceeds
    /// this; 0 or 1 sample from all tokens.
    #[arg(
        short = 'p',
        long = "top-p",
        default_value_t = 0.9,
        value_name = "FLOAT",
        allow_hyphen_values = true
    )]
    pub top_p: f32,

    /// Random seed; 0 or less (the default) takes one from the clock, as llama2.c does.
    #[arg(short = 's', long, default_value_t = 0, value_name = "INT")]
    pub seed: i64,

    /// Number of steps to run, prompt included; 0 means the context (the model's seq_len
    /// by default). More than the context needs --sliding-window.
    #[arg(short = 'n', long, default_value_t = 256, value_name = "INT", value_parser = parse_steps)]
    pub steps: usize,

    /// Prompt to continue (in chat mode: the first user message).
    #[arg(short = 'i', long, value_name = "STRING", allow_hyphen_values = true)]
    pub prompt: Option<String>,

    /// Tokenizer file (llama2.c tokenizer.bin) [default: a GGUF model's own; for a llama2.c
    /// model tokenizer.bin beside it, else in the working directory].
    #[arg(short = 'z', long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,

    /// Mode: generate a continuation, or chat (user turns from stdin, Llama 2 chat template).
    #[arg(short = 'm', long, value_enum, default_value_t = Mode::Generate)]
    pub mode: Mode,

    /// System prompt, for chat mode.
    #[arg(
        short = 'y',
        long = "system-prompt",
        value_name = "STRING",
        allow_hyphen_values = true
    )]
    pub system_prompt: Option<String>,

    #[command(flatten)]
    pub engine: EngineArgs,

    /// Positions the KV cache holds [default: what the run needs: the steps, at most the
    /// model's seq_len]; less saves memory.
    #[arg(long, value_name = "N", value_parser = parse_context)]
    pub context: Option<usize>,

    /// Keep going past the context: each new position replaces the oldest in the KV cache,
    /// so -n can exceed the context (quality may drift once the window slides).
    #[arg(long)]
    pub sliding_window: bool,

    /// Generate N continuations of the prompt at once, with seeds s, s+1, ..., s+N-1 (-s),
    /// each step reading the weights once for all of them. Nothing is streamed: when all
    /// are done, each continuation's text (exactly what `-s SEED` alone prints) is printed
    /// in seed order, followed by a --separator line. Not with chat mode.
    #[arg(long, value_name = "N", value_parser = parse_parallel)]
    pub parallel: Option<usize>,

    /// The line printed after each --parallel text. Texts never hold control characters,
    /// so one (e.g. $'\x1e') makes the split unambiguous.
    #[arg(
        long,
        value_name = "STRING",
        default_value = "---",
        requires = "parallel",
        allow_hyphen_values = true
    )]
    pub separator: String,
}

/// What `llama2 MODEL` does with the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Continue the prompt.
    Generate,
    /// Converse: user turns from stdin.
    Chat,
}

/// Steps are a count: a negative number is refused with a message saying what is allowed.
fn parse_steps(text: &str) -> Result<usize, String> {
    text.parse::<usize>().map_err(|_| {
        "expected a whole number of steps, 0 or more (0 means the model's seq_len)".to_string()
    })
}

/// Parallel runs have at least one sequence.
pub fn parse_parallel(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a number of sequences, 1 or more".to_string()),
    }
}

/// Contexts are at least one position.
fn parse_context(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a number of positions, 1 or more".to_string()),
    }
}
