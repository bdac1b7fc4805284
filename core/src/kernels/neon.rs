//! NEON loops for aarch64, where NEON is part of the base architecture.
#![allow(unsafe_code)]

use core::arch::aarch64::*;

/// f32 dot product with four 4-lane FMA accumulators.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut i = 0;
    // SAFETY: NEON is always available on aarch64; every 4-float load is at `i + 4 <= n`
    // inside both slices.
    let mut total = unsafe {
        let mut acc = [vdupq_n_f32(0.0); 4];
        while i + 16 <= n {
            for (k, acc) in acc.iter_mut().enumerate() {
                let x = vld1q_f32(pa.add(i + 4 * k));
                let y = vld1q_f32(pb.add(i + 4 * k));
                *acc = vfmaq_f32(*acc, x, y);
            }
            i += 16;
        }
        while i + 4 <= n {
            acc[0] = vfmaq_f32(acc[0], vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
            i += 4;
        }
        vaddvq_f32(vaddq_f32(
            vaddq_f32(acc[0], acc[1]),
            vaddq_f32(acc[2], acc[3]),
        ))
    };
    for j in i..n {
        total += a[j] * b[j];
    }
    total
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
