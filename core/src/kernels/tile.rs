//! The f32 products of the SIMD kernels, written once over a vector type ([`Lanes`]).
//!
//! Every output is one row · input dot product computed the same way wherever it sits: one
//! vector accumulator, the columns in vector-wide steps from the start (the last step
//! zero-padded: the padding lanes add exact zeros), then the lanes added by [`Lanes::sum`]'s fixed tree. A tile of `R` rows by
//! `T` inputs only shares the loads, so a matrix–matrix product, a matrix–vector product
//! and a lone [`dot`] agree bit for bit: batching prompt tokens or sequences never changes
//! a result.
//!
//! The tiles are register blocks: `R · T` accumulators, `R + T` loads per step. Rows are
//! the outer loop, so a tile's rows stay in L1 while every input streams past them, and the
//! weights are read from memory once per product however many inputs there are.
#![allow(unsafe_code)]

/// A SIMD vector of `WIDTH` f32 lanes.
///
/// # Safety
/// Implementations require their processor features; callers of these functions (inside
/// functions that enable the features) must have checked them.
pub(super) trait Lanes: Copy {
    /// Lanes per vector (at most [`MAX_WIDTH`]).
    const WIDTH: usize;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// `WIDTH` floats from `p` (any alignment).
    unsafe fn load(p: *const f32) -> Self;
    /// `len < WIDTH` floats from `p`, the other lanes zero; nothing past them is read.
    unsafe fn load_partial(p: *const f32, len: usize) -> Self;
    /// `a · b + acc`, fused, lane by lane.
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self;
    /// The lanes' sum, always in the same order.
    unsafe fn sum(self) -> f32;
    /// Four [`Lanes::sum`]s at once (bit-identical to them; vector implementations
    /// override it with shuffles that keep each vector's order).
    #[inline(always)]
    unsafe fn sum4(v: [Self; 4]) -> [f32; 4] {
        // SAFETY: the caller's promise passes on.
        v.map(|v| unsafe { v.sum() })
    }
}

/// Rows per tile.
const ROWS: usize = 4;

/// `out[r * out_stride + t] = rows[r] · inputs[t]` for an `R × T` tile.
///
/// # Safety
/// `R` rows of `cols` floats at `rows`, `T` inputs of `cols` floats at `inputs`, and
/// outputs `r * out_stride + t` (`r < R`, `t < T`) writable at `out`; `L`'s features
/// available.
#[inline(always)]
unsafe fn tile<L: Lanes, const R: usize, const T: usize>(
    rows: *const f32,
    inputs: *const f32,
    cols: usize,
    out: *mut f32,
    out_stride: usize,
) {
    // SAFETY (whole body): every load reads `WIDTH` floats at `k + WIDTH <= cols` (or the
    // padded tail) inside one of the `R` rows or `T` inputs the caller vouches for; every
    // store is one of the outputs it vouches for.
    unsafe {
        let mut acc = [[L::zero(); T]; R];
        let full = cols - cols % L::WIDTH;
        let mut k = 0;
        while k < full {
            let x: [L; T] = core::array::from_fn(|t| L::load(inputs.add(t * cols + k)));
            for r in 0..R {
                let w = L::load(rows.add(r * cols + k));
                for t in 0..T {
                    acc[r][t] = L::mul_add(w, x[t], acc[r][t]);
                }
            }
            k += L::WIDTH;
        }
        if k < cols {
            let len = cols - k;
            let x: [L; T] =
                core::array::from_fn(|t| L::load_partial(inputs.add(t * cols + k), len));
            for (r, acc) in acc.iter_mut().enumerate() {
                let w = L::load_partial(rows.add(r * cols + k), len);
                for (acc, &x) in acc.iter_mut().zip(&x) {
                    *acc = L::mul_add(w, x, *acc);
                }
            }
        }
        // Sums four at a time, in row-major order across the tile.
        let at = |i: usize| (i / T, i % T);
        let mut i = 0;
        while i + 4 <= R * T {
            let sums = L::sum4(core::array::from_fn(|j| {
                let (r, t) = at(i + j);
                acc[r][t]
            }));
            for (j, sum) in sums.into_iter().enumerate() {
                let (r, t) = at(i + j);
                *out.add(r * out_stride + t) = sum;
            }
            i += 4;
        }
        for i in i..R * T {
            let (r, t) = at(i);
            *out.add(r * out_stride + t) = acc[r][t].sum();
        }
    }
}

/// `Σ a[i] · b[i]` over the shorter length, as one output of a tile.
///
/// # Safety
/// `L`'s features are available.
#[inline(always)]
pub(super) unsafe fn dot<L: Lanes>(a: &[f32], b: &[f32]) -> f32 {
    let cols = a.len().min(b.len());
    let mut out = 0.0;
    // SAFETY: one row and one input of `cols` floats, one output.
    unsafe { tile::<L, 1, 1>(a.as_ptr(), b.as_ptr(), cols, &mut out, 1) };
    out
}

/// `out[r * inputs + t] = rows[r] · inputs[t]` for every row of `rows` (`[rows][cols]`) and
/// every input of `inputs` (`[inputs][cols]`), in tiles of [`ROWS`] rows by `T` inputs.
///
/// # Safety
/// `L`'s features are available.
///
/// # Panics
/// If `cols` is 0, or `out` has room for fewer than rows × inputs results.
#[inline(always)]
pub(super) unsafe fn matmul<L: Lanes, const T: usize>(
    out: &mut [f32],
    rows: &[f32],
    inputs: &[f32],
    cols: usize,
) {
    let (n_rows, n_inputs) = (rows.len() / cols, inputs.len() / cols);
    assert!(out.len() >= n_rows * n_inputs, "matmul output too short");
    let (rows, inputs, out) = (rows.as_ptr(), inputs.as_ptr(), out.as_mut_ptr());
    // SAFETY (every tile): row `r` and input `t` below are within `n_rows` rows and
    // `n_inputs` inputs of `cols` floats, and output `r * n_inputs + t` within `out`, as
    // checked above.
    let at = |r: usize, t: usize| unsafe {
        (
            rows.add(r * cols),
            inputs.add(t * cols),
            out.add(r * n_inputs + t),
        )
    };
    let mut r = 0;
    while r + ROWS <= n_rows {
        let mut t = 0;
        while t + T <= n_inputs {
            let (w, x, o) = at(r, t);
            unsafe { tile::<L, ROWS, T>(w, x, cols, o, n_inputs) };
            t += T;
        }
        for t in t..n_inputs {
            let (w, x, o) = at(r, t);
            unsafe { tile::<L, ROWS, 1>(w, x, cols, o, n_inputs) };
        }
        r += ROWS;
    }
    for r in r..n_rows {
        let mut t = 0;
        while t + T <= n_inputs {
            let (w, x, o) = at(r, t);
            unsafe { tile::<L, 1, T>(w, x, cols, o, n_inputs) };
            t += T;
        }
        for t in t..n_inputs {
            let (w, x, o) = at(r, t);
            unsafe { tile::<L, 1, 1>(w, x, cols, o, n_inputs) };
        }
    }
}
