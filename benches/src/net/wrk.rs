//! The HTTP load: `wrk` with one thread and 64 keep-alive connections, on the
//! load CPU, and a check of the server's answer before it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::http::RESPONSE;
use super::process::set_affinity;

/// What one `wrk` run reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WrkReport {
    /// Responses received over the run.
    pub requests: u64,
    /// wrk's `Requests/sec`.
    pub per_second: f64,
    /// Connect, read, write and timeout errors, added up.
    pub socket_errors: u64,
    /// Responses with a status other than 2xx or 3xx.
    pub bad_status: u64,
}

impl WrkReport {
    /// Why the run does not count, if it does not: any error makes it invalid.
    pub fn invalid(&self) -> Option<String> {
        if self.socket_errors == 0 && self.bad_status == 0 && self.requests > 0 {
            return None;
        }
        Some(format!(
            "wrk saw {} socket errors and {} non-2xx/3xx responses in {} requests: \
             the run is invalid",
            self.socket_errors, self.bad_status, self.requests
        ))
    }
}

/// The arguments of `wrk` for a run of `seconds` against `url`.
pub fn command_line(connections: usize, seconds: u64, url: &str) -> Vec<String> {
    vec![
        "-t1".to_string(),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        url.to_string(),
    ]
}

/// Runs `wrk` (found at `wrk`) on CPU `cpu` alone for `seconds` against
/// `addr` with `connections` connections, and reads its report.
pub fn run(
    wrk: &PathBuf,
    cpu: usize,
    connections: usize,
    seconds: u64,
    addr: SocketAddr,
) -> io::Result<WrkReport> {
    let mut command = Command::new(wrk);
    command
        .args(command_line(
            connections,
            seconds,
            &format!("http://{addr}/"),
        ))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit());
    // SAFETY: runs between fork and exec: one syscall, no allocation.
    unsafe {
        command.pre_exec(move || set_affinity(0, cpu));
    }
    let output = command
        .output()
        .map_err(|err| io::Error::new(err.kind(), format!("cannot run wrk: {err}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "wrk failed ({}): {}",
            output.status,
            stdout.trim()
        )));
    }
    parse(&stdout)
        .ok_or_else(|| io::Error::other(format!("cannot read wrk's report: {}", stdout.trim())))
}

/// Reads the figures out of wrk's report.
pub fn parse(report: &str) -> Option<WrkReport> {
    let mut requests = None;
    let mut per_second = None;
    let mut socket_errors = 0;
    let mut bad_status = 0;
    for line in report.lines().map(str::trim) {
        if line.contains(" requests in ") {
            requests = line.split_whitespace().next()?.parse().ok();
        } else if let Some(rate) = line.strip_prefix("Requests/sec:") {
            per_second = rate.trim().parse().ok();
        } else if let Some(errors) = line.strip_prefix("Socket errors:") {
            // `connect 0, read 0, write 0, timeout 0`
            socket_errors = errors
                .split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            bad_status = count.trim().parse().ok()?;
        }
    }
    Some(WrkReport {
        requests: requests?,
        per_second: per_second?,
        socket_errors,
        bad_status,
    })
}

/// How a server answered the check of [`check_server`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Exactly [`RESPONSE`] for each request.
    Exact,
    /// Something else; what, in a few words.
    Different(String),
}

/// Sends `addr` three requests, the first split over two writes and the last
/// two in one write, and compares the answer with three [`RESPONSE`]s.
pub fn check_server(addr: SocketAddr) -> io::Result<Answer> {
    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let (head, tail) = GET.split_at(7);
    stream.write_all(head)?;
    std::thread::sleep(Duration::from_millis(5));
    stream.write_all(tail)?;
    stream.write_all(&[GET, GET].concat())?;
    let expected = RESPONSE.repeat(3);
    let mut answer = vec![0; expected.len()];
    let mut got = 0;
    while got < answer.len() {
        match stream.read(&mut answer[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            // A read with a receive timeout is not restarted after the process
            // was stopped and resumed (or a signal was handled): read again.
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if got > 0 && is_timeout(&err) => break,
            Err(err) => return Err(io::Error::new(err.kind(), format!("check: {err}"))),
        }
    }
    if answer[..got] == expected[..] {
        return Ok(Answer::Exact);
    }
    let first_line = answer[..got]
        .split(|&b| b == b'\r')
        .next()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    Ok(Answer::Different(format!(
        "answered three requests with {got} bytes (expected {}), starting `{first_line}`",
        expected.len()
    )))
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests {
    use super::{parse, WrkReport};

    const REPORT: &str = "\
Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   390.46us  101.94us   5.01ms   91.49%
    Req/Sec   163.46k    10.72k  176.23k    82.00%
  813371 requests in 5.00s, 76.82MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec: 162663.43
Transfer/sec:     15.36MB
";

    #[test]
    fn reads_a_report() {
        let report = parse(REPORT).unwrap();
        assert_eq!(
            report,
            WrkReport {
                requests: 813_371,
                per_second: 162_663.43,
                socket_errors: 3,
                bad_status: 4,
            }
        );
        assert!(report.invalid().is_some());
        let clean = REPORT
            .lines()
            .filter(|line| !line.contains("errors") && !line.contains("Non-2xx"))
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(parse(&clean).unwrap().invalid(), None);
        assert_eq!(parse("wrk: connection refused"), None);
    }
}
