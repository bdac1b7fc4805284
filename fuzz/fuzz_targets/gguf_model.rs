#![no_main]
// The body is llama2_fuzz_harness::gguf_model, which tests/tests/fuzz_regressions.rs also replays.
libfuzzer_sys::fuzz_target!(|data: &[u8]| llama2_fuzz_harness::gguf_model(data));
