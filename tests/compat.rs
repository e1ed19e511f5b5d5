//! `io::Compat` under the poll-based traits, as the ecosystem drives it: the copy
//! helpers of futures and tokio move every byte, a read after the end keeps saying
//! so, a read abandoned between polls loses nothing, tokio-util's `Framed` carries
//! lines, and hyper serves a real HTTP client over keep-alive.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use futures_util::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use runtime::fs::OpenOptions;
use runtime::io::Compat;
use runtime::net::{TcpListener, TcpStream};
use tests::{assert_same_bytes, pattern, poll_once, rt, within, TempDir};

/// A connected pair of TCP streams on this core.
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connect = runtime::spawn(async move { TcpStream::connect(addr).await.unwrap() });
    let (server, _) = listener.accept().await.unwrap();
    (server, connect.await.unwrap())
}

#[test]
fn futures_copy_moves_a_megabyte_and_sees_the_end() {
    rt().block_on(within("the futures copy", async {
        let (server, client) = pair().await;
        let data = pattern(1 << 20, 1);
        let sent = data.clone();
        let writer = runtime::spawn(async move {
            let mut client = Compat::new(client);
            // Uneven pieces, so the write buffer sees partial takes.
            for chunk in sent.chunks(7001) {
                client.write_all(chunk).await.unwrap();
            }
            client.close().await.unwrap();
        });
        let mut server = Compat::new(server);
        let mut got = Vec::new();
        let n = futures_util::io::copy(&mut server, &mut got).await.unwrap();
        assert_eq!(n, data.len() as u64);
        assert_same_bytes("copied", &got, &data);
        // After the end, every read says end again, at once.
        let mut buf = [0u8; 16];
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        assert_eq!(server.read(&mut buf).await.unwrap(), 0);
        writer.await.unwrap();
    }));
}

#[test]
fn tokio_copy_moves_a_file_over_a_socket_and_back_into_a_file() {
    let dir = TempDir::new("compat-copy");
    let (src, dst) = (dir.join("src"), dir.join("dst"));
    let data = pattern(3 * 100_000 + 17, 2);
    std::fs::write(&src, &data).unwrap();
    rt().block_on(within("the tokio copies", async {
        let (server, client) = pair().await;
        let src_path = src.clone();
        let sender = runtime::spawn(async move {
            let file = runtime::fs::File::open(&src_path).await.unwrap();
            let mut file = Compat::new(file);
            let mut client = Compat::new(client);
            let n = tokio::io::copy(&mut file, &mut client).await.unwrap();
            tokio::io::AsyncWriteExt::shutdown(&mut client)
                .await
                .unwrap();
            n
        });
        let out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&dst)
            .await
            .unwrap();
        let mut out = Compat::new(out);
        let mut server = Compat::new(server);
        let n = tokio::io::copy(&mut server, &mut out).await.unwrap();
        tokio::io::AsyncWriteExt::flush(&mut out).await.unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(out.position(), n, "the file cursor follows the writes");
        assert_eq!(sender.await.unwrap(), n);
    }));
    assert_same_bytes(
        "the file that came back",
        &std::fs::read(&dst).unwrap(),
        &data,
    );
}

#[test]
fn a_read_dropped_between_polls_loses_nothing() {
    rt().block_on(within("the abandoned reads", async {
        let (server, client) = pair().await;
        let mut server = Compat::with_capacity(server, 64, 64);
        let mut buf = [0u8; 64];

        // Abandoned while nothing has come: the receive stays in flight inside Compat.
        let (done, read) = poll_once(server.read(&mut buf)).await;
        assert!(done.is_none(), "nothing was sent yet");
        drop(read);
        let (r, _) = client.write_all(b"first".to_vec()).await;
        r.unwrap();
        // Abandoned again while the data arrives: the ring reaps the receive's
        // completion between the polls, so its bytes sit in Compat's buffer when the
        // read future is dropped; a later read must still see them.
        let mut seen = Vec::new();
        for _ in 0..3 {
            let (done, read) = poll_once(server.read(&mut buf)).await;
            if let Some(n) = done {
                seen.extend_from_slice(&buf[..n.unwrap()]);
                break;
            }
            drop(read);
            runtime::nop().await.unwrap();
        }
        let (r, _) = client.write_all(b"second".to_vec()).await;
        r.unwrap();
        client.shutdown(std::net::Shutdown::Write).await.unwrap();
        server.read_to_end(&mut seen).await.unwrap();
        assert_eq!(
            String::from_utf8(seen).unwrap(),
            "firstsecond",
            "every byte once, in order"
        );
    }));
}

#[test]
fn framed_lines_round_trip() {
    use tokio_util::codec::{Framed, LinesCodec};
    rt().block_on(within("the line protocol", async {
        let (server, client) = pair().await;
        let echo = runtime::spawn(async move {
            let mut lines = Framed::new(Compat::new(server), LinesCodec::new());
            while let Some(line) = lines.next().await {
                let line = line.unwrap();
                lines.send(line.to_uppercase()).await.unwrap();
            }
        });
        let mut lines = Framed::new(Compat::new(client), LinesCodec::new());
        for i in 0..200 {
            lines.send(format!("line {i} of the test")).await.unwrap();
            let back = lines.next().await.unwrap().unwrap();
            assert_eq!(back, format!("LINE {i} OF THE TEST"));
        }
        drop(lines);
        echo.await.unwrap();
    }));
}

/// Serves one connection with hyper's HTTP/1 server over `Compat`; returns how many
/// requests it answered.
async fn serve_one(listener: TcpListener) -> usize {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    let (stream, _) = listener.accept().await.unwrap();
    let count = Rc::new(std::cell::Cell::new(0));
    let counter = count.clone();
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        counter.set(counter.get() + 1);
        let body = format!("hello {}", req.uri().path());
        async move { Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(body)))) }
    });
    let io = hyper_util::rt::TokioIo::new(Compat::new(stream));
    http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service)
        .await
        .unwrap();
    count.get()
}

#[test]
fn hyper_answers_a_thousand_keep_alive_requests_from_hyper_client() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The client runs hyper on tokio in a thread of its own: an HTTP stack that shares
    // nothing with the server's.
    let client = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(hyper_client(addr))
    });
    let served = rt().block_on(within("the hyper server", async move {
        serve_one(TcpListener::from_std(listener).unwrap()).await
    }));
    client.join().unwrap();
    assert_eq!(served, 1000);
}

async fn hyper_client(addr: SocketAddr) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    for i in 0..1000 {
        let req = hyper::Request::get(format!("/r{i}"))
            .header("host", "test")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("hello /r{i}").as_bytes());
    }
    drop(sender);
    conn.await.unwrap().unwrap();
}

#[test]
fn hyper_answers_a_thousand_keep_alive_requests_from_curl() {
    // Not a kernel feature, so no reason to skip: .ci/run installs curl.
    if let Err(e) = std::process::Command::new("curl").arg("--version").output() {
        panic!("this test drives the server with curl, which cannot be run ({e}): apt-get install curl");
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // One curl, 1000 URLs on one host: curl keeps the connection alive between them.
    let curl = std::process::Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--fail",
            "--write-out",
            "%{http_code} %{num_connects}\\n",
        ])
        .arg(format!("http://127.0.0.1:{port}/c[1-1000]"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let served = rt().block_on(within("the hyper server", async move {
        serve_one(TcpListener::from_std(listener).unwrap()).await
    }));
    let out = curl.wait_with_output().unwrap();
    assert!(out.status.success(), "curl failed: {}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(served, 1000, "one connection served every request");
    assert_eq!(text.matches("200 ").count(), 1000, "every answer was 200");
    for i in [1, 500, 1000] {
        assert!(
            text.contains(&format!("hello /c{i}")),
            "the body of request {i}"
        );
    }
}

#[test]
fn the_runtime_streams_compose_with_stream_combinators() {
    use std::time::{Duration, Instant};
    rt().block_on(within("the streams", async {
        // A channel receiver.
        let (tx, rx) = runtime::channel::mpsc::unbounded();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        drop(tx);
        let doubled: Vec<i32> = rx.map(|x| x * 2).collect().await;
        assert_eq!(doubled, vec![0, 2, 4, 6, 8]);

        // An interval: three ticks, none early.
        let start = Instant::now();
        let period = Duration::from_millis(5);
        let ticks: Vec<_> = runtime::time::interval(period).take(3).collect().await;
        assert_eq!(ticks.len(), 3);
        assert!(
            start.elapsed() >= 2 * period,
            "the third tick comes two periods in"
        );

        // Accepted connections, then the bytes of one of them.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let clients = runtime::spawn(async move {
            let mut streams = Vec::new();
            for i in 0..3u8 {
                let stream = TcpStream::connect(addr).await.unwrap();
                let (r, _) = stream.write_all(vec![i; 10]).await;
                r.unwrap();
                streams.push(stream);
            }
            streams
        });
        let accepted: Vec<TcpStream> = listener
            .incoming()
            .take(3)
            .map(|s| s.unwrap())
            .collect()
            .await;
        assert_eq!(accepted.len(), 3);
        let held = clients.await.unwrap();
        drop(held);
        let bytes: usize = accepted[1]
            .recv_stream()
            .map(|chunk| chunk.unwrap().len())
            .fold(0, |sum, n| async move { sum + n })
            .await;
        assert_eq!(bytes, 10, "what the second client sent, then the end");
    }));
}

#[test]
fn bytes_buffers_go_through_the_owned_calls() {
    rt().block_on(within("the bytes buffers", async {
        let (server, client) = pair().await;
        let data = Bytes::from(pattern(50_000, 8));
        let (r, sent) = client.write_all(data.clone()).await;
        r.unwrap();
        assert_eq!(sent, data, "the Bytes comes back");
        let (r, got) = server
            .read_exact(bytes::BytesMut::with_capacity(data.len()))
            .await;
        r.unwrap();
        assert_same_bytes("received into BytesMut", &got, &data);
    }));
}

#[test]
fn code_generic_over_the_owned_traits_runs_on_tcp_and_unix_streams() {
    use runtime::io::{AsyncReadOwned, AsyncWriteOwned};

    async fn ping<S: AsyncReadOwned + AsyncWriteOwned>(a: &S, b: &S) {
        let (r, _) = a.write_all(b"ping".to_vec()).await;
        r.unwrap();
        let (r, got) = b.read_exact(Vec::with_capacity(4)).await;
        r.unwrap();
        assert_eq!(got, b"ping");
        let (r, _) = b.write(b"pong".to_vec()).await;
        assert_eq!(r.unwrap(), 4);
        let (r, got) = a.read(Vec::with_capacity(16)).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(got, b"pong");
    }

    rt().block_on(within("the generic code", async {
        let (server, client) = pair().await;
        ping(&client, &server).await;
        let (a, b) = runtime::net::UnixStream::pair().unwrap();
        ping(&a, &b).await;
    }));
}

#[test]
fn shutting_down_after_the_peer_reset_is_not_an_error() {
    use std::os::fd::AsRawFd;
    rt().block_on(within("the reset", async {
        let (server, client) = pair().await;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt reads the linger struct we pass, which outlives the call.
        let set = unsafe {
            libc::setsockopt(
                client.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(set, 0);
        drop(client); // closes with a reset
        let mut server = Compat::new(server);
        let mut buf = [0u8; 8];
        let read = tokio::io::AsyncReadExt::read(&mut server, &mut buf).await;
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
                || matches!(read, Ok(0)),
            "the reset shows on the read: {read:?}"
        );
        tokio::io::AsyncWriteExt::shutdown(&mut server)
            .await
            .unwrap();
    }));
}
