//! The one error type of the core crate: every way a model, a tokenizer, a buffer or a
//! setting can be wrong, each named so that a caller can print a useful message.

use core::fmt;

use crate::gguf::{GgmlType, GgufName, ValueType};

/// Result alias used throughout the core crate.
pub type Result<T> = core::result::Result<T, Error>;

/// Which caller-provided buffer was too small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    /// The `f32` buffer that holds activations and the KV cache ([`crate::State`]).
    State,
    /// The `u32` buffer that holds the tokenizer's lookup index ([`crate::Tokenizer`]).
    TokenizerIndex,
    /// The buffer of [`crate::ProbIndex`] the top-p sampler sorts in ([`crate::Sampler`]).
    Sampler,
    /// The `u32` buffer that receives the tokens of an encoded prompt.
    Tokens,
    /// The `f32` buffer of a [`crate::Batch`] (or its capacity in tokens).
    Batch,
    /// A byte buffer that receives rendered text (a chat turn).
    Text,
    /// The table of per-layer weight views a GGUF model needs ([`crate::Model::parse`]).
    LayerTable,
    /// A byte buffer that receives encoded ggml blocks ([`crate::quant::encode`]).
    Blocks,
}

/// Everything that can go wrong in the core crate.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The model file is shorter than its header.
    TruncatedHeader {
        /// Bytes the header takes.
        needed: usize,
        /// Bytes in the file.
        actual: usize,
    },
    /// A versioned model file (`ak42` magic) has a version this crate does not read.
    UnsupportedVersion(i32),
    /// A header field that must be positive is zero or negative.
    NonPositiveField {
        /// The field's name in llama2.c's `Config`.
        field: &'static str,
        /// Its value in the file.
        value: i64,
    },
    /// `dim` is not a multiple of `n_heads`.
    HeadsDoNotDivideDim {
        /// The model width.
        dim: usize,
        /// The number of query heads.
        n_heads: usize,
    },
    /// `n_heads` is not a multiple of `n_kv_heads`.
    KvHeadsDoNotDivideHeads {
        /// The number of query heads.
        n_heads: usize,
        /// The number of key/value heads.
        n_kv_heads: usize,
    },
    /// RoPE rotates pairs of values, so the head size must be even.
    OddHeadSize {
        /// `dim / n_heads`.
        head_size: usize,
    },
    /// A size computed from the header does not fit in `usize` on this target.
    SizeOverflow,
    /// A config field is too large for the i32 a model file stores it in (writing a header).
    FieldTooLarge {
        /// The field's name, as in the header.
        field: &'static str,
        /// Its value.
        value: usize,
    },
    /// The file length differs from what the header says the weights need.
    FileSizeMismatch {
        /// Bytes the header describes.
        expected: usize,
        /// Bytes in the file.
        actual: usize,
    },
    /// The Q8 group size does not divide every matmul's input length.
    GroupSizeMismatch {
        /// Values per scale, from the header.
        group_size: usize,
        /// The model width.
        dim: usize,
        /// The feed-forward width.
        hidden_dim: usize,
    },
    /// The weight bytes do not start at a 4-byte aligned address, so they cannot be viewed
    /// as `f32` without a copy.
    Misaligned,
    /// The tokenizer file ends before the entry of token `token`.
    TokenizerTruncated {
        /// The id of the missing entry.
        token: usize,
    },
    /// A tokenizer entry has a negative length.
    TokenizerNegativeLength {
        /// The entry's token id.
        token: usize,
        /// Its length field.
        len: i32,
    },
    /// A tokenizer entry is longer than the file's `max_token_length`.
    TokenLongerThanMax {
        /// The entry's token id.
        token: usize,
        /// Its length in bytes.
        len: usize,
        /// The file's `max_token_length`.
        max: usize,
    },
    /// The tokenizer file has bytes left after the model's `vocab_size` entries: it belongs
    /// to a model with a larger vocabulary.
    TokenizerTrailingBytes {
        /// Entries read, the model's vocabulary size.
        vocab_size: usize,
        /// Bytes left after them.
        extra: usize,
    },
    /// The byte-fallback encoding needs the 256 byte tokens at ids 3..=258.
    VocabularyTooSmall {
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A caller-provided buffer is too small.
    BufferTooSmall {
        /// Which buffer.
        buffer: Buffer,
        /// Elements it needs.
        needed: usize,
        /// Elements it has.
        actual: usize,
    },
    /// The requested context is zero or longer than the model's `seq_len`.
    InvalidContext {
        /// Positions asked for.
        requested: usize,
        /// The model's longest context.
        seq_len: usize,
    },
    /// The tokenizer's vocabulary differs from the model's.
    VocabularyMismatch {
        /// The model's vocabulary size.
        model: usize,
        /// The tokenizer's.
        tokenizer: usize,
    },
    /// The prompt encodes to more tokens than the context holds.
    PromptTooLong {
        /// The token count, or, for a prompt refused before encoding because even its
        /// longest possible tokens could not fit, the least it could be.
        tokens: usize,
        /// Positions available.
        context: usize,
    },
    /// The state was sized for a different model config.
    StateMismatch,
    /// A parallel run's per-sequence slices differ in length (or there are no sequences).
    SequenceCount {
        /// What has the wrong count: `"samplers"`, `"outputs"` or `"sequences"`.
        what: &'static str,
        /// How many there should be (the sequences, or at least 1).
        expected: usize,
        /// How many there are.
        actual: usize,
    },
    /// The states of a parallel run's sequences use different kernels or window settings,
    /// which would make their texts differ from single runs.
    SequencesDiffer,
    /// A token id is not below the vocabulary size.
    TokenOutOfRange {
        /// The token id given.
        token: u32,
        /// The model's vocabulary size.
        vocab_size: usize,
    },
    /// A position is not below the context length of the state.
    PositionOutOfRange {
        /// The position given.
        pos: usize,
        /// Positions the state holds.
        context: usize,
    },
    /// The temperature is negative or not a number.
    InvalidTemperature(f32),
    /// The top-p value is outside `[0, 1]` or not a number.
    InvalidTopP(f32),
    // GGUF container errors (`gguf/`). Byte offsets count from the start of the file;
    // tensor offsets from the start of the data section.
    /// The GGUF file ends inside `what`, which started at byte `offset`.
    GgufTruncated {
        /// What was being read (a key, a value, a tensor info, ...).
        what: &'static str,
        /// Where it started.
        offset: usize,
    },
    /// The file does not start with `GGUF`.
    GgufBadMagic {
        /// Its first four bytes.
        found: [u8; 4],
    },
    /// A GGUF version other than 2 or 3 (1 used 32-bit counts; a byte-swapped 2 or 3 is a
    /// big-endian file).
    GgufUnsupportedVersion(u32),
    /// The header declares more tensors or metadata entries than
    /// [`crate::gguf::MAX_TENSORS`] or [`crate::gguf::MAX_METADATA`].
    GgufTooManyEntries {
        /// "tensors" or "metadata entries".
        what: &'static str,
        /// The count the header declares.
        count: u64,
        /// The most this crate reads.
        max: usize,
    },
    /// A metadata value type id GGUF does not define.
    GgufUnknownValueType {
        /// The type id.
        type_id: u32,
        /// Where it is.
        offset: usize,
    },
    /// A metadata array whose elements are arrays (not supported, as in llama.cpp).
    GgufNestedArray {
        /// Where the inner array's type is.
        offset: usize,
    },
    /// A boolean byte other than 0 or 1.
    GgufInvalidBool {
        /// The byte.
        value: u8,
        /// Where it is.
        offset: usize,
    },
    /// A metadata key or tensor name that is not UTF-8.
    GgufInvalidUtf8 {
        /// "key" or "tensor name".
        what: &'static str,
        /// Where the string starts.
        offset: usize,
    },
    /// A metadata key that appears twice.
    GgufDuplicateKey {
        /// The key.
        key: GgufName,
    },
    /// A metadata value of the wrong type for its key.
    GgufWrongType {
        /// The key.
        key: &'static str,
        /// The type the key must have.
        expected: ValueType,
        /// The type the file gives it.
        found: ValueType,
    },
    /// `general.alignment` is 0 or not a power of two.
    GgufBadAlignment {
        /// The value.
        value: u32,
    },
    /// A tensor with more than four dimensions.
    GgufTooManyDims {
        /// The tensor.
        tensor: GgufName,
        /// Its declared dimension count.
        n_dims: u32,
    },
    /// A tensor type id ggml does not define.
    GgufUnknownType {
        /// The tensor.
        tensor: GgufName,
        /// The type id.
        id: u32,
    },
    /// A tensor type ggml defines but this crate does not lay out (IQ*, TQ*, MXFP4).
    GgufUnsupportedType {
        /// The tensor.
        tensor: GgufName,
        /// Its type.
        ggml_type: GgmlType,
    },
    /// A tensor's dimensions, element count or byte size overflow `usize` on this target.
    GgufSizeOverflow {
        /// The tensor.
        tensor: GgufName,
    },
    /// A tensor's rows (its first dimension) are not a whole number of its type's blocks.
    GgufShapeNotBlockMultiple {
        /// The tensor.
        tensor: GgufName,
        /// Its type.
        ggml_type: GgmlType,
        /// Its first dimension.
        row: usize,
    },
    /// A tensor's data offset is not a multiple of the file's alignment.
    GgufMisaligned {
        /// The tensor.
        tensor: GgufName,
        /// Its offset in the data section.
        offset: u64,
        /// The file's alignment.
        alignment: usize,
    },
    /// A tensor's bytes run past the end of the data section.
    GgufTensorOutOfBounds {
        /// The tensor.
        tensor: GgufName,
        /// Its offset in the data section.
        offset: u64,
        /// Its size in bytes.
        size: usize,
        /// The data section's length.
        data_len: usize,
    },
    /// Two tensors with the same name.
    GgufDuplicateTensor {
        /// The name.
        name: GgufName,
    },
    /// Two tensors whose bytes overlap.
    GgufTensorsOverlap {
        /// The one that comes first in the file's tensor infos.
        first: GgufName,
        /// The other.
        second: GgufName,
    },
    /// A llama2.c header or layout was asked for with [`crate::Format::Gguf`].
    NotLlama2cFormat,
    // GGUF model errors (`gguf_llama.rs`): a valid container that is not a llama model this
    // engine runs.
    /// A metadata key the llama architecture needs is missing.
    GgufMissingKey {
        /// The key.
        key: &'static str,
    },
    /// `general.architecture` names another architecture than `llama`.
    GgufArchitecture {
        /// The architecture the file names.
        found: GgufName,
    },
    /// A hyperparameter is zero or does not fit this target's `usize`.
    GgufKeyOutOfRange {
        /// The key.
        key: &'static str,
        /// Its value.
        value: u64,
    },
    /// A floating-point hyperparameter is negative, infinite or not a number.
    GgufFloatOutOfRange {
        /// The key.
        key: &'static str,
        /// Its value.
        value: f32,
    },
    /// `rope.dimension_count` differs from the head size: partial rotary embeddings are
    /// not supported.
    GgufPartialRotary {
        /// The rotary dimensions the file gives.
        rope_dims: usize,
        /// The head size (`embedding_length / head_count`).
        head_size: usize,
    },
    /// The file uses a feature of the llama family this engine does not implement (RoPE
    /// scaling, mixture of experts).
    GgufUnsupportedFeature {
        /// The metadata key that asks for it.
        key: &'static str,
    },
    /// A tensor that is not part of the llama architecture as this engine runs it (a bias,
    /// RoPE frequencies, experts, a layer past `block_count`).
    GgufUnknownTensor {
        /// The tensor.
        tensor: GgufName,
    },
    /// A tensor the llama architecture needs is missing.
    GgufMissingTensor {
        /// The tensor.
        tensor: GgufName,
    },
    /// A tensor's shape differs from what the hyperparameters say.
    GgufShapeMismatch {
        /// The tensor.
        tensor: GgufName,
        /// The expected `[cols, rows]` (ggml order; `rows` is 1 for a vector).
        expected: [usize; 2],
        /// Its dimensions, padded with 1s.
        found: [usize; 4],
    },
    /// A tensor of a type the engine cannot compute with there: a norm that is not F32, or a
    /// matrix of a type outside [`crate::quant::is_weight_type`].
    GgufWeightType {
        /// The tensor.
        tensor: GgufName,
        /// Its type.
        ggml_type: GgmlType,
    },
    // Tokenizer from GGUF metadata (`tokenizer/gguf.rs`); mistyped keys are
    // `GgufWrongType`.
    /// A `tokenizer.ggml.*` key the vocabulary needs is not in the GGUF file.
    GgufTokenizerKeyMissing {
        /// The key.
        key: &'static str,
    },
    /// `tokenizer.ggml.model` names a tokenizer other than `llama` (sentencepiece BPE).
    GgufTokenizerUnsupported {
        /// The model the file names (such as `gpt2`).
        model: GgufName,
    },
    /// A tokenizer array whose elements are of the wrong type.
    GgufTokenizerElementType {
        /// The array's key.
        key: &'static str,
        /// The element type it must have.
        expected: ValueType,
        /// The element type the file gives it.
        found: ValueType,
    },
    /// A tokenizer array (scores, token types) with another length than the token array.
    GgufTokenizerLengthMismatch {
        /// The array's key.
        key: &'static str,
        /// Its length.
        len: usize,
        /// The number of tokens.
        tokens: usize,
    },
    /// A special token id (BOS, EOS) outside the vocabulary (an absent id counts as its
    /// default, 1 for BOS and 2 for EOS).
    GgufTokenizerIdOutOfRange {
        /// The id's key.
        key: &'static str,
        /// The id, as the file gives it (any integer type).
        id: i128,
        /// The number of tokens.
        vocab_size: usize,
    },
    /// The token array is larger than the 4 GiB its `u32` offsets can index.
    GgufTokenizerTooLarge {
        /// Its size in bytes.
        bytes: usize,
    },
    /// Byte fallback needs a token for `byte` and the vocabulary has no `<0xHH>` piece.
    NoByteToken {
        /// The byte.
        byte: u8,
    },
    /// A GGUF writer was given more or fewer bytes for a tensor than its shape and type
    /// take ([`crate::gguf::write::GgufWriter`]).
    GgufTensorDataMismatch {
        /// The tensor (the last one, for bytes past the end of the data).
        tensor: GgufName,
        /// Bytes it takes (0: bytes past the last tensor).
        expected: usize,
        /// Bytes given.
        given: usize,
    },
    /// [`crate::quant::encode::quantize`] does not encode this type.
    QuantizeUnsupportedType {
        /// The type asked for.
        ggml_type: GgmlType,
    },
    /// Values to encode that do not fill whole blocks of the type.
    QuantizeNotWholeBlocks {
        /// The type asked for.
        ggml_type: GgmlType,
        /// The number of values given.
        values: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::TruncatedHeader { needed, actual } => write!(
                f,
                "file is {actual} bytes, shorter than its {needed}-byte header"
            ),
            Error::UnsupportedVersion(v) => write!(
                f,
                "unsupported model file version {v} (this build reads versions 0, 1 and 2)"
            ),
            Error::NonPositiveField { field, value } => {
                write!(f, "header field {field} is {value}; it must be positive")
            }
            Error::HeadsDoNotDivideDim { dim, n_heads } => {
                write!(f, "dim {dim} is not a multiple of n_heads {n_heads}")
            }
            Error::KvHeadsDoNotDivideHeads {
                n_heads,
                n_kv_heads,
            } => {
                write!(
                    f,
                    "n_heads {n_heads} is not a multiple of n_kv_heads {n_kv_heads}"
                )
            }
            Error::OddHeadSize { head_size } => {
                write!(
                    f,
                    "head size {head_size} is odd; RoPE needs an even head size"
                )
            }
            Error::SizeOverflow => {
                write!(
                    f,
                    "the sizes in the header overflow this target's address space"
                )
            }
            Error::FieldTooLarge { field, value } => write!(
                f,
                "{field} {value} does not fit the model file's i32 field (at most {})",
                i32::MAX
            ),
            Error::FileSizeMismatch { expected, actual } => write!(
                f,
                "file is {actual} bytes but its header describes {expected} bytes"
            ),
            Error::GroupSizeMismatch {
                group_size,
                dim,
                hidden_dim,
            } => write!(
                f,
                "Q8 group size {group_size} does not divide both dim {dim} and hidden_dim \
                 {hidden_dim}; requantize the fp32 model with `llama2 quantize IN OUT \
                 --group-size N` where N divides both"
            ),
            Error::Misaligned => write!(f, "weight bytes are not 4-byte aligned"),
            Error::TokenizerTruncated { token } => {
                write!(f, "tokenizer ends before the entry of token {token}")
            }
            Error::TokenizerNegativeLength { token, len } => {
                write!(f, "tokenizer entry {token} has negative length {len}")
            }
            Error::TokenLongerThanMax { token, len, max } => write!(
                f,
                "tokenizer entry {token} is {len} bytes, longer than max_token_length {max}"
            ),
            Error::TokenizerTrailingBytes { vocab_size, extra } => write!(
                f,
                "tokenizer has {extra} bytes after the model's {vocab_size} tokens; \
                 it belongs to a model with a larger vocabulary"
            ),
            Error::VocabularyTooSmall { vocab_size } => write!(
                f,
                "vocabulary of {vocab_size} tokens is too small for byte fallback (needs 259)"
            ),
            Error::BufferTooSmall {
                buffer,
                needed,
                actual,
            } => write!(
                f,
                "{buffer:?} buffer holds {actual} elements but {needed} are needed"
            ),
            Error::InvalidContext { requested, seq_len } => write!(
                f,
                "context length {requested} must be between 1 and the model's seq_len {seq_len}"
            ),
            Error::VocabularyMismatch { model, tokenizer } => write!(
                f,
                "the tokenizer has {tokenizer} tokens but the model's vocabulary has {model}"
            ),
            Error::PromptTooLong { tokens, context } => write!(
                f,
                "the prompt is {tokens} tokens, more than the context of {context}"
            ),
            Error::StateMismatch => write!(f, "the state was sized for a different model"),
            Error::SequenceCount {
                what,
                expected,
                actual,
            } => write!(f, "{actual} {what} given but {expected} are needed"),
            Error::SequencesDiffer => write!(
                f,
                "the sequences' states differ in kernels or sliding window"
            ),
            Error::TokenOutOfRange { token, vocab_size } => write!(
                f,
                "token id {token} is out of range for a vocabulary of {vocab_size}"
            ),
            Error::PositionOutOfRange { pos, context } => write!(
                f,
                "position {pos} is outside the context of {context} positions"
            ),
            Error::InvalidTemperature(t) => {
                write!(f, "temperature {t} is invalid; it must be 0 or more")
            }
            Error::InvalidTopP(p) => write!(f, "top-p {p} is invalid; it must be within [0, 1]"),
            Error::GgufTruncated { what, offset } => write!(
                f,
                "GGUF file is truncated: it ends inside the {what} that starts at byte {offset}"
            ),
            Error::GgufBadMagic { found } => write!(
                f,
                "not a GGUF file: it starts with {found:02x?}, not \"GGUF\""
            ),
            Error::GgufUnsupportedVersion(1) => write!(
                f,
                "GGUF version 1 (32-bit counts) is obsolete and not supported; convert the \
                 model again with a current llama.cpp (this build reads versions 2 and 3)"
            ),
            Error::GgufUnsupportedVersion(v) if matches!(v.swap_bytes(), 2 | 3) => write!(
                f,
                "big-endian GGUF file (version {}); only little-endian files are supported",
                v.swap_bytes()
            ),
            Error::GgufUnsupportedVersion(v) => write!(
                f,
                "unsupported GGUF version {v} (this build reads versions 2 and 3)"
            ),
            Error::GgufTooManyEntries { what, count, max } => write!(
                f,
                "GGUF header declares {count} {what}; this reader accepts at most {max}"
            ),
            Error::GgufUnknownValueType { type_id, offset } => write!(
                f,
                "unknown GGUF metadata value type {type_id} at byte {offset}"
            ),
            Error::GgufNestedArray { offset } => write!(
                f,
                "GGUF metadata array of arrays at byte {offset}; nested arrays are not supported"
            ),
            Error::GgufInvalidBool { value, offset } => write!(
                f,
                "GGUF boolean at byte {offset} is {value}; it must be 0 or 1"
            ),
            Error::GgufInvalidUtf8 { what, offset } => {
                write!(f, "GGUF {what} at byte {offset} is not valid UTF-8")
            }
            Error::GgufDuplicateKey { key } => {
                write!(f, "GGUF metadata key {key} appears more than once")
            }
            Error::GgufWrongType {
                key,
                expected,
                found,
            } => write!(
                f,
                "GGUF metadata {key} is of type {found}; it must be {expected}"
            ),
            Error::NotLlama2cFormat => {
                f.write_str("GGUF is not a llama2.c format: it has no llama2.c header or layout")
            }
            Error::GgufMissingKey { key } => {
                write!(f, "GGUF metadata has no {key}, which a llama model needs")
            }
            Error::GgufArchitecture { found } => write!(
                f,
                "GGUF model architecture is \"{found}\"; this engine runs \"llama\" models only"
            ),
            Error::GgufKeyOutOfRange { key, value } => write!(
                f,
                "GGUF metadata {key} is {value}; it must be a positive size this target can address"
            ),
            Error::GgufFloatOutOfRange { key, value } => write!(
                f,
                "GGUF metadata {key} is {value}; it must be a finite number, not negative"
            ),
            Error::GgufPartialRotary {
                rope_dims,
                head_size,
            } => write!(
                f,
                "GGUF rope.dimension_count is {rope_dims} but the head size is {head_size}: \
                 partial rotary embeddings are not supported"
            ),
            Error::GgufUnsupportedFeature { key } => write!(
                f,
                "GGUF metadata {key} asks for a feature this engine does not support \
                 (supported: plain llama with RoPE, no scaling, no experts)"
            ),
            Error::GgufUnknownTensor { tensor } => write!(
                f,
                "GGUF tensor {tensor} is not part of a llama model as this engine runs it \
                 (supported: token_embd, output_norm, output, and blk.N.attn_norm, attn_q, \
                 attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down; \
                 no biases, RoPE scaling or experts)"
            ),
            Error::GgufMissingTensor { tensor } => {
                write!(
                    f,
                    "GGUF file has no tensor {tensor}, which a llama model needs"
                )
            }
            Error::GgufShapeMismatch {
                tensor,
                expected,
                found,
            } => write!(
                f,
                "GGUF tensor {tensor} has shape {found:?}, expected {expected:?} (ggml order, \
                 padded with 1s) from the hyperparameters"
            ),
            Error::GgufWeightType { tensor, ggml_type } => write!(
                f,
                "GGUF tensor {tensor} is {ggml_type}, which is not supported there (norms must \
                 be F32; matrices F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, \
                 Q4_K, Q5_K or Q6_K)"
            ),
            Error::GgufBadAlignment { value } => write!(
                f,
                "GGUF {} is {value}; it must be a power of two",
                crate::gguf::ALIGNMENT_KEY
            ),
            Error::GgufTooManyDims { tensor, n_dims } => write!(
                f,
                "GGUF tensor {tensor} has {n_dims} dimensions; at most {} are allowed",
                crate::gguf::MAX_DIMS
            ),
            Error::GgufUnknownType { tensor, id } => {
                write!(f, "GGUF tensor {tensor} has unknown ggml type id {id}")
            }
            Error::GgufUnsupportedType { tensor, ggml_type } => write!(
                f,
                "GGUF tensor {tensor} has ggml type {ggml_type} (id {}), which this build does \
                 not read (it reads F32, F16, BF16, F64, I8-I64, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, \
                 Q8_1 and Q2_K-Q8_K)",
                ggml_type.id()
            ),
            Error::GgufSizeOverflow { tensor } => write!(
                f,
                "GGUF tensor {tensor} is too large for this target's address space"
            ),
            Error::GgufShapeNotBlockMultiple {
                tensor,
                ggml_type,
                row,
            } => write!(
                f,
                "GGUF tensor {tensor} has rows of {row} values, not a multiple of the \
                 {ggml_type} block of {}",
                ggml_type.block().map_or(1, |b| b.elements)
            ),
            Error::GgufMisaligned {
                tensor,
                offset,
                alignment,
            } => write!(
                f,
                "GGUF tensor {tensor} is at data offset {offset}, not a multiple of the \
                 file's alignment {alignment}"
            ),
            Error::GgufTensorOutOfBounds {
                tensor,
                offset,
                size,
                data_len,
            } => write!(
                f,
                "GGUF tensor {tensor} ({size} bytes at data offset {offset}) runs past the \
                 end of the {data_len}-byte data section"
            ),
            Error::GgufDuplicateTensor { name } => {
                write!(f, "GGUF file has two tensors named {name}")
            }
            Error::GgufTensorsOverlap { first, second } => write!(
                f,
                "GGUF tensors {first} and {second} overlap in the data section"
            ),
            Error::GgufTokenizerKeyMissing { key } => {
                write!(f, "GGUF file has no {key}, which its tokenizer needs")
            }
            Error::GgufTokenizerUnsupported { model } => write!(
                f,
                "GGUF tokenizer model \"{model}\" is not supported; this build reads only \
                 \"llama\" (sentencepiece BPE), not yet gpt2 byte-level BPE or others"
            ),
            Error::GgufTokenizerElementType {
                key,
                expected,
                found,
            } => write!(
                f,
                "GGUF metadata {key} is an array of {found}; it must be an array of {expected}"
            ),
            Error::GgufTokenizerLengthMismatch { key, len, tokens } => write!(
                f,
                "GGUF metadata {key} has {len} entries but the vocabulary has {tokens} tokens"
            ),
            Error::GgufTokenizerIdOutOfRange {
                key,
                id,
                vocab_size,
            } => write!(
                f,
                "GGUF metadata {key} is {id}, outside the vocabulary of {vocab_size} tokens"
            ),
            Error::GgufTokenizerTooLarge { bytes } => write!(
                f,
                "GGUF token array is {bytes} bytes; at most 4 GiB can be indexed"
            ),
            Error::NoByteToken { byte } => write!(
                f,
                "the vocabulary has no byte token <0x{byte:02X}> for a byte of the text"
            ),
            Error::GgufTensorDataMismatch {
                tensor,
                expected: 0,
                given,
            } => write!(
                f,
                "GGUF writer was given {given} bytes of tensor data after the last tensor \
                 {tensor} was complete"
            ),
            Error::GgufTensorDataMismatch {
                tensor,
                expected,
                given,
            } => write!(
                f,
                "GGUF writer was given {given} bytes for tensor {tensor}, which takes {expected}"
            ),
            Error::QuantizeUnsupportedType { ggml_type } => write!(
                f,
                "cannot encode ggml type {ggml_type} (this build encodes F32, F16, BF16, Q8_0, \
                 Q4_0 and Q4_K)"
            ),
            Error::QuantizeNotWholeBlocks { ggml_type, values } => write!(
                f,
                "{values} values are not a whole number of {ggml_type} blocks of {}",
                ggml_type.block().map_or(1, |b| b.elements)
            ),
        }
    }
}

impl core::error::Error for Error {}
