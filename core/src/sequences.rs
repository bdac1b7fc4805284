//! Many sequences per weight read: independent continuations of one prompt, each with its
//! own KV cache, sampler and text, advanced together so that every step reads each weight
//! once for all of them ([`crate::Model::forward_sequences`]).
//!
//! Each sequence's tokens and text are exactly those [`crate::Generator`] gives its state
//! and sampler alone: the prompt is run once, on the first sequence, and its KV cache is
//! copied to the others; then each step's batched pass computes every output as a single
//! pass would. A sequence that chooses BOS ends and leaves the batch.

use crate::batch::Batch;
use crate::checkpoint::Model;
use crate::error::{Buffer, Error, Result};
use crate::generate::{resolve_steps, write_piece, GenerateError, Summary, TokenEvent};
use crate::parallel::Parallel;
use crate::sampler::Sampler;
use crate::state::State;
use crate::text::TextDecoder;
use crate::tokenizer::Tokenizer;

/// One sequence of a parallel run: its state and the token its next step runs.
pub struct Sequence<'b> {
    /// The sequence's KV cache and logits (its single-token activations go unused: the
    /// batch holds every sequence's vectors).
    pub state: State<'b>,
    /// The token [`crate::Model::forward_sequences`] runs next for this sequence.
    pub token: u32,
    /// The text rule's pending bytes of this sequence's text.
    text: TextDecoder,
    /// The sequence's index among the caller's: which sampler and output are its.
    id: usize,
}

impl core::fmt::Debug for Sequence<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sequence")
            .field("state", &self.state)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl<'b> Sequence<'b> {
    /// A sequence over `state`, whose next token is BOS until set.
    pub fn new(state: State<'b>) -> Self {
        Sequence {
            state,
            token: crate::tokenizer::BOS,
            text: TextDecoder::new(),
            id: 0,
        }
    }
}

/// Borrows everything a parallel generation needs, for `'g`: `sequences[i]` is continued
/// with `samplers[i]` (seeded as the caller likes, typically `seed + i`).
pub struct ParallelGenerator<'g, 'a, 'state, 'sampler, P: Parallel> {
    /// The weights.
    pub model: &'g Model<'a>,
    /// The tokenizer of the model's vocabulary.
    pub tokenizer: &'g Tokenizer<'a>,
    /// One per continuation, with states of one context, kernels and window setting;
    /// generation starts at position 0.
    pub sequences: &'g mut [Sequence<'state>],
    /// `samplers[i]` chooses the tokens of `sequences[i]`.
    pub samplers: &'g mut [Sampler<'sampler>],
    /// Runs the rows of each matrix product ([`crate::Serial`] or a thread pool).
    pub parallel: &'g P,
}

impl<P: Parallel> core::fmt::Debug for ParallelGenerator<'_, '_, '_, '_, P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ParallelGenerator")
            .field("config", &self.model.config)
            .field("sequences", &self.sequences.len())
            .finish_non_exhaustive()
    }
}

impl<P: Parallel> ParallelGenerator<'_, '_, '_, '_, P> {
    /// Continues `prompt` once per sequence, writing sequence `i`'s text to `outs[i]` as
    /// [`crate::Generator::generate_batched`] would write it for `sequences[i].state` and
    /// `samplers[i]` alone: the same bytes, final newline included. `batch` (capacity at
    /// least the number of sequences) runs the prompt and then every step's tokens;
    /// `prompt_buf` is as for [`crate::Generator::generate`]. `on_token(i, event)` sees
    /// every token of sequence `i` after its text is written.
    ///
    /// The summary's `steps` are the longest sequence's, and `stopped_on_bos` says whether
    /// every sequence ended on BOS. On return the sequences and samplers are in their
    /// original order again.
    #[allow(clippy::too_many_arguments)]
    pub fn generate<W: embedded_io::Write>(
        &mut self,
        batch: &mut Batch<'_>,
        prompt: &[u8],
        steps: usize,
        prompt_buf: &mut [u32],
        outs: &mut [W],
        mut on_token: impl FnMut(usize, TokenEvent),
    ) -> core::result::Result<Summary, GenerateError<W::Error>> {
        self.check(batch, outs.len())?;
        let model = self.model;
        let (context, sliding) = (
            self.sequences[0].state.context(),
            self.sequences[0].state.sliding_window(),
        );
        let n_prompt = self.tokenizer.encode(prompt, true, false, prompt_buf)?;
        // The prompt rules of `Generator::generate_batched`.
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
        let steps = if sliding && steps != 0 {
            steps
        } else {
            resolve_steps(steps, context)
        };
        let prompt_tokens = &prompt_buf[..n_prompt];
        for (id, sequence) in self.sequences.iter_mut().enumerate() {
            sequence.id = id;
            sequence.text = TextDecoder::new();
        }
        let bos = self.tokenizer.bos();

        // The prompt, identical for every sequence: run on the first one only.
        let prefilled = self.prefill(batch, prompt_tokens, steps)?;
        let mut token = prompt_tokens[0];
        let mut pos = 0;
        let mut stopped_on_bos = false;
        while pos < steps && pos + 1 < n_prompt {
            if pos >= prefilled {
                let lead = &mut self.sequences[0].state;
                model.forward(lead, token, pos, self.parallel)?;
            }
            let next = prompt_tokens[pos + 1];
            pos += 1;
            if next == bos && !sliding {
                stopped_on_bos = true;
                break;
            }
            let event = TokenEvent {
                pos: pos - 1,
                token: next,
                from_prompt: true,
            };
            for sequence in self.sequences.iter_mut() {
                let out = &mut outs[sequence.id];
                emit(self.tokenizer, &mut sequence.text, token, next, bos, out)?;
                on_token(sequence.id, event);
            }
            token = next;
        }

        let mut active = self.sequences.len();
        let sampling = !stopped_on_bos && pos < steps;
        if sampling {
            // The prompt's last position gives every sequence the same logits.
            let (lead, rest) = self.sequences.split_at_mut(1);
            let lead = &mut lead[0].state;
            if pos + 1 != prefilled {
                model.forward(lead, token, pos, self.parallel)?;
            }
            for sequence in rest {
                sequence.state.copy_history_from(lead, pos + 1);
            }
            for sequence in self.sequences.iter_mut() {
                sequence.token = token;
            }
        }
        let mut first_step = true;
        let mut ended_on_bos = 0;
        while sampling && pos < steps && active > 0 {
            if !first_step {
                let running = &mut self.sequences[..active];
                model.forward_sequences(running, batch, pos, self.parallel)?;
            }
            first_step = false;
            pos += 1;
            let mut i = 0;
            while i < active {
                let sequence = &mut self.sequences[i];
                let next = self.samplers[i].sample(sequence.state.logits_mut())?;
                let out = &mut outs[sequence.id];
                if next == bos && !sliding {
                    finish(&mut sequence.text, out)?;
                    ended_on_bos += 1;
                    // Out of the batch: the last running sequence takes its place.
                    active -= 1;
                    self.sequences.swap(i, active);
                    self.samplers.swap(i, active);
                    continue;
                }
                emit(self.tokenizer, &mut sequence.text, sequence.token, next, bos, out)?;
                on_token(
                    sequence.id,
                    TokenEvent {
                        pos: pos - 1,
                        token: next,
                        from_prompt: false,
                    },
                );
                sequence.token = next;
                i += 1;
            }
        }
        // The sequences still running (all of them if the prompt ended the text).
        for sequence in &mut self.sequences[..active] {
            finish(&mut sequence.text, &mut outs[sequence.id])?;
        }
        self.restore_order();
        Ok(Summary {
            prompt_tokens: n_prompt,
            steps: pos,
            stopped_on_bos: stopped_on_bos || ended_on_bos == self.sequences.len(),
        })
    }

    /// Checks the counts, the vocabulary and that the states can share a prompt and a batch.
    fn check(&self, batch: &Batch<'_>, outputs: usize) -> Result<()> {
        let n = self.sequences.len();
        let Some(first) = self.sequences.first() else {
            return Err(Error::SequenceCount {
                what: "sequences",
                expected: 1,
                actual: 0,
            });
        };
        for (what, actual) in [("samplers", self.samplers.len()), ("outputs", outputs)] {
            if actual != n {
                return Err(Error::SequenceCount {
                    what,
                    expected: n,
                    actual,
                });
            }
        }
        let config = &self.model.config;
        if self.tokenizer.vocab_size() != config.vocab_size {
            return Err(Error::VocabularyMismatch {
                model: config.vocab_size,
                tokenizer: self.tokenizer.vocab_size(),
            });
        }
        let settings = |s: &State<'_>| (s.context(), s.kernels(), s.sliding_window());
        for sequence in self.sequences.iter() {
            if sequence.state.config() != config || batch.config != *config {
                return Err(Error::StateMismatch);
            }
            if settings(&sequence.state) != settings(&first.state) {
                return Err(Error::SequencesDiffer);
            }
        }
        if batch.capacity() < n {
            return Err(Error::BufferTooSmall {
                buffer: Buffer::Batch,
                needed: n,
                actual: batch.capacity(),
            });
        }
        Ok(())
    }

    /// Runs the prompt's positions (at most `steps`) on the first sequence in batches, as
    /// `Generator` does, and returns how many ran.
    fn prefill(&mut self, batch: &mut Batch<'_>, prompt: &[u32], steps: usize) -> Result<usize> {
        if prompt[1..].contains(&self.tokenizer.bos()) {
            return Ok(0);
        }
        let positions = prompt.len().min(steps);
        let capacity = batch.capacity();
        let lead = &mut self.sequences[0].state;
        for (i, chunk) in prompt[..positions].chunks(capacity).enumerate() {
            self.model
                .forward_batch(lead, batch, chunk, i * capacity, self.parallel)?;
        }
        Ok(positions)
    }

    /// Puts the sequences (and their samplers) back in the caller's order.
    fn restore_order(&mut self) {
        for i in 0..self.sequences.len() {
            while self.sequences[i].id != i {
                let j = self.sequences[i].id;
                self.sequences.swap(i, j);
                self.samplers.swap(i, j);
            }
        }
    }
}

/// Writes the text of `next` after `prev`, or a new line for a BOS that does not end the
/// text (a sliding window's), as `Generator` does.
fn emit<W: embedded_io::Write>(
    tokenizer: &Tokenizer<'_>,
    text: &mut TextDecoder,
    prev: u32,
    next: u32,
    bos: u32,
    out: &mut W,
) -> core::result::Result<(), GenerateError<W::Error>> {
    if next == bos {
        text.finish();
        return out.write_all(b"\n").map_err(GenerateError::Write);
    }
    write_piece(tokenizer, text, prev, next, out)
}

/// Ends a sequence's text with the final newline.
fn finish<W: embedded_io::Write>(
    text: &mut TextDecoder,
    out: &mut W,
) -> core::result::Result<(), GenerateError<W::Error>> {
    text.finish();
    out.write_all(b"\n").map_err(GenerateError::Write)?;
    out.flush().map_err(GenerateError::Write)
}
