//! Zero-copy parsing of llama2.c model files (v0 legacy and v1 fp32 layouts).
//!
//! The file is described once, section by section, by a [`Cursor`] walk; the same walk
//! measures the expected length, so a truncated or overlong file is reported with both
//! lengths and no section is ever read out of bounds.

use crate::config::{add, mul, Config};
use crate::error::{Error, Result};
use crate::weights::{Matrix, Stack, Weights};

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
}

/// A parsed model: its config and views of its weights.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    pub config: Config,
    pub format: Format,
    pub weights: Weights<'a>,
}

impl<'a> Model<'a> {
    /// Parses model bytes without copying them. The slice must be 4-byte aligned (a
    /// memory map or an aligned `static` is) and exactly as long as its header says.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Model<'a>> {
        if !(bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<f32>()) {
            return Err(Error::Misaligned);
        }
        if bytes.len() >= 8 && read_u32(bytes, 0) == MAGIC {
            parse_versioned(bytes)
        } else {
            parse_v0(bytes)
        }
    }
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
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
    raw[5] = raw[5].checked_abs().unwrap_or(0);
    let config = Config::validated(raw, shared)?;
    let mut cursor = Cursor::new(bytes, V0_HEADER_LEN);
    let token_embedding = cursor.matrix(Some(config.vocab_size), config.dim);
    let rms_att = cursor.f32s(mul(Some(config.n_layers), Some(config.dim)));
    let (wq, wk, wv, wo) = attention_stacks(&mut cursor, &config);
    let rms_ffn = cursor.f32s(mul(Some(config.n_layers), Some(config.dim)));
    let (w1, w2, w3) = ffn_stacks(&mut cursor, &config);
    let rms_final = cursor.f32s(Some(config.dim));
    // Two RoPE tables the reference never reads (it computes RoPE on the fly).
    let rope_table = mul(Some(config.seq_len), Some(config.head_size() / 2));
    cursor.f32s(mul(rope_table, Some(2)));
    let classifier = if shared {
        token_embedding
    } else {
        cursor.matrix(Some(config.vocab_size), config.dim)
    };
    cursor.finish()?;
    Ok(Model {
        config,
        format: Format::V0,
        weights: Weights {
            token_embedding,
            rms_att,
            rms_ffn,
            rms_final,
            wq,
            wk,
            wv,
            wo,
            w1,
            w2,
            w3,
            classifier,
        },
    })
}

fn parse_versioned(bytes: &[u8]) -> Result<Model<'_>> {
    require_header(bytes, VERSIONED_HEADER_LEN)?;
    let version = read_i32(bytes, 4);
    if version != 1 {
        return Err(Error::UnsupportedVersion(version));
    }
    let shared = bytes[36] != 0;
    let config = Config::validated(read_config(bytes, 8), shared)?;
    let mut cursor = Cursor::new(bytes, VERSIONED_HEADER_LEN);
    let rms_att = cursor.f32s(mul(Some(config.n_layers), Some(config.dim)));
    let rms_ffn = cursor.f32s(mul(Some(config.n_layers), Some(config.dim)));
    let rms_final = cursor.f32s(Some(config.dim));
    let token_embedding = cursor.matrix(Some(config.vocab_size), config.dim);
    let (wq, wk, wv, wo) = attention_stacks(&mut cursor, &config);
    let (w1, w2, w3) = ffn_stacks(&mut cursor, &config);
    let classifier = if shared {
        token_embedding
    } else {
        cursor.matrix(Some(config.vocab_size), config.dim)
    };
    cursor.finish()?;
    Ok(Model {
        config,
        format: Format::V1,
        weights: Weights {
            token_embedding,
            rms_att,
            rms_ffn,
            rms_final,
            wq,
            wk,
            wv,
            wo,
            w1,
            w2,
            w3,
            classifier,
        },
    })
}

fn attention_stacks<'a>(
    cursor: &mut Cursor<'a>,
    c: &Config,
) -> (Stack<'a>, Stack<'a>, Stack<'a>, Stack<'a>) {
    let wq = cursor.stack(c.n_layers, c.dim, c.dim);
    let wk = cursor.stack(c.n_layers, c.kv_dim(), c.dim);
    let wv = cursor.stack(c.n_layers, c.kv_dim(), c.dim);
    let wo = cursor.stack(c.n_layers, c.dim, c.dim);
    (wq, wk, wv, wo)
}

fn ffn_stacks<'a>(cursor: &mut Cursor<'a>, c: &Config) -> (Stack<'a>, Stack<'a>, Stack<'a>) {
    let w1 = cursor.stack(c.n_layers, c.hidden_dim, c.dim);
    let w2 = cursor.stack(c.n_layers, c.dim, c.hidden_dim);
    let w3 = cursor.stack(c.n_layers, c.hidden_dim, c.dim);
    (w1, w2, w3)
}

/// Walks the sections of a file. A section past the end (or of overflowing size) yields an
/// empty view and is remembered; [`Cursor::finish`] then reports the mismatch, so callers
/// never use a view from a failed walk.
struct Cursor<'a> {
    bytes: &'a [u8],
    /// Byte offset of the next section, `None` once a size overflowed.
    end: Option<usize>,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], start: usize) -> Self {
        Cursor {
            bytes,
            end: Some(start),
        }
    }

    fn f32s(&mut self, count: Option<usize>) -> &'a [f32] {
        let start = self.end;
        self.end = add(start, mul(count, Some(4)));
        match (start, self.end) {
            (Some(start), Some(end)) if end <= self.bytes.len() => {
                bytemuck::try_cast_slice(&self.bytes[start..end]).unwrap_or(&[])
            }
            _ => &[],
        }
    }

    fn matrix(&mut self, rows: Option<usize>, cols: usize) -> Matrix<'a> {
        let data = self.f32s(mul(rows, Some(cols)));
        Matrix::F32 { data, cols }
    }

    fn stack(&mut self, layers: usize, rows: usize, cols: usize) -> Stack<'a> {
        Stack::new(self.matrix(mul(Some(layers), Some(rows)), cols), rows)
    }

    fn finish(self) -> Result<()> {
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
