//! File I/O side by side: 4 KiB random `O_DIRECT` reads of a 1 GiB file at
//! queue depth 1 and 32 (`runtime` in three forms, fio, glommio, monoio and
//! tokio's `spawn_blocking`), and 1 MiB buffered sequential reads of it
//! (`runtime` and `std`), all on CPU 0. Run with
//! `cargo run -p benches --release --bin fsbench -- [random|seq|all] [--quick]`
//! or `benches/run-fs.sh` (`--help` lists the other options).

use std::process::ExitCode;

use benches::fs::options::{Options, USAGE};
use benches::fs::report::print_workload;
use benches::fs::{bench, contenders, data, fio, Timing, Workload, CPU};
use benches::net::process::set_affinity;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(args) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("fsbench: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Before any thread starts, so that every thread of every contender (the
    // kernel's io_uring workers, tokio's blocking pool) inherits the mask.
    if let Err(err) = set_affinity(0, CPU) {
        eprintln!("fsbench: cannot pin the process to CPU {CPU}: {err}");
        return ExitCode::FAILURE;
    }
    let path = options.file.clone().unwrap_or_else(data::default_path);
    let timing = if options.quick {
        Timing::QUICK
    } else {
        Timing::FULL
    };
    let command: Vec<String> = std::env::args().collect();
    println!("fsbench: {}", command.join(" "));
    println!("kernel: {}", data::kernel_release());
    if let Err(err) = data::ensure(&path) {
        eprintln!(
            "fsbench: cannot write the data file {}: {err}",
            path.display()
        );
        return ExitCode::FAILURE;
    }
    println!("storage: {}", data::describe_storage(&path));
    println!(
        "all on CPU {CPU}; {} rounds, contenders interleaved, median of the rounds; \
         {:.1} s warm-up, {:.1} s measured per run{}",
        options.rounds,
        timing.warmup.as_secs_f64(),
        timing.window.as_secs_f64(),
        if options.quick { "; --quick" } else { "" }
    );
    println!(
        "CPU = getrusage(RUSAGE_SELF) user + system over the window (every thread of the \
         process, io_uring workers included); fio: its usr_cpu + sys_cpu"
    );

    if options.selection.random() {
        if fio::find().is_none() && (options.runs("fio") || options.runs("fio-fixedbufs")) {
            println!("\nfio is not installed: it is skipped (apt-get install fio)");
        }
        for &depth in &options.depths {
            let workload = Workload::Random { depth };
            let selected: Vec<_> = contenders(workload)
                .into_iter()
                .filter(|c| options.runs(c.name))
                .filter(|c| !c.name.starts_with("fio") || fio::find().is_some())
                .collect();
            if selected.is_empty() {
                continue;
            }
            println!("\n{}", workload.title());
            if selected.iter().any(|c| c.name.starts_with("fio")) {
                let line = fio::command_line(depth, false, &path, timing).join(" ");
                println!("  fio: {line}");
                println!("  fio-fixedbufs: the same with --fixedbufs --registerfiles");
            }
            let results = bench::run(workload, &selected, &path, timing, options.rounds);
            print_workload(workload, &results);
        }
    }

    if options.selection.sequential() {
        let workload = Workload::Sequential;
        let selected: Vec<_> = contenders(workload)
            .into_iter()
            .filter(|c| options.runs(c.name))
            .collect();
        if !selected.is_empty() {
            println!("\n{}", workload.title());
            if let Err(err) = data::warm_page_cache(&path) {
                eprintln!("fsbench: cannot read the data file: {err}");
                return ExitCode::FAILURE;
            }
            let results = bench::run(workload, &selected, &path, timing, options.rounds);
            print_workload(workload, &results);
        }
    }
    ExitCode::SUCCESS
}
