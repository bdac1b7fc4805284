//! Prompt encoding with the 32000-piece Llama 2 vocabulary: `cargo bench -p llama2-cli
//! --bench encode`. llama2.c's merge loop is quadratic (minutes for 64 KiB); the heap merge
//! must keep a 64 KiB prompt well under a second. Needs `tokenizer.bin` and
//! `gguf/synth_32k-Q8_0.gguf` (the same vocabulary in GGUF metadata) from the fixtures
//! (`$LLAMA2_FIXTURES`, else `../shared/fixtures` beside the repository).

use divan::{black_box, Bencher};
use llama2_core::{gguf::Gguf, prompt_buffer_len, Tokenizer};

fn main() {
    divan::main();
}

const VOCAB: usize = 32000;

fn tokenizer_file() -> Vec<u8> {
    fixture("models/tokenizer.bin")
}

fn fixture(relative: &str) -> Vec<u8> {
    let dir = std::env::var("LLAMA2_FIXTURES")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures").into());
    let path = format!("{dir}/{relative}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Story text, and one character repeated (the most merge passes for llama2.c's loop).
fn text(kind: &str, len: usize) -> Vec<u8> {
    let story: &[u8] =
        b"Once upon a time, there was a little girl named Lily. She loved to play outside. ";
    match kind {
        "story" => story.iter().copied().cycle().take(len).collect(),
        _ => vec![b'^'; len],
    }
}

/// Encodes a 64 KiB prompt (BOS first, as generation does).
#[divan::bench(args = ["story", "repeated"], sample_count = 20)]
fn encode_64k(bencher: Bencher, kind: &str) {
    let file = tokenizer_file();
    let mut index = vec![0u32; Tokenizer::index_len(VOCAB).unwrap()];
    let tokenizer = Tokenizer::new(&file, VOCAB, &mut index).unwrap();
    let prompt = text(kind, 64 * 1024);
    let mut out = vec![0u32; prompt_buffer_len(prompt.len()).unwrap()];
    bencher
        .counter(divan::counter::BytesCount::new(prompt.len()))
        .bench_local(|| {
            tokenizer
                .encode(black_box(&prompt), true, false, &mut out)
                .unwrap()
        });
}

/// The same with the vocabulary read from GGUF metadata (pieces compared as llama2.c spells
/// them, so slower per lookup; the same ids).
#[divan::bench(args = ["story", "repeated"], sample_count = 20)]
fn encode_64k_gguf(bencher: Bencher, kind: &str) {
    let file = fixture("gguf/synth_32k-Q8_0.gguf");
    let gguf = Gguf::parse(&file).unwrap();
    let mut index = vec![0u32; Tokenizer::index_len(VOCAB).unwrap()];
    let tokenizer = Tokenizer::from_gguf(&gguf, &mut index).unwrap();
    let prompt = text(kind, 64 * 1024);
    let mut out = vec![0u32; prompt_buffer_len(prompt.len()).unwrap()];
    bencher
        .counter(divan::counter::BytesCount::new(prompt.len()))
        .bench_local(|| {
            tokenizer
                .encode(black_box(&prompt), true, false, &mut out)
                .unwrap()
        });
}
