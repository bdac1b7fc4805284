//! The plain structs and the callback type of the C API (everything but the handles).

use core::ffi::{c_char, c_int, c_void};

use llama2_core::{Format, Model, ProbIndex, BOS, EOS};

/// The beginning-of-sequence token of a llama2.c `tokenizer.bin`: the first token of every
/// encoded prompt; generation stops when the model chooses it. A GGUF vocabulary names its
/// own (`llama2_vocab.bos`).
pub const LLAMA2_BOS: u32 = 1;
/// The end-of-sequence token of a `tokenizer.bin` (appended by `llama2_encode()` when asked;
/// a GGUF vocabulary's is `llama2_vocab.eos`).
pub const LLAMA2_EOS: u32 = 2;

/// The kind of model file, in `llama2_config.format`.
pub type llama2_format = u32;
/// A llama2.c file: `version` 0 (legacy, fp32), 1 (fp32) or 2 (Q8_0).
pub const LLAMA2_FORMAT_LLAMA2C: llama2_format = 0;
/// A GGUF file of the llama architecture (llama.cpp's container; each tensor has its own
/// type): `version` is the GGUF version, 2 or 3.
pub const LLAMA2_FORMAT_GGUF: llama2_format = 1;

/// A model's hyperparameters and file layout, as `llama2_model_config()` reports them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct llama2_config {
    /// Width of the residual stream.
    pub dim: usize,
    /// Width of the feed-forward layer.
    pub hidden_dim: usize,
    /// Number of transformer layers (a GGUF model's layer table has this many entries).
    pub n_layers: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads.
    pub n_kv_heads: usize,
    /// Number of tokens in the vocabulary.
    pub vocab_size: usize,
    /// The longest context the model supports: the largest `context` of a state.
    pub seq_len: usize,
    /// Whether the classifier shares the token embedding.
    pub shared_classifier: bool,
    /// The kind of file: `LLAMA2_FORMAT_LLAMA2C` or `LLAMA2_FORMAT_GGUF`.
    pub format: llama2_format,
    /// The file's version within its kind: 0, 1 or 2 for a llama2.c file, the GGUF version
    /// (2 or 3) for a GGUF file.
    pub version: u32,
    /// Q8_0 group size of a llama2.c version 2 file, else 0 (a GGUF file's tensors each
    /// have their own type).
    pub group_size: usize,
}

impl From<&Model<'_>> for llama2_config {
    fn from(model: &Model<'_>) -> llama2_config {
        let c = &model.config;
        let (format, version, group_size) = match model.format {
            Format::V0 => (LLAMA2_FORMAT_LLAMA2C, 0, 0),
            Format::V1 => (LLAMA2_FORMAT_LLAMA2C, 1, 0),
            Format::V2 { group_size } => (LLAMA2_FORMAT_LLAMA2C, 2, group_size),
            Format::Gguf { version } => (LLAMA2_FORMAT_GGUF, version, 0),
        };
        llama2_config {
            dim: c.dim,
            hidden_dim: c.hidden_dim,
            n_layers: c.n_layers,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            vocab_size: c.vocab_size,
            seq_len: c.seq_len,
            shared_classifier: c.shared_classifier,
            format,
            version,
            group_size,
        }
    }
}

/// A tokenizer's vocabulary size and special tokens, as `llama2_tokenizer_vocab()` reports
/// them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct llama2_vocab {
    /// Number of tokens.
    pub vocab_size: usize,
    /// The beginning-of-sequence id (`LLAMA2_BOS` for a `tokenizer.bin`).
    pub bos: u32,
    /// The end-of-sequence id (`LLAMA2_EOS` for a `tokenizer.bin`).
    pub eos: u32,
    /// Whether the vocabulary asks for prompts to start with BOS: a GGUF file's
    /// `tokenizer.ggml.add_bos_token` (true if absent), always true for a `tokenizer.bin`.
    /// `llama2_generate()` starts every prompt with BOS, as llama2.c does.
    pub add_bos: bool,
}

/// Element counts of the caller buffers a model needs, from `llama2_model_buffer_sizes()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct llama2_buffer_sizes {
    /// `float`s for `llama2_state_init()` with this context (activations and KV cache).
    pub state: usize,
    /// `uint32_t`s for `llama2_tokenizer_open()` (2 x vocab_size).
    pub tokenizer_index: usize,
    /// `llama2_prob_index` entries for `llama2_sampler_init()` (vocab_size). Only top-p
    /// sampling (temperature > 0 and 0 < top_p < 1) uses them; otherwise 0 is enough.
    pub sampler_scratch: usize,
}

/// Sampling settings, with llama2.c's meaning.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct llama2_sampling {
    /// 0 always picks the most likely token (greedy); must be >= 0 (llama2.c's default: 1.0).
    pub temperature: f32,
    /// Nucleus sampling threshold in [0, 1]; 0 or 1 sample from every token (default 0.9).
    pub top_p: f32,
    /// Seed of llama2.c's xorshift generator. Must not be 0 unless temperature is 0 (the
    /// generator would stay at 0); take one from a clock for llama2.c's `-s 0`.
    pub seed: u64,
}

/// What a finished generation did.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct llama2_summary {
    /// Tokens in the encoded prompt, BOS included.
    pub prompt_tokens: usize,
    /// Forward passes run (positions used).
    pub steps: usize,
    /// Whether generation ended because the model chose BOS.
    pub stopped_on_bos: bool,
}

/// One entry of the top-p sampler's scratch buffer (8 bytes); the caller only allocates them.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct llama2_prob_index {
    /// A candidate token's probability.
    pub prob: f32,
    /// The candidate token's id.
    pub index: u32,
}

const _: () = assert!(LLAMA2_BOS == BOS && LLAMA2_EOS == EOS);

// `llama2_sampler_init` views the caller's entries as the engine's `ProbIndex`.
const _: () = assert!(
    core::mem::size_of::<llama2_prob_index>() == core::mem::size_of::<ProbIndex>()
        && core::mem::align_of::<llama2_prob_index>() == core::mem::align_of::<ProbIndex>()
);

/// Receives generated text: `len` bytes at `piece` (not NUL-terminated, valid only during the
/// call), and the `user` pointer given to the generating function. Pieces are whole UTF-8
/// characters. Return 0 to go on, anything else to stop the generation, which then returns
/// `LLAMA2_ERR_CALLBACK`. It must return normally (no `longjmp` out of it) and must not call
/// back into the library with the objects the running call uses.
pub type llama2_piece_fn =
    Option<unsafe extern "C" fn(piece: *const c_char, len: usize, user: *mut c_void) -> c_int>;

/// Inner loops of the forward pass, for `llama2_state_set_kernels()`.
pub type llama2_kernels = i32;
/// The best loops the build target guarantees (NEON on aarch64, scalar on generic x86_64
/// and Cortex-M). The default of a new state.
pub const LLAMA2_KERNELS_NATIVE: llama2_kernels = 0;
/// The reference loops, which add in llama2.c's order.
pub const LLAMA2_KERNELS_SCALAR: llama2_kernels = 1;
/// The fastest loops the running CPU has (detected at run time, host builds only: on x86_64
/// AVX2+FMA, with AVX512-VNNI for Q8 when present), else as `LLAMA2_KERNELS_NATIVE`.
pub const LLAMA2_KERNELS_AUTO: llama2_kernels = 2;
