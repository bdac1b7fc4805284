//! Writes the seed inputs of every fuzz target into `fuzz/corpus/<target>/seed_<name>`:
//! `cargo run --manifest-path fuzz/Cargo.toml -p llama2-fuzz-harness --example write_seeds`.

fn main() -> std::io::Result<()> {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    for (target, name, bytes) in llama2_fuzz_harness::seeds() {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed_{name}")), bytes)?;
    }
    Ok(())
}
