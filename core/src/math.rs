//! The numeric building blocks of the forward pass. Reductions go through [`Kernels`]; with
//! [`Kernels::scalar`] every sum runs in the reference implementation's order, so results
//! match llama2.c's `run.c` built without fast-math.

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

/// Room for a quantized copy of a matmul input (Q8 models quantize activations too).
#[derive(Debug)]
pub struct QuantScratch<'b> {
    pub values: &'b mut [i8],
    pub scales: &'b mut [f32],
}

/// Rows of a llama2.c Q8 matrix one inner loop keeps in cache while it visits every input
/// of a batch.
const ROWS_PER_BLOCK: usize = 16;

/// `out[b * R + r] = w_r · x_b` for a batch of `B = x.len() / w.cols()` inputs `x = [B][n]`
/// and the matrix's `R` rows (for one input, simply `out = w · x`). One input's rows are
/// handed out through `parallel`; a batch is split by whole inputs, and the kernels read
/// each weight row once for all the inputs of a share (tiles of rows by inputs, rows
/// outer). Every output is computed exactly as for that input alone, so batching and
/// threads never change results.
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
    scratch: &mut QuantScratch<'_>,
) {
    let (n, rows) = (w.cols(), w.rows());
    let batch = x.len() / n;
    let split = if batch == 1 {
        // Whole blocks of four rows: the SIMD kernels work on four rows at a time.
        Split {
            granule: 4,
            cost: 4 * n,
        }
    } else {
        Split {
            granule: rows,
            cost: rows * n,
        }
    };
    // The rows and the inputs that the chunk of `len` outputs from `first` covers.
    let share = move |first: usize, len: usize| {
        if batch == 1 {
            (first..first + len, 0..1)
        } else {
            (0..rows, first / rows..(first + len) / rows)
        }
    };
    match *w {
        Matrix::F32 { data, cols } => parallel.for_each_chunk(out, split, &|first, chunk| {
            let (rows, inputs) = share(first, chunk.len());
            let w = &data[rows.start * cols..rows.end * cols];
            k.matmul_f32(chunk, w, &x[inputs.start * n..inputs.end * n], cols);
        }),
        Matrix::Ggml(w) => {
            // Quantized once for all rows (if the kernels take it so), before the split.
            let input = crate::quant::prepare(k, w.ty, x, scratch.values, scratch.scales);
            parallel.for_each_chunk(out, split, &|first, chunk| {
                let (rows, inputs) = share(first, chunk.len());
                let count = inputs.len();
                let w = w.rows_slice(rows.start, rows.len());
                crate::quant::matmul(k, chunk, &w, &input.inputs(inputs, n), count);
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
            parallel.for_each_chunk(out, split, &|first, chunk| {
                let (rows, inputs) = share(first, chunk.len());
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
                        matvec_q8(k, &mut chunk[at..at + count], xq, xs, block);
                    }
                }
            });
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
