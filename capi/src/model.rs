//! Opening a model, and what it needs: its config and the sizes of the caller buffers.

use llama2_core::gguf::is_gguf;
use llama2_core::{prompt_buffer_len, Config, Model, Sampler, State, Strategy, Tokenizer};

use crate::guard::guard;
use crate::handle::{check, kept, llama2_model, Target};
use crate::layers::{kept_layer_table, llama2_layer};
use crate::raw::{check_disjoint, In, InOut, Out, Region};
use crate::status::{llama2_status, Status};
use crate::types::{llama2_buffer_sizes, llama2_config};

/// Writes to `*layers_len` the number of `llama2_layer` entries `llama2_model_open()` needs
/// for the model file in `bytes[0..len]`: the layer count (`n_layers`) of a GGUF file, 0 for
/// a llama2.c file. Reads only the file's header and metadata; `bytes` need no alignment.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED` (`layers_len`), the model-file errors
/// of `llama2_model_open()` that the metadata shows (`LLAMA2_ERR_MODEL_FORMAT`, ...).
///
/// # Safety
/// `bytes` must be valid for `len` reads; `layers_len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn llama2_model_layers_len(
    bytes: *const u8,
    len: usize,
    layers_len: *mut usize,
) -> llama2_status {
    guard(|| {
        let out = Out::new(layers_len)?;
        let bytes = In::new(bytes, len)?;
        // SAFETY: the caller's contract; the bytes are only read, during this call.
        let needed = Model::layer_table_len(unsafe { bytes.into_slice() })?;
        // SAFETY: valid for a write (the caller's contract); the borrow above has ended.
        unsafe { out.write(needed) };
        Ok(())
    })
}

/// Opens the model file held in `bytes[0..len]`, without copying it: a llama2.c file (v0,
/// v1 or v2) or a GGUF file of the llama architecture (version 2 or 3), told apart by their
/// first bytes.
///
/// `bytes` must be 4-byte aligned (memory from `malloc`, a memory map, or an aligned array
/// is) and hold exactly the file. A GGUF file also needs a layer table,
/// `layers[0..layers_len]`: at least the `n_layers` entries `llama2_model_layers_len()`
/// reports (a constant for firmware built for one model), into which this function writes
/// its views of each layer's weights. A llama2.c file needs none: pass NULL and 0 (a table given is left
/// alone). The table must not overlap the bytes or the handle.
///
/// The bytes and the table are borrowed, not copied: they must stay valid, and unchanged,
/// for as long as `model` or any state, generation or forward pass uses it. `model` is
/// caller memory (a `llama2_model` variable); on failure it is left uninitialised.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_OVERLAP`,
/// `LLAMA2_ERR_BUFFER_TOO_SMALL` (the layer table), `LLAMA2_ERR_MODEL_SIZE`,
/// `LLAMA2_ERR_MODEL_VERSION`, `LLAMA2_ERR_MODEL_CONFIG`, `LLAMA2_ERR_MODEL_FORMAT`,
/// `LLAMA2_ERR_SIZE_OVERFLOW`.
///
/// # Safety
/// `model` must be valid for writes of `llama2_model`; `bytes` must be valid for `len`
/// reads and `layers` (unless NULL) for `layers_len` reads and writes, and stay so as
/// described above.
#[no_mangle]
pub unsafe extern "C" fn llama2_model_open(
    model: *mut llama2_model,
    bytes: *const u8,
    len: usize,
    layers: *mut llama2_layer,
    layers_len: usize,
) -> llama2_status {
    guard(|| {
        // SAFETY: the caller's contract: `model` is valid for writes.
        let target = unsafe { Target::new(model) }?;
        let bytes = In::new(bytes, len)?;
        let layers = InOut::new_or_empty(layers, layers_len)?;
        let regions = [bytes.region(), layers.region()];
        check_disjoint(&[&[target.region()], &regions])?;
        // SAFETY: the caller's contract: `bytes` is valid for `len` reads, unchanged while
        // the model is used, and the table valid and the model's alone; neither overlaps
        // the other or the handle, the one other thing this call writes (checked).
        let bytes = unsafe { kept(bytes) };
        // Only a GGUF model uses (and so borrows) the table: a llama2.c model leaves it alone.
        let (table, table_region) = if is_gguf(bytes) {
            // SAFETY: as above.
            (unsafe { kept_layer_table(layers) }, regions[1].read_only())
        } else {
            (&mut [][..], Region::EMPTY)
        };
        let opened = Model::parse(bytes, table)?;
        // After parsing, the table is only read.
        let regions = [regions[0], table_region];
        // SAFETY: the model borrows only `regions`, which the caller keeps valid while the
        // handle is used, and which do not overlap the handle (checked).
        unsafe { target.install(opened, regions) };
        Ok(())
    })
}

/// Writes the model's hyperparameters and file layout to `*config`.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_UNINITIALIZED`.
///
/// # Safety
/// `model` must point to an opened (or zeroed) `llama2_model` whose bytes are still valid;
/// `config` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn llama2_model_config(
    model: *const llama2_model,
    config: *mut llama2_config,
) -> llama2_status {
    // SAFETY: the caller's contract for `model` and `config`.
    unsafe { write_from_model(model, config, |model| Ok(llama2_config::from(model))) }
}

/// Writes to `*sizes` the element counts of the buffers this model needs with a state of
/// `context` positions (1 ..= `seq_len`; fewer positions take less memory).
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_UNINITIALIZED`,
/// `LLAMA2_ERR_INVALID_CONTEXT`, `LLAMA2_ERR_SIZE_OVERFLOW`.
///
/// # Safety
/// As for `llama2_model_config()`, with `sizes` for `config`.
#[no_mangle]
pub unsafe extern "C" fn llama2_model_buffer_sizes(
    model: *const llama2_model,
    context: usize,
    sizes: *mut llama2_buffer_sizes,
) -> llama2_status {
    // SAFETY: the caller's contract for `model` and `sizes`.
    unsafe { write_from_model(model, sizes, |model| buffer_sizes(&model.config, context)) }
}

/// What `llama2_model_buffer_sizes()` reports.
fn buffer_sizes(config: &Config, context: usize) -> Result<llama2_buffer_sizes, Status> {
    if context == 0 || context > config.seq_len {
        return Err(Status::InvalidContext);
    }
    let top_p = Strategy::TopP {
        temperature: 1.0,
        top_p: 0.9,
    };
    Ok(llama2_buffer_sizes {
        state: State::len_for(config, context).ok_or(Status::SizeOverflow)?,
        tokenizer_index: Tokenizer::index_len(config.vocab_size).ok_or(Status::SizeOverflow)?,
        sampler_scratch: Sampler::scratch_len(&top_p, config.vocab_size),
    })
}

/// The body of the functions that read an opened model and write one value: checks both
/// pointers, then writes to `*out` what `query` makes of the model.
///
/// # Safety
/// `model` must point to an opened (or zeroed) `llama2_model` whose bytes are still valid;
/// `out` must be valid for writes.
unsafe fn write_from_model<T>(
    model: *const llama2_model,
    out: *mut T,
    query: impl FnOnce(&Model<'static>) -> Result<T, Status>,
) -> llama2_status {
    guard(|| {
        let out = Out::new(out)?;
        // SAFETY: the caller's contract for `model`.
        let model = unsafe { check::<_, false>(model) }?;
        // SAFETY: nothing else is borrowed by this call (`out` is written after).
        let value = query(unsafe { model.into_ref() })?;
        // SAFETY: the caller's contract: `out` is valid for writes; no borrow is live.
        unsafe { out.write(value) };
        Ok(())
    })
}

/// The number of `uint32_t`s the prompt-token buffer of `llama2_generate()` (or of
/// `llama2_encode()` with BOS and EOS) needs for a prompt of `prompt_len` bytes:
/// `7 * prompt_len + 15` (the tokens, written at the front, and the encoder's scratch, so
/// that encoding allocates nothing and takes `O(n log n)` time), or `SIZE_MAX` if the
/// prompt is too long to encode.
#[no_mangle]
pub extern "C" fn llama2_prompt_tokens_len(prompt_len: usize) -> usize {
    prompt_buffer_len(prompt_len).unwrap_or(usize::MAX)
}
