//! `llama2 bench --shape S --dtype D --save-model OUT`: the file holds the weights that
//! `bench --shape` measures, in the layout the other engines read (llama2.c's `run` reads
//! only version 0, `runq` version 2), so that scripts/compare.sh runs every engine on the
//! same weights.

use llama2_cli::convert::OutType;
use llama2_cli::synthetic::{quantized, random_f32_model, random_gguf, Shape};
use llama2_core::{Format, Kernels, LayerWeights, Model, Serial, State};
use llama2_tests::{read_file, run_llama2, TempDir};

/// Runs `llama2 bench --shape SHAPE --dtype DTYPE --save-model OUT` and returns OUT's bytes.
fn saved(dir: &TempDir, shape: &str, dtype: &str) -> Vec<u8> {
    let out = dir.path().join(format!("{shape}-{dtype}.model"));
    let output = run_llama2(&[
        "bench".as_ref(),
        "--shape".as_ref(),
        shape.as_ref(),
        "--dtype".as_ref(),
        dtype.as_ref(),
        "--save-model".as_ref(),
        out.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "--save-model {dtype}: {stderr}");
    // It writes the file instead of measuring: no report.
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert!(stderr.starts_with("wrote "), "{stderr}");
    read_file(&out)
}

/// Teacher-forced logits of `bytes` at `positions` positions, with the scalar kernels
/// (deterministic, whatever the machine).
fn logits(bytes: &[u8], positions: usize) -> Vec<f32> {
    let mut layers = vec![LayerWeights::EMPTY; Model::layer_table_len(bytes).unwrap()];
    let model = Model::parse(bytes, &mut layers).unwrap();
    let mut buffer = vec![0f32; State::len_for(&model.config, positions).unwrap()];
    let mut state = State::new(&model.config, positions, &mut buffer).unwrap();
    state.set_kernels(Kernels::scalar());
    let mut all = Vec::new();
    for pos in 0..positions {
        let token = (pos * 37 % model.config.vocab_size) as u32;
        all.extend_from_slice(model.forward(&mut state, token, pos, &Serial).unwrap());
    }
    all
}

/// fp32 is written as version 0 (the in-memory model is version 1, which `run` cannot
/// read): the same config, and the same weights, so the logits agree bit for bit.
#[test]
fn a_saved_f32_model_is_version_0_with_the_measured_weights() {
    let dir = TempDir::new("save-model-f32");
    let bytes = saved(&dir, "260K", "f32");
    let model = Model::from_bytes(&bytes).unwrap();
    assert_eq!(model.format, Format::V0);
    let measured = random_f32_model(&Shape::S260K.config());
    let in_memory = Model::from_bytes(measured.bytes()).unwrap();
    assert_eq!(in_memory.format, Format::V1);
    assert_eq!(model.config, in_memory.config);
    let (expected, actual) = (logits(measured.bytes(), 8), logits(&bytes, 8));
    let same = expected
        .iter()
        .zip(&actual)
        .all(|(e, a)| e.to_bits() == a.to_bits());
    assert!(same && expected.len() == actual.len(), "the logits differ");
}

/// Q8_0 is the version 2 file `bench --shape --dtype q8` measures, byte for byte, with the
/// group size llama2.c's export would take (the largest power of two up to 64 dividing dim
/// and hidden_dim: 4 for 260K's 64 and 172).
#[test]
fn a_saved_q8_model_is_the_measured_version_2_file() {
    let dir = TempDir::new("save-model-q8");
    let bytes = saved(&dir, "260K", "q8");
    let fp32 = random_f32_model(&Shape::S260K.config());
    let measured = quantized(&Model::from_bytes(fp32.bytes()).unwrap()).unwrap();
    assert!(bytes == measured.bytes(), "the saved Q8_0 file differs");
    let model = Model::from_bytes(&bytes).unwrap();
    assert_eq!(model.format, Format::V2 { group_size: 4 });
}

/// Q4_0 is the GGUF file `bench --shape --dtype q4_0` measures, byte for byte (on 15M:
/// 260K's rows are not whole Q4_0 blocks).
#[test]
fn a_saved_q4_0_model_is_the_measured_gguf_file() {
    let dir = TempDir::new("save-model-q4_0");
    let bytes = saved(&dir, "15M", "q4_0");
    let fp32 = random_f32_model(&Shape::S15M.config());
    let measured = random_gguf(&Model::from_bytes(fp32.bytes()).unwrap(), OutType::Q4_0).unwrap();
    assert!(bytes == measured.bytes(), "the saved GGUF file differs");
}

/// `bench --help` names the flag and the layouts; a model file with it is refused on one
/// line, writing nothing (only a --shape model is saved).
#[test]
fn save_model_is_documented_and_only_for_shapes() {
    let output = run_llama2(&["bench", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(
        help.contains("--save-model <FILE>") && help.contains("version 0"),
        "{help}"
    );

    let dir = TempDir::new("save-model-refused");
    let model = dir.write(
        "model.bin",
        random_f32_model(&Shape::S260K.config()).bytes(),
    );
    let out = dir.path().join("out.bin");
    let output = run_llama2(&[
        "bench".as_ref(),
        model.as_os_str(),
        "--save-model".as_ref(),
        out.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.starts_with("llama2: error: ")
            && stderr.contains("--save-model")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    assert!(!out.exists());
}
