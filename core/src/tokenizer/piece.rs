//! What a token prints as: [`Piece`], and [`PieceText`], a token's text spelled the way
//! llama2.c's `tokenizer.bin` spells it, whichever vocabulary it comes from.
//!
//! A GGUF vocabulary stores sentencepiece's spelling: `▁` (U+2581) for a space and BOS/EOS
//! as `<s>`/`</s>`. llama2.c's exporter wrote a space as `' '` and BOS/EOS as `"\n<s>\n"`
//! and `"\n</s>\n"`. The pieces are borrowed from the file, so a [`PieceText`] is the
//! stored bytes plus how to respell them, read out by [`PieceText::chunks`] or
//! [`PieceText::bytes`] without copying.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use core::cmp::Ordering;

/// The sentencepiece meta symbol `▁` (U+2581), which stands for a space in GGUF pieces.
pub(crate) const SPACE_MARK: &[u8] = "\u{2581}".as_bytes();

/// What a token prints as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text to print as it is.
    Text(&'a [u8]),
    /// A raw byte, from a `<0xHH>` byte-fallback token.
    Byte(u8),
    /// Text to print as [`PieceText::chunks`] spell it: a GGUF piece holding `▁` for a
    /// space, or a BOS/EOS piece, which llama2.c prints between newlines. Pieces whose
    /// stored bytes are already what prints come as [`Piece::Text`].
    Spelled(PieceText<'a>),
}

/// A token's text as llama2.c spells it, over the bytes the vocabulary stores. Equality
/// compares the stored form: compare [`PieceText::bytes`] to compare texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceText<'a> {
    stored: &'a [u8],
    /// Each `▁` in `stored` is a space (GGUF); otherwise `stored` is the text.
    marks_spaces: bool,
    /// A newline before and after: llama2.c's spelling of BOS and EOS.
    wrapped: bool,
}

impl<'a> PieceText<'a> {
    /// Text stored as it prints (a `tokenizer.bin` piece).
    pub(crate) const fn plain(stored: &'a [u8]) -> Self {
        PieceText {
            stored,
            marks_spaces: false,
            wrapped: false,
        }
    }

    /// A GGUF piece: `▁` for a space, and `wrapped` in newlines if it is BOS or EOS.
    pub(crate) const fn sentencepiece(stored: &'a [u8], wrapped: bool) -> Self {
        PieceText {
            stored,
            marks_spaces: true,
            wrapped,
        }
    }

    /// The bytes as the vocabulary stores them.
    pub const fn stored(&self) -> &'a [u8] {
        self.stored
    }

    /// The text's length in bytes.
    pub fn len(&self) -> usize {
        let marks = if self.marks_spaces {
            count_marks(self.stored)
        } else {
            0
        };
        // Each mark is 3 stored bytes for 1 printed; `stored.len() >= 3 * marks`.
        self.stored.len() - 2 * marks + 2 * usize::from(self.wrapped)
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored bytes, if they are exactly the text (no `▁`, no newlines to add).
    pub fn as_plain(&self) -> Option<&'a [u8]> {
        let respelled = self.wrapped || (self.marks_spaces && find_mark(self.stored).is_some());
        (!respelled).then_some(self.stored)
    }

    /// The text in runs of borrowed bytes: each `▁` is its own `" "` run.
    pub fn chunks(&self) -> Chunks<'a> {
        Chunks {
            rest: self.stored,
            marks_spaces: self.marks_spaces,
            before: self.wrapped,
            after: self.wrapped,
        }
    }

    /// The text byte by byte.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + Clone + 'a {
        self.chunks().flat_map(|chunk| chunk.iter().copied())
    }

    /// Copies the text to the front of `out` and returns it, or `None` if `out` is shorter
    /// than [`PieceText::len`] (at most [`Tokenizer::max_piece_len`](crate::Tokenizer::max_piece_len)).
    pub fn copy_to<'o>(&self, out: &'o mut [u8]) -> Option<&'o [u8]> {
        let mut len = 0;
        for chunk in self.chunks() {
            let end = len + chunk.len();
            out.get_mut(len..end)?.copy_from_slice(chunk);
            len = end;
        }
        out.get(..len)
    }

    /// The text without its first byte if that is a space (what follows BOS prints so).
    pub(crate) fn without_leading_space(self) -> Self {
        if self.wrapped {
            return self; // starts with a newline
        }
        let stored = match self.stored {
            [b' ', rest @ ..] => rest,
            _ if self.marks_spaces => self.stored.strip_prefix(SPACE_MARK).unwrap_or(self.stored),
            _ => self.stored,
        };
        PieceText { stored, ..self }
    }
}

/// The runs of a [`PieceText`], from [`PieceText::chunks`].
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
    marks_spaces: bool,
    before: bool,
    after: bool,
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if core::mem::take(&mut self.before) {
            return Some(b"\n");
        }
        if !self.rest.is_empty() {
            let run_len = if self.marks_spaces {
                match find_mark(self.rest) {
                    Some(0) => {
                        self.rest = self.rest.get(SPACE_MARK.len()..).unwrap_or_default();
                        return Some(b" ");
                    }
                    Some(at) => at,
                    None => self.rest.len(),
                }
            } else {
                self.rest.len()
            };
            let (run, rest) = self.rest.split_at(run_len);
            self.rest = rest;
            return Some(run);
        }
        core::mem::take(&mut self.after).then_some(b"\n")
    }
}

/// Orders two texts given as runs of bytes (such as [`PieceText::chunks`]), as their
/// concatenations would order, comparing whole slices rather than byte by byte.
pub(crate) fn cmp_runs<'x, 'y>(
    mut a: impl Iterator<Item = &'x [u8]>,
    mut b: impl Iterator<Item = &'y [u8]>,
) -> Ordering {
    let (mut x, mut y): (&[u8], &[u8]) = (&[], &[]);
    loop {
        if x.is_empty() {
            if let Some(run) = a.next() {
                x = run;
                continue;
            }
        }
        if y.is_empty() {
            if let Some(run) = b.next() {
                y = run;
                continue;
            }
        }
        // Here a run is empty only if its text has ended.
        let n = x.len().min(y.len());
        if n == 0 {
            return x.len().cmp(&y.len());
        }
        let ((x_head, x_rest), (y_head, y_rest)) = (x.split_at(n), y.split_at(n));
        match x_head.cmp(y_head) {
            Ordering::Equal => (x, y) = (x_rest, y_rest),
            other => return other,
        }
    }
}

/// Where the first `▁` starts in `bytes`: a search for its lead byte, which most pieces
/// do not hold at all.
fn find_mark(bytes: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + bytes.get(from..)?.iter().position(|&b| b == 0xE2)?;
        if bytes.get(at..at + SPACE_MARK.len()) == Some(SPACE_MARK) {
            return Some(at);
        }
        from = at + 1;
    }
}

/// How many `▁` `bytes` holds (they cannot overlap: a mark starts with a lead byte).
fn count_marks(bytes: &[u8]) -> usize {
    bytes
        .windows(SPACE_MARK.len())
        .filter(|&w| w == SPACE_MARK)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn text(piece: PieceText<'_>) -> Vec<u8> {
        let by_bytes: Vec<u8> = piece.bytes().collect();
        let mut buf = [0u8; 32];
        assert_eq!(piece.copy_to(&mut buf), Some(&by_bytes[..]));
        assert_eq!(piece.len(), by_bytes.len());
        by_bytes
    }

    #[test]
    fn marks_are_spaces_and_bos_eos_are_wrapped() {
        let sp = |s: &'static str, wrapped| PieceText::sentencepiece(s.as_bytes(), wrapped);
        assert_eq!(text(sp("▁the", false)), b" the");
        assert_eq!(text(sp("▁▁a▁", false)), b"  a ");
        assert_eq!(text(sp("<s>", true)), b"\n<s>\n");
        assert_eq!(text(sp("", false)), b"");
        // A raw space stays a space; a mark cut short is not a mark.
        assert_eq!(text(sp("a b", false)), b"a b");
        let cut = PieceText::sentencepiece(b"\xE2\x96a", false);
        assert_eq!(text(cut), b"\xE2\x96a");
        assert_eq!(
            sp("▁a▁b", false).chunks().collect::<Vec<_>>(),
            [&b" "[..], b"a", b" ", b"b"]
        );
    }

    #[test]
    fn plain_pieces_are_their_bytes() {
        let plain = PieceText::plain("▁x".as_bytes());
        assert_eq!(text(plain), "▁x".as_bytes());
        assert_eq!(plain.as_plain(), Some("▁x".as_bytes()));
        assert_eq!(
            PieceText::sentencepiece(b"ab", false).as_plain(),
            Some(&b"ab"[..])
        );
        assert_eq!(
            PieceText::sentencepiece("▁".as_bytes(), false).as_plain(),
            None
        );
        assert_eq!(PieceText::sentencepiece(b"</s>", true).as_plain(), None);
    }

    #[test]
    fn a_leading_space_is_dropped_in_either_spelling() {
        let drop = |p: PieceText<'static>| text(p.without_leading_space());
        assert_eq!(drop(PieceText::plain(b" ab")), b"ab");
        assert_eq!(
            drop(PieceText::sentencepiece("▁▁ab".as_bytes(), false)),
            b" ab"
        );
        assert_eq!(drop(PieceText::sentencepiece(b" ab", false)), b"ab");
        assert_eq!(drop(PieceText::sentencepiece(b"<s>", true)), b"\n<s>\n");
        assert_eq!(drop(PieceText::plain("▁ab".as_bytes())), "▁ab".as_bytes());
    }

    #[test]
    fn runs_order_as_their_concatenations() {
        let texts: [&[&[u8]]; 9] = [
            &[],
            &[b""],
            &[b"a"],
            &[b"a", b""],
            &[b"", b"ab"],
            &[b"a", b"b"],
            &[b"ab", b"c"],
            &[b"a", b"bc", b"d"],
            &[b"b"],
        ];
        for a in texts {
            for b in texts {
                let expected = a.concat().cmp(&b.concat());
                let got = cmp_runs(a.iter().copied(), b.iter().copied());
                assert_eq!(got, expected, "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn copy_to_refuses_a_short_buffer() {
        let piece = PieceText::sentencepiece(b"<s>", true);
        assert_eq!(piece.copy_to(&mut [0; 4]), None);
        assert_eq!(piece.copy_to(&mut [0; 5]).map(<[u8]>::len), Some(5));
    }
}
