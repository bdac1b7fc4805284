//! The vocabulary of a GGUF output: a llama2.c tokenizer's pieces respelled as llama.cpp's
//! llama2.c converter respells them, with its token types.

use llama2_core::Tokenizer;

/// A vocabulary as GGUF stores it (`tokenizer.ggml.tokens`, `scores`, `token_type`).
#[derive(Debug, Clone, PartialEq)]
pub struct Vocabulary {
    /// The pieces, `▁` for a space.
    pub pieces: Vec<String>,
    /// Their scores.
    pub scores: Vec<f32>,
    /// Their llama.cpp token types ([`TokenType`] as i32).
    pub types: Vec<i32>,
}

/// llama.cpp's token types (`llama_token_type`), as its llama2.c converter assigns them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum TokenType {
    /// An ordinary piece.
    Normal = 1,
    /// `<unk>`, id 0.
    Unknown = 2,
    /// BOS and EOS (ids 1 and 2), and empty pieces.
    Control = 3,
    /// A byte-fallback piece `<0xHH>`.
    Byte = 6,
}

/// The ids llama2.c's vocabularies give `<unk>`, BOS and EOS.
pub(super) const UNKNOWN_ID: u32 = 0;
pub(super) const BOS_ID: u32 = 1;
pub(super) const EOS_ID: u32 = 2;

impl Vocabulary {
    /// The vocabulary of a llama2.c tokenizer, respelled as llama.cpp's llama2.c converter
    /// does: ids 0, 1 and 2 become `<unk>`, `<s>` and `</s>` (llama2.c spells BOS and EOS
    /// `"\n<s>\n"` and `"\n</s>\n"`), every space `▁`. Pieces must be UTF-8 (GGUF strings
    /// are).
    pub fn from_llama2c(tokenizer: &Tokenizer<'_>) -> Result<Vocabulary, String> {
        let n = tokenizer.vocab_size();
        let mut vocabulary = Vocabulary {
            pieces: Vec::with_capacity(n),
            scores: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
        };
        for id in 0..n as u32 {
            let bytes = tokenizer.piece(id).unwrap_or_default();
            let (piece, ty) = match id {
                UNKNOWN_ID => ("<unk>".to_string(), TokenType::Unknown),
                BOS_ID => ("<s>".to_string(), TokenType::Control),
                EOS_ID => ("</s>".to_string(), TokenType::Control),
                _ => {
                    let text = std::str::from_utf8(bytes).map_err(|_| {
                        format!("token {id} is not UTF-8 ({bytes:02x?}); GGUF pieces must be")
                    })?;
                    let ty = match text {
                        "" => TokenType::Control,
                        _ if is_byte_piece(text) => TokenType::Byte,
                        _ => TokenType::Normal,
                    };
                    (text.replace(' ', "\u{2581}"), ty)
                }
            };
            vocabulary.pieces.push(piece);
            vocabulary.scores.push(tokenizer.score(id).unwrap_or(0.0));
            vocabulary.types.push(ty as i32);
        }
        Ok(vocabulary)
    }

    /// A stand-in vocabulary of `size` pieces for models with random weights (benchmarks):
    /// `<unk>`, `<s>`, `</s>`, then pieces named by their id.
    pub fn placeholder(size: usize) -> Vocabulary {
        let pieces: Vec<String> = (0..size)
            .map(|id| match id as u32 {
                UNKNOWN_ID => "<unk>".to_string(),
                BOS_ID => "<s>".to_string(),
                EOS_ID => "</s>".to_string(),
                _ => format!("t{id}"),
            })
            .collect();
        let types = (0..size)
            .map(|id| match id as u32 {
                UNKNOWN_ID => TokenType::Unknown as i32,
                BOS_ID | EOS_ID => TokenType::Control as i32,
                _ => TokenType::Normal as i32,
            })
            .collect();
        Vocabulary {
            pieces,
            scores: vec![0.0; size],
            types,
        }
    }
}

/// `<0xHH>` with two uppercase hex digits: a byte-fallback piece.
fn is_byte_piece(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 6
        && b.starts_with(b"<0x")
        && b[5] == b'>'
        && b[3..5]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_pieces_are_two_uppercase_hex_digits() {
        for piece in ["<0x00>", "<0x0A>", "<0xFF>"] {
            assert!(is_byte_piece(piece), "{piece}");
        }
        for piece in ["<0x0a>", "<0x0>", "<0x100>", "0x41", "<0xGG>", "<s>", ""] {
            assert!(!is_byte_piece(piece), "{piece}");
        }
    }

    #[test]
    fn placeholder_has_llama_s_special_tokens() {
        let v = Vocabulary::placeholder(5);
        assert_eq!(v.pieces, ["<unk>", "<s>", "</s>", "t3", "t4"]);
        assert_eq!(v.types, [2, 3, 3, 1, 1]);
        assert_eq!(v.scores, [0.0; 5]);
    }
}
