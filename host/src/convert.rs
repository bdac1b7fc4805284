//! `llama2 convert IN OUT`: between the llama2.c formats and GGUF, the direction chosen by
//! IN's first bytes.
//!
//! - llama2.c (v0, v1, or v2, whose Q8 weights are dequantized) → GGUF v3 as llama.cpp's
//!   own llama2.c converter lays it out, so that llama.cpp loads it: `llama.*`
//!   hyperparameters, the vocabulary in `tokenizer.ggml.*` (a space as `▁`, BOS and EOS as
//!   `<s>` and `</s>`, token types as that converter sets them), tensors named
//!   `token_embd`, `output_norm`, `output` (only for an unshared classifier) and
//!   `blk.N.*`. Matrices get `--type`; norms stay F32.
//! - GGUF → llama2.c v0 (fp32): every tensor decoded as ggml's reference decoders do, the
//!   RoPE tables v0 carries recomputed, and the vocabulary written back out as a llama2.c
//!   `tokenizer.bin`. A model v0 cannot describe (an RMSNorm epsilon other than 1e-5, a RoPE
//!   base other than 10000) is refused.
//!
//! Every output goes through [`crate::atomic_write::write_atomically`]: IN is never touched, and an output is
//! either the whole new file or left as it was.

mod to_gguf;
mod to_llama2c;
mod vocabulary;

use std::path::PathBuf;

use llama2_core::gguf::{self, GgmlType};

use crate::error::CliError;
use crate::load::MappedFile;

pub use to_gguf::{write_gguf, GgufError};
pub use to_llama2c::{write_llama2c_tokenizer, write_v0};
pub use vocabulary::{TokenType, Vocabulary};

/// The element type of the matrices of a GGUF output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutType {
    /// 32-bit floats (exact).
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
    /// 8-bit blocks of 32 (rows must be multiples of 32).
    #[value(name = "q8_0")]
    Q8_0,
    /// 4-bit blocks of 32 (rows must be multiples of 32).
    #[value(name = "q4_0")]
    Q4_0,
    /// 4-bit super-blocks of 256 with 6-bit sub-block scales (rows must be multiples of 256).
    #[value(name = "q4_k")]
    Q4K,
}

impl OutType {
    /// The ggml type of the matrices.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::Bf16 => GgmlType::BF16,
            OutType::Q8_0 => GgmlType::Q8_0,
            OutType::Q4_0 => GgmlType::Q4_0,
            OutType::Q4K => GgmlType::Q4_K,
        }
    }

    /// llama.cpp's `general.file_type` (`llama_ftype`) for a file of these matrices
    /// (all-Q4_K is its "Q4_K_S" mix's main type).
    pub(crate) fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Q4_0 => 2,
            OutType::Q8_0 => 7,
            OutType::Q4K => 14,
            OutType::Bf16 => 32,
        }
    }

    /// Whether llama.cpp marks the file as quantized (`general.quantization_version`).
    pub(crate) fn is_quantized(self) -> bool {
        matches!(self, OutType::Q8_0 | OutType::Q4_0 | OutType::Q4K)
    }

    /// The flag's spelling, for messages.
    pub(crate) fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .map_or_else(String::new, |v| v.get_name().to_string())
    }
}

/// `llama2 convert`'s flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Direction: IN's first bytes decide it. A llama2.c file (v0, v1, or v2, whose Q8 weights are
dequantized) becomes a GGUF v3 file, its tokenizer (-z, else tokenizer.bin beside IN or in
the working directory) written into the GGUF metadata. A GGUF file becomes a llama2.c v0
(fp32) file, every tensor dequantized, and its vocabulary is written as a llama2.c
tokenizer file: --tokenizer-out, by default OUT with its extension replaced by
.tokenizer.bin (for OUT model.bin: model.tokenizer.bin). Outputs that exist are replaced
whole; IN is never written, and an output that is IN (or the other output) is refused.

Examples:
  llama2 convert stories15M.bin stories15M.gguf -z tokenizer.bin --type q8_0
  llama2 convert model-Q4_K_M.gguf model.bin")]
pub struct ConvertArgs {
    /// Model to read: a llama2.c file (.bin) or a GGUF file.
    pub input: PathBuf,
    /// File to write: GGUF for a llama2.c input, llama2.c v0 for a GGUF input.
    pub output: PathBuf,
    /// Type of the GGUF output's matrices (norms stay f32); rows must be a whole number of
    /// the type's blocks. Only for llama2.c inputs.
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value_t = OutType::F32)]
    pub out_type: OutType,
    /// Tokenizer of a llama2.c input [default: tokenizer.bin beside IN, else in the working
    /// directory]. A GGUF input has its own.
    #[arg(short = 'z', long, value_name = "FILE")]
    pub tokenizer: Option<PathBuf>,
    /// Where a GGUF input's vocabulary goes, as a llama2.c tokenizer file [default: OUT with
    /// the extension .tokenizer.bin].
    #[arg(long, value_name = "FILE")]
    pub tokenizer_out: Option<PathBuf>,
}

/// Runs `llama2 convert`.
pub fn run(args: &ConvertArgs) -> Result<(), CliError> {
    let file = MappedFile::open(&args.input)?;
    let mut layers = Vec::new();
    let model = file.model(&mut layers)?;
    if gguf::is_gguf(file.bytes()) {
        to_llama2c::run(args, &file, &model)
    } else {
        to_gguf::run(args, &file, &model)
    }
}
