//! `benches`: every side-by-side benchmark of `runtime`, one command, one report.
//! `cargo run -p benches --release -- all` runs them all; `--help` lists the
//! groups and options. See `docs/benchmarks.md` for what each one measures.

use std::process::ExitCode;

use benches::options::Tool;

fn main() -> ExitCode {
    benches::command::main(Tool::Benches)
}
