//! Bounds-checked little-endian reads over the file: every read returns its field or
//! [`Error::GgufTruncated`] naming what was being read and where, so no walk of the file
//! can index past its end, whatever the lengths it declares.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::error::{Error, Result};

/// A read position in the file bytes.
#[derive(Debug, Clone)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `bytes` starting at `pos`.
    pub(super) fn new(bytes: &'a [u8], pos: usize) -> Reader<'a> {
        Reader { bytes, pos }
    }

    /// The position of the next read.
    pub(super) fn pos(&self) -> usize {
        self.pos
    }

    /// The bytes read since position `start`.
    pub(super) fn since(&self, start: usize) -> &'a [u8] {
        self.bytes.get(start..self.pos).unwrap_or_default()
    }

    /// The next `len` bytes. `len` comes from the file, so it is compared with what is left
    /// before it is converted: a length beyond `usize` cannot be in the file either.
    pub(super) fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8]> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        let field = usize::try_from(len).ok().and_then(|n| rest.get(..n));
        let Some(field) = field else {
            return Err(Error::GgufTruncated {
                what,
                offset: self.pos,
            });
        };
        // Cannot overflow: the field lies inside `bytes`.
        self.pos += field.len();
        Ok(field)
    }

    /// The next `N` bytes as an array.
    pub(super) fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let start = self.pos;
        self.take(N as u64, what)?
            .try_into()
            .map_err(|_| Error::GgufTruncated {
                what,
                offset: start,
            })
    }

    pub(super) fn u8(&mut self, what: &'static str) -> Result<u8> {
        self.array::<1>(what).map(|[b]| b)
    }

    pub(super) fn u32(&mut self, what: &'static str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(super) fn u64(&mut self, what: &'static str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A GGUF string: a u64 byte length, then the bytes (not checked for UTF-8 here).
    pub(super) fn string(&mut self, what: &'static str) -> Result<&'a [u8]> {
        let offset = self.pos;
        let len = self.u64(what)?;
        self.take(len, what)
            .map_err(|_| Error::GgufTruncated { what, offset })
    }

    /// A GGUF string that must be UTF-8 (keys and tensor names).
    pub(super) fn utf8(&mut self, what: &'static str) -> Result<&'a str> {
        let offset = self.pos;
        let bytes = self.string(what)?;
        core::str::from_utf8(bytes).map_err(|_| Error::GgufInvalidUtf8 { what, offset })
    }
}
