//! Causal grouped-query attention of one position over the KV cache, one head per granule
//! of work.

use crate::config::Config;
use crate::kernels::Kernels;
use crate::parallel::{Parallel, Split};

/// Rough cost of one `exp` in multiply-adds, for [`Split::cost`].
const EXP_COST: usize = 16;

/// One layer's KV cache, `[slot][kv_dim]` for `context` slots used as a ring: position `p`
/// lives in slot `p % context`, so once `p ≥ context` each new position replaces the oldest.
pub(crate) struct Cache<'c> {
    pub keys: &'c [f32],
    pub values: &'c [f32],
}

/// Writes into `out` (`[tokens][dim]`) each query head's attention-weighted sum of the
/// cached values, for the `tokens` queries of `queries` (`[tokens][dim]`) at consecutive
/// positions from `first_pos`: the one at `pos` attends to the last `min(pos + 1, context)`
/// positions, oldest first. Before the ring wraps that is every position `0..=pos`,
/// exactly as llama2.c attends. `att` is scratch of `[tokens][n_heads][context]`. Every
/// (token, head) is one granule of work, computed the same however many share the call, so
/// a batch of tokens attends as each would alone, in two hand-outs of work for all of them.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    k: Kernels,
    c: &Config,
    queries: &[f32],
    cache: &Cache<'_>,
    first_pos: usize,
    att: &mut [f32],
    out: &mut [f32],
    parallel: &impl Parallel,
) {
    let (head_size, kv_dim, n_heads) = (c.head_size(), c.kv_dim(), c.n_heads);
    let context = cache.keys.len() / kv_dim;
    let tokens = queries.len() / c.dim;
    let Some(att) = att.get_mut(..tokens * n_heads * context) else {
        return;
    };
    // How many positions the query of token `b` attends to, and the oldest of them.
    let span = |b: usize| {
        let pos = first_pos + b;
        let positions = (pos + 1).min(context);
        (positions, pos + 1 - positions)
    };
    let scale = libm::sqrtf(head_size as f32);
    // Query head h reads key/value head h / kv_mul.
    let kv_offset = |h: usize| (h / c.kv_mul()) * head_size;
    let most = span(tokens.saturating_sub(1)).0;

    // Each score costs a dot product and an `exp`.
    let per_head = Split {
        granule: context,
        cost: most * (head_size + EXP_COST),
    };
    parallel.for_each_chunk(att, per_head, &|first, chunk| {
        for (i, scores) in chunk.chunks_exact_mut(context).enumerate() {
            let j = first / context + i;
            let (b, h) = (j / n_heads, j % n_heads);
            let (positions, oldest) = span(b);
            let q = &queries[b * c.dim + h * head_size..][..head_size];
            let scores = &mut scores[..positions];
            // Oldest first: the ring's slots from the oldest position's to the end, then
            // from the start (only once the window slides).
            let keys = &cache.keys[kv_offset(h)..];
            let (older, newer) = scores.split_at_mut(positions.min(context - oldest % context));
            k.dot_rows(older, &keys[oldest % context * kv_dim..], kv_dim, q);
            k.dot_rows(newer, keys, kv_dim, q);
            for score in scores.iter_mut() {
                *score /= scale;
            }
            k.softmax(scores);
        }
    });

    let att = &*att;
    let per_head = Split {
        granule: head_size,
        cost: most * head_size,
    };
    parallel.for_each_chunk(out, per_head, &|first, chunk| {
        for (i, out) in chunk.chunks_exact_mut(head_size).enumerate() {
            let j = first / head_size + i;
            let (positions, oldest) = span(j / n_heads);
            let weights = &att[j * context..j * context + positions];
            // Oldest first, as for the scores.
            let values = &cache.values[kv_offset(j % n_heads)..];
            let (older, newer) = weights.split_at(positions.min(context - oldest % context));
            out.fill(0.0);
            k.weighted_rows(out, older, &values[oldest % context * kv_dim..], kv_dim);
            k.weighted_rows(out, newer, values, kv_dim);
        }
    });
}
