//! The numeric building blocks of the forward pass. Reductions go through [`Kernels`]; with
//! [`Kernels::scalar`] every sum runs in the reference implementation's order, so results
//! match llama2.c's `run.c` built without fast-math.

use crate::kernels::{Kernels, Q8Rows, Q8Vector};
use crate::parallel::Parallel;
use crate::weights::Matrix;

/// Epsilon of RMSNorm in every llama2.c model.
const RMS_EPS: f32 = 1e-5;

/// The RMSNorm scale `1 / sqrt(mean(x²) + eps)`.
fn rms_scale(k: Kernels, x: &[f32]) -> f32 {
    let mut ss = k.dot(x, x);
    ss /= x.len() as f32;
    ss += RMS_EPS;
    1.0 / libm::sqrtf(ss)
}

/// `out = weight * x / rms(x)`.
pub fn rmsnorm(k: Kernels, out: &mut [f32], x: &[f32], weight: &[f32]) {
    let scale = rms_scale(k, x);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = w * (scale * v);
    }
}

/// RMSNorm of `x` in place.
pub fn rmsnorm_in_place(k: Kernels, x: &mut [f32], weight: &[f32]) {
    let scale = rms_scale(k, x);
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = w * (scale * *v);
    }
}

/// Softmax in place, shifted by the maximum for stability.
pub fn softmax(x: &mut [f32]) {
    let Some(&first) = x.first() else { return };
    let max = x.iter().fold(first, |m, &v| if v > m { v } else { m });
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Room for a quantized copy of a matmul input (Q8 models quantize activations too).
#[derive(Debug)]
pub struct QuantScratch<'b> {
    pub values: &'b mut [i8],
    pub scales: &'b mut [f32],
}

/// `out = w · x` for a `[out.len()][x.len()]` matrix, rows handed out through `parallel`.
///
/// For a Q8 matrix, `x` is first quantized into `scratch` in groups of the matrix's group
/// size, like llama2.c's `runq.c`; `scratch` must hold `x.len()` values and scales.
pub fn matmul(
    k: Kernels,
    out: &mut [f32],
    x: &[f32],
    w: &Matrix<'_>,
    parallel: &impl Parallel,
    scratch: &mut QuantScratch<'_>,
) {
    match *w {
        Matrix::F32 { .. } => parallel.for_each_chunk(out, &|first, chunk| {
            if let Matrix::F32 { data, cols } = w.rows_slice(first, chunk.len()) {
                for (o, row) in chunk.iter_mut().zip(data.chunks_exact(cols)) {
                    *o = k.dot(row, x);
                }
            }
        }),
        Matrix::Q8 { group, .. } => {
            let n = x.len();
            let values = &mut scratch.values[..n];
            let scales = &mut scratch.scales[..n / group];
            quantize(x, group, values, scales);
            let (xq, xs) = (&*values, &*scales);
            parallel.for_each_chunk(out, &|first, chunk| {
                matvec_q8(k, chunk, xq, xs, &w.rows_slice(first, chunk.len()));
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
fn matvec_q8(k: Kernels, out: &mut [f32], xq: &[i8], xs: &[f32], w: &Matrix<'_>) {
    if let Matrix::Q8 {
        values,
        scales,
        group,
        cols,
    } = *w
    {
        let rows = Q8Rows {
            values,
            scales,
            group,
            cols,
        };
        let x = Q8Vector {
            values: xq,
            scales: xs,
        };
        k.q8_matvec(out, rows, x);
    }
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
