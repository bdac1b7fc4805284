//! Replays the kept fuzz inputs on stable: every file of `fuzz/corpus/<target>/` (the
//! minimized corpus, seeds included) and `fuzz/artifacts/<target>/` (inputs that once made
//! a target fail, kept after the fix) goes through the same function the libFuzzer binary
//! runs, so a regression fails `cargo test` without a nightly toolchain.

use std::path::Path;

use llama2_core::gguf::GgmlType;
use llama2_tests::workspace_root;

/// A target's name (its directory under `fuzz/corpus`) and body.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 6] = [
    ("model_parse", llama2_fuzz_harness::model_parse),
    ("tokenizer_parse", llama2_fuzz_harness::tokenizer_parse),
    ("encode", llama2_fuzz_harness::encode),
    ("forward_sample", llama2_fuzz_harness::forward_sample),
    ("gguf_parse", llama2_fuzz_harness::gguf_parse),
    ("gguf_model", llama2_fuzz_harness::gguf_model),
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

#[test]
fn gguf_model_corpus() {
    replay(TARGETS[5].0, TARGETS[5].1);
}

/// The `gguf_model` seeds are models that parse and run (else the target would start from
/// nothing but errors): each parses with a table of `layer_table_len` entries.
#[test]
fn gguf_model_seeds_are_valid_models() {
    let seeds: Vec<_> = llama2_fuzz_harness::seeds()
        .into_iter()
        .filter(|(target, _, _)| *target == "gguf_model")
        .collect();
    assert_eq!(seeds.len(), 6, "F32, F16 and Q8_0, tied and untied");
    for (_, name, bytes) in seeds {
        let file = llama2_core::AlignedBytes::new(&bytes);
        let layers = llama2_core::Model::layer_table_len(file.bytes()).unwrap();
        let mut table = vec![llama2_core::LayerWeights::EMPTY; layers];
        let model = llama2_core::Model::parse(file.bytes(), &mut table)
            .unwrap_or_else(|e| panic!("seed {name}: {e}"));
        assert_eq!(
            model.config.shared_classifier,
            name.ends_with("_tied"),
            "{name}"
        );
        let wq = model.weights.layer(&model.config, 0).wq;
        let ty = match wq {
            llama2_core::Matrix::F32 { .. } => "f32",
            llama2_core::Matrix::Ggml(m) if m.ty == GgmlType::F16 => "f16",
            llama2_core::Matrix::Ggml(m) if m.ty == GgmlType::Q8_0 => "q8_0",
            other => panic!("seed {name}: {other:?}"),
        };
        assert!(
            name.starts_with(&format!("{ty}_")),
            "seed {name} holds {ty}"
        );
    }
}
