//! A small thread pool behind core's [`Parallel`] hook, built for many tiny jobs: workers
//! spin briefly between jobs so that a matrix-vector product of a few microseconds still
//! gains from a second core, then sleep on a condition variable when work stops coming.

use std::cell::UnsafeCell;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use llama2_core::{Parallel, Split};

/// Jobs cheaper than this many multiply-adds run on the calling thread: handing them out
/// would cost more than it saves.
const MIN_PARALLEL_COST: usize = 16 * 1024;
/// Spins a worker waits for the next job before going to sleep.
const SPINS_BEFORE_SLEEP: u32 = 1 << 17;

/// The work a worker can see: a type-erased view of the dispatcher's closure and output.
struct Job {
    out: *mut f32,
    len: usize,
    /// Elements per chunk boundary step (whole granules).
    granule: usize,
    parts: usize,
    work: *const (dyn Fn(usize, &mut [f32]) + Sync),
}

struct Shared {
    /// Bumped once per job; a worker runs each epoch's job once.
    epoch: AtomicU64,
    /// Workers done with the current epoch.
    finished: AtomicUsize,
    /// Written by the dispatcher only while every worker is between jobs.
    job: UnsafeCell<Job>,
    panicked: AtomicBool,
    shutdown: AtomicBool,
    sleeping: AtomicUsize,
    sleep_lock: Mutex<()>,
    wake: Condvar,
}

// SAFETY: `job` is written only by the dispatcher while no worker reads it (before the
// epoch that publishes it and after every worker reported `finished` for the previous one),
// and read by workers only between those points; its raw pointers refer to data the
// dispatcher keeps alive until all workers finished. Everything else is atomics or locks.
unsafe impl Sync for Shared {}
// SAFETY: as above; the pointers in `job` are only dereferenced under that protocol.
unsafe impl Send for Shared {}

/// `threads - 1` workers plus the calling thread.
pub struct ThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    /// One dispatch at a time; a concurrent caller runs its job inline instead.
    dispatch: Mutex<()>,
}

impl std::fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadPool")
            .field("threads", &self.threads())
            .finish()
    }
}

impl ThreadPool {
    /// A pool using `threads` threads in all (the caller's included); 0 or 1 means none
    /// are started.
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            epoch: AtomicU64::new(0),
            finished: AtomicUsize::new(0),
            job: UnsafeCell::new(Job {
                out: std::ptr::null_mut(),
                len: 0,
                granule: 1,
                parts: 0,
                work: &|_: usize, _: &mut [f32]| {},
            }),
            panicked: AtomicBool::new(false),
            shutdown: AtomicBool::new(false),
            sleeping: AtomicUsize::new(0),
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
        });
        let mut workers = Vec::new();
        for index in 1..threads.max(1) {
            let shared = Arc::clone(&shared);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("llama2-worker-{index}"))
                    .spawn(move || worker(&shared, index))?,
            );
        }
        Ok(ThreadPool {
            shared,
            workers,
            dispatch: Mutex::new(()),
        })
    }

    /// Threads that share the work, the caller's included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }
}

/// The element range of chunk `part` of `parts` over `len` elements in whole granules.
fn chunk_range(len: usize, granule: usize, parts: usize, part: usize) -> (usize, usize) {
    let granules = len.div_ceil(granule);
    let start = (granules * part / parts * granule).min(len);
    let end = (granules * (part + 1) / parts * granule).min(len);
    (start, end)
}

fn worker(shared: &Shared, index: usize) {
    let mut seen = 0u64;
    loop {
        let mut spins = 0;
        let epoch = loop {
            let epoch = shared.epoch.load(Ordering::Acquire);
            if epoch != seen || shared.shutdown.load(Ordering::Acquire) {
                break epoch;
            }
            if spins < SPINS_BEFORE_SLEEP {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let guard = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.sleeping.fetch_add(1, Ordering::SeqCst);
            let mut guard = guard;
            while shared.epoch.load(Ordering::SeqCst) == seen
                && !shared.shutdown.load(Ordering::SeqCst)
            {
                guard = shared.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            shared.sleeping.fetch_sub(1, Ordering::SeqCst);
            spins = 0;
        };
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        seen = epoch;
        // SAFETY: the epoch was published (Release) after the job was written, and the
        // dispatcher does not touch the job again until this worker reports `finished`.
        let job = unsafe { &*shared.job.get() };
        if index < job.parts {
            let (start, end) = chunk_range(job.len, job.granule, job.parts, index);
            if start < end {
                // SAFETY: chunks of different parts are disjoint ranges of `out`, which
                // the dispatcher keeps borrowed mutably (and alive) until every worker
                // finished; `work` is alive for as long.
                let result = catch_unwind(AssertUnwindSafe(|| unsafe {
                    let chunk = std::slice::from_raw_parts_mut(job.out.add(start), end - start);
                    (*job.work)(start, chunk)
                }));
                if result.is_err() {
                    shared.panicked.store(true, Ordering::Release);
                }
            }
        }
        shared.finished.fetch_add(1, Ordering::AcqRel);
    }
}

/// Waits, even while unwinding, until every worker finished the current job, so that no
/// worker can touch the dispatcher's stack after `for_each_chunk` returns.
struct WaitForWorkers<'p> {
    shared: &'p Shared,
    workers: usize,
}

impl Drop for WaitForWorkers<'_> {
    fn drop(&mut self) {
        let mut spins = 0u32;
        while self.shared.finished.load(Ordering::Acquire) < self.workers {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(1 << 12) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

impl Parallel for ThreadPool {
    fn for_each_chunk(
        &self,
        out: &mut [f32],
        split: Split,
        work: &(dyn Fn(usize, &mut [f32]) + Sync),
    ) {
        let granule = split.granule.max(1);
        let granules = out.len().div_ceil(granule);
        let parts = self.threads().min(granules);
        let cost = granules.saturating_mul(split.cost);
        let busy = self.dispatch.try_lock();
        let Ok(_dispatching) = busy else {
            return work(0, out);
        };
        if parts <= 1 || cost < MIN_PARALLEL_COST {
            return work(0, out);
        }
        let shared = &*self.shared;
        // One raw pointer for every chunk, the dispatcher's own included, so that no
        // later reborrow of `out` invalidates what the workers were given.
        let base = out.as_mut_ptr();
        let len = out.len();
        // SAFETY: every worker finished the previous job (the previous dispatch waited for
        // them), so none reads `job` now. The lifetime of `work` is erased; the pointer is
        // used only until `WaitForWorkers` below has seen every worker finish.
        unsafe {
            *shared.job.get() = Job {
                out: base,
                len,
                granule,
                parts,
                work: std::mem::transmute::<
                    *const (dyn Fn(usize, &mut [f32]) + Sync + '_),
                    *const (dyn Fn(usize, &mut [f32]) + Sync + 'static),
                >(work),
            };
        }
        shared.finished.store(0, Ordering::Relaxed);
        shared.epoch.fetch_add(1, Ordering::SeqCst);
        if shared.sleeping.load(Ordering::SeqCst) > 0 {
            let _guard = shared.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wake.notify_all();
        }
        let wait = WaitForWorkers {
            shared,
            workers: self.workers.len(),
        };
        let (start, end) = chunk_range(len, granule, parts, 0);
        // SAFETY: part 0 is disjoint from the parts the workers write (see `chunk_range`)
        // and lies inside `out`, which stays mutably borrowed for this whole call.
        let own = unsafe { std::slice::from_raw_parts_mut(base.add(start), end - start) };
        work(start, own);
        drop(wait);
        if shared.panicked.swap(false, Ordering::AcqRel) {
            resume_unwind(Box::new("a worker thread panicked"));
        }
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = self
                .shared
                .sleep_lock
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            self.shared.wake.notify_all();
        }
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_output_in_whole_granules() {
        for (len, granule, parts) in [(10, 4, 2), (172, 4, 2), (7, 1, 3), (64, 8, 2), (3, 4, 2)] {
            let mut next = 0;
            for part in 0..parts {
                let (start, end) = chunk_range(len, granule, parts, part);
                assert_eq!(start, next);
                assert!(start % granule == 0 || start == len);
                next = end;
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn every_element_is_written_once() {
        let pool = ThreadPool::new(3).unwrap();
        for len in [0, 1, 5, 4096, 100_003] {
            let mut out = vec![0.0f32; len];
            let split = Split {
                granule: 4,
                cost: 1_000_000,
            };
            for round in 0..50 {
                pool.for_each_chunk(&mut out, split, &|first, chunk| {
                    for (i, v) in chunk.iter_mut().enumerate() {
                        *v += (first + i) as f32;
                    }
                });
                let expected = |i: usize| (round + 1) as f32 * i as f32;
                assert!(
                    out.iter().enumerate().all(|(i, &v)| v == expected(i)),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn a_panicking_job_is_reported_to_the_caller() {
        let pool = ThreadPool::new(2).unwrap();
        let mut out = vec![0.0f32; 1024];
        let split = Split {
            granule: 1,
            cost: 1_000_000,
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            pool.for_each_chunk(&mut out, split, &|first, _| {
                if first > 0 {
                    panic!("worker job fails");
                }
            })
        }));
        assert!(result.is_err());
        // The pool still works afterwards.
        pool.for_each_chunk(&mut out, split, &|_, chunk| chunk.fill(1.0));
        assert!(out.iter().all(|&v| v == 1.0));
    }
}
