//! The sampler: initialising it with settings and scratch, and choosing a token.

use llama2_core::{ProbIndex, Sampler, Strategy};

use crate::guard::guard;
use crate::handle::{check, kept_mut, llama2_sampler, Target};
use crate::raw::{check_disjoint, read, InOut, Out, Region};
use crate::status::{llama2_status, Status};
use crate::types::{llama2_prob_index, llama2_sampling};

/// Initialises `sampler` with `*settings` (read during the call only) for a vocabulary of
/// `vocab_size` tokens. Top-p sampling (temperature > 0 and 0 < top_p < 1) sorts in the
/// caller's `scratch[0..scratch_len]`, at least `vocab_size` entries
/// (`llama2_buffer_sizes.sampler_scratch`); other settings need none (NULL with length 0 is
/// fine).
///
/// The scratch is borrowed: it must stay valid, and unused by anything else, for as long as
/// `sampler` is used. On failure the handle is left uninitialised.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_OVERLAP`,
/// `LLAMA2_ERR_INVALID_TEMPERATURE`, `LLAMA2_ERR_INVALID_TOP_P`,
/// `LLAMA2_ERR_INVALID_ARGUMENT` (seed 0 with temperature > 0),
/// `LLAMA2_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
/// `sampler` must be valid for writes of `llama2_sampler`, `settings` point to a
/// `llama2_sampling`, `scratch` be valid for `scratch_len` reads and writes and stay so as
/// above.
#[no_mangle]
pub unsafe extern "C" fn llama2_sampler_init(
    sampler: *mut llama2_sampler,
    settings: *const llama2_sampling,
    vocab_size: usize,
    scratch: *mut llama2_prob_index,
    scratch_len: usize,
) -> llama2_status {
    guard(|| {
        // SAFETY: the caller's contract: `sampler` is valid for writes.
        let target = unsafe { Target::new(sampler) }?;
        // SAFETY: the caller's contract: `settings` points to a `llama2_sampling`.
        let settings = unsafe { read(settings) }?;
        let strategy = Strategy::new(settings.temperature, settings.top_p)?;
        if strategy != Strategy::Argmax && settings.seed == 0 {
            return Err(Status::InvalidArgument);
        }
        let scratch = InOut::new_or_empty(scratch, scratch_len)?.cast::<ProbIndex>();
        let scratch_region = scratch.region();
        check_disjoint(&[&[target.region(), scratch_region]])?;
        // SAFETY: the caller's contract: the scratch is the sampler's alone while it is
        // used; it does not overlap the handle (checked).
        let scratch = unsafe { kept_mut(scratch) };
        let initialised = Sampler::new(strategy, settings.seed, vocab_size, scratch)?;
        // SAFETY: the sampler borrows exactly `scratch_region`, kept valid by the caller.
        unsafe { target.install(initialised, [scratch_region, Region::EMPTY]) };
        Ok(())
    })
}

/// Chooses the next token from `logits[0..len]` (normally from `llama2_forward()`) and
/// writes it to `*token`. Unless the temperature is 0, turns the logits into probabilities
/// in place.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_OVERLAP`,
/// `LLAMA2_ERR_UNINITIALIZED`, `LLAMA2_ERR_INVALID_LOGITS` (empty, NaN or +infinity),
/// `LLAMA2_ERR_INVALID_ARGUMENT` (more than 2^32 logits), `LLAMA2_ERR_BUFFER_TOO_SMALL`
/// (top-p scratch shorter than `len`).
///
/// # Safety
/// `sampler` must point to an initialised (or zeroed) sampler whose scratch is still valid,
/// `logits` be valid for `len` reads and writes, `token` for a write.
#[no_mangle]
pub unsafe extern "C" fn llama2_sample(
    sampler: *mut llama2_sampler,
    logits: *mut f32,
    len: usize,
    token: *mut u32,
) -> llama2_status {
    guard(|| {
        let out = Out::new(token)?;
        // SAFETY: the caller's contract for `sampler`.
        let sampler = unsafe { check::<_, true>(sampler) }?;
        let logits = InOut::new(logits, len)?;
        check_disjoint(&[sampler.regions(), &[logits.region(), out.region()]])?;
        // SAFETY: valid by the caller's contract, and disjoint where written (checked).
        let (sampler, logits) = unsafe { (sampler.into_mut(), logits.into_mut_slice()) };
        if logits.is_empty() || logits.iter().any(|&l| l.is_nan() || l == f32::INFINITY) {
            return Err(Status::InvalidLogits);
        }
        if u32::try_from(logits.len() - 1).is_err() {
            return Err(Status::InvalidArgument);
        }
        let chosen = if logits.len() == 1 {
            // The only token. (Also keeps the engine's top-p cutoff, which divides by
            // `len - 1`, away from a one-token distribution.)
            0
        } else {
            sampler.sample(logits)?
        };
        // SAFETY: valid for a write (the caller's contract); the borrows above have ended.
        unsafe { out.write(chosen) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{LLAMA2_ERR_PANIC, LLAMA2_OK};

    /// Equal logits and a top-p below 1/n leave the engine's top-p sampler no candidate, and
    /// it panics (a llama2-core bug; llama2.c reads out of bounds there). The guard turns the
    /// panic into `LLAMA2_ERR_PANIC`; once the engine handles the case, the call succeeds.
    #[test]
    fn an_engine_panic_does_not_cross_the_boundary() {
        let mut handle = core::mem::MaybeUninit::<llama2_sampler>::uninit();
        let settings = llama2_sampling {
            temperature: 1.0,
            top_p: 0.001,
            seed: 1,
        };
        let mut scratch = [llama2_prob_index {
            prob: 0.0,
            index: 0,
        }; 512];
        let mut logits = [0.0f32; 512];
        let mut token = u32::MAX;
        // SAFETY: every pointer is to live, exclusive memory of the stated length.
        unsafe {
            let sampler = handle.as_mut_ptr();
            let status = llama2_sampler_init(sampler, &settings, 512, scratch.as_mut_ptr(), 512);
            assert_eq!(status, LLAMA2_OK);
            let status = llama2_sample(sampler, logits.as_mut_ptr(), 512, &mut token);
            assert!(
                status == LLAMA2_ERR_PANIC || (status == LLAMA2_OK && token < 512),
                "status {status}, token {token}"
            );
        }
    }
}
