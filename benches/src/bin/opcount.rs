//! `opcount WORKLOAD COUNT`: runs one nop or spawn workload once on a one-core
//! runtime with its default set-up, for `valgrind --tool=callgrind` to count its
//! instructions. Run with N and 2N: everything but the ops (process start, runtime
//! set-up, exit) is the same in both, so `(Ir(2N) - Ir(N)) / N` is what one op (a
//! nop, or a spawn + join) costs in user space. Workloads: `nop1` (one nop at a time,
//! from the future given to `block_on`), `nop64` (64 tasks doing nops), `spawn-all`
//! (every task spawned, then each awaited), `spawn-batch` (spawned and awaited 1,000
//! at a time).
//!
//! It uses nothing but the runtime's public API and no timing, so the same file
//! builds against an older commit to compare a change (the `instructions` group of
//! `benches` counts nops against the raw ring loop instead).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: opcount nop1|nop64|spawn-all|spawn-batch COUNT";
    let [workload, count] = &args[..] else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let Ok(n) = count.parse::<u64>() else {
        eprintln!("`{count}` is not a number; {usage}");
        return ExitCode::from(2);
    };
    let mut rt = match runtime::Builder::new().cores(1).pin(false).build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("opcount: {err}");
            return ExitCode::FAILURE;
        }
    };
    let done = rt.block_on(async move {
        match workload.as_str() {
            "nop1" => {
                for _ in 0..n {
                    runtime::nop().await?;
                }
            }
            "nop64" => {
                let per_task = n / 64;
                let tasks: Vec<_> = (0..64)
                    .map(|_| {
                        runtime::spawn(async move {
                            for _ in 0..per_task {
                                runtime::nop().await?;
                            }
                            std::io::Result::Ok(())
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await??;
                }
            }
            "spawn-all" => {
                let handles: Vec<_> = (0..n).map(|i| runtime::spawn(async move { i })).collect();
                let mut sum = 0;
                for handle in handles {
                    sum += handle.await?;
                }
                assert_eq!(sum, n * n.saturating_sub(1) / 2);
            }
            "spawn-batch" => {
                let mut handles = Vec::with_capacity(1000);
                let (mut sum, mut next) = (0, 0);
                while next < n {
                    let end = n.min(next + 1000);
                    handles.extend((next..end).map(|i| runtime::spawn(async move { i })));
                    for handle in handles.drain(..) {
                        sum += handle.await?;
                    }
                    next = end;
                }
                assert_eq!(sum, n * n.saturating_sub(1) / 2);
            }
            _ => return Ok(false),
        }
        std::io::Result::Ok(true)
    });
    match done {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("no workload `{workload}`; {usage}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("opcount {workload} {n}: {err}");
            ExitCode::FAILURE
        }
    }
}
