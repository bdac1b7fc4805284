//! Q8_0 products on AMX tiles (Intel's Advanced Matrix Extensions, `tdpbssd`), for
//! processors that have them and an OS that lets the program use them (`Kernels::detect`).
//!
//! One `tdpbssd` multiplies a tile of up to 16 weight rows by one 32-value block and up to
//! 16 inputs, 8192 exact int8 products summed per (row, input) into int32; the integer sums
//! then go to f32 with AVX-512 and are accumulated per block:
//! `acc = fma(f32(isum), d_weight · d_input, acc)`, block after block in order. Every
//! (row, input) value is computed that way whatever shares its tile, a lone input (a
//! generated token) included, so batching still never changes a result on these kernels.
//!
//! The weights are read straight from the Q8_0 rows (a tile load takes a row stride); the
//! inputs are repacked once per group of 16 into the layout `tdpbssd` wants (four bytes of
//! each input side by side), on the stack, in chunks of [`CHUNK_BLOCKS`] blocks so that
//! the stack buffer stays 36 KiB whatever the row length. The tile instructions are written
//! in inline assembly: their Rust intrinsics are not stable.
#![allow(unsafe_code)]

use core::arch::asm;
use core::arch::x86_64::*;

use super::Q8Blocks;

/// Whether this processor has AMX-TILE and AMX-INT8 and the OS grants this process their
/// use: on Linux (5.16 and later) a process must ask, once, with
/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`; elsewhere the answer is no.
pub fn available() -> bool {
    // `cpuid` is in the x86_64 baseline; leaf 7 exists on every processor with AVX2.
    let features = __cpuid_count(7, 0);
    let (tile, int8) = (features.edx >> 24 & 1 == 1, features.edx >> 25 & 1 == 1);
    tile && int8 && request_tiles()
}

/// Asks Linux for the tile data state (`arch_prctl` is system call 158; 0x1023 is
/// `ARCH_REQ_XCOMP_PERM`, 18 the tile data's state component); true if granted.
#[cfg(target_os = "linux")]
fn request_tiles() -> bool {
    let result: isize;
    // SAFETY: the system call reads two integers and changes nothing but this process's
    // permission; `syscall` clobbers rcx and r11, declared here.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") 158isize => result,
            in("rdi") 0x1023isize,
            in("rsi") 18isize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tiles() -> bool {
    false
}

/// Bytes of a Q8_0 block: an f16 scale, then 32 int8 values.
const BLOCK: usize = 34;

/// Rows and inputs of one tile (the hardware's limit: 16 rows of 64 bytes).
const TILE: usize = 16;

/// Blocks of 16 inputs repacked at a time: 2048 columns, 32 KiB of values.
const CHUNK_BLOCKS: usize = 64;

/// A tile configuration (`ldtilecfg`'s 64-byte operand, palette 1): `tmm0` = A (`rows` ×
/// 32 bytes of weights), `tmm1` = B (8 × `4 · inputs` bytes), `tmm2` = C (`rows` × `inputs`
/// int32); `tmm3..=5` the same, for a second block in flight.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new(rows: usize, inputs: usize) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut set = |tile: usize, bytes: usize, height: usize| {
            // Both fit their fields: bytes ≤ 64 and height ≤ 16.
            c[16 + 2 * tile] = bytes as u8;
            c[48 + tile] = height as u8;
        };
        for pair in [0, 3] {
            set(pair, 32, rows);
            set(pair + 1, 4 * inputs, 8);
            set(pair + 2, 4 * inputs, rows);
        }
        TileConfig(c)
    }
}

/// The tile state of this thread, configured while it lives and released when it drops
/// (so the OS need not save 8 KiB of tile data at every context switch).
struct Tiles {
    config: Option<(usize, usize)>,
}

impl Tiles {
    fn new() -> Tiles {
        Tiles { config: None }
    }

    /// Configures the tiles for `rows` × `inputs` unless they already are.
    ///
    /// # Safety
    /// The CPU must support AMX-TILE and the OS must have granted its use.
    unsafe fn configure(&mut self, rows: usize, inputs: usize) {
        if self.config != Some((rows, inputs)) {
            let config = TileConfig::new(rows, inputs);
            // SAFETY: a valid palette-1 configuration, 64 readable bytes; the caller's
            // promise that the tiles may be used.
            unsafe {
                asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly))
            };
            self.config = Some((rows, inputs));
        }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        if self.config.is_some() {
            // SAFETY: tiles were configured, so the CPU has them and their use was granted.
            unsafe { asm!("tilerelease", options(nostack, nomem)) };
        }
    }
}

/// `c = a · b` over one block: `a` the weight rows (`a_stride` apart), `b` the packed
/// inputs (`b_stride` apart), `c` the int32 sums (`c_stride` apart), in the shapes the
/// current configuration sets.
///
/// # Safety
/// Tiles configured (rows × inputs); every row the configuration reads or writes lies in
/// its buffer.
#[inline(always)]
unsafe fn block_product(
    a: *const u8,
    a_stride: usize,
    b: *const u8,
    b_stride: usize,
    c: *mut i32,
    c_stride: usize,
) {
    // SAFETY: the caller's bounds and configuration.
    unsafe {
        asm!(
            "tileloadd tmm0, [{a} + {sa}*1]",
            "tileloadd tmm1, [{b} + {sb}*1]",
            "tilezero tmm2",
            "tdpbssd tmm2, tmm0, tmm1",
            "tilestored [{c} + {sc}*1], tmm2",
            a = in(reg) a, sa = in(reg) a_stride,
            b = in(reg) b, sb = in(reg) b_stride,
            c = in(reg) c, sc = in(reg) c_stride,
            options(nostack),
        );
    }
}

/// [`block_product`] for two blocks at once, on two sets of tiles (`tmm0..=2` and
/// `tmm3..=5`), so that the second's loads and products overlap the first's.
///
/// # Safety
/// As [`block_product`]'s, for both blocks.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block_pair(
    (a0, a1): (*const u8, *const u8),
    a_stride: usize,
    (b0, b1): (*const u8, *const u8),
    b_stride: usize,
    (c0, c1): (*mut i32, *mut i32),
    c_stride: usize,
) {
    // SAFETY: the caller's bounds and configuration.
    unsafe {
        asm!(
            "tileloadd tmm0, [{a0} + {sa}*1]",
            "tileloadd tmm1, [{b0} + {sb}*1]",
            "tilezero tmm2",
            "tileloadd tmm3, [{a1} + {sa}*1]",
            "tileloadd tmm4, [{b1} + {sb}*1]",
            "tilezero tmm5",
            "tdpbssd tmm2, tmm0, tmm1",
            "tdpbssd tmm5, tmm3, tmm4",
            "tilestored [{c0} + {sc}*1], tmm2",
            "tilestored [{c1} + {sc}*1], tmm5",
            a0 = in(reg) a0, a1 = in(reg) a1, sa = in(reg) a_stride,
            b0 = in(reg) b0, b1 = in(reg) b1, sb = in(reg) b_stride,
            c0 = in(reg) c0, c1 = in(reg) c1, sc = in(reg) c_stride,
            options(nostack),
        );
    }
}

/// The f16 scales of block `b` of `rows` rows from `first` (`row_bytes` apart) as f32,
/// lane `r` for row `r`, zero past `rows`.
///
/// # Safety
/// AVX-512F and F16C; the rows hold block `b`; `15 · row_bytes` fits an i32.
#[inline(always)]
unsafe fn weight_scales(first: *const u8, row_bytes: usize, rows: usize, b: usize) -> __m512 {
    let lanes: __mmask16 = if rows >= TILE {
        0xFFFF
    } else {
        (1u16 << rows) - 1
    };
    // SAFETY: each lane reads 4 bytes at a block's start (its scale and two values), which
    // lie in the row; the caller bounds the offsets.
    unsafe {
        let offsets = _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(row_bytes as i32),
        );
        let base = first.add(BLOCK * b);
        let words =
            _mm512_mask_i32gather_epi32::<1>(_mm512_setzero_si512(), lanes, offsets, base.cast());
        _mm512_cvtph_ps(_mm512_cvtepi32_epi16(words))
    }
}

/// `out[r · row_step + t · input_step] = row r · input t` for the Q8_0 rows of `data`
/// (`row_bytes` each) and the `inputs` inputs of `x`, over the blocks both have (as
/// `x86_ggml::q8_matmul`). `false` (nothing written) if the shapes are past what the
/// kernel indexes (rows over 128 MiB).
///
/// # Safety
/// The CPU must support AMX-TILE, AMX-INT8, AVX-512F/BW/VL and F16C, and the OS must have
/// granted the tiles' use to this process.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c,fma,avx2")]
pub unsafe fn q8_0_matmul(
    out: &mut [f32],
    (row_step, input_step): (usize, usize),
    data: &[u8],
    row_bytes: usize,
    x: Q8Blocks<'_>,
    inputs: usize,
) -> bool {
    if row_bytes == 0 || inputs == 0 {
        return true;
    }
    if row_bytes > (i32::MAX as usize) / TILE {
        return false;
    }
    let rows = data.len() / row_bytes;
    let (cols, groups) = (x.values.len() / inputs, x.scales.len() / inputs);
    let blocks = (row_bytes / BLOCK).min(cols / 32).min(groups);
    let mut tiles = Tiles::new();
    let shape = Shape {
        data,
        row_bytes,
        rows,
        blocks,
    };
    let mut out = Out {
        out,
        row_step,
        input_step,
    };
    if inputs == 1 {
        // SAFETY: the caller's features and grant.
        unsafe { one_input(&mut tiles, &shape, &x, &mut out) };
        return true;
    }
    let mut packed = Packed::new();
    for first_input in (0..inputs).step_by(TILE) {
        let count = TILE.min(inputs - first_input);
        for first_block in (0..blocks).step_by(CHUNK_BLOCKS) {
            let chunk = CHUNK_BLOCKS.min(blocks - first_block);
            packed.pack(
                &x,
                cols,
                groups,
                first_input..first_input + count,
                first_block,
                chunk,
            );
            // SAFETY: the caller's features and grant; `packed` holds `chunk` blocks.
            unsafe {
                input_group(
                    &mut tiles,
                    &shape,
                    &packed,
                    (first_input, count),
                    first_block,
                    chunk,
                    &mut out,
                )
            };
        }
    }
    true
}

/// Where a product's results go: `out[r · row_step + t · input_step]` for row `r` and
/// input `t` (outside `out`: dropped, and read as 0).
struct Out<'o> {
    out: &'o mut [f32],
    row_step: usize,
    input_step: usize,
}

impl Out<'_> {
    fn get(&self, r: usize, t: usize) -> f32 {
        self.out
            .get(r * self.row_step + t * self.input_step)
            .copied()
            .unwrap_or(0.0)
    }

    fn put(&mut self, r: usize, t: usize, v: f32) {
        if let Some(o) = self.out.get_mut(r * self.row_step + t * self.input_step) {
            *o = v;
        }
    }
}

/// The weight matrix of a product.
struct Shape<'d> {
    data: &'d [u8],
    row_bytes: usize,
    rows: usize,
    /// Blocks of every row (and of every input) taken.
    blocks: usize,
}

/// One chunk of blocks of up to 16 inputs in `tdpbssd`'s B layout: for block `k`, row `j`
/// holds bytes `4j..4j + 4` of each input's block side by side; and each block's input
/// scales, zero for missing inputs.
#[repr(C, align(64))]
struct Packed {
    values: [[[u8; 4 * TILE]; 8]; CHUNK_BLOCKS],
    scales: [[f32; TILE]; CHUNK_BLOCKS],
}

impl Packed {
    fn new() -> Packed {
        Packed {
            values: [[[0; 4 * TILE]; 8]; CHUNK_BLOCKS],
            scales: [[0.0; TILE]; CHUNK_BLOCKS],
        }
    }

    /// Packs blocks `first..first + chunk` of the inputs `range` of `x` (`cols` values and
    /// `groups` scales each); the lanes of missing inputs become zero.
    fn pack(
        &mut self,
        x: &Q8Blocks<'_>,
        cols: usize,
        groups: usize,
        range: core::ops::Range<usize>,
        first: usize,
        chunk: usize,
    ) {
        for k in 0..chunk {
            let b = first + k;
            for slot in 0..TILE {
                let t = range.start + slot;
                let present = t < range.end;
                let values = x
                    .values
                    .get(t * cols + 32 * b..t * cols + 32 * b + 32)
                    .filter(|_| present);
                for j in 0..8 {
                    let word = self.values[k][j].get_mut(4 * slot..4 * slot + 4);
                    if let Some(word) = word {
                        match values {
                            Some(v) => {
                                for (w, &q) in word.iter_mut().zip(&v[4 * j..4 * j + 4]) {
                                    *w = q as u8;
                                }
                            }
                            None => word.fill(0),
                        }
                    }
                }
                self.scales[k][slot] = if present {
                    x.scales.get(t * groups + b).copied().unwrap_or(0.0)
                } else {
                    0.0
                };
            }
        }
    }
}

/// The rows of `shape` times one group of packed inputs (`first_input`, `count` of them)
/// over blocks `first_block..+chunk`, accumulating onto what earlier chunks put.
///
/// # Safety
/// As [`q8_0_matmul`]'s; `packed` holds the chunk.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c,fma,avx2")]
unsafe fn input_group(
    tiles: &mut Tiles,
    shape: &Shape<'_>,
    packed: &Packed,
    (first_input, count): (usize, usize),
    first_block: usize,
    chunk: usize,
    out: &mut Out<'_>,
) {
    let mut sums = [Aligned([[0i32; TILE]; TILE]), Aligned([[0i32; TILE]; TILE])];
    let mut scales = Aligned([0.0f32; TILE]);
    let mut partial = Aligned([[0.0f32; TILE]; TILE]);
    let lanes: __mmask16 = if count >= TILE {
        0xFFFF
    } else {
        (1u16 << count) - 1
    };
    for first_row in (0..shape.rows).step_by(TILE) {
        let height = TILE.min(shape.rows - first_row);
        // SAFETY: the caller's grant.
        unsafe { tiles.configure(height, TILE) };
        let base = shape.data[first_row * shape.row_bytes..].as_ptr();
        let mut acc = [_mm512_setzero_ps(); TILE];
        if first_block > 0 {
            // The chunks before left their sums in `out`: carry on from them.
            for (r, a) in acc.iter_mut().enumerate().take(height) {
                for t in 0..count {
                    partial.0[r][t] = out.get(first_row + r, first_input + t);
                }
                // SAFETY: 16 aligned f32.
                *a = unsafe { _mm512_load_ps(partial.0[r].as_ptr()) };
            }
        }
        let mut k = 0;
        while k < chunk {
            let two = k + 1 < chunk;
            let b = first_block + k;
            let a = |b: usize| base.wrapping_add(BLOCK * b + 2);
            let packed_block = |k: usize| packed.values[k.min(CHUNK_BLOCKS - 1)].as_ptr().cast();
            // SAFETY: rows `first_row..+height` hold blocks `b` and, if `two`, `b + 1`
            // (both < blocks ≤ row_bytes / 34), whose values are bytes 2..34; a packed
            // block is 8 rows of 64 bytes; each of `sums` has 16 rows of 64 bytes.
            unsafe {
                let c = (sums[0].0.as_mut_ptr().cast(), sums[1].0.as_mut_ptr().cast());
                if two {
                    let (pa, pb) = ((a(b), a(b + 1)), (packed_block(k), packed_block(k + 1)));
                    block_pair(pa, shape.row_bytes, pb, 4 * TILE, c, 4 * TILE);
                } else {
                    block_product(
                        a(b),
                        shape.row_bytes,
                        packed_block(k),
                        4 * TILE,
                        c.0,
                        4 * TILE,
                    );
                }
            }
            // As in `one_input`: the next tile's rows, a line ahead.
            for r in 0..TILE {
                let ahead = a(b).wrapping_add((TILE + r) * shape.row_bytes + 64);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
            }
            for (i, sums) in sums.iter().enumerate().take(1 + usize::from(two)) {
                // SAFETY: the caller's features; the rows hold block `b + i`.
                let dw = unsafe { weight_scales(base, shape.row_bytes, height, b + i) };
                // SAFETY: 16 aligned f32.
                unsafe { _mm512_store_ps(scales.0.as_mut_ptr(), dw) };
                let xs = _mm512_maskz_loadu_ps(lanes, packed.scales[k + i].as_ptr());
                for ((acc, row), &dw) in acc.iter_mut().zip(&sums.0).zip(&scales.0) {
                    // SAFETY: `row` is 16 aligned i32.
                    let isum = unsafe { _mm512_load_si512(row.as_ptr().cast()) };
                    let scale = _mm512_mul_ps(_mm512_set1_ps(dw), xs);
                    *acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, *acc);
                }
            }
            k += 2;
        }
        for (r, a) in acc.iter().enumerate().take(height) {
            // SAFETY: 16 aligned f32.
            unsafe { _mm512_store_ps(partial.0[r].as_mut_ptr(), *a) };
            for t in 0..count {
                out.put(first_row + r, first_input + t, partial.0[r][t]);
            }
        }
    }
}

/// 64-byte alignment for the buffers tiles and vectors load and store.
#[repr(C, align(64))]
struct Aligned<T>(T);

/// The rows of `shape` times a single input (a generated token): the input's values are
/// B as they are (8 rows of 4 bytes), and C is one int32 per row.
///
/// # Safety
/// As [`q8_0_matmul`]'s.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c,fma,avx2")]
unsafe fn one_input(tiles: &mut Tiles, shape: &Shape<'_>, x: &Q8Blocks<'_>, out: &mut Out<'_>) {
    let mut sums = [Aligned([0i32; TILE]), Aligned([0i32; TILE])];
    let mut values = Aligned([0.0f32; TILE]);
    for first_row in (0..shape.rows).step_by(TILE) {
        let height = TILE.min(shape.rows - first_row);
        // SAFETY: the caller's grant.
        unsafe { tiles.configure(height, 1) };
        let base = shape.data[first_row * shape.row_bytes..].as_ptr();
        let mut acc = _mm512_setzero_ps();
        let a = |b: usize| base.wrapping_add(BLOCK * b + 2);
        let input = |b: usize| x.values.as_ptr().wrapping_add(32 * b).cast::<u8>();
        let mut b = 0;
        while b < shape.blocks {
            let two = b + 1 < shape.blocks;
            // SAFETY: as in `input_group`; the input's blocks `b` (and `b + 1` if `two`)
            // are 32 bytes at 32·b (b < cols / 32), read as 8 rows of 4; each of `sums`
            // takes `height` int32.
            unsafe {
                let c = (sums[0].0.as_mut_ptr(), sums[1].0.as_mut_ptr());
                if two {
                    let (pa, pb) = ((a(b), a(b + 1)), (input(b), input(b + 1)));
                    block_pair(pa, shape.row_bytes, pb, 4, c, 4);
                } else {
                    block_product(a(b), shape.row_bytes, input(b), 4, c.0, 4);
                }
            }
            // The next tile's rows, a line ahead: sixteen interleaved rows defeat the
            // hardware prefetcher. A prefetch never faults, past the matrix's end neither.
            for r in 0..TILE {
                let ahead = a(b).wrapping_add((TILE + r) * shape.row_bytes + 64);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
            }
            for (i, sums) in sums.iter().enumerate().take(1 + usize::from(two)) {
                // SAFETY: the rows hold block `b + i`; the input has a scale for it.
                unsafe {
                    let dw = weight_scales(base, shape.row_bytes, height, b + i);
                    let xs = _mm512_set1_ps(*x.scales.get_unchecked(b + i));
                    let isum = _mm512_load_si512(sums.0.as_ptr().cast());
                    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, xs), acc);
                }
            }
            b += 2;
        }
        // SAFETY: 16 aligned f32.
        unsafe { _mm512_store_ps(values.0.as_mut_ptr(), acc) };
        for (r, &v) in values.0.iter().enumerate().take(height) {
            out.put(first_row + r, 0, v);
        }
    }
}
