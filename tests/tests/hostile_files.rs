//! Files that are not what a loader expects (docs/SECURITY.md): a directory, a FIFO or a
//! device given as a model or tokenizer, a tokenizer too large to be one, and a model file
//! cut short or rewritten while it is memory-mapped.
#![cfg(unix)]

use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use llama2_cli::load::{MappedFile, StopIfCutShort, CHANGED, MAX_TOKENIZER_BYTES};
use llama2_core::Serial;
use llama2_tests::{llama2_bin, model_file, read_file, TempDir};

/// A path as a `&str` (fixture and temp paths are UTF-8 here).
fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Runs `llama2 ARGS` with stdin closed; fails the test if it runs for more than a minute
/// (a FIFO opened for reading waits for a writer forever).
fn run_with_deadline(args: &[&str]) -> Output {
    let mut child = Command::new(llama2_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("llama2 starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("waiting for llama2").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("llama2 {args:?} still runs after a minute: it blocked");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("llama2's output")
}

/// The one line of a failed run's stderr; checks the exit and that nothing panicked.
fn error_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "expected failure; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "the CLI panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got {lines:#?}"
    );
    lines[0].to_string()
}

/// Every command that opens a model (generate, info, bench, quantize) or a tokenizer
/// refuses a directory, a FIFO and a device at once, saying what it is.
#[test]
fn special_files_are_refused_for_what_they_are() {
    let dir = TempDir::new("special-files");
    let fifo = dir.path().join("fifo.bin");
    let made = Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo failed");
    let specials: [(PathBuf, &str); 3] = [
        (dir.path().to_path_buf(), "is a directory"),
        (fifo, "is not a regular file (it is a FIFO)"),
        (
            PathBuf::from("/dev/null"),
            "is not a regular file (it is a character device)",
        ),
    ];
    let model = model_file("stories260K.bin");
    let tokenizer = model_file("tok512.bin");
    let out = dir.path().join("out.bin");
    let mut failures = Vec::new();
    for (special, problem) in &specials {
        let sp = s(special);
        let runs: [(&str, Vec<&str>); 5] = [
            ("model", vec![sp, "-z", s(&tokenizer), "-n", "3"]),
            ("tokenizer", vec![s(&model), "-z", sp, "-n", "3"]),
            ("info", vec!["info", sp]),
            ("bench", vec!["bench", sp]),
            ("quantize IN", vec!["quantize", sp, s(&out)]),
        ];
        for (role, args) in runs {
            let line = error_line(&run_with_deadline(&args));
            let expected = format!("llama2: error: {sp}: {problem}");
            if line != expected {
                failures.push(format!("{role} {sp}: got {line:?}, expected {expected:?}"));
            }
        }
    }
    assert!(!out.exists(), "quantize wrote {}", out.display());
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn a_tokenizer_over_the_size_limit_is_refused_unread() {
    let dir = TempDir::new("huge-tokenizer");
    let path = dir.path().join("huge-tok.bin");
    // Sparse: no disk space, and it is never read.
    File::create(&path)
        .and_then(|f| f.set_len(MAX_TOKENIZER_BYTES + 1))
        .unwrap();
    let model = model_file("stories260K.bin");
    let line = error_line(&run_with_deadline(&[s(&model), "-z", s(&path), "-n", "3"]));
    assert_eq!(
        line,
        format!(
            "llama2: error: {}: is too large for a tokenizer (more than 64 MB)",
            path.display()
        )
    );
}

/// A copy of stories260K in `dir`, with its modification time set an hour back, so that
/// any write during the test changes it whatever the file system's timestamp granularity.
fn model_copy(dir: &TempDir) -> (PathBuf, Vec<u8>, SystemTime) {
    let original = read_file(&model_file("stories260K.bin"));
    let path = dir.write("model.bin", &original);
    let past = SystemTime::now() - Duration::from_secs(3600);
    File::options()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_times(FileTimes::new().set_modified(past)))
        .unwrap();
    (path, original, past)
}

fn changed_message(path: &Path) -> String {
    format!("{}: {CHANGED}", path.display())
}

/// The file cut short under the map: reading past the new end neither kills the process
/// (SIGBUS) nor fails; it sees zeros, and the change is reported, also when the file has
/// its old length and time back by the check.
#[cfg(target_os = "linux")]
#[test]
fn a_model_cut_short_under_the_map_reads_zeros_and_is_reported() {
    let dir = TempDir::new("cut-short");
    let (path, original, past) = model_copy(&dir);
    let file = MappedFile::open(&path).unwrap();
    let mut layers = Vec::new();
    let model = file.model(&mut layers).unwrap();
    file.check_unchanged().unwrap();
    let mut out = StopIfCutShort {
        file: &file,
        inner: Sink(Vec::new()),
    };
    embedded_io::Write::write_all(&mut out, b"before").unwrap();

    let half = original.len() / 2;
    let writer = OpenOptions::new().write(true).open(&path).unwrap();
    writer.set_len(half as u64).unwrap();
    let bytes = file.bytes();
    assert_eq!(bytes.len(), original.len());
    assert!(bytes[..half] == original[..half], "the kept half changed");
    assert!(
        bytes[half..].iter().all(|&b| b == 0),
        "past the end is not zeros"
    );
    // The parsed model still runs (on zero weights where the file was cut).
    let config = model.config;
    let mut buffer = vec![0f32; llama2_core::State::len_for(&config, 4).unwrap()];
    let mut state = llama2_core::State::new(&config, 4, &mut buffer).unwrap();
    model.forward(&mut state, 1, 0, &Serial).unwrap();
    let error = file.check_unchanged().unwrap_err();
    assert_eq!(error.to_string(), changed_message(&path));
    // Output computed from those zeros is not taken.
    let refused = embedded_io::Write::write_all(&mut out, b"after").unwrap_err();
    assert_eq!(refused.to_string(), CHANGED);
    assert_eq!(out.inner.0, b"before");

    // Even with the old contents, length and time back, the zeros read are remembered.
    fs::write(&path, &original).unwrap();
    writer
        .set_times(FileTimes::new().set_modified(past))
        .unwrap();
    let error = file.check_unchanged().unwrap_err();
    assert_eq!(error.to_string(), changed_message(&path));
}

/// The file rewritten in place, keeping its length: the map shows the new bytes, and the
/// modification time gives the change away, also to a parse done after it.
#[test]
fn a_model_rewritten_in_place_is_reported() {
    let dir = TempDir::new("rewritten");
    let (path, original, _) = model_copy(&dir);
    let file = MappedFile::open(&path).unwrap();
    let mut rewritten = original.clone();
    rewritten[..4].copy_from_slice(&0i32.to_le_bytes()); // dim 0: would not parse
    fs::write(&path, &rewritten).unwrap();
    let error = file.model(&mut Vec::new()).unwrap_err();
    assert_eq!(error.to_string(), changed_message(&path));
    let error = file.check_unchanged().unwrap_err();
    assert_eq!(error.to_string(), changed_message(&path));
}

/// A file replaced by another (written beside it, renamed over it: how downloads and
/// `quantize` write) leaves the mapped one whole: no change to report.
#[test]
fn a_model_replaced_by_rename_is_no_change() {
    let dir = TempDir::new("replaced");
    let (path, original, _) = model_copy(&dir);
    let file = MappedFile::open(&path).unwrap();
    let other = dir.write("other.bin", &read_file(&model_file("stories260K_v1.bin")));
    fs::rename(&other, &path).unwrap();
    file.check_unchanged().unwrap();
    assert!(file.bytes() == original.as_slice());
    file.model(&mut Vec::new()).unwrap();
}

/// A model cut short while `llama2` generates from it: no SIGBUS; the run stops at its next
/// token (the zeros it read are never printed on) and fails with the change as its only
/// word on stderr (no speed report for a run that went wrong). The run is paused (SIGSTOP)
/// once it has printed, so that the truncation surely falls inside it.
#[cfg(target_os = "linux")]
#[test]
fn a_model_cut_short_during_generation_fails_the_run() {
    let dir = TempDir::new("cut-during-run");
    let (path, original, _) = model_copy(&dir);
    let tokenizer = model_file("tok512.bin");
    let mut child = Command::new(llama2_bin())
        .args([s(&path), "-z", s(&tokenizer), "-t", "0", "-n", "256"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("llama2 starts");
    let pid = child.id().to_string();
    let signal = |name: &str| {
        let sent = Command::new("kill").args([name, &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {name} {pid} failed");
    };
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("the run prints");
    signal("-STOP");
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(original.len() as u64 / 2))
        .unwrap();
    signal("-CONT");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}; stderr: {stderr}",
        output.status
    );
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [format!("llama2: error: {}", changed_message(&path)).as_str()],
        "{stderr}"
    );
}

/// A text sink with `std::io::Error` errors, as stdout's adapter has.
struct Sink(Vec<u8>);

impl embedded_io::ErrorType for Sink {
    type Error = std::io::Error;
}

impl embedded_io::Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
