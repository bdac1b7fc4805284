//! `llama2 quantize` writes Q8_0 files byte-identical to llama2.c's `export.py --version 2`
//! (the `_q80` fixtures were written by it), with the group size it picks by default; it
//! writes OUT atomically (never the input, never a directory, no temporary file left, on
//! errors and signals too) and refuses non-finite weights unless told to go on.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use llama2_cli::synthetic::{random_f32_model, Shape};
use llama2_core::{Format, Model};
use llama2_tests::{
    llama2_bin, model_file, read_file, run_llama2, run_llama2_in, AlignedBytes, TempDir,
};

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

// ---------------------------------------------------------------------------------------
// The output file: never lost, never corrupted, nothing else touched
// ---------------------------------------------------------------------------------------

/// The names in `dir`, sorted: what a test expects to find there, temporary files included.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Asserts that `dir` holds exactly `names` (so no temporary file was left behind).
fn assert_holds_only(dir: &Path, names: &[&str], case: &str) {
    let mut expected: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(
        listing(dir),
        expected,
        "{case}: files left in the directory"
    );
}

/// Runs `llama2 quantize IN OUT EXTRA..` in `dir` and returns its status and stderr.
fn quantize_in(dir: &Path, input: &str, output: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["quantize", input, output];
    args.extend_from_slice(extra);
    let run = run_llama2_in(dir, &args);
    (
        run.status.success(),
        String::from_utf8_lossy(&run.stderr).into_owned(),
    )
}

/// Asserts a refusal: failure with one line of stderr holding `expected`.
fn assert_refused(ok: bool, stderr: &str, expected: &str, case: &str) {
    assert!(!ok, "{case}: succeeded: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{case}: {stderr}");
    assert!(stderr.starts_with("llama2: error: "), "{case}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{case}: {stderr:?} lacks {expected:?}"
    );
}

#[test]
fn refuses_an_output_that_is_the_input_and_leaves_the_input_alone() {
    let original = read_file(&model_file("stories260K.bin"));
    // (case, how OUT is made from in.bin, OUT's name)
    type Make = fn(&Path);
    let cases: [(&str, Make, &str); 4] = [
        ("same path", |_| {}, "in.bin"),
        (
            "hard link",
            |d| fs::hard_link(d.join("in.bin"), d.join("out.bin")).unwrap(),
            "out.bin",
        ),
        (
            "symbolic link",
            |d| symlink("in.bin", d.join("out.bin")).unwrap(),
            "out.bin",
        ),
        (
            "symbolic link to a hard link",
            |d| {
                fs::hard_link(d.join("in.bin"), d.join("other.bin")).unwrap();
                symlink(d.join("other.bin"), d.join("out.bin")).unwrap();
            },
            "out.bin",
        ),
    ];
    for (case, make, output) in cases {
        let dir = TempDir::new("quantize-same");
        dir.write("in.bin", &original);
        make(dir.path());
        let before = listing(dir.path());
        let (ok, stderr) = quantize_in(dir.path(), "in.bin", output, &[]);
        assert_refused(ok, &stderr, "input", case);
        assert!(
            stderr.contains(output),
            "{case}: {stderr} does not name OUT"
        );
        assert_eq!(
            read_file(&dir.path().join("in.bin")),
            original,
            "{case}: IN changed"
        );
        assert_eq!(
            listing(dir.path()),
            before,
            "{case}: files left in the directory"
        );
    }
}

#[test]
fn refuses_a_directory_a_read_only_file_and_a_missing_directory_as_output() {
    let dir = TempDir::new("quantize-refused");
    let input = model_file("stories260K.bin").display().to_string();
    fs::create_dir(dir.path().join("models")).unwrap();
    let read_only = dir.write("read-only.bin", b"keep me");
    fs::set_permissions(&read_only, fs::Permissions::from_mode(0o444)).unwrap();
    for (output, expected) in [
        ("models", "is a directory"),
        ("models/", "is a directory"),
        ("read-only.bin", "read-only"),
        ("missing/out.bin", "missing: No such file or directory"),
    ] {
        let (ok, stderr) = quantize_in(dir.path(), &input, output, &[]);
        assert_refused(ok, &stderr, expected, output);
        assert_holds_only(dir.path(), &["models", "read-only.bin"], output);
        assert_holds_only(&dir.path().join("models"), &[], output);
        assert_eq!(read_file(&read_only), b"keep me", "{output}");
    }
}

#[test]
fn an_existing_output_keeps_its_permission_bits_and_a_new_one_follows_the_umask() {
    let input = model_file("stories260K.bin").display().to_string();
    let want = read_file(&model_file("stories260K_q80.bin"));
    for mode in [0o640, 0o600, 0o664, 0o755] {
        let dir = TempDir::new("quantize-mode");
        let out = dir.write("out.bin", b"old contents");
        fs::set_permissions(&out, fs::Permissions::from_mode(mode)).unwrap();
        let (ok, stderr) = quantize_in(dir.path(), &input, "out.bin", &[]);
        assert!(ok, "{mode:o}: {stderr}");
        assert_eq!(file_mode(&out), mode, "mode of a replaced OUT");
        assert!(
            read_file(&out) == want,
            "{mode:o}: OUT is not the Q8_0 file"
        );
        assert_holds_only(dir.path(), &["out.bin"], &format!("{mode:o}"));
    }
    // A new OUT is created as any file is (0666 less the umask), not 0600 as temporary
    // files are.
    for (umask, mode) in [("022", 0o644), ("027", 0o640), ("002", 0o664)] {
        let dir = TempDir::new("quantize-umask");
        let script = format!("umask {umask} && exec \"$0\" quantize \"$1\" out.bin",);
        let run = Command::new("sh")
            .args(["-c", &script])
            .arg(llama2_bin())
            .arg(&input)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(run.status.success(), "umask {umask}: {run:?}");
        assert_eq!(
            file_mode(&dir.path().join("out.bin")),
            mode,
            "umask {umask}"
        );
        assert_holds_only(dir.path(), &["out.bin"], umask);
    }
}

#[test]
fn an_output_that_is_a_symbolic_link_is_replaced_and_its_target_left_alone() {
    let dir = TempDir::new("quantize-link");
    let target = dir.write("target.bin", b"not to be touched");
    symlink("target.bin", dir.path().join("out.bin")).unwrap();
    let input = model_file("stories260K.bin").display().to_string();
    let (ok, stderr) = quantize_in(dir.path(), &input, "out.bin", &[]);
    assert!(ok, "{stderr}");
    assert_eq!(read_file(&target), b"not to be touched");
    let out = dir.path().join("out.bin");
    assert!(fs::symlink_metadata(&out).unwrap().file_type().is_file());
    assert!(read_file(&out) == read_file(&model_file("stories260K_q80.bin")));
    assert_holds_only(dir.path(), &["out.bin", "target.bin"], "link");
}

#[test]
fn a_write_that_fails_midway_removes_its_temporary_file() {
    // A file size limit of 100 KiB (the Q8_0 file is 510 KiB) with SIGXFSZ ignored makes a
    // write fail with EFBIG after the temporary file has been created and partly written.
    let input = model_file("stories260K.bin").display().to_string();
    for existing in [false, true] {
        let dir = TempDir::new("quantize-efbig");
        if existing {
            dir.write("out.bin", b"old contents");
        }
        let run = Command::new("sh")
            .args([
                "-c",
                "trap '' XFSZ && ulimit -f 200 && exec \"$0\" quantize \"$1\" out.bin",
            ])
            .arg(llama2_bin())
            .arg(&input)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_refused(
            run.status.success(),
            &stderr,
            "out.bin: File too large",
            "EFBIG",
        );
        if existing {
            assert_eq!(read_file(&dir.path().join("out.bin")), b"old contents");
            assert_holds_only(dir.path(), &["out.bin"], "EFBIG over an existing OUT");
        } else {
            assert_holds_only(dir.path(), &[], "EFBIG");
        }
    }
}

/// A version 1 fp32 file of the 42M shape (168 MB), large enough that quantizing it takes
/// more than a second (the 15M shape leaves a window of half a second, too short for a
/// loaded machine to send the signal in for sure).
fn large_model(dir: &TempDir) -> PathBuf {
    let config = Shape::S42M.config();
    let model = random_f32_model(&config);
    dir.write("in.bin", model.bytes())
}

/// Whether `dir` holds a file other than those in `known`.
fn has_temporary(dir: &Path, known: &[&str]) -> bool {
    listing(dir)
        .iter()
        .any(|name| !known.contains(&name.as_str()))
}

/// Runs `llama2 quantize INPUT out.bin` in `dir` (through `sh` with SIGINT ignored if
/// `ignore_sigint`, as a background job of a script is started), sends `signal` once its
/// temporary file exists (a name not in `known`), and waits for it.
fn signal_during_the_write(
    input: &Path,
    dir: &Path,
    known: &[&str],
    signal: &str,
    ignore_sigint: bool,
) -> Output {
    let trap = if ignore_sigint { "trap '' INT && " } else { "" };
    let mut command = Command::new("sh");
    // SAFETY: `signal` is async-signal-safe, so it may run between fork and exec. It gives
    // the child the default dispositions even when this test was started with SIGINT
    // ignored (as a background job of a non-interactive shell is), which a shell could not
    // undo with `trap`.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command
        .args(["-c", &format!("{trap}exec \"$0\" quantize \"$1\" out.bin")])
        .arg(llama2_bin())
        .arg(input)
        .current_dir(dir)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `exec`: the shell's process id is quantize's.
    let start = Instant::now();
    while !has_temporary(dir, known) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "SIG{signal}: quantize ended before its temporary file was seen"
        );
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "SIG{signal}: no temporary file"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    // Sent from here, not by a `kill` process: starting one takes time on a loaded machine.
    let number = match signal {
        "INT" => libc::SIGINT,
        _ => libc::SIGTERM,
    };
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: `kill` only sends a signal, to our own child, which has not been waited for
    // (so the id is still its own).
    assert_eq!(
        unsafe { libc::kill(pid, number) },
        0,
        "SIG{signal}: kill failed"
    );
    child.wait_with_output().unwrap()
}

#[test]
fn sigint_or_sigterm_during_the_write_removes_the_temporary_file_and_keeps_out() {
    let shared = TempDir::new("quantize-signal-input");
    let input = large_model(&shared);
    for (signal, number, existing) in [("INT", 2, false), ("TERM", 15, false), ("INT", 2, true)] {
        let case = format!("SIG{signal}, OUT existed: {existing}");
        let dir = TempDir::new("quantize-signal");
        let known: &[&str] = if existing {
            dir.write("out.bin", b"old contents");
            &["out.bin"]
        } else {
            &[]
        };
        let run = signal_during_the_write(&input, dir.path(), known, signal, false);
        assert!(!run.status.success(), "{case}: quantize reported success");
        assert_eq!(
            run.status.signal(),
            Some(number),
            "{case}: not ended by the signal: {run:?}"
        );
        if existing {
            assert_eq!(
                read_file(&dir.path().join("out.bin")),
                b"old contents",
                "{case}"
            );
        }
        assert_holds_only(dir.path(), known, &case);
    }
    // Started with SIGINT ignored, quantize keeps ignoring it and finishes the file.
    let dir = TempDir::new("quantize-signal-ignored");
    let run = signal_during_the_write(&input, dir.path(), &[], "INT", true);
    assert!(run.status.success(), "SIGINT ignored: {run:?}");
    let out = load_model_at(&dir.path().join("out.bin"));
    let model = Model::from_bytes(out.bytes()).expect("OUT is a whole Q8_0 file");
    // 32: the largest power of two dividing dim 512 and hidden_dim 1376.
    assert_eq!(model.format, Format::V2 { group_size: 32 });
    assert_eq!(model.config, Shape::S42M.config());
    assert_holds_only(dir.path(), &["out.bin"], "SIGINT ignored");
}

#[test]
fn concurrent_runs_to_the_same_output_each_write_a_whole_file() {
    let dir = TempDir::new("quantize-concurrent");
    let input = model_file("synth_32k.bin");
    let want = read_file(&model_file("synth_32k_q80.bin"));
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(llama2_bin())
                .arg("quantize")
                .arg(&input)
                .arg("out.bin")
                .current_dir(dir.path())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let run = child.wait_with_output().unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let got = load_model_at(&dir.path().join("out.bin"));
    let model = Model::from_bytes(got.bytes()).expect("OUT parses");
    assert_eq!(model.format, Format::V2 { group_size: 32 });
    assert!(
        got.bytes() == want.as_slice(),
        "OUT differs from synth_32k_q80.bin"
    );
    assert_holds_only(dir.path(), &["out.bin"], "concurrent");
}

fn load_model_at(path: &Path) -> AlignedBytes {
    AlignedBytes::new(&read_file(path))
}

fn file_mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------------------
// Non-finite weights
// ---------------------------------------------------------------------------------------

/// Byte offset of f32 number `index` of layer `layer`'s wq in a stories260K v1 file (the
/// fixtures README's v1 layout: header, rms_att, rms_ffn, rms_final, embedding, wq, ...).
fn v1_wq_offset(layer: usize, index: usize) -> usize {
    let (dim, layers, vocab) = (64, 5, 512);
    256 + 4 * (2 * layers * dim + dim + vocab * dim + layer * dim * dim + index)
}

/// `bytes` with the f32 at each of `offsets` replaced by `value`.
fn with_values(mut bytes: Vec<u8>, offsets: &[usize], value: f32) -> Vec<u8> {
    for &at in offsets {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }
    bytes
}

#[test]
fn non_finite_weights_are_named_and_refused_unless_allowed() {
    let v1 = read_file(&model_file("stories260K_v1.bin"));
    let v0 = read_file(&model_file("stories260K.bin"));
    let wq3 = with_values(
        with_values(
            v1.clone(),
            &[v1_wq_offset(3, 0), v1_wq_offset(3, 4095)],
            f32::NAN,
        ),
        &[v1_wq_offset(3, 7)],
        f32::INFINITY,
    );
    // v0 layout: the 28-byte header, then the embedding; rms_final is 64 floats before the
    // two RoPE tables (512 * 8 / 2 floats each) at the end of this shared-classifier file.
    let rms_final_last = v0.len() - 4 * (2 * 512 * 4) - 4;
    let v0_mixed = with_values(
        with_values(v0.clone(), &[28 + 4 * 5], f32::NEG_INFINITY),
        &[rms_final_last],
        -f32::NAN,
    );
    for (case, bytes, expected) in [
        ("v1, layer 3 wq", wq3, "layer 3 wq: 2 NaN, 1 +inf"),
        (
            "v0, embedding and final norm",
            v0_mixed,
            "token_embedding: 1 -inf; rms_final: 1 NaN",
        ),
    ] {
        let dir = TempDir::new("quantize-non-finite");
        dir.write("in.bin", &bytes);
        let (ok, stderr) = quantize_in(dir.path(), "in.bin", "out.bin", &[]);
        assert_refused(ok, &stderr, expected, case);
        assert!(stderr.contains("--allow-non-finite"), "{case}: {stderr}");
        assert_holds_only(dir.path(), &["in.bin"], case);

        let (ok, stderr) = quantize_in(dir.path(), "in.bin", "out.bin", &["--allow-non-finite"]);
        assert!(ok, "{case} with --allow-non-finite: {stderr}");
        assert!(stderr.contains(expected), "{case}: {stderr}");
        assert!(stderr.contains("quantizing anyway"), "{case}: {stderr}");
        let out = load_model_at(&dir.path().join("out.bin"));
        let model = Model::from_bytes(out.bytes()).expect("OUT parses");
        assert_eq!(model.format, Format::V2 { group_size: 4 }, "{case}");
        assert_holds_only(dir.path(), &["in.bin", "out.bin"], case);
    }
}
