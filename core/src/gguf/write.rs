//! The one writer of GGUF files (version 3): header, metadata key/values of every value
//! type, tensor infos with their offsets computed from the shapes and the alignment, and
//! the tensor data with its padding. `llama2 convert`, the synthetic benchmark models and
//! the tests and fuzz seeds all write GGUF through it, so every writer agrees with the
//! reader.
//!
//! Without an allocator the writer keeps no tables: the caller describes the whole file up
//! front (metadata entries and tensor specs, borrowed), [`GgufWriter::new`] checks it and
//! writes everything before the data, then the tensors' bytes are streamed in, in the order
//! of the specs, through [`GgufWriter::data`], which inserts the padding between them.
//!
//! What the reader ([`super::Gguf::parse`]) refuses is refused here before a byte is
//! written, with the same error: too many entries, duplicate keys or tensor names, a bad
//! `general.alignment`, more than four dimensions, a type without a block layout, rows that
//! are not whole blocks, sizes that overflow `usize`. A file this writer finishes parses.
//!
//! ```
//! use llama2_core::gguf::write::{GgufWriter, MetaValue, TensorSpec};
//! use llama2_core::gguf::{Gguf, GgmlType};
//!
//! let metadata = [("general.architecture", MetaValue::String("llama"))];
//! let tensors = [TensorSpec::new("norm.weight", GgmlType::F32, &[2])];
//! let mut file = Vec::new();
//! let mut writer = GgufWriter::new(&mut file, &metadata, &tensors)?;
//! writer.data(&1.0f32.to_le_bytes())?;
//! writer.data(&2.0f32.to_le_bytes())?;
//! writer.finish()?;
//!
//! let parsed = Gguf::parse(&file)?;
//! assert_eq!(parsed.tensor("norm.weight").unwrap().dims(), [2]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use core::fmt;

use embedded_io::Write;

use super::{
    GgmlType, GgufName, ValueType, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_METADATA,
    MAX_TENSORS,
};
use crate::error::Error;

/// The GGUF version this writer produces.
pub const VERSION: u32 = 3;

/// A metadata value to write: one of GGUF's thirteen value types.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetaValue<'a> {
    /// A `u8`.
    U8(u8),
    /// An `i8`.
    I8(i8),
    /// A `u16`.
    U16(u16),
    /// An `i16`.
    I16(i16),
    /// A `u32` (what llama.cpp's tools write for counts and sizes).
    U32(u32),
    /// An `i32`.
    I32(i32),
    /// An `f32`.
    F32(f32),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    String(&'a str),
    /// An array of one element type (never of arrays: GGUF readers refuse those).
    Array(MetaArray<'a>),
    /// A `u64`.
    U64(u64),
    /// An `i64`.
    I64(i64),
    /// An `f64`.
    F64(f64),
}

/// The elements of a metadata array to write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetaArray<'a> {
    /// `u8` elements.
    U8(&'a [u8]),
    /// `i8` elements.
    I8(&'a [i8]),
    /// `u16` elements.
    U16(&'a [u16]),
    /// `i16` elements.
    I16(&'a [i16]),
    /// `u32` elements.
    U32(&'a [u32]),
    /// `i32` elements (llama.cpp's token types).
    I32(&'a [i32]),
    /// `f32` elements (llama.cpp's token scores).
    F32(&'a [f32]),
    /// Boolean elements.
    Bool(&'a [bool]),
    /// String elements (llama.cpp's token pieces).
    String(&'a [&'a str]),
    /// `u64` elements.
    U64(&'a [u64]),
    /// `i64` elements.
    I64(&'a [i64]),
    /// `f64` elements.
    F64(&'a [f64]),
}

impl MetaValue<'_> {
    /// The GGUF type of this value.
    pub const fn value_type(&self) -> ValueType {
        match self {
            MetaValue::U8(_) => ValueType::U8,
            MetaValue::I8(_) => ValueType::I8,
            MetaValue::U16(_) => ValueType::U16,
            MetaValue::I16(_) => ValueType::I16,
            MetaValue::U32(_) => ValueType::U32,
            MetaValue::I32(_) => ValueType::I32,
            MetaValue::F32(_) => ValueType::F32,
            MetaValue::Bool(_) => ValueType::Bool,
            MetaValue::String(_) => ValueType::String,
            MetaValue::Array(_) => ValueType::Array,
            MetaValue::U64(_) => ValueType::U64,
            MetaValue::I64(_) => ValueType::I64,
            MetaValue::F64(_) => ValueType::F64,
        }
    }
}

impl MetaArray<'_> {
    /// The GGUF type of the elements.
    pub const fn elem_type(&self) -> ValueType {
        match self {
            MetaArray::U8(_) => ValueType::U8,
            MetaArray::I8(_) => ValueType::I8,
            MetaArray::U16(_) => ValueType::U16,
            MetaArray::I16(_) => ValueType::I16,
            MetaArray::U32(_) => ValueType::U32,
            MetaArray::I32(_) => ValueType::I32,
            MetaArray::F32(_) => ValueType::F32,
            MetaArray::Bool(_) => ValueType::Bool,
            MetaArray::String(_) => ValueType::String,
            MetaArray::U64(_) => ValueType::U64,
            MetaArray::I64(_) => ValueType::I64,
            MetaArray::F64(_) => ValueType::F64,
        }
    }

    /// The number of elements.
    pub const fn len(&self) -> usize {
        match self {
            MetaArray::U8(a) => a.len(),
            MetaArray::I8(a) => a.len(),
            MetaArray::U16(a) => a.len(),
            MetaArray::I16(a) => a.len(),
            MetaArray::U32(a) => a.len(),
            MetaArray::I32(a) => a.len(),
            MetaArray::F32(a) => a.len(),
            MetaArray::Bool(a) => a.len(),
            MetaArray::String(a) => a.len(),
            MetaArray::U64(a) => a.len(),
            MetaArray::I64(a) => a.len(),
            MetaArray::F64(a) => a.len(),
        }
    }

    /// Whether the array has no elements.
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One tensor to write: its name, type and dimensions (fastest-varying first, as ggml
/// orders them: a matrix of `rows` rows of `cols` values is `[cols, rows]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorSpec<'a> {
    /// The tensor's name (`blk.0.attn_q.weight`).
    pub name: &'a str,
    /// How its elements are stored.
    pub ggml_type: GgmlType,
    /// Its dimensions, at most [`MAX_DIMS`].
    pub dims: &'a [usize],
}

impl<'a> TensorSpec<'a> {
    /// A tensor called `name` of `ggml_type` with `dims` (fastest-varying first).
    pub const fn new(name: &'a str, ggml_type: GgmlType, dims: &'a [usize]) -> TensorSpec<'a> {
        TensorSpec {
            name,
            ggml_type,
            dims,
        }
    }

    /// The bytes of its data, after the checks the reader makes on a tensor info: at most
    /// four dimensions, a type with a block layout, rows a whole number of blocks, and
    /// sizes within `usize`.
    pub fn byte_len(&self) -> Result<usize, Error> {
        let tensor = || GgufName::new(self.name);
        if self.dims.len() > MAX_DIMS {
            return Err(Error::GgufTooManyDims {
                tensor: tensor(),
                n_dims: u32::try_from(self.dims.len()).unwrap_or(u32::MAX),
            });
        }
        let block = self
            .ggml_type
            .block()
            .ok_or_else(|| Error::GgufUnsupportedType {
                tensor: tensor(),
                ggml_type: self.ggml_type,
            })?;
        let overflow = || Error::GgufSizeOverflow { tensor: tensor() };
        let mut elements = 1usize;
        for &d in self.dims {
            // The file stores dimensions as u64; the reader needs them in usize.
            elements = elements.checked_mul(d).ok_or_else(overflow)?;
        }
        let row = self.dims.first().copied().unwrap_or(1);
        if !row.is_multiple_of(block.elements) {
            return Err(Error::GgufShapeNotBlockMultiple {
                tensor: tensor(),
                ggml_type: self.ggml_type,
                row,
            });
        }
        (elements / block.elements)
            .checked_mul(block.bytes)
            .ok_or_else(overflow)
    }
}

/// Why a GGUF file could not be written: the description is one the reader would refuse,
/// the data given does not match it, or the sink failed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WriteError<E> {
    /// The file described (or the data given) is not a valid GGUF file.
    Gguf(Error),
    /// The sink reported an error.
    Sink(E),
}

impl<E> From<Error> for WriteError<E> {
    fn from(e: Error) -> Self {
        WriteError::Gguf(e)
    }
}

impl<E: fmt::Debug> fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Gguf(e) => write!(f, "{e}"),
            WriteError::Sink(e) => write!(f, "write failed: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for WriteError<E> {}

/// Writes one GGUF file to a sink: [`GgufWriter::new`] writes everything up to the data
/// section, [`GgufWriter::data`] takes the tensors' bytes in spec order, and
/// [`GgufWriter::finish`] checks that every tensor got all of its bytes.
#[derive(Debug)]
pub struct GgufWriter<'t, W> {
    out: W,
    tensors: &'t [TensorSpec<'t>],
    alignment: usize,
    /// The tensor whose bytes come next, and how many of them it has had.
    current: usize,
    filled: usize,
    /// Its byte length (0 once every tensor is complete).
    current_len: usize,
}

impl<'t, W: Write> GgufWriter<'t, W> {
    /// Checks the description of a file and writes its header, metadata and tensor infos
    /// (offsets in spec order, each at the next multiple of the alignment) and the padding
    /// up to the data section. The alignment is `general.alignment` if `metadata` sets it
    /// (a `u32` power of two), else 32.
    pub fn new(
        mut out: W,
        metadata: &[(&str, MetaValue<'_>)],
        tensors: &'t [TensorSpec<'t>],
    ) -> Result<Self, WriteError<W::Error>> {
        let layout = Layout::of(metadata, tensors)?;
        let mut sink = Counting {
            out: &mut out,
            written: 0,
        };
        sink.write(&MAGIC)?;
        sink.u32(VERSION)?;
        sink.u64(tensors.len() as u64)?;
        sink.u64(metadata.len() as u64)?;
        for (key, value) in metadata {
            sink.string(key)?;
            sink.u32(value.value_type().id())?;
            sink.value(value)?;
        }
        let mut offset = 0usize;
        for tensor in tensors {
            sink.string(tensor.name)?;
            sink.u32(tensor.dims.len() as u32)?; // at most MAX_DIMS
            for &d in tensor.dims {
                sink.u64(d as u64)?;
            }
            sink.u32(tensor.ggml_type.id())?;
            sink.u64(offset as u64)?;
            // Layout::of checked every sum and padding below.
            offset = padded(offset + tensor.byte_len()?, layout.alignment)?;
        }
        let header_end = sink.written;
        sink.zeros(padded(header_end, layout.alignment)? - header_end)?;
        let mut writer = GgufWriter {
            out,
            tensors,
            alignment: layout.alignment,
            current: 0,
            filled: 0,
            current_len: 0,
        };
        writer.start_tensor(0)?;
        Ok(writer)
    }

    /// Makes tensor `index` the one whose bytes come next (skipping empty tensors, which
    /// take no bytes and no padding).
    fn start_tensor(&mut self, mut index: usize) -> Result<(), Error> {
        while let Some(tensor) = self.tensors.get(index) {
            let len = tensor.byte_len()?;
            if len > 0 {
                (self.current, self.filled, self.current_len) = (index, 0, len);
                return Ok(());
            }
            index += 1;
        }
        (self.current, self.filled, self.current_len) = (index, 0, 0);
        Ok(())
    }

    /// Writes the next bytes of tensor data: the tensors' bytes one after the other, in the
    /// order of the specs, in pieces of any size (a piece may end one tensor and start the
    /// next; the padding between them is written here). More bytes than the tensors take
    /// are refused ([`Error::GgufTensorDataMismatch`]).
    pub fn data(&mut self, mut bytes: &[u8]) -> Result<(), WriteError<W::Error>> {
        while !bytes.is_empty() {
            if self.current >= self.tensors.len() {
                let last = self.tensors.last().map_or("", |t| t.name);
                return Err(Error::GgufTensorDataMismatch {
                    tensor: GgufName::new(last),
                    expected: 0,
                    given: bytes.len(),
                }
                .into());
            }
            let take = bytes.len().min(self.current_len - self.filled);
            let (now, rest) = bytes.split_at(take);
            self.out.write_all(now).map_err(WriteError::Sink)?;
            self.filled += take;
            bytes = rest;
            if self.filled == self.current_len {
                // Every tensor ends padded to the alignment, as gguf-py and ggml write it.
                let pad = padded(self.current_len, self.alignment)? - self.current_len;
                write_zeros(&mut self.out, pad).map_err(WriteError::Sink)?;
                self.start_tensor(self.current + 1)?;
            }
        }
        Ok(())
    }

    /// Checks that every tensor had all of its bytes and gives the sink back.
    pub fn finish(self) -> Result<W, WriteError<W::Error>> {
        if let Some(tensor) = self.tensors.get(self.current) {
            return Err(Error::GgufTensorDataMismatch {
                tensor: GgufName::new(tensor.name),
                expected: self.current_len,
                given: self.filled,
            }
            .into());
        }
        Ok(self.out)
    }
}

/// The byte length of the GGUF file that `metadata` and `tensors` describe (to size a
/// buffer before writing it), after the checks [`GgufWriter::new`] makes.
pub fn file_len(
    metadata: &[(&str, MetaValue<'_>)],
    tensors: &[TensorSpec<'_>],
) -> Result<usize, Error> {
    let layout = Layout::of(metadata, tensors)?;
    layout
        .data_offset
        .checked_add(layout.data_len)
        .ok_or(Error::SizeOverflow)
}

/// The sizes of a checked file description.
struct Layout {
    alignment: usize,
    data_offset: usize,
    data_len: usize,
}

impl Layout {
    /// Checks the description as the reader checks a file, and measures it.
    fn of(metadata: &[(&str, MetaValue<'_>)], tensors: &[TensorSpec<'_>]) -> Result<Layout, Error> {
        let too_many = |what, count: usize, max| Error::GgufTooManyEntries {
            what,
            count: count as u64,
            max,
        };
        if tensors.len() > MAX_TENSORS {
            return Err(too_many("tensors", tensors.len(), MAX_TENSORS));
        }
        if metadata.len() > MAX_METADATA {
            return Err(too_many("metadata entries", metadata.len(), MAX_METADATA));
        }
        let overflow = Error::SizeOverflow;
        // Magic, version and the two counts.
        let mut len = 24usize;
        let mut alignment = DEFAULT_ALIGNMENT;
        for (i, (key, value)) in metadata.iter().enumerate() {
            let later = metadata.get(i + 1..).unwrap_or_default();
            if later.iter().any(|(k, _)| k == key) {
                return Err(Error::GgufDuplicateKey {
                    key: GgufName::new(key),
                });
            }
            if *key == ALIGNMENT_KEY {
                alignment = alignment_of(value)?;
            }
            let entry = string_len(key)
                .and_then(|n| n.checked_add(4))
                .and_then(|n| n.checked_add(value_len(value)?));
            len = entry.and_then(|n| len.checked_add(n)).ok_or(overflow)?;
        }
        let mut data_len = 0usize;
        for (i, tensor) in tensors.iter().enumerate() {
            let later = tensors.get(i + 1..).unwrap_or_default();
            if later.iter().any(|t| t.name == tensor.name) {
                return Err(Error::GgufDuplicateTensor {
                    name: GgufName::new(tensor.name),
                });
            }
            let size = tensor.byte_len()?;
            // Name, dimension count, dimensions, type and offset.
            let info = string_len(tensor.name)
                .and_then(|n| n.checked_add(4 + 8 * tensor.dims.len() + 4 + 8));
            len = info.and_then(|n| len.checked_add(n)).ok_or(overflow)?;
            data_len = data_len
                .checked_add(size)
                .and_then(|n| padded(n, alignment).ok())
                .ok_or(overflow)?;
        }
        let data_offset = padded(len, alignment)?;
        data_offset.checked_add(data_len).ok_or(overflow)?;
        Ok(Layout {
            alignment,
            data_offset,
            data_len,
        })
    }
}

/// `general.alignment` as the reader takes it: a `u32` power of two.
fn alignment_of(value: &MetaValue<'_>) -> Result<usize, Error> {
    let MetaValue::U32(alignment) = *value else {
        return Err(Error::GgufWrongType {
            key: ALIGNMENT_KEY,
            expected: ValueType::U32,
            found: value.value_type(),
        });
    };
    if !alignment.is_power_of_two() {
        return Err(Error::GgufBadAlignment { value: alignment });
    }
    usize::try_from(alignment).map_err(|_| Error::GgufBadAlignment { value: alignment })
}

/// `n` rounded up to a multiple of `alignment`.
fn padded(n: usize, alignment: usize) -> Result<usize, Error> {
    n.checked_next_multiple_of(alignment)
        .ok_or(Error::SizeOverflow)
}

/// Bytes of a GGUF string: its u64 length, then its bytes.
fn string_len(s: &str) -> Option<usize> {
    s.len().checked_add(8)
}

/// Encoded bytes of a value (without its type id).
fn value_len(value: &MetaValue<'_>) -> Option<usize> {
    match value {
        MetaValue::U8(_) | MetaValue::I8(_) | MetaValue::Bool(_) => Some(1),
        MetaValue::U16(_) | MetaValue::I16(_) => Some(2),
        MetaValue::U32(_) | MetaValue::I32(_) | MetaValue::F32(_) => Some(4),
        MetaValue::U64(_) | MetaValue::I64(_) | MetaValue::F64(_) => Some(8),
        MetaValue::String(s) => string_len(s),
        MetaValue::Array(array) => {
            // Element type and count, then the elements.
            let elements = match array {
                MetaArray::String(strings) => strings
                    .iter()
                    .try_fold(0usize, |sum, s| sum.checked_add(string_len(s)?))?,
                MetaArray::U8(a) => a.len(),
                MetaArray::I8(a) => a.len(),
                MetaArray::Bool(a) => a.len(),
                MetaArray::U16(a) => a.len().checked_mul(2)?,
                MetaArray::I16(a) => a.len().checked_mul(2)?,
                MetaArray::U32(a) => a.len().checked_mul(4)?,
                MetaArray::I32(a) => a.len().checked_mul(4)?,
                MetaArray::F32(a) => a.len().checked_mul(4)?,
                MetaArray::U64(a) => a.len().checked_mul(8)?,
                MetaArray::I64(a) => a.len().checked_mul(8)?,
                MetaArray::F64(a) => a.len().checked_mul(8)?,
            };
            elements.checked_add(12)
        }
    }
}

fn write_zeros<W: Write>(out: &mut W, mut n: usize) -> Result<(), W::Error> {
    const ZEROS: [u8; 64] = [0; 64];
    while n > 0 {
        let now = n.min(ZEROS.len());
        out.write_all(ZEROS.get(..now).unwrap_or_default())?;
        n -= now;
    }
    Ok(())
}

/// A sink that counts what it writes (for the padding after the tensor infos).
struct Counting<'w, W> {
    out: &'w mut W,
    written: usize,
}

impl<W: Write> Counting<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), WriteError<W::Error>> {
        self.out.write_all(bytes).map_err(WriteError::Sink)?;
        self.written = self.written.saturating_add(bytes.len());
        Ok(())
    }

    fn zeros(&mut self, n: usize) -> Result<(), WriteError<W::Error>> {
        write_zeros(self.out, n).map_err(WriteError::Sink)?;
        self.written = self.written.saturating_add(n);
        Ok(())
    }

    fn u32(&mut self, v: u32) -> Result<(), WriteError<W::Error>> {
        self.write(&v.to_le_bytes())
    }

    fn u64(&mut self, v: u64) -> Result<(), WriteError<W::Error>> {
        self.write(&v.to_le_bytes())
    }

    fn string(&mut self, s: &str) -> Result<(), WriteError<W::Error>> {
        self.u64(s.len() as u64)?;
        self.write(s.as_bytes())
    }

    fn value(&mut self, value: &MetaValue<'_>) -> Result<(), WriteError<W::Error>> {
        match *value {
            MetaValue::U8(v) => self.write(&[v]),
            MetaValue::I8(v) => self.write(&v.to_le_bytes()),
            MetaValue::U16(v) => self.write(&v.to_le_bytes()),
            MetaValue::I16(v) => self.write(&v.to_le_bytes()),
            MetaValue::U32(v) => self.u32(v),
            MetaValue::I32(v) => self.write(&v.to_le_bytes()),
            MetaValue::F32(v) => self.write(&v.to_le_bytes()),
            MetaValue::Bool(v) => self.write(&[u8::from(v)]),
            MetaValue::String(s) => self.string(s),
            MetaValue::U64(v) => self.u64(v),
            MetaValue::I64(v) => self.write(&v.to_le_bytes()),
            MetaValue::F64(v) => self.write(&v.to_le_bytes()),
            MetaValue::Array(array) => {
                self.u32(array.elem_type().id())?;
                self.u64(array.len() as u64)?;
                self.elements(array)
            }
        }
    }

    fn elements(&mut self, array: MetaArray<'_>) -> Result<(), WriteError<W::Error>> {
        /// Writes each element's little-endian bytes.
        macro_rules! each {
            ($a:expr) => {{
                for v in $a {
                    self.write(&v.to_le_bytes())?;
                }
                Ok(())
            }};
        }
        match array {
            MetaArray::U8(a) => self.write(a),
            MetaArray::I8(a) => each!(a),
            MetaArray::U16(a) => each!(a),
            MetaArray::I16(a) => each!(a),
            MetaArray::U32(a) => each!(a),
            MetaArray::I32(a) => each!(a),
            MetaArray::F32(a) => each!(a),
            MetaArray::Bool(a) => each!(a.iter().map(|&b| u8::from(b))),
            MetaArray::U64(a) => each!(a),
            MetaArray::I64(a) => each!(a),
            MetaArray::F64(a) => each!(a),
            MetaArray::String(a) => {
                for s in a {
                    self.string(s)?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::vec::Vec;

    use super::*;
    use crate::gguf::{Gguf, Value};

    /// Writes a file whose tensors' bytes are `data` (all of them, in spec order).
    fn write(
        metadata: &[(&str, MetaValue<'_>)],
        tensors: &[TensorSpec<'_>],
        data: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let mut file = Vec::new();
        let unwrap = |e: WriteError<_>| match e {
            WriteError::Gguf(e) => e,
            WriteError::Sink(e) => match e {},
        };
        let mut w = GgufWriter::new(&mut file, metadata, tensors).map_err(unwrap)?;
        w.data(data).map_err(unwrap)?;
        w.finish().map_err(unwrap)?;
        assert_eq!(file_len(metadata, tensors), Ok(file.len()));
        Ok(file)
    }

    #[test]
    fn every_value_type_reads_back() {
        let strings = ["a", "", "▁b"];
        let metadata = [
            ("u8", MetaValue::U8(200)),
            ("i8", MetaValue::I8(-5)),
            ("u16", MetaValue::U16(60000)),
            ("i16", MetaValue::I16(-30000)),
            ("u32", MetaValue::U32(4_000_000_000)),
            ("i32", MetaValue::I32(-2_000_000_000)),
            ("f32", MetaValue::F32(1.5)),
            ("bool", MetaValue::Bool(true)),
            ("string", MetaValue::String("llama ▁")),
            ("u64", MetaValue::U64(1 << 40)),
            ("i64", MetaValue::I64(-(1 << 40))),
            ("f64", MetaValue::F64(0.1)),
            ("a.u8", MetaValue::Array(MetaArray::U8(&[1, 2]))),
            ("a.i8", MetaValue::Array(MetaArray::I8(&[-1]))),
            ("a.u16", MetaValue::Array(MetaArray::U16(&[7, 8, 9]))),
            ("a.i16", MetaValue::Array(MetaArray::I16(&[-7]))),
            ("a.u32", MetaValue::Array(MetaArray::U32(&[u32::MAX]))),
            ("a.i32", MetaValue::Array(MetaArray::I32(&[1, -2]))),
            ("a.f32", MetaValue::Array(MetaArray::F32(&[0.5, -0.25]))),
            ("a.bool", MetaValue::Array(MetaArray::Bool(&[false, true]))),
            ("a.str", MetaValue::Array(MetaArray::String(&strings))),
            ("a.u64", MetaValue::Array(MetaArray::U64(&[1 << 50]))),
            ("a.i64", MetaValue::Array(MetaArray::I64(&[-3]))),
            ("a.f64", MetaValue::Array(MetaArray::F64(&[2.5]))),
            ("a.empty", MetaValue::Array(MetaArray::F32(&[]))),
        ];
        let file = write(&metadata, &[], &[]).unwrap();
        let g = Gguf::parse(&file).unwrap();
        assert_eq!(
            (g.version(), g.metadata_len(), g.tensor_count()),
            (3, 25, 0)
        );
        let get = |k: &str| g.metadata(k).unwrap();
        assert_eq!(get("u8"), Value::U8(200));
        assert_eq!(get("i8"), Value::I8(-5));
        assert_eq!(get("u16"), Value::U16(60000));
        assert_eq!(get("i16"), Value::I16(-30000));
        assert_eq!(get("u32"), Value::U32(4_000_000_000));
        assert_eq!(get("i32"), Value::I32(-2_000_000_000));
        assert_eq!(get("f32"), Value::F32(1.5));
        assert_eq!(get("bool"), Value::Bool(true));
        assert_eq!(get("string").as_str(), Some("llama ▁"));
        assert_eq!(get("u64"), Value::U64(1 << 40));
        assert_eq!(get("i64"), Value::I64(-(1 << 40)));
        assert_eq!(get("f64"), Value::F64(0.1));
        // Every array: the element type and each element as written.
        for (key, value) in &metadata[12..] {
            let MetaValue::Array(written) = value else {
                unreachable!()
            };
            let read = get(key).as_array().unwrap();
            assert_eq!(read.elem_type(), written.elem_type(), "{key}");
            assert_eq!(read.len(), written.len(), "{key}");
        }
        let read = |k: &str| get(k).as_array().unwrap().iter().collect::<Vec<_>>();
        assert_eq!(read("a.u16"), [Value::U16(7), Value::U16(8), Value::U16(9)]);
        assert_eq!(read("a.i16"), [Value::I16(-7)]);
        assert_eq!(read("a.i8"), [Value::I8(-1)]);
        assert_eq!(read("a.u8"), [Value::U8(1), Value::U8(2)]);
        assert_eq!(read("a.u32"), [Value::U32(u32::MAX)]);
        assert_eq!(read("a.i32"), [Value::I32(1), Value::I32(-2)]);
        assert_eq!(read("a.f32"), [Value::F32(0.5), Value::F32(-0.25)]);
        assert_eq!(read("a.bool"), [Value::Bool(false), Value::Bool(true)]);
        assert_eq!(read("a.u64"), [Value::U64(1 << 50)]);
        assert_eq!(read("a.i64"), [Value::I64(-3)]);
        assert_eq!(read("a.f64"), [Value::F64(2.5)]);
        let pieces: Vec<&[u8]> = get("a.str")
            .as_array()
            .unwrap()
            .strings()
            .unwrap()
            .collect();
        assert_eq!(pieces, [&b"a"[..], b"", "▁b".as_bytes()]);
    }

    #[test]
    fn tensors_are_placed_at_aligned_offsets() {
        for alignment in [None, Some(1u32), Some(8), Some(64)] {
            let metadata: Vec<_> = alignment
                .map(|a| (ALIGNMENT_KEY, MetaValue::U32(a)))
                .into_iter()
                .collect();
            let tensors = [
                TensorSpec::new("a", GgmlType::F32, &[3]),
                TensorSpec::new("empty", GgmlType::F32, &[0, 4]),
                TensorSpec::new("q", GgmlType::Q8_0, &[32, 2]),
                TensorSpec::new("h", GgmlType::F16, &[1]),
            ];
            let data: Vec<u8> = (0..12 + 68 + 2).map(|i| i as u8).collect();
            let file = write(&metadata, &tensors, &data).unwrap();
            let g = Gguf::parse(&file).unwrap();
            let align = alignment.map_or(32, |a| a as usize);
            assert_eq!(g.alignment(), align);
            assert_eq!(g.data_offset() % align, 0);
            assert_eq!(file.len() % align, 0, "the last tensor is padded too");
            let t = |name| g.tensor(name).unwrap();
            assert_eq!(t("a").data, &data[..12]);
            assert_eq!(t("q").data, &data[12..80]);
            assert_eq!(t("h").data, &data[80..]);
            assert_eq!(t("q").dims(), [32, 2]);
            assert_eq!(t("q").offset(), 12usize.next_multiple_of(align));
            assert!(t("empty").data.is_empty());
            assert!(g.tensors().all(|t| t.offset() % align == 0));
        }
    }

    #[test]
    fn data_may_come_in_pieces_of_any_size() {
        let tensors = [
            TensorSpec::new("a", GgmlType::F32, &[5]),
            TensorSpec::new("b", GgmlType::F32, &[7]),
        ];
        let data: Vec<u8> = (0..48).collect();
        let whole = write(&[], &tensors, &data).unwrap();
        for piece in [1, 3, 20, 48] {
            let mut file = Vec::new();
            let mut w = GgufWriter::new(&mut file, &[], &tensors).unwrap();
            for chunk in data.chunks(piece) {
                w.data(chunk).unwrap();
            }
            w.finish().unwrap();
            assert_eq!(file, whole);
        }
    }

    #[test]
    fn wrong_amounts_of_data_are_refused() {
        let tensors = [TensorSpec::new("a", GgmlType::F32, &[2])];
        let name = GgufName::new("a");
        assert_eq!(
            write(&[], &tensors, &[0; 4]),
            Err(Error::GgufTensorDataMismatch {
                tensor: name,
                expected: 8,
                given: 4
            })
        );
        assert_eq!(
            write(&[], &tensors, &[0; 9]),
            Err(Error::GgufTensorDataMismatch {
                tensor: name,
                expected: 0,
                given: 1
            })
        );
    }

    /// A file description and the error it must get.
    type Case<'a> = (Vec<(&'a str, MetaValue<'a>)>, Vec<TensorSpec<'a>>, Error);

    /// Every description the writer refuses, with the reader's error for such a file.
    #[test]
    fn refuses_what_the_reader_refuses() {
        let f32 = |name| TensorSpec::new(name, GgmlType::F32, &[1]);
        let name = GgufName::new;
        let cases: Vec<Case<'_>> = vec![
            (
                vec![("k", MetaValue::U8(1)), ("k", MetaValue::U8(2))],
                vec![],
                Error::GgufDuplicateKey { key: name("k") },
            ),
            (
                vec![],
                vec![f32("t"), f32("u"), f32("t")],
                Error::GgufDuplicateTensor { name: name("t") },
            ),
            (
                vec![(ALIGNMENT_KEY, MetaValue::U32(24))],
                vec![],
                Error::GgufBadAlignment { value: 24 },
            ),
            (
                vec![(ALIGNMENT_KEY, MetaValue::U32(0))],
                vec![],
                Error::GgufBadAlignment { value: 0 },
            ),
            (
                vec![(ALIGNMENT_KEY, MetaValue::U64(32))],
                vec![],
                Error::GgufWrongType {
                    key: ALIGNMENT_KEY,
                    expected: ValueType::U32,
                    found: ValueType::U64,
                },
            ),
            (
                vec![],
                vec![TensorSpec::new("5d", GgmlType::F32, &[1, 1, 1, 1, 1])],
                Error::GgufTooManyDims {
                    tensor: name("5d"),
                    n_dims: 5,
                },
            ),
            (
                vec![],
                vec![TensorSpec::new("iq", GgmlType::IQ2_XXS, &[256])],
                Error::GgufUnsupportedType {
                    tensor: name("iq"),
                    ggml_type: GgmlType::IQ2_XXS,
                },
            ),
            (
                vec![],
                vec![TensorSpec::new("q", GgmlType::Q4_K, &[64, 4])],
                Error::GgufShapeNotBlockMultiple {
                    tensor: name("q"),
                    ggml_type: GgmlType::Q4_K,
                    row: 64,
                },
            ),
            (
                vec![],
                vec![TensorSpec::new("big", GgmlType::F32, &[usize::MAX, 2])],
                Error::GgufSizeOverflow {
                    tensor: name("big"),
                },
            ),
            (
                vec![],
                vec![TensorSpec::new("big", GgmlType::F64, &[usize::MAX / 4])],
                Error::GgufSizeOverflow {
                    tensor: name("big"),
                },
            ),
        ];
        for (metadata, tensors, expected) in cases {
            assert_eq!(file_len(&metadata, &tensors), Err(expected));
            let mut file = Vec::new();
            let err = GgufWriter::new(&mut file, &metadata, &tensors).unwrap_err();
            assert_eq!(err, WriteError::Gguf(expected));
            assert!(file.is_empty(), "nothing is written for {expected:?}");
        }
        let many: Vec<TensorSpec<'_>> = (0..=MAX_TENSORS).map(|_| f32("same")).collect();
        assert_eq!(
            file_len(&[], &many),
            Err(Error::GgufTooManyEntries {
                what: "tensors",
                count: MAX_TENSORS as u64 + 1,
                max: MAX_TENSORS
            })
        );
        let keys: Vec<(&str, MetaValue<'_>)> = (0..=MAX_METADATA)
            .map(|_| ("k", MetaValue::U8(0)))
            .collect();
        assert!(matches!(
            file_len(&keys, &[]),
            Err(Error::GgufTooManyEntries {
                what: "metadata entries",
                ..
            })
        ));
    }

    #[test]
    fn sink_errors_are_passed_on() {
        /// A sink that takes `room` bytes, then fails.
        #[derive(Debug)]
        struct Full {
            room: usize,
        }
        impl embedded_io::ErrorType for Full {
            type Error = embedded_io::ErrorKind;
        }
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
                if self.room == 0 {
                    return Err(embedded_io::ErrorKind::OutOfMemory);
                }
                let n = buf.len().min(self.room);
                self.room -= n;
                Ok(n)
            }
            fn flush(&mut self) -> Result<(), Self::Error> {
                Ok(())
            }
        }
        let tensors = [TensorSpec::new("a", GgmlType::F32, &[2])];
        let sink = Full { room: 10 };
        let err = GgufWriter::new(sink, &[], &tensors).unwrap_err();
        assert_eq!(err, WriteError::Sink(embedded_io::ErrorKind::OutOfMemory));
        let mut w = GgufWriter::new(Full { room: 64 + 4 }, &[], &tensors).unwrap();
        let err = w.data(&[0; 8]).unwrap_err();
        assert_eq!(err, WriteError::Sink(embedded_io::ErrorKind::OutOfMemory));
    }
}
