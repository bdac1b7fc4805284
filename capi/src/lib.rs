//! The C API of llama2-rs: `libllama2.a` / `libllama2.so` and `capi/include/llama2.h`.
//!
//! A thin, allocation-free layer over `llama2-core`. Every object lives in caller memory:
//! the model and tokenizer bytes, the working buffers, and the handles themselves, which C
//! declares as fixed-size opaque structs (module `handle`). Every entry point checks its
//! pointers and lengths (`raw`), reports failures as a `llama2_status` code (`status`) and
//! never lets a Rust panic reach C (`guard`).
//!
//! The crate is always `no_std`. The default `std` feature (host builds) links `std` for
//! `catch_unwind` and run-time CPU feature detection; bare-metal builds use
//! `--no-default-features --features panic-handler` instead.
//!
//! The header is generated from this crate by cbindgen (`cbindgen.toml`); the doc comments
//! of the `extern "C"` items are the C documentation.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]
// The C names of the API (`llama2_model`, `llama2_status`, ...) are the Rust names.
#![allow(non_camel_case_types)]
// The entry points mirror the C signatures; their argument lists are the API.
#![allow(clippy::too_many_arguments)]

#[cfg(all(feature = "std", feature = "panic-handler"))]
compile_error!(
    "features `std` and `panic-handler` exclude each other: `std` brings its own panic \
     handler (build bare-metal targets with --no-default-features --features panic-handler)"
);

#[cfg(not(any(feature = "std", feature = "panic-handler", test)))]
compile_error!(
    "enable feature `std` (host builds, the default) or `panic-handler` (bare metal): a \
     static library must bring a panic handler"
);

#[cfg(any(feature = "std", test))]
extern crate std;

// The API, one module per part, in the order the header presents them (cbindgen follows
// the order of these declarations; the blank lines keep rustfmt from sorting them).
mod status;

mod types;

mod handle;

mod layers;

mod model;

mod tokenizer;

mod state;

mod sampler;

mod generate;

// Internals.
mod guard;
#[cfg(all(feature = "panic-handler", not(test)))]
mod panic_handler;
mod raw;
mod sink;

pub use generate::{llama2_generate, llama2_generate_to_buffer};
pub use handle::{
    llama2_model, llama2_sampler, llama2_state, llama2_text, llama2_tokenizer, LLAMA2_MODEL_WORDS,
    LLAMA2_SAMPLER_WORDS, LLAMA2_STATE_WORDS, LLAMA2_TEXT_WORDS, LLAMA2_TOKENIZER_WORDS,
};
pub use layers::{llama2_layer, LLAMA2_LAYER_WORDS};
pub use model::{
    llama2_model_buffer_sizes, llama2_model_config, llama2_model_layers_len, llama2_model_open,
    llama2_prompt_tokens_len,
};
pub use sampler::{llama2_sample, llama2_sampler_init};
pub use state::{llama2_forward, llama2_state_init, llama2_state_set_kernels};
pub use status::*;
pub use tokenizer::{
    llama2_decode, llama2_encode, llama2_text_init, llama2_tokenizer_open,
    llama2_tokenizer_open_model, llama2_tokenizer_vocab,
};
pub use types::*;
