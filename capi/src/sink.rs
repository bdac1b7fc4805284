//! The two text sinks generation writes to: the caller's callback, and the caller's buffer.

use core::ffi::{c_char, c_int, c_void};

use embedded_io::{ErrorKind, ErrorType, Write};

use crate::status::Status;

/// Why a sink stopped taking text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop(pub(crate) Status);

impl embedded_io::Error for Stop {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Other
    }
}

/// Hands every piece to the caller's `llama2_piece_fn`.
pub(crate) struct Callback {
    pub(crate) function: unsafe extern "C" fn(*const c_char, usize, *mut c_void) -> c_int,
    pub(crate) user: *mut c_void,
}

impl ErrorType for Callback {
    type Error = Stop;
}

impl Write for Callback {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Stop> {
        if !buf.is_empty() {
            // SAFETY: the function pointer and `user` come from the caller, whose contract
            // (`llama2_piece_fn`) is to accept any piece with its `user` pointer; the piece
            // is valid for the call.
            let status = unsafe { (self.function)(buf.as_ptr().cast(), buf.len(), self.user) };
            if status != 0 {
                return Err(Stop(Status::Callback));
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Stop> {
        Ok(())
    }
}

/// Appends whole pieces to the caller's buffer, keeping room for a terminating NUL.
pub(crate) struct Buffer<'a> {
    bytes: &'a mut [u8],
    len: usize,
}

impl<'a> Buffer<'a> {
    /// An empty text in `bytes`, which must hold at least the NUL.
    pub(crate) fn new(bytes: &'a mut [u8]) -> Result<Buffer<'a>, Status> {
        match bytes.first_mut() {
            Some(first) => *first = 0,
            None => return Err(Status::BufferTooSmall),
        }
        Ok(Buffer { bytes, len: 0 })
    }

    /// The text's length in bytes, without the NUL that follows it.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl ErrorType for Buffer<'_> {
    type Error = Stop;
}

impl Write for Buffer<'_> {
    /// Takes all of `buf` or, if it does not fit with the NUL, none of it: the text never
    /// ends in part of a piece (a piece is whole UTF-8 characters).
    fn write(&mut self, buf: &[u8]) -> Result<usize, Stop> {
        // No overflow: both lengths are at most `isize::MAX`.
        let end = self.len + buf.len();
        // The piece and the NUL after it; `None` if they do not fit.
        let window = self
            .bytes
            .get_mut(self.len..=end)
            .ok_or(Stop(Status::OutputFull))?;
        let (text, nul) = window.split_at_mut(buf.len());
        text.copy_from_slice(buf);
        if let Some(nul) = nul.first_mut() {
            *nul = 0;
        }
        self.len = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Stop> {
        Ok(())
    }
}
