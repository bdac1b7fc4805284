//! `golden/logits.jsonl` and `golden/gguf_logits.jsonl`: teacher-forced logits of
//! `Model::forward` against the reference, for the llama2.c models and for GGUF files of
//! every weight type.

use llama2_cli::pool::ThreadPool;
use llama2_core::{argmax, Kernels, LayerWeights, Model, Parallel, Serial, State};
use llama2_tests::{load_model, read_f32_golden, read_jsonl, LogitsCase};

/// How far one entry's logits are from the golden ones.
#[derive(Debug, Default)]
struct Errors {
    /// Largest absolute difference (NaN if any logit is NaN), and its position.
    max_abs: f32,
    max_abs_pos: usize,
    /// Mean absolute difference over all positions and tokens.
    mean_abs: f32,
    /// Fraction of positions whose argmax matches the golden argmax.
    argmax_agreement: f32,
}

/// Feeds `tokens[pos]` at every `pos` of `case` to the model file `case.model` with
/// `kernels` on `parallel` and measures the logits against the golden rows.
fn measure(case: &LogitsCase, kernels: Kernels, parallel: &impl Parallel) -> Errors {
    let model_bytes = load_model(&case.model);
    let bytes = model_bytes.bytes();
    let table_len = Model::layer_table_len(bytes)
        .unwrap_or_else(|e| panic!("{}: {}: {e}", case.name, case.model));
    let mut layers = vec![LayerWeights::EMPTY; table_len];
    let model = Model::parse(bytes, &mut layers)
        .unwrap_or_else(|e| panic!("{}: {}: {e}", case.name, case.model));
    let config = model.config;
    assert_eq!(
        config.vocab_size, case.vocab_size,
        "{}: vocab_size",
        case.name
    );
    assert!(
        case.tokens.len() >= case.positions,
        "{}: {} tokens for {} positions",
        case.name,
        case.tokens.len(),
        case.positions
    );
    let golden = read_f32_golden(&case.file);
    assert_eq!(
        golden.len(),
        case.positions * case.vocab_size,
        "{}: {} holds {} floats, not positions × vocab_size",
        case.name,
        case.file,
        golden.len()
    );

    let mut activations = vec![0f32; State::len_for(&config, case.positions).unwrap()];
    let mut state = State::new(&config, case.positions, &mut activations).unwrap();
    state.set_kernels(kernels);
    let mut errors = Errors::default();
    let mut sum = 0f64;
    let mut agreeing = 0;
    for (pos, expected) in golden.chunks_exact(case.vocab_size).enumerate() {
        let logits = model
            .forward(&mut state, case.tokens[pos], pos, parallel)
            .unwrap_or_else(|e| panic!("{}: forward at {pos}: {e}", case.name));
        for (got, want) in logits.iter().zip(expected) {
            let error = (got - want).abs();
            sum += f64::from(error);
            // A NaN is the worst error of all.
            if error > errors.max_abs || (error.is_nan() && !errors.max_abs.is_nan()) {
                errors.max_abs = error;
                errors.max_abs_pos = pos;
            }
        }
        agreeing += usize::from(argmax(logits) == argmax(expected));
    }
    errors.mean_abs = (sum / golden.len() as f64) as f32;
    errors.argmax_agreement = agreeing as f32 / case.positions as f32;
    errors
}

/// Checks every case with `kernels` on `parallel` against every bound its `tolerance`
/// gives: `max_abs` (all entries), `mean_abs` (quantized entries) and `argmax_agreement`
/// (llama2.c Q8_0 entries).
fn check_all(cases: &[LogitsCase], kernels: Kernels, parallel: &impl Parallel, label: &str) {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in cases {
        let case = case.clone();
        let errors = measure(&case, kernels, parallel);
        let bounds = case.tolerance;
        eprintln!(
            "{label}: {}: max abs error {:e} at position {} (bound {:e}), mean abs error {:e}, \
             argmax agreement {}",
            case.name,
            errors.max_abs,
            errors.max_abs_pos,
            bounds.max_abs,
            errors.mean_abs,
            errors.argmax_agreement
        );
        if errors.max_abs.is_nan() || errors.max_abs > bounds.max_abs {
            failures.push(format!(
                "{label}: {}: max abs error {:e} at position {} exceeds {:e}",
                case.name, errors.max_abs, errors.max_abs_pos, bounds.max_abs
            ));
        }
        if let Some(bound) = bounds.mean_abs {
            if errors.mean_abs.is_nan() || errors.mean_abs > bound {
                failures.push(format!(
                    "{label}: {}: mean abs error {:e} exceeds {bound:e}",
                    case.name, errors.mean_abs
                ));
            }
        }
        if let Some(bound) = bounds.argmax_agreement {
            if errors.argmax_agreement < bound {
                failures.push(format!(
                    "{label}: {}: argmax agreement {} is below {bound}",
                    case.name, errors.argmax_agreement
                ));
            }
        }
        checked += 1;
    }
    assert!(checked > 0, "no logits case selected");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn llama2c_cases() -> Vec<LogitsCase> {
    read_jsonl("logits.jsonl")
}

/// Every `gguf_logits.jsonl` case (one per weight type), and the `260k-fp32` case of
/// `logits.jsonl` on the two GGUF conversions of stories260K (same weights, so the same
/// logits within that case's tolerance).
fn gguf_cases() -> Vec<LogitsCase> {
    let mut cases: Vec<LogitsCase> = read_jsonl("gguf_logits.jsonl");
    assert!(
        cases.len() >= 12,
        "gguf_logits.jsonl has {} cases",
        cases.len()
    );
    let fp32 = llama2c_cases()
        .into_iter()
        .find(|c| c.name == "260k-fp32")
        .expect("logits.jsonl has the 260k-fp32 case");
    for model in ["stories260K.gguf", "stories260K-tied.gguf"] {
        cases.push(LogitsCase {
            name: format!("260k-fp32 on {model}"),
            model: model.to_string(),
            ..fp32.clone()
        });
    }
    cases
}

#[test]
fn logits_match_the_reference_on_the_scalar_path() {
    check_all(&llama2c_cases(), Kernels::scalar(), &Serial, "scalar");
}

/// The kernels the CLI picks on this machine (AVX2+FMA here), on two threads.
#[test]
fn logits_match_the_reference_with_the_detected_kernels_and_threads() {
    let kernels = Kernels::detect();
    let pool = ThreadPool::new(2).expect("two threads");
    check_all(&llama2c_cases(), kernels, &pool, kernels.name());
}

#[test]
fn gguf_logits_match_the_reference_on_the_scalar_path_at_one_and_two_threads() {
    let cases = gguf_cases();
    check_all(&cases, Kernels::scalar(), &Serial, "scalar, 1 thread");
    let pool = ThreadPool::new(2).expect("two threads");
    check_all(&cases, Kernels::scalar(), &pool, "scalar, 2 threads");
}

#[test]
fn gguf_logits_match_the_reference_with_the_detected_kernels_at_one_and_two_threads() {
    let cases = gguf_cases();
    let kernels = Kernels::detect();
    check_all(
        &cases,
        kernels,
        &Serial,
        &format!("{}, 1 thread", kernels.name()),
    );
    let pool = ThreadPool::new(2).expect("two threads");
    check_all(
        &cases,
        kernels,
        &pool,
        &format!("{}, 2 threads", kernels.name()),
    );
}
