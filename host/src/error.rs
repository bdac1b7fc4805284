//! The CLI's error: one line that names the file (or flag) and the problem.

use std::fmt;
use std::path::{Path, PathBuf};

/// A failure the CLI reports on one line of stderr before exiting non-zero.
#[derive(Debug)]
pub struct CliError {
    /// The file or flag the problem is about.
    subject: String,
    problem: String,
}

impl CliError {
    /// A problem with the file at `path`.
    pub fn file(path: &Path, problem: impl fmt::Display) -> Self {
        CliError {
            subject: path.display().to_string(),
            problem: problem.to_string(),
        }
    }

    /// A problem with a flag's value or with the combination of inputs.
    pub fn usage(subject: impl Into<String>, problem: impl fmt::Display) -> Self {
        CliError {
            subject: subject.into(),
            problem: problem.to_string(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep the report on one line whatever the underlying message holds.
        let problem = self.problem.replace('\n', " ");
        write!(f, "{}: {}", self.subject, problem)
    }
}

impl std::error::Error for CliError {}

/// Convenience for paths held in options.
pub fn path_of(path: &Option<PathBuf>) -> &Path {
    path.as_deref().unwrap_or(Path::new("-"))
}
