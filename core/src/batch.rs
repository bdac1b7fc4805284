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
        activations::total(&activations::part_lens(config, capacity))
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
