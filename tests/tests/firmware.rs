//! The bare-metal example, `firmware/qemu-mps2`, on an emulated Cortex-M4F (QEMU's
//! `mps2-an386` board): built for `thumbv7em-none-eabihf`, it must print the host's greedy
//! story byte for byte and exit with status 0, and at a 128-token context its statics and
//! stack must fit in 256 KiB of RAM.
//!
//! Needs `qemu-system-arm` (Debian package `qemu-system-arm`, which `.ci/run` installs);
//! without it these tests fail with a message saying so rather than skip.
//! `cargo test -p llama2-tests --test firmware -- --nocapture` also prints the firmware's
//! flash and RAM footprint and the QEMU run time.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::OnceLock;

use llama2_tests::firmware::{self, run_in_qemu, Footprint};
use llama2_tests::{first_difference, model_file, run_llama2};

/// The story the firmware tells (`PROMPT`, `STEPS` and temperature 0 in
/// `firmware/qemu-mps2/src/main.rs`), as host arguments.
const MODEL: &str = "stories260K.bin";
const TOKENIZER: &str = "tok512.bin";
const PROMPT: &str = "Once upon a time";
const STEPS: usize = 200;

/// The RAM budget the example must meet at `BUDGET_CONTEXT` positions.
const RAM_BUDGET: u64 = 256 * 1024;
const BUDGET_CONTEXT: usize = 128;

#[test]
fn firmware_tells_the_host_story_byte_for_byte() {
    // The context must hold every position generated.
    let elf = build_firmware(STEPS);
    let footprint = Footprint::of(&elf);
    eprintln!("context {STEPS}: {footprint}");

    let run = run_in_qemu(&elf);
    eprintln!(
        "QEMU ran {:.2} s; stderr: {}",
        run.seconds,
        run.stderr.trim()
    );
    run.assert_success();
    let expected = host_story();
    assert!(
        run.uart == expected,
        "the firmware's story differs from the host's: {}",
        first_difference(expected, &run.uart)
    );
}

#[test]
fn firmware_fits_256_kib_of_ram_at_a_128_token_context() {
    let elf = build_firmware(BUDGET_CONTEXT);
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
    let expected = host_story();
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

/// The host's stdout for the firmware's story, run once per test process.
fn host_story() -> &'static [u8] {
    static STORY: OnceLock<Vec<u8>> = OnceLock::new();
    STORY.get_or_init(|| {
        let steps = STEPS.to_string();
        let args: [OsString; 9] = [
            model_file(MODEL).into(),
            "-z".into(),
            model_file(TOKENIZER).into(),
            "-t".into(),
            "0".into(),
            "-n".into(),
            steps.into(),
            "-i".into(),
            PROMPT.into(),
        ];
        let output = run_llama2(&args);
        assert!(
            output.status.success(),
            "llama2 failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    })
}

/// The firmware for the story's model and tokenizer at `context` positions.
fn build_firmware(context: usize) -> PathBuf {
    firmware::build_firmware(&model_file(MODEL), &model_file(TOKENIZER), context)
}
