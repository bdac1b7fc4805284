//! AVX2+FMA products of one row of ggml blocks with an input vector.
//!
//! The quantized types take the input as [`Q8Blocks`] (int8 groups of 32, one per 32 weight
//! values): nibbles are split with a mask and a shift over a whole block, and the integer
//! products summed with `maddubs`/`madd`; each 32-value group then adds
//! `isum · d_weight · d_input` to eight f32 lanes, the minimum terms of Q4_K go through the
//! input's group sums. Each kernel comes twice: the plain one widens f16 values (F16
//! weights, block scales) with integer operations or the `half` crate, so it needs nothing
//! beyond AVX2 and FMA (the contract of every x86 kernel, and what Miri can interpret); the
//! `_f16c` one uses F16C's conversions, for processors that have it (all AVX2 ones in
//! practice). Both give the same values. [`super::Kernels`] only calls them when the
//! processor has the features.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::x86::horizontal_sum_ps;
use super::Q8Blocks;
use crate::quant::k_scale_min;

/// f32 bits of `2^-14`, the smallest normal f16: a subnormal f16 is rebuilt as
/// `2^-14 · (1 + m/1024)` and this subtracted, so no f32 arithmetic touches a subnormal
/// (x86 takes a slow microcode path for those).
const F16_MIN_NORMAL: u32 = 113 << 23;

/// The little-endian IEEE binary16 in `b`, as f32.
fn half(b: [u8; 2]) -> f32 {
    half::f16::from_le_bytes(b).to_f32()
}

/// [`half`] with F16C.
#[target_feature(enable = "avx2,fma,f16c")]
fn half_f16c(b: [u8; 2]) -> f32 {
    let bits = _mm_cvtsi32_si128(i32::from(u16::from_le_bytes(b)));
    _mm_cvtss_f32(_mm_cvtph_ps(bits))
}

/// Eight f16 bit patterns (in 16-bit lanes) as f32, exactly: exponent and mantissa moved
/// into f32 place and rebiased; infinities and NaNs get the full exponent, subnormals and
/// zeros are rebuilt by a subtraction (see [`F16_MIN_NORMAL`]); the sign is put back.
#[target_feature(enable = "avx2,fma")]
fn f16x8_to_f32(h: __m128i) -> __m256 {
    let h = _mm256_cvtepu16_epi32(h);
    let sign = _mm256_slli_epi32::<16>(_mm256_and_si256(h, _mm256_set1_epi32(0x8000)));
    let shifted = _mm256_slli_epi32::<13>(_mm256_and_si256(h, _mm256_set1_epi32(0x7FFF)));
    let exponent = _mm256_and_si256(shifted, _mm256_set1_epi32(0x0F80_0000));
    let rebias = _mm256_set1_epi32(112 << 23);
    let rebiased = _mm256_add_epi32(shifted, rebias);
    let special = _mm256_cmpeq_epi32(exponent, _mm256_set1_epi32(0x0F80_0000));
    let rebiased = _mm256_add_epi32(rebiased, _mm256_and_si256(special, rebias));
    let tiny = _mm256_cmpeq_epi32(exponent, _mm256_setzero_si256());
    let min_normal = _mm256_set1_epi32(F16_MIN_NORMAL as i32);
    let rebuilt = _mm256_sub_ps(
        _mm256_castsi256_ps(_mm256_add_epi32(rebiased, _mm256_set1_epi32(1 << 23))),
        _mm256_castsi256_ps(min_normal),
    );
    let bits = _mm256_blendv_epi8(rebiased, _mm256_castps_si256(rebuilt), tiny);
    _mm256_castsi256_ps(_mm256_or_si256(bits, sign))
}

/// The two bytes at `at` of a fixed-size block.
fn two<const N: usize>(b: &[u8; N], at: usize) -> [u8; 2] {
    match b.get(at..at + 2) {
        Some(&[lo, hi]) => [lo, hi],
        _ => [0, 0],
    }
}

/// Eight i32 sums of `w · x` over 32 int8 pairs, `|x| ≤ 127` (the input is quantized to
/// ±127): `maddubs(|w|, x · sign(w))` takes `|w|` as unsigned, so even `w = -128` is
/// exact, and its pair sums (at most 2 · 128 · 127) cannot saturate.
#[target_feature(enable = "avx2,fma")]
fn dot_i8(w: __m256i, x: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// Eight i32 sums of `q · x` over 32 pairs of unsigned `q ≤ 15` and signed `x`.
#[target_feature(enable = "avx2,fma")]
fn dot_u4(q: __m256i, x: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(q, x), _mm256_set1_epi16(1))
}

/// The 32 input values of group `at` of `x.values`, or zeros past its end.
#[target_feature(enable = "avx2,fma")]
fn load_group(groups: &[[i8; 32]], at: usize) -> __m256i {
    match groups.get(at) {
        // SAFETY: a 32-byte array is 32 readable bytes; the load is unaligned.
        Some(g) => unsafe { _mm256_loadu_si256(g.as_ptr().cast()) },
        None => _mm256_setzero_si256(),
    }
}

/// Defines a kernel twice over one body: `$name` (AVX2+FMA, block scales widened by
/// [`half`]) and `$f16c` (AVX2+FMA+F16C, by [`half_f16c`]); the values are the same.
macro_rules! with_f16c_variant {
    ($(#[$doc:meta])* $name:ident, $f16c:ident, $body:ident) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// The CPU must support AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn $name(row: &[u8], x: Q8Blocks<'_>) -> f32 {
            // SAFETY: forwarded from the caller.
            unsafe { $body(row, x, half) }
        }

        /// The same with F16C conversions of the block scales.
        ///
        /// # Safety
        /// The CPU must support AVX2, FMA and F16C.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub unsafe fn $f16c(row: &[u8], x: Q8Blocks<'_>) -> f32 {
            // SAFETY: forwarded from the caller.
            unsafe { $body(row, x, |b| half_f16c(b)) }
        }
    };
}

/// F16 row times f32 input: eight values widened at a time, four FMA accumulators.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn f16_dot(row: &[u8], x: &[f32]) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { f16_rows(row, x, |h| f16x8_to_f32(h)) }
}

/// The body of [`f16_dot`] and [`f16_dot_f16c`], inlined into each with its conversion.
#[inline(always)]
unsafe fn f16_rows(row: &[u8], x: &[f32], widen: impl Fn(__m128i) -> __m256) -> f32 {
    let w = row.as_chunks::<2>().0;
    let n = w.len().min(x.len());
    let (pw, px) = (w.as_ptr(), x.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // SAFETY (loads): `i + 32 <= n` or `i + 8 <= n`, so each load of eight halves (16
    // bytes) and eight floats stays inside `row` and `x`; the loads are unaligned.
    while i + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            let h = unsafe { _mm_loadu_si128(pw.add(i + 8 * k).cast()) };
            let v = unsafe { _mm256_loadu_ps(px.add(i + 8 * k)) };
            *acc = _mm256_fmadd_ps(widen(h), v, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        let h = unsafe { _mm_loadu_si128(pw.add(i).cast()) };
        let v = unsafe { _mm256_loadu_ps(px.add(i)) };
        acc[0] = _mm256_fmadd_ps(widen(h), v, acc[0]);
        i += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let mut total = horizontal_sum_ps(sum);
    for (&h, &v) in w.iter().zip(x).take(n).skip(i) {
        total += half(h) * v;
    }
    total
}

/// [`f16_dot`] converting with F16C's `vcvtph2ps` (the same values, one instruction).
///
/// # Safety
/// The CPU must support AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16_dot_f16c(row: &[u8], x: &[f32]) -> f32 {
    // SAFETY: forwarded from the caller.
    unsafe { f16_rows(row, x, |h| _mm256_cvtph_ps(h)) }
}

with_f16c_variant!(
    /// Q8_0 row (34-byte blocks: f16 scale, 32 × i8) times the quantized input.
    q8_0_dot,
    q8_0_dot_f16c,
    q8_0_body
);

/// The body of [`q8_0_dot`] and [`q8_0_dot_f16c`], inlined into each with its `half`.
#[inline(always)]
unsafe fn q8_0_body(row: &[u8], x: Q8Blocks<'_>, half: impl Fn([u8; 2]) -> f32) -> f32 {
    let groups = x.values.as_chunks::<32>().0;
    let mut acc = [_mm256_setzero_ps(); 2];
    let blocks = row.as_chunks::<34>().0.iter().zip(x.scales).enumerate();
    for (i, (b, &xs)) in blocks {
        // SAFETY: bytes 2..34 of the 34-byte block.
        let w = unsafe { _mm256_loadu_si256(b.as_ptr().add(2).cast()) };
        let isum = dot_i8(w, load_group(groups, i));
        let scale = _mm256_set1_ps(half(two(b, 0)) * xs);
        acc[i % 2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[i % 2]);
    }
    horizontal_sum_ps(_mm256_add_ps(acc[0], acc[1]))
}

with_f16c_variant!(
    /// Q4_0 row (18-byte blocks: f16 scale, 16 bytes of nibbles, value `q - 8`) times the
    /// quantized input.
    q4_0_dot,
    q4_0_dot_f16c,
    q4_0_body
);

/// The body of [`q4_0_dot`] and [`q4_0_dot_f16c`], inlined into each with its `half`.
#[inline(always)]
unsafe fn q4_0_body(row: &[u8], x: Q8Blocks<'_>, half: impl Fn([u8; 2]) -> f32) -> f32 {
    let groups = x.values.as_chunks::<32>().0;
    let (low4, eight) = (_mm_set1_epi8(0xF), _mm256_set1_epi8(8));
    let mut acc = [_mm256_setzero_ps(); 2];
    let blocks = row.as_chunks::<18>().0.iter().zip(x.scales).enumerate();
    for (i, (b, &xs)) in blocks {
        // SAFETY: bytes 2..18 of the 18-byte block.
        let packed = unsafe { _mm_loadu_si128(b.as_ptr().add(2).cast()) };
        let low = _mm_and_si128(packed, low4);
        let high = _mm_and_si128(_mm_srli_epi16::<4>(packed), low4);
        let w = _mm256_sub_epi8(_mm256_set_m128i(high, low), eight);
        let isum = dot_i8(w, load_group(groups, i));
        let scale = _mm256_set1_ps(half(two(b, 0)) * xs);
        acc[i % 2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[i % 2]);
    }
    horizontal_sum_ps(_mm256_add_ps(acc[0], acc[1]))
}

with_f16c_variant!(
    /// Q4_K row (144-byte super-blocks of 256: f16 `d` and `dmin`, eight 6-bit scale/minimum
    /// pairs, 128 bytes of nibbles) times the quantized input: per 32 values
    /// `d·sc·xs · Σ q·x - dmin·m·xs · Σ x`.
    q4_k_dot,
    q4_k_dot_f16c,
    q4_k_body
);

/// The body of [`q4_k_dot`] and [`q4_k_dot_f16c`], inlined into each with its `half`.
#[inline(always)]
unsafe fn q4_k_body(row: &[u8], x: Q8Blocks<'_>, half: impl Fn([u8; 2]) -> f32) -> f32 {
    let groups = x.values.as_chunks::<32>().0;
    let low4 = _mm256_set1_epi8(0xF);
    let mut acc = _mm256_setzero_ps();
    let mut minimums = 0.0f32;
    let supers = row.as_chunks::<144>().0.iter();
    let inputs = x
        .scales
        .as_chunks::<8>()
        .0
        .iter()
        .zip(x.sums.as_chunks::<8>().0);
    for (s, (b, (xs, xsum))) in supers.zip(inputs).enumerate() {
        let (d, dmin) = (half(two(b, 0)), half(two(b, 2)));
        let scales = b.get(4..16).unwrap_or_default();
        for (j, (xs, xsum)) in xs.iter().zip(xsum).enumerate() {
            let (sc, m) = k_scale_min(scales, j);
            // SAFETY: bytes 16 + 32·(j / 2) .. + 32 lie inside the 144-byte block (j < 8).
            let packed = unsafe { _mm256_loadu_si256(b.as_ptr().add(16 + 32 * (j / 2)).cast()) };
            let q = if j % 2 == 0 {
                _mm256_and_si256(packed, low4)
            } else {
                _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low4)
            };
            let isum = dot_u4(q, load_group(groups, 8 * s + j));
            let scale = _mm256_set1_ps(d * f32::from(sc) * xs);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc);
            minimums += dmin * f32::from(m) * xs * xsum;
        }
    }
    horizontal_sum_ps(acc) - minimums
}

with_f16c_variant!(
    /// Q6_K row (210-byte super-blocks of 256: 128 bytes of low nibbles, 64 of high 2-bit
    /// pairs, sixteen i8 scales, f16 `d`) times the quantized input: per 32 values the signed
    /// `q - 32` times `x`, pair sums weighted by the two 16-value scales with `madd`.
    q6_k_dot,
    q6_k_dot_f16c,
    q6_k_body
);

/// The body of [`q6_k_dot`] and [`q6_k_dot_f16c`], inlined into each with its `half`.
#[inline(always)]
unsafe fn q6_k_body(row: &[u8], x: Q8Blocks<'_>, half: impl Fn([u8; 2]) -> f32) -> f32 {
    let groups = x.values.as_chunks::<32>().0;
    let (low4, low2, bias) = (
        _mm256_set1_epi8(0xF),
        _mm256_set1_epi8(3),
        _mm256_set1_epi8(32),
    );
    let mut acc = [_mm256_setzero_ps(); 2];
    let supers = row.as_chunks::<210>().0.iter();
    for (s, (b, xs)) in supers.zip(x.scales.as_chunks::<8>().0).enumerate() {
        let d = half(two(b, 208));
        let scale = |c: usize| i16::from(b.get(192 + c).copied().unwrap_or(0) as i8);
        for (j, xs) in xs.iter().enumerate() {
            let (half_at, layer) = (j / 4, j % 4);
            let low_at = 64 * half_at + 32 * (layer % 2);
            // SAFETY: `low_at + 32 <= 128` and `128 + 32·half_at + 32 <= 192`, inside the
            // 210-byte block.
            let (low, high) = unsafe {
                (
                    _mm256_loadu_si256(b.as_ptr().add(low_at).cast()),
                    _mm256_loadu_si256(b.as_ptr().add(128 + 32 * half_at).cast()),
                )
            };
            let low = match layer / 2 {
                0 => _mm256_and_si256(low, low4),
                _ => _mm256_and_si256(_mm256_srli_epi16::<4>(low), low4),
            };
            let high = match layer {
                0 => high,
                1 => _mm256_srli_epi16::<2>(high),
                2 => _mm256_srli_epi16::<4>(high),
                _ => _mm256_srli_epi16::<6>(high),
            };
            let high = _mm256_slli_epi16::<4>(_mm256_and_si256(high, low2));
            let w = _mm256_sub_epi8(_mm256_or_si256(low, high), bias);
            let xv = load_group(groups, 8 * s + j);
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(w, xv));
            let scales = _mm256_set_m128i(
                _mm_set1_epi16(scale(2 * j + 1)),
                _mm_set1_epi16(scale(2 * j)),
            );
            let isum = _mm256_madd_epi16(pairs, scales);
            let factor = _mm256_set1_ps(d * xs);
            acc[j % 2] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), factor, acc[j % 2]);
        }
    }
    horizontal_sum_ps(_mm256_add_ps(acc[0], acc[1]))
}
