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
    /// Lanes per vector (at most 16).
    const WIDTH: usize;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// `WIDTH` floats from `p` (any alignment).
    unsafe fn load(p: *const f32) -> Self;
    /// `len < WIDTH` floats from `p`, the other lanes zero; nothing past them is read.
    unsafe fn load_partial(p: *const f32, len: usize) -> Self;
    /// Every lane `v`.
    unsafe fn splat(v: f32) -> Self;
    /// Stores the lanes at `p`.
    unsafe fn store(self, p: *mut f32);
    /// `a · b + acc`, fused, lane by lane.
    unsafe fn mul_add(a: Self, b: Self, acc: Self) -> Self;
    /// `a + b`, lane by lane.
    unsafe fn add(a: Self, b: Self) -> Self;
    /// Asks for the cache line at `p` ahead of use; never faults, whatever `p` is.
    #[inline(always)]
    fn prefetch(p: *const f32) {
        let _ = p;
    }
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

/// Vectors of some length `stride` floats apart from `start`.
#[derive(Clone, Copy)]
struct Strided {
    start: *const f32,
    stride: usize,
}

impl Strided {
    /// The vectors from the `first`-th on.
    ///
    /// # Safety
    /// They exist (the offset stays inside the allocation).
    #[inline(always)]
    unsafe fn skip(self, first: usize) -> Strided {
        Strided {
            // SAFETY: the caller's promise.
            start: unsafe { self.start.add(first * self.stride) },
            ..self
        }
    }
}

/// `out[t * out_stride + r] = rows[r] · inputs[t]` for an `R × T` tile.
///
/// # Safety
/// `R` rows of `cols` floats `rows.stride` apart at `rows.start`, `T` inputs likewise,
/// and outputs `t * out_stride + r` (`r < R`, `t < T`) writable at `out`; `L`'s features
/// available.
#[inline(always)]
unsafe fn tile<L: Lanes, const R: usize, const T: usize>(
    rows: Strided,
    inputs: Strided,
    cols: usize,
    out: *mut f32,
    out_stride: usize,
    prefetch: bool,
) {
    let row = |r: usize| rows.start.add(r * rows.stride);
    let input = |t: usize| inputs.start.add(t * inputs.stride);
    // SAFETY (whole body): every load reads `WIDTH` floats at `k + WIDTH <= cols` (or the
    // padded tail) inside one of the `R` rows or `T` inputs the caller vouches for; every
    // store is one of the outputs it vouches for.
    unsafe {
        let mut acc = [[L::zero(); T]; R];
        let full = cols - cols % L::WIDTH;
        let mut k = 0;
        while k < full {
            let x: [L; T] = core::array::from_fn(|t| L::load(input(t).add(k)));
            for (r, acc) in acc.iter_mut().enumerate() {
                // The same columns of the next tile's rows, on the first pass over these
                // rows: several interleaved row streams defeat the hardware prefetcher.
                // Past the matrix it is harmless.
                if prefetch {
                    L::prefetch(rows.start.wrapping_add((r + R) * rows.stride + k));
                }
                let w = L::load(row(r).add(k));
                for (acc, &x) in acc.iter_mut().zip(&x) {
                    *acc = L::mul_add(w, x, *acc);
                }
            }
            k += L::WIDTH;
        }
        if k < cols {
            let len = cols - k;
            let x: [L; T] = core::array::from_fn(|t| L::load_partial(input(t).add(k), len));
            for (r, acc) in acc.iter_mut().enumerate() {
                let w = L::load_partial(row(r).add(k), len);
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
                *out.add(t * out_stride + r) = sum;
            }
            i += 4;
        }
        for i in i..R * T {
            let (r, t) = at(i);
            *out.add(t * out_stride + r) = acc[r][t].sum();
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
    let (a, b) = (
        Strided {
            start: a.as_ptr(),
            stride: 0,
        },
        Strided {
            start: b.as_ptr(),
            stride: 0,
        },
    );
    let mut out = 0.0;
    // SAFETY: one row and one input of `cols` floats, one output.
    unsafe { tile::<L, 1, 1>(a, b, cols, &mut out, 1, true) };
    out
}

/// `out[t * rows + r] = rows[r] · inputs[t]` for every row of `rows` (`[rows][cols]`) and
/// every input of `inputs` (`[inputs][cols]`): the outputs of each input together.
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
    let rows = Strided {
        start: rows.as_ptr(),
        stride: cols,
    };
    let inputs = Strided {
        start: inputs.as_ptr(),
        stride: cols,
    };
    // SAFETY: `n_rows` rows and `n_inputs` inputs of `cols` floats, `cols` apart, are in
    // the slices, and `out` holds their products.
    unsafe { products::<L, T>(out.as_mut_ptr(), (rows, n_rows), (inputs, n_inputs), cols) }
}

/// `out[r] = rows[r] · x` for `out.len()` rows of `x.len()` floats, `stride` apart in
/// `rows` (a head's keys in a KV cache, say).
///
/// # Safety
/// `L`'s features are available.
///
/// # Panics
/// If `rows` is too short for `out.len()` rows.
#[inline(always)]
pub(super) unsafe fn strided_rows_times<L: Lanes>(
    out: &mut [f32],
    rows: &[f32],
    stride: usize,
    x: &[f32],
) {
    let (n_rows, cols) = (out.len(), x.len());
    if n_rows == 0 {
        return;
    }
    assert!(
        (n_rows - 1) * stride + cols <= rows.len(),
        "strided rows out of bounds"
    );
    let rows = Strided {
        start: rows.as_ptr(),
        stride,
    };
    let x = Strided {
        start: x.as_ptr(),
        stride: 0,
    };
    // SAFETY: the rows are inside `rows` (checked just above), `x` holds `cols` floats,
    // `out` one result per row.
    unsafe { products::<L, 1>(out.as_mut_ptr(), (rows, n_rows), (x, 1), cols) }
}

/// `out[t * rows + r] = rows[r] · inputs[t]` in tiles of [`ROWS`] rows by `T` inputs:
/// rows outer, so each tile's rows stay in L1 while every input streams past.
///
/// # Safety
/// The rows and inputs (`(vectors, count)`) of `cols` floats exist, `out` has room for
/// rows × inputs results, and `L`'s features are available.
#[inline(always)]
unsafe fn products<L: Lanes, const T: usize>(
    out: *mut f32,
    (rows, n_rows): (Strided, usize),
    (inputs, n_inputs): (Strided, usize),
    cols: usize,
) {
    // The `$r_count × $t_count` tile at row `$r`, input `$t`.
    macro_rules! tile_at {
        ($r:expr, $t:expr, $r_count:expr, $t_count:expr) => {
            // SAFETY: row `$r` and input `$t` start tiles among the `n_rows` rows and
            // `n_inputs` inputs, whose outputs are inside `out`, as the caller promised.
            unsafe {
                tile::<L, $r_count, $t_count>(
                    rows.skip($r),
                    inputs.skip($t),
                    cols,
                    out.add($t * n_rows + $r),
                    n_rows,
                    $t == 0,
                )
            }
        };
    }
    let mut r = 0;
    while r + ROWS <= n_rows {
        let mut t = 0;
        while t + T <= n_inputs {
            tile_at!(r, t, ROWS, T);
            t += T;
        }
        for t in t..n_inputs {
            tile_at!(r, t, ROWS, 1);
        }
        r += ROWS;
    }
    for r in r..n_rows {
        let mut t = 0;
        while t + T <= n_inputs {
            tile_at!(r, t, 1, T);
            t += T;
        }
        for t in t..n_inputs {
            tile_at!(r, t, 1, 1);
        }
    }
}

/// Columns [`weighted_rows`] keeps in registers at once, in vectors.
const SUM_VECTORS: usize = 4;

/// `out += Σ_t weights[t] · rows[t · stride..][..out.len()]`: (part of) an attention
/// head's weighted sum of its cached values. Per column, the even and the odd rows are
/// summed in two fused chains (in order), then both added to `out`.
///
/// # Safety
/// `L`'s features are available.
///
/// # Panics
/// If `rows` is too short for `weights.len()` rows.
#[inline(always)]
pub(super) unsafe fn weighted_rows<L: Lanes>(
    out: &mut [f32],
    weights: &[f32],
    rows: &[f32],
    stride: usize,
) {
    let len = out.len();
    if let Some(last) = weights.len().checked_sub(1) {
        assert!(
            last * stride + len <= rows.len(),
            "weighted rows out of bounds"
        );
    }
    let chunk = SUM_VECTORS * L::WIDTH;
    for first in (0..len).step_by(chunk) {
        let width = chunk.min(len - first);
        // SAFETY (loads): row `t < weights.len()` has `len` floats at `t * stride`, checked
        // above; the loads read columns `first..first + width` of it.
        let load = |t: usize, v: usize| unsafe {
            let p = rows.as_ptr().add(t * stride + first + v * L::WIDTH);
            match width - v * L::WIDTH {
                n if n >= L::WIDTH => L::load(p),
                n => L::load_partial(p, n),
            }
        };
        let vectors = width.div_ceil(L::WIDTH);
        // SAFETY: the features are available (the caller).
        let mut even = [unsafe { L::zero() }; SUM_VECTORS];
        let mut odd = even;
        let mut pairs = weights.chunks_exact(2);
        for (pair, t) in (&mut pairs).zip((0..).step_by(2)) {
            // SAFETY: as above.
            unsafe {
                let (w0, w1) = (L::splat(pair[0]), L::splat(pair[1]));
                for (v, (even, odd)) in even.iter_mut().zip(&mut odd).enumerate().take(vectors) {
                    *even = L::mul_add(w0, load(t, v), *even);
                    *odd = L::mul_add(w1, load(t + 1, v), *odd);
                }
            }
        }
        if let [w] = *pairs.remainder() {
            let t = weights.len() - 1;
            // SAFETY: as above.
            unsafe {
                let w = L::splat(w);
                for (v, even) in even.iter_mut().enumerate().take(vectors) {
                    *even = L::mul_add(w, load(t, v), *even);
                }
            }
        }
        for (v, (&even, &odd)) in even.iter().zip(&odd).enumerate().take(vectors) {
            let mut lanes = [0.0f32; 16];
            // SAFETY: `lanes` holds `WIDTH <= 16` floats.
            unsafe { L::add(even, odd).store(lanes.as_mut_ptr()) };
            let at = first + v * L::WIDTH;
            let n = L::WIDTH.min(len - at);
            for (o, &v) in out[at..at + n].iter_mut().zip(&lanes) {
                *o += v;
            }
        }
    }
}
