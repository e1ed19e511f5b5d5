//! A keep-alive HTTP/1.1 server on every core: each core has its own listener on one
//! port (`TcpListener::bind_per_core`; a port another program holds is an error, not
//! shared), accepts its share of the connections with a multishot accept, and
//! answers every request with `Hello, world!`. Ctrl-C stops it cleanly.
//!
//! `cargo run --release --example hello [-- --port 8080 --host 127.0.0.1]`, then
//! `curl http://127.0.0.1:8080/` or `wrk http://127.0.0.1:8080/`.
//!
//! It is small, and it holds up against a hostile peer:
//! - Request heads are parsed strictly (RFC 9112; `hello/http.rs` says what is taken),
//!   up to 8 KiB. What it refuses gets a `400` (or `431`, `501`, `505`) and the
//!   connection is closed. Bodies are skipped by `Content-Length`; chunked bodies are
//!   not read (`501`).
//! - Pipelined requests are answered in order, in one write.
//! - HTTP/1.1 keeps the connection open unless the request says `Connection: close`;
//!   HTTP/1.0 keeps it open only if the request says `Connection: keep-alive`, and the
//!   answer then says so too.
//! - A request head must be complete within `--head-timeout-ms` (10 s) of its first
//!   byte (of the connection, for the first request), or the connection gets a `408`
//!   and is closed, however slowly the bytes trickle in. A connection idle between
//!   requests, or a peer that does not read its answers or send its body, is closed
//!   after `--idle-timeout-ms` (60 s).

#[path = "hello/http.rs"]
mod http;

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::net::Shutdown;
use std::pin::Pin;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use futures_core::Stream;
use runtime::buf::IoBuf;
use runtime::net::{CoreListeners, TcpListener, TcpStream};
use runtime::time::{timeout, timeout_at, Instant};

use http::{Parsed, Status, MAX_HEAD};

/// The answer to every request: this head, a `Connection` field if needed, the empty
/// line, then the body (unless the request was a `HEAD`).
const HELLO_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n";
const HELLO_BODY: &[u8] = b"Hello, world!";

/// How long a closing connection goes on reading (and dropping) what the peer still
/// sends, so that closing with unread bytes does not reset the connection and destroy
/// the last answer before the peer has read it (RFC 9112 §9.6).
const LINGER: Duration = Duration::from_secs(2);

/// How long a connection may take over its parts.
#[derive(Clone, Copy)]
struct Timeouts {
    /// From a request head's first byte (or the accept) to its end.
    head: Duration,
    /// Between requests, between reads of a body, and for each write.
    idle: Duration,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> io::Result<()> {
    let Some(args) = Args::parse()? else {
        println!("{USAGE}");
        return Ok(());
    };
    let mut rt = runtime::Builder::new().build()?;
    let cores = rt.handle().core_count();
    // Bound here, before any core serves, so that a port already taken is reported
    // at once; each core then takes its own listener on its own thread.
    let listeners = listen(&args.host, args.port, cores)?;
    let addr = listeners.local_addr();
    let plural = if cores == 1 { "core" } else { "cores" };
    println!("listening on http://{addr}/ on {cores} {plural}; Ctrl-C stops");

    let timeouts = args.timeouts;
    let served = rt.run_on_all(move |core| serve(listeners.take(core), timeouts));
    let mut total = 0;
    for (core, served) in served.into_iter().enumerate() {
        let served = served.map_err(|e| io::Error::new(e.kind(), format!("core {core}: {e}")))?;
        println!("core {core}: {served} requests");
        total += served;
    }
    println!("stopped after {total} requests");
    Ok(())
}

/// One listener per core, all on one port that no other program holds (port 0 picks
/// one for all of them).
fn listen(host: &str, port: u16, cores: usize) -> io::Result<CoreListeners> {
    TcpListener::bind_per_core((host, port), cores).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            // The error names the address already.
            io::Error::new(e.kind(), format!("could not listen: {e}"))
        } else {
            let named = if host.contains(':') {
                format!("[{host}]:{port}")
            } else {
                format!("{host}:{port}")
            };
            io::Error::new(e.kind(), format!("could not listen on {named}: {e}"))
        }
    })
}

/// Serves on this core until Ctrl-C; returns how many requests it answered.
async fn serve(listener: io::Result<TcpListener>, timeouts: Timeouts) -> io::Result<u64> {
    let listener = listener?;
    // Made before the accept loop starts, so an early Ctrl-C is not missed.
    let stop = runtime::signal::ctrl_c();
    let served = Rc::new(Cell::new(0u64));
    let count = served.clone();
    let accepting = runtime::spawn(async move {
        let mut incoming = listener.incoming();
        while let Some(stream) = poll_fn(|cx| Pin::new(&mut incoming).poll_next(cx)).await {
            match stream {
                Ok(stream) => {
                    let count = count.clone();
                    runtime::spawn(async move {
                        // A connection's error (a reset peer, say) ends only it.
                        let _ = connection(stream, timeouts, &count).await;
                    });
                }
                // Out of fds, say: the listener goes on after a pause, rather than
                // spinning on an error that only closing connections can clear.
                Err(e) => {
                    eprintln!("accept: {e}");
                    runtime::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    stop.await?;
    // Dropping the accept task cancels the accept; open connections end when the
    // runtime shuts down.
    accepting.abort();
    Ok(served.get())
}

/// One keep-alive connection: reads requests, answers each, until the peer closes,
/// asks to close, sends something this server does not take, or runs out of time.
async fn connection(stream: TcpStream, timeouts: Timeouts, served: &Cell<u64>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut inbuf: Vec<u8> = Vec::with_capacity(MAX_HEAD);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    // Body bytes of the last request still to skip.
    let mut skip = 0u64;
    // When the head being read must be complete; `None` between requests.
    let mut head_deadline = Some(Instant::now() + timeouts.head);
    loop {
        // Answer every complete request in the buffer (pipelining), in one write.
        let mut used = 0;
        let mut close = false;
        loop {
            let rest = &inbuf[used..];
            if skip > 0 {
                let n = usize::try_from(skip).map_or(rest.len(), |skip| skip.min(rest.len()));
                skip -= n as u64;
                used += n;
                if skip > 0 {
                    break;
                }
                continue;
            }
            match http::parse(rest) {
                Parsed::Partial => break,
                Parsed::Request(request) => {
                    out.extend_from_slice(HELLO_HEAD);
                    out.extend_from_slice(match (request.keep_alive, request.http10) {
                        (false, _) => b"Connection: close\r\n\r\n".as_slice(),
                        (true, true) => b"Connection: keep-alive\r\n\r\n",
                        (true, false) => b"\r\n",
                    });
                    if !request.head_only {
                        out.extend_from_slice(HELLO_BODY);
                    }
                    served.set(served.get() + 1);
                    used += request.len;
                    skip = request.body;
                    head_deadline = None;
                    if !request.keep_alive {
                        close = true;
                        break;
                    }
                }
                Parsed::Reject(status) => {
                    out.extend_from_slice(refusal(status));
                    close = true;
                    break;
                }
            }
        }
        inbuf.drain(..used);
        if !out.is_empty() {
            // A peer that does not read its answers is not waited for forever.
            let Ok((written, b)) = timeout(timeouts.idle, stream.write_all(out)).await else {
                return Ok(());
            };
            written?;
            out = b;
            out.clear();
        }
        if close {
            close_gently(stream).await;
            return Ok(());
        }

        // What the next read waits for: the rest of a head (by its deadline), or the
        // next request or more of a body (for the idle time).
        let in_head = skip == 0 && !inbuf.is_empty();
        if in_head && head_deadline.is_none() {
            head_deadline = Some(Instant::now() + timeouts.head);
        }
        let deadline = match head_deadline {
            Some(deadline) if skip == 0 => deadline,
            _ => Instant::now() + timeouts.idle,
        };
        // Read more after what is buffered (a partial request stays at the front).
        let len = inbuf.len();
        if inbuf.capacity() - len < 1024 {
            inbuf.reserve(4096);
        }
        match timeout_at(deadline, stream.read(inbuf.slice(len..))).await {
            Ok((n, b)) => {
                inbuf = b.into_inner();
                if n? == 0 {
                    return Ok(());
                }
            }
            // Out of time. Half a head gets a 408; an idle connection just closes.
            Err(_) => {
                if in_head {
                    let _ = timeout(timeouts.idle, stream.write_all(TIMED_OUT)).await;
                    close_gently(stream).await;
                }
                return Ok(());
            }
        }
    }
}

/// The answer to a request this server refuses; the connection closes after it.
fn refusal(status: Status) -> &'static [u8] {
    match status {
        Status::BadRequest => {
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        Status::HeadTooLarge => {
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
            Content-Length: 0\r\nConnection: close\r\n\r\n"
        }
        Status::NotImplemented => {
            b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        }
        Status::VersionNotSupported => {
            b"HTTP/1.1 505 HTTP Version Not Supported\r\n\
            Content-Length: 0\r\nConnection: close\r\n\r\n"
        }
    }
}

/// The answer to a head that did not arrive in time.
const TIMED_OUT: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Sends the FIN after the last answer, then reads and drops what the peer still
/// sends, for [`LINGER`] at most, before the socket closes.
async fn close_gently(stream: TcpStream) {
    if stream.shutdown(Shutdown::Write).await.is_err() {
        return;
    }
    let deadline = Instant::now() + LINGER;
    let mut buf = Vec::with_capacity(4096);
    while let Ok((Ok(1..), b)) = timeout_at(deadline, stream.read(buf)).await {
        buf = b;
        buf.clear();
    }
}

const USAGE: &str = "usage: hello [--port PORT] [--host ADDRESS] \
    [--head-timeout-ms MS] [--idle-timeout-ms MS]";

/// The command line.
struct Args {
    host: String,
    port: u16,
    timeouts: Timeouts,
}

impl Args {
    /// The arguments, or `None` for `--help`.
    fn parse() -> io::Result<Option<Args>> {
        let mut args = Args {
            host: String::from("127.0.0.1"),
            port: 8080,
            timeouts: Timeouts {
                head: Duration::from_secs(10),
                idle: Duration::from_secs(60),
            },
        };
        let mut words = std::env::args().skip(1);
        while let Some(word) = words.next() {
            if word == "--help" || word == "-h" {
                return Ok(None);
            }
            let Some(value) = words.next() else {
                return Err(usage(&format!("{word} needs a value")));
            };
            // Up to a day: a deadline must not overflow `Instant`.
            let millis = |what| match value.parse::<u64>() {
                Ok(ms) if ms <= 86_400_000 => Ok(Duration::from_millis(ms)),
                _ => Err(usage(&format!(
                    "bad {what} {value:?} (milliseconds, up to a day)"
                ))),
            };
            match word.as_str() {
                "--port" => {
                    args.port = value
                        .parse()
                        .map_err(|_| usage(&format!("bad port {value:?}")))?;
                }
                "--host" => args.host = value,
                "--head-timeout-ms" => {
                    args.timeouts.head = millis("head timeout")?;
                }
                "--idle-timeout-ms" => {
                    args.timeouts.idle = millis("idle timeout")?;
                }
                _ => return Err(usage(&format!("unknown argument {word:?}"))),
            }
        }
        Ok(Some(args))
    }
}

fn usage(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{why}; {USAGE}"))
}
