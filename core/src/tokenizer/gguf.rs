//! The vocabulary of a GGUF file's `tokenizer.ggml.*` metadata (`model = "llama"`), read in
//! place: pieces are indexed by their offset in the token array's bytes, scores are read
//! from the score array's bytes by id.
//!
//! Everything comes from an untrusted file: every key's type and every array's length is
//! checked, and offsets are `u32`s relative to the token array (not the file), so a file
//! over 4 GiB works on any target as long as its vocabulary is under 4 GiB.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use super::piece::PieceText;
use crate::error::{Error, Result};
use crate::gguf::{Array, Gguf, GgufName, Value, ValueType};

/// The tokenizer model; only `"llama"` (sentencepiece-style BPE) is read.
const MODEL_KEY: &str = "tokenizer.ggml.model";
/// The pieces, an array of strings.
const TOKENS_KEY: &str = "tokenizer.ggml.tokens";
/// The merge scores, an array of `f32`.
const SCORES_KEY: &str = "tokenizer.ggml.scores";
/// The token types (1 normal, 2 unknown, 3 control, 6 byte, ...), an array of `i32`.
const TOKEN_TYPE_KEY: &str = "tokenizer.ggml.token_type";
/// The BOS id (default 1, as llama.cpp assumes for this model).
const BOS_KEY: &str = "tokenizer.ggml.bos_token_id";
/// The EOS id (default 2).
const EOS_KEY: &str = "tokenizer.ggml.eos_token_id";
/// Whether prompts start with BOS (default true).
const ADD_BOS_KEY: &str = "tokenizer.ggml.add_bos_token";

/// GGUF's token type of a byte-fallback piece `<0xHH>`.
const BYTE_TYPE: i32 = 6;

/// A GGUF vocabulary's arrays, borrowed from the file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Vocab<'a> {
    /// The token array's elements: for each piece a `u64` length, then its bytes.
    tokens: &'a [u8],
    /// The score array's elements, little-endian `f32`s.
    scores: &'a [u8],
    /// The token type array's elements, little-endian `i32`s, if the file has them.
    types: Option<&'a [u8]>,
    /// BOS and EOS, which llama2.c spells between newlines.
    pub(super) bos: u32,
    pub(super) eos: u32,
}

/// What [`read`] finds in the metadata.
#[derive(Debug)]
pub(super) struct Metadata<'a> {
    pub(super) vocab: Vocab<'a>,
    pub(super) vocab_size: usize,
    pub(super) add_bos: bool,
}

/// Reads and checks the tokenizer keys of `file` (not the pieces themselves: [`index`]).
pub(super) fn read<'a>(file: &Gguf<'a>) -> Result<Metadata<'a>> {
    let model = required(file, MODEL_KEY)?;
    let model = model
        .as_bytes()
        .ok_or(wrong_type(MODEL_KEY, ValueType::String, model))?;
    if model != b"llama" {
        let name = core::str::from_utf8(model).unwrap_or("(not UTF-8)");
        return Err(Error::GgufTokenizerUnsupported {
            model: GgufName::new(name),
        });
    }
    let tokens = array(file, TOKENS_KEY, ValueType::String)?;
    let vocab_size = tokens.len();
    let scores = array(file, SCORES_KEY, ValueType::F32)?;
    same_length(SCORES_KEY, scores, vocab_size)?;
    let types = match file.metadata(TOKEN_TYPE_KEY) {
        Some(_) => {
            let types = array(file, TOKEN_TYPE_KEY, ValueType::I32)?;
            same_length(TOKEN_TYPE_KEY, types, vocab_size)?;
            Some(types.element_bytes())
        }
        None => None,
    };
    let tokens = tokens.element_bytes();
    // Offsets into the token array are `u32`.
    if u32::try_from(tokens.len()).is_err() {
        return Err(Error::GgufTokenizerTooLarge {
            bytes: tokens.len(),
        });
    }
    let add_bos = match file.metadata(ADD_BOS_KEY) {
        Some(value) => value
            .as_bool()
            .ok_or(wrong_type(ADD_BOS_KEY, ValueType::Bool, value))?,
        None => true,
    };
    Ok(Metadata {
        vocab: Vocab {
            tokens,
            scores: scores.element_bytes(),
            types,
            bos: special_id(file, BOS_KEY, 1, vocab_size)?,
            eos: special_id(file, EOS_KEY, 2, vocab_size)?,
        },
        vocab_size,
        add_bos,
    })
}

/// Writes each piece's offset in the token array to `offsets` (one per piece) and returns
/// the length of the longest piece as llama2.c spells it.
pub(super) fn index(vocab: &Vocab<'_>, offsets: &mut [u32]) -> Result<usize> {
    let mut at = 0usize;
    let mut longest = 0;
    for (id, slot) in offsets.iter_mut().enumerate() {
        // `Gguf::parse` checked every string, so this cannot fail on a parsed file.
        let (piece, end) = string_at(vocab.tokens, at).ok_or(Error::GgufTruncated {
            what: "tokenizer piece",
            offset: at,
        })?;
        // `at < tokens.len() <= u32::MAX`, checked by `read`.
        *slot = at as u32;
        let wrapped = vocab.is_wrapped(id as u32);
        longest = longest.max(PieceText::sentencepiece(piece, wrapped).len());
        at = end;
    }
    Ok(longest)
}

impl<'a> Vocab<'a> {
    /// The stored bytes of token `id` (an id out of range, which callers never pass, gives an
    /// empty piece).
    pub(super) fn piece(&self, offsets: &[u32], id: u32) -> &'a [u8] {
        offsets
            .get(id as usize)
            .and_then(|&at| string_at(self.tokens, at as usize))
            .map_or(&[], |(piece, _)| piece)
    }

    /// The text of token `id` as llama2.c spells it.
    pub(super) fn text(&self, offsets: &[u32], id: u32) -> PieceText<'a> {
        PieceText::sentencepiece(self.piece(offsets, id), self.is_wrapped(id))
    }

    /// The score of token `id`, if it is in range.
    pub(super) fn score(&self, id: u32) -> Option<f32> {
        le_word(self.scores, id).map(f32::from_bits)
    }

    /// Whether token `id` is typed a byte token (true when the file has no types).
    pub(super) fn typed_byte(&self, id: u32) -> bool {
        self.types
            .is_none_or(|types| le_word(types, id) == Some(BYTE_TYPE as u32))
    }

    fn is_wrapped(&self, id: u32) -> bool {
        id == self.bos || id == self.eos
    }
}

/// The string element at byte `at` of a string array, and where the next one starts.
fn string_at(tokens: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let start = at.checked_add(8)?;
    let len = u64::from_le_bytes(tokens.get(at..start)?.try_into().ok()?);
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    Some((tokens.get(start..end)?, end))
}

/// The little-endian 4-byte word `index` of `bytes`.
fn le_word(bytes: &[u8], index: u32) -> Option<u32> {
    let at = (index as usize).checked_mul(4)?;
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

fn required<'a>(file: &Gguf<'a>, key: &'static str) -> Result<Value<'a>> {
    file.metadata(key)
        .ok_or(Error::GgufTokenizerKeyMissing { key })
}

fn wrong_type(key: &'static str, expected: ValueType, found: Value<'_>) -> Error {
    Error::GgufWrongType {
        key,
        expected,
        found: found.value_type(),
    }
}

/// The array at `key`, whose elements must be of type `elem`.
fn array<'a>(file: &Gguf<'a>, key: &'static str, elem: ValueType) -> Result<Array<'a>> {
    let value = required(file, key)?;
    let array = value
        .as_array()
        .ok_or(wrong_type(key, ValueType::Array, value))?;
    if array.elem_type() != elem {
        return Err(Error::GgufTokenizerElementType {
            key,
            expected: elem,
            found: array.elem_type(),
        });
    }
    Ok(array)
}

fn same_length(key: &'static str, array: Array<'_>, tokens: usize) -> Result<()> {
    if array.len() != tokens {
        return Err(Error::GgufTokenizerLengthMismatch {
            key,
            len: array.len(),
            tokens,
        });
    }
    Ok(())
}

/// The special token id at `key` (any integer type), `default` if absent, in the vocabulary.
fn special_id(file: &Gguf<'_>, key: &'static str, default: u32, vocab_size: usize) -> Result<u32> {
    let id = match file.metadata(key) {
        Some(value) => value
            .as_i128()
            .ok_or(wrong_type(key, ValueType::U32, value))?,
        None => default.into(),
    };
    u32::try_from(id)
        .ok()
        .filter(|&id| (id as usize) < vocab_size)
        .ok_or(Error::GgufTokenizerIdOutOfRange {
            key,
            id,
            vocab_size,
        })
}

#[cfg(test)]
mod tests {
    use std::format;
    use std::vec::Vec;

    use super::*;
    use crate::gguf::tests::{array, string, Builder, ARRAY, BOOL, F32, I32, STRING, U32};
    use crate::testutil::tokenizer_file;
    use crate::{prompt_buffer_len, Piece, Tokenizer};

    /// A vocabulary entry: piece as GGUF stores it, score, token type.
    type Entry = (Vec<u8>, f32, i32);

    /// A llama-style vocabulary: `<unk> <s> </s>`, the byte tokens, then `merges` (with `▁`
    /// for a space).
    fn llama_vocab(merges: &[(&str, f32)]) -> Vec<Entry> {
        let mut v: Vec<Entry> = vec![
            (b"<unk>".to_vec(), 0.0, 2),
            (b"<s>".to_vec(), 0.0, 3),
            (b"</s>".to_vec(), 0.0, 3),
        ];
        v.extend((0..=255u8).map(|b| (format!("<0x{b:02X}>").into_bytes(), 0.0, 6)));
        v.extend(merges.iter().map(|(p, s)| (p.as_bytes().to_vec(), *s, 1)));
        v
    }

    /// Pieces that merge, spaces as `▁`, and `<`, `s`, `>`, `<s` so that the text `<s>`
    /// could merge into BOS if BOS were spelled `<s>`.
    const MERGES: [(&str, f32); 14] = [
        ("▁", -1.0),
        ("a", -2.0),
        ("b", -3.0),
        ("ab", 5.0),
        ("▁ab", 6.0),
        ("é", -4.0),
        ("ba", 1.0),
        ("▁▁", 2.0),
        ("<", -5.0),
        ("s", -6.0),
        (">", -7.0),
        ("<s", 3.0),
        ("a▁", 0.5),
        ("\u{2581}b\u{2581}", 4.0),
    ];

    fn strings(pieces: impl Iterator<Item = Vec<u8>>) -> (u64, Vec<u8>) {
        let mut count = 0;
        let mut bytes = Vec::new();
        for piece in pieces {
            bytes.extend(string(&piece));
            count += 1;
        }
        (count, bytes)
    }

    /// A GGUF file with `vocab` under the llama tokenizer keys.
    fn with_vocab(builder: Builder, vocab: &[Entry]) -> Builder {
        let (count, tokens) = strings(vocab.iter().map(|e| e.0.clone()));
        let scores: Vec<u8> = vocab.iter().flat_map(|e| e.1.to_le_bytes()).collect();
        let types: Vec<u8> = vocab.iter().flat_map(|e| e.2.to_le_bytes()).collect();
        builder
            .kv(MODEL_KEY.as_bytes(), STRING, &string(b"llama"))
            .kv(TOKENS_KEY.as_bytes(), ARRAY, &array(STRING, count, &tokens))
            .kv(SCORES_KEY.as_bytes(), ARRAY, &array(F32, count, &scores))
            .kv(TOKEN_TYPE_KEY.as_bytes(), ARRAY, &array(I32, count, &types))
    }

    fn gguf_file(vocab: &[Entry]) -> Vec<u8> {
        with_vocab(Builder::new(), vocab).build()
    }

    fn parse(file: &[u8]) -> Result<()> {
        let gguf = Gguf::parse(file).expect("test files are valid GGUF");
        let mut index = std::vec![0; 4096];
        Tokenizer::from_gguf(&gguf, &mut index).map(|_| ())
    }

    /// The vocabulary written back as a llama2.c `tokenizer.bin`, from its texts.
    fn export(t: &Tokenizer<'_>) -> Vec<u8> {
        let texts: Vec<(f32, Vec<u8>)> = (0..t.vocab_size() as u32)
            .map(|id| {
                (
                    t.score(id).unwrap(),
                    t.piece_text(id).unwrap().bytes().collect(),
                )
            })
            .collect();
        let entries: Vec<(f32, &[u8])> = texts.iter().map(|(s, p)| (*s, &p[..])).collect();
        tokenizer_file(t.max_token_length() as u32, &entries)
    }

    fn encode(t: &Tokenizer<'_>, text: &[u8], bos: bool, eos: bool) -> Result<Vec<u32>> {
        let mut out = std::vec![0; prompt_buffer_len(text.len()).unwrap()];
        let n = t.encode(text, bos, eos, &mut out)?;
        Ok(out[..n].to_vec())
    }

    /// The text `decode` gives, and whether it came as a raw byte.
    fn decoded(t: &Tokenizer<'_>, prev: u32, id: u32) -> (Vec<u8>, bool) {
        match t.decode(prev, id).unwrap() {
            Piece::Text(bytes) => (bytes.to_vec(), false),
            Piece::Byte(b) => (std::vec![b], true),
            Piece::Spelled(text) => (text.bytes().collect(), false),
        }
    }

    #[test]
    fn encodes_and_decodes_exactly_like_its_tokenizer_bin_export() {
        let file = gguf_file(&llama_vocab(&MERGES));
        let gguf = Gguf::parse(&file).unwrap();
        let vocab_size = 259 + MERGES.len();
        let mut index = std::vec![0; Tokenizer::index_len(vocab_size).unwrap()];
        let t = Tokenizer::from_gguf(&gguf, &mut index).unwrap();
        assert_eq!(
            (t.vocab_size(), t.bos(), t.eos(), t.add_bos()),
            (vocab_size, 1, 2, true)
        );
        assert!(t.is_gguf());
        let bin = export(&t);
        let mut bin_index = std::vec![0; Tokenizer::index_len(vocab_size).unwrap()];
        let b = Tokenizer::new(&bin, vocab_size, &mut bin_index).unwrap();
        assert_eq!(
            t.piece_text(1).unwrap().bytes().collect::<Vec<_>>(),
            b"\n<s>\n"
        );
        assert_eq!(t.piece(1), Some(&b"<s>"[..]));
        assert_eq!((t.max_piece_len(), b.max_piece_len()), (6, 6)); // "\n</s>\n", "<0x00>"
        let texts: [&[u8]; 14] = [
            b"ab ab",
            b"  ab  ba",
            b"<s> and </s>",
            b"a b a",
            "\u{2581}ab \u{2581}".as_bytes(),
            "é ü 🦀".as_bytes(),
            b"",
            b" ",
            b"\n<s>\n",
            b"<s",
            b"aaaa bbbb",
            b"\xff\x80 a",
            b"b b b",
            b"<0x41>",
        ];
        for text in texts {
            for (bos, eos) in [(true, false), (false, true), (true, true)] {
                let got = encode(&t, text, bos, eos).unwrap();
                assert_eq!(got, encode(&b, text, bos, eos).unwrap(), "{text:?}");
            }
        }
        // `<s>` stays three symbols: BOS is spelled `\n<s>\n`, as in the export.
        assert_eq!(encode(&t, b"<s>", false, false).unwrap(), [259, 270, 269]);
        for id in 0..vocab_size as u32 {
            for prev in [0, 1, 2, 260] {
                assert_eq!(decoded(&t, prev, id), decoded(&b, prev, id), "{prev} {id}");
            }
        }
        // "▁ab": its text is "ab" after BOS, " ab" (respelled) after anything else.
        assert_eq!(t.decode(1, 263), Ok(Piece::Text(b"ab")));
        assert!(matches!(t.decode(0, 263), Ok(Piece::Spelled(_))));
        assert_eq!(t.decode(0, 262), Ok(Piece::Text(b"ab")));
    }

    #[test]
    fn special_ids_and_add_bos_come_from_the_file() {
        let file = with_vocab(Builder::new(), &llama_vocab(&MERGES))
            .kv(BOS_KEY.as_bytes(), U32, &5u32.to_le_bytes())
            .kv(EOS_KEY.as_bytes(), I32, &6i32.to_le_bytes())
            .kv(ADD_BOS_KEY.as_bytes(), BOOL, &[0])
            .build();
        let gguf = Gguf::parse(&file).unwrap();
        let mut index = std::vec![0; 1024];
        let t = Tokenizer::from_gguf(&gguf, &mut index).unwrap();
        assert_eq!((t.bos(), t.eos(), t.add_bos()), (5, 6, false));
        assert_eq!(encode(&t, b"ab", true, true).unwrap(), [5, 263, 6]);
        // Only the file's BOS strips a leading space; its BOS and EOS are the wrapped ones.
        assert_eq!(t.decode(5, 263), Ok(Piece::Text(b"ab")));
        assert!(matches!(t.decode(1, 263), Ok(Piece::Spelled(_))));
        assert_eq!(
            t.piece_text(6).unwrap().bytes().collect::<Vec<_>>(),
            b"\n<0x03>\n"
        );
        assert_eq!(t.piece_text(1).unwrap().bytes().collect::<Vec<_>>(), b"<s>");
    }

    #[test]
    fn byte_tokens_are_found_wherever_the_file_puts_them() {
        // The byte tokens after the merges: ids 3..=258 are not `<0x00>`..`<0xFF>`.
        let mut vocab = llama_vocab(&MERGES);
        let bytes: Vec<Entry> = vocab.drain(3..259).collect();
        vocab.extend(bytes);
        let file = gguf_file(&vocab);
        let gguf = Gguf::parse(&file).unwrap();
        let mut index = std::vec![0; 1024];
        let t = Tokenizer::from_gguf(&gguf, &mut index).unwrap();
        let first_byte = 3 + MERGES.len() as u32;
        // ü is C3 BC.
        assert_eq!(
            encode(&t, "ü".as_bytes(), false, false).unwrap(),
            [3, first_byte + 0xC3, first_byte + 0xBC]
        );
        assert_eq!(t.decode(0, first_byte + 0x41), Ok(Piece::Byte(0x41)));

        // Without the byte tokens, byte fallback says which byte it misses.
        let file = gguf_file(&vocab[..3 + MERGES.len()]);
        let gguf = Gguf::parse(&file).unwrap();
        let t = Tokenizer::from_gguf(&gguf, &mut index).unwrap();
        assert_eq!(
            encode(&t, "ü".as_bytes(), false, false),
            Err(Error::NoByteToken { byte: 0xC3 })
        );

        // Byte pieces in place but typed otherwise: looked up, so found all the same.
        let mut vocab = llama_vocab(&MERGES);
        vocab[3 + 0x41].2 = 1;
        let file = gguf_file(&vocab);
        let gguf = Gguf::parse(&file).unwrap();
        let t = Tokenizer::from_gguf(&gguf, &mut index).unwrap();
        assert_eq!(
            encode(&t, "ü".as_bytes(), false, false).unwrap(),
            [259, 0xC6, 0xBF]
        );
    }

    #[test]
    fn messages_name_the_key_and_what_is_wrong() {
        use std::string::ToString;
        let cases: [(Error, &[&str]); 7] = [
            (
                Error::GgufTokenizerUnsupported {
                    model: GgufName::new("gpt2"),
                },
                &["\"gpt2\"", "\"llama\"", "not supported"],
            ),
            (
                Error::GgufTokenizerKeyMissing { key: SCORES_KEY },
                &[SCORES_KEY, "no "],
            ),
            (
                Error::GgufTokenizerElementType {
                    key: TOKENS_KEY,
                    expected: ValueType::String,
                    found: ValueType::F32,
                },
                &[TOKENS_KEY, "array of f32", "array of string"],
            ),
            (
                Error::GgufTokenizerLengthMismatch {
                    key: SCORES_KEY,
                    len: 3,
                    tokens: 4,
                },
                &[SCORES_KEY, "3 entries", "4 tokens"],
            ),
            (
                Error::GgufTokenizerIdOutOfRange {
                    key: BOS_KEY,
                    id: -1,
                    vocab_size: 4,
                },
                &[BOS_KEY, "-1", "4 tokens"],
            ),
            (
                Error::GgufTokenizerTooLarge {
                    bytes: u32::MAX as usize,
                },
                &["4294967295 bytes", "4 GiB"],
            ),
            (Error::NoByteToken { byte: 0xF0 }, &["<0xF0>"]),
        ];
        for (error, parts) in cases {
            let message = error.to_string();
            for part in parts {
                assert!(message.contains(part), "{message:?} lacks {part:?}");
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let vocab = llama_vocab(&MERGES);
        let n = vocab.len();
        let (count, tokens) = strings(vocab.iter().map(|e| e.0.clone()));
        let f32s = |k: usize| -> Vec<u8> { (0..k).flat_map(|_| 0f32.to_le_bytes()).collect() };
        let only = |entries: &[(&str, u32, Vec<u8>)]| {
            let mut b = Builder::new();
            for (key, ty, value) in entries {
                b = b.kv(key.as_bytes(), *ty, value);
            }
            b.build()
        };
        let model = (MODEL_KEY, STRING, string(b"llama"));
        let toks = (TOKENS_KEY, ARRAY, array(STRING, count, &tokens));
        let scores = (SCORES_KEY, ARRAY, array(F32, count, &f32s(n)));
        let cases: Vec<(Vec<u8>, Error)> = std::vec![
            (only(&[]), Error::GgufTokenizerKeyMissing { key: MODEL_KEY }),
            (
                only(&[(MODEL_KEY, U32, 1u32.to_le_bytes().to_vec())]),
                Error::GgufWrongType {
                    key: MODEL_KEY,
                    expected: ValueType::String,
                    found: ValueType::U32
                }
            ),
            (
                only(&[
                    (MODEL_KEY, STRING, string(b"gpt2")),
                    toks.clone(),
                    scores.clone()
                ]),
                Error::GgufTokenizerUnsupported {
                    model: GgufName::new("gpt2")
                }
            ),
            (
                only(&[model.clone(), scores.clone()]),
                Error::GgufTokenizerKeyMissing { key: TOKENS_KEY }
            ),
            (
                only(&[
                    model.clone(),
                    (TOKENS_KEY, STRING, string(b"a")),
                    scores.clone()
                ]),
                Error::GgufWrongType {
                    key: TOKENS_KEY,
                    expected: ValueType::Array,
                    found: ValueType::String
                }
            ),
            (
                only(&[model.clone(), (TOKENS_KEY, ARRAY, array(F32, 1, &f32s(1)))]),
                Error::GgufTokenizerElementType {
                    key: TOKENS_KEY,
                    expected: ValueType::String,
                    found: ValueType::F32
                }
            ),
            (
                only(&[model.clone(), toks.clone()]),
                Error::GgufTokenizerKeyMissing { key: SCORES_KEY }
            ),
            (
                only(&[
                    model.clone(),
                    toks.clone(),
                    (SCORES_KEY, ARRAY, array(I32, count, &f32s(n)))
                ]),
                Error::GgufTokenizerElementType {
                    key: SCORES_KEY,
                    expected: ValueType::F32,
                    found: ValueType::I32
                }
            ),
            (
                only(&[
                    model.clone(),
                    toks.clone(),
                    (SCORES_KEY, ARRAY, array(F32, 5, &f32s(5)))
                ]),
                Error::GgufTokenizerLengthMismatch {
                    key: SCORES_KEY,
                    len: 5,
                    tokens: n
                }
            ),
            (
                only(&[
                    model.clone(),
                    toks.clone(),
                    scores.clone(),
                    (TOKEN_TYPE_KEY, ARRAY, array(I32, 2, &f32s(2)))
                ]),
                Error::GgufTokenizerLengthMismatch {
                    key: TOKEN_TYPE_KEY,
                    len: 2,
                    tokens: n
                }
            ),
            (
                only(&[
                    model.clone(),
                    toks.clone(),
                    scores.clone(),
                    (TOKEN_TYPE_KEY, ARRAY, array(F32, count, &f32s(n)))
                ]),
                Error::GgufTokenizerElementType {
                    key: TOKEN_TYPE_KEY,
                    expected: ValueType::I32,
                    found: ValueType::F32
                }
            ),
            (
                only(&[
                    model.clone(),
                    toks.clone(),
                    scores.clone(),
                    (BOS_KEY, U32, (n as u32).to_le_bytes().to_vec())
                ]),
                Error::GgufTokenizerIdOutOfRange {
                    key: BOS_KEY,
                    id: n as i128,
                    vocab_size: n
                }
            ),
            (
                only(&[
                    model.clone(),
                    toks.clone(),
                    scores.clone(),
                    (EOS_KEY, I32, (-1i32).to_le_bytes().to_vec())
                ]),
                Error::GgufTokenizerIdOutOfRange {
                    key: EOS_KEY,
                    id: -1,
                    vocab_size: n
                }
            ),
            (
                only(&[
                    model.clone(),
                    toks.clone(),
                    scores.clone(),
                    (EOS_KEY, F32, 2f32.to_le_bytes().to_vec())
                ]),
                Error::GgufWrongType {
                    key: EOS_KEY,
                    expected: ValueType::U32,
                    found: ValueType::F32
                }
            ),
            (
                only(&[
                    model.clone(),
                    toks.clone(),
                    scores.clone(),
                    (ADD_BOS_KEY, U32, 1u32.to_le_bytes().to_vec())
                ]),
                Error::GgufWrongType {
                    key: ADD_BOS_KEY,
                    expected: ValueType::Bool,
                    found: ValueType::U32
                }
            ),
            // One token: the default BOS (1) is outside it.
            (
                only(&[
                    model.clone(),
                    (TOKENS_KEY, ARRAY, array(STRING, 1, &string(b"a"))),
                    (SCORES_KEY, ARRAY, array(F32, 1, &f32s(1)))
                ]),
                Error::GgufTokenizerIdOutOfRange {
                    key: BOS_KEY,
                    id: 1,
                    vocab_size: 1
                }
            ),
        ];
        for (file, expected) in cases {
            assert_eq!(parse(&file), Err(expected));
        }
        assert_eq!(parse(&gguf_file(&vocab)), Ok(()));

        // The index buffer is checked as for a tokenizer.bin.
        let file = gguf_file(&vocab);
        let gguf = Gguf::parse(&file).unwrap();
        let mut index = std::vec![0; 2 * n - 1];
        assert_eq!(
            Tokenizer::from_gguf(&gguf, &mut index).map(|_| ()),
            Err(Error::BufferTooSmall {
                buffer: crate::Buffer::TokenizerIndex,
                needed: 2 * n,
                actual: 2 * n - 1
            })
        );
    }
}
