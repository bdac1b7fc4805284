//! Model bytes at an address aligned for `f32`, as [`Model::from_bytes`] views the weights
//! in place: [`Aligned`] for data in a `static` (flash on a microcontroller) and, with the
//! `std` feature, `AlignedBytes` for a copy on the heap.
//!
//! [`Model::from_bytes`]: crate::Model::from_bytes

#[cfg(feature = "std")]
mod heap;

#[cfg(feature = "std")]
pub use heap::AlignedBytes;

/// A value (usually bytes) stored at an address aligned for `f32`, so that a model file
/// included in the program can be viewed in place:
///
/// ```
/// use llama2_core::Aligned;
///
/// static MODEL: &Aligned<[u8]> = &Aligned(*b"model file bytes");
/// assert_eq!(MODEL.0.as_ptr() as usize % align_of::<f32>(), 0);
/// ```
///
/// (with `*include_bytes!("model.bin")` in place of the literal).
#[derive(Debug)]
#[repr(C, align(4))]
pub struct Aligned<T: ?Sized>(pub T);
