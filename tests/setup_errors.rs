//! When io_uring is blocked, `Backend::Auto` falls back to the epoll backend and the
//! runtime serves TCP and files as before, saying why it fell back; `Backend::IoUring`
//! (or `RUNTIME_BACKEND=io_uring`) gets an `io::Error` that says what happened and what
//! to do about it, and `#[runtime::main]` turns that error into a message and exit
//! status 1. Nothing panics.
//!
//! io_uring is blocked for real: each case runs this binary again as a child process
//! that installs a seccomp filter making `io_uring_setup`, `io_uring_enter` and
//! `io_uring_register` fail with a chosen errno (EPERM for all three is what Docker's
//! default profile does; ENOSYS is what a kernel without io_uring answers), then does
//! what the case says and reports on its standard output. The filter cannot be removed,
//! hence the child process. One case installs no filter, to prove that the child itself
//! builds an io_uring runtime when nothing is in its way.

use std::env;
use std::io::{self, ErrorKind};
use std::process::{self, Command, Output};

use runtime::Backend;
use tests::seccomp;

/// Set in a child's environment to the case it is to run.
const CASE_VAR: &str = "RUNTIME_SETUP_ERRORS_CASE";
/// Set to 1 to print what each passing case saw (the errors it provoked on purpose).
const SHOW_VAR: &str = "SHOW_OUTCOMES";

/// What the child does once its filter, if any, is installed.
#[derive(Clone, Copy)]
enum Action {
    /// Build a one-core runtime with this backend and print what `build` returned.
    Build(Backend),
    /// Build with `Backend::Auto`, then serve a TCP round trip and a file's write and
    /// read, and print what came back.
    Serve,
    /// Call a function marked `#[runtime::main]`.
    RunMain,
}

struct Case {
    name: &'static str,
    /// The errno the io_uring syscalls fail with, or `None` for no filter.
    errno: Option<i32>,
    /// `RUNTIME_BACKEND` in the child's environment (none if `None`).
    env: Option<&'static str>,
    /// Deny only `io_uring_enter` (a ring can be made but not used).
    enter_only: bool,
    action: Action,
    check: fn(&Report) -> Result<(), String>,
}

const CASES: &[Case] = &[
    Case {
        name: "io_uring_allowed_builds_on_io_uring",
        errno: None,
        env: None,
        enter_only: false,
        action: Action::Build(Backend::Auto),
        check: check_builds_on_io_uring,
    },
    Case {
        name: "docker_profile_auto_falls_back_and_serves_tcp_and_files",
        errno: Some(libc::EPERM),
        env: None,
        enter_only: false,
        action: Action::Serve,
        check: check_serves_on_epoll,
    },
    Case {
        name: "docker_profile_io_uring_asked_for_is_permission_denied",
        errno: Some(libc::EPERM),
        env: None,
        enter_only: false,
        action: Action::Build(Backend::IoUring),
        check: check_eperm,
    },
    Case {
        name: "docker_profile_io_uring_from_the_environment_is_permission_denied",
        errno: Some(libc::EPERM),
        env: Some("io_uring"),
        enter_only: false,
        action: Action::Build(Backend::Auto),
        check: check_eperm,
    },
    Case {
        name: "no_io_uring_in_kernel_io_uring_asked_for_is_unsupported",
        errno: Some(libc::ENOSYS),
        env: None,
        enter_only: false,
        action: Action::Build(Backend::IoUring),
        check: check_enosys,
    },
    Case {
        name: "no_io_uring_in_kernel_auto_falls_back_to_epoll",
        errno: Some(libc::ENOSYS),
        env: None,
        enter_only: false,
        action: Action::Build(Backend::Auto),
        check: check_falls_back_unsupported,
    },
    Case {
        name: "a_filter_that_denies_only_io_uring_enter_falls_back_at_build",
        errno: Some(libc::EPERM),
        env: None,
        enter_only: true,
        action: Action::Build(Backend::Auto),
        check: check_falls_back_enter,
    },
    Case {
        name: "a_bad_backend_name_in_the_environment_is_invalid_input",
        errno: None,
        env: Some("kqueue"),
        enter_only: false,
        action: Action::Build(Backend::Auto),
        check: check_bad_env,
    },
    Case {
        name: "runtime_main_says_once_that_it_fell_back_and_runs",
        errno: Some(libc::EPERM),
        env: None,
        enter_only: false,
        action: Action::RunMain,
        check: check_main_falls_back,
    },
    Case {
        name: "runtime_main_with_io_uring_required_prints_the_error_and_exits_1",
        errno: Some(libc::EPERM),
        env: Some("io_uring"),
        enter_only: false,
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
        let denied = if case.enter_only {
            seccomp::deny_syscall(seccomp::SYS_IO_URING_ENTER, errno)
        } else {
            seccomp::deny_io_uring(errno)
        };
        if let Err(error) = denied {
            eprintln!("could not install the seccomp filter: {error}");
            process::exit(2);
        }
    }
    match case.action {
        Action::Build(backend) => match runtime::Builder::new().cores(1).backend(backend).build() {
            Ok(runtime) => {
                println!("backend={}", runtime.backend());
                if let Some(why) = runtime.fallback_reason() {
                    println!("fallback_kind={:?}", why.kind());
                    println!("fallback={why}");
                }
                runtime.shutdown();
                println!("built");
            }
            Err(error) => {
                println!("kind={:?}", error.kind());
                // Last, as the message may span lines.
                println!("message={error}");
            }
        },
        Action::Serve => serve(),
        Action::RunMain => {
            main_marked_with_the_attribute();
            println!("the body of the #[runtime::main] function ran");
        }
    }
}

/// Under the filter: a TCP echo over the runtime's sockets (accepted with `incoming`,
/// received with `recv_stream`) and a file written and read back with `runtime::fs`,
/// on two cores (so a wake-up crosses cores too).
fn serve() {
    use runtime::net::{TcpListener, TcpStream};
    let mut rt = match runtime::Builder::new().cores(2).pin(false).build() {
        Ok(rt) => rt,
        Err(error) => {
            println!("kind={:?}", error.kind());
            println!("message={error}");
            return;
        }
    };
    println!("backend={}", rt.backend());
    if let Some(why) = rt.fallback_reason() {
        println!("fallback_kind={:?}", why.kind());
    }
    let dir = tests::TempDir::new("setup-errors-serve");
    let path = dir.join("data");
    let (tcp, file) = rt.block_on(async move {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // The echo server runs on core 1; the client here, on core 0.
        let server = runtime::spawn_on(1, move || async move {
            // The multishot forms, which the fall-back must serve without the probe.
            let listener = TcpListener::from_std(listener).unwrap();
            let mut incoming = listener.incoming();
            let stream = tests::next(&mut incoming).await.unwrap().unwrap();
            let mut got = Vec::new();
            let mut chunks = stream.recv_stream();
            while got.len() < 20 {
                let chunk = tests::next(&mut chunks).await.expect("not ended");
                got.extend_from_slice(&chunk.unwrap());
            }
            drop(chunks);
            let n = got.len();
            let (written, _) = stream.write_all(got).await;
            written.unwrap();
            n
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let (sent, _) = client.write_all(b"through the fallback".to_vec()).await;
        sent.unwrap();
        let (n, echoed) = client.read_exact(vec![0u8; 20]).await;
        n.unwrap();
        assert_eq!(server.await.unwrap(), 20);
        runtime::fs::write(&path, b"a file on epoll".to_vec())
            .await
            .unwrap();
        let back = runtime::fs::read(&path).await.unwrap();
        (echoed, back)
    });
    println!("tcp={}", String::from_utf8_lossy(&tcp));
    println!("file={}", String::from_utf8_lossy(&file));
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

fn check_builds_on_io_uring(report: &Report) -> Result<(), String> {
    let built = report.output.status.success() && report.stdout.contains("built");
    if built && report.field("backend") == Some("io_uring") && report.field("fallback").is_none() {
        Ok(())
    } else {
        Err(format!(
            "expected an io_uring runtime; status {}, stdout: {}, stderr: {}",
            report.output.status,
            report.stdout.trim(),
            report.stderr.trim()
        ))
    }
}

fn check_serves_on_epoll(report: &Report) -> Result<(), String> {
    let got = |key| report.field(key).unwrap_or("(nothing)");
    if !report.output.status.success() {
        return Err(format!(
            "child failed with {}; stdout: {} stderr: {}",
            report.output.status,
            report.stdout.trim(),
            report.stderr.trim()
        ));
    }
    let expected = [
        ("backend", "epoll"),
        ("fallback_kind", "PermissionDenied"),
        ("tcp", "through the fallback"),
        ("file", "a file on epoll"),
    ];
    for (key, want) in expected {
        if got(key) != want {
            return Err(format!("expected {key}={want}, got {key}={}", got(key)));
        }
    }
    Ok(())
}

fn check_falls_back_unsupported(report: &Report) -> Result<(), String> {
    let fell_back = report.field("backend") == Some("epoll")
        && report.field("fallback_kind") == Some("Unsupported")
        && report.stdout.contains("built");
    if !fell_back {
        return Err(format!(
            "expected an epoll runtime that says io_uring is unsupported; stdout: {}",
            report.stdout.trim()
        ));
    }
    expect_mentions(
        report.field("fallback").unwrap_or(""),
        &["io_uring", "kernel"],
    )
}

fn check_falls_back_enter(report: &Report) -> Result<(), String> {
    if report.field("backend") != Some("epoll") || !report.stdout.contains("built") {
        return Err(format!(
            "expected an epoll runtime; stdout: {}, stderr: {}",
            report.stdout.trim(),
            report.stderr.trim()
        ));
    }
    expect_mentions(
        report.field("fallback").unwrap_or(""),
        &["io_uring_enter", "seccomp"],
    )
}

fn check_bad_env(report: &Report) -> Result<(), String> {
    let (kind, message) = report.build_error()?;
    expect_kind(kind, ErrorKind::InvalidInput, message)?;
    expect_mentions(message, &["RUNTIME_BACKEND", "kqueue", "epoll"])
}

fn check_main_falls_back(report: &Report) -> Result<(), String> {
    let stderr = report.stderr.trim();
    let lines: Vec<&str> = stderr.lines().collect();
    let ran = report
        .stdout
        .contains("the body of the #[runtime::main] function ran");
    if !report.output.status.success() || !ran {
        return Err(format!(
            "expected the body to run; status {}, stdout: {}, stderr: {stderr}",
            report.output.status,
            report.stdout.trim()
        ));
    }
    let prefix = "runtime: io_uring is unavailable, running on the epoll backend: ";
    match lines.as_slice() {
        [line] if line.starts_with(prefix) => expect_mentions(line, &seccomp_words()),
        _ => Err(format!(
            "expected one line on stderr starting with {prefix:?}, got: {stderr}"
        )),
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
    let mut command = Command::new(exe);
    // The suite's own choice of backend is not the case's.
    command
        .env(CASE_VAR, case.name)
        .env_remove(runtime::BACKEND_ENV);
    if let Some(value) = case.env {
        command.env(runtime::BACKEND_ENV, value);
    }
    let output = command.output()?;
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
    let show = env::var_os(SHOW_VAR).is_some_and(|v| v == "1");
    let (mut passed, mut failed) = (0, 0);
    for case in CASES {
        let verdict = run_child(&exe, case)
            .map_err(|error| format!("could not run the child: {error}"))
            .and_then(|report| {
                (case.check)(&report)?;
                Ok(describe(&report))
            });
        match verdict {
            // A passing case prints only its name: the errors it provoked on purpose
            // are not news (SHOW_OUTCOMES=1 prints them, to read their wording).
            Ok(outcome) if show => {
                passed += 1;
                println!("ok   {}: {outcome}", case.name);
            }
            Ok(_) => {
                passed += 1;
                println!("ok   {}", case.name);
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
