//! An operation dropped before its SQE reached the kernel never runs: a read dropped
//! after its first poll takes no data, a write sends nothing, an accept takes no
//! connection, a multishot receive consumes nothing. An op whose whole point is its
//! effect (a close) still happens.
//!
//! Without SQPOLL the kernel reads the submission queue only inside `io_uring_enter`,
//! which the core calls when it turns the ring; an op polled once and dropped before
//! that turn is taken back out of the queue.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Mutex;

use runtime::net::{TcpListener, TcpStream};
use tests::{next, open_fds, poll_once, rt, settle_fds, within, BOUND};

/// fd counts are per process: the tests here run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A connected pair: the runtime's end and a blocking std peer.
async fn pair() -> (TcpStream, std::net::TcpStream, TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::net::TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(BOUND)).unwrap();
    let (stream, _) = within("accept", listener.accept()).await.unwrap();
    (stream, peer, listener, addr)
}

#[test]
fn a_read_dropped_before_submission_takes_no_data() {
    let _serial = serial();
    rt().block_on(async {
        let (stream, mut peer, _listener, _) = pair().await;
        let withdrawn_before = runtime::stats().ops_withdrawn;
        for i in 0..100u32 {
            let read = Box::pin(stream.read(Vec::with_capacity(64)));
            let (out, read) = poll_once(read).await;
            assert!(out.is_none(), "nothing was sent yet");
            drop(read);
            let message = format!("message {i}");
            peer.write_all(message.as_bytes()).unwrap();
            let (n, buf) = within(
                "the message after a dropped read",
                stream.read_exact(vec![0u8; message.len()]),
            )
            .await;
            n.unwrap_or_else(|e| panic!("round {i}: {e}"));
            assert_eq!(buf, message.as_bytes(), "round {i}");
        }
        assert_eq!(
            runtime::stats().ops_withdrawn - withdrawn_before,
            100,
            "each dropped read was taken back before it reached the kernel"
        );
    });
}

#[test]
fn a_write_dropped_before_submission_sends_nothing() {
    if tests::ring_only("withdrawal of a queued SQE") {
        return;
    }
    let _serial = serial();
    rt().block_on(async {
        let (stream, mut peer, _listener, _) = pair().await;
        for i in 0..50u32 {
            let stale = Box::pin(stream.write(format!("stale {i};").into_bytes()));
            let (out, stale) = poll_once(stale).await;
            assert!(
                out.is_none(),
                "the send waits for the next turn of the ring"
            );
            drop(stale);
            let fresh = format!("fresh {i};");
            let (n, _) = stream.write_all(fresh.clone().into_bytes()).await;
            n.unwrap();
            let mut got = vec![0u8; fresh.len()];
            peer.read_exact(&mut got).unwrap();
            assert_eq!(String::from_utf8_lossy(&got), fresh, "round {i}");
        }
        // Nothing else is on the way: a last marker is the next thing the peer reads.
        let (n, _) = stream.write_all(b"end".to_vec()).await;
        n.unwrap();
        let mut got = [0u8; 3];
        peer.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"end");
    });
}

#[test]
fn an_accept_dropped_before_submission_takes_no_connection() {
    let _serial = serial();
    rt().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for i in 0..20u32 {
            let accept = Box::pin(listener.accept());
            let (out, accept) = poll_once(accept).await;
            assert!(out.is_none());
            drop(accept);
            let mut client = std::net::TcpStream::connect(addr).unwrap();
            client.set_read_timeout(Some(BOUND)).unwrap();
            let (server, peer) = within("the accept after a dropped one", listener.accept())
                .await
                .unwrap_or_else(|e| panic!("round {i}: {e}"));
            assert_eq!(
                peer,
                client.local_addr().unwrap(),
                "round {i}: the same client"
            );
            let (n, _) = server.write_all(b"hi".to_vec()).await;
            n.unwrap();
            let mut got = [0u8; 2];
            client.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"hi", "round {i}");
        }
    });
}

#[test]
fn a_recv_stream_dropped_before_submission_consumes_nothing() {
    if tests::ring_only("withdrawal of a queued SQE") {
        return;
    }
    let _serial = serial();
    if !runtime::Probe::get().unwrap().multishot_recv() {
        eprintln!("skipped: this kernel has no multishot receive (Linux 6.0)");
        return;
    }
    rt().block_on(async {
        let (stream, mut peer, _listener, _) = pair().await;
        // Data is waiting before the stream is armed: a multishot receive that reached
        // the kernel would take it at once.
        peer.write_all(b"waiting").unwrap();
        let mut chunks = stream.recv_stream();
        let (out, _) = poll_once(next(&mut chunks)).await;
        assert!(
            out.is_none(),
            "the receive waits for the next turn of the ring"
        );
        drop(chunks);
        let (n, buf) = within("the waiting bytes", stream.read_exact(vec![0u8; 7])).await;
        n.unwrap();
        assert_eq!(buf, b"waiting");
    });
}

#[test]
fn a_close_dropped_before_submission_still_closes() {
    if tests::ring_only("a queued close runs though its future is dropped") {
        return;
    }
    let _serial = serial();
    rt().block_on(async {
        let base = open_fds();
        for _ in 0..20 {
            let (stream, mut peer, listener, _) = pair().await;
            drop(listener);
            let close = Box::pin(stream.close());
            let (out, close) = poll_once(close).await;
            assert!(out.is_none());
            drop(close);
            // The close is queued still: the next turn of the ring submits it.
            runtime::yield_now().await;
            let mut byte = [0u8; 1];
            assert_eq!(peer.read(&mut byte).unwrap(), 0, "the peer sees the close");
        }
        assert_eq!(settle_fds(base).await, base, "no fd is left open");
    });
}
