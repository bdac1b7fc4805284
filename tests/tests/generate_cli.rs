//! `golden/generate.jsonl` through the real `llama2` binary: stdout byte for byte, and
//! llama2.c's behaviour when `-n` is shorter than the prompt.

use llama2_core::Tokenizer;
use llama2_tests::{
    assert_all_pass, exact_generate_cases, first_difference, inexact_fp32_generate_cases,
    model_file, read_file, read_jsonl, run_llama2, tokenizer_entry_count, EncodeCase, GenerateCase,
    RunSettings,
};

/// How the engine runs: the reference loops or the CPU's SIMD, the threads, and the prompt
/// batch size. None of them may change the output of an `exact` case.
const SCALAR_SERIAL: &[&str] = &["--kernels", "scalar", "--threads", "1", "--batch-size", "1"];
const SIMD_ONE_THREAD: &[&str] = &["--kernels", "auto", "--threads", "1", "--batch-size", "1"];
const SIMD_TWO_THREADS_BATCHED: &[&str] =
    &["--kernels", "auto", "--threads", "2", "--batch-size", "16"];
const SCALAR_TWO_THREADS_BATCHED: &[&str] =
    &["--kernels", "scalar", "--threads", "2", "--batch-size", "5"];

/// Runs every case as `llama2 MODEL -z TOKENIZER ARGS... ENGINE...` and fails with the list
/// of those whose exit status is not 0 or whose stdout differs from the golden text.
fn check_cases(cases: &[GenerateCase], engine: &[&str]) {
    check_cases_on(cases, None, engine);
}

/// As [`check_cases`]; with `gguf`, every case runs on that GGUF model instead, with no
/// `-z` (the tokenizer inside the file).
fn check_cases_on(cases: &[GenerateCase], gguf: Option<&str>, engine: &[&str]) {
    assert!(!cases.is_empty(), "no generate.jsonl case selected");
    let mut failures = Vec::new();
    for case in cases {
        let mut args = match gguf {
            Some(model) => vec![model_file(model).into_os_string()],
            None => vec![
                model_file(&case.model).into_os_string(),
                "-z".into(),
                model_file(&case.tokenizer).into_os_string(),
            ],
        };
        args.extend(case.args.iter().map(Into::into));
        args.extend(engine.iter().map(Into::into));
        let output = run_llama2(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            failures.push(format!(
                "{}: exited with {}: {stderr}",
                case.name, output.status
            ));
        } else if output.stdout != case.stdout.as_bytes() {
            failures.push(format!(
                "{} ({} {:?} {engine:?}): stdout differs: {}",
                case.name,
                gguf.unwrap_or(&case.model),
                case.args,
                first_difference(case.stdout.as_bytes(), &output.stdout)
            ));
        }
    }
    assert_all_pass("cases", &failures, cases.len());
}

/// `exact: true`, every format: every build of ours must reproduce these, whatever the
/// kernels, threads and batch size.
#[test]
fn exact_cases_match_on_the_scalar_path() {
    check_cases(&exact_generate_cases(), SCALAR_SERIAL);
}

#[test]
fn exact_cases_match_with_simd_kernels() {
    check_cases(&exact_generate_cases(), SIMD_ONE_THREAD);
}

#[test]
fn exact_cases_match_with_two_threads_and_batched_prompts() {
    check_cases(&exact_generate_cases(), SIMD_TWO_THREADS_BATCHED);
}

/// Every case on `stories260K.bin` (exact or not).
fn stories260k_cases() -> Vec<GenerateCase> {
    let cases: Vec<GenerateCase> = read_jsonl::<GenerateCase>("generate.jsonl")
        .into_iter()
        .filter(|c| c.model == "stories260K.bin")
        .collect();
    assert!(cases.len() >= 5, "{} stories260K.bin cases", cases.len());
    cases
}

/// The GGUF conversions of stories260K hold the same f32 weights: with the tokenizer inside
/// the file, every stories260K.bin case gives the same stdout, byte for byte. On the scalar
/// path every sum is the reference's, so inexact cases match too; the SIMD kernels, threads
/// and batching must match on the exact ones.
#[test]
fn stories260k_gguf_gives_every_stories260k_bin_story_without_a_tokenizer_file() {
    let cases = stories260k_cases();
    let exact: Vec<GenerateCase> = cases.iter().filter(|c| c.exact).cloned().collect();
    for model in ["stories260K.gguf", "stories260K-tied.gguf"] {
        check_cases_on(&cases, Some(model), SCALAR_SERIAL);
        check_cases_on(&exact, Some(model), SIMD_TWO_THREADS_BATCHED);
    }
}

/// `exact: false` on fp32 models: a different float summation order may legitimately flip
/// a sampled token in these (the logits goldens check the SIMD kernels instead), so they
/// are required of the scalar kernels only, which sum like the reference. Threads and
/// batching do not change any sum, so they must match there too.
#[test]
fn inexact_cases_match_on_the_scalar_path() {
    check_cases(&inexact_fp32_generate_cases(), SCALAR_SERIAL);
    check_cases(&inexact_fp32_generate_cases(), SCALAR_TWO_THREADS_BATCHED);
}

/// The golden case `name` and the number of tokens its prompt encodes to (BOS included),
/// from `golden/encode.jsonl`.
fn case_and_prompt_len(name: &str) -> (GenerateCase, usize) {
    let case = read_jsonl::<GenerateCase>("generate.jsonl")
        .into_iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("generate.jsonl has no case {name}"));
    let prompt = RunSettings::parse(&case.args)
        .prompt
        .expect("the case has a prompt");
    let encoded = read_jsonl::<EncodeCase>("encode.jsonl")
        .into_iter()
        .find(|e| e.tokenizer == case.tokenizer && e.text == prompt && e.bos)
        .unwrap_or_else(|| panic!("encode.jsonl does not encode {prompt:?}"));
    assert_eq!(
        case.tokens[..encoded.tokens.len()],
        encoded.tokens,
        "{name} does not start with its prompt's tokens"
    );
    (case, encoded.tokens.len())
}

/// The text of the golden tokens after BOS up to `count` of them, by the fixtures' text
/// rule for plain pieces (a leading space dropped after BOS); it must be a prefix of the
/// golden stdout, which checks that these pieces are plain.
fn golden_prefix(case: &GenerateCase, count: usize) -> String {
    let bytes = read_file(&model_file(&case.tokenizer));
    let vocab = tokenizer_entry_count(&bytes);
    let mut index = vec![0u32; Tokenizer::index_len(vocab).unwrap()];
    let tokenizer = Tokenizer::new(&bytes, vocab, &mut index).unwrap();
    let mut text = Vec::new();
    for pair in case.tokens.windows(2).take(count) {
        let piece = tokenizer.piece(pair[1]).unwrap();
        let piece = match (pair[0], piece) {
            (1, [b' ', rest @ ..]) => rest,
            (_, piece) => piece,
        };
        text.extend_from_slice(piece);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(
        case.stdout.starts_with(&text),
        "{:?} is not a prefix of {}'s stdout",
        text,
        case.name
    );
    text + "\n"
}

/// llama2.c's `run` forces prompt tokens for every position below `-n` and never needs
/// more positions than `-n`: with `-n` below the prompt's token count it prints the first
/// `-n` prompt pieces and exits 0. Checked below, at and just above the prompt's length,
/// against the goldens' tokens, token by token and in prompt batches.
#[test]
fn steps_below_at_and_above_the_prompt_length_print_like_llama2c() {
    for name in ["260k-greedy-prompt", "32k-greedy"] {
        let (case, prompt_len) = case_and_prompt_len(name);
        assert!(prompt_len >= 4, "{name}: the prompt is too short to cut");
        let settings = RunSettings::parse(&case.args);
        for steps in [
            1,
            prompt_len - 2,
            prompt_len - 1,
            prompt_len,
            prompt_len + 1,
        ] {
            let expected = golden_prefix(&case, steps);
            for engine in [&["--batch-size", "1"][..], &["--batch-size", "16"][..]] {
                let mut args = vec![
                    model_file(&case.model).into_os_string(),
                    "-z".into(),
                    model_file(&case.tokenizer).into_os_string(),
                    "-t".into(),
                    "0".into(),
                    "-i".into(),
                    settings.prompt.clone().unwrap().into(),
                    "-n".into(),
                    steps.to_string().into(),
                ];
                args.extend(engine.iter().map(Into::into));
                let output = run_llama2(&args);
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(
                    output.status.success(),
                    "{name} -n {steps} {engine:?}: exit {}: {stderr}",
                    output.status
                );
                assert_eq!(
                    String::from_utf8_lossy(&output.stdout),
                    expected,
                    "{name} -n {steps} {engine:?}"
                );
            }
        }
    }
}
