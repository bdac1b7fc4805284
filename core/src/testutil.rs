//! Builders of small model and tokenizer files, and pseudo-random values, for unit tests.

use std::vec::Vec;

/// A tiny, valid config: dim 8, hidden 12, 2 layers, 4 heads, 2 kv heads, vocab 300, seq 16.
pub const RAW: [i32; 7] = [8, 12, 2, 4, 2, 300, 16];

/// Number of f32 weights after the header of a v0 file with `raw`'s shape.
pub fn v0_weight_count(raw: [i32; 7], shared: bool) -> usize {
    let [dim, hidden, layers, heads, kv_heads, vocab, seq] = raw.map(|v| v.unsigned_abs() as usize);
    let kv_dim = dim / heads * kv_heads;
    let head_size = dim / heads;
    let per_layer = 2 * dim + 2 * dim * dim + 2 * kv_dim * dim + 3 * hidden * dim;
    let classifier = if shared { 0 } else { vocab * dim };
    vocab * dim + layers * per_layer + dim + seq * head_size + classifier
}

/// A v0 model file with deterministic pseudo-random weights, in f32-aligned storage.
pub fn v0_model(raw: [i32; 7], shared: bool) -> Vec<f32> {
    let mut header = raw;
    if !shared {
        header[5] = -header[5];
    }
    let mut words: Vec<f32> = header.iter().map(|&v| f32::from_bits(v as u32)).collect();
    let mut seed = 0x1234_5678u32;
    for _ in 0..v0_weight_count(raw, shared) {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        words.push((seed >> 8) as f32 / 16_777_216.0 - 0.5);
    }
    words
}

/// The bytes of `words`.
pub fn bytes(words: &[f32]) -> &[u8] {
    bytemuck::cast_slice(words)
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

/// `<unk> <s> </s>`, the 256 byte tokens, a few merges (ids 259..=265: `" "`, `a`, `b`,
/// `ab`, `" ab"`, `é`, `ba`), then filler tokens up to `vocab_size` entries.
pub fn vocab_file(vocab_size: usize) -> Vec<u8> {
    use std::format;
    let mut pieces: Vec<(f32, Vec<u8>)> = vec![
        (0.0, b"<unk>".to_vec()),
        (0.0, b"<s>".to_vec()),
        (0.0, b"</s>".to_vec()),
    ];
    pieces.extend((0..=255u8).map(|b| (0.0, format!("<0x{b:02X}>").into_bytes())));
    pieces.extend([
        (-1.0, b" ".to_vec()),
        (-2.0, b"a".to_vec()),
        (-3.0, b"b".to_vec()),
        (5.0, b"ab".to_vec()),
        (6.0, b" ab".to_vec()),
        (-4.0, "é".as_bytes().to_vec()),
        (1.0, b"ba".to_vec()),
    ]);
    let mut filler = 0;
    while pieces.len() < vocab_size {
        pieces.push((-9.0, format!("#{filler}").into_bytes()));
        filler += 1;
    }
    let entries: Vec<(f32, &[u8])> = pieces.iter().map(|(s, p)| (*s, p.as_slice())).collect();
    tokenizer_file(6, &entries)
}

/// Deterministic pseudo-random values in [-0.5, 0.5) (a linear congruential generator), for
/// kernel and decoder tests.
pub fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / 16_777_216.0 - 0.5
        })
        .collect()
}
