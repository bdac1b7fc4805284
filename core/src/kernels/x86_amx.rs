//! Q8_0 and Q4_0 products on AMX tiles (Intel's Advanced Matrix Extensions, `tdpbssd`),
//! for processors that have them and an OS that lets the program use them
//! (`Kernels::detect`).
//!
//! One `tdpbssd` multiplies the 32 values of one block of up to 16 inputs by those of 16
//! weight rows: 8192 exact int8 products, summed per (input, row) into int32. The integer
//! sums then go to f32 with AVX-512 and are accumulated block after block in order,
//! `acc = fma(f32(isum), d_weight · d_input, acc)`.
//!
//! Batches ([`matmul`]) take the inputs' blocks straight from the quantized input (a tile
//! load takes a row stride) and repack the weights of 16 rows into the layout `tdpbssd`
//! wants for its second operand (four values of each row side by side; Q4_0's nibbles
//! unpacked on the way) once for all the inputs, on the stack, [`CHUNK_BLOCKS`] blocks at
//! a time, so the buffer stays 36 KiB whatever the row length. A lone input (a generated
//! token) is faster without tiles: AVX512-VNNI computes the same exact integer sums per
//! row and block, and the same float steps follow. So every (row, input) value is the
//! same whatever shares its tile or pass, and batching still never changes a result on
//! these kernels. The tile instructions are written in inline assembly: their Rust
//! intrinsics are not stable.
#![allow(unsafe_code)]

use core::arch::asm;
use core::arch::x86_64::*;

use super::Q8Blocks;
use crate::gguf::GgmlType;
/// Whether this processor has AMX-TILE and AMX-INT8 and the OS grants this process their
/// use: on Linux (5.16 and later) a process must ask, once, with
/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`; elsewhere the answer is no.
/// (Only hosts detect at run time: feature `std`, and the tests.)
#[cfg(any(feature = "std", test))]
pub fn available() -> bool {
    // `cpuid` is in the x86_64 baseline; leaf 7 exists on every processor with AVX2.
    let features = __cpuid_count(7, 0);
    let (tile, int8) = (features.edx >> 24 & 1 == 1, features.edx >> 25 & 1 == 1);
    tile && int8 && request_tiles()
}

/// Asks Linux for the tile data state (`arch_prctl` is system call 158; 0x1023 is
/// `ARCH_REQ_XCOMP_PERM`, 18 the tile data's state component); true if granted.
#[cfg(all(target_os = "linux", any(feature = "std", test)))]
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

#[cfg(all(not(target_os = "linux"), any(feature = "std", test)))]
fn request_tiles() -> bool {
    false
}

/// Rows (and inputs) of one tile: the hardware's limit of 16 rows of 64 bytes.
const TILE: usize = 16;

/// Blocks of 16 rows repacked at a time: 2048 columns, 32 KiB.
const CHUNK_BLOCKS: usize = 64;

/// A tile configuration (`ldtilecfg`'s 64-byte operand, palette 1): `tmm0` = A (`height`
/// × 32 bytes), `tmm1` = B (8 × `4 · width` bytes), `tmm2` = C (`height` × `width` int32);
/// `tmm3..=5` the same, for a second block in flight.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn new(height: usize, width: usize) -> TileConfig {
        let mut c = [0u8; 64];
        c[0] = 1;
        let mut set = |tile: usize, bytes: usize, rows: usize| {
            // Both fit their fields: bytes ≤ 64 and rows ≤ 16.
            c[16 + 2 * tile] = bytes as u8;
            c[48 + tile] = rows as u8;
        };
        for first in [0, 3] {
            set(first, 32, height);
            set(first + 1, 4 * width, 8);
            set(first + 2, 4 * width, height);
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

    /// Configures the tiles for A and C of `rows` rows and B and C `inputs` int32 wide
    /// (`TileConfig::new`) unless they already are.
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

/// `c = a · b` over one group of 32 values: `a` the inputs' groups (`a_stride` apart),
/// `b` 16 weight rows' group repacked (`b_stride` apart), `c` the int32 sums (`c_stride`
/// apart), in the shapes the current configuration sets.
///
/// # Safety
/// Tiles configured; every row the configuration reads or writes lies in its buffer.
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

/// Four 16-bit shifts by a nibble.
const NIBBLE_SHIFTS: i64 = 0x0004_0004_0004_0004;

/// A weight type the tiles multiply: its block layout and how its values become int8.
/// A block holds [`Weights::GROUPS`] groups of 32 values; groups are numbered across the
/// row (`g`), blocks too.
trait Weights {
    /// Bytes of a block.
    const BYTES: usize;
    /// Groups of 32 values in a block.
    const GROUPS: usize;
    /// What the unsigned values of [`Weights::unsigned_pair`] exceed the values by.
    const OFFSET: i32;
    /// Whether a group's value is `scale · q - min` (else `scale · q`).
    const MINS: bool;

    /// The factors of each group of block `block` of `height` rows from `first`
    /// (`row_bytes` apart), lane `r` for row `r` (zero past `height`): `scales[i]` and
    /// `mins[i]` for its group `i`.
    ///
    /// By default (one group per block, no minimums) the f16 scale at the block's start.
    ///
    /// # Safety
    /// AVX-512F and F16C; rows `..height` hold the block; `15 · row_bytes` fits an i32.
    #[inline(always)]
    unsafe fn factors(
        first: *const u8,
        row_bytes: usize,
        height: usize,
        block: usize,
        scales: &mut [__m512; 8],
        _mins: &mut [__m512; 8],
    ) {
        // SAFETY: forwarded.
        scales[0] = unsafe { one_scale(first, row_bytes, height, block, Self::BYTES) };
    }

    /// The int8 values of group `g` of 16 rows from `first` (`row_bytes` apart) in
    /// `tdpbssd`'s B layout: element `r` of vector `j` holds values `4j..4j + 4` of row
    /// `r`; rows past `height` are zero.
    ///
    /// # Safety
    /// AVX-512F/BW; rows `..height` hold group `g`; `15 · row_bytes` fits an i32.
    unsafe fn packed(first: *const u8, row_bytes: usize, height: usize, g: usize) -> [__m512i; 8];

    /// The values of group `g` of the rows at `first` and `second` plus
    /// [`Weights::OFFSET`], as unsigned bytes: the first row's in the low 256 bits.
    ///
    /// # Safety
    /// AVX-512F/BW; both rows hold group `g`.
    unsafe fn unsigned_pair(first: *const u8, second: *const u8, g: usize) -> __m512i;
}

/// Q8_0: an f16 scale, then 32 int8 values.
struct Q8_0;

/// Q4_0: an f16 scale, then 16 bytes: value `i` the low nibble of byte `i` and value
/// `i + 16` its high nibble, each minus 8.
struct Q4_0;

/// Q4_K: super-blocks of 256 values (144 bytes): f16 `d` and `dmin`, twelve bytes of
/// 6-bit scales and minimums for its eight groups, then 128 bytes of nibbles, groups
/// `2p` and `2p + 1` the low and high nibbles of bytes `32p..32p + 32`; a value is
/// `d · scale · q - dmin · min`.
struct Q4K;

/// The scale of each of the 16 rows' one-group blocks, as f32 (Q8_0 and Q4_0).
///
/// # Safety
/// As [`Weights::factors`].
#[inline(always)]
unsafe fn one_scale(
    first: *const u8,
    row_bytes: usize,
    height: usize,
    block: usize,
    bytes: usize,
) -> __m512 {
    // SAFETY: each lane reads 4 bytes at a block's start (its scale and a value byte or
    // two), which lie in the row.
    unsafe {
        let words = gather(first.add(bytes * block), row_bytes, height);
        _mm512_cvtph_ps(_mm512_cvtepi32_epi16(words))
    }
}

impl Weights for Q8_0 {
    const BYTES: usize = 34;
    const GROUPS: usize = 1;
    const OFFSET: i32 = 128;
    const MINS: bool = false;

    #[inline(always)]
    unsafe fn packed(first: *const u8, row_bytes: usize, height: usize, g: usize) -> [__m512i; 8] {
        // Loading the rows and transposing them in registers costs fewer cycles than
        // gathering each word (measured on prompts). Missing rows repeat the last: their
        // columns of C are never stored.
        let rows = core::array::from_fn(|r| {
            let at = r.min(height - 1) * row_bytes + Self::BYTES * g + 2;
            // SAFETY: the caller's bounds: the 32 values of row `r`'s block.
            unsafe { _mm256_loadu_si256(first.add(at).cast()) }
        });
        transpose(rows)
    }

    #[inline(always)]
    unsafe fn unsigned_pair(first: *const u8, second: *const u8, g: usize) -> __m512i {
        let at = Self::BYTES * g + 2;
        // SAFETY: the caller's bounds: 32 bytes after each block's scale.
        let two = unsafe { two_rows(first, second, at) };
        // `+ 128` is a flip of the sign bit.
        _mm512_xor_si512(two, _mm512_set1_epi8(-128))
    }
}

impl Weights for Q4_0 {
    const BYTES: usize = 18;
    const GROUPS: usize = 1;
    const OFFSET: i32 = 8;
    const MINS: bool = false;

    #[inline(always)]
    unsafe fn packed(first: *const u8, row_bytes: usize, height: usize, g: usize) -> [__m512i; 8] {
        // As for Q8_0: the rows unpacked to 32 values each, then transposed.
        let (low4, eight) = (_mm256_set1_epi8(0xF), _mm256_set1_epi8(8));
        let rows = core::array::from_fn(|r| {
            let at = r.min(height - 1) * row_bytes + Self::BYTES * g + 2;
            // SAFETY: the caller's bounds: the 16 bytes of row `r`'s block.
            let q = unsafe { _mm_loadu_si128(first.add(at).cast()) };
            let both = _mm256_set_m128i(_mm_srli_epi16::<4>(q), q);
            _mm256_sub_epi8(_mm256_and_si256(both, low4), eight)
        });
        transpose(rows)
    }

    #[inline(always)]
    unsafe fn unsigned_pair(first: *const u8, second: *const u8, g: usize) -> __m512i {
        // The 16 bytes in 128-bit lanes 0 and 1 (then 2 and 3 for the second row), lanes
        // 1 and 3 shifted down a nibble: the values 16..32.
        let shifts = _mm512_setr_epi64(
            0,
            0,
            NIBBLE_SHIFTS,
            NIBBLE_SHIFTS,
            0,
            0,
            NIBBLE_SHIFTS,
            NIBBLE_SHIFTS,
        );
        let at = Self::BYTES * g + 2;
        // SAFETY: the caller's bounds: 16 bytes after each block's scale.
        let two = unsafe { _mm256_loadu2_m128i(second.add(at).cast(), first.add(at).cast()) };
        let z = _mm512_castsi256_si512(two);
        let spread = _mm512_shuffle_i64x2::<0b01_01_00_00>(z, z);
        _mm512_and_si512(_mm512_srlv_epi16(spread, shifts), _mm512_set1_epi8(0xF))
    }
}

impl Q4K {
    /// Where group `g`'s nibbles start in its row: the 32 bytes it shares with its pair,
    /// and whether it takes their high nibbles.
    fn nibbles(g: usize) -> (usize, bool) {
        let (block, i) = (g / 8, g % 8);
        (Self::BYTES * block + 16 + 32 * (i / 2), i % 2 == 1)
    }
}

impl Weights for Q4K {
    const BYTES: usize = 144;
    const GROUPS: usize = 8;
    const OFFSET: i32 = 0;
    const MINS: bool = true;

    #[inline(always)]
    unsafe fn factors(
        first: *const u8,
        row_bytes: usize,
        height: usize,
        block: usize,
        scales: &mut [__m512; 8],
        mins: &mut [__m512; 8],
    ) {
        // Lane by lane, what `x86_ggml::k_scales_mins` does for one row: the 6-bit
        // scales and minimums of groups 0..4 and 4..8, one byte each.
        let at = first.wrapping_add(Self::BYTES * block);
        // SAFETY: the caller's bounds: each row's block starts with `d`, `dmin` and the
        // twelve packed bytes.
        let [halves, w0, w1, w2] =
            core::array::from_fn(|k| unsafe { gather(at.add(4 * k), row_bytes, height) });
        let (six, nibbles, top) = (
            _mm512_set1_epi32(0x3F3F_3F3F),
            _mm512_set1_epi32(0x0F0F_0F0F),
            _mm512_set1_epi32(0x3030_3030),
        );
        let high = |low: __m512i, shifted: __m512i| {
            _mm512_or_si512(low, _mm512_and_si512(_mm512_srli_epi32::<2>(shifted), top))
        };
        let scale_bytes = [
            _mm512_and_si512(w0, six),
            high(_mm512_and_si512(w2, nibbles), w0),
        ];
        let min_bytes = [
            _mm512_and_si512(w1, six),
            high(_mm512_and_si512(_mm512_srli_epi32::<4>(w2), nibbles), w1),
        ];
        let d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(halves));
        let dmin = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(halves)));
        let byte = |words: [__m512i; 2], i: usize| {
            let shifted = _mm512_srlv_epi32(words[i / 4], _mm512_set1_epi32(8 * (i % 4) as i32));
            _mm512_cvtepi32_ps(_mm512_and_si512(shifted, _mm512_set1_epi32(0xFF)))
        };
        for i in 0..8 {
            scales[i] = _mm512_mul_ps(d, byte(scale_bytes, i));
            mins[i] = _mm512_mul_ps(dmin, byte(min_bytes, i));
        }
    }

    #[inline(always)]
    unsafe fn packed(first: *const u8, row_bytes: usize, height: usize, g: usize) -> [__m512i; 8] {
        let (at, high) = Self::nibbles(g);
        let low4 = _mm256_set1_epi8(0xF);
        // As for Q8_0: the rows' 32 values, then transposed.
        let rows = core::array::from_fn(|r| {
            let at = r.min(height - 1) * row_bytes + at;
            // SAFETY: the caller's bounds: the 32 bytes lie in row `r`'s block.
            let w = unsafe { _mm256_loadu_si256(first.add(at).cast()) };
            let w = if high { _mm256_srli_epi16::<4>(w) } else { w };
            _mm256_and_si256(w, low4)
        });
        transpose(rows)
    }

    #[inline(always)]
    unsafe fn unsigned_pair(first: *const u8, second: *const u8, g: usize) -> __m512i {
        let (at, high) = Self::nibbles(g);
        // SAFETY: the caller's bounds: the 32 bytes lie in each row's block.
        let two = unsafe { two_rows(first, second, at) };
        let two = if high {
            _mm512_srli_epi16::<4>(two)
        } else {
            two
        };
        _mm512_and_si512(two, _mm512_set1_epi8(0xF))
    }
}

/// The 32 bytes at `at` of the rows at `first` and `second`, the first's in the low 256
/// bits.
///
/// # Safety
/// AVX-512F; the bytes lie in both rows.
#[inline(always)]
unsafe fn two_rows(first: *const u8, second: *const u8, at: usize) -> __m512i {
    // SAFETY: the caller's bounds.
    unsafe {
        let low = _mm256_loadu_si256(first.add(at).cast());
        let high = _mm256_loadu_si256(second.add(at).cast());
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low), high)
    }
}

/// Sixteen rows of eight 32-bit words as eight vectors of sixteen: vector `j` holds word
/// `j` of row `r` in lane `r` (`tdpbssd`'s B layout). Two 8 × 8 transposes side by side,
/// rows 0..8 in the low halves and 8..16 in the high ones.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose(rows: [__m256i; 16]) -> [__m512i; 8] {
    let z: [__m512i; 8] = core::array::from_fn(|p| {
        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(rows[p]), rows[p + 8])
    });
    // Words 0,1 / 2,3 of rows 2q and 2q + 1 interleaved, per 128-bit lane.
    let t: [__m512i; 8] = core::array::from_fn(|i| {
        let (a, b) = (z[i / 2 * 2], z[i / 2 * 2 + 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(a, b)
        } else {
            _mm512_unpackhi_epi32(a, b)
        }
    });
    // Word w (and w + 4) of four rows per 128-bit lane: u[0..4] from rows 0..4 (and
    // 8..12), u[4..8] from rows 4..8 (and 12..16).
    let u: [__m512i; 8] = core::array::from_fn(|i| {
        let base = i / 4 * 4;
        let (a, b) = (t[base + (i % 4) / 2], t[base + (i % 4) / 2 + 2]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi64(a, b)
        } else {
            _mm512_unpackhi_epi64(a, b)
        }
    });
    let low = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    let high = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    core::array::from_fn(|j| {
        let (a, b) = (u[j % 4], u[j % 4 + 4]);
        _mm512_permutex2var_epi64(a, if j < 4 { low } else { high }, b)
    })
}

/// The lanes of the first `height` rows.
#[inline(always)]
fn row_lanes(height: usize) -> __mmask16 {
    if height >= TILE {
        0xFFFF
    } else {
        (1u16 << height) - 1
    }
}

/// The four bytes at `at` of each of `height` rows `row_bytes` apart, lane `r` for row
/// `r`, zero past `height`.
///
/// # Safety
/// AVX-512F; the bytes lie in the rows; `15 · row_bytes` fits an i32.
#[inline(always)]
unsafe fn gather(at: *const u8, row_bytes: usize, height: usize) -> __m512i {
    let offsets = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(row_bytes as i32),
    );
    // SAFETY: the caller's bounds.
    unsafe {
        _mm512_mask_i32gather_epi32::<1>(
            _mm512_setzero_si512(),
            row_lanes(height),
            offsets,
            at.cast(),
        )
    }
}

/// `out[r · row_step + t · input_step] = row r · input t` for the `ty` rows of `data`
/// (`row_bytes` each; Q8_0, Q4_0 or Q4_K) and the `inputs` inputs of `x`, over the groups
/// both have (as `x86_ggml::q8_matmul`). `false`, with nothing written, for any other
/// type and for rows past what the kernel indexes (over 128 MiB).
///
/// # Safety
/// The CPU must support AMX-TILE, AMX-INT8, AVX-512F/BW/VL/VNNI and F16C, and the OS must
/// have granted the tiles' use to this process.
pub unsafe fn matmul(
    ty: GgmlType,
    out: &mut [f32],
    steps: (usize, usize),
    data: &[u8],
    row_bytes: usize,
    x: Q8Blocks<'_>,
    inputs: usize,
) -> bool {
    let supported = matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_K);
    if row_bytes > (i32::MAX as usize) / TILE || !supported {
        return false;
    }
    if row_bytes == 0 || inputs == 0 {
        return true;
    }
    let args = (out, steps, data, row_bytes, x, inputs);
    // SAFETY (each call): the caller's features and grant.
    unsafe {
        match ty {
            GgmlType::Q8_0 => product::<Q8_0>(args),
            GgmlType::Q4_0 => product::<Q4_0>(args),
            _ => product::<Q4K>(args),
        }
    }
    true
}

/// The arguments of [`matmul`] after the type.
type Args<'o, 'd, 'x> = (
    &'o mut [f32],
    (usize, usize),
    &'d [u8],
    usize,
    Q8Blocks<'x>,
    usize,
);

/// [`matmul`] for one weight type (`row_bytes` and `inputs` not zero).
///
/// # Safety
/// As [`matmul`]'s.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma,avx2")]
unsafe fn product<W: Weights>(
    (out, (row_step, input_step), data, row_bytes, x, inputs): Args<'_, '_, '_>,
) {
    let (cols, groups) = (x.values.len() / inputs, x.scales.len() / inputs);
    let product = Product {
        data,
        row_bytes,
        rows: data.len() / row_bytes,
        taken: (row_bytes / W::BYTES * W::GROUPS)
            .min(cols / 32)
            .min(groups)
            .min(x.sums.len() / inputs),
        x,
        cols,
        groups,
        inputs,
    };
    let mut out = Out {
        out,
        row_step,
        input_step,
    };
    // SAFETY (each call): the caller's features and grant.
    unsafe {
        if inputs == 1 {
            one_input::<W>(&product, &mut out);
        } else {
            by_row_tiles::<W>(&mut Tiles::new(), &product, &mut out);
        }
    }
}

/// A product's operands.
struct Product<'d, 'x> {
    data: &'d [u8],
    row_bytes: usize,
    rows: usize,
    /// Groups of 32 values of every row (and of every input) taken.
    taken: usize,
    x: Q8Blocks<'x>,
    /// Values and groups of each input.
    cols: usize,
    groups: usize,
    inputs: usize,
}

/// Where a product's results go: `out[r · row_step + t · input_step]` for row `r` and
/// input `t` (outside `out`: dropped, and read as 0).
struct Out<'o> {
    out: &'o mut [f32],
    row_step: usize,
    input_step: usize,
}

impl Out<'_> {
    /// Rows `first..first + height` of input `t`, lane by lane (zero past `height`).
    #[target_feature(enable = "avx512f")]
    fn rows(&self, first: usize, height: usize, t: usize) -> __m512 {
        let at = first * self.row_step + t * self.input_step;
        if self.row_step == 1 && at + height <= self.out.len() {
            // SAFETY: `height` values from `at` lie in `out`; the masked lanes are not read.
            return unsafe { _mm512_maskz_loadu_ps(row_lanes(height), self.out.as_ptr().add(at)) };
        }
        let mut values = [0.0f32; TILE];
        for (r, v) in values.iter_mut().enumerate().take(height) {
            let at = (first + r) * self.row_step + t * self.input_step;
            *v = self.out.get(at).copied().unwrap_or(0.0);
        }
        // SAFETY: 16 f32.
        unsafe { _mm512_loadu_ps(values.as_ptr()) }
    }

    /// Stores lanes `..height` of `v` as rows `first..` of input `t`.
    #[target_feature(enable = "avx512f")]
    fn put_rows(&mut self, first: usize, height: usize, t: usize, v: __m512) {
        let at = first * self.row_step + t * self.input_step;
        if self.row_step == 1 && at + height <= self.out.len() {
            // SAFETY: `height` values from `at` lie in `out`; the masked lanes are not
            // written.
            return unsafe {
                _mm512_mask_storeu_ps(self.out.as_mut_ptr().add(at), row_lanes(height), v)
            };
        }
        let mut values = [0.0f32; TILE];
        // SAFETY: 16 f32.
        unsafe { _mm512_storeu_ps(values.as_mut_ptr(), v) };
        for (r, &v) in values.iter().enumerate().take(height) {
            let at = (first + r) * self.row_step + t * self.input_step;
            if let Some(o) = self.out.get_mut(at) {
                *o = v;
            }
        }
    }
}

/// 64-byte alignment for the buffers tiles and vectors load and store.
#[repr(C, align(64))]
struct Aligned<T>(T);

/// A chunk of groups of 16 rows repacked for `tdpbssd` ([`Weights::packed`]), and each
/// group's row factors ([`Weights::factors`]).
#[repr(C, align(64))]
struct PackedRows {
    values: [[__m512i; 8]; CHUNK_BLOCKS],
    scales: [__m512; CHUNK_BLOCKS],
    mins: [__m512; CHUNK_BLOCKS],
}

/// The float steps every kernel here takes for one group's exact integer sums `isum` (a
/// lane per row or per input): `acc + isum · (scale · x_scale)`, then, for types with
/// minimums, `- min · (x_scale · x_sum)`, each rounded once.
#[inline]
#[target_feature(enable = "avx512f")]
fn accumulate<W: Weights>(
    acc: __m512,
    isum: __m512i,
    (scale, min): (__m512, __m512),
    (x_scale, x_sum): (__m512, __m512),
) -> __m512 {
    let acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(scale, x_scale), acc);
    if W::MINS {
        _mm512_fnmadd_ps(min, _mm512_mul_ps(x_scale, x_sum), acc)
    } else {
        acc
    }
}

/// The products of [`matmul`] with several inputs: tiles of 16 rows (outer, each chunk of
/// them repacked once) by 16 inputs.
///
/// # Safety
/// As [`matmul`]'s.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c,fma,avx2")]
unsafe fn by_row_tiles<W: Weights>(tiles: &mut Tiles, p: &Product<'_, '_>, out: &mut Out<'_>) {
    let mut packed = PackedRows {
        values: [[_mm512_setzero_si512(); 8]; CHUNK_BLOCKS],
        scales: [_mm512_setzero_ps(); CHUNK_BLOCKS],
        mins: [_mm512_setzero_ps(); CHUNK_BLOCKS],
    };
    let (mut scales, mut mins) = ([_mm512_setzero_ps(); 8], [_mm512_setzero_ps(); 8]);
    for first_row in (0..p.rows).step_by(TILE) {
        let height = TILE.min(p.rows - first_row);
        let base = p.data[first_row * p.row_bytes..].as_ptr();
        for first_group in (0..p.taken).step_by(CHUNK_BLOCKS) {
            let chunk = CHUNK_BLOCKS.min(p.taken - first_group);
            for k in 0..chunk {
                let g = first_group + k;
                // SAFETY: rows `first_row..+height` hold group `g` (below `taken` ≤ the
                // row's groups) and its block; `row_bytes` was bounded by `matmul`.
                unsafe {
                    if k == 0 || g % W::GROUPS == 0 {
                        W::factors(
                            base,
                            p.row_bytes,
                            height,
                            g / W::GROUPS,
                            &mut scales,
                            &mut mins,
                        );
                    }
                    packed.values[k] = W::packed(base, p.row_bytes, height, g);
                }
                packed.scales[k] = scales[g % W::GROUPS];
                packed.mins[k] = mins[g % W::GROUPS];
            }
            for first_input in (0..p.inputs).step_by(TILE) {
                let count = TILE.min(p.inputs - first_input);
                // SAFETY: the caller's grant.
                unsafe { tiles.configure(count, TILE) };
                let rows = (first_row, height);
                let inputs = (first_input, count);
                // SAFETY: the caller's features; `packed` holds `chunk` groups.
                unsafe { input_tile::<W>(p, &packed, rows, inputs, (first_group, chunk), out) };
            }
        }
    }
}

/// One tile of rows (repacked in `packed`) times `count` inputs from `first_input` over
/// the groups of one chunk, carrying on from what earlier chunks left in `out`.
///
/// # Safety
/// As [`matmul`]'s, with the tiles configured for `count` inputs.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,f16c,fma,avx2")]
unsafe fn input_tile<W: Weights>(
    p: &Product<'_, '_>,
    packed: &PackedRows,
    (first_row, height): (usize, usize),
    (first_input, count): (usize, usize),
    (first_group, chunk): (usize, usize),
    out: &mut Out<'_>,
) {
    let mut sums = [Aligned([[0i32; TILE]; TILE]), Aligned([[0i32; TILE]; TILE])];
    // Each input's scales and sums, from its first (the last input stands in for missing
    // ones).
    let input_start = |t: usize| (first_input + t.min(count - 1)) * p.groups;
    let x_scales: [*const f32; TILE] =
        core::array::from_fn(|t| p.x.scales[input_start(t)..].as_ptr());
    let x_sums: [*const f32; TILE] = core::array::from_fn(|t| p.x.sums[input_start(t)..].as_ptr());
    let mut acc = [_mm512_setzero_ps(); TILE];
    if first_group > 0 {
        for (t, acc) in acc.iter_mut().enumerate().take(count) {
            *acc = out.rows(first_row, height, first_input + t);
        }
    }
    let values = p.x.values[first_input * p.cols..].as_ptr();
    let a = |g: usize| values.wrapping_add(32 * g).cast::<u8>();
    let packed_group = |k: usize| packed.values[k].as_ptr().cast::<u8>();
    let mut k = 0;
    while k < chunk {
        let two = k + 1 < chunk;
        let g = first_group + k;
        // SAFETY: inputs `first_input..+count` hold groups `g` and, if `two`, `g + 1`
        // (both < taken ≤ cols / 32), `cols` apart; a packed group is 8 rows of 64 bytes;
        // each of `sums` has 16 rows of 64 bytes.
        unsafe {
            let c = (sums[0].0.as_mut_ptr().cast(), sums[1].0.as_mut_ptr().cast());
            if two {
                let (pa, pb) = ((a(g), a(g + 1)), (packed_group(k), packed_group(k + 1)));
                block_pair(pa, p.cols, pb, 4 * TILE, c, 4 * TILE);
            } else {
                block_product(a(g), p.cols, packed_group(k), 4 * TILE, c.0, 4 * TILE);
            }
        }
        for (i, sums) in sums.iter().enumerate().take(1 + usize::from(two)) {
            let factors = (packed.scales[k + i], packed.mins[k + i]);
            let inputs = acc
                .iter_mut()
                .zip(&sums.0)
                .zip(x_scales.iter().zip(&x_sums));
            for ((acc, row), (&xs, &sx)) in inputs {
                // SAFETY: `row` is 16 aligned i32; every input has a scale and a sum for
                // group `g + i` (< taken ≤ groups).
                unsafe {
                    let isum = _mm512_load_si512(row.as_ptr().cast());
                    let x = (
                        _mm512_set1_ps(*xs.add(g + i)),
                        _mm512_set1_ps(*sx.add(g + i)),
                    );
                    *acc = accumulate::<W>(*acc, isum, factors, x);
                }
            }
        }
        k += 2;
    }
    for (t, &acc) in acc.iter().enumerate().take(count) {
        out.put_rows(first_row, height, first_input + t, acc);
    }
}

/// A lone input (a generated token) times the rows, without tiles: a tile product of one
/// input waits on its loads and stores (measured slower than this on 15M–110M shapes).
/// AVX512-VNNI sums each row's group exactly (the unsigned values of
/// [`Weights::unsigned_pair`] times the signed input, `OFFSET · Σ x` taken off), two rows
/// per vector; a transposing reduction puts the 16 rows' sums in one vector, which then
/// goes through the same float steps as the tiles' sums ([`accumulate`]).
///
/// # Safety
/// As [`matmul`]'s, AVX512-VNNI included.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,f16c,fma,avx2")]
unsafe fn one_input<W: Weights>(p: &Product<'_, '_>, out: &mut Out<'_>) {
    let row_bytes = p.row_bytes;
    // Where row `r` lands after the reduction (see below).
    let order = _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
    let (mut scales, mut mins) = ([_mm512_setzero_ps(); 8], [_mm512_setzero_ps(); 8]);
    for first_row in (0..p.rows).step_by(TILE) {
        let height = TILE.min(p.rows - first_row);
        let base = p.data[first_row * row_bytes..].as_ptr();
        // Row `r`'s start (missing rows repeat the last; their lanes are never stored).
        let row = |r: usize| base.wrapping_add(r.min(height - 1) * row_bytes);
        let mut acc = _mm512_setzero_ps();
        for g in 0..p.taken {
            // SAFETY: rows `..height` hold group `g` (< taken ≤ the row's groups) and its
            // block; the input's group is 32 bytes at 32·g (g < cols / 32) and has a scale
            // and a sum.
            unsafe {
                if g % W::GROUPS == 0 {
                    W::factors(
                        base,
                        row_bytes,
                        height,
                        g / W::GROUPS,
                        &mut scales,
                        &mut mins,
                    );
                }
                let xv = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    p.x.values.as_ptr().add(32 * g).cast(),
                ));
                let pairs: [__m512i; 8] = core::array::from_fn(|k| {
                    let unsigned = W::unsigned_pair(row(2 * k), row(2 * k + 1), g);
                    _mm512_dpbusd_epi32(_mm512_setzero_si512(), unsigned, xv)
                });
                // Pairs of vectors to one, three times: each step adds the halves of
                // interleaved lanes, so that each 128-bit lane ends up with four rows'
                // sums: rows 0,2,4,6 | 1,3,5,7 | 8,10,12,14 | 9,11,13,15.
                let s: [__m512i; 4] = core::array::from_fn(|j| {
                    let (a, c) = (pairs[2 * j], pairs[2 * j + 1]);
                    _mm512_add_epi32(_mm512_unpacklo_epi32(a, c), _mm512_unpackhi_epi32(a, c))
                });
                let t: [__m512i; 2] = core::array::from_fn(|j| {
                    let (a, c) = (s[2 * j], s[2 * j + 1]);
                    let sum =
                        _mm512_add_epi32(_mm512_unpacklo_epi64(a, c), _mm512_unpackhi_epi64(a, c));
                    _mm512_add_epi32(sum, _mm512_shuffle_i64x2::<0b10_11_00_01>(sum, sum))
                });
                let grouped = _mm512_shuffle_i64x2::<0b10_00_10_00>(t[0], t[1]);
                let unsigned = _mm512_permutexvar_epi32(order, grouped);
                // Σ x is an integer (exact in f32), and so is OFFSET times it.
                let x_sum = *p.x.sums.get_unchecked(g);
                let offset = _mm512_set1_epi32((W::OFFSET as f32 * x_sum) as i32);
                let isum = _mm512_sub_epi32(unsigned, offset);
                let factors = (scales[g % W::GROUPS], mins[g % W::GROUPS]);
                let x = (
                    _mm512_set1_ps(*p.x.scales.get_unchecked(g)),
                    _mm512_set1_ps(x_sum),
                );
                acc = accumulate::<W>(acc, isum, factors, x);
            }
            // The next tile's rows, about a line ahead: sixteen interleaved rows defeat
            // the hardware prefetcher. A prefetch never faults.
            if g % 2 == 0 {
                let at = g / W::GROUPS * W::BYTES + (g % W::GROUPS) * W::BYTES / W::GROUPS;
                for r in 0..TILE {
                    let ahead = base.wrapping_add(at + (TILE + r) * row_bytes + 64);
                    _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                }
            }
        }
        out.put_rows(first_row, height, 0, acc);
    }
}
