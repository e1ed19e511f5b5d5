//! The `hello` example end to end: each test starts the real binary (`--port 0`; the
//! port is read from its first line of output) and talks to it over TCP with std's
//! blocking sockets. Every read is bounded by a timeout, so a server that hangs fails
//! the test instead of hanging it.
//!
//! The binary: `cargo test` (or `cargo test -p examples`) builds the examples before it
//! runs the tests, into `examples/` of the profile's directory, beside the `deps/`
//! that holds this test; the test looks there, relative to its own executable, which
//! holds for any `CARGO_TARGET_DIR` and profile. A target filter
//! (`cargo test --test hello_http`) builds no example: if the binary found is older
//! than the example's sources the test stops and says so, rather than test old code.
//! `HELLO_EXE=path` names another binary.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The longest any read waits; a server that has not answered by then is broken.
const BOUND: Duration = Duration::from_secs(5);

const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";
const HELLO_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\
    Connection: close\r\n\r\nHello, world!";
const HELLO_KEEP_ALIVE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\
    Content-Type: text/plain\r\nConnection: keep-alive\r\n\r\nHello, world!";
const HELLO_HEAD_ONLY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const TIMED_OUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

/// The `hello` binary; see the file's doc.
fn hello_exe() -> PathBuf {
    if let Some(exe) = std::env::var_os("HELLO_EXE") {
        return exe.into();
    }
    let me = std::env::current_exe().expect("the test's own path");
    // target/<profile>/deps/hello_http-<hash> -> target/<profile>/examples/hello
    let exe = me
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps")
        .join("examples/hello");
    let built = exe.metadata().and_then(|m| m.modified()).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; `cargo test -p examples` builds it (`cargo build --example hello` alone, too)",
            exe.display()
        )
    });
    let sources = Path::new(env!("CARGO_MANIFEST_DIR"));
    for source in ["hello.rs", "hello/http.rs"] {
        let changed = sources.join(source).metadata().and_then(|m| m.modified());
        assert!(
            changed.is_ok_and(|changed| changed <= built),
            "{} is older than examples/{source}: build it again \
             (`cargo build --example hello`, or run `cargo test -p examples`)",
            exe.display()
        );
    }
    exe
}

/// A running `hello`, killed when dropped.
struct Hello {
    child: Child,
    addr: SocketAddr,
}

impl Hello {
    fn start(args: &[&str]) -> Hello {
        let mut child = Command::new(hello_exe())
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start hello");
        let stdout = child.stdout.take().expect("piped stdout");
        let (lines, first) = mpsc::channel();
        // Reads all of its output, so it never blocks on a full pipe.
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let _ = lines.send(line);
            }
        });
        let mut hello = Hello {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        let line = first
            .recv_timeout(BOUND)
            .expect("hello says where it listens");
        // "listening on http://127.0.0.1:PORT/ on N cores; Ctrl-C stops"
        hello.addr = line
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
        hello
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(BOUND)).unwrap();
        stream.set_write_timeout(Some(BOUND)).unwrap();
        stream
    }
}

impl Drop for Hello {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads exactly `expected.len()` bytes and checks they are `expected`.
fn expect(stream: &mut TcpStream, expected: &[u8]) {
    let mut got = vec![0; expected.len()];
    if let Err(e) = stream.read_exact(&mut got) {
        panic!("waiting for {:?}: {e}", String::from_utf8_lossy(expected));
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Reads until the server closes the connection; panics if it does not within
/// [`BOUND`] of the last byte, or resets it instead.
fn read_to_eof(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "no orderly close: {e} after {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

#[test]
fn keeps_http11_connections_open_until_asked_to_close() {
    let hello = Hello::start(&[]);
    let mut stream = hello.connect();
    for _ in 0..3 {
        stream.write_all(GET).unwrap();
        expect(&mut stream, HELLO);
    }
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_to_eof(&mut stream), HELLO_CLOSE);
}

#[test]
fn answers_pipelined_requests_in_order() {
    let hello = Hello::start(&[]);
    let mut stream = hello.connect();
    // Answers that differ (a HEAD's has no body, the last says close), so their order
    // shows; a body to skip; a bare-LF head; all in one write.
    let requests = [
        GET,
        b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nGET /",
        b"GET / HTTP/1.1\nHost: a\n\n",
        GET,
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        // Never answered: the connection closes before it.
        GET,
    ];
    stream.write_all(&requests.concat()).unwrap();
    let answers = [HELLO, HELLO_HEAD_ONLY, HELLO, HELLO, HELLO, HELLO_CLOSE];
    assert_eq!(
        String::from_utf8_lossy(&read_to_eof(&mut stream)),
        String::from_utf8_lossy(&answers.concat())
    );
}

#[test]
fn answers_a_request_split_over_many_writes() {
    let hello = Hello::start(&[]);
    let mut stream = hello.connect();
    stream.set_nodelay(true).unwrap();
    let request = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc";
    for chunk in request.chunks(7) {
        stream.write_all(chunk).unwrap();
    }
    expect(&mut stream, HELLO);
    stream.write_all(GET).unwrap();
    expect(&mut stream, HELLO);
}

#[test]
fn answers_bare_lf_heads() {
    let hello = Hello::start(&[]);
    let mut stream = hello.connect();
    stream.write_all(b"GET / HTTP/1.1\nHost: a\n\n").unwrap();
    expect(&mut stream, HELLO);
    stream.write_all(b"GET / HTTP/1.0\n\n").unwrap();
    assert_eq!(read_to_eof(&mut stream), HELLO_CLOSE);
}

#[test]
fn keeps_http10_connections_open_only_when_asked() {
    let hello = Hello::start(&[]);
    let mut stream = hello.connect();
    // What `ab -k` sends.
    let keep_alive = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: a\r\n\r\n";
    stream.write_all(keep_alive).unwrap();
    expect(&mut stream, HELLO_KEEP_ALIVE);
    stream.write_all(keep_alive).unwrap();
    expect(&mut stream, HELLO_KEEP_ALIVE);
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    assert_eq!(read_to_eof(&mut stream), HELLO_CLOSE);
}

#[test]
fn refuses_bad_heads_with_400_and_closes() {
    let hello = Hello::start(&[]);
    #[rustfmt::skip]
    let cases: &[(&str, &[u8])] = &[
        ("sign in Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nabcde"),
        ("non-digit in Content-Length", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"),
        ("differing Content-Lengths", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        ("Content-Length and Transfer-Encoding", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        ("space before the colon", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"),
        ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\0c\r\n\r\n"),
        ("CR in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\rc\r\n\r\n"),
        // A LF ends the line: what follows it is no field line.
        ("LF in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: b\nc\r\n\r\n"),
        ("bad character in a field name", b"GET / HTTP/1.1\r\nHost: a\r\nX@Y: b\r\n\r\n"),
        ("bad character in the method", b"GE\"T / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("malformed request line", b"GET /  HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("request line without a target", b"GET HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("malformed version", b"GET / HTTP/1.1.1\r\nHost: a\r\n\r\n"),
        ("no version", b"GET /\r\n\r\n"),
        ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n"),
        ("binary", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n"),
        // Rejected at the first bad line, before the head is complete.
        ("bad line of an unfinished head", b"GET / HTTP/1.1\r\nHost: a\r\nNo colon\r\n"),
    ];
    for &(what, request) in cases {
        let mut stream = hello.connect();
        stream.write_all(request).unwrap();
        let answer = read_to_eof(&mut stream);
        assert_eq!(
            String::from_utf8_lossy(&answer),
            String::from_utf8_lossy(BAD_REQUEST),
            "{what}"
        );
    }
}

#[test]
fn refuses_what_it_does_not_implement_and_closes() {
    let hello = Hello::start(&[]);
    let mut too_large = b"GET / HTTP/1.1\r\nHost: a\r\nX: ".to_vec();
    too_large.resize(9000, b'a');
    let cases: &[(&[u8], &str)] = &[
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "501 Not Implemented",
        ),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", "505 HTTP Version Not Supported"),
        (&too_large, "431 Request Header Fields Too Large"),
    ];
    for &(request, status) in cases {
        let mut stream = hello.connect();
        stream.write_all(request).unwrap();
        let answer = read_to_eof(&mut stream);
        let expected =
            format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        assert_eq!(String::from_utf8_lossy(&answer), expected);
    }
}

#[test]
fn takes_identical_content_lengths() {
    let hello = Hello::start(&[]);
    let mut stream = hello.connect();
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
        )
        .unwrap();
    expect(&mut stream, HELLO);
    stream.write_all(GET).unwrap();
    expect(&mut stream, HELLO);
}

const SHORT: Duration = Duration::from_millis(400);

#[test]
fn cuts_off_a_head_that_trickles_in() {
    let hello = Hello::start(&["--head-timeout-ms", "400"]);
    let start = Instant::now();
    let mut stream = hello.connect();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        .unwrap();
    // A byte every 50 ms, each well within any per-read timeout: only a deadline for
    // the whole head stops this. Each short read both paces the bytes and looks for
    // the answer.
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0; 256];
    loop {
        assert!(
            start.elapsed() < SHORT + BOUND,
            "the slow head was not cut off"
        );
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Once the server has answered, its end may be gone: stop writing.
                if got.is_empty() && stream.write_all(b"a").is_err() {
                    break;
                }
            }
            Err(e) => panic!("no orderly close: {e}"),
        }
    }
    let took = start.elapsed();
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(TIMED_OUT)
    );
    assert!(took >= SHORT, "cut off after {took:?}, before the timeout");
}

#[test]
fn closes_a_connection_that_sends_nothing_after_the_head_timeout() {
    let hello = Hello::start(&["--head-timeout-ms", "400"]);
    let start = Instant::now();
    let mut stream = hello.connect();
    // Nothing was asked, so nothing is answered: the connection just closes.
    assert_eq!(read_to_eof(&mut stream), b"");
    assert!(
        start.elapsed() >= SHORT,
        "closed after {:?}",
        start.elapsed()
    );
}

#[test]
fn closes_an_idle_connection_after_the_idle_timeout() {
    let hello = Hello::start(&["--idle-timeout-ms", "400", "--head-timeout-ms", "60000"]);
    let mut stream = hello.connect();
    stream.write_all(GET).unwrap();
    expect(&mut stream, HELLO);
    let idle = Instant::now();
    assert_eq!(read_to_eof(&mut stream), b"");
    assert!(idle.elapsed() >= SHORT, "closed after {:?}", idle.elapsed());
}

/// Runs `hello` with `args` to its exit, within `bound`; returns whether it succeeded
/// and what it wrote to stderr.
fn run_to_exit(args: &[&str], bound: Duration) -> (bool, String) {
    let mut child = Command::new(hello_exe())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hello");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let (done, output) = mpsc::channel();
    // stderr ends when the process does.
    thread::spawn(move || {
        let mut text = String::new();
        let _ = done.send(stderr.read_to_string(&mut text).map(|_| text));
    });
    match output.recv_timeout(bound) {
        Ok(text) => {
            let status = child.wait().expect("wait for hello");
            (status.success(), text.expect("hello's stderr"))
        }
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hello {args:?} still running after {bound:?}");
        }
    }
}

#[test]
fn a_port_already_taken_is_an_error_that_names_the_address() -> io::Result<()> {
    // Another program's listener (std's, without SO_REUSEPORT).
    let taken = TcpListener::bind("127.0.0.1:0")?;
    let port = taken.local_addr()?.port().to_string();
    let (ok, stderr) = run_to_exit(
        &["--host", "127.0.0.1", "--port", &port],
        Duration::from_secs(1),
    );
    assert!(!ok, "hello succeeded on a taken port; stderr: {stderr}");
    assert_says_in_use(&stderr, &port);
    Ok(())
}

/// Asserts hello's `stderr` is one line saying that 127.0.0.1:`port` is in use.
fn assert_says_in_use(stderr: &str, port: &str) {
    let line = stderr.trim_end();
    assert!(
        line.starts_with(&format!(
            "error: could not listen: 127.0.0.1:{port}: address in use"
        )) && !line.contains('\n'),
        "{line:?}"
    );
}

#[test]
fn a_second_hello_on_the_port_of_a_running_one_fails_and_the_first_keeps_it() {
    let first = Hello::start(&[]);
    let port = first.addr.port().to_string();
    // Its listeners share the port among themselves only: a second copy of the
    // server does not silently take half of the connections.
    let (ok, stderr) = run_to_exit(
        &["--host", "127.0.0.1", "--port", &port],
        Duration::from_secs(1),
    );
    assert!(
        !ok,
        "a second hello started on a taken port; stderr: {stderr}"
    );
    assert_says_in_use(&stderr, &port);
    // The first goes on answering on every connection.
    for _ in 0..8 {
        let mut stream = first.connect();
        stream.write_all(GET).unwrap();
        expect(&mut stream, HELLO);
    }
}

#[test]
fn bad_arguments_are_errors_in_plain_words() {
    let (ok, stderr) = run_to_exit(&["--port", "http"], BOUND);
    assert!(!ok);
    assert!(
        stderr.starts_with("error: bad port \"http\"; usage: hello "),
        "{stderr:?}"
    );
    let (ok, stderr) = run_to_exit(&["--head-timeout-ms"], BOUND);
    assert!(!ok);
    assert!(
        stderr.starts_with("error: --head-timeout-ms needs a value"),
        "{stderr:?}"
    );
}

/// How many sockets the process `pid` has open (its listeners are bound before it
/// says where it listens; the fds it makes later for signals and such do not count).
fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read the server's fd table")
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn connections_it_closes_give_back_their_sockets() {
    let hello = Hello::start(&["--head-timeout-ms", "200", "--idle-timeout-ms", "200"]);
    let pid = hello.child.id();
    let before = open_sockets(pid);
    let mut streams = Vec::new();
    for _ in 0..10 {
        // Refused, answered and closed, cut off, idle, and gone half-way.
        let mut refused = hello.connect();
        refused
            .write_all(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n")
            .unwrap();
        let mut answered = hello.connect();
        answered
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut slow = hello.connect();
        slow.write_all(b"GET / HTTP/1.1\r\n").unwrap();
        let mut idle = hello.connect();
        idle.write_all(GET).unwrap();
        hello.connect().write_all(b"GET / HT").unwrap();
        streams.extend([refused, answered, slow, idle]);
    }
    for stream in &mut streams {
        read_to_eof(stream);
    }
    drop(streams);
    // The server closes each socket after its last read or write completes: give it
    // until the bound to get back to where it started.
    let start = Instant::now();
    while open_sockets(pid) > before {
        assert!(
            start.elapsed() < BOUND,
            "{} sockets open, {before} before the connections",
            open_sockets(pid)
        );
        thread::sleep(Duration::from_millis(10));
    }
}
