//! `llama2 quantize` writes Q8_0 files byte-identical to llama2.c's `export.py --version 2`
//! (the `_q80` fixtures were written by it), with the group size it picks by default.

use llama2_tests::{model_file, read_file, run_llama2, TempDir};

/// Quantizes fixture `input` with `extra` flags and compares with fixture `expected`.
fn assert_quantizes_to(input: &str, expected: &str, extra: &[&str]) {
    let dir = TempDir::new("quantize");
    let output = dir.path().join("out.bin");
    let mut args = vec![
        "quantize".to_string(),
        model_file(input).display().to_string(),
        output.display().to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = run_llama2(&args);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "quantize {input} failed: {stderr}");
    assert!(
        stderr.contains("largest quantization error"),
        "no error report: {stderr}"
    );
    let got = read_file(&output);
    let want = read_file(&model_file(expected));
    assert_eq!(
        got.len(),
        want.len(),
        "{input}: length differs from {expected}"
    );
    let first = got.iter().zip(&want).position(|(a, b)| a != b);
    assert_eq!(first, None, "{input}: first differing byte vs {expected}");
}

#[test]
fn stories260k_with_group_size_4_is_byte_identical() {
    assert_quantizes_to(
        "stories260K.bin",
        "stories260K_q80.bin",
        &["--group-size", "4"],
    );
}

#[test]
fn default_group_sizes_match_the_published_files() {
    // v0 with shared classifier (group 4), v1 with an unshared classifier (group 16),
    // and a 32000-token vocabulary (group 32): each picked by default.
    assert_quantizes_to("stories260K.bin", "stories260K_q80.bin", &[]);
    assert_quantizes_to(
        "synth_mqa_unshared_v1.bin",
        "synth_mqa_unshared_q80.bin",
        &[],
    );
    assert_quantizes_to("synth_32k.bin", "synth_32k_q80.bin", &[]);
}

#[test]
fn refuses_bad_group_sizes_and_quantized_input() {
    let dir = TempDir::new("quantize-bad");
    let output = dir.path().join("out.bin");
    let out = output.display().to_string();
    let fp32 = model_file("stories260K.bin").display().to_string();
    let q80 = model_file("stories260K_q80.bin").display().to_string();
    for (args, expected) in [
        (
            vec!["quantize", &fp32, &out, "--group-size", "8"],
            "--group-size",
        ),
        (
            vec!["quantize", &fp32, &out, "--group-size", "0"],
            "--group-size",
        ),
        (vec!["quantize", &q80, &out], "already quantized"),
    ] {
        let run = run_llama2(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!output.exists(), "{args:?} left an output file behind");
    }
}
