//! Choosing the next token from logits, bit-compatible with llama2.c's sampler.
//!
//! Logits may hold NaN or infinities (non-finite weights are accepted, see
//! docs/SECURITY.md): every strategy still returns an index inside the logits, and nothing
//! here indexes without `get` (enforced by `clippy::indexing_slicing`).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::error::{Buffer, Error, Result};
use crate::math::softmax;

/// A probability and the token it belongs to, sorted by the top-p sampler.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ProbIndex {
    pub prob: f32,
    pub index: u32,
}

/// llama2.c's xorshift* generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    pub fn next_u32(&mut self) -> u32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32
    }

    /// A float in `[0, 1)` from the top 24 bits.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / 16_777_216.0
    }
}

/// How the next token is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Temperature 0: the most likely token.
    Argmax,
    /// Sample from the whole softmax distribution.
    Multinomial { temperature: f32 },
    /// Sample from the smallest set of tokens whose probability exceeds `top_p`.
    TopP { temperature: f32, top_p: f32 },
}

impl Strategy {
    /// The strategy llama2.c uses for these settings: temperature 0 is argmax, and top-p
    /// outside `(0, 1)` samples from the whole distribution.
    pub fn new(temperature: f32, top_p: f32) -> Result<Strategy> {
        if temperature.is_nan() || temperature < 0.0 {
            return Err(Error::InvalidTemperature(temperature));
        }
        if !(0.0..=1.0).contains(&top_p) {
            return Err(Error::InvalidTopP(top_p));
        }
        Ok(if temperature == 0.0 {
            Strategy::Argmax
        } else if top_p <= 0.0 || top_p >= 1.0 {
            Strategy::Multinomial { temperature }
        } else {
            Strategy::TopP { temperature, top_p }
        })
    }
}

/// Chooses tokens; top-p sorts in a caller buffer of [`ProbIndex`].
#[derive(Debug)]
pub struct Sampler<'b> {
    strategy: Strategy,
    rng: Rng,
    scratch: &'b mut [ProbIndex],
}

impl<'b> Sampler<'b> {
    /// Elements of [`ProbIndex`] the sampler needs for `strategy`: the vocabulary size for
    /// top-p, none otherwise.
    pub const fn scratch_len(strategy: &Strategy, vocab_size: usize) -> usize {
        match strategy {
            Strategy::TopP { .. } => vocab_size,
            _ => 0,
        }
    }

    /// A sampler for a vocabulary of `vocab_size`; `scratch` must hold
    /// [`Sampler::scratch_len`] elements. A strategy built by hand rather than by
    /// [`Strategy::new`] is checked the same way: a temperature that is NaN, negative or
    /// zero (outside argmax) and a top-p that is NaN or outside `[0, 1]` are refused.
    pub fn new(
        strategy: Strategy,
        seed: u64,
        vocab_size: usize,
        scratch: &'b mut [ProbIndex],
    ) -> Result<Self> {
        match strategy {
            Strategy::Argmax => {}
            Strategy::Multinomial { temperature } | Strategy::TopP { temperature, .. }
                if temperature.is_nan() || temperature <= 0.0 =>
            {
                return Err(Error::InvalidTemperature(temperature));
            }
            Strategy::TopP { top_p, .. } if !(0.0..=1.0).contains(&top_p) => {
                return Err(Error::InvalidTopP(top_p));
            }
            Strategy::Multinomial { .. } | Strategy::TopP { .. } => {}
        }
        let needed = Self::scratch_len(&strategy, vocab_size);
        if scratch.len() < needed {
            return Err(Error::BufferTooSmall {
                buffer: Buffer::Sampler,
                needed,
                actual: scratch.len(),
            });
        }
        Ok(Sampler {
            strategy,
            rng: Rng::new(seed),
            scratch,
        })
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Chooses the next token. Turns `logits` into probabilities in place unless argmax.
    pub fn sample(&mut self, logits: &mut [f32]) -> Result<u32> {
        let index = match self.strategy {
            Strategy::Argmax => argmax(logits),
            Strategy::Multinomial { temperature } => {
                to_probabilities(logits, temperature);
                sample_multinomial(logits, self.rng.next_f32())
            }
            Strategy::TopP { temperature, top_p } => {
                to_probabilities(logits, temperature);
                let coin = self.rng.next_f32();
                let available = self.scratch.len();
                let scratch =
                    self.scratch
                        .get_mut(..logits.len())
                        .ok_or(Error::BufferTooSmall {
                            buffer: Buffer::Sampler,
                            needed: logits.len(),
                            actual: available,
                        })?;
                sample_top_p(logits, top_p, scratch, coin)
            }
        };
        // Every strategy returns an index inside `logits` (0 for empty logits), and
        // vocabulary sizes come from an i32 header, so the index fits.
        Ok(index as u32)
    }
}

fn to_probabilities(logits: &mut [f32], temperature: f32) {
    for logit in logits.iter_mut() {
        *logit /= temperature;
    }
    softmax(logits);
}

/// Index of the first largest value (NaN is never larger; 0 for no values or all NaN).
pub fn argmax(values: &[f32]) -> usize {
    let mut best = 0;
    let mut best_value = values.first().copied().unwrap_or(0.0);
    for (i, &v) in values.iter().enumerate().skip(1) {
        if v > best_value {
            best = i;
            best_value = v;
        }
    }
    best
}

/// The first index whose cumulative probability exceeds `coin`.
fn sample_multinomial(probabilities: &[f32], coin: f32) -> usize {
    let mut cdf = 0.0f32;
    for (i, &p) in probabilities.iter().enumerate() {
        cdf += p;
        if coin < cdf {
            return i;
        }
    }
    probabilities.len().saturating_sub(1)
}

/// Top-p (nucleus) sampling with the reference's cutoff prefilter: tokens below
/// `(1 - top_p) / (n - 1)` cannot be in the nucleus and are never sorted.
fn sample_top_p(probabilities: &[f32], top_p: f32, scratch: &mut [ProbIndex], coin: f32) -> usize {
    let n = probabilities.len();
    let cutoff = (1.0 - top_p) / n.saturating_sub(1) as f32;
    let mut kept = 0;
    for (i, &prob) in probabilities.iter().enumerate() {
        if prob >= cutoff {
            // `scratch` holds at least `n` elements (checked by `Sampler::sample`).
            if let Some(slot) = scratch.get_mut(kept) {
                *slot = ProbIndex {
                    prob,
                    index: i as u32,
                };
                kept += 1;
            }
        }
    }
    if kept == 0 {
        // Nothing reaches the cutoff (a flat distribution and a small top-p, NaN logits, a
        // one-token vocabulary): llama2.c reads out of bounds here; take the most likely.
        return argmax(probabilities);
    }
    let candidates = scratch.get_mut(..kept).unwrap_or_default();
    // Descending probability; equal probabilities keep index order, as a stable sort would.
    candidates.sort_unstable_by(|a, b| {
        b.prob
            .partial_cmp(&a.prob)
            .unwrap_or(core::cmp::Ordering::Equal)
            .then(a.index.cmp(&b.index))
    });
    let mut cumulative = 0.0f32;
    let mut last = kept.saturating_sub(1);
    for (i, c) in candidates.iter().enumerate() {
        cumulative += c.prob;
        if cumulative > top_p {
            last = i;
            break;
        }
    }
    let r = coin * cumulative;
    let mut cdf = 0.0f32;
    for c in candidates.get(..=last).unwrap_or_default() {
        cdf += c.prob;
        if r < cdf {
            return c.index as usize;
        }
    }
    candidates.get(last).map_or(0, |c| c.index as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_matches_reference_sequence() {
        // Printed by llama2.c's random_u32 / random_f32 compiled with gcc.
        let mut rng = Rng::new(42);
        assert_eq!(
            [rng.next_u32(), rng.next_u32(), rng.next_u32()],
            [1_456_360_119, 3_359_763_283, 3_393_612_768]
        );
        assert_eq!(Rng::new(7).next_f32(), 0.820_246_64);
    }

    #[test]
    fn argmax_prefers_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.9, 0.9, 0.2]), 1);
    }

    #[test]
    fn strategy_follows_reference_rules() {
        assert_eq!(Strategy::new(0.0, 0.9), Ok(Strategy::Argmax));
        assert_eq!(
            Strategy::new(1.0, 1.0),
            Ok(Strategy::Multinomial { temperature: 1.0 })
        );
        assert_eq!(
            Strategy::new(0.5, 0.0),
            Ok(Strategy::Multinomial { temperature: 0.5 })
        );
        assert!(matches!(
            Strategy::new(f32::NAN, 0.9),
            Err(Error::InvalidTemperature(_))
        ));
        assert_eq!(
            Strategy::new(-1.0, 0.9),
            Err(Error::InvalidTemperature(-1.0))
        );
        assert_eq!(Strategy::new(1.0, 1.5), Err(Error::InvalidTopP(1.5)));
    }

    #[test]
    fn multinomial_walks_the_cdf() {
        let p = [0.25, 0.25, 0.5];
        assert_eq!(sample_multinomial(&p, 0.0), 0);
        assert_eq!(sample_multinomial(&p, 0.3), 1);
        assert_eq!(sample_multinomial(&p, 0.99), 2);
    }

    #[test]
    fn top_p_samples_only_the_nucleus() {
        let p = [0.05, 0.6, 0.05, 0.3];
        let mut scratch = [ProbIndex::default(); 4];
        // nucleus for 0.8 is {1, 3}: coin 0 picks the most likely, coin near 1 the second
        assert_eq!(sample_top_p(&p, 0.8, &mut scratch, 0.0), 1);
        assert_eq!(sample_top_p(&p, 0.8, &mut scratch, 0.999), 3);
    }

    #[test]
    fn top_p_without_candidates_takes_the_most_likely() {
        let mut scratch = [ProbIndex::default(); 4];
        // cutoff (1 - 0.1) / 3 = 0.3 is above every probability
        assert_eq!(
            sample_top_p(&[0.25, 0.25, 0.25, 0.25], 0.1, &mut scratch, 0.5),
            0
        );
        assert_eq!(sample_top_p(&[f32::NAN; 4], 0.9, &mut scratch, 0.5), 0);
        assert_eq!(sample_top_p(&[1.0], 0.9, &mut scratch, 0.5), 0);
        let strategy = Strategy::new(1.0, 0.9).unwrap();
        let mut sampler = Sampler::new(strategy, 1, 4, &mut scratch).unwrap();
        assert!(sampler.sample(&mut [f32::NAN; 4]).is_ok());
    }

    #[test]
    fn top_p_needs_its_scratch() {
        let strategy = Strategy::new(1.0, 0.9).unwrap();
        let mut scratch = [ProbIndex::default(); 3];
        assert!(matches!(
            Sampler::new(strategy, 1, 4, &mut scratch),
            Err(Error::BufferTooSmall { .. })
        ));
    }
}
