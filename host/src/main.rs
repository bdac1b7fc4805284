use std::process::ExitCode;

fn main() -> ExitCode {
    llama2_cli::main_with_args(std::env::args_os())
}
