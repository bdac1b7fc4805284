//! The C API: the committed header is what cbindgen generates, and C programs built against
//! `libllama2.a` print the golden stories, report every misuse as an error code, and run
//! clean under valgrind's memcheck.

use std::ffi::OsString;
use std::process::Output;

use llama2_tests::capi::{
    capi_dir, compile_c, compile_example, header_path, run, run_valgrind, VALGRIND_ERROR_EXIT,
};
use llama2_tests::{
    assert_all_pass, exact_generate_cases, first_difference, model_file, read_file, read_jsonl,
    GenerateCase, TempDir,
};

/// The header cbindgen generates from `capi/` with `capi/cbindgen.toml`.
fn generated_header() -> Vec<u8> {
    let capi = capi_dir();
    let config_path = capi.join("cbindgen.toml");
    let config = cbindgen::Config::from_file(&config_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", config_path.display()));
    let bindings = cbindgen::Builder::new()
        .with_crate(&capi)
        .with_config(config)
        .generate()
        .unwrap_or_else(|e| panic!("cbindgen cannot generate the header: {e}"));
    let mut header = Vec::new();
    bindings.write(&mut header);
    header
}

/// `capi/include/llama2.h` is exactly what cbindgen generates from the crate. With
/// `LLAMA2_UPDATE_HEADER=1` set, it rewrites the header instead.
#[test]
fn header_is_up_to_date() {
    let generated = generated_header();
    let path = header_path();
    if std::env::var_os("LLAMA2_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        eprintln!("wrote {}", path.display());
        return;
    }
    assert!(path.is_file(), "missing header {}", path.display());
    let committed = read_file(&path);
    assert!(
        committed == generated,
        "{} is out of date with capi/src: regenerate it with\n  \
         LLAMA2_UPDATE_HEADER=1 cargo test -p llama2-tests --test capi header_is_up_to_date\n{}",
        path.display(),
        first_difference(&generated, &committed)
    );
}

/// The model files a golden case runs on: its own llama2.c model and tokenizer, or a GGUF
/// conversion of its model with the tokenizer inside (no `-z`).
#[derive(Clone, Copy)]
enum Files<'a> {
    Case,
    Gguf(&'a str),
}

/// The GGUF conversions of stories260K (the same f32 weights and vocabulary): the
/// `stories260K.bin` cases must print the same stories on them.
const STORIES260K_GGUF: [&str; 2] = ["stories260K.gguf", "stories260K-tied.gguf"];

/// The command line of a golden case for the C examples, which take llama2.c's flags:
/// `MODEL -z TOKENIZER ARGS...`, or `GGUF_MODEL ARGS...`.
fn case_args(case: &GenerateCase, files: Files<'_>) -> Vec<OsString> {
    let mut args = match files {
        Files::Case => vec![
            model_file(&case.model).into_os_string(),
            "-z".into(),
            model_file(&case.tokenizer).into_os_string(),
        ],
        Files::Gguf(model) => vec![model_file(model).into_os_string()],
    };
    args.extend(case.args.iter().map(Into::into));
    args
}

/// Why `output` of `case` (run on `files`) is not the golden story, if it is not.
fn story_mismatch(
    program: &str,
    case: &GenerateCase,
    files: Files<'_>,
    output: &Output,
) -> Option<String> {
    let model = match files {
        Files::Case => &case.model,
        Files::Gguf(model) => model,
    };
    if !output.status.success() {
        return Some(format!(
            "{program} {} ({model}): exited with {}: {}",
            case.name,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    (output.stdout != case.stdout.as_bytes()).then(|| {
        format!(
            "{program} {} ({model} {:?}): stdout differs: {}",
            case.name,
            case.args,
            first_difference(case.stdout.as_bytes(), &output.stdout)
        )
    })
}

/// Runs the C example `source` on every case, on `files`, and fails with the list of
/// mismatches.
fn check_stories(source: &str, cases: &[GenerateCase], files: Files<'_>) {
    assert!(!cases.is_empty(), "no generate.jsonl case selected");
    let dir = TempDir::new("capi-stories");
    let program = compile_example(source, dir.path());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let output = run(&program, &case_args(case, files));
            story_mismatch(source, case, files, &output)
        })
        .collect();
    assert_all_pass(&format!("{source} cases"), &failures, cases.len());
}

/// The exact golden cases on `stories260K.bin`, which its GGUF conversions must print too.
fn stories260k_cases() -> Vec<GenerateCase> {
    exact_generate_cases()
        .into_iter()
        .filter(|case| case.model == "stories260K.bin")
        .collect()
}

/// The golden case called `name`.
fn golden_case(name: &str) -> GenerateCase {
    read_jsonl::<GenerateCase>("generate.jsonl")
        .into_iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("generate.jsonl has no case {name:?}"))
}

/// Fails unless valgrind ran `program` to a successful exit and reported no error or leak.
fn assert_valgrind_clean(program: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(VALGRIND_ERROR_EXIT),
        "valgrind found errors or leaks in {program}:\n{stderr}"
    );
    assert!(
        output.status.success(),
        "{program} under valgrind exited with {}:\n{stderr}",
        output.status
    );
    assert!(
        stderr.contains("ERROR SUMMARY: 0 errors"),
        "valgrind's summary for {program} is missing or not clean:\n{stderr}"
    );
}

/// `generate.c`, linked with `libllama2.a`, prints every `exact: true` golden story byte for
/// byte (every format: v0, v1, Q8_0; both tokenizers). The `exact: false` cases depend on
/// the float summation order of the kernels, which the C example leaves to the library's
/// default; the CLI and library tests cover them.
#[test]
fn generate_c_prints_the_golden_stories() {
    check_stories("generate.c", &exact_generate_cases(), Files::Case);
}

/// `generate.c` on the GGUF conversions of stories260K, with no `-z` (the tokenizer from the
/// model file, `llama2_tokenizer_open_model()`), prints every exact `stories260K.bin` story
/// byte for byte.
#[test]
fn generate_c_prints_the_golden_stories_from_gguf_models() {
    let cases = stories260k_cases();
    for model in STORIES260K_GGUF {
        check_stories("generate.c", &cases, Files::Gguf(model));
    }
}

/// `loop.c` (its own loop of encode, forward, sample and decode, in static buffers sized for
/// 512-token vocabularies) prints the same stories.
#[test]
fn loop_c_prints_the_golden_stories() {
    let cases: Vec<GenerateCase> = exact_generate_cases()
        .into_iter()
        .filter(|case| case.tokenizer == "tok512.bin")
        .collect();
    check_stories("loop.c", &cases, Files::Case);
    // Its layer table and the GGUF vocabulary's BOS (`llama2_tokenizer_vocab()`).
    check_stories(
        "loop.c",
        &stories260k_cases(),
        Files::Gguf(STORIES260K_GGUF[0]),
    );
}

/// `generate.c` under valgrind's memcheck: no invalid access, no uninitialised read, no
/// leak of any kind, and still the golden story; greedy, and top-p (which sorts in the
/// sampler's scratch buffer); and greedy from the GGUF model (its layer table and the
/// tokenizer inside it).
#[test]
fn generate_c_is_clean_under_valgrind() {
    let dir = TempDir::new("capi-valgrind");
    let program = compile_example("generate.c", dir.path());
    let runs = [
        ("260k-greedy-prompt", Files::Case),
        ("260k-topp-doc-seed", Files::Case),
        ("260k-greedy-prompt", Files::Gguf(STORIES260K_GGUF[0])),
    ];
    for (name, files) in runs {
        let case = golden_case(name);
        let output = run_valgrind(&program, &case_args(&case, files));
        assert_valgrind_clean("generate.c", &output);
        if let Some(mismatch) = story_mismatch("generate.c (valgrind)", &case, files, &output) {
            panic!("{mismatch}");
        }
    }
}

/// `errors.c`: NULL pointers, short buffers, corrupt model and tokenizer files,
/// out-of-range tokens and positions, uninitialised and wrong-type handles, overlapping
/// buffers and invalid settings all return the documented error code from every function;
/// the buffer and step-by-step paths print what `llama2_generate()` prints. Run directly
/// and under valgrind.
#[test]
fn errors_c_gets_an_error_code_for_every_misuse() {
    let dir = TempDir::new("capi-errors");
    let program = compile_example("errors.c", dir.path());
    let args = [
        model_file("stories260K.bin"),
        model_file("tok512.bin"),
        model_file("synth_mqa_unshared.bin"),
        model_file("stories260K.gguf"),
    ];
    let output = run(&program, &args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(" 0 failed"),
        "errors.c failed ({}):\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{}", stdout.trim_end());
    let output = run_valgrind(&program, &args);
    assert_valgrind_clean("errors.c", &output);
}

/// The C program of `capi/README.md` (its first C code block) compiles and
/// prints the story it promises: the golden greedy story of "Once upon a time".
#[test]
fn readme_program_prints_the_golden_story() {
    let readme_path = capi_dir().join("README.md");
    let readme = String::from_utf8(read_file(&readme_path)).expect("capi/README.md is UTF-8");
    let (_, rest) = readme
        .split_once("```c\n")
        .unwrap_or_else(|| panic!("{} has no ```c block", readme_path.display()));
    let (program, _) = rest.split_once("```").expect("the ```c block ends");
    let dir = TempDir::new("capi-readme");
    let source = dir.write("readme.c", program.as_bytes());
    let exe = compile_c(&source, dir.path());
    let case = golden_case("260k-greedy-prompt");
    let output = run(
        &exe,
        &[model_file("stories260K.bin"), model_file("tok512.bin")],
    );
    if let Some(mismatch) = story_mismatch("capi/README.md's program", &case, Files::Case, &output)
    {
        panic!("{mismatch}");
    }
}
