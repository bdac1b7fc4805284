//! Generation: prompt in, text out to an [`embedded_io::Write`] sink, with llama2.c's rules
//! (prompt tokens forced, steps count the prompt, stop when BOS is chosen).

use crate::batch::Batch;
use crate::checkpoint::Model;
use crate::error::{Error, Result};
use crate::parallel::Parallel;
use crate::sampler::Sampler;
use crate::state::State;
use crate::text::TextDecoder;
use crate::tokenizer::Tokenizer;

/// A failure while generating: from the engine, or from the sink text is written to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GenerateError<E> {
    /// The engine refused an input or a buffer.
    Engine(Error),
    /// The sink's own error.
    Write(E),
}

impl<E: core::fmt::Debug> core::error::Error for GenerateError<E> {}

impl<E> From<Error> for GenerateError<E> {
    fn from(error: Error) -> Self {
        GenerateError::Engine(error)
    }
}

impl<E: core::fmt::Debug> core::fmt::Display for GenerateError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            GenerateError::Engine(e) => write!(f, "{e}"),
            GenerateError::Write(e) => write!(f, "writing output failed: {e:?}"),
        }
    }
}

/// One token of a generation, reported as soon as its text has been written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent {
    /// Position the token was chosen at (it will be fed at `pos + 1`).
    pub pos: usize,
    /// The token id.
    pub token: u32,
    /// Whether the token was forced from the prompt rather than sampled.
    pub from_prompt: bool,
}

/// What a finished generation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Number of tokens in the encoded prompt, BOS included.
    pub prompt_tokens: usize,
    /// Number of forward passes run (llama2.c's final `pos`).
    pub steps: usize,
    /// Whether generation ended because BOS was chosen.
    pub stopped_on_bos: bool,
}

/// Decodes `next` (after `prev`) through the text rule into `out`, flushing it.
pub(crate) fn write_piece<W: embedded_io::Write>(
    tokenizer: &Tokenizer<'_>,
    text: &mut TextDecoder,
    prev: u32,
    next: u32,
    out: &mut W,
) -> core::result::Result<(), GenerateError<W::Error>> {
    let piece = tokenizer.decode(prev, next)?;
    let mut written = Ok(());
    text.push(piece, |bytes| {
        if written.is_ok() {
            written = out.write_all(bytes);
        }
    });
    written.map_err(GenerateError::Write)?;
    out.flush().map_err(GenerateError::Write)
}

/// The steps llama2.c runs when asked for `requested`: 0 or more than `limit` mean `limit`.
pub fn resolve_steps(requested: usize, limit: usize) -> usize {
    if requested == 0 || requested > limit {
        limit
    } else {
        requested
    }
}

/// Borrows everything one generation needs, for `'g`.
///
/// `'a` is the model and tokenizer bytes; the state's buffer (`'state`) and the sampler's
/// (`'sampler`) have lifetimes of their own, so buffers of different origins combine: a
/// state over a `'static` buffer (a firmware's statics) with a sampler over a local one.
///
/// ```
/// use llama2_core::{
///     prompt_buffer_len, Generator, Model, ProbIndex, Sampler, Serial, State, Strategy,
///     Tokenizer,
/// };
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::var("LLAMA2_FIXTURES").unwrap_or("../../shared/fixtures".into());
/// # let model_file = std::fs::read(format!("{dir}/models/stories260K.bin"))?;
/// # let tokenizer_bytes = std::fs::read(format!("{dir}/models/tok512.bin"))?;
/// # let mut aligned = vec![0f32; model_file.len() / 4];
/// # bytemuck::cast_slice_mut(&mut aligned).copy_from_slice(&model_file);
/// # let model = Model::from_bytes(bytemuck::cast_slice(&aligned))?;
/// # let config = model.config;
/// # let mut index = vec![0u32; Tokenizer::index_len(config.vocab_size).unwrap()];
/// # let tokenizer = Tokenizer::new(&tokenizer_bytes, config.vocab_size, &mut index)?;
/// // The state lives for the whole program, as a firmware's `static` buffer does...
/// let activations: &'static mut [f32] =
///     Vec::leak(vec![0.0; State::len_for(&config, 32).unwrap()]);
/// let mut state: State<'static> = State::new(&config, 32, activations)?;
/// // ...and the sampler's scratch only for this call, on the stack.
/// let mut scratch = [ProbIndex::default(); 512]; // the model's vocab_size
/// let mut sampler = Sampler::new(Strategy::new(1.0, 0.9)?, 1, config.vocab_size, &mut scratch)?;
/// let mut generator = Generator {
///     model: &model,
///     tokenizer: &tokenizer,
///     state: &mut state,
///     sampler: &mut sampler,
///     parallel: &Serial,
/// };
/// const PROMPT: &[u8] = b"Once";
/// let mut prompt_tokens = [0u32; prompt_buffer_len(PROMPT.len()).unwrap()];
/// let mut text = Vec::new();
/// generator.generate(PROMPT, 10, &mut prompt_tokens, &mut text, |_| {})?;
/// assert!(text.starts_with(b"Once"));
/// # Ok(())
/// # }
/// ```
pub struct Generator<'g, 'a, 'state, 'sampler, P: Parallel> {
    /// The weights.
    pub model: &'g Model<'a>,
    /// The tokenizer of the model's vocabulary.
    pub tokenizer: &'g Tokenizer<'a>,
    /// The KV cache and activations; generation starts at position 0.
    pub state: &'g mut State<'state>,
    /// Chooses each token after the prompt.
    pub sampler: &'g mut Sampler<'sampler>,
    /// Runs the rows of each matrix product ([`crate::Serial`] or a thread pool).
    pub parallel: &'g P,
}

impl<P: Parallel> core::fmt::Debug for Generator<'_, '_, '_, '_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Generator")
            .field("config", &self.model.config)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<P: Parallel> Generator<'_, '_, '_, '_, P> {
    /// Encodes `prompt` into `prompt_buf` (at least
    /// [`prompt_buffer_len`](crate::prompt_buffer_len)`(prompt.len())` long), runs `steps`
    /// positions (resolved by [`resolve_steps`] against the state's context) and writes each
    /// token's text to `out` as soon as it is known, flushing after each. A final newline is
    /// written. `on_token` sees every token after its text is written.
    ///
    /// As in llama2.c, `steps` smaller than the prompt's tokens writes the first `steps`
    /// prompt pieces and stops; a prompt longer than the context is refused with
    /// [`Error::PromptTooLong`] (its real token count) when more steps than the context, or
    /// 0, are asked for.
    ///
    /// Generation stops when BOS is chosen, as in llama2.c, unless the state slides its
    /// window ([`State::set_sliding_window`]): then exactly `steps` positions run (0 means
    /// the context), past the context, and a BOS starts a new line of text.
    pub fn generate<W: embedded_io::Write>(
        &mut self,
        prompt: &[u8],
        steps: usize,
        prompt_buf: &mut [u32],
        out: &mut W,
        on_token: impl FnMut(TokenEvent),
    ) -> core::result::Result<Summary, GenerateError<W::Error>> {
        self.generate_batched(None, prompt, steps, prompt_buf, out, on_token)
    }

    /// Like [`Generator::generate`], but with `Some(batch)` runs the prompt through the
    /// model `batch.capacity()` tokens at a time, reading each weight once per batch instead
    /// of once per token (`None`: token by token). The tokens and text are exactly those of
    /// [`Generator::generate`].
    pub fn generate_batched<W: embedded_io::Write>(
        &mut self,
        batch: Option<&mut Batch<'_>>,
        prompt: &[u8],
        steps: usize,
        prompt_buf: &mut [u32],
        out: &mut W,
        mut on_token: impl FnMut(TokenEvent),
    ) -> core::result::Result<Summary, GenerateError<W::Error>> {
        let config = &self.model.config;
        if self.tokenizer.vocab_size() != config.vocab_size {
            return Err(Error::VocabularyMismatch {
                model: config.vocab_size,
                tokenizer: self.tokenizer.vocab_size(),
            }
            .into());
        }
        let context = self.state.context();
        let n_prompt = self.tokenizer.encode(prompt, true, false, prompt_buf)?;
        // As in llama2.c, only the prompt positions below `steps` run: a prompt longer than
        // the steps asked for is cut there. Asked for the whole context (0) or more, the
        // whole prompt must fit it.
        let prompt_positions = match steps {
            0 => n_prompt,
            asked => n_prompt.min(asked),
        };
        if prompt_positions > context {
            return Err(Error::PromptTooLong {
                tokens: n_prompt,
                context,
            }
            .into());
        }
        let steps = if self.state.sliding_window() && steps != 0 {
            steps // asked for explicitly: as many as requested, past the context
        } else {
            resolve_steps(steps, context)
        };
        let prompt_tokens = &prompt_buf[..n_prompt];

        // Positions whose forward pass a batch has already run.
        let prefilled = match batch {
            Some(batch) => self.prefill(batch, prompt_tokens, steps)?,
            None => 0,
        };
        let mut text = TextDecoder::new();
        let mut token = prompt_tokens[0];
        let mut pos = 0;
        let mut stopped_on_bos = false;
        // llama2.c's rule, for every vocabulary: choosing BOS ends the text.
        let bos = self.tokenizer.bos();
        while pos < steps {
            let from_prompt = pos + 1 < n_prompt;
            let next = if from_prompt {
                if pos >= prefilled {
                    self.model.forward(self.state, token, pos, self.parallel)?;
                }
                prompt_tokens[pos + 1]
            } else {
                let logits = if pos + 1 == prefilled {
                    self.state.logits_mut()
                } else {
                    self.model.forward(self.state, token, pos, self.parallel)?
                };
                self.sampler.sample(logits)?
            };
            pos += 1;
            if next == bos && !self.state.sliding_window() {
                stopped_on_bos = true;
                break;
            }
            if next == bos {
                // A sliding window runs every step asked for: BOS starts a new text, on a
                // new line, instead of ending this one.
                text.finish();
                out.write_all(b"\n").map_err(GenerateError::Write)?;
            } else {
                write_piece(self.tokenizer, &mut text, token, next, out)?;
            }
            on_token(TokenEvent {
                pos: pos - 1,
                token: next,
                from_prompt,
            });
            token = next;
        }
        text.finish();
        out.write_all(b"\n").map_err(GenerateError::Write)?;
        out.flush().map_err(GenerateError::Write)?;
        Ok(Summary {
            prompt_tokens: n_prompt,
            steps: pos,
            stopped_on_bos,
        })
    }
}

impl<P: Parallel> Generator<'_, '_, '_, '_, P> {
    /// Runs the prompt's positions (at most `steps`) through the model in batches and
    /// returns how many ran. A prompt that forces BOS after its start is left to the
    /// token-by-token loop, which stops there.
    fn prefill(&mut self, batch: &mut Batch<'_>, prompt: &[u32], steps: usize) -> Result<usize> {
        if prompt[1..].contains(&self.tokenizer.bos()) {
            return Ok(0);
        }
        let positions = prompt.len().min(steps);
        let capacity = batch.capacity();
        for (i, chunk) in prompt[..positions].chunks(capacity).enumerate() {
            self.model
                .forward_batch(self.state, batch, chunk, i * capacity, self.parallel)?;
        }
        Ok(positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Serial;
    use crate::sampler::{ProbIndex, Strategy};
    use crate::testutil::{bytes, v0_model, vocab_file, RAW};
    use std::vec::Vec;

    /// Calls `f` with a generator over the synthetic model, a tokenizer of `vocab` entries,
    /// a state of `context` positions (sliding if asked) and a sampler for `strategy`.
    fn with_generator<T>(
        vocab: usize,
        context: usize,
        sliding: bool,
        strategy: Strategy,
        f: impl FnOnce(&mut Generator<'_, '_, '_, '_, Serial>) -> T,
    ) -> T {
        let file = v0_model(RAW, true);
        let model = Model::from_bytes(bytes(&file)).unwrap();
        let tokenizer_bytes = vocab_file(vocab);
        let mut index = std::vec![0; 2 * vocab];
        let tokenizer = Tokenizer::new(&tokenizer_bytes, vocab, &mut index).unwrap();
        let mut buffer = std::vec![0.0; State::len_for(&model.config, context).unwrap()];
        let mut state = State::new(&model.config, context, &mut buffer).unwrap();
        state.set_sliding_window(sliding);
        let mut scratch = std::vec![ProbIndex::default(); vocab];
        let mut sampler = Sampler::new(strategy, 7, vocab, &mut scratch).unwrap();
        f(&mut Generator {
            model: &model,
            tokenizer: &tokenizer,
            state: &mut state,
            sampler: &mut sampler,
            parallel: &Serial,
        })
    }

    /// The outcome of a generation: its summary, its text and its token events.
    type Outcome = (Summary, Vec<u8>, Vec<TokenEvent>);

    /// Generates from `prompt` with `g`, the prompt in batches of `capacity` if not 0.
    fn generate_text(
        g: &mut Generator<'_, '_, '_, '_, Serial>,
        prompt: &str,
        steps: usize,
        capacity: usize,
    ) -> Outcome {
        let mut prompt_buf = std::vec![0; crate::prompt_buffer_len(prompt.len()).unwrap()];
        let (mut out, mut events) = (Vec::new(), Vec::new());
        let on_token = |e| events.push(e);
        let summary = if capacity == 0 {
            g.generate(
                prompt.as_bytes(),
                steps,
                &mut prompt_buf,
                &mut out,
                on_token,
            )
        } else {
            let config = g.model.config;
            let mut batch_buffer = std::vec![0.0; Batch::len_for(&config, capacity).unwrap()];
            let mut batch = Batch::new(&config, capacity, &mut batch_buffer).unwrap();
            g.generate_batched(
                Some(&mut batch),
                prompt.as_bytes(),
                steps,
                &mut prompt_buf,
                &mut out,
                on_token,
            )
        };
        (summary.unwrap(), out, events)
    }

    /// Runs a greedy generation on the synthetic model with a tokenizer of `vocab` entries.
    fn run<W: embedded_io::Write>(
        vocab: usize,
        context: usize,
        prompt: &str,
        steps: usize,
        out: &mut W,
    ) -> (
        core::result::Result<Summary, GenerateError<W::Error>>,
        Vec<TokenEvent>,
    ) {
        with_generator(vocab, context, false, Strategy::Argmax, |g| {
            let mut prompt_buf = std::vec![0; crate::prompt_buffer_len(prompt.len()).unwrap()];
            let mut events = Vec::new();
            let result = g.generate(prompt.as_bytes(), steps, &mut prompt_buf, out, |e| {
                events.push(e)
            });
            (result, events)
        })
    }

    #[test]
    fn steps_count_the_prompt_and_zero_means_the_context() {
        assert_eq!(resolve_steps(0, 16), 16);
        assert_eq!(resolve_steps(17, 16), 16);
        assert_eq!(resolve_steps(5, 16), 5);
        let mut out = Vec::new();
        let (summary, events) = run(300, 16, "ab", 6, &mut out);
        let summary = summary.unwrap();
        // prompt [BOS, " ab"]: one forced token, then sampled ones, 6 steps in all
        assert_eq!(summary.prompt_tokens, 2);
        assert_eq!(
            events[0],
            TokenEvent {
                pos: 0,
                token: 263,
                from_prompt: true
            }
        );
        assert!(events[1..].iter().all(|e| !e.from_prompt));
        assert_eq!(
            summary.steps,
            events.len() + usize::from(summary.stopped_on_bos)
        );
        assert!(summary.steps <= 6);
        assert!(out.starts_with(b"ab"), "BOS strips the leading space");
        assert_eq!(out.last(), Some(&b'\n'));
    }

    #[test]
    fn batched_prompts_generate_the_same_tokens_and_text() {
        let top_p = Strategy::new(1.0, 0.9).unwrap();
        let prompt = "ab ba é ab";
        for steps in [2, 5, 6, 7, 16] {
            let expected = with_generator(300, 16, false, top_p, |g| {
                generate_text(g, prompt, steps, 0)
            });
            assert!(expected.0.prompt_tokens > 4);
            for capacity in [1, 2, 4, 16] {
                let got = with_generator(300, 16, false, top_p, |g| {
                    generate_text(g, prompt, steps, capacity)
                });
                assert_eq!(got, expected, "capacity {capacity}, steps {steps}");
            }
        }
    }

    #[test]
    fn a_sliding_window_generates_past_the_context() {
        let top_p = Strategy::new(1.0, 0.9).unwrap();
        let run = |context: usize, sliding: bool, steps: usize| {
            with_generator(300, context, sliding, top_p, |g| {
                generate_text(g, "ab", steps, 0)
            })
        };
        // Within the context, sliding changes nothing until a BOS, which ends the text
        // without it and starts a new line with it.
        let (fixed, sliding) = (run(8, false, 8), run(8, true, 8));
        assert!(sliding.2.starts_with(&fixed.2), "{sliding:?} vs {fixed:?}");
        let fixed_text = &fixed.1[..fixed.1.len() - 1]; // without the final newline
        assert!(sliding.1.starts_with(fixed_text));
        // Past it, a 4-position window runs every step asked for (seq_len is 16).
        let (summary, text, events) = run(4, true, 50);
        assert_eq!(summary.steps, 50, "{summary:?}");
        assert!(!summary.stopped_on_bos);
        assert_eq!(events.len(), 50);
        assert!(events.iter().all(|e| (e.token as usize) < 300));
        assert_eq!(text.last(), Some(&b'\n'));
        // Without it, steps stop at the context.
        assert_eq!(run(4, false, 50).0.steps, 4);
    }

    #[test]
    fn rejects_mismatched_vocabularies_and_long_prompts() {
        let mut out = Vec::new();
        assert_eq!(
            run(266, 16, "ab", 4, &mut out).0,
            Err(GenerateError::Engine(Error::VocabularyMismatch {
                model: 300,
                tokenizer: 266
            }))
        );
        // A prompt longer than the context, when the whole context (0) or more steps are
        // asked for, is refused with its real token count: "ab" has no merge here, so 200
        // bytes are 1 + 100 tokens.
        for steps in [0, 5] {
            assert_eq!(
                run(300, 4, &"ab".repeat(100), steps, &mut out).0,
                Err(GenerateError::Engine(Error::PromptTooLong {
                    tokens: 101,
                    context: 4
                }))
            );
        }
        // "#0#0#0" has no merges beyond single characters: 1 + 1 + 6 tokens > context 4
        assert_eq!(
            run(300, 4, "#0#0#0", 0, &mut out).0,
            Err(GenerateError::Engine(Error::PromptTooLong {
                tokens: 8,
                context: 4
            }))
        );
    }

    /// As in llama2.c: steps below the prompt's length print that many prompt pieces.
    #[test]
    fn fewer_steps_than_prompt_tokens_print_the_first_pieces() {
        // [BOS, " ", "#", "0", "#", "0", "#", "0"]: the space vanishes after BOS.
        for (steps, text) in [(1, "\n"), (3, "#0\n"), (4, "#0#\n")] {
            let mut out = Vec::new();
            let (summary, events) = run(300, 4, "#0#0#0", steps, &mut out);
            let summary = summary.unwrap();
            assert_eq!((summary.prompt_tokens, summary.steps), (8, steps));
            assert!(!summary.stopped_on_bos);
            assert_eq!(events.len(), steps);
            assert!(events.iter().all(|e| e.from_prompt));
            assert_eq!(String::from_utf8_lossy(&out), text);
            for capacity in [1, 2, 4] {
                let batched = with_generator(300, 4, false, Strategy::Argmax, |g| {
                    generate_text(g, "#0#0#0", steps, capacity)
                });
                assert_eq!(
                    (batched.0, batched.1, batched.2),
                    (summary, out.clone(), events.clone())
                );
            }
        }
    }

    #[test]
    fn reports_sink_errors() {
        let mut tiny = [0u8; 1];
        let mut sink: &mut [u8] = &mut tiny;
        let (result, _) = run(300, 16, "ab", 6, &mut sink);
        assert!(matches!(result, Err(GenerateError::Write(_))));
    }
}
