//! Opening model and tokenizer files: regular files only, the model memory-mapped and
//! watched for changes, the (small) tokenizer read into memory.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use llama2_core::gguf::{self, Gguf};
use llama2_core::{LayerWeights, Model, Tokenizer};
use memmap2::Mmap;

use crate::error::CliError;
use crate::map_guard::MapGuard;

/// What [`MappedFile::check_unchanged`] reports.
pub const CHANGED: &str = "changed while it was being read";

/// Largest tokenizer file accepted: the Llama 2 one is 434 KB, a 128k-piece one a few MB.
pub const MAX_TOKENIZER_BYTES: u64 = 64 << 20;

/// A file mapped read-only into memory; page-aligned, so weights can be viewed in place.
///
/// The map sees what the file holds now, so a file truncated or rewritten in place while it
/// is mapped changes the bytes under the parsed model. Pages past a new end read as zeros
/// (see [`MapGuard`]) instead of killing the process, and [`MappedFile::check_unchanged`]
/// reports either change; a file replaced by a new one (a rename over it) is no change to
/// the old file, which stays mapped whole.
#[derive(Debug)]
pub struct MappedFile {
    /// The path it was opened by, for messages.
    pub path: PathBuf,
    /// Unregisters the range before `map` unmaps it (fields drop in declaration order).
    guard: MapGuard,
    map: Mmap,
    /// Kept open to compare its length and modification time at the check points.
    file: File,
    opened: Stamp,
}

/// What tells a file's contents changed without reading them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(metadata: &Metadata) -> Stamp {
        Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
        }
    }
}

impl MappedFile {
    /// Maps the regular file at `path`; anything else (a directory, a FIFO, a device) is
    /// refused with a message that says what it is.
    pub fn open(path: &Path) -> Result<Self, CliError> {
        let file = open_regular_file(path)?;
        let metadata = file.metadata().map_err(|e| CliError::file(path, e))?;
        // SAFETY: the map is read-only and private to this process. Another process may
        // still truncate or rewrite the file while it is mapped: the bytes then change
        // under the parsed views, as with every mmap-based model loader (reading the whole
        // file instead doubles the footprint and the start-up time). Pages past a new end
        // read as zeros thanks to the guard below, and `check_unchanged` reports the
        // change, so the output of such a run is never presented as valid.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| CliError::file(path, e))?;
        let guard = MapGuard::new(&map).map_err(|e| CliError::file(path, e))?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            guard,
            map,
            file,
            opened: Stamp::of(&metadata),
        })
    }

    /// The file's bytes as they were mapped (zeros where it has since been cut short).
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Parses the file as a model of either kind (GGUF or llama2.c), with `layers` (resized
    /// here) as the per-layer table a GGUF file needs. A change to the file while it was
    /// parsed is reported rather than the parse error it may have caused.
    pub fn model<'m>(
        &'m self,
        layers: &'m mut Vec<LayerWeights<'m>>,
    ) -> Result<Model<'m>, CliError> {
        let parsed = Model::layer_table_len(self.bytes()).and_then(|len| {
            layers.clear();
            layers.resize(len, LayerWeights::EMPTY);
            Model::parse(self.bytes(), layers)
        });
        self.check_unchanged()?;
        parsed.map_err(|e| CliError::file(&self.path, e))
    }

    /// Whether a read of the map hit a page past the file's end (the file was cut short):
    /// one atomic load, cheap enough to ask before every token's output.
    pub fn cut_short(&self) -> bool {
        self.guard.faulted()
    }

    /// Fails with [`CHANGED`] if the file was cut short under the map (a read saw zeros) or
    /// its length or modification time differ from when it was opened. A rewrite in place
    /// within the file system's timestamp granularity of the opening, keeping the length,
    /// goes unnoticed.
    pub fn check_unchanged(&self) -> Result<(), CliError> {
        let now = self
            .file
            .metadata()
            .map_err(|e| CliError::file(&self.path, e))?;
        if self.guard.faulted() || Stamp::of(&now) != self.opened {
            return Err(CliError::file(&self.path, CHANGED));
        }
        Ok(())
    }
}

/// Reads a tokenizer file into memory (it is small, and a copy cannot change under us);
/// refuses what is not a regular file and anything over [`MAX_TOKENIZER_BYTES`].
pub fn read_tokenizer(path: &Path) -> Result<Vec<u8>, CliError> {
    let file = open_regular_file(path)?;
    let len = file.metadata().map_err(|e| CliError::file(path, e))?.len();
    let too_big = || {
        CliError::file(
            path,
            format!(
                "is too large for a tokenizer (more than {} MB)",
                MAX_TOKENIZER_BYTES >> 20
            ),
        )
    };
    if len > MAX_TOKENIZER_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    // The file may grow while it is read: never read more than one byte over the limit.
    file.take(MAX_TOKENIZER_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::file(path, e))?;
    if bytes.len() as u64 > MAX_TOKENIZER_BYTES {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Opens `path` for reading if it is a regular file. It is checked before it is opened,
/// because opening a FIFO waits for a writer (forever, if none comes) and a device may
/// have side effects; and again once open (with `O_NONBLOCK`, so that a path swapped for a
/// FIFO in between cannot block either).
fn open_regular_file(path: &Path) -> Result<File, CliError> {
    let before = std::fs::metadata(path).map_err(|e| CliError::file(path, e))?;
    check_regular(path, &before)?;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = options.open(path).map_err(|e| CliError::file(path, e))?;
    let after = file.metadata().map_err(|e| CliError::file(path, e))?;
    check_regular(path, &after)?;
    Ok(file)
}

fn check_regular(path: &Path, metadata: &Metadata) -> Result<(), CliError> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return Ok(());
    }
    if kind.is_dir() {
        return Err(CliError::file(path, "is a directory"));
    }
    Err(CliError::file(
        path,
        format!("is not a regular file (it is {})", special_kind(&kind)),
    ))
}

/// What a file that is neither regular nor a directory is, for the message.
fn special_kind(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    let _ = kind;
    "a special file"
}

/// Where a run's tokenizer comes from.
#[derive(Debug)]
pub enum TokenizerSource {
    /// A llama2.c `tokenizer.bin`, read into memory.
    File {
        /// Where it was read from, for messages.
        path: PathBuf,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The vocabulary in a GGUF model's metadata.
    Model,
}

impl TokenizerSource {
    /// The tokenizer given with `-z`; else a GGUF model's own; else `tokenizer.bin` beside
    /// the model, else in the working directory.
    pub fn find(given: Option<&Path>, model: &MappedFile) -> Result<Self, CliError> {
        if given.is_none() && gguf::is_gguf(model.bytes()) {
            return Ok(TokenizerSource::Model);
        }
        let path = tokenizer_path(given, &model.path)?;
        let bytes = read_tokenizer(&path)?;
        Ok(TokenizerSource::File { path, bytes })
    }

    /// Opens the tokenizer for a model of `vocab_size` tokens, its index in `index`
    /// (`Tokenizer::index_len(vocab_size)` entries).
    pub fn open<'t>(
        &'t self,
        model: &'t MappedFile,
        vocab_size: usize,
        index: &'t mut [u32],
    ) -> Result<Tokenizer<'t>, CliError> {
        match self {
            TokenizerSource::File { path, bytes } => {
                Tokenizer::new(bytes, vocab_size, index).map_err(|e| CliError::file(path, e))
            }
            TokenizerSource::Model => Gguf::parse(model.bytes())
                .and_then(|file| Tokenizer::from_gguf(&file, index))
                .map_err(|e| CliError::file(&model.path, e)),
        }
    }
}

/// The tokenizer to use: the one given, else `tokenizer.bin` beside the model, else in the
/// working directory.
pub fn tokenizer_path(given: Option<&Path>, model: &Path) -> Result<PathBuf, CliError> {
    if let Some(path) = given {
        return Ok(path.to_path_buf());
    }
    let beside_model = model
        .parent()
        .map(|dir| dir.join("tokenizer.bin"))
        .filter(|p| p.is_file());
    let in_working_dir = Some(PathBuf::from("tokenizer.bin")).filter(|p| p.is_file());
    beside_model.or(in_working_dir).ok_or_else(|| {
        CliError::usage(
            "tokenizer.bin",
            format!(
                "no tokenizer given (-z) and none found beside {} or in the working directory",
                model.display()
            ),
        )
    })
}

/// A text sink that stops taking output once `file` was cut short under its map, so a run
/// whose weights turned to zeros halfway stops at the next token instead of printing on;
/// [`MappedFile::check_unchanged`] then names the change.
#[derive(Debug)]
pub struct StopIfCutShort<'f, W> {
    /// The mapped model the output is computed from.
    pub file: &'f MappedFile,
    /// Where the output goes.
    pub inner: W,
}

impl<W: embedded_io::ErrorType<Error = std::io::Error>> embedded_io::ErrorType
    for StopIfCutShort<'_, W>
{
    type Error = std::io::Error;
}

impl<W: embedded_io::Write<Error = std::io::Error>> embedded_io::Write for StopIfCutShort<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.file.cut_short() {
            return Err(std::io::Error::other(CHANGED));
        }
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
