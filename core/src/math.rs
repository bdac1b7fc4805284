//! Scalar kernels. Each sums in the reference implementation's order, so results match
//! llama2.c's `run.c` built without fast-math.

use crate::parallel::Parallel;
use crate::weights::Matrix;

/// Epsilon of RMSNorm in every llama2.c model.
const RMS_EPS: f32 = 1e-5;

/// The RMSNorm scale `1 / sqrt(mean(x²) + eps)`.
fn rms_scale(x: &[f32]) -> f32 {
    let mut ss = 0.0f32;
    for &v in x {
        ss += v * v;
    }
    ss /= x.len() as f32;
    ss += RMS_EPS;
    1.0 / libm::sqrtf(ss)
}

/// `out = weight * x / rms(x)`.
pub fn rmsnorm(out: &mut [f32], x: &[f32], weight: &[f32]) {
    let scale = rms_scale(x);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = w * (scale * v);
    }
}

/// RMSNorm of `x` in place.
pub fn rmsnorm_in_place(x: &mut [f32], weight: &[f32]) {
    let scale = rms_scale(x);
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

/// Dot product summed left to right.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        sum += x * y;
    }
    sum
}

/// `out = w · x` for a `[out.len()][x.len()]` matrix, rows handed out through `parallel`.
pub fn matmul(out: &mut [f32], x: &[f32], w: &Matrix<'_>, parallel: &impl Parallel) {
    parallel.for_each_chunk(out, &|first, chunk| {
        let rows = w.rows_slice(first, chunk.len());
        matvec(chunk, x, &rows);
    });
}

/// Single-threaded matrix-vector product over all rows of `w`.
fn matvec(out: &mut [f32], x: &[f32], w: &Matrix<'_>) {
    match *w {
        Matrix::F32 { data, cols } => {
            for (o, row) in out.iter_mut().zip(data.chunks_exact(cols)) {
                *o = dot(row, x);
            }
        }
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
