//! Writing an output file so that it is never lost or half-written: the one owner of "write
//! OUT safely" for every subcommand that produces a file (`quantize`, and `convert` next).
//!
//! [`write_atomically`] writes into a fresh temporary file beside OUT and renames it over OUT
//! only once it is complete and on disk. Until that rename OUT is untouched; after it OUT is
//! the whole new file. Nothing but the temporary file is ever created, truncated or deleted.
//!
//! Ctrl-C (SIGINT) and SIGTERM during a write are caught by a flag (the `signal-hook`
//! crate), not acted on in the handler, which could only do async-signal-safe work: the
//! writer checks the flag before each chunk it hands to the file and stops with an error,
//! the ordinary error path removes the temporary file (so every way out of a write goes
//! through one cleanup), and then the signal takes its default action: the process ends by
//! it, as `gzip` does, so the shell or script that sent it sees an interrupted command and
//! stops too. The handlers are installed once; outside a write they run the default action
//! at once (the process ends as it would without them), and a signal the process was started
//! with ignored (a background job of a script) stays ignored.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::CliError;

/// Bytes buffered before they go to the temporary file; also how much is written between
/// two looks at the signal flag.
const CHUNK: usize = 1 << 20;

/// Writes OUT at `output` with `write`, atomically: `write` fills a temporary file in OUT's
/// directory, which is flushed, synced to disk, given OUT's permissions and renamed over OUT;
/// then the directory is synced so that the rename itself survives a crash.
///
/// Refused before anything is created: OUT is a directory, OUT is read-only (someone meant
/// to keep it), OUT's directory is missing, or OUT is the same file as one of `inputs` (the
/// same path, a hard link, or a symbolic link to it, compared by device and inode). An OUT
/// that is a symbolic link to another file is replaced by the new file; the link's target is
/// left alone.
///
/// An existing OUT keeps its permission bits; a new one gets `0o666` less the umask, as any
/// newly created file. On any error the temporary file is removed, OUT is left as it was and
/// the error names OUT. On SIGINT or SIGTERM the same cleanup runs and then the process ends
/// by the signal (once no other write of the process is in progress). Two runs writing the
/// same OUT at once each write their own temporary file; the last rename wins and OUT is
/// always one whole file.
///
/// `write` reports its own errors (about OUT, or about an input it reads: an input that
/// changed while it was read must not become OUT); [`CliError::file`] with `output` names OUT.
pub fn write_atomically<T>(
    output: &Path,
    inputs: &[&Path],
    write: impl FnOnce(&mut dyn Write) -> Result<T, CliError>,
) -> Result<T, CliError> {
    let existing = check_output(output, inputs)?;
    let directory = directory_of(output);
    check_directory(directory)?;
    let fail = |e: io::Error| CliError::file(output, e);
    let _writing = interrupt::Writing::start().map_err(fail)?;
    let mut temporary = create_temporary(output, directory, existing.as_ref()).map_err(fail)?;
    // Any `?` below drops `temporary`, which removes the file.
    let value = {
        let mut out = BufWriter::with_capacity(CHUNK, Interruptible(temporary.as_file_mut()));
        let value = write(&mut out)?;
        out.flush().map_err(fail)?;
        value
    };
    interrupt::check().map_err(fail)?;
    temporary.as_file().sync_all().map_err(fail)?;
    interrupt::check().map_err(fail)?;
    temporary.persist(output).map_err(|e| fail(e.error))?;
    sync_directory(directory).map_err(|e| {
        CliError::file(
            output,
            format!(
                "written, but its directory {} could not be synced to disk: {e}",
                directory.display()
            ),
        )
    })?;
    Ok(value)
}

/// What an existing OUT was: its permissions, kept by the new file.
struct Existing {
    permissions: fs::Permissions,
}

/// Refuses an OUT that is a directory or one of `inputs`; returns what OUT is now, if it
/// exists.
fn check_output(output: &Path, inputs: &[&Path]) -> Result<Option<Existing>, CliError> {
    let metadata = match fs::metadata(output) {
        Ok(metadata) => metadata,
        // Nothing there (or a dangling link, which the rename replaces): nothing to compare.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::file(output, e)),
    };
    if metadata.is_dir() {
        return Err(CliError::file(
            output,
            "is a directory; give the path of the file to write",
        ));
    }
    let out = same_file::Handle::from_path(output).map_err(|e| CliError::file(output, e))?;
    for &input in inputs {
        if same_file::Handle::from_path(input).is_ok_and(|input| input == out) {
            let problem = if input == output {
                "is also the input file; write the output to another path".to_string()
            } else {
                format!(
                    "is the input file {} under another name (a hard link or a symbolic \
                     link); write the output to another path",
                    input.display()
                )
            };
            return Err(CliError::file(output, problem));
        }
    }
    if metadata.permissions().readonly() {
        return Err(CliError::file(
            output,
            "is read-only; make it writable or remove it to replace it",
        ));
    }
    Ok(Some(Existing {
        permissions: metadata.permissions(),
    }))
}

/// The directory OUT lives in (`.` for a bare file name).
fn directory_of(output: &Path) -> &Path {
    match output.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Refuses a directory for OUT that is missing or not a directory, naming it.
fn check_directory(directory: &Path) -> Result<(), CliError> {
    match fs::metadata(directory) {
        Ok(metadata) if metadata.is_dir() => Ok(()),
        Ok(_) => Err(CliError::file(directory, "is not a directory")),
        Err(e) => Err(CliError::file(directory, e)),
    }
}

/// A new file `.NAME.XXXXXX.tmp` in `directory`, created exclusively (`O_EXCL`: never an
/// existing file, never through a symbolic link) with a random name, with OUT's permissions.
fn create_temporary(
    output: &Path,
    directory: &Path,
    existing: Option<&Existing>,
) -> io::Result<NamedTempFile> {
    let name = output.file_name().unwrap_or_default().to_string_lossy();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Created with the mode it will keep (the umask can only narrow it), so the data is
        // never readable by more users than OUT's will be.
        let mode = existing.map_or(0o666, |e| e.permissions.mode() & 0o7777);
        builder.permissions(fs::Permissions::from_mode(mode));
    }
    let temporary = builder.tempfile_in(directory).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot create a temporary file in {}: {e}",
                directory.display()
            ),
        )
    })?;
    if let Some(existing) = existing {
        // Exactly OUT's bits, whatever the umask.
        temporary
            .as_file()
            .set_permissions(existing.permissions.clone())?;
    }
    Ok(temporary)
}

/// Syncs `directory`, so that a rename into it is on disk (a no-op where directories cannot
/// be opened as files).
fn sync_directory(directory: &Path) -> io::Result<()> {
    if cfg!(unix) {
        File::open(directory)?.sync_all()?;
    }
    Ok(())
}

/// A file that refuses further writes once SIGINT or SIGTERM arrived.
struct Interruptible<'f>(&'f mut File);

impl Write for Interruptible<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        interrupt::check()?;
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The error a write stops with when a signal arrived.
#[derive(Debug)]
struct Interrupted(&'static str);

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted by {}; the file was not written", self.0)
    }
}

impl std::error::Error for Interrupted {}

/// The signal flag: installed once, armed only while a write is in progress.
mod interrupt {
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock};

    use signal_hook::consts::{SIGINT, SIGTERM};

    use super::Interrupted;

    /// The signals that end a write.
    const SIGNALS: [(i32, &str); 2] = [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM")];

    /// The last signal caught since the first write in progress started; 0 for none.
    static CAUGHT: AtomicUsize = AtomicUsize::new(0);
    /// Whether no write is in progress: a signal then takes its default action.
    static IDLE: AtomicBool = AtomicBool::new(true);
    /// How many writes are in progress (threads may write several files at once).
    static WRITERS: Mutex<usize> = Mutex::new(0);

    /// A write in progress; while one exists SIGINT and SIGTERM only set the flag.
    #[derive(Debug)]
    pub(super) struct Writing(());

    impl Writing {
        /// Installs the handlers (once per process) and arms the flag.
        pub(super) fn start() -> io::Result<Writing> {
            install()?;
            let mut writers = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
            if *writers == 0 {
                CAUGHT.store(0, Ordering::SeqCst);
                IDLE.store(false, Ordering::SeqCst);
            }
            *writers += 1;
            Ok(Writing(()))
        }
    }

    impl Drop for Writing {
        fn drop(&mut self) {
            let mut writers = WRITERS.lock().unwrap_or_else(|e| e.into_inner());
            *writers -= 1;
            if *writers == 0 {
                IDLE.store(true, Ordering::SeqCst);
                // A signal that came while the write was finishing still ends the process,
                // as it would have without the handler.
                let caught = CAUGHT.swap(0, Ordering::SeqCst);
                if let Some(&(signal, _)) = SIGNALS.iter().find(|(s, _)| *s as usize == caught) {
                    let _ = signal_hook::low_level::emulate_default_handler(signal);
                }
            }
        }
    }

    /// An error if SIGINT or SIGTERM arrived during the writes in progress.
    pub(super) fn check() -> io::Result<()> {
        let caught = CAUGHT.load(Ordering::SeqCst);
        match SIGNALS
            .iter()
            .find(|(signal, _)| *signal as usize == caught)
        {
            Some(&(_, name)) => Err(io::Error::other(Interrupted(name))),
            None => Ok(()),
        }
    }

    fn install() -> io::Result<()> {
        static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
        INSTALLED
            .get_or_init(|| {
                for (signal, _) in SIGNALS {
                    if super::ignored::inherited(signal) {
                        continue;
                    }
                    // Registered first, so that an idle process ends before the flag is set.
                    signal_hook::flag::register_conditional_default(signal, &IDLE)
                        .map_err(|e| e.to_string())?;
                    signal_hook::flag::register_usize(signal, &CAUGHT, signal as usize)
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .clone()
            .map_err(|e| io::Error::other(format!("cannot install a signal handler: {e}")))
    }
}

/// Whether the process was started with a signal ignored (`nohup` ignores SIGHUP, a
/// non-interactive shell starts background jobs with SIGINT ignored): the handlers must not
/// override that choice. Asked before the handlers are installed, so the answer is the
/// inherited disposition.
mod ignored {
    /// Whether `signal`'s disposition is "ignore".
    #[cfg(unix)]
    pub(super) fn inherited(signal: i32) -> bool {
        let mut current = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
        // SAFETY: a null new action only reads the current one into `current`, which is
        // valid, writable storage of the right type; nothing is changed.
        let status = unsafe { libc::sigaction(signal, std::ptr::null(), current.as_mut_ptr()) };
        // SAFETY: zero-initialised `sigaction` is a valid value (plain integers and a
        // pointer-sized handler), and on success the call filled it in.
        let current = unsafe { current.assume_init() };
        status == 0 && current.sa_sigaction == libc::SIG_IGN
    }

    /// Other systems: no way to ask, so the handlers are installed.
    #[cfg(not(unix))]
    pub(super) fn inherited(_signal: i32) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn an_error_from_the_writer_leaves_out_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        fs::write(&out, b"old").unwrap();
        let result: Result<(), _> = write_atomically(&out, &[], |w| {
            w.write_all(&[7; 3 * CHUNK])
                .map_err(|e| CliError::file(&out, e))?;
            Err(CliError::file(&out, "the converter gave up"))
        });
        let message = result.unwrap_err().to_string();
        assert!(
            message.ends_with("out.bin: the converter gave up"),
            "{message}"
        );
        assert_eq!(fs::read(&out).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["out.bin"]);
    }

    #[test]
    fn success_replaces_out_with_everything_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        fs::write(&out, b"old").unwrap();
        let len = write_atomically(&out, &[], |w| {
            // More than one chunk, in pieces that straddle the buffer's boundary.
            for i in 0..5u8 {
                w.write_all(&vec![i; CHUNK / 2 + 3])
                    .map_err(|e| CliError::file(&out, e))?;
            }
            Ok(5 * (CHUNK / 2 + 3))
        })
        .unwrap();
        let written = fs::read(&out).unwrap();
        assert_eq!(written.len(), len);
        assert_eq!(written[CHUNK / 2 + 3], 1);
        assert_eq!(written.last(), Some(&4));
        assert_eq!(names(dir.path()), ["out.bin"]);
    }
}
