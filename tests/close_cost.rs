//! Closing a socket costs the same however many other operations are in flight on its
//! core: the close names only its own fd, and asks the kernel to cancel only what the
//! runtime itself has in flight on that fd, never a sweep of every request. Shutdown
//! with thousands of operations in flight is one pass, not one per socket.

use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runtime::fs::File;
use runtime::net::TcpListener;
use tests::{open_fds, pipe, poll_once, raise_fd_limit, settle_fds, within, BOUND};

/// fd counts are per process: the tests here run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn a_close_queues_the_same_work_whatever_else_is_in_flight() {
    if tests::ring_only("IORING_OP_CLOSE queued behind the fd's SQEs") {
        return;
    }
    const PENDING: usize = 2000;
    let _serial = serial();
    if let Err(why) = raise_fd_limit(3 * PENDING as u64 + 512) {
        eprintln!("skipped: {why}");
        return;
    }
    tests::rt().block_on(async {
        let base = open_fds();
        // A read in flight on each of many pipes (each in a task that keeps it alive):
        // work the kernel has pending on this core.
        let mut writers = Vec::with_capacity(PENDING);
        let mut readers = Vec::with_capacity(PENDING);
        for _ in 0..PENDING {
            let (rx, tx) = pipe();
            writers.push(tx);
            let rx = File::from_std(rx);
            readers.push(runtime::spawn(async move {
                let _ = rx.read_at(vec![0u8; 8], 0).await;
            }));
        }
        runtime::yield_now().await;
        runtime::yield_now().await;

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        for dropped_read in [false, true] {
            let mut peers = Vec::new();
            let mut streams = Vec::new();
            for _ in 0..100 {
                let peer = std::net::TcpStream::connect(addr).unwrap();
                peer.set_read_timeout(Some(BOUND)).unwrap();
                peers.push(peer);
                streams.push(within("accept", listener.accept()).await.unwrap().0);
            }
            if dropped_read {
                // Each stream also has a read of its own in flight, dropped.
                for stream in &streams {
                    let (out, read) = poll_once(Box::pin(stream.read(vec![0u8; 8]))).await;
                    assert!(out.is_none());
                    runtime::yield_now().await;
                    drop(read);
                }
                runtime::yield_now().await;
            }
            let before = runtime::stats().ops_submitted;
            drop(streams);
            runtime::yield_now().await;
            let per_close = (runtime::stats().ops_submitted - before) as f64 / 100.0;
            assert!(
                per_close <= 1.0,
                "closing a socket queued {per_close} ops (dropped read in flight: \
                 {dropped_read}); a close needs one"
            );
            for mut peer in peers {
                let mut byte = [0u8; 1];
                assert_eq!(peer.read(&mut byte).unwrap(), 0, "the peer sees the close");
            }
        }
        for reader in &readers {
            reader.abort();
        }
        for reader in readers {
            let _ = reader.await;
        }
        drop(writers);
        drop(listener);
        assert_eq!(settle_fds(base).await, base);
    });
}

#[test]
fn dropping_a_runtime_with_thousands_of_sockets_in_flight_is_one_pass() {
    const SOCKETS: usize = 8000;
    const READS: usize = 4;
    let _serial = serial();
    if let Err(why) = raise_fd_limit(2 * SOCKETS as u64 + 512) {
        eprintln!("skipped: {why}");
        return;
    }
    let base = open_fds();
    let mut rt = tests::rt();
    let peers = rt.block_on(within("connecting", async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut peers = Vec::with_capacity(SOCKETS);
        for _ in 0..SOCKETS {
            peers.push(std::net::TcpStream::connect(addr).unwrap());
            let (stream, _) = listener.accept().await.unwrap();
            // Tasks per connection, each with a read in flight that never completes.
            let stream = std::rc::Rc::new(stream);
            for _ in 0..READS {
                let stream = stream.clone();
                runtime::spawn(async move {
                    let _ = stream.read(vec![0u8; 16]).await;
                });
            }
        }
        runtime::yield_now().await;
        peers
    }));
    let started = Instant::now();
    drop(rt);
    let took = started.elapsed();
    eprintln!("dropping the runtime with {READS} reads on each of {SOCKETS} sockets took {took:?}");
    // One pass: each read is cancelled once and each socket closed once. A sweep of
    // every request per close is quadratic: 7-8 s here in a debug build, against well
    // under a second for one pass.
    assert!(
        took < Duration::from_secs(3),
        "dropping the runtime with {READS} reads on each of {SOCKETS} sockets took {took:?}"
    );
    drop(peers);
    assert_eq!(open_fds(), base, "every socket and ring is closed");
}
