//! The `llama2` command over the no_std core: file loading, buffers, timing and streaming.

pub mod bench;
pub mod cli;
pub mod error;
pub mod generate;
pub mod info;
pub mod load;
pub mod quantize;
pub mod synthetic;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// Parses `args` and runs the command; errors are printed on one line of stderr.
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout and usage errors to stderr itself.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
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
