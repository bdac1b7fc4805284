//! The `llama2` command over the no_std core: file loading, buffers, timing and streaming.

// Every write to stdout and stderr goes through `stdio`, which checks it.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod args;
pub mod atomic_write;
pub mod bench;
pub mod chat;
pub mod cli;
pub mod convert;
pub mod error;
pub mod generate;
pub mod info;
pub mod kernels;
pub mod load;
pub mod map_guard;
pub mod non_finite;
pub mod pool;
pub mod quantize;
pub mod sequences;
pub mod stdio;
pub mod synthetic;

use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// A clap usage error on one line: its message and details, without the usage block and
/// the `--help` hint.
fn one_line(rendered: &str) -> String {
    rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.starts_with("Usage:") && !line.starts_with("For more information"))
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `args` and runs the command; errors are printed on one line of stderr.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        // Help and version go to stdout as clap renders them (styled on a terminal).
        Err(e) if !e.use_stderr() => {
            let rendered = e.render();
            let text = match std::io::stdout().is_terminal() {
                true => rendered.ansi().to_string(),
                false => rendered.to_string(),
            };
            return exit(stdio::print(&text));
        }
        Err(e) => {
            stdio::note!("llama2: {}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Info { model }) => info::run(&model),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Convert(args)) => convert::run(&args),
        Some(Command::Quantize {
            input,
            output,
            group_size,
            allow_non_finite,
        }) => quantize::run(&input, &output, group_size, allow_non_finite),
        None => generate::run(&cli.run),
    };
    exit(result)
}

/// The exit for a command's result: success, or its error on one line of stderr.
fn exit(result: Result<(), error::CliError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_quiet() => ExitCode::SUCCESS,
        Err(e) => {
            stdio::note!("llama2: error: {e}");
            ExitCode::FAILURE
        }
    }
}
