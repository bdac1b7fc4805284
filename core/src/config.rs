//! The model's hyperparameters, validated once so that the rest of the crate can index
//! without re-checking.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::error::{Error, Result};

/// The seven numbers of a llama2.c header plus whether the classifier shares the token
/// embedding.
///
/// Build one with [`Config::validated`] (which the checkpoint parser does for you); a
/// `Config` literal is also fine in `const` context for sizing static buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Width of the residual stream.
    pub dim: usize,
    /// Width of the feed-forward layer.
    pub hidden_dim: usize,
    /// Number of transformer layers.
    pub n_layers: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads (fewer than `n_heads` for grouped/multi-query attention).
    pub n_kv_heads: usize,
    /// Number of tokens in the vocabulary.
    pub vocab_size: usize,
    /// The longest context the model was trained for.
    pub seq_len: usize,
    /// Whether the output classifier reuses the token embedding table.
    pub shared_classifier: bool,
}

/// The two numbers of the forward pass that are not shapes: llama2.c files fix them
/// ([`Numerics::LLAMA2C`]); GGUF files say them in their metadata.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Numerics {
    /// The epsilon added to the mean square in RMSNorm.
    pub rms_eps: f32,
    /// The base of RoPE's frequencies (`theta`).
    pub rope_base: f32,
}

impl Numerics {
    /// What every llama2.c model uses: epsilon `1e-5`, base `10000`.
    pub const LLAMA2C: Numerics = Numerics {
        rms_eps: 1e-5,
        rope_base: 10000.0,
    };
}

impl Config {
    /// Checks a raw header (`dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
    /// seq_len`, all required positive) and returns the config it describes.
    pub fn validated(raw: [i32; 7], shared_classifier: bool) -> Result<Config> {
        const NAMES: [&str; 7] = [
            "dim",
            "hidden_dim",
            "n_layers",
            "n_heads",
            "n_kv_heads",
            "vocab_size",
            "seq_len",
        ];
        let mut v = [0usize; 7];
        for ((out, &value), field) in v.iter_mut().zip(raw.iter()).zip(NAMES) {
            if value <= 0 {
                return Err(Error::NonPositiveField {
                    field,
                    value: i64::from(value),
                });
            }
            *out = usize::try_from(value).map_err(|_| Error::SizeOverflow)?;
        }
        let config = Config {
            dim: v[0],
            hidden_dim: v[1],
            n_layers: v[2],
            n_heads: v[3],
            n_kv_heads: v[4],
            vocab_size: v[5],
            seq_len: v[6],
            shared_classifier,
        };
        config.check()?;
        Ok(config)
    }

    /// The seven header numbers with their header names, in file order.
    pub const fn named_fields(&self) -> [(&'static str, usize); 7] {
        [
            ("dim", self.dim),
            ("hidden_dim", self.hidden_dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("vocab_size", self.vocab_size),
            ("seq_len", self.seq_len),
        ]
    }

    /// Checks the relations between the fields (divisibility, even head size).
    pub fn check(&self) -> Result<()> {
        for (field, value) in self.named_fields() {
            if value == 0 {
                return Err(Error::NonPositiveField { field, value: 0 });
            }
        }
        if !self.dim.is_multiple_of(self.n_heads) {
            return Err(Error::HeadsDoNotDivideDim {
                dim: self.dim,
                n_heads: self.n_heads,
            });
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(Error::KvHeadsDoNotDivideHeads {
                n_heads: self.n_heads,
                n_kv_heads: self.n_kv_heads,
            });
        }
        if !self.head_size().is_multiple_of(2) {
            return Err(Error::OddHeadSize {
                head_size: self.head_size(),
            });
        }
        // Every tensor's element count must be addressable; checked here once so that
        // index arithmetic on a validated config cannot overflow.
        self.parameter_count().ok_or(Error::SizeOverflow)?;
        Ok(())
    }

    /// Values per attention head.
    pub const fn head_size(&self) -> usize {
        self.dim / self.n_heads
    }

    /// Width of the key and value vectors (`n_kv_heads * head_size`).
    pub const fn kv_dim(&self) -> usize {
        self.head_size() * self.n_kv_heads
    }

    /// How many query heads share one key/value head.
    pub const fn kv_mul(&self) -> usize {
        self.n_heads / self.n_kv_heads
    }

    /// Number of weights in the model (RMSNorm gains included), or `None` on overflow.
    pub const fn parameter_count(&self) -> Option<usize> {
        let d = Some(self.dim);
        let kv = Some(self.kv_dim());
        let h = Some(self.hidden_dim);
        // per layer: two norms, wq, wk, wv, wo, w1, w2, w3
        let attention = add(mul(mul(d, d), Some(2)), mul(mul(kv, d), Some(2)));
        let ffn = mul(mul(h, d), Some(3));
        let per_layer = add(add(attention, ffn), mul(d, Some(2)));
        let embedding = mul(Some(self.vocab_size), d);
        let classifier = if self.shared_classifier {
            Some(0)
        } else {
            embedding
        };
        add(
            add(
                mul(Some(self.n_layers), per_layer),
                add(embedding, classifier),
            ),
            d,
        )
    }
}

/// `a * b` on optional sizes, `None` on overflow; usable in `const fn`.
pub(crate) const fn mul(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => a.checked_mul(b),
        _ => None,
    }
}

/// `a + b` on optional sizes, `None` on overflow; usable in `const fn`.
pub(crate) const fn add(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => a.checked_add(b),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::RAW;

    #[test]
    fn derived_sizes() {
        let c = Config::validated(RAW, true).unwrap();
        assert_eq!((c.head_size(), c.kv_dim(), c.kv_mul()), (2, 4, 2));
        // 300*8 embedding + 2 layers * (2*8 + 2*64 + 2*32 + 3*96) + 8
        assert_eq!(
            c.parameter_count(),
            Some(2400 + 2 * (16 + 128 + 64 + 288) + 8)
        );
    }

    #[test]
    fn rejects_each_bad_field() {
        let with = |i: usize, v: i32| {
            let mut raw = RAW;
            raw[i] = v;
            Config::validated(raw, true)
        };
        assert_eq!(
            with(0, 0),
            Err(Error::NonPositiveField {
                field: "dim",
                value: 0
            })
        );
        assert_eq!(
            with(6, -3),
            Err(Error::NonPositiveField {
                field: "seq_len",
                value: -3
            })
        );
        assert_eq!(
            with(3, 3),
            Err(Error::HeadsDoNotDivideDim { dim: 8, n_heads: 3 })
        );
        assert_eq!(
            with(4, 3),
            Err(Error::KvHeadsDoNotDivideHeads {
                n_heads: 4,
                n_kv_heads: 3
            })
        );
        assert_eq!(with(3, 8), Err(Error::OddHeadSize { head_size: 1 }));
    }

    #[test]
    fn rejects_sizes_that_overflow() {
        let raw = [1 << 30, i32::MAX, i32::MAX, 2, 2, i32::MAX, 1];
        assert_eq!(Config::validated(raw, false), Err(Error::SizeOverflow));
    }
}
