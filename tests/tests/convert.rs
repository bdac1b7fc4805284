//! `llama2 convert` through the real binary: llama2.c → GGUF as llama.cpp's own converter
//! writes it, GGUF → llama2.c v0 and back byte for byte, the same generations from the
//! converted files, quantized outputs within tolerance of exact math over their own
//! weights, gguf-py reading every output, and the refusals.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use llama2_core::gguf::{GgmlType, Gguf};
use llama2_core::{Kernels, LayerWeights, Model, Serial, State};
use llama2_tests::{
    assert_all_pass, exact_generate_cases, first_difference, fixture, model_file, read_file,
    read_jsonl, run_llama2, workspace_root, AlignedBytes, LogitsCase, TempDir,
};

/// Runs `llama2 convert ARGS...`.
fn convert<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    let mut all: Vec<OsString> = vec!["convert".into()];
    all.extend(args.iter().map(|a| a.as_ref().to_os_string()));
    run_llama2(&all)
}

/// Runs `llama2 convert ARGS...` and fails with its stderr unless it succeeds.
fn converted<S: AsRef<std::ffi::OsStr>>(args: &[S]) {
    let output = convert(args);
    assert!(
        output.status.success(),
        "llama2 convert {:?} failed ({}): {}",
        args.iter()
            .map(|a| a.as_ref().to_os_string())
            .collect::<Vec<_>>(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A GGUF fixture file.
fn gguf_fixture(name: &str) -> PathBuf {
    fixture(&format!("gguf/{name}"))
}

/// stories260K.bin and tok512.bin converted to an F32 GGUF file in `dir`.
fn stories_gguf(dir: &TempDir) -> PathBuf {
    let out = dir.path().join("stories260K.gguf");
    converted(&[
        model_file("stories260K.bin"),
        out.clone(),
        "-z".into(),
        model_file("tok512.bin"),
    ]);
    out
}

/// The byte range of a v0 file's RoPE tables (which llama2.c never reads, and which may
/// differ in the last bit when recomputed).
fn v0_rope_range(file: &[u8]) -> std::ops::Range<usize> {
    let field = |i: usize| i32::from_le_bytes(file[4 * i..4 * i + 4].try_into().unwrap());
    let [dim, hidden, layers, heads, kv_heads, vocab, seq] =
        std::array::from_fn(|i| field(i).unsigned_abs() as usize);
    let kv_dim = dim * kv_heads / heads;
    let before = vocab * dim
        + layers * (2 * dim + 2 * dim * dim + 2 * dim * kv_dim + 3 * dim * hidden)
        + dim;
    let start = 28 + 4 * before;
    start..start + 4 * seq * (dim / heads)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Checks that the v0 file `back` is `original` (a v0 file) byte for byte, except its RoPE
/// tables; those of llama2.c's own exports (`pytorch_rope`) must be within one f32 rounding
/// of the originals (the synthetic fixtures store zeros there).
fn assert_same_v0(original: &[u8], back: &[u8], what: &str, pytorch_rope: bool) {
    assert_eq!(back.len(), original.len(), "{what}: length");
    let rope = v0_rope_range(original);
    assert!(
        back[..rope.start] == original[..rope.start],
        "{what}: header and weights before the RoPE tables differ: {}",
        first_difference(&original[..rope.start], &back[..rope.start])
    );
    assert!(
        back[rope.end..] == original[rope.end..],
        "{what}: the classifier after the RoPE tables differs"
    );
    if !pytorch_rope {
        return;
    }
    for (i, (a, b)) in f32s(&original[rope.clone()])
        .iter()
        .zip(f32s(&back[rope]))
        .enumerate()
    {
        assert!(
            (a - b).abs() <= 2e-7,
            "{what}: RoPE table value {i}: {a} vs {b}"
        );
    }
}

/// What llama.cpp's own llama2.c converter wrote for stories260K (without the `output`
/// copy, since the classifier is shared) is what `convert` writes: the same tensors (names,
/// shapes, types, bytes) and the same hyperparameters and vocabulary.
#[test]
fn llama2c_to_gguf_matches_llama_cpp_s_converter() {
    let dir = TempDir::new("convert-matches");
    let our_bytes = AlignedBytes::new(&read_file(&stories_gguf(&dir)));
    let theirs = AlignedBytes::new(&read_file(&gguf_fixture("stories260K-tied.gguf")));
    let (ours, theirs) = (
        Gguf::parse(our_bytes.bytes()).unwrap(),
        Gguf::parse(theirs.bytes()).unwrap(),
    );
    assert_eq!(ours.version(), 3);
    assert_eq!(ours.tensor_count(), theirs.tensor_count());
    for want in theirs.tensors() {
        let got = ours
            .tensor(want.name)
            .unwrap_or_else(|| panic!("no tensor {}", want.name));
        assert_eq!(got.dims(), want.dims(), "{}", want.name);
        assert_eq!(got.ggml_type, want.ggml_type, "{}", want.name);
        assert!(got.data == want.data, "{}: data differs", want.name);
    }
    // Every key of theirs with the same value, but the two "none" ids (u32::MAX), which
    // mean the same as no key.
    let mut failures = Vec::new();
    for (key, want) in theirs.metadata_entries() {
        if key.ends_with("seperator_token_id") || key.ends_with("padding_token_id") {
            continue;
        }
        match ours.metadata(key) {
            Some(got) if got == want => {}
            got => failures.push(format!("{key}: ours {got:?}, llama.cpp's {want:?}")),
        }
    }
    assert_all_pass("metadata keys", &failures, theirs.metadata_len());
    let get = |key: &str| ours.metadata(key).unwrap();
    assert_eq!(get("general.file_type").as_u32(), Some(0));
    assert_eq!(get("llama.rope.freq_base").as_f32(), Some(10000.0));
    // Ours only adds `general.alignment`: every tensor on a 64-byte line of the file.
    assert_eq!(ours.metadata_len(), theirs.metadata_len() + 1);
    assert_eq!(get("general.alignment").as_u32(), Some(64));
    for tensor in ours.tensors() {
        let offset = tensor.data.as_ptr() as usize - our_bytes.bytes().as_ptr() as usize;
        assert_eq!(offset % 64, 0, "{} at {offset}", tensor.name);
    }
}

/// stories260K.bin → GGUF → v0 gives back the header and every weight byte for byte, and
/// tok512.bin byte for byte; so does the unshared, multi-query synth_mqa_unshared.bin; and a
/// v1 input gives the same GGUF file as its v0 twin.
#[test]
fn round_trip_gives_back_the_llama2c_files() {
    let dir = TempDir::new("convert-round-trip");
    for (model, tokenizer, pytorch_rope) in [
        ("stories260K.bin", "tok512.bin", true),
        ("synth_mqa_unshared.bin", "tok512.bin", false),
    ] {
        let gguf = dir.path().join(format!("{model}.gguf"));
        let back = dir.path().join(format!("back-{model}"));
        converted(&[
            model_file(model),
            gguf.clone(),
            "-z".into(),
            model_file(tokenizer),
        ]);
        converted(&[gguf.clone(), back.clone()]);
        assert_same_v0(
            &read_file(&model_file(model)),
            &read_file(&back),
            model,
            pytorch_rope,
        );
        let tokenizer_back = back.with_extension("tokenizer.bin");
        assert!(
            read_file(&tokenizer_back) == read_file(&model_file(tokenizer)),
            "{model}: {} differs from {tokenizer}",
            tokenizer_back.display()
        );
    }
    let v1 = dir.path().join("v1.gguf");
    converted(&[
        model_file("stories260K_v1.bin"),
        v1.clone(),
        "-z".into(),
        model_file("tok512.bin"),
    ]);
    assert!(read_file(&v1) == read_file(&dir.path().join("stories260K.bin.gguf")));
}

/// A v2 (Q8) input is dequantized: the GGUF holds exactly its decoded values.
#[test]
fn q8_input_is_dequantized() {
    let dir = TempDir::new("convert-q80");
    let out = dir.path().join("q80.gguf");
    converted(&[
        model_file("stories260K_q80.bin"),
        out.clone(),
        "-z".into(),
        model_file("tok512.bin"),
    ]);
    let q80 = AlignedBytes::new(&read_file(&model_file("stories260K_q80.bin")));
    let q80 = Model::from_bytes(q80.bytes()).unwrap();
    let bytes = AlignedBytes::new(&read_file(&out));
    let file = Gguf::parse(bytes.bytes()).unwrap();
    let c = q80.config;
    let mut row = vec![0f32; c.hidden_dim];
    for (name, matrix) in [
        ("token_embd.weight", q80.weights.token_embedding),
        ("blk.4.ffn_down.weight", q80.weights.layer(&c, 4).w2),
    ] {
        let tensor = file.tensor(name).unwrap();
        assert_eq!(tensor.ggml_type, GgmlType::F32);
        let values = f32s(tensor.data);
        let row = &mut row[..matrix.cols()];
        for (r, stored) in values.chunks_exact(matrix.cols()).enumerate() {
            matrix.copy_row(r, row);
            assert_eq!(stored, &row[..], "{name} row {r}");
        }
    }
}

/// The GGUF output, run with no tokenizer file, and the v0 file made back from it, run
/// with its tokenizer, print every exact stories260K.bin story byte for byte.
#[test]
fn converted_files_generate_the_golden_stories() {
    let dir = TempDir::new("convert-generate");
    let gguf = stories_gguf(&dir);
    let back = dir.path().join("back.bin");
    converted(&[gguf.clone(), back.clone()]);
    let cases: Vec<_> = exact_generate_cases()
        .into_iter()
        .filter(|c| c.model == "stories260K.bin")
        .collect();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let runs = [
        (gguf.clone(), None),
        (back.clone(), Some(back.with_extension("tokenizer.bin"))),
    ];
    for case in &cases {
        for (model, tokenizer) in &runs {
            let mut args: Vec<OsString> = vec![model.clone().into()];
            if let Some(t) = tokenizer {
                args.extend(["-z".into(), t.clone().into()]);
            }
            args.extend(case.args.iter().map(Into::into));
            let output = run_llama2(&args);
            if output.stdout != case.stdout.as_bytes() {
                failures.push(format!(
                    "{} on {}: {} {}",
                    case.name,
                    model.display(),
                    first_difference(case.stdout.as_bytes(), &output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
    }
    assert_all_pass("stories", &failures, 2 * cases.len());
}

// ---------------------------------------------------------------------------------------
// Quantized outputs against exact math over their own weights
// ---------------------------------------------------------------------------------------

/// The logits of exact math (f64 sums) over the weights of the model in `bytes`, decoded by
/// `Matrix::copy_row`, for `tokens` fed one per position: llama2.c's forward pass.
fn reference_logits(bytes: &[u8], tokens: &[u32]) -> Vec<Vec<f64>> {
    let mut table = vec![LayerWeights::EMPTY; Model::layer_table_len(bytes).unwrap()];
    let model = Model::parse(bytes, &mut table).unwrap();
    let (c, w) = (model.config, model.weights);
    let eps = f64::from(model.numerics.rms_eps);
    let base = f64::from(model.numerics.rope_base);
    let dense = |m: llama2_core::Matrix<'_>| -> Vec<Vec<f64>> {
        let mut row = vec![0f32; m.cols()];
        (0..m.rows())
            .map(|r| {
                m.copy_row(r, &mut row);
                row.iter().map(|&v| f64::from(v)).collect()
            })
            .collect()
    };
    let matvec = |m: &[Vec<f64>], x: &[f64]| -> Vec<f64> {
        m.iter()
            .map(|row| row.iter().zip(x).map(|(a, b)| a * b).sum())
            .collect()
    };
    let rmsnorm = |x: &[f64], g: &[f32]| -> Vec<f64> {
        let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64 + eps;
        let scale = 1.0 / ms.sqrt();
        x.iter()
            .zip(g)
            .map(|(v, &g)| v * scale * f64::from(g))
            .collect()
    };
    let embedding = dense(w.token_embedding);
    let classifier = dense(w.classifier);
    let layers: Vec<_> = (0..c.n_layers)
        .map(|l| {
            let layer = w.layer(&c, l);
            let m = layer.named_matrices().map(|(_, m)| dense(m));
            (layer.rms_att, layer.rms_ffn, m)
        })
        .collect();
    let (hs, kv_dim) = (c.head_size(), c.kv_dim());
    let group = c.n_heads / c.n_kv_heads;
    let rope = |v: &mut [f64], pos: usize| {
        for i in (0..v.len()).step_by(2) {
            let freq = base.powf(-((i % hs) as f64) / hs as f64);
            let (s, co) = (pos as f64 * freq).sin_cos();
            let (a, b) = (v[i], v[i + 1]);
            v[i] = a * co - b * s;
            v[i + 1] = a * s + b * co;
        }
    };
    let mut keys: Vec<Vec<Vec<f64>>> = vec![Vec::new(); c.n_layers];
    let mut values: Vec<Vec<Vec<f64>>> = vec![Vec::new(); c.n_layers];
    let mut out = Vec::new();
    for (pos, &token) in tokens.iter().enumerate() {
        let mut x = embedding[token as usize].clone();
        for (l, (att, ffn, [wq, wk, wv, wo, w1, w2, w3])) in layers.iter().enumerate() {
            let xb = rmsnorm(&x, att);
            let (mut q, mut k, v) = (matvec(wq, &xb), matvec(wk, &xb), matvec(wv, &xb));
            rope(&mut q, pos);
            rope(&mut k, pos);
            keys[l].push(k);
            values[l].push(v);
            let mut attended = vec![0f64; c.dim];
            for h in 0..c.n_heads {
                let kv = (h / group) * hs;
                let q = &q[h * hs..(h + 1) * hs];
                let scores: Vec<f64> = keys[l]
                    .iter()
                    .map(|k| {
                        let k = &k[kv..kv + hs];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (hs as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = exps.iter().sum();
                for (e, v) in exps.iter().zip(&values[l]) {
                    for (o, v) in attended[h * hs..(h + 1) * hs]
                        .iter_mut()
                        .zip(&v[kv..kv + hs])
                    {
                        *o += e / total * v;
                    }
                }
            }
            debug_assert_eq!(kv_dim, keys[l][0].len());
            for (x, d) in x.iter_mut().zip(matvec(wo, &attended)) {
                *x += d;
            }
            let xb = rmsnorm(&x, ffn);
            let gate = matvec(w1, &xb);
            let up = matvec(w3, &xb);
            let hidden: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            for (x, d) in x.iter_mut().zip(matvec(w2, &hidden)) {
                *x += d;
            }
        }
        out.push(matvec(&classifier, &rmsnorm(&x, w.rms_final)));
    }
    out
}

/// The engine's logits for `tokens` with `kernels`, one thread.
fn engine_logits(bytes: &[u8], tokens: &[u32], kernels: Kernels) -> Vec<Vec<f32>> {
    let mut table = vec![LayerWeights::EMPTY; Model::layer_table_len(bytes).unwrap()];
    let model = Model::parse(bytes, &mut table).unwrap();
    let mut buffer = vec![0f32; State::len_for(&model.config, tokens.len()).unwrap()];
    let mut state = State::new(&model.config, tokens.len(), &mut buffer).unwrap();
    state.set_kernels(kernels);
    tokens
        .iter()
        .enumerate()
        .map(|(pos, &t)| model.forward(&mut state, t, pos, &Serial).unwrap().to_vec())
        .collect()
}

/// The engine's logits against the reference, within `tolerance` (`max_abs`, and
/// `mean_abs` if it has one); a NaN fails. Returns the failures.
fn compare(
    label: &str,
    engine: &[Vec<f32>],
    reference: &[Vec<f64>],
    tolerance: llama2_tests::Tolerance,
) -> Vec<String> {
    let errors: Vec<f64> = engine
        .iter()
        .flatten()
        .zip(reference.iter().flatten())
        .map(|(e, r)| (f64::from(*e) - r).abs())
        .collect();
    let max = errors
        .iter()
        .cloned()
        .fold(0f64, |m, e| if e.is_nan() { e } else { m.max(e) });
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    eprintln!(
        "{label}: max abs {max:e} (bound {:e}), mean abs {mean:e}",
        tolerance.max_abs
    );
    let mut failures = Vec::new();
    if max.is_nan() || max > f64::from(tolerance.max_abs) {
        failures.push(format!(
            "{label}: max abs error {max:e} exceeds {:e}",
            tolerance.max_abs
        ));
    }
    if let Some(bound) = tolerance.mean_abs {
        if mean.is_nan() || mean > f64::from(bound) {
            failures.push(format!(
                "{label}: mean abs error {mean:e} exceeds {bound:e}"
            ));
        }
    }
    failures
}

/// `convert --type q4_0` and `--type q4_k` of the synthK weights (from synthK-F16.gguf,
/// through a v0 file) run, and their logits stay within the tolerance
/// `golden/gguf_logits.jsonl` gives llama.cpp's own Q4_0 and Q4_K_M files of the same
/// model, measured the same way: against exact math (f64) over the file's own decoded
/// weights. That tolerance is what an engine that decodes every block right stays within;
/// comparing with the F32 model's logits instead would measure the quantization, not the
/// engine.
#[test]
fn quantized_outputs_stay_within_tolerance_of_their_own_weights() {
    let dir = TempDir::new("convert-quantized");
    let v0 = dir.path().join("synthK.bin");
    converted(&[gguf_fixture("synthK-F16.gguf"), v0.clone()]);
    let tokenizer = v0.with_extension("tokenizer.bin");
    let cases: Vec<LogitsCase> = read_jsonl("gguf_logits.jsonl");
    let mut failures = Vec::new();
    for (ty, entry) in [("q4_0", "synthK-Q4_0"), ("q4_k", "synthK-Q4_K_M")] {
        let case = cases.iter().find(|c| c.name == entry).unwrap();
        let out = dir.path().join(format!("synthK-{ty}.gguf"));
        converted(&[
            v0.clone().into_os_string(),
            out.clone().into(),
            "-z".into(),
            tokenizer.clone().into(),
            "--type".into(),
            ty.into(),
        ]);
        let bytes = AlignedBytes::new(&read_file(&out));
        let tokens = &case.tokens[..case.positions];
        let reference = reference_logits(bytes.bytes(), tokens);
        for kernels in [Kernels::scalar(), Kernels::detect()] {
            let label = format!("{ty} ({} kernels)", kernels.name());
            let engine = engine_logits(bytes.bytes(), tokens, kernels);
            failures.extend(compare(&label, &engine, &reference, case.tolerance));
        }
        // And the command runs it, with the vocabulary from the file.
        let run = run_llama2(&[
            out.as_os_str(),
            "-n".as_ref(),
            "20".as_ref(),
            "-t".as_ref(),
            "0".as_ref(),
        ]);
        if !run.status.success() || run.stdout.is_empty() {
            failures.push(format!(
                "{ty}: llama2 {} -n 20 -t 0 failed: {}",
                out.display(),
                String::from_utf8_lossy(&run.stderr)
            ));
        }
    }
    assert_all_pass("quantized conversions", &failures, 6);
}

// ---------------------------------------------------------------------------------------
// gguf-py
// ---------------------------------------------------------------------------------------

/// The Python with gguf-py that scripts/test.sh installs (`$LLAMA2_GGUF_PYTHON`, else its
/// virtual environment under target/). Never skipped: a machine without it fails here.
fn gguf_python() -> PathBuf {
    let python = std::env::var_os("LLAMA2_GGUF_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/gguf-py/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import gguf"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "gguf-py is not installed at {} (this test is never skipped): run scripts/test.sh, \
         which installs it, or set LLAMA2_GGUF_PYTHON to a Python with `pip install gguf`",
        python.display()
    );
    python
}

fn check_with_gguf_py(python: &Path, file: &Path, f32_reference: Option<&Path>) -> Option<String> {
    let mut command = Command::new(python);
    command
        .arg(workspace_root().join("scripts/check_gguf.py"))
        .arg(file);
    if let Some(reference) = f32_reference {
        command.arg("--f32").arg(reference);
    }
    let output = command.output().expect("run check_gguf.py");
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
    (!output.status.success()).then(|| {
        format!(
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })
}

/// gguf-py reads every key and tensor of each output type, with llama.cpp's names, shapes
/// and types; the F16, BF16, Q8_0 and Q4_0 tensors are exactly what gguf-py's reference
/// quantizers make of the F32 weights, and the Q4_K ones decode within a step of them.
#[test]
fn gguf_py_reads_every_output() {
    let python = gguf_python();
    let dir = TempDir::new("convert-gguf-py");
    let mut failures = Vec::new();
    let stories = stories_gguf(&dir);
    failures.extend(check_with_gguf_py(&python, &stories, None));
    // synth_32k (rows of 32 and 96 values) for the 32-blocks, synthK (256, 768) for Q4_K.
    let synth_k = dir.path().join("synthK.bin");
    converted(&[gguf_fixture("synthK-F16.gguf"), synth_k.clone()]);
    let models = [
        (
            model_file("synth_32k.bin"),
            model_file("tokenizer.bin"),
            &["f16", "bf16", "q8_0", "q4_0"][..],
        ),
        (
            synth_k.clone(),
            synth_k.with_extension("tokenizer.bin"),
            &["q4_k", "q8_0"][..],
        ),
    ];
    let mut checked = 1;
    for (i, (model, tokenizer, types)) in models.iter().enumerate() {
        let f32_out = dir.path().join(format!("{i}-f32.gguf"));
        converted(&[
            model.clone(),
            f32_out.clone(),
            "-z".into(),
            tokenizer.clone(),
        ]);
        for ty in *types {
            let out = dir.path().join(format!("{i}-{ty}.gguf"));
            converted(&[
                model.clone().into_os_string(),
                out.clone().into(),
                "-z".into(),
                tokenizer.clone().into(),
                "--type".into(),
                ty.into(),
            ]);
            failures.extend(check_with_gguf_py(&python, &out, Some(&f32_out)));
            checked += 1;
        }
    }
    assert_all_pass("files gguf-py checked", &failures, checked);
}

// ---------------------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------------------

/// Replaces the f32 value of metadata `key` in a GGUF file.
fn set_f32_key(file: &mut [u8], key: &str, value: f32) {
    let mut needle = (key.len() as u64).to_le_bytes().to_vec();
    needle.extend(key.as_bytes());
    let at = file
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("no key {key}"))
        + needle.len();
    assert_eq!(file[at..at + 4], 6u32.to_le_bytes(), "{key} is an f32");
    file[at + 4..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// Each refusal is one line naming its subject, exits non-zero and writes nothing.
#[test]
fn refusals_name_the_problem_and_write_nothing() {
    let dir = TempDir::new("convert-refusals");
    let stories = stories_gguf(&dir);
    let mut eps = read_file(&stories);
    set_f32_key(&mut eps, "llama.attention.layer_norm_rms_epsilon", 1e-6);
    let eps = dir.write("eps.gguf", &eps);
    let mut base = read_file(&stories);
    set_f32_key(&mut base, "llama.rope.freq_base", 500000.0);
    let base = dir.write("base.gguf", &base);
    let out = dir.path().join("out");
    let s = |p: &Path| p.as_os_str().to_os_string();
    let bin = model_file("stories260K.bin");
    let tok = model_file("tok512.bin");
    let cases: Vec<(Vec<OsString>, &[&str])> = vec![
        (
            vec![
                s(&bin),
                s(&out),
                "-z".into(),
                s(&tok),
                "--type".into(),
                "q4_0".into(),
            ],
            &[
                "--type q4_0",
                "blk.0.ffn_down.weight",
                "172",
                "Q4_0 block of 32",
            ],
        ),
        (
            vec![
                s(&bin),
                s(&out),
                "-z".into(),
                s(&tok),
                "--type".into(),
                "q4_k".into(),
            ],
            &["--type q4_k", "token_embd.weight", "Q4_K block of 256"],
        ),
        (
            vec![s(&eps), s(&out)],
            &["eps.gguf", "RMSNorm epsilon", "1e-6"],
        ),
        (
            vec![s(&base), s(&out)],
            &["base.gguf", "RoPE base is 500000"],
        ),
        (
            vec![s(&stories), s(&out), "--type".into(), "q8_0".into()],
            &["--type", "always f32"],
        ),
        (
            vec![s(&stories), s(&out), "-z".into(), s(&tok)],
            &["-z", "its own vocabulary"],
        ),
        (
            vec![s(&stories), s(&out), "--tokenizer-out".into(), s(&out)],
            &["--tokenizer-out", "is also OUT"],
        ),
        (
            vec![
                s(&bin),
                s(&out),
                "-z".into(),
                s(&tok),
                "--tokenizer-out".into(),
                "t".into(),
            ],
            &["--tokenizer-out", "only a GGUF input"],
        ),
        (
            vec![s(&bin), s(&bin), "-z".into(), s(&tok)],
            &["stories260K.bin"],
        ),
    ];
    let mut failures = Vec::new();
    for (args, expected) in &cases {
        let output = convert(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let one_line = stderr.lines().count() == 1 && stderr.starts_with("llama2: error: ");
        let named = expected.iter().all(|e| stderr.contains(e));
        if output.status.success() || !one_line || !named {
            failures.push(format!(
                "{args:?}: {} {stderr:?}, expected {expected:?}",
                output.status
            ));
        }
        if out.exists() || out.with_extension("tokenizer.bin").exists() {
            failures.push(format!("{args:?}: wrote an output"));
        }
    }
    assert_all_pass("refusals", &failures, cases.len());
}

// ---------------------------------------------------------------------------------------
// bench on GGUF models
// ---------------------------------------------------------------------------------------

/// `bench` runs a GGUF file and the `--dtype q4_0` shapes (GGUF made in memory by the same
/// writer), reading the bytes a Q4_0 model has per token; a shape whose rows the blocks do
/// not divide is refused naming the flag.
#[test]
fn bench_takes_gguf_files_and_q4_shapes() {
    let dir = TempDir::new("convert-bench");
    let stories = stories_gguf(&dir);
    let quick = [
        "--runs",
        "1",
        "--prompt-tokens",
        "2",
        "--gen-tokens",
        "2",
        "--json",
    ];
    let bench = |target: &[&std::ffi::OsStr]| {
        let mut args: Vec<OsString> = vec!["bench".into()];
        args.extend(target.iter().map(|a| a.to_os_string()));
        args.extend(quick.iter().map(OsString::from));
        let output = run_llama2(&args);
        assert!(
            output.status.success(),
            "bench {target:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&output.stdout).unwrap()
    };
    let report = bench(&[stories.as_os_str()]);
    // All F32: the bytes of every tensor but the embedding's (which is the classifier).
    assert_eq!(report["weight_bytes_per_token"], 1_040_128);
    // One untimed run first unless told otherwise.
    assert_eq!(report["warmup_runs"], 1);
    let report = bench(&[stories.as_os_str(), "--no-warmup".as_ref()]);
    assert_eq!(report["warmup_runs"], 0);
    assert_eq!(report["runs"], 1);

    let report = bench(&[
        "--shape".as_ref(),
        "15M".as_ref(),
        "--dtype".as_ref(),
        "q4_0".as_ref(),
    ]);
    assert_eq!(report["model"], "random 15M q4_0 (GGUF)");
    let (dim, hidden, layers, vocab) = (288, 768, 6, 32000);
    let q4_0 = |values: usize| values / 32 * 18;
    let per_layer = q4_0(4 * dim * dim + 3 * dim * hidden) + 2 * 4 * dim;
    let expected = layers * per_layer + 4 * dim + q4_0(vocab * dim);
    assert_eq!(report["weight_bytes_per_token"], expected);

    let output = run_llama2(&["bench", "--shape", "15M", "--dtype", "q4_k", "--runs", "1"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.starts_with("llama2: error: --dtype q4_k: the 15M shape: ")
            && stderr.contains("not a multiple of the Q4_K block of 256")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// Quantizing a NaN or an infinity spoils its block, so `--type q8_0|q4_0|q4_k` refuses
/// non-finite weights by tensor name, as `quantize` does, unless `--allow-non-finite`; the
/// float types keep them as they are.
#[test]
fn non_finite_weights_are_refused_before_quantizing_unless_allowed() {
    let dir = TempDir::new("convert-non-finite");
    let v0 = dir.path().join("synthK.bin");
    converted(&[gguf_fixture("synthK-F16.gguf"), v0.clone()]);
    let tokenizer = v0.with_extension("tokenizer.bin");
    let mut bytes = read_file(&v0);
    // The v0 header is 28 bytes; the token embedding comes first.
    bytes[28 + 4 * 5..28 + 4 * 6].copy_from_slice(&f32::NAN.to_le_bytes());
    let bad = dir.write("bad.bin", &bytes);
    let out = dir.path().join("out.gguf");
    let args = |ty: &str, extra: &[&str]| {
        let mut args: Vec<OsString> = vec![
            bad.clone().into(),
            out.clone().into(),
            "-z".into(),
            tokenizer.clone().into(),
            "--type".into(),
            ty.into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        args
    };
    for ty in ["q8_0", "q4_0", "q4_k"] {
        let refused = convert(&args(ty, &[]));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{ty}: {stderr}");
        assert!(
            stderr.contains("token_embd.weight: 1 NaN") && stderr.contains("--allow-non-finite"),
            "{ty}: {stderr}"
        );
        assert!(!out.exists(), "{ty}: nothing is written");
        converted(&args(ty, &["--allow-non-finite"]));
        std::fs::remove_file(&out).unwrap();
    }
    converted(&args("f16", &[]));
}
