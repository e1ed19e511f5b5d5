//! A keep-alive HTTP/1.1 server on every core: each core binds the same port
//! (`SO_REUSEPORT`), accepts its share of the connections with a multishot accept, and
//! answers every request with `Hello, world!`. Ctrl-C stops it cleanly.
//!
//! `cargo run --release --example hello [-- --port 8080 --host 127.0.0.1]`, then
//! `curl http://127.0.0.1:8080/` or `wrk http://127.0.0.1:8080/`.
//!
//! The request parsing is deliberately small: a request line and headers up to 8 KiB,
//! pipelined requests answered in order in one write, `Content-Length` bodies skipped,
//! `Connection: close` and HTTP/1.0 honoured. Anything it does not understand gets a
//! `400` or `501` and the connection is closed.

use std::cell::Cell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use futures_core::Stream;
use runtime::buf::IoBuf;
use runtime::net::{TcpListener, TcpStream};

/// The answer to every request.
const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\n\
    Content-Length: 0\r\nConnection: close\r\n\r\n";
const NOT_IMPLEMENTED: &[u8] =
    b"HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 8 * 1024;

fn main() -> io::Result<()> {
    let (host, port) = parse_args()?;
    let mut rt = runtime::Builder::new().build()?;
    // Bound here so that port 0 picks one port for every core; core 0 takes it over
    // (as a standard socket: runtime sockets stay on the thread that made them).
    let first = TcpListener::bind((host.as_str(), port))?;
    let addr = first.local_addr()?;
    let first = Arc::new(Mutex::new(Some(first.into_std())));
    println!(
        "listening on http://{addr}/ on {} cores; Ctrl-C stops",
        rt.handle().core_count()
    );

    let served = rt.run_on_all(move |core| {
        let listener = if core == 0 {
            first
                .lock()
                .unwrap()
                .take()
                .ok_or_else(|| io::Error::other("core 0 runs once"))
                .and_then(TcpListener::from_std)
        } else {
            TcpListener::bind(addr)
        };
        serve(listener)
    });
    let mut total = 0;
    for (core, served) in served.into_iter().enumerate() {
        let served = served?;
        println!("core {core}: {served} requests");
        total += served;
    }
    println!("stopped after {total} requests");
    Ok(())
}

/// Serves on this core until Ctrl-C; returns how many requests it answered.
async fn serve(listener: io::Result<TcpListener>) -> io::Result<u64> {
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
                        let _ = connection(stream, &count).await;
                    });
                }
                // Out of fds, say: the listener goes on after a pause, rather than
                // spinning on an error that only closing connections can clear.
                Err(e) => {
                    eprintln!("accept: {e}");
                    runtime::time::sleep(std::time::Duration::from_millis(10)).await;
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
/// asks to close, or sends something this server does not take.
async fn connection(stream: TcpStream, served: &Cell<u64>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut inbuf: Vec<u8> = Vec::with_capacity(MAX_HEAD);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    // Body bytes of the last request still to skip.
    let mut skip = 0usize;
    loop {
        // Answer every complete request in the buffer (pipelining), in one write.
        let mut used = 0;
        let mut close = false;
        loop {
            let rest = &inbuf[used..];
            if skip > 0 {
                let n = skip.min(rest.len());
                skip -= n;
                used += n;
                if skip > 0 {
                    break;
                }
                continue;
            }
            match parse(rest) {
                Parsed::Partial if rest.len() >= MAX_HEAD => {
                    out.extend_from_slice(TOO_LARGE);
                    close = true;
                    break;
                }
                Parsed::Partial => break,
                Parsed::Request {
                    len,
                    body,
                    keep_alive,
                } => {
                    out.extend_from_slice(HELLO);
                    served.set(served.get() + 1);
                    used += len;
                    skip = body;
                    if !keep_alive {
                        close = true;
                        break;
                    }
                }
                Parsed::Reject(answer) => {
                    out.extend_from_slice(answer);
                    close = true;
                    break;
                }
            }
        }
        inbuf.drain(..used);
        if !out.is_empty() {
            let (written, b) = stream.write_all(out).await;
            written?;
            out = b;
            out.clear();
        }
        if close {
            return Ok(());
        }
        // Read more after what is buffered (a partial request stays at the front).
        let len = inbuf.len();
        if inbuf.capacity() - len < 1024 {
            inbuf.reserve(4096);
        }
        let (n, b) = stream.read(inbuf.slice(len..)).await;
        inbuf = b.into_inner();
        if n? == 0 {
            return Ok(());
        }
    }
}

enum Parsed {
    /// The head is not complete yet.
    Partial,
    /// A request whose head is `len` bytes, followed by a body of `body` bytes.
    Request {
        len: usize,
        body: usize,
        keep_alive: bool,
    },
    /// A request this server will not take: send this and close.
    Reject(&'static [u8]),
}

/// Parses the request head at the start of `buf`.
fn parse(buf: &[u8]) -> Parsed {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Parsed::Partial;
    };
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Parsed::Reject(BAD_REQUEST);
    };
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(_method), Some(_target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Reject(BAD_REQUEST);
    };
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Parsed::Reject(BAD_REQUEST),
    };
    let mut body = 0;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Reject(BAD_REQUEST);
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(n) => body = n,
                Err(_) => return Parsed::Reject(BAD_REQUEST),
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Reject(NOT_IMPLEMENTED);
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        }
    }
    Parsed::Request {
        len: end + 4,
        body,
        keep_alive,
    }
}

fn parse_args() -> io::Result<(String, u16)> {
    let mut host = String::from("127.0.0.1");
    let mut port = 8080;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value) {
            ("--port", Some(v)) => {
                port = v.parse().map_err(|_| usage(&format!("bad port {v:?}")))?;
            }
            ("--host", Some(v)) => host = v,
            _ => return Err(usage(&format!("unknown argument {arg:?}"))),
        }
    }
    Ok((host, port))
}

fn usage(why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{why}; usage: hello [--port PORT] [--host ADDRESS]"),
    )
}
