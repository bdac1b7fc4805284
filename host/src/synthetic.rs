//! Models with random weights made in memory, for benchmarks of published shapes without
//! downloading anything.

use std::path::Path;

use llama2_core::{gguf, AlignedBytes, Config, Format, Header, Model};

use crate::atomic_write::write_atomically;
use crate::convert::{write_gguf, write_v0, GgufError, OutType, Vocabulary};
use crate::error::CliError;
use crate::quantize::{auto_group, write_v2};
use crate::stdio;

/// The shapes of the TinyStories checkpoints llama2.c publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    #[value(name = "260K")]
    S260K,
    #[value(name = "15M")]
    S15M,
    #[value(name = "42M")]
    S42M,
    #[value(name = "110M")]
    S110M,
}

impl Shape {
    pub fn config(self) -> Config {
        let (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len) = match self {
            Shape::S260K => (64, 172, 5, 8, 4, 512, 512),
            Shape::S15M => (288, 768, 6, 6, 6, 32000, 256),
            Shape::S42M => (512, 1376, 8, 8, 8, 32000, 1024),
            Shape::S110M => (768, 2048, 12, 12, 12, 32000, 1024),
        };
        Config {
            dim,
            hidden_dim,
            n_layers,
            n_heads,
            n_kv_heads,
            vocab_size,
            seq_len,
            shared_classifier: true,
        }
    }
}

/// A version 1 (fp32) model of `config`'s shape with uniform random weights in ±0.05
/// (norm gains 1), from a fixed seed.
pub fn random_f32_model(config: &Config) -> AlignedBytes {
    let count = config
        .parameter_count()
        .expect("published shapes fit in memory");
    let mut words = vec![0u32; 64 + count];
    let header = Header::new(config, Format::V1).expect("published shapes have valid headers");
    for (w, field) in words.iter_mut().zip(header.as_bytes().chunks_exact(4)) {
        *w = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
    }
    let norms = (2 * config.n_layers + 1) * config.dim;
    let (gains, weights) = words[64..].split_at_mut(norms);
    gains.fill(1.0f32.to_bits());
    for (w, value) in weights.iter_mut().zip(random_values(0)) {
        *w = (value * 0.1).to_bits();
    }
    AlignedBytes::from_words(words)
}

/// Deterministic pseudo-random values, uniform in [-0.5, 0.5) (xorshift64), one stream per
/// `seed`: the weights of the random models (seed 0) and the inputs of the kernel
/// benchmarks.
pub fn random_values(seed: u64) -> impl Iterator<Item = f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    })
}

/// The Q8_0 (version 2) form of an fp32 model, with the default group size.
pub fn quantized(model: &Model<'_>) -> std::io::Result<AlignedBytes> {
    let group = auto_group(&model.config).unwrap_or(1);
    let mut bytes = Vec::new();
    write_v2(model, group, &mut bytes, false)?;
    Ok(AlignedBytes::new(&bytes))
}

/// The GGUF form of a model with matrices of type `ty` (norms F32), as `llama2 convert`
/// writes it, with a stand-in vocabulary; fails with the writer's message (a row that is
/// not a whole number of the type's blocks).
pub fn random_gguf(model: &Model<'_>, ty: OutType) -> Result<AlignedBytes, String> {
    let vocabulary = Vocabulary::placeholder(model.config.vocab_size);
    let mut bytes = Vec::new();
    write_gguf(model, &vocabulary, ty, &mut bytes).map_err(|e| match e {
        GgufError::Model(e) => e.to_string(),
        GgufError::Write(e) => match e {},
    })?;
    Ok(AlignedBytes::new(&bytes))
}

/// `bench --save-model OUT`: writes the model `bench --shape` made (`bytes`, described by
/// `label`) to OUT for other engines. An fp32 model is written as version 0, the layout
/// llama2.c's `run` reads, with the same weights (the RoPE tables it carries are
/// recomputed); a Q8_0 (version 2) or GGUF model is written as it is.
pub fn save(bytes: &[u8], label: &str, out: &Path) -> Result<(), CliError> {
    let is_gguf = gguf::is_gguf(bytes);
    let fp32 = match is_gguf {
        true => None,
        false => Some(Model::from_bytes(bytes).map_err(|e| CliError::usage("--shape", e))?)
            .filter(|model| model.format == Format::V1),
    };
    let layout = match (is_gguf, &fp32) {
        (true, _) => "GGUF",
        (false, Some(_)) => "llama2.c version 0",
        (false, None) => "llama2.c version 2",
    };
    write_atomically(out, &[], |w| {
        match &fp32 {
            Some(model) => write_v0(model, w),
            None => w.write_all(bytes),
        }
        .map_err(|e| CliError::file(out, e))
    })?;
    stdio::note!("wrote {} ({label}, {layout})", out.display());
    Ok(())
}
