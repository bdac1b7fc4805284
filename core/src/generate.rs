//! Generation: prompt in, text out to an [`embedded_io::Write`] sink, with llama2.c's rules
//! (prompt tokens forced, steps count the prompt, stop when BOS is chosen).

use crate::checkpoint::Model;
use crate::error::Error;
use crate::parallel::Parallel;
use crate::sampler::Sampler;
use crate::state::State;
use crate::text::TextDecoder;
use crate::tokenizer::{Tokenizer, BOS};

/// A failure while generating: from the engine, or from the sink text is written to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GenerateError<E> {
    Engine(Error),
    Write(E),
}

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

/// The steps llama2.c runs when asked for `requested`: 0 or more than `limit` mean `limit`.
pub fn resolve_steps(requested: usize, limit: usize) -> usize {
    if requested == 0 || requested > limit {
        limit
    } else {
        requested
    }
}

/// Borrows everything one generation needs.
pub struct Generator<'g, 'a, 'b, P: Parallel> {
    pub model: &'g Model<'a>,
    pub tokenizer: &'g Tokenizer<'a>,
    pub state: &'g mut State<'b>,
    pub sampler: &'g mut Sampler<'b>,
    pub parallel: &'g P,
}

impl<P: Parallel> core::fmt::Debug for Generator<'_, '_, '_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Generator")
            .field("config", &self.model.config)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl<P: Parallel> Generator<'_, '_, '_, P> {
    /// Encodes `prompt` into `prompt_buf` (at least `prompt.len() + 3` long), runs `steps`
    /// positions (resolved by [`resolve_steps`] against the state's context) and writes each
    /// token's text to `out` as soon as it is known, flushing after each. A final newline is
    /// written. `on_token` sees every token after its text is written.
    pub fn generate<W: embedded_io::Write>(
        &mut self,
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
        let steps = resolve_steps(steps, self.state.context());
        let n_prompt = self.tokenizer.encode(prompt, true, false, prompt_buf)?;
        if n_prompt > self.state.context() {
            return Err(Error::PromptTooLong {
                tokens: n_prompt,
                context: self.state.context(),
            }
            .into());
        }
        let prompt_tokens = &prompt_buf[..n_prompt];

        let mut text = TextDecoder::new();
        let mut token = prompt_tokens[0];
        let mut pos = 0;
        let mut stopped_on_bos = false;
        while pos < steps {
            let logits = self.model.forward(self.state, token, pos, self.parallel)?;
            let from_prompt = pos + 1 < n_prompt;
            let next = if from_prompt {
                prompt_tokens[pos + 1]
            } else {
                self.sampler.sample(logits)?
            };
            pos += 1;
            if next == BOS {
                stopped_on_bos = true;
                break;
            }
            let piece = self.tokenizer.decode(token, next)?;
            let mut written = Ok(());
            text.push(piece, |bytes| {
                if written.is_ok() {
                    written = out.write_all(bytes);
                }
            });
            written.map_err(GenerateError::Write)?;
            out.flush().map_err(GenerateError::Write)?;
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
