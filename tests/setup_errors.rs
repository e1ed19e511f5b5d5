//! When io_uring is blocked, `Builder::build` returns an `io::Error` that says
//! what happened and what to do about it, and `#[runtime::main]` turns that
//! error into a message and exit status 1. Nothing panics.
//!
//! io_uring is blocked for real: each case runs this binary again as a child
//! process that installs a seccomp filter making `io_uring_setup` fail with a
//! chosen errno (EPERM is what Docker's default profile does; ENOSYS is what a
//! kernel without io_uring answers), then builds a runtime and reports on its
//! standard output what `build` returned. The filter cannot be removed, hence
//! the child process. One case installs no filter, to prove that the child
//! itself builds a runtime when nothing is in its way.

use std::env;
use std::io::{self, ErrorKind};
use std::process::{self, Command, Output};

use tests::seccomp::{self, SYS_IO_URING_SETUP};

/// Set in a child's environment to the case it is to run.
const CASE_VAR: &str = "RUNTIME_SETUP_ERRORS_CASE";

/// What the child does once its filter, if any, is installed.
#[derive(Clone, Copy)]
enum Action {
    /// Call `Builder::new().cores(1).build()` and print the outcome.
    Build,
    /// Call a function marked `#[runtime::main]`; it must exit with status 1.
    RunMain,
}

struct Case {
    name: &'static str,
    /// The errno `io_uring_setup` fails with, or `None` for no filter.
    errno: Option<i32>,
    action: Action,
    check: fn(&Report) -> Result<(), String>,
}

const CASES: &[Case] = &[
    Case {
        name: "io_uring_allowed_builds",
        errno: None,
        action: Action::Build,
        check: check_builds,
    },
    Case {
        name: "seccomp_eperm_is_permission_denied",
        errno: Some(libc::EPERM),
        action: Action::Build,
        check: check_eperm,
    },
    Case {
        name: "no_io_uring_in_kernel_is_unsupported",
        errno: Some(libc::ENOSYS),
        action: Action::Build,
        check: check_enosys,
    },
    Case {
        name: "runtime_main_prints_the_error_and_exits_1",
        errno: Some(libc::EPERM),
        action: Action::RunMain,
        check: check_main_exits,
    },
];

fn main() {
    match env::var(CASE_VAR) {
        Ok(name) => child(&name),
        Err(_) => parent(),
    }
}

// ---------------------------------------------------------------- child side

fn child(name: &str) {
    let case = CASES
        .iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("no case named {name:?}"));
    if let Some(errno) = case.errno {
        if let Err(error) = seccomp::deny_syscall(SYS_IO_URING_SETUP, errno) {
            eprintln!("could not install the seccomp filter: {error}");
            process::exit(2);
        }
    }
    match case.action {
        Action::Build => match runtime::Builder::new().cores(1).build() {
            Ok(runtime) => {
                runtime.shutdown();
                println!("built");
            }
            Err(error) => {
                println!("kind={:?}", error.kind());
                // Last, as the message may span lines.
                println!("message={error}");
            }
        },
        Action::RunMain => {
            main_marked_with_the_attribute();
            println!("the body of the #[runtime::main] function ran");
        }
    }
}

#[runtime::main(cores = 1)]
async fn main_marked_with_the_attribute() {
    runtime::yield_now().await;
}

// --------------------------------------------------------------- parent side

/// What one child did.
struct Report {
    output: Output,
    stdout: String,
    stderr: String,
}

impl Report {
    fn field(&self, key: &str) -> Option<&str> {
        let start = self.stdout.find(&format!("{key}="))? + key.len() + 1;
        let rest = &self.stdout[start..];
        Some(match key {
            "message" => rest.trim_end(),
            _ => rest.lines().next().unwrap_or(""),
        })
    }

    /// The error `build` returned, or why there is none to judge.
    fn build_error(&self) -> Result<(&str, &str), String> {
        if !self.output.status.success() {
            return Err(format!(
                "child failed with {}; stderr: {}",
                self.output.status,
                self.stderr.trim()
            ));
        }
        match (self.field("kind"), self.field("message")) {
            (Some(kind), Some(message)) => Ok((kind, message)),
            _ => Err(format!(
                "expected an error, child printed: {}",
                self.stdout.trim()
            )),
        }
    }
}

fn check_builds(report: &Report) -> Result<(), String> {
    if report.output.status.success() && report.stdout.trim() == "built" {
        Ok(())
    } else {
        Err(format!(
            "expected the runtime to build; status {}, stdout: {}, stderr: {}",
            report.output.status,
            report.stdout.trim(),
            report.stderr.trim()
        ))
    }
}

fn check_eperm(report: &Report) -> Result<(), String> {
    let (kind, message) = report.build_error()?;
    expect_kind(kind, ErrorKind::PermissionDenied, message)?;
    expect_mentions(message, &seccomp_words())
}

fn check_enosys(report: &Report) -> Result<(), String> {
    let (kind, message) = report.build_error()?;
    expect_kind(kind, ErrorKind::Unsupported, message)?;
    expect_mentions(message, &["io_uring", "kernel"])
}

fn check_main_exits(report: &Report) -> Result<(), String> {
    let code = report.output.status.code();
    if code != Some(1) {
        return Err(format!(
            "expected exit status 1, got {}; stdout: {}, stderr: {}",
            report.output.status,
            report.stdout.trim(),
            report.stderr.trim()
        ));
    }
    let prefix = "error: could not start the runtime: ";
    let stderr = report.stderr.trim();
    if !stderr.starts_with(prefix) {
        return Err(format!(
            "expected stderr to start with {prefix:?}, got: {stderr}"
        ));
    }
    expect_mentions(stderr, &seccomp_words())
}

/// With `kernel.io_uring_disabled` at 0 only a seccomp filter explains EPERM,
/// and the message must say so. With the sysctl set, the runtime cannot tell
/// the two apart from the errno alone, so only io_uring must be named.
fn seccomp_words() -> Vec<&'static str> {
    match std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(value) if value.trim() != "0" => vec!["io_uring"],
        _ => vec!["seccomp"],
    }
}

fn expect_kind(kind: &str, expected: ErrorKind, message: &str) -> Result<(), String> {
    if kind == format!("{expected:?}") {
        Ok(())
    } else {
        Err(format!(
            "expected kind {expected:?}, got {kind} (message: {message})"
        ))
    }
}

fn expect_mentions(message: &str, words: &[&str]) -> Result<(), String> {
    let lower = message.to_lowercase();
    match words
        .iter()
        .find(|word| !lower.contains(&word.to_lowercase()))
    {
        None => Ok(()),
        Some(word) => Err(format!(
            "expected the message to mention {word:?}: {message}"
        )),
    }
}

fn run_child(exe: &std::path::Path, case: &Case) -> io::Result<Report> {
    let output = Command::new(exe).env(CASE_VAR, case.name).output()?;
    Ok(Report {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        output,
    })
}

fn parent() {
    // Every case needs io_uring to work when nothing blocks it: where it does
    // not (an old kernel, a container that blocks it already) the blocked
    // cases would prove nothing.
    if let Err(error) = runtime::Probe::get() {
        println!("skipped: the probe says io_uring is not available to this process ({error}), so blocking it proves nothing");
        println!("0 passed, 0 failed, {} skipped", CASES.len());
        return;
    }

    let exe = env::current_exe().expect("the path of this test binary");
    let (mut passed, mut failed) = (0, 0);
    for case in CASES {
        let verdict = run_child(&exe, case)
            .map_err(|error| format!("could not run the child: {error}"))
            .and_then(|report| {
                (case.check)(&report)?;
                Ok(describe(&report))
            });
        match verdict {
            Ok(outcome) => {
                passed += 1;
                println!("ok   {}: {outcome}", case.name);
            }
            Err(reason) => {
                failed += 1;
                println!("FAIL {}: {reason}", case.name);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        process::exit(1);
    }
}

fn describe(report: &Report) -> String {
    match (report.field("kind"), report.field("message")) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        _ if report.output.status.success() => report.stdout.trim().to_owned(),
        _ => format!("{}; stderr: {}", report.output.status, report.stderr.trim()),
    }
}
