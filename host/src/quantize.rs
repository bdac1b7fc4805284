//! `llama2 quantize IN OUT`: fp32 model (v0 or v1) to Q8_0 (v2), as llama2.c's
//! `export.py --version 2` writes it, byte for byte.

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use llama2_core::{Config, Format, Matrix, Model, MAGIC};

use crate::error::CliError;
use crate::load::MappedFile;

/// Largest group size `quantize` picks on its own.
const MAX_AUTO_GROUP: usize = 64;
/// Models with more weights than this show progress while quantizing.
const PROGRESS_THRESHOLD: usize = 10_000_000;

pub fn run(input: &Path, output: &Path, group_size: Option<usize>) -> Result<(), CliError> {
    let file = MappedFile::open(input)?;
    let model = file.model()?;
    if let Format::V2 { .. } = model.format {
        return Err(CliError::file(
            input,
            "already quantized (version 2); give an fp32 model",
        ));
    }
    let config = model.config;
    let group = match group_size {
        Some(g) => check_group(&config, g)?,
        None => auto_group(&config).ok_or_else(|| {
            CliError::file(input, "dim and hidden_dim share no power-of-two group size")
        })?,
    };
    let temporary = temporary_path(output);
    let written = write_v2_file(&model, group, &temporary)
        .and_then(|max_error| {
            file.check_unchanged()?;
            std::fs::rename(&temporary, output).map_err(|e| CliError::file(output, e))?;
            Ok(max_error)
        })
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })?;
    eprintln!(
        "wrote {} (Q8_0, group size {group}); largest quantization error {written:e}",
        output.display()
    );
    Ok(())
}

/// The largest power of two up to 64 dividing both matmul input lengths.
pub fn auto_group(config: &Config) -> Option<usize> {
    (0..=MAX_AUTO_GROUP.trailing_zeros())
        .rev()
        .map(|shift| 1usize << shift)
        .find(|g| config.dim.is_multiple_of(*g) && config.hidden_dim.is_multiple_of(*g))
}

fn check_group(config: &Config, group: usize) -> Result<usize, CliError> {
    if group == 0 || !config.dim.is_multiple_of(group) || !config.hidden_dim.is_multiple_of(group) {
        return Err(CliError::usage(
            "--group-size",
            format!(
                "{group} must be positive and divide both dim {} and hidden_dim {}",
                config.dim, config.hidden_dim
            ),
        ));
    }
    Ok(group)
}

fn temporary_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    output.with_file_name(name)
}

/// Writes the v2 file at `path` and returns the largest absolute quantization error.
fn write_v2_file(model: &Model<'_>, group: usize, path: &Path) -> Result<f32, CliError> {
    let io = |e: std::io::Error| CliError::file(path, e);
    let mut out = BufWriter::new(File::create(path).map_err(io)?);
    let max_error = write_v2(model, group, &mut out, true).map_err(io)?;
    out.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(max_error)
}

/// Writes `model` (fp32) as a v2 (Q8_0) file to `out` and returns the largest absolute
/// quantization error. `group` must divide `dim` and `hidden_dim`. Large models report
/// progress on stderr if `show_progress`.
pub fn write_v2(
    model: &Model<'_>,
    group: usize,
    out: &mut impl Write,
    show_progress: bool,
) -> std::io::Result<f32> {
    out.write_all(&header(&model.config, group))?;
    let w = &model.weights;
    for norms in [w.rms_att, w.rms_ffn, w.rms_final] {
        write_f32s(out, norms)?;
    }
    let c = &model.config;
    let mut tensors: Vec<&[f32]> = vec![f32_data(&w.token_embedding)];
    for stack in [w.wq, w.wk, w.wv, w.wo, w.w1, w.w2, w.w3] {
        tensors.extend((0..c.n_layers).map(|l| f32_data(&stack.layer(l))));
    }
    if !c.shared_classifier {
        tensors.push(f32_data(&w.classifier));
    }
    let total: usize = tensors.iter().map(|t| t.len()).sum();
    let mut progress = Progress::new(total, show_progress);
    let mut max_error = 0.0f32;
    let mut values = Vec::new();
    let mut scales = Vec::new();
    for tensor in tensors {
        max_error = max_error.max(quantize_tensor(tensor, group, &mut values, &mut scales));
        out.write_all(bytemuck::cast_slice(&values))?;
        write_f32s(out, &scales)?;
        progress.advance(tensor.len());
    }
    progress.finish();
    Ok(max_error)
}

/// Stack/matrix data of an fp32 model (the caller checked the format).
fn f32_data<'a>(m: &Matrix<'a>) -> &'a [f32] {
    match *m {
        Matrix::F32 { data, .. } => data,
        Matrix::Q8 { .. } => &[],
    }
}

/// Q8_0 like `export.py`: scale = max|w| / 127 in f32, values rounded half to even; an
/// all-zero group becomes zeros with scale 0. Returns the largest reconstruction error.
pub fn quantize_tensor(
    w: &[f32],
    group: usize,
    values: &mut Vec<i8>,
    scales: &mut Vec<f32>,
) -> f32 {
    values.clear();
    scales.clear();
    let mut max_error = 0.0f32;
    for chunk in w.chunks_exact(group) {
        let max = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = max / 127.0;
        scales.push(scale);
        for &v in chunk {
            let q = if scale == 0.0 {
                0.0
            } else {
                (v / scale).round_ties_even()
            };
            values.push(q as i8);
            max_error = max_error.max((q * scale - v).abs());
        }
    }
    max_error
}

fn header(c: &Config, group: usize) -> [u8; 256] {
    let mut header = [0u8; 256];
    let fields = [
        MAGIC as i32,
        2,
        c.dim as i32,
        c.hidden_dim as i32,
        c.n_layers as i32,
        c.n_heads as i32,
        c.n_kv_heads as i32,
        c.vocab_size as i32,
        c.seq_len as i32,
    ];
    for (i, v) in fields.iter().enumerate() {
        header[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
    }
    header[36] = u8::from(c.shared_classifier);
    header[37..41].copy_from_slice(&(group as i32).to_le_bytes());
    header
}

fn write_f32s(out: &mut impl Write, values: &[f32]) -> std::io::Result<()> {
    for v in values {
        out.write_all(&v.to_le_bytes())?;
    }
    Ok(())
}

/// Percent done on stderr, for models large enough to take a while.
struct Progress {
    total: usize,
    done: usize,
    shown: usize,
    enabled: bool,
}

impl Progress {
    fn new(total: usize, wanted: bool) -> Self {
        Progress {
            total,
            done: 0,
            shown: 0,
            enabled: wanted && total > PROGRESS_THRESHOLD,
        }
    }

    fn advance(&mut self, n: usize) {
        self.done += n;
        let percent = self.done * 100 / self.total.max(1);
        if self.enabled && percent >= self.shown + 10 {
            self.shown = percent - percent % 10;
            if std::io::stderr().is_terminal() {
                eprint!("\rquantizing: {percent:3}%");
            } else {
                eprintln!("quantizing: {percent}%");
            }
        }
    }

    fn finish(&self) {
        if self.enabled && std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_to_even_and_handles_zero_groups() {
        let (mut values, mut scales) = (Vec::new(), Vec::new());
        // scale 1.0: 0.5 -> 0 and 2.5 -> 2 (ties to even), 127 stays
        let err = quantize_tensor(&[0.5, 2.5, -1.5, 127.0], 4, &mut values, &mut scales);
        assert_eq!(values, [0, 2, -2, 127]);
        assert_eq!(scales, [1.0]);
        assert_eq!(err, 0.5);
        quantize_tensor(&[0.0; 4], 2, &mut values, &mut scales);
        assert_eq!(values, [0; 4]);
        assert_eq!(scales, [0.0, 0.0]);
    }

    #[test]
    fn picks_the_largest_power_of_two_group() {
        let config = |dim, hidden_dim| Config {
            dim,
            hidden_dim,
            n_layers: 1,
            n_heads: 1,
            n_kv_heads: 1,
            vocab_size: 1,
            seq_len: 1,
            shared_classifier: true,
        };
        assert_eq!(auto_group(&config(64, 172)), Some(4));
        assert_eq!(auto_group(&config(512, 1376)), Some(32));
        assert_eq!(auto_group(&config(768, 2048)), Some(64));
        assert_eq!(auto_group(&config(3, 5)), Some(1));
        assert!(check_group(&config(64, 172), 8).is_err());
    }
}
