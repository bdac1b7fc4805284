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
                emit(
                    self.tokenizer,
                    &mut sequence.text,
                    sequence.token,
                    next,
                    bos,
                    out,
                )?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::Generator;
    use crate::kernels::Kernels;
    use crate::parallel::Serial;
    use crate::sampler::{ProbIndex, Strategy};
    use crate::testutil::{bytes, v0_model, vocab_file, RAW};
    use std::vec::Vec;

    const VOCAB: usize = 300;
    const CONTEXT: usize = 16;

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// `count` state buffers for `model` of `context` positions.
    fn buffers(model: &Model<'_>, count: usize, context: usize) -> Vec<Vec<f32>> {
        let len = State::len_for(&model.config, context).unwrap();
        (0..count).map(|_| std::vec![0.0; len]).collect()
    }

    #[test]
    fn each_sequence_gets_the_logits_of_its_state_alone() {
        let file = v0_model(RAW, true);
        let model = Model::from_bytes(bytes(&file)).unwrap();
        let c = model.config;
        // Three histories of different tokens; then one more token each, batched.
        let histories: [&[u32]; 3] = [&[1, 5, 299, 7], &[1, 6, 2, 9], &[1, 5, 299, 8]];
        let next = [11, 12, 13];
        let mut alone = Vec::new();
        for (history, &token) in histories.iter().zip(&next) {
            let mut buffer = buffers(&model, 1, CONTEXT).remove(0);
            let mut state = State::new(&c, CONTEXT, &mut buffer).unwrap();
            for (pos, &t) in history.iter().enumerate() {
                model.forward(&mut state, t, pos, &Serial).unwrap();
            }
            let logits = model.forward(&mut state, token, 4, &Serial).unwrap();
            alone.push(bits(logits));
        }
        let mut state_buffers = buffers(&model, 3, CONTEXT);
        let mut sequences: Vec<Sequence<'_>> = state_buffers
            .iter_mut()
            .map(|b| Sequence::new(State::new(&c, CONTEXT, b).unwrap()))
            .collect();
        let mut batch_buffer = std::vec![0.0; Batch::len_for(&c, 4).unwrap()];
        let mut batch = Batch::new(&c, 4, &mut batch_buffer).unwrap();
        for pos in 0..4 {
            for (sequence, history) in sequences.iter_mut().zip(&histories) {
                sequence.token = history[pos];
            }
            model
                .forward_sequences(&mut sequences, &mut batch, pos, &Serial)
                .unwrap();
        }
        for (sequence, &token) in sequences.iter_mut().zip(&next) {
            sequence.token = token;
        }
        model
            .forward_sequences(&mut sequences, &mut batch, 4, &Serial)
            .unwrap();
        for (sequence, expected) in sequences.iter().zip(&alone) {
            assert_eq!(&bits(sequence.state.logits()), expected);
        }
        assert_ne!(
            alone[0], alone[2],
            "different histories give different logits"
        );
    }

    #[test]
    fn forward_sequences_checks_its_arguments() {
        let file = v0_model(RAW, true);
        let model = Model::from_bytes(bytes(&file)).unwrap();
        let c = model.config;
        let mut state_buffers = buffers(&model, 3, 4);
        let mut sequences: Vec<Sequence<'_>> = state_buffers
            .iter_mut()
            .map(|b| Sequence::new(State::new(&c, 4, b).unwrap()))
            .collect();
        let mut batch_buffer = std::vec![0.0; Batch::len_for(&c, 2).unwrap()];
        let mut batch = Batch::new(&c, 2, &mut batch_buffer).unwrap();
        let mut run = |sequences: &mut [Sequence<'_>], pos| {
            model.forward_sequences(sequences, &mut batch, pos, &Serial)
        };
        assert_eq!(
            run(&mut [], 0).unwrap_err(),
            Error::SequenceCount {
                what: "sequences",
                expected: 1,
                actual: 0
            }
        );
        assert_eq!(
            run(&mut sequences, 0).unwrap_err(),
            Error::BufferTooSmall {
                buffer: Buffer::Batch,
                needed: 3,
                actual: 2
            }
        );
        assert_eq!(
            run(&mut sequences[..2], 4).unwrap_err(),
            Error::PositionOutOfRange { pos: 4, context: 4 }
        );
        sequences[1].token = 300;
        assert_eq!(
            run(&mut sequences[..2], 0).unwrap_err(),
            Error::TokenOutOfRange {
                token: 300,
                vocab_size: 300
            }
        );
        sequences[1].token = 1;
        sequences[1].state.set_sliding_window(true);
        assert_eq!(
            run(&mut sequences[..2], 0).unwrap_err(),
            Error::SequencesDiffer
        );
        sequences[1].state.set_sliding_window(false);
        assert!(run(&mut sequences[..2], 0).is_ok());
        // A state of another model is refused.
        let other = v0_model([8, 12, 1, 4, 2, 300, 16], true);
        let other = Model::from_bytes(bytes(&other)).unwrap();
        let mut other_batch_buffer = std::vec![0.0; Batch::len_for(&other.config, 2).unwrap()];
        let mut other_batch = Batch::new(&other.config, 2, &mut other_batch_buffer).unwrap();
        assert_eq!(
            other
                .forward_sequences(&mut sequences[..1], &mut other_batch, 0, &Serial)
                .unwrap_err(),
            Error::StateMismatch
        );
    }

    /// What one generation printed, and its summary.
    type Outcome = (Summary, Vec<u8>);

    /// `prompt` continued alone by a state of `context` positions (sliding if asked) with
    /// `strategy` and `seed`, the prompt in batches of 4.
    fn alone(prompt: &str, steps: usize, context: usize, sliding: bool, seed: u64) -> Outcome {
        let file = v0_model(RAW, true);
        let model = Model::from_bytes(bytes(&file)).unwrap();
        let tokenizer_bytes = vocab_file(VOCAB);
        let mut index = std::vec![0; 2 * VOCAB];
        let tokenizer = Tokenizer::new(&tokenizer_bytes, VOCAB, &mut index).unwrap();
        let mut buffer = buffers(&model, 1, context).remove(0);
        let mut state = State::new(&model.config, context, &mut buffer).unwrap();
        state.set_sliding_window(sliding);
        let mut scratch = std::vec![ProbIndex::default(); VOCAB];
        let strategy = Strategy::new(1.0, 0.9).unwrap();
        let mut sampler = Sampler::new(strategy, seed, VOCAB, &mut scratch).unwrap();
        let mut batch_buffer = std::vec![0.0; Batch::len_for(&model.config, 4).unwrap()];
        let mut batch = Batch::new(&model.config, 4, &mut batch_buffer).unwrap();
        let mut prompt_buf = std::vec![0; crate::prompt_buffer_len(prompt.len()).unwrap()];
        let mut out = Vec::new();
        let summary = Generator {
            model: &model,
            tokenizer: &tokenizer,
            state: &mut state,
            sampler: &mut sampler,
            parallel: &Serial,
        }
        .generate_batched(
            Some(&mut batch),
            prompt.as_bytes(),
            steps,
            &mut prompt_buf,
            &mut out,
            |_| {},
        )
        .unwrap();
        (summary, out)
    }

    /// Calls `f` with a parallel generator of `seeds.len()` sequences (sampler `i` seeded
    /// `seeds[i]`) and a batch of `capacity`.
    fn with_parallel<T>(
        seeds: &[u64],
        context: usize,
        sliding: bool,
        capacity: usize,
        f: impl FnOnce(&mut ParallelGenerator<'_, '_, '_, '_, Serial>, &mut Batch<'_>) -> T,
    ) -> T {
        let file = v0_model(RAW, true);
        let model = Model::from_bytes(bytes(&file)).unwrap();
        let c = model.config;
        let tokenizer_bytes = vocab_file(VOCAB);
        let mut index = std::vec![0; 2 * VOCAB];
        let tokenizer = Tokenizer::new(&tokenizer_bytes, VOCAB, &mut index).unwrap();
        let mut state_buffers = buffers(&model, seeds.len(), context);
        let mut sequences: Vec<Sequence<'_>> = state_buffers
            .iter_mut()
            .map(|b| {
                let mut state = State::new(&c, context, b).unwrap();
                state.set_sliding_window(sliding);
                Sequence::new(state)
            })
            .collect();
        let mut scratch = std::vec![ProbIndex::default(); VOCAB * seeds.len()];
        let strategy = Strategy::new(1.0, 0.9).unwrap();
        let mut samplers: Vec<Sampler<'_>> = scratch
            .chunks_exact_mut(VOCAB)
            .zip(seeds)
            .map(|(s, &seed)| Sampler::new(strategy, seed, VOCAB, s).unwrap())
            .collect();
        let mut batch_buffer = std::vec![0.0; Batch::len_for(&c, capacity).unwrap()];
        let mut batch = Batch::new(&c, capacity, &mut batch_buffer).unwrap();
        f(
            &mut ParallelGenerator {
                model: &model,
                tokenizer: &tokenizer,
                sequences: &mut sequences,
                samplers: &mut samplers,
                parallel: &Serial,
            },
            &mut batch,
        )
    }

    /// Continues `prompt` in parallel with `seeds`; returns the summary, each sequence's
    /// text and its token events.
    fn parallel(
        prompt: &str,
        steps: usize,
        context: usize,
        sliding: bool,
        seeds: &[u64],
    ) -> (Summary, Vec<Vec<u8>>, Vec<Vec<TokenEvent>>) {
        with_parallel(seeds, context, sliding, seeds.len().max(4), |g, batch| {
            let mut prompt_buf = std::vec![0; crate::prompt_buffer_len(prompt.len()).unwrap()];
            let mut outs = std::vec![Vec::new(); seeds.len()];
            let mut events = std::vec![Vec::new(); seeds.len()];
            let summary = g
                .generate(
                    batch,
                    prompt.as_bytes(),
                    steps,
                    &mut prompt_buf,
                    &mut outs,
                    |i, e| events[i].push(e),
                )
                .unwrap();
            // The caller's order is back (samplers move with their sequences).
            assert!(g.sequences.iter().enumerate().all(|(i, s)| s.id == i));
            (summary, outs, events)
        })
    }

    #[test]
    fn every_sequence_prints_what_its_seed_prints_alone() {
        let seeds: Vec<u64> = (40..47).collect();
        for (prompt, steps, context, sliding) in [
            ("ab ba é ab", 16, 16, false),
            ("ab", 6, 16, false),
            ("#0#0#0", 3, 4, false), // fewer steps than prompt tokens
            ("#0#0#0", 8, 8, false), // the prompt fills all but the last step
            ("", 12, 12, false),
            ("ab", 40, 8, true), // past the context, BOS starting new lines
        ] {
            let (summary, outs, events) = parallel(prompt, steps, context, sliding, &seeds);
            let mut longest = 0;
            for (i, &seed) in seeds.iter().enumerate() {
                let (single, text) = alone(prompt, steps, context, sliding, seed);
                assert_eq!(outs[i], text, "{prompt:?} steps {steps}, seed {seed}");
                assert_eq!(single.prompt_tokens, summary.prompt_tokens);
                longest = longest.max(single.steps);
                assert_eq!(
                    single.steps,
                    events[i].len() + usize::from(single.stopped_on_bos),
                    "{prompt:?}, seed {seed}"
                );
            }
            assert_eq!(summary.steps, longest);
        }
        // Different seeds do give different texts.
        let (_, outs, _) = parallel("ab", 16, 16, false, &seeds);
        assert!(outs.iter().any(|t| *t != outs[0]));
    }

    #[test]
    fn sequences_that_choose_bos_leave_the_batch_and_the_others_go_on() {
        let seeds: Vec<u64> = (1..=64).collect();
        let (summary, outs, events) = parallel("ab", 16, 16, false, &seeds);
        let ended_early = events.iter().filter(|e| e.len() < 15).count();
        assert!(
            ended_early > 0 && ended_early < seeds.len(),
            "{ended_early}"
        );
        assert!(!summary.stopped_on_bos);
        assert_eq!(summary.steps, 16);
        for (i, &seed) in seeds.iter().enumerate() {
            assert_eq!(outs[i], alone("ab", 16, 16, false, seed).1, "seed {seed}");
        }
    }

    #[test]
    fn parallel_generation_checks_its_arguments() {
        let check = |seeds: &[u64], capacity: usize, outputs: usize, expected: Error| {
            with_parallel(seeds, 8, false, capacity, |g, batch| {
                let mut prompt_buf = [0; 16];
                let mut outs = std::vec![Vec::new(); outputs];
                let got = g.generate(batch, b"ab", 4, &mut prompt_buf, &mut outs, |_, _| {});
                assert_eq!(got.unwrap_err(), GenerateError::Engine(expected));
            });
        };
        let count = |what, expected, actual| Error::SequenceCount {
            what,
            expected,
            actual,
        };
        check(&[], 2, 0, count("sequences", 1, 0));
        check(&[1, 2], 2, 3, count("outputs", 2, 3));
        check(
            &[1, 2, 3],
            2,
            3,
            Error::BufferTooSmall {
                buffer: Buffer::Batch,
                needed: 3,
                actual: 2,
            },
        );
        with_parallel(&[1, 2], 8, false, 2, |g, batch| {
            let mut outs = std::vec![Vec::new(); 2];
            let mut prompt_buf = [0; 16];
            let mut run = |g: &mut ParallelGenerator<'_, '_, '_, '_, Serial>,
                           batch: &mut Batch<'_>| {
                g.generate(batch, b"ab", 4, &mut prompt_buf, &mut outs, |_, _| {})
                    .unwrap_err()
            };
            g.sequences[1].state.set_kernels(Kernels::scalar());
            g.sequences[0].state.set_kernels(Kernels::native());
            if Kernels::scalar() != Kernels::native() {
                assert_eq!(run(g, batch), GenerateError::Engine(Error::SequencesDiffer));
            }
            g.sequences[1].state.set_kernels(Kernels::native());
            g.sequences[1].state.set_sliding_window(true);
            assert_eq!(run(g, batch), GenerateError::Engine(Error::SequencesDiffer));
            g.sequences[1].state.set_sliding_window(false);
            let samplers = core::mem::take(&mut g.samplers);
            g.samplers = &mut samplers[..1];
            assert_eq!(
                run(g, batch),
                GenerateError::Engine(count("samplers", 2, 1))
            );
        });
    }
}
