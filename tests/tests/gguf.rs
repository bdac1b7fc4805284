//! The GGUF container reader (`llama2_core::gguf`) on the real GGUF fixtures, written by
//! llama.cpp's own tools: every file parses, its metadata and tensors are those of a llama
//! model, and stories260K.gguf holds the same hyperparameters, vocabulary and weights as
//! the llama2.c files of stories260K.

use std::collections::{BTreeMap, BTreeSet};

use llama2_core::gguf::{GgmlType, Gguf, TensorInfo};
use llama2_core::Model;
use llama2_tests::{fixtures_dir, load_model, read_file, read_fixture, AlignedBytes};

/// The files the fixture README lists in `gguf/`.
const FILES: [&str; 15] = [
    "stories260K.gguf",
    "stories260K-tied.gguf",
    "synth_32k-Q8_0.gguf",
    "synthK-F16.gguf",
    "synthK-BF16.gguf",
    "synthK-Q8_0.gguf",
    "synthK-Q4_0.gguf",
    "synthK-Q4_1.gguf",
    "synthK-Q5_0.gguf",
    "synthK-Q5_1.gguf",
    "synthK-Q2_K.gguf",
    "synthK-Q3_K_M.gguf",
    "synthK-Q4_K_M.gguf",
    "synthK-Q5_K_M.gguf",
    "synthK-Q6_K.gguf",
];

/// A GGUF fixture in aligned storage (as a memory map gives it).
fn gguf_file(name: &str) -> AlignedBytes {
    AlignedBytes::new(&read_fixture(&format!("gguf/{name}")))
}

fn u32_key(file: &Gguf<'_>, key: &str) -> usize {
    file.metadata(key)
        .unwrap_or_else(|| panic!("no {key}"))
        .as_usize()
        .unwrap_or_else(|| panic!("{key} is not an integer"))
}

fn str_key<'a>(file: &Gguf<'a>, key: &str) -> &'a str {
    file.metadata(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no string {key}"))
}

fn tensor<'a>(file: &Gguf<'a>, name: &str) -> TensorInfo<'a> {
    file.tensor(name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
}

/// The tensor names of a llama model with `layers` layers (and an `output.weight`).
fn llama_tensor_names(layers: usize, output: bool) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ["token_embd.weight", "output_norm.weight"]
        .map(String::from)
        .into();
    if output {
        names.insert("output.weight".into());
    }
    for l in 0..layers {
        for t in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ] {
            names.insert(format!("blk.{l}.{t}.weight"));
        }
    }
    names
}

/// The shape `[cols, rows]` (ggml order) each llama tensor must have.
fn expected_dims(name: &str, dim: usize, hidden: usize, kv_dim: usize, vocab: usize) -> Vec<usize> {
    let kind = name.rsplit('.').nth(1).unwrap();
    match kind {
        "token_embd" | "output" => vec![dim, vocab],
        "output_norm" | "attn_norm" | "ffn_norm" => vec![dim],
        "attn_q" | "attn_output" => vec![dim, dim],
        "attn_k" | "attn_v" => vec![dim, kv_dim],
        "ffn_gate" | "ffn_up" => vec![dim, hidden],
        "ffn_down" => vec![hidden, dim],
        other => panic!("unexpected tensor kind {other} in {name}"),
    }
}

#[test]
fn every_fixture_parses_as_a_llama_model() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixtures_dir().join("gguf"))
        .expect("gguf fixture directory")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".gguf"))
        .collect();
    assert_eq!(on_disk, FILES.map(String::from).into(), "fixture files");
    for name in FILES {
        let bytes = gguf_file(name);
        let start = std::time::Instant::now();
        let file = Gguf::parse(bytes.bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("{name}: parsed in {:?}", start.elapsed());
        assert_eq!(file.version(), 3, "{name}");
        assert_eq!(file.alignment(), 32, "{name}");
        assert_eq!(file.data_offset() % 32, 0, "{name}");
        assert_eq!(str_key(&file, "general.architecture"), "llama", "{name}");
        assert_eq!(str_key(&file, "tokenizer.ggml.model"), "llama", "{name}");

        let dim = u32_key(&file, "llama.embedding_length");
        let hidden = u32_key(&file, "llama.feed_forward_length");
        let layers = u32_key(&file, "llama.block_count");
        let heads = u32_key(&file, "llama.attention.head_count");
        let kv_heads = u32_key(&file, "llama.attention.head_count_kv");
        assert_eq!(
            u32_key(&file, "llama.rope.dimension_count"),
            dim / heads,
            "{name}"
        );
        let eps = file.metadata("llama.attention.layer_norm_rms_epsilon");
        assert_eq!(eps.and_then(|v| v.as_f32()), Some(1e-5), "{name}");
        assert_eq!(u32_key(&file, "tokenizer.ggml.bos_token_id"), 1, "{name}");
        assert_eq!(u32_key(&file, "tokenizer.ggml.eos_token_id"), 2, "{name}");

        // The vocabulary: pieces, scores and token types, one of each per token.
        let tokens = file
            .metadata("tokenizer.ggml.tokens")
            .unwrap()
            .as_array()
            .unwrap();
        let vocab = tokens.len();
        assert_eq!(tokens.strings().unwrap().count(), vocab, "{name}");
        let scores = file
            .metadata("tokenizer.ggml.scores")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(scores.f32s().unwrap().count(), vocab, "{name}");
        let types = file.metadata("tokenizer.ggml.token_type").unwrap();
        assert_eq!(types.as_array().unwrap().i32s().unwrap().count(), vocab);

        // Exactly the llama tensors, each of its shape, whatever their order in the file.
        let tied = name == "stories260K-tied.gguf";
        let names: BTreeSet<String> = file.tensors().map(|t| t.name.to_string()).collect();
        assert_eq!(names, llama_tensor_names(layers, !tied), "{name}");
        assert_eq!(file.tensor_count(), names.len(), "{name}: duplicate names");
        let kv_dim = dim / heads * kv_heads;
        for t in file.tensors() {
            assert_eq!(
                t.dims(),
                expected_dims(t.name, dim, hidden, kv_dim, vocab),
                "{name}: {}",
                t.name
            );
            let block = t.ggml_type.block().unwrap();
            assert_eq!(
                t.data.len(),
                t.element_count() / block.elements * block.bytes,
                "{name}: {}",
                t.name
            );
            // Norms stay F32 in every file.
            if t.dims().len() == 1 {
                assert_eq!(t.ggml_type, GgmlType::F32, "{name}: {}", t.name);
            }
            // The view is in place: inside the file's own bytes, at an aligned address.
            let start = t.data.as_ptr() as usize - bytes.bytes().as_ptr() as usize;
            assert_eq!(start, file.data_offset() + t.offset(), "{name}: {}", t.name);
        }
    }
}

#[test]
fn stories260k_gguf_matches_the_llama2c_files() {
    let bin = load_model("stories260K.bin");
    let model = Model::from_bytes(bin.bytes()).unwrap();
    let c = model.config;
    let tok512 = read_file(&llama2_tests::model_file("tok512.bin"));
    let pieces = tokenizer_entries(&tok512);

    for name in ["stories260K.gguf", "stories260K-tied.gguf"] {
        let bytes = gguf_file(name);
        let file = Gguf::parse(bytes.bytes()).unwrap();
        assert_eq!(u32_key(&file, "llama.embedding_length"), c.dim, "{name}");
        assert_eq!(u32_key(&file, "llama.feed_forward_length"), c.hidden_dim);
        assert_eq!(u32_key(&file, "llama.block_count"), c.n_layers);
        assert_eq!(u32_key(&file, "llama.attention.head_count"), c.n_heads);
        assert_eq!(
            u32_key(&file, "llama.attention.head_count_kv"),
            c.n_kv_heads
        );
        assert_eq!(u32_key(&file, "llama.context_length"), c.seq_len, "{name}");
        assert_eq!((c.dim, c.hidden_dim, c.n_layers), (64, 172, 5));
        assert_eq!((c.n_heads, c.n_kv_heads, c.vocab_size), (8, 4, 512));

        // The vocabulary is tok512's, with `▁` for a space.
        let tokens = file
            .metadata("tokenizer.ggml.tokens")
            .unwrap()
            .as_array()
            .unwrap();
        assert_eq!(tokens.len(), 512);
        let scores = file
            .metadata("tokenizer.ggml.scores")
            .unwrap()
            .as_array()
            .unwrap();
        for (id, ((piece, score), (bin_score, bin_piece))) in tokens
            .strings()
            .unwrap()
            .zip(scores.f32s().unwrap())
            .zip(&pieces)
            .enumerate()
        {
            let spaced = std::str::from_utf8(piece).unwrap().replace('▁', " ");
            // llama2.c's tokenizer.bin spells the control tokens as text with spaces
            // around them; the byte tokens and every other piece are the same text.
            if id >= 3 {
                assert_eq!(spaced.as_bytes(), &bin_piece[..], "piece {id}");
                assert_eq!(score, *bin_score, "score of {id}");
            }
        }

        // The same weights: the v0 file's embedding, first norm and final norm, byte for byte.
        let (dim, vocab, layers) = (c.dim, c.vocab_size, c.n_layers);
        let f32s = |count: usize, at: &mut usize| {
            let range = *at..*at + 4 * count;
            *at += 4 * count;
            &bin.bytes()[range]
        };
        let mut at = 28;
        let embedding = f32s(vocab * dim, &mut at);
        let rms_att = f32s(layers * dim, &mut at);
        let embd = tensor(&file, "token_embd.weight");
        assert_eq!(embd.ggml_type, GgmlType::F32);
        assert!(embd.data == embedding, "{name}: token_embd.weight differs");
        for l in 0..layers {
            let norm = tensor(&file, &format!("blk.{l}.attn_norm.weight"));
            assert!(
                norm.data == &rms_att[4 * l * dim..4 * (l + 1) * dim],
                "layer {l}"
            );
        }
        let rms_final_at = bin.bytes().len() - 4 * (dim + c.seq_len * c.head_size());
        let rms_final = &bin.bytes()[rms_final_at..rms_final_at + 4 * dim];
        assert!(
            tensor(&file, "output_norm.weight").data == rms_final,
            "{name}"
        );
        match file.tensor("output.weight") {
            // The converter writes a copy of the shared classifier.
            Some(output) => assert!(output.data == embedding, "{name}: output.weight"),
            None => assert_eq!(name, "stories260K-tied.gguf"),
        }
    }
}

/// The `(score, piece)` entries of a llama2.c tokenizer file.
fn tokenizer_entries(bytes: &[u8]) -> Vec<(f32, Vec<u8>)> {
    let mut entries = Vec::new();
    let mut at = 4;
    while at < bytes.len() {
        let word = |i: usize| <[u8; 4]>::try_from(&bytes[i..i + 4]).unwrap();
        let score = f32::from_le_bytes(word(at));
        let len = i32::from_le_bytes(word(at + 4)) as usize;
        entries.push((score, bytes[at + 8..at + 8 + len].to_vec()));
        at += 8 + len;
    }
    entries
}

#[test]
fn synth_32k_has_the_llama2_vocabulary_and_its_model_shape() {
    let bytes = gguf_file("synth_32k-Q8_0.gguf");
    let file = Gguf::parse(bytes.bytes()).unwrap();
    let bin = load_model("synth_32k.bin");
    let c = Model::from_bytes(bin.bytes()).unwrap().config;
    assert_eq!(u32_key(&file, "llama.embedding_length"), c.dim);
    assert_eq!(u32_key(&file, "llama.feed_forward_length"), c.hidden_dim);
    assert_eq!(u32_key(&file, "llama.block_count"), c.n_layers);
    assert_eq!(
        u32_key(&file, "llama.attention.head_count_kv"),
        c.n_kv_heads
    );
    let tokens = file
        .metadata("tokenizer.ggml.tokens")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(tokens.len(), c.vocab_size);
    let llama = tokenizer_entries(&read_file(&llama2_tests::model_file("tokenizer.bin")));
    assert_eq!(llama.len(), 32000);
    let differing = tokens
        .strings()
        .unwrap()
        .zip(&llama)
        .skip(3)
        .filter(|(piece, (_, bin))| {
            std::str::from_utf8(piece)
                .unwrap()
                .replace('▁', " ")
                .as_bytes()
                != &bin[..]
        })
        .count();
    assert_eq!(differing, 0, "pieces differing from tokenizer.bin");
    // Random access into the string array walks to the element.
    let piece = tokens.get(31999).and_then(|v| v.as_bytes()).unwrap();
    assert_eq!(piece, tokens.strings().unwrap().last().unwrap());
    // Matrices are Q8_0, the norms F32; the tensors are not in layer order.
    for t in file.tensors() {
        let expected = if t.dims().len() == 1 {
            GgmlType::F32
        } else {
            GgmlType::Q8_0
        };
        assert_eq!(t.ggml_type, expected, "{}", t.name);
    }
    let order: Vec<&str> = file.tensors().map(|t| t.name).collect();
    assert_ne!(order.first(), Some(&"token_embd.weight"), "{order:?}");
}

#[test]
fn synthk_type_histograms() {
    for name in FILES.iter().filter(|n| n.starts_with("synthK-")) {
        let bytes = gguf_file(name);
        let file = Gguf::parse(bytes.bytes()).unwrap();
        let mut histogram: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for t in file.tensors() {
            let entry = histogram.entry(t.ggml_type.name()).or_default();
            entry.0 += 1;
            entry.1 += t.data.len();
        }
        let shown: Vec<String> = histogram
            .iter()
            .map(|(ty, (n, b))| format!("{ty}: {n} tensors, {b} bytes"))
            .collect();
        println!("{name:20} {}", shown.join("; "));
        // The file's type names its matrices' main type (`_M` mixes add others).
        let main = name
            .trim_start_matches("synthK-")
            .trim_end_matches(".gguf")
            .trim_end_matches("_M");
        assert!(histogram.contains_key(main), "{name}: {histogram:?}");
        assert_eq!(histogram["F32"].0, 5, "{name}: the five norms stay F32");
        let total: usize = histogram.values().map(|(n, _)| n).sum();
        assert_eq!(total, 21, "{name}");
        if !name.contains("_K") {
            // llama-quantize keeps the classifier at higher precision (Q6_K) in some files.
            for t in file.tensors() {
                if t.dims().len() == 2 && t.name != "output.weight" {
                    assert_eq!(t.ggml_type.name(), main, "{name}: {}", t.name);
                }
            }
        }
    }
}

#[test]
fn fuzz_seeds_are_valid_gguf_files() {
    // The seeds must reach the checks a parsed file goes through, not stop at an error.
    let seeds = llama2_fuzz_harness::seeds();
    let gguf: Vec<_> = seeds.iter().filter(|s| s.0 == "gguf_parse").collect();
    assert!(gguf.len() >= 4);
    for (_, name, bytes) in gguf {
        let file = Gguf::parse(bytes).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        assert!(file.metadata_len() + file.tensor_count() > 0 || name == "header");
    }
}
