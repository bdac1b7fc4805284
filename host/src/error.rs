//! The CLI's error: one line that names the file (or flag) and the problem.

use std::fmt;
use std::path::{Path, PathBuf};

/// A failure the CLI reports on one line of stderr before exiting non-zero.
#[derive(Debug)]
pub struct CliError {
    /// The file or flag the problem is about.
    subject: String,
    problem: String,
    /// Nothing to report: stdout's reader went away (see [`CliError::output_closed`]).
    quiet: bool,
}

impl CliError {
    /// A problem with the file at `path`.
    pub fn file(path: &Path, problem: impl fmt::Display) -> Self {
        CliError {
            subject: path.display().to_string(),
            problem: problem.to_string(),
            quiet: false,
        }
    }

    /// A problem with a flag's value or with the combination of inputs.
    pub fn usage(subject: impl Into<String>, problem: impl fmt::Display) -> Self {
        CliError {
            subject: subject.into(),
            problem: problem.to_string(),
            quiet: false,
        }
    }

    /// Stdout's reader went away (`llama2 ... | head`): the run stops, and exits quietly
    /// with success, as other filters do.
    pub fn output_closed() -> Self {
        CliError {
            subject: "stdout".to_string(),
            problem: "the reader closed the pipe".to_string(),
            quiet: true,
        }
    }

    /// Whether this ends the run without a report and with success.
    pub fn is_quiet(&self) -> bool {
        self.quiet
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
