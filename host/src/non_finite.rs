//! NaN and infinities in fp32 weights, counted per tensor, so that a subcommand that
//! rewrites a model (`quantize`, and `convert` to a quantized type) refuses them by name instead of turning
//! them silently into zeros or infinite scales.

use std::fmt;

/// How many values of a tensor are not finite, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NonFinite {
    /// NaN values (any payload, either sign).
    pub nan: usize,
    /// `+inf` values.
    pub pos_inf: usize,
    /// `-inf` values.
    pub neg_inf: usize,
}

impl NonFinite {
    /// Counts the non-finite values of `values`.
    pub fn count(values: &[f32]) -> NonFinite {
        let mut counts = NonFinite::default();
        for &v in values.iter().filter(|v| !v.is_finite()) {
            if v.is_nan() {
                counts.nan += 1;
            } else if v > 0.0 {
                counts.pos_inf += 1;
            } else {
                counts.neg_inf += 1;
            }
        }
        counts
    }

    /// All non-finite values.
    pub fn total(&self) -> usize {
        self.nan + self.pos_inf + self.neg_inf
    }
}

/// `2 NaN, 1 +inf` (kinds with no value left out).
impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds = [
            (self.nan, "NaN"),
            (self.pos_inf, "+inf"),
            (self.neg_inf, "-inf"),
        ];
        let mut first = true;
        for (count, kind) in kinds.into_iter().filter(|(count, _)| *count > 0) {
            if !first {
                f.write_str(", ")?;
            }
            write!(f, "{count} {kind}")?;
            first = false;
        }
        Ok(())
    }
}

/// The tensors of a model that hold non-finite values, in the order they were scanned.
#[derive(Debug, Default)]
pub struct Report {
    tensors: Vec<(String, NonFinite)>,
}

/// Tensors named in a report before the rest are summed up, to keep it on one line.
const NAMED_IN_REPORT: usize = 8;

impl Report {
    /// Scans every `(name, values)` tensor.
    pub fn scan<'a>(tensors: impl IntoIterator<Item = (String, &'a [f32])>) -> Report {
        let tensors = tensors
            .into_iter()
            .map(|(name, values)| (name, NonFinite::count(values)))
            .filter(|(_, counts)| counts.total() > 0)
            .collect();
        Report { tensors }
    }

    /// A report from counts already made per tensor (for tensors scanned row by row).
    pub fn from_counts(tensors: impl IntoIterator<Item = (String, NonFinite)>) -> Report {
        let tensors = tensors
            .into_iter()
            .filter(|(_, counts)| counts.total() > 0)
            .collect();
        Report { tensors }
    }

    /// Whether every value was finite.
    pub fn is_clean(&self) -> bool {
        self.tensors.is_empty()
    }
}

/// `layer 3 wq: 2 NaN, 1 +inf; token_embedding: 1 NaN`, the first few tensors by name and
/// the others counted.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, counts)) in self.tensors.iter().take(NAMED_IN_REPORT).enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{name}: {counts}")?;
        }
        let rest = &self.tensors[self.tensors.len().min(NAMED_IN_REPORT)..];
        if !rest.is_empty() {
            let values: usize = rest.iter().map(|(_, counts)| counts.total()).sum();
            write!(
                f,
                "; and {} more tensors with {values} non-finite values",
                rest.len()
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_each_kind_and_names_the_tensors() {
        let clean = [0.0, -1.0, f32::MAX, f32::MIN_POSITIVE];
        let dirty = [f32::NAN, 1.0, f32::INFINITY, -f32::NAN, f32::NEG_INFINITY];
        assert_eq!(NonFinite::count(&clean).total(), 0);
        assert_eq!(
            NonFinite::count(&dirty),
            NonFinite {
                nan: 2,
                pos_inf: 1,
                neg_inf: 1
            }
        );
        let report = Report::scan([
            ("a".to_string(), &clean[..]),
            ("layer 0 wq".to_string(), &dirty[..2]),
            ("b".to_string(), &dirty[..]),
        ]);
        assert!(!report.is_clean());
        assert_eq!(
            report.to_string(),
            "layer 0 wq: 1 NaN; b: 2 NaN, 1 +inf, 1 -inf"
        );
        assert!(Report::scan([("a".to_string(), &clean[..])]).is_clean());
    }

    #[test]
    fn sums_up_tensors_past_the_first_few() {
        let nan = [f32::NAN; 2];
        let report = Report::scan((0..10).map(|l| (format!("layer {l} w1"), &nan[..])));
        let text = report.to_string();
        assert!(
            text.starts_with("layer 0 w1: 2 NaN; layer 1 w1: 2 NaN"),
            "{text}"
        );
        assert!(
            text.ends_with("layer 7 w1: 2 NaN; and 2 more tensors with 4 non-finite values"),
            "{text}"
        );
    }
}
