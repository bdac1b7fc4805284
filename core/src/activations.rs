//! Per-token working vectors of the forward pass, for one token (inside [`crate::State`]) or
//! for a batch of prompt tokens (inside [`crate::Batch`]), carved from caller buffers.

use crate::config::{add, mul, Config};
use crate::math::MatmulScratch;

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
    /// Quantized copies of the inputs of a matrix product (for quantized models) and room
    /// for its outputs grouped by rows.
    pub scratch: MatmulScratch<'b>,
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
pub(crate) const fn part_lens(config: &Config, tokens: usize) -> [Option<usize>; 10] {
    let n = Some(tokens);
    let dim = mul(n, Some(config.dim));
    let hidden = mul(n, Some(config.hidden_dim));
    let rope = mul(n, Some(config.head_size()));
    let wide = mul(n, Some(widest(config)));
    let quant_values = match wide {
        Some(w) => Some(w.div_ceil(4)), // int8 values, four to an f32
        None => None,
    };
    // One token's outputs are never regrouped (see `math::matmul`).
    let by_rows = if tokens == 1 { Some(0) } else { wide };
    [
        dim,
        dim,
        dim,
        dim,
        hidden,
        hidden,
        rope,
        quant_values,
        wide,
        by_rows,
    ]
}

/// Floats in a 64-byte cache line. Every part starts on a line, so a SIMD load of a whole
/// vector never straddles two lines: unaligned inputs measured 10–25 % slower in the f32
/// matrix products, which reload them from L2 for every tile of rows.
const LINE_FLOATS: usize = 16;

/// Elements a buffer needs to hold the parts of `groups`, in order (`None` on overflow):
/// each rounded up to whole cache lines, plus the slack for [`align_start`] to reach the
/// first line.
pub(crate) const fn carved_len(groups: &[&[Option<usize>]]) -> Option<usize> {
    let mut sum = Some(LINE_FLOATS - 1);
    let mut g = 0;
    while g < groups.len() {
        let mut i = 0;
        while i < groups[g].len() {
            let lines = match groups[g][i] {
                Some(len) => len.checked_next_multiple_of(LINE_FLOATS),
                None => None,
            };
            sum = add(sum, lines);
            i += 1;
        }
        g += 1;
    }
    sum
}

/// Skips the elements before the first cache-line boundary of `rest` (at most
/// `LINE_FLOATS - 1`, which [`carved_len`] counts). Callers checked the length first.
pub(crate) fn align_start(rest: &mut &mut [f32]) {
    let lead = rest
        .as_ptr()
        .align_offset(LINE_FLOATS * 4)
        .min(LINE_FLOATS - 1);
    *rest = &mut core::mem::take(rest)[lead..];
}

/// Splits a part of `len` elements off the front of `rest`, with the rest of its last
/// cache line, so the next part starts on a line. Callers checked the total length first.
pub(crate) fn take<'b>(rest: &mut &'b mut [f32], len: usize) -> &'b mut [f32] {
    let lines = len.next_multiple_of(LINE_FLOATS);
    let (part, tail) = core::mem::take(rest).split_at_mut(lines);
    *rest = tail;
    &mut part[..len]
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
            scratch: MatmulScratch {
                values: bytemuck::cast_slice_mut(take(rest, lens[7])),
                scales: take(rest, lens[8]),
                by_rows: take(rest, lens[9]),
            },
        }
    }
}
