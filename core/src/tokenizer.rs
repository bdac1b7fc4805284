//! The llama2.c BPE tokenizer over the bytes of a `tokenizer.bin`, with its lookup index
//! kept in a caller buffer.
//!
//! The file comes from outside: this module indexes it only through `get` (enforced by
//! `clippy::indexing_slicing`), and every offset sum on it is checked.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use core::cmp::Ordering;

use crate::error::{Buffer, Error, Result};

/// Id of the beginning-of-sequence token.
pub const BOS: u32 = 1;
/// Id of the end-of-sequence token.
pub const EOS: u32 = 2;
/// Byte `b` is token `b + BYTE_TOKEN_OFFSET` in the byte-fallback range.
const BYTE_TOKEN_OFFSET: usize = 3;

/// What a token prints as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text to print as it is.
    Text(&'a [u8]),
    /// A raw byte, from a `<0xHH>` byte-fallback token.
    Byte(u8),
}

/// A vocabulary of scored byte strings, borrowed from the tokenizer file.
#[derive(Debug, Clone, Copy)]
pub struct Tokenizer<'a> {
    bytes: &'a [u8],
    max_token_length: usize,
    /// Byte offset of each token's entry (`f32 score, i32 len, bytes`).
    offsets: &'a [u32],
    /// Token ids ordered by their bytes (ties by id), for binary search.
    sorted: &'a [u32],
}

impl<'a> Tokenizer<'a> {
    /// Number of `u32` elements of index buffer that [`Tokenizer::new`] needs, or `None` on
    /// overflow. Usable in `const` context.
    pub const fn index_len(vocab_size: usize) -> Option<usize> {
        vocab_size.checked_mul(2)
    }

    /// Parses `vocab_size` entries (the count comes from the model) and builds the sorted
    /// lookup index in `index`.
    pub fn new(bytes: &'a [u8], vocab_size: usize, index: &'a mut [u32]) -> Result<Self> {
        let needed = Self::index_len(vocab_size).ok_or(Error::SizeOverflow)?;
        if index.len() < needed {
            return Err(Error::BufferTooSmall {
                buffer: Buffer::TokenizerIndex,
                needed,
                actual: index.len(),
            });
        }
        if u32::try_from(bytes.len()).is_err() || u32::try_from(vocab_size).is_err() {
            return Err(Error::SizeOverflow);
        }
        let max_token_length = match bytes.get(..4) {
            Some(word) => le_u32(word) as usize,
            None => return Err(Error::TokenizerTruncated { token: 0 }),
        };
        // `index` holds at least `2 * vocab_size` elements (checked above).
        let (offsets, rest) = index.split_at_mut(vocab_size);
        let (sorted, _) = rest.split_at_mut(vocab_size);
        let mut at = 4usize;
        for (token, slot) in offsets.iter_mut().enumerate() {
            // Every sum below is checked: on a 32-bit target `len` (up to `i32::MAX`) plus an
            // offset near the end of a large file would wrap.
            let header = at
                .checked_add(8)
                .and_then(|end| bytes.get(at..end))
                .ok_or(Error::TokenizerTruncated { token })?;
            let len = le_u32(header.get(4..).unwrap_or_default()) as i32;
            let len =
                usize::try_from(len).map_err(|_| Error::TokenizerNegativeLength { token, len })?;
            if len > max_token_length {
                return Err(Error::TokenLongerThanMax {
                    token,
                    len,
                    max: max_token_length,
                });
            }
            let end = at
                .checked_add(8 + len)
                .filter(|&end| end <= bytes.len())
                .ok_or(Error::TokenizerTruncated { token })?;
            // Fits: `at < bytes.len() <= u32::MAX`, checked above.
            *slot = at as u32;
            at = end;
        }
        if at != bytes.len() {
            return Err(Error::TokenizerTrailingBytes {
                vocab_size,
                extra: bytes.len() - at,
            });
        }
        for (i, id) in sorted.iter_mut().enumerate() {
            *id = i as u32;
        }
        let entry = |id: u32| entry_piece(bytes, offsets, id);
        sorted.sort_unstable_by(|&a, &b| entry(a).cmp(entry(b)).then(a.cmp(&b)));
        Ok(Tokenizer {
            bytes,
            max_token_length,
            offsets,
            sorted,
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.offsets.len()
    }

    /// The longest token in bytes, as the file declares it.
    pub fn max_token_length(&self) -> usize {
        self.max_token_length
    }

    /// The bytes of token `id`, or `None` if it is out of range.
    pub fn piece(&self, id: u32) -> Option<&'a [u8]> {
        self.offsets.get(id as usize)?;
        Some(entry_piece(self.bytes, self.offsets, id))
    }

    /// The merge score of token `id` (0 if out of range).
    fn score(&self, id: u32) -> f32 {
        let at = self.offsets.get(id as usize).map(|&offset| offset as usize);
        match at.and_then(|at| self.bytes.get(at..at + 4)) {
            Some(word) => f32::from_bits(le_u32(word)),
            None => 0.0,
        }
    }

    /// The id of the token whose bytes are `head` followed by `tail`, lowest id first.
    pub fn lookup(&self, head: &[u8], tail: &[u8]) -> Option<u32> {
        let entry = |id: u32| entry_piece(self.bytes, self.offsets, id);
        let first = self
            .sorted
            .partition_point(|&id| cmp_concat(entry(id), head, tail) == Ordering::Less);
        let &id = self.sorted.get(first)?;
        (cmp_concat(entry(id), head, tail) == Ordering::Equal).then_some(id)
    }

    /// Encodes `text` into `out` the way llama2.c does and returns the number of tokens.
    ///
    /// BOS first if `bos`; a dummy-prefix space token when the text is not empty; each UTF-8
    /// character as a token, or its bytes as byte tokens; then repeated merges of the
    /// adjacent pair whose merged token scores highest; EOS last if `eos`. `out` needs at most
    /// `text.len() + 3` elements.
    pub fn encode(&self, text: &[u8], bos: bool, eos: bool, out: &mut [u32]) -> Result<usize> {
        // A vocabulary too small to hold BOS or EOS cannot mark them.
        for (wanted, id) in [(bos, BOS), (eos, EOS)] {
            if wanted && id as usize >= self.vocab_size() {
                return Err(Error::TokenOutOfRange {
                    token: id,
                    vocab_size: self.vocab_size(),
                });
            }
        }
        let mut tokens = TokenBuf { out, len: 0 };
        if bos {
            tokens.push(BOS)?;
        }
        if !text.is_empty() {
            // Models without a space token get no dummy prefix (the reference would
            // push an invalid id).
            if let Some(space) = self.lookup(b" ", b"") {
                tokens.push(space)?;
            }
        }
        self.encode_chars(text, &mut tokens)?;
        self.merge_pairs(&mut tokens);
        if eos {
            tokens.push(EOS)?;
        }
        Ok(tokens.len)
    }

    /// One token per UTF-8 character (up to 4 bytes grouped), byte tokens when the character
    /// is not in the vocabulary.
    fn encode_chars(&self, text: &[u8], tokens: &mut TokenBuf<'_>) -> Result<()> {
        let mut char_bytes = heapless::Vec::<u8, 4>::new();
        for (i, &byte) in text.iter().enumerate() {
            if !is_continuation(byte) {
                char_bytes.clear();
            }
            // Never full: cleared below whenever it reaches 4.
            let _ = char_bytes.push(byte);
            let next_continues = text.get(i + 1).is_some_and(|&b| is_continuation(b));
            if next_continues && char_bytes.len() < 4 {
                continue;
            }
            match self.lookup(&char_bytes, b"") {
                Some(id) => tokens.push(id)?,
                None => {
                    for &b in char_bytes.iter() {
                        let id = usize::from(b) + BYTE_TOKEN_OFFSET;
                        if id >= self.vocab_size() {
                            return Err(Error::VocabularyTooSmall {
                                vocab_size: self.vocab_size(),
                            });
                        }
                        tokens.push(id as u32)?;
                    }
                }
            }
            char_bytes.clear();
        }
        Ok(())
    }

    /// Merges the best-scoring adjacent pair until no pair forms a token.
    fn merge_pairs(&self, tokens: &mut TokenBuf<'_>) {
        loop {
            let mut best: Option<(f32, u32, usize)> = None;
            let current = tokens.out.get(..tokens.len).unwrap_or_default();
            for (i, pair) in current.windows(2).enumerate() {
                let &[first, second] = pair else { continue };
                let (Some(a), Some(b)) = (self.piece(first), self.piece(second)) else {
                    continue;
                };
                if let Some(id) = self.lookup(a, b) {
                    let score = self.score(id);
                    if score > best.map_or(-1e10, |(s, _, _)| s) {
                        best = Some((score, id, i));
                    }
                }
            }
            let Some((_, id, i)) = best else { return };
            // `i + 1 < tokens.len <= out.len()`: `i` indexes a pair of the current tokens.
            if let Some(slot) = tokens.out.get_mut(i) {
                *slot = id;
            }
            tokens.out.copy_within(i + 2..tokens.len, i + 1);
            tokens.len -= 1;
        }
    }

    /// What token `token` prints as after `prev`: a leading space is dropped after BOS, and
    /// `<0xHH>` pieces are raw bytes.
    pub fn decode(&self, prev: u32, token: u32) -> Result<Piece<'a>> {
        let mut piece = self.piece(token).ok_or(Error::TokenOutOfRange {
            token,
            vocab_size: self.vocab_size(),
        })?;
        if prev == BOS {
            if let [b' ', rest @ ..] = piece {
                piece = rest;
            }
        }
        Ok(match parse_byte_piece(piece) {
            Some(byte) => Piece::Byte(byte),
            None => Piece::Text(piece),
        })
    }
}

/// The output tokens of an encoding, bounded by the caller's buffer.
struct TokenBuf<'o> {
    out: &'o mut [u32],
    len: usize,
}

impl TokenBuf<'_> {
    fn push(&mut self, token: u32) -> Result<()> {
        let actual = self.out.len();
        let slot = self.out.get_mut(self.len).ok_or(Error::BufferTooSmall {
            buffer: Buffer::Tokens,
            needed: self.len + 1,
            actual,
        })?;
        *slot = token;
        self.len += 1;
        Ok(())
    }
}

/// The little-endian u32 at the start of `bytes` (missing bytes read as zero).
fn le_u32(bytes: &[u8]) -> u32 {
    let mut word = [0u8; 4];
    for (w, &b) in word.iter_mut().zip(bytes) {
        *w = b;
    }
    u32::from_le_bytes(word)
}

/// The bytes of token `id`, whose entry [`Tokenizer::new`] checked to lie inside `bytes`
/// (an id out of range, which callers never pass, gives an empty piece).
fn entry_piece<'a>(bytes: &'a [u8], offsets: &[u32], id: u32) -> &'a [u8] {
    let Some(&offset) = offsets.get(id as usize) else {
        return &[];
    };
    let at = offset as usize;
    let len = le_u32(bytes.get(at + 4..).unwrap_or_default()) as usize;
    bytes.get(at + 8..at + 8 + len).unwrap_or_default()
}

fn is_continuation(byte: u8) -> bool {
    byte & 0xC0 == 0x80
}

/// Orders `piece` against the concatenation `head ++ tail` without building it.
fn cmp_concat(piece: &[u8], head: &[u8], tail: &[u8]) -> Ordering {
    let n = piece.len().min(head.len());
    let (piece_head, piece_tail) = piece.split_at(n);
    match piece_head.cmp(head.get(..n).unwrap_or_default()) {
        Ordering::Equal if piece.len() < head.len() => Ordering::Less,
        // Here `n == head.len()`: the rest of the piece against the tail.
        Ordering::Equal => piece_tail.cmp(tail),
        other => other,
    }
}

/// `Some(b)` for a piece spelled `<0xHH>`.
fn parse_byte_piece(piece: &[u8]) -> Option<u8> {
    match piece {
        [b'<', b'0', b'x', hi, lo, b'>'] => Some(hex_digit(*hi)? << 4 | hex_digit(*lo)?),
        _ => None,
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::tokenizer_file;
    use std::vec::Vec;

    const VOCAB: usize = 266;

    fn vocab_file() -> Vec<u8> {
        super::super::testutil::vocab_file(VOCAB)
    }

    fn encode(text: &str, bos: bool, eos: bool) -> Vec<u32> {
        let file = vocab_file();
        let mut index = vec![0; 2 * VOCAB];
        let tokenizer = Tokenizer::new(&file, VOCAB, &mut index).unwrap();
        let mut out = vec![0; text.len() + 3];
        let n = tokenizer
            .encode(text.as_bytes(), bos, eos, &mut out)
            .unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn merges_highest_scoring_pairs_first() {
        assert_eq!(encode("ab", true, false), [1, 263]);
        assert_eq!(encode("ba", false, true), [259, 265, 2]);
        assert_eq!(encode("", true, false), [1]);
    }

    #[test]
    fn groups_utf8_and_falls_back_to_bytes() {
        assert_eq!(encode("é", true, false), [1, 259, 264]);
        // ü (C3 BC) is not in the vocabulary: one byte token per byte
        assert_eq!(encode("ü", false, false), [259, 0xC3 + 3, 0xBC + 3]);
    }

    #[test]
    fn decode_follows_the_reference() {
        let file = vocab_file();
        let mut index = vec![0; 2 * VOCAB];
        let t = Tokenizer::new(&file, VOCAB, &mut index).unwrap();
        assert_eq!(t.decode(BOS, 263), Ok(Piece::Text(b"ab")));
        assert_eq!(t.decode(260, 263), Ok(Piece::Text(b" ab")));
        assert_eq!(t.decode(260, 0x41 + 3), Ok(Piece::Byte(0x41)));
        assert_eq!(
            t.decode(260, 266),
            Err(Error::TokenOutOfRange {
                token: 266,
                vocab_size: VOCAB
            })
        );
        assert_eq!(t.lookup(b"a", b"b"), Some(262));
        assert_eq!(t.lookup(b"b", b"b"), None);
    }

    #[test]
    fn duplicate_pieces_resolve_to_the_lowest_id() {
        let file = tokenizer_file(1, &[(0.0, b"x"), (0.0, b"y"), (0.0, b"x")]);
        let mut index = [0; 6];
        let t = Tokenizer::new(&file, 3, &mut index).unwrap();
        assert_eq!(t.lookup(b"x", b""), Some(0));
    }

    #[test]
    fn encode_reports_a_short_output_buffer() {
        let file = vocab_file();
        let mut index = vec![0; 2 * VOCAB];
        let t = Tokenizer::new(&file, VOCAB, &mut index).unwrap();
        let mut out = [0; 2];
        assert_eq!(
            t.encode(b"ba", true, false, &mut out),
            Err(Error::BufferTooSmall {
                buffer: Buffer::Tokens,
                needed: 3,
                actual: 2
            })
        );
    }

    #[test]
    fn byte_fallback_needs_the_byte_tokens() {
        let file = tokenizer_file(1, &[(0.0, b"a"), (0.0, b" ")]);
        let mut index = [0; 4];
        let t = Tokenizer::new(&file, 2, &mut index).unwrap();
        let mut out = [0; 8];
        assert_eq!(
            t.encode(b"z", false, false, &mut out),
            Err(Error::VocabularyTooSmall { vocab_size: 2 })
        );
    }

    #[test]
    fn rejects_malformed_files() {
        let mut index = vec![0; 2 * VOCAB];
        let good = vocab_file();
        let check = |bytes: &[u8], vocab: usize, index: &mut [u32]| {
            Tokenizer::new(bytes, vocab, index).map(|_| ())
        };
        assert_eq!(
            check(&good[..2], VOCAB, &mut index),
            Err(Error::TokenizerTruncated { token: 0 })
        );
        assert_eq!(
            check(&good[..good.len() - 1], VOCAB, &mut index),
            Err(Error::TokenizerTruncated { token: VOCAB - 1 })
        );
        assert_eq!(
            check(&good, VOCAB - 1, &mut index),
            Err(Error::TokenizerTrailingBytes {
                vocab_size: VOCAB - 1,
                extra: 8 + 2
            })
        );
        assert_eq!(
            check(&good, VOCAB, &mut index[..10]),
            Err(Error::BufferTooSmall {
                buffer: Buffer::TokenizerIndex,
                needed: 2 * VOCAB,
                actual: 10
            })
        );
        let mut negative = tokenizer_file(4, &[(0.0, b"ab")]);
        negative[8..12].copy_from_slice(&(-5i32).to_le_bytes());
        assert_eq!(
            check(&negative, 1, &mut index),
            Err(Error::TokenizerNegativeLength { token: 0, len: -5 })
        );
        let too_long = tokenizer_file(1, &[(0.0, b"abc")]);
        assert_eq!(
            check(&too_long, 1, &mut index),
            Err(Error::TokenLongerThanMax {
                token: 0,
                len: 3,
                max: 1
            })
        );
        let huge = tokenizer_file(u32::MAX, &[(0.0, b"a")]);
        let mut huge = huge;
        huge[8..12].copy_from_slice(&i32::MAX.to_le_bytes());
        assert_eq!(
            check(&huge, 1, &mut index),
            Err(Error::TokenizerTruncated { token: 0 })
        );
    }
}
