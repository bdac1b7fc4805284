//! The text rule: turns decoded pieces into printable bytes.
//!
//! Like llama2.c's `safe_printf`, single control bytes are dropped; unlike it, raw bytes
//! from byte-fallback tokens are gathered into UTF-8 characters, so emoji and other
//! characters spelled with byte tokens appear instead of vanishing.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::tokenizer::Piece;

/// Turns a stream of [`Piece`]s into text, holding back an incomplete UTF-8 character.
#[derive(Debug, Default)]
pub struct TextDecoder {
    pending: heapless::Vec<u8, 4>,
    /// Length of the UTF-8 sequence `pending` started, from its lead byte.
    expected: usize,
}

impl TextDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one piece; `emit` receives whatever text is now complete.
    pub fn push(&mut self, piece: Piece<'_>, mut emit: impl FnMut(&[u8])) {
        match piece {
            Piece::Byte(byte) => self.push_byte(byte, emit),
            Piece::Text([]) => {}
            Piece::Text(&[byte]) => self.push_byte(byte, emit),
            Piece::Text(text) => {
                self.drop_pending();
                emit(text);
            }
        }
    }

    /// Drops an unfinished character at the end of the text.
    pub fn finish(&mut self) {
        self.drop_pending();
    }

    fn push_byte(&mut self, byte: u8, mut emit: impl FnMut(&[u8])) {
        if byte.is_ascii() {
            self.drop_pending();
            if is_printable_or_space(byte) {
                emit(&[byte]);
            }
            return;
        }
        if byte & 0xC0 == 0x80 {
            // A continuation byte extends a started character, or is dropped.
            if self.pending.is_empty() || self.pending.push(byte).is_err() {
                self.drop_pending();
                return;
            }
        } else {
            self.drop_pending();
            self.expected = match byte {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                0xF0..=0xF4 => 4,
                _ => return, // never starts a valid character
            };
            // Cannot fail: `pending` was just emptied.
            let _ = self.pending.push(byte);
        }
        if self.pending.len() == self.expected {
            if core::str::from_utf8(&self.pending).is_ok() {
                emit(&self.pending);
            }
            self.drop_pending();
        }
    }

    fn drop_pending(&mut self) {
        self.pending.clear();
        self.expected = 0;
    }
}

/// `isprint || isspace` in the C locale.
fn is_printable_or_space(byte: u8) -> bool {
    matches!(byte, b' '..=b'~' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pieces: &[Piece<'_>]) -> ([u8; 64], usize) {
        let mut out = [0u8; 64];
        let mut len = 0;
        let mut decoder = TextDecoder::new();
        for &piece in pieces {
            decoder.push(piece, |bytes| {
                out[len..len + bytes.len()].copy_from_slice(bytes);
                len += bytes.len();
            });
        }
        decoder.finish();
        (out, len)
    }

    fn text(pieces: &[Piece<'_>]) -> heapless::Vec<u8, 64> {
        let (out, len) = run(pieces);
        heapless::Vec::from_slice(&out[..len]).unwrap()
    }

    #[test]
    fn byte_tokens_form_utf8_characters() {
        // 🦙 is F0 9F A6 99
        let llama = [0xF0, 0x9F, 0xA6, 0x99].map(Piece::Byte);
        assert_eq!(text(&llama).as_slice(), "🦙".as_bytes());
    }

    #[test]
    fn incomplete_sequences_are_dropped() {
        let pieces = [
            Piece::Byte(0xE6),
            Piece::Byte(0x97),
            Piece::Text(b"ok"),
            Piece::Byte(0xA6),
        ];
        assert_eq!(text(&pieces).as_slice(), b"ok");
        assert_eq!(
            text(&[Piece::Byte(0xF0), Piece::Byte(0x9F)]).as_slice(),
            b""
        );
    }

    #[test]
    fn invalid_sequences_are_dropped() {
        // E0 80 80 is an overlong encoding; C0 never starts a character.
        let overlong = [0xE0, 0x80, 0x80].map(Piece::Byte);
        assert_eq!(text(&overlong).as_slice(), b"");
        assert_eq!(
            text(&[Piece::Byte(0xC0), Piece::Byte(0x80)]).as_slice(),
            b""
        );
    }

    #[test]
    fn control_bytes_are_dropped_whitespace_kept() {
        let pieces = [
            Piece::Byte(0x07),
            Piece::Text(b"\x01"),
            Piece::Byte(b'\n'),
            Piece::Text(b"a"),
            Piece::Text(b"\t"),
        ];
        assert_eq!(text(&pieces).as_slice(), b"\na\t");
    }

    #[test]
    fn multi_byte_pieces_print_as_they_are() {
        assert_eq!(
            text(&[Piece::Text(b" caf\xC3\xA9")]).as_slice(),
            " café".as_bytes()
        );
    }
}
