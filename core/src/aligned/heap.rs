//! An aligned copy of model bytes on the heap (feature `std`), for hosts, tests and fuzz
//! targets that read a file into memory instead of mapping it.

// A `Vec` of words keeps the copy aligned; only builds with the `std` feature get here.
extern crate std;

use std::vec;
use std::vec::Vec;

/// Bytes copied into 4-byte aligned storage, as a memory map would give them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlignedBytes {
    words: Vec<u32>,
    len: usize,
}

impl AlignedBytes {
    /// Copies `bytes` into aligned storage (a trailing partial word is zero-padded but not
    /// part of [`AlignedBytes::bytes`]).
    pub fn new(bytes: &[u8]) -> AlignedBytes {
        let mut words = vec![0u32; bytes.len().div_ceil(4)];
        bytemuck::cast_slice_mut::<u32, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        AlignedBytes {
            words,
            len: bytes.len(),
        }
    }

    /// The bytes of `words` (little-endian on the supported targets), without a copy.
    pub fn from_words(words: Vec<u32>) -> AlignedBytes {
        AlignedBytes {
            len: 4 * words.len(),
            words,
        }
    }

    /// The bytes, starting at a 4-byte aligned address.
    pub fn bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_keep_their_length_and_start_aligned() {
        for len in [0, 1, 3, 4, 5, 9] {
            let bytes: Vec<u8> = (1..=len as u8).collect();
            // One byte off any alignment, as a file read into a `Vec<u8>` may be.
            let mut storage = vec![0u8; len + 1];
            storage[1..].copy_from_slice(&bytes);
            let copy = AlignedBytes::new(&storage[1..]);
            assert_eq!(copy.bytes(), &bytes[..]);
            assert_eq!(copy.bytes().as_ptr() as usize % align_of::<f32>(), 0);
        }
        let words = AlignedBytes::from_words(vec![0x0403_0201, 0x0807_0605]);
        assert_eq!(words.bytes(), &[1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
