//! The scalar reference decoders of ggml's block types: bytes of whole blocks in, `f32`
//! values out, computed as ggml's reference `dequantize_row_*` functions compute them (the
//! same products in the same order, so the same bits).
//!
//! Every decoder walks a block through fixed-size views and iterators, so a short slice
//! decodes fewer values instead of panicking. The K-quant super-blocks (256 values) are
//! decoded 16 values at a time: every 16-value run of a K block has one scale (and one
//! minimum), one place in the packed low bits and one bit position of the high bits.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::gguf::GgmlType;

/// Whether [`dequantize`] decodes `ty`.
pub(super) const fn decodes(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32
            | GgmlType::F16
            | GgmlType::BF16
            | GgmlType::Q8_0
            | GgmlType::Q4_0
            | GgmlType::Q4_1
            | GgmlType::Q5_0
            | GgmlType::Q5_1
            | GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
    )
}

/// Decodes the whole blocks of `ty` in `bytes` into `out` (as many values as both allow).
/// Types that [`super::is_weight_type`] refuses leave `out` unchanged.
pub fn dequantize(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    match ty {
        GgmlType::F32 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<4>().0) {
                *o = f32::from_le_bytes(*b);
            }
        }
        GgmlType::F16 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = half::f16::from_le_bytes(*b).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (o, b) in out.iter_mut().zip(bytes.as_chunks::<2>().0) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes(*b)) << 16);
            }
        }
        GgmlType::Q8_0 => blocks::<34, 32>(bytes, out, q8_0),
        GgmlType::Q4_0 => blocks::<18, 32>(bytes, out, q4_0),
        GgmlType::Q4_1 => blocks::<20, 32>(bytes, out, q4_1),
        GgmlType::Q5_0 => blocks::<22, 32>(bytes, out, q5_0),
        GgmlType::Q5_1 => blocks::<24, 32>(bytes, out, q5_1),
        GgmlType::Q2_K => blocks::<84, 256>(bytes, out, q2_k),
        GgmlType::Q3_K => blocks::<110, 256>(bytes, out, q3_k),
        GgmlType::Q4_K => blocks::<144, 256>(bytes, out, q4_k),
        GgmlType::Q5_K => blocks::<176, 256>(bytes, out, q5_k),
        GgmlType::Q6_K => blocks::<210, 256>(bytes, out, q6_k),
        _ => {}
    }
}

/// Runs `decode` over every whole block of `B` bytes and `N` values.
fn blocks<const B: usize, const N: usize>(
    bytes: &[u8],
    out: &mut [f32],
    decode: fn(&[u8; B], &mut [f32; N]),
) {
    for (blk, out) in bytes
        .as_chunks::<B>()
        .0
        .iter()
        .zip(out.as_chunks_mut::<N>().0)
    {
        decode(blk, out);
    }
}

/// The little-endian IEEE binary16 in the first two bytes of `b`, as f32.
pub(crate) fn f16(b: &[u8]) -> f32 {
    let bits = match b {
        [lo, hi, ..] => u16::from_le_bytes([*lo, *hi]),
        _ => 0,
    };
    half::f16::from_bits(bits).to_f32()
}

/// `len` bytes of `b` from `at` (empty where `b` is shorter: the callers' offsets are
/// constants inside their fixed-size blocks).
fn part(b: &[u8], at: usize, len: usize) -> &[u8] {
    b.get(at..at + len).unwrap_or_default()
}

/// Q8_0: `d: f16`, 32 × `i8`; `y = q · d`.
fn q8_0(b: &[u8; 34], out: &mut [f32; 32]) {
    let d = f16(b);
    for (o, &q) in out.iter_mut().zip(part(b, 2, 32)) {
        *o = f32::from(q as i8) * d;
    }
}

/// The 32 four-bit values of a 16-byte run: value `j` is byte `j`'s low nibble, value
/// `j + 16` its high nibble (the Q4_x / Q5_x order).
fn nibbles(qs: &[u8], out: &mut [f32; 32], value: impl Fn(usize, u8) -> f32) {
    let (low, high) = out.split_at_mut(16);
    for (j, ((l, h), &q)) in low.iter_mut().zip(high).zip(qs).enumerate() {
        *l = value(j, q & 0xF);
        *h = value(j + 16, q >> 4);
    }
}

/// Q4_0: `d: f16`, 16 bytes of nibbles; `y = (q - 8) · d`.
fn q4_0(b: &[u8; 18], out: &mut [f32; 32]) {
    let d = f16(b);
    nibbles(part(b, 2, 16), out, |_, q| f32::from(i16::from(q) - 8) * d);
}

/// Q4_1: `d: f16`, `m: f16`, 16 bytes of nibbles; `y = q · d + m`.
fn q4_1(b: &[u8; 20], out: &mut [f32; 32]) {
    let (d, m) = (f16(b), f16(part(b, 2, 2)));
    nibbles(part(b, 4, 16), out, |_, q| f32::from(q) * d + m);
}

/// The fifth bit of value `j` of a Q5_x block: bit `j` of the little-endian `qh` word.
fn fifth_bit(qh: u32, j: usize) -> u8 {
    if qh >> j & 1 == 1 {
        0x10
    } else {
        0
    }
}

/// Q5_0: `d: f16`, `qh: u32` (fifth bits), 16 bytes of nibbles; `y = (q - 16) · d`.
fn q5_0(b: &[u8; 22], out: &mut [f32; 32]) {
    let d = f16(b);
    let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
    nibbles(part(b, 6, 16), out, |j, q| {
        f32::from(i16::from(q | fifth_bit(qh, j)) - 16) * d
    });
}

/// Q5_1: `d: f16`, `m: f16`, `qh: u32`, 16 bytes of nibbles; `y = q · d + m`.
fn q5_1(b: &[u8; 24], out: &mut [f32; 32]) {
    let (d, m) = (f16(b), f16(part(b, 2, 2)));
    let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    nibbles(part(b, 8, 16), out, |j, q| {
        f32::from(q | fifth_bit(qh, j)) * d + m
    });
}

/// Where the 2-bit values of 16-value run `c` (0..16) of a Q2_K/Q3_K block sit: the
/// 16 bytes from this offset in `qs`, at this shift. Each 128-value half packs four 32-byte
/// layers of 2 bits; the two 16-value runs of a layer read the two 16-byte halves.
const fn two_bit_place(c: usize) -> (usize, u32) {
    (32 * (c / 8) + 16 * (c % 2), 2 * ((c % 8) / 2) as u32)
}

/// Q2_K: `scales: [u8; 16]` (low nibble scale, high nibble minimum, per 16 values),
/// `qs: [u8; 64]` (2-bit values), `d: f16`, `dmin: f16`; `y = d·sc · q - dmin·m`.
fn q2_k(b: &[u8; 84], out: &mut [f32; 256]) {
    let (scales, qs) = (part(b, 0, 16), part(b, 16, 64));
    let (d, dmin) = (f16(part(b, 80, 2)), f16(part(b, 82, 2)));
    for (c, (out, &sc)) in out.chunks_exact_mut(16).zip(scales).enumerate() {
        let (at, shift) = two_bit_place(c);
        let dl = d * f32::from(sc & 0xF);
        let ml = dmin * f32::from(sc >> 4);
        for (o, &q) in out.iter_mut().zip(part(qs, at, 16)) {
            *o = dl * f32::from(q >> shift & 3) - ml;
        }
    }
}

/// Scale `i` (0..16) of a Q3_K block, 6 bits from its 12 packed bytes: the low four bits are
/// a nibble of bytes 0..8 (low nibbles first), the high two bits a pair of bytes 8..12.
fn q3_k_scale(packed: &[u8], i: usize) -> i8 {
    let byte = |at: usize| packed.get(at).copied().unwrap_or(0);
    let low = if i < 8 {
        byte(i) & 0xF
    } else {
        byte(i - 8) >> 4
    };
    let high = byte(8 + i % 4) >> (2 * (i / 4)) & 3;
    (low | high << 4) as i8 - 32
}

/// Q3_K: `hmask: [u8; 32]` (third bits, set means no offset), `qs: [u8; 64]` (low 2 bits),
/// `scales: [u8; 12]` (sixteen 6-bit scales, offset 32), `d: f16`;
/// `y = d·(sc - 32) · (q - (4 unless the hmask bit is set))`.
fn q3_k(b: &[u8; 110], out: &mut [f32; 256]) {
    let (hmask, qs, scales) = (part(b, 0, 32), part(b, 32, 64), part(b, 96, 12));
    let d = f16(part(b, 108, 2));
    for (c, out) in out.chunks_exact_mut(16).enumerate() {
        let (at, shift) = two_bit_place(c);
        // The hmask bit goes up by one for each 2-bit layer, across both halves.
        let bit = 1u8 << (4 * (c / 8) + (c % 8) / 2);
        let dl = d * f32::from(q3_k_scale(scales, c));
        let high = part(hmask, 16 * (c % 2), 16);
        for ((o, &q), &h) in out.iter_mut().zip(part(qs, at, 16)).zip(high) {
            let offset = if h & bit == 0 { 4 } else { 0 };
            *o = dl * f32::from((q >> shift & 3) as i8 - offset);
        }
    }
}

/// Scale and minimum `j` (0..8) of a Q4_K/Q5_K block, 6 bits each from 12 packed bytes:
/// the first four pairs are the low six bits of bytes 0..4 and 4..8; the last four take
/// their low four bits from the nibbles of bytes 8..12 and their high two from the top
/// bits of bytes 0..8.
pub(crate) fn k_scale_min(packed: &[u8], j: usize) -> (u8, u8) {
    let byte = |at: usize| packed.get(at).copied().unwrap_or(0);
    if j < 4 {
        (byte(j) & 63, byte(j + 4) & 63)
    } else {
        (
            (byte(j + 4) & 0xF) | (byte(j - 4) >> 6) << 4,
            (byte(j + 4) >> 4) | (byte(j) >> 6) << 4,
        )
    }
}

/// Q4_K: `d: f16`, `dmin: f16`, `scales: [u8; 12]` (eight 6-bit scale/minimum pairs, one per
/// 32 values), `qs: [u8; 128]` (each 32 bytes hold 64 values: low nibbles, then high);
/// `y = d·sc · q - dmin·m`.
fn q4_k(b: &[u8; 144], out: &mut [f32; 256]) {
    let (d, dmin) = (f16(b), f16(part(b, 2, 2)));
    let (scales, qs) = (part(b, 4, 12), part(b, 16, 128));
    for (j, out) in out.chunks_exact_mut(32).enumerate() {
        let (sc, m) = k_scale_min(scales, j);
        let (dl, ml) = (d * f32::from(sc), dmin * f32::from(m));
        let shift = 4 * (j % 2) as u32;
        for (o, &q) in out.iter_mut().zip(part(qs, 32 * (j / 2), 32)) {
            *o = dl * f32::from(q >> shift & 0xF) - ml;
        }
    }
}

/// Q5_K: as Q4_K with `qh: [u8; 32]` before `qs`: bit `j` of `qh[l]` is the fifth bit of
/// value `l` of the `j`th 32 values; `y = d·sc · q - dmin·m`.
fn q5_k(b: &[u8; 176], out: &mut [f32; 256]) {
    let (d, dmin) = (f16(b), f16(part(b, 2, 2)));
    let (scales, qh, qs) = (part(b, 4, 12), part(b, 16, 32), part(b, 48, 128));
    for (j, out) in out.chunks_exact_mut(32).enumerate() {
        let (sc, m) = k_scale_min(scales, j);
        let (dl, ml) = (d * f32::from(sc), dmin * f32::from(m));
        let shift = 4 * (j % 2) as u32;
        let low = part(qs, 32 * (j / 2), 32);
        for ((o, &q), &h) in out.iter_mut().zip(low).zip(qh) {
            let fifth = if h >> j & 1 == 1 { 16 } else { 0 };
            *o = dl * f32::from((q >> shift & 0xF) + fifth) - ml;
        }
    }
}

/// Where 16-value run `c` (0..16) of a Q6_K block sits: its low four bits are the 16 bytes
/// of `ql` from the first offset at the given nibble shift, its high two bits the 16 bytes
/// of `qh` from the second offset at the given shift. Each 128-value half has 64 bytes of
/// `ql` (two 32-byte runs, low nibbles then high) and 32 bytes of `qh` (four 2-bit layers).
pub(crate) const fn q6_k_place(c: usize) -> (usize, u32, usize, u32) {
    let (half, layer, sub) = (c / 8, (c % 8) / 2, c % 2);
    (
        64 * half + 32 * (layer % 2) + 16 * sub,
        4 * (layer / 2) as u32,
        32 * half + 16 * sub,
        2 * layer as u32,
    )
}

/// Q6_K: `ql: [u8; 128]` (low 4 bits), `qh: [u8; 64]` (high 2 bits), `scales: [i8; 16]`
/// (one per 16 values), `d: f16`; `y = d · sc · (q - 32)`.
fn q6_k(b: &[u8; 210], out: &mut [f32; 256]) {
    let (ql, qh, scales) = (part(b, 0, 128), part(b, 128, 64), part(b, 192, 16));
    let d = f16(part(b, 208, 2));
    for (c, (out, &sc)) in out.chunks_exact_mut(16).zip(scales).enumerate() {
        let (low_at, low_shift, high_at, high_shift) = q6_k_place(c);
        let ds = d * f32::from(sc as i8);
        let values = part(ql, low_at, 16).iter().zip(part(qh, high_at, 16));
        for (o, (&l, &h)) in out.iter_mut().zip(values) {
            let q = (l >> low_shift & 0xF) | (h >> high_shift & 3) << 4;
            *o = ds * f32::from(q as i8 - 32);
        }
    }
}
