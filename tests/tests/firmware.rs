//! The bare-metal example, `firmware/qemu-mps2`, on an emulated Cortex-M4F (QEMU's
//! `mps2-an386` board): built for `thumbv7em-none-eabihf`, it must print the host's greedy
//! story byte for byte and exit with status 0, from a llama2.c model with its tokenizer file
//! and from a GGUF model with the tokenizer inside it, and at a 128-token context its
//! statics and stack must fit in 256 KiB of RAM.
//!
//! Needs `qemu-system-arm` (Debian package `qemu-system-arm`, which `.ci/run` installs);
//! without it these tests fail with a message saying so rather than skip.
//! `cargo test -p llama2-tests --test firmware -- --nocapture` also prints the firmware's
//! flash and RAM footprint and the QEMU run time.

use std::ffi::OsString;
use std::path::PathBuf;

use llama2_tests::firmware::{self, run_in_qemu, Footprint};
use llama2_tests::{first_difference, model_file, run_llama2};

/// The story the firmware tells (`PROMPT`, `STEPS` and temperature 0 in
/// `firmware/qemu-mps2/src/main.rs`), as host arguments.
const PROMPT: &str = "Once upon a time";
const STEPS: usize = 200;

/// A model the firmware embeds, and its tokenizer file (`None`: the GGUF model's own
/// vocabulary, and no `-z` on the host).
struct Files {
    model: &'static str,
    tokenizer: Option<&'static str>,
}

/// stories260K as a llama2.c file, with its tokenizer file.
const LLAMA2C: Files = Files {
    model: "stories260K.bin",
    tokenizer: Some("tok512.bin"),
};
/// The same model as a GGUF file, with the tokenizer inside it.
const GGUF: Files = Files {
    model: "stories260K.gguf",
    tokenizer: None,
};

/// The RAM budget the example must meet at `BUDGET_CONTEXT` positions.
const RAM_BUDGET: u64 = 256 * 1024;
const BUDGET_CONTEXT: usize = 128;

#[test]
fn firmware_tells_the_host_story_byte_for_byte() {
    assert_tells_the_host_story(&LLAMA2C);
}

/// A GGUF model runs from flash too, with the tokenizer inside it (no tokenizer file in
/// flash), and tells the host's story for that file.
#[test]
fn firmware_tells_the_host_story_from_a_gguf_model() {
    assert_tells_the_host_story(&GGUF);
}

/// Builds the firmware for `files` with a context of the story's steps (it must hold every
/// position generated), runs it and compares its UART text with the host's stdout.
fn assert_tells_the_host_story(files: &Files) {
    let elf = build_firmware(files, STEPS);
    let footprint = Footprint::of(&elf);
    eprintln!("{}, context {STEPS}: {footprint}", files.model);

    let run = run_in_qemu(&elf);
    eprintln!(
        "{}: QEMU ran {:.2} s; stderr: {}",
        files.model,
        run.seconds,
        run.stderr.trim()
    );
    run.assert_success();
    let expected = host_story(files);
    assert!(
        run.uart == expected,
        "the firmware's story with {} differs from the host's: {}",
        files.model,
        first_difference(&expected, &run.uart)
    );
}

#[test]
fn firmware_fits_256_kib_of_ram_at_a_128_token_context() {
    let elf = build_firmware(&LLAMA2C, BUDGET_CONTEXT);
    let footprint = Footprint::of(&elf);
    eprintln!("context {BUDGET_CONTEXT}: {footprint}");
    assert!(
        footprint.ram() <= RAM_BUDGET,
        "at a {BUDGET_CONTEXT}-token context the firmware needs {} bytes of RAM, more than \
         {RAM_BUDGET}: {footprint}",
        footprint.ram()
    );

    // And that firmware works: it stops at its context, so its story is the start of the
    // host's (then its own final newline).
    let run = run_in_qemu(&elf);
    run.assert_success();
    let expected = host_story(&LLAMA2C);
    let text = run
        .uart
        .strip_suffix(b"\n")
        .unwrap_or_else(|| panic!("no final newline in {:?}", run.uart_text()));
    assert!(
        text.len() < expected.len() && expected.starts_with(text),
        "the {BUDGET_CONTEXT}-position story is not the start of the host's: {}",
        first_difference(&expected[..text.len().min(expected.len())], text)
    );
    assert!(
        run.stderr
            .contains(&format!("{BUDGET_CONTEXT} steps, context {BUDGET_CONTEXT}")),
        "unexpected summary on stderr: {}",
        run.stderr
    );
}

/// The host's stdout for the firmware's story with `files`.
fn host_story(files: &Files) -> Vec<u8> {
    let mut args: Vec<OsString> = vec![model_file(files.model).into()];
    if let Some(tokenizer) = files.tokenizer {
        args.extend(["-z".into(), model_file(tokenizer).into()]);
    }
    args.extend([
        "-t".into(),
        "0".into(),
        "-n".into(),
        STEPS.to_string().into(),
        "-i".into(),
        PROMPT.into(),
    ]);
    let output = run_llama2(&args);
    assert!(
        output.status.success(),
        "llama2 failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// The firmware for `files` at `context` positions.
fn build_firmware(files: &Files, context: usize) -> PathBuf {
    let tokenizer = files.tokenizer.map(model_file);
    firmware::build_firmware(&model_file(files.model), tokenizer.as_deref(), context)
}
