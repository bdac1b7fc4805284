//! Chat mode and long generation: the Llama 2 chat template and its tokens, scripted
//! multi-turn sessions through a pipe, refusal of over-long turns, and generation of three
//! times `seq_len` tokens with a sliding window.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use llama2_core::{
    argmax, prompt_buffer_len, render_turn, rendered_len, Config, Format, Header, Model, Sampler,
    State, Strategy, Tokenizer,
};
use llama2_tests::{llama2_bin, load_model, model_file, read_file, TempDir};

/// Renders a turn into a fresh buffer.
fn render(system: Option<&[u8]>, user: &[u8]) -> Vec<u8> {
    let mut text = vec![0u8; rendered_len(system, user)];
    let len = render_turn(system, user, &mut text).unwrap();
    text.truncate(len);
    text
}

/// Encodes `text` with BOS using the 32000-token Llama 2 tokenizer.
fn llama_tokens(text: &[u8]) -> Vec<u32> {
    let bytes = read_file(&model_file("tokenizer.bin"));
    let mut index = vec![0u32; Tokenizer::index_len(32000).unwrap()];
    let tokenizer = Tokenizer::new(&bytes, 32000, &mut index).unwrap();
    let mut tokens = vec![0u32; prompt_buffer_len(text.len()).unwrap()];
    let n = tokenizer.encode(text, true, false, &mut tokens).unwrap();
    tokens.truncate(n);
    tokens
}

#[test]
fn the_first_turn_renders_and_encodes_like_the_reference() {
    let system = b"You are a helpful assistant.";
    let text = render(Some(system), b"Hi there");
    assert_eq!(
        text,
        b"[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHi there [/INST]"
    );
    // The ids Llama 2's reference tokenizer gives this string: "[INST]" is ▁[ INST ],
    // "<<SYS>>" is ▁<< SY S >>, "[/INST]" is ▁[ / INST ].
    assert_eq!(
        llama_tokens(&text),
        [
            1, 518, 25580, 29962, 3532, 14816, 29903, 6778, 13, 3492, 526, 263, 8444, 20255, 29889,
            13, 29966, 829, 14816, 29903, 6778, 13, 13, 18567, 727, 518, 29914, 25580, 29962
        ]
    );
}

#[test]
fn later_turns_and_empty_system_prompts_use_the_short_template() {
    assert_eq!(render(None, b"And then?"), b"[INST] And then? [/INST]");
    assert_eq!(render(Some(b""), b"Hi"), b"[INST] Hi [/INST]");
    assert_eq!(
        llama_tokens(b"[INST] Hi [/INST]"),
        [1, 518, 25580, 29962, 6324, 518, 29914, 25580, 29962]
    );
    let mut short = [0u8; 4];
    assert!(render_turn(None, b"Hi", &mut short).is_err());
}

/// A v1 model of stories260K's vocabulary whose every reply is a few random tokens and then
/// EOS: all layers are zero (the residual stream is the token's embedding), every embedding
/// row is `a·(1, …, 1)` with `a = 1` except EOS's, which is larger, so the logits are
/// `8·a` and EOS is chosen about a third of the time at temperature 1.
fn chatty_model(dir: &TempDir) -> std::path::PathBuf {
    let (dim, hidden, layers, heads, vocab, seq) =
        (8usize, 8usize, 1usize, 2usize, 512usize, 512usize);
    let config = Config {
        dim,
        hidden_dim: hidden,
        n_layers: layers,
        n_heads: heads,
        n_kv_heads: heads,
        vocab_size: vocab,
        seq_len: seq,
        shared_classifier: true,
    };
    let mut bytes = Header::new(&config, Format::V1)
        .unwrap()
        .as_bytes()
        .to_vec();
    let mut floats: Vec<f32> = Vec::new();
    floats.extend(std::iter::repeat_n(1.0, (2 * layers + 1) * dim)); // norms
    for token in 0..vocab {
        let a = if token == 2 { 1.675 } else { 1.0 };
        floats.extend(std::iter::repeat_n(a, dim));
    }
    let per_layer = 4 * dim * dim + 3 * hidden * dim;
    floats.extend(std::iter::repeat_n(0.0, layers * per_layer));
    bytes.extend(floats.iter().flat_map(|f| f.to_le_bytes()));
    dir.write("chatty.bin", &bytes)
}

/// Runs `llama2 MODEL -z tok512.bin ARGS` with `input` piped to stdin.
fn chat(model: &Path, args: &[&str], input: &str) -> Output {
    chat_bytes(model, args, input.as_bytes().to_vec())
}

/// Like [`chat`], with any bytes as input, fed from a thread while llama2 runs (it may stop
/// reading early: a failed write is not the test's).
fn chat_bytes(model: &Path, args: &[&str], input: Vec<u8>) -> Output {
    let mut child = Command::new(llama2_bin())
        .arg(model)
        .arg("-z")
        .arg(model_file("tok512.bin"))
        .args(["-m", "chat"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("llama2 starts");
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    output
}

#[test]
fn a_scripted_three_turn_session_ends_cleanly_at_end_of_input() {
    let dir = TempDir::new("chat");
    let model = chatty_model(&dir);
    let output = chat(
        &model,
        &["-y", "Be brief.", "-s", "7", "-n", "0"],
        "Hello\nTell me more\nGoodbye\n",
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    assert_eq!(stdout.matches("Assistant: ").count(), 3, "{stdout:?}");
    assert!(stderr.is_empty(), "{stderr:?}");
    // No prompts for input when stdin is not a terminal.
    assert!(!stdout.contains("User: "), "{stdout:?}");
}

#[test]
fn an_over_long_turn_is_refused_and_the_next_one_answered() {
    let dir = TempDir::new("chat-long");
    let model = chatty_model(&dir);
    let long = "a very long message ".repeat(20);
    let output = chat(
        &model,
        &["-y", "", "-s", "3", "--context", "48", "-n", "0"],
        &format!("{long}\nshort\n"),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    assert!(stderr.contains("send a shorter one"), "{stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert_eq!(stdout.matches("Assistant: ").count(), 2, "{stdout:?}");
}

/// A line longer than the positions left could hold (a few MB without a newline, as from
/// `/dev/zero` or a binary file) is skipped without being stored, with the usual refusal
/// note, and the next line is answered.
#[test]
fn an_endless_line_is_skipped_unstored_and_the_next_one_answered() {
    let dir = TempDir::new("chat-endless");
    let model = chatty_model(&dir);
    let mut input = vec![b'a'; 4 << 20];
    input.extend_from_slice(b"\nshort\n");
    let output = chat_bytes(&model, &["-y", "", "-s", "3", "-n", "0"], input);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("llama2: that message is over ")
            && stderr.contains("send a shorter one"),
        "{stderr:?}"
    );
    // The refused turn and the answered one.
    assert_eq!(stdout.matches("Assistant: ").count(), 2, "{stdout:?}");
}

/// Piped without `-y`, the first line is the system prompt: said on stderr, so a script
/// is not silently answered with nothing.
#[test]
fn piped_chat_without_y_says_the_first_line_is_the_system_prompt() {
    let dir = TempDir::new("chat-no-y");
    let model = chatty_model(&dir);
    let output = chat(&model, &["-s", "7", "-n", "0"], "Be brief.\nHello\n");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.contains("first line was taken as the system prompt"),
        "{stderr:?}"
    );
    assert_eq!(stdout.matches("Assistant: ").count(), 1, "{stdout:?}");
}

/// A system prompt that cannot fit even with an empty message ends the chat at once, with
/// one error naming where it came from, instead of refusing every line.
#[test]
fn a_system_prompt_that_cannot_fit_ends_the_chat_once() {
    let dir = TempDir::new("chat-system-long");
    let model = chatty_model(&dir);
    let system = "a very long system prompt ".repeat(4);
    let from_flag = chat(
        &model,
        &["-y", &system, "-s", "3", "--context", "48", "-n", "0"],
        "Hello\nAgain\n",
    );
    let from_stdin = chat(
        &model,
        &["-s", "3", "--context", "48", "-n", "0"],
        &format!("{system}\nHello\nAgain\n"),
    );
    for (output, subject) in [(from_flag, "-y/--system-prompt"), (from_stdin, "stdin")] {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
        assert!(
            stderr.starts_with(&format!("llama2: error: {subject}: the system prompt is "))
                && stderr.contains("more than the conversation's 48 positions"),
            "{stderr:?}"
        );
        assert!(!stdout.contains("Assistant: "), "{stdout:?}");
    }
}

/// Values starting with `-` are values: a system prompt that is a list.
#[test]
fn a_system_prompt_may_start_with_a_dash() {
    let dir = TempDir::new("chat-dash");
    let model = chatty_model(&dir);
    let output = chat(&model, &["-y", "- a list", "-s", "7", "-n", "0"], "Hello\n");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    assert!(stderr.is_empty(), "{stderr:?}");
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("Assistant: "));
}

/// A failed read of stdin is reported as stdin's, not stdout's.
#[test]
fn stdin_read_errors_name_stdin() {
    let dir = TempDir::new("chat-stdin-dir");
    let model = chatty_model(&dir);
    // Reading a directory fails (EISDIR).
    let output = Command::new(llama2_bin())
        .arg(&model)
        .arg("-z")
        .arg(model_file("tok512.bin"))
        .args(["-m", "chat", "-y", "", "-n", "0"])
        .stdin(std::fs::File::open(dir.path()).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(stderr.starts_with("llama2: error: stdin: "), "{stderr:?}");
}

/// Three times `seq_len` positions of stories260K through a 64-position sliding window:
/// no error, finite logits, every token in the vocabulary.
#[test]
fn a_sliding_window_generates_three_times_seq_len() {
    let bytes = load_model("stories260K.bin");
    let model = Model::from_bytes(bytes.bytes()).unwrap();
    let config = model.config;
    let mut buffer = vec![0f32; State::len_for(&config, 64).unwrap()];
    let mut state = State::new(&config, 64, &mut buffer).unwrap();
    state.set_sliding_window(true);
    let strategy = Strategy::new(1.0, 0.9).unwrap();
    let mut scratch = vec![Default::default(); config.vocab_size];
    let mut sampler = Sampler::new(strategy, 11, config.vocab_size, &mut scratch).unwrap();
    let mut token = 1;
    let mut distinct = std::collections::HashSet::new();
    for pos in 0..3 * config.seq_len {
        let logits = model
            .forward(&mut state, token, pos, &llama2_core::Serial)
            .unwrap_or_else(|e| panic!("position {pos}: {e}"));
        assert!(logits.iter().all(|v| v.is_finite()), "position {pos}");
        assert!(argmax(logits) < config.vocab_size);
        token = sampler.sample(logits).unwrap();
        assert!((token as usize) < config.vocab_size);
        distinct.insert(token);
    }
    // Still text, not one token repeated.
    assert!(distinct.len() > 50, "{} distinct tokens", distinct.len());
}

/// The CLI runs every step asked for with `--sliding-window`, far past `seq_len`.
#[test]
fn the_cli_generates_2000_tokens_with_a_256_position_window() {
    let output = Command::new(llama2_bin())
        .arg(model_file("stories260K.bin"))
        .arg("-z")
        .arg(model_file("tok512.bin"))
        .args([
            "-n",
            "2000",
            "--context",
            "256",
            "--sliding-window",
            "-s",
            "5",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    assert!(stderr.starts_with("achieved tok/s"), "{stderr:?}");
    // stories260K's tokens average about two bytes: 2000 of them are over 3000 bytes, far
    // more than the 512 positions of its seq_len could print.
    assert!(stdout.len() > 3000, "only {} bytes", stdout.len());
}
