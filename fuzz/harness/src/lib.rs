//! The bodies of the fuzz targets. The libFuzzer binaries in `fuzz/fuzz_targets` call them,
//! and `tests/tests/fuzz_regressions.rs` replays the kept corpus through them on stable, so
//! an input that once failed keeps being checked by a plain `cargo test`.
//!
//! Every body must return normally on every input: the engine reports bad input as an
//! `Err`, and the bodies assert the properties that must hold whatever the bytes (views in
//! range, tokens inside the vocabulary, batched and token-by-token passes agreeing). A
//! panic, an out-of-bounds access or an `Err` that should not happen is a finding.

use std::sync::OnceLock;

use llama2_core::gguf::write::{GgufWriter, MetaArray, MetaValue, TensorSpec};
use llama2_core::gguf::{GgmlType, Gguf, Value, ValueType, MAX_DIMS};
use llama2_core::{
    prompt_buffer_len, AlignedBytes, Batch, Buffer, Config, Error, Format, Header, Kernels,
    LayerWeights, Matrix, Model, Piece, ProbIndex, Q8Matrix, Sampler, Serial, State, Strategy,
    TextDecoder, Tokenizer,
};

// ---------------------------------------------------------------------------------------
// model_parse
// ---------------------------------------------------------------------------------------

/// Parses arbitrary bytes as a model file. A file that parses must describe views of
/// exactly the sizes its config says; a small one is also run for a step.
pub fn model_parse(data: &[u8]) {
    let file = AlignedBytes::new(data);
    if data.len() >= 8 {
        // The same bytes one byte off their alignment are refused before anything is read.
        let mut shifted = vec![0u32; data.len().div_ceil(4) + 1];
        let shifted_bytes = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut shifted)[1..];
        shifted_bytes[..data.len()].copy_from_slice(data);
        assert_eq!(
            Model::from_bytes(&shifted_bytes[..data.len()]).unwrap_err(),
            Error::Misaligned
        );
    }
    let Ok(model) = Model::from_bytes(file.bytes()) else {
        return;
    };
    check_views(&model);
    let c = model.config;
    // One forward step and a sample on models small enough to run quickly.
    let small = c.parameter_count().is_some_and(|n| n <= 1 << 16)
        && c.vocab_size <= 1 << 12
        && c.dim <= 256
        && c.hidden_dim <= 256;
    if !small {
        return;
    }
    let context = c.seq_len.min(2);
    let Some(len) = State::len_for(&c, context) else {
        return;
    };
    let mut buffer = vec![0f32; len];
    let mut state = State::new(&c, context, &mut buffer).expect("sized by len_for");
    state.set_kernels(Kernels::scalar());
    let token = (c.vocab_size - 1) as u32;
    let logits = model
        .forward(&mut state, token, 0, &Serial)
        .expect("valid token and position");
    assert_eq!(logits.len(), c.vocab_size);
    let mut sampler = Sampler::new(Strategy::Argmax, 1, c.vocab_size, &mut []).unwrap();
    assert!((sampler.sample(logits).unwrap() as usize) < c.vocab_size);
}

/// Every view of a parsed model has the shape its config describes.
fn check_views(model: &Model<'_>) {
    let c = model.config;
    let w = model.weights;
    let check = |m: Matrix<'_>, rows: usize, cols: usize| {
        assert_eq!((m.rows(), m.cols()), (rows, cols));
        if let Matrix::Q8(Q8Matrix {
            values,
            scales,
            group,
            cols,
        }) = m
        {
            assert!(group > 0 && cols % group == 0);
            assert_eq!(values.len(), rows * cols);
            assert_eq!(scales.len(), 4 * rows * (cols / group));
        }
        if let Matrix::Ggml(g) = m {
            let block = g.ty.block().expect("weight types have a block size");
            assert!(block.elements > 0 && cols.is_multiple_of(block.elements));
            assert_eq!(g.data.len(), rows * (cols / block.elements) * block.bytes);
        }
    };
    check(w.token_embedding, c.vocab_size, c.dim);
    check(w.classifier, c.vocab_size, c.dim);
    assert_eq!(w.rms_final.len(), c.dim);
    for l in 0..c.n_layers {
        let layer = w.layer(&c, l);
        assert_eq!(layer.rms_att.len(), c.dim);
        assert_eq!(layer.rms_ffn.len(), c.dim);
        let shapes = [
            (c.dim, c.dim),
            (c.kv_dim(), c.dim),
            (c.kv_dim(), c.dim),
            (c.dim, c.dim),
            (c.hidden_dim, c.dim),
            (c.dim, c.hidden_dim),
            (c.hidden_dim, c.dim),
        ];
        for ((_, matrix), (rows, cols)) in layer.named_matrices().into_iter().zip(shapes) {
            check(matrix, rows, cols);
        }
    }
    let _ = w.bytes_per_token(&c);
}

// ---------------------------------------------------------------------------------------
// tokenizer_parse
// ---------------------------------------------------------------------------------------

/// The first two bytes are a vocabulary size (below 1024), the rest a tokenizer file. A file
/// that parses must give every token back by id, by lookup and by decode.
pub fn tokenizer_parse(data: &[u8]) {
    let [lo, hi, bytes @ ..] = data else {
        return;
    };
    let vocab = usize::from(u16::from_le_bytes([*lo, *hi])) % 1024;
    let mut index = vec![0u32; Tokenizer::index_len(vocab).unwrap()];
    let Ok(t) = Tokenizer::new(bytes, vocab, &mut index) else {
        return;
    };
    assert_eq!(t.vocab_size(), vocab);
    for id in 0..vocab as u32 {
        let piece = t.piece(id).expect("in range");
        assert!(piece.len() <= t.max_piece_len());
        let found = t.lookup(piece, b"").expect("every piece can be looked up");
        assert!(found <= id, "the lowest id of equal pieces is found");
        assert_eq!(t.piece(found), Some(piece));
        if let Some((head, tail)) = piece.split_first() {
            assert_eq!(
                t.lookup(&[*head], tail).map(|f| t.piece(f)),
                Some(Some(piece))
            );
        }
        t.decode(1, id).expect("in range");
        t.decode(id, id).expect("in range");
    }
    assert!(t.max_piece_len() <= t.max_token_length());
    assert_eq!(t.piece(vocab as u32), None);
    assert_eq!(
        t.decode(0, vocab as u32),
        Err(Error::TokenOutOfRange {
            token: vocab as u32,
            vocab_size: vocab
        })
    );
    // Encode a little of the file's own bytes with the parsed vocabulary.
    let text = &bytes[..bytes.len().min(48)];
    check_encode(&t, text, true, true, false);
}

// ---------------------------------------------------------------------------------------
// encode
// ---------------------------------------------------------------------------------------

/// The tokenizers the `encode` target chooses from, parsed once (their bytes and index live
/// for the rest of the process).
struct Tokenizers {
    /// The real 512-token tokenizer of stories260K.
    tok512: Tokenizer<'static>,
    /// The 32000-token Llama 2 tokenizer.
    llama: Tokenizer<'static>,
    /// A small vocabulary without the byte tokens (byte fallback fails).
    small: Tokenizer<'static>,
}

/// The fixture directory: `$LLAMA2_FIXTURES`, else `../shared/fixtures` beside the
/// repository.
pub fn fixtures_dir() -> std::path::PathBuf {
    match std::env::var_os("LLAMA2_FIXTURES") {
        Some(dir) => dir.into(),
        None => concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/fixtures").into(),
    }
}

fn tokenizers() -> &'static Tokenizers {
    static TOKENIZERS: OnceLock<Tokenizers> = OnceLock::new();
    TOKENIZERS.get_or_init(|| {
        let read = |name: &str| {
            let path = fixtures_dir().join("models").join(name);
            std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "the encode target needs {} (set LLAMA2_FIXTURES): {e}",
                    path.display()
                )
            })
        };
        let parse = |file: Vec<u8>, vocab: usize| {
            let file: &'static [u8] = Box::leak(file.into_boxed_slice());
            let index: &'static mut [u32] = Box::leak(vec![0u32; 2 * vocab].into_boxed_slice());
            Tokenizer::new(file, vocab, index).expect("fixture tokenizers parse")
        };
        let small_pieces: [&[u8]; 8] = [b"<unk>", b"<s>", b"</s>", b" ", b"a", b"b", b"ab", b" ab"];
        let small = tokenizer_file(5, &small_pieces.map(|p| (p.len() as f32, p)));
        Tokenizers {
            tok512: parse(read("tok512.bin"), 512),
            llama: parse(read("tokenizer.bin"), 32000),
            small: parse(small, small_pieces.len()),
        }
    })
}

/// A tokenizer file: `max_token_length`, then `(score, bytes)` entries.
pub fn tokenizer_file(max_token_length: u32, entries: &[(f32, &[u8])]) -> Vec<u8> {
    let mut out = max_token_length.to_le_bytes().to_vec();
    for (score, piece) in entries {
        out.extend_from_slice(&score.to_le_bytes());
        out.extend_from_slice(&(piece.len() as i32).to_le_bytes());
        out.extend_from_slice(piece);
    }
    out
}

/// The longest text the `encode` target encodes: the oracle it compares with is quadratic
/// in the text length (as llama2.c is), and longer texts find nothing new.
pub const MAX_TEXT: usize = 1024;

/// The first byte chooses the tokenizer (bits 0-1), BOS (bit 2), EOS (bit 3) and a
/// too-short output buffer (bit 4); the rest is the text.
pub fn encode(data: &[u8]) {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    let text = &text[..text.len().min(MAX_TEXT)];
    let all = tokenizers();
    let t = match flags & 3 {
        0 | 3 => &all.tok512,
        1 => &all.llama,
        _ => &all.small,
    };
    check_encode(t, text, flags & 4 != 0, flags & 8 != 0, flags & 16 != 0);
}

/// Encodes `text` and checks the tokens: the same as [`encode_quadratic`] gives, in the
/// vocabulary, and (for a tokenizer with a space token) decoding back to exactly `text`.
fn check_encode(t: &Tokenizer<'_>, text: &[u8], bos: bool, eos: bool, short: bool) {
    let len = if short {
        text.len() / 2
    } else {
        prompt_buffer_len(text.len()).expect("short texts")
    };
    let mut out = vec![0u32; len];
    let n = match t.encode(text, bos, eos, &mut out) {
        Ok(n) => n,
        Err(Error::BufferTooSmall { .. }) if short => return,
        // Byte fallback needs the 256 byte tokens; BOS and EOS need ids 1 and 2.
        Err(Error::VocabularyTooSmall { .. }) if t.vocab_size() < 259 => return,
        Err(Error::TokenOutOfRange { token, .. }) if (token as usize) >= t.vocab_size() => {
            assert!(token == 1 || token == 2);
            return;
        }
        Err(e) => panic!("encoding {text:?} failed: {e}"),
    };
    assert!(n <= text.len() + 3);
    let tokens = &out[..n];
    assert_eq!(
        Some(tokens),
        encode_quadratic(t, text, bos, eos).as_deref(),
        "the heap merge and llama2.c's loop differ on {text:?}"
    );
    for &token in tokens {
        assert!(
            (token as usize) < t.vocab_size(),
            "token {token} out of range"
        );
    }
    // BOS takes part in the merges, as in llama2.c, so a vocabulary with a token spelling
    // BOS's piece followed by more may absorb it; EOS is appended after the merges.
    let bos_kept = bos && tokens.first() == Some(&1);
    if eos {
        assert_eq!(tokens.last(), Some(&2));
    }
    // Decoding gives the text back: the dummy-prefix space is dropped after BOS, and byte
    // tokens are raw bytes. (Text spelling a byte token, `<0xHH>`, may merge into it.)
    let has_space = t.lookup(b" ", b"").is_some();
    let body = &tokens[usize::from(bos_kept)..n - usize::from(eos)];
    if has_space
        && bos == bos_kept
        && !text.windows(3).any(|w| w == b"<0x")
        && t.vocab_size() >= 259
    {
        let mut decoded = Vec::new();
        let mut prev = 1; // BOS: strips the dummy prefix's space
        for &token in body {
            match t.decode(prev, token).unwrap() {
                Piece::Text(bytes) => decoded.extend_from_slice(bytes),
                Piece::Byte(b) => decoded.push(b),
                Piece::Spelled(text) => decoded.extend(text.bytes()),
            }
            prev = token;
        }
        assert_eq!(decoded, text, "tokens {tokens:?}");
    }
    // The text rule takes any sequence of pieces; what it prints of byte tokens is UTF-8.
    let mut decoder = TextDecoder::new();
    let mut prev = 1;
    for &token in body {
        let piece = t.decode(prev, token).unwrap();
        decoder.push(piece, |bytes| {
            if let Piece::Byte(_) = piece {
                assert!(std::str::from_utf8(bytes).is_ok(), "{bytes:?}");
            }
        });
        prev = token;
    }
    decoder.finish();
}

/// llama2.c's encoder with its quadratic merge loop (rescan every pair, merge the best),
/// written from the public API: the oracle for `Tokenizer::encode`'s heap merge. `None`
/// where a byte token is missing from the vocabulary.
pub fn encode_quadratic(t: &Tokenizer<'_>, text: &[u8], bos: bool, eos: bool) -> Option<Vec<u32>> {
    let mut tokens = Vec::new();
    if bos {
        tokens.push(1);
    }
    if !text.is_empty() {
        tokens.extend(t.lookup(b" ", b""));
    }
    // One symbol per UTF-8 character (a start byte and up to 3 continuation bytes, a stray
    // continuation byte starting its own), or one byte token per byte if it is unknown.
    let continues = |b: u8| b & 0xC0 == 0x80;
    let mut start = 0;
    while start < text.len() {
        let mut end = start + 1;
        while end < text.len() && end - start < 4 && continues(text[end]) {
            end += 1;
        }
        let char_bytes = &text[start..end];
        match t.lookup(char_bytes, b"") {
            Some(id) => tokens.push(id),
            None => {
                for &b in char_bytes {
                    let id = u32::from(b) + 3;
                    if id as usize >= t.vocab_size() {
                        return None;
                    }
                    tokens.push(id);
                }
            }
        }
        start = end;
    }
    loop {
        let mut best: Option<(f32, u32, usize)> = None;
        for (i, pair) in tokens.windows(2).enumerate() {
            let merged = t.lookup(t.piece(pair[0])?, t.piece(pair[1])?);
            if let Some(id) = merged {
                let score = t.score(id)?;
                if score > best.map_or(-1e10, |(s, _, _)| s) {
                    best = Some((score, id, i));
                }
            }
        }
        let Some((_, id, i)) = best else { break };
        tokens[i] = id;
        tokens.remove(i + 1);
    }
    if eos {
        tokens.push(2);
    }
    Some(tokens)
}

// ---------------------------------------------------------------------------------------
// gguf_parse
// ---------------------------------------------------------------------------------------

/// Parses arbitrary bytes as a GGUF file. A file that parses must give back, by iteration
/// and by lookup, exactly what its header declares: every key once and found again, every
/// array element decodable by index and by iterator, every tensor found by name with a view
/// of exactly its size, aligned, inside the input and sharing no byte with another.
pub fn gguf_parse(data: &[u8]) {
    let file = match Gguf::parse(data) {
        Ok(file) => file,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(file.version() == 2 || file.version() == 3);
    assert!(file.alignment().is_power_of_two());
    assert_eq!(file.data_offset() % file.alignment(), 0);

    let entries: Vec<_> = file.metadata_entries().collect();
    assert_eq!(entries.len(), file.metadata_len());
    for (i, &(key, value)) in entries.iter().enumerate() {
        let found = file.metadata(key).expect("every key is found");
        assert!(
            same_value(found, value),
            "keys are unique: {found:?} vs {value:?}"
        );
        assert!(entries[..i].iter().all(|&(k, _)| k != key));
        if let Value::Array(array) = value {
            check_array(array);
        }
        // The typed accessors agree with the variant.
        assert_eq!(
            value.as_str().is_some(),
            value
                .as_bytes()
                .is_some_and(|b| std::str::from_utf8(b).is_ok())
        );
        if let Some(v) = value.as_u32() {
            assert_eq!(value.as_u64(), Some(u64::from(v)));
        }
    }

    check_gguf_tokenizer(&file, data);

    let tensors: Vec<_> = file.tensors().collect();
    assert_eq!(tensors.len(), file.tensor_count());
    let base = data.as_ptr() as usize;
    for (i, t) in tensors.iter().enumerate() {
        assert_eq!(file.tensor(t.name), Some(*t), "names are unique");
        assert!(t.dims().len() <= MAX_DIMS);
        assert_eq!(t.element_count(), t.dims().iter().product::<usize>());
        let block = t
            .ggml_type
            .block()
            .expect("parsed tensors have a block size");
        assert_eq!(t.dims().first().copied().unwrap_or(1) % block.elements, 0);
        assert_eq!(
            t.data.len(),
            t.element_count() / block.elements * block.bytes
        );
        assert_eq!(t.offset() % file.alignment(), 0);
        // Views point into the input, even empty ones.
        let start = (t.data.as_ptr() as usize)
            .checked_sub(base)
            .expect("view starts inside the input");
        assert!(start + t.data.len() <= data.len());
        if !t.data.is_empty() {
            assert_eq!(start, file.data_offset() + t.offset());
        }
        for u in &tensors[..i] {
            let disjoint = t.data.is_empty()
                || u.data.is_empty()
                || t.offset() + t.data.len() <= u.offset()
                || u.offset() + u.data.len() <= t.offset();
            assert!(disjoint, "{} and {} overlap", t.name, u.name);
            assert_ne!(t.name, u.name);
        }
    }
}

/// A file whose metadata holds a llama vocabulary gives a tokenizer whose every piece is
/// found again by its text and decodes, and that encodes (the start of) the input.
fn check_gguf_tokenizer(file: &Gguf<'_>, data: &[u8]) {
    let tokens = file.metadata("tokenizer.ggml.tokens");
    let vocab = tokens.and_then(|v| v.as_array()).map_or(0, |a| a.len());
    let mut index = vec![0u32; Tokenizer::index_len(vocab).unwrap()];
    let t = match Tokenizer::from_gguf(file, &mut index) {
        Ok(t) => t,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert_eq!(t.vocab_size(), vocab);
    assert!(t.max_piece_len() <= t.max_token_length());
    for id in 0..vocab as u32 {
        let text: Vec<u8> = t.piece_text(id).expect("in range").bytes().collect();
        assert!(text.len() <= t.max_piece_len());
        let found = t.lookup(&text, b"").expect("every text can be looked up");
        assert!(found <= id, "the lowest id of equal texts is found");
        assert!(t
            .piece_text(found)
            .unwrap()
            .bytes()
            .eq(text.iter().copied()));
        t.decode(t.bos(), id).expect("in range");
    }
    let text = &data[..data.len().min(64)];
    let mut out = vec![0u32; prompt_buffer_len(text.len()).unwrap()];
    if let Ok(n) = t.encode(text, true, true, &mut out) {
        let mut decoder = TextDecoder::new();
        for pair in out[..n].windows(2) {
            decoder.push(
                t.decode(pair[0], pair[1])
                    .expect("encoded ids are in range"),
                |_| {},
            );
        }
    }
}

/// Equal values, floats compared by their bits (a NaN read twice is the same value).
fn same_value(a: Value<'_>, b: Value<'_>) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

/// Every element of a parsed array decodes, by iterator and by index, to the same value.
fn check_array(array: llama2_core::gguf::Array<'_>) {
    assert_ne!(array.elem_type(), ValueType::Array);
    let mut n = 0;
    for (i, v) in array.iter().enumerate() {
        assert_eq!(v.value_type(), array.elem_type());
        // Indexing a string array walks it: check the first few only.
        if i < 16 {
            let got = array.get(i).expect("every index below len decodes");
            assert!(same_value(got, v), "{got:?} vs {v:?}");
        }
        n += 1;
    }
    assert_eq!(n, array.len());
    assert_eq!(array.get(array.len()), None);
    assert_eq!(array.strings().map(|s| s.count()).unwrap_or(n), n);
    assert_eq!(array.f32s().map(|s| s.count()).unwrap_or(n), n);
    assert_eq!(array.i32s().map(|s| s.count()).unwrap_or(n), n);
}

/// A GGUF file written by the core's writer (the one writer of GGUF bytes): `data` holds
/// the tensors' bytes, one after the other.
fn gguf_file(
    metadata: &[(&str, MetaValue<'_>)],
    tensors: &[TensorSpec<'_>],
    data: &[u8],
) -> Vec<u8> {
    let mut file = Vec::new();
    let mut writer = GgufWriter::new(&mut file, metadata, tensors).expect("a valid seed");
    writer.data(data).expect("the seed's data fits its tensors");
    writer.finish().expect("every tensor has its bytes");
    file
}

/// Small GGUF seeds: a bare header; every value type with arrays and two tensors; a
/// tiny llama-shaped file with a vocabulary; K-quant tensors at alignment 64, as version 2
/// (the writer writes version 3, the same layout).
fn gguf_seeds() -> Vec<(String, Vec<u8>)> {
    use MetaArray as A;
    use MetaValue as M;
    let mut seeds = vec![("header".to_string(), gguf_file(&[], &[], &[]))];

    let metadata = [
        ("u8", M::U8(7)),
        ("i8", M::I8(-2)),
        ("u16", M::U16(513)),
        ("i16", M::I16(-2)),
        ("u32", M::U32(70000)),
        ("i32", M::I32(-70000)),
        ("f32", M::F32(0.5)),
        ("bool", M::Bool(true)),
        ("string", M::String("text ▁")),
        ("u64", M::U64(1 << 33)),
        ("i64", M::I64(-1)),
        ("f64", M::F64(2.5)),
        ("bools", M::Array(A::Bool(&[false, true, false]))),
        ("i32s", M::Array(A::I32(&[1, -1]))),
        ("strings", M::Array(A::String(&["a", ""]))),
    ];
    let tensors = [
        TensorSpec::new("f32", GgmlType::F32, &[4, 2]),
        TensorSpec::new("q8_0", GgmlType::Q8_0, &[32]),
    ];
    let data = [vec![0x3f; 32], vec![1; 34]].concat();
    seeds.push(("values".to_string(), gguf_file(&metadata, &tensors, &data)));

    let pieces = ["<unk>", "<s>", "</s>", "▁a", "b"];
    let metadata = [
        ("general.architecture", M::String("llama")),
        ("llama.embedding_length", M::U32(4)),
        ("llama.block_count", M::U32(1)),
        ("tokenizer.ggml.model", M::String("llama")),
        ("tokenizer.ggml.tokens", M::Array(A::String(&pieces))),
        (
            "tokenizer.ggml.scores",
            M::Array(A::F32(&[0.0, 0.0, 0.0, -1.0, -2.0])),
        ),
    ];
    let tensors = [
        TensorSpec::new("token_embd.weight", GgmlType::F32, &[4, 5]),
        TensorSpec::new("output_norm.weight", GgmlType::F32, &[4]),
        TensorSpec::new("blk.0.attn_q.weight", GgmlType::F16, &[4, 4]),
    ];
    let data = vec![0; 80 + 16 + 32];
    seeds.push(("llama".to_string(), gguf_file(&metadata, &tensors, &data)));

    let metadata = [("general.alignment", M::U32(64))];
    let tensors = [
        TensorSpec::new("q4_k", GgmlType::Q4_K, &[256]),
        TensorSpec::new("bf16", GgmlType::BF16, &[3]),
        TensorSpec::new("q6_k", GgmlType::Q6_K, &[256, 1]),
    ];
    let data = [vec![2; 144], vec![0; 6], vec![3; 210]].concat();
    let mut file = gguf_file(&metadata, &tensors, &data);
    file[4..8].copy_from_slice(&2u32.to_le_bytes());
    seeds.push(("kquants_align64".to_string(), file));
    seeds
}

// ---------------------------------------------------------------------------------------
// gguf_model
// ---------------------------------------------------------------------------------------

/// The most layers the `gguf_model` target gives a table for: a file asking for more must
/// be refused with a table of this size.
pub const MAX_GGUF_LAYERS: usize = 64;

/// Parses arbitrary bytes as a GGUF model, its layer table sized by
/// [`Model::layer_table_len`]. A model that parses must need exactly that table (one entry
/// less is refused), have views of exactly the shapes its config gives, and run two
/// positions with the scalar kernels; the same bytes one byte off their alignment are
/// refused.
pub fn gguf_model(data: &[u8]) {
    if !data.starts_with(b"GGUF") {
        assert_eq!(
            Model::layer_table_len(data),
            Ok(0),
            "llama2.c bytes need no table"
        );
        return;
    }
    let file = AlignedBytes::new(data);
    let mut shifted = vec![0u32; data.len().div_ceil(4) + 1];
    let shifted_bytes = &mut bytemuck::cast_slice_mut::<u32, u8>(&mut shifted)[1..];
    shifted_bytes[..data.len()].copy_from_slice(data);
    assert_eq!(
        Model::parse(&shifted_bytes[..data.len()], &mut []).unwrap_err(),
        Error::Misaligned
    );

    let layers = match Model::layer_table_len(file.bytes()) {
        Ok(n) => n,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            // Whatever stops the count stops the parse.
            let mut table = [LayerWeights::EMPTY; 2];
            assert!(Model::parse(file.bytes(), &mut table).is_err());
            return;
        }
    };
    assert!(layers > 0, "a GGUF model has layers");
    let mut table = vec![LayerWeights::EMPTY; layers.min(MAX_GGUF_LAYERS)];
    let result = Model::parse(file.bytes(), &mut table);
    if layers > MAX_GGUF_LAYERS {
        assert!(
            result.is_err(),
            "{layers} layers in a table of {MAX_GGUF_LAYERS}"
        );
        return;
    }
    let model = match result {
        Ok(model) => model,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let c = model.config;
    assert_eq!(c.n_layers, layers);
    assert!(matches!(model.format, Format::Gguf { version: 2 | 3 }));
    assert!(
        model.weights.stacks().is_none(),
        "GGUF layers are in the table"
    );
    check_views(&model);
    assert!(model.numerics.rms_eps.is_finite() && model.numerics.rms_eps >= 0.0);
    assert!(model.numerics.rope_base.is_finite() && model.numerics.rope_base >= 0.0);

    // One entry short: refused as a too-small table, whatever else the file holds.
    let mut short = vec![LayerWeights::EMPTY; layers - 1];
    assert_eq!(
        Model::parse(file.bytes(), &mut short).unwrap_err(),
        Error::BufferTooSmall {
            buffer: Buffer::LayerTable,
            needed: layers,
            actual: layers - 1
        }
    );

    // The vocabulary size is the token list's length; the tokenizer built from the same
    // metadata (if it is a valid one) agrees and encodes and decodes a short text.
    let gguf = Gguf::parse(file.bytes()).expect("parsed as a model");
    let tokens = gguf.metadata("tokenizer.ggml.tokens");
    assert_eq!(
        tokens.and_then(|v| v.as_array()).map(|a| a.len()),
        Some(c.vocab_size)
    );
    check_gguf_tokenizer(&gguf, b"Once upon a time, a llama");

    // Two positions with the scalar kernels, on models small enough to run quickly: any
    // logits (the weights are the fuzzer's), never a panic.
    let small = c.parameter_count().is_some_and(|n| n <= 1 << 18)
        && c.vocab_size <= 1 << 12
        && c.dim <= 1024
        && c.hidden_dim <= 1024;
    if !small {
        return;
    }
    let context = c.seq_len.min(2);
    let len = State::len_for(&c, context).expect("small shapes fit");
    let mut buffer = vec![f32::NAN; len];
    let mut state = State::new(&c, context, &mut buffer).expect("sized by len_for");
    state.set_kernels(Kernels::scalar());
    let tokens = [(c.vocab_size - 1) as u32, 0];
    for (pos, &token) in tokens.iter().enumerate().take(context) {
        let logits = model
            .forward(&mut state, token, pos, &Serial)
            .expect("valid token and position");
        assert_eq!(logits.len(), c.vocab_size);
    }
}

/// ggml type ids of the seeds' tensors.
const GGML_F32: u32 = 0;
const GGML_F16: u32 = 1;
const GGML_Q8_0: u32 = 8;

/// The bytes of `n` values of ggml type `ty` (F32, F16 or Q8_0), from a counter: small
/// values of both signs.
fn ggml_values(ty: u32, n: usize, counter: &mut u32) -> Vec<u8> {
    let mut next = || {
        *counter = counter.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *counter >> 8
    };
    // An f16 of magnitude 2^-6 to 2^-2: sign, exponent 9..=13, any mantissa.
    let mut half = || {
        let r = next();
        (((r & 1) << 15) | ((9 + (r >> 1) % 5) << 10) | (r >> 4 & 0x3ff)) as u16
    };
    match ty {
        GGML_F32 => (0..n)
            .flat_map(|_| (f32::from(half() as i16 >> 6) / 4096.0).to_le_bytes())
            .collect(),
        GGML_F16 => (0..n).flat_map(|_| half().to_le_bytes()).collect(),
        GGML_Q8_0 => {
            assert_eq!(n % 32, 0);
            let mut out = Vec::new();
            for _ in 0..n / 32 {
                out.extend(half().to_le_bytes());
                out.extend((0..32).map(|_| half() as u8));
            }
            out
        }
        _ => unreachable!("seed types are F32, F16 and Q8_0"),
    }
}

/// A tiny llama GGUF model: `dims = [dim, hidden_dim, n_layers, n_heads, n_kv_heads,
/// vocab_size]`, matrices (the embedding included) of ggml type `ty`, norms in F32, the
/// classifier `output.weight` unless `tied`, tensors in file order unless `reverse`.
pub fn gguf_model_file(dims: [usize; 6], ty: u32, tied: bool, reverse: bool) -> Vec<u8> {
    use MetaValue as M;
    let [dim, hidden, layers, heads, kv_heads, vocab] = dims;
    let kv_dim = dim / heads * kv_heads;
    let u32v = |v: usize| M::U32(v as u32);
    let pieces: Vec<String> = (0..vocab).map(|i| format!("▁t{i}")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let metadata = [
        ("general.architecture", M::String("llama")),
        ("llama.embedding_length", u32v(dim)),
        ("llama.feed_forward_length", u32v(hidden)),
        ("llama.block_count", u32v(layers)),
        ("llama.attention.head_count", u32v(heads)),
        ("llama.attention.head_count_kv", u32v(kv_heads)),
        ("llama.context_length", u32v(4)),
        ("llama.attention.layer_norm_rms_epsilon", M::F32(1e-5)),
        ("llama.rope.freq_base", M::F32(10000.0)),
        ("llama.rope.dimension_count", u32v(dim / heads)),
        ("tokenizer.ggml.model", M::String("llama")),
        (
            "tokenizer.ggml.tokens",
            M::Array(MetaArray::String(&pieces)),
        ),
    ];
    // (name, [cols, rows], type)
    let mut tensors: Vec<(String, [usize; 2], u32)> = vec![
        ("token_embd.weight".into(), [dim, vocab], ty),
        ("output_norm.weight".into(), [dim, 1], GGML_F32),
    ];
    if !tied {
        tensors.push(("output.weight".into(), [dim, vocab], ty));
    }
    for l in 0..layers {
        for (name, shape, t) in [
            ("attn_norm", [dim, 1], GGML_F32),
            ("attn_q", [dim, dim], ty),
            ("attn_k", [dim, kv_dim], ty),
            ("attn_v", [dim, kv_dim], ty),
            ("attn_output", [dim, dim], ty),
            ("ffn_norm", [dim, 1], GGML_F32),
            ("ffn_gate", [dim, hidden], ty),
            ("ffn_up", [dim, hidden], ty),
            ("ffn_down", [hidden, dim], ty),
        ] {
            tensors.push((format!("blk.{l}.{name}.weight"), shape, t));
        }
    }
    if reverse {
        tensors.reverse();
    }
    let ggml_type = |t: u32| match t {
        GGML_F32 => GgmlType::F32,
        GGML_F16 => GgmlType::F16,
        _ => GgmlType::Q8_0,
    };
    let shapes: Vec<Vec<usize>> = tensors
        .iter()
        .map(|(_, [cols, rows], _)| {
            if *rows == 1 {
                vec![*cols]
            } else {
                vec![*cols, *rows]
            }
        })
        .collect();
    let specs: Vec<TensorSpec<'_>> = tensors
        .iter()
        .zip(&shapes)
        .map(|((name, _, t), dims)| TensorSpec::new(name, ggml_type(*t), dims))
        .collect();
    let mut counter = 7;
    let mut data = Vec::new();
    for (_, [cols, rows], t) in &tensors {
        data.extend(ggml_values(*t, cols * rows, &mut counter));
    }
    gguf_file(&metadata, &specs, &data)
}

// ---------------------------------------------------------------------------------------
// forward_sample
// ---------------------------------------------------------------------------------------

/// Supplies the numbers of a model file.
pub trait Fill {
    fn f32(&mut self) -> f32;
    fn i8(&mut self) -> i8;
}

/// Writes a model file of `config` in `format`, taking every number from `fill`.
pub fn model_file(config: Config, format: Format, fill: &mut impl Fill) -> Vec<u8> {
    let s = config;
    let head_size = s.dim / s.n_heads;
    let kv_dim = head_size * s.n_kv_heads;
    let header = Header::new(&config, format).expect("fuzz shapes are valid configs");
    let mut out = header.as_bytes().to_vec();
    let f32s = |out: &mut Vec<u8>, n: usize, fill: &mut dyn FnMut() -> f32| {
        for _ in 0..n {
            out.extend_from_slice(&fill().to_le_bytes());
        }
    };
    let l = s.n_layers;
    let (d, h, v) = (s.dim, s.hidden_dim, s.vocab_size);
    match format {
        Format::V0 => {
            let mut f = || fill.f32();
            for n in [
                v * d,
                l * d,
                l * d * d,
                l * kv_dim * d,
                l * kv_dim * d,
                l * d * d,
                l * d,
                l * h * d,
                l * d * h,
                l * h * d,
                d,
                s.seq_len * head_size, // the two unused RoPE tables
                if s.shared_classifier { 0 } else { v * d },
            ] {
                f32s(&mut out, n, &mut f);
            }
        }
        Format::V1 | Format::V2 { .. } | Format::Gguf { .. } => {
            {
                let mut f = || fill.f32();
                for n in [l * d, l * d, d] {
                    f32s(&mut out, n, &mut f);
                }
            }
            // (per-layer tensor size, layers) in file order
            let tensors = [
                (v * d, 1),
                (d * d, l),
                (kv_dim * d, l),
                (kv_dim * d, l),
                (d * d, l),
                (h * d, l),
                (d * h, l),
                (h * d, l),
                (if s.shared_classifier { 0 } else { v * d }, 1),
            ];
            for (n, layers) in tensors {
                match format {
                    Format::V2 { group_size: group } => {
                        for _ in 0..layers {
                            out.extend((0..n).map(|_| fill.i8() as u8));
                            let mut f = || fill.f32();
                            f32s(&mut out, n / group, &mut f);
                        }
                    }
                    _ => {
                        let mut f = || fill.f32();
                        f32s(&mut out, n * layers, &mut f);
                    }
                }
            }
        }
    }
    out
}

/// Numbers from fuzz bytes, cycled: raw f32 bits (NaN, infinities and huge values
/// included) or small values, one byte each.
struct BytesFill<'d> {
    bytes: &'d [u8],
    at: usize,
    raw: bool,
}

impl BytesFill<'_> {
    fn byte(&mut self) -> u8 {
        if self.bytes.is_empty() {
            return 0;
        }
        let b = self.bytes[self.at % self.bytes.len()];
        self.at = self.at.wrapping_add(1);
        b
    }
}

impl Fill for BytesFill<'_> {
    fn f32(&mut self) -> f32 {
        if self.raw {
            f32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
        } else {
            f32::from(self.byte() as i8) / 32.0
        }
    }

    fn i8(&mut self) -> i8 {
        self.byte() as i8
    }
}

/// Same bits, or both NaN (NaN payloads may differ between paths).
fn same(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

const TEMPERATURES: [f32; 8] = [0.0, 1.0, 0.5, 2.0, 1e-30, 1e30, f32::INFINITY, 0.9];
const TOP_PS: [f32; 8] = [0.9, 0.0, 1.0, 0.5, 1e-7, 0.999_999, 0.1, 0.99];

/// Eight header bytes choose a tiny shape, layout and settings; the rest fill the weights
/// and give the tokens. Runs every position token by token and in batches, samples each
/// step with argmax, multinomial and top-p, and checks the engine's errors for tokens and
/// positions out of range.
pub fn forward_sample(data: &[u8]) {
    let Some((h, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let n_heads = 1 + usize::from(h[0] & 1);
    let n_kv_heads = if h[0] & 2 != 0 { n_heads } else { 1 };
    let head_size = 2 + 2 * usize::from(h[0] >> 2 & 1);
    let dim = n_heads * head_size;
    let layout = match h[1] & 3 {
        0 => Format::V0,
        1 => Format::V1,
        _ => Format::V2 {
            group_size: [1, 2, dim, 2][usize::from(h[1] >> 2 & 3)],
        },
    };
    let unit = match layout {
        Format::V2 { group_size: group } => group,
        _ => 1,
    };
    let shape = Config {
        dim,
        hidden_dim: unit * (1 + usize::from(h[2] & 3)),
        n_layers: 1 + usize::from(h[2] >> 2 & 1),
        n_heads,
        n_kv_heads,
        vocab_size: 1 + usize::from(h[3] & 15),
        seq_len: 1 + usize::from(h[3] >> 4 & 7),
        shared_classifier: h[1] & 0x80 == 0,
    };
    let mut fill = BytesFill {
        bytes: rest,
        at: 0,
        raw: h[4] & 1 != 0,
    };
    let file = AlignedBytes::new(&model_file(shape, layout, &mut fill));
    let model = Model::from_bytes(file.bytes()).expect("a well-formed tiny model parses");
    let c = model.config;
    let context = 1 + usize::from(h[4] >> 1 & 7) % c.seq_len;
    let tokens: Vec<u32> = (0..context)
        .map(|i| u32::from(rest.get(i).copied().unwrap_or(0)) % c.vocab_size as u32)
        .collect();

    let kernels = [Kernels::scalar(), Kernels::detect()][usize::from(h[4] >> 4 & 1)];
    let new_state = |buffer: &mut Vec<f32>| {
        *buffer = vec![f32::NAN; State::len_for(&c, context).unwrap()];
    };
    let mut buffer = Vec::new();
    new_state(&mut buffer);
    let mut state = State::new(&c, context, &mut buffer).unwrap();
    state.set_kernels(kernels);

    let temperature = TEMPERATURES[usize::from(h[5] & 7)];
    let top_p = TOP_PS[usize::from(h[5] >> 3 & 7)];
    let seed = u64::from(h[6]) + 1;
    let mut scratch = vec![ProbIndex::default(); c.vocab_size];
    let strategies = [
        Strategy::Argmax,
        Strategy::new(temperature.max(1e-30), 1.0).unwrap(),
        Strategy::new(temperature.max(1e-30), top_p).unwrap(),
        Strategy::new(temperature, top_p).unwrap(),
    ];
    let mut last = Vec::new();
    for (pos, &token) in tokens.iter().enumerate() {
        let logits = model.forward(&mut state, token, pos, &Serial).unwrap();
        assert_eq!(logits.len(), c.vocab_size);
        last = logits.to_vec();
        for strategy in strategies {
            let mut sampler = Sampler::new(strategy, seed, c.vocab_size, &mut scratch).unwrap();
            let mut probabilities = last.clone();
            let next = sampler.sample(&mut probabilities).unwrap();
            assert!((next as usize) < c.vocab_size, "{strategy:?} chose {next}");
        }
    }
    // Out of range: errors, never a panic.
    assert_eq!(
        model
            .forward(&mut state, c.vocab_size as u32, 0, &Serial)
            .unwrap_err(),
        Error::TokenOutOfRange {
            token: c.vocab_size as u32,
            vocab_size: c.vocab_size
        }
    );
    assert_eq!(
        model.forward(&mut state, 0, context, &Serial).unwrap_err(),
        Error::PositionOutOfRange {
            pos: context,
            context
        }
    );

    // The same positions in batches give the same logits, bit for bit.
    let capacity = 1 + usize::from(h[7] & 3);
    let mut buffer2 = Vec::new();
    new_state(&mut buffer2);
    let mut state2 = State::new(&c, context, &mut buffer2).unwrap();
    state2.set_kernels(kernels);
    let mut batch_buffer = vec![f32::NAN; Batch::len_for(&c, capacity).unwrap()];
    let mut batch = Batch::new(&c, capacity, &mut batch_buffer).unwrap();
    let mut batched = Vec::new();
    for (i, chunk) in tokens.chunks(capacity).enumerate() {
        let logits = model
            .forward_batch(&mut state2, &mut batch, chunk, i * capacity, &Serial)
            .unwrap();
        batched = logits.to_vec();
    }
    assert!(same(&batched, &last), "batch {batched:?} vs {last:?}");
    assert_eq!(
        model
            .forward_batch(&mut state2, &mut batch, &[c.vocab_size as u32], 0, &Serial)
            .unwrap_err(),
        Error::TokenOutOfRange {
            token: c.vocab_size as u32,
            vocab_size: c.vocab_size
        }
    );
}

/// Small well-formed seed inputs for each target, by target name.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let shape = Config {
        dim: 4,
        hidden_dim: 8,
        n_layers: 2,
        n_heads: 2,
        n_kv_heads: 1,
        vocab_size: 6,
        seq_len: 4,
        shared_classifier: true,
    };
    struct Counter(u32);
    impl Fill for Counter {
        fn f32(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (self.0 >> 8) as f32 / 16_777_216.0 - 0.5
        }
        fn i8(&mut self) -> i8 {
            (self.f32() * 250.0) as i8
        }
    }
    for (name, layout) in [
        ("v0", Format::V0),
        ("v1", Format::V1),
        ("v2", Format::V2 { group_size: 4 }),
    ] {
        for shared in [true, false] {
            let shape = Config {
                shared_classifier: shared,
                ..shape
            };
            let file = model_file(shape, layout, &mut Counter(7));
            seeds.push(("model_parse", format!("{name}_shared{shared}"), file));
        }
    }
    let tok = tokenizer_file(
        5,
        &[
            (0.0, b"<unk>"),
            (0.0, b"<s>"),
            (0.0, b"</s>"),
            (-1.0, b" "),
            (-2.0, b"a"),
            (3.0, b"ab"),
        ],
    );
    let mut input = 6u16.to_le_bytes().to_vec();
    input.extend_from_slice(&tok);
    seeds.push(("tokenizer_parse", "six".into(), input));
    for (i, text) in ["Once upon a time", "héllo 🦙 wörld", "\u{0}\u{1}\u{ff}"]
        .iter()
        .enumerate()
    {
        for flags in [0u8, 4 | 8, 1 | 4, 2] {
            let mut input = vec![flags];
            input.extend_from_slice(text.as_bytes());
            seeds.push(("encode", format!("text{i}_flags{flags}"), input));
        }
    }
    for h0 in [0u8, 3, 7] {
        for layout in [0u8, 1, 2, 6] {
            let mut input = vec![h0, layout, 5, 0x35, 0x0e, 0x19, 3, 2];
            input.extend((0..64).map(|i: u8| i.wrapping_mul(37)));
            seeds.push(("forward_sample", format!("h{h0}_l{layout}"), input));
        }
    }
    for (name, bytes) in gguf_seeds() {
        seeds.push(("gguf_parse", name, bytes));
    }
    for (name, dims, ty) in [
        ("f32", [8, 16, 2, 2, 1, 6], GGML_F32),
        ("f16", [8, 16, 2, 2, 2, 6], GGML_F16),
        ("q8_0", [32, 32, 1, 4, 2, 4], GGML_Q8_0),
    ] {
        for (tied, reverse) in [(true, false), (false, true)] {
            let file = gguf_model_file(dims, ty, tied, reverse);
            let name = format!("{name}_{}", if tied { "tied" } else { "untied" });
            seeds.push(("gguf_model", name, file));
        }
    }
    seeds
}
