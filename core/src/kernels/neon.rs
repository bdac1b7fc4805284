//! NEON loops for aarch64, where NEON is part of the base architecture.
#![allow(unsafe_code)]

use core::arch::aarch64::*;

use super::tile::{self, Lanes};

/// Four f32 lanes.
#[derive(Clone, Copy)]
pub(super) struct Q(float32x4_t);

impl Lanes for Q {
    const WIDTH: usize = 4;
    #[inline]
    unsafe fn zero() -> Self {
        Q(vdupq_n_f32(0.0))
    }
    #[inline]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 4 readable floats at `p`.
        Q(unsafe { vld1q_f32(p) })
    }
    #[inline]
    unsafe fn load_partial(p: *const f32, len: usize) -> Self {
        let mut lanes = [0.0f32; 4];
        for (i, lane) in lanes.iter_mut().enumerate().take(len) {
            // SAFETY: the caller guarantees `len` readable floats at `p`.
            *lane = unsafe { *p.add(i) };
        }
        // SAFETY: `lanes` holds 4 floats.
        Q(unsafe { vld1q_f32(lanes.as_ptr()) })
    }
    #[inline]
    unsafe fn splat(v: f32) -> Self {
        Q(vdupq_n_f32(v))
    }
    #[inline]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees room for 4 floats at `p`.
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Q(vfmaq_f32(acc.0, a.0, b.0))
    }
    #[inline]
    unsafe fn add(a: Self, b: Self) -> Self {
        Q(vaddq_f32(a.0, b.0))
    }
    #[inline]
    unsafe fn sum(self) -> f32 {
        let pairs = vpaddq_f32(self.0, self.0);
        vgetq_lane_f32::<0>(vpaddq_f32(pairs, pairs))
    }
    #[inline]
    unsafe fn sum4(v: [Self; 4]) -> [f32; 4] {
        // `sum`'s pairwise tree on four vectors at once.
        let sums = vpaddq_f32(vpaddq_f32(v[0].0, v[1].0), vpaddq_f32(v[2].0, v[3].0));
        let mut lanes = [0.0f32; 4];
        // SAFETY: `lanes` holds 4 floats.
        unsafe { vst1q_f32(lanes.as_mut_ptr(), sums) };
        lanes
    }
}

/// f32 dot product, one output of [`matmul`]'s tiles.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: NEON is always available on aarch64.
    unsafe { tile::dot::<Q>(a, b) }
}

/// `out[r] = rows[r · stride..][..x.len()] · x` (see [`tile::strided_rows_times`]).
pub fn dot_rows(out: &mut [f32], rows: &[f32], stride: usize, x: &[f32]) {
    // SAFETY: NEON is always available on aarch64.
    unsafe { tile::strided_rows_times::<Q>(out, rows, stride, x) }
}

/// `out += Σ_t weights[t] · rows[t · stride..][..out.len()]` (see
/// [`tile::weighted_rows`]).
pub fn weighted_rows(out: &mut [f32], weights: &[f32], rows: &[f32], stride: usize) {
    // SAFETY: NEON is always available on aarch64.
    unsafe { tile::weighted_rows::<Q>(out, weights, rows, stride) }
}

/// `out[t * rows + r] = rows[r] · inputs[t]` (see [`tile::matmul`]), in 4 × 4 tiles.
pub fn matmul(out: &mut [f32], rows: &[f32], inputs: &[f32], cols: usize) {
    // SAFETY: NEON is always available on aarch64.
    unsafe { tile::matmul::<Q, 4>(out, rows, inputs, cols) }
}

/// Exact integer dot product of one group of int8 values.
pub fn group_sum(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len());
    let (pw, px) = (w.as_ptr(), x.as_ptr());
    let mut i = 0;
    // SAFETY: NEON is always available on aarch64; every 16-byte load is at `i + 16 <= n`
    // inside both slices. Products of int8 fit int16; pairwise accumulation into int32
    // (`vpadalq_s16`) cannot overflow for any group a model can address.
    let mut total = unsafe {
        let mut acc = vdupq_n_s32(0);
        while i + 16 <= n {
            let wv = vld1q_s8(pw.add(i));
            let xv = vld1q_s8(px.add(i));
            let low = vmull_s8(vget_low_s8(wv), vget_low_s8(xv));
            let high = vmull_s8(vget_high_s8(wv), vget_high_s8(xv));
            acc = vpadalq_s16(acc, low);
            acc = vpadalq_s16(acc, high);
            i += 16;
        }
        vaddvq_s32(acc)
    };
    for j in i..n {
        total += i32::from(w[j]) * i32::from(x[j]);
    }
    total
}
