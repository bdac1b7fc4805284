//! NEON (aarch64) products of one row of ggml blocks with an input vector: the same
//! arithmetic as `x86_ggml.rs` (integer sums per 32-value group against the quantized
//! input, then `isum · d_weight · d_input` in four f32 lanes), with 16-byte vectors.
//! NEON is part of the aarch64 baseline, so these are safe functions.
#![allow(unsafe_code)]

use core::arch::aarch64::*;

use super::Q8Blocks;
use crate::quant::k_scale_min;

/// The little-endian IEEE binary16 at `at` in `b`, as f32.
fn half<const N: usize>(b: &[u8; N], at: usize) -> f32 {
    match b.get(at..at + 2) {
        Some(&[lo, hi]) => half::f16::from_le_bytes([lo, hi]).to_f32(),
        _ => 0.0,
    }
}

/// Four i32 partial sums of `w · x` over 16 int8 pairs (products widened to i16, pairs
/// added into i32: no overflow for any int8 input).
fn dot16(w: int8x16_t, x: int8x16_t) -> int32x4_t {
    // SAFETY: NEON is always available on aarch64; no memory is touched.
    unsafe {
        let low = vmull_s8(vget_low_s8(w), vget_low_s8(x));
        let high = vmull_high_s8(w, x);
        vpadalq_s16(vpaddlq_s16(low), high)
    }
}

/// The 32 input values of group `at`, as two 16-lane vectors (zeros past the end).
fn load_group(groups: &[[i8; 32]], at: usize) -> (int8x16_t, int8x16_t) {
    let group = groups.get(at).copied().unwrap_or([0; 32]);
    // SAFETY: NEON is baseline; both loads read inside the 32-byte array.
    unsafe { (vld1q_s8(group.as_ptr()), vld1q_s8(group.as_ptr().add(16))) }
}

/// 16 bytes of a block from `at` (callers pass constant-bounded offsets inside it).
fn load16<const N: usize>(b: &[u8; N], at: usize) -> uint8x16_t {
    let mut bytes = [0u8; 16];
    if let Some(src) = b.get(at..at + 16) {
        bytes.copy_from_slice(src);
    }
    // SAFETY: NEON is baseline; the load reads the 16-byte local array.
    unsafe { vld1q_u8(bytes.as_ptr()) }
}

/// Eight f16 bit patterns as f32, exactly: the exponent and mantissa moved into f32 place
/// and scaled by 2^112 (which also normalises subnormals), infinities and NaNs rebuilt, the
/// sign put back. (The NEON f16 conversion intrinsics are not stable Rust.)
fn f16x4_to_f32(h: uint16x4_t) -> float32x4_t {
    // SAFETY: NEON is baseline; no memory is touched.
    unsafe {
        let h = vmovl_u16(h);
        let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
        let magnitude = vshlq_n_u32::<13>(vandq_u32(h, vdupq_n_u32(0x7FFF)));
        let scaled = vmulq_f32(
            vreinterpretq_f32_u32(magnitude),
            vdupq_n_f32(f32::from_bits(0x7780_0000)), // 2^112
        );
        let special = vceqq_u32(vandq_u32(h, vdupq_n_u32(0x7C00)), vdupq_n_u32(0x7C00));
        let inf_nan = vorrq_u32(magnitude, vdupq_n_u32(0x7F80_0000));
        let bits = vbslq_u32(special, inf_nan, vreinterpretq_u32_f32(scaled));
        vreinterpretq_f32_u32(vorrq_u32(bits, sign))
    }
}

/// F16 row times f32 input, eight values per step into two FMA accumulators.
pub fn f16_dot(row: &[u8], x: &[f32]) -> f32 {
    let w = row.as_chunks::<2>().0;
    let n = w.len().min(x.len());
    let (pw, px) = (w.as_ptr(), x.as_ptr());
    let mut i = 0;
    // SAFETY: NEON is baseline; `i + 8 <= n` keeps each load of eight halves (16 bytes) and
    // eight floats inside `row` and `x`; the halves are loaded as bytes (no alignment needed).
    let mut total = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 2];
        while i + 8 <= n {
            let h = vreinterpretq_u16_u8(vld1q_u8(pw.add(i).cast()));
            let a = f16x4_to_f32(vget_low_u16(h));
            let b = f16x4_to_f32(vget_high_u16(h));
            acc[0] = vfmaq_f32(acc[0], a, vld1q_f32(px.add(i)));
            acc[1] = vfmaq_f32(acc[1], b, vld1q_f32(px.add(i + 4)));
            i += 8;
        }
        vaddvq_f32(vaddq_f32(acc[0], acc[1]))
    };
    for (&h, &v) in w.iter().zip(x).take(n).skip(i) {
        total += half::f16::from_le_bytes(h).to_f32() * v;
    }
    total
}

/// Adds `isum · scale` to four f32 lanes.
fn add_scaled(acc: float32x4_t, isum: int32x4_t, scale: f32) -> float32x4_t {
    // SAFETY: NEON is baseline; no memory is touched.
    unsafe { vfmaq_n_f32(acc, vcvtq_f32_s32(isum), scale) }
}

/// Sum of four f32 lanes.
fn lanes_sum(v: float32x4_t) -> f32 {
    // SAFETY: NEON is baseline; no memory is touched.
    unsafe { vaddvq_f32(v) }
}

/// Q8_0 row (34-byte blocks: f16 scale, 32 × i8) times the quantized input.
pub fn q8_0_dot(row: &[u8], x: Q8Blocks<'_>) -> f32 {
    let groups = x.values.as_chunks::<32>().0;
    // SAFETY: NEON is baseline.
    let mut acc = unsafe { vdupq_n_f32(0.0) };
    for (i, (b, &xs)) in row.as_chunks::<34>().0.iter().zip(x.scales).enumerate() {
        let (x0, x1) = load_group(groups, i);
        // SAFETY: NEON is baseline; the reinterpretations touch no memory.
        let isum = unsafe {
            let w0 = vreinterpretq_s8_u8(load16(b, 2));
            let w1 = vreinterpretq_s8_u8(load16(b, 18));
            vaddq_s32(dot16(w0, x0), dot16(w1, x1))
        };
        acc = add_scaled(acc, isum, half(b, 0) * xs);
    }
    lanes_sum(acc)
}

/// Q4_0 row (18-byte blocks: f16 scale, 16 bytes of nibbles, value `q - 8`) times the
/// quantized input.
pub fn q4_0_dot(row: &[u8], x: Q8Blocks<'_>) -> f32 {
    let groups = x.values.as_chunks::<32>().0;
    // SAFETY: NEON is baseline.
    let mut acc = unsafe { vdupq_n_f32(0.0) };
    for (i, (b, &xs)) in row.as_chunks::<18>().0.iter().zip(x.scales).enumerate() {
        let (x0, x1) = load_group(groups, i);
        // SAFETY: NEON is baseline; no memory is touched beyond `load16`'s.
        let isum = unsafe {
            let packed = load16(b, 2);
            let eight = vdupq_n_s8(8);
            let low = vsubq_s8(
                vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0xF))),
                eight,
            );
            let high = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8::<4>(packed)), eight);
            vaddq_s32(dot16(low, x0), dot16(high, x1))
        };
        acc = add_scaled(acc, isum, half(b, 0) * xs);
    }
    lanes_sum(acc)
}

/// Q4_K row (144-byte super-blocks) times the quantized input: per 32 values
/// `d·sc·xs · Σ q·x - dmin·m·xs · Σ x`.
pub fn q4_k_dot(row: &[u8], x: Q8Blocks<'_>) -> f32 {
    let groups = x.values.as_chunks::<32>().0;
    // SAFETY: NEON is baseline.
    let mut acc = unsafe { vdupq_n_f32(0.0) };
    let mut minimums = 0.0f32;
    let supers = row.as_chunks::<144>().0.iter();
    let inputs = x
        .scales
        .as_chunks::<8>()
        .0
        .iter()
        .zip(x.sums.as_chunks::<8>().0);
    for (s, (b, (xs, xsum))) in supers.zip(inputs).enumerate() {
        let (d, dmin) = (half(b, 0), half(b, 2));
        let scales = b.get(4..16).unwrap_or_default();
        for (j, (xs, xsum)) in xs.iter().zip(xsum).enumerate() {
            let (sc, m) = k_scale_min(scales, j);
            let (x0, x1) = load_group(groups, 8 * s + j);
            let at = 16 + 32 * (j / 2);
            // SAFETY: NEON is baseline; no memory is touched beyond `load16`'s.
            let isum = unsafe {
                let (p0, p1) = (load16(b, at), load16(b, at + 16));
                let nibble = |p: uint8x16_t| {
                    if j % 2 == 0 {
                        vreinterpretq_s8_u8(vandq_u8(p, vdupq_n_u8(0xF)))
                    } else {
                        vreinterpretq_s8_u8(vshrq_n_u8::<4>(p))
                    }
                };
                vaddq_s32(dot16(nibble(p0), x0), dot16(nibble(p1), x1))
            };
            acc = add_scaled(acc, isum, d * f32::from(sc) * xs);
            minimums += dmin * f32::from(m) * xs * xsum;
        }
    }
    lanes_sum(acc) - minimums
}

/// The 16 values `q - 32` of Q6_K run from its low-nibble bytes and high-pair bytes.
fn q6_values(low: uint8x16_t, low_shift: u32, high: uint8x16_t, high_shift: u32) -> int8x16_t {
    // SAFETY: NEON is baseline; no memory is touched. Shifts by a run-time amount use
    // `vshlq_u8` with a negative count (a right shift).
    unsafe {
        let right = |v: uint8x16_t, by: u32| vshlq_u8(v, vdupq_n_s8(-(by as i8)));
        let l = vandq_u8(right(low, low_shift), vdupq_n_u8(0xF));
        let h = vshlq_n_u8::<4>(vandq_u8(right(high, high_shift), vdupq_n_u8(3)));
        vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(l, h)), vdupq_n_s8(32))
    }
}

/// Q6_K row (210-byte super-blocks) times the quantized input: per 16 values the integer
/// sum of `(q - 32) · x` times the run's signed scale, per 32 values times `d · xs`.
pub fn q6_k_dot(row: &[u8], x: Q8Blocks<'_>) -> f32 {
    let groups = x.values.as_chunks::<32>().0;
    // SAFETY: NEON is baseline.
    let mut acc = unsafe { vdupq_n_f32(0.0) };
    let supers = row.as_chunks::<210>().0.iter();
    for (s, (b, xs)) in supers.zip(x.scales.as_chunks::<8>().0).enumerate() {
        let d = half(b, 208);
        let scale = |c: usize| i32::from(b.get(192 + c).copied().unwrap_or(0) as i8);
        for (j, xs) in xs.iter().enumerate() {
            let (x0, x1) = load_group(groups, 8 * s + j);
            let runs = [(2 * j, x0), (2 * j + 1, x1)];
            // SAFETY: NEON is baseline; no memory is touched beyond `load16`'s.
            let isum = unsafe {
                let mut isum = vdupq_n_s32(0);
                for (c, xv) in runs {
                    let (low_at, low_shift, high_at, high_shift) = crate::quant::q6_k_place(c);
                    let w = q6_values(
                        load16(b, low_at),
                        low_shift,
                        load16(b, 128 + high_at),
                        high_shift,
                    );
                    isum = vmlaq_n_s32(isum, dot16(w, xv), scale(c));
                }
                isum
            };
            acc = add_scaled(acc, isum, d * xs);
        }
    }
    lanes_sum(acc)
}
