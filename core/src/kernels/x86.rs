//! AVX2+FMA loops for x86_64.
//!
//! Every function requires AVX2 and FMA; [`super::Kernels`] only calls them when the
//! processor has both.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::tile::{self, Lanes};
use super::Q8Vector;
use crate::weights::Q8Matrix;

/// Eight f32 lanes (AVX2+FMA).
#[derive(Clone, Copy)]
pub(super) struct Ymm(__m256);

impl Lanes for Ymm {
    const WIDTH: usize = 8;
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn zero() -> Self {
        Ymm(_mm256_setzero_ps())
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable floats at `p`.
        Ymm(unsafe { _mm256_loadu_ps(p) })
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn load_partial(p: *const f32, len: usize) -> Self {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(len as i32), lanes);
        // SAFETY: the caller guarantees `len` readable floats at `p`; masked-off lanes
        // are not read.
        Ymm(unsafe { _mm256_maskload_ps(p, mask) })
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn splat(v: f32) -> Self {
        Ymm(_mm256_set1_ps(v))
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees room for 8 floats at `p`.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Ymm(_mm256_fmadd_ps(a.0, b.0, acc.0))
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn add(a: Self, b: Self) -> Self {
        Ymm(_mm256_add_ps(a.0, b.0))
    }
    #[inline(always)]
    fn prefetch(p: *const f32) {
        // SAFETY: as for `Zmm`.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn sum(self) -> f32 {
        horizontal_sum_ps(self.0)
    }
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn sum4(v: [Self; 4]) -> [f32; 4] {
        // `horizontal_sum_ps`'s tree on four vectors: lanes l + l+4, then l + l+2, then
        // l + l+1, two vectors per register.
        let halves = |a: __m256, b: __m256| {
            _mm256_add_ps(
                _mm256_permute2f128_ps(a, b, 0x20),
                _mm256_permute2f128_ps(a, b, 0x31),
            )
        };
        let fold = |s: __m256| {
            let s = _mm256_add_ps(s, _mm256_permute_ps(s, 0b01_00_11_10));
            _mm256_add_ps(s, _mm256_permute_ps(s, 0b00_00_00_01))
        };
        let ab = fold(halves(v[0].0, v[1].0));
        let cd = fold(halves(v[2].0, v[3].0));
        let lane = |s: __m256, high: bool| {
            let half = if high {
                _mm256_extractf128_ps(s, 1)
            } else {
                _mm256_castps256_ps128(s)
            };
            _mm_cvtss_f32(half)
        };
        [
            lane(ab, false),
            lane(ab, true),
            lane(cd, false),
            lane(cd, true),
        ]
    }
}

/// Sixteen f32 lanes (AVX-512F); their sum adds the halves, then sums eight lanes as
/// [`Ymm`] does.
#[derive(Clone, Copy)]
pub(super) struct Zmm(__m512);

impl Lanes for Zmm {
    const WIDTH: usize = 16;
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn zero() -> Self {
        Zmm(_mm512_setzero_ps())
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable floats at `p`.
        Zmm(unsafe { _mm512_loadu_ps(p) })
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn load_partial(p: *const f32, len: usize) -> Self {
        let mask = ((1u32 << len) - 1) as __mmask16;
        // SAFETY: the caller guarantees `len < 16` readable floats at `p`; masked-off
        // lanes are not read.
        Zmm(unsafe { _mm512_maskz_loadu_ps(mask, p) })
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn splat(v: f32) -> Self {
        Zmm(_mm512_set1_ps(v))
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees room for 16 floats at `p`.
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self {
        Zmm(_mm512_fmadd_ps(a.0, b.0, acc.0))
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn add(a: Self, b: Self) -> Self {
        Zmm(_mm512_add_ps(a.0, b.0))
    }
    #[inline(always)]
    fn prefetch(p: *const f32) {
        // SAFETY: a prefetch reads nothing the program sees and never faults; SSE is part
        // of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) };
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn sum(self) -> f32 {
        let low = _mm512_castps512_ps256(self.0);
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(self.0), 1));
        horizontal_sum_ps(_mm256_add_ps(low, high))
    }
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    unsafe fn sum4(v: [Self; 4]) -> [f32; 4] {
        // `sum`'s tree on four vectors: lanes l + l+8, l + l+4, l + l+2, l + l+1, the
        // first steps on two vectors per register, the last on all four at once.
        let halves = |a: __m512, b: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4(a, b, 0b01_00_01_00),
                _mm512_shuffle_f32x4(a, b, 0b11_10_11_10),
            )
        };
        let (ab, cd) = (halves(v[0].0, v[1].0), halves(v[2].0, v[3].0));
        let s = _mm512_add_ps(
            _mm512_shuffle_f32x4(ab, cd, 0b10_00_10_00),
            _mm512_shuffle_f32x4(ab, cd, 0b11_01_11_01),
        );
        let s = _mm512_add_ps(s, _mm512_permute_ps(s, 0b01_00_11_10));
        let s = _mm512_add_ps(s, _mm512_permute_ps(s, 0b00_00_00_01));
        let mut lanes = [0.0f32; 16];
        // SAFETY: `lanes` holds 16 floats.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), s) };
        [lanes[0], lanes[4], lanes[8], lanes[12]]
    }
}

/// f32 dot product, one output of [`matmul`]'s tiles.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the features are enabled here.
    unsafe { tile::dot::<Ymm>(a, b) }
}

/// `out[t * rows + r] = rows[r] · inputs[t]` (see [`tile::matmul`]), in 4 × 2 tiles.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn matmul(out: &mut [f32], rows: &[f32], inputs: &[f32], cols: usize) {
    // SAFETY: the features are enabled here.
    unsafe { tile::matmul::<Ymm, 2>(out, rows, inputs, cols) }
}

/// `out[r] = rows[r · stride..][..x.len()] · x` (see [`tile::strided_rows_times`]).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn dot_rows(out: &mut [f32], rows: &[f32], stride: usize, x: &[f32]) {
    // SAFETY: the features are enabled here.
    unsafe { tile::strided_rows_times::<Ymm>(out, rows, stride, x) }
}

/// `out += Σ_t weights[t] · rows[t · stride..][..out.len()]` (see
/// [`tile::weighted_rows`]).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn weighted_rows(out: &mut [f32], weights: &[f32], rows: &[f32], stride: usize) {
    // SAFETY: the features are enabled here.
    unsafe { tile::weighted_rows::<Ymm>(out, weights, rows, stride) }
}

/// [`weighted_rows`] on 16-lane vectors.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn weighted_rows_512(out: &mut [f32], weights: &[f32], rows: &[f32], stride: usize) {
    // SAFETY: the features are enabled here.
    unsafe { tile::weighted_rows::<Zmm>(out, weights, rows, stride) }
}

/// [`super::scalar::quantize`] eight lanes at a time, for groups of a multiple of 8: the
/// same maximum (NaN never wins it), the same division, and rounding half away from zero
/// from the truncation and the exact remainder, so the same bytes.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn quantize(x: &[f32], group: usize, values: &mut [i8], scales: &mut [f32]) {
    let magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFF_FFFF));
    let groups = x.chunks_exact(group).zip(values.chunks_exact_mut(group));
    for ((x, q), scale) in groups.zip(scales.iter_mut()) {
        let mut max = _mm256_setzero_ps();
        for v in x.chunks_exact(8) {
            // SAFETY: the chunk holds 8 floats.
            let v = unsafe { _mm256_loadu_ps(v.as_ptr()) };
            // `max_ps(a, b)` is `b` when `a` is NaN, as the scalar fold keeps its maximum.
            max = _mm256_max_ps(_mm256_and_ps(v, magnitude), max);
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), max) };
        let max = lanes.iter().fold(0.0f32, |m, &v| if v > m { v } else { m });
        *scale = max / 127.0;
        if *scale == 0.0 {
            q.fill(0);
            continue;
        }
        let (divisor, half, one) = (
            _mm256_set1_ps(*scale),
            _mm256_set1_ps(0.5),
            _mm256_set1_ps(1.0),
        );
        for (v, q) in x.chunks_exact(8).zip(q.chunks_exact_mut(8)) {
            // SAFETY: the chunk holds 8 floats.
            let d = _mm256_div_ps(unsafe { _mm256_loadu_ps(v.as_ptr()) }, divisor);
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(d);
            let away =
                _mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_and_ps(_mm256_sub_ps(d, t), magnitude), half);
            let sign = _mm256_andnot_ps(magnitude, d);
            let rounded = _mm256_add_ps(t, _mm256_and_ps(away, _mm256_or_ps(one, sign)));
            // NaN becomes 0, as `f32 as i8` makes it; |rounded| <= 127 otherwise.
            let ordered = _mm256_cmp_ps::<_CMP_ORD_Q>(d, d);
            let ints = _mm256_cvttps_epi32(_mm256_and_ps(rounded, ordered));
            let words = _mm_packs_epi32(
                _mm256_castsi256_si128(ints),
                _mm256_extracti128_si256(ints, 1),
            );
            let bytes = _mm_packs_epi16(words, words);
            let mut out = [0i8; 16];
            // SAFETY: `out` holds 16 bytes.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), bytes) };
            q.copy_from_slice(&out[..8]);
        }
    }
}

/// SiLU-gated product `gate = silu(gate) · up`, eight lanes at a time with the
/// polynomial `exp` of [`softmax`]; a short tail goes through the same lanes padded, so
/// every element's value depends on that element alone (a batch's vectors, back to back,
/// get what each gets alone).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn swiglu(gate: &mut [f32], up: &[f32]) {
    let one = _mm256_set1_ps(1.0);
    let gated = |g: __m256, u: __m256| {
        let sigmoid = _mm256_div_ps(
            one,
            _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), g))),
        );
        _mm256_mul_ps(_mm256_mul_ps(g, sigmoid), u)
    };
    let mut gates = gate.chunks_exact_mut(8);
    let mut ups = up.chunks_exact(8);
    for (g, u) in (&mut gates).zip(&mut ups) {
        // SAFETY: both chunks hold 8 floats.
        unsafe {
            let v = gated(_mm256_loadu_ps(g.as_ptr()), _mm256_loadu_ps(u.as_ptr()));
            _mm256_storeu_ps(g.as_mut_ptr(), v);
        }
    }
    let (g, u) = (gates.into_remainder(), ups.remainder());
    let n = g.len().min(u.len());
    let (mut g8, mut u8) = ([0.0f32; 8], [0.0f32; 8]);
    g8[..n].copy_from_slice(&g[..n]);
    u8[..n].copy_from_slice(&u[..n]);
    // SAFETY: both arrays hold 8 floats.
    unsafe {
        let v = gated(_mm256_loadu_ps(g8.as_ptr()), _mm256_loadu_ps(u8.as_ptr()));
        _mm256_storeu_ps(g8.as_mut_ptr(), v);
    }
    g[..n].copy_from_slice(&g8[..n]);
}

/// [`dot`] on 16-lane vectors.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn dot_512(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: the features are enabled here.
    unsafe { tile::dot::<Zmm>(a, b) }
}

/// [`dot_rows`] on 16-lane vectors.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn dot_rows_512(out: &mut [f32], rows: &[f32], stride: usize, x: &[f32]) {
    // SAFETY: the features are enabled here.
    unsafe { tile::strided_rows_times::<Zmm>(out, rows, stride, x) }
}

/// [`matmul`] on 16-lane vectors, in 4 × 4 tiles.
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA.
#[target_feature(enable = "avx512f,avx2,fma")]
pub unsafe fn matmul_512(out: &mut [f32], rows: &[f32], inputs: &[f32], cols: usize) {
    // SAFETY: the features are enabled here.
    unsafe { tile::matmul::<Zmm, 4>(out, rows, inputs, cols) }
}

#[target_feature(enable = "avx2,fma")]
pub(super) fn horizontal_sum_ps(v: __m256) -> f32 {
    let pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let quad = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
    let single = _mm_add_ss(quad, _mm_shuffle_ps(quad, quad, 1));
    _mm_cvtss_f32(single)
}

#[target_feature(enable = "avx2,fma")]
fn horizontal_sum_epi32(v: __m256i) -> i32 {
    let pair = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let quad = _mm_add_epi32(pair, _mm_unpackhi_epi64(pair, pair));
    let single = _mm_add_epi32(quad, _mm_shuffle_epi32(quad, 1));
    _mm_cvtsi128_si32(single)
}

/// Exact integer dot product of one group of int8 values.
///
/// Uses `|x| · (w · sign(x))` so that `maddubs` (unsigned × signed) applies; with `|x| ≤ 127`
/// and `|w| ≤ 128` no 16-bit pair sum saturates (2 · 127 · 128 < 32768). Activations are
/// quantized to ±127, so `|x| ≤ 127` always holds.
///
/// # Safety
/// The CPU must support AVX2; `w` and `x` must have the same length.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn group_sum(w: &[i8], x: &[i8]) -> i32 {
    let n = w.len().min(x.len());
    let (pw, px) = (w.as_ptr(), x.as_ptr());
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    // SAFETY (loads): `i + 32 <= n` (or `i + 16 <= n` below) keeps them inside both slices.
    while i + 32 <= n {
        let wv = unsafe { _mm256_loadu_si256(pw.add(i).cast()) };
        let xv = unsafe { _mm256_loadu_si256(px.add(i).cast()) };
        let products = _mm256_maddubs_epi16(_mm256_sign_epi8(xv, xv), _mm256_sign_epi8(wv, xv));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(products, ones));
        i += 32;
    }
    let mut total = horizontal_sum_epi32(acc);
    if i + 16 <= n {
        let wv = unsafe { _mm_loadu_si128(pw.add(i).cast()) };
        let xv = unsafe { _mm_loadu_si128(px.add(i).cast()) };
        let products = _mm_maddubs_epi16(_mm_sign_epi8(xv, xv), _mm_sign_epi8(wv, xv));
        let sums = _mm_madd_epi16(products, _mm_set1_epi16(1));
        let pair = _mm_add_epi32(sums, _mm_unpackhi_epi64(sums, sums));
        total += _mm_cvtsi128_si32(_mm_add_epi32(pair, _mm_shuffle_epi32(pair, 1)));
        i += 16;
    }
    for j in i..n {
        total += i32::from(w[j]) * i32::from(x[j]);
    }
    total
}

/// Adds the integer products of one 32-value chunk of a weight row with the chunk of `x` to
/// eight i32 partial sums. `x_abs` is `|x|`; `w · sign(x)` is formed here. With `VNNI` one
/// `vpdpbusd` does what `maddubs` + `madd` + `add` do (the sums are the same integers).
#[inline(always)]
unsafe fn add_chunk_products<const VNNI: bool>(
    sum: __m256i,
    w: *const i8,
    x: __m256i,
    x_abs: __m256i,
    ones: __m256i,
) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes at `w`, AVX2 support, and with
    // `VNNI` AVX512-VNNI and AVX512-VL support.
    unsafe {
        let signed_w = _mm256_sign_epi8(_mm256_loadu_si256(w.cast()), x);
        if VNNI {
            _mm256_dpbusd_epi32(sum, x_abs, signed_w)
        } else {
            _mm256_add_epi32(
                sum,
                _mm256_madd_epi16(_mm256_maddubs_epi16(x_abs, signed_w), ones),
            )
        }
    }
}

/// How far ahead, in rows, the Q8 kernel prefetches weights.
const PREFETCH_ROWS: usize = 8;

/// Q8 matrix-vector product for groups that are a multiple of 32, four rows at a time.
///
/// Each row's result is `Σ_groups (float)isum · w_scale · x_scale` accumulated in group
/// order with separate multiplies and adds (lane-wise, no FMA), exactly like the scalar
/// loop, so results are bit-identical to [`super::scalar::q8_dot`] whatever the blocking.
///
/// # Safety
/// The CPU must support AVX2; `w.group % 32 == 0` and `w.fits(out.len(), &x)`.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn q8_matvec_32(out: &mut [f32], w: Q8Matrix<'_>, x: Q8Vector<'_>) {
    // SAFETY: forwarded from the caller.
    unsafe { q8_rows::<false>(out, w, x) }
}

/// [`q8_matvec_32`] with AVX512-VNNI dot products: the same integers, so the same bits.
///
/// # Safety
/// The CPU must support AVX2, AVX512-VNNI and AVX512-VL; `w.group % 32 == 0` and
/// `w.fits(out.len(), &x)`.
#[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
pub unsafe fn q8_matvec_32_vnni(out: &mut [f32], w: Q8Matrix<'_>, x: Q8Vector<'_>) {
    // SAFETY: forwarded from the caller.
    unsafe { q8_rows::<true>(out, w, x) }
}

/// The body of [`q8_matvec_32`] and [`q8_matvec_32_vnni`], inlined into each.
#[inline(always)]
unsafe fn q8_rows<const VNNI: bool>(out: &mut [f32], w: Q8Matrix<'_>, x: Q8Vector<'_>) {
    let Q8Matrix {
        values,
        scales,
        group,
        cols,
    } = w;
    let (x, x_scales) = (x.values, x.scales);
    let groups = cols / group;
    let ones = _mm256_set1_epi16(1);
    let rows = out.len();
    let mut r = 0;
    while r + 4 <= rows {
        let mut acc = _mm_setzero_ps();
        for (g, &x_scale) in x_scales.iter().enumerate() {
            let mut sums = [_mm256_setzero_si256(); 4];
            let mut c = g * group;
            while c < (g + 1) * group {
                // SAFETY: `c + 32 <= cols`, inside `x` and inside each of the four rows.
                unsafe {
                    let xv = _mm256_loadu_si256(x.as_ptr().add(c).cast());
                    let x_abs = _mm256_sign_epi8(xv, xv);
                    for (k, sum) in sums.iter_mut().enumerate() {
                        let w = values.as_ptr().add((r + k) * cols + c);
                        *sum = add_chunk_products::<VNNI>(*sum, w, xv, x_abs, ones);
                        // Four interleaved short rows defeat the hardware prefetcher: ask
                        // for the same place PREFETCH_ROWS rows on. A prefetch never
                        // faults, so running past the matrix's end is harmless.
                        let ahead = w.wrapping_add(PREFETCH_ROWS * cols);
                        _mm_prefetch::<_MM_HINT_T0>(ahead);
                    }
                }
                c += 32;
            }
            // Four horizontal sums at once: lane k of the result is row r + k.
            let ab = _mm256_hadd_epi32(sums[0], sums[1]);
            let cd = _mm256_hadd_epi32(sums[2], sums[3]);
            let abcd = _mm256_hadd_epi32(ab, cd);
            let isum = _mm_add_epi32(
                _mm256_castsi256_si128(abcd),
                _mm256_extracti128_si256(abcd, 1),
            );
            // SAFETY: `w.fits` guarantees 4 bytes of scale per group of every row; x86 is
            // little-endian like the file, and the read is unaligned-safe.
            let w_scale = |k: usize| unsafe {
                let at = 4 * ((r + k) * groups + g);
                scales.as_ptr().add(at).cast::<f32>().read_unaligned()
            };
            let ws = _mm_setr_ps(w_scale(0), w_scale(1), w_scale(2), w_scale(3));
            let term = _mm_mul_ps(_mm_mul_ps(_mm_cvtepi32_ps(isum), ws), _mm_set1_ps(x_scale));
            acc = _mm_add_ps(acc, term);
        }
        // SAFETY: `r + 4 <= out.len()`.
        unsafe { _mm_storeu_ps(out.as_mut_ptr().add(r), acc) };
        r += 4;
    }
    for (k, o) in out.iter_mut().enumerate().skip(r) {
        let row = &values[k * cols..(k + 1) * cols];
        let row_scales = &scales[4 * k * groups..4 * (k + 1) * groups];
        // SAFETY: AVX2 is available, as the caller guarantees.
        *o = super::scalar::q8_dot(row, row_scales, x, x_scales, group, |w, x| unsafe {
            group_sum(w, x)
        });
    }
}

/// `e^x` for eight lanes: `x = n·ln2 + r` with `|r| ≤ ln2/2`, a degree-6 polynomial for
/// `e^r` (relative error below 2 ulp over the range softmax uses), then `· 2^n` through the
/// exponent bits. Inputs below -87 flush to 0, as `expf` underflows there.
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    let x = _mm256_max_ps(x, _mm256_set1_ps(-87.0));
    let x = _mm256_min_ps(x, _mm256_set1_ps(88.0));
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(core::f32::consts::LOG2_E),
    ));
    // r = x - n·ln2, with ln2 split in two for precision (Cody-Waite).
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_145_75), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428_606_8e-6), r);
    let mut p = _mm256_set1_ps(1.0 / 720.0);
    for c in [1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0, 1.0] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let scale = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    )));
    let below = _mm256_cmp_ps::<_CMP_LE_OQ>(x, _mm256_set1_ps(-87.0));
    _mm256_andnot_ps(below, _mm256_mul_ps(p, scale))
}

/// Softmax in place: the maximum, `e^(x - max)` and its sum eight lanes at a time, then a
/// division by the sum.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub unsafe fn softmax(x: &mut [f32]) {
    let n = x.len();
    let Some(&first) = x.first() else { return };
    let max = x.iter().fold(first, |m, &v| if v > m { v } else { m });
    let ptr = x.as_mut_ptr();
    let shift = _mm256_set1_ps(max);
    let mut sums = _mm256_setzero_ps();
    let mut i = 0;
    // SAFETY (loads and stores): `i + 8 <= n` keeps them inside `x`.
    while i + 8 <= n {
        let e = exp8(_mm256_sub_ps(unsafe { _mm256_loadu_ps(ptr.add(i)) }, shift));
        unsafe { _mm256_storeu_ps(ptr.add(i), e) };
        sums = _mm256_add_ps(sums, e);
        i += 8;
    }
    let mut sum = horizontal_sum_ps(sums);
    for v in &mut x[i..] {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    let divisor = _mm256_set1_ps(sum);
    // Taken again: the `&mut x[i..]` above reborrowed all of `x`, which invalidates
    // pointers derived before it (Stacked Borrows; Miri reports the old one's use).
    let ptr = x.as_mut_ptr();
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: as above.
        unsafe {
            let v = _mm256_loadu_ps(ptr.add(i));
            _mm256_storeu_ps(ptr.add(i), _mm256_div_ps(v, divisor));
        }
        i += 8;
    }
    for v in &mut x[i..] {
        *v /= sum;
    }
}
