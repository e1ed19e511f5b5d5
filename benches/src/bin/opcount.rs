//! `opcount WORKLOAD COUNT`: runs one of the runtime's nop or spawn workloads once,
//! for `valgrind --tool=callgrind` to count its instructions. Run with N and 2N:
//! everything but the ops (process start, runtime set-up, exit) is the same in both,
//! so `(Ir(2N) - Ir(N)) / N` is what one op (a nop, or a spawn + join) costs in user
//! space. Workloads: `nop1` (one nop at a time), `nop64` (64 tasks doing nops),
//! `spawn-all` (every task spawned, then each awaited), `spawn-batch` (spawned and
//! awaited 1,000 at a time). The `instructions` group of `benches` does the same for
//! nops against the raw ring loop; this one also counts spawns, and builds against an
//! older commit to compare a change.

use std::io;
use std::process::ExitCode;

use benches::ours;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: opcount nop1|nop64|spawn-all|spawn-batch COUNT";
    let [workload, count] = &args[..] else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let Ok(count) = count.parse::<u64>() else {
        eprintln!("`{count}` is not a number; {usage}");
        return ExitCode::from(2);
    };
    let run: fn(u64) -> io::Result<benches::measure::Sample> = match workload.as_str() {
        "nop1" => ours::nop_qd1,
        "nop64" => ours::nop_qd64,
        "spawn-all" => ours::spawn_all,
        "spawn-batch" => ours::spawn_batched,
        _ => {
            eprintln!("no workload `{workload}`; {usage}");
            return ExitCode::from(2);
        }
    };
    match run(count) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("opcount {workload} {count}: {err}");
            ExitCode::FAILURE
        }
    }
}
