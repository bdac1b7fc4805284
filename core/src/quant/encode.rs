//! Encoders from `f32` to ggml's block types, for writing GGUF files (`llama2 convert`,
//! the synthetic benchmark models): F32, F16, BF16, Q8_0, Q4_0 and Q4_K.
//!
//! F16, BF16, Q8_0 and Q4_0 round as ggml's reference quantizers do, so their blocks are
//! the ones llama.cpp's tools write for the same values: F16 and BF16 round to nearest,
//! ties to even; Q8_0 scales by `max|x| / 127` and rounds half away from zero; Q4_0 scales
//! by the value of largest magnitude over -8 and truncates `x / d + 8.5`, capped at 15.
//!
//! Q4_K has no single right answer: its eight sub-blocks of 32 values each get a scale and
//! a minimum, themselves stored as 6-bit multiples of two f16 super-block factors. This
//! encoder searches each sub-block's step (a range of step counts around 15, each refined
//! by a least-squares fit of step and offset to the levels it picks), keeps the one with
//! the smallest squared error, then quantizes the scales and recomputes every level with
//! the scale and minimum as they will be decoded.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::error::{Buffer, Error, Result};
use crate::gguf::GgmlType;

/// Whether [`quantize`] encodes `ty`.
pub const fn encodes(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::Q8_0
            | GgmlType::Q4_0
            | GgmlType::Q4_K
    )
}

/// Encodes `values`, a whole number of `ty`'s blocks, into the first bytes of `out`, and
/// returns how many bytes that is (`values.len() / block.elements * block.bytes`).
///
/// Errors: [`Error::QuantizeUnsupportedType`] for a type [`encodes`] refuses;
/// [`Error::QuantizeNotWholeBlocks`] if `values` do not fill whole blocks;
/// [`Error::BufferTooSmall`] if `out` cannot hold the blocks.
pub fn quantize(ty: GgmlType, values: &[f32], out: &mut [u8]) -> Result<usize> {
    let block = ty
        .block()
        .filter(|_| encodes(ty))
        .ok_or(Error::QuantizeUnsupportedType { ggml_type: ty })?;
    if !values.len().is_multiple_of(block.elements) {
        return Err(Error::QuantizeNotWholeBlocks {
            ggml_type: ty,
            values: values.len(),
        });
    }
    let len = values.len() / block.elements * block.bytes;
    let actual = out.len();
    let out = out.get_mut(..len).ok_or(Error::BufferTooSmall {
        buffer: Buffer::Blocks,
        needed: len,
        actual,
    })?;
    let encode: fn(&[f32], &mut [u8]) = match ty {
        GgmlType::F32 => |v, o| put(o, 0, &first(v).to_le_bytes()),
        GgmlType::F16 => |v, o| put(o, 0, &f16_bytes(first(v))),
        GgmlType::BF16 => |v, o| put(o, 0, &bf16(first(v)).to_le_bytes()),
        GgmlType::Q8_0 => q8_0,
        GgmlType::Q4_0 => q4_0,
        _ => q4_k,
    };
    let blocks = values
        .chunks_exact(block.elements)
        .zip(out.chunks_exact_mut(block.bytes));
    for (v, o) in blocks {
        encode(v, o);
    }
    Ok(len)
}

/// The one value of a float type's block.
fn first(values: &[f32]) -> f32 {
    values.first().copied().unwrap_or_default()
}

/// Copies `bytes` into `out` at `at` (within the block, whose size the caller chose).
fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(slot) = out.get_mut(at..at + bytes.len()) {
        slot.copy_from_slice(bytes);
    }
}

/// `x` rounded to the nearest integer, halves away from zero (C's `roundf`, which ggml's
/// reference quantizers use).
fn round(x: f32) -> f32 {
    libm::roundf(x)
}

/// The little-endian IEEE binary16 nearest to `x` (ties to even).
fn f16_bytes(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

/// `x` through binary16 and back: the value a decoder sees for a stored f16.
fn through_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// The bfloat16 nearest to `x` (ties to even); a NaN stays a NaN, made quiet.
fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    // Adding just under half of the dropped part, plus one if the kept part is odd, rounds
    // to nearest with ties to even.
    let bias = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(bias) >> 16) as u16
}

/// Q8_0: an f16 scale `max|x| / 127`, then 32 `i8` values `round(x / scale)`.
fn q8_0(x: &[f32], out: &mut [u8]) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
    put(out, 0, &f16_bytes(d));
    for (o, v) in out.iter_mut().skip(2).zip(x) {
        // `as` saturates; |v * inverse| <= 127 for finite input anyway.
        *o = round(v * inverse) as i8 as u8;
    }
}

/// Q4_0: an f16 scale `d = m / -8` where `m` is the value of largest magnitude, then 16
/// bytes holding `x / d + 8` (truncated after adding 8.5, at most 15): value `j` in the low
/// nibble of byte `j`, value `j + 16` in its high nibble.
fn q4_0(x: &[f32], out: &mut [u8]) {
    let extreme = x
        .iter()
        .fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
    let d = extreme / -8.0;
    let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
    put(out, 0, &f16_bytes(d));
    let level = |v: f32| ((v * inverse + 8.5) as u8).min(15);
    let (low, high) = x.split_at(16);
    for ((o, &a), &b) in out.iter_mut().skip(2).zip(low).zip(high) {
        *o = level(a) | (level(b) << 4);
    }
}

/// Values per Q4_K sub-block, and sub-blocks per super-block.
const SUB: usize = 32;
const SUBS: usize = 8;

/// Q4_K: f16 `d` and `dmin`, twelve bytes of 6-bit sub-block scales and minimums, then 128
/// bytes of 4-bit levels; value `i` of sub-block `s` decodes to
/// `d * scale[s] * level - dmin * min[s]`.
fn q4_k(x: &[f32], out: &mut [u8]) {
    let mut steps = [0.0f32; SUBS];
    let mut mins = [0.0f32; SUBS];
    for ((sub, step), min) in x.chunks_exact(SUB).zip(&mut steps).zip(&mut mins) {
        (*step, *min) = fit_sub_block(sub);
    }
    let max_step = steps.iter().fold(0.0f32, |m, &s| m.max(s));
    let max_min = mins.iter().fold(0.0f32, |m, &s| m.max(s));
    // The factors as the decoder will read them, so the 6-bit multiples use what it sees.
    let d = through_f16(max_step / 63.0);
    let dmin = through_f16(max_min / 63.0);
    let six_bits = |value: f32, unit: f32| {
        if unit > 0.0 {
            round(value / unit).clamp(0.0, 63.0) as u8
        } else {
            0
        }
    };
    let scales = steps.map(|s| six_bits(s, d));
    let minimums = mins.map(|m| six_bits(m, dmin));
    put(out, 0, &f16_bytes(d));
    put(out, 2, &f16_bytes(dmin));
    put(out, 4, &pack_scales(&scales, &minimums));
    // Sub-blocks 2k and 2k + 1 share bytes 32k..32k + 32: low and high nibbles.
    let mut levels = [0u8; SUB];
    let mut subs = x.chunks_exact(SUB).zip(scales.iter().zip(&minimums));
    for qs in out.get_mut(16..).unwrap_or_default().chunks_exact_mut(SUB) {
        qs.fill(0);
        for half in 0..2 {
            let Some((values, (&scale, &min))) = subs.next() else {
                return;
            };
            let step = d * f32::from(scale);
            let offset = dmin * f32::from(min);
            for (l, &v) in levels.iter_mut().zip(values) {
                *l = if step > 0.0 {
                    round((v + offset) / step).clamp(0.0, 15.0) as u8
                } else {
                    0
                };
            }
            for (q, &l) in qs.iter_mut().zip(&levels) {
                *q |= l << (4 * half);
            }
        }
    }
}

/// The 12 bytes of eight 6-bit scales and minimums: bytes 0-3 hold scales 0-3 and bytes
/// 4-7 minimums 0-3 in their low six bits, with the top two bits of scales and minimums
/// 4-7 in their top bits; bytes 8-11 hold the low four bits of scale (low nibble) and
/// minimum (high nibble) 4-7.
fn pack_scales(scales: &[u8; SUBS], mins: &[u8; SUBS]) -> [u8; 12] {
    let [s0, s1, s2, s3, s4, s5, s6, s7] = *scales;
    let [m0, m1, m2, m3, m4, m5, m6, m7] = *mins;
    let low = |lo: u8, hi: u8| lo | ((hi >> 4) << 6);
    let rest = |s: u8, m: u8| (s & 0xf) | ((m & 0xf) << 4);
    [
        low(s0, s4),
        low(s1, s5),
        low(s2, s6),
        low(s3, s7),
        low(m0, m4),
        low(m1, m5),
        low(m2, m6),
        low(m3, m7),
        rest(s4, m4),
        rest(s5, m5),
        rest(s6, m6),
        rest(s7, m7),
    ]
}

/// The step and minimum (`x ≈ step * level - min`, levels 0..=15, `min >= 0`) that give one
/// sub-block the smallest squared error among the candidates: step counts from 14 to 16
/// across the sub-block's range (which always includes 0, since the minimum is never
/// negative), each refined by least squares over the levels it picks.
fn fit_sub_block(x: &[f32]) -> (f32, f32) {
    let lo = x.iter().fold(0.0f32, |m, &v| m.min(v));
    let hi = x.iter().fold(f32::MIN, |m, &v| m.max(v));
    if hi.partial_cmp(&lo) != Some(core::cmp::Ordering::Greater) {
        // All values equal and non-negative... or equal to a non-positive `lo`.
        return if lo < 0.0 {
            (0.0, -lo)
        } else {
            (hi / 15.0, 0.0)
        };
    }
    let mut best = (f32::INFINITY, (hi - lo) / 15.0, -lo);
    for k in 0..=20 {
        let steps = 14.0 + 0.1 * k as f32;
        let step = (hi - lo) / steps;
        let mut levels = [0.0f32; SUB];
        for (l, &v) in levels.iter_mut().zip(x) {
            *l = round((v - lo) / step).clamp(0.0, 15.0);
        }
        for (step, min) in [(step, -lo), least_squares(x, &levels)] {
            let error = squared_error(x, step, min);
            if error < best.0 {
                best = (error, step, min);
            }
        }
    }
    (best.1, best.2)
}

/// The step and minimum minimizing `Σ (step * level - min - x)²` for fixed levels, with
/// `min` kept non-negative (then the best step alone).
fn least_squares(x: &[f32], levels: &[f32]) -> (f32, f32) {
    let n = x.len() as f32;
    let (mut sl, mut sll, mut sx, mut slx) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
    for (&v, &l) in x.iter().zip(levels) {
        sl += l;
        sll += l * l;
        sx += v;
        slx += l * v;
    }
    let det = n * sll - sl * sl;
    if det > 0.0 {
        let step = (n * slx - sl * sx) / det;
        let offset = (sll * sx - sl * slx) / det;
        if step > 0.0 && offset <= 0.0 {
            return (step, -offset);
        }
    }
    // Offset 0: the step alone.
    let step = if sll > 0.0 { (slx / sll).max(0.0) } else { 0.0 };
    (step, 0.0)
}

/// `Σ (x - nearest representable value)²` for a step and minimum.
fn squared_error(x: &[f32], step: f32, min: f32) -> f32 {
    x.iter()
        .map(|&v| {
            let level = if step > 0.0 {
                round((v + min) / step).clamp(0.0, 15.0)
            } else {
                0.0
            };
            let e = step * level - min - v;
            e * e
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use std::vec;
    use std::vec::Vec;

    use super::*;
    use crate::quant::dequantize;

    /// Deterministic values uniform in [-0.5, 0.5) times `scale`, from a xorshift stream.
    fn random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }

    /// Encodes and decodes `x` as `ty`.
    fn round_trip(ty: GgmlType, x: &[f32]) -> Vec<f32> {
        let block = ty.block().unwrap();
        let mut bytes = vec![0u8; x.len() / block.elements * block.bytes];
        assert_eq!(quantize(ty, x, &mut bytes), Ok(bytes.len()));
        let mut y = vec![f32::NAN; x.len()];
        dequantize(ty, &bytes, &mut y);
        y
    }

    /// Inputs with the cases that matter: random values of several magnitudes, a block of
    /// zeros, a block of one repeated value, a block with a single large outlier.
    fn inputs(block: usize) -> Vec<Vec<f32>> {
        let mut outlier = random(block, 7, 0.01);
        outlier[block / 3] = 3.0;
        vec![
            random(4 * block, 1, 1.0),
            random(4 * block, 2, 1e-3),
            random(4 * block, 3, 200.0),
            vec![0.0; block],
            vec![-0.75; block],
            vec![0.5; block],
            outlier,
        ]
    }

    #[test]
    fn f16_and_bf16_round_to_nearest_even() {
        for x in inputs(1).concat() {
            assert_eq!(
                round_trip(GgmlType::F16, &[x]),
                [half::f16::from_f32(x).to_f32()]
            );
            let y = round_trip(GgmlType::BF16, &[x])[0];
            // The nearest bf16: within half a unit in the last place (8 bits kept).
            assert!((y - x).abs() <= x.abs() / 256.0, "{x} -> {y}");
        }
        // Ties go to the even neighbour; a carry rounds up into the exponent.
        assert_eq!(bf16(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(bf16(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(bf16(f32::from_bits(0x3fff_ffff)), 0x4000);
        assert_eq!(bf16(f32::INFINITY), 0x7f80);
        assert!(f32::from_bits(u32::from(bf16(f32::NAN)) << 16).is_nan());
        assert_eq!(round_trip(GgmlType::F32, &[1.25, -0.0]), [1.25, -0.0]);
    }

    #[test]
    fn q8_0_is_within_half_a_step() {
        for x in inputs(32) {
            let y = round_trip(GgmlType::Q8_0, &x);
            for (xs, ys) in x.chunks(32).zip(y.chunks(32)) {
                let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                // Half a step, plus the f16 rounding of the scale over up to 127 steps
                // (tiny scales are f16 subnormals, with less precision).
                let bound = d / 2.0 + 127.0 * (through_f16(d) - d).abs();
                for (a, b) in xs.iter().zip(ys) {
                    assert!((a - b).abs() <= bound * 1.0001, "{a} -> {b}");
                }
            }
        }
    }

    #[test]
    fn q8_0_rounds_like_the_reference() {
        // Scale 1 (max 127): 2.5 rounds away from zero to 3, -0.5 to -1.
        let mut x = vec![0.0f32; 32];
        x[..4].copy_from_slice(&[127.0, 2.5, -0.5, 0.49]);
        let mut out = [0u8; 34];
        quantize(GgmlType::Q8_0, &x, &mut out).unwrap();
        assert_eq!(out[..2], f16_bytes(1.0));
        assert_eq!(out[2..6], [127, 3, (-1i8) as u8, 0]);
    }

    #[test]
    fn q4_0_is_within_one_step() {
        for x in inputs(32) {
            let y = round_trip(GgmlType::Q4_0, &x);
            for (xs, ys) in x.chunks(32).zip(y.chunks(32)) {
                let amax = xs.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let d = amax / 8.0;
                // Half a step, except at the capped end (level 15 for +8 steps): one; plus
                // the f16 rounding of the scale over up to 8 steps.
                let scale_error = 8.0 * (through_f16(d) - d).abs();
                for (a, b) in xs.iter().zip(ys) {
                    assert!((a - b).abs() <= (d + scale_error) * 1.0001, "{a} -> {b}");
                }
                // The extreme value itself is exact up to the f16 scale.
                let i = (0..32)
                    .max_by(|&i, &j| xs[i].abs().total_cmp(&xs[j].abs()))
                    .unwrap();
                assert!((xs[i] - ys[i]).abs() <= scale_error * 1.0001);
            }
        }
    }

    #[test]
    fn q4_0_packs_like_the_reference() {
        // Extreme -8: d = 1; value j -> low nibble of byte j, value j + 16 -> high nibble.
        let mut x = vec![0.0f32; 32];
        x[0] = -8.0;
        x[1] = 7.0;
        x[16] = 7.6; // 16.1 truncated, capped at 15
        x[17] = -0.5; // 8.0 -> 8
        let mut out = [0u8; 18];
        quantize(GgmlType::Q4_0, &x, &mut out).unwrap();
        assert_eq!(out[..2], f16_bytes(1.0));
        assert_eq!(out[2], 15 << 4);
        assert_eq!(out[3], 15 | (8 << 4));
        assert_eq!(out[4], 8 | (8 << 4));
    }

    #[test]
    fn q4_k_is_close_and_uses_every_sub_block_scale() {
        for x in inputs(256) {
            let y = round_trip(GgmlType::Q4_K, &x);
            for (xs, ys) in x.chunks(256).zip(y.chunks(256)) {
                let lo = xs.iter().fold(0.0f32, |m, &v| m.min(v));
                let hi = xs.iter().fold(0.0f32, |m, &v| m.max(v));
                let step = (hi - lo) / 15.0;
                let mut squares = 0.0f64;
                for (a, b) in xs.iter().zip(ys) {
                    // One step of the super-block's range at most (the 6-bit scales and
                    // the search may give up half a step).
                    assert!(
                        (a - b).abs() <= step * 1.01 + 1e-30,
                        "{a} -> {b} (step {step})"
                    );
                    squares += f64::from(a - b).powi(2);
                }
                // Uniform rounding error is step / sqrt(12) ≈ 0.29 steps.
                let rms = (squares / 256.0).sqrt() as f32;
                assert!(rms <= 0.3 * step + 1e-30, "rms {rms} step {step}");
            }
        }
        // Sub-blocks of very different ranges: each gets its own scale and minimum.
        let x: Vec<f32> = (0..256)
            .map(|i| {
                let sub = i / 32;
                (i % 32) as f32 / 31.0 * (sub + 1) as f32 - sub as f32 * 0.25
            })
            .collect();
        let y = round_trip(GgmlType::Q4_K, &x);
        for (s, (xs, ys)) in x.chunks(32).zip(y.chunks(32)).enumerate() {
            let range = (s + 1) as f32;
            for (a, b) in xs.iter().zip(ys) {
                assert!((a - b).abs() <= range / 15.0, "sub-block {s}: {a} -> {b}");
            }
        }
    }

    #[test]
    fn q4_k_scales_pack_as_ggml_unpacks_them() {
        let scales = [1, 20, 33, 63, 0, 17, 48, 62];
        let mins = [63, 0, 5, 40, 59, 2, 31, 16];
        let q = pack_scales(&scales, &mins);
        // ggml's unpacking (get_scale_min_k4), written out.
        for j in 0..8 {
            let (s, m) = if j < 4 {
                (q[j] & 63, q[j + 4] & 63)
            } else {
                (
                    (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4),
                    (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
                )
            };
            assert_eq!((s, m), (scales[j], mins[j]), "sub-block {j}");
        }
    }

    #[test]
    fn refusals() {
        let mut out = [0u8; 64];
        assert_eq!(
            quantize(GgmlType::Q4_1, &[0.0; 32], &mut out),
            Err(Error::QuantizeUnsupportedType {
                ggml_type: GgmlType::Q4_1
            })
        );
        assert_eq!(
            quantize(GgmlType::Q8_0, &[0.0; 33], &mut out),
            Err(Error::QuantizeNotWholeBlocks {
                ggml_type: GgmlType::Q8_0,
                values: 33
            })
        );
        assert_eq!(
            quantize(GgmlType::Q8_0, &[0.0; 64], &mut out),
            Err(Error::BufferTooSmall {
                buffer: Buffer::Blocks,
                needed: 68,
                actual: 64
            })
        );
        assert_eq!(quantize(GgmlType::F16, &[], &mut []), Ok(0));
    }
}
