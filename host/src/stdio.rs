//! The one place the CLI writes to stdout and stderr, every write checked.
//!
//! A failed write to stdout is an error the run reports (a full disk, a closed descriptor),
//! except a broken pipe: the reader has what it wanted (`llama2 ... | head`), so the run
//! stops quietly with exit 0, as other filters do. Stderr is where failures are reported,
//! so a failed write there has nowhere left to go and is ignored (never a panic, unlike
//! `eprintln!`).

use std::fmt;
use std::io::{self, Write};

use crate::error::CliError;

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> Result<(), CliError> {
    print_bytes(text.as_bytes())
}

/// Writes `bytes` to stdout and flushes it.
pub fn print_bytes(bytes: &[u8]) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(stdout_failed)
}

/// The report for a failed write to stdout: quiet when the reader went away, else an error
/// naming stdout.
pub fn stdout_failed(error: io::Error) -> CliError {
    if error.kind() == io::ErrorKind::BrokenPipe {
        CliError::output_closed()
    } else {
        CliError::usage("stdout", error)
    }
}

/// The report for a failed read of stdin.
pub fn stdin_failed(error: io::Error) -> CliError {
    CliError::usage("stdin", error)
}

/// Writes `args` to stderr as they are (no newline added); a failure is ignored.
pub fn write_stderr(args: fmt::Arguments<'_>) {
    let mut stderr = io::stderr().lock();
    let _ = stderr.write_fmt(args).and_then(|()| stderr.flush());
}

/// Writes one line to stderr, like `eprintln!` but never panicking.
macro_rules! note {
    () => {
        $crate::stdio::write_stderr(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdio::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stderr without a newline (progress shown in place), like `eprint!` but never
/// panicking.
macro_rules! progress {
    ($($arg:tt)*) => {
        $crate::stdio::write_stderr(format_args!($($arg)*))
    };
}

pub(crate) use {note, progress};
