//! Metadata values: the thirteen GGUF value types, decoded in place. Arrays stay views of
//! their bytes and decode an element when it is asked for, so a 32000-piece vocabulary
//! costs nothing until it is read.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use core::fmt;

use super::reader::Reader;
use crate::error::{Error, Result};

/// The type of a metadata value, as GGUF numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// 0: `u8`.
    U8,
    /// 1: `i8`.
    I8,
    /// 2: `u16`.
    U16,
    /// 3: `i16`.
    I16,
    /// 4: `u32`.
    U32,
    /// 5: `i32`.
    I32,
    /// 6: `f32`.
    F32,
    /// 7: one byte, 0 or 1.
    Bool,
    /// 8: u64 byte length, then the bytes (UTF-8 by the specification).
    String,
    /// 9: u32 element type, u64 count, then the elements.
    Array,
    /// 10: `u64`.
    U64,
    /// 11: `i64`.
    I64,
    /// 12: `f64`.
    F64,
}

impl ValueType {
    /// The type with GGUF id `id`, if there is one.
    pub const fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The GGUF id of this type.
    pub const fn id(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// The lowercase name used in messages (`u32`, `string`, ...).
    pub const fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// The encoded size of a value of this type, for the types whose size is fixed.
    const fn fixed_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// Reads a type id, refusing ids GGUF does not define.
    pub(super) fn read(r: &mut Reader<'_>, what: &'static str) -> Result<ValueType> {
        let offset = r.pos();
        let type_id = r.u32(what)?;
        ValueType::from_id(type_id).ok_or(Error::GgufUnknownValueType { type_id, offset })
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata value, borrowed from the file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// A `u8`.
    U8(u8),
    /// An `i8`.
    I8(i8),
    /// A `u16`.
    U16(u16),
    /// An `i16`.
    I16(i16),
    /// A `u32` (what llama.cpp writes for counts and sizes).
    U32(u32),
    /// An `i32`.
    I32(i32),
    /// An `f32`.
    F32(f32),
    /// A boolean.
    Bool(bool),
    /// The string's bytes; [`Value::as_str`] checks that they are UTF-8.
    String(&'a [u8]),
    /// An array of values of one type.
    Array(Array<'a>),
    /// A `u64`.
    U64(u64),
    /// An `i64`.
    I64(i64),
    /// An `f64`.
    F64(f64),
}

impl<'a> Value<'a> {
    /// The type of this value.
    pub const fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Any integer value as an `i128`, which holds every one of them exactly (for messages
    /// that must show an out-of-range value as the file has it, negative or huge).
    pub fn as_i128(&self) -> Option<i128> {
        self.integer()
    }

    /// Any integer value as an `i128`, which holds every one of them exactly.
    fn integer(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// An integer value of any integer type, if it fits in a `u64`. Writers differ in the
    /// integer type they choose for a count, so the accessors accept any that holds the value.
    pub fn as_u64(&self) -> Option<u64> {
        self.integer().and_then(|v| u64::try_from(v).ok())
    }

    /// An integer value of any integer type, if it fits in a `u32`.
    pub fn as_u32(&self) -> Option<u32> {
        self.integer().and_then(|v| u32::try_from(v).ok())
    }

    /// An integer value of any integer type, if it fits in a `usize` on this target.
    pub fn as_usize(&self) -> Option<usize> {
        self.integer().and_then(|v| usize::try_from(v).ok())
    }

    /// An integer value of any integer type, if it fits in an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        self.integer().and_then(|v| i64::try_from(v).ok())
    }

    /// An integer value of any integer type, if it fits in an `i32`.
    pub fn as_i32(&self) -> Option<i32> {
        self.integer().and_then(|v| i32::try_from(v).ok())
    }

    /// An `f32` value (only an `f32`: narrowing an `f64` would hide a rounding).
    pub fn as_f32(&self) -> Option<f32> {
        match *self {
            Value::F32(v) => Some(v),
            _ => None,
        }
    }

    /// An `f32` or `f64` value, as `f64` (exact for both).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            _ => None,
        }
    }

    /// A boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// A string value's bytes, whether or not they are UTF-8.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match *self {
            Value::String(bytes) => Some(bytes),
            _ => None,
        }
    }

    /// A string value that is valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes()
            .and_then(|bytes| core::str::from_utf8(bytes).ok())
    }

    /// An array value.
    pub fn as_array(&self) -> Option<Array<'a>> {
        match *self {
            Value::Array(array) => Some(array),
            _ => None,
        }
    }

    /// Reads a value of type `ty`, checking everything about it: lengths inside the file,
    /// booleans 0 or 1, array element types known and not arrays themselves.
    pub(super) fn read(r: &mut Reader<'a>, ty: ValueType) -> Result<Value<'a>> {
        const WHAT: &str = "metadata value";
        let offset = r.pos();
        Ok(match ty {
            ValueType::U8 => Value::U8(r.u8(WHAT)?),
            ValueType::I8 => Value::I8(i8::from_le_bytes(r.array(WHAT)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(r.array(WHAT)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(r.array(WHAT)?)),
            ValueType::U32 => Value::U32(r.u32(WHAT)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(r.array(WHAT)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(r.array(WHAT)?)),
            ValueType::Bool => Value::Bool(bool_from(r.u8(WHAT)?, offset)?),
            ValueType::String => Value::String(r.string("metadata string")?),
            ValueType::Array => Value::Array(Array::read(r)?),
            ValueType::U64 => Value::U64(r.u64(WHAT)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(r.array(WHAT)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(r.array(WHAT)?)),
        })
    }
}

/// GGUF booleans are one byte, 0 or 1; anything else marks a broken file or writer.
fn bool_from(byte: u8, offset: usize) -> Result<bool> {
    match byte {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(Error::GgufInvalidBool { value, offset }),
    }
}

/// A metadata array: a view of its elements' bytes, decoded on access. Parsing checked
/// every element, so every index below [`Array::len`] decodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Array<'a> {
    elem: ValueType,
    len: usize,
    bytes: &'a [u8],
}

impl<'a> Array<'a> {
    /// The type of every element (never [`ValueType::Array`]: nested arrays are refused).
    pub const fn elem_type(&self) -> ValueType {
        self.elem
    }

    /// The number of elements.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the array has no elements.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The elements as the file encodes them, back to back: for numbers and booleans
    /// [`Array::len`] fixed-size little-endian values, for strings each string's `u64`
    /// length then its bytes. A tokenizer indexes a vocabulary by offsets into these bytes
    /// instead of walking the array for every lookup.
    pub const fn element_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Element `index`. Constant time for numbers and booleans; strings have no fixed size,
    /// so element `index` of a string array is found by walking the ones before it (use
    /// [`Array::iter`] or [`Array::strings`] to visit them all).
    pub fn get(&self, index: usize) -> Option<Value<'a>> {
        if index >= self.len {
            return None;
        }
        match self.elem.fixed_size() {
            Some(size) => {
                let mut r = Reader::new(self.bytes, index.checked_mul(size)?);
                Value::read(&mut r, self.elem).ok()
            }
            None => self.iter().nth(index),
        }
    }

    /// The elements in order.
    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            elem: self.elem,
            left: self.len,
            reader: Reader::new(self.bytes, 0),
        }
    }

    /// The elements' bytes, if this is an array of strings.
    pub fn strings(&self) -> Option<impl Iterator<Item = &'a [u8]> + 'a> {
        (self.elem == ValueType::String).then(|| self.iter().filter_map(|v| v.as_bytes()))
    }

    /// The elements, if this is an array of `f32`.
    pub fn f32s(&self) -> Option<impl Iterator<Item = f32> + 'a> {
        (self.elem == ValueType::F32).then(|| self.iter().filter_map(|v| v.as_f32()))
    }

    /// The elements, if this is an array of `i32`.
    pub fn i32s(&self) -> Option<impl Iterator<Item = i32> + 'a> {
        (self.elem == ValueType::I32).then(|| self.iter().filter_map(|v| v.as_i32()))
    }

    /// Reads an array's header and checks all of its elements.
    fn read(r: &mut Reader<'a>) -> Result<Array<'a>> {
        let offset = r.pos();
        let elem = ValueType::read(r, "array element type")?;
        if elem == ValueType::Array {
            return Err(Error::GgufNestedArray { offset });
        }
        let count = r.u64("array length")?;
        let start = r.pos();
        let truncated = Error::GgufTruncated {
            what: "array elements",
            offset: start,
        };
        match elem.fixed_size() {
            Some(size) => {
                // A product past u64 cannot be in the file either.
                let len = count.checked_mul(size as u64).ok_or(truncated)?;
                let bytes = r.take(len, "array elements")?;
                if elem == ValueType::Bool {
                    if let Some(i) = bytes.iter().position(|&b| b > 1) {
                        let value = bytes.get(i).copied().unwrap_or_default();
                        return Err(Error::GgufInvalidBool {
                            value,
                            offset: start + i,
                        });
                    }
                }
            }
            None => {
                // Each string takes at least its 8-byte length, so this loop ends within
                // the file even for a count of 2^64 - 1.
                let mut left = count;
                while left > 0 {
                    r.string("array string")?;
                    left -= 1;
                }
            }
        }
        Ok(Array {
            elem,
            // Every element took at least one byte of the file, so the count fits.
            len: usize::try_from(count).map_err(|_| truncated)?,
            bytes: r.since(start),
        })
    }
}

impl<'a> IntoIterator for Array<'a> {
    type Item = Value<'a>;
    type IntoIter = ArrayIter<'a>;

    fn into_iter(self) -> ArrayIter<'a> {
        self.iter()
    }
}

/// The elements of an [`Array`], decoded one at a time.
#[derive(Debug, Clone)]
pub struct ArrayIter<'a> {
    elem: ValueType,
    left: usize,
    reader: Reader<'a>,
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        self.left = self.left.checked_sub(1)?;
        let value = Value::read(&mut self.reader, self.elem).ok();
        if value.is_none() {
            self.left = 0;
        }
        value
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for ArrayIter<'_> {}
