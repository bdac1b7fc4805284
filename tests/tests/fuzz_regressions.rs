//! Replays the kept fuzz inputs on stable: every file of `fuzz/corpus/<target>/` (the
//! minimized corpus, seeds included) and `fuzz/artifacts/<target>/` (inputs that once made
//! a target fail, kept after the fix) goes through the same function the libFuzzer binary
//! runs, so a regression fails `cargo test` without a nightly toolchain.

use std::path::Path;

use llama2_tests::workspace_root;

/// A target's name (its directory under `fuzz/corpus`) and body.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 5] = [
    ("model_parse", llama2_fuzz_harness::model_parse),
    ("tokenizer_parse", llama2_fuzz_harness::tokenizer_parse),
    ("encode", llama2_fuzz_harness::encode),
    ("forward_sample", llama2_fuzz_harness::forward_sample),
    ("gguf_parse", llama2_fuzz_harness::gguf_parse),
];

/// The files of `dir`, sorted; none if it does not exist.
fn inputs(dir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str, body: fn(&[u8])) {
    let fuzz = workspace_root().join("fuzz");
    let corpus = inputs(&fuzz.join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} is empty: the seeds at least must be there"
    );
    let artifacts = inputs(&fuzz.join("artifacts").join(target));
    for path in corpus.iter().chain(&artifacts) {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let result = std::panic::catch_unwind(|| body(&bytes));
        assert!(result.is_ok(), "{target} fails on {}", path.display());
    }
    eprintln!(
        "{target}: {} corpus and {} artifact inputs replayed",
        corpus.len(),
        artifacts.len()
    );
}

#[test]
fn model_parse_corpus() {
    replay(TARGETS[0].0, TARGETS[0].1);
}

#[test]
fn tokenizer_parse_corpus() {
    replay(TARGETS[1].0, TARGETS[1].1);
}

#[test]
fn encode_corpus() {
    replay(TARGETS[2].0, TARGETS[2].1);
}

#[test]
fn forward_sample_corpus() {
    replay(TARGETS[3].0, TARGETS[3].1);
}

#[test]
fn gguf_parse_corpus() {
    replay(TARGETS[4].0, TARGETS[4].1);
}
