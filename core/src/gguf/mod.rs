//! A zero-copy reader of GGUF files (versions 2 and 3, little-endian), the container
//! llama.cpp's tools write: a header, metadata key/values, tensor infos, then the tensor
//! data at the file's alignment.
//!
//! [`Gguf::parse`] walks every key/value and tensor info once and checks everything about
//! them (lengths inside the file, known types, shapes whose sizes fit `usize`, every
//! tensor's bytes aligned and inside the data section, no two tensors overlapping, no
//! duplicate keys or tensor names). Without an allocator there are no tables to keep, so a
//! parsed [`Gguf`] keeps only the byte ranges of its sections; lookups and iterators walk
//! them again with the same code, which cannot fail on a file that parsed.
//!
//! Nothing here knows what a llama model is: the model layer reads its hyperparameters and
//! weights through [`Gguf::metadata`] and [`Gguf::tensor`], in whatever order the file holds
//! them.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::var("LLAMA2_FIXTURES").unwrap_or("../../shared/fixtures".into());
//! # let bytes = std::fs::read(format!("{dir}/gguf/stories260K.gguf"))?;
//! use llama2_core::gguf::Gguf;
//! let file = Gguf::parse(&bytes)?;
//! let arch = file.metadata("general.architecture").and_then(|v| v.as_str());
//! assert_eq!(arch, Some("llama"));
//! let embedding = file.tensor("token_embd.weight").ok_or("no embedding")?;
//! assert_eq!(embedding.dims(), [64, 512]); // 512 rows of 64 values
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod name;
mod reader;
mod tensor;
mod value;
pub mod write;

#[cfg(test)]
pub(crate) mod tests;

pub use name::GgufName;
pub use tensor::{Block, GgmlType, TensorInfo, MAX_DIMS};
pub use value::{Array, ArrayIter, Value, ValueType};

use crate::error::{Error, Result};
use reader::Reader;
use tensor::RawTensor;

/// The first four bytes of every GGUF file.
pub const MAGIC: [u8; 4] = *b"GGUF";

/// The metadata key that sets the data alignment (a `u32` power of two).
pub const ALIGNMENT_KEY: &str = "general.alignment";

/// The alignment of tensor data when the file does not set `general.alignment`.
pub const DEFAULT_ALIGNMENT: usize = 32;

/// The most tensors a file may declare. Duplicate names are found by comparing every pair
/// (there is no allocator for a table), so the count bounds that cost; the largest llama
/// models have about 1200 tensors.
pub const MAX_TENSORS: usize = 4096;

/// The most metadata entries a file may declare (for the same reason; llama.cpp's tools
/// write a few dozen).
pub const MAX_METADATA: usize = 1024;

/// Whether `bytes` start with the GGUF magic (to choose a parser by the file's content).
pub fn is_gguf(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

/// A parsed GGUF file: views of its sections, borrowed from the file's bytes.
#[derive(Debug, Clone, Copy)]
pub struct Gguf<'a> {
    version: u32,
    alignment: usize,
    metadata: Section<'a>,
    tensors: Section<'a>,
    data: &'a [u8],
    data_offset: usize,
}

/// The bytes of a run of `count` entries (key/values or tensor infos).
#[derive(Debug, Clone, Copy)]
struct Section<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> Gguf<'a> {
    /// Parses and checks a GGUF file without copying it. `bytes` may have any address; the
    /// file places every tensor at a multiple of the alignment (32 unless the file says
    /// otherwise), so bytes aligned to that (a memory map is) give aligned tensor data.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>> {
        let mut r = Reader::new(bytes, 0);
        let found = r.array::<4>("magic")?;
        if found != MAGIC {
            return Err(Error::GgufBadMagic { found });
        }
        let version = r.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(Error::GgufUnsupportedVersion(version));
        }
        let tensor_count = count(r.u64("tensor count")?, "tensors", MAX_TENSORS)?;
        let metadata_count = count(r.u64("metadata count")?, "metadata entries", MAX_METADATA)?;

        let metadata_start = r.pos();
        let mut alignment = DEFAULT_ALIGNMENT;
        for _ in 0..metadata_count {
            let (key, value) = read_entry(&mut r)?;
            if key == ALIGNMENT_KEY {
                alignment = alignment_from(value)?;
            }
        }
        let metadata = Section {
            bytes: r.since(metadata_start),
            count: metadata_count,
        };

        let tensors_start = r.pos();
        for _ in 0..tensor_count {
            RawTensor::read(&mut r)?;
        }
        let tensors = Section {
            bytes: r.since(tensors_start),
            count: tensor_count,
        };

        // The data section starts at the next multiple of the alignment. A file without
        // tensor data may end before it: its data section is then the empty slice at the
        // end of the file (so that even empty tensors' views point into the file).
        let data_offset = r
            .pos()
            .checked_next_multiple_of(alignment)
            .ok_or(Error::SizeOverflow)?;
        let data = bytes
            .get(data_offset.min(bytes.len())..)
            .unwrap_or_default();

        let file = Gguf {
            version,
            alignment,
            metadata,
            tensors,
            data,
            data_offset,
        };
        file.check_keys_unique()?;
        file.check_tensors()?;
        Ok(file)
    }

    /// Every key appears once (a reader taking the first and one taking the last must not
    /// see different models).
    fn check_keys_unique(&self) -> Result<()> {
        // Each entry against the ones after it, walking on from where the outer walk is.
        let mut entries = self.metadata_entries();
        while let Some((key, _)) = entries.next() {
            if entries.clone().any(|(k, _)| k == key) {
                return Err(Error::GgufDuplicateKey {
                    key: GgufName::new(key),
                });
            }
        }
        Ok(())
    }

    /// Every tensor lies inside the data section at an aligned offset, and no two share a
    /// name or a byte.
    fn check_tensors(&self) -> Result<()> {
        let mut walk = self.tensor_walk();
        // Writers put the data in info order: then one pass proves that nothing overlaps.
        let mut in_order = true;
        let mut end = 0;
        while let Some(tensor) = walk.next_checked() {
            let tensor = tensor?;
            if !tensor.data.is_empty() {
                in_order &= tensor.offset() >= end;
                end = tensor.offset() + tensor.data.len();
            }
        }
        let mut tensors = self.tensors();
        while let Some(a) = tensors.next() {
            let mut names = tensors.walk.clone();
            while let Some(name) = names.next_name() {
                if name == a.name.as_bytes() {
                    return Err(Error::GgufDuplicateTensor {
                        name: GgufName::new(a.name),
                    });
                }
            }
            if in_order {
                continue;
            }
            let mut others = tensors.walk.clone();
            let (start, end) = (a.offset(), a.offset() + a.data.len());
            while let Some((name, b_start, b_end)) = others.next_span() {
                if start < end && b_start < b_end && start < b_end && b_start < end {
                    return Err(Error::GgufTensorsOverlap {
                        first: GgufName::new(a.name),
                        second: GgufName::new(core::str::from_utf8(name).unwrap_or_default()),
                    });
                }
            }
        }
        Ok(())
    }

    /// The format version (2 or 3; they differ only in what writers may put in them).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The alignment of tensor data: `general.alignment`, or 32.
    pub fn alignment(&self) -> usize {
        self.alignment
    }

    /// The offset of the data section from the start of the file.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// The data section (from its start to the end of the file).
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The number of metadata entries.
    pub fn metadata_len(&self) -> usize {
        self.metadata.count
    }

    /// The number of tensors.
    pub fn tensor_count(&self) -> usize {
        self.tensors.count
    }

    /// The value of metadata `key`, if the file has it.
    pub fn metadata(&self, key: &str) -> Option<Value<'a>> {
        self.metadata_entries()
            .find(|&(k, _)| k == key)
            .map(|(_, value)| value)
    }

    /// Every metadata entry, as `(key, value)`, in file order.
    pub fn metadata_entries(&self) -> MetadataEntries<'a> {
        MetadataEntries {
            reader: Reader::new(self.metadata.bytes, 0),
            left: self.metadata.count,
        }
    }

    /// The tensor called `name`, if the file has it.
    pub fn tensor(&self, name: &str) -> Option<TensorInfo<'a>> {
        self.tensors().find(|t| t.name == name)
    }

    /// Every tensor, in file order (which need not be layer order).
    pub fn tensors(&self) -> Tensors<'a> {
        Tensors {
            walk: self.tensor_walk(),
        }
    }

    fn tensor_walk(&self) -> TensorWalk<'a> {
        TensorWalk {
            reader: Reader::new(self.tensors.bytes, 0),
            left: self.tensors.count,
            data: self.data,
            alignment: self.alignment,
        }
    }
}

/// A count from the header, refused above `max`.
fn count(value: u64, what: &'static str, max: usize) -> Result<usize> {
    usize::try_from(value)
        .ok()
        .filter(|&n| n <= max)
        .ok_or(Error::GgufTooManyEntries {
            what,
            count: value,
            max,
        })
}

/// Reads one metadata entry: a UTF-8 key, a value type and the value.
fn read_entry<'a>(r: &mut Reader<'a>) -> Result<(&'a str, Value<'a>)> {
    let key = r.utf8("metadata key")?;
    let ty = ValueType::read(r, "metadata value type")?;
    let value = Value::read(r, ty)?;
    Ok((key, value))
}

/// `general.alignment`: a `u32`, a power of two (zero is not).
fn alignment_from(value: Value<'_>) -> Result<usize> {
    let Value::U32(alignment) = value else {
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

/// The metadata entries of a [`Gguf`], decoded one at a time.
#[derive(Debug, Clone)]
pub struct MetadataEntries<'a> {
    reader: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for MetadataEntries<'a> {
    type Item = (&'a str, Value<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        let entry = read_entry(&mut self.reader).ok();
        if entry.is_none() {
            self.left = 0;
        }
        entry
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for MetadataEntries<'_> {}

/// The walk over tensor infos that both checks them ([`Gguf::parse`]) and lists them
/// ([`Tensors`]).
#[derive(Debug, Clone)]
struct TensorWalk<'a> {
    reader: Reader<'a>,
    left: usize,
    data: &'a [u8],
    alignment: usize,
}

impl<'a> TensorWalk<'a> {
    fn next_checked(&mut self) -> Option<Result<TensorInfo<'a>>> {
        self.left = self.left.checked_sub(1)?;
        let tensor =
            RawTensor::read(&mut self.reader).and_then(|raw| raw.locate(self.data, self.alignment));
        if tensor.is_err() {
            self.left = 0;
        }
        Some(tensor)
    }

    /// The name of the next tensor, skipping the rest of its info unchecked: for the
    /// pairwise name comparison, over a section [`Gguf::parse`] has already checked.
    fn next_name(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        let name = self.reader.string("tensor name").ok()?;
        let n_dims = self.reader.u32("tensor dimension count").ok()?;
        // Dimensions (8 bytes each), type (4) and offset (8).
        let rest = u64::from(n_dims).checked_mul(8)?.checked_add(12)?;
        self.reader.take(rest, "tensor info").ok()?;
        Some(name)
    }

    /// The name and data range of the next tensor, decoded without the checks
    /// [`Gguf::parse`] has already made: for the pairwise overlap comparison.
    fn next_span(&mut self) -> Option<(&'a [u8], usize, usize)> {
        self.left = self.left.checked_sub(1)?;
        let r = &mut self.reader;
        let name = r.string("tensor name").ok()?;
        let n_dims = r.u32("tensor dimension count").ok()?;
        let mut elements = 1usize;
        for _ in 0..n_dims {
            let dim = usize::try_from(r.u64("tensor dimensions").ok()?).ok()?;
            elements = elements.checked_mul(dim)?;
        }
        let block = GgmlType::from_id(r.u32("tensor type").ok()?)?.block()?;
        let start = usize::try_from(r.u64("tensor data offset").ok()?).ok()?;
        let size = (elements / block.elements).checked_mul(block.bytes)?;
        Some((name, start, start.checked_add(size)?))
    }
}

/// The tensors of a [`Gguf`], decoded one at a time.
#[derive(Debug, Clone)]
pub struct Tensors<'a> {
    walk: TensorWalk<'a>,
}

impl<'a> Iterator for Tensors<'a> {
    type Item = TensorInfo<'a>;

    fn next(&mut self) -> Option<TensorInfo<'a>> {
        self.walk.next_checked().and_then(Result::ok)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.walk.left, Some(self.walk.left))
    }
}

impl ExactSizeIterator for Tensors<'_> {}
