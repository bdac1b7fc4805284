//! `golden/encode.jsonl`: the tokenizer's encoder against the reference's ids, every case.

use std::collections::BTreeMap;

use llama2_core::{prompt_buffer_len, Tokenizer};
use llama2_tests::{
    jsonl_line_count, model_file, read_file, read_jsonl, tokenizer_entry_count, EncodeCase,
};

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
        let bytes = read_file(&model_file(name));
        let vocab_size = tokenizer_entry_count(&bytes);
        let mut index = vec![0u32; Tokenizer::index_len(vocab_size).unwrap()];
        let tokenizer = Tokenizer::new(&bytes, vocab_size, &mut index)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        for case in cases {
            checked += 1;
            let mut out = vec![0u32; prompt_buffer_len(case.text.len()).unwrap()];
            let got = tokenizer
                .encode(case.text.as_bytes(), case.bos, case.eos, &mut out)
                .map(|n| out[..n].to_vec());
            if got.as_ref() != Ok(&case.tokens) {
                failures.push(format!(
                    "{name} {:?} (bos {}, eos {}):\n  expected {:?}\n  got      {:?}",
                    case.text, case.bos, case.eos, case.tokens, got
                ));
            }
        }
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
        jsonl_line_count("encode.jsonl"),
        "not every line of encode.jsonl was checked"
    );
    eprintln!("{checked} encodings match");
}
