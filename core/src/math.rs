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

/// Rows of a weight matrix one inner loop keeps in cache while it visits every input of a
/// batch.
const ROWS_PER_BLOCK: usize = 16;

/// `out[r * B + b] = w_r · x_b` for a batch of `B = x.len() / w.cols()` inputs `x = [B][n]`
/// (for one input, simply `out = w · x`), rows handed out through `parallel`. Each weight row
/// is read once for the whole batch, and every output is computed exactly as for that input
/// alone, so batching never changes results.
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
    let n = w.cols();
    let batch = x.len() / n;
    // Whole blocks of four rows: the Q8 SIMD kernel works on four rows at a time.
    let split = Split {
        granule: 4 * batch,
        cost: 4 * n * batch,
    };
    match *w {
        Matrix::F32 { data, cols } => parallel.for_each_chunk(out, split, &|first, chunk| {
            let first_row = first / batch;
            let rows = &data[first_row * cols..(first_row + chunk.len() / batch) * cols];
            k.matmul_f32(chunk, rows, x, cols);
        }),
        Matrix::Ggml(w) => {
            // Quantized once for all rows (if the kernels take it so), before the split.
            let input = crate::quant::prepare(k, w.ty, x, scratch.values, scratch.scales);
            parallel.for_each_chunk(out, split, &|first, chunk| {
                let rows = w.rows_slice(first / batch, chunk.len() / batch);
                crate::quant::matmul(k, chunk, &rows, &input, batch);
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
                quantize(x, group, q, s);
            }
            let (xq, xs) = (&*values, &*scales);
            parallel.for_each_chunk(out, split, &|first, chunk| {
                let rows = w.rows_slice(first / batch, chunk.len() / batch);
                if batch == 1 {
                    return matvec_q8(k, chunk, xq, xs, rows);
                }
                let mut block_out = [0.0f32; ROWS_PER_BLOCK];
                for (block, outs) in chunk.chunks_mut(ROWS_PER_BLOCK * batch).enumerate() {
                    let count = outs.len() / batch;
                    let block_rows = rows.rows_slice(block * ROWS_PER_BLOCK, count);
                    let inputs = xq.chunks_exact(n).zip(xs.chunks_exact(n / group));
                    for (b, (xq, xs)) in inputs.enumerate() {
                        matvec_q8(k, &mut block_out[..count], xq, xs, block_rows);
                        for (i, &v) in block_out[..count].iter().enumerate() {
                            outs[i * batch + b] = v;
                        }
                    }
                }
            });
        }
    }
}

/// Symmetric per-group quantization to ±127, rounding half away from zero like `runq.c`.
/// An all-zero group gets scale 0 and zero values (the reference divides 0 by 0 there).
pub fn quantize(x: &[f32], group: usize, values: &mut [i8], scales: &mut [f32]) {
    let groups = x.chunks_exact(group).zip(values.chunks_exact_mut(group));
    for ((x, q), scale) in groups.zip(scales.iter_mut()) {
        let max = x.iter().fold(0.0f32, |m, v| {
            if libm::fabsf(*v) > m {
                libm::fabsf(*v)
            } else {
                m
            }
        });
        *scale = max / 127.0;
        for (q, &v) in q.iter_mut().zip(x) {
            *q = if *scale == 0.0 {
                0
            } else {
                libm::roundf(v / *scale) as i8
            };
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

/// SiLU-gated product of the feed-forward layer: `gate = silu(gate) * up`.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let mut val = *g;
        val *= 1.0 / (1.0 + libm::expf(-val));
        val *= u;
        *g = val;
    }
}

/// `x += y`, the residual connection.
pub fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
