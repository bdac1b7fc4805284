//! `golden/encode.jsonl`: the tokenizer's encoder against the reference's ids, every case,
//! with each llama2.c tokenizer file and with the same vocabulary read from a GGUF file's
//! metadata (`tokenizer.bin`: `synth_32k-Q8_0.gguf`, `tok512.bin`: `stories260K.gguf`); and
//! the GGUF vocabularies decode every id as their `tokenizer.bin` does.

use std::collections::BTreeMap;

use llama2_core::{gguf::Gguf, prompt_buffer_len, Piece, Tokenizer};
use llama2_tests::{
    jsonl_line_count, model_file, read_file, read_fixture, read_jsonl, tokenizer_entry_count,
    EncodeCase,
};

/// The GGUF fixture holding the vocabulary of each llama2.c tokenizer file.
const GGUF_VOCABULARY: [(&str, &str); 2] = [
    ("tokenizer.bin", "gguf/synth_32k-Q8_0.gguf"),
    ("tok512.bin", "gguf/stories260K.gguf"),
];

fn gguf_of(tokenizer: &str) -> &'static str {
    GGUF_VOCABULARY
        .iter()
        .find(|(name, _)| *name == tokenizer)
        .unwrap_or_else(|| panic!("no GGUF fixture holds the vocabulary of {tokenizer}"))
        .1
}

/// Runs `check` with the tokenizer of llama2.c file `name` and with that of its GGUF fixture.
fn with_both_tokenizers(name: &str, mut check: impl FnMut(&str, &Tokenizer<'_>)) {
    let bytes = read_file(&model_file(name));
    let vocab_size = tokenizer_entry_count(&bytes);
    let mut index = vec![0u32; Tokenizer::index_len(vocab_size).unwrap()];
    let tokenizer =
        Tokenizer::new(&bytes, vocab_size, &mut index).unwrap_or_else(|e| panic!("{name}: {e}"));
    check(name, &tokenizer);

    let gguf_name = gguf_of(name);
    let gguf_bytes = read_fixture(gguf_name);
    let gguf = Gguf::parse(&gguf_bytes).unwrap_or_else(|e| panic!("{gguf_name}: {e}"));
    // One index length for both kinds of file.
    let mut index = vec![0u32; Tokenizer::index_len(vocab_size).unwrap()];
    let tokenizer =
        Tokenizer::from_gguf(&gguf, &mut index).unwrap_or_else(|e| panic!("{gguf_name}: {e}"));
    assert_eq!(tokenizer.vocab_size(), vocab_size, "{gguf_name}");
    check(gguf_name, &tokenizer);
}

#[test]
fn every_golden_encoding_matches() {
    let cases: Vec<EncodeCase> = read_jsonl("encode.jsonl");
    let mut by_tokenizer: BTreeMap<&str, Vec<&EncodeCase>> = BTreeMap::new();
    for case in &cases {
        by_tokenizer.entry(&case.tokenizer).or_default().push(case);
    }

    let mut checked = 0;
    let mut failures = Vec::new();
    for (name, cases) in by_tokenizer {
        with_both_tokenizers(name, |file, tokenizer| {
            for case in &cases {
                checked += 1;
                let mut out = vec![0u32; prompt_buffer_len(case.text.len()).unwrap()];
                let got = tokenizer
                    .encode(case.text.as_bytes(), case.bos, case.eos, &mut out)
                    .map(|n| out[..n].to_vec());
                if got.as_ref() != Ok(&case.tokens) {
                    failures.push(format!(
                        "{file} {:?} (bos {}, eos {}):\n  expected {:?}\n  got      {:?}",
                        case.text, case.bos, case.eos, case.tokens, got
                    ));
                }
            }
        });
    }

    assert!(
        failures.is_empty(),
        "{} of {checked} encodings differ from the golden ids:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked > 0, "encode.jsonl holds no cases");
    assert_eq!(
        checked,
        2 * jsonl_line_count("encode.jsonl"),
        "not every line of encode.jsonl was checked with both tokenizers"
    );
    eprintln!("{checked} encodings match");
}

/// What `decode` gives: the text, and whether it is a raw byte.
fn decoded(tokenizer: &Tokenizer<'_>, prev: u32, id: u32) -> (Vec<u8>, bool) {
    match tokenizer.decode(prev, id).unwrap() {
        Piece::Text(bytes) => (bytes.to_vec(), false),
        Piece::Byte(byte) => (vec![byte], true),
        Piece::Spelled(text) => (text.bytes().collect(), false),
    }
}

#[test]
fn gguf_vocabularies_decode_every_id_as_tokenizer_bin_does() {
    for (name, _) in GGUF_VOCABULARY {
        let mut by_file = Vec::new();
        with_both_tokenizers(name, |file, t| {
            assert_eq!((t.bos(), t.eos(), t.add_bos()), (1, 2, true), "{file}");
            let ids = 0..t.vocab_size() as u32;
            // After BOS (a leading space dropped), after EOS and after an ordinary token.
            let texts: Vec<_> = [1, 2, 300]
                .iter()
                .flat_map(|&prev| ids.clone().map(move |id| (prev, id)))
                .map(|(prev, id)| decoded(t, prev, id))
                .collect();
            // What `convert` writes back as a tokenizer.bin: texts, scores and the longest.
            let entries: Vec<_> = ids
                .clone()
                .map(|id| {
                    let text: Vec<u8> = t.piece_text(id).unwrap().bytes().collect();
                    (text, t.score(id).unwrap().to_bits())
                })
                .collect();
            by_file.push((file.to_string(), texts, entries, t.max_token_length()));
        });
        let [(bin, bin_texts, bin_entries, bin_max), (gguf, gguf_texts, gguf_entries, gguf_max)] =
            &by_file[..]
        else {
            panic!("two tokenizers")
        };
        let differing: Vec<_> = (0..bin_texts.len())
            .filter(|&i| bin_texts[i] != gguf_texts[i])
            .map(|i| (i, &bin_texts[i], &gguf_texts[i]))
            .take(5)
            .collect();
        assert!(differing.is_empty(), "{bin} vs {gguf}: {differing:?}");
        assert!(
            bin_entries == gguf_entries,
            "{bin} vs {gguf}: pieces or scores differ"
        );
        // tokenizer.bin declares the longest piece it holds; so is it measured in the GGUF.
        assert_eq!(bin_max, gguf_max, "{bin} vs {gguf}");
    }
}
