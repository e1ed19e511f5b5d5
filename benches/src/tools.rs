//! The programs some groups need besides this binary: `wrk` (net), `fio` (fs),
//! `valgrind` (instructions), found on the `PATH` and installed with `apt-get`
//! when this process is root and the machine has it; and the project's `hello`
//! example (net), built with cargo when it is missing.

use std::io::{self, IsTerminal};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Where `program` is on the `PATH`, if it is.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program`, installed from the Debian package `package` if it is missing and
/// this process may install it. The error says why it is not there.
pub fn ensure(program: &str, package: &str) -> Result<PathBuf, String> {
    if let Some(found) = find(program) {
        return Ok(found);
    }
    if !is_root() {
        return Err(format!(
            "{program} is not installed and this is not root to install it \
             (apt-get install {package})"
        ));
    }
    if find("apt-get").is_none() {
        return Err(format!(
            "{program} is not installed and there is no apt-get to install it with"
        ));
    }
    eprintln!("installing {package} (apt-get install {package})");
    static UPDATED: OnceLock<Result<(), String>> = OnceLock::new();
    UPDATED
        .get_or_init(|| apt_get(&["update", "-qq"]))
        .clone()
        .map_err(|err| format!("{program} is not installed: {err}"))?;
    apt_get(&["install", "-y", "-qq", package])
        .map_err(|err| format!("{program} is not installed: {err}"))?;
    find(program).ok_or_else(|| {
        format!("{program} is still not on the PATH after apt-get install {package}")
    })
}

/// Runs `apt-get ARGS`, its output going to standard error so that the tables
/// on standard output stay clean.
fn apt_get(args: &[&str]) -> Result<(), String> {
    let stderr = io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|err| format!("cannot pass standard error to apt-get: {err}"))?;
    let status = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::from(stderr))
        .status()
        .map_err(|err| format!("cannot run apt-get: {err}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("apt-get {} failed ({status})", args.join(" ")))
    }
}

/// The `hello` example binary, which serves `ours` in the HTTP benchmark: `given`
/// if the command line named one. Otherwise, when cargo started this process
/// (`cargo run`), `cargo build --release --example hello` first, so that the
/// example is built from the same source as this binary (a no-op when it is up
/// to date); then the one beside this binary, under `$CARGO_TARGET_DIR` or under
/// the workspace's `target/`; and if there is none, built with the `cargo` on the
/// `PATH`. The error says why there is none.
pub fn hello_example(given: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = given {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("--hello {}: no such file", path.display()))
        };
    }
    match std::env::var_os("CARGO") {
        Some(cargo) => build_hello(Path::new(&cargo))?,
        None if find_hello().is_none() => build_hello(Path::new("cargo"))?,
        None => {}
    }
    find_hello()
        .ok_or_else(|| "the hello example was built but not found; pass --hello PATH".to_string())
}

fn build_hello(cargo: &Path) -> Result<(), String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    eprintln!("building the hello example: cargo build --release --example hello");
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--example", "hello"])
        .current_dir(&workspace)
        .stdin(Stdio::null());
    if !io::stderr().is_terminal() {
        // Keep cargo's progress bar out of a captured log.
        command.arg("--quiet");
    }
    let built = command
        .status()
        .map_err(|err| format!("cannot run cargo to build the hello example: {err}"))?;
    if built.success() {
        Ok(())
    } else {
        Err(format!(
            "cargo build --release --example hello failed ({built})"
        ))
    }
}

/// Looks for the `hello` example binary: next to this binary (the same target
/// directory), under `$CARGO_TARGET_DIR`, then under the workspace's `target/`.
fn find_hello() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join("examples/hello"));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("release/examples/hello"));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    candidates.push(workspace.join("target/release/examples/hello"));
    candidates
        .into_iter()
        .find(|path| path.is_file())
        .map(|path| path.canonicalize().unwrap_or(path))
}

/// The target directory: `$CARGO_TARGET_DIR`, or `target/` of the current
/// directory.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

#[cfg(test)]
mod tests {
    use super::{ensure, find};

    #[test]
    fn finds_what_is_on_the_path_and_says_why_not() {
        assert!(find("sh").is_some());
        assert!(find("no-such-program-here").is_none());
        assert!(ensure("sh", "dash").is_ok());
    }
}
