//! `llama2 bench`: prompt-processing and generation speed, and how close generation comes
//! to the machine's memory bandwidth.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use llama2_core::{argmax, AlignedBytes, Batch, LayerWeights, Model, Parallel, Sequence, State};

use crate::args::EngineArgs;
use crate::convert::OutType;
use crate::error::CliError;
use crate::generate::zeroed;
use crate::load::MappedFile;
use crate::pool::ThreadPool;
use crate::stdio;
use crate::synthetic::{quantized, random_f32_model, random_gguf, save, Shape};

/// Element type of a synthetic benchmark model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dtype {
    /// 32-bit floats (llama2.c version 1).
    F32,
    /// Q8_0 (llama2.c version 2).
    Q8,
    /// GGUF with Q8_0 matrices (rows must be multiples of 32: not 260K).
    #[value(name = "q8_0")]
    Q8_0,
    /// GGUF with Q4_0 matrices (rows must be multiples of 32: not 260K).
    #[value(name = "q4_0")]
    Q4_0,
    /// GGUF with Q4_K matrices (rows must be multiples of 256: 110M only).
    #[value(name = "q4_k")]
    Q4K,
}

/// `llama2 bench`'s flags.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Model file to measure: llama2.c or GGUF (or use --shape for random weights made in
    /// memory).
    #[arg(required_unless_present = "shape", conflicts_with = "shape")]
    pub model: Option<PathBuf>,
    /// A published model shape with random weights, made in memory (no download).
    #[arg(long, value_enum)]
    pub shape: Option<Shape>,
    /// Element type of the --shape model.
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
    /// Prompt tokens to process before generating.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens to generate after the prompt.
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: usize,
    /// Repetitions; medians are reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Time the first run too. By default one untimed run comes first (as llama-bench's
    /// warm-up does), so that first-touch page faults of the caches and the mapped file
    /// and cold caches are not counted.
    #[arg(long)]
    pub no_warmup: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Also measure N sequences generating together (`llama2 MODEL --parallel N`): their
    /// aggregate tokens/s and its ratio to the single-sequence generation speed.
    #[arg(long, value_name = "N", value_parser = crate::cli::parse_parallel)]
    pub parallel: Option<usize>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Write the --shape model to FILE and exit without measuring, so other engines can
    /// run the same weights: f32 as a llama2.c version 0 file (what llama2.c's `run`
    /// reads), q8 as version 2 (`runq`), q4_0 and q4_k as GGUF.
    #[arg(long, value_name = "FILE", conflicts_with = "model")]
    pub save_model: Option<PathBuf>,
}

/// Where the benchmarked model's bytes live.
enum Source {
    File(MappedFile),
    Memory(AlignedBytes),
}

impl Source {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::File(f) => f.bytes(),
            Source::Memory(m) => m.bytes(),
        }
    }
}

/// Runs `llama2 bench`: times the runs and prints the report.
pub fn run(args: &BenchArgs) -> Result<(), CliError> {
    let (source, label) = load(args)?;
    if let Some(out) = &args.save_model {
        return save(source.bytes(), &label, out);
    }
    let bytes = source.bytes();
    let mut layers = vec![
        LayerWeights::EMPTY;
        Model::layer_table_len(bytes).map_err(|e| CliError::usage(&label, e))?
    ];
    let model = Model::parse(bytes, &mut layers).map_err(|e| CliError::usage(&label, e))?;
    let config = model.config;
    let counts = "--prompt-tokens/--gen-tokens/--runs";
    let positions = args
        .prompt_tokens
        .checked_add(args.gen_tokens)
        .filter(|&n| n > 0 && n <= config.seq_len)
        .filter(|_| args.runs > 0)
        .ok_or_else(|| {
            CliError::usage(
                counts,
                format!(
                    "need 1..={} positions in all (the model's seq_len) and at least one run",
                    config.seq_len
                ),
            )
        })?;
    let parallel =
        ThreadPool::new(args.engine.threads()).map_err(|e| CliError::usage("--threads", e))?;
    let mut buffer = zeroed(
        State::len_for(&config, positions),
        "the KV cache and activations",
    )
    .map_err(|e| CliError::usage(&label, e))?;
    let capacity = args.engine.batch_size(&config).min(positions);
    let mut batch_buffer = zeroed(Batch::len_for(&config, capacity), "the prompt batch")
        .map_err(|e| CliError::usage(&label, e))?;
    let mut batch =
        Batch::new(&config, capacity, &mut batch_buffer).map_err(|e| CliError::usage(&label, e))?;
    let mut prompt_rates = Vec::new();
    let mut gen_rates = Vec::new();
    for rates in [&mut prompt_rates, &mut gen_rates] {
        rates
            .try_reserve_exact(args.runs)
            .map_err(|_| CliError::usage(counts, "too many runs to keep their timings"))?;
    }
    for run in 0..args.runs + warmups(args) {
        let mut state =
            State::new(&config, positions, &mut buffer).map_err(|e| CliError::usage(&label, e))?;
        state.set_kernels(args.engine.kernels.resolve());
        let (prompt, generation) = time_run(&model, &mut state, &mut batch, args, &parallel)
            .map_err(|e| CliError::usage(&label, e))?;
        if run >= warmups(args) {
            prompt_rates.extend(prompt);
            gen_rates.extend(generation);
        }
    }
    let parallel_tok_s = match args.parallel {
        Some(sequences) => {
            time_parallel(&model, positions, sequences, args, &parallel).map_err(|e| match e {
                Failure::Engine(e) => CliError::usage(&label, e),
                Failure::Memory(e) => CliError::usage("--parallel", e),
            })?
        }
        None => None,
    };
    let weight_bytes = model.weights.bytes_per_token(&config);
    let bandwidth =
        measure_read_bandwidth(parallel.threads()).map_err(|e| CliError::usage("bench", e))?;
    let report = Report {
        label,
        prompt_tok_s: median(&mut prompt_rates),
        gen_tok_s: median(&mut gen_rates),
        weight_bytes,
        machine_gb_s: bandwidth / 1e9,
        threads: parallel.threads(),
        kernels: args.engine.kernels.resolve().name(),
        runs: args.runs,
        warmups: warmups(args),
        prompt_tokens: args.prompt_tokens,
        gen_tokens: args.gen_tokens,
        parallel: args.parallel.map(|sequences| (sequences, parallel_tok_s)),
    };
    stdio::print(&report.render(args.json))
}

fn load(args: &BenchArgs) -> Result<(Source, String), CliError> {
    if let Some(path) = &args.model {
        return Ok((
            Source::File(MappedFile::open(path)?),
            path.display().to_string(),
        ));
    }
    let shape = args.shape.unwrap_or(Shape::S260K);
    let config = shape.config();
    let fp32 = random_f32_model(&config);
    let name = clap::ValueEnum::to_possible_value(&shape)
        .map_or_else(String::new, |v| v.get_name().to_string());
    match args.dtype {
        Dtype::F32 => Ok((Source::Memory(fp32), format!("random {name} f32"))),
        Dtype::Q8 => {
            let model =
                Model::from_bytes(fp32.bytes()).map_err(|e| CliError::usage("--shape", e))?;
            let q8 = quantized(&model).map_err(|e| CliError::usage("--shape", e))?;
            Ok((Source::Memory(q8), format!("random {name} q8")))
        }
        Dtype::Q8_0 | Dtype::Q4_0 | Dtype::Q4K => {
            let (ty, label) = match args.dtype {
                Dtype::Q8_0 => (OutType::Q8_0, "q8_0"),
                Dtype::Q4_0 => (OutType::Q4_0, "q4_0"),
                _ => (OutType::Q4K, "q4_k"),
            };
            let model =
                Model::from_bytes(fp32.bytes()).map_err(|e| CliError::usage("--shape", e))?;
            let gguf = random_gguf(&model, ty).map_err(|e| {
                CliError::usage(format!("--dtype {label}"), format!("the {name} shape: {e}"))
            })?;
            Ok((
                Source::Memory(gguf),
                format!("random {name} {label} (GGUF)"),
            ))
        }
    }
}

/// Untimed runs before the timed ones: one unless `--no-warmup`.
fn warmups(args: &BenchArgs) -> usize {
    usize::from(!args.no_warmup)
}

/// Runs one prompt (forced tokens) and one greedy generation; returns tokens/s of each.
fn time_run(
    model: &Model<'_>,
    state: &mut State<'_>,
    batch: &mut Batch<'_>,
    args: &BenchArgs,
    parallel: &impl Parallel,
) -> llama2_core::Result<(Option<f64>, Option<f64>)> {
    // Token ids spread over the vocabulary (a multiplicative hash of the position).
    let vocab = model.config.vocab_size as u64;
    let prompt: Vec<u32> = (0..args.prompt_tokens as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) % vocab) as u32)
        .collect();
    let start = Instant::now();
    if batch.capacity() > 1 {
        for (i, chunk) in prompt.chunks(batch.capacity()).enumerate() {
            black_box(model.forward_batch(state, batch, chunk, i * batch.capacity(), parallel)?);
        }
    } else {
        for (pos, &token) in prompt.iter().enumerate() {
            black_box(model.forward(state, token, pos, parallel)?);
        }
    }
    let prompt_rate = rate(args.prompt_tokens, start);
    let mut token = prompt.last().copied().unwrap_or(1);
    let start = Instant::now();
    for pos in args.prompt_tokens..args.prompt_tokens + args.gen_tokens {
        let logits = model.forward(state, token, pos, parallel)?;
        token = argmax(logits) as u32;
    }
    Ok((prompt_rate, rate(args.gen_tokens, start)))
}

/// Why the parallel measurement could not run.
enum Failure {
    Engine(llama2_core::Error),
    Memory(String),
}

/// The median aggregate tokens/s of `sequences` sequences generating `gen_tokens` tokens
/// each, together, after the prompt (run untimed into every sequence's cache), greedily.
fn time_parallel(
    model: &Model<'_>,
    positions: usize,
    sequences: usize,
    args: &BenchArgs,
    parallel: &impl Parallel,
) -> Result<Option<f64>, Failure> {
    let config = model.config;
    let state_len = State::len_for(&config, positions).unwrap_or(usize::MAX);
    let mut buffer = zeroed(
        state_len.checked_mul(sequences),
        "the KV caches of the sequences",
    )
    .map_err(Failure::Memory)?;
    let capacity = sequences.max(args.engine.batch_size(&config).min(positions));
    let mut batch_buffer =
        zeroed(Batch::len_for(&config, capacity), "the batch").map_err(Failure::Memory)?;
    let mut batch = Batch::new(&config, capacity, &mut batch_buffer).map_err(Failure::Engine)?;
    let vocab = config.vocab_size as u64;
    let prompt: Vec<u32> = (0..args.prompt_tokens as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761) % vocab) as u32)
        .collect();
    let mut rates = Vec::new();
    for run in 0..args.runs + warmups(args) {
        let mut states = Vec::new();
        states
            .try_reserve_exact(sequences)
            .map_err(|_| Failure::Memory(format!("{sequences} sequences do not fit in memory")))?;
        for (i, part) in buffer.chunks_exact_mut(state_len).enumerate() {
            let mut state = State::new(&config, positions, part).map_err(Failure::Engine)?;
            state.set_kernels(args.engine.kernels.resolve());
            for (j, chunk) in prompt.chunks(batch.capacity()).enumerate() {
                let first = j * batch.capacity();
                model
                    .forward_batch(&mut state, &mut batch, chunk, first, parallel)
                    .map_err(Failure::Engine)?;
            }
            let mut sequence = Sequence::new(state);
            // Different tokens per sequence, as sampled sequences would have.
            sequence.token = ((i as u64 + 1).wrapping_mul(2_654_435_761) % vocab) as u32;
            states.push(sequence);
        }
        let start = Instant::now();
        for pos in args.prompt_tokens..args.prompt_tokens + args.gen_tokens {
            model
                .forward_sequences(&mut states, &mut batch, pos, parallel)
                .map_err(Failure::Engine)?;
            for sequence in &mut states {
                sequence.token = argmax(sequence.state.logits()) as u32;
            }
        }
        if run >= warmups(args) {
            rates.extend(rate(sequences * args.gen_tokens, start));
        }
    }
    Ok(median(&mut rates))
}

fn rate(tokens: usize, start: Instant) -> Option<f64> {
    (tokens > 0).then(|| tokens as f64 / start.elapsed().as_secs_f64())
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Best-of-five read bandwidth in bytes/s of `threads` threads summing disjoint parts of a
/// buffer far larger than the caches: the ceiling generation can reach. Fails, with a
/// message, where the machine cannot give the buffer.
pub fn measure_read_bandwidth(threads: usize) -> Result<f64, String> {
    const BYTES: usize = 512 << 20;
    let mut buffer: Vec<u64> = Vec::new();
    buffer.try_reserve_exact(BYTES / 8).map_err(|_| {
        format!(
            "cannot allocate {} MB to measure the memory bandwidth",
            BYTES / 1_000_000
        )
    })?;
    buffer.extend(0..BYTES as u64 / 8);
    let part = buffer.len().div_ceil(threads.max(1));
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        std::thread::scope(|scope| {
            for chunk in buffer.chunks(part) {
                scope.spawn(move || black_box(chunk.iter().fold(0u64, |a, &b| a.wrapping_add(b))));
            }
        });
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok(BYTES as f64 / best)
}

struct Report {
    label: String,
    prompt_tok_s: Option<f64>,
    gen_tok_s: Option<f64>,
    weight_bytes: usize,
    machine_gb_s: f64,
    threads: usize,
    kernels: &'static str,
    runs: usize,
    /// Untimed runs before them.
    warmups: usize,
    prompt_tokens: usize,
    gen_tokens: usize,
    /// `--parallel N`: N and the aggregate tokens/s of N sequences.
    parallel: Option<(usize, Option<f64>)>,
}

impl Report {
    /// The parallel speed over the single-sequence one.
    fn parallel_ratio(&self) -> Option<f64> {
        let (_, rate) = self.parallel?;
        Some(rate? / self.gen_tok_s?)
    }

    fn achieved_gb_s(&self) -> Option<f64> {
        self.gen_tok_s.map(|r| r * self.weight_bytes as f64 / 1e9)
    }

    /// The report as text lines, or as one JSON object.
    fn render(&self, json: bool) -> String {
        let share = self.achieved_gb_s().map(|a| a / self.machine_gb_s);
        if json {
            let value = serde_json::json!({
                "model": self.label,
                "threads": self.threads,
                "kernels": self.kernels,
                "runs": self.runs,
                "warmup_runs": self.warmups,
                "prompt_tokens": self.prompt_tokens,
                "gen_tokens": self.gen_tokens,
                "prompt_tok_s": self.prompt_tok_s,
                "gen_tok_s": self.gen_tok_s,
                "weight_bytes_per_token": self.weight_bytes,
                "achieved_gb_s": self.achieved_gb_s(),
                "machine_read_gb_s": self.machine_gb_s,
                "bandwidth_share": share,
                "parallel_sequences": self.parallel.map(|(n, _)| n),
                "parallel_gen_tok_s": self.parallel.and_then(|(_, rate)| rate),
                "parallel_ratio": self.parallel_ratio(),
            });
            return format!("{value}\n");
        }
        let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let mut lines = vec![
            format!("model:               {}", self.label),
            format!("threads:             {}", self.threads),
            format!("kernels:             {}", self.kernels),
            format!(
                "runs (median of):    {} (after {} untimed)",
                self.runs, self.warmups
            ),
            format!(
                "prompt processing:   {} tok/s ({} tokens)",
                show(self.prompt_tok_s),
                self.prompt_tokens
            ),
            format!(
                "generation:          {} tok/s ({} tokens)",
                show(self.gen_tok_s),
                self.gen_tokens
            ),
            format!(
                "weights per token:   {:.1} MB",
                self.weight_bytes as f64 / 1e6
            ),
            format!("achieved bandwidth:  {} GB/s", show(self.achieved_gb_s())),
            format!("machine read:        {:.1} GB/s", self.machine_gb_s),
            format!(
                "share of bandwidth:  {}",
                share.map_or("-".to_string(), |s| format!("{:.0}%", s * 100.0))
            ),
        ];
        if let Some((sequences, rate)) = self.parallel {
            let ratio = self.parallel_ratio();
            lines.push(format!(
                "parallel generation: {} tok/s ({sequences} sequences, {}× single)",
                show(rate),
                ratio.map_or("-".to_string(), |r| format!("{r:.2}"))
            ));
        }
        lines.iter().map(|line| format!("{line}\n")).collect()
    }
}
