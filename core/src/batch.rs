//! Buffers for running several prompt tokens through the model at once.

use crate::activations::{self, Activations};
use crate::config::Config;
use crate::error::{Buffer, Error, Result};

/// Working vectors for up to `capacity` tokens at once, borrowed from a caller's `f32`
/// buffer. With a batch, [`crate::Model::forward_batch`] reads every weight once for all
/// its tokens instead of once per token, which makes prompt processing several times
/// faster; results are bit-identical to running the tokens one by one.
pub struct Batch<'b> {
    pub(crate) config: Config,
    pub(crate) acts: Activations<'b>,
}

impl core::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Batch")
            .field("capacity", &self.acts.tokens)
            .finish_non_exhaustive()
    }
}

impl<'b> Batch<'b> {
    /// Number of `f32` elements a batch of `capacity` tokens needs, or `None` on overflow.
    /// Usable in `const` context.
    pub const fn len_for(config: &Config, capacity: usize) -> Option<usize> {
        activations::carved_len(&[&activations::part_lens(config, capacity)])
    }

    /// The capacity that suits the matrix kernels for this model: as many tokens as keep
    /// the widest input of a matrix product (`[tokens][max(dim, hidden_dim)]` f32) within
    /// about 1 MiB, so it stays in a core's L2 while each tile of weight rows passes over
    /// it, clamped to 16..=256 tokens (fewer reuse each weight read too little; more gain
    /// nothing). A caller with a shorter prompt needs no more than the prompt.
    pub const fn preferred_capacity(config: &Config) -> usize {
        const INPUT_BYTES: usize = 1 << 20;
        let widest = if config.dim > config.hidden_dim {
            config.dim
        } else {
            config.hidden_dim
        };
        let tokens = INPUT_BYTES / (4 * widest);
        if tokens < 16 {
            16
        } else if tokens > 256 {
            256
        } else {
            tokens
        }
    }

    /// Carves a batch of `capacity ≥ 1` tokens out of `buffer`.
    pub fn new(config: &Config, capacity: usize, buffer: &'b mut [f32]) -> Result<Batch<'b>> {
        if capacity == 0 {
            return Err(Error::BufferTooSmall {
                buffer: Buffer::Batch,
                needed: 1,
                actual: 0,
            });
        }
        let needed = Self::len_for(config, capacity).ok_or(Error::SizeOverflow)?;
        if buffer.len() < needed {
            return Err(Error::BufferTooSmall {
                buffer: Buffer::Batch,
                needed,
                actual: buffer.len(),
            });
        }
        let mut rest = buffer;
        activations::align_start(&mut rest);
        Ok(Batch {
            config: *config,
            acts: Activations::carve(config, capacity, &mut rest),
        })
    }

    /// The most tokens one call can run.
    pub fn capacity(&self) -> usize {
        self.acts.tokens
    }
}
