//! Multishot accept (`incoming`) and multishot receive (`recv_stream`): one submission
//! that keeps yielding, which must survive the kernel ending it early (an empty buffer
//! ring) and deliver everything in order.

use std::io::ErrorKind;
use std::net::Shutdown;

use runtime::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use runtime::Builder;
use tests::{assert_same_bytes, next, pattern, poll_once, within, TempDir};

fn rt_with_recv_buffers(count: u16, size: u32) -> runtime::Runtime {
    Builder::new()
        .cores(1)
        .pin(false)
        .recv_buffers(count, size)
        .build()
        .expect("the runtime starts")
}

fn multishot_recv_or_skip() -> bool {
    let probe = runtime::Probe::get().unwrap();
    if !probe.multishot_recv() {
        eprintln!("skipped: this kernel has no multishot receive (Linux 6.0)");
    }
    probe.multishot_recv()
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    (client, server)
}

#[test]
fn recv_stream_survives_an_empty_buffer_ring_and_loses_nothing() {
    if !multishot_recv_or_skip() {
        return;
    }
    const COUNT: usize = 4;
    const SIZE: usize = 64;
    const TOTAL: usize = 64 << 10;
    rt_with_recv_buffers(COUNT as u16, SIZE as u32).block_on(within("the transfer", async {
        let (client, server) = tcp_pair().await;
        let data = pattern(TOTAL, 31);
        let writer = runtime::spawn({
            let data = data.clone();
            async move {
                let (r, _) = client.write_all(data).await;
                r.unwrap();
                client.shutdown(Shutdown::Write).await.unwrap();
                client
            }
        });
        let mut received = Vec::with_capacity(TOTAL);
        let mut held = Vec::with_capacity(COUNT);
        let mut own_buffers = 0;
        let mut chunks = server.recv_stream();
        loop {
            if held.len() == COUNT {
                // Every provided buffer is in our hands: the kernel has none to fill.
                // The stream neither fails nor ends nor stalls: it receives into
                // buffers of its own until one comes back.
                let chunk = within("a chunk with every buffer held", next(&mut chunks)).await;
                match chunk {
                    None => assert_eq!(received.len(), TOTAL, "ended early"),
                    Some(buf) => {
                        let buf = buf.expect("an empty buffer ring is not an error");
                        assert!(!buf.is_provided(), "a provided buffer while all are held");
                        own_buffers += 1;
                        received.extend_from_slice(&buf);
                    }
                }
                held.clear();
            }
            match next(&mut chunks).await {
                None => break,
                Some(buf) => {
                    let buf = buf.expect("an empty buffer ring is not an error");
                    assert!(buf.len() <= SIZE);
                    received.extend_from_slice(&buf);
                    if buf.is_provided() {
                        held.push(buf);
                    } else {
                        own_buffers += 1;
                    }
                }
            }
        }
        drop(held);
        assert!(
            own_buffers >= TOTAL / (COUNT * SIZE) / 2,
            "the ring ran dry at most rounds, yet only {own_buffers} chunks came in the \
             stream's own buffers"
        );
        assert_same_bytes("what recv_stream yielded", &received, &data);
        assert!(next(&mut chunks).await.is_none(), "it stays ended");
        drop(writer.await.unwrap());
    }));
}

#[test]
fn recv_stream_without_receive_buffers_says_why() {
    if !multishot_recv_or_skip() {
        return;
    }
    rt_with_recv_buffers(0, 4096).block_on(within("the stream", async {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut chunks = a.recv_stream();
        let err = next(&mut chunks)
            .await
            .expect("one item")
            .expect_err("there are no buffers to receive into");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("recv_buffers"), "{err}");
        assert!(next(&mut chunks).await.is_none(), "then it ends");
    }));
}

/// Connections waiting in a TCP listener's accept queue (`TCP_INFO`'s `tcpi_unacked`,
/// which a listening socket fills with its backlog; the seventh 32-bit word).
fn accept_queue_len(fd: std::os::fd::RawFd) -> u32 {
    let mut words = [0u32; 8];
    let mut len = std::mem::size_of_val(&words) as libc::socklen_t;
    // SAFETY: both pointers are to live locals; len holds the size of `words`, and the
    // kernel copies at most that much.
    let res = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            words.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(res, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    words[6]
}

/// Turns the ring until `done()`.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    within(what, async {
        while !done() {
            runtime::nop().await.unwrap();
            runtime::yield_now().await;
        }
    })
    .await
}

#[test]
fn incoming_yields_connections_in_order_of_arrival() {
    const EARLY: usize = 4;
    const LATE: usize = 4;
    tests::rt().block_on(within("the connections", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&listener);
        let mut clients = Vec::new();
        // These wait in the backlog before anything accepts; each is queued before the
        // next one starts, so the order of arrival is the order of the connects...
        for queued in 1..=EARLY as u32 {
            clients.push(TcpStream::connect(addr).await.unwrap());
            until("the backlog to grow", || accept_queue_len(fd) == queued).await;
        }
        let taken = std::rc::Rc::new(std::cell::Cell::new(0));
        let server = runtime::spawn({
            let taken = taken.clone();
            async move {
                let mut incoming = listener.incoming();
                let mut peers = Vec::new();
                while peers.len() < EARLY + LATE {
                    let stream = next(&mut incoming).await.expect("it goes on").unwrap();
                    peers.push(stream.peer_addr().unwrap());
                    taken.set(peers.len());
                }
                peers
            }
        });
        until("the backlog to be taken", || taken.get() == EARLY).await;
        // ...and these arrive while the accept is armed, one after another.
        for _ in 0..LATE {
            clients.push(TcpStream::connect(addr).await.unwrap());
            let want = clients.len();
            until("the connection to be yielded", || taken.get() == want).await;
        }
        let arrived: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
        assert_eq!(server.await.unwrap(), arrived);
    }));
}

#[test]
fn incoming_serves_many_connections_from_one_stream() {
    const CONNS: usize = 300;
    tests::rt().block_on(within("the connections", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        runtime::spawn(async move {
            let mut incoming = listener.incoming();
            while let Some(stream) = next(&mut incoming).await {
                let stream = stream.unwrap();
                runtime::spawn(async move {
                    let (r, msg) = stream.read_exact(Vec::with_capacity(8)).await;
                    r.unwrap();
                    let (r, _) = stream.write_all(msg).await;
                    r.unwrap();
                });
            }
        });
        let clients: Vec<_> = (0..CONNS as u64)
            .map(|i| {
                runtime::spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let (r, _) = stream.write_all(i.to_be_bytes().to_vec()).await;
                    r.unwrap();
                    let (r, back) = stream.read_exact(Vec::with_capacity(8)).await;
                    r.unwrap();
                    assert_eq!(back, i.to_be_bytes(), "connection {i}'s own echo");
                })
            })
            .collect();
        for client in clients {
            client.await.unwrap();
        }
    }));
}

#[test]
fn incoming_on_a_unix_listener_yields_each_connection() {
    const CONNS: usize = 50;
    let dir = TempDir::new("unix-incoming");
    let path = dir.join("listener.sock");
    tests::rt().block_on(within("the connections", async {
        let listener = UnixListener::bind(&path).unwrap();
        let server = runtime::spawn(async move {
            let mut incoming = listener.incoming();
            let mut seen = Vec::new();
            while seen.len() < CONNS {
                let stream = next(&mut incoming).await.expect("it goes on").unwrap();
                let (r, byte) = stream.read_exact(Vec::with_capacity(1)).await;
                r.unwrap();
                seen.push(byte[0]);
            }
            seen
        });
        let mut clients = Vec::new();
        for i in 0..CONNS as u8 {
            let client = UnixStream::connect(&path).await.unwrap();
            let (r, _) = client.write_all(vec![i]).await;
            r.unwrap();
            clients.push(client);
        }
        let seen = server.await.unwrap();
        assert_eq!(seen, (0..CONNS as u8).collect::<Vec<_>>());
    }));
}

#[test]
fn recv_stream_yields_a_reset_as_an_error_then_ends() {
    if !multishot_recv_or_skip() {
        return;
    }
    tests::rt().block_on(within("the stream", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        let mut chunks = stream.recv_stream();
        let (out, _) = poll_once(next(&mut chunks)).await;
        assert!(out.is_none(), "nothing was sent yet");
        // SO_LINGER {on, 0}: the close resets the connection.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: the pointer is to a live linger of the size passed.
        let res = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&peer),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(res, 0);
        drop(peer);
        let err = next(&mut chunks)
            .await
            .expect("the reset is an item")
            .expect_err("a reset is an error");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "got {err:?}");
        assert!(next(&mut chunks).await.is_none(), "then the stream ends");
    }));
}

#[test]
fn a_recv_buf_kept_past_its_runtime_still_reads_its_bytes() {
    if !multishot_recv_or_skip() {
        return;
    }
    let data = pattern(3000, 32);
    let mut rt = rt_with_recv_buffers(8, 1024);
    let (kept, streams) = rt.block_on(within("the first chunk", {
        let data = data.clone();
        async move {
            let (a, b) = UnixStream::pair().unwrap();
            let (r, _) = a.write_all(data).await;
            r.unwrap();
            let mut chunks = b.recv_stream();
            let first = next(&mut chunks).await.unwrap().unwrap();
            // Leave the stream armed with more data queued, for shutdown to cancel.
            let (out, _) = poll_once(next(&mut chunks)).await;
            drop(out);
            drop(chunks);
            (first, (a, b))
        }
    }));
    drop(rt);
    assert!(!kept.is_empty());
    assert_same_bytes("the kept buffer", &kept, &data[..kept.len()]);
    drop(kept);
    drop(streams);
}
