//! `golden/generate.jsonl` through the real `llama2` binary: stdout byte for byte.

use llama2_tests::{
    exact_generate_cases, first_difference, inexact_fp32_generate_cases, model_file, run_llama2,
    GenerateCase,
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
    assert!(!cases.is_empty(), "no generate.jsonl case selected");
    let mut failures = Vec::new();
    for case in cases {
        let mut args = vec![
            model_file(&case.model).into_os_string(),
            "-z".into(),
            model_file(&case.tokenizer).into_os_string(),
        ];
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
                case.model,
                case.args,
                first_difference(case.stdout.as_bytes(), &output.stdout)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    eprintln!("{} cases match", cases.len());
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

/// `exact: false` on fp32 models: a different float summation order may legitimately flip
/// a sampled token in these (the logits goldens check the SIMD kernels instead), so they
/// are required of the scalar kernels only, which sum like the reference. Threads and
/// batching do not change any sum, so they must match there too.
#[test]
fn inexact_cases_match_on_the_scalar_path() {
    check_cases(&inexact_fp32_generate_cases(), SCALAR_SERIAL);
    check_cases(&inexact_fp32_generate_cases(), SCALAR_TWO_THREADS_BATCHED);
}
