//! Keeps a mapped file that shrinks under the map from killing the process.
//!
//! Reading a page of a memory-mapped file that lies past the file's end (another process
//! truncated it after it was mapped) raises SIGBUS, whose default action ends the process
//! without a word. [`MapGuard::new`] registers a mapped range; the process-wide SIGBUS
//! handler installed with the first guard maps a page of zeros over a faulting page of a
//! registered range, marks that range as faulted and returns, so the read is retried and
//! sees zeros. The owner of the map asks [`MapGuard::faulted`] at its check points and
//! reports the change. A SIGBUS outside every registered range goes to the handler that was
//! there before (Rust's own, for stack overflows) or gets the default action.
//!
//! Linux only (the handler relies on `si_addr` and on `mmap` being a plain system call);
//! elsewhere a guard never reports a fault and a truncation still ends the process.

/// A registered mapped range; dropping the guard unregisters it.
#[derive(Debug)]
pub struct MapGuard {
    #[cfg(target_os = "linux")]
    slot: Option<&'static linux::Slot>,
}

impl MapGuard {
    /// Guards the mapped `bytes` (which must stay mapped while the guard lives). Fails only
    /// when the handler cannot be installed or too many ranges are registered at once.
    pub fn new(bytes: &[u8]) -> std::io::Result<MapGuard> {
        #[cfg(target_os = "linux")]
        {
            if bytes.is_empty() {
                return Ok(MapGuard { slot: None });
            }
            linux::install()?;
            let slot = linux::register(bytes.as_ptr() as usize, bytes.len())?;
            Ok(MapGuard { slot: Some(slot) })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = bytes;
            Ok(MapGuard {})
        }
    }

    /// Whether a read of the range hit a page past the file's end (and saw zeros).
    pub fn faulted(&self) -> bool {
        #[cfg(target_os = "linux")]
        {
            self.slot.is_some_and(linux::Slot::faulted)
        }
        #[cfg(not(target_os = "linux"))]
        {
            false
        }
    }
}

impl Drop for MapGuard {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(slot) = self.slot {
            slot.release();
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
    use std::sync::OnceLock;

    use libc::{c_int, c_void, siginfo_t};

    /// Ranges registered at once; the CLI maps one model at a time.
    const SLOTS: usize = 64;

    /// One registered range. The handler reads it with atomics only (no locks, no
    /// allocation: it may interrupt anything). `start` is 0 for a free slot; a slot is
    /// claimed by setting `start`, then `len` is published, so the handler never matches a
    /// half-written slot.
    #[derive(Debug)]
    pub struct Slot {
        start: AtomicUsize,
        len: AtomicUsize,
        faulted: AtomicBool,
    }

    impl Slot {
        const fn free() -> Slot {
            Slot {
                start: AtomicUsize::new(0),
                len: AtomicUsize::new(0),
                faulted: AtomicBool::new(false),
            }
        }

        /// Whether the handler put zeros over a page of this range.
        pub fn faulted(&self) -> bool {
            self.faulted.load(Ordering::Acquire)
        }

        /// Frees the slot (its range is about to be unmapped).
        pub fn release(&self) {
            self.len.store(0, Ordering::Release);
            self.faulted.store(false, Ordering::Release);
            self.start.store(0, Ordering::Release);
        }

        fn contains(&self, addr: usize) -> bool {
            let start = self.start.load(Ordering::Acquire);
            let len = self.len.load(Ordering::Acquire);
            start != 0 && addr >= start && addr - start < len
        }
    }

    static RANGES: [Slot; SLOTS] = [const { Slot::free() }; SLOTS];
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);
    /// The SIGBUS action before ours, as its raw handler and flags.
    static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
    static PREVIOUS_FLAGS: AtomicI32 = AtomicI32::new(0);
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

    /// Claims a free slot for `len` bytes from `start` (not 0: it is a mapping).
    pub fn register(start: usize, len: usize) -> io::Result<&'static Slot> {
        let slot = RANGES
            .iter()
            .find(|slot| {
                slot.start
                    .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            })
            .ok_or_else(|| io::Error::other("too many files mapped at once"))?;
        slot.faulted.store(false, Ordering::Release);
        slot.len.store(len, Ordering::Release);
        Ok(slot)
    }

    /// Installs the handler once for the process; later calls return the first result.
    pub fn install() -> io::Result<()> {
        let result = INSTALLED.get_or_init(|| {
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            let page = usize::try_from(page).ok().filter(|p| p.is_power_of_two());
            PAGE_SIZE.store(page.ok_or(libc::EINVAL)?, Ordering::Release);
            // SAFETY: a zeroed sigaction is a valid "query" argument; the kernel fills it.
            let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: queries the current action into a valid struct; changes nothing.
            if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) } != 0 {
                return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
            }
            PREVIOUS_HANDLER.store(previous.sa_sigaction, Ordering::Release);
            PREVIOUS_FLAGS.store(previous.sa_flags, Ordering::Release);
            // SAFETY: zeroed is a valid sigaction (empty mask, no flags), completed below.
            let mut ours: libc::sigaction = unsafe { std::mem::zeroed() };
            ours.sa_sigaction = on_sigbus as *const () as usize;
            // SA_ONSTACK: run on the alternate stack where Rust has set one up, as its own
            // handler does, so a stack overflow still reaches it.
            ours.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            // SAFETY: `ours` is fully initialised and `on_sigbus` has the SA_SIGINFO
            // signature; it only uses async-signal-safe operations.
            if unsafe { libc::sigaction(libc::SIGBUS, &ours, std::ptr::null_mut()) } != 0 {
                return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
            }
            Ok(())
        });
        (*result).map_err(|code| {
            io::Error::other(format!(
                "cannot install the SIGBUS handler: {}",
                io::Error::from_raw_os_error(code)
            ))
        })
    }

    /// The SIGBUS handler: zeros over a faulting page of a registered range, else the
    /// previous action.
    extern "C" fn on_sigbus(signal: c_int, info: *mut siginfo_t, context: *mut c_void) {
        // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t; for SIGBUS it holds
        // the faulting address.
        let addr = unsafe { (*info).si_addr() } as usize;
        let page = PAGE_SIZE.load(Ordering::Acquire);
        if let Some(slot) = RANGES.iter().find(|slot| slot.contains(addr)) {
            let page_start = addr & !(page - 1);
            // SAFETY: the page lies inside a live mapping of ours (registered ranges are
            // mapped, page-aligned, while their guard lives), so MAP_FIXED replaces only
            // our own read-only file pages with read-only zeros; the file map's munmap
            // later unmaps it with the rest. mmap is a plain system call on Linux.
            let zeros = unsafe {
                libc::mmap(
                    page_start as *mut c_void,
                    page,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if zeros != libc::MAP_FAILED {
                slot.faulted.store(true, Ordering::Release);
                return; // the read is retried and sees zeros
            }
        }
        // SAFETY: forwards the kernel's own arguments to the action that was installed
        // before ours, as it expects them.
        unsafe { forward(signal, info, context) }
    }

    /// Runs the SIGBUS action that was there before ours; for the default action (or
    /// ignore, which the kernel does not honour for faults) restores it and raises the
    /// signal again, so the process ends as it would have without us.
    ///
    /// # Safety
    /// Only from the signal handler, with the arguments it received.
    unsafe fn forward(signal: c_int, info: *mut siginfo_t, context: *mut c_void) {
        let handler = PREVIOUS_HANDLER.load(Ordering::Acquire);
        let flags = PREVIOUS_FLAGS.load(Ordering::Acquire);
        if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
            // SAFETY: zeroed is a valid sigaction; SIG_DFL with no flags is the default
            // action. sigaction and raise are async-signal-safe. The raised signal is
            // delivered when this handler returns (SIGBUS is blocked while it runs).
            unsafe {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut());
                libc::raise(libc::SIGBUS);
            }
        } else if flags & libc::SA_SIGINFO != 0 {
            // SAFETY: installed with SA_SIGINFO, the handler has this signature.
            let previous: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) =
                unsafe { std::mem::transmute(handler) };
            previous(signal, info, context);
        } else {
            // SAFETY: installed without SA_SIGINFO, the handler takes the signal only.
            let previous: extern "C" fn(c_int) = unsafe { std::mem::transmute(handler) };
            previous(signal);
        }
    }
}
