//! Prints the bare-metal example's flash and RAM footprint as the Markdown table that
//! firmware/README.md shows, measured from freshly built ELFs and QEMU runs:
//!
//! ```sh
//! cargo run -p llama2-tests --bin firmware-footprint            # the README's rows
//! cargo run -p llama2-tests --bin firmware-footprint -- stories260K_q80.bin:128
//! ```
//!
//! Each argument is `MODEL:CONTEXT`, a model file of the fixtures (a llama2.c file with
//! `tok512.bin`, a GGUF file with the tokenizer inside it) and the KV-cache positions the
//! firmware is built for. Needs what the firmware test needs:
//! the `thumbv7em-none-eabihf` target and `qemu-system-arm` (`scripts/test.sh` installs both).

use llama2_tests::firmware::{build_firmware, run_in_qemu, Footprint};
use llama2_tests::model_file;

/// The rows of the table in firmware/README.md.
const README_ROWS: [&str; 7] = [
    "stories260K.bin:64",
    "stories260K.bin:128",
    "stories260K.bin:200",
    "stories260K.bin:256",
    "stories260K_q80.bin:200",
    "stories260K.gguf:128",
    "stories260K.gguf:200",
];
const TOKENIZER: &str = "tok512.bin";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows: Vec<&str> = if args.is_empty() {
        README_ROWS.to_vec()
    } else {
        args.iter().map(String::as_str).collect()
    };
    println!(
        "| model | context | .text | .rodata | .data | .bss | stack reserved | stack used | RAM (.data + .bss + stack) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let Some((model, context)) = row.split_once(':') else {
            eprintln!("firmware-footprint: {row}: expected MODEL:CONTEXT");
            std::process::exit(2);
        };
        let Ok(context) = context.parse::<usize>() else {
            eprintln!("firmware-footprint: {row}: the context is not a number");
            std::process::exit(2);
        };
        // A GGUF model brings its own tokenizer.
        let tokenizer = (!model.ends_with(".gguf")).then(|| model_file(TOKENIZER));
        let elf = build_firmware(&model_file(model), tokenizer.as_deref(), context);
        let footprint = Footprint::of(&elf);
        let run = run_in_qemu(&elf);
        run.assert_success();
        let section = |name: &str| {
            footprint
                .ram_sections
                .iter()
                .filter(|(section, _)| section == name)
                .map(|(_, size)| size)
                .sum::<u64>()
        };
        println!(
            "| {model} | {context} | {} | {} | {} | {} | {} | {} | {} |",
            grouped(footprint.text),
            grouped(footprint.rodata),
            grouped(section(".data")),
            grouped(section(".bss") + section(".uninit")),
            grouped(footprint.stack),
            stack_used(&run.stderr),
            grouped(footprint.ram()),
        );
    }
}

/// The stack high-water mark from the firmware's summary ("..., stack 2704 of 8192 bytes
/// used"), or "?" if the summary does not say.
fn stack_used(summary: &str) -> String {
    summary
        .split("stack ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|used| used.parse::<u64>().ok())
        .map_or_else(|| "?".to_string(), grouped)
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}
