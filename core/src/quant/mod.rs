//! Weights in ggml's block formats, as GGUF files store them: the matrix view, decoding
//! blocks to `f32`, and matrix-vector products over them.
//!
//! A row of a [`GgmlMatrix`] is a whole number of blocks; each type's block layout is
//! ggml's (`ggml-common.h`). The scalar products (the reference, and the path of every type
//! without SIMD kernels) decode one block at a time into a small stack buffer and take its
//! dot product with the f32 input, so nothing table-sized is needed. The SIMD products
//! ([`Kernels::ggml_input`] says which) read F16 rows against the f32 input and the
//! Q8_0/Q4_0/Q4_K/Q6_K rows against the input quantized once per product ([`prepare`]).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod decode;
pub mod encode;
#[cfg(test)]
pub(crate) mod tests;

pub use decode::dequantize;
#[cfg(target_arch = "aarch64")]
pub(crate) use decode::k_scale_min;
#[cfg(target_arch = "aarch64")]
pub(crate) use decode::q6_k_place;

use crate::gguf::GgmlType;
use crate::kernels::{GgmlInput, Kernels, Q8Blocks};

/// The most values one block decodes to (the K-quants' super-blocks).
pub(crate) const MAX_BLOCK: usize = 256;

/// Inputs the reference product sums at once for a row (its sums live on the stack).
const MAX_BATCH: usize = 64;

/// Whether the engine can compute with weights of type `ty` (the types [`dequantize`]
/// decodes).
pub const fn is_weight_type(ty: GgmlType) -> bool {
    decode::decodes(ty)
}

/// A row-major matrix in a ggml block type, borrowed from a GGUF file: each of its rows is
/// `cols / block.elements` blocks of `block.bytes` bytes.
#[derive(Debug, Clone, Copy)]
pub struct GgmlMatrix<'a> {
    /// The element type (one that [`is_weight_type`] accepts).
    pub ty: GgmlType,
    /// The blocks, row after row.
    pub data: &'a [u8],
    /// Values per row (a multiple of the type's block size).
    pub cols: usize,
}

impl<'a> GgmlMatrix<'a> {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        match self.ty.block() {
            Some(b) if b.elements > 0 => self.cols / b.elements * b.bytes,
            _ => 0,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.row_bytes()).unwrap_or(0)
    }

    /// The sub-matrix of rows `first..first + count`; rows past the end are left out.
    pub(crate) fn rows_slice(&self, first: usize, count: usize) -> GgmlMatrix<'a> {
        let row = self.row_bytes();
        let start = first.saturating_mul(row).min(self.data.len());
        let end = first
            .saturating_add(count)
            .saturating_mul(row)
            .min(self.data.len());
        GgmlMatrix {
            data: self.data.get(start..end).unwrap_or_default(),
            ..*self
        }
    }

    /// Decodes row `row` into `out` (`cols` values).
    pub fn dequantize_row(&self, row: usize, out: &mut [f32]) {
        let bytes = self.rows_slice(row, 1).data;
        dequantize(self.ty, bytes, out);
    }
}

/// Values per group of a quantized input (int8 blocks of this many values, one scale each).
pub const INPUT_GROUP: usize = 32;

/// The input of a product over a [`GgmlMatrix`], as its kernels read it.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// The f32 inputs `[batch][cols]`.
    F32(&'a [f32]),
    /// The inputs quantized in groups of [`INPUT_GROUP`], one after another.
    Q8(Q8Blocks<'a>),
}

impl<'a> Input<'a> {
    /// Inputs `range` of a batch whose inputs have `cols` values each (`cols` a multiple
    /// of [`INPUT_GROUP`] for a quantized input); empty where the batch is shorter.
    pub fn inputs(&self, range: core::ops::Range<usize>, cols: usize) -> Input<'a> {
        match *self {
            Input::F32(x) => Input::F32(
                x.get(range.start * cols..range.end * cols)
                    .unwrap_or_default(),
            ),
            Input::Q8(x) => Input::Q8(x.inputs(range, cols)),
        }
    }
}

/// Prepares the inputs `x = [batch][cols]` of a product over `ty` rows under `k`: for the
/// quantized SIMD products it quantizes them into `values` (`x.len()` of them) and `scales`
/// (`2 · x.len() / 32`: the scales, then the group sums), symmetric to ±127 per 32 values
/// like the Q8 models' inputs; otherwise it passes `x` through. Buffers too short for the
/// quantized form make it fall back to the f32 reference path.
pub fn prepare<'s>(
    k: Kernels,
    ty: GgmlType,
    x: &'s [f32],
    values: &'s mut [i8],
    scales: &'s mut [f32],
) -> Input<'s> {
    let groups = x.len() / INPUT_GROUP;
    let quantized = k.ggml_input(ty) == GgmlInput::Q8 && x.len().is_multiple_of(INPUT_GROUP);
    let (Some(values), Some(scales)) = (values.get_mut(..x.len()), scales.get_mut(..2 * groups))
    else {
        return Input::F32(x);
    };
    if !quantized {
        return Input::F32(x);
    }
    let (scales, sums) = scales.split_at_mut(groups);
    k.quantize(x, INPUT_GROUP, values, scales);
    for (sum, group) in sums.iter_mut().zip(values.chunks_exact(INPUT_GROUP)) {
        *sum = group.iter().map(|&v| i32::from(v)).sum::<i32>() as f32;
    }
    Input::Q8(Q8Blocks {
        values,
        scales,
        sums,
    })
}

/// `out[b * rows + r] = w_r · x_b` for the `batch` prepared inputs (the outputs of each
/// input together, as `math::matmul` keeps them): quantized inputs in tiles of rows by
/// inputs (the kernels'), f32 inputs row by row, each row read once for all of them. Every
/// output is computed as for its input alone, whatever the batch and whichever rows `w`
/// holds, so batching and the thread split never change results. `x` must come from
/// [`prepare`] with the same `k` and `w.ty` (a quantized input for a type whose kernels
/// take f32 gives zeros).
pub fn matmul(k: Kernels, out: &mut [f32], w: &GgmlMatrix<'_>, x: &Input<'_>, batch: usize) {
    let (row_bytes, rows) = (w.row_bytes(), w.rows());
    if row_bytes == 0 || batch == 0 {
        return;
    }
    match *x {
        Input::F32(x) if k.ggml_input(w.ty) == GgmlInput::F32 => {
            for (r, row) in w.data.chunks_exact(row_bytes).enumerate() {
                for (b, x) in x.chunks_exact(w.cols).take(batch).enumerate() {
                    if let Some(o) = out.get_mut(b * rows + r) {
                        *o = k.ggml_dot_f32(w.ty, row, x);
                    }
                }
            }
        }
        Input::F32(x) => matmul_scalar(k, out, w, x, batch),
        Input::Q8(_) if k.ggml_input(w.ty) != GgmlInput::Q8 => out.fill(0.0),
        Input::Q8(x) => {
            // All rows and inputs at once: the kernels share each load across both.
            let groups = batch * (w.cols / INPUT_GROUP);
            let x = Q8Blocks {
                values: x.values.get(..batch * w.cols).unwrap_or_default(),
                scales: x.scales.get(..groups).unwrap_or_default(),
                sums: x.sums.get(..groups).unwrap_or_default(),
            };
            k.ggml_matmul_q8(w.ty, out, (1, rows), w.data, row_bytes, x, batch);
        }
    }
}

/// The reference product, `out[b * rows + r]` as in [`matmul`]: each block of a row
/// decoded once into a stack buffer, then its dot product with every input's values.
pub(crate) fn matmul_scalar(
    k: Kernels,
    out: &mut [f32],
    w: &GgmlMatrix<'_>,
    x: &[f32],
    batch: usize,
) {
    let Some(block) = w.ty.block() else { return };
    let (row_bytes, rows) = (w.row_bytes(), w.rows());
    if row_bytes == 0 || block.elements > MAX_BLOCK {
        return;
    }
    let mut values = [0.0f32; MAX_BLOCK];
    let values = values.get_mut(..block.elements).unwrap_or_default();
    let mut sums = [0.0f32; MAX_BATCH];
    for (r, row) in w.data.chunks_exact(row_bytes).enumerate() {
        for first in (0..batch).step_by(MAX_BATCH) {
            let count = MAX_BATCH.min(batch - first);
            let sums = sums.get_mut(..count).unwrap_or_default();
            sums.fill(0.0);
            for (i, blk) in row.chunks_exact(block.bytes).enumerate() {
                dequantize(w.ty, blk, values);
                let at = i * block.elements;
                let inputs = x.chunks_exact(w.cols).skip(first);
                for (sum, x) in sums.iter_mut().zip(inputs) {
                    *sum += k.dot(values, x.get(at..at + block.elements).unwrap_or_default());
                }
            }
            for (b, &sum) in sums.iter().enumerate() {
                if let Some(o) = out.get_mut((first + b) * rows + r) {
                    *o = sum;
                }
            }
        }
    }
}
