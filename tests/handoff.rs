//! No operation ever reaches the kernel naming an fd number after that fd left the
//! runtime's ownership: not after `into_std` (the number may be closed and reused by
//! the next socket), not after a close, not after a panic in `block_on`.
//!
//! Each round queues an op on a socket and drops it, hands the socket off and closes
//! it, then makes a new connection (which gets the freed number) and checks that the
//! stale op did not touch it: no stale bytes reach the new peer, and the new peer's
//! bytes are not stolen.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;

use runtime::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use tests::{bytes_readable, poll_once, within, TempDir, BOUND};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const ROUNDS: usize = 50;

fn runtimes() -> Vec<(&'static str, runtime::Runtime)> {
    let build = |entries| {
        runtime::Builder::new()
            .cores(1)
            .pin(false)
            .ring_entries(entries)
            .build()
            .unwrap()
    };
    vec![("1024 entries", build(1024)), ("1 entry", build(1))]
}

async fn connection(listener: &TcpListener, addr: SocketAddr) -> (TcpStream, std::net::TcpStream) {
    let peer = peer(addr);
    (accepted(listener).await, peer)
}

/// A client connected to `addr` (its fd is taken now: the next accept's fd is the
/// lowest free number then).
fn peer(addr: SocketAddr) -> std::net::TcpStream {
    let peer = std::net::TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(BOUND)).unwrap();
    peer
}

async fn accepted(listener: &TcpListener) -> TcpStream {
    within("accept", listener.accept()).await.unwrap().0
}

/// Turns the ring a few times, so that anything still queued reaches the kernel.
async fn turn_ring() {
    for _ in 0..4 {
        runtime::nop().await.unwrap();
        runtime::yield_now().await;
    }
}

// In the TCP rounds the new peer's socket is made synchronously (std) right after the
// hand-off, so it is the one that gets the freed number before the ring turns again.

#[test]
fn a_stale_send_never_reaches_the_socket_that_reuses_the_number() {
    if tests::ring_only("an SQE queued before a hand-off") {
        return;
    }
    let _serial = serial();
    for (what, mut rt) in runtimes() {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut reused = 0;
            for round in 0..ROUNDS {
                let (old, _old_peer) = connection(&listener, addr).await;
                let number = old.as_raw_fd();
                let send = Box::pin(old.write(b"SECRET of the old connection".to_vec()));
                let (out, send) = poll_once(send).await;
                assert!(out.is_none());
                drop(send);
                drop(old.into_std());

                // A stale send on the number would now go out of the new peer's socket
                // to the new connection's server end.
                let mut new_peer = peer(addr);
                reused += usize::from(new_peer.as_raw_fd() == number);
                let new = accepted(&listener).await;
                turn_ring().await;
                new_peer.write_all(b"hello").unwrap();
                let (n, got) = within("the new peer's bytes", new.read_exact(vec![0u8; 5])).await;
                n.unwrap();
                assert_eq!(
                    got, b"hello",
                    "{what}, round {round}: the new connection got the old connection's bytes"
                );
                assert_eq!(bytes_readable(new.as_raw_fd()), 0, "{what}, round {round}");
            }
            assert!(
                reused > 0,
                "{what}: the fd number was never reused; the test proves nothing"
            );
        });
    }
}

#[test]
fn a_stale_receive_never_steals_from_the_socket_that_reuses_the_number() {
    let _serial = serial();
    for (what, mut rt) in runtimes() {
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let plain = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let plain_addr = plain.local_addr().unwrap();
            let mut reused = 0;
            for round in 0..ROUNDS {
                let (old, _old_peer) = connection(&listener, addr).await;
                let number = old.as_raw_fd();
                let read = Box::pin(old.read(Vec::with_capacity(64)));
                let (out, read) = poll_once(read).await;
                assert!(out.is_none());
                drop(read);
                drop(old.into_std());

                // A stale receive on the number would now take what the new peer's
                // server end has sent it (a plain socket pair, so the bytes are there
                // before the ring turns again).
                let mut new_peer = std::net::TcpStream::connect(plain_addr).unwrap();
                new_peer.set_read_timeout(Some(BOUND)).unwrap();
                reused += usize::from(new_peer.as_raw_fd() == number);
                let (mut server_end, _) = plain.accept().unwrap();
                server_end.write_all(b"for the new one").unwrap();
                turn_ring().await;
                let mut got = [0u8; 15];
                new_peer
                    .read_exact(&mut got)
                    .unwrap_or_else(|e| panic!("{what}, round {round}: {e}"));
                assert_eq!(&got, b"for the new one", "{what}, round {round}");
            }
            assert!(
                reused > 0,
                "{what}: the fd number was never reused; the test proves nothing"
            );
        });
    }
}

#[test]
fn a_listener_handed_off_takes_no_connection_of_the_next_listener() {
    let _serial = serial();
    for (what, mut rt) in runtimes() {
        rt.block_on(async {
            for round in 0..ROUNDS {
                let old = TcpListener::bind("127.0.0.1:0").unwrap();
                let number = old.as_raw_fd();
                let accept = Box::pin(old.accept());
                let (out, accept) = poll_once(accept).await;
                assert!(out.is_none());
                drop(accept);
                drop(old.into_std());

                let new = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = new.local_addr().unwrap();
                let _client = std::net::TcpStream::connect(addr).unwrap();
                turn_ring().await;
                let accepted = within("the new listener's connection", new.accept()).await;
                accepted.unwrap_or_else(|e| {
                    panic!(
                        "{what}, round {round} (fd {number} reused: {}): {e}",
                        new.as_raw_fd() == number
                    )
                });
            }
        });
    }
}

#[test]
fn a_stale_send_on_a_unix_stream_never_reaches_the_next_owner_of_the_number() {
    if tests::ring_only("an SQE queued before a hand-off") {
        return;
    }
    let _serial = serial();
    let dir = TempDir::new("handoff");
    let path = dir.join("sock");
    let mut rt = tests::rt();
    rt.block_on(async {
        let listener = runtime::net::UnixListener::bind(&path).unwrap();
        let mut reused = 0;
        for round in 0..ROUNDS {
            let _old_peer = std::os::unix::net::UnixStream::connect(&path).unwrap();
            let (old, _) = within("accept", listener.accept()).await.unwrap();
            let number = old.as_raw_fd();
            let send = Box::pin(old.write(b"SECRET".to_vec()));
            let (out, send) = poll_once(send).await;
            assert!(out.is_none());
            drop(send);
            drop(old.into_std());

            let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
            b.set_read_timeout(Some(BOUND)).unwrap();
            reused += usize::from(a.as_raw_fd() == number);
            let a = UnixStream::from_std(a).unwrap();
            turn_ring().await;
            a.write_all(b"fresh".to_vec()).await.0.unwrap();
            let mut got = [0u8; 5];
            b.read_exact(&mut got).unwrap();
            assert_eq!(
                &got, b"fresh",
                "round {round}: stale bytes reached the new owner"
            );
        }
        assert!(
            reused > 0,
            "the fd number was never reused; the test proves nothing"
        );
    });
}

#[test]
fn a_stale_datagram_never_leaves_from_the_next_owner_of_the_number() {
    if tests::ring_only("an SQE queued before a hand-off") {
        return;
    }
    let _serial = serial();
    let mut rt = tests::rt();
    rt.block_on(async {
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sink.set_nonblocking(true).unwrap();
        let sink_addr = sink.local_addr().unwrap();
        let mut reused = 0;
        for round in 0..ROUNDS {
            let old = UdpSocket::bind("127.0.0.1:0").unwrap();
            let number = old.as_raw_fd();
            let send = Box::pin(old.send_to(b"SECRET".to_vec(), sink_addr));
            let (out, send) = poll_once(send).await;
            assert!(out.is_none());
            drop(send);
            drop(old.into_std());

            let new = UdpSocket::bind("127.0.0.1:0").unwrap();
            reused += usize::from(new.as_raw_fd() == number);
            turn_ring().await;
            new.send_to(b"fresh".to_vec(), sink_addr).await.0.unwrap();
            let mut got = [0u8; 16];
            let deadline = std::time::Instant::now() + BOUND;
            let n = loop {
                match sink.recv(&mut got) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        assert!(std::time::Instant::now() < deadline, "no datagram came");
                        runtime::yield_now().await;
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            assert_eq!(
                &got[..n],
                b"fresh",
                "round {round}: a stale datagram went out"
            );
        }
        assert!(
            reused > 0,
            "the fd number was never reused; the test proves nothing"
        );
    });
}

#[test]
fn a_panic_in_block_on_leaves_no_op_queued_on_a_socket_closed_after_it() {
    let _serial = serial();
    let mut rt = tests::rt();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = listener.into_std();
    let mut reused = 0;
    for round in 0..ROUNDS {
        let (old, _old_peer) = rt.block_on(async {
            let listener = TcpListener::from_std(listener.try_clone().unwrap()).unwrap();
            connection(&listener, addr).await
        });
        let number = old.as_raw_fd();
        let panicked = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                let send = Box::pin(old.write(b"SECRET".to_vec()));
                let (out, send) = poll_once(send).await;
                assert!(out.is_none());
                // The send's future goes with the unwinding.
                let _send = send;
                panic!("the future panics with a send queued");
            })
        }));
        assert!(panicked.is_err());
        // Dropped outside the runtime: closed at once, the number is free.
        drop(old);
        let mut new_peer = std::net::TcpStream::connect(addr).unwrap();
        new_peer.set_read_timeout(Some(BOUND)).unwrap();
        let (mut new, _) = listener.accept().unwrap();
        reused += usize::from(new.as_raw_fd() == number);
        rt.block_on(turn_ring());
        new.write_all(b"fresh").unwrap();
        let mut got = [0u8; 5];
        new_peer.read_exact(&mut got).unwrap();
        assert_eq!(
            &got, b"fresh",
            "round {round}: the stale send reached the new socket"
        );
    }
    assert!(
        reused > 0,
        "the fd number was never reused; the test proves nothing"
    );
}
