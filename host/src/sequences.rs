//! `llama2 MODEL --parallel N`: N continuations of one prompt, seeds `s..s+N`, generated
//! together so each step reads the weights once for all of them; printed when all are
//! done, in seed order, each followed by the separator line.

use std::path::Path;
use std::time::Instant;

use embedded_io_adapters::std::FromStd;
use llama2_core::{
    prompt_buffer_len, Batch, Model, ParallelGenerator, ProbIndex, Sampler, Sequence, State,
    Strategy, Tokenizer,
};

use crate::cli::RunArgs;
use crate::error::CliError;
use crate::generate::{generation_failed, zeroed};
use crate::load::MappedFile;
use crate::pool::ThreadPool;
use crate::stdio;

/// What `generate::run` has set up for every mode.
pub struct Setup<'r, 'a> {
    pub model: &'r Model<'a>,
    pub tokenizer: &'r Tokenizer<'a>,
    pub model_file: &'r MappedFile,
    pub model_path: &'r Path,
    /// Positions each sequence's KV cache holds.
    pub context: usize,
    pub strategy: Strategy,
    /// The first sequence's seed; sequence `i` gets `seed + i`.
    pub seed: u64,
}

/// Generates `sequences` continuations and prints them; returns the aggregate speed in
/// tokens/s (every sequence's tokens after the first printed one, over the time since).
pub fn run(
    args: &RunArgs,
    setup: &Setup<'_, '_>,
    sequences: usize,
) -> Result<Option<f64>, CliError> {
    let config = setup.model.config;
    let in_model = |e: String| CliError::file(setup.model_path, e);
    let engine_error = |e: llama2_core::Error| CliError::file(setup.model_path, e);
    let state_len = State::len_for(&config, setup.context).unwrap_or(usize::MAX);
    // One buffer for every sequence's state, so that a count too large fails here, cleanly.
    let mut state_buffer = zeroed(
        state_len.checked_mul(sequences),
        "the KV caches of the sequences",
    )
    .map_err(|e| {
        in_model(format!(
            "{e}; try a shorter --context or a smaller --parallel"
        ))
    })?;
    let kernels = args.engine.kernels.resolve();
    let mut states = reserved(sequences)?;
    for buffer in state_buffer.chunks_exact_mut(state_len) {
        let mut state = State::new(&config, setup.context, buffer).map_err(engine_error)?;
        state.set_kernels(kernels);
        state.set_sliding_window(args.sliding_window);
        states.push(Sequence::new(state));
    }
    let scratch_len = Sampler::scratch_len(&setup.strategy, config.vocab_size);
    let mut scratch: Vec<ProbIndex> =
        zeroed(scratch_len.checked_mul(sequences), "the samplers").map_err(in_model)?;
    let mut samplers = reserved(sequences)?;
    // Each sampler's part of the scratch (none for strategies that do not sort).
    let mut rest = &mut scratch[..];
    for i in 0..sequences {
        let (scratch, tail) = std::mem::take(&mut rest).split_at_mut(scratch_len);
        rest = tail;
        let seed = setup.seed.checked_add(i as u64).ok_or_else(|| {
            CliError::usage("-s/--seed", "the seeds of the sequences would overflow")
        })?;
        samplers.push(
            Sampler::new(setup.strategy, seed, config.vocab_size, scratch).map_err(engine_error)?,
        );
    }
    // Every step runs one token per running sequence; the prompt runs in batches too.
    let capacity = sequences.max(args.engine.batch_size(&config).min(setup.context));
    let mut batch_buffer =
        zeroed(Batch::len_for(&config, capacity), "the batch").map_err(in_model)?;
    let mut batch = Batch::new(&config, capacity, &mut batch_buffer).map_err(engine_error)?;
    let pool =
        ThreadPool::new(args.engine.threads()).map_err(|e| CliError::usage("--threads", e))?;
    let mut generator = ParallelGenerator {
        model: setup.model,
        tokenizer: setup.tokenizer,
        sequences: &mut states,
        samplers: &mut samplers,
        parallel: &pool,
    };

    let prompt = args.prompt.as_deref().unwrap_or("").as_bytes();
    let prompt_len = prompt_buffer_len(prompt.len())
        .ok_or_else(|| CliError::usage("-i/--prompt", llama2_core::Error::SizeOverflow))?;
    let mut prompt_tokens = vec![0u32; prompt_len];
    let mut outs = reserved(sequences)?;
    outs.extend((0..sequences).map(|_| FromStd::new(Vec::new())));
    // Timed like a single run: from the first token on.
    let mut start: Option<Instant> = None;
    let mut tokens = 0usize;
    let on_token = |_, _| {
        start.get_or_insert_with(Instant::now);
        tokens += 1;
    };
    generator
        .generate(
            &mut batch,
            prompt,
            args.steps,
            &mut prompt_tokens,
            &mut outs,
            on_token,
        )
        .map_err(|e| generation_failed(e, setup.model_path, "-i/--prompt"))?;
    let rate = start
        .filter(|_| tokens > 1)
        .map(|start| (tokens - 1) as f64 / start.elapsed().as_secs_f64());
    // A model cut short during the run explains its texts: nothing of them is printed.
    setup.model_file.check_unchanged()?;
    let mut text = Vec::new();
    for out in outs {
        text.extend_from_slice(&out.into_inner());
        text.extend_from_slice(args.separator.as_bytes());
        text.push(b'\n');
    }
    stdio::print_bytes(&text)?;
    Ok(rate)
}

/// An empty vector with room for one element per sequence, or an error naming the flag.
fn reserved<T>(sequences: usize) -> Result<Vec<T>, CliError> {
    let mut v = Vec::new();
    v.try_reserve_exact(sequences).map_err(|_| {
        CliError::usage(
            "--parallel",
            format!("{sequences} sequences do not fit in memory"),
        )
    })?;
    Ok(v)
}
