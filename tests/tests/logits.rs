//! `golden/logits.jsonl`: teacher-forced logits of `Model::forward` against the reference.

use llama2_core::{argmax, Model, Serial, State};
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

/// Feeds `tokens[pos]` at every `pos` of `case` with the scalar `Serial` path and measures
/// the logits against the golden rows.
fn measure(case: &LogitsCase) -> Errors {
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
    let mut errors = Errors::default();
    let mut sum = 0f64;
    let mut agreeing = 0;
    for (pos, expected) in golden.chunks_exact(case.vocab_size).enumerate() {
        let logits = model
            .forward(&mut state, case.tokens[pos], pos, &Serial)
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

/// Every entry, fp32 and Q8_0, against every bound its `tolerance` gives: `max_abs`
/// (all entries), and `mean_abs` and `argmax_agreement` (Q8_0 entries).
#[test]
fn logits_match_the_reference() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in read_jsonl::<LogitsCase>("logits.jsonl") {
        let errors = measure(&case);
        let bounds = case.tolerance;
        eprintln!(
            "{}: max abs error {:e} at position {} (bound {:e}), mean abs error {:e}, \
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
                "{}: max abs error {:e} at position {} exceeds {:e}",
                case.name, errors.max_abs, errors.max_abs_pos, bounds.max_abs
            ));
        }
        if let Some(bound) = bounds.mean_abs {
            if errors.mean_abs.is_nan() || errors.mean_abs > bound {
                failures.push(format!(
                    "{}: mean abs error {:e} exceeds {bound:e}",
                    case.name, errors.mean_abs
                ));
            }
        }
        if let Some(bound) = bounds.argmax_agreement {
            if errors.argmax_agreement < bound {
                failures.push(format!(
                    "{}: argmax agreement {} is below {bound}",
                    case.name, errors.argmax_agreement
                ));
            }
        }
        checked += 1;
    }
    assert!(checked > 0, "no logits.jsonl case selected");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
