//! Helpers of the C API tests (`tests/capi.rs`): building `libllama2.a`, compiling C programs
//! against it with gcc, and running them, directly or under valgrind's memcheck.
//!
//! gcc and valgrind are required, never optional: a missing tool fails the test with a
//! message that says how to install it, so that a machine without them cannot pass the C
//! tests by skipping them.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::{cargo_artifacts, cargo_command, workspace_root};

/// The `capi/` crate directory.
pub fn capi_dir() -> PathBuf {
    workspace_root().join("capi")
}

/// The committed header, `capi/include/llama2.h`.
pub fn header_path() -> PathBuf {
    capi_dir().join("include").join("llama2.h")
}

/// A C source in `capi/examples/`.
pub fn example_source(name: &str) -> PathBuf {
    let path = capi_dir().join("examples").join(name);
    assert!(path.is_file(), "missing C example {}", path.display());
    path
}

/// `libllama2.a`, built once per test process.
///
/// `$LLAMA2_CAPI_LIB` overrides it. Otherwise this runs `$CARGO build -p llama2-capi --lib
/// --release --message-format=json` and takes the archive from the `filenames` of the
/// library's artifact message. Always the release profile, whatever the test's: it is what C
/// programs link (README), and in the dev profile the engine's generic code is instantiated
/// unoptimised in the C API crate, which makes the valgrind runs thirty times slower.
pub fn static_lib() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    LIB.get_or_init(|| match std::env::var_os("LLAMA2_CAPI_LIB") {
        Some(path) => PathBuf::from(path),
        None => build_static_lib(),
    })
}

fn build_static_lib() -> PathBuf {
    let mut command = cargo_command();
    command.current_dir(workspace_root()).args([
        "build",
        "-p",
        "llama2-capi",
        "--lib",
        "--release",
    ]);
    cargo_artifacts(command, "llama2-capi")
        .iter()
        .filter(|message| message["package_id"].as_str().is_some_and(is_capi_package))
        .flat_map(|message| message["filenames"].as_array().cloned().unwrap_or_default())
        .filter_map(|name| name.as_str().map(PathBuf::from))
        .find(|path| path.extension() == Some(OsStr::new("a")))
        .unwrap_or_else(|| panic!("cargo reported no libllama2.a"))
}

/// Whether a cargo package id names `llama2-capi` (`path+file:///…/capi#llama2-capi@0.1.0`
/// or the older `llama2-capi 0.1.0 (path+file:///…)`).
fn is_capi_package(id: &str) -> bool {
    id.contains("#llama2-capi@") || id.starts_with("llama2-capi ")
}

/// The path of `tool` on `PATH`; fails naming the Debian package that provides it.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "`{tool}` is not installed, and the C API tests need it (they are never skipped): \
             install it, e.g. `apt-get install -y {package}`"
        )
    })
}

/// The compiler flags of every C program: strict C99, every warning an error.
pub const C_FLAGS: [&str; 6] = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-g"];

/// The libraries `libllama2.a` needs on Linux besides libc (gcc adds libgcc_s itself).
pub const LINK_LIBS: [&str; 3] = ["-lm", "-lpthread", "-ldl"];

/// Compiles the C example `name` (in `capi/examples/`) into `out_dir`; see [`compile_c`].
pub fn compile_example(name: &str, out_dir: &Path) -> PathBuf {
    compile_c(&example_source(name), out_dir)
}

/// Compiles the C program `source` against the header and `libllama2.a` into `out_dir` with
/// [`C_FLAGS`], and returns the executable's path. The archive is named by path, so that
/// the shared library beside it is never picked instead.
pub fn compile_c(source: &Path, out_dir: &Path) -> PathBuf {
    let gcc = require_tool("gcc", "gcc");
    let exe = out_dir.join(source.file_stem().expect("a source file name"));
    let output = Command::new(&gcc)
        .args(C_FLAGS)
        .arg("-I")
        .arg(capi_dir().join("include"))
        .arg(source)
        .arg(static_lib())
        .args(LINK_LIBS)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", gcc.display()));
    assert!(
        output.status.success(),
        "compiling {} failed ({}):\n{}{}",
        source.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    exe
}

/// Runs `program` with `args` and waits for it.
pub fn run<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()))
}

/// The exit status valgrind reports when it found errors (leaks included).
pub const VALGRIND_ERROR_EXIT: i32 = 99;

/// Runs `program` with `args` under valgrind's memcheck, which exits with
/// [`VALGRIND_ERROR_EXIT`] on any error, and on any leak of any kind.
///
/// `RUST_BACKTRACE` is cleared for the program: `errors.c` provokes a caught engine panic,
/// and with backtraces on, std's panic hook keeps its symbolizer caches for the rest of the
/// process, which memcheck counts as "still reachable".
pub fn run_valgrind<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Output {
    let valgrind = require_tool("valgrind", "valgrind");
    Command::new(&valgrind)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .args([
            "--tool=memcheck",
            &format!("--error-exitcode={VALGRIND_ERROR_EXIT}"),
            "--leak-check=full",
            "--show-leak-kinds=all",
            "--errors-for-leak-kinds=all",
            "--track-origins=yes",
        ])
        .arg(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", valgrind.display()))
}
