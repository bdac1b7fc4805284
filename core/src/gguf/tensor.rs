//! Tensor infos: the ggml element types with their block sizes, and the checks that turn a
//! tensor's declared shape, type and offset into a view of exactly its bytes.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use core::fmt;

use super::name::GgufName;
use super::reader::Reader;
use crate::error::{Error, Result};

/// ggml's limit on a tensor's dimensions (`GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;

/// A ggml element type, by the id GGUF stores. Every id ggml defines today is named, so that
/// a message can say which type a file uses; [`GgmlType::block`] says which this crate can
/// lay out.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GgmlType {
    /// 0: IEEE binary32.
    F32,
    /// 1: IEEE binary16.
    F16,
    /// 2: blocks of 32, an f16 scale and 4-bit values.
    Q4_0,
    /// 3: blocks of 32, f16 scale and minimum, 4-bit values.
    Q4_1,
    /// 6: blocks of 32, f16 scale, 5-bit values.
    Q5_0,
    /// 7: blocks of 32, f16 scale and minimum, 5-bit values.
    Q5_1,
    /// 8: blocks of 32, an f16 scale and `i8` values.
    Q8_0,
    /// 9: blocks of 32, f16 scale and sum, `i8` values.
    Q8_1,
    /// 10: super-blocks of 256, 2-bit values.
    Q2_K,
    /// 11: super-blocks of 256, 3-bit values.
    Q3_K,
    /// 12: super-blocks of 256, 4-bit values.
    Q4_K,
    /// 13: super-blocks of 256, 5-bit values.
    Q5_K,
    /// 14: super-blocks of 256, 6-bit values.
    Q6_K,
    /// 15: super-blocks of 256, f32 scale, `i8` values and block sums.
    Q8_K,
    /// 16 (not supported).
    IQ2_XXS,
    /// 17 (not supported).
    IQ2_XS,
    /// 18 (not supported).
    IQ3_XXS,
    /// 19 (not supported).
    IQ1_S,
    /// 20 (not supported).
    IQ4_NL,
    /// 21 (not supported).
    IQ3_S,
    /// 22 (not supported).
    IQ2_S,
    /// 23 (not supported).
    IQ4_XS,
    /// 24: `i8`.
    I8,
    /// 25: `i16`.
    I16,
    /// 26: `i32`.
    I32,
    /// 27: `i64`.
    I64,
    /// 28: IEEE binary64.
    F64,
    /// 29 (not supported).
    IQ1_M,
    /// 30: bfloat16.
    BF16,
    /// 34 (not supported).
    TQ1_0,
    /// 35 (not supported).
    TQ2_0,
    /// 39 (not supported).
    MXFP4,
}

/// The storage unit of a ggml type: `bytes` bytes hold `elements` consecutive values of a
/// row, so a row's length must be a multiple of `elements`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    /// Values per block.
    pub elements: usize,
    /// Bytes per block.
    pub bytes: usize,
}

/// One row of the type table.
#[derive(Debug, Clone, Copy)]
pub(super) struct TypeRow {
    pub(super) ggml_type: GgmlType,
    pub(super) id: u32,
    pub(super) name: &'static str,
    /// `None`: known, but not laid out by this crate.
    pub(super) block: Option<Block>,
}

const fn row(
    ggml_type: GgmlType,
    id: u32,
    name: &'static str,
    block: Option<(usize, usize)>,
) -> TypeRow {
    let block = match block {
        Some((elements, bytes)) => Some(Block { elements, bytes }),
        None => None,
    };
    TypeRow {
        ggml_type,
        id,
        name,
        block,
    }
}

/// Every type with its id, name and block, in the order the variants are declared. Block
/// sizes are those of ggml's block structs (`ggml-common.h`).
pub(super) const TYPES: [TypeRow; 32] = {
    use GgmlType::*;
    [
        row(F32, 0, "F32", Some((1, 4))),
        row(F16, 1, "F16", Some((1, 2))),
        row(Q4_0, 2, "Q4_0", Some((32, 18))),
        row(Q4_1, 3, "Q4_1", Some((32, 20))),
        row(Q5_0, 6, "Q5_0", Some((32, 22))),
        row(Q5_1, 7, "Q5_1", Some((32, 24))),
        row(Q8_0, 8, "Q8_0", Some((32, 34))),
        row(Q8_1, 9, "Q8_1", Some((32, 36))),
        row(Q2_K, 10, "Q2_K", Some((256, 84))),
        row(Q3_K, 11, "Q3_K", Some((256, 110))),
        row(Q4_K, 12, "Q4_K", Some((256, 144))),
        row(Q5_K, 13, "Q5_K", Some((256, 176))),
        row(Q6_K, 14, "Q6_K", Some((256, 210))),
        row(Q8_K, 15, "Q8_K", Some((256, 292))),
        row(IQ2_XXS, 16, "IQ2_XXS", None),
        row(IQ2_XS, 17, "IQ2_XS", None),
        row(IQ3_XXS, 18, "IQ3_XXS", None),
        row(IQ1_S, 19, "IQ1_S", None),
        row(IQ4_NL, 20, "IQ4_NL", None),
        row(IQ3_S, 21, "IQ3_S", None),
        row(IQ2_S, 22, "IQ2_S", None),
        row(IQ4_XS, 23, "IQ4_XS", None),
        row(I8, 24, "I8", Some((1, 1))),
        row(I16, 25, "I16", Some((1, 2))),
        row(I32, 26, "I32", Some((1, 4))),
        row(I64, 27, "I64", Some((1, 8))),
        row(F64, 28, "F64", Some((1, 8))),
        row(IQ1_M, 29, "IQ1_M", None),
        row(BF16, 30, "BF16", Some((1, 2))),
        row(TQ1_0, 34, "TQ1_0", None),
        row(TQ2_0, 35, "TQ2_0", None),
        row(MXFP4, 39, "MXFP4", None),
    ]
};

impl GgmlType {
    /// The type with ggml id `id`, if ggml defines one.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TYPES.iter().find(|t| t.id == id).map(|t| t.ggml_type)
    }

    fn row(self) -> TypeRow {
        // The variants are declared in the table's order (a unit test checks it), so the
        // discriminant is the row; F32's row is the unreachable fallback.
        TYPES.get(self as usize).copied().unwrap_or(TYPES[0])
    }

    /// The ggml id of this type.
    pub fn id(self) -> u32 {
        self.row().id
    }

    /// ggml's name of this type (`Q4_K`, `BF16`, ...).
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The block layout, for the types this crate can size (all but the IQ, TQ and MXFP4
    /// families, whose tensors are refused).
    pub fn block(self) -> Option<Block> {
        self.row().block
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor: its name, shape and type, and a view of exactly its bytes in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorInfo<'a> {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: &'a str,
    /// How its elements are stored.
    pub ggml_type: GgmlType,
    /// Its bytes: `element_count() / block.elements * block.bytes` of them.
    pub data: &'a [u8],
    dims: [usize; MAX_DIMS],
    n_dims: usize,
    offset: usize,
}

impl<'a> TensorInfo<'a> {
    /// The dimensions, fastest-varying first as ggml orders them: a matrix of `rows` rows of
    /// `cols` values is `[cols, rows]`.
    pub fn dims(&self) -> &[usize] {
        self.dims.get(..self.n_dims).unwrap_or_default()
    }

    /// The number of elements (the product of the dimensions; checked not to overflow).
    pub fn element_count(&self) -> usize {
        self.dims.iter().product()
    }

    /// The offset of the data from the start of the file's data section (a multiple of the
    /// file's alignment).
    pub fn offset(&self) -> usize {
        self.offset
    }
}

/// A tensor info as read from the file, checked in itself but not yet placed in the data.
#[derive(Debug, Clone, Copy)]
pub(super) struct RawTensor<'a> {
    name: &'a str,
    ggml_type: GgmlType,
    dims: [usize; MAX_DIMS],
    n_dims: usize,
    offset: u64,
    size: usize,
}

impl<'a> RawTensor<'a> {
    /// Reads one tensor info and checks its shape and type: at most four dimensions, each
    /// and their product within `usize`, a type this crate can size, rows a whole number of
    /// blocks, and a byte size within `usize`.
    pub(super) fn read(r: &mut Reader<'a>) -> Result<RawTensor<'a>> {
        let name = r.utf8("tensor name")?;
        // Errors name the tensor; the copy is made only for an error.
        let tensor = || GgufName::new(name);
        let n_dims = r.u32("tensor dimension count")?;
        let n = usize::try_from(n_dims)
            .ok()
            .filter(|&n| n <= MAX_DIMS)
            .ok_or_else(|| Error::GgufTooManyDims {
                tensor: tensor(),
                n_dims,
            })?;
        let mut raw_dims = [1u64; MAX_DIMS];
        for d in raw_dims.iter_mut().take(n) {
            *d = r.u64("tensor dimensions")?;
        }
        let type_id = r.u32("tensor type")?;
        let offset = r.u64("tensor data offset")?;

        let ggml_type = GgmlType::from_id(type_id).ok_or_else(|| Error::GgufUnknownType {
            tensor: tensor(),
            id: type_id,
        })?;
        let block = ggml_type
            .block()
            .ok_or_else(|| Error::GgufUnsupportedType {
                tensor: tensor(),
                ggml_type,
            })?;
        let overflow = || Error::GgufSizeOverflow { tensor: tensor() };
        let mut dims = [1usize; MAX_DIMS];
        let mut elements = 1usize;
        for (d, &raw) in dims.iter_mut().zip(&raw_dims) {
            *d = usize::try_from(raw).map_err(|_| overflow())?;
            elements = elements.checked_mul(*d).ok_or_else(overflow)?;
        }
        let [row, ..] = dims;
        if !row.is_multiple_of(block.elements) {
            return Err(Error::GgufShapeNotBlockMultiple {
                tensor: tensor(),
                ggml_type,
                row,
            });
        }
        // `row` is a multiple of the block, so `elements` is too.
        let size = (elements / block.elements)
            .checked_mul(block.bytes)
            .ok_or_else(overflow)?;
        Ok(RawTensor {
            name,
            ggml_type,
            dims,
            n_dims: n,
            offset,
            size,
        })
    }

    /// Places the tensor in the data section: its offset a multiple of `alignment`, its
    /// bytes inside `data`.
    pub(super) fn locate(self, data: &'a [u8], alignment: usize) -> Result<TensorInfo<'a>> {
        // `alignment` is a power of two of at most 2^31, so it fits in u64.
        if !self.offset.is_multiple_of(alignment as u64) {
            return Err(Error::GgufMisaligned {
                tensor: GgufName::new(self.name),
                offset: self.offset,
                alignment,
            });
        }
        let out_of_bounds = || Error::GgufTensorOutOfBounds {
            tensor: GgufName::new(self.name),
            offset: self.offset,
            size: self.size,
            data_len: data.len(),
        };
        let start = usize::try_from(self.offset).map_err(|_| out_of_bounds())?;
        let end = start.checked_add(self.size).ok_or_else(out_of_bounds)?;
        let bytes = data.get(start..end).ok_or_else(out_of_bounds)?;
        Ok(TensorInfo {
            name: self.name,
            ggml_type: self.ggml_type,
            data: bytes,
            dims: self.dims,
            n_dims: self.n_dims,
            offset: start,
        })
    }
}
