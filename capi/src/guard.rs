//! Every entry point runs its body through [`guard`], which turns the body's result into a
//! status code and makes sure that no Rust panic crosses into C.
//!
//! With the `std` feature (host builds) a panic is caught with `catch_unwind` and reported as
//! `LLAMA2_ERR_PANIC`. Without it (bare metal) there is no unwinding: the target panics with
//! `panic = "abort"` semantics into the `panic-handler` feature's handler, which never
//! returns. Either way no unwind reaches a C frame. The engine is written to report bad input
//! as errors, so this is a guard against bugs, not a path that valid or invalid input takes.

use crate::status::{llama2_status, Status, LLAMA2_OK};

/// Runs `body`; `Ok` becomes `LLAMA2_OK`, `Err(status)` its code, and a panic (host builds)
/// `LLAMA2_ERR_PANIC`.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Status>) -> llama2_status {
    let result = run(body);
    match result {
        Ok(()) => LLAMA2_OK,
        Err(status) => status as llama2_status,
    }
}

#[cfg(feature = "std")]
fn run(body: impl FnOnce() -> Result<(), Status>) -> Result<(), Status> {
    // Unwind safety: after a caught panic the call returns LLAMA2_ERR_PANIC, whose
    // documentation tells the caller to initialise the objects of that call again, so no
    // broken invariant is observed through them.
    std::panic::catch_unwind(core::panic::AssertUnwindSafe(body)).unwrap_or(Err(Status::Panic))
}

#[cfg(not(feature = "std"))]
fn run(body: impl FnOnce() -> Result<(), Status>) -> Result<(), Status> {
    body()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::LLAMA2_ERR_PANIC;

    #[test]
    fn results_become_codes() {
        assert_eq!(guard(|| Ok(())), LLAMA2_OK);
        assert_eq!(guard(|| Err(Status::Null)), Status::Null as i32);
    }

    #[test]
    fn a_panic_becomes_llama2_err_panic() {
        assert_eq!(guard(|| panic!("a bug")), LLAMA2_ERR_PANIC);
    }
}
