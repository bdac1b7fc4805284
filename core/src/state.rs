//! The run state: the KV cache, attention scratch, logits and one token's activations,
//! carved from one caller buffer.

use crate::activations::{self, take, Activations};
use crate::config::{mul, Config};
use crate::error::{Buffer, Error, Result};
use crate::kernels::Kernels;

/// Everything one sequence needs besides the weights, borrowed from a caller's `f32` buffer.
///
/// The caller chooses `context ≤ seq_len`: positions `0..context` can be run, and the KV
/// cache holds exactly that many positions, so a short context shrinks memory.
pub struct State<'b> {
    pub(crate) config: Config,
    pub(crate) context: usize,
    /// Attention scores, `[n_heads][context]`.
    pub(crate) att: &'b mut [f32],
    /// Output of the classifier, `[vocab_size]`.
    pub(crate) logits: &'b mut [f32],
    /// `[n_layers][context][kv_dim]`
    pub(crate) key_cache: &'b mut [f32],
    /// `[n_layers][context][kv_dim]`
    pub(crate) value_cache: &'b mut [f32],
    /// The working vectors of a single token.
    pub(crate) acts: Activations<'b>,
    /// The inner loops the forward pass runs.
    pub(crate) kernels: Kernels,
    /// Whether positions past `context` slide the attention window instead of failing.
    pub(crate) sliding: bool,
}

impl core::fmt::Debug for State<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("State")
            .field("config", &self.config)
            .field("context", &self.context)
            .field("kernels", &self.kernels)
            .finish_non_exhaustive()
    }
}

/// The sizes of the state's own parts, in `f32` elements, in the order they are carved.
const fn own_lens(config: &Config, context: usize) -> [Option<usize>; 4] {
    let cache = mul(
        mul(Some(config.n_layers), Some(context)),
        Some(config.kv_dim()),
    );
    [
        mul(Some(config.n_heads), Some(context)),
        Some(config.vocab_size),
        cache,
        cache,
    ]
}

impl<'b> State<'b> {
    /// Number of `f32` elements a state for `config` and `context` positions needs, or
    /// `None` if it does not fit in `usize`. Usable in `const` context to size a `static`.
    pub const fn len_for(config: &Config, context: usize) -> Option<usize> {
        activations::carved_len(&[
            &own_lens(config, context),
            &activations::part_lens(config, 1),
        ])
    }

    /// Carves a state for `context` positions out of `buffer` (which may be longer than
    /// needed). The buffer's contents do not matter: every part is written before it is read.
    pub fn new(config: &Config, context: usize, buffer: &'b mut [f32]) -> Result<State<'b>> {
        if context == 0 || context > config.seq_len {
            return Err(Error::InvalidContext {
                requested: context,
                seq_len: config.seq_len,
            });
        }
        let needed = Self::len_for(config, context).ok_or(Error::SizeOverflow)?;
        if buffer.len() < needed {
            return Err(Error::BufferTooSmall {
                buffer: Buffer::State,
                needed,
                actual: buffer.len(),
            });
        }
        let lens = own_lens(config, context).map(|len| len.unwrap_or(0));
        let mut rest = buffer;
        activations::align_start(&mut rest);
        Ok(State {
            config: *config,
            context,
            att: take(&mut rest, lens[0]),
            logits: take(&mut rest, lens[1]),
            key_cache: take(&mut rest, lens[2]),
            value_cache: take(&mut rest, lens[3]),
            acts: Activations::carve(config, 1, &mut rest),
            kernels: Kernels::native(),
            sliding: false,
        })
    }

    /// Chooses the inner loops (default: [`Kernels::native`]).
    pub fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// The inner loops in use.
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// Lets positions run past the context: each new position then replaces the oldest
    /// in the KV cache, and attention sees the last `context` positions. Positions keep
    /// counting, so RoPE stays relative. Before the window is full nothing changes; after,
    /// the model sees less than it was trained with, so quality can drift on long runs.
    pub fn set_sliding_window(&mut self, sliding: bool) {
        self.sliding = sliding;
    }

    /// Whether positions past the context slide the window (see
    /// [`State::set_sliding_window`]).
    pub fn sliding_window(&self) -> bool {
        self.sliding
    }

    /// How many positions this state can hold.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The config this state was sized for.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The logits written by the last forward pass.
    pub fn logits(&self) -> &[f32] {
        self.logits
    }

    /// Makes this state continue `other`'s sequence: copies the keys and values of its
    /// first `positions` positions (below the context: the ring has not wrapped) and its
    /// logits. Both states are for one config and context (the caller checked).
    pub(crate) fn copy_history_from(&mut self, other: &State<'_>, positions: usize) {
        let layer = self.context * self.config.kv_dim();
        let used = positions.min(self.context) * self.config.kv_dim();
        let pairs = [
            (&mut *self.key_cache, &*other.key_cache),
            (&mut *self.value_cache, &*other.value_cache),
        ];
        for (to, from) in pairs {
            for (to, from) in to.chunks_exact_mut(layer).zip(from.chunks_exact(layer)) {
                to[..used].copy_from_slice(&from[..used]);
            }
        }
        self.logits.copy_from_slice(other.logits);
    }

    /// The logits, for a sampler that transforms them in place.
    pub fn logits_mut(&mut self) -> &mut [f32] {
        self.logits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::RAW;

    #[test]
    fn len_counts_every_part() {
        let c = Config::validated(RAW, true).unwrap();
        // Every part rounded up to whole 16-float lines, plus 15 floats to reach the first:
        // x, xb, xb2, q: 4*8; hb, hb2: 2*12; rope: head size 2; att: 4 heads * 10;
        // logits 300; caches 2*(2*10*4); quantized input 12/4 + its scales 12
        let lines = |n: usize| n.next_multiple_of(16);
        let expected = 4 * lines(8)
            + 2 * lines(12)
            + lines(2)
            + lines(4 * 10)
            + lines(300)
            + 2 * lines(2 * 10 * 4)
            + lines(12 / 4)
            + lines(12)
            + 15;
        assert_eq!(State::len_for(&c, 10), Some(expected));
        const STATIC_LEN: Option<usize> = State::len_for(
            &Config {
                dim: 8,
                hidden_dim: 12,
                n_layers: 2,
                n_heads: 4,
                n_kv_heads: 2,
                vocab_size: 300,
                seq_len: 16,
                shared_classifier: true,
            },
            10,
        );
        assert_eq!(STATIC_LEN, Some(expected));
        let mut buffer = std::vec![0.0; expected];
        let state = State::new(&c, 10, &mut buffer).unwrap();
        assert_eq!(state.context(), 10);
        assert_eq!(state.logits().len(), 300);
        assert_eq!(state.key_cache.len(), 80);
    }

    #[test]
    fn every_part_starts_on_a_cache_line_wherever_the_buffer_starts() {
        let c = Config::validated(RAW, true).unwrap();
        let len = State::len_for(&c, 10).unwrap();
        let mut buffer = std::vec![0.0f32; len + 15];
        for skip in 0..16 {
            let state = State::new(&c, 10, &mut buffer[skip..skip + len]).unwrap();
            let a = &state.acts;
            let parts: [&[f32]; 11] = [
                state.att,
                state.logits,
                state.key_cache,
                state.value_cache,
                a.x,
                a.xb,
                a.xb2,
                a.q,
                a.hb,
                a.hb2,
                a.scratch.scales,
            ];
            for part in parts {
                assert_eq!(part.as_ptr() as usize % 64, 0, "buffer offset {skip}");
            }
            assert_eq!(a.scratch.values.as_ptr() as usize % 64, 0);
        }
    }

    #[test]
    fn rejects_short_buffers_and_bad_contexts() {
        let c = Config::validated(RAW, true).unwrap();
        let needed = State::len_for(&c, 16).unwrap();
        let mut buffer = std::vec![0.0; needed - 1];
        assert_eq!(
            State::new(&c, 16, &mut buffer).unwrap_err(),
            Error::BufferTooSmall {
                buffer: Buffer::State,
                needed,
                actual: needed - 1
            }
        );
        for context in [0, 17] {
            assert_eq!(
                State::new(&c, context, &mut buffer).unwrap_err(),
                Error::InvalidContext {
                    requested: context,
                    seq_len: 16
                }
            );
        }
        assert_eq!(State::len_for(&c, usize::MAX), None);
    }
}
