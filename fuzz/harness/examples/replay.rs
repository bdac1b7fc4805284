//! Runs fuzz inputs through a target body without libFuzzer and prints how long each took:
//! `cargo run --release --manifest-path fuzz/Cargo.toml -p llama2-fuzz-harness --example
//! replay -- TARGET FILE...` (to debug a crash or time a slow input).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().expect("usage: replay TARGET FILE...");
    let body: fn(&[u8]) = match target.as_str() {
        "model_parse" => llama2_fuzz_harness::model_parse,
        "tokenizer_parse" => llama2_fuzz_harness::tokenizer_parse,
        "encode" => llama2_fuzz_harness::encode,
        "forward_sample" => llama2_fuzz_harness::forward_sample,
        "gguf_parse" => llama2_fuzz_harness::gguf_parse,
        "gguf_model" => llama2_fuzz_harness::gguf_model,
        other => panic!("unknown target {other}"),
    };
    for path in args {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let start = Instant::now();
        body(&bytes);
        println!("{path}: {} bytes, {:?}", bytes.len(), start.elapsed());
    }
}
