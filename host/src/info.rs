//! `llama2 info MODEL`: what a model file holds and what running it costs.

use std::path::Path;

use llama2_core::{Format, State};

use crate::error::CliError;
use crate::load::MappedFile;

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
    println!("file:              {}", path.display());
    println!("format:            {format}");
    println!("dim:               {}", c.dim);
    println!("hidden_dim:        {}", c.hidden_dim);
    println!("n_layers:          {}", c.n_layers);
    println!("n_heads:           {}", c.n_heads);
    println!("n_kv_heads:        {}", c.n_kv_heads);
    println!("vocab_size:        {}", c.vocab_size);
    println!("seq_len:           {}", c.seq_len);
    println!("head_size:         {}", c.head_size());
    println!(
        "classifier:        {}",
        if c.shared_classifier {
            "shared with token embedding"
        } else {
            "separate"
        }
    );
    println!("parameters:        {}", c.parameter_count().unwrap_or(0));
    println!("file bytes:        {}", file.bytes().len());
    println!(
        "weights per token: {} bytes (read once per generated token)",
        model.weights.bytes_per_token(&c)
    );
    match state_bytes {
        Some(bytes) => println!("state for seq_len: {bytes} bytes (activations + KV cache)"),
        None => println!("state for seq_len: too large for this machine"),
    }
    Ok(())
}
