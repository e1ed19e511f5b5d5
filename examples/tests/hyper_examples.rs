//! The `hyper_server` and `hyper_client` examples end to end: the test starts the real
//! server (`--port 0`; the address is read from its first line of output), runs the
//! real client against it over HTTP/1.1 and HTTP/2, and checks what the client prints
//! and its exit code. Reads are bounded, so a server that hangs fails the test.
//!
//! The binaries are found as `hello_http` finds `hello`: `cargo test -p examples`
//! builds them into `examples/` of the profile's directory, beside this test's `deps/`.

#[path = "support/example_bin.rs"]
mod example_bin;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use example_bin::example;
use std::sync::mpsc;
use std::time::Duration;

const BOUND: Duration = Duration::from_secs(20);

/// The running server, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hyper_server` on one core and returns it with its URL.
fn start_server() -> (Server, String) {
    let mut child = Command::new(example("hyper_server"))
        .args(["--host", "127.0.0.1", "--port", "0", "--cores", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("hyper_server starts");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(BOUND)
        .expect("hyper_server prints its address");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (server, url)
}

/// Runs a command to its end, bounded.
fn run(command: &mut Command) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let (tx, rx) = mpsc::channel();
    let id = child.id();
    let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    std::thread::spawn(move || {
        let read = |mut r: Box<dyn std::io::Read + Send>| {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        };
        let stdout = read(Box::new(out));
        let stderr = read(Box::new(err));
        let status = child.wait().expect("wait");
        let _ = tx.send(std::process::Output {
            status,
            stdout,
            stderr,
        });
    });
    rx.recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("process {id} still running after {BOUND:?}"))
}

#[test]
fn the_client_gets_hello_over_http1_and_http2() {
    let (_server, url) = start_server();
    let out = run(Command::new(example("hyper_client")).args([url.as_str(), "--requests", "500"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "hyper_client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for proto in ["HTTP/1.1", "HTTP/2"] {
        assert!(
            stdout.contains(&format!("{proto}: 200 OK, 13 body bytes")),
            "{proto} answer missing from {stdout:?}"
        );
        assert!(
            stdout.contains(&format!("{proto}: 500 requests on one connection")),
            "{proto} count missing from {stdout:?}"
        );
    }
}

#[test]
fn curl_gets_hello_over_http1_and_http2() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let (_server, url) = start_server();
    for extra in [None, Some("--http2-prior-knowledge")] {
        let mut command = Command::new("curl");
        command.args([
            "--silent",
            "--show-error",
            "--write-out",
            " %{http_version}",
        ]);
        command.args(extra);
        let out = run(command.arg(&url));
        assert!(out.status.success(), "curl {extra:?} failed");
        let want = match extra {
            None => "Hello, world! 1.1",
            Some(_) => "Hello, world! 2",
        };
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
}
