//! Hostile inputs: malformed model and tokenizer files, bad settings and out-of-range ids,
//! each with the exact `llama2_core::Error` it must produce (docs/SECURITY.md).
//!
//! The malformed files are the fixtures mutated in memory: `stories260K.bin` (v0),
//! `stories260K_v1.bin`, `stories260K_q80.bin` (v2, group size 4), `tok512.bin` and
//! `gguf/stories260K.gguf`.
//! Each table row is a name, the input and the expected error; every row runs and the test
//! lists all rows that failed.

use llama2_core::gguf::{GgmlType, Gguf, GgufName, Value, ValueType};
use llama2_core::{
    prompt_buffer_len, Batch, Buffer, Error, Generator, LayerWeights, Model, ProbIndex, Sampler,
    Serial, State, Strategy, Tokenizer, MAGIC,
};
use llama2_tests::{
    assert_all_pass, model_file, read_fixture, read_jsonl, run_llama2, AlignedBytes, GenerateCase,
    TempDir,
};

/// stories260K: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len.
const RAW: [i32; 7] = [64, 172, 5, 8, 4, 512, 512];
const DIM: usize = 64;
const VOCAB: usize = 512;
/// Header field offsets in a v0 file; versioned files have them 8 bytes later.
const FIELD: [&str; 7] = [
    "dim",
    "hidden_dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "vocab_size",
    "seq_len",
];

fn fixture_model(name: &str) -> Vec<u8> {
    read_fixture(&format!("models/{name}"))
}

fn v0() -> Vec<u8> {
    fixture_model("stories260K.bin")
}

fn v1() -> Vec<u8> {
    fixture_model("stories260K_v1.bin")
}

fn v2() -> Vec<u8> {
    fixture_model("stories260K_q80.bin")
}

fn tok512() -> Vec<u8> {
    fixture_model("tok512.bin")
}

/// `bytes` with the i32 at `offset` replaced. Raw bytes on purpose, at the fixtures README's
/// offsets: the headers made here are malformed, which `llama2_core::Header` refuses to write.
fn set_i32(mut bytes: Vec<u8>, offset: usize, value: i32) -> Vec<u8> {
    bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    bytes
}

/// `bytes` with header field `field` (by name) set to `value`; `header` is 0 for v0 files
/// and 8 for versioned ones (after magic and version).
fn set_field(bytes: Vec<u8>, header: usize, field: &str, value: i32) -> Vec<u8> {
    let i = FIELD.iter().position(|&f| f == field).unwrap();
    set_i32(bytes, header + 4 * i, value)
}

/// `bytes` with a whole v0 header.
fn with_v0_header(bytes: Vec<u8>, raw: [i32; 7]) -> Vec<u8> {
    raw.iter()
        .enumerate()
        .fold(bytes, |b, (i, &v)| set_i32(b, 4 * i, v))
}

fn truncated(mut bytes: Vec<u8>, len: usize) -> Vec<u8> {
    bytes.truncate(len);
    bytes
}

fn extended(mut bytes: Vec<u8>, extra: usize) -> Vec<u8> {
    bytes.resize(bytes.len() + extra, 0);
    bytes
}

/// The expected length of a v0 file of this shape (shared classifier), in u64 so that it
/// can be computed for shapes whose size overflows a 32-bit `usize`.
fn v0_len(raw: [i32; 7]) -> u64 {
    let [dim, hidden, layers, heads, kv_heads, vocab, seq] = raw.map(|v| v as u64);
    let head_size = dim / heads;
    let kv_dim = head_size * kv_heads;
    let per_layer = 2 * dim + 2 * dim * dim + 2 * kv_dim * dim + 3 * hidden * dim;
    28 + 4 * (vocab * dim + layers * per_layer + dim + seq * head_size)
}

/// Parses model bytes from 4-byte aligned storage.
fn parse(bytes: &[u8]) -> Result<(), Error> {
    let aligned = AlignedBytes::new(bytes);
    Model::from_bytes(aligned.bytes()).map(|_| ())
}

/// Errors are equal, NaN payloads included (`NaN != NaN` under `PartialEq`).
fn same(a: &Result<(), Error>, b: &Result<(), Error>) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}

/// Runs every row, then fails listing the rows whose result differed.
fn check_table(kind: &str, rows: Vec<(&str, Result<(), Error>, Error)>) {
    let mut failures = Vec::new();
    let count = rows.len();
    for (name, got, expected) in rows {
        let expected = Err(expected);
        if !same(&got, &expected) {
            failures.push(format!("  {name}: got {got:?}, expected {expected:?}"));
        }
    }
    assert_all_pass(&format!("{kind} rows"), &failures, count);
}

#[test]
fn malformed_model_files() {
    let (v0_len_full, v1_len_full, v2_len_full) = (v0().len(), v1().len(), v2().len());
    // v2 layout: 256-byte header, fp32 norms ((2 * n_layers + 1) * dim), then the token
    // embedding's int8 values and its scales.
    let v2_embedding_scales = 256 + 4 * (2 * 5 + 1) * DIM + VOCAB * DIM;
    // Every size fits on 64 bits, but n_layers * 3 * hidden_dim * dim does not on 32.
    let big_32 = [4096, 16384, 64, 32, 32, 32000, 2048];
    let big_32_expected = if usize::BITS == 32 {
        Error::SizeOverflow
    } else {
        Error::FileSizeMismatch {
            expected: v0_len(big_32) as usize,
            actual: v0_len_full,
        }
    };
    // Sizes that overflow even a 64-bit usize (vocab * dim * 4 bytes, and more).
    let huge = [1 << 30, 1 << 30, 1 << 30, 2, 2, 1 << 30, 1];
    let mut misaligned_storage = vec![0u8];
    misaligned_storage.extend_from_slice(&v0());

    let rows: Vec<(&str, Result<(), Error>, Error)> = vec![
        // --- empty and truncated files
        (
            "empty file",
            parse(&[]),
            Error::TruncatedHeader {
                needed: 28,
                actual: 0,
            },
        ),
        (
            "7 bytes",
            parse(&v0()[..7]),
            Error::TruncatedHeader {
                needed: 28,
                actual: 7,
            },
        ),
        (
            "v0 cut inside the header",
            parse(&v0()[..20]),
            Error::TruncatedHeader {
                needed: 28,
                actual: 20,
            },
        ),
        (
            "v1 cut inside its 256-byte header",
            parse(&v1()[..100]),
            Error::TruncatedHeader {
                needed: 256,
                actual: 100,
            },
        ),
        (
            "v2 cut inside its header",
            parse(&v2()[..255]),
            Error::TruncatedHeader {
                needed: 256,
                actual: 255,
            },
        ),
        (
            "v0 header only",
            parse(&v0()[..28]),
            Error::FileSizeMismatch {
                expected: v0_len_full,
                actual: 28,
            },
        ),
        (
            "v0 cut inside the weights",
            parse(&truncated(v0(), 500_000)),
            Error::FileSizeMismatch {
                expected: v0_len_full,
                actual: 500_000,
            },
        ),
        (
            "v0 missing its last byte",
            parse(&truncated(v0(), v0_len_full - 1)),
            Error::FileSizeMismatch {
                expected: v0_len_full,
                actual: v0_len_full - 1,
            },
        ),
        (
            "v1 cut inside the weights",
            parse(&truncated(v1(), v1_len_full / 2)),
            Error::FileSizeMismatch {
                expected: v1_len_full,
                actual: v1_len_full / 2,
            },
        ),
        (
            "v2 cut inside the token embedding's scales",
            parse(&truncated(v2(), v2_embedding_scales + 101)),
            Error::FileSizeMismatch {
                expected: v2_len_full,
                actual: v2_embedding_scales + 101,
            },
        ),
        (
            "v2 missing the last layer's last scale",
            parse(&truncated(v2(), v2_len_full - 4)),
            Error::FileSizeMismatch {
                expected: v2_len_full,
                actual: v2_len_full - 4,
            },
        ),
        // --- files longer than their config says
        (
            "v0 with 4 bytes more",
            parse(&extended(v0(), 4)),
            Error::FileSizeMismatch {
                expected: v0_len_full,
                actual: v0_len_full + 4,
            },
        ),
        (
            "v1 with 1 byte more",
            parse(&extended(v1(), 1)),
            Error::FileSizeMismatch {
                expected: v1_len_full,
                actual: v1_len_full + 1,
            },
        ),
        (
            "v2 with 1 byte more",
            parse(&extended(v2(), 1)),
            Error::FileSizeMismatch {
                expected: v2_len_full,
                actual: v2_len_full + 1,
            },
        ),
        (
            "v0 claiming an unshared classifier it lacks (negative vocab_size)",
            parse(&set_field(v0(), 0, "vocab_size", -512)),
            Error::FileSizeMismatch {
                expected: v0_len_full + 4 * VOCAB * DIM,
                actual: v0_len_full,
            },
        ),
        (
            "v1 claiming an unshared classifier it lacks (flag 0)",
            parse(&{
                let mut b = v1();
                b[36] = 0;
                b
            }),
            Error::FileSizeMismatch {
                expected: v1_len_full + 4 * VOCAB * DIM,
                actual: v1_len_full,
            },
        ),
        // --- zero, negative and absurd dimensions
        (
            "dim 0",
            parse(&set_field(v0(), 0, "dim", 0)),
            Error::NonPositiveField {
                field: "dim",
                value: 0,
            },
        ),
        (
            "hidden_dim -1",
            parse(&set_field(v0(), 0, "hidden_dim", -1)),
            Error::NonPositiveField {
                field: "hidden_dim",
                value: -1,
            },
        ),
        (
            "v1 n_layers i32::MIN",
            parse(&set_field(v1(), 8, "n_layers", i32::MIN)),
            Error::NonPositiveField {
                field: "n_layers",
                value: i64::from(i32::MIN),
            },
        ),
        (
            "v1 n_heads 0",
            parse(&set_field(v1(), 8, "n_heads", 0)),
            Error::NonPositiveField {
                field: "n_heads",
                value: 0,
            },
        ),
        (
            "v2 n_kv_heads -4",
            parse(&set_field(v2(), 8, "n_kv_heads", -4)),
            Error::NonPositiveField {
                field: "n_kv_heads",
                value: -4,
            },
        ),
        (
            "v1 vocab_size 0",
            parse(&set_field(v1(), 8, "vocab_size", 0)),
            Error::NonPositiveField {
                field: "vocab_size",
                value: 0,
            },
        ),
        (
            "v1 negative vocab_size (only v0 marks the classifier so)",
            parse(&set_field(v1(), 8, "vocab_size", -512)),
            Error::NonPositiveField {
                field: "vocab_size",
                value: -512,
            },
        ),
        (
            "v0 vocab_size i32::MIN (no positive counterpart)",
            parse(&set_field(v0(), 0, "vocab_size", i32::MIN)),
            Error::NonPositiveField {
                field: "vocab_size",
                value: i64::from(i32::MIN),
            },
        ),
        (
            "v2 seq_len -1",
            parse(&set_field(v2(), 8, "seq_len", -1)),
            Error::NonPositiveField {
                field: "seq_len",
                value: -1,
            },
        ),
        (
            "dim i32::MAX",
            parse(&set_field(v0(), 0, "dim", i32::MAX)),
            Error::HeadsDoNotDivideDim {
                dim: i32::MAX as usize,
                n_heads: 8,
            },
        ),
        (
            "absurd sizes overflowing a 64-bit usize",
            parse(&with_v0_header(v0(), huge)),
            Error::SizeOverflow,
        ),
        (
            "sizes whose product overflows a 32-bit usize",
            parse(&with_v0_header(v0(), big_32)),
            big_32_expected,
        ),
        (
            "v1 seq_len i32::MAX (fits: v1 stores no RoPE tables), dim too large",
            parse(&set_field(
                set_field(v1(), 8, "seq_len", i32::MAX),
                8,
                "dim",
                128,
            )),
            Error::FileSizeMismatch {
                expected: 256
                    + 4 * (5 * (2 * 128 + 2 * 128 * 128 + 2 * 64 * 128 + 3 * 172 * 128)
                        + 128
                        + 512 * 128),
                actual: v1_len_full,
            },
        ),
        // --- relations between the fields
        (
            "dim 64 not divisible by n_heads 7",
            parse(&set_field(v0(), 0, "n_heads", 7)),
            Error::HeadsDoNotDivideDim {
                dim: 64,
                n_heads: 7,
            },
        ),
        (
            "n_heads 8 not divisible by n_kv_heads 3",
            parse(&set_field(v0(), 0, "n_kv_heads", 3)),
            Error::KvHeadsDoNotDivideHeads {
                n_heads: 8,
                n_kv_heads: 3,
            },
        ),
        (
            "n_kv_heads 16 above n_heads 8",
            parse(&set_field(v1(), 8, "n_kv_heads", 16)),
            Error::KvHeadsDoNotDivideHeads {
                n_heads: 8,
                n_kv_heads: 16,
            },
        ),
        (
            "odd head size (64 heads of 1)",
            parse(&set_field(v0(), 0, "n_heads", 64)),
            Error::OddHeadSize { head_size: 1 },
        ),
        // --- magic and version
        (
            "GGUF magic: the file is read as GGUF (the v0 header's next word is its version)",
            parse(&{
                let mut b = v0();
                b[..4].copy_from_slice(b"GGUF");
                b
            }),
            Error::GgufUnsupportedVersion(172),
        ),
        (
            "ak42 version 0",
            parse(&set_i32(v1(), 4, 0)),
            Error::UnsupportedVersion(0),
        ),
        (
            "ak42 version 3",
            parse(&set_i32(v1(), 4, 3)),
            Error::UnsupportedVersion(3),
        ),
        (
            "ak42 version -1",
            parse(&set_i32(v2(), 4, -1)),
            Error::UnsupportedVersion(-1),
        ),
        (
            "ak42 magic on a v0 file",
            parse(&set_i32(v0(), 0, MAGIC as i32)),
            Error::UnsupportedVersion(172),
        ),
        // --- v2 group size
        (
            "v2 group size 0",
            parse(&set_i32(v2(), 37, 0)),
            Error::NonPositiveField {
                field: "group_size",
                value: 0,
            },
        ),
        (
            "v2 group size -4",
            parse(&set_i32(v2(), 37, -4)),
            Error::NonPositiveField {
                field: "group_size",
                value: -4,
            },
        ),
        (
            "v2 group size 3 divides neither dim nor hidden_dim",
            parse(&set_i32(v2(), 37, 3)),
            Error::GroupSizeMismatch {
                group_size: 3,
                dim: 64,
                hidden_dim: 172,
            },
        ),
        (
            "v2 group size 8 divides dim 64 but not hidden_dim 172",
            parse(&set_i32(v2(), 37, 8)),
            Error::GroupSizeMismatch {
                group_size: 8,
                dim: 64,
                hidden_dim: 172,
            },
        ),
        (
            "v2 group size i32::MAX",
            parse(&set_i32(v2(), 37, i32::MAX)),
            Error::GroupSizeMismatch {
                group_size: i32::MAX as usize,
                dim: 64,
                hidden_dim: 172,
            },
        ),
        (
            "v2 group size 2 (divides both, but the file holds scales for groups of 4)",
            parse(&set_i32(v2(), 37, 2)),
            Error::FileSizeMismatch {
                expected: v2_len_full + 4 * (RAW_Q8_VALUES / 2 - RAW_Q8_VALUES / 4),
                actual: v2_len_full,
            },
        ),
        // --- alignment
        (
            "weights not 4-byte aligned",
            {
                let aligned = AlignedBytes::new(&misaligned_storage);
                Model::from_bytes(&aligned.bytes()[1..]).map(|_| ())
            },
            Error::Misaligned,
        ),
    ];
    check_table("model file", rows);
}

// ---------------------------------------------------------------------------------------
// GGUF models: stories260K.gguf (written by llama.cpp's tools, every tensor F32) edited in
// place, each row breaking what the llama loader checks (the container's own checks are
// core/src/gguf/tests.rs's).
// ---------------------------------------------------------------------------------------

fn gguf() -> Vec<u8> {
    read_fixture("gguf/stories260K.gguf")
}

/// The offset of the first occurrence of the GGUF string `text` (u64 length, then bytes).
fn gguf_string_at(bytes: &[u8], text: &str) -> usize {
    let mut needle = (text.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(text.as_bytes());
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{text:?} is in the file"))
}

/// `bytes` with the GGUF string `from` (a key, a string value or a tensor name) spelled `to`.
/// A different length shifts what follows: pair it with another change of the opposite
/// length so the data section stays where the tensor offsets expect it.
fn gguf_respell(mut bytes: Vec<u8>, from: &str, to: &str) -> Vec<u8> {
    let at = gguf_string_at(&bytes, from);
    let mut replacement = (to.len() as u64).to_le_bytes().to_vec();
    replacement.extend_from_slice(to.as_bytes());
    bytes.splice(at..at + 8 + from.len(), replacement);
    bytes
}

/// `bytes` with the value of metadata `key` replaced by `value` (its type id first, then the
/// value: the same size as the old one).
fn gguf_set(mut bytes: Vec<u8>, key: &str, type_id: u32, value: &[u8]) -> Vec<u8> {
    let at = gguf_string_at(&bytes, key) + 8 + key.len();
    bytes[at..at + 4].copy_from_slice(&type_id.to_le_bytes());
    bytes[at + 4..at + 4 + value.len()].copy_from_slice(value);
    bytes
}

fn gguf_set_u32(bytes: Vec<u8>, key: &str, value: u32) -> Vec<u8> {
    gguf_set(bytes, key, 4, &value.to_le_bytes())
}

/// `bytes` with the ggml type id of tensor `name` set to `type_id`.
fn gguf_tensor_type(mut bytes: Vec<u8>, name: &str, type_id: u32) -> Vec<u8> {
    let at = gguf_string_at(&bytes, name) + 8 + name.len();
    let n_dims = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * n_dims;
    bytes[ty..ty + 4].copy_from_slice(&type_id.to_le_bytes());
    bytes
}

/// Parses GGUF model bytes from 4-byte aligned storage with a layer table of
/// `Model::layer_table_len` entries, less `short`.
fn parse_gguf_short(bytes: &[u8], short: usize) -> Result<(), Error> {
    let aligned = AlignedBytes::new(bytes);
    let layers = Model::layer_table_len(aligned.bytes())?;
    let mut table = vec![LayerWeights::EMPTY; layers - short];
    Model::parse(aligned.bytes(), &mut table).map(|_| ())
}

fn parse_gguf(bytes: &[u8]) -> Result<(), Error> {
    parse_gguf_short(bytes, 0)
}

#[test]
fn the_gguf_fixtures_parse() {
    for (name, shared) in [("stories260K.gguf", false), ("stories260K-tied.gguf", true)] {
        let bytes = AlignedBytes::new(&read_fixture(&format!("gguf/{name}")));
        assert_eq!(Model::layer_table_len(bytes.bytes()), Ok(5), "{name}");
        let mut table = [LayerWeights::EMPTY; 5];
        let model = Model::parse(bytes.bytes(), &mut table).unwrap();
        assert_eq!(model.config.shared_classifier, shared, "{name}");
        assert_eq!(model.config.vocab_size, VOCAB);
    }
}

#[test]
fn malformed_gguf_models() {
    // general.name ("llama") takes up the length a respelled key or tensor name loses.
    let name_plus = |mut bytes: Vec<u8>, extra: usize| {
        // The value after the key and its type id: u64 length 5, "llama".
        let at = gguf_string_at(&bytes, "general.name") + 8 + "general.name".len() + 4;
        assert_eq!(&bytes[at..at + 13], b"\x05\0\0\0\0\0\0\0llama");
        let longer = format!("llama{}", "_".repeat(extra));
        let mut value = (longer.len() as u64).to_le_bytes().to_vec();
        value.extend_from_slice(longer.as_bytes());
        bytes.splice(at..at + 13, value);
        bytes
    };
    let eps = "llama.attention.layer_norm_rms_epsilon";
    let rows: Vec<(&str, Result<(), Error>, Error)> = vec![
        // --- architecture and keys
        (
            "another architecture",
            parse_gguf(&gguf_set(
                gguf(),
                "general.architecture",
                8,
                &[5, 0, 0, 0, 0, 0, 0, 0, b'm', b'a', b'm', b'b', b'a'],
            )),
            Error::GgufArchitecture {
                found: GgufName::new("mamba"),
            },
        ),
        (
            "no llama.context_length (respelled)",
            parse_gguf(&gguf_respell(
                gguf(),
                "llama.context_length",
                "llama.context_lengtX",
            )),
            Error::GgufMissingKey {
                key: "llama.context_length",
            },
        ),
        (
            "no RMSNorm epsilon (respelled)",
            parse_gguf(&gguf_respell(
                gguf(),
                eps,
                "llama.attention.layer_norm_rms_epsiloX",
            )),
            Error::GgufMissingKey { key: eps },
        ),
        (
            "no token list (respelled)",
            parse_gguf(&gguf_respell(
                gguf(),
                "tokenizer.ggml.tokens",
                "tokenizer.ggml.tokenX",
            )),
            Error::GgufMissingKey {
                key: "tokenizer.ggml.tokens",
            },
        ),
        (
            "head_count 0",
            parse_gguf(&gguf_set_u32(gguf(), "llama.attention.head_count", 0)),
            Error::GgufKeyOutOfRange {
                key: "llama.attention.head_count",
                value: 0,
            },
        ),
        (
            "block_count 0",
            parse_gguf(&gguf_set_u32(gguf(), "llama.block_count", 0)),
            Error::GgufKeyOutOfRange {
                key: "llama.block_count",
                value: 0,
            },
        ),
        (
            "head_count as an f32",
            parse_gguf(&gguf_set(
                gguf(),
                "llama.attention.head_count",
                6,
                &8f32.to_le_bytes(),
            )),
            Error::GgufWrongType {
                key: "llama.attention.head_count",
                expected: ValueType::U32,
                found: ValueType::F32,
            },
        ),
        (
            "head_count_kv 3 does not divide head_count 8",
            parse_gguf(&gguf_set_u32(gguf(), "llama.attention.head_count_kv", 3)),
            Error::KvHeadsDoNotDivideHeads {
                n_heads: 8,
                n_kv_heads: 3,
            },
        ),
        (
            "negative RMSNorm epsilon",
            parse_gguf(&gguf_set(gguf(), eps, 6, &(-1e-5f32).to_le_bytes())),
            Error::GgufFloatOutOfRange {
                key: eps,
                value: -1e-5,
            },
        ),
        (
            "NaN RMSNorm epsilon",
            parse_gguf(&gguf_set(gguf(), eps, 6, &f32::NAN.to_le_bytes())),
            Error::GgufFloatOutOfRange {
                key: eps,
                value: f32::NAN,
            },
        ),
        (
            "partial rotary (rope.dimension_count 4, head size 8)",
            parse_gguf(&gguf_set_u32(gguf(), "llama.rope.dimension_count", 4)),
            Error::GgufPartialRotary {
                rope_dims: 4,
                head_size: 8,
            },
        ),
        (
            "experts (padding_token_id respelled llama.expert_count, value 2^32 - 1)",
            parse_gguf(&name_plus(
                gguf_respell(
                    gguf(),
                    "tokenizer.ggml.padding_token_id",
                    "llama.expert_count",
                ),
                13,
            )),
            Error::GgufUnsupportedFeature {
                key: "llama.expert_count",
            },
        ),
        (
            "RoPE scaling (padding_token_id respelled llama.rope.scaling.type)",
            parse_gguf(&name_plus(
                gguf_respell(
                    gguf(),
                    "tokenizer.ggml.padding_token_id",
                    "llama.rope.scaling.type",
                ),
                8,
            )),
            Error::GgufUnsupportedFeature {
                key: "llama.rope.scaling.type",
            },
        ),
        // --- tensors
        (
            "a bias (output.weight respelled output.bias)",
            parse_gguf(&name_plus(
                gguf_respell(gguf(), "output.weight", "output.bias"),
                2,
            )),
            Error::GgufUnknownTensor {
                tensor: GgufName::new("output.bias"),
            },
        ),
        (
            "a layer past block_count 4",
            parse_gguf(&gguf_set_u32(gguf(), "llama.block_count", 4)),
            Error::GgufUnknownTensor {
                tensor: GgufName::new("blk.4.attn_q.weight"),
            },
        ),
        (
            "block_count 6: layer 5 is missing",
            parse_gguf(&gguf_set_u32(gguf(), "llama.block_count", 6)),
            Error::GgufMissingTensor {
                tensor: GgufName::new("blk.5.attn_norm.weight"),
            },
        ),
        (
            "output_norm respelled blk.0.output_norm (no such layer tensor)",
            parse_gguf(&name_plus(
                gguf_respell(gguf(), "output_norm.weight", "blk.0.output_norm"),
                1,
            )),
            Error::GgufUnknownTensor {
                tensor: GgufName::new("blk.0.output_norm"),
            },
        ),
        (
            "head_count_kv 8: attn_k is too small",
            parse_gguf(&gguf_set_u32(gguf(), "llama.attention.head_count_kv", 8)),
            Error::GgufShapeMismatch {
                tensor: GgufName::new("blk.0.attn_k.weight"),
                expected: [64, 64],
                found: [64, 32, 1, 1],
            },
        ),
        (
            "feed_forward_length 171",
            parse_gguf(&gguf_set_u32(gguf(), "llama.feed_forward_length", 171)),
            Error::GgufShapeMismatch {
                tensor: GgufName::new("blk.0.ffn_gate.weight"),
                expected: [64, 171],
                found: [64, 172, 1, 1],
            },
        ),
        (
            "embedding_length 32",
            parse_gguf(&gguf_set_u32(
                gguf_set_u32(gguf(), "llama.embedding_length", 32),
                "llama.rope.dimension_count",
                4,
            )),
            // Layer tensors are checked as they come, the model-wide ones after the walk.
            Error::GgufShapeMismatch {
                tensor: GgufName::new("blk.0.attn_q.weight"),
                expected: [32, 32],
                found: [64, 64, 1, 1],
            },
        ),
        (
            "an F16 norm",
            parse_gguf(&gguf_tensor_type(gguf(), "blk.2.ffn_norm.weight", 1)),
            Error::GgufWeightType {
                tensor: GgufName::new("blk.2.ffn_norm.weight"),
                ggml_type: GgmlType::F16,
            },
        ),
        (
            "an I32 matrix",
            parse_gguf(&gguf_tensor_type(gguf(), "blk.3.attn_v.weight", 26)),
            Error::GgufWeightType {
                tensor: GgufName::new("blk.3.attn_v.weight"),
                ggml_type: GgmlType::I32,
            },
        ),
        // --- the caller's buffers
        (
            "layer table one entry short",
            parse_gguf_short(&gguf(), 1),
            Error::BufferTooSmall {
                buffer: Buffer::LayerTable,
                needed: 5,
                actual: 4,
            },
        ),
        (
            "GGUF bytes not 4-byte aligned",
            {
                let bytes = gguf();
                let storage = AlignedBytes::new(&[&[0u8][..], &bytes].concat());
                Model::parse(&storage.bytes()[1..], &mut [LayerWeights::EMPTY; 5]).map(|_| ())
            },
            Error::Misaligned,
        ),
    ];
    check_table("GGUF model", rows);
}

/// The CLI names the GGUF file and says what is wrong with it, in one line.
#[test]
fn a_malformed_gguf_model_fails_the_cli_in_one_line() {
    let dir = TempDir::new("bad-gguf");
    let bytes = gguf_set_u32(gguf(), "llama.rope.dimension_count", 4);
    let path = dir.write("bad.gguf", &bytes);
    let tokenizer = model_file("tok512.bin");
    let output = run_llama2(&[
        path.as_os_str(),
        "-z".as_ref(),
        tokenizer.as_os_str(),
        "-n".as_ref(),
        "3".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let expected = format!(
        "llama2: error: {}: {}\n",
        path.display(),
        Error::GgufPartialRotary {
            rope_dims: 4,
            head_size: 8
        }
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), expected);
}

/// Int8 values in stories260K's v2 file: embedding + per layer wq, wk, wv, wo, w1, w2, w3.
const RAW_Q8_VALUES: usize = VOCAB * DIM + 5 * (2 * DIM * DIM + 2 * 32 * DIM + 3 * 172 * DIM);

#[test]
fn header_helpers_describe_the_fixtures() {
    assert_eq!(v0_len(RAW) as usize, v0().len());
    let v2 = v2();
    let norms = 4 * (2 * 5 + 1) * DIM;
    assert_eq!(
        v2.len(),
        256 + norms + RAW_Q8_VALUES + 4 * (RAW_Q8_VALUES / 4)
    );
}

/// Parses tokenizer bytes for a vocabulary of `vocab` tokens.
fn tokenizer(bytes: &[u8], vocab: usize) -> Result<(), Error> {
    let mut index = vec![0u32; 2 * vocab];
    Tokenizer::new(bytes, vocab, &mut index).map(|_| ())
}

/// tok512.bin without its last entry (11 bytes).
fn tok511() -> Vec<u8> {
    let bytes = tok512();
    truncated(bytes.clone(), bytes.len() - 11)
}

#[test]
fn malformed_tokenizer_files() {
    let full = tok512().len();
    // entry 0: score at 4, length at 8, "<unk>" at 12..17; max_token_length is 7.
    let rows: Vec<(&str, Result<(), Error>, Error)> = vec![
        (
            "empty file",
            tokenizer(&[], VOCAB),
            Error::TokenizerTruncated { token: 0 },
        ),
        (
            "cut inside max_token_length",
            tokenizer(&tok512()[..3], VOCAB),
            Error::TokenizerTruncated { token: 0 },
        ),
        (
            "cut inside the first entry's header",
            tokenizer(&tok512()[..10], VOCAB),
            Error::TokenizerTruncated { token: 0 },
        ),
        (
            "cut inside the first entry's bytes",
            tokenizer(&tok512()[..14], VOCAB),
            Error::TokenizerTruncated { token: 0 },
        ),
        (
            "missing its last byte",
            tokenizer(&tok512()[..full - 1], VOCAB),
            Error::TokenizerTruncated { token: 511 },
        ),
        (
            "negative length",
            tokenizer(&set_i32(tok512(), 8, -1), VOCAB),
            Error::TokenizerNegativeLength { token: 0, len: -1 },
        ),
        (
            "length i32::MIN",
            tokenizer(&set_i32(tok512(), 8, i32::MIN), VOCAB),
            Error::TokenizerNegativeLength {
                token: 0,
                len: i32::MIN,
            },
        ),
        (
            "huge length, above max_token_length",
            tokenizer(&set_i32(tok512(), 8, i32::MAX), VOCAB),
            Error::TokenLongerThanMax {
                token: 0,
                len: i32::MAX as usize,
                max: 7,
            },
        ),
        (
            "huge length and huge max_token_length: past the end",
            tokenizer(&set_i32(set_i32(tok512(), 8, i32::MAX), 0, -1), VOCAB),
            Error::TokenizerTruncated { token: 0 },
        ),
        (
            "max_token_length 4, smaller than <unk>",
            tokenizer(&set_i32(tok512(), 0, 4), VOCAB),
            Error::TokenLongerThanMax {
                token: 0,
                len: 5,
                max: 4,
            },
        ),
        (
            "max_token_length 0",
            tokenizer(&set_i32(tok512(), 0, 0), VOCAB),
            Error::TokenLongerThanMax {
                token: 0,
                len: 5,
                max: 0,
            },
        ),
        (
            "fewer entries than the model's vocabulary (511 of 512)",
            tokenizer(&tok511(), VOCAB),
            Error::TokenizerTruncated { token: 511 },
        ),
        (
            "more entries than the model's vocabulary (512 for 511)",
            tokenizer(&tok512(), 511),
            Error::TokenizerTrailingBytes {
                vocab_size: 511,
                extra: 11,
            },
        ),
        (
            "the 32000-token tokenizer for a 512-token model",
            tokenizer(&fixture_model("tokenizer.bin"), VOCAB),
            Error::TokenizerTrailingBytes {
                vocab_size: VOCAB,
                extra: 427_547,
            },
        ),
        (
            "index buffer too small",
            {
                let mut index = vec![0u32; 100];
                Tokenizer::new(&tok512(), VOCAB, &mut index).map(|_| ())
            },
            Error::BufferTooSmall {
                buffer: Buffer::TokenizerIndex,
                needed: 2 * VOCAB,
                actual: 100,
            },
        ),
        (
            "vocabulary size overflowing the index length",
            Tokenizer::new(&tok512(), usize::MAX, &mut []).map(|_| ()),
            Error::SizeOverflow,
        ),
    ];
    check_table("tokenizer file", rows);
}

/// A GGUF metadata entry: key, value type id, encoded value.
type Entry = (String, u32, Vec<u8>);

/// The GGUF encoding of `value` (type id, bytes).
fn encode_value(value: Value<'_>) -> (u32, Vec<u8>) {
    let bytes = match value {
        Value::U8(v) => vec![v],
        Value::I8(v) => v.to_le_bytes().to_vec(),
        Value::U16(v) => v.to_le_bytes().to_vec(),
        Value::I16(v) => v.to_le_bytes().to_vec(),
        Value::U32(v) => v.to_le_bytes().to_vec(),
        Value::I32(v) => v.to_le_bytes().to_vec(),
        Value::F32(v) => v.to_le_bytes().to_vec(),
        Value::Bool(v) => vec![u8::from(v)],
        Value::String(s) => [&(s.len() as u64).to_le_bytes()[..], s].concat(),
        Value::Array(a) => [
            &a.elem_type().id().to_le_bytes()[..],
            &(a.len() as u64).to_le_bytes(),
            a.element_bytes(),
        ]
        .concat(),
        Value::U64(v) => v.to_le_bytes().to_vec(),
        Value::I64(v) => v.to_le_bytes().to_vec(),
        Value::F64(v) => v.to_le_bytes().to_vec(),
    };
    (value.value_type().id(), bytes)
}

/// The metadata of stories260K.gguf (its tokenizer: tok512's vocabulary), as entries.
fn stories_metadata() -> Vec<Entry> {
    let bytes = read_fixture("gguf/stories260K.gguf");
    let file = Gguf::parse(&bytes).unwrap();
    file.metadata_entries()
        .map(|(key, value)| {
            let (ty, encoded) = encode_value(value);
            (key.to_string(), ty, encoded)
        })
        .collect()
}

/// A GGUF file (version 3, no tensors) holding `entries`.
fn metadata_file(entries: &[Entry]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.extend((entries.len() as u64).to_le_bytes());
    for (key, ty, value) in entries {
        out.extend((key.len() as u64).to_le_bytes());
        out.extend(key.as_bytes());
        out.extend(ty.to_le_bytes());
        out.extend(value);
    }
    out
}

/// stories260K.gguf's metadata with `key` removed (`None`) or set to `(type id, value)`.
fn gguf_with(key: &str, value: Option<(u32, Vec<u8>)>) -> Vec<u8> {
    let mut entries = stories_metadata();
    entries.retain(|(k, _, _)| k != key);
    if let Some((ty, bytes)) = value {
        entries.push((key.to_string(), ty, bytes));
    }
    metadata_file(&entries)
}

/// An array value: element type id, count, encoded elements.
fn gguf_array(elem: ValueType, count: usize, elements: &[u8]) -> (u32, Vec<u8>) {
    let header = [&elem.id().to_le_bytes()[..], &(count as u64).to_le_bytes()].concat();
    (ValueType::Array.id(), [&header[..], elements].concat())
}

/// The elements of stories260K.gguf's array `key`.
fn stories_elements(key: &str) -> Vec<u8> {
    let bytes = read_fixture("gguf/stories260K.gguf");
    let file = Gguf::parse(&bytes).unwrap();
    file.metadata(key)
        .unwrap()
        .as_array()
        .unwrap()
        .element_bytes()
        .to_vec()
}

/// Reads the tokenizer of a GGUF file's metadata (index for 512 tokens).
fn gguf_tokenizer(bytes: &[u8]) -> Result<(), Error> {
    let file = Gguf::parse(bytes)?;
    let mut index = vec![0u32; 2 * VOCAB];
    Tokenizer::from_gguf(&file, &mut index).map(|_| ())
}

#[test]
fn malformed_gguf_tokenizers() {
    const MODEL: &str = "tokenizer.ggml.model";
    const TOKENS: &str = "tokenizer.ggml.tokens";
    const SCORES: &str = "tokenizer.ggml.scores";
    const TYPES: &str = "tokenizer.ggml.token_type";
    const BOS: &str = "tokenizer.ggml.bos_token_id";
    const EOS: &str = "tokenizer.ggml.eos_token_id";
    const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";
    let string = |s: &[u8]| {
        (
            ValueType::String.id(),
            [&(s.len() as u64).to_le_bytes()[..], s].concat(),
        )
    };
    let scores = stories_elements(SCORES);
    let types = stories_elements(TYPES);
    let wrong = |key, expected, found| Error::GgufWrongType {
        key,
        expected,
        found,
    };
    let rows: Vec<(&str, Result<(), Error>, Error)> = vec![
        (
            "tokenizer model gpt2 (byte-level BPE)",
            gguf_tokenizer(&gguf_with(MODEL, Some(string(b"gpt2")))),
            Error::GgufTokenizerUnsupported {
                model: GgufName::new("gpt2"),
            },
        ),
        (
            "no tokenizer model",
            gguf_tokenizer(&gguf_with(MODEL, None)),
            Error::GgufTokenizerKeyMissing { key: MODEL },
        ),
        (
            "tokenizer model a u32",
            gguf_tokenizer(&gguf_with(MODEL, Some((4, 1u32.to_le_bytes().to_vec())))),
            wrong(MODEL, ValueType::String, ValueType::U32),
        ),
        (
            "no tokens",
            gguf_tokenizer(&gguf_with(TOKENS, None)),
            Error::GgufTokenizerKeyMissing { key: TOKENS },
        ),
        (
            "tokens a string, not an array",
            gguf_tokenizer(&gguf_with(TOKENS, Some(string(b"<unk>")))),
            wrong(TOKENS, ValueType::Array, ValueType::String),
        ),
        (
            "tokens an array of f32 (the scores' bytes)",
            gguf_tokenizer(&gguf_with(
                TOKENS,
                Some(gguf_array(ValueType::F32, VOCAB, &scores)),
            )),
            Error::GgufTokenizerElementType {
                key: TOKENS,
                expected: ValueType::String,
                found: ValueType::F32,
            },
        ),
        (
            "no scores",
            gguf_tokenizer(&gguf_with(SCORES, None)),
            Error::GgufTokenizerKeyMissing { key: SCORES },
        ),
        (
            "scores an array of i32",
            gguf_tokenizer(&gguf_with(
                SCORES,
                Some(gguf_array(ValueType::I32, VOCAB, &scores)),
            )),
            Error::GgufTokenizerElementType {
                key: SCORES,
                expected: ValueType::F32,
                found: ValueType::I32,
            },
        ),
        (
            "one score short",
            gguf_tokenizer(&gguf_with(
                SCORES,
                Some(gguf_array(ValueType::F32, VOCAB - 1, &scores[4..])),
            )),
            Error::GgufTokenizerLengthMismatch {
                key: SCORES,
                len: VOCAB - 1,
                tokens: VOCAB,
            },
        ),
        (
            "one token type too many",
            gguf_tokenizer(&gguf_with(
                TYPES,
                Some(gguf_array(
                    ValueType::I32,
                    VOCAB + 1,
                    &[&types[..], &[1, 0, 0, 0]].concat(),
                )),
            )),
            Error::GgufTokenizerLengthMismatch {
                key: TYPES,
                len: VOCAB + 1,
                tokens: VOCAB,
            },
        ),
        (
            "token types an array of u8",
            gguf_tokenizer(&gguf_with(
                TYPES,
                Some(gguf_array(ValueType::U8, VOCAB, &[1; VOCAB])),
            )),
            Error::GgufTokenizerElementType {
                key: TYPES,
                expected: ValueType::I32,
                found: ValueType::U8,
            },
        ),
        (
            "BOS id 512, past the vocabulary",
            gguf_tokenizer(&gguf_with(BOS, Some((4, 512u32.to_le_bytes().to_vec())))),
            Error::GgufTokenizerIdOutOfRange {
                key: BOS,
                id: 512,
                vocab_size: VOCAB,
            },
        ),
        (
            "EOS id -1 (an i32)",
            gguf_tokenizer(&gguf_with(EOS, Some((5, (-1i32).to_le_bytes().to_vec())))),
            Error::GgufTokenizerIdOutOfRange {
                key: EOS,
                id: -1,
                vocab_size: VOCAB,
            },
        ),
        (
            "EOS id u64::MAX",
            gguf_tokenizer(&gguf_with(EOS, Some((10, u64::MAX.to_le_bytes().to_vec())))),
            Error::GgufTokenizerIdOutOfRange {
                key: EOS,
                id: u64::MAX.into(),
                vocab_size: VOCAB,
            },
        ),
        (
            "BOS id a string",
            gguf_tokenizer(&gguf_with(BOS, Some(string(b"1")))),
            wrong(BOS, ValueType::U32, ValueType::String),
        ),
        (
            "add_bos_token a u8",
            gguf_tokenizer(&gguf_with(ADD_BOS, Some((0, vec![1])))),
            wrong(ADD_BOS, ValueType::Bool, ValueType::U8),
        ),
        (
            "index buffer one short",
            {
                let bytes = gguf_with(ADD_BOS, None);
                let file = Gguf::parse(&bytes).unwrap();
                let mut index = vec![0u32; 2 * VOCAB - 1];
                Tokenizer::from_gguf(&file, &mut index).map(|_| ())
            },
            Error::BufferTooSmall {
                buffer: Buffer::TokenizerIndex,
                needed: 2 * VOCAB,
                actual: 2 * VOCAB - 1,
            },
        ),
        (
            "byte token <0xF0> renamed <0xf0>: encoding 🦙 (F0 9F A6 99) misses it",
            {
                let mut tokens = stories_elements(TOKENS);
                let at = tokens.windows(6).position(|w| w == b"<0xF0>").unwrap();
                tokens[at + 4] = b'f';
                let bytes = gguf_with(TOKENS, Some(gguf_array(ValueType::String, VOCAB, &tokens)));
                let file = Gguf::parse(&bytes).unwrap();
                let mut index = vec![0u32; 2 * VOCAB];
                let t = Tokenizer::from_gguf(&file, &mut index).unwrap();
                let mut out = vec![0; prompt_buffer_len(4).unwrap()];
                t.encode("🦙".as_bytes(), true, false, &mut out).map(|_| ())
            },
            Error::NoByteToken { byte: 0xF0 },
        ),
    ];
    // The rows are the fixture's metadata with one change: unchanged, it reads.
    assert_eq!(gguf_tokenizer(&metadata_file(&stories_metadata())), Ok(()));
    check_table("GGUF tokenizer", rows);
}

/// Settings and ids from the caller: temperature, top-p, context, tokens, positions.
#[test]
fn bad_settings_and_ids() {
    let model_bytes = AlignedBytes::new(&v0());
    let model = Model::from_bytes(model_bytes.bytes()).unwrap();
    let c = model.config;
    let tok = tok512();
    let mut index = vec![0u32; 2 * VOCAB];
    let tokenizer = Tokenizer::new(&tok, VOCAB, &mut index).unwrap();
    let sampler_with = |strategy: Strategy| {
        let mut scratch = vec![ProbIndex::default(); VOCAB];
        Sampler::new(strategy, 1, VOCAB, &mut scratch).map(|_| ())
    };
    let mut state_buffer = vec![0f32; State::len_for(&c, 4).unwrap()];
    let mut state = State::new(&c, 4, &mut state_buffer).unwrap();
    let mut batch_buffer = vec![0f32; Batch::len_for(&c, 4).unwrap()];
    let mut batch = Batch::new(&c, 4, &mut batch_buffer).unwrap();
    let mut batch2_buffer = vec![0f32; Batch::len_for(&c, 2).unwrap()];
    let mut batch2 = Batch::new(&c, 2, &mut batch2_buffer).unwrap();
    let other_bytes = AlignedBytes::new(&fixture_model("synth_mqa_unshared.bin"));
    let other = Model::from_bytes(other_bytes.bytes()).unwrap();

    let rows: Vec<(&str, Result<(), Error>, Error)> = vec![
        (
            "temperature NaN",
            Strategy::new(f32::NAN, 0.9).map(|_| ()),
            Error::InvalidTemperature(f32::NAN),
        ),
        (
            "temperature -1",
            Strategy::new(-1.0, 0.9).map(|_| ()),
            Error::InvalidTemperature(-1.0),
        ),
        (
            "temperature -inf",
            Strategy::new(f32::NEG_INFINITY, 0.9).map(|_| ()),
            Error::InvalidTemperature(f32::NEG_INFINITY),
        ),
        (
            "top-p -0.1",
            Strategy::new(1.0, -0.1).map(|_| ()),
            Error::InvalidTopP(-0.1),
        ),
        (
            "top-p 1.5",
            Strategy::new(1.0, 1.5).map(|_| ()),
            Error::InvalidTopP(1.5),
        ),
        (
            "top-p NaN",
            Strategy::new(1.0, f32::NAN).map(|_| ()),
            Error::InvalidTopP(f32::NAN),
        ),
        (
            "top-p +inf",
            Strategy::new(1.0, f32::INFINITY).map(|_| ()),
            Error::InvalidTopP(f32::INFINITY),
        ),
        (
            "hand-built multinomial with temperature 0",
            sampler_with(Strategy::Multinomial { temperature: 0.0 }),
            Error::InvalidTemperature(0.0),
        ),
        (
            "hand-built top-p with temperature NaN",
            sampler_with(Strategy::TopP {
                temperature: f32::NAN,
                top_p: 0.9,
            }),
            Error::InvalidTemperature(f32::NAN),
        ),
        (
            "hand-built top-p with top-p 2",
            sampler_with(Strategy::TopP {
                temperature: 1.0,
                top_p: 2.0,
            }),
            Error::InvalidTopP(2.0),
        ),
        (
            "top-p sampler without its scratch",
            Sampler::new(Strategy::new(1.0, 0.9).unwrap(), 1, VOCAB, &mut []).map(|_| ()),
            Error::BufferTooSmall {
                buffer: Buffer::Sampler,
                needed: VOCAB,
                actual: 0,
            },
        ),
        (
            "context 0",
            State::new(&c, 0, &mut [0.0; 8]).map(|_| ()),
            Error::InvalidContext {
                requested: 0,
                seq_len: 512,
            },
        ),
        (
            "context above seq_len",
            State::new(&c, 513, &mut [0.0; 8]).map(|_| ()),
            Error::InvalidContext {
                requested: 513,
                seq_len: 512,
            },
        ),
        (
            "state buffer too small",
            State::new(&c, 4, &mut [0.0; 8]).map(|_| ()),
            Error::BufferTooSmall {
                buffer: Buffer::State,
                needed: State::len_for(&c, 4).unwrap(),
                actual: 8,
            },
        ),
        (
            "Model::forward token = vocab_size",
            model.forward(&mut state, 512, 0, &Serial).map(|_| ()),
            Error::TokenOutOfRange {
                token: 512,
                vocab_size: VOCAB,
            },
        ),
        (
            "Model::forward token u32::MAX",
            model.forward(&mut state, u32::MAX, 0, &Serial).map(|_| ()),
            Error::TokenOutOfRange {
                token: u32::MAX,
                vocab_size: VOCAB,
            },
        ),
        (
            "Model::forward position = context",
            model.forward(&mut state, 1, 4, &Serial).map(|_| ()),
            Error::PositionOutOfRange { pos: 4, context: 4 },
        ),
        (
            "Model::forward position usize::MAX",
            model
                .forward(&mut state, 1, usize::MAX, &Serial)
                .map(|_| ()),
            Error::PositionOutOfRange {
                pos: usize::MAX,
                context: 4,
            },
        ),
        (
            "Model::forward_batch with an id out of range",
            model
                .forward_batch(&mut state, &mut batch, &[1, 5, 600], 0, &Serial)
                .map(|_| ()),
            Error::TokenOutOfRange {
                token: 600,
                vocab_size: VOCAB,
            },
        ),
        (
            "Model::forward_batch past the context",
            model
                .forward_batch(&mut state, &mut batch, &[1, 5, 6], 2, &Serial)
                .map(|_| ()),
            Error::PositionOutOfRange { pos: 4, context: 4 },
        ),
        (
            "Model::forward_batch with more tokens than the batch holds",
            model
                .forward_batch(&mut state, &mut batch2, &[1; 3], 0, &Serial)
                .map(|_| ()),
            Error::BufferTooSmall {
                buffer: Buffer::Batch,
                needed: 3,
                actual: 2,
            },
        ),
        (
            "Model::forward with another model's state",
            other.forward(&mut state, 1, 0, &Serial).map(|_| ()),
            Error::StateMismatch,
        ),
        (
            "Tokenizer::decode id = vocab_size",
            tokenizer.decode(1, 512).map(|_| ()),
            Error::TokenOutOfRange {
                token: 512,
                vocab_size: VOCAB,
            },
        ),
        (
            "Tokenizer::decode id u32::MAX",
            tokenizer.decode(1, u32::MAX).map(|_| ()),
            Error::TokenOutOfRange {
                token: u32::MAX,
                vocab_size: VOCAB,
            },
        ),
        (
            "Tokenizer::encode into a short buffer",
            tokenizer
                .encode(b"Once upon a time", true, false, &mut [0; 2])
                .map(|_| ()),
            Error::BufferTooSmall {
                buffer: Buffer::Tokens,
                needed: prompt_buffer_len(16).unwrap(),
                actual: 2,
            },
        ),
        (
            // The tokens and the merge's scratch: one element short is refused.
            "Tokenizer::encode into a buffer one short of prompt_buffer_len",
            tokenizer
                .encode(b"Once upon a time", true, false, &mut [0; 7 * 16 + 14])
                .map(|_| ()),
            Error::BufferTooSmall {
                buffer: Buffer::Tokens,
                needed: 7 * 16 + 15,
                actual: 7 * 16 + 14,
            },
        ),
        (
            "Tokenizer::encode with BOS for a one-token vocabulary",
            {
                let one = [1u32.to_le_bytes(), 0f32.to_le_bytes(), 1i32.to_le_bytes()].concat();
                let file = [one.as_slice(), b"a"].concat();
                let mut index = [0u32; 2];
                let t = Tokenizer::new(&file, 1, &mut index).unwrap();
                t.encode(b"a", true, false, &mut [0; 4]).map(|_| ())
            },
            Error::TokenOutOfRange {
                token: 1,
                vocab_size: 1,
            },
        ),
    ];
    check_table("setting", rows);
}

/// Runs a greedy generation of stories260K with `tokenizer_bytes` parsed for
/// `tokenizer_vocab` tokens and a state of `context` positions.
fn generate(
    model_bytes: &[u8],
    tokenizer_bytes: &[u8],
    tokenizer_vocab: usize,
    context: usize,
    strategy: Strategy,
    prompt: &[u8],
) -> Result<llama2_core::Summary, Error> {
    let generated = generate_text(
        model_bytes,
        tokenizer_bytes,
        tokenizer_vocab,
        context,
        strategy,
        prompt,
    );
    generated.map(|(summary, _)| summary)
}

/// [`generate`], also giving the printed text.
fn generate_text(
    model_bytes: &[u8],
    tokenizer_bytes: &[u8],
    tokenizer_vocab: usize,
    context: usize,
    strategy: Strategy,
    prompt: &[u8],
) -> Result<(llama2_core::Summary, Vec<u8>), Error> {
    let aligned = AlignedBytes::new(model_bytes);
    let model = Model::from_bytes(aligned.bytes())?;
    let c = model.config;
    let mut index = vec![0u32; 2 * tokenizer_vocab];
    let tokenizer = Tokenizer::new(tokenizer_bytes, tokenizer_vocab, &mut index)?;
    let mut buffer = vec![0f32; State::len_for(&c, context).unwrap()];
    let mut state = State::new(&c, context, &mut buffer)?;
    let mut scratch = vec![ProbIndex::default(); c.vocab_size];
    let mut sampler = Sampler::new(strategy, 7, c.vocab_size, &mut scratch)?;
    let mut generator = Generator {
        model: &model,
        tokenizer: &tokenizer,
        state: &mut state,
        sampler: &mut sampler,
        parallel: &Serial,
    };
    let mut prompt_buf = vec![0u32; prompt_buffer_len(prompt.len()).unwrap()];
    let mut out = Vec::new();
    let summary = generator
        .generate(prompt, 0, &mut prompt_buf, &mut out, |_| {})
        .map_err(|e| match e {
            llama2_core::GenerateError::Engine(e) => e,
            llama2_core::GenerateError::Write(e) => panic!("writing to a Vec failed: {e:?}"),
        })?;
    Ok((summary, out))
}

#[test]
fn generation_checks_vocabulary_and_prompt_length() {
    let prompt = b"Once upon a time, there was a little girl named Lily.";
    let mut index = vec![0u32; 2 * VOCAB];
    let tok = tok512();
    let t = Tokenizer::new(&tok, VOCAB, &mut index).unwrap();
    let mut tokens = vec![0u32; prompt_buffer_len(prompt.len()).unwrap()];
    let n = t.encode(prompt, true, false, &mut tokens).unwrap();
    // More than the context of 8 below.
    assert!(n > 8);
    let rows: Vec<(&str, Result<(), Error>, Error)> = vec![
        (
            "tokenizer of 511 entries for a 512-token model",
            generate(&v0(), &tok511(), 511, 16, Strategy::Argmax, b"hi").map(|_| ()),
            Error::VocabularyMismatch {
                model: 512,
                tokenizer: 511,
            },
        ),
        (
            "prompt longer than the context",
            generate(&v0(), &tok512(), VOCAB, 10, Strategy::Argmax, prompt).map(|_| ()),
            Error::PromptTooLong {
                tokens: n,
                context: 10,
            },
        ),
        (
            // Far too long: still the real count, not an estimate.
            "prompt of twice the context",
            generate(&v0(), &tok512(), VOCAB, 8, Strategy::Argmax, prompt).map(|_| ()),
            Error::PromptTooLong {
                tokens: n,
                context: 8,
            },
        ),
        (
            // A header can claim longer tokens than the file holds: it changes nothing, the
            // prompt is encoded and its real count reported.
            "prompt that cannot fit, tokenizer whose max_token_length lies (2^31 - 1)",
            generate(
                &v0(),
                &lying_max_token_length(),
                VOCAB,
                8,
                Strategy::Argmax,
                prompt,
            )
            .map(|_| ()),
            Error::PromptTooLong {
                tokens: n,
                context: 8,
            },
        ),
        (
            // 64 KiB of one letter: encoded (quickly) and refused with the real count,
            // BOS, " a" (the dummy space merged with the first letter), then one token per
            // letter (tok512 has no "aa").
            "64 KiB prompt, tokenizer whose max_token_length lies",
            generate(
                &v0(),
                &lying_max_token_length(),
                VOCAB,
                512,
                Strategy::Argmax,
                &[b'a'; 65536],
            )
            .map(|_| ()),
            Error::PromptTooLong {
                tokens: 1 + 1 + 65535,
                context: 512,
            },
        ),
    ];
    check_table("generation", rows);
    let lying = lying_max_token_length();
    let mut index = vec![0u32; 2 * VOCAB];
    let t = Tokenizer::new(&lying, VOCAB, &mut index).unwrap();
    assert_eq!(
        (t.max_token_length(), t.max_piece_len()),
        (i32::MAX as usize, 7)
    );
    // The same prompt fits a context one token longer than it.
    let summary = generate(&v0(), &tok512(), VOCAB, n, Strategy::Argmax, prompt).unwrap();
    assert_eq!(summary.prompt_tokens, n);
}

/// tok512.bin with a header claiming tokens of up to `i32::MAX` bytes (its longest is 7).
fn lying_max_token_length() -> Vec<u8> {
    set_i32(tok512(), 0, i32::MAX)
}

/// Non-finite weights are accepted (checking them would cost a full read of the file at
/// load time); they make NaN logits, and every sampler still returns a token in range:
/// argmax and top-p (with no candidate) take token 0, multinomial the last token.
#[test]
fn non_finite_weights_never_crash() {
    let nan = f32::NAN.to_le_bytes();
    // v1: rms_final follows rms_att and rms_ffn (2 * 5 * 64 floats after the header).
    let mut nan_norm = v1();
    let rms_final = 256 + 4 * 2 * 5 * DIM;
    for at in (rms_final..rms_final + 4 * DIM).step_by(4) {
        nan_norm[at..at + 4].copy_from_slice(&nan);
    }
    // v0: token 1's embedding row is +inf (RMSNorm turns it into NaN).
    let mut inf_embedding = v0();
    let row = 28 + 4 * DIM;
    for at in (row..row + 4 * DIM).step_by(4) {
        inf_embedding[at..at + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    }
    // v2: every scale of the shared embedding/classifier is NaN.
    let mut nan_scales = v2();
    let scales = 256 + 4 * (2 * 5 + 1) * DIM + VOCAB * DIM;
    for at in (scales..scales + VOCAB * DIM).step_by(4) {
        nan_scales[at..at + 4].copy_from_slice(&nan);
    }
    for (name, file) in [
        ("NaN rms_final (v1)", &nan_norm),
        ("+inf embedding of BOS (v0)", &inf_embedding),
        ("NaN Q8 scales (v2)", &nan_scales),
    ] {
        let aligned = AlignedBytes::new(file);
        let model = Model::from_bytes(aligned.bytes()).unwrap();
        let c = model.config;
        let mut buffer = vec![0f32; State::len_for(&c, 4).unwrap()];
        let mut state = State::new(&c, 4, &mut buffer).unwrap();
        let logits = model.forward(&mut state, 1, 0, &Serial).unwrap().to_vec();
        assert!(logits.iter().all(|v| v.is_nan()), "{name}: logits not NaN");
        let mut scratch = vec![ProbIndex::default(); VOCAB];
        for (strategy, expected) in [
            (Strategy::Argmax, 0),
            (Strategy::new(1.0, 1.0).unwrap(), VOCAB as u32 - 1),
            (Strategy::new(1.0, 0.9).unwrap(), 0),
        ] {
            let mut sampler = Sampler::new(strategy, 42, VOCAB, &mut scratch).unwrap();
            assert_eq!(
                sampler.sample(&mut logits.clone()),
                Ok(expected),
                "{name}, {strategy:?}"
            );
        }
        // A whole generation runs to its end.
        for strategy in [Strategy::Argmax, Strategy::new(0.8, 0.9).unwrap()] {
            let summary = generate(file, &tok512(), VOCAB, 12, strategy, b"Hi").unwrap();
            assert_eq!(summary.steps, 12, "{name}, {strategy:?}");
        }
    }
}

/// Temperatures so small that `logit / temperature` overflows f32 sample greedily, for
/// multinomial and top-p alike (llama2.c samples from NaN there; this printed `<unk>`).
#[test]
fn overflowing_temperatures_generate_greedily() {
    let prompt = b"Once upon a time";
    let greedy = generate_text(&v0(), &tok512(), VOCAB, 64, Strategy::Argmax, prompt).unwrap();
    assert!(greedy.1.starts_with(b"Once upon a time"), "{:?}", greedy.1);
    for temperature in [1e-38, 1e-45] {
        for top_p in [1.0, 0.9] {
            let strategy = Strategy::new(temperature, top_p).unwrap();
            let sampled = generate_text(&v0(), &tok512(), VOCAB, 64, strategy, prompt).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&sampled.1),
                String::from_utf8_lossy(&greedy.1),
                "{strategy:?}"
            );
            assert_eq!(sampled.0, greedy.0, "{strategy:?}");
        }
    }
}

/// tok512.bin with the piece of `token` replaced by `piece` (its score kept), and the
/// header's `max_token_length` raised if the piece needs it.
fn tok512_with_piece(token: usize, piece: &[u8]) -> Vec<u8> {
    let file = tok512();
    let max_len = i32::from_le_bytes(file[..4].try_into().unwrap());
    let mut out = max_len.max(piece.len() as i32).to_le_bytes().to_vec();
    let mut at = 4;
    for id in 0..VOCAB {
        let len = i32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        let old = &file[at + 8..at + 8 + len];
        let new = if id == token { piece } else { old };
        out.extend_from_slice(&file[at..at + 4]); // score
        out.extend_from_slice(&(new.len() as i32).to_le_bytes());
        out.extend_from_slice(new);
        at += 8 + len;
    }
    assert_eq!(at, file.len());
    out
}

/// A vocabulary whose pieces hold terminal escape sequences and other control characters
/// (C0, DEL, C1 in UTF-8) prints them as if those characters were not there: the same
/// text as a vocabulary with the harmless rest of the piece.
#[test]
fn control_characters_in_vocabulary_pieces_never_reach_the_output() {
    let cases: Vec<GenerateCase> = read_jsonl("generate.jsonl");
    let story = cases
        .iter()
        .find(|case| case.name == "260k-greedy-noprompt")
        .unwrap();
    // A token the greedy story chooses early (tokens[0] is BOS).
    let token = story.tokens[3] as usize;
    let hostile = b"\x1b[2J\x07\xC2\x9B31m\x7f\x1b]0;pwned\x07";
    let harmless = b"[2J31m]0;pwned";
    let run = |tokenizer: &[u8]| {
        generate_text(&v0(), tokenizer, VOCAB, 64, Strategy::Argmax, b"")
            .unwrap()
            .1
    };
    let printed = run(&tok512_with_piece(token, hostile));
    let expected = run(&tok512_with_piece(token, harmless));
    assert!(
        printed.windows(harmless.len()).any(|w| w == harmless),
        "the replaced piece was not generated: {}",
        String::from_utf8_lossy(&printed)
    );
    assert_eq!(
        String::from_utf8_lossy(&printed),
        String::from_utf8_lossy(&expected)
    );
    let text = String::from_utf8(printed).unwrap();
    assert!(
        !text.chars().any(|c| c.is_control() && !c.is_whitespace()),
        "{text:?}"
    );
}
