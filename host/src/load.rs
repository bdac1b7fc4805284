//! Loading model and tokenizer files by memory-mapping them.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::CliError;

/// A file mapped read-only into memory; page-aligned, so weights can be viewed in place.
#[derive(Debug)]
pub struct MappedFile {
    pub path: PathBuf,
    map: Mmap,
}

impl MappedFile {
    pub fn open(path: &Path) -> Result<Self, CliError> {
        let file = File::open(path).map_err(|e| CliError::file(path, e))?;
        // SAFETY: the map is read-only and private to this process. Undefined behaviour
        // would need another process to truncate or rewrite the file while it is mapped,
        // which is the accepted contract of every mmap-based model loader; the alternative,
        // reading the whole file into memory, doubles the footprint and the start-up time.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| CliError::file(path, e))?;
        Ok(MappedFile {
            path: path.to_path_buf(),
            map,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.map
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
