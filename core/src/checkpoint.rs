//! Zero-copy parsing of llama2.c model files (v0 legacy and v1 fp32 layouts).
//!
//! The file is described once, section by section, by a [`Cursor`] walk; the same walk
//! measures the expected length, so a truncated or overlong file is reported with both
//! lengths and no section is ever read out of bounds.
//!
//! The file comes from outside: this module indexes it only through `get` (enforced by
//! `clippy::indexing_slicing`), and every size is computed with checked arithmetic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::config::{add, mul, Config, Numerics};
use crate::error::{Error, Result};
use crate::gguf::{self, Gguf};
use crate::gguf_llama;
use crate::weights::{q8_matrix, LayerWeights, Layers, Matrix, Stack, Stacks, Weights};

/// `"ak42"` read as a little-endian u32: the magic of versioned files.
pub const MAGIC: u32 = 0x616b_3432;
/// Header length of the legacy (v0) layout: seven i32.
pub const V0_HEADER_LEN: usize = 28;
/// Header length of the versioned layouts.
pub const VERSIONED_HEADER_LEN: usize = 256;

/// Which layout a model file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// llama2.c's original export: header of seven i32, fp32 weights, RoPE tables.
    V0,
    /// `ak42` magic, version 1: fp32 weights, 256-byte header.
    V1,
    /// `ak42` magic, version 2: Q8_0 weights in groups of `group_size`, fp32 norms.
    V2 {
        /// Values per scale.
        group_size: usize,
    },
    /// A GGUF file (llama.cpp's container) of the llama architecture; each tensor has its
    /// own type.
    Gguf {
        /// The GGUF version (2 or 3).
        version: u32,
    },
}

/// How the matrices of a file are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    F32,
    Q8 { group: usize },
}

/// A parsed model: its config and views of its weights.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    /// The shape, from the header.
    pub config: Config,
    /// RMSNorm epsilon and RoPE base ([`Numerics::LLAMA2C`] for llama2.c files).
    pub numerics: Numerics,
    /// The file layout the weights were read in.
    pub format: Format,
    /// Views of the weights, in the model bytes.
    pub weights: Weights<'a>,
}

impl<'a> Model<'a> {
    /// Parses a llama2.c model file without copying it. The slice must be 4-byte aligned (a
    /// memory map or an aligned `static` is) and exactly as long as its header says.
    ///
    /// A GGUF file needs a table of per-layer views: use [`Model::parse`] (this returns
    /// [`Error::BufferTooSmall`] for one).
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>> {
        Model::parse(bytes, &mut [])
    }

    /// The number of [`LayerWeights`] entries [`Model::parse`] needs for these bytes: the
    /// layer count of a GGUF file, 0 for a llama2.c file (whose layers are stacked in place).
    pub fn layer_table_len(bytes: &[u8]) -> Result<usize> {
        if gguf::is_gguf(bytes) {
            gguf_llama::layer_count(&Gguf::parse(bytes)?)
        } else {
            Ok(0)
        }
    }

    /// Parses model bytes of either kind, told apart by their first bytes: a GGUF file of
    /// the llama architecture (its per-layer views written into `layers`, which needs
    /// [`Model::layer_table_len`] entries, a `const`-sizable `n_layers` on firmware), or a
    /// llama2.c file (v0, v1 or v2; `layers` is not used and may be empty). Nothing is
    /// copied; the bytes must be 4-byte aligned.
    pub fn parse(bytes: &'a [u8], layers: &'a mut [LayerWeights<'a>]) -> Result<Model<'a>> {
        if gguf::is_gguf(bytes) {
            if !(bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<f32>()) {
                return Err(Error::Misaligned);
            }
            return gguf_llama::parse(&Gguf::parse(bytes)?, layers);
        }
        Model::parse_llama2c(bytes)
    }

    fn parse_llama2c(bytes: &'a [u8]) -> Result<Model<'a>> {
        // Too short for any header: say so before judging the alignment of nothing.
        if bytes.len() < 8 {
            return Err(Error::TruncatedHeader {
                needed: V0_HEADER_LEN,
                actual: bytes.len(),
            });
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<f32>()) {
            return Err(Error::Misaligned);
        }
        if read_u32(bytes, 0) == MAGIC {
            parse_versioned(bytes)
        } else {
            parse_v0(bytes)
        }
    }
}

/// The little-endian u32 at `offset`. Callers checked the header length first; bytes past
/// the end would read as zero.
fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    let field = bytes.get(offset..).unwrap_or_default();
    for (w, &b) in word.iter_mut().zip(field) {
        *w = b;
    }
    u32::from_le_bytes(word)
}

fn read_i32(bytes: &[u8], offset: usize) -> i32 {
    read_u32(bytes, offset) as i32
}

fn read_config(bytes: &[u8], offset: usize) -> [i32; 7] {
    core::array::from_fn(|i| read_i32(bytes, offset + 4 * i))
}

fn require_header(bytes: &[u8], needed: usize) -> Result<()> {
    if bytes.len() < needed {
        return Err(Error::TruncatedHeader {
            needed,
            actual: bytes.len(),
        });
    }
    Ok(())
}

fn parse_v0(bytes: &[u8]) -> Result<Model<'_>> {
    require_header(bytes, V0_HEADER_LEN)?;
    let mut raw = read_config(bytes, 0);
    // A negative vocabulary size marks a classifier stored after the other weights.
    let shared = raw[5] > 0;
    // `i32::MIN` has no positive counterpart: left negative, it is reported as it is.
    raw[5] = raw[5].checked_abs().unwrap_or(i32::MIN);
    let config = Config::validated(raw, shared)?;
    read_weights(bytes, config, Format::V0)
}

fn parse_versioned(bytes: &[u8]) -> Result<Model<'_>> {
    require_header(bytes, VERSIONED_HEADER_LEN)?;
    let version = read_i32(bytes, 4);
    let shared = bytes.get(36).is_some_and(|&flag| flag != 0);
    let format =
        match version {
            1 => Format::V1,
            2 => {
                let raw = read_i32(bytes, 37);
                let group_size = usize::try_from(raw).ok().filter(|&g| g > 0).ok_or(
                    Error::NonPositiveField {
                        field: "group_size",
                        value: i64::from(raw),
                    },
                )?;
                Format::V2 { group_size }
            }
            _ => return Err(Error::UnsupportedVersion(version)),
        };
    let config = Config::validated(read_config(bytes, 8), shared)?;
    if let Format::V2 { group_size } = format {
        if !config.dim.is_multiple_of(group_size) || !config.hidden_dim.is_multiple_of(group_size) {
            return Err(Error::GroupSizeMismatch {
                group_size,
                dim: config.dim,
                hidden_dim: config.hidden_dim,
            });
        }
    }
    read_weights(bytes, config, format)
}

/// Views the weights after the header of a `format` file of `config`'s shape, which must
/// end exactly where they do.
fn read_weights(bytes: &[u8], config: Config, format: Format) -> Result<Model<'_>> {
    let c = &config;
    let (header_len, element) = match format {
        Format::V0 => (V0_HEADER_LEN, Element::F32),
        Format::V1 => (VERSIONED_HEADER_LEN, Element::F32),
        Format::V2 { group_size } => (VERSIONED_HEADER_LEN, Element::Q8 { group: group_size }),
        Format::Gguf { .. } => return Err(Error::NotLlama2cFormat),
    };
    let mut cursor = Cursor::new(bytes, header_len);
    // `[n_layers][dim]` RMSNorm gains.
    let layer_norms = mul(Some(c.n_layers), Some(c.dim));
    // wq, wk, wv, wo and w1, w2, w3, each `[n_layers][rows][cols]`.
    let attention_shapes = [
        (c.dim, c.dim),
        (c.kv_dim(), c.dim),
        (c.kv_dim(), c.dim),
        (c.dim, c.dim),
    ];
    let ffn_shapes = [
        (c.hidden_dim, c.dim),
        (c.dim, c.hidden_dim),
        (c.hidden_dim, c.dim),
    ];
    let (token_embedding, rms_att, attention, rms_ffn, ffn, rms_final);
    if format == Format::V0 {
        // llama2.c's first export: each norm before the matrices it feeds, RoPE tables last.
        token_embedding = cursor.matrix(c.vocab_size, c.dim, element);
        rms_att = cursor.f32s(layer_norms);
        attention = stacks(&mut cursor, c, attention_shapes, element);
        rms_ffn = cursor.f32s(layer_norms);
        ffn = stacks(&mut cursor, c, ffn_shapes, element);
        rms_final = cursor.f32s(Some(c.dim));
        // Two RoPE tables the reference never reads (it computes RoPE on the fly).
        let rope_table = mul(Some(c.seq_len), Some(c.head_size() / 2));
        cursor.f32s(mul(rope_table, Some(2)));
    } else {
        // Versioned files: the fp32 norms first, then the matrices.
        rms_att = cursor.f32s(layer_norms);
        rms_ffn = cursor.f32s(layer_norms);
        rms_final = cursor.f32s(Some(c.dim));
        token_embedding = cursor.matrix(c.vocab_size, c.dim, element);
        attention = stacks(&mut cursor, c, attention_shapes, element);
        ffn = stacks(&mut cursor, c, ffn_shapes, element);
    }
    let classifier = if c.shared_classifier {
        token_embedding
    } else {
        cursor.matrix(c.vocab_size, c.dim, element)
    };
    cursor.finish()?;
    let ([wq, wk, wv, wo], [w1, w2, w3]) = (attention, ffn);
    Ok(Model {
        config,
        numerics: Numerics::LLAMA2C,
        format,
        weights: Weights {
            token_embedding,
            rms_final,
            classifier,
            layers: Layers::Stacked(Stacks {
                rms_att,
                rms_ffn,
                wq,
                wk,
                wv,
                wo,
                w1,
                w2,
                w3,
            }),
        },
    })
}

/// One stack of `n_layers` matrices per `(rows, cols)` shape, in file order.
fn stacks<'a, const N: usize>(
    cursor: &mut Cursor<'a>,
    c: &Config,
    shapes: [(usize, usize); N],
    e: Element,
) -> [Stack<'a>; N] {
    shapes.map(|(rows, cols)| cursor.stack(c.n_layers, rows, cols, e))
}

/// Walks the sections of a file. A section past the end (or of overflowing size) yields an
/// empty view and is remembered; [`Cursor::finish`] then reports the mismatch, so callers
/// never use a view from a failed walk.
struct Cursor<'a> {
    bytes: &'a [u8],
    /// Byte offset of the next section, `None` once a size overflowed.
    end: Option<usize>,
    /// An f32 section did not start 4-byte aligned (cannot happen with the layouts above:
    /// the file start is aligned and every section before an f32 one is a multiple of 4
    /// bytes; checked all the same rather than trusted).
    misaligned: bool,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], start: usize) -> Self {
        Cursor {
            bytes,
            end: Some(start),
            misaligned: false,
        }
    }

    /// The next `len` bytes (`None`: the length overflowed).
    fn bytes(&mut self, len: Option<usize>) -> &'a [u8] {
        let start = self.end;
        self.end = add(start, len);
        match (start, self.end) {
            (Some(start), Some(end)) => self.bytes.get(start..end).unwrap_or_default(),
            _ => &[],
        }
    }

    /// The next `count` f32 values.
    fn f32s(&mut self, count: Option<usize>) -> &'a [f32] {
        let bytes = self.bytes(mul(count, Some(4)));
        if bytes.is_empty() {
            // A section past the end (reported by `finish`), or an empty one.
            return &[];
        }
        match bytemuck::try_cast_slice(bytes) {
            Ok(values) => values,
            Err(_) => {
                self.misaligned = true;
                &[]
            }
        }
    }

    /// Bytes of a Q8 tensor of `count` values: the values, then one f32 scale per group.
    fn q8_len(count: Option<usize>, group: usize) -> Option<usize> {
        add(count, mul(count.map(|n| n / group), Some(4)))
    }

    fn matrix(&mut self, rows: usize, cols: usize, element: Element) -> Matrix<'a> {
        let count = mul(Some(rows), Some(cols));
        match element {
            Element::F32 => Matrix::F32 {
                data: self.f32s(count),
                cols,
            },
            Element::Q8 { group } => {
                let bytes = self.bytes(Self::q8_len(count, group));
                q8_matrix(bytes, count.unwrap_or(0).min(bytes.len()), group, cols)
            }
        }
    }

    fn stack(&mut self, layers: usize, rows: usize, cols: usize, element: Element) -> Stack<'a> {
        let per_layer = mul(Some(rows), Some(cols));
        match element {
            Element::F32 => Stack::F32 {
                all: self.f32s(mul(per_layer, Some(layers))),
                rows,
                cols,
            },
            Element::Q8 { group } => Stack::Q8 {
                all: self.bytes(mul(Self::q8_len(per_layer, group), Some(layers))),
                rows,
                cols,
                group,
            },
        }
    }

    fn finish(self) -> Result<()> {
        if self.misaligned {
            return Err(Error::Misaligned);
        }
        match self.end {
            None => Err(Error::SizeOverflow),
            Some(expected) if expected != self.bytes.len() => Err(Error::FileSizeMismatch {
                expected,
                actual: self.bytes.len(),
            }),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{bytes, v0_model, RAW};
    use std::vec::Vec;

    fn f32_data(m: Matrix<'_>) -> &[f32] {
        match m {
            Matrix::F32 { data, .. } => data,
            _ => panic!("expected an fp32 matrix"),
        }
    }

    /// Little-endian f32 words of `bytes` (a multiple of 4 long), whatever its alignment.
    fn f32_words(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect()
    }

    /// The v1 layout of the same weights as `v0_model(RAW, shared)`.
    fn v1_from_v0(v0: &[f32], shared: bool, version: i32) -> Vec<f32> {
        let model = Model::from_bytes(bytes(v0)).unwrap();
        let w = model.weights;
        let mut header = [0u8; VERSIONED_HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..8].copy_from_slice(&version.to_le_bytes());
        for (i, v) in RAW.iter().enumerate() {
            header[8 + 4 * i..12 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        header[36] = u8::from(shared);
        // Copied word by word: a byte array need not be 4-byte aligned (Miri checks).
        let mut out = f32_words(&header);
        let data = |m: Matrix<'_>| f32_data(m).to_vec();
        let stack = |s: Stack<'_>| -> Vec<f32> {
            (0..model.config.n_layers)
                .flat_map(|l| data(s.layer(l)))
                .collect()
        };
        let stacks = w.stacks().unwrap();
        out.extend_from_slice(stacks.rms_att);
        out.extend_from_slice(stacks.rms_ffn);
        out.extend_from_slice(w.rms_final);
        out.extend(data(w.token_embedding));
        for (_, s) in stacks.named() {
            out.extend(stack(s));
        }
        if !shared {
            out.extend(data(w.classifier));
        }
        out
    }

    #[test]
    fn parses_v0_shared_and_unshared() {
        let shared = v0_model(RAW, true);
        let model = Model::from_bytes(bytes(&shared)).unwrap();
        assert_eq!(model.format, Format::V0);
        assert!(model.config.shared_classifier);
        assert_eq!(model.weights.layer(&model.config, 1).wk.rows(), 4);
        // shared classifier is the embedding itself
        let (a, b) = (
            f32_data(model.weights.classifier),
            f32_data(model.weights.token_embedding),
        );
        assert_eq!(a.as_ptr(), b.as_ptr());
        // the first weight follows the 28-byte header
        assert_eq!(a[0], shared[7]);

        let unshared = v0_model(RAW, false);
        let model = Model::from_bytes(bytes(&unshared)).unwrap();
        assert!(!model.config.shared_classifier);
        assert_eq!(model.config.vocab_size, 300);
        let data = f32_data(model.weights.classifier);
        assert_eq!(data.last(), unshared.last());
    }

    #[test]
    fn parses_v1_like_v0() {
        for shared in [true, false] {
            let v0 = v0_model(RAW, shared);
            let v1 = v1_from_v0(&v0, shared, 1);
            let a = Model::from_bytes(bytes(&v0)).unwrap();
            let b = Model::from_bytes(bytes(&v1)).unwrap();
            assert_eq!(b.format, Format::V1);
            assert_eq!(a.config, b.config);
            let (x, y) = (
                f32_data(a.weights.layer(&a.config, 1).w2),
                f32_data(b.weights.layer(&b.config, 1).w2),
            );
            assert_eq!(x, y);
        }
    }

    #[test]
    fn rejects_wrong_lengths() {
        let model = v0_model(RAW, true);
        let full = bytes(&model);
        assert_eq!(
            Model::from_bytes(&full[..full.len() - 4]).unwrap_err(),
            Error::FileSizeMismatch {
                expected: full.len(),
                actual: full.len() - 4
            }
        );
        let mut longer = model.clone();
        longer.push(0.0);
        assert_eq!(
            Model::from_bytes(bytes(&longer)).unwrap_err(),
            Error::FileSizeMismatch {
                expected: full.len(),
                actual: full.len() + 4
            }
        );
        assert_eq!(
            Model::from_bytes(&full[..12]).unwrap_err(),
            Error::TruncatedHeader {
                needed: 28,
                actual: 12
            }
        );
        assert_eq!(
            Model::from_bytes(&[]).unwrap_err(),
            Error::TruncatedHeader {
                needed: 28,
                actual: 0
            }
        );
    }

    #[test]
    fn rejects_unknown_versions_and_short_versioned_headers() {
        let v1 = v1_from_v0(&v0_model(RAW, true), true, 7);
        assert_eq!(
            Model::from_bytes(bytes(&v1)).unwrap_err(),
            Error::UnsupportedVersion(7)
        );
        assert_eq!(
            Model::from_bytes(&bytes(&v1)[..100]).unwrap_err(),
            Error::TruncatedHeader {
                needed: 256,
                actual: 100
            }
        );
    }

    /// A v2 file of `RAW`'s shape with zero weights, group size `group` in the header and
    /// `group_for_sizes` used to size the scales.
    fn v2_file(group: i32, group_for_sizes: usize, shared: bool) -> Vec<f32> {
        let c = Config::validated(RAW, shared).unwrap();
        let mut header = [0u8; VERSIONED_HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC.to_le_bytes());
        header[4..8].copy_from_slice(&2i32.to_le_bytes());
        for (i, v) in RAW.iter().enumerate() {
            header[8 + 4 * i..12 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        header[36] = u8::from(shared);
        header[37..41].copy_from_slice(&group.to_le_bytes());
        let mut bytes = header.to_vec();
        let norms = (2 * c.n_layers + 1) * c.dim;
        let layer = 2 * c.dim * c.dim + 2 * c.kv_dim() * c.dim + 3 * c.hidden_dim * c.dim;
        let embedding = c.vocab_size * c.dim;
        let q8 = |n: usize| n + 4 * (n / group_for_sizes);
        let classifier = if shared { 0 } else { q8(embedding) };
        let per_layer_tensors = [c.dim * c.dim, c.kv_dim() * c.dim, c.hidden_dim * c.dim];
        let layers: usize = c.n_layers
            * (2 * q8(per_layer_tensors[0])
                + 2 * q8(per_layer_tensors[1])
                + 3 * q8(per_layer_tensors[2]));
        assert_eq!(
            layers - c.n_layers * layer,
            c.n_layers * 4 * (layer / group_for_sizes)
        );
        bytes.resize(
            bytes.len() + 4 * norms + q8(embedding) + layers + classifier,
            0,
        );
        // pad to whole f32s for aligned storage; the caller trims
        let len = bytes.len();
        bytes.resize(len.next_multiple_of(4), 0);
        let mut words = f32_words(&bytes);
        words.push(f32::from_bits(len as u32)); // remember the true length
        words
    }

    fn v2_bytes(words: &[f32]) -> &[u8] {
        let len = words.last().unwrap().to_bits() as usize;
        &bytes(words)[..len]
    }

    #[test]
    fn parses_v2_and_checks_its_group_size() {
        for shared in [true, false] {
            let file = v2_file(4, 4, shared);
            let model = Model::from_bytes(v2_bytes(&file)).unwrap();
            assert_eq!(model.format, Format::V2 { group_size: 4 });
            assert_eq!(model.weights.layer(&model.config, 1).w2.cols(), 12);
            assert_eq!(model.weights.layer(&model.config, 1).w2.rows(), 8);
            let full = v2_bytes(&file);
            assert!(matches!(
                Model::from_bytes(&full[..full.len() - 4]),
                Err(Error::FileSizeMismatch { .. })
            ));
        }
        // 8 divides dim 8 but not hidden_dim 12
        let file = v2_file(8, 4, true);
        assert_eq!(
            Model::from_bytes(v2_bytes(&file)).unwrap_err(),
            Error::GroupSizeMismatch {
                group_size: 8,
                dim: 8,
                hidden_dim: 12
            }
        );
        let file = v2_file(0, 4, true);
        assert_eq!(
            Model::from_bytes(v2_bytes(&file)).unwrap_err(),
            Error::NonPositiveField {
                field: "group_size",
                value: 0
            }
        );
    }

    #[test]
    fn rejects_misaligned_bytes() {
        let model = v0_model(RAW, true);
        let mut shifted = vec![0u8; bytes(&model).len() + 1];
        shifted[1..].copy_from_slice(bytes(&model));
        // One of the two offsets is misaligned whatever the allocation's alignment.
        let misaligned = if (shifted.as_ptr() as usize).is_multiple_of(4) {
            &shifted[1..]
        } else {
            &shifted[..shifted.len() - 1]
        };
        assert_eq!(
            Model::from_bytes(misaligned).unwrap_err(),
            Error::Misaligned
        );
    }

    #[test]
    fn rejects_bad_header_and_overflow() {
        let mut model = v0_model(RAW, true);
        model[3] = f32::from_bits(0); // n_heads = 0
        assert!(matches!(
            Model::from_bytes(bytes(&model)).unwrap_err(),
            Error::NonPositiveField {
                field: "n_heads",
                ..
            }
        ));
        // vocab_size = i32::MIN cannot be negated into a positive size
        let mut model = v0_model(RAW, true);
        model[5] = f32::from_bits(i32::MIN as u32);
        assert!(matches!(
            Model::from_bytes(bytes(&model)).unwrap_err(),
            Error::NonPositiveField {
                field: "vocab_size",
                ..
            }
        ));
        // Sizes that only overflow on the way (seq_len * head_size of the RoPE tables)
        let mut header: Vec<f32> = [64, 64, 1, 2, 2, 1, i32::MAX]
            .iter()
            .map(|&v: &i32| f32::from_bits(v as u32))
            .collect();
        header.resize(64, 0.0);
        let err = Model::from_bytes(bytes(&header)).unwrap_err();
        let expected = if usize::BITS == 32 {
            Error::SizeOverflow
        } else {
            Error::FileSizeMismatch {
                expected: 28
                    + 4 * (64
                        + 2 * 64
                        + 4 * 64 * 64
                        + 3 * 64 * 64
                        + 64
                        + 2 * 16 * (i32::MAX as usize)),
                actual: 256,
            }
        };
        assert_eq!(err, expected);
    }
}
