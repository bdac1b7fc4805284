//! Generation: a prompt in, text out to the caller's callback or buffer, with llama2.c's
//! rules (the engine's `Generator`).

use core::ffi::{c_char, c_void};

use embedded_io::Write;
use llama2_core::{GenerateError, Generator, Model, Sampler, Serial, State, Summary, Tokenizer};

use crate::guard::guard;
use crate::handle::{check, llama2_model, llama2_sampler, llama2_state, llama2_tokenizer};
use crate::raw::{check_disjoint, In, InOut, Out, Region};
use crate::sink::{Buffer, Callback, Stop};
use crate::status::{llama2_status, Status};
use crate::types::{llama2_piece_fn, llama2_summary};

/// The arguments both generating functions share, as C passed them.
struct Args {
    model: *const llama2_model,
    tokenizer: *const llama2_tokenizer,
    state: *mut llama2_state,
    sampler: *mut llama2_sampler,
    prompt: *const c_char,
    prompt_len: usize,
    steps: usize,
    prompt_tokens: *mut u32,
    prompt_tokens_len: usize,
}

/// Everything one generation borrows, checked.
struct Parts<'h> {
    model: &'h Model<'static>,
    tokenizer: &'h Tokenizer<'static>,
    state: &'h mut State<'static>,
    sampler: &'h mut Sampler<'static>,
    prompt: &'h [u8],
    prompt_tokens: &'h mut [u32],
    steps: usize,
}

impl Args {
    /// Checks every pointer, and that nothing written overlaps anything else, `outputs`
    /// (the caller's other written arguments) included; then borrows.
    ///
    /// # Safety
    /// The contract of `llama2_generate()` for these arguments.
    unsafe fn borrow<'h>(&self, outputs: &[Region]) -> Result<Parts<'h>, Status> {
        // SAFETY: the caller's contracts for the four handles.
        let (model, tokenizer, state, sampler) = unsafe {
            (
                check::<_, false>(self.model)?,
                check::<_, false>(self.tokenizer)?,
                check::<_, true>(self.state)?,
                check::<_, true>(self.sampler)?,
            )
        };
        let prompt = In::new_or_empty(self.prompt.cast::<u8>(), self.prompt_len)?;
        let prompt_tokens = InOut::new(self.prompt_tokens, self.prompt_tokens_len)?;
        check_disjoint(&[
            model.regions(),
            tokenizer.regions(),
            state.regions(),
            sampler.regions(),
            &[prompt.region(), prompt_tokens.region()],
            outputs,
        ])?;
        // SAFETY: valid by the caller's contract, and disjoint where written (checked).
        unsafe {
            Ok(Parts {
                model: model.into_ref(),
                tokenizer: tokenizer.into_ref(),
                state: state.into_mut(),
                sampler: sampler.into_mut(),
                prompt: prompt.into_slice(),
                prompt_tokens: prompt_tokens.into_mut_slice(),
                steps: self.steps,
            })
        }
    }
}

impl Parts<'_> {
    /// Runs the engine's generation loop, writing text to `out`, and on success what it did
    /// to `summary` (if asked for).
    ///
    /// # Safety
    /// `summary`, if given, is valid for a write and disjoint from the borrowed parts.
    unsafe fn run<W: Write<Error = Stop>>(
        self,
        out: &mut W,
        summary: Option<Out<llama2_summary>>,
    ) -> Result<(), Status> {
        let mut generator = Generator {
            model: self.model,
            tokenizer: self.tokenizer,
            state: self.state,
            sampler: self.sampler,
            parallel: &Serial,
        };
        let done = generator
            .generate(self.prompt, self.steps, self.prompt_tokens, out, |_| {})
            .map_err(|error| match error {
                GenerateError::Engine(error) => Status::from(error),
                GenerateError::Write(Stop(status)) => status,
            })?;
        if let Some(summary) = summary {
            // SAFETY: valid for a write (the caller's contract); the generator's borrows
            // have ended.
            unsafe { summary.write(done.into()) };
        }
        Ok(())
    }
}

impl From<Summary> for llama2_summary {
    fn from(summary: Summary) -> llama2_summary {
        llama2_summary {
            prompt_tokens: summary.prompt_tokens,
            steps: summary.steps,
            stopped_on_bos: summary.stopped_on_bos,
        }
    }
}

/// Generates a story the way llama2.c's `run` does and passes its text to `on_piece`.
///
/// Encodes `prompt[0..prompt_len]` (NULL is allowed for the empty prompt) into
/// `prompt_tokens[0..prompt_tokens_len]` (at least `llama2_prompt_tokens_len(prompt_len)`),
/// then runs positions from 0: prompt tokens are forced, later ones sampled; `steps` counts
/// the prompt, and 0 or more than the state's context means the context. Stops early when
/// the model chooses BOS. The text (the text rule of README.md: llama2.c's output with
/// byte-token characters reassembled) goes to `on_piece` a piece at a time, ending with a
/// newline. If `summary` is not NULL it receives what the generation did.
///
/// The state is overwritten from position 0; the sampler's random generator goes on from
/// where it was. Model and tokenizer must have the same vocabulary.
///
/// Errors: `LLAMA2_ERR_NULL` (also for a NULL `on_piece`), `LLAMA2_ERR_MISALIGNED`,
/// `LLAMA2_ERR_OVERLAP`, `LLAMA2_ERR_UNINITIALIZED`, `LLAMA2_ERR_VOCAB_MISMATCH`,
/// `LLAMA2_ERR_BUFFER_TOO_SMALL` (prompt tokens), `LLAMA2_ERR_PROMPT_TOO_LONG`,
/// `LLAMA2_ERR_VOCAB_TOO_SMALL`, `LLAMA2_ERR_STATE_MISMATCH`, `LLAMA2_ERR_CALLBACK`.
///
/// # Safety
/// The four handles must be opened/initialised (or zeroed) and their buffers still valid;
/// `prompt` valid for `prompt_len` reads, `prompt_tokens` for `prompt_tokens_len` reads and
/// writes, `summary` (if not NULL) for a write; `on_piece` must follow the contract of
/// `llama2_piece_fn`.
#[no_mangle]
pub unsafe extern "C" fn llama2_generate(
    model: *const llama2_model,
    tokenizer: *const llama2_tokenizer,
    state: *mut llama2_state,
    sampler: *mut llama2_sampler,
    prompt: *const c_char,
    prompt_len: usize,
    steps: usize,
    prompt_tokens: *mut u32,
    prompt_tokens_len: usize,
    on_piece: llama2_piece_fn,
    user: *mut c_void,
    summary: *mut llama2_summary,
) -> llama2_status {
    let args = Args {
        model,
        tokenizer,
        state,
        sampler,
        prompt,
        prompt_len,
        steps,
        prompt_tokens,
        prompt_tokens_len,
    };
    guard(|| {
        let function = on_piece.ok_or(Status::Null)?;
        let summary = Out::optional(summary)?;
        let outputs = [summary.as_ref().map_or(Region::EMPTY, Out::region)];
        // SAFETY: the caller's contract for the arguments.
        let parts = unsafe { args.borrow(&outputs) }?;
        // SAFETY: `summary` is valid by the caller's contract, and disjoint (checked).
        unsafe { parts.run(&mut Callback { function, user }, summary) }
    })
}

/// Like `llama2_generate()`, but writes the text into the caller's `text[0..text_capacity]`
/// as a NUL-terminated string, and its length (without the NUL) to `*text_len`.
///
/// Whole pieces only: when the next piece (or the final newline) does not fit with the NUL,
/// generation stops with `LLAMA2_ERR_OUTPUT_FULL`. Once generation has started (every
/// argument checked), `text` holds the NUL-terminated text produced so far and `*text_len`
/// its length, whatever the function returns; `*summary` is written on success only.
///
/// Errors: those of `llama2_generate()` except `LLAMA2_ERR_CALLBACK`; `LLAMA2_ERR_OUTPUT_FULL`;
/// `LLAMA2_ERR_BUFFER_TOO_SMALL` if `text_capacity` is 0.
///
/// # Safety
/// As for `llama2_generate()`; `text` must be valid for `text_capacity` writes and
/// `text_len` for a write.
#[no_mangle]
pub unsafe extern "C" fn llama2_generate_to_buffer(
    model: *const llama2_model,
    tokenizer: *const llama2_tokenizer,
    state: *mut llama2_state,
    sampler: *mut llama2_sampler,
    prompt: *const c_char,
    prompt_len: usize,
    steps: usize,
    prompt_tokens: *mut u32,
    prompt_tokens_len: usize,
    text: *mut c_char,
    text_capacity: usize,
    text_len: *mut usize,
    summary: *mut llama2_summary,
) -> llama2_status {
    let args = Args {
        model,
        tokenizer,
        state,
        sampler,
        prompt,
        prompt_len,
        steps,
        prompt_tokens,
        prompt_tokens_len,
    };
    guard(|| {
        let text = InOut::new(text.cast::<u8>(), text_capacity)?;
        let text_len = Out::new(text_len)?;
        let summary = Out::optional(summary)?;
        let outputs = [
            text.region(),
            text_len.region(),
            summary.as_ref().map_or(Region::EMPTY, Out::region),
        ];
        // SAFETY: the caller's contract for the arguments.
        let parts = unsafe { args.borrow(&outputs) }?;
        // SAFETY: valid by the caller's contract, and disjoint from every other borrow
        // (checked in `borrow`).
        let mut buffer = Buffer::new(unsafe { text.into_mut_slice() })?;
        // SAFETY: `summary` is valid by the caller's contract, and disjoint (checked).
        let result = unsafe { parts.run(&mut buffer, summary) };
        let len = buffer.len();
        // SAFETY: valid for writes (the caller's contract); the borrows have ended.
        unsafe { text_len.write(len) };
        result
    })
}
