//! Per-token working vectors of the forward pass, for one token (inside [`crate::State`]) or
//! for a batch of prompt tokens (inside [`crate::Batch`]), carved from caller buffers.

use crate::config::{add, mul, Config};
use crate::math::QuantScratch;

/// `[tokens][width]` vectors for `tokens` tokens at once.
pub(crate) struct Activations<'b> {
    pub tokens: usize,
    /// Residual stream, `[tokens][dim]`.
    pub x: &'b mut [f32],
    /// Normalised input / attention output, `[tokens][dim]`.
    pub xb: &'b mut [f32],
    /// Projections back to `dim`, `[tokens][dim]`.
    pub xb2: &'b mut [f32],
    /// Queries, `[tokens][dim]`.
    pub q: &'b mut [f32],
    /// Feed-forward gate, `[tokens][hidden_dim]`.
    pub hb: &'b mut [f32],
    /// Feed-forward up projection, `[tokens][hidden_dim]`.
    pub hb2: &'b mut [f32],
    /// RoPE's rotation of each token's position, `[tokens][head_size]`: `(cos, sin)` of
    /// every pair of a head, computed once per token instead of once per layer and head.
    pub rope: &'b mut [f32],
    /// Quantized copies of the inputs of a matrix product, for quantized models.
    pub quant: QuantScratch<'b>,
}

/// The widest matmul input or output a config has (`dim` or `hidden_dim`).
const fn widest(config: &Config) -> usize {
    if config.dim > config.hidden_dim {
        config.dim
    } else {
        config.hidden_dim
    }
}

/// Lengths, in `f32` elements, of the parts of [`Activations`] for `tokens` tokens, in the
/// order they are carved.
pub(crate) const fn part_lens(config: &Config, tokens: usize) -> [Option<usize>; 9] {
    let n = Some(tokens);
    let dim = mul(n, Some(config.dim));
    let hidden = mul(n, Some(config.hidden_dim));
    let rope = mul(n, Some(config.head_size()));
    let wide = mul(n, Some(widest(config)));
    let quant_values = match wide {
        Some(w) => Some(w.div_ceil(4)), // int8 values, four to an f32
        None => None,
    };
    [dim, dim, dim, dim, hidden, hidden, rope, quant_values, wide]
}

/// Total of `lens`, `None` on overflow.
pub(crate) const fn total(lens: &[Option<usize>]) -> Option<usize> {
    let mut sum = Some(0);
    let mut i = 0;
    while i < lens.len() {
        sum = add(sum, lens[i]);
        i += 1;
    }
    sum
}

/// Splits `len` elements off the front of `rest`. Callers checked the total length first.
pub(crate) fn take<'b>(rest: &mut &'b mut [f32], len: usize) -> &'b mut [f32] {
    let (part, tail) = core::mem::take(rest).split_at_mut(len);
    *rest = tail;
    part
}

impl<'b> Activations<'b> {
    /// Carves activations for `tokens` tokens from the front of `rest`, whose length the
    /// caller checked against [`part_lens`].
    pub(crate) fn carve(config: &Config, tokens: usize, rest: &mut &'b mut [f32]) -> Self {
        let lens = part_lens(config, tokens).map(|len| len.unwrap_or(0));
        Activations {
            tokens,
            x: take(rest, lens[0]),
            xb: take(rest, lens[1]),
            xb2: take(rest, lens[2]),
            q: take(rest, lens[3]),
            hb: take(rest, lens[4]),
            hb2: take(rest, lens[5]),
            rope: take(rest, lens[6]),
            quant: QuantScratch {
                values: bytemuck::cast_slice_mut(take(rest, lens[7])),
                scales: take(rest, lens[8]),
            },
        }
    }
}
