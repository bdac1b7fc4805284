//! The hook through which the forward pass hands out independent rows of work.
//!
//! Core stays single-threaded; a host supplies a thread pool, a dual-core microcontroller
//! could supply its second core.

/// Runs `work` over disjoint chunks that together cover `out`.
///
/// `work(first, chunk)` must fill `chunk`, which holds rows `first..first + chunk.len()`.
/// Every row's result must not depend on how rows are chunked, so implementations are free to
/// split as they like and results stay bit-identical to [`Serial`].
pub trait Parallel: Sync {
    fn for_each_chunk(&self, out: &mut [f32], work: &(dyn Fn(usize, &mut [f32]) + Sync));
}

/// Does all the work on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial;

impl Parallel for Serial {
    fn for_each_chunk(&self, out: &mut [f32], work: &(dyn Fn(usize, &mut [f32]) + Sync)) {
        work(0, out);
    }
}
