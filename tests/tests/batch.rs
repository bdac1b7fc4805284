//! Batching never changes a result: a prompt run through `Model::forward_batch` gives the
//! logits of running its tokens one by one, bit for bit, for every kind of weight (fp32,
//! llama2.c Q8_0, and GGUF files of the types with SIMD products and without), on the
//! scalar and the detected kernels, on one and two threads.

use llama2_cli::pool::ThreadPool;
use llama2_core::{Batch, Kernels, LayerWeights, Model, Parallel, Serial, State};
use llama2_tests::load_model;

/// Model files of every kind of matrix product.
const MODELS: &[&str] = &[
    "stories260K.bin",
    "stories260K_q80.bin",
    "synth_mqa_unshared_q80.bin",
    "stories260K.gguf",
    "synthK-F16.gguf",
    "synthK-Q8_0.gguf",
    "synthK-Q4_0.gguf",
    "synthK-Q4_K_M.gguf",
    "synthK-Q5_K_M.gguf",
];

/// The logits after `tokens`, run one by one (`capacity` 1) or in batches of `capacity`.
fn last_logits(
    model: &Model<'_>,
    tokens: &[u32],
    capacity: usize,
    kernels: Kernels,
    parallel: &impl Parallel,
) -> Vec<u32> {
    let config = model.config;
    let mut buffer = vec![0.0; State::len_for(&config, tokens.len()).unwrap()];
    let mut state = State::new(&config, tokens.len(), &mut buffer).unwrap();
    state.set_kernels(kernels);
    let logits = if capacity == 1 {
        let mut last = Vec::new();
        for (pos, &token) in tokens.iter().enumerate() {
            last = model
                .forward(&mut state, token, pos, parallel)
                .unwrap()
                .to_vec();
        }
        last
    } else {
        let mut batch_buffer = vec![0.0; Batch::len_for(&config, capacity).unwrap()];
        let mut batch = Batch::new(&config, capacity, &mut batch_buffer).unwrap();
        let mut last = Vec::new();
        for (i, chunk) in tokens.chunks(capacity).enumerate() {
            last = model
                .forward_batch(&mut state, &mut batch, chunk, i * capacity, parallel)
                .unwrap()
                .to_vec();
        }
        last
    };
    logits.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn batched_prompts_give_the_logits_of_one_token_at_a_time() {
    let two = ThreadPool::new(2).unwrap();
    for name in MODELS {
        let bytes = load_model(name);
        let bytes = bytes.bytes();
        let mut layers = vec![LayerWeights::EMPTY; Model::layer_table_len(bytes).unwrap()];
        let model = Model::parse(bytes, &mut layers).unwrap();
        let vocab = model.config.vocab_size as u32;
        let positions = model.config.seq_len.min(48);
        let tokens: Vec<u32> = (0..positions as u32)
            .map(|i| (i * 7919 + 1) % vocab)
            .collect();
        for kernels in [Kernels::scalar(), Kernels::detect()] {
            let one_by_one = last_logits(&model, &tokens, 1, kernels, &Serial);
            for capacity in [7, 32] {
                for (threads, batched) in [
                    (1, last_logits(&model, &tokens, capacity, kernels, &Serial)),
                    (2, last_logits(&model, &tokens, capacity, kernels, &two)),
                ] {
                    assert!(
                        batched == one_by_one,
                        "{name}: {} kernels, batches of {capacity} on {threads} threads",
                        kernels.name()
                    );
                }
            }
        }
    }
}
