//! The bytes that start a model file, written from a [`Config`]: the one place that knows
//! the header layouts besides the parser (`checkpoint.rs`), so that every writer (the
//! `quantize` subcommand, benchmarks, tests, the fuzz harness) produces what the parser
//! reads back.
//!
//! A header is refused, with the error the parser would give on reading it, unless it
//! describes a file [`crate::Model::from_bytes`] accepts: no writer can produce a file this
//! crate then refuses to load.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::checkpoint::{Format, MAGIC, V0_HEADER_LEN, VERSIONED_HEADER_LEN};
use crate::config::Config;
use crate::error::{Error, Result};

/// The header of a model file of one [`Format`]: 28 bytes for v0, 256 for v1 and v2.
///
/// ```
/// use llama2_core::{Config, Format, Header};
///
/// let config = Config {
///     dim: 64,
///     hidden_dim: 172,
///     n_layers: 5,
///     n_heads: 8,
///     n_kv_heads: 4,
///     vocab_size: 512,
///     seq_len: 512,
///     shared_classifier: true,
/// };
/// let header = Header::new(&config, Format::V2 { group_size: 4 })?;
/// assert_eq!(header.as_bytes().len(), 256);
/// assert_eq!(&header.as_bytes()[..4], b"24ka"); // the magic "ak42" as a little-endian u32
/// # Ok::<(), llama2_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; VERSIONED_HEADER_LEN],
    len: usize,
}

impl Header {
    /// The header of a `format` file describing `config`, laid out as the fixtures' README
    /// (and llama2.c's `export.py`) writes it:
    ///
    /// - v0: the seven config fields as i32, `vocab_size` negated if the classifier is not
    ///   shared;
    /// - v1: magic, version 1, the seven fields, the shared-classifier byte, zeros to 256;
    /// - v2: as v1 with version 2 and the i32 `group_size` right after the shared byte.
    ///
    /// Errors: the config fails [`Config::check`]; a field does not fit the file's i32
    /// ([`Error::FieldTooLarge`]); a v2 group size is zero or does not divide `dim` and
    /// `hidden_dim` (the errors [`crate::Model::from_bytes`] gives for such a file).
    pub fn new(config: &Config, format: Format) -> Result<Header> {
        config.check()?;
        let mut header = Header {
            bytes: [0; VERSIONED_HEADER_LEN],
            len: 0,
        };
        let mut fields = config
            .named_fields()
            .map(|(field, value)| as_i32(field, value));
        match format {
            Format::V0 => {
                if !config.shared_classifier {
                    // A negative vocabulary size marks the classifier stored at the end.
                    fields[5] = fields[5].map(i32::wrapping_neg);
                }
                for field in fields {
                    header.push(&field?.to_le_bytes());
                }
                debug_assert_eq!(header.len, V0_HEADER_LEN);
            }
            Format::V1 | Format::V2 { .. } => {
                let version: i32 = if format == Format::V1 { 1 } else { 2 };
                header.push(&MAGIC.to_le_bytes());
                header.push(&version.to_le_bytes());
                for field in fields {
                    header.push(&field?.to_le_bytes());
                }
                header.push(&[u8::from(config.shared_classifier)]);
                if let Format::V2 { group_size } = format {
                    check_group(config, group_size)?;
                    header.push(&as_i32("group_size", group_size)?.to_le_bytes());
                }
                header.len = VERSIONED_HEADER_LEN;
            }
            Format::Gguf { .. } => return Err(Error::NotLlama2cFormat),
        }
        Ok(header)
    }

    /// The header's bytes, exactly as they start the file.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }

    /// Appends `field` after the bytes written so far (the layouts above fit in 256 bytes).
    fn push(&mut self, field: &[u8]) {
        let end = self.len + field.len();
        if let Some(slot) = self.bytes.get_mut(self.len..end) {
            slot.copy_from_slice(field);
        }
        self.len = end;
    }
}

/// `value` as the file's i32, or [`Error::FieldTooLarge`] naming `field`.
fn as_i32(field: &'static str, value: usize) -> Result<i32> {
    i32::try_from(value).map_err(|_| Error::FieldTooLarge { field, value })
}

/// A Q8 group size the parser accepts for `config`.
fn check_group(config: &Config, group_size: usize) -> Result<()> {
    if group_size == 0 {
        return Err(Error::NonPositiveField {
            field: "group_size",
            value: 0,
        });
    }
    if !config.dim.is_multiple_of(group_size) || !config.hidden_dim.is_multiple_of(group_size) {
        return Err(Error::GroupSizeMismatch {
            group_size,
            dim: config.dim,
            hidden_dim: config.hidden_dim,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::RAW;
    use crate::Model;
    use std::path::PathBuf;
    use std::vec::Vec;

    /// A model file of the fixture directory (`$LLAMA2_FIXTURES` or `../shared/fixtures`
    /// beside the workspace).
    fn fixture_model(name: &str) -> Vec<u8> {
        let dir = std::env::var_os("LLAMA2_FIXTURES").map_or_else(
            || {
                PathBuf::from(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../../shared/fixtures"
                ))
            },
            PathBuf::from,
        );
        let path = dir.join("models").join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// The config the stories260K fixtures describe (fixtures README).
    const STORIES260K: Config = Config {
        dim: 64,
        hidden_dim: 172,
        n_layers: 5,
        n_heads: 8,
        n_kv_heads: 4,
        vocab_size: 512,
        seq_len: 512,
        shared_classifier: true,
    };

    #[test]
    #[cfg_attr(miri, ignore = "reads fixture files, which Miri's isolation forbids")]
    fn writes_the_headers_of_the_published_files() {
        for (file, format, len) in [
            ("stories260K.bin", Format::V0, V0_HEADER_LEN),
            ("stories260K_v1.bin", Format::V1, VERSIONED_HEADER_LEN),
            (
                "stories260K_q80.bin",
                Format::V2 { group_size: 4 },
                VERSIONED_HEADER_LEN,
            ),
        ] {
            let bytes = fixture_model(file);
            let header = Header::new(&STORIES260K, format).unwrap();
            assert_eq!(header.as_bytes(), &bytes[..len], "{file}");
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "reads fixture files, which Miri's isolation forbids")]
    fn writes_an_unshared_classifier_as_the_files_do() {
        // synth_mqa_unshared: 48, 128, 3, 6, 1, 512, 64, unshared; its q80 has group 16.
        let config = Config {
            dim: 48,
            hidden_dim: 128,
            n_layers: 3,
            n_heads: 6,
            n_kv_heads: 1,
            vocab_size: 512,
            seq_len: 64,
            shared_classifier: false,
        };
        for (file, format, len) in [
            ("synth_mqa_unshared.bin", Format::V0, V0_HEADER_LEN),
            (
                "synth_mqa_unshared_v1.bin",
                Format::V1,
                VERSIONED_HEADER_LEN,
            ),
            (
                "synth_mqa_unshared_q80.bin",
                Format::V2 { group_size: 16 },
                VERSIONED_HEADER_LEN,
            ),
        ] {
            let bytes = fixture_model(file);
            let header = Header::new(&config, format).unwrap();
            assert_eq!(header.as_bytes(), &bytes[..len], "{file}");
        }
    }

    #[test]
    fn the_parser_reads_back_what_was_written() {
        for shared in [true, false] {
            let config = Config::validated(RAW, shared).unwrap();
            for format in [Format::V0, Format::V1, Format::V2 { group_size: 4 }] {
                let header = Header::new(&config, format).unwrap();
                // The header alone says how long the file must be; zero weights fill it.
                let mut words: Vec<f32> = header
                    .as_bytes()
                    .chunks_exact(4)
                    .map(|w| f32::from_le_bytes([w[0], w[1], w[2], w[3]]))
                    .collect();
                let expected = match Model::from_bytes(bytemuck::cast_slice(&words)) {
                    Err(Error::FileSizeMismatch { expected, .. }) => expected,
                    other => panic!("{format:?}: {other:?}"),
                };
                words.resize(expected.div_ceil(4), 0.0);
                let bytes = &bytemuck::cast_slice::<f32, u8>(&words)[..expected];
                let model = Model::from_bytes(bytes).unwrap();
                assert_eq!((model.config, model.format), (config, format));
            }
        }
    }

    #[test]
    fn refuses_what_the_parser_would_refuse() {
        let config = Config::validated(RAW, true).unwrap();
        // 8 divides dim 8 but not hidden_dim 12.
        assert_eq!(
            Header::new(&config, Format::V2 { group_size: 8 }),
            Err(Error::GroupSizeMismatch {
                group_size: 8,
                dim: 8,
                hidden_dim: 12
            })
        );
        assert_eq!(
            Header::new(&config, Format::V2 { group_size: 0 }),
            Err(Error::NonPositiveField {
                field: "group_size",
                value: 0
            })
        );
        let odd_heads = Config {
            n_heads: 3,
            ..config
        };
        assert!(matches!(
            Header::new(&odd_heads, Format::V1),
            Err(Error::HeadsDoNotDivideDim { .. })
        ));
        if usize::BITS > 32 {
            let huge = Config {
                seq_len: 1 << 31,
                ..config
            };
            assert_eq!(
                Header::new(&huge, Format::V0),
                Err(Error::FieldTooLarge {
                    field: "seq_len",
                    value: 1 << 31
                })
            );
        }
    }
}
