//! Memory is bounded by what a run uses, not by what a header claims: a model whose header
//! says `seq_len` is four million positions costs no more than the positions generated.
//!
//! Its own test binary, because it reads the peak resident memory of every child process the
//! binary waited for (`getrusage(RUSAGE_CHILDREN)`).
#![cfg(unix)]

use llama2_tests::{llama2_bin, model_file, read_fixture, run_llama2, TempDir};

/// The KV cache of stories260K at `CLAIMED_SEQ_LEN` positions: 2 × 5 layers × 32 values ×
/// 4 bytes per position, 5.4 GB in all, which the run must not touch.
const CLAIMED_SEQ_LEN: i32 = 1 << 22;
/// Far above a run that touches only the positions it generates (a few MB) and anything a
/// no-op `cargo build` of the binary uses, far below zero-filling the claimed cache.
const PEAK_LIMIT_BYTES: i64 = 1 << 30;

#[test]
fn a_huge_claimed_seq_len_costs_only_the_positions_the_run_uses() {
    // Built (or found built) before the measured run, so the build is not what is measured.
    llama2_bin();
    let mut bytes = read_fixture("models/stories260K_v1.bin");
    // v1 header: magic, version, then dim, hidden_dim, n_layers, n_heads, n_kv_heads,
    // vocab_size, seq_len (fixtures README).
    bytes[32..36].copy_from_slice(&CLAIMED_SEQ_LEN.to_le_bytes());
    let dir = TempDir::new("huge-seq-len");
    let model = dir.write("model.bin", &bytes);
    // -n 0: run the whole context, which is the claimed seq_len; the story stops at BOS.
    let tokenizer = model_file("tok512.bin");
    let args = [
        model.as_os_str(),
        "-z".as_ref(),
        tokenizer.as_os_str(),
        "-t".as_ref(),
        "0".as_ref(),
        "-n".as_ref(),
        "0".as_ref(),
    ];
    let output = run_llama2(&args);
    assert!(
        output.status.success(),
        "llama2 failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.len() > 100, "no story: {:?}", output.stdout);
    let peak = children_peak_rss_bytes();
    assert!(
        peak < PEAK_LIMIT_BYTES,
        "a child used {peak} bytes at its peak: the KV cache the header claims was touched"
    );
}

/// The largest resident set of any child this process waited for, in bytes.
fn children_peak_rss_bytes() -> i64 {
    // SAFETY: getrusage only writes the struct it is given, which is zero-initialised and
    // owned here.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage), 0);
        usage
    };
    // Linux reports kilobytes.
    usage.ru_maxrss * 1024
}
