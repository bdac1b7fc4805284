//! The tokenizer: opening one, encoding text, and decoding tokens with the text rule.

use core::ffi::{c_char, c_void};

use embedded_io::Write;
use llama2_core::{Gguf, TextDecoder, Tokenizer};

use crate::guard::guard;
use crate::handle::{check, kept, kept_mut, llama2_text, llama2_tokenizer, Target};
use crate::raw::{check_disjoint, In, InOut, Out, Region};
use crate::sink::{Callback, Stop};
use crate::status::{llama2_status, Status};
use crate::types::{llama2_piece_fn, llama2_vocab};

/// Opens the tokenizer file held in `bytes[0..len]` for a vocabulary of `vocab_size` tokens
/// (the model's `vocab_size`), building its lookup index in `index[0..index_len]` (at least
/// `2 * vocab_size` entries: `llama2_buffer_sizes.tokenizer_index`).
///
/// Both buffers are borrowed: they must stay valid, and unchanged, for as long as
/// `tokenizer` is used. They must not overlap each other or the handle. On failure the
/// handle is left uninitialised.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_OVERLAP`,
/// `LLAMA2_ERR_BUFFER_TOO_SMALL`, `LLAMA2_ERR_TOKENIZER_FORMAT`, `LLAMA2_ERR_SIZE_OVERFLOW`.
///
/// # Safety
/// `tokenizer` must be valid for writes of `llama2_tokenizer`; `bytes` valid for `len`
/// reads and `index` for `index_len` reads and writes, and stay so as described above.
#[no_mangle]
pub unsafe extern "C" fn llama2_tokenizer_open(
    tokenizer: *mut llama2_tokenizer,
    bytes: *const u8,
    len: usize,
    vocab_size: usize,
    index: *mut u32,
    index_len: usize,
) -> llama2_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open_into(tokenizer, bytes, len, index, index_len, |bytes, index| {
            Tokenizer::new(bytes, vocab_size, index)
        })
    }
}

/// Opens the tokenizer inside a GGUF model file held in `bytes[0..len]` (the bytes given to
/// `llama2_model_open()`: its `tokenizer.ggml.*` vocabulary, read in place), building its
/// lookup index in `index[0..index_len]` (at least `llama2_buffer_sizes.tokenizer_index`
/// entries, 2 x vocab_size). Its BOS and EOS ids are the file's: `llama2_tokenizer_vocab()`.
///
/// The same borrowing rules as for `llama2_tokenizer_open()` apply: the bytes (which the
/// model handle may share) and the index must stay valid, and unchanged, for as long as
/// `tokenizer` is used; the index must not overlap the bytes or the handle. A llama2.c model
/// file holds no tokenizer (`LLAMA2_ERR_MODEL_FORMAT`): open its `tokenizer.bin` with
/// `llama2_tokenizer_open()`.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_OVERLAP`,
/// `LLAMA2_ERR_BUFFER_TOO_SMALL`, `LLAMA2_ERR_MODEL_FORMAT` (not a GGUF file, or a malformed
/// one), `LLAMA2_ERR_MODEL_VERSION`, `LLAMA2_ERR_MODEL_SIZE`, `LLAMA2_ERR_TOKENIZER_FORMAT`
/// (a missing, malformed or unsupported vocabulary: only `tokenizer.ggml.model = "llama"` is
/// read), `LLAMA2_ERR_SIZE_OVERFLOW`.
///
/// # Safety
/// As for `llama2_tokenizer_open()`.
#[no_mangle]
pub unsafe extern "C" fn llama2_tokenizer_open_model(
    tokenizer: *mut llama2_tokenizer,
    bytes: *const u8,
    len: usize,
    index: *mut u32,
    index_len: usize,
) -> llama2_status {
    // SAFETY: forwarded from the caller.
    unsafe {
        open_into(tokenizer, bytes, len, index, index_len, |bytes, index| {
            Tokenizer::from_gguf(&Gguf::parse(bytes)?, index)
        })
    }
}

/// The body of both `_open` functions: checks the handle and the two buffers (NULL,
/// alignment, no overlap), opens the tokenizer over them with `open`, and installs it in the
/// handle, which then borrows the bytes and, read-only once built, the index.
///
/// # Safety
/// As for `llama2_tokenizer_open()`.
unsafe fn open_into(
    tokenizer: *mut llama2_tokenizer,
    bytes: *const u8,
    len: usize,
    index: *mut u32,
    index_len: usize,
    open: impl FnOnce(&'static [u8], &'static mut [u32]) -> llama2_core::Result<Tokenizer<'static>>,
) -> llama2_status {
    guard(|| {
        // SAFETY: the caller's contract: `tokenizer` is valid for writes.
        let target = unsafe { Target::new(tokenizer) }?;
        let bytes = In::new(bytes, len)?;
        let index = InOut::new(index, index_len)?;
        let regions = [bytes.region(), index.region()];
        check_disjoint(&[&[target.region()], &regions])?;
        // SAFETY: the caller's contract: both buffers are valid, and not otherwise used,
        // while the tokenizer is; they overlap neither each other nor the handle (checked).
        let opened = open(unsafe { kept(bytes) }, unsafe { kept_mut(index) })?;
        // Once built, the index is only read.
        let regions = [regions[0], regions[1].read_only()];
        // SAFETY: the tokenizer borrows exactly `regions`, kept valid by the caller.
        unsafe { target.install(opened, regions) };
        Ok(())
    })
}

/// Writes to `*vocab` the tokenizer's vocabulary size and special tokens: BOS and EOS are
/// 1 and 2 for a `tokenizer.bin` (`LLAMA2_BOS`, `LLAMA2_EOS`), what the file says for a
/// GGUF vocabulary. A loop of one's own ends the text when the model chooses `bos`, as
/// `llama2_generate()` does.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_UNINITIALIZED`.
///
/// # Safety
/// `tokenizer` must point to an opened (or zeroed) tokenizer whose buffers are still valid;
/// `vocab` must be valid for writes.
#[no_mangle]
pub unsafe extern "C" fn llama2_tokenizer_vocab(
    tokenizer: *const llama2_tokenizer,
    vocab: *mut llama2_vocab,
) -> llama2_status {
    guard(|| {
        let out = Out::new(vocab)?;
        // SAFETY: the caller's contract for `tokenizer`.
        let tokenizer = unsafe { check::<_, false>(tokenizer) }?;
        // SAFETY: nothing else is borrowed by this call (`out` is written after).
        let tokenizer = unsafe { tokenizer.into_ref() };
        let value = llama2_vocab {
            vocab_size: tokenizer.vocab_size(),
            bos: tokenizer.bos(),
            eos: tokenizer.eos(),
            add_bos: tokenizer.add_bos(),
        };
        // SAFETY: valid for a write (the caller's contract); the borrow above has ended.
        unsafe { out.write(value) };
        Ok(())
    })
}

/// Encodes `text[0..text_len]` (bytes, normally UTF-8; NULL is allowed when `text_len` is
/// 0) into `tokens[0..tokens_len]` the way llama2.c does, BOS first if `bos`, EOS last if
/// `eos` (the tokenizer's ids: `llama2_tokenizer_vocab()`), and writes the number of tokens to `*n_tokens`. `tokens_len` must be at least
/// `llama2_prompt_tokens_len(text_len)`: the tokens are written at the front, the rest is
/// the encoder's scratch.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`, `LLAMA2_ERR_OVERLAP`,
/// `LLAMA2_ERR_UNINITIALIZED`, `LLAMA2_ERR_BUFFER_TOO_SMALL`, `LLAMA2_ERR_VOCAB_TOO_SMALL`.
///
/// # Safety
/// `tokenizer` must point to an opened (or zeroed) tokenizer whose buffers are still valid;
/// `text` must be valid for `text_len` reads, `tokens` for `tokens_len` reads and writes,
/// `n_tokens` for a write.
#[no_mangle]
pub unsafe extern "C" fn llama2_encode(
    tokenizer: *const llama2_tokenizer,
    text: *const c_char,
    text_len: usize,
    bos: bool,
    eos: bool,
    tokens: *mut u32,
    tokens_len: usize,
    n_tokens: *mut usize,
) -> llama2_status {
    guard(|| {
        let out = Out::new(n_tokens)?;
        // SAFETY: the caller's contract for `tokenizer`.
        let tokenizer = unsafe { check::<_, false>(tokenizer) }?;
        let text = In::new_or_empty(text.cast::<u8>(), text_len)?;
        let tokens = InOut::new(tokens, tokens_len)?;
        check_disjoint(&[
            tokenizer.regions(),
            &[text.region(), tokens.region(), out.region()],
        ])?;
        // SAFETY: valid by the caller's contract, and disjoint where written (checked).
        let (tokenizer, text, tokens) = unsafe {
            (
                tokenizer.into_ref(),
                text.into_slice(),
                tokens.into_mut_slice(),
            )
        };
        let count = tokenizer.encode(text, bos, eos, tokens)?;
        // SAFETY: valid for a write (the caller's contract); the borrows above have ended.
        unsafe { out.write(count) };
        Ok(())
    })
}

/// Prepares `text` for a new text: `llama2_decode()` keeps in it the bytes of a UTF-8
/// character that is not complete yet. Call it again to start another text.
///
/// Errors: `LLAMA2_ERR_NULL`, `LLAMA2_ERR_MISALIGNED`.
///
/// # Safety
/// `text` must be valid for writes of `llama2_text`.
#[no_mangle]
pub unsafe extern "C" fn llama2_text_init(text: *mut llama2_text) -> llama2_status {
    guard(|| {
        // SAFETY: the caller's contract: `text` is valid for writes.
        let target = unsafe { Target::new(text) }?;
        // SAFETY: a `TextDecoder` borrows nothing.
        unsafe { target.install(TextDecoder::new(), [Region::EMPTY; 2]) };
        Ok(())
    })
}

/// Decodes `token`, which follows `prev` (the token before it; `prev` = the tokenizer's BOS,
/// `llama2_vocab.bos`, drops the piece's leading space), with the text rule of
/// `llama2_generate()`, and passes whatever
/// text is complete to `on_piece` (zero or more calls). This is how a caller that runs its
/// own loop with `llama2_forward()` and `llama2_sample()` prints exactly what generation
/// prints (without the final newline).
///
/// Errors: `LLAMA2_ERR_NULL` (also for a NULL `on_piece`), `LLAMA2_ERR_MISALIGNED`,
/// `LLAMA2_ERR_OVERLAP`, `LLAMA2_ERR_UNINITIALIZED`, `LLAMA2_ERR_TOKEN_OUT_OF_RANGE`,
/// `LLAMA2_ERR_CALLBACK`.
///
/// # Safety
/// `tokenizer` must point to an opened (or zeroed) tokenizer whose buffers are still valid,
/// `text` to an initialised (or zeroed) `llama2_text`; `on_piece` must follow the contract
/// of `llama2_piece_fn`.
#[no_mangle]
pub unsafe extern "C" fn llama2_decode(
    tokenizer: *const llama2_tokenizer,
    text: *mut llama2_text,
    prev: u32,
    token: u32,
    on_piece: llama2_piece_fn,
    user: *mut c_void,
) -> llama2_status {
    guard(|| {
        let function = on_piece.ok_or(Status::Null)?;
        // SAFETY: the caller's contracts for both handles.
        let (tokenizer, text) = unsafe { (check::<_, false>(tokenizer)?, check::<_, true>(text)?) };
        check_disjoint(&[tokenizer.regions(), text.regions()])?;
        // SAFETY: valid by the caller's contract, and disjoint where written (checked).
        let (tokenizer, text) = unsafe { (tokenizer.into_ref(), text.into_mut()) };
        let piece = tokenizer.decode(prev, token)?;
        let mut sink = Callback { function, user };
        let mut written = Ok(());
        text.push(piece, |bytes| {
            if written.is_ok() {
                written = sink.write_all(bytes);
            }
        });
        written.map_err(|Stop(status)| status)
    })
}
