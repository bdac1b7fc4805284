//! GGUF → llama2.c v0: every tensor decoded row by row into the v0 layout (with the RoPE
//! tables v0 carries), the vocabulary as a llama2.c `tokenizer.bin`, and the command that
//! writes both.

use std::io::Write;
use std::path::{Path, PathBuf};

use llama2_core::gguf::Gguf;
use llama2_core::{Config, Format, Header, Matrix, Model, Numerics, Tokenizer};

use super::{ConvertArgs, OutType};
use crate::atomic_write::write_atomically;
use crate::error::CliError;
use crate::load::MappedFile;
use crate::stdio;

/// Converts the GGUF model `model` (mapped from `file`) to a llama2.c v0 file and a
/// tokenizer file.
pub(super) fn run(
    args: &ConvertArgs,
    file: &MappedFile,
    model: &Model<'_>,
) -> Result<(), CliError> {
    if args.out_type != OutType::F32 {
        return Err(CliError::usage(
            "--type",
            "a GGUF input becomes a llama2.c v0 file, which is always f32; --type is for \
             llama2.c inputs",
        ));
    }
    if let Some(z) = &args.tokenizer {
        return Err(CliError::usage(
            "-z",
            format!(
                "{} is a GGUF file with its own vocabulary; -z is for llama2.c inputs",
                z.display()
            ),
        ));
    }
    check_v0_numerics(&model.numerics).map_err(|e| CliError::file(&args.input, e))?;
    // A shape v0's i32 fields cannot hold is refused before anything is written.
    Header::new(&model.config, Format::V0).map_err(|e| CliError::file(&args.input, e))?;
    let tokenizer_out = args
        .tokenizer_out
        .clone()
        .unwrap_or_else(|| default_tokenizer_out(&args.output));
    if tokenizer_out == args.output {
        return Err(CliError::usage(
            "--tokenizer-out",
            format!("{} is also OUT; give another path", tokenizer_out.display()),
        ));
    }
    let parsed = Gguf::parse(file.bytes()).map_err(|e| CliError::file(&args.input, e))?;
    let vocab_size = model.config.vocab_size;
    let mut index = vec![0u32; Tokenizer::index_len(vocab_size).unwrap_or(0)];
    let tokenizer =
        Tokenizer::from_gguf(&parsed, &mut index).map_err(|e| CliError::file(&args.input, e))?;
    let inputs = [args.input.as_path()];
    write_atomically(&args.output, &inputs, |out| {
        write_v0(model, out).map_err(|e| CliError::file(&args.output, e))?;
        file.check_unchanged()
    })?;
    write_atomically(
        &tokenizer_out,
        &[args.input.as_path(), args.output.as_path()],
        |out| {
            write_llama2c_tokenizer(&tokenizer, out).map_err(|e| CliError::file(&tokenizer_out, e))
        },
    )?;
    stdio::note!(
        "wrote {} (llama2.c v0, fp32) and its tokenizer {} ({vocab_size} tokens)",
        args.output.display(),
        tokenizer_out.display()
    );
    Ok(())
}

/// OUT with its extension replaced by `.tokenizer.bin`.
fn default_tokenizer_out(output: &Path) -> PathBuf {
    output.with_extension("tokenizer.bin")
}

/// A v0 file has no field for the RMSNorm epsilon or the RoPE base: readers assume
/// llama2.c's. A model with others would compute differently once converted.
fn check_v0_numerics(numerics: &Numerics) -> Result<(), String> {
    let fixed = Numerics::LLAMA2C;
    if numerics.rms_eps != fixed.rms_eps {
        return Err(format!(
            "its RMSNorm epsilon is {:e}; a llama2.c file has no field for it and is read \
             with {:e}, so the converted model would compute differently",
            numerics.rms_eps, fixed.rms_eps
        ));
    }
    if numerics.rope_base != fixed.rope_base {
        return Err(format!(
            "its RoPE base is {}; a llama2.c file has no field for it and is read with {}, \
             so the converted model would compute differently",
            numerics.rope_base, fixed.rope_base
        ));
    }
    Ok(())
}

/// Writes `model` as a llama2.c v0 file: the 28-byte header, then fp32 weights in
/// llama2.c's first export order (embedding, attention norms, wq, wk, wv, wo, feed-forward
/// norms, w1, w2, w3, final norm), the RoPE tables, and the classifier if not shared.
/// Quantized matrices are decoded row by row.
pub fn write_v0(model: &Model<'_>, out: &mut dyn Write) -> std::io::Result<()> {
    let (c, w) = (&model.config, &model.weights);
    let header = Header::new(c, Format::V0).map_err(std::io::Error::other)?;
    out.write_all(header.as_bytes())?;
    let layers: Vec<_> = (0..c.n_layers).map(|l| w.layer(c, l)).collect();
    let mut row = Vec::new();
    write_matrix(out, &w.token_embedding, &mut row)?;
    for layer in &layers {
        write_f32s(out, layer.rms_att)?;
    }
    for kind in 0..4 {
        for layer in &layers {
            write_matrix(out, &layer.named_matrices()[kind].1, &mut row)?;
        }
    }
    for layer in &layers {
        write_f32s(out, layer.rms_ffn)?;
    }
    for kind in 4..7 {
        for layer in &layers {
            write_matrix(out, &layer.named_matrices()[kind].1, &mut row)?;
        }
    }
    write_f32s(out, w.rms_final)?;
    let (cos, sin) = rope_tables(c);
    write_f32s(out, &cos)?;
    write_f32s(out, &sin)?;
    if !c.shared_classifier {
        write_matrix(out, &w.classifier, &mut row)?;
    }
    Ok(())
}

/// The RoPE tables of a v0 file, `[seq_len][head_size / 2]` cosines then sines, computed
/// in f32 as llama2.c's exporter (PyTorch) does: frequency `i` is `1 / 10000^(2i /
/// head_size)`, angle `pos * frequency`. llama2.c computes RoPE itself and never reads them.
fn rope_tables(c: &Config) -> (Vec<f32>, Vec<f32>) {
    let head_size = c.head_size();
    let freqs: Vec<f32> = (0..head_size / 2)
        .map(|i| {
            1.0 / Numerics::LLAMA2C
                .rope_base
                .powf((2 * i) as f32 / head_size as f32)
        })
        .collect();
    let angles = (0..c.seq_len).flat_map(|pos| freqs.iter().map(move |f| pos as f32 * f));
    angles.map(|a| (a.cos(), a.sin())).unzip()
}

fn write_matrix(out: &mut dyn Write, m: &Matrix<'_>, row: &mut Vec<f32>) -> std::io::Result<()> {
    row.resize(m.cols(), 0.0);
    for r in 0..m.rows() {
        m.copy_row(r, row);
        write_f32s(out, row)?;
    }
    Ok(())
}

fn write_f32s(out: &mut dyn Write, values: &[f32]) -> std::io::Result<()> {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    out.write_all(&bytes)
}

/// Writes `tokenizer` as a llama2.c `tokenizer.bin`: the longest piece's length (i32), then
/// per token its score (f32), length (i32) and bytes, spelled as llama2.c spells them.
pub fn write_llama2c_tokenizer(
    tokenizer: &Tokenizer<'_>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let n = tokenizer.vocab_size() as u32;
    let pieces: Vec<Vec<u8>> = (0..n)
        .map(|id| {
            tokenizer
                .piece_text(id)
                .map(|p| p.bytes().collect())
                .unwrap_or_default()
        })
        .collect();
    let longest = pieces.iter().map(Vec::len).max().unwrap_or(0);
    let too_long = || std::io::Error::other("a piece is longer than a tokenizer file can hold");
    out.write_all(
        &i32::try_from(longest)
            .map_err(|_| too_long())?
            .to_le_bytes(),
    )?;
    for (id, piece) in (0..n).zip(&pieces) {
        out.write_all(&tokenizer.score(id).unwrap_or(0.0).to_le_bytes())?;
        out.write_all(&(piece.len() as i32).to_le_bytes())?;
        out.write_all(piece)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rope_tables_rotate_by_position_times_frequency() {
        let config = Config {
            dim: 8,
            hidden_dim: 8,
            n_layers: 1,
            n_heads: 2,
            n_kv_heads: 2,
            vocab_size: 4,
            seq_len: 3,
            shared_classifier: true,
        };
        // Head size 4: frequencies 1 and 1/100.
        let (cos, sin) = rope_tables(&config);
        assert_eq!(cos.len(), 3 * 2);
        assert_eq!((&cos[..2], &sin[..2]), (&[1.0, 1.0][..], &[0.0, 0.0][..]));
        assert_eq!(cos[4], 2f32.cos());
        assert_eq!(sin[5], (2.0f32 * 0.01).sin());
    }

    #[test]
    fn numerics_other_than_llama2c_s_are_refused() {
        assert_eq!(check_v0_numerics(&Numerics::LLAMA2C), Ok(()));
        let eps = Numerics {
            rms_eps: 1e-6,
            ..Numerics::LLAMA2C
        };
        assert!(check_v0_numerics(&eps)
            .unwrap_err()
            .contains("epsilon is 1e-6"));
        let base = Numerics {
            rope_base: 1e6,
            ..Numerics::LLAMA2C
        };
        assert!(check_v0_numerics(&base)
            .unwrap_err()
            .contains("RoPE base is 1000000"));
    }
}
