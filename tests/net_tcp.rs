//! TCP as a user sees it: bytes arrive whole and in order, many connections at once
//! each get their own data, a peer's reset or early close is a clear error, and
//! socket options reach the kernel.

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use runtime::buf::IoBuf;
use runtime::net::{TcpListener, TcpStream};
use tests::{assert_same_bytes, bytes_readable, next, pattern, raise_fd_limit, rt, within};

const MIB: usize = 1 << 20;

/// A connected pair: (the connecting end, the accepted end).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = within(
        "connect",
        TcpStream::connect(listener.local_addr().unwrap()),
    )
    .await
    .unwrap();
    let (server, peer) = within("accept", listener.accept()).await.unwrap();
    assert_eq!(peer, client.local_addr().unwrap());
    (client, server)
}

/// Turns the ring until `fd` has `n` bytes waiting (or more).
async fn wait_readable(fd: RawFd, n: usize) {
    within("bytes to arrive", async {
        while bytes_readable(fd) < n {
            runtime::nop().await.unwrap();
            runtime::yield_now().await;
        }
    })
    .await;
}

#[test]
fn a_mebibyte_round_trips_with_write_all_and_read_exact() {
    rt().block_on(within("the round trip", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = runtime::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, buf) = stream.read_exact(Vec::with_capacity(MIB)).await;
            r.unwrap();
            let (r, buf) = stream.write_all(buf).await;
            r.unwrap();
            buf
        });
        let client = TcpStream::connect(addr).await.unwrap();
        let data = pattern(MIB, 1);
        let (r, data) = client.write_all(data).await;
        r.unwrap();
        let (r, back) = client.read_exact(Vec::with_capacity(MIB)).await;
        r.unwrap();
        assert_same_bytes("what the server read", &server.await.unwrap(), &data);
        assert_same_bytes("the echo", &back, &data);
    }));
}

#[test]
fn a_mebibyte_round_trips_through_recv_stream() {
    rt().block_on(within("the round trip", async {
        let (client, server) = pair().await;
        let server = runtime::spawn(async move {
            let mut received = Vec::new();
            let mut chunks = 0;
            let mut data = server.recv_stream();
            while let Some(buf) = next(&mut data).await {
                let buf = buf.unwrap();
                assert!(!buf.is_empty(), "a chunk of data is never empty");
                received.extend_from_slice(&buf);
                chunks += 1;
            }
            drop(data);
            let (r, received) = server.write_all(received).await;
            r.unwrap();
            (received, chunks)
        });
        let data = pattern(MIB, 2);
        let (r, data) = client.write_all(data).await;
        r.unwrap();
        client.shutdown(Shutdown::Write).await.unwrap();
        let (r, back) = client.read_exact(Vec::with_capacity(MIB)).await;
        r.unwrap();
        let (n, _) = client.read(Vec::with_capacity(1)).await;
        assert_eq!(n.unwrap(), 0, "the server closed after its echo");
        let (received, chunks) = server.await.unwrap();
        assert!(chunks > 1, "a MiB does not fit one provided buffer");
        assert_same_bytes("what recv_stream yielded", &received, &data);
        assert_same_bytes("the echo", &back, &data);
    }));
}

#[test]
fn a_thousand_concurrent_connections_each_get_their_own_echo() {
    const MSG: usize = 64;
    // Both ends of every connection are in this process, plus the runtime's own. Where
    // the fd limit cannot be raised that far, as many as fit (no fewer than 200).
    let conns: usize = match raise_fd_limit(2 * 1000 + 100) {
        Ok(()) => 1000,
        Err(why) => {
            // SAFETY: rlimit is plain old data; getrlimit fills the one we pass.
            let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
            // SAFETY: as above.
            assert_eq!(
                unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
                0
            );
            let fit = (limit.rlim_cur.saturating_sub(100) / 2).min(1000) as usize;
            assert!(fit >= 200, "{why}: room for only {fit} connections");
            eprintln!("{why}: {fit} connections instead of 1000");
            fit
        }
    };
    fn message(i: usize) -> Vec<u8> {
        let mut m = format!("connection {i:05}|").into_bytes();
        m.extend(pattern(MSG - m.len(), i as u64));
        m
    }
    rt().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = runtime::spawn(async move {
            let mut handlers = Vec::with_capacity(conns);
            for _ in 0..conns {
                let (stream, _) = listener.accept().await.unwrap();
                handlers.push(runtime::spawn(async move {
                    let (r, msg) = stream.read_exact(Vec::with_capacity(MSG)).await;
                    r.unwrap();
                    let (r, _) = stream.write_all(msg).await;
                    r.unwrap();
                    // Keep the connection until the client closes it.
                    let (n, _) = stream.read(Vec::with_capacity(1)).await;
                    assert_eq!(n.unwrap(), 0);
                }));
            }
            for handler in handlers {
                handler.await.unwrap();
            }
        });
        let clients: Vec<_> = (0..conns)
            .map(|i| {
                runtime::spawn(async move {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    let (r, msg) = stream.write_all(message(i)).await;
                    r.unwrap();
                    let (r, back) = stream.read_exact(Vec::with_capacity(MSG)).await;
                    r.unwrap();
                    assert_eq!(back, msg, "connection {i} got someone else's echo");
                    stream
                })
            })
            .collect();
        let mut open = Vec::with_capacity(conns);
        for client in clients {
            open.push(within("a client's echo", client).await.unwrap());
        }
        // Every connection got its echo while all of them were open.
        assert_eq!(open.len(), conns);
        drop(open);
        within("every server handler to see its client leave", server)
            .await
            .unwrap();
    });
}

static SIGPIPES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn count_sigpipe(_: libc::c_int) {
    SIGPIPES.fetch_add(1, Ordering::SeqCst);
}

/// Counts SIGPIPEs instead of ignoring them (as Rust programs do by default), so that
/// a write that raised one shows.
fn count_sigpipes() {
    // SAFETY: sigaction is plain old data; zeroes are no flags and an empty mask.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = count_sigpipe as *const () as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic, which is async-signal-safe.
    let res = unsafe { libc::sigaction(libc::SIGPIPE, &action, std::ptr::null_mut()) };
    assert_eq!(res, 0, "sigaction: {}", std::io::Error::last_os_error());
}

/// `SO_LINGER` {on, 0}: closing the socket resets the connection.
fn set_linger_zero(fd: RawFd) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the pointer is to a live linger of the size passed.
    let res = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(res, 0, "SO_LINGER: {}", std::io::Error::last_os_error());
}

fn is_reset(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe)
}

#[test]
fn a_peer_reset_mid_write_is_an_error_not_a_hang_or_a_signal() {
    count_sigpipes();
    rt().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = within("accept", listener.accept()).await.unwrap();
        let stream = Rc::new(stream);
        // Far more than the two sockets' buffers hold: the peer reads nothing, so the
        // write cannot finish.
        let big = pattern(MIB, 3).repeat(64);
        let writer = runtime::spawn({
            let stream = stream.clone();
            async move { stream.write_all(big).await.0 }
        });
        wait_readable(peer.as_raw_fd(), 1).await;
        assert!(!writer.is_finished(), "the write is still under way");
        set_linger_zero(peer.as_raw_fd());
        drop(peer);
        let err = within("the write to fail", writer)
            .await
            .unwrap()
            .expect_err("a write to a reset connection fails");
        assert!(is_reset(err.kind()), "got {err:?}");
        let (r, _) = within("a second write", stream.write(b"more".as_slice())).await;
        let err = r.expect_err("the connection stays broken");
        assert!(is_reset(err.kind()), "got {err:?}");
    });
    assert_eq!(SIGPIPES.load(Ordering::SeqCst), 0, "no SIGPIPE was raised");
}

#[test]
fn after_a_half_close_the_server_reads_eof_and_can_still_reply() {
    rt().block_on(within("the exchange", async {
        let (client, server) = pair().await;
        let reply = pattern(256 << 10, 4);
        let server = runtime::spawn({
            let reply = reply.clone();
            async move {
                let mut request = Vec::new();
                loop {
                    let (n, buf) = server.read(Vec::with_capacity(4096)).await;
                    if n.unwrap() == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf);
                }
                let (r, _) = server.write_all(reply).await;
                r.unwrap();
                request
            }
        });
        let (r, _) = client.write_all(b"the whole request".as_slice()).await;
        r.unwrap();
        client.shutdown(Shutdown::Write).await.unwrap();
        let (r, back) = client.read_exact(Vec::with_capacity(reply.len())).await;
        r.unwrap();
        assert_same_bytes("the reply", &back, &reply);
        let (n, _) = client.read(Vec::with_capacity(1)).await;
        assert_eq!(n.unwrap(), 0, "then the server's end of stream");
        assert_eq!(server.await.unwrap(), b"the whole request");
    }));
}

#[test]
fn read_exact_with_a_peer_that_closes_early_is_unexpected_eof() {
    rt().block_on(within("the read", async {
        let (client, server) = pair().await;
        let (r, _) = server.write_all(b"only ten b".as_slice()).await;
        r.unwrap();
        drop(server);
        let (r, buf) = client.read_exact(Vec::with_capacity(100)).await;
        assert_eq!(r.unwrap_err().kind(), ErrorKind::UnexpectedEof);
        assert_eq!(buf, b"only ten b", "the buffer holds what came");
    }));
}

#[test]
fn connecting_to_a_closed_port_is_connection_refused() {
    let addr: SocketAddr = {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        taken.local_addr().unwrap()
    };
    rt().block_on(async {
        let err = within("connect", TcpStream::connect(addr))
            .await
            .expect_err("nobody listens there");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "got {err:?}");
    });
}

#[test]
fn send_zc_sends_the_bytes_and_hands_the_buffer_back() {
    let probe = runtime::Probe::get().unwrap();
    if !probe.send_zc() {
        eprintln!("skipped: this kernel has no IORING_OP_SEND_ZC (Linux 6.0)");
        return;
    }
    rt().block_on(within("the zero-copy sends", async {
        let (client, server) = pair().await;
        let reader = runtime::spawn(async move {
            let (r, buf) = server.read_exact(Vec::with_capacity(MIB)).await;
            r.unwrap();
            buf
        });
        let data = pattern(MIB, 5);
        let mut buf = data.clone();
        let at = buf.as_ptr();
        let mut sent = 0;
        let mut sends = 0;
        while sent < MIB {
            let (r, slice) = client.send_zc(buf.slice(sent..MIB)).await;
            buf = slice.into_inner();
            let n = r.unwrap();
            assert!(n > 0, "a send to a live peer moves some bytes");
            sent += n;
            sends += 1;
        }
        assert!(sends >= 1);
        assert_eq!(sent, MIB);
        assert_eq!(buf.as_ptr(), at, "the very buffer comes back");
        assert_same_bytes("the buffer handed back", &buf, &data);
        assert_same_bytes("what the peer read", &reader.await.unwrap(), &data);
    }));
}

#[test]
fn vectored_io_fills_three_buffers_in_order() {
    rt().block_on(within("the vectored exchange", async {
        let (client, server) = pair().await;
        let parts = vec![pattern(100, 6), pattern(2000, 7), pattern(50, 8)];
        let whole = parts.concat();
        let (n, parts) = client.write_vectored(parts).await;
        assert_eq!(n.unwrap(), whole.len(), "one sendmsg took every part");
        assert_eq!(
            parts.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 2000, 50]
        );
        wait_readable(server.as_raw_fd(), whole.len()).await;
        let bufs = vec![
            Vec::with_capacity(1000),
            Vec::with_capacity(1000),
            Vec::with_capacity(150),
        ];
        let caps: Vec<usize> = bufs.iter().map(Vec::capacity).collect();
        let (n, bufs) = server.read_vectored(bufs).await;
        assert_eq!(n.unwrap(), whole.len());
        assert_eq!(
            bufs.iter().map(Vec::len).collect::<Vec<_>>(),
            caps,
            "each buffer filled to its capacity, in order"
        );
        assert_same_bytes("the three buffers", &bufs.concat(), &whole);
    }));
}

fn raw_flag(fd: RawFd, level: libc::c_int, name: libc::c_int) -> bool {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: both pointers are to live locals; len holds the size of value.
    let res = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    assert_eq!(res, 0, "getsockopt: {}", std::io::Error::last_os_error());
    value != 0
}

#[test]
fn socket_options_reach_the_kernel() {
    rt().block_on(async {
        let (client, server) = pair().await;
        let fd = client.as_raw_fd();

        client.set_nodelay(true).unwrap();
        assert!(client.nodelay().unwrap());
        assert!(raw_flag(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY));
        client.set_nodelay(false).unwrap();
        assert!(!client.nodelay().unwrap());
        assert!(!raw_flag(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY));

        client.set_ttl(42).unwrap();
        assert_eq!(client.ttl().unwrap(), 42);

        assert_eq!(client.keepalive().unwrap(), None, "off by default");
        client.set_keepalive(Some(Duration::from_secs(60))).unwrap();
        assert_eq!(client.keepalive().unwrap(), Some(Duration::from_secs(60)));
        assert!(raw_flag(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE));
        client.set_keepalive(None).unwrap();
        assert_eq!(client.keepalive().unwrap(), None);
        assert!(!raw_flag(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE));

        assert_eq!(client.peer_addr().unwrap(), server.local_addr().unwrap());
        assert_eq!(client.local_addr().unwrap(), server.peer_addr().unwrap());
        assert!(client.take_error().unwrap().is_none());

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_ttl(7).unwrap();
        assert_eq!(listener.ttl().unwrap(), 7);
    });
}

#[test]
fn two_listeners_share_a_port_and_both_take_connections() {
    const CONNS: usize = 64;
    rt().block_on(within("the connections", async {
        // Two listeners on one port, both taken on this one core.
        let shared = TcpListener::bind_per_core("127.0.0.1:0", 2).unwrap();
        let addr = shared.local_addr();
        let first = shared.take(0).unwrap();
        let second = shared.take(1).unwrap();
        assert_eq!(first.local_addr().unwrap(), addr);
        assert_eq!(second.local_addr().unwrap(), addr);
        let accepted = Rc::new([std::cell::Cell::new(0usize), std::cell::Cell::new(0)]);
        for (i, listener) in [first, second].into_iter().enumerate() {
            let accepted = accepted.clone();
            runtime::spawn(async move {
                let mut kept = Vec::new();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    kept.push(stream);
                    accepted[i].set(accepted[i].get() + 1);
                }
            });
        }
        let mut clients = Vec::new();
        for _ in 0..CONNS {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        while accepted[0].get() + accepted[1].get() < CONNS {
            runtime::nop().await.unwrap();
            runtime::yield_now().await;
        }
        assert_eq!(accepted[0].get() + accepted[1].get(), CONNS);
        // The kernel spreads connections by a hash of their addresses: with this many,
        // both get some (the odds of all on one side are 2 in 2^64).
        assert!(
            accepted[0].get() > 0 && accepted[1].get() > 0,
            "one listener took them all: {} and {}",
            accepted[0].get(),
            accepted[1].get()
        );
    }));
}

#[test]
fn both_ends_send_and_receive_at_once_on_one_stream() {
    const LEN: usize = 4 * MIB;
    rt().block_on(within("the exchange", async {
        let (client, server) = pair().await;
        // Each end writes from one task while another reads: a stream takes a read and
        // a write in flight together. Each side sends more than the socket buffers hold
        // in one go, so the writes finish only because the reads run alongside.
        let mut tasks = Vec::new();
        for (end, seed) in [(Rc::new(client), 51), (Rc::new(server), 52)] {
            let out = pattern(MIB, seed).repeat(LEN / MIB);
            let writer = runtime::spawn({
                let end = end.clone();
                async move {
                    let (r, _) = end.write_all(out).await;
                    r.unwrap();
                }
            });
            let reader = runtime::spawn(async move {
                let (r, got) = end.read_exact(Vec::with_capacity(LEN)).await;
                r.unwrap();
                got
            });
            tasks.push((writer, reader));
        }
        let mut received = Vec::new();
        for (writer, reader) in tasks {
            writer.await.unwrap();
            received.push(reader.await.unwrap());
        }
        assert_same_bytes(
            "what the server read",
            &received[1],
            &pattern(MIB, 51).repeat(4),
        );
        assert_same_bytes(
            "what the client read",
            &received[0],
            &pattern(MIB, 52).repeat(4),
        );
    }));
}

#[test]
fn send_zc_to_a_reset_peer_is_an_error_and_hands_the_buffer_back() {
    let probe = runtime::Probe::get().unwrap();
    if !probe.send_zc() {
        eprintln!("skipped: this kernel has no IORING_OP_SEND_ZC (Linux 6.0)");
        return;
    }
    count_sigpipes();
    rt().block_on(within("the sends", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, _) = listener.accept().await.unwrap();
        set_linger_zero(peer.as_raw_fd());
        drop(peer);
        let data = pattern(64 << 10, 53);
        // The reset may need a moment to arrive: the first send can still succeed.
        let mut buf = data.clone();
        let err = loop {
            let (r, b) = stream.send_zc(buf).await;
            assert_same_bytes("the buffer handed back", &b, &data);
            buf = b;
            match r {
                Ok(_) => runtime::yield_now().await,
                Err(e) => break e,
            }
        };
        assert!(is_reset(err.kind()), "got {err:?}");
    }));
    assert_eq!(SIGPIPES.load(Ordering::SeqCst), 0, "no SIGPIPE was raised");
}

#[test]
fn shutting_down_the_read_half_makes_reads_end() {
    rt().block_on(within("the reads", async {
        let (client, server) = pair().await;
        server.shutdown(Shutdown::Read).await.unwrap();
        let (n, _) = server.read(Vec::with_capacity(16)).await;
        assert_eq!(
            n.unwrap(),
            0,
            "a read after shutdown(Read) is end of stream"
        );
        // The write half still works.
        let (r, _) = server.write_all(b"still here".as_slice()).await;
        r.unwrap();
        let (r, got) = client.read_exact(Vec::with_capacity(10)).await;
        r.unwrap();
        assert_eq!(got, b"still here");
    }));
}

#[test]
fn a_round_trip_over_ipv6_loopback() {
    let listener = match std::net::TcpListener::bind("[::1]:0") {
        Ok(listener) => listener,
        // The machine has no IPv6 (kernel built or booted without it, or ::1 disabled):
        // the kernel lacks the feature, whatever the runtime does.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
            ) =>
        {
            eprintln!("skipped: this machine has no IPv6 loopback ({e})");
            return;
        }
        Err(e) => panic!("binding [::1]:0 with std: {e}"),
    };
    rt().block_on(within("the round trip", async {
        let listener = TcpListener::from_std(listener).unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert_eq!(client.peer_addr().unwrap(), addr);
        let data = pattern(64 << 10, 54);
        let (r, data) = client.write_all(data).await;
        r.unwrap();
        let (r, got) = server.read_exact(Vec::with_capacity(data.len())).await;
        r.unwrap();
        assert_same_bytes("what the server read", &got, &data);
    }));
}

#[test]
fn options_set_on_a_tcp_socket_before_connecting_stay_on_the_stream() {
    rt().block_on(within("the connect", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let socket = runtime::net::TcpSocket::new_v4().unwrap();
        socket.set_nodelay(true).unwrap();
        socket.set_keepalive(Some(Duration::from_secs(30))).unwrap();
        let stream = socket.connect(addr).await.unwrap();
        assert!(stream.nodelay().unwrap());
        assert_eq!(stream.keepalive().unwrap(), Some(Duration::from_secs(30)));
        let (server, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, stream.local_addr().unwrap());
        let (r, _) = stream.write_all(b"hello".as_slice()).await;
        r.unwrap();
        let (r, got) = server.read_exact(Vec::with_capacity(5)).await;
        r.unwrap();
        assert_eq!(got, b"hello");
    }));
}
