//! The llama2.c BPE tokenizer over the bytes of a `tokenizer.bin` or over the vocabulary in
//! a GGUF file's metadata, with its lookup index kept in a caller buffer.
//!
//! Both kinds encode and decode exactly alike: every comparison of pieces is made on their
//! text as llama2.c spells it ([`PieceText`]), so a GGUF vocabulary gives the ids and the
//! text its `tokenizer.bin` export gives. The file comes from outside: this module indexes
//! it only through `get` (enforced by `clippy::indexing_slicing`), and every offset sum on
//! it is checked.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

mod gguf;
mod piece;

use core::cmp::Ordering;

use crate::error::{Buffer, Error, Result};
use crate::gguf::Gguf;
use crate::merge;

use piece::cmp_runs;
pub use piece::{Chunks, Piece, PieceText};

/// Id of the beginning-of-sequence token of a `tokenizer.bin` (a GGUF vocabulary says its
/// own: [`Tokenizer::bos`]).
pub const BOS: u32 = 1;
/// Id of the end-of-sequence token of a `tokenizer.bin` ([`Tokenizer::eos`]).
pub const EOS: u32 = 2;
/// Byte `b` is token `b + BYTE_TOKEN_OFFSET` in llama2.c's byte-fallback range.
const BYTE_TOKEN_OFFSET: u32 = 3;
/// Bytes of stack for the text of a pair being merged in a GGUF vocabulary.
const PAIR_BUFFER: usize = 64;

/// Length in `u32`s of the buffer [`Tokenizer::encode`] (and so
/// [`Generator::generate`](crate::Generator::generate)) needs for a text of `text_len` bytes,
/// or `None` if it overflows `usize` or the text is too long to encode (its symbols are
/// indexed by `u32`). Usable in `const` context, to size a `static`.
///
/// The tokens are written at the front; the rest is the merge's scratch (links between
/// symbols and a heap of candidate pairs), so encoding allocates nothing and costs
/// `O(n log n)`. It is `7 * text_len + 15`: room for BOS, the dummy-prefix space, one token
/// per byte and EOS, and six words of scratch for each of those symbols but EOS.
pub const fn prompt_buffer_len(text_len: usize) -> Option<usize> {
    // BOS, the dummy prefix and one symbol per byte take part in the merges.
    let Some(symbols) = text_len.checked_add(2) else {
        return None;
    };
    if symbols >= u32::MAX as usize {
        return None;
    }
    let Some(scratch) = merge::scratch_len(symbols) else {
        return None;
    };
    // `symbols + 1 < u32::MAX + 1` cannot overflow; EOS is appended after the merges.
    scratch.checked_add(symbols + 1)
}

/// A vocabulary of scored pieces, borrowed from a `tokenizer.bin` or a GGUF file.
#[derive(Debug, Clone, Copy)]
pub struct Tokenizer<'a> {
    store: Store<'a>,
    max_token_length: usize,
    /// The longest piece actually in the file (at most `max_token_length`), as llama2.c
    /// spells it.
    max_piece_len: usize,
    /// Where each token's piece is in the store.
    offsets: &'a [u32],
    /// Token ids ordered by their text (ties by id), for binary search.
    sorted: &'a [u32],
    bos: u32,
    eos: u32,
    add_bos: bool,
    /// Byte `b` is token `byte_base + b`; `None`: the token spelled `<0xHH>` is looked up.
    byte_base: Option<u32>,
}

/// Where the pieces and scores are.
#[derive(Debug, Clone, Copy)]
enum Store<'a> {
    /// A `tokenizer.bin`: `offsets` point at `f32 score, i32 len, bytes` entries.
    Llama2c(&'a [u8]),
    /// GGUF metadata: `offsets` point at `u64 len, bytes` elements of the token array.
    Gguf(gguf::Vocab<'a>),
}

impl<'a> Tokenizer<'a> {
    /// Number of `u32` elements of index buffer that [`Tokenizer::new`] and
    /// [`Tokenizer::from_gguf`] need, or `None` on overflow. Usable in `const` context.
    pub const fn index_len(vocab_size: usize) -> Option<usize> {
        vocab_size.checked_mul(2)
    }

    /// Parses `vocab_size` entries of a `tokenizer.bin` (the count comes from the model) and
    /// builds the sorted lookup index in `index`. BOS is 1 and EOS 2, as in llama2.c.
    pub fn new(bytes: &'a [u8], vocab_size: usize, index: &'a mut [u32]) -> Result<Self> {
        let (offsets, sorted) = split_index(index, vocab_size)?;
        if u32::try_from(bytes.len()).is_err() || u32::try_from(vocab_size).is_err() {
            return Err(Error::SizeOverflow);
        }
        let max_token_length = match bytes.get(..4) {
            Some(word) => le_u32(word) as usize,
            None => return Err(Error::TokenizerTruncated { token: 0 }),
        };
        let mut at = 4usize;
        let mut max_piece_len = 0;
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
            max_piece_len = max_piece_len.max(len);
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
        let offsets = &*offsets;
        let entry = |id: u32| entry_piece(bytes, offsets, id);
        sort_ids(sorted, |a, b| entry(a).cmp(entry(b)));
        Ok(Tokenizer {
            store: Store::Llama2c(bytes),
            max_token_length,
            max_piece_len,
            offsets,
            sorted,
            bos: BOS,
            eos: EOS,
            add_bos: true,
            byte_base: Some(BYTE_TOKEN_OFFSET),
        })
    }

    /// The vocabulary in a GGUF file's metadata (`tokenizer.ggml.model = "llama"`), read in
    /// place, with its sorted lookup index in `index` ([`Tokenizer::index_len`] of the token
    /// count). The vocabulary size is the number of pieces.
    ///
    /// Refused: another tokenizer model (such as `gpt2` byte-level BPE), a missing or
    /// mistyped token or score array, score or token-type arrays of another length than the
    /// tokens, BOS or EOS ids outside the vocabulary, a mistyped `add_bos_token`.
    ///
    /// Byte fallback uses ids 3..=258 when they are the byte tokens `<0x00>`..`<0xFF>` (typed
    /// as bytes, if the file has token types), as llama.cpp's converters write them;
    /// otherwise the token spelled `<0xHH>` is looked up for each byte.
    pub fn from_gguf(file: &Gguf<'a>, index: &'a mut [u32]) -> Result<Self> {
        let metadata = gguf::read(file)?;
        let vocab = metadata.vocab;
        let vocab_size = metadata.vocab_size;
        if u32::try_from(vocab_size).is_err() {
            return Err(Error::SizeOverflow);
        }
        let (offsets, sorted) = split_index(index, vocab_size)?;
        let max_piece_len = gguf::index(&vocab, offsets)?;
        let offsets = &*offsets;
        sort_ids(sorted, |a, b| {
            let (a, b) = (vocab.text(offsets, a), vocab.text(offsets, b));
            cmp_runs(a.chunks(), b.chunks())
        });
        let mut tokenizer = Tokenizer {
            store: Store::Gguf(vocab),
            max_token_length: max_piece_len,
            max_piece_len,
            offsets,
            sorted,
            bos: vocab.bos,
            eos: vocab.eos,
            add_bos: metadata.add_bos,
            byte_base: None,
        };
        if tokenizer.has_llama2c_byte_tokens(&vocab) {
            tokenizer.byte_base = Some(BYTE_TOKEN_OFFSET);
        }
        Ok(tokenizer)
    }

    /// Whether ids 3..=258 are the byte tokens `<0x00>`..`<0xFF>` in order.
    fn has_llama2c_byte_tokens(&self, vocab: &gguf::Vocab<'_>) -> bool {
        (0..=255u8).all(|byte| {
            let id = BYTE_TOKEN_OFFSET + u32::from(byte);
            self.piece(id) == Some(&byte_piece(byte)[..]) && vocab.typed_byte(id)
        })
    }

    /// Number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.offsets.len()
    }

    /// The beginning-of-sequence id: 1 for a `tokenizer.bin`, what a GGUF file says.
    pub fn bos(&self) -> u32 {
        self.bos
    }

    /// The end-of-sequence id: 2 for a `tokenizer.bin`, what a GGUF file says.
    pub fn eos(&self) -> u32 {
        self.eos
    }

    /// Whether prompts should start with BOS: a GGUF file's `add_bos_token` (default
    /// true); always true for a `tokenizer.bin`.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether the vocabulary comes from a GGUF file (pieces spell a space `▁`).
    pub fn is_gguf(&self) -> bool {
        matches!(self.store, Store::Gguf(_))
    }

    /// The longest token in bytes, as a `tokenizer.bin`'s header declares it (what a
    /// `tokenizer.bin` written from this vocabulary declares: for a GGUF vocabulary, the
    /// measured [`Tokenizer::max_piece_len`]). A file can declare more than it holds, so
    /// bounds use [`Tokenizer::max_piece_len`].
    pub fn max_token_length(&self) -> usize {
        self.max_token_length
    }

    /// The length in bytes of the longest piece's text ([`Tokenizer::piece_text`]),
    /// measured when the file was parsed (at most [`Tokenizer::max_token_length`]).
    pub fn max_piece_len(&self) -> usize {
        self.max_piece_len
    }

    /// The bytes of token `id` as the file stores them (a GGUF piece spells a space `▁`),
    /// or `None` if it is out of range. [`Tokenizer::piece_text`] gives its text.
    pub fn piece(&self, id: u32) -> Option<&'a [u8]> {
        self.offsets.get(id as usize)?;
        Some(match self.store {
            Store::Llama2c(bytes) => entry_piece(bytes, self.offsets, id),
            Store::Gguf(vocab) => vocab.piece(self.offsets, id),
        })
    }

    /// The text of token `id` as llama2.c's `tokenizer.bin` spells it (a space is `' '`, BOS
    /// and EOS are `"\n<s>\n"` and `"\n</s>\n"` for the Llama vocabulary), or `None` if it
    /// is out of range. With [`Tokenizer::score`] and [`Tokenizer::max_token_length`] this
    /// is what a `tokenizer.bin` holds, whichever file the vocabulary comes from.
    pub fn piece_text(&self, id: u32) -> Option<PieceText<'a>> {
        self.offsets.get(id as usize)?;
        Some(match self.store {
            Store::Llama2c(bytes) => PieceText::plain(entry_piece(bytes, self.offsets, id)),
            Store::Gguf(vocab) => vocab.text(self.offsets, id),
        })
    }

    /// The merge score of token `id` (higher merges first), or `None` if it is out of range.
    pub fn score(&self, id: u32) -> Option<f32> {
        let at = *self.offsets.get(id as usize)? as usize;
        match self.store {
            Store::Llama2c(bytes) => {
                // `at + 8 <= bytes.len()`: `new` checked every entry's header.
                let word = bytes.get(at..at.checked_add(4)?)?;
                Some(f32::from_bits(le_u32(word)))
            }
            Store::Gguf(vocab) => vocab.score(id),
        }
    }

    /// The id of the token whose text ([`Tokenizer::piece_text`]) is `head` followed by
    /// `tail`, lowest id first.
    pub fn lookup(&self, head: &[u8], tail: &[u8]) -> Option<u32> {
        match self.store {
            Store::Llama2c(bytes) => self.lookup_llama2c(bytes, head, tail),
            Store::Gguf(vocab) => self.lookup_text(&vocab, [head, tail].into_iter()),
        }
    }

    /// The lowest id whose piece is `head ++ tail`, in a `tokenizer.bin`.
    fn lookup_llama2c(&self, bytes: &[u8], head: &[u8], tail: &[u8]) -> Option<u32> {
        let entry = |id: u32| entry_piece(bytes, self.offsets, id);
        let first = self
            .sorted
            .partition_point(|&id| cmp_concat(entry(id), head, tail) == Ordering::Less);
        let &id = self.sorted.get(first)?;
        (cmp_concat(entry(id), head, tail) == Ordering::Equal).then_some(id)
    }

    /// The lowest id whose text is `query` (given as runs of bytes), in a GGUF vocabulary.
    fn lookup_text<'q>(
        &self,
        vocab: &gguf::Vocab<'a>,
        query: impl Iterator<Item = &'q [u8]> + Clone,
    ) -> Option<u32> {
        let cmp = |id: u32| cmp_runs(vocab.text(self.offsets, id).chunks(), query.clone());
        let first = self.sorted.partition_point(|&id| cmp(id) == Ordering::Less);
        let &id = self.sorted.get(first)?;
        (cmp(id) == Ordering::Equal).then_some(id)
    }

    /// Encodes `text` into `out` the way llama2.c does and returns the number of tokens,
    /// which are at the front of `out`.
    ///
    /// BOS first if `bos`; a dummy-prefix space token when the text is not empty; each UTF-8
    /// character as a token, or its bytes as byte tokens; then repeated merges of the
    /// adjacent pair whose merged token scores highest (above -1e10, leftmost on ties); EOS
    /// last if `eos`. `out` needs [`prompt_buffer_len`]`(text.len())` elements: the part
    /// past the tokens is scratch for the merges, which take `O(n log n)` time for `n` bytes.
    pub fn encode(&self, text: &[u8], bos: bool, eos: bool, out: &mut [u32]) -> Result<usize> {
        // A vocabulary too small to hold BOS or EOS cannot mark them.
        for (wanted, id) in [(bos, self.bos), (eos, self.eos)] {
            if wanted && id as usize >= self.vocab_size() {
                return Err(Error::TokenOutOfRange {
                    token: id,
                    vocab_size: self.vocab_size(),
                });
            }
        }
        let needed = prompt_buffer_len(text.len()).ok_or(Error::SizeOverflow)?;
        let too_small = Error::BufferTooSmall {
            buffer: Buffer::Tokens,
            needed,
            actual: out.len(),
        };
        if out.len() < needed {
            return Err(too_small);
        }
        // Room for every symbol and EOS, then the scratch; `text.len() + 3 <= needed`.
        let (front, scratch) = out.split_at_mut_checked(text.len() + 3).ok_or(too_small)?;
        let mut tokens = TokenBuf { out: front, len: 0 };
        self.push_symbols(text, bos, &mut tokens)?;
        let symbols = tokens.out.get_mut(..tokens.len).unwrap_or_default();
        tokens.len = merge::merge(self, symbols, scratch).ok_or(too_small)?;
        if eos {
            tokens.push(self.eos)?;
        }
        Ok(tokens.len)
    }

    /// The symbols the merges start from: BOS if `bos`, the dummy prefix, the characters.
    fn push_symbols(&self, text: &[u8], bos: bool, tokens: &mut TokenBuf<'_>) -> Result<()> {
        if bos {
            tokens.push(self.bos)?;
        }
        if !text.is_empty() {
            // Models without a space token get no dummy prefix (the reference would
            // push an invalid id).
            if let Some(space) = self.lookup(b" ", b"") {
                tokens.push(space)?;
            }
        }
        self.encode_chars(text, tokens)
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
                        tokens.push(self.byte_token(b)?)?;
                    }
                }
            }
            char_bytes.clear();
        }
        Ok(())
    }

    /// The byte-fallback token of `byte`.
    fn byte_token(&self, byte: u8) -> Result<u32> {
        match self.byte_base {
            Some(base) => {
                let id = base + u32::from(byte);
                if id as usize >= self.vocab_size() {
                    return Err(Error::VocabularyTooSmall {
                        vocab_size: self.vocab_size(),
                    });
                }
                Ok(id)
            }
            None => self
                .lookup(&byte_piece(byte), b"")
                .ok_or(Error::NoByteToken { byte }),
        }
    }

    /// What token `token` prints as after `prev`: a leading space is dropped after BOS, and
    /// `<0xHH>` pieces are raw bytes. Both kinds of vocabulary give the same text for the
    /// same piece; a GGUF piece whose stored bytes differ from its text comes as
    /// [`Piece::Spelled`].
    pub fn decode(&self, prev: u32, token: u32) -> Result<Piece<'a>> {
        let mut text = self.piece_text(token).ok_or(Error::TokenOutOfRange {
            token,
            vocab_size: self.vocab_size(),
        })?;
        if prev == self.bos {
            text = text.without_leading_space();
        }
        Ok(match text.as_plain() {
            Some(bytes) => match parse_byte_piece(bytes) {
                Some(byte) => Piece::Byte(byte),
                None => Piece::Text(bytes),
            },
            None => Piece::Spelled(text),
        })
    }
}

/// Merging asks the vocabulary for the token of a pair and its score.
impl merge::Vocabulary for Tokenizer<'_> {
    fn pair(&self, left: u32, right: u32) -> Option<u32> {
        match self.store {
            Store::Llama2c(bytes) => {
                self.offsets.get(left.max(right) as usize)?;
                let piece = |id: u32| entry_piece(bytes, self.offsets, id);
                self.lookup_llama2c(bytes, piece(left), piece(right))
            }
            Store::Gguf(vocab) => {
                let (left, right) = (self.piece_text(left)?, self.piece_text(right)?);
                // The pair's text spelled out once rather than at every step of the search
                // (pairs too long for the buffer, which real vocabularies lack, are not).
                let mut buf = [0u8; PAIR_BUFFER];
                match spell_pair(left, right, &mut buf) {
                    Some(text) => self.lookup_text(&vocab, core::iter::once(text)),
                    None => self.lookup_text(&vocab, left.chunks().chain(right.chunks())),
                }
            }
        }
    }

    fn score(&self, id: u32) -> f32 {
        // Ids come from `pair`, so always in range; NaN would never be chosen.
        Tokenizer::score(self, id).unwrap_or(f32::NAN)
    }
}

/// The text of `left` followed by `right`, in `buf` if it fits.
fn spell_pair<'b>(
    left: PieceText<'_>,
    right: PieceText<'_>,
    buf: &'b mut [u8],
) -> Option<&'b [u8]> {
    let n = left.copy_to(buf)?.len();
    let m = right.copy_to(buf.get_mut(n..)?)?.len();
    buf.get(..n + m)
}

/// Checks the index buffer and splits it into the offsets and the sorted ids.
fn split_index(index: &mut [u32], vocab_size: usize) -> Result<(&mut [u32], &mut [u32])> {
    let needed = Tokenizer::index_len(vocab_size).ok_or(Error::SizeOverflow)?;
    if index.len() < needed {
        return Err(Error::BufferTooSmall {
            buffer: Buffer::TokenizerIndex,
            needed,
            actual: index.len(),
        });
    }
    // `index` holds at least `2 * vocab_size` elements (checked above).
    let (offsets, rest) = index.split_at_mut(vocab_size);
    let (sorted, _) = rest.split_at_mut(vocab_size);
    Ok((offsets, sorted))
}

/// Fills `sorted` with the ids `0..len` ordered by `cmp`, ties by id.
fn sort_ids(sorted: &mut [u32], cmp: impl Fn(u32, u32) -> Ordering) {
    for (i, id) in sorted.iter_mut().enumerate() {
        *id = i as u32;
    }
    sorted.sort_unstable_by(|&a, &b| cmp(a, b).then(a.cmp(&b)));
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

/// The piece `<0xHH>` of byte-fallback token `byte`, as sentencepiece spells it.
fn byte_piece(byte: u8) -> [u8; 6] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digit = |nibble: u8| HEX.get(usize::from(nibble)).copied().unwrap_or(b'0');
    [b'<', b'0', b'x', digit(byte >> 4), digit(byte & 0xF), b'>']
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
        let mut out = vec![0; prompt_buffer_len(text.len()).unwrap()];
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
        let needed = prompt_buffer_len(2).unwrap();
        let mut out = vec![0; needed - 1];
        assert_eq!(
            t.encode(b"ba", true, false, &mut out),
            Err(Error::BufferTooSmall {
                buffer: Buffer::Tokens,
                needed,
                actual: needed - 1
            })
        );
        // Even a text that merges to a single token needs the whole buffer, for the scratch.
        assert_eq!(
            t.encode(b"", true, false, &mut [0; 2]),
            Err(Error::BufferTooSmall {
                buffer: Buffer::Tokens,
                needed: 15,
                actual: 2
            })
        );
    }

    #[test]
    fn byte_fallback_needs_the_byte_tokens() {
        let file = tokenizer_file(1, &[(0.0, b"a"), (0.0, b" ")]);
        let mut index = [0; 4];
        let t = Tokenizer::new(&file, 2, &mut index).unwrap();
        let mut out = [0; 22];
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

    #[test]
    fn prompt_buffer_len_is_checked() {
        assert_eq!(prompt_buffer_len(0), Some(15));
        assert_eq!(prompt_buffer_len(10), Some(85));
        assert_eq!(prompt_buffer_len(usize::MAX), None);
        assert_eq!(prompt_buffer_len(u32::MAX as usize - 2), None);
        // In const context, as firmware sizes its statics.
        const LEN: Option<usize> = prompt_buffer_len(4);
        assert_eq!(LEN, Some(43));
    }

    #[test]
    fn max_piece_len_is_measured_not_declared() {
        let file = tokenizer_file(1000, &[(0.0, b"a"), (0.0, b"abcd"), (0.0, b"")]);
        let mut index = [0; 6];
        let t = Tokenizer::new(&file, 3, &mut index).unwrap();
        assert_eq!((t.max_token_length(), t.max_piece_len()), (1000, 4));
        assert_eq!(t.score(2), Some(0.0));
        assert_eq!(t.score(3), None);
    }

    /// The encoding with llama2.c's quadratic merge loop: the oracle for `encode`.
    fn encode_quadratic(t: &Tokenizer<'_>, text: &[u8], bos: bool, eos: bool) -> Vec<u32> {
        let mut out = vec![0; text.len() + 3];
        let mut tokens = TokenBuf {
            out: &mut out,
            len: 0,
        };
        t.push_symbols(text, bos, &mut tokens).unwrap();
        let len = tokens.len;
        out.truncate(len);
        crate::merge::merge_quadratic(t, &mut out);
        if eos {
            out.push(EOS);
        }
        out
    }

    fn fixture(name: &str) -> Vec<u8> {
        fixture_file(&format!("models/{name}"))
    }

    fn fixture_file(relative: &str) -> Vec<u8> {
        let dir = std::env::var("LLAMA2_FIXTURES").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures").into()
        });
        let path = format!("{dir}/{relative}");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Texts that stress the merge order: random bytes, runs of one character, UTF-8 mixes
    /// (with stray continuation bytes) and one pair repeated, of lengths up to `max_len`.
    fn adversarial_texts(seed: u64, count: usize, max_len: usize) -> Vec<Vec<u8>> {
        let mut rng = crate::sampler::Rng::new(seed);
        let alphabet: [&[u8]; 12] = [
            b"a",
            b"b",
            b" ",
            b"e",
            b"t",
            b"th",
            b"\n",
            "é".as_bytes(),
            "日".as_bytes(),
            "🦀".as_bytes(),
            b"\x80",
            b"\xff",
        ];
        let story = b"Once upon a time, there was a little girl named Lily. She loved to play.";
        (0..count)
            .map(|i| {
                let len = rng.next_u32() as usize % (max_len + 1);
                let mut pick = |n: usize| rng.next_u32() as usize % n;
                let text: Vec<u8> = match i % 6 {
                    0 => (0..len).map(|_| pick(256) as u8).collect(),
                    1 => vec![b" ae^0"[pick(5)]; len],
                    2 => (0..len)
                        .flat_map(|_| alphabet[pick(alphabet.len())].to_vec())
                        .collect(),
                    3 => {
                        let pair = [alphabet[pick(6)], alphabet[pick(alphabet.len())]].concat();
                        pair.iter().copied().cycle().take(len).collect()
                    }
                    4 => story
                        .iter()
                        .copied()
                        .cycle()
                        .skip(pick(story.len()))
                        .take(len)
                        .collect(),
                    _ => (0..len).map(|_| b"ab  \t\nzZ"[pick(8)]).collect(),
                };
                text.into_iter().take(max_len).collect()
            })
            .collect()
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads fixture files, which Miri's isolation forbids")]
    fn heap_merge_matches_the_quadratic_oracle_on_the_real_tokenizers() {
        for (name, vocab, count) in [("tok512.bin", 512, 1200), ("tokenizer.bin", 32000, 600)] {
            let file = fixture(name);
            let mut index = vec![0; Tokenizer::index_len(vocab).unwrap()];
            let t = Tokenizer::new(&file, vocab, &mut index).unwrap();
            for (i, text) in adversarial_texts(vocab as u64, count, 300)
                .iter()
                .enumerate()
            {
                let (bos, eos) = (i % 3 != 1, i % 4 == 0);
                let mut out = vec![0; prompt_buffer_len(text.len()).unwrap()];
                let n = t.encode(text, bos, eos, &mut out).unwrap();
                assert_eq!(
                    out[..n],
                    encode_quadratic(&t, text, bos, eos),
                    "{name}: {text:?} (bos {bos}, eos {eos})"
                );
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads fixture files, which Miri's isolation forbids")]
    fn gguf_vocabularies_encode_every_text_as_their_tokenizer_bin() {
        let pairs = [
            ("tok512.bin", "gguf/stories260K.gguf", 512, 1200),
            ("tokenizer.bin", "gguf/synth_32k-Q8_0.gguf", 32000, 600),
        ];
        for (bin_name, gguf_name, vocab, count) in pairs {
            let bin = fixture(bin_name);
            let mut bin_index = vec![0; Tokenizer::index_len(vocab).unwrap()];
            let b = Tokenizer::new(&bin, vocab, &mut bin_index).unwrap();
            let file = fixture_file(gguf_name);
            let gguf = Gguf::parse(&file).unwrap();
            let mut index = vec![0; Tokenizer::index_len(vocab).unwrap()];
            let g = Tokenizer::from_gguf(&gguf, &mut index).unwrap();
            // Texts that spell BOS/EOS pieces and the space mark, then the adversarial ones.
            let mut texts: Vec<Vec<u8>> =
                ["<s>", "</s> <s>", "\n<s>\n", "\u{2581}a \u{2581}", "<0x41>"]
                    .map(|t| t.as_bytes().to_vec())
                    .into();
            texts.extend(adversarial_texts(vocab as u64 + 1, count, 300));
            for (i, text) in texts.iter().enumerate() {
                let (bos, eos) = (i % 3 != 1, i % 4 == 0);
                let mut out = vec![0; prompt_buffer_len(text.len()).unwrap()];
                let n = g.encode(text, bos, eos, &mut out).unwrap();
                let mut expected = vec![0; prompt_buffer_len(text.len()).unwrap()];
                let m = b.encode(text, bos, eos, &mut expected).unwrap();
                assert_eq!(
                    out[..n],
                    expected[..m],
                    "{gguf_name}: {text:?} (bos {bos}, eos {eos})"
                );
            }
        }
    }
}
