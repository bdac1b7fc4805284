//! Micro-benchmarks of the inner loops, scalar against the CPU's SIMD:
//! `cargo bench -p llama2-cli --bench kernels`.

use divan::{black_box, Bencher};
use llama2_cli::synthetic::random_values;
use llama2_core::{Kernels, Q8Matrix, Q8Vector};

fn main() {
    divan::main();
}

/// Which loops a benchmark runs.
const KERNELS: &[&str] = &["scalar", "detected"];

fn kernels(name: &str) -> Kernels {
    match name {
        "scalar" => Kernels::scalar(),
        _ => Kernels::detect(),
    }
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
