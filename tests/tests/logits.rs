//! `golden/logits.jsonl`: teacher-forced logits of `Model::forward` against the reference.

use llama2_cli::pool::ThreadPool;
use llama2_core::{argmax, Kernels, Model, Parallel, Serial, State};
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

/// Feeds `tokens[pos]` at every `pos` of `case` with `kernels` on `parallel` and measures
/// the logits against the golden rows.
fn measure(case: &LogitsCase, kernels: Kernels, parallel: &impl Parallel) -> Errors {
    let model_bytes = load_model(&case.model);
    let model = Model::from_bytes(model_bytes.bytes())
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

/// Checks every entry, fp32 and Q8_0, with `kernels` on `parallel` against every bound
/// its `tolerance` gives: `max_abs` (all entries), and `mean_abs` and `argmax_agreement`
/// (Q8_0 entries).
fn check_all(kernels: Kernels, parallel: &impl Parallel, label: &str) {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in read_jsonl::<LogitsCase>("logits.jsonl") {
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
    assert!(checked > 0, "no logits.jsonl case selected");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn logits_match_the_reference_on_the_scalar_path() {
    check_all(Kernels::scalar(), &Serial, "scalar");
}

/// The kernels the CLI picks on this machine (AVX2+FMA here), on two threads.
#[test]
fn logits_match_the_reference_with_the_detected_kernels_and_threads() {
    let kernels = Kernels::detect();
    let pool = ThreadPool::new(2).expect("two threads");
    check_all(kernels, &pool, kernels.name());
}
