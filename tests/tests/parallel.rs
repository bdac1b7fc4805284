//! `llama2 MODEL --parallel N`: sequence `i`'s text must be byte for byte what
//! `llama2 MODEL -s SEED+i` prints alone (same -t, -p, -n, -i), for every file format,
//! kernels and threads; sequence 0 of a golden case's seed must print the golden text.

use std::ffi::OsString;

use llama2_tests::{
    assert_all_pass, exact_generate_cases, first_difference, inexact_fp32_generate_cases,
    model_file, run_llama2, GenerateCase, RunSettings,
};

/// A separator no text can hold (the text rule drops control characters).
const SEPARATOR: &str = "\u{1e}";

/// How the engine runs: none of these may change a text.
const SCALAR_ONE_THREAD: &[&str] = &["--kernels", "scalar", "--threads", "1"];
const AUTO_ONE_THREAD: &[&str] = &["--kernels", "auto", "--threads", "1"];
const AUTO_TWO_THREADS: &[&str] = &["--kernels", "auto", "--threads", "2"];
const SCALAR_TWO_THREADS_UNBATCHED: &[&str] =
    &["--kernels", "scalar", "--threads", "2", "--batch-size", "1"];

/// A run: the model (and `-z` tokenizer for llama2.c files), the case's flags with a seed
/// (`-s 1` where the case has none), and the engine flags.
struct Run {
    name: String,
    /// `MODEL [-z TOKENIZER]`.
    files: Vec<OsString>,
    /// llama2.c flags without `-s`.
    flags: Vec<String>,
    seed: u64,
}

impl Run {
    fn of_case(case: &GenerateCase, gguf: Option<&str>) -> Run {
        let files = match gguf {
            Some(model) => vec![model_file(model).into_os_string()],
            None => vec![
                model_file(&case.model).into_os_string(),
                "-z".into(),
                model_file(&case.tokenizer).into_os_string(),
            ],
        };
        let mut flags = Vec::new();
        let mut args = case.args.iter();
        while let (Some(flag), Some(value)) = (args.next(), args.next()) {
            if flag != "-s" {
                flags.extend([flag.clone(), value.clone()]);
            }
        }
        let seed = RunSettings::parse(&case.args).seed.max(1);
        Run {
            name: format!("{} on {}", case.name, gguf.unwrap_or(&case.model)),
            files,
            flags,
            seed,
        }
    }

    /// The texts of `--parallel n`, in seed order, or a failure message.
    fn parallel(&self, n: usize, engine: &[&str]) -> Result<Vec<Vec<u8>>, String> {
        let extra = [
            "--parallel".to_string(),
            n.to_string(),
            "--separator".to_string(),
            SEPARATOR.to_string(),
        ];
        let stdout = self.stdout(self.seed, &extra, engine)?;
        let separator = format!("{SEPARATOR}\n");
        let mut texts: Vec<Vec<u8>> = String::from_utf8_lossy(&stdout)
            .split(&separator)
            .map(|t| t.as_bytes().to_vec())
            .collect();
        if texts.pop().as_deref() != Some(b"") || texts.len() != n {
            return Err(format!(
                "{}: --parallel {n} printed {} texts, or no separator at the end",
                self.name,
                texts.len()
            ));
        }
        Ok(texts)
    }

    /// The stdout of a run with `seed`, the `extra` flags and `engine`.
    fn stdout(&self, seed: u64, extra: &[String], engine: &[&str]) -> Result<Vec<u8>, String> {
        let mut args = self.files.clone();
        args.extend(self.flags.iter().map(Into::into));
        args.extend(["-s".into(), seed.to_string().into()]);
        args.extend(extra.iter().map(Into::into));
        args.extend(engine.iter().map(Into::into));
        let output = run_llama2(&args);
        if !output.status.success() {
            return Err(format!(
                "{} {args:?}: exited with {}: {}",
                self.name,
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(output.stdout)
    }

    /// Checks `--parallel n` against single runs with each seed (and, with `golden`,
    /// sequence 0 against it); returns the failures.
    fn check(&self, n: usize, engine: &[&str], golden: Option<&str>) -> Vec<String> {
        let texts = match self.parallel(n, engine) {
            Ok(texts) => texts,
            Err(e) => return vec![e],
        };
        let mut failures = Vec::new();
        if let Some(golden) = golden {
            if texts[0] != golden.as_bytes() {
                failures.push(format!(
                    "{} {engine:?}: sequence 0 differs from the golden text: {}",
                    self.name,
                    first_difference(golden.as_bytes(), &texts[0])
                ));
            }
        }
        for (i, text) in texts.iter().enumerate() {
            let seed = self.seed + i as u64;
            match self.stdout(seed, &[], engine) {
                Ok(alone) if alone == *text => {}
                Ok(alone) => failures.push(format!(
                    "{} {engine:?}: sequence {i} differs from -s {seed} alone: {}",
                    self.name,
                    first_difference(&alone, text)
                )),
                Err(e) => failures.push(e),
            }
        }
        failures
    }
}

/// Runs `check` for every case on every engine and fails with the list of failures.
fn check_all(cases: &[GenerateCase], gguf: Option<&str>, n: usize, engines: &[&[&str]]) {
    assert!(!cases.is_empty(), "no generate.jsonl case selected");
    let mut failures = Vec::new();
    for case in cases {
        let run = Run::of_case(case, gguf);
        // The golden text is sequence 0's when the case's seed is the run's.
        let golden = (RunSettings::parse(&case.args).seed == run.seed).then_some(&case.stdout);
        let golden = golden.or((case.args.iter().all(|a| a != "-s")).then_some(&case.stdout));
        for engine in engines {
            failures.extend(run.check(n, engine, golden.map(String::as_str)));
        }
    }
    assert_all_pass("parallel runs", &failures, cases.len() * engines.len());
}

/// Exact cases, every format: every engine must print the golden text as sequence 0 and
/// every sequence as its seed alone.
#[test]
fn exact_cases_in_parallel_match_golden_texts_and_single_runs() {
    let engines: &[&[&str]] = &[SCALAR_ONE_THREAD, AUTO_ONE_THREAD, AUTO_TWO_THREADS];
    check_all(&exact_generate_cases(), None, 2, engines);
}

/// Inexact fp32 cases: golden on the scalar path (which sums like the reference), and
/// single runs on each engine.
#[test]
fn inexact_cases_in_parallel_match_on_the_scalar_path() {
    let engines: &[&[&str]] = &[SCALAR_ONE_THREAD, SCALAR_TWO_THREADS_UNBATCHED];
    check_all(&inexact_fp32_generate_cases(), None, 2, engines);
}

/// Q8_0 (v2) models whose cases are inexact: no golden text on SIMD, but every sequence
/// must still be its seed's single run, on every engine.
#[test]
fn q80_models_in_parallel_match_single_runs() {
    let mut failures = Vec::new();
    let cases: Vec<GenerateCase> = llama2_tests::read_jsonl::<GenerateCase>("generate.jsonl")
        .into_iter()
        .filter(|c| llama2_tests::is_q80(&c.model) && !c.exact)
        .collect();
    assert!(!cases.is_empty());
    for case in &cases {
        let run = Run::of_case(case, None);
        for engine in [AUTO_ONE_THREAD, AUTO_TWO_THREADS] {
            failures.extend(run.check(4, engine, None));
        }
    }
    assert_all_pass("parallel Q8_0 runs", &failures, 2 * cases.len());
}

/// GGUF files: stories260K.gguf holds stories260K.bin's weights (golden texts, with the
/// tokenizer inside), and the quantized synthK files every sequence as its seed alone.
#[test]
fn gguf_models_in_parallel_match_golden_texts_and_single_runs() {
    let stories: Vec<GenerateCase> = exact_generate_cases()
        .into_iter()
        .filter(|c| c.model == "stories260K.bin")
        .collect();
    check_all(
        &stories,
        Some("stories260K.gguf"),
        2,
        &[SCALAR_ONE_THREAD, AUTO_TWO_THREADS],
    );
    let mut failures = Vec::new();
    let files = ["synthK-Q8_0.gguf", "synthK-Q4_K_M.gguf", "synthK-Q4_0.gguf"];
    for file in files {
        let run = Run {
            name: file.to_string(),
            files: vec![model_file(file).into_os_string()],
            flags: [
                "-t",
                "1.0",
                "-p",
                "0.9",
                "-n",
                "48",
                "-i",
                "Once upon a time",
            ]
            .map(String::from)
            .to_vec(),
            seed: 11,
        };
        for engine in [SCALAR_ONE_THREAD, AUTO_ONE_THREAD, AUTO_TWO_THREADS] {
            failures.extend(run.check(4, engine, None));
        }
    }
    assert_all_pass("parallel GGUF runs", &failures, 3 * files.len());
}

/// Many sequences over a whole context: some of eight stories end (BOS) long before
/// others, which leaves the batch without changing the rest.
#[test]
fn eight_stories_over_the_whole_context_match_single_runs() {
    let run = Run {
        name: "stories260K.bin -n 0".to_string(),
        files: vec![
            model_file("stories260K.bin").into_os_string(),
            "-z".into(),
            model_file("tok512.bin").into_os_string(),
        ],
        flags: ["-t", "1.0", "-p", "0.9", "-n", "0"]
            .map(String::from)
            .to_vec(),
        seed: 100,
    };
    let texts = run.parallel(8, AUTO_TWO_THREADS).unwrap();
    let lengths: Vec<usize> = texts.iter().map(Vec::len).collect();
    assert!(
        lengths.iter().min() < lengths.iter().max(),
        "the stories all have one length: {lengths:?}"
    );
    let failures = run.check(8, AUTO_TWO_THREADS, None);
    assert_all_pass("sequences", &failures, 8);
}

/// The flag's refusals: a count of 0, chat mode, and a separator without --parallel.
#[test]
fn parallel_refuses_bad_counts_and_chat_mode() {
    let model = model_file("stories260K.bin");
    let tokenizer = model_file("tok512.bin");
    let base = |extra: &[&str]| {
        let mut args: Vec<OsString> =
            vec![model.clone().into(), "-z".into(), tokenizer.clone().into()];
        args.extend(extra.iter().map(Into::into));
        run_llama2(&args)
    };
    for (extra, code, needle) in [
        (
            &["--parallel", "0"][..],
            2,
            "expected a number of sequences, 1 or more",
        ),
        (&["--parallel", "-3"][..], 2, "--parallel"),
        (
            &["--parallel", "2", "-m", "chat"][..],
            1,
            "llama2: error: --parallel: ",
        ),
        (&["--separator", "x"][..], 2, "--parallel"),
    ] {
        let output = base(extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{extra:?}");
    }
    // A count the memory cannot hold is one line naming the model, not an abort.
    let output = base(&["--parallel", "100000000000", "-n", "8"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("llama2: error: "), "{stderr}");
}

/// `llama2 bench --parallel N` reports the aggregate speed and its ratio, in text and JSON.
#[test]
fn bench_reports_parallel_generation() {
    let common = [
        "bench",
        "--shape",
        "260K",
        "--runs",
        "1",
        "--prompt-tokens",
        "8",
    ];
    let mut args = common.to_vec();
    args.extend(["--gen-tokens", "16", "--parallel", "4", "--json"]);
    let output = run_llama2(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["parallel_sequences"], 4);
    let rate = report["parallel_gen_tok_s"].as_f64().unwrap();
    let single = report["gen_tok_s"].as_f64().unwrap();
    let ratio = report["parallel_ratio"].as_f64().unwrap();
    assert!(
        rate > 0.0 && (ratio - rate / single).abs() < 1e-9 * ratio,
        "{report}"
    );

    let mut args = common.to_vec();
    args.extend(["--gen-tokens", "4", "--parallel", "2"]);
    let output = run_llama2(&args);
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("parallel generation: "))
        .unwrap_or_else(|| panic!("no parallel line in {text}"));
    assert!(
        line.contains("tok/s (2 sequences, ") && line.ends_with("× single)"),
        "{line}"
    );
    // Without the flag, no parallel line and null fields.
    let output = run_llama2(&common);
    assert!(!String::from_utf8_lossy(&output.stdout).contains("parallel"));
}
