//! The hook through which the forward pass hands out independent pieces of work.
//!
//! Core stays single-threaded; a host supplies a thread pool, a dual-core microcontroller
//! could supply its second core.

/// How a job's output may be cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// Chunks start at multiples of this many elements (a matrix row, an attention head).
    pub granule: usize,
    /// Rough cost of one granule in multiply-adds, so that an implementation can keep
    /// jobs too small to be worth the synchronisation on one thread.
    pub cost: usize,
}

/// Runs `work` over disjoint chunks that together cover `out`.
///
/// `work(first, chunk)` must fill `chunk`, which holds elements `first..first + chunk.len()`
/// of `out`; `first` is a multiple of `split.granule`, and every chunk but the last holds
/// whole granules. The forward pass only hands out work whose results do not depend on the
/// chunking, so any implementation gives results bit-identical to [`Serial`].
pub trait Parallel: Sync {
    /// Calls `work` on chunks of `out` cut as `split` allows, in any order or at once.
    fn for_each_chunk(
        &self,
        out: &mut [f32],
        split: Split,
        work: &(dyn Fn(usize, &mut [f32]) + Sync),
    );
}

/// Does all the work on the calling thread.
#[derive(Debug, Clone, Copy, Default)]
pub struct Serial;

impl Parallel for Serial {
    fn for_each_chunk(
        &self,
        out: &mut [f32],
        _split: Split,
        work: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) {
        work(0, out);
    }
}

impl<P: Parallel + ?Sized> Parallel for &P {
    fn for_each_chunk(
        &self,
        out: &mut [f32],
        split: Split,
        work: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) {
        (**self).for_each_chunk(out, split, work);
    }
}
