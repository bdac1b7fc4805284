//! The run state: initialising it in the caller's buffer, choosing its inner loops, and the
//! single forward step.

use llama2_core::{Kernels, Serial, State};

use crate::guard::guard;
use crate::handle::{check, kept_mut, llama2_model, llama2_state, Target};
use crate::raw::{check_disjoint, InOut, Out, Region};
use crate::status::{llama2_status, Status};
use crate::types::{
    llama2_kernels, LLAMA2_KERNELS_AUTO, LLAMA2_KERNELS_NATIVE, LLAMA2_KERNELS_SCALAR,
};

/// Initialises `state` for `model` and `context` positions (1 ..= the model's `seq_len`) in
/// the caller's `buffer[0..buffer_len]` (at least `llama2_buffer_sizes.state` floats for
/// that context; its contents do not matter).
///
/// The buffer is borrowed: it must stay valid, and must not be read or written by anything
/// else, for as long as `state` is used. The state can then be used with any model of the
/// same configuration (the model handle itself is not kept). On failure the handle is left
/// uninitialised. Kernels start as `LLAMA2_KERNELS_NATIVE`.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_OVERLAP`,
/// `LLAMA2_ERR_UNINITIALIZED` (model), `LLAMA2_ERR_INVALID_CONTEXT`,
/// `LLAMA2_ERR_BUFFER_TOO_SMALL`, `LLAMA2_ERR_SIZE_OVERFLOW`.
///
/// # Safety
/// `state` must be valid for writes of `llama2_state`, `model` point to an opened (or
/// zeroed) model, `buffer` be valid for `buffer_len` reads and writes and stay so as above.
#[no_mangle]
pub unsafe extern "C" fn llama2_state_init(
    state: *mut llama2_state,
    model: *const llama2_model,
    context: usize,
    buffer: *mut f32,
    buffer_len: usize,
) -> llama2_status {
    guard(|| {
        // SAFETY: the caller's contract: `state` is valid for writes.
        let target = unsafe { Target::new(state) }?;
        // SAFETY: the caller's contract for `model`.
        let model = unsafe { check::<_, false>(model) }?;
        let buffer = InOut::new(buffer, buffer_len)?;
        let buffer_region = buffer.region();
        check_disjoint(&[&[target.region(), buffer_region], model.regions()])?;
        // SAFETY: the caller's contract: the buffer is the state's alone while it is used;
        // it overlaps neither the handle nor the model (checked).
        let (model, buffer) = unsafe { (model.into_ref(), kept_mut(buffer)) };
        let initialised = State::new(&model.config, context, buffer)?;
        // SAFETY: the state borrows exactly `buffer_region`, kept valid by the caller.
        unsafe { target.install(initialised, [buffer_region, Region::EMPTY]) };
        Ok(())
    })
}

/// Chooses the inner loops of the state's forward passes: `LLAMA2_KERNELS_NATIVE`,
/// `LLAMA2_KERNELS_SCALAR` or `LLAMA2_KERNELS_AUTO`. Every choice gives the same tokens for
/// the fixtures' exact cases; fp32 SIMD sums in another order, so logits differ in the last
/// bits.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_UNINITIALIZED`,
/// `LLAMA2_ERR_INVALID_ARGUMENT` (an unknown value).
///
/// # Safety
/// `state` must point to an initialised (or zeroed) state whose buffer is still valid.
#[no_mangle]
pub unsafe extern "C" fn llama2_state_set_kernels(
    state: *mut llama2_state,
    kernels: llama2_kernels,
) -> llama2_status {
    guard(|| {
        let kernels = match kernels {
            LLAMA2_KERNELS_NATIVE => Kernels::native(),
            LLAMA2_KERNELS_SCALAR => Kernels::scalar(),
            LLAMA2_KERNELS_AUTO => detected_kernels(),
            _ => return Err(Status::InvalidArgument),
        };
        // SAFETY: the caller's contract for `state`.
        let state = unsafe { check::<_, true>(state) }?;
        check_disjoint(&[state.regions()])?;
        // SAFETY: valid by the caller's contract; nothing else is borrowed.
        unsafe { state.into_mut() }.set_kernels(kernels);
        Ok(())
    })
}

/// What the running CPU supports (host builds); without `std` there is no run-time
/// detection, so what the target guarantees.
fn detected_kernels() -> Kernels {
    #[cfg(feature = "std")]
    return Kernels::detect();
    #[cfg(not(feature = "std"))]
    Kernels::native()
}

/// Runs `token` at position `pos` and sets `*logits` to the `*logits_len` (= vocab_size)
/// logits of the next token. Positions must be run in order from 0: `pos` attends to what
/// earlier calls stored in the state.
///
/// `*logits` points into the state's buffer: it stays valid until the next call that uses
/// the state, and may be modified in place (as `llama2_sample()` does).
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_OVERLAP`,
/// `LLAMA2_ERR_UNINITIALIZED`, `LLAMA2_ERR_STATE_MISMATCH`, `LLAMA2_ERR_TOKEN_OUT_OF_RANGE`,
/// `LLAMA2_ERR_POSITION_OUT_OF_RANGE`.
///
/// # Safety
/// `model` and `state` must point to an opened model and an initialised state (or zeroed
/// handles) whose buffers are still valid; `logits` and `logits_len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn llama2_forward(
    model: *const llama2_model,
    state: *mut llama2_state,
    token: u32,
    pos: usize,
    logits: *mut *mut f32,
    logits_len: *mut usize,
) -> llama2_status {
    guard(|| {
        let (out_logits, out_len) = (Out::new(logits)?, Out::new(logits_len)?);
        // SAFETY: the caller's contracts for both handles.
        let (model, state) = unsafe { (check::<_, false>(model)?, check::<_, true>(state)?) };
        check_disjoint(&[
            model.regions(),
            state.regions(),
            &[out_logits.region(), out_len.region()],
        ])?;
        // SAFETY: valid by the caller's contract, and disjoint where written (checked).
        let (model, state) = unsafe { (model.into_ref(), state.into_mut()) };
        let next = model.forward(state, token, pos, &Serial)?;
        let (ptr, len) = (next.as_mut_ptr(), next.len());
        // SAFETY: valid for writes (the caller's contract); the borrows above have ended.
        unsafe {
            out_logits.write(ptr);
            out_len.write(len);
        }
        Ok(())
    })
}
