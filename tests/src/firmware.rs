//! Building the bare-metal example (`firmware/qemu-mps2`), running it under QEMU, and
//! reading its flash and RAM footprint from the ELF: shared by `tests/firmware.rs` and the
//! `firmware-footprint` command that prints the footprint tables of firmware/README.md.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use object::{Object, ObjectSection, ObjectSymbol};

use crate::{cargo_artifacts, cargo_command, read_file, workspace_root};

/// Far more than a run needs (about a second), so that only a hang trips it.
pub const QEMU_TIMEOUT: Duration = Duration::from_secs(300);
const QEMU: &str = "qemu-system-arm";

/// Builds the firmware (release) for `model` (a llama2.c or GGUF file), `tokenizer` (`None`:
/// the GGUF model's own vocabulary) and a KV cache of `context` positions, and returns the
/// path of a copy of its ELF. Builds share one target directory, so that the dependencies
/// are compiled once, and take turns: only the firmware crate itself differs by model and
/// context.
pub fn build_firmware(model: &Path, tokenizer: Option<&Path>, context: usize) -> PathBuf {
    static BUILD: Mutex<()> = Mutex::new(());
    let _turn = BUILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());

    let crate_dir = workspace_root().join("firmware/qemu-mps2");
    let target_dir = workspace_root().join("target/firmware-tests");
    let absolute = |path: PathBuf| {
        fs::canonicalize(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    // Run in the crate's directory: its .cargo/config.toml chooses the target.
    let mut command = cargo_command();
    command
        .current_dir(&crate_dir)
        .args(["build", "--release", "--target-dir"])
        .arg(&target_dir)
        .env("LLAMA2_FIRMWARE_MODEL", absolute(model.to_path_buf()))
        .env("LLAMA2_FIRMWARE_CONTEXT", context.to_string());
    match tokenizer {
        Some(path) => command.env("LLAMA2_FIRMWARE_TOKENIZER", absolute(path.to_path_buf())),
        None => command.env_remove("LLAMA2_FIRMWARE_TOKENIZER"),
    };
    let built = cargo_artifacts(command, "the firmware")
        .iter()
        .filter(|message| message["target"]["name"] == "llama2-firmware")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no llama2-firmware executable"));
    // The next build overwrites `built`; tests may still be running a copy made before.
    let name = model.file_stem().unwrap_or_default().to_string_lossy();
    let elf = target_dir.join(format!("llama2-firmware-{name}-context-{context}.elf"));
    fs::copy(&built, &elf)
        .unwrap_or_else(|e| panic!("cannot copy {} to {}: {e}", built.display(), elf.display()));
    elf
}

/// What a QEMU run printed and how it ended.
pub struct QemuRun {
    pub status: ExitStatus,
    /// UART0: the story.
    pub uart: Vec<u8>,
    /// Semihosting stderr (the firmware's summary or error) and QEMU's own messages.
    pub stderr: String,
    /// Wall-clock time of the run, QEMU's start included.
    pub seconds: f64,
}

impl QemuRun {
    /// The UART text, lossily decoded.
    pub fn uart_text(&self) -> String {
        String::from_utf8_lossy(&self.uart).into_owned()
    }

    /// Panics with the UART text and stderr unless the firmware exited with status 0.
    pub fn assert_success(&self) {
        assert!(
            self.status.success(),
            "the firmware exited with {} under QEMU.\nUART: {}\nstderr: {}",
            self.status,
            self.uart_text(),
            self.stderr
        );
    }
}

/// Boots `elf` on QEMU's mps2-an386, as the runner in firmware/qemu-mps2/.cargo/config.toml
/// does, and waits at most `QEMU_TIMEOUT` for the firmware to exit through semihosting.
pub fn run_in_qemu(elf: &Path) -> QemuRun {
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args(["-cpu", "cortex-m4", "-machine", "mps2-an386"])
        .args(["-nographic", "-monitor", "none"])
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-serial", "stdio", "-kernel"])
        .arg(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {QEMU} ({e}): the firmware test needs QEMU's Arm system \
                 emulator; install the Debian package qemu-system-arm (.ci/run does)"
            )
        });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_or_kill(&mut child, QEMU_TIMEOUT);
    let seconds = start.elapsed().as_secs_f64();
    let uart = stdout.join().expect("stdout reader");
    let stderr = String::from_utf8_lossy(&stderr.join().expect("stderr reader")).into_owned();
    let Some(status) = status else {
        panic!(
            "the firmware did not finish within {QEMU_TIMEOUT:?} under QEMU (killed).\n\
             UART so far: {}\nstderr: {stderr}",
            String::from_utf8_lossy(&uart)
        );
    };
    QemuRun {
        status,
        uart,
        stderr,
        seconds,
    }
}

/// Reads a child's pipe to the end on a thread (so that a full pipe never stalls it).
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<Vec<u8>> {
    let mut pipe = pipe.expect("piped");
    thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes).expect("reading QEMU's output");
        bytes
    })
}

/// The child's exit status, or `None` if it ran past `timeout` (it is then killed).
fn wait_or_kill(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("waiting for QEMU") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Flash and RAM sizes of a firmware ELF, from its section headers and the stack symbols
/// of its linker script (memory.x).
pub struct Footprint {
    /// `.text`: code.
    pub text: u64,
    /// `.rodata`: constants, the embedded model and tokenizer among them.
    pub rodata: u64,
    /// The sections placed in RAM (`.data`, `.bss`, `.uninit`), with their sizes.
    pub ram_sections: Vec<(String, u64)>,
    /// `_stack_start - _stack_end`: the stack region memory.x reserves.
    pub stack: u64,
}

impl Footprint {
    /// Reads the footprint of the firmware ELF at `elf`.
    pub fn of(elf: &Path) -> Footprint {
        let bytes = read_file(elf);
        let file = object::File::parse(&*bytes)
            .unwrap_or_else(|e| panic!("{} is not an object file: {e}", elf.display()));
        let symbol = |name: &str| {
            file.symbols()
                .find(|s| s.name() == Ok(name))
                .unwrap_or_else(|| panic!("{} has no symbol {name}", elf.display()))
                .address()
        };
        // memory.x puts the stack at the bottom of RAM and the statics after it.
        let (stack_bottom, stack_top, ram_end) = (
            symbol("_stack_end"),
            symbol("_stack_start"),
            symbol("_ram_end"),
        );
        let section_size = |name: &str| file.section_by_name(name).map_or(0, |s| s.size());
        let ram_sections = file
            .sections()
            // Only sections loaded into memory have an address (debug info has 0).
            .filter(|s| (stack_bottom..ram_end).contains(&s.address()))
            .map(|s| (s.name().unwrap_or("?").to_string(), s.size()))
            .collect();
        Footprint {
            text: section_size(".text"),
            rodata: section_size(".rodata"),
            ram_sections,
            stack: stack_top - stack_bottom,
        }
    }

    /// RAM the firmware needs: its statics and the stack reserved for it.
    pub fn ram(&self) -> u64 {
        self.ram_sections.iter().map(|(_, size)| size).sum::<u64>() + self.stack
    }
}

impl std::fmt::Display for Footprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "flash .text {} + .rodata {} bytes; RAM ",
            self.text, self.rodata
        )?;
        for (name, size) in &self.ram_sections {
            write!(f, "{name} {size} + ")?;
        }
        write!(f, "stack {} = {} bytes", self.stack, self.ram())
    }
}
