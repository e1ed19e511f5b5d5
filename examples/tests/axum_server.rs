//! The `axum_server` example end to end: the real binary serves a directory made for
//! the test (`--port 0`; the address is read from its first line of output). A plain
//! HTTP/1.1 client sends exact request paths (so `..` reaches the server as typed),
//! hyper's HTTP/2 client sends 100 concurrent requests on one connection, and curl
//! does both where it is installed. Every read is bounded: a server that hangs fails.

#[path = "support/example_bin.rs"]
mod example_bin;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use example_bin::example;

const BOUND: Duration = Duration::from_secs(20);

/// The running server and its directory, both gone when dropped.
struct Server {
    child: Child,
    dir: PathBuf,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Bytes no two tests share and a reader can check: `len` bytes of a simple sequence.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Makes a directory with a few files and starts `axum_server` on it on one core.
fn start(tag: &str) -> Server {
    let dir = std::env::temp_dir().join(format!("axum-server-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("subdir")).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello, axum\n").unwrap();
    std::fs::write(dir.join("big.bin"), pattern(1 << 20, 7)).unwrap();
    std::fs::write(dir.join("empty"), b"").unwrap();
    std::fs::write(dir.join("a <b>&c"), b"odd name").unwrap();
    let mut child = Command::new(example("axum_server"))
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--cores",
            "1",
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("axum_server starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let mut server = Server {
        child,
        dir,
        addr: String::new(),
    };
    let line = rx
        .recv_timeout(BOUND)
        .expect("axum_server prints its address");
    server.addr = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    server
}

/// One HTTP/1.1 request for `path`, exactly as given: the status and the body.
fn get(addr: &str, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(BOUND)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no end of headers"));
    let head = String::from_utf8_lossy(&response[..head_end]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("GET {path}: bad status line in {head:?}"));
    let body = response[head_end + 4..].to_vec();
    let length: Option<usize> = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    });
    if let Some(length) = length {
        assert_eq!(body.len(), length, "GET {path}: body length");
    }
    (status, body)
}

#[test]
fn serves_files_and_refuses_names_that_leave_the_directory() {
    let server = start("files");
    let addr = &server.addr;
    assert_eq!(
        get(addr, "/files/hello.txt"),
        (200, b"hello, axum\n".to_vec())
    );
    let (status, big) = get(addr, "/files/big.bin");
    assert_eq!(status, 200);
    assert!(big == pattern(1 << 20, 7), "big.bin came back changed");
    assert_eq!(get(addr, "/files/empty"), (200, Vec::new()));
    assert_eq!(
        get(addr, "/files/a%20%3Cb%3E%26c"),
        (200, b"odd name".to_vec())
    );

    for (path, want) in [
        ("/files/missing", 404),
        ("/files/subdir", 404),
        ("/files/a%2Fb", 400),
        ("/files/..%2F..%2Fetc%2Fpasswd", 400),
        ("/files/hello.txt%00", 400),
        ("/files/..", 403),
        ("/files/.", 403),
        ("/files/%2E%2E", 403),
        ("/nowhere", 404),
    ] {
        let (status, body) = get(addr, path);
        assert_eq!(
            status,
            want,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn the_index_lists_the_files() {
    let server = start("index");
    let (status, body) = get(&server.addr, "/");
    let page = String::from_utf8(body).expect("the page is UTF-8");
    assert_eq!(status, 200, "{page}");
    for link in [
        "<a href=\"/files/big.bin\">big.bin</a>",
        "<a href=\"/files/empty\">empty</a>",
        "<a href=\"/files/hello.txt\">hello.txt</a>",
        "<a href=\"/files/a%20%3Cb%3E%26c\">a &lt;b&gt;&amp;c</a>",
    ] {
        assert!(page.contains(link), "{link} missing from {page}");
    }
    assert!(
        !page.contains("subdir"),
        "directories are not listed: {page}"
    );
}

#[test]
fn many_concurrent_requests_over_one_http2_connection() {
    let server = start("h2");
    let addr = server.addr.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let (sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("the HTTP/2 handshake");
        tokio::spawn(connection);
        let requests = (0..100).map(|i| {
            let mut sender = sender.clone();
            let addr = addr.clone();
            async move {
                let name = if i % 10 == 0 { "big.bin" } else { "hello.txt" };
                let request = hyper::Request::get(format!("http://{addr}/files/{name}"))
                    .body(http_body_util::Empty::<bytes::Bytes>::new())
                    .unwrap();
                let response = sender.send_request(request).await.expect("a response");
                let status = response.status();
                let body = http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .expect("the body")
                    .to_bytes();
                (name, status, body)
            }
        });
        let all = tokio::time::timeout(BOUND, futures_join_all(requests))
            .await
            .expect("100 HTTP/2 requests within the bound");
        for (name, status, body) in all {
            assert_eq!(status, 200, "{name}");
            let want = match name {
                "big.bin" => pattern(1 << 20, 7),
                _ => b"hello, axum\n".to_vec(),
            };
            assert!(body == want, "{name} came back changed");
        }
    });
}

/// Runs every future as a tokio task, all at once; their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("the request task"));
    }
    out
}

#[test]
fn curl_gets_a_file_over_http1_and_http2() {
    if Command::new("curl").arg("--version").output().is_err() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let server = start("curl");
    for extra in [None, Some("--http2-prior-knowledge")] {
        let mut command = Command::new("curl");
        command
            .args(["--silent", "--show-error", "--max-time", "20"])
            .args(["--write-out", " %{http_code} %{http_version}"])
            .args(extra)
            .arg(format!("http://{}/files/hello.txt", server.addr));
        let out = command.output().expect("curl runs");
        assert!(out.status.success(), "curl {extra:?} failed");
        let want = match extra {
            None => "hello, axum\n 200 1.1",
            Some(_) => "hello, axum\n 200 2",
        };
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }
}
