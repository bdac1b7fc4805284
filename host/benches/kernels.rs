//! Micro-benchmarks of the inner loops, scalar against the CPU's SIMD:
//! `cargo bench -p llama2-cli --bench kernels`.

use divan::{black_box, Bencher};
use llama2_cli::synthetic::random_values;
use llama2_core::gguf::GgmlType;
use llama2_core::quant::{self, GgmlMatrix};
use llama2_core::{Kernels, Q8Matrix, Q8Vector};

fn main() {
    divan::main();
}

/// Which loops a benchmark runs.
const KERNELS: &[&str] = &["scalar", "detected"];

fn kernels(name: &str) -> Kernels {
    match name {
        "scalar" => Kernels::scalar(),
        "avx2" => avx2_without_vnni(),
        "no-amx" => Kernels::detect().without_amx(),
        _ => Kernels::detect(),
    }
}

/// AVX2+FMA (and F16C) without AVX512-VNNI, where the CPU has them: the `maddubs` sums the
/// VNNI ones replace; otherwise what the CPU has.
fn avx2_without_vnni() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
    {
        // SAFETY: the features were just detected.
        return unsafe { Kernels::avx2_fma_unchecked().with_f16c_unchecked() };
    }
    Kernels::detect()
}

/// `n` deterministic values in [-0.5, 0.5).
fn values(n: usize, seed: u64) -> Vec<f32> {
    random_values(seed).take(n).collect()
}

/// f32 dot product of a 768-wide row (stories110M's `dim`).
#[divan::bench(args = KERNELS)]
fn dot_768(bencher: Bencher, name: &str) {
    let k = kernels(name);
    let (a, b) = (values(768, 1), values(768, 2));
    bencher
        .counter(divan::counter::ItemsCount::new(768usize))
        .bench(|| k.dot(black_box(&a), black_box(&b)));
}

/// f32 matrix–matrix product, `rows × cols` weights times `inputs` inputs (`inputs = 1`
/// is generation's matrix–vector product); items are multiply-adds.
fn matmul_f32(bencher: Bencher, name: &str, rows: usize, cols: usize, inputs: usize) {
    let k = kernels(name);
    let (w, x) = (values(rows * cols, 1), values(inputs * cols, 2));
    let mut out = vec![0.0f32; rows * inputs];
    bencher
        .counter(divan::counter::ItemsCount::new(rows * cols * inputs))
        .bench_local(|| k.matmul_f32(black_box(&mut out), black_box(&w), black_box(&x), cols));
}

/// stories15M's `w1` (768 × 288) times a 128-token prompt.
#[divan::bench(args = KERNELS)]
fn matmul_f32_768x288_by_128(bencher: Bencher, name: &str) {
    matmul_f32(bencher, name, 768, 288, 128);
}

/// stories110M's `wq` (768 × 768) times a 128-token prompt.
#[divan::bench(args = KERNELS)]
fn matmul_f32_768x768_by_128(bencher: Bencher, name: &str) {
    matmul_f32(bencher, name, 768, 768, 128);
}

/// stories110M's `w2` (768 × 2048) times a 128-token prompt.
#[divan::bench(args = KERNELS)]
fn matmul_f32_768x2048_by_128(bencher: Bencher, name: &str) {
    matmul_f32(bencher, name, 768, 2048, 128);
}

/// stories42M's `w1` (1376 × 512) times a 128-token prompt.
#[divan::bench(args = KERNELS)]
fn matmul_f32_1376x512_by_128(bencher: Bencher, name: &str) {
    matmul_f32(bencher, name, 1376, 512, 128);
}

/// stories42M's `w2` (512 × 1376) times a 128-token prompt.
#[divan::bench(args = KERNELS)]
fn matmul_f32_512x1376_by_128(bencher: Bencher, name: &str) {
    matmul_f32(bencher, name, 512, 1376, 128);
}

/// stories110M's `w1` (2048 × 768) times one token (generation), weights in L2.
#[divan::bench(args = KERNELS)]
fn matmul_f32_2048x768_by_1(bencher: Bencher, name: &str) {
    matmul_f32(bencher, name, 2048, 768, 1);
}

/// Softmax over 256 attention scores.
#[divan::bench(args = KERNELS)]
fn softmax_256(bencher: Bencher, name: &str) {
    let k = kernels(name);
    let scores: Vec<f32> = values(256, 3).iter().map(|v| v * 20.0).collect();
    bencher.bench(|| {
        let mut x = scores.clone();
        k.softmax(black_box(&mut x));
        x
    });
}

/// Q8 matrix-vector product of `rows × cols` in groups of `group`.
fn q8_matvec(bencher: Bencher, name: &str, rows: usize, cols: usize, group: usize) {
    let k = kernels(name);
    let to_i8 = |v: &[f32]| v.iter().map(|v| (v * 254.0) as i8).collect::<Vec<i8>>();
    let w = to_i8(&values(rows * cols, 4));
    let ws: Vec<u8> = values(rows * cols / group, 5)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let x = to_i8(&values(cols, 6));
    let xs = values(cols / group, 7);
    let mut out = vec![0.0f32; rows];
    bencher
        .counter(divan::counter::ItemsCount::new(rows * cols))
        .bench_local(|| {
            let rows_view = Q8Matrix {
                values: &w,
                scales: &ws,
                group,
                cols,
            };
            let x_view = Q8Vector {
                values: &x,
                scales: &xs,
            };
            k.q8_matvec(black_box(&mut out), rows_view, x_view);
        });
}

/// stories15M's `w1`: 768 × 288, group 32 (fits in L2: compute-bound).
#[divan::bench(args = KERNELS)]
fn q8_matvec_768x288_g32(bencher: Bencher, name: &str) {
    q8_matvec(bencher, name, 768, 288, 32);
}

/// stories110M's `wq`: 768 × 768, group 64.
#[divan::bench(args = KERNELS)]
fn q8_matvec_768x768_g64(bencher: Bencher, name: &str) {
    q8_matvec(bencher, name, 768, 768, 64);
}

/// The ggml weight types with SIMD products, each with and without them.
/// (`avx2`: the quantized kernels without AVX512-VNNI's sums, where the CPU has VNNI;
/// `no-amx`: without AMX tiles, where the CPU has them.)
const GGML_CASES: &[&str] = &[
    "f16/scalar",
    "f16/detected",
    "q8_0/scalar",
    "q8_0/avx2",
    "q8_0/no-amx",
    "q8_0/detected",
    "q4_0/scalar",
    "q4_0/avx2",
    "q4_0/no-amx",
    "q4_0/detected",
    "q4_k/scalar",
    "q4_k/avx2",
    "q4_k/detected",
    "q6_k/scalar",
    "q6_k/avx2",
    "q6_k/detected",
];

/// The quantized types' SIMD kernels on a matrix larger than the caches, where they should
/// read at the memory's speed (bytes/s reported).
const GGML_WALL_CASES: &[&str] = &[
    "q8_0/avx2",
    "q8_0/no-amx",
    "q8_0/detected",
    "q4_0/avx2",
    "q4_0/no-amx",
    "q4_0/detected",
    "q4_k/avx2",
    "q4_k/detected",
    "q6_k/detected",
];

/// `rows × cols` random weights of `ty`: random bytes, with every block's f16 scales set to
/// 1/16 (so no block holds infinities or NaNs).
fn ggml_weights(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let block = ty.block().expect("a sized type");
    let bytes: Vec<u8> = random_values(8)
        .take(rows * cols / block.elements * block.bytes)
        .map(|v| ((v + 0.5) * 256.0) as u8)
        .collect();
    let scale = 0x2C00u16.to_le_bytes(); // f16 1/16
    let scales: &[usize] = match ty {
        GgmlType::F16 => {
            // Clear the top exponent bit of every value: |w| < 2, all finite.
            return bytes
                .chunks_exact(2)
                .flat_map(|b| (u16::from_le_bytes([b[0], b[1]]) & 0xBFFF).to_le_bytes())
                .collect();
        }
        GgmlType::Q4_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[0],
    };
    let mut bytes = bytes;
    for b in bytes.chunks_exact_mut(block.bytes) {
        for &at in scales {
            b[at..at + 2].copy_from_slice(&scale);
        }
    }
    bytes
}

/// The kernels of the prompt products (tiles of rows by inputs; AMX where the CPU has it).
const GGML_BATCH_CASES: &[&str] = &[
    "q8_0/avx2",
    "q8_0/no-amx",
    "q8_0/detected",
    "q4_0/avx2",
    "q4_0/no-amx",
    "q4_0/detected",
];

/// A ggml matrix-vector product of `rows × cols`, input preparation (quantization) included.
fn ggml_matvec(bencher: Bencher, case: &str, rows: usize, cols: usize) {
    ggml_matvec_counted(bencher, case, (rows, cols, 1), false);
}

/// [`ggml_matvec`] by `inputs` inputs, counting multiply-adds or (`bytes`) the matrix's
/// bytes.
fn ggml_matvec_counted(
    bencher: Bencher,
    case: &str,
    (rows, cols, inputs): (usize, usize, usize),
    bytes: bool,
) {
    let (ty, name) = case.split_once('/').expect("type/kernels");
    let ty = match ty {
        "f16" => GgmlType::F16,
        "q8_0" => GgmlType::Q8_0,
        "q4_0" => GgmlType::Q4_0,
        "q4_k" => GgmlType::Q4_K,
        _ => GgmlType::Q6_K,
    };
    let k = kernels(name);
    let data = ggml_weights(ty, rows, cols);
    let w = GgmlMatrix {
        ty,
        data: &data,
        cols,
    };
    let x = values(cols * inputs, 9);
    let (mut qv, mut qs) = (vec![0i8; x.len()], vec![0.0f32; x.len()]);
    let mut out = vec![0.0f32; rows * inputs];
    let bencher = if bytes {
        bencher.counter(divan::counter::BytesCount::new(data.len()))
    } else {
        bencher.counter(divan::counter::ItemsCount::new(rows * cols * inputs))
    };
    bencher.bench_local(|| {
        let input = quant::prepare(k, ty, black_box(&x), &mut qv, &mut qs);
        quant::matmul(k, black_box(&mut out), &w, &input, inputs);
    });
}

/// stories110M's `wq` shape: 768 × 768.
#[divan::bench(args = GGML_CASES)]
fn ggml_matvec_768x768(bencher: Bencher, case: &str) {
    ggml_matvec(bencher, case, 768, 768);
}

/// 288 rows of 768 (stories15M's `w2` shape).
#[divan::bench(args = GGML_CASES)]
fn ggml_matvec_288x768(bencher: Bencher, case: &str) {
    ggml_matvec(bencher, case, 288, 768);
}

/// 16384 rows of 4096 (38 to 71 MB of weights, more than most last-level caches hold):
/// the memory wall.
#[divan::bench(args = GGML_WALL_CASES, sample_count = 20)]
fn ggml_matvec_16384x4096(bencher: Bencher, case: &str) {
    ggml_matvec_counted(bencher, case, (16384, 4096, 1), true);
}

/// stories110M's `wq` shape by a prompt of 128 tokens.
#[divan::bench(args = GGML_BATCH_CASES)]
fn ggml_matmul_768x768_by_128(bencher: Bencher, case: &str) {
    ggml_matvec_counted(bencher, case, (768, 768, 128), false);
}

/// stories110M's `w2` shape (rows of 2048: the weights repacked in chunks) by 128 tokens.
#[divan::bench(args = GGML_BATCH_CASES)]
fn ggml_matmul_768x2048_by_128(bencher: Bencher, case: &str) {
    ggml_matvec_counted(bencher, case, (768, 2048, 128), false);
}
