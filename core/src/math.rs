//! The numeric building blocks of the forward pass. Reductions go through [`Kernels`]; with
//! [`Kernels::scalar`] every sum runs in the reference implementation's order, so results
//! match llama2.c's `run.c` built without fast-math.

use core::ops::Range;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::kernels::{Kernels, Q8Vector};
use crate::parallel::{Parallel, Split};
use crate::weights::{Matrix, Q8Matrix};

/// The RMSNorm scale `1 / sqrt(mean(x²) + eps)`.
fn rms_scale(k: Kernels, x: &[f32], eps: f32) -> f32 {
    let mut ss = k.dot(x, x);
    ss /= x.len() as f32;
    ss += eps;
    1.0 / libm::sqrtf(ss)
}

/// `out = weight * x / rms(x)`.
pub fn rmsnorm(k: Kernels, out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let scale = rms_scale(k, x, eps);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = w * (scale * v);
    }
}

/// RMSNorm of `x` in place.
pub fn rmsnorm_in_place(k: Kernels, x: &mut [f32], weight: &[f32], eps: f32) {
    let scale = rms_scale(k, x, eps);
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = w * (scale * *v);
    }
}

/// Softmax in place with the reference loops (the sampler's; attention uses
/// [`Kernels::softmax`]).
pub fn softmax(x: &mut [f32]) {
    Kernels::scalar().softmax(x);
}

/// Scratch of a matrix product: room for a quantized copy of its input (Q8 and ggml models
/// quantize activations too) and for a batch's outputs while they are grouped by rows.
#[derive(Debug)]
pub struct MatmulScratch<'b> {
    pub values: &'b mut [i8],
    pub scales: &'b mut [f32],
    /// As many floats as the widest batch output, `[tokens][max(dim, hidden_dim)]` (none
    /// for a single token, whose outputs stay in place).
    pub by_rows: &'b mut [f32],
}

/// Rows of a llama2.c Q8 matrix one inner loop keeps in cache while it visits every input
/// of a batch.
const ROWS_PER_BLOCK: usize = 16;

/// Rows of a batch's product per hand-out to a thread: whole tiles of every kernel (the
/// AMX tiles have 16 rows).
const ROWS_PER_SHARE: usize = 16;

/// Batches of at least this many inputs are split by whole inputs instead of rows: each
/// thread then reads every weight, but for enough inputs to hide it, and the outputs need no
/// regrouping. Measured on 128-token prompts, the split by rows was up to 15 % slower with
/// the AMX kernels and no faster with the f32 tiles; at 8 inputs (`--parallel 8`) it was
/// 1.4–1.7× faster.
const SPLIT_TOKENS_FROM: usize = 32;

/// A product of some rows of a matrix (the first range) times some inputs (the second),
/// written `[input][row]` into the slice.
type Product<'a> = dyn Fn(Range<usize>, Range<usize>, &mut [f32]) + Sync + 'a;

/// `out[b * R + r] = w_r · x_b` for a batch of `B = x.len() / w.cols()` inputs `x = [B][n]`
/// and the matrix's `R` rows (for one input, simply `out = w · x`). The work is handed out
/// through `parallel` (see [`hand_out`]), and the kernels read each weight row once for
/// all the inputs of a share (tiles of rows by inputs, rows outer). Every output is
/// computed exactly as for that input alone, so batching and threads never change
/// results.
///
/// For a Q8 matrix the inputs are first quantized into `scratch` in groups of the matrix's
/// group size, like llama2.c's `runq.c`; `scratch` must hold `x.len()` values and scales.
/// For a ggml matrix whose kernels take a quantized input (`quant::prepare`) they are
/// quantized the same way in groups of 32, the group sums after the scales.
pub fn matmul(
    k: Kernels,
    out: &mut [f32],
    x: &[f32],
    w: &Matrix<'_>,
    parallel: &impl Parallel,
    scratch: &mut MatmulScratch<'_>,
) {
    let n = w.cols();
    let shape = (x.len() / n, w.rows());
    let by_rows = &mut *scratch.by_rows;
    match *w {
        Matrix::F32 { data, cols } => {
            hand_out(parallel, out, by_rows, shape, n, &|rows, inputs, out| {
                let w = &data[rows.start * cols..rows.end * cols];
                k.matmul_f32(out, w, &x[inputs.start * n..inputs.end * n], cols);
            })
        }
        Matrix::Ggml(w) => {
            // Quantized once for all rows (if the kernels take it so), before the split.
            let input = crate::quant::prepare(k, w.ty, x, scratch.values, scratch.scales);
            hand_out(parallel, out, by_rows, shape, n, &|rows, inputs, out| {
                let count = inputs.len();
                let w = w.rows_slice(rows.start, rows.len());
                crate::quant::matmul(k, out, &w, &input.inputs(inputs, n), count);
            });
        }
        Matrix::Q8(w) => {
            let group = w.group;
            let values = &mut scratch.values[..x.len()];
            let scales = &mut scratch.scales[..x.len() / group];
            for ((x, q), s) in x
                .chunks_exact(n)
                .zip(values.chunks_exact_mut(n))
                .zip(scales.chunks_exact_mut(n / group))
            {
                k.quantize(x, group, q, s);
            }
            let (xq, xs) = (&*values, &*scales);
            hand_out(parallel, out, by_rows, shape, n, &|rows, inputs, out| {
                let width = rows.len();
                let input = |b: usize| {
                    let groups = b * n / group..(b + 1) * n / group;
                    (&xq[b * n..(b + 1) * n], &xs[groups])
                };
                // Several inputs: block by block of rows, each block read once for all.
                let block_rows = if inputs.len() == 1 {
                    width
                } else {
                    ROWS_PER_BLOCK
                };
                for first_row in rows.clone().step_by(block_rows) {
                    let count = block_rows.min(rows.end - first_row);
                    let block = w.rows_slice(first_row, count);
                    for (i, b) in inputs.clone().enumerate() {
                        let (xq, xs) = input(b);
                        let at = i * width + first_row - rows.start;
                        matvec_q8(k, &mut out[at..at + count], xq, xs, block);
                    }
                }
            });
        }
    }
}

/// Runs `product` over `out = [batch][rows]` (rows of `n` columns) in shares handed out
/// through `parallel`.
///
/// - One input: shares of whole blocks of four rows (the SIMD kernels' matrix–vector
///   tiles), contiguous in `out`.
/// - A small batch (below [`SPLIT_TOKENS_FROM`]): shares of [`ROWS_PER_SHARE`] rows, so that
///   each thread reads only its rows of the weights. Those rows are not contiguous in
///   `out`, so each share is written `[input][row]` into its own stretch of `out`, and the
///   stretches are put back in order through `by_rows` afterwards (one copy of the outputs,
///   against `n` multiply-adds per output). Unsplit (one thread, or too small a product to
///   share), the batch is written in place.
/// - A large batch: shares of whole inputs.
fn hand_out(
    parallel: &impl Parallel,
    out: &mut [f32],
    by_rows: &mut [f32],
    (batch, rows): (usize, usize),
    n: usize,
    product: &Product<'_>,
) {
    if batch == 1 {
        let split = Split {
            granule: 4,
            cost: 4 * n,
        };
        return parallel.for_each_chunk(out, split, &|first, chunk| {
            product(first..first + chunk.len(), 0..1, chunk)
        });
    }
    if batch >= SPLIT_TOKENS_FROM {
        let split = Split {
            granule: rows,
            cost: rows * n,
        };
        return parallel.for_each_chunk(out, split, &|first, chunk| {
            product(0..rows, first / rows..(first + chunk.len()) / rows, chunk)
        });
    }
    let share = batch * ROWS_PER_SHARE;
    let split = Split {
        granule: share,
        cost: share * n,
    };
    let total = out.len();
    let shared = AtomicBool::new(false);
    parallel.for_each_chunk(out, split, &|first, chunk| {
        if chunk.len() == total {
            return product(0..rows, 0..batch, chunk);
        }
        shared.store(true, Ordering::Relaxed);
        // `first` is a multiple of `share`: a whole number of shares before this chunk.
        let first_row = first / batch;
        for (i, stretch) in chunk.chunks_mut(share).enumerate() {
            let start = first_row + i * ROWS_PER_SHARE;
            product(start..start + stretch.len() / batch, 0..batch, stretch);
        }
    });
    // The dispatch returned, so every chunk is written (the pool waited for its workers).
    if shared.load(Ordering::Relaxed) {
        let by_rows = &mut by_rows[..total];
        by_rows.copy_from_slice(out);
        for (i, stretch) in by_rows.chunks(share).enumerate() {
            let width = stretch.len() / batch;
            let first_row = i * ROWS_PER_SHARE;
            for (b, part) in stretch.chunks_exact(width).enumerate() {
                out[b * rows + first_row..][..width].copy_from_slice(part);
            }
        }
    }
}

/// Q8 matrix times quantized vector.
fn matvec_q8(k: Kernels, out: &mut [f32], xq: &[i8], xs: &[f32], w: Q8Matrix<'_>) {
    let x = Q8Vector {
        values: xq,
        scales: xs,
    };
    k.q8_matvec(out, w, x);
}

/// `x += y`, the residual connection.
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::values;
    use std::vec;

    /// Hands out `parts` chunks of whole granules one after the other, as a pool of
    /// `parts` threads would split the work.
    struct InParts(usize);

    impl Parallel for InParts {
        fn for_each_chunk(
            &self,
            out: &mut [f32],
            split: Split,
            work: &(dyn Fn(usize, &mut [f32]) + Sync),
        ) {
            let granules = out.len().div_ceil(split.granule);
            let per_part = granules.div_ceil(self.0) * split.granule;
            for (i, chunk) in out.chunks_mut(per_part).enumerate() {
                work(i * per_part, chunk);
            }
        }
    }

    #[test]
    fn every_split_gives_each_input_s_own_products() {
        let (rows, cols) = (37, 20);
        let data = values(rows * cols, 1);
        let w = Matrix::F32 { data: &data, cols };
        let k = Kernels::native();
        // One input, small batches (split by rows, regrouped), a large one (by inputs).
        for batch in [1, 3, 8, SPLIT_TOKENS_FROM + 3] {
            let x = values(batch * cols, 2);
            let mut alone = vec![0.0; batch * rows];
            for (out, x) in alone.chunks_exact_mut(rows).zip(x.chunks_exact(cols)) {
                let mut by_rows = [];
                let mut scratch = MatmulScratch {
                    values: &mut [],
                    scales: &mut [],
                    by_rows: &mut by_rows,
                };
                matmul(k, out, x, &w, &crate::Serial, &mut scratch);
            }
            for parts in [1, 2, 3] {
                let mut out = vec![f32::NAN; batch * rows];
                let mut by_rows = vec![0.0; batch * rows];
                let mut scratch = MatmulScratch {
                    values: &mut [],
                    scales: &mut [],
                    by_rows: &mut by_rows,
                };
                matmul(k, &mut out, &x, &w, &InParts(parts), &mut scratch);
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&out), bits(&alone), "batch {batch}, {parts} parts");
            }
        }
    }
}
