//! Network servers side by side: echo and HTTP servers of `runtime`, a
//! hand-written io_uring loop, tokio, tokio-uring, monoio and glommio, each in
//! a process of its own on CPU 0, loaded from CPU 1. Run with
//! `cargo run -p benches --release --bin netbench -- [echo|http|all] [--quick]`
//! (`--help` lists the other options).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use benches::net::bench::{self, Setup, Timing, Workload};
use benches::net::options::{Options, USAGE};
use benches::net::process::set_affinity;
use benches::net::report::{print_verdicts, print_workload, Verdict};
use benches::net::{contenders, server, wrk, CONNECTIONS, LOAD_CPU, SERVER_CPU};

/// Echo message sizes.
const ECHO_SIZES: [usize; 2] = [64, 4096];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("serve") {
        // The child's side: returns only on error.
        let err = server::run(&args[1..]).unwrap_err();
        eprintln!("netbench serve: {err}");
        return ExitCode::FAILURE;
    }
    let options = match Options::parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("netbench: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(err) = set_affinity(0, LOAD_CPU) {
        eprintln!(
            "netbench: cannot pin the load to CPU {LOAD_CPU} ({err}); \
             this benchmark needs CPUs {SERVER_CPU} and {LOAD_CPU}"
        );
        return ExitCode::FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => {
            eprintln!("netbench: cannot find my own binary: {err}");
            return ExitCode::FAILURE;
        }
    };
    let timing = if options.quick {
        Timing::QUICK
    } else {
        Timing::FULL
    };
    let setup = Setup {
        hello: options.hello.clone().or_else(|| find_hello(&exe)),
        // The binary this process runs, even if a build has replaced the file
        // since it started.
        exe: PathBuf::from("/proc/self/exe"),
        wrk: wrk::find(),
        timing,
        rounds: options.rounds,
    };
    println!(
        "netbench: servers on CPU {SERVER_CPU} (one process per run), load on CPU {LOAD_CPU}, \
         {CONNECTIONS} connections; {} rounds, contenders interleaved; median of the rounds{}",
        setup.rounds,
        if options.quick { "; --quick" } else { "" }
    );
    println!(
        "server CPU = utime + stime of the server process over the measured window \
         (/proc/<pid>/stat, 10 ms ticks)"
    );
    let mut verdicts: Vec<Verdict> = Vec::new();
    if options.selection.echo() {
        for size in ECHO_SIZES {
            verdicts.extend(run(Workload::Echo { size }, &options, &setup));
        }
    }
    if options.selection.http() {
        match &setup.wrk {
            Some(_) => verdicts.extend(run(Workload::Http, &options, &setup)),
            None => println!("\nwrk not found: skipping the HTTP benchmark (apt-get install wrk)"),
        }
    }
    println!();
    print_verdicts(&verdicts);
    ExitCode::SUCCESS
}

/// Runs one workload with the selected contenders and prints its table.
fn run(workload: Workload, options: &Options, setup: &Setup) -> Vec<Verdict> {
    let selected: Vec<_> = contenders(workload.protocol())
        .into_iter()
        .filter(|c| options.runs(c.name))
        .collect();
    if selected.is_empty() {
        return Vec::new();
    }
    println!("\n{}", workload.title());
    match workload {
        Workload::Echo { size } => println!(
            "  {CONNECTIONS} connections, one message of {size} B in flight on each, \
             every echo checked; {:.1} s warm-up, {:.1} s measured",
            setup.timing.echo_warmup.as_secs_f64(),
            setup.timing.echo_window.as_secs_f64()
        ),
        Workload::Http => {
            println!(
                "  taskset -c {LOAD_CPU} wrk {}; after a {} s warm-up run of wrk",
                wrk::command_line(
                    CONNECTIONS,
                    setup.timing.http_window_secs,
                    "http://127.0.0.1:PORT/"
                )
                .join(" "),
                setup.timing.http_warmup_secs
            );
            if selected.iter().any(|c| c.name == "ours") {
                match &setup.hello {
                    Some(hello) => println!("  ours: {} --port PORT", hello.display()),
                    None => println!(
                        "  ours: the `hello` example was not found; build it with \
                         `cargo build --release --example hello` (or pass --hello PATH)"
                    ),
                }
            }
        }
    }
    let results = bench::run(workload, &selected, setup);
    print_workload(workload, &results)
}

/// Looks for the `hello` example binary: next to this binary (the same
/// target directory), under `$CARGO_TARGET_DIR`, then under the workspace's
/// `target/`.
fn find_hello(exe: &Path) -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
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
