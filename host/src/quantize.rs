//! `llama2 quantize IN OUT`: fp32 model (v0 or v1) to Q8_0 (v2), as llama2.c's
//! `export.py --version 2` writes it, byte for byte. Weights are scanned for NaN and
//! infinities first (refused by name unless `--allow-non-finite`), and OUT is written through
//! [`crate::atomic_write`], so it is never the input and never left half-written.

use std::io::{IsTerminal, Write};
use std::path::Path;

use llama2_core::{Config, Format, Header, LayerWeights, Matrix, Model};

use crate::atomic_write::write_atomically;
use crate::error::CliError;
use crate::load::MappedFile;
use crate::non_finite::Report;
use crate::stdio;

/// Largest group size `quantize` picks on its own.
const MAX_AUTO_GROUP: usize = 64;
/// Models with more weights than this show progress while quantizing.
const PROGRESS_THRESHOLD: usize = 10_000_000;

/// Quantizes the fp32 model at `input` into a new Q8_0 file at `output`, written
/// atomically. Non-finite weights are refused unless `allow_non_finite`.
pub fn run(
    input: &Path,
    output: &Path,
    group_size: Option<usize>,
    allow_non_finite: bool,
) -> Result<(), CliError> {
    let file = MappedFile::open(input)?;
    let mut layers = Vec::new();
    let model = file.model(&mut layers)?;
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
    let non_finite = Report::scan(named_tensors(&model));
    if !non_finite.is_clean() {
        if !allow_non_finite {
            return Err(CliError::file(
                input,
                format!(
                    "non-finite weights ({non_finite}); refusing to quantize them \
                     (--allow-non-finite quantizes anyway)"
                ),
            ));
        }
        stdio::note!(
            "llama2: warning: {}: non-finite weights ({non_finite}); quantizing anyway \
             (--allow-non-finite): a NaN is stored as 0, a group holding an infinity gets an \
             infinite scale",
            input.display()
        );
    }
    let max_error = write_atomically(output, &[input], |mut out| {
        let max_error =
            write_v2(&model, group, &mut out, true).map_err(|e| CliError::file(output, e))?;
        // A model cut short or rewritten while it was read must not become OUT.
        file.check_unchanged()?;
        Ok(max_error)
    })?;
    stdio::note!(
        "wrote {} (Q8_0, group size {group}); largest quantization error {max_error:e}",
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

/// Writes `model` (fp32) as a v2 (Q8_0) file to `out` and returns the largest absolute
/// quantization error. `group` must divide `dim` and `hidden_dim`. Large models report
/// progress on stderr if `show_progress`.
pub fn write_v2(
    model: &Model<'_>,
    group: usize,
    out: &mut impl Write,
    show_progress: bool,
) -> std::io::Result<f32> {
    let header = Header::new(&model.config, Format::V2 { group_size: group })
        .map_err(std::io::Error::other)?;
    out.write_all(header.as_bytes())?;
    let (c, w) = (&model.config, &model.weights);
    let layers: Vec<LayerWeights<'_>> = (0..c.n_layers).map(|l| w.layer(c, l)).collect();
    for layer in &layers {
        write_f32s(out, layer.rms_att)?;
    }
    for layer in &layers {
        write_f32s(out, layer.rms_ffn)?;
    }
    write_f32s(out, w.rms_final)?;
    let mut tensors: Vec<&[f32]> = vec![f32_data(&w.token_embedding)];
    // Stack by stack (all layers' wq, then all wk, ...), as the file stores them.
    for kind in 0..7 {
        tensors.extend(layers.iter().map(|l| f32_data(&l.named_matrices()[kind].1)));
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

/// Every fp32 array of `model` with the name a report gives it (`token_embedding`,
/// `layer 3 wq`, `rms_final`, ...), layer by layer.
fn named_tensors<'a>(model: &Model<'a>) -> Vec<(String, &'a [f32])> {
    let (c, w) = (&model.config, &model.weights);
    let mut tensors = vec![("token_embedding".to_string(), f32_data(&w.token_embedding))];
    for l in 0..c.n_layers {
        let layer = w.layer(c, l);
        tensors.push((format!("layer {l} rms_att"), layer.rms_att));
        tensors.push((format!("layer {l} rms_ffn"), layer.rms_ffn));
        for (name, matrix) in layer.named_matrices() {
            tensors.push((format!("layer {l} {name}"), f32_data(&matrix)));
        }
    }
    tensors.push(("rms_final".to_string(), w.rms_final));
    if !c.shared_classifier {
        tensors.push(("classifier".to_string(), f32_data(&w.classifier)));
    }
    tensors
}

/// Stack/matrix data of an fp32 model (the caller checked the format).
fn f32_data<'a>(m: &Matrix<'a>) -> &'a [f32] {
    match *m {
        Matrix::F32 { data, .. } => data,
        Matrix::Q8(_) | Matrix::Ggml(_) => &[],
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
                stdio::progress!("\rquantizing: {percent:3}%");
            } else {
                stdio::note!("quantizing: {percent}%");
            }
        }
    }

    fn finish(&self) {
        if self.enabled && std::io::stderr().is_terminal() {
            stdio::note!();
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
