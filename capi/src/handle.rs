//! Opaque handles: engine objects placed in caller memory, without allocation.
//!
//! C declares a handle as a fixed-size struct (`llama2_model model;`, on the stack, in a
//! `static` or inside its own structs); the `_open`/`_init` functions write a [`Slot`] into
//! it: a type tag, the caller buffers the object borrows, and the engine value. The sizes are
//! fixed in the header (`LLAMA2_*_WORDS` 64-bit words) and checked against the Rust types at
//! compile time on every target, so a core change that outgrows them fails the build rather
//! than overflowing caller memory.
//!
//! The engine values borrow caller memory (`Model<'a>` the model bytes, `State<'b>` the
//! activation buffer, ...). Rust cannot see how long C keeps that memory, so the values are
//! stored with `'static` lifetimes: this module (and `layers`, for a model's layer table) is
//! the one place that lifetime is assumed, and the header states the contract that makes it
//! true (the borrowed memory outlives every use of the handle). No value here needs dropping
//! (checked below), so a handle is released by simply no longer using it.
//!
//! Before a call borrows a handle, [`check`] validates the pointer and the tag through raw
//! reads (no reference is formed to memory that may not hold a slot), and reports the
//! regions the handle and its value borrow, so that the call can check them for overlap with
//! its other arguments before any reference exists.

use core::marker::PhantomData;
use core::mem::{align_of, size_of};
use core::ptr::{addr_of, addr_of_mut, NonNull};

use llama2_core::{Model, Sampler, State, TextDecoder, Tokenizer};

use crate::raw::{InOut, Region, Span};
use crate::status::Status;

/// Size of `llama2_model` in 64-bit words.
pub const LLAMA2_MODEL_WORDS: usize = 96;
/// Size of `llama2_tokenizer` in 64-bit words.
pub const LLAMA2_TOKENIZER_WORDS: usize = 24;
/// Size of `llama2_state` in 64-bit words.
pub const LLAMA2_STATE_WORDS: usize = 64;
/// Size of `llama2_sampler` in 64-bit words.
pub const LLAMA2_SAMPLER_WORDS: usize = 16;
/// Size of `llama2_text` in 64-bit words.
pub const LLAMA2_TEXT_WORDS: usize = 12;

/// An opened model: a view of the caller's model bytes (nothing is copied).
///
/// Initialise with `llama2_model_open()`. Opaque: do not read or write its contents, and do
/// not copy it while a state or generation uses it (pass pointers). It needs no closing.
#[repr(C)]
pub struct llama2_model {
    _opaque: [u64; LLAMA2_MODEL_WORDS],
}

/// An opened tokenizer: a view of the caller's tokenizer bytes and index buffer.
///
/// Initialise with `llama2_tokenizer_open()`. Opaque, needs no closing.
#[repr(C)]
pub struct llama2_tokenizer {
    _opaque: [u64; LLAMA2_TOKENIZER_WORDS],
}

/// The run state of one sequence (activations and KV cache), in the caller's float buffer.
///
/// Initialise with `llama2_state_init()`. Opaque, needs no closing. Never copy an
/// initialised state and use both copies.
#[repr(C)]
pub struct llama2_state {
    _opaque: [u64; LLAMA2_STATE_WORDS],
}

/// A sampler: the sampling strategy, its random generator and the caller's top-p scratch.
///
/// Initialise with `llama2_sampler_init()`. Opaque, needs no closing. Never copy an
/// initialised sampler and use both copies.
#[repr(C)]
pub struct llama2_sampler {
    _opaque: [u64; LLAMA2_SAMPLER_WORDS],
}

/// The text rule's pending bytes (an unfinished UTF-8 character) between calls of
/// `llama2_decode()`.
///
/// Initialise with `llama2_text_init()`; initialise it again to start a new text. Opaque.
#[repr(C)]
pub struct llama2_text {
    _opaque: [u64; LLAMA2_TEXT_WORDS],
}

/// What an initialised handle holds. `repr(C)` so that `magic` is at offset 0.
#[repr(C)]
struct Slot<T> {
    /// [`Handle::MAGIC`] while the slot holds a value; anything else means uninitialised.
    magic: u64,
    /// The caller memory the value borrows (unused entries are [`Region::EMPTY`]).
    regions: [Region; 2],
    value: T,
}

/// A C handle type, the engine value it holds and its type tag.
pub(crate) trait Handle: Sized {
    /// The engine value, with its borrows of caller memory as `'static` (module docs).
    type Value;
    /// Marks an initialised slot of this type; distinct per type, never 0.
    const MAGIC: u64;
}

/// Whether a `Slot<T>` fits in the handle `H`.
const fn fits<H, T>() -> bool {
    size_of::<Slot<T>>() <= size_of::<H>() && align_of::<Slot<T>>() <= align_of::<H>()
}

macro_rules! handle {
    ($handle:ty, $value:ty, $tag:literal, $words:ident) => {
        impl core::fmt::Debug for $handle {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.debug_struct(stringify!($handle)).finish_non_exhaustive()
            }
        }
        impl Handle for $handle {
            type Value = $value;
            const MAGIC: u64 = u64::from_le_bytes(*$tag);
        }
        const _: () = assert!(
            fits::<$handle, $value>(),
            concat!(
                "the engine value outgrew ",
                stringify!($handle),
                ": raise ",
                stringify!($words),
                " and regenerate the header"
            )
        );
    };
}

handle!(
    llama2_model,
    Model<'static>,
    b"L2model\x01",
    LLAMA2_MODEL_WORDS
);
handle!(
    llama2_tokenizer,
    Tokenizer<'static>,
    b"L2token\x01",
    LLAMA2_TOKENIZER_WORDS
);
handle!(
    llama2_state,
    State<'static>,
    b"L2state\x01",
    LLAMA2_STATE_WORDS
);
handle!(
    llama2_sampler,
    Sampler<'static>,
    b"L2smplr\x01",
    LLAMA2_SAMPLER_WORDS
);
handle!(llama2_text, TextDecoder, b"L2text_\x01", LLAMA2_TEXT_WORDS);

/// A handle about to be (re)initialised: checked non-NULL and aligned, and already marked
/// uninitialised, so that a failed `_open`/`_init` leaves it unusable.
#[derive(Debug)]
pub(crate) struct Target<H: Handle>(NonNull<Slot<H::Value>>);

impl<H: Handle> Target<H> {
    /// Checks `handle` and clears its tag.
    ///
    /// # Safety
    /// If `handle` is not NULL it must be valid for writes of `H` and not borrowed by
    /// anything else during the call.
    pub(crate) unsafe fn new(handle: *mut H) -> Result<Target<H>, Status> {
        let handle = NonNull::new(handle).ok_or(Status::Null)?;
        if !handle.as_ptr().is_aligned() {
            return Err(Status::Misaligned);
        }
        let slot = handle.cast::<Slot<H::Value>>();
        // SAFETY: `H` is at least as large and as aligned as `Slot<H::Value>` (`fits`,
        // asserted at compile time), `handle` is aligned (checked) and valid for writes (the
        // caller's contract); the write goes through a raw pointer, forming no reference.
        unsafe { addr_of_mut!((*slot.as_ptr()).magic).write(0) };
        Ok(Target(slot))
    }

    /// The memory of the handle, written by this call.
    pub(crate) fn region(&self) -> Region {
        Region::object(self.0.as_ptr().cast::<H>().cast_const(), true)
    }

    /// Stores `value`, which borrows `regions`, and marks the handle initialised.
    ///
    /// # Safety
    /// `value` must borrow only memory that the caller of the C function has promised to keep
    /// valid for the handle's use (the header's lifetime rules), described by `regions`,
    /// none of which overlaps the handle.
    pub(crate) unsafe fn install(self, value: H::Value, regions: [Region; 2]) {
        let slot = Slot {
            magic: H::MAGIC,
            regions,
            value,
        };
        // SAFETY: valid for writes and aligned (`new`), and no reference to the handle is
        // live; the old contents are overwritten without a drop, which is sound (module docs).
        unsafe { self.0.as_ptr().write(slot) }
    }
}

/// A handle whose pointer and tag have been checked, not yet borrowed; `MUT` says whether the
/// call will write it.
#[derive(Debug)]
pub(crate) struct Checked<'h, H: Handle, const MUT: bool> {
    slot: NonNull<Slot<H::Value>>,
    /// The handle's own memory, then the caller memory its value borrows.
    regions: [Region; 3],
    _borrow: PhantomData<&'h mut H>,
}

/// Checks a handle argument: non-NULL, aligned and initialised as an `H`.
///
/// # Safety
/// If `handle` is not NULL it must point to memory valid for reads of `H` that is either an
/// initialised handle of some type or zeroed, and (for `MUT`) valid for writes; it must not
/// be accessed by anything else during `'h`.
pub(crate) unsafe fn check<'h, H: Handle, const MUT: bool>(
    handle: *const H,
) -> Result<Checked<'h, H, MUT>, Status> {
    let handle = NonNull::new(handle.cast_mut()).ok_or(Status::Null)?;
    if !handle.as_ptr().is_aligned() {
        return Err(Status::Misaligned);
    }
    let slot = handle.cast::<Slot<H::Value>>();
    // SAFETY: aligned and valid for reads of `H`, which holds a `Slot` (`fits`); `magic` is
    // at offset 0 of every slot type (`repr(C)`) and any `u64` bit pattern is valid, so this
    // raw read is sound whatever the handle holds (the header requires initialised or
    // zeroed memory).
    let magic = unsafe { addr_of!((*slot.as_ptr()).magic).read() };
    if magic != H::MAGIC {
        return Err(Status::Uninitialized);
    }
    // SAFETY: the tag says `install` wrote a `Slot<H::Value>` here, so `regions` is
    // initialised.
    let stored = unsafe { addr_of!((*slot.as_ptr()).regions).read() };
    Ok(Checked {
        slot,
        regions: [
            Region::object(handle.as_ptr().cast_const(), MUT),
            stored[0],
            stored[1],
        ],
        _borrow: PhantomData,
    })
}

impl<'h, H: Handle, const MUT: bool> Checked<'h, H, MUT> {
    /// The handle's memory and the caller memory its value borrows, for the overlap check.
    pub(crate) fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The value, shared.
    ///
    /// # Safety
    /// The regions of this handle must have been checked for overlap with every other
    /// borrow of the call ([`crate::raw::check_disjoint`]).
    pub(crate) unsafe fn into_ref(self) -> &'h H::Value {
        // SAFETY: the tag says the slot holds an initialised value (`check`); the borrowed
        // memory is valid for `'h` by the header's lifetime rules, and nothing writes it
        // during the call (overlap check, and the caller's contract of `check`).
        unsafe { &(*self.slot.as_ptr()).value }
    }
}

impl<'h, H: Handle> Checked<'h, H, true> {
    /// The value, exclusive.
    ///
    /// # Safety
    /// As for [`Checked::into_ref`].
    pub(crate) unsafe fn into_mut(self) -> &'h mut H::Value {
        // SAFETY: as in `into_ref`; `MUT` handles are valid for writes and accessed by
        // nothing else during `'h` (the caller's contract of `check`, and the overlap check).
        unsafe { &mut (*self.slot.as_ptr()).value }
    }
}

/// Caller memory that a handle keeps borrowing after the call returns, as a `'static` slice:
/// with [`kept_mut`] (and `layers::kept_layer_table`, for a model's layer table), the one
/// place where that lifetime is assumed (module docs).
///
/// # Safety
/// As for [`Span::into_slice`], for as long as the handle that stores the slice is used (the
/// header's lifetime rules).
pub(crate) unsafe fn kept<T, const MUT: bool>(span: Span<T, MUT>) -> &'static [T] {
    // SAFETY: forwarded contract; `'static` stands for "while the handle is used".
    unsafe { span.into_slice() }
}

/// Like [`kept`], exclusive.
///
/// # Safety
/// As for [`Span::into_mut_slice`], for as long as the handle that stores the slice is used.
pub(crate) unsafe fn kept_mut<T>(span: InOut<T>) -> &'static mut [T] {
    // SAFETY: forwarded contract; `'static` stands for "while the handle is used".
    unsafe { span.into_mut_slice() }
}
