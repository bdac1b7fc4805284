//! AVX2+FMA products of ggml block rows with an input vector.
//!
//! F16 rows take the f32 input, one row at a time. The quantized types take the input as
//! [`Q8Blocks`] (int8 groups of 32, one per 32 weight values) and are computed
//! [`ROWS`] rows at a time ([`q8_matmul`]; Q8_0 and Q4_0 also [`INPUTS`] inputs at a
//! time, for prompts and parallel sequences), each load of an input group (and what is
//! derived from it, such as the offsets of Q4_0's and Q6_K's unsigned values) shared by
//! the rows, and each load and unpacking of a weight block shared by the inputs: nibbles are split with a mask and a shift over a whole block, the integer sums
//! taken with `maddubs`/`madd` or AVX512-VNNI's `vpdpbusd`, and each group adds
//! `isum · d_weight · d_input` to eight f32 lanes per row with one FMA; the lanes are
//! summed once per row at the end. Q4_K's minimum terms go through the input's group sums.
//! The sums run in a different order from the decoding reference's, so results agree with
//! it within float rounding, not bit for bit.
//!
//! Every kernel is compiled in variants ([`Extras`]): the plain one widens f16 values
//! (F16 weights, block scales) with integer operations or the `half` crate and sums with
//! `maddubs`, so it needs nothing beyond AVX2 and FMA (the contract of every x86 kernel,
//! and what Miri can interpret); others use F16C's conversions and VNNI's sums. All give
//! the same values. [`super::Kernels`] only calls them when the processor has the features.
#![allow(unsafe_code)]

use core::arch::x86_64::*;

use super::x86::horizontal_sum_ps;
use super::Q8Blocks;
use crate::gguf::GgmlType;

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

/// Eight i32 sums of `w · x` over 32 int8 pairs, `|x| ≤ 127` (the input is quantized to
/// ±127): `maddubs(|w|, x · sign(w))` takes `|w|` as unsigned, so even `w = -128` is
/// exact, and its pair sums (at most 2 · 128 · 127) cannot saturate.
#[target_feature(enable = "avx2,fma")]
fn dot_i8(w: __m256i, x: __m256i) -> __m256i {
    let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    _mm256_madd_epi16(pairs, _mm256_set1_epi16(1))
}

/// `-c · Σ x` over each four consecutive int8 `x` (the lanes `vpdpbusd` sums into), for an
/// unsigned byte `c`: the start value that turns `Σ (q + c)·x` into `Σ q·x`, computed once
/// per input group for all the rows sharing it.
///
/// # Safety
/// The CPU must support AVX512-VNNI and AVX512-VL.
#[inline(always)]
unsafe fn vnni_offset(c: u8, x: __m256i) -> __m256i {
    let zero = _mm256_setzero_si256();
    _mm256_sub_epi32(
        zero,
        _mm256_dpbusd_epi32(zero, _mm256_set1_epi8(c as i8), x),
    )
}

/// The f32 lanes of each of `N` accumulators, summed.
#[target_feature(enable = "avx2,fma")]
fn sums<const N: usize>(acc: [__m256; N]) -> [f32; N] {
    let mut out = [0.0; N];
    for (o, a) in out.iter_mut().zip(acc) {
        *o = horizontal_sum_ps(a);
    }
    out
}

/// The rows one pass of a kernel reads together, sharing each load of the input: the
/// thread split (`math::matmul`) hands out whole groups of this many.
pub const ROWS: usize = 4;

/// The instructions beyond AVX2+FMA that the quantized products may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extras {
    /// F16C's conversions for the f16 block scales (the same values as without).
    pub f16c: bool,
    /// AVX512-VNNI's `vpdpbusd` (on 256-bit vectors, so with AVX512-VL) for the integer
    /// sums (the same integers as without).
    pub vnni: bool,
}

/// Inputs one pass of the Q8_0 and Q4_0 kernels reads together, sharing each load (and
/// unpacking) of a weight block.
const INPUTS: usize = 4;

/// `out[r · row_step + t · input_step] = row r · input t` for the rows of `ty` blocks in `data`
/// (`row_bytes` each; as many rows as `data` and `out` both hold) and the `inputs` inputs
/// back to back in `x`, for Q8_0, Q4_0, Q4_K and Q6_K; any other type leaves `out`
/// untouched. [`ROWS`] rows are computed at a time (by [`INPUTS`] inputs for Q8_0 and
/// Q4_0), then the rest one by one, each row · input pair's arithmetic the same either way
/// (so which rows and inputs share a pass never changes a result).
///
/// # Safety
/// The CPU must support AVX2, FMA and what `extras` names (F16C; AVX512-VNNI and
/// AVX512-VL).
#[allow(clippy::too_many_arguments)]
pub unsafe fn q8_matmul(
    extras: Extras,
    ty: GgmlType,
    out: &mut [f32],
    steps: (usize, usize),
    data: &[u8],
    row_bytes: usize,
    x: Q8Blocks<'_>,
    inputs: usize,
) {
    let args = (ty, out, steps, data, row_bytes, x, inputs);
    // SAFETY: each variant enables only what the caller promised.
    unsafe {
        match (extras.vnni, extras.f16c) {
            (false, false) => matvec_avx2(args),
            (false, true) => matvec_f16c(args),
            (true, false) => matvec_vnni(args),
            (true, true) => matvec_vnni_f16c(args),
        }
    }
}

/// The arguments of [`q8_matmul`] after `extras`.
type MatvecArgs<'o, 'd, 'x> = (
    GgmlType,
    &'o mut [f32],
    (usize, usize),
    &'d [u8],
    usize,
    Q8Blocks<'x>,
    usize,
);

/// Defines one compiled variant of [`q8_matmul`]: its target features, whether it sums with
/// VNNI, and how it widens the f16 block scales.
macro_rules! matvec_variant {
    ($name:ident, $features:literal, $vnni:literal, $half:expr) => {
        /// [`q8_matmul`] compiled for these features.
        ///
        /// # Safety
        /// The CPU must support the features enabled here.
        #[target_feature(enable = $features)]
        unsafe fn $name((ty, out, steps, data, row_bytes, x, inputs): MatvecArgs<'_, '_, '_>) {
            // SAFETY: forwarded from the caller.
            unsafe { matvec_body::<$vnni>(ty, out, steps, data, row_bytes, x, inputs, $half) }
        }
    };
}

matvec_variant!(matvec_avx2, "avx2,fma", false, half);
matvec_variant!(matvec_f16c, "avx2,fma,f16c", false, |b| half_f16c(b));
matvec_variant!(matvec_vnni, "avx2,fma,avx512vnni,avx512vl", true, half);
matvec_variant!(
    matvec_vnni_f16c,
    "avx2,fma,f16c,avx512vnni,avx512vl",
    true,
    |b| half_f16c(b)
);

/// The body of every [`q8_matmul`] variant, inlined into each: the type's kernel over
/// tiles of [`ROWS`] rows (by [`INPUTS`] inputs for Q8_0 and Q4_0, one at a time for the
/// K-quants) and then single rows.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn matvec_body<const VNNI: bool>(
    ty: GgmlType,
    out: &mut [f32],
    steps: (usize, usize),
    data: &[u8],
    row_bytes: usize,
    x: Q8Blocks<'_>,
    inputs: usize,
    half: impl Fn([u8; 2]) -> f32 + Copy,
) {
    if row_bytes == 0 || inputs == 0 {
        return;
    }
    let cols = x.values.len() / inputs;
    // Input `t` of `x`.
    let input = |t: usize| x.inputs(t..t + 1, cols);
    let place = Place {
        out,
        steps,
        data,
        row_bytes,
        inputs,
    };
    // SAFETY (kernel calls): the caller's features, VNNI's included when `VNNI`.
    unsafe {
        match ty {
            GgmlType::Q8_0 => by_tiles(
                place,
                input,
                |r, x| q8_0_tile::<ROWS, INPUTS, VNNI>(r, x, half),
                |r, x| q8_0_tile::<ROWS, 1, VNNI>(r, x, half),
                |r, x| q8_0_tile::<1, INPUTS, VNNI>(r, x, half),
                |r, x| q8_0_tile::<1, 1, VNNI>(r, x, half),
            ),
            GgmlType::Q4_0 => by_tiles(
                place,
                input,
                |r, x| q4_0_tile::<ROWS, INPUTS, VNNI>(r, x, half),
                |r, x| q4_0_tile::<ROWS, 1, VNNI>(r, x, half),
                |r, x| q4_0_tile::<1, INPUTS, VNNI>(r, x, half),
                |r, x| q4_0_tile::<1, 1, VNNI>(r, x, half),
            ),
            GgmlType::Q4_K => by_tiles(
                place,
                input,
                |r, x| x.map(|x| q4_k_rows::<ROWS, VNNI>(r, x, half)),
                |r, [x]| [q4_k_rows::<ROWS, VNNI>(r, x, half)],
                |r, x| x.map(|x| q4_k_rows::<1, VNNI>(r, x, half)),
                |r, [x]| [q4_k_rows::<1, VNNI>(r, x, half)],
            ),
            GgmlType::Q6_K => by_tiles(
                place,
                input,
                |r, x| x.map(|x| q6_k_rows::<ROWS, VNNI>(r, x, half)),
                |r, [x]| [q6_k_rows::<ROWS, VNNI>(r, x, half)],
                |r, x| x.map(|x| q6_k_rows::<1, VNNI>(r, x, half)),
                |r, [x]| [q6_k_rows::<1, VNNI>(r, x, half)],
            ),
            _ => {}
        }
    }
}

/// Where a product's results go: `out[r · steps.0 + t · steps.1]` for row `r` of `data`
/// (`row_bytes` each) and input `t < inputs`.
struct Place<'o, 'd> {
    out: &'o mut [f32],
    steps: (usize, usize),
    data: &'d [u8],
    row_bytes: usize,
    inputs: usize,
}

/// Runs the tile kernels over the rows (outer, so a tile's rows stay in cache while the
/// inputs pass) and the inputs: `full` on [`ROWS`] × [`INPUTS`] tiles, `rows_one` on
/// [`ROWS`] rows of an input left over, `one_inputs` and `single` on the rows left over;
/// each returns `[input][row]` values.
#[inline(always)]
fn by_tiles<'x>(
    place: Place<'_, '_>,
    input: impl Fn(usize) -> Q8Blocks<'x>,
    mut full: impl FnMut([&[u8]; ROWS], [Q8Blocks<'x>; INPUTS]) -> [[f32; ROWS]; INPUTS],
    mut rows_one: impl FnMut([&[u8]; ROWS], [Q8Blocks<'x>; 1]) -> [[f32; ROWS]; 1],
    mut one_inputs: impl FnMut([&[u8]; 1], [Q8Blocks<'x>; INPUTS]) -> [[f32; 1]; INPUTS],
    mut single: impl FnMut([&[u8]; 1], [Q8Blocks<'x>; 1]) -> [[f32; 1]; 1],
) {
    let Place {
        out,
        steps: (row_step, input_step),
        data,
        row_bytes,
        inputs,
    } = place;
    let rows = data.len() / row_bytes;
    let row = |r: usize| {
        data.get(r * row_bytes..(r + 1) * row_bytes)
            .unwrap_or_default()
    };
    let mut store = |first_row: usize, first_input: usize, values: &[&[f32]]| {
        for (t, per_row) in values.iter().enumerate() {
            for (r, &v) in per_row.iter().enumerate() {
                if let Some(o) =
                    out.get_mut((first_row + r) * row_step + (first_input + t) * input_step)
                {
                    *o = v;
                }
            }
        }
    };
    // Inputs `t..` as an array of `K`.
    let inputs_at = |t: usize| -> [Q8Blocks<'x>; INPUTS] { core::array::from_fn(|k| input(t + k)) };
    let mut first = 0;
    while first < rows {
        let grouped = first + ROWS <= rows;
        let mut t = 0;
        while t + INPUTS <= inputs {
            if grouped {
                let v = full(core::array::from_fn(|k| row(first + k)), inputs_at(t));
                store(first, t, &v.each_ref().map(|v| &v[..]));
            } else {
                let v = one_inputs([row(first)], inputs_at(t));
                store(first, t, &v.each_ref().map(|v| &v[..]));
            }
            t += INPUTS;
        }
        for t in t..inputs {
            if grouped {
                let v = rows_one(core::array::from_fn(|k| row(first + k)), [input(t)]);
                store(first, t, &v.each_ref().map(|v| &v[..]));
            } else {
                let v = single([row(first)], [input(t)]);
                store(first, t, &v.each_ref().map(|v| &v[..]));
            }
        }
        first += if grouped { ROWS } else { 1 };
    }
}

/// The blocks of each row, and how many of them (and of the input's groups) all have:
/// `per_block` input groups of 32 per block.
fn block_rows<'r, const B: usize, const N: usize>(
    rows: [&'r [u8]; N],
    inputs: &[Q8Blocks<'_>],
    per_block: usize,
) -> ([&'r [[u8; B]]; N], usize) {
    let blocks = rows.map(|r| r.as_chunks::<B>().0);
    let groups = inputs.iter().fold(usize::MAX, |n, x| {
        n.min(x.values.len() / 32)
            .min(x.scales.len())
            .min(x.sums.len())
    });
    let n = blocks
        .iter()
        .fold(groups / per_block, |n, b| n.min(b.len()));
    (blocks, n)
}

/// The 32 input values of group `g` (`g < values.len() / 32`, as [`block_rows`] ensures).
///
/// # Safety
/// `32 · (g + 1) <= x.values.len()`; the CPU must support AVX2.
#[inline(always)]
unsafe fn input_group(x: &Q8Blocks<'_>, g: usize) -> __m256i {
    // SAFETY: the caller's bound; the load is unaligned.
    unsafe { _mm256_loadu_si256(x.values.as_ptr().add(32 * g).cast()) }
}

/// `N` Q8_0 rows (34-byte blocks: f16 scale, 32 × i8) times `T` quantized inputs, each
/// row's block loaded once for the `T` inputs and each input group once for the `N` rows;
/// every row · input pair's arithmetic is the same whatever `N` and `T` are. With VNNI the
/// weights are made unsigned by `+ 128` (a sign-bit flip) and the `128 · Σ x` this adds is
/// taken off through the start value; without, `maddubs` on `|w|` and `x · sign(w)`.
#[inline(always)]
unsafe fn q8_0_tile<const N: usize, const T: usize, const VNNI: bool>(
    rows: [&[u8]; N],
    inputs: [Q8Blocks<'_>; T],
    half: impl Fn([u8; 2]) -> f32,
) -> [[f32; N]; T] {
    let (blocks, n) = block_rows::<34, N>(rows, &inputs, 1);
    let flip = _mm256_set1_epi8(-128);
    let mut acc = [[_mm256_setzero_ps(); N]; T];
    for i in 0..n {
        // SAFETY (loads and `get_unchecked`): `i < n`, which `block_rows` bounds by every
        // row's block count and every input's group count; bytes 2..34 of a 34-byte block.
        unsafe {
            let xv: [__m256i; T] = core::array::from_fn(|t| input_group(&inputs[t], i));
            let xs: [f32; T] = core::array::from_fn(|t| *inputs[t].scales.get_unchecked(i));
            let start: [__m256i; T] = core::array::from_fn(|t| {
                if VNNI {
                    vnni_offset(128, xv[t])
                } else {
                    _mm256_setzero_si256()
                }
            });
            for (r, row) in blocks.iter().enumerate() {
                let b = row.get_unchecked(i);
                prefetch_ahead(b, 0, row.len());
                let w = _mm256_loadu_si256(b.as_ptr().add(2).cast());
                let unsigned = _mm256_xor_si256(w, flip);
                let d = half(two(b, 0));
                for (t, acc) in acc.iter_mut().enumerate() {
                    let isum = if VNNI {
                        _mm256_dpbusd_epi32(start[t], unsigned, xv[t])
                    } else {
                        dot_i8(w, xv[t])
                    };
                    let scale = _mm256_set1_ps(d * xs[t]);
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[r]);
                }
            }
        }
    }
    // SAFETY: the caller's features include AVX2 and FMA.
    acc.map(|acc| unsafe { sums(acc) })
}

/// `N` Q4_0 rows (18-byte blocks: f16 scale, 16 bytes of nibbles, value `q - 8`) times `T`
/// quantized inputs (shared as in [`q8_0_tile`]): the unsigned nibbles times the signed
/// input directly (`vpdpbusd`, or `maddubs`), the `-8` folded in through `8 · Σ x`,
/// computed once per group and input for all rows.
#[inline(always)]
unsafe fn q4_0_tile<const N: usize, const T: usize, const VNNI: bool>(
    rows: [&[u8]; N],
    inputs: [Q8Blocks<'_>; T],
    half: impl Fn([u8; 2]) -> f32,
) -> [[f32; N]; T] {
    let (blocks, n) = block_rows::<18, N>(rows, &inputs, 1);
    // Shifting whole 32-bit lanes is as good as bytes here: the mask keeps the low nibble.
    let high_half_by_4 = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
    let (low4, eight, ones) = (
        _mm256_set1_epi8(0xF),
        _mm256_set1_epi8(8),
        _mm256_set1_epi16(1),
    );
    let mut acc = [[_mm256_setzero_ps(); N]; T];
    for i in 0..n {
        // SAFETY: as in `q8_0_tile`; bytes 2..18 of an 18-byte block.
        unsafe {
            let xv: [__m256i; T] = core::array::from_fn(|t| input_group(&inputs[t], i));
            let xs: [f32; T] = core::array::from_fn(|t| *inputs[t].scales.get_unchecked(i));
            // VNNI: -8·Σx per four values, the sum's start; else 8·x pair sums (i16).
            let offset: [__m256i; T] = core::array::from_fn(|t| {
                if VNNI {
                    vnni_offset(8, xv[t])
                } else {
                    _mm256_maddubs_epi16(eight, xv[t])
                }
            });
            for (r, row) in blocks.iter().enumerate() {
                let b = row.get_unchecked(i);
                prefetch_ahead(b, 0, row.len());
                // The 16 bytes in both halves, the upper half's shifted down a nibble.
                let packed = _mm256_broadcastsi128_si256(_mm_loadu_si128(b.as_ptr().add(2).cast()));
                let q = _mm256_and_si256(_mm256_srlv_epi32(packed, high_half_by_4), low4);
                let d = half(two(b, 0));
                for (t, acc) in acc.iter_mut().enumerate() {
                    let isum = if VNNI {
                        _mm256_dpbusd_epi32(offset[t], q, xv[t])
                    } else {
                        // |q·x pair| ≤ 2·15·127 and |8·x pair| ≤ 2·8·127: no i16 overflow.
                        let pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(q, xv[t]), offset[t]);
                        _mm256_madd_epi16(pairs, ones)
                    };
                    let scale = _mm256_set1_ps(d * xs[t]);
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[r]);
                }
            }
        }
    }
    // SAFETY: the caller's features include AVX2 and FMA.
    acc.map(|acc| unsafe { sums(acc) })
}

/// How far ahead, in rows, the kernels prefetch weights.
const PREFETCH_ROWS: usize = 8;

/// Asks for the byte [`PREFETCH_ROWS`] rows on from byte `at` of block `b` of a row of
/// `blocks` blocks: several interleaved rows defeat the hardware prefetcher (measured: Q4_0
/// generation went from 39 % to 82 % of the read bandwidth). A prefetch never faults, so
/// running past the matrix's end is harmless.
#[inline(always)]
fn prefetch_ahead<const B: usize>(b: &[u8; B], at: usize, blocks: usize) {
    let ahead = b.as_ptr().wrapping_add(PREFETCH_ROWS * blocks * B + at);
    // SAFETY: a prefetch reads nothing the program sees and never faults; SSE is part of
    // the x86_64 baseline.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(ahead.cast()) };
}

/// The eight 6-bit scales and the eight 6-bit minimums of a K-quant super-block (its 12
/// packed bytes, as `quant::k_scale_min` reads them one at a time), one byte per sub-block:
/// sub-blocks 0..4 are the low six bits of bytes 0..4 (scales) and 4..8 (minimums);
/// 4..8 take their low four bits from the nibbles of bytes 8..12 and their top two from
/// the top bits of bytes 0..4 (scales) and 4..8 (minimums).
pub(super) fn k_scales_mins(packed: &[u8]) -> (u64, u64) {
    let word = |k: usize| match packed.get(4 * k..4 * k + 4) {
        Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
        _ => 0,
    };
    let (w0, w1, w2) = (word(0), word(1), word(2));
    let six = 0x3F3F_3F3F;
    let (nibbles, top) = (0x0F0F_0F0F, 0x3030_3030);
    let scales_hi = (w2 & nibbles) | ((w0 >> 2) & top);
    let mins_hi = ((w2 >> 4) & nibbles) | ((w1 >> 2) & top);
    (
        u64::from(w0 & six) | u64::from(scales_hi) << 32,
        u64::from(w1 & six) | u64::from(mins_hi) << 32,
    )
}

/// Eight bytes (one per lane) as f32.
#[inline(always)]
unsafe fn bytes_to_f32(bytes: u64) -> __m256 {
    _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes as i64)))
}

/// `N` Q4_K rows (144-byte super-blocks of 256: f16 `d` and `dmin`, eight 6-bit
/// scale/minimum pairs, 128 bytes of nibbles) times the quantized input: per 32 values
/// `d·sc·xs · Σ q·x - dmin·m·xs · Σ x`. Each row's scales and minimums are unpacked once
/// per super-block, eight at a time; the minimum terms go lane-wise into their own sum.
#[inline(always)]
unsafe fn q4_k_rows<const N: usize, const VNNI: bool>(
    rows: [&[u8]; N],
    x: Q8Blocks<'_>,
    half: impl Fn([u8; 2]) -> f32,
) -> [f32; N] {
    let (blocks, n) = block_rows::<144, N>(rows, &[x], 8);
    let (low4, ones) = (_mm256_set1_epi8(0xF), _mm256_set1_epi16(1));
    let mut acc = [_mm256_setzero_ps(); N];
    let mut minimums = [_mm256_setzero_ps(); N];
    for s in 0..n {
        // SAFETY: `s < n` bounds the super-blocks of every row and `8·s + 8` the input's
        // groups, scales and sums (`block_rows`); bytes 16..144 of a 144-byte block.
        unsafe {
            let xs = _mm256_loadu_ps(x.scales.as_ptr().add(8 * s));
            let xsums = _mm256_mul_ps(xs, _mm256_loadu_ps(x.sums.as_ptr().add(8 * s)));
            // Per row: d·sc·xs for the eight sub-blocks, and the minimum terms.
            let mut factors = [[0.0f32; 8]; N];
            for ((f, min), row) in factors.iter_mut().zip(&mut minimums).zip(&blocks) {
                let b = row.get_unchecked(s);
                let (sc, m) = k_scales_mins(b.get(4..16).unwrap_or_default());
                let d = _mm256_set1_ps(half(two(b, 0)));
                let dmin = _mm256_set1_ps(half(two(b, 2)));
                _mm256_storeu_ps(
                    f.as_mut_ptr(),
                    _mm256_mul_ps(_mm256_mul_ps(bytes_to_f32(sc), d), xs),
                );
                *min = _mm256_fmadd_ps(_mm256_mul_ps(bytes_to_f32(m), dmin), xsums, *min);
            }
            for pair in 0..4 {
                let j = 2 * pair;
                let (x_lo, x_hi) = (input_group(&x, 8 * s + j), input_group(&x, 8 * s + j + 1));
                for ((acc, row), f) in acc.iter_mut().zip(&blocks).zip(&factors) {
                    let b = row.get_unchecked(s);
                    // Every 47 bytes: each cache line of the 144-byte block.
                    prefetch_ahead(b, 47 * pair, row.len());
                    let packed = _mm256_loadu_si256(b.as_ptr().add(16 + 32 * pair).cast());
                    let q_lo = _mm256_and_si256(packed, low4);
                    let q_hi = _mm256_and_si256(_mm256_srli_epi16::<4>(packed), low4);
                    let (lo, hi) = if VNNI {
                        let zero = _mm256_setzero_si256();
                        (
                            _mm256_dpbusd_epi32(zero, q_lo, x_lo),
                            _mm256_dpbusd_epi32(zero, q_hi, x_hi),
                        )
                    } else {
                        (
                            _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, x_lo), ones),
                            _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, x_hi), ones),
                        )
                    };
                    let f_lo = _mm256_set1_ps(*f.get_unchecked(j));
                    let f_hi = _mm256_set1_ps(*f.get_unchecked(j + 1));
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(lo), f_lo, *acc);
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(hi), f_hi, *acc);
                }
            }
        }
    }
    let (acc, minimums) = (sums(acc), sums(minimums));
    core::array::from_fn(|r| {
        acc.get(r).copied().unwrap_or(0.0) - minimums.get(r).copied().unwrap_or(0.0)
    })
}

/// `N` Q6_K rows (210-byte super-blocks of 256: 128 bytes of low nibbles, 64 of high 2-bit
/// pairs, sixteen i8 scales, f16 `d`) times the quantized input: per 32 values the
/// unsigned 6-bit `q` times `x`, less `32 · x` (the offset, once per group for all rows),
/// weighted by the two 16-value scales. Without VNNI: i16 pair sums weighted with `madd`;
/// with VNNI: `vpdpbusd` sums (four values a lane, so lanes 0..4 and 4..8 are the two
/// halves) times `d · scale` in f32, each row's sixteen converted once per super-block.
#[inline(always)]
unsafe fn q6_k_rows<const N: usize, const VNNI: bool>(
    rows: [&[u8]; N],
    x: Q8Blocks<'_>,
    half: impl Fn([u8; 2]) -> f32,
) -> [f32; N] {
    let (blocks, n) = block_rows::<210, N>(rows, &[x], 8);
    let (low4, low2, bias) = (
        _mm256_set1_epi8(0xF),
        _mm256_set1_epi8(3),
        _mm256_set1_epi8(32),
    );
    let mut acc = [_mm256_setzero_ps(); N];
    for s in 0..n {
        // SAFETY: as in `q4_k_rows`; every offset below is inside the 210-byte block.
        unsafe {
            let mut d = [0.0f32; N];
            // VNNI: `d · scale` of scales 0..8 and 8..16 (for values 0..128 and 128..256).
            let mut scaled = [[_mm256_setzero_ps(); 2]; N];
            for ((d, scaled), row) in d.iter_mut().zip(&mut scaled).zip(&blocks) {
                let b = row.get_unchecked(s);
                *d = half(two(b, 208));
                if VNNI {
                    for (k, scaled) in scaled.iter_mut().enumerate() {
                        let bytes = _mm_loadl_epi64(b.as_ptr().add(192 + 8 * k).cast());
                        let scales = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                        *scaled = _mm256_mul_ps(scales, _mm256_set1_ps(*d));
                    }
                }
            }
            for j in 0..8 {
                let (half_at, layer) = (j / 4, j % 4);
                let xv = input_group(&x, 8 * s + j);
                let xs = *x.scales.get_unchecked(8 * s + j);
                // |q·x pair| ≤ 2·63·127 and |32·x pair| ≤ 2·32·127: no i16 overflow.
                let offset = if VNNI {
                    vnni_offset(32, xv)
                } else {
                    _mm256_maddubs_epi16(bias, xv)
                };
                // The lanes of this group's two scales in `scaled`, four lanes each.
                let (first, second) = (2 * layer as i32, 2 * layer as i32 + 1);
                let pick =
                    _mm256_setr_epi32(first, first, first, first, second, second, second, second);
                let xsv = _mm256_set1_ps(xs);
                for (((acc, row), &d), scaled) in acc.iter_mut().zip(&blocks).zip(&d).zip(&scaled) {
                    let b = row.get_unchecked(s);
                    // Every 30 bytes: each cache line of the 210-byte block.
                    prefetch_ahead(b, 30 * j, row.len());
                    let low =
                        _mm256_loadu_si256(b.as_ptr().add(64 * half_at + 32 * (layer % 2)).cast());
                    let high = _mm256_loadu_si256(b.as_ptr().add(128 + 32 * half_at).cast());
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
                    let q = _mm256_or_si256(low, high);
                    let (isum, factor) = if VNNI {
                        let isum = _mm256_dpbusd_epi32(offset, q, xv);
                        let scales = *scaled.get_unchecked(half_at);
                        (
                            isum,
                            _mm256_mul_ps(_mm256_permutevar8x32_ps(scales, pick), xsv),
                        )
                    } else {
                        let pairs = _mm256_sub_epi16(_mm256_maddubs_epi16(q, xv), offset);
                        let scale = |c: usize| i16::from(*b.get_unchecked(192 + c) as i8);
                        let scales = _mm256_set_m128i(
                            _mm_set1_epi16(scale(2 * j + 1)),
                            _mm_set1_epi16(scale(2 * j)),
                        );
                        (_mm256_madd_epi16(pairs, scales), _mm256_set1_ps(d * xs))
                    };
                    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), factor, *acc);
                }
            }
        }
    }
    sums(acc)
}
