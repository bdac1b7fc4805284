//! Status codes: `LLAMA2_OK` and one error code per kind of failure, with a static message
//! for each.
//!
//! The C type is a plain `int32_t` (`llama2_status`) with `#define`d values rather than a
//! Rust enum, so that `llama2_error_message` can accept any integer a C caller passes
//! without undefined behaviour. Inside the crate the codes are the [`Status`] enum.

use core::ffi::c_char;

use llama2_core::Error;

/// What every function of the API returns: `LLAMA2_OK` (0) or one of the `LLAMA2_ERR_*`
/// codes. `llama2_error_message()` describes any value.
pub type llama2_status = i32;

/// Success.
pub const LLAMA2_OK: llama2_status = 0;
/// A required pointer argument is NULL.
pub const LLAMA2_ERR_NULL: llama2_status = 1;
/// A pointer is not aligned for its type (model bytes need 4-byte alignment).
pub const LLAMA2_ERR_MISALIGNED: llama2_status = 2;
/// A caller buffer is shorter than the function needs (a GGUF model's layer table
/// included).
pub const LLAMA2_ERR_BUFFER_TOO_SMALL: llama2_status = 3;
/// Two buffers or handles passed to one call overlap where one of them is written.
pub const LLAMA2_ERR_OVERLAP: llama2_status = 4;
/// A handle was not initialised by its `_open`/`_init` function (or a failed call left it
/// unusable), or a handle of another type was passed.
pub const LLAMA2_ERR_UNINITIALIZED: llama2_status = 5;
/// An argument is out of its documented range (for example an unknown kernels value, or a
/// sampling seed of 0).
pub const LLAMA2_ERR_INVALID_ARGUMENT: llama2_status = 6;
/// A size computed from the arguments or the model header overflows this target.
pub const LLAMA2_ERR_SIZE_OVERFLOW: llama2_status = 7;
/// The model file is shorter or longer than its header says.
pub const LLAMA2_ERR_MODEL_SIZE: llama2_status = 8;
/// The model file has a version this library does not read (llama2.c files: 0, 1 and 2;
/// GGUF files: 2 and 3).
pub const LLAMA2_ERR_MODEL_VERSION: llama2_status = 9;
/// The model header is invalid (a non-positive field, heads that do not divide `dim`, an
/// odd head size, a Q8 group size that does not divide the matrices).
pub const LLAMA2_ERR_MODEL_CONFIG: llama2_status = 10;
/// The tokenizer file is malformed or belongs to a model with another vocabulary size, or a
/// GGUF file's vocabulary is missing, malformed or of a tokenizer model other than `llama`.
pub const LLAMA2_ERR_TOKENIZER_FORMAT: llama2_status = 11;
/// The tokenizer's vocabulary size differs from the model's.
pub const LLAMA2_ERR_VOCAB_MISMATCH: llama2_status = 12;
/// The vocabulary has fewer than 259 tokens, too few for byte-fallback encoding.
pub const LLAMA2_ERR_VOCAB_TOO_SMALL: llama2_status = 13;
/// The context length is 0 or longer than the model's `seq_len`.
pub const LLAMA2_ERR_INVALID_CONTEXT: llama2_status = 14;
/// The prompt encodes to more tokens than the state's context holds.
pub const LLAMA2_ERR_PROMPT_TOO_LONG: llama2_status = 15;
/// The state was initialised for a model with another configuration.
pub const LLAMA2_ERR_STATE_MISMATCH: llama2_status = 16;
/// A token id is not below the vocabulary size.
pub const LLAMA2_ERR_TOKEN_OUT_OF_RANGE: llama2_status = 17;
/// A position is not below the state's context length.
pub const LLAMA2_ERR_POSITION_OUT_OF_RANGE: llama2_status = 18;
/// The temperature is negative or NaN.
pub const LLAMA2_ERR_INVALID_TEMPERATURE: llama2_status = 19;
/// The top-p value is outside [0, 1] or NaN.
pub const LLAMA2_ERR_INVALID_TOP_P: llama2_status = 20;
/// The logits passed to `llama2_sample()` are empty or contain NaN or +infinity.
pub const LLAMA2_ERR_INVALID_LOGITS: llama2_status = 21;
/// The text callback returned non-zero; generation stopped.
pub const LLAMA2_ERR_CALLBACK: llama2_status = 22;
/// The caller's text buffer is full; it holds the text that fit, NUL-terminated.
pub const LLAMA2_ERR_OUTPUT_FULL: llama2_status = 23;
/// The engine reported an error this version of the C API does not know.
pub const LLAMA2_ERR_OTHER: llama2_status = 24;
/// Internal error: a Rust panic was caught at the API boundary (a bug in this library).
/// The objects passed to the call are in an unspecified state: initialise them again.
pub const LLAMA2_ERR_PANIC: llama2_status = 25;
/// The model file is a GGUF file that is malformed (truncated, misaligned or overlapping
/// tensors, unknown types, bad metadata) or not a llama model this library runs (another
/// architecture, unknown or missing tensors, wrong shapes, unsupported weight types).
pub const LLAMA2_ERR_MODEL_FORMAT: llama2_status = 26;

/// The error codes, as the crate uses them internally (never `LLAMA2_OK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub(crate) enum Status {
    Null = LLAMA2_ERR_NULL,
    Misaligned = LLAMA2_ERR_MISALIGNED,
    BufferTooSmall = LLAMA2_ERR_BUFFER_TOO_SMALL,
    Overlap = LLAMA2_ERR_OVERLAP,
    Uninitialized = LLAMA2_ERR_UNINITIALIZED,
    InvalidArgument = LLAMA2_ERR_INVALID_ARGUMENT,
    SizeOverflow = LLAMA2_ERR_SIZE_OVERFLOW,
    ModelSize = LLAMA2_ERR_MODEL_SIZE,
    ModelVersion = LLAMA2_ERR_MODEL_VERSION,
    ModelConfig = LLAMA2_ERR_MODEL_CONFIG,
    TokenizerFormat = LLAMA2_ERR_TOKENIZER_FORMAT,
    VocabMismatch = LLAMA2_ERR_VOCAB_MISMATCH,
    VocabTooSmall = LLAMA2_ERR_VOCAB_TOO_SMALL,
    InvalidContext = LLAMA2_ERR_INVALID_CONTEXT,
    PromptTooLong = LLAMA2_ERR_PROMPT_TOO_LONG,
    StateMismatch = LLAMA2_ERR_STATE_MISMATCH,
    TokenOutOfRange = LLAMA2_ERR_TOKEN_OUT_OF_RANGE,
    PositionOutOfRange = LLAMA2_ERR_POSITION_OUT_OF_RANGE,
    InvalidTemperature = LLAMA2_ERR_INVALID_TEMPERATURE,
    InvalidTopP = LLAMA2_ERR_INVALID_TOP_P,
    InvalidLogits = LLAMA2_ERR_INVALID_LOGITS,
    Callback = LLAMA2_ERR_CALLBACK,
    OutputFull = LLAMA2_ERR_OUTPUT_FULL,
    Other = LLAMA2_ERR_OTHER,
    // Only `catch_unwind` (feature `std`) reports it.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    Panic = LLAMA2_ERR_PANIC,
    ModelFormat = LLAMA2_ERR_MODEL_FORMAT,
}

/// Every code and its message, `LLAMA2_OK` first; the messages are NUL-terminated for C.
const MESSAGES: [(llama2_status, &str); 27] = [
    (LLAMA2_OK, "success\0"),
    (LLAMA2_ERR_NULL, "a required pointer argument is NULL\0"),
    (
        LLAMA2_ERR_MISALIGNED,
        "a pointer is not aligned for its type (model bytes need 4-byte alignment)\0",
    ),
    (
        LLAMA2_ERR_BUFFER_TOO_SMALL,
        "a buffer is smaller than needed (see llama2_model_buffer_sizes)\0",
    ),
    (
        LLAMA2_ERR_OVERLAP,
        "two buffers or handles of one call overlap, and one of them is written\0",
    ),
    (
        LLAMA2_ERR_UNINITIALIZED,
        "the handle was not initialised by its open/init function (or is of another type)\0",
    ),
    (
        LLAMA2_ERR_INVALID_ARGUMENT,
        "an argument is outside its documented range\0",
    ),
    (
        LLAMA2_ERR_SIZE_OVERFLOW,
        "a size overflows this target's address space\0",
    ),
    (
        LLAMA2_ERR_MODEL_SIZE,
        "the model file is shorter or longer than its header says\0",
    ),
    (
        LLAMA2_ERR_MODEL_VERSION,
        "unsupported model file version (this library reads llama2.c versions 0, 1 and 2, GGUF versions 2 and 3)\0",
    ),
    (
        LLAMA2_ERR_MODEL_CONFIG,
        "the model header is invalid (field values or their relations)\0",
    ),
    (
        LLAMA2_ERR_TOKENIZER_FORMAT,
        "the tokenizer (file or GGUF vocabulary) is malformed, unsupported, or belongs to a model with another vocabulary\0",
    ),
    (
        LLAMA2_ERR_VOCAB_MISMATCH,
        "the tokenizer's vocabulary size differs from the model's\0",
    ),
    (
        LLAMA2_ERR_VOCAB_TOO_SMALL,
        "the vocabulary is too small for byte-fallback encoding (needs 259 tokens)\0",
    ),
    (
        LLAMA2_ERR_INVALID_CONTEXT,
        "the context length must be between 1 and the model's seq_len\0",
    ),
    (
        LLAMA2_ERR_PROMPT_TOO_LONG,
        "the prompt encodes to more tokens than the context holds\0",
    ),
    (
        LLAMA2_ERR_STATE_MISMATCH,
        "the state was initialised for a model with another configuration\0",
    ),
    (
        LLAMA2_ERR_TOKEN_OUT_OF_RANGE,
        "a token id is not below the vocabulary size\0",
    ),
    (
        LLAMA2_ERR_POSITION_OUT_OF_RANGE,
        "a position is not below the state's context length\0",
    ),
    (
        LLAMA2_ERR_INVALID_TEMPERATURE,
        "the temperature is negative or NaN\0",
    ),
    (
        LLAMA2_ERR_INVALID_TOP_P,
        "top-p is outside [0, 1] or NaN\0",
    ),
    (
        LLAMA2_ERR_INVALID_LOGITS,
        "the logits are empty or contain NaN or +infinity\0",
    ),
    (
        LLAMA2_ERR_CALLBACK,
        "the text callback returned non-zero\0",
    ),
    (
        LLAMA2_ERR_OUTPUT_FULL,
        "the text buffer is full (it holds the text that fit)\0",
    ),
    (
        LLAMA2_ERR_OTHER,
        "the engine reported an error this version of the C API does not know\0",
    ),
    (
        LLAMA2_ERR_PANIC,
        "internal error: a Rust panic was caught (a bug in libllama2); initialise the objects again\0",
    ),
    (
        LLAMA2_ERR_MODEL_FORMAT,
        "the GGUF model file is malformed, or not a llama model this library runs\0",
    ),
];

/// The message of `status`, NUL-terminated.
pub(crate) fn message(status: llama2_status) -> &'static str {
    MESSAGES
        .iter()
        .find(|(code, _)| *code == status)
        .map_or("unknown llama2_status code\0", |(_, text)| text)
}

/// Maps every error of the engine onto its code.
impl From<Error> for Status {
    fn from(error: Error) -> Status {
        match error {
            Error::TruncatedHeader { .. } | Error::FileSizeMismatch { .. } => Status::ModelSize,
            Error::UnsupportedVersion(_) => Status::ModelVersion,
            Error::NonPositiveField { .. }
            | Error::HeadsDoNotDivideDim { .. }
            | Error::KvHeadsDoNotDivideHeads { .. }
            | Error::OddHeadSize { .. }
            | Error::GroupSizeMismatch { .. }
            | Error::FieldTooLarge { .. } => Status::ModelConfig,
            Error::SizeOverflow => Status::SizeOverflow,
            Error::Misaligned => Status::Misaligned,
            Error::TokenizerTruncated { .. }
            | Error::TokenizerNegativeLength { .. }
            | Error::TokenLongerThanMax { .. }
            | Error::TokenizerTrailingBytes { .. } => Status::TokenizerFormat,
            Error::VocabularyTooSmall { .. } => Status::VocabTooSmall,
            Error::BufferTooSmall { .. } => Status::BufferTooSmall,
            Error::InvalidContext { .. } => Status::InvalidContext,
            Error::VocabularyMismatch { .. } => Status::VocabMismatch,
            Error::PromptTooLong { .. } => Status::PromptTooLong,
            Error::StateMismatch => Status::StateMismatch,
            Error::TokenOutOfRange { .. } => Status::TokenOutOfRange,
            Error::PositionOutOfRange { .. } => Status::PositionOutOfRange,
            Error::InvalidTemperature(_) => Status::InvalidTemperature,
            Error::InvalidTopP(_) => Status::InvalidTopP,
            // The vocabulary of a GGUF file: its own keys, and a mistyped one of them.
            Error::GgufTokenizerKeyMissing { .. }
            | Error::GgufTokenizerUnsupported { .. }
            | Error::GgufTokenizerElementType { .. }
            | Error::GgufTokenizerLengthMismatch { .. }
            | Error::GgufTokenizerIdOutOfRange { .. }
            | Error::GgufTokenizerTooLarge { .. }
            | Error::NoByteToken { .. } => Status::TokenizerFormat,
            Error::GgufWrongType { key, .. } if key.starts_with("tokenizer.") => {
                Status::TokenizerFormat
            }
            Error::GgufUnsupportedVersion(_) => Status::ModelVersion,
            Error::GgufTruncated { .. } => Status::ModelSize,
            Error::GgufSizeOverflow { .. } => Status::SizeOverflow,
            Error::GgufBadMagic { .. }
            | Error::GgufTooManyEntries { .. }
            | Error::GgufUnknownValueType { .. }
            | Error::GgufNestedArray { .. }
            | Error::GgufInvalidBool { .. }
            | Error::GgufInvalidUtf8 { .. }
            | Error::GgufDuplicateKey { .. }
            | Error::GgufWrongType { .. }
            | Error::GgufBadAlignment { .. }
            | Error::GgufTooManyDims { .. }
            | Error::GgufUnknownType { .. }
            | Error::GgufUnsupportedType { .. }
            | Error::GgufShapeNotBlockMultiple { .. }
            | Error::GgufMisaligned { .. }
            | Error::GgufTensorOutOfBounds { .. }
            | Error::GgufDuplicateTensor { .. }
            | Error::GgufTensorsOverlap { .. }
            | Error::GgufMissingKey { .. }
            | Error::GgufArchitecture { .. }
            | Error::GgufKeyOutOfRange { .. }
            | Error::GgufFloatOutOfRange { .. }
            | Error::GgufPartialRotary { .. }
            | Error::GgufUnsupportedFeature { .. }
            | Error::GgufUnknownTensor { .. }
            | Error::GgufMissingTensor { .. }
            | Error::GgufShapeMismatch { .. }
            | Error::GgufWeightType { .. } => Status::ModelFormat,
            // `Error` is non-exhaustive: a newer engine error still gets a code.
            _ => Status::Other,
        }
    }
}

/// A static, NUL-terminated English description of `status`; never NULL. Unknown values get
/// a generic message. The string lives for the whole program: do not free it.
#[no_mangle]
pub extern "C" fn llama2_error_message(status: llama2_status) -> *const c_char {
    message(status).as_ptr().cast()
}

/// The library's version, such as "0.1.0": a static NUL-terminated string; do not free it.
#[no_mangle]
pub extern "C" fn llama2_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_nul_terminated_message() {
        for (i, (code, text)) in MESSAGES.iter().enumerate() {
            assert_eq!(*code, i as i32, "codes are dense and in order");
            assert!(text.ends_with('\0') && text.matches('\0').count() == 1);
        }
        assert_eq!(MESSAGES.len() as i32, LLAMA2_ERR_MODEL_FORMAT + 1);
        assert_eq!(message(-1), "unknown llama2_status code\0");
        assert_eq!(message(Status::Panic as i32), MESSAGES[25].1);
    }
}
