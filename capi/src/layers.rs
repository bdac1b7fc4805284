//! The layer table of a GGUF model: caller memory in which `llama2_model_open()` writes one
//! view of each layer's weights (a GGUF file's tensors can be anywhere, in any type, so the
//! per-layer views cannot be computed in place as for a llama2.c file).
//!
//! C declares the entries as an array of the fixed-size opaque `llama2_layer`; its size is
//! fixed in the header and checked against the engine's `LayerWeights` at compile time on
//! every target, like the handles' (module `handle`).

use core::mem::{align_of, size_of};

use llama2_core::LayerWeights;

use crate::raw::InOut;

/// Size of `llama2_layer` in 64-bit words.
pub const LLAMA2_LAYER_WORDS: usize = 64;

/// One entry of a GGUF model's layer table: the library's view of one layer's weights.
///
/// A GGUF model needs `n_layers` of them (`llama2_model_layers_len()` says how many before
/// the model is opened), passed to `llama2_model_open()`; a llama2.c model needs none.
/// Opaque: the caller only provides the memory (an array, static or `malloc`'ed).
#[repr(C)]
pub struct llama2_layer {
    _opaque: [u64; LLAMA2_LAYER_WORDS],
}

impl core::fmt::Debug for llama2_layer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("llama2_layer").finish_non_exhaustive()
    }
}

const _: () = assert!(
    size_of::<LayerWeights<'static>>() <= size_of::<llama2_layer>()
        && align_of::<LayerWeights<'static>>() <= align_of::<llama2_layer>(),
    "the engine's LayerWeights outgrew llama2_layer: raise LLAMA2_LAYER_WORDS and regenerate \
     the header"
);

/// The caller's `llama2_layer` entries as a table of the same number of engine views, each
/// set to [`LayerWeights::EMPTY`] (the caller memory may hold anything, so it is written
/// before a reference to it is formed). The views are packed at the front of the entries'
/// memory. Like [`crate::handle::kept_mut`], the table is `'static` for "while the model
/// handle that stores it is used".
///
/// # Safety
/// As for [`crate::handle::kept_mut`]: the memory must be valid for reads and writes, and
/// accessed by nothing else, for as long as the model handle is used.
pub(crate) unsafe fn kept_layer_table(
    entries: InOut<llama2_layer>,
) -> &'static mut [LayerWeights<'static>] {
    let len = entries.len();
    let first = entries.as_mut_ptr().cast::<LayerWeights<'static>>();
    for i in 0..len {
        // SAFETY: `LayerWeights` is no larger than `llama2_layer` and no more aligned
        // (asserted above), so the `len` views fit in the caller's `len` entries, which are
        // valid for writes (the caller's contract); `write` reads nothing old.
        unsafe { first.add(i).write(LayerWeights::EMPTY) };
    }
    // SAFETY: the first `len` views are initialised (above), aligned, and within the span
    // (whose byte size fits `isize`, checked by `InOut::new`); exclusive by the contract.
    unsafe { core::slice::from_raw_parts_mut(first, len) }
}
