//! `netbench`: `benches` with the net group as its default and as `all`,
//! kept so that the command lines of earlier runs still work. Every option of
//! `benches` applies (`--help`).

use std::process::ExitCode;

use benches::options::Tool;

fn main() -> ExitCode {
    benches::command::main(Tool::Netbench)
}
