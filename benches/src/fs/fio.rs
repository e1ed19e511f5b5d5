//! fio with its io_uring engine, run as a child process on [`CPU`], once plain
//! and once with `--fixedbufs --registerfiles` (registered buffers and
//! files: the most io_uring offers for this workload, so the ceiling).
//!
//! Its figures come from its JSON report: bytes read and the read runtime
//! (after the `--ramp_time` warm-up, which resets fio's statistics) give the
//! reads and the window; `usr_cpu + sys_cpu`, percentages of the job's
//! runtime, give its CPU time. `--norandommap` makes fio draw offsets
//! uniformly with replacement, as the other contenders do, instead of
//! tracking which blocks it has read.

use std::io;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::{Run, Window, Workload, BLOCK, CPU, FILE_SIZE};
use crate::tools;

/// fio's command line for a random-read run (the program name first).
pub fn command_line(depth: usize, fixed: bool, path: &Path, timing: super::Timing) -> Vec<String> {
    let mut args = vec![
        "fio".to_string(),
        "--name=fsbench".to_string(),
        "--ioengine=io_uring".to_string(),
        "--direct=1".to_string(),
        "--rw=randread".to_string(),
        format!("--bs={}", BLOCK),
        format!("--iodepth={depth}"),
        format!("--filename={}", path.display()),
        format!("--size={FILE_SIZE}"),
        "--time_based".to_string(),
        format!("--ramp_time={}ms", timing.warmup.as_millis()),
        format!("--runtime={}ms", timing.window.as_millis()),
        "--norandommap".to_string(),
        format!("--cpus_allowed={CPU}"),
        "--output-format=json".to_string(),
    ];
    if fixed {
        args.push("--fixedbufs".to_string());
        args.push("--registerfiles".to_string());
    }
    args
}

/// fio with plain buffers.
pub fn run_plain(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    run_fio(workload, run, false)
}

/// fio with `--fixedbufs --registerfiles`.
pub fn run_fixed(workload: Workload, run: Run<'_>) -> io::Result<Window> {
    run_fio(workload, run, true)
}

fn run_fio(workload: Workload, run: Run<'_>, fixed: bool) -> io::Result<Window> {
    let Workload::Random { depth } = workload else {
        return Err(io::Error::other("fio runs only the random-read workload"));
    };
    let fio = tools::find("fio").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "fio is not installed (apt-get install fio; `benches fs` does it as root)",
        )
    })?;
    let args = command_line(depth, fixed, run.path, run.timing);
    let output = Command::new(fio).args(&args[1..]).output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(io::Error::other(format!(
            "fio failed ({}): {}",
            output.status,
            stderr.trim()
        )));
    }
    parse_report(&stdout).map_err(io::Error::other)
}

/// The window of fio's JSON report (anything fio printed before the JSON
/// object is skipped).
pub fn parse_report(stdout: &str) -> Result<Window, String> {
    let start = stdout
        .find('{')
        .ok_or_else(|| format!("no JSON in fio's output: {}", stdout.trim()))?;
    // fio may print more after the JSON object (a warning, a second report):
    // read the first value and ignore the rest.
    let json: Value = serde_json::Deserializer::from_str(&stdout[start..])
        .into_iter()
        .next()
        .ok_or("fio printed no JSON value")?
        .map_err(|err| format!("bad JSON from fio: {err}"))?;
    let job = |field: &[&str]| {
        let pointer = format!("/jobs/0/{}", field.join("/"));
        json.pointer(&pointer)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("fio's report has no number at jobs[0].{}", field.join(".")))
    };
    let error = job(&["error"])?;
    if error != 0.0 {
        return Err(format!("fio's job failed with error {error}"));
    }
    let bytes = job(&["read", "io_bytes"])?;
    let runtime_ms = job(&["read", "runtime"])?;
    // Newer fio reports the job's runtime itself; the read runtime is the same
    // for a read-only job.
    let job_ms = job(&["job_runtime"]).unwrap_or(runtime_ms);
    let busy = (job(&["usr_cpu"])? + job(&["sys_cpu"])?) / 100.0;
    let ops = (bytes / BLOCK as f64) as u64;
    if ops == 0 || runtime_ms <= 0.0 {
        return Err("fio read nothing".to_string());
    }
    Ok(Window {
        ops,
        op_bytes: BLOCK as u64,
        wall: Duration::from_secs_f64(runtime_ms / 1e3),
        cpu: Duration::from_secs_f64(busy * job_ms / 1e3),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_report;

    #[test]
    fn reads_fio_figures() {
        let out = r#"note: both iodepth >= 1 and synchronous I/O engine are selected
{ "jobs" : [ { "error" : 0, "job_runtime" : 2000,
  "read" : { "io_bytes" : 81920000, "runtime" : 2000, "iops" : 10000.0 },
  "usr_cpu" : 10.0, "sys_cpu" : 15.0 } ] }"#;
        let window = parse_report(out).unwrap();
        assert_eq!(window.ops, 20_000);
        assert_eq!(window.wall, Duration::from_secs(2));
        assert!((window.cpu.as_secs_f64() - 0.5).abs() < 1e-9);
        assert!((window.iops() - 10_000.0).abs() < 1e-6);
        assert!(parse_report("fio: no such file").is_err());
        assert!(parse_report("{ \"jobs\" : [ { \"error\" : 0 } ] }").is_err());
        assert!(parse_report("{ \"jobs\" : [ ").is_err());
        let failed = r#"{ "jobs" : [ { "error" : 5, "read" : { "io_bytes" : 4096, "runtime" : 1 },
          "usr_cpu" : 1.0, "sys_cpu" : 1.0 } ] }"#;
        assert!(parse_report(failed).unwrap_err().contains("error 5"));
    }
}
