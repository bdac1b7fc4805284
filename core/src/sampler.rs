//! Choosing the next token from logits, bit-compatible with llama2.c's sampler.
//!
//! One deliberate difference: a temperature so small that `logit / temperature` overflows
//! (`-t 1e-38`) samples greedily, the limit of the distribution as the temperature goes to
//! 0, where llama2.c divides infinity by infinity and samples from NaN.
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
    /// The token's probability.
    pub prob: f32,
    /// The token id.
    pub index: u32,
}

/// llama2.c's xorshift* generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator starting from `seed` (0 stays 0 forever, as in llama2.c).
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The next 32 random bits (llama2.c's `random_u32`).
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
    Multinomial {
        /// Divides the logits before the softmax: above 0, lower is more deterministic.
        temperature: f32,
    },
    /// Sample from the smallest set of tokens whose probability exceeds `top_p`.
    TopP {
        /// Divides the logits before the softmax, as for `Multinomial`.
        temperature: f32,
        /// The probability mass the candidates must reach, in `(0, 1)`.
        top_p: f32,
    },
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

    /// The strategy this sampler was built with.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Chooses the next token. Turns `logits` into probabilities in place unless argmax.
    ///
    /// The sampling strategies draw one random number per token whatever the logits, also
    /// when a temperature too small for them makes the choice greedy.
    pub fn sample(&mut self, logits: &mut [f32]) -> Result<u32> {
        let index = match self.strategy {
            Strategy::Argmax => argmax(logits),
            Strategy::Multinomial { temperature } => {
                let coin = self.rng.next_f32();
                match to_probabilities(logits, temperature) {
                    Scaled::Overflowed { argmax } => argmax,
                    Scaled::Probabilities => sample_multinomial(logits, coin),
                }
            }
            Strategy::TopP { temperature, top_p } => {
                let coin = self.rng.next_f32();
                if let Scaled::Overflowed { argmax } = to_probabilities(logits, temperature) {
                    return Ok(argmax as u32);
                }
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

/// What [`to_probabilities`] made of the logits.
enum Scaled {
    /// They are now the softmax of `logits / temperature`.
    Probabilities,
    /// The largest logit, finite, divided by the temperature is not: the softmax would be
    /// `inf - inf = NaN` everywhere. The logits are now the limit of the distribution as
    /// the temperature goes to 0, all on `argmax` (the first largest logit).
    Overflowed { argmax: usize },
}

/// Turns logits into probabilities at `temperature`, exactly as llama2.c does whenever
/// that is finite. Non-finite logits (from non-finite weights) are left to the softmax.
fn to_probabilities(logits: &mut [f32], temperature: f32) -> Scaled {
    let best = argmax(logits);
    let overflows = logits
        .get(best)
        .is_some_and(|&top| top.is_finite() && !(top / temperature).is_finite());
    if overflows {
        for (i, logit) in logits.iter_mut().enumerate() {
            *logit = if i == best { 1.0 } else { 0.0 };
        }
        return Scaled::Overflowed { argmax: best };
    }
    // Only the largest quotient can overflow upwards; a smaller one overflowing downwards
    // to -inf gets probability 0, as its finite value would.
    for logit in logits.iter_mut() {
        *logit /= temperature;
    }
    softmax(logits);
    Scaled::Probabilities
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

    /// A sampler of `strategy` for three tokens, with its own scratch.
    fn sample_once(strategy: Strategy, seed: u64, logits: &mut [f32]) -> (u32, Rng) {
        let mut scratch = [ProbIndex::default(); 3];
        let mut sampler = Sampler::new(strategy, seed, 3, &mut scratch).unwrap();
        let token = sampler.sample(logits).unwrap();
        (token, sampler.rng)
    }

    #[test]
    fn overflowing_temperatures_sample_greedily() {
        for temperature in [1e-38, 1e-40, f32::from_bits(1)] {
            for strategy in [
                Strategy::new(temperature, 1.0).unwrap(),
                Strategy::new(temperature, 0.9).unwrap(),
            ] {
                for seed in [1, 2, 3, 42] {
                    for (logits, best) in [
                        ([1.0, 3.0, 2.0], 1),
                        ([-3.0, -1.0, -2.0], 1), // overflows downwards
                        ([5.0, 1.0, 5.0], 0),    // the first of equal logits, as argmax
                        ([1e30, -1e30, 0.0], 0),
                    ] {
                        let mut logits = logits;
                        let (token, rng) = sample_once(strategy, seed, &mut logits);
                        assert_eq!(token, best, "{strategy:?} seed {seed}");
                        let mut one_hot = [0.0; 3];
                        one_hot[best as usize] = 1.0;
                        assert_eq!(logits, one_hot);
                        // One draw per token, as when the temperature is normal.
                        let mut expected = Rng::new(seed);
                        expected.next_f32();
                        assert_eq!(rng, expected);
                    }
                }
            }
        }
        // Logits of 1e30 overflow already at `t = 1e-9`.
        let mut logits = [1e30, 2e30, 0.0];
        let strategy = Strategy::new(1e-9, 1.0).unwrap();
        assert_eq!(sample_once(strategy, 7, &mut logits).0, 1);
    }

    #[test]
    fn small_temperatures_that_do_not_overflow_keep_the_softmax() {
        // 3 / 1e-30 is finite: the softmax runs and puts everything on the maximum.
        let mut logits = [1.0, 3.0, 2.0];
        let mut expected = logits.map(|l| l / 1e-30);
        softmax(&mut expected);
        let strategy = Strategy::new(1e-30, 1.0).unwrap();
        assert_eq!(sample_once(strategy, 1, &mut logits).0, 1);
        assert_eq!(logits, expected);
    }

    #[test]
    fn non_finite_logits_still_go_through_the_softmax() {
        // NaN and infinite logits are the documented non-finite-weights case: all-NaN
        // probabilities, the last token for multinomial (docs/SECURITY.md).
        let strategy = Strategy::new(1e-38, 1.0).unwrap();
        for logits in [[f32::NAN; 3], [1.0, f32::INFINITY, 2.0]] {
            let mut logits = logits;
            assert_eq!(sample_once(strategy, 1, &mut logits).0, 2);
            assert!(logits.iter().all(|p| p.is_nan()), "{logits:?}");
        }
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
