//! The scalar reference decoders of ggml's block types: bytes of whole blocks in, `f32`
//! values out, exactly as ggml's reference `dequantize_row_*` functions compute them.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::gguf::GgmlType;

/// Whether [`dequantize`] decodes `ty`.
pub(super) const fn decodes(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0
    )
}

/// Decodes the whole blocks of `ty` in `bytes` into `out` (as many values as both allow).
/// Types that [`decodes`] refuses leave `out` unchanged.
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
        GgmlType::Q8_0 => {
            for (out, blk) in out.chunks_exact_mut(32).zip(bytes.chunks_exact(34)) {
                let d = f16(blk);
                for (o, &q) in out.iter_mut().zip(blk.get(2..).unwrap_or_default()) {
                    *o = f32::from(q as i8) * d;
                }
            }
        }
        _ => {}
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
