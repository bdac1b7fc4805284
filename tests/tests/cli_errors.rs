//! The `llama2` CLI's error handling: bad files and bad flags end with a non-zero exit and
//! one line of stderr that names the file (or flag) and the problem, never a panic; plus
//! `--help` and where the tokenizer is looked for when `-z` is not given.

use std::path::Path;

use llama2_tests::{
    model_file, read_file, read_jsonl, run_llama2, run_llama2_in, GenerateCase, TempDir,
};

/// A path as a `&str` (fixture and temp paths are UTF-8 here).
fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Checks a failed run's report: non-zero exit, exactly one line on stderr, which contains
/// `subject` and at least one of `problem` (case-insensitively), and no panic. Returns the
/// line.
fn check_error(output: &std::process::Output, subject: &str, problem: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "expected failure, got {}; stderr: {stderr}",
        output.status
    );
    assert!(!stderr.contains("panicked"), "the CLI panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got {lines:#?}"
    );
    let line = lines[0];
    assert!(line.contains(subject), "{line:?} does not name {subject:?}");
    let lower = line.to_lowercase();
    assert!(
        problem.iter().any(|p| lower.contains(&p.to_lowercase())),
        "{line:?} does not say any of {problem:?}"
    );
    line.to_string()
}

/// Runs `llama2 ARGS` (in the current directory) and checks the report as [`check_error`].
fn expect_error(args: &[&str], subject: &str, problem: &[&str]) -> String {
    check_error(&run_llama2(args), subject, problem)
}

/// Runs `MODEL -z tok512.bin -n 3` with a model file made of `bytes`, expecting a report
/// about that file.
fn expect_model_error(label: &str, bytes: &[u8], problem: &[&str]) -> String {
    let dir = TempDir::new(label);
    let model = dir.write("model.bin", bytes);
    let tokenizer = model_file("tok512.bin");
    expect_error(
        &[s(&model), "-z", s(&tokenizer), "-n", "3"],
        s(&model),
        problem,
    )
}

/// Runs stories260K with `flags` (and `-n 3`), expecting a report naming `flag`.
fn expect_flag_error(flags: &[&str], flag: &str, problem: &[&str]) -> String {
    let model = model_file("stories260K.bin");
    let tokenizer = model_file("tok512.bin");
    let mut args = vec![s(&model), "-z", s(&tokenizer), "-n", "3"];
    args.extend_from_slice(flags);
    expect_error(&args, flag, problem)
}

/// stories260K.bin with the i32 header field `field` (0 = dim ... 6 = seq_len) set.
fn stories_with_header_field(field: usize, value: i32) -> Vec<u8> {
    let mut bytes = read_file(&model_file("stories260K.bin"));
    bytes[4 * field..4 * field + 4].copy_from_slice(&value.to_le_bytes());
    bytes
}

const NO_SUCH_FILE: &[&str] = &["no such file", "not found", "cannot find"];

#[test]
fn missing_model_file() {
    let dir = TempDir::new("missing-model");
    let model = dir.path().join("absent.bin");
    let tokenizer = model_file("tok512.bin");
    expect_error(&[s(&model), "-z", s(&tokenizer)], s(&model), NO_SUCH_FILE);
}

#[test]
fn missing_tokenizer_file() {
    let dir = TempDir::new("missing-tokenizer");
    let tokenizer = dir.path().join("absent-tok.bin");
    let model = model_file("stories260K.bin");
    expect_error(
        &[s(&model), "-z", s(&tokenizer)],
        s(&tokenizer),
        NO_SUCH_FILE,
    );
}

#[test]
fn truncated_model() {
    let bytes = read_file(&model_file("stories260K.bin"));
    expect_model_error(
        "truncated-model",
        &bytes[..100],
        &["truncated", "shorter", "too short", "header describes"],
    );
}

#[test]
fn empty_model() {
    expect_model_error(
        "empty-model",
        &[],
        &["empty", "truncated", "shorter", "too short"],
    );
}

#[test]
fn zero_heads_in_header() {
    let line = expect_model_error(
        "zero-heads",
        &stories_with_header_field(3, 0),
        &["positive", "zero", "invalid"],
    );
    assert!(line.contains("n_heads"), "{line:?} does not name n_heads");
}

#[test]
fn heads_do_not_divide_dim() {
    let line = expect_model_error(
        "heads-7",
        &stories_with_header_field(3, 7),
        &["multiple", "divisible", "divide"],
    );
    assert!(line.contains("n_heads"), "{line:?} does not name n_heads");
}

#[test]
fn model_longer_than_its_header_says() {
    let mut bytes = read_file(&model_file("stories260K.bin"));
    bytes.extend_from_slice(&[0; 4]);
    expect_model_error(
        "long-model",
        &bytes,
        &["header describes", "longer", "too long", "trailing"],
    );
}

#[test]
fn unknown_model_version() {
    let mut bytes = read_file(&model_file("stories260K_v1.bin"));
    assert_eq!(
        &bytes[..4],
        b"24ka",
        "stories260K_v1.bin lacks the ak42 magic"
    );
    bytes[4..8].copy_from_slice(&7i32.to_le_bytes());
    expect_model_error("version-7", &bytes, &["version 7"]);
}

/// stories260K_q80.bin (group size 4) with its header's group size set to `group`.
fn q80_with_group_size(group: i32) -> Vec<u8> {
    let mut bytes = read_file(&model_file("stories260K_q80.bin"));
    assert_eq!(
        &bytes[4..8],
        &2i32.to_le_bytes(),
        "stories260K_q80.bin is not version 2"
    );
    bytes[37..41].copy_from_slice(&group.to_le_bytes());
    bytes
}

#[test]
fn q80_group_size_that_does_not_divide_hidden_dim() {
    // 8 divides dim 64 but not hidden_dim 172: the reference would compute garbage.
    let line = expect_model_error("q80-group-8", &q80_with_group_size(8), &["does not divide"]);
    assert!(
        line.contains("llama2 quantize"),
        "{line:?} does not say how to requantize"
    );
}

#[test]
fn q80_group_size_zero_or_negative() {
    for group in [0, -4] {
        let line = expect_model_error("q80-group-0", &q80_with_group_size(group), &["positive"]);
        assert!(
            line.contains("group_size"),
            "{line:?} does not name group_size"
        );
    }
}

#[test]
fn q80_truncated_scales() {
    let bytes = read_file(&model_file("stories260K_q80.bin"));
    // The file ends with the last tensor's scales.
    expect_model_error(
        "q80-truncated",
        &bytes[..bytes.len() - 2],
        &["header describes"],
    );
}

#[test]
fn q80_unknown_version() {
    let mut bytes = read_file(&model_file("stories260K_q80.bin"));
    bytes[4..8].copy_from_slice(&3i32.to_le_bytes());
    expect_model_error("q80-version-3", &bytes, &["version 3"]);
}

#[test]
fn truncated_tokenizer() {
    let dir = TempDir::new("truncated-tokenizer");
    let tokenizer = dir.write("tok.bin", &read_file(&model_file("tok512.bin"))[..3000]);
    let model = model_file("stories260K.bin");
    expect_error(
        &[s(&model), "-z", s(&tokenizer), "-n", "3"],
        s(&tokenizer),
        &["truncated", "ends before", "too short", "shorter"],
    );
}

#[test]
fn tokenizer_of_a_larger_vocabulary() {
    let model = model_file("stories260K.bin");
    let tokenizer = model_file("tokenizer.bin");
    expect_error(
        &[s(&model), "-z", s(&tokenizer), "-n", "3"],
        s(&tokenizer),
        &["larger vocabulary", "trailing", "bytes after"],
    );
}

/// `-t -1`, the value as a separate argument, as llama2.c's own command line takes it.
#[test]
fn negative_temperature() {
    let line = expect_flag_error(&["-t", "-1"], "temperature", &["invalid", "must be"]);
    assert!(line.contains("-1"), "{line:?} does not quote the value");
}

#[test]
fn negative_temperature_attached() {
    expect_flag_error(
        &["--temperature=-1"],
        "temperature",
        &["invalid", "must be"],
    );
}

#[test]
fn nan_temperature() {
    expect_flag_error(&["-t", "nan"], "temperature", &["invalid", "must be"]);
}

#[test]
fn top_p_above_one() {
    let line = expect_flag_error(&["-p", "1.5"], "top-p", &["invalid", "must be"]);
    assert!(line.contains("1.5"), "{line:?} does not quote the value");
}

/// A value that does not parse is a usage error: exit 2 and one line naming the flag and the
/// value.
#[test]
fn non_numeric_and_negative_steps() {
    let model = model_file("stories260K.bin");
    let tokenizer = model_file("tok512.bin");
    for bad in ["abc", "-3"] {
        let output = run_llama2(&[s(&model), "-z", s(&tokenizer), "-n", bad]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "the CLI panicked: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
        assert!(
            stderr.contains("--steps") && stderr.contains(bad),
            "{stderr:?} does not name --steps and the bad value"
        );
    }
}

/// An unknown flag or a missing model is one line too.
#[test]
fn usage_errors_are_one_line() {
    for args in [&["--bogus"][..], &[][..]] {
        let output = run_llama2(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    }
}

#[test]
fn help_lists_the_long_flags() {
    let output = run_llama2(&["--help"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "--help exited with {}",
        output.status
    );
    for flag in [
        "--temperature",
        "--top-p",
        "--seed",
        "--steps",
        "--prompt",
        "--tokenizer",
    ] {
        assert!(
            stdout.contains(flag),
            "--help does not list {flag}:\n{stdout}"
        );
    }
}

/// The golden greedy stories260K case, whose arguments are reused without `-z`.
fn greedy_case() -> GenerateCase {
    read_jsonl::<GenerateCase>("generate.jsonl")
        .into_iter()
        .find(|case| case.name == "260k-greedy-noprompt")
        .expect("generate.jsonl has the 260k-greedy-noprompt case")
}

/// Runs the greedy case's model (copied to `model`) without `-z`, in `cwd`, expecting the
/// golden text.
fn expect_golden_without_z(model: &Path, cwd: &Path) {
    let case = greedy_case();
    let mut args = vec![s(model)];
    args.extend(case.args.iter().map(String::as_str));
    let output = run_llama2_in(cwd, &args);
    assert!(
        output.status.success(),
        "exited with {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout), case.stdout);
}

#[test]
fn tokenizer_bin_beside_the_model_is_the_default() {
    let case = greedy_case();
    let dir = TempDir::new("beside");
    let model = dir.write("model.bin", &read_file(&model_file(&case.model)));
    dir.write("tokenizer.bin", &read_file(&model_file(&case.tokenizer)));
    let cwd = TempDir::new("beside-cwd");
    expect_golden_without_z(&model, cwd.path());
}

#[test]
fn tokenizer_bin_in_the_working_directory_is_the_fallback() {
    let case = greedy_case();
    let dir = TempDir::new("model-alone");
    let model = dir.write("model.bin", &read_file(&model_file(&case.model)));
    let cwd = TempDir::new("tokenizer-cwd");
    cwd.write("tokenizer.bin", &read_file(&model_file(&case.tokenizer)));
    expect_golden_without_z(&model, cwd.path());
}

#[test]
fn no_tokenizer_found() {
    let dir = TempDir::new("no-tokenizer");
    let model = dir.write("model.bin", &read_file(&model_file("stories260K.bin")));
    let output = run_llama2_in(dir.path(), &[s(&model), "-n", "3"]);
    check_error(&output, "tokenizer", &["no tokenizer"]);
}

/// A header may claim a huge `seq_len` at no cost in file size: the CLI sizes its KV cache
/// for the steps it runs, and a state too large to allocate is a one-line error, not an
/// abort.
#[test]
fn a_huge_seq_len_is_neither_allocated_nor_fatal() {
    let mut bytes = read_file(&model_file("stories260K_v1.bin"));
    bytes[8 + 24..8 + 28].copy_from_slice(&i32::MAX.to_le_bytes()); // seq_len
    let dir = TempDir::new("huge-seq-len");
    let model = dir.write("model.bin", &bytes);
    let tokenizer = model_file("tok512.bin");
    let output = run_llama2(&[s(&model), "-z", s(&tokenizer), "-t", "0", "-n", "20"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.stdout.is_empty());
    let line = expect_error(
        &[s(&model), "-z", s(&tokenizer), "-n", "0"],
        s(&model),
        &["cannot allocate"],
    );
    assert!(
        line.contains("--context"),
        "{line:?} does not say how to fix it"
    );
}
