//! The `benches` command: parses the command line, runs the selected groups and
//! writes the report.
//!
//! One group runs in this process. Several run one after another, each in a
//! process of its own (this binary again, with `--part FILE`), as each ran when
//! it was a command of its own: no group finds another's threads, pinned CPU
//! mask, file descriptors or memory. Each writes its [`GroupReport`] as JSON to
//! its part file, and this process puts the report together. The report is
//! written again after every group, so that an interrupted run keeps what it
//! measured.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use crate::machine::{utc_now, Machine};
use crate::options::{Group, Options, Tool, USAGE};
use crate::report::{GroupReport, Report};
use crate::{close, compare, fallback, fs, instructions, net, tools};

/// The `main` of a binary that stands for `tool`.
pub fn main(tool: Tool) -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(code) = child_process(&args) {
        return code;
    }
    let options = match Options::parse(tool, args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            if tool != Tool::Benches {
                let groups: Vec<&str> = Options::defaults(tool)
                    .selection
                    .groups()
                    .iter()
                    .map(|g| g.name())
                    .collect();
                println!(
                    "`{}` is `benches` with {} as its groups by default and for `all`\n",
                    tool.name(),
                    groups.join(", ")
                );
            }
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!(
                "{}: {message} (--help lists the groups and options)",
                tool.name()
            );
            return ExitCode::from(2);
        }
    };
    if let Some(part) = &options.part {
        return run_part(&options, part);
    }
    run(tool, &options)
}

/// The processes this binary starts of itself: a server of the net group, the
/// holder of the close group's far ends, and the nops of the instructions
/// group. `None` if `args` asks for none of them.
fn child_process(args: &[String]) -> Option<ExitCode> {
    let (first, rest) = args.split_first()?;
    let (what, result) = match first.as_str() {
        // Returns only on error.
        "serve" => ("serve", net::server::run(rest)),
        close::holder::HOLD => ("hold", close::holder::hold(rest)),
        instructions::CHILD => (instructions::CHILD, instructions::child(rest)),
        _ => return None,
    };
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("benches {what}: {err}");
            ExitCode::FAILURE
        }
    })
}

/// Runs the one group of `options` here and writes its report to `part`.
fn run_part(options: &Options, part: &Path) -> ExitCode {
    let Some(&group) = options.selection.groups().first() else {
        eprintln!("benches: --part needs a group");
        return ExitCode::from(2);
    };
    let report = run_group(group, options);
    if let Err(err) = report.write(part) {
        eprintln!("benches: cannot write {}: {err}", part.display());
        return ExitCode::FAILURE;
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn run(tool: Tool, options: &Options) -> ExitCode {
    let started = Instant::now();
    let path = options
        .report
        .clone()
        .unwrap_or_else(|| tools::target_dir().join("bench-report.md"));
    let mut report = Report {
        command: command_line(),
        directory: std::env::current_dir().map_or_else(
            |err| format!("unknown ({err})"),
            |d| d.display().to_string(),
        ),
        build: build(),
        started: utc_now(),
        seconds: 0.0,
        machine: Machine::now(),
        load_end: String::new(),
        groups: Vec::new(),
    };
    let m = &report.machine;
    println!("{}: {}", tool.name(), report.command);
    println!("build: {}", report.build);
    println!("CPUs: {}; memory {}", m.cpus, m.memory);
    println!("kernel: {}", m.kernel);
    println!("load average: {}", m.load_start);
    if let Some(source) = &m.source {
        println!("source: {source}");
    }
    let groups = options.selection.groups();
    for &group in &groups {
        let group_report = if !options.runs_any(group) {
            let mut skipped = GroupReport::start(group.name());
            skipped.skip("--only names no contender of this group");
            skipped.end()
        } else if groups.len() == 1 {
            run_group(group, options)
        } else {
            run_in_child(group, options)
        };
        report.groups.push(group_report);
        report.seconds = started.elapsed().as_secs_f64();
        report.load_end = crate::machine::load_average();
        if let Err(err) = report.save(&path) {
            eprintln!("benches: cannot write the report {}: {err}", path.display());
        }
    }
    report.print_summary();
    match report.save(&path) {
        Ok(json) => println!("report: {} (and {})", path.display(), json.display()),
        Err(err) => {
            eprintln!("benches: cannot write the report {}: {err}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if report.groups.iter().any(GroupReport::failed) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs `group` in this process.
fn run_group(group: Group, options: &Options) -> GroupReport {
    let mut report = GroupReport::start(group.name());
    match group {
        Group::Nop | Group::Spawn | Group::Cross => compare::run_group(group, options, &mut report),
        Group::Net => net::run_group(options, &mut report),
        Group::Fs => fs::run_group(options, &mut report),
        Group::Close => close::run_group(options, &mut report),
        Group::Instructions => instructions::run_group(options, &mut report),
        Group::Fallback => fallback::run_group(options, &mut report),
    }
    report.end()
}

/// Runs `group` in a process of its own and reads back its report.
fn run_in_child(group: Group, options: &Options) -> GroupReport {
    let part = std::env::temp_dir().join(format!(
        "benches-{}-{}.json",
        std::process::id(),
        group.name()
    ));
    let failed = |why: String| {
        let mut report = GroupReport::start(group.name());
        report.fail(why);
        report.end()
    };
    let _ = std::fs::remove_file(&part);
    // The binary this process runs, even if a build has replaced the file since.
    let status = Command::new("/proc/self/exe")
        .arg0("benches")
        .args(options.child_args(group, &part))
        .stdin(Stdio::null())
        .status();
    let status = match status {
        Ok(status) => status,
        Err(err) => return failed(format!("cannot start its process: {err}")),
    };
    let report = GroupReport::read(&part);
    let _ = std::fs::remove_file(&part);
    match report {
        Ok(report) => report,
        Err(err) => failed(format!(
            "its process ended ({status}) without a report: {err}"
        )),
    }
}

/// This process's command line, quoted for a shell where it needs to be.
fn command_line() -> String {
    std::env::args()
        .map(|arg| {
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c));
            if plain {
                arg
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How this binary was built and started.
fn build() -> String {
    let profile = if cfg!(debug_assertions) {
        "debug build, NOT optimised: the figures mean little (add --release)"
    } else {
        "release build"
    };
    let exe: PathBuf = std::env::current_exe().unwrap_or_default();
    let through = if std::env::var_os("CARGO").is_some() {
        ", started by cargo"
    } else {
        ""
    };
    format!("{profile} ({}){through}", exe.display())
}
