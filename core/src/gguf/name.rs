//! [`GgufName`]: a metadata key or tensor name copied into an [`crate::Error`], which is
//! `Copy` and borrows nothing, so that a message can say *which* tensor is wrong.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use core::fmt;

/// The bytes of a name an error keeps; longer names are cut (at a character boundary) and
/// shown with a trailing `…`. Llama tensor names and keys are shorter than this.
const CAPACITY: usize = 40;

/// A metadata key or tensor name, owned by value (at most 40 bytes of it).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GgufName {
    bytes: [u8; CAPACITY],
    len: u8,
    cut: bool,
}

impl GgufName {
    /// Copies `name`, cutting it to the capacity at a character boundary.
    pub fn new(name: &str) -> GgufName {
        let mut len = name.len().min(CAPACITY);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0u8; CAPACITY];
        for (dst, &src) in bytes.iter_mut().zip(name.as_bytes().iter().take(len)) {
            *dst = src;
        }
        GgufName {
            bytes,
            len: len as u8, // at most CAPACITY
            cut: len < name.len(),
        }
    }

    /// The kept part of the name.
    pub fn as_str(&self) -> &str {
        let kept = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // Cut at a character boundary of a `str`, so always UTF-8.
        core::str::from_utf8(kept).unwrap_or_default()
    }

    /// Whether the name was longer than what is kept.
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

impl fmt::Display for GgufName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl fmt::Debug for GgufName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}
