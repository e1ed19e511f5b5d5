//! What closing a socket and dropping a runtime cost as the operations in flight
//! on the core grow: the runtime on CPU 0, its peers on CPU 1. Run with
//! `cargo run -p benches --release --bin closebench -- [--quick]` (`--help`
//! lists the other options).

use std::io;
use std::process::ExitCode;

use benches::close::burst::{burst_round, BASELINE};
use benches::close::closing::close_round;
use benches::close::holder::{hold, HOLD};
use benches::close::options::{Options, USAGE};
use benches::close::report::{print_burst, print_closes};
use benches::close::{kernel_release, load_average, raise_fd_limit, PEER_CPU, RUNTIME_CPU};

/// Fds beyond the sockets: the ring, its eventfd, stdio, the listener and so on.
const SPARE_FDS: u64 = 256;

/// Closes done and thrown away before the measured rounds.
const WARMUP_CLOSES: usize = 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(HOLD) {
        // The child that holds the far ends of the pending connections.
        return match hold(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("closebench hold: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match Options::parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("closebench: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("closebench: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The far ends of the pending reads' connections are in a child process; both
/// ends of the closed ones are here.
fn fds_for_closes(pending: usize, closes: usize) -> u64 {
    (pending + 2 * 3 * closes) as u64 + SPARE_FDS
}

fn fds_for_burst(idle: usize) -> u64 {
    2 * (idle + BASELINE + 1) as u64 + SPARE_FDS
}

fn run(options: &Options) -> io::Result<()> {
    let wanted = options
        .pending
        .iter()
        .map(|&n| fds_for_closes(n, options.closes))
        .chain([fds_for_burst(options.idle)])
        .max()
        .unwrap_or(SPARE_FDS);
    let limit = raise_fd_limit(wanted)?;
    let mut pending = Vec::new();
    for &n in &options.pending {
        let needed = fds_for_closes(n, options.closes);
        if needed <= limit {
            pending.push(n);
        } else {
            println!("skipped: {n} pending reads need {needed} fds, the fd limit is {limit}");
        }
    }
    let idle = if options.idle > 0 && fds_for_burst(options.idle) > limit {
        println!(
            "skipped: {} idle connections need {} fds, the fd limit is {limit}",
            options.idle,
            fds_for_burst(options.idle)
        );
        0
    } else {
        options.idle
    };

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "closebench: kernel {}, {cpus} CPUs; the runtime (one core) on CPU {RUNTIME_CPU}, \
         peers and clients on CPU {PEER_CPU}; {} round(s), each figure the median over rounds; \
         load average {}",
        kernel_release(),
        options.rounds,
        load_average()
    );

    close_round(0, WARMUP_CLOSES)?;
    let mut closes = Vec::new();
    let mut bursts = Vec::new();
    for round in 1..=options.rounds {
        for &n in &pending {
            eprintln!(
                "round {round}/{}: closes with {n} pending reads",
                options.rounds
            );
            closes.push(close_round(n, options.closes)?);
        }
        if idle > 0 {
            eprintln!(
                "round {round}/{}: first request after {idle} closes",
                options.rounds
            );
            bursts.push(burst_round(idle)?);
        }
    }
    print_closes(&closes, &pending, options.closes);
    print_burst(&bursts, idle);
    println!();
    println!("load average at the end: {}", load_average());
    Ok(())
}
