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

/// `--help` says which files run: both families, and every GGUF weight type the engine
/// computes with (those `quant::is_weight_type` accepts, F32 aside).
#[test]
fn help_describes_gguf_support() {
    let output = run_llama2(&["--help"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "--help exited with {}",
        output.status
    );
    assert!(
        stdout.contains("GGUF") && stdout.contains("llama2.c"),
        "{stdout}"
    );
    let mut named = 0;
    for id in 0..64 {
        let Some(ty) = llama2_core::gguf::GgmlType::from_id(id) else {
            continue;
        };
        if llama2_core::quant::is_weight_type(ty) {
            assert!(
                stdout.contains(ty.name()),
                "--help does not name {ty}: {stdout}"
            );
            named += 1;
        }
    }
    assert_eq!(named, 13, "the weight types of issue #13");
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

/// Where a run's stdout goes: a full device (every write fails), or a pipe whose reader
/// has gone (`llama2 ... | head`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    Full,
    ClosedPipe,
}

/// Runs `llama2 ARGS` with `stdin` piped in and stdout sent to `sink`.
fn run_into(args: &[String], stdin: &[u8], sink: Sink) -> std::process::Output {
    use std::process::{Command, Stdio};
    let stdout = match sink {
        Sink::Full => Stdio::from(std::fs::File::create("/dev/full").expect("/dev/full")),
        Sink::ClosedPipe => Stdio::piped(),
    };
    let mut child = Command::new(llama2_tests::llama2_bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .expect("llama2 starts");
    // The reader goes before llama2 has written anything.
    drop(child.stdout.take());
    let mut input = child.stdin.take().unwrap();
    // llama2 may exit before reading its input: a failed write here is not the test's.
    let _ = std::io::Write::write_all(&mut input, stdin);
    drop(input);
    child.wait_with_output().unwrap()
}

/// Every command that writes to stdout: its arguments and stdin.
fn stdout_writers() -> Vec<(&'static str, Vec<String>, &'static [u8])> {
    let model = s(&model_file("stories260K.bin")).to_string();
    let tokenizer = s(&model_file("tok512.bin")).to_string();
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let run = |flags: &[&str]| {
        let mut args = owned(&[&model, "-z", &tokenizer]);
        args.extend(owned(flags));
        args
    };
    vec![
        ("generation", run(&["-n", "0", "-s", "1"]), b""),
        (
            "chat",
            run(&["-m", "chat", "-y", "", "-n", "0", "-s", "1"]),
            b"Hello\n",
        ),
        ("info", owned(&["info", &model]), b""),
        (
            "bench",
            owned(&[
                "bench",
                &model,
                "--prompt-tokens",
                "2",
                "--gen-tokens",
                "2",
                "--runs",
                "1",
                "--json",
            ]),
            b"",
        ),
        ("--help", owned(&["--help"]), b""),
        ("--version", owned(&["--version"]), b""),
    ]
}

/// A full stdout is an error: exit 1 and one line on stderr naming stdout, never a panic
/// and never success.
#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_is_an_error_for_every_command() {
    for (name, args, stdin) in stdout_writers() {
        let output = run_into(&args, stdin, Sink::Full);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name} panicked: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr:?}");
        assert!(
            stderr.starts_with("llama2: error: stdout: ")
                && stderr.to_lowercase().contains("no space"),
            "{name}: {stderr:?}"
        );
    }
}

/// A reader that has gone (`| head`) ends the run quietly with success, as other filters
/// do.
#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    for (name, args, stdin) in stdout_writers() {
        let output = run_into(&args, stdin, Sink::ClosedPipe);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{name}: {}: {stderr}",
            output.status
        );
        assert!(stderr.is_empty(), "{name}: {stderr:?}");
    }
}

/// `quantize` reports on stderr only; a stderr that cannot be written to does not make it
/// panic or fail (there is nowhere to report that), and the file is written.
#[cfg(target_os = "linux")]
#[test]
fn quantize_survives_a_full_stderr() {
    let dir = TempDir::new("quantize-full-stderr");
    let output_path = dir.path().join("q80.bin");
    let status = std::process::Command::new(llama2_tests::llama2_bin())
        .args([
            "quantize",
            s(&model_file("stories260K.bin")),
            s(&output_path),
        ])
        .stderr(std::fs::File::create("/dev/full").unwrap())
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let written = read_file(&output_path);
    assert_eq!(
        &written[..8],
        b"24ka\x02\x00\x00\x00",
        "not a version 2 file"
    );
}

/// Values that start with `-` are taken as values where a value is expected; one that is
/// bad is then refused with its own message.
#[test]
fn values_starting_with_a_dash_are_values() {
    let model = model_file("stories260K.bin");
    let tokenizer = model_file("tok512.bin");
    let output = run_llama2(&[
        s(&model),
        "-z",
        s(&tokenizer),
        "-t",
        "0",
        "-n",
        "40",
        "-i",
        "-hello",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("-hello"), "{stdout:?}");
    for flags in [&["-t", "-inf"][..], &["--temperature", "-inf"][..]] {
        let line = expect_flag_error(flags, "temperature", &["invalid"]);
        assert!(line.contains("-inf"), "{line:?} does not quote the value");
    }
    let line = expect_flag_error(&["-p", "-inf"], "top-p", &["invalid"]);
    assert!(line.contains("-inf"), "{line:?} does not quote the value");
}

/// More threads than cores only take turns: the count is capped, with a note.
#[test]
fn threads_above_the_cores_are_capped_with_a_note() {
    let model = model_file("stories260K.bin");
    let tokenizer = model_file("tok512.bin");
    let output = run_llama2(&[
        s(&model),
        "-z",
        s(&tokenizer),
        "-t",
        "0",
        "-n",
        "20",
        "--threads",
        "100000",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let cores = std::thread::available_parallelism().unwrap().get();
    let note =
        format!("llama2: --threads 100000 is more than the {cores} available cores; using {cores}");
    assert_eq!(stderr.lines().next(), Some(note.as_str()), "{stderr:?}");
    assert!(!output.stdout.is_empty());
}

/// A prompt too long for the context is refused with its real token count (from
/// `golden/encode.jsonl`), naming the prompt flag, when the whole context or more steps
/// are asked for.
#[test]
fn a_prompt_too_long_gives_its_real_token_count() {
    let case = read_jsonl::<llama2_tests::EncodeCase>("encode.jsonl")
        .into_iter()
        .find(|c| c.tokenizer == "tok512.bin" && c.text.starts_with("Once upon a time, there"))
        .expect("encode.jsonl has a tok512 story");
    let tokens = case.tokens.len();
    assert!(tokens > 8);
    let model = model_file("stories260K.bin");
    let tokenizer = model_file("tok512.bin");
    for steps in ["0", "100000"] {
        let line = expect_error(
            &[
                s(&model),
                "-z",
                s(&tokenizer),
                "-n",
                steps,
                "--context",
                "8",
                "-i",
                &case.text,
            ],
            "-i/--prompt",
            &["more than the context"],
        );
        assert!(
            line.contains(&format!(
                "the prompt is {tokens} tokens, more than the context of 8"
            )),
            "{line:?}"
        );
    }
}

/// `bench`'s counts come from the command line: sums that overflow, no runs and buffers
/// larger than the machine can give are one-line errors, never a wrap or an abort.
#[test]
fn bench_counts_are_checked() {
    let model = model_file("stories260K.bin");
    let mut huge = read_file(&model_file("stories260K_v1.bin"));
    huge[8 + 24..8 + 28].copy_from_slice(&i32::MAX.to_le_bytes()); // seq_len
    let dir = TempDir::new("bench-counts");
    let huge = dir.write("huge-seq-len.bin", &huge);
    let max = usize::MAX.to_string();
    let rows: [(&str, Vec<&str>, &str, &[&str]); 4] = [
        (
            "prompt + generated tokens overflow",
            vec!["--prompt-tokens", &max, "--gen-tokens", "1"],
            "--prompt-tokens",
            &["positions in all"],
        ),
        (
            "no run",
            vec!["--runs", "0"],
            "--runs",
            &["at least one run"],
        ),
        (
            "more positions than seq_len",
            vec!["--prompt-tokens", "600"],
            "--prompt-tokens",
            &["1..=512 positions"],
        ),
        (
            "a KV cache larger than the machine",
            vec!["--prompt-tokens", "2000000000", "--gen-tokens", "1"],
            s(&huge),
            &["cannot allocate"],
        ),
    ];
    for (name, flags, subject, problem) in rows {
        let file = if subject == s(&huge) { &huge } else { &model };
        let mut args = vec!["bench", s(file)];
        args.extend(flags);
        let output = run_llama2(&args);
        eprintln!("{name}");
        check_error(&output, subject, problem);
    }
}
