//! llama2-core on bare metal: tells the greedy stories260K story on QEMU's mps2-an386
//! (Cortex-M4F), exactly as `llama2 stories260K.bin -z tok512.bin -t 0 -n 200 -i "Once
//! upon a time"` (or `llama2 stories260K.gguf -t 0 ...`) prints it on a PC.
//!
//! No heap and no allocator: the model (a llama2.c or GGUF file) and the tokenizer file (if
//! the model has no vocabulary inside) are `include_bytes!` in flash, and every working
//! buffer is a `static` whose length comes from llama2-core's `const fn`s and the model's
//! config, which build.rs reads at build time. The story goes to UART0;
//! the exit status (and a one-line summary on stderr) goes to the host by semihosting.
#![no_std]
#![no_main]

mod uart;

use core::convert::Infallible;
use core::fmt;

use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hio};
use embedded_io::Write;
use llama2_core::{
    prompt_buffer_len, Aligned, Config, GenerateError, Generator, Gguf, LayerWeights, Model,
    ProbIndex, Sampler, Serial, State, Strategy, Summary, Tokenizer,
};

use uart::CmsdkUart;

/// `CONFIG` (the model's `Config`), `CONTEXT`, `LAYER_TABLE_LEN` and `TOKENIZER_FILE`,
/// written by build.rs.
mod build_config {
    use llama2_core::Config;
    include!(concat!(env!("OUT_DIR"), "/config.rs"));
}
use build_config::{CONFIG, CONTEXT, LAYER_TABLE_LEN, TOKENIZER_FILE};

/// The story: `-i "Once upon a time" -n 200 -t 0`. Steps count the prompt and stop at the
/// context, as on the host.
const PROMPT: &str = "Once upon a time";
const STEPS: usize = 200;
/// Temperature 0: always the most likely token (what `Strategy::new(0.0, _)` returns).
const STRATEGY: Strategy = Strategy::Argmax;
/// The sampler's random seed; argmax never draws from it.
const SEED: u64 = 1;

/// Buffer lengths, from the same `const fn`s that the engine checks the buffers against.
const STATE_LEN: usize = State::len_for(&CONFIG, CONTEXT).expect("state size overflows usize");
const INDEX_LEN: usize = Tokenizer::index_len(CONFIG.vocab_size).expect("vocab_size too large");
const SCRATCH_LEN: usize = Sampler::scratch_len(&STRATEGY, CONFIG.vocab_size);
/// The initial value of the sampler's scratch (never read before it is written).
const NO_CANDIDATE: ProbIndex = ProbIndex {
    prob: 0.0,
    index: 0,
};
/// `Generator::generate` encodes the prompt here (the tokens and the encoder's scratch).
const PROMPT_TOKENS_LEN: usize = prompt_buffer_len(PROMPT.len()).expect("prompt too long");

/// The model file, in flash (path chosen by build.rs), aligned, as `Model::parse` views the
/// weights in place. The tokenizer file, if any, is build.rs's `TOKENIZER_FILE`.
static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("LLAMA2_FIRMWARE_MODEL_FILE")));

/// The working memory of one generation, every part a `static` in RAM.
struct Buffers {
    /// A GGUF model's per-layer views (empty for a llama2.c model).
    layers: &'static mut [LayerWeights<'static>],
    state: &'static mut [f32],
    tokenizer_index: &'static mut [u32],
    sampler_scratch: &'static mut [ProbIndex],
    prompt_tokens: &'static mut [u32],
}

#[entry]
fn main() -> ! {
    // cortex-m-rt turns these `static mut`s into `&'static mut` references that only this
    // (once-run) function holds, so using them needs no `unsafe`. Zero-initialised, they
    // live in .bss and cost no flash.
    static mut LAYERS: [LayerWeights<'static>; LAYER_TABLE_LEN] =
        [LayerWeights::EMPTY; LAYER_TABLE_LEN];
    static mut STATE: [f32; STATE_LEN] = [0.0; STATE_LEN];
    static mut TOKENIZER_INDEX: [u32; INDEX_LEN] = [0; INDEX_LEN];
    static mut SAMPLER_SCRATCH: [ProbIndex; SCRATCH_LEN] = [NO_CANDIDATE; SCRATCH_LEN];
    static mut PROMPT_TOKENS: [u32; PROMPT_TOKENS_LEN] = [0; PROMPT_TOKENS_LEN];

    // SAFETY: UART0_BASE is UART0 of the MPS2 board, and from here on this function is its
    // only user (the panic and fault handlers take it over only when this code has stopped).
    let mut uart = unsafe { CmsdkUart::new(uart::UART0_BASE, uart::BAUDDIV_115200) };
    let buffers = Buffers {
        layers: LAYERS,
        state: STATE,
        tokenizer_index: TOKENIZER_INDEX,
        sampler_scratch: SAMPLER_SCRATCH,
        prompt_tokens: PROMPT_TOKENS,
    };
    let outcome = tell_story(&mut uart, buffers).and_then(|summary| {
        let stack = stack_usage()?;
        Ok((summary, stack))
    });
    match outcome {
        Ok((summary, stack)) => {
            report(format_args!(
                "llama2-firmware: {} steps, context {CONTEXT}, stack {} of {} bytes used",
                summary.steps, stack.used, stack.reserved
            ));
            exit(debug::EXIT_SUCCESS)
        }
        Err(failure) => fail(&mut uart, format_args!("error: {failure}")),
    }
}

/// Runs the generation, streaming the text to `out`.
fn tell_story(
    out: &mut impl Write<Error = Infallible>,
    buffers: Buffers,
) -> Result<Summary, Failure> {
    let model = Model::parse(&MODEL.0, buffers.layers)?;
    if model.config != CONFIG {
        return Err(Failure::ConfigMismatch {
            built: CONFIG,
            found: model.config,
        });
    }
    let tokenizer = match TOKENIZER_FILE {
        Some(file) => Tokenizer::new(file, CONFIG.vocab_size, buffers.tokenizer_index)?,
        None => Tokenizer::from_gguf(&Gguf::parse(&MODEL.0)?, buffers.tokenizer_index)?,
    };
    let mut state = State::new(&CONFIG, CONTEXT, buffers.state)?;
    let mut sampler = Sampler::new(STRATEGY, SEED, CONFIG.vocab_size, buffers.sampler_scratch)?;
    let mut generator = Generator {
        model: &model,
        tokenizer: &tokenizer,
        state: &mut state,
        sampler: &mut sampler,
        parallel: &Serial,
    };
    let summary =
        generator.generate(PROMPT.as_bytes(), STEPS, buffers.prompt_tokens, out, |_| {})?;
    Ok(summary)
}

/// Why the firmware stopped early.
#[derive(Debug)]
enum Failure {
    /// The engine rejected the files, a buffer or an argument.
    Engine(llama2_core::Error),
    /// The model in flash is not the one build.rs sized the buffers for.
    ConfigMismatch { built: Config, found: Config },
    /// The stack ran down to its last word: it may have overflowed.
    StackExhausted { reserved: usize },
}

impl From<llama2_core::Error> for Failure {
    fn from(error: llama2_core::Error) -> Self {
        Failure::Engine(error)
    }
}

impl From<GenerateError<Infallible>> for Failure {
    fn from(error: GenerateError<Infallible>) -> Self {
        match error {
            GenerateError::Engine(error) => Failure::Engine(error),
            GenerateError::Write(never) => match never {},
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Engine(error) => write!(f, "{error}"),
            Failure::ConfigMismatch { built, found } => write!(
                f,
                "the model in flash has config {found:?}, but the buffers were sized for \
                 {built:?}"
            ),
            Failure::StackExhausted { reserved } => write!(
                f,
                "the run used all {reserved} bytes of stack; enlarge STACK in memory.x"
            ),
        }
    }
}

/// How much of the stack region (memory.x's `STACK`) the run has used.
struct StackUsage {
    used: usize,
    reserved: usize,
}

/// Measures the stack's high-water mark: cortex-m-rt painted the whole region with
/// `STACK_PAINT_VALUE` at reset, and the stack grows down from `_stack_start`, so the
/// lowest word that is no longer paint is as deep as the stack has been.
fn stack_usage() -> Result<StackUsage, Failure> {
    extern "C" {
        /// Top of the stack region (exclusive), from memory.x.
        static _stack_start: u32;
        /// Bottom of the stack region, from memory.x.
        static _stack_end: u32;
    }
    let top = &raw const _stack_start as usize;
    let bottom = &raw const _stack_end as usize;
    let reserved = top - bottom;
    // Only the words below the live part of the stack are read.
    let limit = cortex_m::register::msp::read() as usize & !3;
    let mut lowest_written = limit;
    for address in (bottom..limit).step_by(4) {
        // SAFETY: `address` is a word-aligned address in the stack region, which is RAM
        // (memory.x), below the stack pointer: no live value is there to alias.
        let word = unsafe { core::ptr::read_volatile(address as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            lowest_written = address;
            break;
        }
    }
    if lowest_written == bottom {
        return Err(Failure::StackExhausted { reserved });
    }
    Ok(StackUsage {
        used: top - lowest_written,
        reserved,
    })
}

/// Writes a line to the host's stderr by semihosting (ignored if there is no host).
fn report(line: fmt::Arguments<'_>) {
    if let Ok(mut stderr) = hio::hstderr() {
        // Diagnostics only: if the host cannot take them, there is nowhere else to say so.
        let _ = fmt::Write::write_fmt(&mut stderr, format_args!("{line}\n"));
    }
}

/// Ends the run with `status` as QEMU's exit status.
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    // Only reached without a semihosting host (a board with no debugger attached).
    loop {
        cortex_m::asm::wfi();
    }
}

/// Reports `message` on the UART and on the host's stderr, then exits with failure.
fn fail(uart: &mut CmsdkUart, message: fmt::Arguments<'_>) -> ! {
    // The UART cannot fail (`Infallible`); a formatting error would only cut the line short.
    let _ = writeln!(uart, "llama2-firmware: {message}");
    report(format_args!("llama2-firmware: {message}"));
    exit(debug::EXIT_FAILURE)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // SAFETY: the code that used the UART has stopped for good (a panic never returns), so
    // this is now its only user; at worst a half-written line is cut short.
    let mut uart = unsafe { CmsdkUart::new(uart::UART0_BASE, uart::BAUDDIV_115200) };
    fail(&mut uart, format_args!("panic: {info}"))
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    // SAFETY: as in `panic`: the interrupted code never resumes.
    let mut uart = unsafe { CmsdkUart::new(uart::UART0_BASE, uart::BAUDDIV_115200) };
    fail(
        &mut uart,
        format_args!("hard fault at pc {:#010x}", frame.pc()),
    )
}
