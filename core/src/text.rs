//! The text rule: turns decoded pieces into printable bytes.
//!
//! Like llama2.c's `safe_printf`, single control bytes are dropped; unlike it, raw bytes
//! from byte-fallback tokens are gathered into UTF-8 characters, so emoji and other
//! characters spelled with byte tokens appear instead of vanishing. And unlike it, control
//! characters are dropped inside longer pieces too (C0 controls other than whitespace, DEL,
//! and the C1 controls U+0080..U+009F): a hostile vocabulary with a piece such as
//! `"\x1b[31m"` cannot send escape sequences to the user's terminal (see docs/SECURITY.md).
//! Bytes of a longer piece that are not valid UTF-8 are dropped for the same reason (a raw
//! 0x9B is CSI to a terminal in an 8-bit mode).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::tokenizer::{Piece, PieceText};

/// Turns a stream of [`Piece`]s into text, holding back an incomplete UTF-8 character.
#[derive(Debug, Default)]
pub struct TextDecoder {
    pending: heapless::Vec<u8, 4>,
    /// Length of the UTF-8 sequence `pending` started, from its lead byte.
    expected: usize,
}

impl TextDecoder {
    /// A decoder with nothing pending.
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
                emit_printable(text, &mut emit);
            }
            Piece::Spelled(text) => self.push_spelled(text, emit),
        }
    }

    /// A respelled piece is treated exactly as its text would be as [`Piece::Text`]. Its
    /// runs split it only next to ASCII bytes (the spaces and newlines put in), which no
    /// UTF-8 sequence spans, so the runs filter as the whole text would.
    fn push_spelled(&mut self, text: PieceText<'_>, mut emit: impl FnMut(&[u8])) {
        let mut bytes = text.bytes();
        match (bytes.next(), bytes.next()) {
            (None, _) => {}
            (Some(byte), None) => self.push_byte(byte, emit),
            _ => {
                self.drop_pending();
                for run in text.chunks() {
                    emit_printable(run, &mut emit);
                }
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
            if !is_terminal_control(char::from(byte)) {
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
            let printable = core::str::from_utf8(&self.pending)
                .is_ok_and(|c| !c.chars().any(is_terminal_control));
            if printable {
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

/// Emits the valid UTF-8 of a multi-byte piece in runs between the characters dropped:
/// terminal controls and invalid or incomplete sequences. A piece of ordinary text is one
/// run, so it is emitted whole, as before.
fn emit_printable(piece: &[u8], emit: &mut impl FnMut(&[u8])) {
    for chunk in piece.utf8_chunks() {
        let valid = chunk.valid();
        let mut run_start = 0;
        for (at, c) in valid.char_indices() {
            if is_terminal_control(c) {
                emit_nonempty(valid.get(run_start..at), emit);
                run_start = at + c.len_utf8();
            }
        }
        emit_nonempty(valid.get(run_start..), emit);
        // `chunk.invalid()` is dropped.
    }
}

fn emit_nonempty(run: Option<&str>, emit: &mut impl FnMut(&[u8])) {
    if let Some(run) = run.filter(|run| !run.is_empty()) {
        emit(run.as_bytes());
    }
}

/// A control character a terminal may act on: C0 (but the whitespace `\t \n \v \f \r`,
/// which `isspace` accepts in the C locale), DEL, and C1 (U+0080..U+009F). For ASCII this
/// is exactly "not `isprint || isspace`", llama2.c's test for single-byte pieces.
fn is_terminal_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\x0B' | '\x0C' | '\r')
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
    fn control_characters_inside_pieces_are_dropped() {
        let cases: [(&[u8], &[u8]); 7] = [
            // An escape sequence loses its ESC, so the terminal prints it as plain text.
            (b"\x1b[31mred", b"[31mred"),
            (b"a\x07b", b"ab"),
            (b"\x00\x1b]0;title\x07", b"]0;title"),
            (b"del\x7f", b"del"),
            // C1 controls in UTF-8 form (U+009B is CSI, U+0085 NEL); U+00A0 is not one.
            (b"x\xC2\x9B2Jy\xC2\x85", b"x2Jy"),
            ("\u{a0}caf\u{e9}".as_bytes(), "\u{a0}caf\u{e9}".as_bytes()),
            // Whitespace stays, as for single-byte pieces.
            (b"a\tb\x0B\x0C\r\n", b"a\tb\x0B\x0C\r\n"),
        ];
        for (piece, printed) in cases {
            assert_eq!(text(&[Piece::Text(piece)]).as_slice(), printed, "{piece:?}");
        }
    }

    #[test]
    fn invalid_utf8_inside_pieces_is_dropped() {
        // A raw 0x9B is CSI to a terminal in an 8-bit mode; FF never occurs in UTF-8; a
        // character cut short at the end of a piece is not finished by the next one.
        assert_eq!(text(&[Piece::Text(b"a\x9B1mb\xFF")]).as_slice(), b"a1mb");
        let cut = [Piece::Text(b"a\xE2\x82"), Piece::Byte(0xAC)];
        assert_eq!(text(&cut).as_slice(), b"a");
    }

    #[test]
    fn c1_controls_from_byte_tokens_are_dropped() {
        let csi = [Piece::Byte(0xC2), Piece::Byte(0x9B), Piece::Text(b"ok")];
        assert_eq!(text(&csi).as_slice(), b"ok");
        let e_acute = [Piece::Byte(0xC3), Piece::Byte(0xA9)];
        assert_eq!(text(&e_acute).as_slice(), "\u{e9}".as_bytes());
    }

    #[test]
    fn ordinary_pieces_are_emitted_in_one_call() {
        let mut calls = 0;
        let mut decoder = TextDecoder::new();
        decoder.push(Piece::Text(" caf\u{e9} au lait".as_bytes()), |_| calls += 1);
        assert_eq!(calls, 1);
        decoder.push(Piece::Text(b"a\x1bb"), |_| calls += 1);
        assert_eq!(calls, 3);
    }

    #[test]
    fn spelled_pieces_print_as_their_text() {
        let sp = |s: &'static str, wrapped| {
            Piece::Spelled(PieceText::sentencepiece(s.as_bytes(), wrapped))
        };
        let cases: [(&[Piece<'_>], &[u8]); 5] = [
            (&[sp("▁caf\u{e9}▁au", false)], " caf\u{e9} au".as_bytes()),
            (&[sp("</s>", true)], b"\n</s>\n"),
            // One byte of text is a single-byte piece: a started character is dropped.
            (
                &[Piece::Byte(0xC3), sp("▁", false), Piece::Text(b"x")],
                b" x",
            ),
            (&[sp("▁\x1b[1m▁", false)], b" [1m "),
            (
                &[sp("", false), Piece::Byte(0xC3), Piece::Byte(0xA9)],
                "\u{e9}".as_bytes(),
            ),
        ];
        for (pieces, printed) in cases {
            assert_eq!(text(pieces).as_slice(), printed, "{pieces:?}");
        }
    }

    #[test]
    fn multi_byte_pieces_print_as_they_are() {
        assert_eq!(
            text(&[Piece::Text(b" caf\xC3\xA9")]).as_slice(),
            " café".as_bytes()
        );
    }
}
