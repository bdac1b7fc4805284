//! `llama2 info MODEL`: what a model file holds and what running it costs.

use std::path::Path;

use llama2_core::{Format, State};

use crate::error::CliError;
use crate::load::MappedFile;
use crate::stdio;

/// Prints what the model file at `path` holds.
pub fn run(path: &Path) -> Result<(), CliError> {
    let file = MappedFile::open(path)?;
    let model = file.model()?;
    let c = model.config;
    let format = match model.format {
        Format::V0 => "llama2.c legacy (version 0), fp32".to_string(),
        Format::V1 => "llama2.c version 1, fp32".to_string(),
        Format::V2 { group_size } => {
            format!("llama2.c version 2, Q8_0 (int8, group size {group_size})")
        }
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
    let rows = [
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
    ];
    let text: String = rows
        .iter()
        .map(|(label, value)| format!("{:<19}{value}\n", format!("{label}:")))
        .collect();
    stdio::print(&text)
}
