//! Inference for Llama-2-architecture models in the llama2.c file formats, without `std`,
//! without an allocator, over a byte-slice view of the weights and caller-provided buffers.
//!
//! # Which types you need
//!
//! Every host uses the same four pieces: [`Model`] (a view of the weights, from
//! [`Model::from_bytes`]), [`Tokenizer`], [`State`] (KV cache and activations) and
//! [`Sampler`] (with a [`Strategy`]). Each takes its buffer from the caller, sized by a
//! `const fn` ([`State::len_for`], [`Tokenizer::index_len`], [`Sampler::scratch_len`]).
//! Failures are an [`Error`]; while writing text, a [`GenerateError`].
//!
//! - **A CLI-like host** (files, `std`): memory-map the model or copy it into an
//!   `AlignedBytes` (feature `std`), pick kernels with `Kernels::detect` (feature `std`)
//!   and [`State::set_kernels`], and run [`Generator::generate`] (or
//!   [`Generator::generate_batched`] with a [`Batch`] for long prompts) or [`Chat`] for
//!   turns, writing to any [`embedded_io::Write`]; [`ParallelGenerator`] continues one
//!   prompt many times at once ([`Sequence`]s with their own states and samplers, each
//!   step one [`Model::forward_sequences`] that reads every weight once for all). A thread pool implements [`Parallel`];
//!   [`Serial`] runs on the calling thread.
//! - **A firmware** (no `std`, no allocator): include the model in flash as an
//!   [`Aligned`] `static`, size `static` buffers with the `const fn`s above from a
//!   [`Config`] known at build time, keep [`Kernels::native`] and [`Serial`], and let
//!   [`Generator`] write to the UART through [`embedded_io::Write`]. Its lifetimes allow
//!   `'static` buffers and stack buffers side by side.
//! - **A C (or other FFI) wrapper** drives the steps itself: [`Tokenizer::encode`],
//!   [`Model::forward`] per position, [`Sampler::sample`] on the logits, and
//!   [`Tokenizer::decode`] through a [`TextDecoder`] for printable text, mapping each
//!   [`Error`] to a status code. The `llama2-capi` crate is that wrapper for C
//!   (`capi/include/llama2.h`).
//!
//! The whole path, with buffers from `Vec`s:
//!
//! ```
//! use llama2_core::{
//!     prompt_buffer_len, Generator, Model, ProbIndex, Sampler, Serial, State, Strategy, Tokenizer,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::var("LLAMA2_FIXTURES").unwrap_or("../../shared/fixtures".into());
//! # let model_file = std::fs::read(format!("{dir}/models/stories260K.bin"))?;
//! # let tokenizer_bytes = std::fs::read(format!("{dir}/models/tok512.bin"))?;
//! # // Weights must be 4-byte aligned: copy them into f32 storage (a memory map or an
//! # // aligned static in flash is aligned already).
//! # let mut aligned = vec![0f32; model_file.len() / 4];
//! # bytemuck::cast_slice_mut(&mut aligned).copy_from_slice(&model_file);
//! # let model_bytes: &[u8] = bytemuck::cast_slice(&aligned);
//! // Views into the bytes: nothing is copied.
//! let model = Model::from_bytes(model_bytes)?;
//! let config = model.config;
//!
//! // Every buffer comes from the caller; these sizes are also `const fn`s.
//! let mut index = vec![0u32; Tokenizer::index_len(config.vocab_size).unwrap()];
//! let tokenizer = Tokenizer::new(&tokenizer_bytes, config.vocab_size, &mut index)?;
//! let context = 64; // positions to keep; at most config.seq_len
//! let mut activations = vec![0f32; State::len_for(&config, context).unwrap()];
//! let mut state = State::new(&config, context, &mut activations)?;
//! let strategy = Strategy::new(0.0, 0.9)?; // temperature 0: greedy
//! let mut scratch = vec![ProbIndex::default(); Sampler::scratch_len(&strategy, config.vocab_size)];
//! let mut sampler = Sampler::new(strategy, 42, config.vocab_size, &mut scratch)?;
//!
//! let prompt = "Once upon a time";
//! let mut prompt_tokens = vec![0u32; prompt_buffer_len(prompt.len()).unwrap()];
//! let mut text = Vec::new(); // any embedded_io::Write: a UART, stdout, ...
//! let mut generator = Generator {
//!     model: &model,
//!     tokenizer: &tokenizer,
//!     state: &mut state,
//!     sampler: &mut sampler,
//!     parallel: &Serial,
//! };
//! generator.generate(prompt.as_bytes(), 40, &mut prompt_tokens, &mut text, |_| {})?;
//! assert!(text.starts_with(b"Once upon a time"));
//! # Ok(())
//! # }
//! ```
#![cfg_attr(not(test), no_std)]
// Safe code only, but for the SIMD loops in `kernels`, each `unsafe` with its reason.
#![deny(unsafe_code)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]
// Hostile input must give an `Err`, never a panic (docs/SECURITY.md): no `unwrap`, `expect`
// or `panic!` outside tests. The parsing modules also deny `clippy::indexing_slicing`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented,
        clippy::unreachable
    )
)]

#[cfg(target_endian = "big")]
compile_error!("llama2.c files are little-endian and are viewed in place; big-endian targets are not supported");

mod activations;
mod aligned;
mod attention;
mod batch;
mod chat;
mod checkpoint;
mod config;
mod error;
mod forward;
mod generate;
pub mod gguf;
mod gguf_llama;
mod header;
mod kernels;
mod math;
mod merge;
mod parallel;
pub mod quant;
mod sampler;
mod sequences;
mod state;
mod text;
mod tokenizer;
mod weights;

#[cfg(test)]
mod testutil;

// The READMEs' examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
mod readme_doctest {}
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
mod main_readme_doctest {}

pub use aligned::Aligned;
#[cfg(feature = "std")]
pub use aligned::AlignedBytes;
pub use batch::Batch;
pub use chat::{render_turn, rendered_len, Chat, TurnEnd};
pub use checkpoint::{Format, Model, MAGIC};
pub use config::{Config, Numerics};
pub use error::{Buffer, Error, Result};
pub use generate::{resolve_steps, GenerateError, Generator, Summary, TokenEvent};
pub use gguf::Gguf;
pub use header::Header;
pub use kernels::{Kernels, Q8Vector};
pub use parallel::{Parallel, Serial, Split};
pub use sampler::{argmax, ProbIndex, Rng, Sampler, Strategy};
pub use sequences::{ParallelGenerator, Sequence};
pub use state::State;
pub use text::TextDecoder;
pub use tokenizer::{prompt_buffer_len, Chunks, Piece, PieceText, Tokenizer, BOS, EOS};
pub use weights::{LayerWeights, Layers, Matrix, Q8Matrix, Stack, Stacks, Weights};
