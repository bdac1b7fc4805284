//! `llama2 MODEL ...`: load the files, set the engine up, then generate text (streamed to
//! stdout, with llama2.c's speed report) or chat.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use llama2_core::{
    prompt_buffer_len, Batch, GenerateError, Generator, ProbIndex, Sampler, State, Strategy,
    Tokenizer,
};

use crate::cli::{Mode, RunArgs};
use crate::error::{path_of, CliError};
use crate::load::{MappedFile, StopIfCutShort, TokenizerSource};
use crate::pool::ThreadPool;
use crate::stdio;

/// Runs `llama2 MODEL ...`: generation or chat, as `-m` says.
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    if args.parallel.is_some() && args.mode == Mode::Chat {
        return Err(CliError::usage(
            "--parallel",
            "generates continuations of a prompt; chat mode has one conversation",
        ));
    }
    let strategy = Strategy::new(args.temperature, args.top_p).map_err(|e| {
        let flag = match e {
            llama2_core::Error::InvalidTemperature(_) => "-t/--temperature",
            _ => "-p/--top-p",
        };
        CliError::usage(flag, e)
    })?;
    let model_path = path_of(&args.model);
    let model_file = MappedFile::open(model_path)?;
    let mut layers = Vec::new();
    let model = model_file.model(&mut layers)?;
    let config = model.config;

    let tokenizer_source = TokenizerSource::find(args.tokenizer.as_deref(), &model_file)?;
    let mut index = zeroed(
        Tokenizer::index_len(config.vocab_size),
        "the tokenizer index",
    )
    .map_err(|e| CliError::file(model_path, e))?;
    let tokenizer = tokenizer_source.open(&model_file, config.vocab_size, &mut index)?;

    // The KV cache holds what the run can use: the steps asked for, unless a context is given
    // or the window slides. (A file's seq_len alone may be huge at no cost in file size.)
    let context = match args.context {
        Some(context) => context,
        None if args.sliding_window || args.steps == 0 => config.seq_len,
        None => args.steps.min(config.seq_len),
    };
    if context > config.seq_len {
        return Err(CliError::usage(
            "--context",
            format!(
                "{context} is longer than the model's seq_len {}",
                config.seq_len
            ),
        ));
    }
    let seed = u64::try_from(args.seed)
        .ok()
        .filter(|&s| s > 0)
        .unwrap_or_else(clock_seed);
    if let Some(sequences) = args.parallel {
        let setup = crate::sequences::Setup {
            model: &model,
            tokenizer: &tokenizer,
            model_file: &model_file,
            model_path,
            context,
            strategy,
            seed,
        };
        if let Some(rate) = crate::sequences::run(args, &setup, sequences)? {
            stdio::note!("achieved tok/s: {rate:.6} ({sequences} sequences together)");
        }
        return Ok(());
    }
    let mut activations = zeroed(
        State::len_for(&config, context),
        "the KV cache and activations",
    )
    .map_err(|e| CliError::file(model_path, format!("{e}; try a shorter --context")))?;
    let mut state = State::new(&config, context, &mut activations)
        .map_err(|e| CliError::file(model_path, e))?;
    state.set_kernels(args.engine.kernels.resolve());
    state.set_sliding_window(args.sliding_window);
    let mut scratch: Vec<ProbIndex> = zeroed(
        Some(Sampler::scratch_len(&strategy, config.vocab_size)),
        "the sampler",
    )
    .map_err(|e| CliError::file(model_path, e))?;
    let mut sampler = Sampler::new(strategy, seed, config.vocab_size, &mut scratch)
        .map_err(|e| CliError::file(model_path, e))?;

    // Prompt batches only help generation (chat turns are short and run token by token).
    let capacity = match (args.mode, args.engine.batch_size(&config)) {
        (Mode::Generate, size) if size > 1 => size.min(context),
        _ => 0,
    };
    let mut batch_buffer: Vec<f32> = match capacity {
        0 => Vec::new(),
        n => zeroed(Batch::len_for(&config, n), "the prompt batch")
            .map_err(|e| CliError::file(model_path, e))?,
    };
    let batch = match capacity {
        0 => None,
        n => Some(
            Batch::new(&config, n, &mut batch_buffer).map_err(|e| CliError::file(model_path, e))?,
        ),
    };
    let pool =
        ThreadPool::new(args.engine.threads()).map_err(|e| CliError::usage("--threads", e))?;
    let generator = Generator {
        model: &model,
        tokenizer: &tokenizer,
        state: &mut state,
        sampler: &mut sampler,
        parallel: &pool,
    };
    let result = match args.mode {
        Mode::Generate => generate(args, generator, batch, &model_file)
            .map_err(|e| generation_failed(e, model_path, "-i/--prompt")),
        Mode::Chat => crate::chat::run(args, generator, &model_file).map(|()| None),
    };
    // A model cut short or rewritten during the run explains whatever the run did (and its
    // speed is not worth reporting).
    model_file.check_unchanged()?;
    if let Some(rate) = result? {
        stdio::note!("achieved tok/s: {rate:.6}");
    }
    Ok(())
}

/// The report for a failed generation: stdout's failure (quiet for a closed pipe), a
/// prompt too long (about `prompt`, the flag or stream it came from) or the model's error.
pub(crate) fn generation_failed(
    error: GenerateError<std::io::Error>,
    model_path: &Path,
    prompt: &str,
) -> CliError {
    match error {
        GenerateError::Write(e) => stdio::stdout_failed(e),
        GenerateError::Engine(e @ llama2_core::Error::PromptTooLong { .. }) => {
            CliError::usage(prompt, e)
        }
        GenerateError::Engine(e) => CliError::file(model_path, e),
    }
}

/// Generates a continuation of the prompt, stopping if the model file is cut short, and
/// returns the speed in tokens/s (when more than one token was generated).
fn generate(
    args: &RunArgs,
    mut generator: Generator<'_, '_, '_, '_, ThreadPool>,
    batch: Option<Batch<'_>>,
    model_file: &MappedFile,
) -> Result<Option<f64>, GenerateError<std::io::Error>> {
    let prompt = args.prompt.as_deref().unwrap_or("").as_bytes();
    let prompt_len = prompt_buffer_len(prompt.len()).ok_or(llama2_core::Error::SizeOverflow)?;
    let mut prompt_tokens = vec![0u32; prompt_len];
    let mut out = StopIfCutShort {
        file: model_file,
        inner: embedded_io_adapters::std::FromStd::new(std::io::stdout().lock()),
    };
    // Timed like llama2.c: from the moment the first token has been printed.
    let mut start: Option<Instant> = None;
    let on_token = |_| {
        start.get_or_insert_with(Instant::now);
    };
    let summary = match batch {
        Some(mut batch) => generator.generate_batched(
            Some(&mut batch),
            prompt,
            args.steps,
            &mut prompt_tokens,
            &mut out,
            on_token,
        ),
        None => generator.generate(prompt, args.steps, &mut prompt_tokens, &mut out, on_token),
    }?;
    Ok(start
        .filter(|_| summary.steps > 1)
        .map(|start| (summary.steps - 1) as f64 / start.elapsed().as_secs_f64()))
}

/// A zeroed buffer of `len` elements, or a message naming `what` when the length overflows
/// or the memory cannot be had (sizes come from untrusted headers: no abort on them). The
/// memory comes zeroed from the allocator (calloc) and is not written here, so a buffer sized
/// from a header that claims more than the run touches (a huge `seq_len`) costs only the
/// pages the run really uses.
pub(crate) fn zeroed<T: bytemuck::Zeroable>(
    len: Option<usize>,
    what: &str,
) -> Result<Vec<T>, String> {
    let len = len.ok_or_else(|| format!("{what} would not fit in memory"))?;
    bytemuck::allocation::try_zeroed_vec(len).map_err(|()| {
        format!(
            "cannot allocate {} MB for {what}",
            len.saturating_mul(std::mem::size_of::<T>()) / 1_000_000
        )
    })
}

/// A seed from the clock, like llama2.c's `time(NULL)` (never 0, which would stall xorshift).
fn clock_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_secs().max(1))
}
