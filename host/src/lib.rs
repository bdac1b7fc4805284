//! The `llama2` command over the no_std core: file loading, buffers, timing and streaming.

pub mod bench;
pub mod chat;
pub mod cli;
pub mod error;
pub mod generate;
pub mod info;
pub mod kernels;
pub mod load;
pub mod map_guard;
pub mod pool;
pub mod quantize;
pub mod synthetic;

use std::ffi::OsString;
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
        // Help and version go to stdout as clap renders them.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("llama2: {}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Some(Command::Info { model }) => info::run(&model),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Quantize {
            input,
            output,
            group_size,
        }) => quantize::run(&input, &output, group_size),
        None => generate::run(&cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llama2: error: {e}");
            ExitCode::FAILURE
        }
    }
}
