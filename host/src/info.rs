//! `llama2 info MODEL`: what a model file holds and what running it costs.

use std::path::Path;

use llama2_core::gguf::{GgmlType, Gguf};
use llama2_core::{Format, State};

use crate::error::CliError;
use crate::load::MappedFile;
use crate::stdio;

/// Prints what the model file at `path` holds.
pub fn run(path: &Path) -> Result<(), CliError> {
    let file = MappedFile::open(path)?;
    let mut layers = Vec::new();
    let model = file.model(&mut layers)?;
    let c = model.config;
    let format = match model.format {
        Format::V0 => "llama2.c legacy (version 0), fp32".to_string(),
        Format::V1 => "llama2.c version 1, fp32".to_string(),
        Format::V2 { group_size } => {
            format!("llama2.c version 2, Q8_0 (int8, group size {group_size})")
        }
        Format::Gguf { version } => format!("GGUF version {version}, architecture llama"),
    };
    let state_bytes = State::len_for(&c, c.seq_len).map(|n| n.saturating_mul(4));
    let classifier = if c.shared_classifier {
        "shared with token embedding"
    } else {
        "separate"
    };
    let weights = model.weights.bytes_per_token(&c);
    let state = match state_bytes {
        Some(bytes) => format!("{bytes} bytes (activations + KV cache)"),
        None => "too large for this machine".to_string(),
    };
    let mut rows = vec![
        ("file", path.display().to_string()),
        ("format", format),
        ("dim", c.dim.to_string()),
        ("hidden_dim", c.hidden_dim.to_string()),
        ("n_layers", c.n_layers.to_string()),
        ("n_heads", c.n_heads.to_string()),
        ("n_kv_heads", c.n_kv_heads.to_string()),
        ("vocab_size", c.vocab_size.to_string()),
        ("seq_len", c.seq_len.to_string()),
        ("head_size", c.head_size().to_string()),
        ("classifier", classifier.to_string()),
        ("parameters", c.parameter_count().unwrap_or(0).to_string()),
        ("file bytes", file.bytes().len().to_string()),
        (
            "weights per token",
            format!("{weights} bytes (read once per generated token)"),
        ),
        ("state for seq_len", state),
        ("rms_eps", model.numerics.rms_eps.to_string()),
        ("rope_base", model.numerics.rope_base.to_string()),
    ];
    if let Format::Gguf { .. } = model.format {
        rows.extend(gguf_rows(file.bytes()));
    }
    let text: String = rows
        .iter()
        .map(|(label, value)| format!("{:<19}{value}\n", format!("{label}:")))
        .collect();
    stdio::print(&text)
}

/// What only a GGUF file says: its tensor types (count and bytes of each) and its tokenizer.
fn gguf_rows(bytes: &[u8]) -> Vec<(&'static str, String)> {
    let Ok(file) = Gguf::parse(bytes) else {
        return Vec::new();
    };
    let mut types: Vec<(GgmlType, usize, usize)> = Vec::new();
    for tensor in file.tensors() {
        match types.iter_mut().find(|(t, _, _)| *t == tensor.ggml_type) {
            Some((_, count, size)) => {
                *count += 1;
                *size += tensor.data.len();
            }
            None => types.push((tensor.ggml_type, 1, tensor.data.len())),
        }
    }
    let types = types
        .iter()
        .map(|(t, count, size)| format!("{t} {count} ({size} bytes)"))
        .collect::<Vec<_>>()
        .join(", ");
    let tokenizer_model = file
        .metadata("tokenizer.ggml.model")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "none".to_string());
    let pieces = file
        .metadata("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .map_or(0, |a| a.len());
    vec![
        ("tensor types", types),
        (
            "tokenizer",
            format!("{tokenizer_model}, {pieces} pieces (in the file)"),
        ),
    ]
}
