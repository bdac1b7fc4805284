//! The transformer: tokens at consecutive positions in, logits of the last one out.
//!
//! Follows llama2.c's `forward()` step for step (RMSNorm, RoPE, grouped-query attention,
//! SwiGLU), so that the scalar path reproduces the reference's floats. One token at a time
//! ([`Model::forward`]) is the same code as a batch ([`Model::forward_batch`]) with one
//! token: a batch only changes how often each weight is read, never a result.

use crate::activations::Activations;
use crate::attention::{attend, Cache};
use crate::batch::Batch;
use crate::checkpoint::Model;
use crate::config::Config;
use crate::error::{Buffer, Error, Result};
use crate::kernels::Kernels;
use crate::math::{add_assign, matmul, rmsnorm, rmsnorm_in_place};
use crate::parallel::Parallel;
use crate::sequences::Sequence;
use crate::state::State;
use crate::weights::{LayerWeights, Matrix, Weights};

impl Model<'_> {
    /// Runs `token` at position `pos` and returns the logits of the next token.
    ///
    /// Positions must be run in order from 0: position `pos` attends to the keys and values
    /// that earlier calls stored in `state`.
    pub fn forward<'s>(
        &self,
        state: &'s mut State<'_>,
        token: u32,
        pos: usize,
        parallel: &impl Parallel,
    ) -> Result<&'s mut [f32]> {
        self.check(state, core::slice::from_ref(&token), pos)?;
        let run = Run::new(self, state.kernels);
        let (mut cache, acts) = OneSequence::split(state, pos);
        run.tokens(acts, &[token], &mut cache, parallel);
        run.classify(acts, 0, cache.logits, parallel);
        Ok(state.logits)
    }

    /// Runs `tokens` at positions `first_pos..first_pos + tokens.len()` in one pass, using
    /// `batch` for the per-token vectors, and returns the logits after the last token.
    /// Equivalent to calling [`Model::forward`] for each token in turn, bit for bit.
    pub fn forward_batch<'s>(
        &self,
        state: &'s mut State<'_>,
        batch: &mut Batch<'_>,
        tokens: &[u32],
        first_pos: usize,
        parallel: &impl Parallel,
    ) -> Result<&'s mut [f32]> {
        self.check(state, tokens, first_pos)?;
        self.check_batch(batch, tokens.len())?;
        // Past the context, a batch's later keys would overwrite ring slots its earlier
        // tokens still attend to: those positions run one at a time.
        let batched = tokens.len().min(state.context.saturating_sub(first_pos));
        if batched < tokens.len() {
            if batched > 0 {
                self.forward_batch(state, batch, &tokens[..batched], first_pos, parallel)?;
            }
            for (i, &token) in tokens.iter().enumerate().skip(batched) {
                self.forward(state, token, first_pos + i, parallel)?;
            }
            return Ok(state.logits);
        }
        let run = Run::new(self, state.kernels);
        let (mut cache, _) = OneSequence::split(state, first_pos);
        run.tokens(&mut batch.acts, tokens, &mut cache, parallel);
        run.classify(&mut batch.acts, tokens.len() - 1, cache.logits, parallel);
        Ok(state.logits)
    }

    /// Runs one token per sequence, each sequence's [`Sequence::token`] at position `pos` of
    /// its own state, in one pass that reads each weight once for all of them (`batch`
    /// holds their vectors), and leaves each sequence's next-token logits in its state
    /// ([`State::logits`]). Every sequence's logits are bit for bit those
    /// [`Model::forward`] gives its state alone.
    ///
    /// The states must be for this model and agree on kernels and sliding window
    /// ([`Error::SequencesDiffer`]); at least one sequence, at most `batch.capacity()`.
    pub fn forward_sequences(
        &self,
        sequences: &mut [Sequence<'_>],
        batch: &mut Batch<'_>,
        pos: usize,
        parallel: &impl Parallel,
    ) -> Result<()> {
        let Some(first) = sequences.first() else {
            return Err(Error::SequenceCount {
                what: "sequences",
                expected: 1,
                actual: 0,
            });
        };
        let (kernels, sliding) = (first.state.kernels, first.state.sliding);
        for sequence in sequences.iter() {
            self.check(&sequence.state, &[sequence.token], pos)?;
            if (sequence.state.kernels, sequence.state.sliding) != (kernels, sliding) {
                return Err(Error::SequencesDiffer);
            }
        }
        self.check_batch(batch, sequences.len())?;
        let run = Run::new(self, kernels);
        let n = sequences.len();
        let a = &mut batch.acts;
        for (x, sequence) in a.x.chunks_exact_mut(self.config.dim).zip(&*sequences) {
            self.weights
                .token_embedding
                .copy_row(sequence.token as usize, x);
        }
        run.layers(a, n, &mut ManySequences { sequences, pos }, parallel);
        run.classify_each(a, sequences, parallel);
        Ok(())
    }

    /// Checks a call's arguments: a state for this model, tokens in the vocabulary, and
    /// positions inside the context.
    fn check(&self, state: &State<'_>, tokens: &[u32], first_pos: usize) -> Result<()> {
        let c = &self.config;
        if state.config != *c {
            return Err(Error::StateMismatch);
        }
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= c.vocab_size) {
            return Err(Error::TokenOutOfRange {
                token,
                vocab_size: c.vocab_size,
            });
        }
        let last = first_pos.saturating_add(tokens.len().max(1) - 1);
        if last >= state.context && !state.sliding {
            return Err(Error::PositionOutOfRange {
                pos: last,
                context: state.context,
            });
        }
        Ok(())
    }

    /// Checks that `batch` is for this model and holds `tokens` tokens.
    fn check_batch(&self, batch: &Batch<'_>, tokens: usize) -> Result<()> {
        if batch.config != self.config {
            return Err(Error::StateMismatch);
        }
        if tokens > batch.capacity() {
            return Err(Error::BufferTooSmall {
                buffer: Buffer::Batch,
                needed: tokens,
                actual: batch.capacity(),
            });
        }
        Ok(())
    }
}

/// One layer's KV cache and attention scratch for one token of a pass, and its position.
struct TokenCache<'c> {
    /// `[context][kv_dim]` keys of the layer, a ring (see [`Cache`]).
    keys: &'c mut [f32],
    /// `[context][kv_dim]` values of the layer.
    values: &'c mut [f32],
    /// Attention scores, `[n_heads][context]`.
    att: &'c mut [f32],
    /// The token's position.
    pos: usize,
}

/// Where each token of a pass keeps its keys and values: the one thing that differs
/// between a sequence's consecutive tokens ([`OneSequence`]) and one token of each of
/// several sequences ([`ManySequences`]).
trait Caches {
    /// Layer `l`'s cache for token `b` of the pass.
    fn token(&mut self, c: &Config, l: usize, b: usize) -> TokenCache<'_>;
    /// Whether every token of the pass is in the same cache (one sequence's).
    fn one_sequence(&self) -> bool;
}

/// Layer `l`'s part of a `[n_layers][context][kv_dim]` cache.
fn layer_of<'c>(cache: &'c mut [f32], c: &Config, context: usize, l: usize) -> &'c mut [f32] {
    let len = context * c.kv_dim();
    &mut cache[l * len..(l + 1) * len]
}

/// The tokens of one state's sequence at consecutive positions from `first_pos`.
struct OneSequence<'r> {
    keys: &'r mut [f32],
    values: &'r mut [f32],
    att: &'r mut [f32],
    logits: &'r mut [f32],
    context: usize,
    first_pos: usize,
}

impl<'r> OneSequence<'r> {
    /// Splits `state` into its caches (for tokens from `first_pos`) and its own
    /// single-token activations.
    fn split<'b>(state: &'r mut State<'b>, first_pos: usize) -> (Self, &'r mut Activations<'b>) {
        let cache = OneSequence {
            keys: state.key_cache,
            values: state.value_cache,
            att: state.att,
            logits: state.logits,
            context: state.context,
            first_pos,
        };
        (cache, &mut state.acts)
    }
}

impl Caches for OneSequence<'_> {
    fn token(&mut self, c: &Config, l: usize, b: usize) -> TokenCache<'_> {
        TokenCache {
            keys: layer_of(self.keys, c, self.context, l),
            values: layer_of(self.values, c, self.context, l),
            att: self.att,
            pos: self.first_pos + b,
        }
    }

    fn one_sequence(&self) -> bool {
        true
    }
}

/// One token of each sequence, all at position `pos`.
struct ManySequences<'r, 's> {
    sequences: &'r mut [Sequence<'s>],
    pos: usize,
}

impl Caches for ManySequences<'_, '_> {
    fn token(&mut self, c: &Config, l: usize, b: usize) -> TokenCache<'_> {
        let state = &mut self.sequences[b].state;
        TokenCache {
            keys: layer_of(state.key_cache, c, state.context, l),
            values: layer_of(state.value_cache, c, state.context, l),
            att: state.att,
            pos: self.pos,
        }
    }

    fn one_sequence(&self) -> bool {
        false
    }
}

/// The model-wide parts of a pass.
struct Run<'r, 'w> {
    c: &'r Config,
    w: &'r Weights<'w>,
    k: Kernels,
    /// RMSNorm epsilon and RoPE base of the model.
    rms_eps: f32,
    rope_base: f32,
}

impl<'r, 'w> Run<'r, 'w> {
    fn new(model: &'r Model<'w>, k: Kernels) -> Self {
        Run {
            c: &model.config,
            w: &model.weights,
            k,
            rms_eps: model.numerics.rms_eps,
            rope_base: model.numerics.rope_base,
        }
    }

    /// Runs every layer for `tokens` (checked by the caller), leaving each token's residual
    /// stream in `a.x`.
    fn tokens(
        &self,
        a: &mut Activations<'_>,
        tokens: &[u32],
        caches: &mut impl Caches,
        parallel: &impl Parallel,
    ) {
        let dim = self.c.dim;
        for (x, &token) in a.x.chunks_exact_mut(dim).zip(tokens) {
            self.w.token_embedding.copy_row(token as usize, x);
        }
        self.layers(a, tokens.len(), caches, parallel);
    }

    /// Runs every layer for the `n` embedded tokens in `a.x`.
    fn layers(
        &self,
        a: &mut Activations<'_>,
        n: usize,
        caches: &mut impl Caches,
        parallel: &impl Parallel,
    ) {
        let head_size = self.c.head_size();
        for (b, rotation) in a.rope.chunks_exact_mut(head_size).take(n).enumerate() {
            rope_rotation(rotation, caches.token(self.c, 0, b).pos, self.rope_base);
        }
        for l in 0..self.c.n_layers {
            let layer = self.w.layer(self.c, l);
            self.attention_block(a, n, l, &layer, caches, parallel);
            self.ffn_block(a, n, &layer, parallel);
        }
    }

    /// `x += wo · attention(rmsnorm(x))` for layer `l`, storing each token's key and value
    /// in its cache.
    fn attention_block(
        &self,
        a: &mut Activations<'_>,
        n: usize,
        l: usize,
        w: &LayerWeights<'_>,
        caches: &mut impl Caches,
        parallel: &impl Parallel,
    ) {
        let (c, k, eps) = (self.c, self.k, self.rms_eps);
        let (dim, kv_dim) = (c.dim, c.kv_dim());
        // The ring slot of a token's position in a cache of `context` slots.
        let slot = |cache: &TokenCache<'_>| {
            let context = cache.keys.len() / kv_dim;
            cache.pos % context * kv_dim..(cache.pos % context + 1) * kv_dim
        };

        norm_each(k, &mut a.xb[..n * dim], &a.x[..n * dim], w.rms_att, eps);
        // `out[b] = w · x[b]` for every token `b`, with this pass's kernels, scratch and
        // threads.
        let mut proj = |out: &mut [f32], x: &[f32], w: Matrix<'_>| {
            matmul(k, out, x, &w, parallel, &mut a.scratch);
        };
        let xb = &a.xb[..n * dim];
        proj(&mut a.q[..n * dim], xb, w.wq);
        // Keys and values are staged in `xb2` (free until `wo`), then stored per token:
        // a batch's tokens may belong to different caches.
        let staged = &mut a.xb2[..n * kv_dim];
        let head_size = c.head_size();
        proj(staged, xb, w.wk);
        for (b, key) in staged.chunks_exact_mut(kv_dim).enumerate() {
            let cache = caches.token(c, l, b);
            let q = &mut a.q[b * dim..(b + 1) * dim];
            let rotation = &a.rope[b * head_size..(b + 1) * head_size];
            rope(q, key, rotation);
            let slot = slot(&cache);
            cache.keys[slot].copy_from_slice(key);
        }
        proj(staged, xb, w.wv);
        for (b, value) in staged.chunks_exact(kv_dim).enumerate() {
            let cache = caches.token(c, l, b);
            let slot = slot(&cache);
            cache.values[slot].copy_from_slice(value);
        }
        // A batch of one sequence never wraps the ring (see forward_batch), so each token
        // sees the keys of the tokens before it and none after. Its tokens attend in
        // groups whose scores fit in `hb` (free until the feed-forward block), each group
        // in one hand-out of work; tokens of different sequences, one by one.
        let context = caches.token(c, l, 0).keys.len() / kv_dim;
        let group = match caches.one_sequence() {
            true => (n * c.hidden_dim / (c.n_heads * context)).clamp(1, n),
            false => 1,
        };
        for first in (0..n).step_by(group) {
            let count = group.min(n - first);
            let cache = caches.token(c, l, first);
            let kv = Cache {
                keys: cache.keys,
                values: cache.values,
            };
            let att = if count > 1 { &mut a.hb[..] } else { cache.att };
            let tokens = first * dim..(first + count) * dim;
            let (q, out) = (&a.q[tokens.clone()], &mut a.xb[tokens]);
            attend(k, c, q, &kv, cache.pos, att, out, parallel);
        }
        proj(&mut a.xb2[..n * dim], &a.xb[..n * dim], w.wo);
        add_assign(&mut a.x[..n * dim], &a.xb2[..n * dim]);
    }

    /// `x += w2 · swiglu(w1 · rmsnorm(x), w3 · rmsnorm(x))` for layer `l`.
    fn ffn_block(
        &self,
        a: &mut Activations<'_>,
        n: usize,
        w: &LayerWeights<'_>,
        parallel: &impl Parallel,
    ) {
        let (c, k, eps) = (self.c, self.k, self.rms_eps);
        let (dim, hidden) = (c.dim, c.hidden_dim);
        norm_each(k, &mut a.xb[..n * dim], &a.x[..n * dim], w.rms_ffn, eps);
        // `out[b] = w · x[b]` for every token `b`, with this pass's kernels, scratch and
        // threads.
        let mut proj = |out: &mut [f32], x: &[f32], w: Matrix<'_>| {
            matmul(k, out, x, &w, parallel, &mut a.scratch);
        };
        proj(&mut a.hb[..n * hidden], &a.xb[..n * dim], w.w1);
        proj(&mut a.hb2[..n * hidden], &a.xb[..n * dim], w.w3);
        k.swiglu(&mut a.hb[..n * hidden], &a.hb2[..n * hidden]);
        proj(&mut a.xb[..n * dim], &a.hb[..n * hidden], w.w2);
        add_assign(&mut a.x[..n * dim], &a.xb[..n * dim]);
    }

    /// The classifier on token `index` of `a`: final RMSNorm, then logits.
    fn classify(
        &self,
        a: &mut Activations<'_>,
        index: usize,
        logits: &mut [f32],
        parallel: &impl Parallel,
    ) {
        let dim = self.c.dim;
        let x = &mut a.x[index * dim..(index + 1) * dim];
        rmsnorm_in_place(self.k, x, self.w.rms_final, self.rms_eps);
        matmul(
            self.k,
            logits,
            x,
            &self.w.classifier,
            parallel,
            &mut a.scratch,
        );
    }

    /// The classifier on every token of `a`, token `b`'s logits into sequence `b`'s state.
    /// The classifier is read once for all tokens, a block of rows at a time, since the
    /// staging area (`hb`) holds only `hidden_dim` rows for each token.
    fn classify_each(
        &self,
        a: &mut Activations<'_>,
        sequences: &mut [Sequence<'_>],
        parallel: &impl Parallel,
    ) {
        let (dim, n) = (self.c.dim, sequences.len());
        if n == 1 {
            return self.classify(a, 0, sequences[0].state.logits, parallel);
        }
        let x = &mut a.x[..n * dim];
        for x in x.chunks_exact_mut(dim) {
            rmsnorm_in_place(self.k, x, self.w.rms_final, self.rms_eps);
        }
        let classifier = &self.w.classifier;
        let rows = classifier.rows();
        // In blocks of rows staged in `hb` (free after the last layer), `[token][row]`.
        let block = a.hb.len() / n;
        for first in (0..rows).step_by(block) {
            let count = block.min(rows - first);
            let staged = &mut a.hb[..count * n];
            let part = classifier.rows_slice(first, count);
            matmul(self.k, staged, x, &part, parallel, &mut a.scratch);
            for (sequence, per_row) in sequences.iter_mut().zip(staged.chunks_exact(count)) {
                sequence.state.logits[first..first + count].copy_from_slice(per_row);
            }
        }
    }
}

/// RMSNorm of every token's vector.
fn norm_each(k: Kernels, out: &mut [f32], x: &[f32], weight: &[f32], eps: f32) {
    let dim = weight.len();
    for (o, x) in out.chunks_exact_mut(dim).zip(x.chunks_exact(dim)) {
        rmsnorm(k, o, x, weight, eps);
    }
}

/// The rotation RoPE applies at `pos`, computed like the reference: pair `(i, i+1)` of a
/// head rotates by `pos / base^(i / head_size)` (`base` is 10000 in llama2.c); `rotation`
/// (`head_size` floats) gets `(cos, sin)` of each pair's angle. The same for every layer and
/// head, so computed once per token.
fn rope_rotation(rotation: &mut [f32], pos: usize, base: f32) {
    let head_size = rotation.len();
    for (pair, cos_sin) in rotation.chunks_exact_mut(2).enumerate() {
        let head_dim = 2 * pair;
        let freq = 1.0 / libm::powf(base, head_dim as f32 / head_size as f32);
        let val = pos as f32 * freq;
        cos_sin[0] = libm::cosf(val);
        cos_sin[1] = libm::sinf(val);
    }
}

/// Rotary position embedding: every head of the query, and of the key for `i < kv_dim`,
/// rotated pair by pair by `rotation` (from [`rope_rotation`]).
fn rope(q: &mut [f32], k: &mut [f32], rotation: &[f32]) {
    let head_size = rotation.len();
    for i in (0..q.len()).step_by(2) {
        let head_dim = i % head_size;
        let (fcr, fci) = (rotation[head_dim], rotation[head_dim + 1]);
        rotate(&mut q[i..i + 2], fcr, fci);
        if i < k.len() {
            rotate(&mut k[i..i + 2], fcr, fci);
        }
    }
}

fn rotate(pair: &mut [f32], fcr: f32, fci: f32) {
    let (v0, v1) = (pair[0], pair[1]);
    pair[0] = v0 * fcr - v1 * fci;
    pair[1] = v0 * fci + v1 * fcr;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Serial;
    use crate::testutil::{bytes, v0_model, RAW};
    use std::vec::Vec;

    fn logits_for(model: &Model<'_>, tokens: &[u32], context: usize) -> Vec<f32> {
        let mut buffer = std::vec![0.0; State::len_for(&model.config, context).unwrap()];
        let mut state = State::new(&model.config, context, &mut buffer).unwrap();
        let mut last = Vec::new();
        for (pos, &t) in tokens.iter().enumerate() {
            last = model.forward(&mut state, t, pos, &Serial).unwrap().to_vec();
        }
        last
    }

    #[test]
    fn short_context_gives_the_same_logits() {
        let file = v0_model(RAW, false);
        let model = Model::from_bytes(bytes(&file)).unwrap();
        let tokens = [1, 5, 299, 7];
        let full = logits_for(&model, &tokens, 16);
        assert_eq!(full, logits_for(&model, &tokens, 4));
        assert!(full.iter().all(|v| v.is_finite()));
        // The output depends on the history, not only on the last token.
        assert_ne!(full, logits_for(&model, &[1, 6, 299, 7], 16));
    }

    #[test]
    fn a_batch_gives_the_same_logits_bit_for_bit() {
        let file = v0_model(RAW, false);
        let model = Model::from_bytes(bytes(&file)).unwrap();
        let c = model.config;
        let tokens = [1, 5, 299, 7, 42, 3, 8];
        let one_by_one = logits_for(&model, &tokens, 16);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for capacity in [3, 7, 8] {
            let mut buffer = std::vec![0.0; State::len_for(&c, 16).unwrap()];
            let mut state = State::new(&c, 16, &mut buffer).unwrap();
            let mut batch_buffer = std::vec![0.0; Batch::len_for(&c, capacity).unwrap()];
            let mut batch = Batch::new(&c, capacity, &mut batch_buffer).unwrap();
            let mut last = Vec::new();
            for (i, chunk) in tokens.chunks(capacity).enumerate() {
                last = model
                    .forward_batch(&mut state, &mut batch, chunk, i * capacity, &Serial)
                    .unwrap()
                    .to_vec();
            }
            assert_eq!(bits(&last), bits(&one_by_one), "capacity {capacity}");
            // The KV cache continues exactly: one more token after the batch agrees too.
            let next = model
                .forward(&mut state, 9, tokens.len(), &Serial)
                .unwrap()
                .to_vec();
            let mut all = tokens.to_vec();
            all.push(9);
            assert_eq!(bits(&next), bits(&logits_for(&model, &all, 16)));
        }
    }

    #[test]
    fn a_batch_checks_its_capacity_and_positions() {
        let file = v0_model(RAW, true);
        let model = Model::from_bytes(bytes(&file)).unwrap();
        let c = model.config;
        let mut buffer = std::vec![0.0; State::len_for(&c, 4).unwrap()];
        let mut state = State::new(&c, 4, &mut buffer).unwrap();
        let mut batch_buffer = std::vec![0.0; Batch::len_for(&c, 2).unwrap()];
        let mut batch = Batch::new(&c, 2, &mut batch_buffer).unwrap();
        assert_eq!(
            model
                .forward_batch(&mut state, &mut batch, &[1, 2, 3], 0, &Serial)
                .unwrap_err(),
            Error::BufferTooSmall {
                buffer: Buffer::Batch,
                needed: 3,
                actual: 2
            }
        );
        assert_eq!(
            model
                .forward_batch(&mut state, &mut batch, &[1, 2], 3, &Serial)
                .unwrap_err(),
            Error::PositionOutOfRange { pos: 4, context: 4 }
        );
        assert!(matches!(
            Batch::new(&c, 2, &mut batch_buffer[..10]),
            Err(Error::BufferTooSmall { .. })
        ));
    }

    #[test]
    fn rejects_bad_tokens_positions_and_states() {
        let file = v0_model(RAW, true);
        let model = Model::from_bytes(bytes(&file)).unwrap();
        let mut buffer = std::vec![0.0; State::len_for(&model.config, 4).unwrap()];
        let mut state = State::new(&model.config, 4, &mut buffer).unwrap();
        assert_eq!(
            model.forward(&mut state, 300, 0, &Serial).unwrap_err(),
            Error::TokenOutOfRange {
                token: 300,
                vocab_size: 300
            }
        );
        assert_eq!(
            model.forward(&mut state, 1, 4, &Serial).unwrap_err(),
            Error::PositionOutOfRange { pos: 4, context: 4 }
        );
        let other = v0_model([8, 12, 1, 4, 2, 300, 16], true);
        let other = Model::from_bytes(bytes(&other)).unwrap();
        assert_eq!(
            other.forward(&mut state, 1, 0, &Serial).unwrap_err(),
            Error::StateMismatch
        );
    }
}
