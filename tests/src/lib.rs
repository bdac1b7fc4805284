//! Shared helpers for the integration tests: where the fixtures are, reading the golden
//! files, loading models 4-byte aligned, llama2.c argument parsing, locating and running
//! the `llama2` binary, and temporary directories.
//!
//! Fixtures are never optional: a missing file makes the test fail with a message that
//! names the path, so that a misplaced fixture directory cannot pass as "nothing to check".

pub mod capi;
pub mod firmware;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::Deserialize;

// ---------------------------------------------------------------------------------------
// Fixture locations
// ---------------------------------------------------------------------------------------

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace")
        .to_path_buf()
}

/// The fixture directory: `$LLAMA2_FIXTURES` if set, else `../shared/fixtures` next to the
/// workspace root. Panics, naming the path, if it is not a directory.
pub fn fixtures_dir() -> PathBuf {
    let dir = match std::env::var_os("LLAMA2_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures"
        )),
    };
    assert!(
        dir.is_dir(),
        "fixture directory {} does not exist (set LLAMA2_FIXTURES to the directory holding \
         models/ and golden/)",
        dir.display()
    );
    dir
}

/// The path of a fixture file, `relative` to the fixture directory (`"models/tok512.bin"`,
/// `"golden/encode.jsonl"`). Panics, naming the path, if the file does not exist.
pub fn fixture(relative: &str) -> PathBuf {
    let path = fixtures_dir().join(relative);
    assert!(
        path.is_file(),
        "missing fixture file {} (LLAMA2_FIXTURES={:?})",
        path.display(),
        std::env::var_os("LLAMA2_FIXTURES")
    );
    path
}

/// The path of a model or tokenizer file by file name: in `gguf/` for a `.gguf` name, else
/// in `models/`.
pub fn model_file(name: &str) -> PathBuf {
    if name.ends_with(".gguf") {
        fixture(&format!("gguf/{name}"))
    } else {
        fixture(&format!("models/{name}"))
    }
}

/// The bytes of a fixture file; panics naming the path if it cannot be read.
pub fn read_fixture(relative: &str) -> Vec<u8> {
    read_file(&fixture(relative))
}

/// The bytes of any file; panics naming the path if it cannot be read.
pub fn read_file(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Golden files
// ---------------------------------------------------------------------------------------

/// One line of `golden/encode.jsonl`.
#[derive(Debug, Clone, Deserialize)]
pub struct EncodeCase {
    /// Tokenizer file name in `models/`.
    pub tokenizer: String,
    pub text: String,
    pub bos: bool,
    pub eos: bool,
    /// The ids the reference encoder returns.
    pub tokens: Vec<u32>,
}

/// One line of `golden/generate.jsonl`.
#[derive(Debug, Clone, Deserialize)]
pub struct GenerateCase {
    pub name: String,
    /// Model file name in `models/`.
    pub model: String,
    /// Tokenizer file name in `models/`.
    pub tokenizer: String,
    /// llama2.c command-line flags (`-t -p -s -n -i`).
    pub args: Vec<String>,
    /// Whether the reference produces these tokens whatever the float summation order.
    pub exact: bool,
    /// BOS, then every chosen token, then BOS if generation stopped on it.
    pub tokens: Vec<u32>,
    /// The printed text (the fixtures README's text rule), final newline included.
    pub stdout: String,
    /// Whether `stdout` equals llama2.c's own output.
    pub same_as_llama2c_stdout: bool,
}

/// The comparison bounds of a logits golden entry.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct Tolerance {
    pub max_abs: f32,
    /// Q8_0 entries only.
    pub mean_abs: Option<f32>,
    /// Q8_0 entries only: fraction of positions whose argmax must match.
    pub argmax_agreement: Option<f32>,
}

/// One line of `golden/logits.jsonl` or `golden/gguf_logits.jsonl` (which names the f32
/// file `logits` and needs no tokenizer).
#[derive(Debug, Clone, Deserialize)]
pub struct LogitsCase {
    pub name: String,
    pub model: String,
    #[serde(default)]
    pub tokenizer: Option<String>,
    /// Teacher-forced tokens: `tokens[pos]` is fed at `pos`.
    pub tokens: Vec<u32>,
    /// Number of rows in `file`.
    pub positions: usize,
    pub vocab_size: usize,
    /// Path of the raw little-endian `[positions][vocab_size]` f32 file, relative to
    /// `golden/`.
    #[serde(alias = "logits")]
    pub file: String,
    pub tolerance: Tolerance,
}

/// The golden jsonl file `golden/<name>` parsed line by line; blank lines are ignored and
/// any other line that does not parse fails the test, naming the file and line.
pub fn read_jsonl<T: DeserializeOwned>(name: &str) -> Vec<T> {
    let path = fixture(&format!("golden/{name}"));
    let text = String::from_utf8(read_file(&path))
        .unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{}:{}: bad golden line: {e}", path.display(), i + 1))
        })
        .collect()
}

/// The number of non-blank lines of the golden file `golden/<name>`: what a test that
/// checks every case must have checked.
pub fn jsonl_line_count(name: &str) -> usize {
    let bytes = read_fixture(&format!("golden/{name}"));
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count()
}

/// A raw little-endian f32 file from `golden/` (`relative` to it), as floats.
pub fn read_f32_golden(relative: &str) -> Vec<f32> {
    let path = fixture(&format!("golden/{relative}"));
    let bytes = read_file(&path);
    assert!(
        bytes.len().is_multiple_of(4),
        "{} is {} bytes, not a whole number of f32",
        path.display(),
        bytes.len()
    );
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Whether `model` (a file name in `models/`) is a Q8_0 (version 2) model.
pub fn is_q80(model: &str) -> bool {
    model.contains("_q80")
}

/// The `generate.jsonl` cases that keep `keep`; those of the `considered` that do not are
/// named on stderr (see `--nocapture`) with `why`.
fn select_generate_cases(
    considered: impl Fn(&GenerateCase) -> bool,
    keep: impl Fn(&GenerateCase) -> bool,
    why: &str,
) -> Vec<GenerateCase> {
    let (run, skipped): (Vec<GenerateCase>, Vec<GenerateCase>) =
        read_jsonl::<GenerateCase>("generate.jsonl")
            .into_iter()
            .filter(considered)
            .partition(keep);
    for case in &skipped {
        eprintln!("skipped {} ({}: {why})", case.name, case.model);
    }
    run
}

/// The `exact: true` cases of `generate.jsonl`, every format: every build must reproduce
/// them byte for byte.
pub fn exact_generate_cases() -> Vec<GenerateCase> {
    select_generate_cases(|case| case.exact, |_| true, "")
}

/// The `exact: false` cases of `generate.jsonl` on fp32 models. Float summation order may
/// flip a sampled token in these; the scalar path sums like the reference and matches them,
/// so the tests require it for now. The Q8_0 ones are left out for good: activation
/// quantization rounds differently from build to build (the logits goldens check Q8_0).
pub fn inexact_fp32_generate_cases() -> Vec<GenerateCase> {
    select_generate_cases(
        |case| !case.exact,
        |case| !is_q80(&case.model),
        "Q8_0 inexact cases are checked through the logits goldens",
    )
}

// ---------------------------------------------------------------------------------------
// Model and tokenizer loading
// ---------------------------------------------------------------------------------------

/// Model bytes in aligned storage, as [`llama2_core::Model::from_bytes`] requires.
pub use llama2_core::AlignedBytes;

/// A model file (see [`model_file`]), read into aligned storage.
pub fn load_model(name: &str) -> AlignedBytes {
    AlignedBytes::new(&read_file(&model_file(name)))
}

/// The number of entries in a well-formed tokenizer file (`u32 max_token_length`, then
/// `f32 score, i32 len, bytes` per token up to the end of the file). The file does not
/// store it, the model does; the encode goldens name no model, so it is counted here.
/// Panics if the entries do not end exactly at the end of the file.
pub fn tokenizer_entry_count(bytes: &[u8]) -> usize {
    let mut at = 4;
    let mut count = 0;
    while at < bytes.len() {
        let len = bytes
            .get(at + 4..at + 8)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .unwrap_or_else(|| panic!("tokenizer entry {count} is cut short at byte {at}"));
        let len = usize::try_from(len)
            .unwrap_or_else(|_| panic!("tokenizer entry {count} has negative length {len}"));
        at += 8 + len;
        count += 1;
    }
    assert_eq!(
        at,
        bytes.len(),
        "tokenizer entry {} overruns the file",
        count - 1
    );
    count
}

// ---------------------------------------------------------------------------------------
// llama2.c arguments
// ---------------------------------------------------------------------------------------

/// The generation settings of a llama2.c command line, with llama2.c's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// `-t`, default 1.0.
    pub temperature: f32,
    /// `-p`, default 0.9.
    pub top_p: f32,
    /// `-s`, default 0 (llama2.c then seeds from the clock).
    pub seed: u64,
    /// `-n`, default 256; 0 means the model's `seq_len` (llama2.c turns negatives into 0).
    pub steps: usize,
    /// `-i`, default none (the empty prompt).
    pub prompt: Option<String>,
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            temperature: 1.0,
            top_p: 0.9,
            seed: 0,
            steps: 256,
            prompt: None,
        }
    }
}

impl RunSettings {
    /// Parses llama2.c flags (`-t -p -s -n -i`, each followed by its value). Panics on any
    /// other flag or a malformed value: golden arguments are expected to be well formed.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> RunSettings {
        fn value<T: std::str::FromStr>(flag: &str, text: &str) -> T
        where
            T::Err: std::fmt::Display,
        {
            text.parse()
                .unwrap_or_else(|e| panic!("bad value {text:?} for {flag}: {e}"))
        }
        let mut settings = RunSettings::default();
        let mut args = args.iter().map(AsRef::as_ref);
        while let Some(flag) = args.next() {
            let text = args
                .next()
                .unwrap_or_else(|| panic!("flag {flag} has no value"));
            match flag {
                "-t" => settings.temperature = value(flag, text),
                "-p" => settings.top_p = value(flag, text),
                "-s" => settings.seed = value(flag, text),
                "-n" => settings.steps = value::<i64>(flag, text).max(0) as usize,
                "-i" => settings.prompt = Some(text.to_string()),
                _ => panic!("unsupported llama2.c flag {flag:?}"),
            }
        }
        settings
    }
}

// ---------------------------------------------------------------------------------------
// The llama2 binary
// ---------------------------------------------------------------------------------------

/// The `llama2` executable, built once per test process.
///
/// `$LLAMA2_BIN` overrides it. Otherwise this runs `$CARGO build -p llama2-cli --bin llama2
/// --message-format=json` (with `--release` when this test is built without debug
/// assertions, so that the binary matches the test's profile) and takes the path from the
/// `"executable"` field of the binary's artifact message. Cargo does not hold the build
/// lock while tests run, so this nested build does not deadlock under `cargo test`.
pub fn llama2_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("LLAMA2_BIN") {
        Some(path) => PathBuf::from(path),
        None => build_llama2(),
    })
}

fn build_llama2() -> PathBuf {
    let mut args = vec!["-p", "llama2-cli", "--bin", "llama2"];
    if !cfg!(debug_assertions) {
        args.push("--release");
    }
    let mut command = cargo_command();
    command
        .current_dir(workspace_root())
        .arg("build")
        .args(args);
    cargo_artifacts(command, "llama2")
        .iter()
        .filter(|message| message["target"]["name"] == "llama2")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no llama2 executable"))
}

/// `$CARGO` (the cargo running the tests), else `cargo` on `PATH`.
pub fn cargo_command() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a `cargo build` `command` with `--message-format=json` and returns its
/// `compiler-artifact` messages; panics with cargo's output, naming `what` was built, if the
/// build fails. Callers pick their artifact (an executable, an archive) from the messages.
pub fn cargo_artifacts(mut command: Command, what: &str) -> Vec<serde_json::Value> {
    let output = command
        .arg("--message-format=json")
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "building {what} failed ({}):\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let artifacts: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .collect();
    // Every file cargo names must be there (a stale message would point at nothing).
    for message in &artifacts {
        let files = message["filenames"].as_array().into_iter().flatten();
        for file in files
            .chain(message.get("executable"))
            .filter_map(|f| f.as_str())
        {
            assert!(
                Path::new(file).is_file(),
                "cargo reported {file} but it does not exist"
            );
        }
    }
    artifacts
}

/// Runs `llama2` with `args` in the current directory and waits for it.
pub fn run_llama2<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run_llama2_in(&std::env::current_dir().expect("current directory"), args)
}

/// Runs `llama2` with `args` in the working directory `dir` and waits for it.
pub fn run_llama2_in<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Output {
    let bin = llama2_bin();
    Command::new(bin)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// Fails, listing every failure, unless `failures` (one line each, out of `total` checks
/// of `what`) is empty; a table or golden test collects all its failures first so that one
/// run shows them all.
pub fn assert_all_pass(what: &str, failures: &[String], total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} {what} fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{total} {what} pass");
}

/// Where two byte strings first differ, with a little context, for failure messages.
pub fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let at = expected
        .iter()
        .zip(actual)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(actual.len()));
    let window = |s: &[u8]| {
        let start = at.saturating_sub(20);
        String::from_utf8_lossy(&s[start..(at + 20).min(s.len())]).into_owned()
    };
    format!(
        "first difference at byte {at} (lengths {} expected, {} actual): \
         expected …{:?}…, got …{:?}…",
        expected.len(),
        actual.len(),
        window(expected),
        window(actual)
    )
}

// ---------------------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------------------

/// A fresh directory under [`std::env::temp_dir`], removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates a directory whose name holds `label`, the process id, a per-process counter
    /// and the time, so that concurrent tests and test processes never share one.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "llama2-tests-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir(&path)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", path.display()));
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` to the file `name` in this directory and returns its path.
    pub fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path.join(name);
        fs::write(&path, bytes).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
