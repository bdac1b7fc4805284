//! Decoders against hand-built blocks, and the SIMD products against the decoding
//! reference.

use std::vec;
use std::vec::Vec;

use super::decode::k_scale_min;
use super::*;
use crate::kernels::tests::all as all_kernels;
use crate::testutil::values;

/// The f16 bytes of `v`.
fn h(v: f32) -> [u8; 2] {
    half::f16::from_f32(v).to_le_bytes()
}

fn decode(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let n = ty.block().map_or(0, |b| bytes.len() / b.bytes * b.elements);
    let mut out = vec![f32::NAN; n];
    dequantize(ty, bytes, &mut out);
    out
}

/// Deterministic pseudo-random bytes.
fn bytes(n: usize, seed: u32) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 24) as u8
        })
        .collect()
}

#[test]
fn exactly_the_thirteen_weight_types_are_accepted() {
    use GgmlType::*;
    let accepted = [
        F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
    ];
    for id in 0..64 {
        let Some(ty) = GgmlType::from_id(id) else {
            continue;
        };
        assert_eq!(is_weight_type(ty), accepted.contains(&ty), "{ty:?}");
    }
}

#[test]
fn float_types_decode_their_bits() {
    let f32s: Vec<u8> = [1.5f32, -2.25]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(decode(GgmlType::F32, &f32s), [1.5, -2.25]);
    // 0x0001: the smallest f16 subnormal, 2^-24.
    let f16s = [h(0.5), h(-3.0), [0x01, 0x00]].concat();
    let smallest = f32::from_bits(0x3380_0000);
    assert_eq!(decode(GgmlType::F16, &f16s), [0.5, -3.0, smallest]);
    // bf16 1.5 = 0x3FC0, -0.09375 = 0xBDC0.
    assert_eq!(
        decode(GgmlType::BF16, &[0xC0, 0x3F, 0xC0, 0xBD]),
        [1.5, -0.093_75]
    );
}

#[test]
fn q8_0_scales_signed_bytes() {
    let mut b = h(0.5).to_vec();
    b.extend((0..32).map(|i| (i * 8 - 128) as u8));
    let got = decode(GgmlType::Q8_0, &b);
    for (i, &v) in got.iter().enumerate() {
        assert_eq!(v, (i as f32 * 8.0 - 128.0) * 0.5, "{i}");
    }
    assert_eq!(got[0], -64.0);
}

/// A 32-value block's 16 nibble bytes: value `j` low nibble `j`, value `j + 16` high nibble
/// `15 - j`.
fn nibble_bytes() -> Vec<u8> {
    (0..16u8).map(|j| j | (15 - j) << 4).collect()
}

/// The nibble of value `i` in [`nibble_bytes`].
fn nibble(i: usize) -> f32 {
    if i < 16 {
        i as f32
    } else {
        (31 - i) as f32
    }
}

#[test]
fn q4_0_offsets_nibbles_by_eight() {
    let b = [h(0.25).to_vec(), nibble_bytes()].concat();
    let got = decode(GgmlType::Q4_0, &b);
    for (i, &v) in got.iter().enumerate() {
        assert_eq!(v, (nibble(i) - 8.0) * 0.25, "{i}");
    }
    assert_eq!((got[0], got[16], got[31]), (-2.0, 1.75, -2.0));
}

#[test]
fn q4_1_adds_the_minimum() {
    let b = [h(0.5).to_vec(), h(-3.0).to_vec(), nibble_bytes()].concat();
    let got = decode(GgmlType::Q4_1, &b);
    for (i, &v) in got.iter().enumerate() {
        assert_eq!(v, nibble(i) * 0.5 - 3.0, "{i}");
    }
}

/// Fifth bits: alternate nibbles of the word set, so both halves and both bit states occur.
const QH: u32 = 0xF0F0_A50F;

#[test]
fn q5_0_takes_the_fifth_bit_of_each_value() {
    let b = [h(0.5).to_vec(), QH.to_le_bytes().to_vec(), nibble_bytes()].concat();
    let got = decode(GgmlType::Q5_0, &b);
    for (i, &v) in got.iter().enumerate() {
        let high = if QH >> i & 1 == 1 { 16.0 } else { 0.0 };
        assert_eq!(v, (nibble(i) + high - 16.0) * 0.5, "{i}");
    }
    // Value 0: nibble 0, bit 0 set: 16 - 16 = 0; value 4: nibble 4, bit clear: -12.
    assert_eq!((got[0], got[4], got[31]), (0.0, -6.0, 0.0));
}

#[test]
fn q5_1_takes_the_fifth_bit_and_the_minimum() {
    let b = [
        h(0.25).to_vec(),
        h(1.0).to_vec(),
        QH.to_le_bytes().to_vec(),
        nibble_bytes(),
    ]
    .concat();
    let got = decode(GgmlType::Q5_1, &b);
    for (i, &v) in got.iter().enumerate() {
        let high = if QH >> i & 1 == 1 { 16.0 } else { 0.0 };
        assert_eq!(v, (nibble(i) + high) * 0.25 + 1.0, "{i}");
    }
}

/// The 2-bit value of element `i` of a Q2_K/Q3_K block, written the way ggml's loops walk
/// it: 128-value halves, each 32 bytes of `qs` read four times at shifts 0, 2, 4, 6, the
/// first 16 values of each pass from bytes 0..16, the next 16 from bytes 16..32.
fn two_bits(qs: &[u8], i: usize) -> u8 {
    let (half, pass, l) = (i / 128, i % 128 / 32, i % 32);
    qs[32 * half + l] >> (2 * pass) & 3
}

#[test]
fn q2_k_uses_a_scale_and_minimum_per_16_values() {
    // Scale nibbles 1..=15 and 0, minimum nibbles 15 down to 0.
    let scales: Vec<u8> = (0..16u8).map(|i| ((i + 1) % 16) | (15 - i) << 4).collect();
    let qs = bytes(64, 1);
    let b = [
        scales.clone(),
        qs.clone(),
        h(0.5).to_vec(),
        h(0.25).to_vec(),
    ]
    .concat();
    let got = decode(GgmlType::Q2_K, &b);
    for (i, &v) in got.iter().enumerate() {
        let sc = scales[i / 16];
        let want =
            0.5 * f32::from(sc & 0xF) * f32::from(two_bits(&qs, i)) - 0.25 * f32::from(sc >> 4);
        assert_eq!(v, want, "{i}");
    }
    // Run 15 has scale 0 and minimum 0: all zeros.
    assert!(got[240..].iter().all(|&v| v == 0.0));
}

/// Sixteen 6-bit Q3_K scales (before the offset of 32), packed as ggml packs them.
fn pack_q3_k_scales(s: &[u8; 16]) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    for (i, &v) in s.iter().enumerate() {
        let low = v & 0xF;
        if i < 8 {
            p[i] |= low;
        } else {
            p[i - 8] |= low << 4;
        }
        p[8 + i % 4] |= (v >> 4) << (2 * (i / 4));
    }
    p
}

#[test]
fn q3_k_uses_signed_6_bit_scales_and_the_hmask_offset() {
    // Every 6-bit scale value class: 0 (-32), 32 (0), 63 (+31), and mixed high bits.
    let raw: [u8; 16] = [0, 32, 63, 1, 17, 33, 49, 62, 5, 21, 37, 53, 10, 26, 42, 58];
    let hmask = bytes(32, 2);
    let qs = bytes(64, 3);
    let b = [
        hmask.clone(),
        qs.clone(),
        pack_q3_k_scales(&raw),
        h(0.5).to_vec(),
    ]
    .concat();
    let got = decode(GgmlType::Q3_K, &b);
    for (i, &v) in got.iter().enumerate() {
        // ggml: the hmask bit moves up once per pass, over both halves.
        let (half, pass, l) = (i / 128, i % 128 / 32, i % 32);
        let set = hmask[l] >> (4 * half + pass) & 1 == 1;
        let q = i16::from(two_bits(&qs, i)) - if set { 0 } else { 4 };
        let want = 0.5 * f32::from(i16::from(raw[i / 16]) - 32) * f32::from(q);
        assert_eq!(v, want, "{i}");
    }
}

/// Eight 6-bit scale/minimum pairs packed as Q4_K/Q5_K pack them.
fn pack_k_scales(sc: &[u8; 8], m: &[u8; 8]) -> Vec<u8> {
    let mut p = vec![0u8; 12];
    for j in 0..4 {
        p[j] = sc[j] | (sc[j + 4] >> 4) << 6;
        p[j + 4] = m[j] | (m[j + 4] >> 4) << 6;
        p[j + 8] = (sc[j + 4] & 0xF) | (m[j + 4] & 0xF) << 4;
    }
    p
}

/// Scales and minimums with every bit of both packings used.
const K_SC: [u8; 8] = [1, 63, 32, 17, 63, 48, 5, 42];
const K_M: [u8; 8] = [63, 0, 21, 40, 33, 63, 16, 9];

#[test]
fn k_scale_min_unpacks_what_ggml_packs() {
    let p = pack_k_scales(&K_SC, &K_M);
    for j in 0..8 {
        assert_eq!(k_scale_min(&p, j), (K_SC[j], K_M[j]), "{j}");
    }
}

#[test]
fn q4_k_uses_a_scale_and_minimum_per_32_values() {
    let qs = bytes(128, 4);
    let b = [
        h(0.5).to_vec(),
        h(0.125).to_vec(),
        pack_k_scales(&K_SC, &K_M),
        qs.clone(),
    ]
    .concat();
    let got = decode(GgmlType::Q4_K, &b);
    for (i, &v) in got.iter().enumerate() {
        // ggml: 64-value chunks of 32 bytes, low nibbles first.
        let (chunk, high, l) = (i / 64, i % 64 / 32, i % 32);
        let q = qs[32 * chunk + l] >> (4 * high) & 0xF;
        let j = i / 32;
        let want = 0.5 * f32::from(K_SC[j]) * f32::from(q) - 0.125 * f32::from(K_M[j]);
        assert_eq!(v, want, "{i}");
    }
}

#[test]
fn q5_k_adds_the_fifth_bit() {
    let (qh, qs) = (bytes(32, 5), bytes(128, 6));
    let b = [
        h(0.25).to_vec(),
        h(0.5).to_vec(),
        pack_k_scales(&K_SC, &K_M),
        qh.clone(),
        qs.clone(),
    ]
    .concat();
    let got = decode(GgmlType::Q5_K, &b);
    for (i, &v) in got.iter().enumerate() {
        let (chunk, high, l) = (i / 64, i % 64 / 32, i % 32);
        let j = i / 32;
        let q = (qs[32 * chunk + l] >> (4 * high) & 0xF) + (qh[l] >> j & 1) * 16;
        let want = 0.25 * f32::from(K_SC[j]) * f32::from(q) - 0.5 * f32::from(K_M[j]);
        assert_eq!(v, want, "{i}");
    }
}

#[test]
fn q6_k_combines_low_and_high_bits_with_signed_scales() {
    let (ql, qh) = (bytes(128, 7), bytes(64, 8));
    let scales: Vec<u8> = [
        -128i8, 127, -1, 0, 5, -7, 64, -33, 1, 2, 3, 4, -5, -6, 100, -100,
    ]
    .iter()
    .map(|&s| s as u8)
    .collect();
    let b = [ql.clone(), qh.clone(), scales.clone(), h(0.5).to_vec()].concat();
    let got = decode(GgmlType::Q6_K, &b);
    for (i, &v) in got.iter().enumerate() {
        // ggml: per 128-value half, l in 0..32 writes y[l], y[l+32], y[l+64], y[l+96] from
        // ql[l], ql[l+32] (low nibbles), ql[l], ql[l+32] (high nibbles), qh[l] at 0,2,4,6.
        let (half, pass, l) = (i / 128, i % 128 / 32, i % 32);
        let low = ql[64 * half + l + 32 * (pass % 2)] >> (4 * (pass / 2)) & 0xF;
        let high = qh[32 * half + l] >> (2 * pass) & 3;
        let q = i16::from(low | high << 4) - 32;
        let sc = scales[8 * half + l / 16 + 2 * pass] as i8;
        let want = 0.5 * f32::from(sc) * f32::from(q);
        assert_eq!(v, want, "{i}");
    }
}

/// Where each type keeps its f16 scales inside a block, so random blocks can get sane ones.
fn scale_offsets(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q5_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// `rows × cols` random weights of `ty` with finite, moderate scales.
fn random_matrix(ty: GgmlType, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
    let block = ty.block().unwrap();
    let blocks = rows * cols / block.elements;
    if matches!(ty, GgmlType::F16 | GgmlType::BF16 | GgmlType::F32) {
        let v = values(rows * cols, seed);
        return match ty {
            GgmlType::F16 => v.iter().flat_map(|&v| h(v)).collect(),
            GgmlType::BF16 => v
                .iter()
                .flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes())
                .collect(),
            _ => v.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
    }
    let mut data = bytes(blocks * block.bytes, seed);
    let scales = values(blocks * 2, seed + 1);
    for (b, s) in data
        .chunks_exact_mut(block.bytes)
        .zip(scales.chunks_exact(2))
    {
        for (&at, &s) in scale_offsets(ty).iter().zip(s) {
            b[at..at + 2].copy_from_slice(&h(s / 16.0));
        }
    }
    data
}

#[test]
fn rows_of_several_blocks_decode_block_by_block() {
    use GgmlType::*;
    for ty in [
        F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
    ] {
        let block = ty.block().unwrap();
        let data = random_matrix(ty, 1, 3 * block.elements, 9);
        let whole = decode(ty, &data);
        assert_eq!(whole.len(), 3 * block.elements);
        let pieces: Vec<f32> = data
            .chunks_exact(block.bytes)
            .flat_map(|b| decode(ty, b))
            .collect();
        assert_eq!(
            whole.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            pieces.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{ty:?}"
        );
        assert!(whole.iter().all(|v| v.is_finite()), "{ty:?}");
        // Short buffers decode what is whole and never panic.
        let mut short = vec![7.0f32; block.elements / 2];
        dequantize(ty, &data, &mut short);
        let mut out = vec![7.0f32; 3 * block.elements];
        dequantize(ty, &data[..block.bytes + 1], &mut out);
        assert_eq!(out[..block.elements], whole[..block.elements], "{ty:?}");
        assert_eq!(out[block.elements], 7.0, "{ty:?}");
    }
}

/// The product types, each at widths it allows.
const PRODUCT_CASES: &[(GgmlType, &[usize])] = &[
    (GgmlType::F16, &[8, 40, 256, 288, 768]),
    (GgmlType::Q8_0, &[32, 96, 288, 768]),
    (GgmlType::Q4_0, &[32, 96, 288, 768]),
    (GgmlType::Q4_K, &[256, 512, 768]),
    (GgmlType::Q6_K, &[256, 512, 768]),
    (GgmlType::Q4_1, &[32, 288]),
    (GgmlType::Q5_0, &[32, 288]),
    (GgmlType::Q5_1, &[32, 288]),
    (GgmlType::Q2_K, &[256, 768]),
    (GgmlType::Q3_K, &[256, 768]),
    (GgmlType::Q5_K, &[256, 768]),
    (GgmlType::BF16, &[8, 288]),
];

/// The input a product sees after [`prepare`], as f32 (the quantized values times their
/// group scales, or the input itself).
fn seen_input(input: &Input<'_>) -> Vec<f32> {
    match *input {
        Input::F32(x) => x.to_vec(),
        Input::Q8(q) => q
            .values
            .chunks_exact(INPUT_GROUP)
            .zip(q.scales)
            .flat_map(|(g, &s)| g.iter().map(move |&v| f32::from(v) * s))
            .collect(),
    }
}

#[test]
fn every_product_agrees_with_the_decoding_reference() {
    check_products(PRODUCT_CASES, 9);
}

/// Every kernel's product of 1 to `max_rows` random rows of each type and width (so every
/// mix of the kernels' four-row passes and single rows) with a random input, against the
/// exact (f64) product of the decoded rows with the input as the kernel sees it (quantized
/// or not), within float rounding; against the product with the f32 input itself, within
/// what the input's 8-bit rounding allows (half a step per value); and the quantized input
/// within half a step of the input. Also run by the kernel tests (under Miri too).
pub(crate) fn check_products(cases: &[(GgmlType, &[usize])], max_rows: usize) {
    for &(ty, widths) in cases {
        for &cols in widths {
            for rows in 1..=max_rows {
                check_product(ty, rows, cols);
            }
        }
    }
}

/// [`check_products`] for one type and shape.
fn check_product(ty: GgmlType, rows: usize, cols: usize) {
    let data = random_matrix(ty, rows, cols, (cols + rows) as u32);
    let w = GgmlMatrix {
        ty,
        data: &data,
        cols,
    };
    let x = values(cols, 3 + cols as u32);
    // Half a quantization step of each input value (its group's maximum / 254).
    let half_step: Vec<f64> = x
        .chunks(INPUT_GROUP)
        .flat_map(|g| {
            let max = g.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            g.iter().map(move |_| f64::from(max) / 254.0 * 1.001)
        })
        .collect();
    let decoded = decode(ty, &data);
    for k in all_kernels() {
        let (mut qv, mut qs) = (vec![0i8; cols], vec![0.0f32; cols]);
        let input = prepare(k, ty, &x, &mut qv, &mut qs);
        let seen = seen_input(&input);
        let quantized = matches!(input, Input::Q8(_));
        let mut out = vec![f32::NAN; rows];
        matmul(k, &mut out, &w, &input, 1);
        for (r, &got) in out.iter().enumerate() {
            let row = &decoded[r * cols..(r + 1) * cols];
            let exact: f64 = row
                .iter()
                .zip(&seen)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let magnitude: f64 = row
                .iter()
                .zip(&seen)
                .map(|(&a, &b)| f64::from((a * b).abs()))
                .sum();
            let err = (f64::from(got) - exact).abs();
            let what = || format!("{} {ty:?} {rows}×{cols} row {r}", k.name());
            assert!(
                err <= 1e-5 * magnitude + 1e-6,
                "{}: {got} vs {exact} (magnitude {magnitude})",
                what()
            );
            let unquantized: f64 = row
                .iter()
                .zip(&x)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let rounding: f64 = if quantized {
                row.iter()
                    .zip(&half_step)
                    .map(|(&a, s)| f64::from(a.abs()) * s)
                    .sum()
            } else {
                0.0
            };
            assert!(
                (f64::from(got) - unquantized).abs() <= rounding + 1e-5 * magnitude + 1e-6,
                "{}: {got} vs {unquantized} with the f32 input (rounding {rounding})",
                what()
            );
        }
        // The quantized input itself stays close to the input (±half a step).
        for (i, ((s, v), step)) in seen.iter().zip(&x).zip(&half_step).enumerate() {
            assert!(f64::from((s - v).abs()) <= *step, "value {i}: {s} vs {v}");
        }
    }
}

#[test]
fn scalar_products_take_the_f32_input_and_decoded_blocks() {
    for &(ty, widths) in PRODUCT_CASES {
        let cols = widths[widths.len() - 1];
        let data = random_matrix(ty, 3, cols, 77);
        let w = GgmlMatrix {
            ty,
            data: &data,
            cols,
        };
        let x = values(cols, 78);
        let (mut qv, mut qs) = (vec![0i8; cols], vec![0.0f32; cols]);
        let k = Kernels::scalar();
        let input = prepare(k, ty, &x, &mut qv, &mut qs);
        assert!(matches!(input, Input::F32(_)), "{ty:?}");
        let mut out = vec![0.0f32; 3];
        matmul(k, &mut out, &w, &input, 1);
        let decoded = decode(ty, &data);
        for (r, &got) in out.iter().enumerate() {
            // Block by block in order, each block's dot product summed in order.
            let block = ty.block().unwrap().elements;
            let row = &decoded[r * cols..(r + 1) * cols];
            let mut want = 0.0f32;
            for (wb, xb) in row.chunks(block).zip(x.chunks(block)) {
                let mut dot = 0.0f32;
                for (a, b) in wb.iter().zip(xb) {
                    dot += a * b;
                }
                want += dot;
            }
            assert_eq!(got.to_bits(), want.to_bits(), "{ty:?} row {r}");
        }
    }
}

#[test]
fn batched_inputs_and_split_rows_give_the_single_results() {
    // Rows and inputs that fill the kernels' four-by-four tiles and leave some over.
    for &(ty, widths) in PRODUCT_CASES {
        check_batching(ty, 13, widths[widths.len() - 1], 6);
    }
}

/// Shapes for the AMX tiles (16 rows by 16 inputs, rows repacked 64 groups at a time):
/// full tiles and tails of rows and inputs, and rows of two chunks, batched as alone and
/// against the reference.
#[test]
fn tiles_of_sixteen_and_long_rows_give_the_single_results() {
    // Row lengths of 66 and 72 groups (a chunk and some), of 2 to 3 groups or one block.
    for (ty, long, short) in [
        (GgmlType::Q8_0, 2112, 96),
        (GgmlType::Q4_0, 2112, 96),
        (GgmlType::Q4_K, 2304, 256),
    ] {
        for (rows, cols, batch) in [(37, long, 40), (16, short, 17), (33, short, 1)] {
            check_batching(ty, rows, cols, batch);
        }
        check_products(&[(ty, &[long])], 17);
    }
}

/// Every kernel's product of `rows` random `ty` rows of `cols` with `batch` inputs at once
/// gives each input, bit for bit, what it gets alone, and so do the rows in two pieces.
fn check_batching(ty: GgmlType, rows: usize, cols: usize, batch: usize) {
    let data = random_matrix(ty, rows, cols, 5);
    let w = GgmlMatrix {
        ty,
        data: &data,
        cols,
    };
    let x = values(batch * cols, 6);
    for k in all_kernels() {
        let (mut qv, mut qs) = (vec![0i8; batch * cols], vec![0.0f32; batch * cols]);
        let input = prepare(k, ty, &x, &mut qv, &mut qs);
        let mut batched = vec![0.0f32; rows * batch];
        matmul(k, &mut batched, &w, &input, batch);
        for (b, x) in x.chunks_exact(cols).enumerate() {
            let (mut qv, mut qs) = (vec![0i8; cols], vec![0.0f32; cols]);
            let input = prepare(k, ty, x, &mut qv, &mut qs);
            let mut single = vec![0.0f32; rows];
            matmul(k, &mut single, &w, &input, 1);
            // The same rows in pieces of 4 (the split granule) and the rest.
            let mut split = vec![0.0f32; rows];
            for (first, piece) in [(0, 4.min(rows)), (4.min(rows), rows.saturating_sub(4))] {
                let part = w.rows_slice(first, piece);
                let end = (first + piece).min(rows);
                matmul(k, &mut split[first..end], &part, &input, 1);
            }
            for r in 0..rows {
                let got = batched[b * rows + r];
                assert_eq!(got.to_bits(), single[r].to_bits(), "{} {ty:?}", k.name());
                assert_eq!(
                    split[r].to_bits(),
                    single[r].to_bits(),
                    "{} {ty:?}",
                    k.name()
                );
            }
        }
    }
}

#[test]
fn f16_products_convert_subnormals_zeros_and_infinities_exactly() {
    // Every f16 class: ±0, subnormals (smallest and largest), normals, the largest finite.
    let specials: [u16; 8] = [
        0x0000, 0x8000, 0x0001, 0x83FF, 0x3C00, 0xC500, 0x7BFF, 0x0400,
    ];
    let cols = 40;
    let row: Vec<u8> = (0..cols)
        .flat_map(|i| specials[i % 8].to_le_bytes())
        .collect();
    let w = GgmlMatrix {
        ty: GgmlType::F16,
        data: &row,
        cols,
    };
    for k in all_kernels() {
        // One input per column position: each product is a single weight, exactly.
        for at in 0..cols {
            let mut x = vec![0.0f32; cols];
            x[at] = 1.0;
            let input = prepare(k, GgmlType::F16, &x, &mut [], &mut []);
            let mut out = [0.0f32];
            matmul(k, &mut out, &w, &input, 1);
            let want = half::f16::from_bits(specials[at % 8]).to_f32();
            assert_eq!(out[0], want, "{} column {at}", k.name());
        }
        let inf_row = [h(f32::INFINITY), h(2.0)].concat();
        let w = GgmlMatrix {
            ty: GgmlType::F16,
            data: &inf_row,
            cols: 2,
        };
        let input = prepare(k, GgmlType::F16, &[1.0, 1.0], &mut [], &mut []);
        let mut out = [0.0f32];
        matmul(k, &mut out, &w, &input, 1);
        assert_eq!(out[0], f32::INFINITY, "{}", k.name());
    }
}
