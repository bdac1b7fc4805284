//! One step of the transformer: a token at a position in, logits out.
//!
//! Follows llama2.c's `forward()` line for line (RMSNorm, RoPE, grouped-query attention,
//! SwiGLU), so that the scalar path reproduces the reference's floats.

use crate::checkpoint::Model;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::math::{add_assign, matmul, rmsnorm, rmsnorm_in_place, softmax, swiglu};
use crate::parallel::Parallel;
use crate::state::State;
use crate::weights::Weights;

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
        let c = &self.config;
        if state.config != *c {
            return Err(Error::StateMismatch);
        }
        let row = usize::try_from(token).unwrap_or(usize::MAX);
        if row >= c.vocab_size {
            return Err(Error::TokenOutOfRange {
                token,
                vocab_size: c.vocab_size,
            });
        }
        if pos >= state.context {
            return Err(Error::PositionOutOfRange {
                pos,
                context: state.context,
            });
        }
        let w = &self.weights;
        w.token_embedding.copy_row(row, state.x);
        for l in 0..c.n_layers {
            attention_block(c, w, state, l, pos, parallel);
            ffn_block(c, w, state, l, parallel);
        }
        rmsnorm_in_place(state.kernels, state.x, w.rms_final);
        matmul(
            state.kernels,
            state.logits,
            state.x,
            &w.classifier,
            parallel,
            &mut state.quant,
        );
        Ok(state.logits)
    }
}

/// `x += wo · attention(rmsnorm(x))` for layer `l`, storing this position's key and value.
fn attention_block(
    c: &Config,
    w: &Weights<'_>,
    s: &mut State<'_>,
    l: usize,
    pos: usize,
    parallel: &impl Parallel,
) {
    let kv_dim = c.kv_dim();
    let head_size = c.head_size();
    let layer_cache = l * s.context * kv_dim;
    let slot = layer_cache + pos * kv_dim;

    rmsnorm(s.kernels, s.xb, s.x, Weights::norm(w.rms_att, c, l));
    matmul(s.kernels, s.q, s.xb, &w.wq.layer(l), parallel, &mut s.quant);
    let key = &mut s.key_cache[slot..slot + kv_dim];
    matmul(s.kernels, key, s.xb, &w.wk.layer(l), parallel, &mut s.quant);
    let value = &mut s.value_cache[slot..slot + kv_dim];
    matmul(
        s.kernels,
        value,
        s.xb,
        &w.wv.layer(l),
        parallel,
        &mut s.quant,
    );

    rope(s.q, &mut s.key_cache[slot..slot + kv_dim], pos, head_size);

    let scale = libm::sqrtf(head_size as f32);
    let keys = &s.key_cache[layer_cache..slot + kv_dim];
    let values = &s.value_cache[layer_cache..slot + kv_dim];
    for h in 0..c.n_heads {
        let q = &s.q[h * head_size..(h + 1) * head_size];
        let kv_offset = (h / c.kv_mul()) * head_size;
        let att = &mut s.att[h * s.context..h * s.context + pos + 1];
        for (t, score) in att.iter_mut().enumerate() {
            let k = &keys[t * kv_dim + kv_offset..][..head_size];
            *score = s.kernels.dot(q, k) / scale;
        }
        softmax(att);
        let out = &mut s.xb[h * head_size..(h + 1) * head_size];
        out.fill(0.0);
        for (t, &a) in att.iter().enumerate() {
            let v = &values[t * kv_dim + kv_offset..][..head_size];
            for (o, &vi) in out.iter_mut().zip(v) {
                *o += a * vi;
            }
        }
    }
    matmul(
        s.kernels,
        s.xb2,
        s.xb,
        &w.wo.layer(l),
        parallel,
        &mut s.quant,
    );
    add_assign(s.x, s.xb2);
}

/// `x += w2 · swiglu(w1 · rmsnorm(x), w3 · rmsnorm(x))` for layer `l`.
fn ffn_block(c: &Config, w: &Weights<'_>, s: &mut State<'_>, l: usize, parallel: &impl Parallel) {
    rmsnorm(s.kernels, s.xb, s.x, Weights::norm(w.rms_ffn, c, l));
    matmul(
        s.kernels,
        s.hb,
        s.xb,
        &w.w1.layer(l),
        parallel,
        &mut s.quant,
    );
    matmul(
        s.kernels,
        s.hb2,
        s.xb,
        &w.w3.layer(l),
        parallel,
        &mut s.quant,
    );
    swiglu(s.hb, s.hb2);
    matmul(
        s.kernels,
        s.xb,
        s.hb,
        &w.w2.layer(l),
        parallel,
        &mut s.quant,
    );
    add_assign(s.x, s.xb);
}

/// Rotary position embedding, computed like the reference: pairs `(i, i+1)` of every head of
/// the query, and of the key for `i < kv_dim`, rotate by `pos / 10000^(i % head_size / head_size)`.
fn rope(q: &mut [f32], k: &mut [f32], pos: usize, head_size: usize) {
    for i in (0..q.len()).step_by(2) {
        let head_dim = i % head_size;
        let freq = 1.0 / libm::powf(10000.0, head_dim as f32 / head_size as f32);
        let val = pos as f32 * freq;
        let (fci, fcr) = (libm::sinf(val), libm::cosf(val));
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
