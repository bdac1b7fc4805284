//! Weights in ggml's block formats, as GGUF files store them: the matrix view, decoding
//! blocks to `f32`, and matrix-vector products over them.
//!
//! A row of a [`GgmlMatrix`] is a whole number of blocks; each type's block layout is
//! ggml's (`ggml-common.h`). The scalar products decode one block at a time into a small
//! stack buffer and take its dot product with the input, so nothing table-sized is needed.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod decode;
pub mod encode;

pub use decode::dequantize;

use crate::gguf::GgmlType;
use crate::kernels::Kernels;

/// The most values one block decodes to (the K-quants' super-blocks).
pub(crate) const MAX_BLOCK: usize = 256;

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

/// `out[r * batch + b] = w_r · x_b` for the `batch` inputs `x = [batch][cols]`, decoding each
/// block of a row once for all inputs. Sums run block by block in order.
pub(crate) fn matmul_scalar(
    k: Kernels,
    out: &mut [f32],
    w: &GgmlMatrix<'_>,
    x: &[f32],
    batch: usize,
) {
    let Some(block) = w.ty.block() else { return };
    let row_bytes = w.row_bytes();
    if row_bytes == 0 || block.elements > MAX_BLOCK {
        return;
    }
    let mut values = [0.0f32; MAX_BLOCK];
    let values = values.get_mut(..block.elements).unwrap_or_default();
    for (outs, row) in out
        .chunks_exact_mut(batch)
        .zip(w.data.chunks_exact(row_bytes))
    {
        outs.fill(0.0);
        for (i, blk) in row.chunks_exact(block.bytes).enumerate() {
            dequantize(w.ty, blk, values);
            let at = i * block.elements;
            for (o, x) in outs.iter_mut().zip(x.chunks_exact(w.cols)) {
                *o += k.dot(values, x.get(at..at + block.elements).unwrap_or_default());
            }
        }
    }
}
