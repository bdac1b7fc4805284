//! Reference loops: sums in llama2.c's order.

use crate::weights::le_f32;

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for (&x, &y) in a.iter().zip(b) {
        sum += x * y;
    }
    sum
}

/// `out += Σ_t weights[t] · rows[t · stride..]`, each column summed in order.
pub fn weighted_rows(out: &mut [f32], weights: &[f32], rows: &[f32], stride: usize) {
    for (t, &a) in weights.iter().enumerate() {
        let row = &rows[t * stride..][..out.len()];
        for (o, &v) in out.iter_mut().zip(row) {
            *o += a * v;
        }
    }
}

/// SiLU-gated product `gate = silu(gate) · up`, as `run.c` computes it.
pub fn swiglu(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let mut val = *g;
        val *= 1.0 / (1.0 + libm::expf(-val));
        val *= u;
        *g = val;
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

/// Exact integer dot product of one group.
pub fn group_sum(w: &[i8], x: &[i8]) -> i32 {
    let mut sum = 0i32;
    for (&a, &b) in w.iter().zip(x) {
        sum += i32::from(a) * i32::from(b);
    }
    sum
}

/// `Σ_groups group_sum · w_scale · x_scale`, in group order like `runq.c`; `group_sum`
/// computes each group's exact integer dot product.
#[inline(always)]
pub fn q8_dot(
    w: &[i8],
    w_scales: &[u8],
    x: &[i8],
    x_scales: &[f32],
    group: usize,
    group_sum: impl Fn(&[i8], &[i8]) -> i32,
) -> f32 {
    let mut val = 0.0f32;
    let groups = w.chunks_exact(group).zip(w_scales.chunks_exact(4));
    for ((w, ws), (x, &xs)) in groups.zip(x.chunks_exact(group).zip(x_scales)) {
        val += group_sum(w, x) as f32 * le_f32(ws) * xs;
    }
    val
}

/// Softmax in place, shifted by the maximum for stability, summed in order.
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
