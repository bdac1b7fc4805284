//! Checked conversions from C pointers and lengths to Rust slices and out-parameters, and the
//! overlap check that keeps Rust's aliasing rules when a call borrows several caller buffers.
//!
//! Every function here checks what it can (NULL, alignment, that the byte length fits in
//! `isize`); what it cannot check (that the memory is valid and stays valid) is the caller's
//! contract, stated in the header.

use core::mem::{align_of, size_of};
use core::ptr::NonNull;

use crate::status::Status;

/// An address range of caller memory that one call borrows, and whether the call writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Region {
    start: usize,
    len: usize,
    writable: bool,
}

impl Region {
    /// The empty region, which overlaps nothing.
    pub(crate) const EMPTY: Region = Region {
        start: 0,
        len: 0,
        writable: false,
    };

    /// `count` elements of `T` at `ptr`. Callers have checked that the byte length fits.
    fn of<T>(ptr: *const T, count: usize, writable: bool) -> Region {
        Region {
            start: ptr as usize,
            len: count.saturating_mul(size_of::<T>()),
            writable,
        }
    }

    /// The memory of one `T` at `ptr` (a handle or a struct).
    pub(crate) fn object<T>(ptr: *const T, writable: bool) -> Region {
        Region::of(ptr, 1, writable)
    }

    /// The same memory, as read-only.
    pub(crate) fn read_only(self) -> Region {
        Region {
            writable: false,
            ..self
        }
    }

    fn overlaps(&self, other: &Region) -> bool {
        self.len != 0
            && other.len != 0
            && self.start < other.start.saturating_add(other.len)
            && other.start < self.start.saturating_add(self.len)
    }
}

/// Fails with `LLAMA2_ERR_OVERLAP` if two regions overlap and either is written: Rust may
/// not hold a `&mut` to memory that anything else borrows at the same time.
pub(crate) fn check_disjoint(groups: &[&[Region]]) -> Result<(), Status> {
    let all = || groups.iter().flat_map(|group| group.iter());
    for (i, a) in all().enumerate() {
        for b in all().skip(i + 1) {
            if (a.writable || b.writable) && a.overlaps(b) {
                return Err(Status::Overlap);
            }
        }
    }
    Ok(())
}

/// A checked pointer to `len` elements of `T` that the call has not borrowed yet: non-NULL
/// (or the empty span), aligned, with a byte length that fits in `isize`, as
/// `slice::from_raw_parts` requires besides validity. `MUT` says whether the call writes it.
///
/// A call first makes the spans of all its buffers, checks their [`Region`]s for overlap, and
/// only then turns them into slices, so no two references it forms ever alias wrongly.
#[derive(Debug)]
pub(crate) struct Span<T, const MUT: bool> {
    ptr: NonNull<T>,
    len: usize,
}

impl<T, const MUT: bool> Span<T, MUT> {
    /// Checks `ptr` and `len`. NULL is an error even when `len` is 0.
    pub(crate) fn new(ptr: *const T, len: usize) -> Result<Span<T, MUT>, Status> {
        let ptr = NonNull::new(ptr.cast_mut()).ok_or(Status::Null)?;
        if !ptr.as_ptr().is_aligned() {
            return Err(Status::Misaligned);
        }
        match len.checked_mul(size_of::<T>()) {
            Some(bytes) if bytes <= isize::MAX as usize => Ok(Span { ptr, len }),
            _ => Err(Status::SizeOverflow),
        }
    }

    /// Like [`Span::new`], but NULL with `len == 0` is the empty span.
    pub(crate) fn new_or_empty(ptr: *const T, len: usize) -> Result<Span<T, MUT>, Status> {
        if ptr.is_null() && len == 0 {
            return Ok(Span {
                ptr: NonNull::dangling(),
                len: 0,
            });
        }
        Span::new(ptr, len)
    }

    /// The same memory as elements of `U`, which has the size and alignment of `T`
    /// (checked at compile time) and, like `T`, accepts any bit pattern.
    pub(crate) fn cast<U>(self) -> Span<U, MUT> {
        const {
            assert!(size_of::<T>() == size_of::<U>() && align_of::<T>() == align_of::<U>());
        }
        Span {
            ptr: self.ptr.cast(),
            len: self.len,
        }
    }

    /// The number of elements.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The memory of the span (empty spans overlap nothing).
    pub(crate) fn region(&self) -> Region {
        Region::of(self.ptr.as_ptr().cast_const(), self.len, MUT)
    }

    /// The elements, shared.
    ///
    /// # Safety
    /// The memory must hold `len` initialised elements that nothing writes during `'a`
    /// (the overlap check of the call, and the caller's contract).
    pub(crate) unsafe fn into_slice<'a>(self) -> &'a [T] {
        // SAFETY: non-NULL (or dangling for length 0), aligned, size fits in `isize` (`new`);
        // validity for `'a` is this function's contract.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Span<T, true> {
    /// The first element's address, to write elements that do not hold a valid value yet.
    pub(crate) fn as_mut_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// The elements, exclusive.
    ///
    /// # Safety
    /// The memory must hold `len` elements valid for reads and writes (any bit pattern is a
    /// valid value of the element types used here) that nothing else accesses during `'a`.
    pub(crate) unsafe fn into_mut_slice<'a>(self) -> &'a mut [T] {
        // SAFETY: as in `into_slice`, and exclusive access is this function's contract.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// A buffer the call only reads.
pub(crate) type In<T> = Span<T, false>;
/// A buffer the call writes.
pub(crate) type InOut<T> = Span<T, true>;

/// A checked out-parameter: non-NULL and aligned, written once the call has its result.
///
/// It is written with a plain pointer write after every borrow of the call has ended, so it
/// may point anywhere the caller likes (even into a buffer of the same call).
#[derive(Debug)]
pub(crate) struct Out<T>(NonNull<T>);

impl<T> Out<T> {
    /// Checks `ptr` without writing it.
    pub(crate) fn new(ptr: *mut T) -> Result<Out<T>, Status> {
        let ptr = NonNull::new(ptr).ok_or(Status::Null)?;
        if !ptr.as_ptr().is_aligned() {
            return Err(Status::Misaligned);
        }
        Ok(Out(ptr))
    }

    /// `Some` for a non-NULL `ptr`, `None` for NULL: an optional out-parameter.
    pub(crate) fn optional(ptr: *mut T) -> Result<Option<Out<T>>, Status> {
        if ptr.is_null() {
            Ok(None)
        } else {
            Out::new(ptr).map(Some)
        }
    }

    /// The memory the out-parameter points to, written by the call.
    pub(crate) fn region(&self) -> Region {
        Region::object(self.0.as_ptr().cast_const(), true)
    }

    /// Stores `value` (without dropping the old contents, which may be uninitialised).
    ///
    /// # Safety
    /// The pointer must be valid for a write of `T`, and no reference to its memory may be
    /// live.
    pub(crate) unsafe fn write(self, value: T) {
        // SAFETY: non-NULL and aligned (checked in `new`); validity and the absence of live
        // references are the caller's contract.
        unsafe { self.0.as_ptr().write(value) }
    }
}

/// Reads a `T` that the caller passes by pointer (a settings struct).
///
/// # Safety
/// If `ptr` is not NULL it must point to an initialised `T`.
pub(crate) unsafe fn read<T: Copy>(ptr: *const T) -> Result<T, Status> {
    if ptr.is_null() {
        return Err(Status::Null);
    }
    if !ptr.is_aligned() {
        return Err(Status::Misaligned);
    }
    // SAFETY: non-NULL and aligned (checked above); initialised is the caller's contract.
    Ok(unsafe { ptr.read() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: usize, len: usize, writable: bool) -> Region {
        Region {
            start,
            len,
            writable,
        }
    }

    #[test]
    fn only_written_overlaps_are_errors() {
        let a = region(100, 10, true);
        assert_eq!(check_disjoint(&[&[a, region(110, 5, true)]]), Ok(()));
        assert_eq!(
            check_disjoint(&[&[a], &[region(109, 5, false)]]),
            Err(Status::Overlap)
        );
        assert_eq!(
            check_disjoint(&[&[region(100, 10, false), region(105, 10, false)]]),
            Ok(())
        );
        assert_eq!(check_disjoint(&[&[a, region(105, 0, true)]]), Ok(()));
        assert_eq!(
            check_disjoint(&[&[a, Region::EMPTY, region(90, 11, false)]]),
            Err(Status::Overlap)
        );
    }

    #[test]
    fn pointers_are_checked() {
        let words = [0u32; 4];
        let null = core::ptr::null::<u32>();
        assert_eq!(In::new(null, 0).err(), Some(Status::Null));
        assert_eq!(In::new_or_empty(null, 0).map(|s| s.region().len), Ok(0));
        assert_eq!(In::new_or_empty(null, 1).err(), Some(Status::Null));
        let odd = words.as_ptr().cast::<u8>().wrapping_add(1).cast::<u32>();
        assert_eq!(In::new(odd, 1).err(), Some(Status::Misaligned));
        assert_eq!(
            In::new(words.as_ptr(), usize::MAX / 2).err(),
            Some(Status::SizeOverflow)
        );
        let span = In::new(words.as_ptr(), 4).unwrap();
        // SAFETY: `words` is live for the test and never written.
        assert_eq!(unsafe { span.into_slice() }, &words[..]);
        assert!(Out::<u32>::new(core::ptr::null_mut()).is_err());
        assert!(Out::<u32>::optional(core::ptr::null_mut())
            .unwrap()
            .is_none());
    }
}
