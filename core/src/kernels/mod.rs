//! The two inner loops every matrix-vector product reduces to, in a scalar reference form
//! and in SIMD forms.
//!
//! [`Kernels::scalar`] sums in llama2.c's order and is the reference. The SIMD forms sum
//! f32 products in a different order (so fp32 results differ in the last bits); their Q8
//! dot products are exact integer sums per group, so Q8 results are bit-identical to the
//! scalar path.
//!
//! A SIMD variant can only be obtained where the processor supports it: on aarch64 NEON is
//! always present; on x86_64 a host checks the CPU at run time (`Kernels::detect`, with the
//! `std` feature) or the build enables the features at compile time.
#![allow(unsafe_code)]

use crate::gguf::GgmlType;
use crate::weights::Q8Matrix;

#[cfg(feature = "std")]
mod detect;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
mod neon_ggml;
mod scalar;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod tile;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_amx;
#[cfg(target_arch = "x86_64")]
mod x86_ggml;

/// Which implementation of the inner loops to run. Construct with [`Kernels::scalar`],
/// [`Kernels::native`], `Kernels::detect` (feature `std`: what the running CPU supports) or,
/// on x86_64, [`Kernels::avx2_fma_unchecked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels(Kind, F16c, Amx);

/// Whether the x86 F16 products may convert with F16C's `vcvtph2ps` (every AVX2 processor
/// has it, but it stays a separate promise so that AVX2+FMA alone keeps meaning what it
/// did, and so that Miri, which cannot run F16C, still checks the portable conversion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct F16c(bool);

/// Whether the Q8_0 and Q4_0 products may run on AMX tiles (`x86_amx`): a separate promise, as the
/// OS must grant the tiles' use besides the processor having them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Amx(bool);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// AVX2+FMA, with AVX512-VNNI for the Q8 dot products.
    #[cfg(target_arch = "x86_64")]
    Avx512Vnni,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl Default for Kernels {
    fn default() -> Self {
        Kernels::native()
    }
}

impl Kernels {
    /// The reference loops, summing in llama2.c's order.
    pub const fn scalar() -> Kernels {
        Kernels(Kind::Scalar, F16c(false), Amx(false))
    }

    /// The best kernels the compile-time target guarantees: NEON on aarch64, AVX2+FMA on
    /// x86_64 builds with those features enabled, scalar elsewhere (Cortex-M included).
    pub const fn native() -> Kernels {
        #[cfg(target_arch = "aarch64")]
        return Kernels(Kind::Neon, F16c(false), Amx(false));
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        return Kernels(
            Kind::Avx2Fma,
            F16c(cfg!(target_feature = "f16c")),
            Amx(false),
        );
        #[allow(unreachable_code)]
        Kernels(Kind::Scalar, F16c(false), Amx(false))
    }

    /// AVX2+FMA kernels.
    ///
    /// # Safety
    /// The processor running the program must support AVX2 and FMA (check with
    /// `is_x86_feature_detected!`); on one that does not, using them is undefined behaviour.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx2_fma_unchecked() -> Kernels {
        Kernels(Kind::Avx2Fma, F16c(false), Amx(false))
    }

    /// AVX2+FMA kernels whose f32 products run on AVX-512F's 16-lane vectors and whose Q8
    /// dot products use AVX512-VNNI (`vpdpbusd`) on 256-bit vectors; Q8 results are
    /// bit-identical to [`Kernels::avx2_fma_unchecked`].
    ///
    /// # Safety
    /// The processor must support AVX2, FMA, AVX-512F, AVX512-VNNI and AVX512-VL.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn avx512_vnni_unchecked() -> Kernels {
        Kernels(Kind::Avx512Vnni, F16c(false), Amx(false))
    }

    /// These kernels with F16C conversions in the ggml products (F16 weights, block scales; no change for
    /// scalar or NEON kernels; results are bit-identical either way, the conversions being
    /// exact).
    ///
    /// # Safety
    /// The processor must support F16C.
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn with_f16c_unchecked(self) -> Kernels {
        match self.0 {
            Kind::Avx2Fma | Kind::Avx512Vnni => Kernels(self.0, F16c(true), self.2),
            _ => self,
        }
    }

    /// These kernels with the Q8_0 and Q4_0 products on AMX tiles (only for
    /// [`Kernels::avx512_vnni_unchecked`] with F16C; any other kernels are returned as
    /// they are). Their results agree with the other kernels' within float rounding; as
    /// everywhere, each row · input value is the same however the inputs are batched.
    ///
    /// # Safety
    /// The processor must support AMX-TILE, AMX-INT8 and AVX512-BW, and the OS must have
    /// granted this process the use of the tiles (on Linux, `arch_prctl(ARCH_REQ_XCOMP_PERM,
    /// XFEATURE_XTILEDATA)`; `Kernels::detect` asks for it).
    #[cfg(target_arch = "x86_64")]
    pub const unsafe fn with_amx_unchecked(self) -> Kernels {
        match (self.0, self.1) {
            (Kind::Avx512Vnni, F16c(true)) => Kernels(self.0, self.1, Amx(true)),
            _ => self,
        }
    }

    /// These kernels without the AMX tile products (for comparing them, say).
    pub const fn without_amx(self) -> Kernels {
        Kernels(self.0, self.1, Amx(false))
    }

    /// A short name for reports: `scalar`, `avx2+fma` or `neon`.
    pub const fn name(&self) -> &'static str {
        match self.0 {
            Kind::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma => "avx2+fma",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512Vnni if self.2 .0 => "avx2+fma+avx512vnni+amx",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512Vnni => "avx2+fma+avx512vnni",
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => "neon",
        }
    }

    /// `Σ a[i]·b[i]` over the shorter length.
    #[inline]
    pub fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        match self.0 {
            Kind::Scalar => scalar::dot(a, b),
            // SAFETY: this variant is only constructed where AVX2 and FMA are available
            // (`native` at compile time, or the caller's promise in `avx2_fma_unchecked`).
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma => unsafe { x86::dot(a, b) },
            // SAFETY: AVX-512F too, as `avx512_vnni_unchecked`'s caller promised.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512Vnni => unsafe { x86::dot_512(a, b) },
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => neon::dot(a, b),
        }
    }

    /// `out[r] = dot(rows[r · stride..][..x.len()], x)` for `out.len()` rows `stride` apart
    /// (one head's keys in the KV cache, say), each bit-identical to [`Kernels::dot`].
    ///
    /// # Panics
    /// If `rows` is too short for `out.len()` rows.
    pub fn dot_rows(&self, out: &mut [f32], rows: &[f32], stride: usize, x: &[f32]) {
        match self.0 {
            Kind::Scalar => {
                for (r, o) in out.iter_mut().enumerate() {
                    *o = scalar::dot(&rows[r * stride..][..x.len()], x);
                }
            }
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma => unsafe { x86::dot_rows(out, rows, stride, x) },
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512Vnni => unsafe { x86::dot_rows_512(out, rows, stride, x) },
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => neon::dot_rows(out, rows, stride, x),
        }
    }

    /// `out += Σ_t weights[t] · rows[t · stride..][..out.len()]`: (part of) an attention
    /// head's weighted sum of cached values, `stride` apart. The scalar form adds in
    /// order, as `run.c` does; the SIMD forms fuse the products.
    ///
    /// # Panics
    /// If `rows` is too short for `weights.len()` rows.
    pub fn weighted_rows(&self, out: &mut [f32], weights: &[f32], rows: &[f32], stride: usize) {
        match self.0 {
            Kind::Scalar => scalar::weighted_rows(out, weights, rows, stride),
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma => unsafe { x86::weighted_rows(out, weights, rows, stride) },
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512Vnni => unsafe { x86::weighted_rows_512(out, weights, rows, stride) },
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => neon::weighted_rows(out, weights, rows, stride),
        }
    }

    /// Symmetric per-group quantization of `x` to ±127 (`values`, one scale per `group`
    /// values in `scales`), rounding half away from zero like `runq.c`; an all-zero group
    /// gets scale 0 and zero values. Every form gives the same bytes and scales.
    pub fn quantize(&self, x: &[f32], group: usize, values: &mut [i8], scales: &mut [f32]) {
        match self.0 {
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma | Kind::Avx512Vnni if group.is_multiple_of(8) => unsafe {
                x86::quantize(x, group, values, scales)
            },
            _ => scalar::quantize(x, group, values, scales),
        }
    }

    /// The feed-forward gate `gate = silu(gate) · up`: the scalar form is `run.c`'s (libm
    /// `expf`); the AVX2 form uses the polynomial `exp` of [`Kernels::softmax`].
    pub fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        match self.0 {
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma | Kind::Avx512Vnni => unsafe { x86::swiglu(gate, up) },
            _ => scalar::swiglu(gate, up),
        }
    }

    /// `out[t * rows + r] = dot(rows[r], inputs[t])` for every row of `rows` and every
    /// input of `inputs` (both `[count][cols]`; the outputs of each input together): a
    /// matrix–matrix product (or, with one input, matrix–vector) whose every output is
    /// bit-identical to [`Kernels::dot`] of its row and input, however many rows and inputs
    /// there are.
    ///
    /// # Panics
    /// If `out` has room for fewer than rows × inputs results.
    pub fn matmul_f32(&self, out: &mut [f32], rows: &[f32], inputs: &[f32], cols: usize) {
        if cols == 0 {
            return out.fill(0.0);
        }
        match self.0 {
            Kind::Scalar => {
                let n_rows = rows.len() / cols;
                let outs = out.chunks_exact_mut(n_rows.max(1));
                for (outs, x) in outs.zip(inputs.chunks_exact(cols)) {
                    for (o, row) in outs.iter_mut().zip(rows.chunks_exact(cols)) {
                        *o = scalar::dot(row, x);
                    }
                }
            }
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma => unsafe { x86::matmul(out, rows, inputs, cols) },
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512Vnni => unsafe { x86::matmul_512(out, rows, inputs, cols) },
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => neon::matmul(out, rows, inputs, cols),
        }
    }

    /// Softmax in place. The scalar form is the reference (libm `expf`, sums in order); the
    /// AVX2 form uses a polynomial `exp` within 2 ulp and lane-wise sums.
    #[inline]
    pub fn softmax(&self, x: &mut [f32]) {
        match self.0 {
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma | Kind::Avx512Vnni => unsafe { x86::softmax(x) },
            _ => scalar::softmax(x),
        }
    }

    /// One row of a Q8 matrix times a quantized vector: per group of `group` values the
    /// exact integer dot product, times the row's and the vector's scale, summed over groups
    /// in order. `w_scales` are little-endian f32 bytes.
    #[inline]
    pub fn q8_dot(
        &self,
        w: &[i8],
        w_scales: &[u8],
        x: &[i8],
        x_scales: &[f32],
        group: usize,
    ) -> f32 {
        match self.0 {
            Kind::Scalar => scalar::q8_dot(w, w_scales, x, x_scales, group, scalar::group_sum),
            // SAFETY: as in `dot`.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma | Kind::Avx512Vnni => {
                scalar::q8_dot(w, w_scales, x, x_scales, group, |w, x| unsafe {
                    x86::group_sum(w, x)
                })
            }
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => scalar::q8_dot(w, w_scales, x, x_scales, group, neon::group_sum),
        }
    }
}

/// A quantized input vector: `cols` int8 values and one f32 scale per group.
#[derive(Debug, Clone, Copy)]
pub struct Q8Vector<'a> {
    /// The int8 values, `cols` of them.
    pub values: &'a [i8],
    /// One scale per group of values.
    pub scales: &'a [f32],
}

#[cfg(target_arch = "x86_64")]
impl Q8Matrix<'_> {
    /// Whether the lengths agree with each other, with `x` and with `rows` outputs.
    fn fits(&self, rows: usize, x: &Q8Vector<'_>) -> bool {
        let groups = self.cols / self.group;
        self.group > 0
            && self.cols.is_multiple_of(self.group)
            && self.values.len() == rows * self.cols
            && self.scales.len() == 4 * rows * groups
            && x.values.len() == self.cols
            && x.scales.len() == groups
    }
}

impl Kernels {
    /// `out[r] = q8_dot(row r, x)` for every row, using multi-row SIMD blocks where the
    /// group size allows. Bit-identical to calling [`Kernels::q8_dot`] per row.
    pub fn q8_matvec(&self, out: &mut [f32], w: Q8Matrix<'_>, x: Q8Vector<'_>) {
        #[cfg(target_arch = "x86_64")]
        if w.group.is_multiple_of(32) && w.fits(out.len(), &x) {
            match self.0 {
                // SAFETY: the features are available (see `dot`); the shapes were checked
                // just above.
                Kind::Avx2Fma => return unsafe { x86::q8_matvec_32(out, w, x) },
                Kind::Avx512Vnni => return unsafe { x86::q8_matvec_32_vnni(out, w, x) },
                _ => {}
            }
        }
        let groups = w.cols / w.group;
        let rows = w
            .values
            .chunks_exact(w.cols)
            .zip(w.scales.chunks_exact(4 * groups));
        for (o, (row, row_scales)) in out.iter_mut().zip(rows) {
            *o = self.q8_dot(row, row_scales, x.values, x.scales, w.group);
        }
    }
}

/// An input vector quantized for the SIMD ggml block products: int8 values in groups of
/// 32 (`values[i] · scales[i / 32]` approximates the input), with each group's integer sum
/// (exact in f32) for the types whose blocks have minimums.
#[derive(Debug, Clone, Copy)]
pub struct Q8Blocks<'a> {
    /// The int8 values, a multiple of 32 of them.
    pub values: &'a [i8],
    /// One scale per 32 values.
    pub scales: &'a [f32],
    /// `Σ values` of each group of 32.
    pub sums: &'a [f32],
}

impl<'a> Q8Blocks<'a> {
    /// Inputs `range` of these inputs stored back to back, `cols` values each (empty where
    /// they run past the end).
    pub fn inputs(&self, range: core::ops::Range<usize>, cols: usize) -> Q8Blocks<'a> {
        let values = range.start * cols..range.end * cols;
        let groups = range.start * cols / 32..range.end * cols / 32;
        Q8Blocks {
            values: self.values.get(values).unwrap_or_default(),
            scales: self.scales.get(groups.clone()).unwrap_or_default(),
            sums: self.sums.get(groups).unwrap_or_default(),
        }
    }
}

/// What a ggml weight type's product takes as input under given [`Kernels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlInput {
    /// No SIMD product: the scalar path decodes each block to f32 and takes its dot product
    /// with the f32 input (the reference).
    Decoded,
    /// A SIMD product over the f32 input ([`Kernels::ggml_dot_f32`]).
    F32,
    /// A SIMD product over the input quantized to [`Q8Blocks`] ([`Kernels::ggml_matmul_q8`]).
    Q8,
}

impl Kernels {
    /// Which input the product of a `ty` row takes: the SIMD kernels cover F16 (f32 input)
    /// and Q8_0, Q4_0, Q4_K, Q6_K (quantized input); everything else, and every type under
    /// [`Kernels::scalar`], takes the decoding reference path.
    pub fn ggml_input(&self, ty: GgmlType) -> GgmlInput {
        if self.0 == Kind::Scalar {
            return GgmlInput::Decoded;
        }
        match ty {
            GgmlType::F16 => GgmlInput::F32,
            GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_K | GgmlType::Q6_K => GgmlInput::Q8,
            _ => GgmlInput::Decoded,
        }
    }

    /// One row of `ty` blocks (`row`, whole blocks) times the f32 vector `x`, for the types
    /// [`Kernels::ggml_input`] maps to `GgmlInput::F32` (the f32 input); 0 for any other.
    #[inline]
    pub fn ggml_dot_f32(&self, ty: GgmlType, row: &[u8], x: &[f32]) -> f32 {
        match (self.0, ty) {
            // SAFETY: this variant exists only where AVX2 and FMA are available (see `dot`).
            #[cfg(target_arch = "x86_64")]
            (Kind::Avx2Fma | Kind::Avx512Vnni, GgmlType::F16) => unsafe {
                if self.1 .0 {
                    // SAFETY: F16C too, as `with_f16c_unchecked`'s caller promised.
                    x86_ggml::f16_dot_f16c(row, x)
                } else {
                    x86_ggml::f16_dot(row, x)
                }
            },
            #[cfg(target_arch = "aarch64")]
            (Kind::Neon, GgmlType::F16) => neon_ggml::f16_dot(row, x),
            _ => {
                let _ = (row, x);
                0.0
            }
        }
    }

    /// `out[r · row_step + t · input_step] = row r · input t` for the rows of `ty` blocks in `rows`
    /// (`row_bytes` each, whole blocks; as many rows as `rows` and `out` both hold) and the
    /// `inputs` quantized vectors back to back in `x`, for the types [`Kernels::ggml_input`]
    /// maps to `GgmlInput::Q8`; any other type leaves `out` untouched. Blocks and groups
    /// past the shorter of a row and an input are left out. The x86 kernels compute four
    /// rows at a time (by four inputs for Q8_0 and Q4_0), sharing each load, and each row ·
    /// input value is the same whichever rows and inputs share its pass: a batch gives
    /// every input what it gets alone.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn ggml_matmul_q8(
        &self,
        ty: GgmlType,
        out: &mut [f32],
        (row_step, input_step): (usize, usize),
        rows: &[u8],
        row_bytes: usize,
        x: Q8Blocks<'_>,
        inputs: usize,
    ) {
        let steps = (row_step, input_step);
        #[cfg(target_arch = "x86_64")]
        if self.2 .0 {
            // SAFETY: AMX, AVX512-BW and F16C as `with_amx_unchecked`'s caller promised,
            // AVX-512F/VL and FMA as `avx512_vnni_unchecked`'s did.
            if unsafe { x86_amx::matmul(ty, out, steps, rows, row_bytes, x, inputs) } {
                return;
            }
        }
        match self.0 {
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma | Kind::Avx512Vnni => {
                let extras = x86_ggml::Extras {
                    f16c: self.1 .0,
                    vnni: self.0 == Kind::Avx512Vnni,
                };
                // SAFETY: AVX2 and FMA as in `ggml_dot_f32`; F16C as `with_f16c_unchecked`'s
                // caller promised, AVX512-VNNI and VL as `avx512_vnni_unchecked`'s did.
                unsafe { x86_ggml::q8_matmul(extras, ty, out, steps, rows, row_bytes, x, inputs) }
            }
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => {
                let dot = match ty {
                    GgmlType::Q8_0 => neon_ggml::q8_0_dot,
                    GgmlType::Q4_0 => neon_ggml::q4_0_dot,
                    GgmlType::Q4_K => neon_ggml::q4_k_dot,
                    GgmlType::Q6_K => neon_ggml::q6_k_dot,
                    _ => return,
                };
                if row_bytes == 0 || inputs == 0 {
                    return;
                }
                let cols = x.values.len() / inputs;
                for t in 0..inputs {
                    let input = x.inputs(t..t + 1, cols);
                    for (r, row) in rows.chunks_exact(row_bytes).enumerate() {
                        if let Some(o) = out.get_mut(r * row_step + t * input_step) {
                            *o = dot(row, input);
                        }
                    }
                }
            }
            _ => {
                let _ = (ty, out, steps, rows, row_bytes, x, inputs);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::values;
    use std::vec::Vec;

    /// Every kernel variant this processor can run (the scalar reference first).
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    pub(crate) fn all() -> Vec<Kernels> {
        let mut kernels = std::vec![Kernels::scalar(), Kernels::native()];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the features were just detected.
            kernels.push(unsafe { Kernels::avx2_fma_unchecked() });
            if std::is_x86_feature_detected!("f16c") {
                // SAFETY: as above.
                kernels.push(unsafe { Kernels::avx2_fma_unchecked().with_f16c_unchecked() });
            }
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512vnni")
                && std::is_x86_feature_detected!("avx512vl")
            {
                // SAFETY: as above.
                kernels.push(unsafe { Kernels::avx512_vnni_unchecked() });
                // Miri cannot run the tile instructions (inline assembly).
                if !cfg!(miri)
                    && std::is_x86_feature_detected!("f16c")
                    && std::is_x86_feature_detected!("avx512bw")
                    && x86_amx::available()
                {
                    // SAFETY: as above, the tiles granted by `available`.
                    kernels.push(unsafe {
                        Kernels::avx512_vnni_unchecked()
                            .with_f16c_unchecked()
                            .with_amx_unchecked()
                    });
                }
            }
        }
        kernels
    }

    #[test]
    fn dot_agrees_with_the_scalar_reference() {
        for n in [0, 1, 7, 8, 31, 32, 33, 64, 172, 288, 1000] {
            let (a, b) = (values(n, 1), values(n, 2));
            let reference = Kernels::scalar().dot(&a, &b);
            let magnitude: f32 = a.iter().zip(&b).map(|(x, y)| (x * y).abs()).sum();
            for k in all() {
                let got = k.dot(&a, &b);
                assert!(
                    (got - reference).abs() <= 1e-5 * magnitude.max(1.0),
                    "{} n={n}: {got} vs {reference}",
                    k.name()
                );
            }
        }
    }

    /// Every output of a matrix product equals the lone dot product of its row and input,
    /// bit for bit, for every tile shape and edge (rows and inputs not multiples of the
    /// tile, columns not multiples of the vector width).
    #[test]
    fn matmul_outputs_are_bit_identical_to_dot() {
        for (rows, inputs, cols) in [(1, 1, 1), (5, 3, 7), (9, 7, 33), (4, 8, 64), (6, 5, 172)] {
            let w = values(rows * cols, 21);
            let x = values(inputs * cols, 22);
            for k in all() {
                let mut out = std::vec![f32::NAN; rows * inputs];
                k.matmul_f32(&mut out, &w, &x, cols);
                for (r, row) in w.chunks_exact(cols).enumerate() {
                    for (t, input) in x.chunks_exact(cols).enumerate() {
                        let alone = k.dot(row, input);
                        assert_eq!(
                            out[t * rows + r].to_bits(),
                            alone.to_bits(),
                            "{} {rows}x{cols} by {inputs}: row {r} input {t}",
                            k.name()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn strided_rows_are_bit_identical_to_dot() {
        for (rows, stride, cols) in [(1, 5, 5), (7, 24, 8), (9, 64, 48), (13, 40, 33)] {
            let data = values((rows - 1) * stride + cols, 23);
            let x = values(cols, 24);
            for k in all() {
                let mut out = std::vec![f32::NAN; rows];
                k.dot_rows(&mut out, &data, stride, &x);
                for (r, &got) in out.iter().enumerate() {
                    let alone = k.dot(&data[r * stride..][..cols], &x);
                    assert_eq!(got.to_bits(), alone.to_bits(), "{} row {r}", k.name());
                }
            }
        }
    }

    #[test]
    fn weighted_rows_and_swiglu_agree_with_the_scalar_reference() {
        for (rows, stride, cols) in [(0, 8, 8), (1, 8, 8), (7, 24, 20), (9, 64, 48), (4, 90, 80)] {
            let data = values(rows * stride + cols, 25);
            let weights = values(rows, 26);
            let mut reference = std::vec![0.5; cols];
            Kernels::scalar().weighted_rows(&mut reference, &weights, &data, stride);
            for k in all() {
                let mut got = std::vec![0.5; cols];
                k.weighted_rows(&mut got, &weights, &data, stride);
                for (g, r) in got.iter().zip(&reference) {
                    assert!(
                        (g - r).abs() <= 1e-5,
                        "{} {rows}x{cols}: {g} vs {r}",
                        k.name()
                    );
                }
            }
        }
        for n in [1, 7, 8, 33, 768] {
            let gate: Vec<f32> = values(n, 27).iter().map(|v| v * 16.0).collect();
            let up = values(n, 28);
            let mut reference = gate.clone();
            Kernels::scalar().swiglu(&mut reference, &up);
            for k in all() {
                let mut got = gate.clone();
                k.swiglu(&mut got, &up);
                for (g, r) in got.iter().zip(&reference) {
                    assert!(
                        (g - r).abs() <= 1e-6 * (1.0 + r.abs()),
                        "{} {g} vs {r}",
                        k.name()
                    );
                }
                // Each element's value is its own: a batch's vectors back to back (172
                // wide, not a multiple of any vector) get what each gets alone.
                let (gate, up) = (values(344, 29), values(344, 30));
                let mut both = gate.clone();
                k.swiglu(&mut both, &up);
                let mut second = gate[172..].to_vec();
                k.swiglu(&mut second, &up[172..]);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&both[172..]), bits(&second), "{}", k.name());
            }
        }
    }

    /// Quantization gives the scalar reference's bytes and scales: ties at half a step,
    /// NaN, infinities, zero groups, several group sizes.
    #[test]
    fn quantize_is_bit_identical_across_kernels() {
        for group in [8, 32, 64] {
            let mut x: Vec<f32> = values(4 * group, 31).iter().map(|v| v * 3.0).collect();
            // A group whose values are exact half steps (max 127 → scale 1).
            for (i, v) in x[..group].iter_mut().enumerate() {
                *v = if i == 0 {
                    127.0
                } else {
                    (i as f32 - 20.5) * if i % 2 == 0 { 1.0 } else { -1.0 }
                };
            }
            x[group + 3] = f32::NAN;
            x[2 * group..3 * group].fill(0.0);
            x[3 * group + 1] = f32::INFINITY;
            let mut reference = (std::vec![0i8; x.len()], std::vec![0.0f32; x.len() / group]);
            Kernels::scalar().quantize(&x, group, &mut reference.0, &mut reference.1);
            for k in all() {
                let mut got = (std::vec![1i8; x.len()], std::vec![1.0f32; x.len() / group]);
                k.quantize(&x, group, &mut got.0, &mut got.1);
                assert_eq!(got.0, reference.0, "{} group {group}", k.name());
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&got.1),
                    bits(&reference.1),
                    "{} group {group}",
                    k.name()
                );
            }
        }
    }

    #[test]
    fn softmax_agrees_with_the_scalar_reference() {
        for n in [1, 7, 8, 9, 64, 257, 1000] {
            let logits: Vec<f32> = values(n, 11).iter().map(|v| v * 40.0).collect();
            let mut reference = logits.clone();
            Kernels::scalar().softmax(&mut reference);
            for k in all() {
                let mut got = logits.clone();
                k.softmax(&mut got);
                for (g, r) in got.iter().zip(&reference) {
                    assert!((g - r).abs() <= 1e-6 * r, "{} n={n}: {g} vs {r}", k.name());
                }
                let total: f32 = got.iter().sum();
                assert!((total - 1.0).abs() < 1e-5, "{} sums to {total}", k.name());
            }
        }
    }

    #[test]
    fn q8_dot_is_bit_identical_across_kernels() {
        for (group, n) in [(4, 64), (8, 48), (16, 64), (32, 288), (64, 768), (48, 96)] {
            let w: Vec<i8> = values(n, 3).iter().map(|v| (v * 254.0) as i8).collect();
            let x: Vec<i8> = values(n, 4).iter().map(|v| (v * 254.0) as i8).collect();
            let ws: Vec<u8> = values(n / group, 5)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            let xs = values(n / group, 6);
            let reference = Kernels::scalar().q8_dot(&w, &ws, &x, &xs, group);
            for k in all() {
                let got = k.q8_dot(&w, &ws, &x, &xs, group);
                assert_eq!(
                    got.to_bits(),
                    reference.to_bits(),
                    "{} group {group}",
                    k.name()
                );
            }
        }
    }

    /// The ggml block products (SIMD where this processor has them) against the decoding
    /// reference, on one or two blocks per row and 1 to 5 rows (a four-row pass and single
    /// rows; small enough for Miri).
    #[test]
    fn ggml_products_agree_with_the_decoding_reference() {
        crate::quant::tests::check_products(
            &[
                (GgmlType::F16, &[40]),
                (GgmlType::Q8_0, &[64]),
                (GgmlType::Q4_0, &[64]),
                (GgmlType::Q4_K, &[256]),
                (GgmlType::Q6_K, &[256]),
            ],
            5,
        );
    }
}
