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

/// Writes into `out` (`[dim]`) each query head's attention-weighted sum of the cached values
/// of the last `min(pos + 1, context)` positions, oldest first. Before the ring wraps that
/// is every position `0..=pos`, exactly as llama2.c attends. `att` is scratch of
/// `[n_heads][context]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend(
    k: Kernels,
    c: &Config,
    q: &[f32],
    cache: &Cache<'_>,
    pos: usize,
    att: &mut [f32],
    out: &mut [f32],
    parallel: &impl Parallel,
) {
    let head_size = c.head_size();
    let kv_dim = c.kv_dim();
    let context = att.len() / c.n_heads;
    let positions = (pos + 1).min(context);
    let oldest = pos + 1 - positions;
    // The cache slot of the `t`-th position attended to.
    let slot = |t: usize| (oldest + t) % context * kv_dim;
    let scale = libm::sqrtf(head_size as f32);
    // Query head h reads key/value head h / kv_mul.
    let kv_offset = |h: usize| (h / c.kv_mul()) * head_size;

    // Each score costs a dot product and an `exp`.
    let per_head = Split {
        granule: context,
        cost: positions * (head_size + EXP_COST),
    };
    parallel.for_each_chunk(att, per_head, &|first, chunk| {
        for (i, scores) in chunk.chunks_exact_mut(context).enumerate() {
            let h = first / context + i;
            let q = &q[h * head_size..(h + 1) * head_size];
            let scores = &mut scores[..positions];
            // Oldest first: the ring's slots from the oldest position's to the end, then
            // from the start (only once the window slides).
            let keys = &cache.keys[kv_offset(h)..];
            let (older, newer) = scores.split_at_mut(positions.min(context - oldest % context));
            k.dot_rows(older, &keys[slot(0)..], kv_dim, q);
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
        cost: positions * head_size,
    };
    parallel.for_each_chunk(out, per_head, &|first, chunk| {
        for (i, out) in chunk.chunks_exact_mut(head_size).enumerate() {
            let h = first / head_size + i;
            let weights = &att[h * context..h * context + positions];
            // Oldest first, as for the scores.
            let values = &cache.values[kv_offset(h)..];
            let (older, newer) = weights.split_at(positions.min(context - oldest % context));
            out.fill(0.0);
            k.weighted_rows(out, older, &values[slot(0)..], kv_dim);
            k.weighted_rows(out, newer, values, kv_dim);
        }
    });
}
