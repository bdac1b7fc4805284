//! Times `Tokenizer::encode` on texts of growing length (a repeated character, the worst
//! case of llama2.c's quadratic loop, and story text): `cargo run --release --manifest-path
//! fuzz/Cargo.toml -p llama2-fuzz-harness --example encode_cost`. The figures are in
//! docs/SECURITY.md.

use std::time::Instant;

use llama2_core::{prompt_buffer_len, Tokenizer};

fn main() {
    let dir = llama2_fuzz_harness::fixtures_dir().join("models");
    for (name, vocab) in [("tok512.bin", 512), ("tokenizer.bin", 32000)] {
        let file = std::fs::read(dir.join(name)).expect("fixture tokenizer");
        let mut index = vec![0u32; 2 * vocab];
        let t = Tokenizer::new(&file, vocab, &mut index).expect("parses");
        for len in [1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 20] {
            for (label, text) in [
                ("'^' repeated", vec![b'^'; len]),
                ("story text", story(len)),
            ] {
                let mut out = vec![0u32; prompt_buffer_len(len).expect("fits")];
                let start = Instant::now();
                let n = t.encode(&text, true, false, &mut out).expect("encodes");
                println!(
                    "{name:14} {label:13} {len:6} bytes -> {n:6} tokens in {:?}",
                    start.elapsed()
                );
            }
        }
    }
}

fn story(len: usize) -> Vec<u8> {
    b"Once upon a time, there was a little girl named Lily. She loved to play outside. "
        .iter()
        .copied()
        .cycle()
        .take(len)
        .collect()
}
