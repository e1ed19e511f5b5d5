//! Dropping network operations mid-flight: a dropped accept, connect, read, incoming
//! stream or receive stream leaks no fd and no provided buffer, a connection that
//! lands on a dropped accept is closed rather than lost open, and dropping a runtime
//! with accepts pending on every core returns promptly and closes everything.

use std::io::Read as _;
use std::net::{Shutdown, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use runtime::net::{TcpListener, TcpSocket, TcpStream};
use runtime::Builder;
use tests::{assert_same_bytes, next, open_fds, pattern, poll_once, rt, settle_fds, within, BOUND};

/// fd counts are per process: the tests here run one at a time.
static FDS: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    FDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Asserts the fd count comes back to `expected` once the ring has done its closes.
async fn assert_fds(expected: usize, when: &str) {
    let open = settle_fds(expected).await;
    assert_eq!(open, expected, "open fds {when}");
}

/// Whether the peer of `client` closed the connection: its next read is end of stream.
/// (A bounded blocking read: the close has happened by the time this is asked.)
fn reads_eof(client: &mut std::net::TcpStream) -> bool {
    client.set_read_timeout(Some(BOUND)).unwrap();
    let mut byte = [0u8; 1];
    matches!(client.read(&mut byte), Ok(0))
}

fn bound_listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

#[test]
fn a_dropped_accept_leaks_no_fd_and_takes_no_later_connection() {
    let _serial = serial();
    rt().block_on(within("the test", async {
        let base = open_fds();
        // Dropped right after its first poll, and dropped once in the kernel.
        for submitted in [false, true] {
            let (listener, addr) = bound_listener();
            let accept = Box::pin(listener.accept());
            let (out, accept) = poll_once(accept).await;
            assert!(out.is_none(), "nobody has connected yet");
            if submitted {
                runtime::nop().await.unwrap();
            }
            drop(accept);
            assert_fds(base + 1, "after the accept was dropped").await;

            // A connection made after the cancel is not taken by it: the next accept
            // gets it.
            let client = std::net::TcpStream::connect(addr).unwrap();
            assert_fds(base + 2, "with a connection in the backlog").await;
            let (stream, peer) = within("the next accept", listener.accept()).await.unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            drop((stream, client, listener));
            assert_fds(base, "once everything is dropped").await;
        }
    }));
}

#[test]
fn a_connection_that_lands_on_a_dropped_accept_is_closed_not_leaked() {
    if tests::ring_only("an accept the kernel ran for a dropped future") {
        return;
    }
    let _serial = serial();
    rt().block_on(within("the test", async {
        let base = open_fds();

        // The accept reaches the kernel and the connection lands on it, but the accept
        // is dropped before anyone looks: the accepted socket comes back to no one.
        // (Dropped before it reached the kernel, it would not have run at all:
        // tests/cancel_unsubmitted.rs.)
        let (listener, addr) = bound_listener();
        let accept = Box::pin(listener.accept());
        let (out, accept) = poll_once(accept).await;
        assert!(out.is_none());
        runtime::nop().await.unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        // The completion is reaped by a later turn, without the accept being polled.
        runtime::nop().await.unwrap();
        drop(accept);
        assert_fds(base + 2, "after the late accept").await;
        assert!(reads_eof(&mut client), "the accepted socket was closed");
        drop((client, listener));

        // The connection arrives while the accept waits in the kernel, and the accept
        // is dropped before its completion is looked at: whichever of the accept and
        // its cancel wins, no fd is left behind.
        let (listener, addr) = bound_listener();
        let accept = Box::pin(listener.accept());
        let (out, accept) = poll_once(accept).await;
        assert!(out.is_none());
        runtime::nop().await.unwrap();
        let client = std::net::TcpStream::connect(addr).unwrap();
        drop(accept);
        assert_fds(base + 2, "after the raced accept").await;
        drop((client, listener));
        assert_fds(base, "once everything is dropped").await;
    }));
}

#[test]
fn a_dropped_read_leaks_nothing_and_loses_no_data() {
    let _serial = serial();
    rt().block_on(within("the test", async {
        let base = open_fds();
        let (listener, addr) = bound_listener();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop(listener);
        assert_fds(base + 2, "with a connection open").await;

        let read = Box::pin(server.read(Vec::with_capacity(64)));
        let (out, read) = poll_once(read).await;
        assert!(out.is_none(), "nothing was sent yet");
        runtime::nop().await.unwrap();
        drop(read);
        assert_fds(base + 2, "after the read was dropped").await;

        // The cancelled read took nothing.
        let (r, _) = client.write_all(b"after".as_slice()).await;
        r.unwrap();
        let (r, buf) = server.read_exact(Vec::with_capacity(5)).await;
        r.unwrap();
        assert_eq!(buf, b"after");

        // A task blocked in a read, aborted: its stream is closed.
        let task = runtime::spawn(async move {
            let _ = server.read(Vec::with_capacity(64)).await;
        });
        runtime::nop().await.unwrap();
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_fds(base + 1, "after the reading task was aborted").await;
        let (n, _) = within("end of stream", client.read(Vec::with_capacity(8))).await;
        assert_eq!(n.unwrap(), 0, "the aborted task's stream was closed");
        drop(client);
        assert_fds(base, "once everything is dropped").await;
    }));
}

#[test]
fn a_connect_dropped_in_flight_leaks_no_fd() {
    let _serial = serial();
    rt().block_on(within("the test", async {
        // A listener whose accept queue holds one connection and never accepts: once
        // it is full, further SYNs go unanswered and a connect stays in flight.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let _filler = std::net::TcpStream::connect(addr).unwrap();
        let base = open_fds();
        let (mut in_flight, mut completed) = (0, 0);
        // Dropped after 0 to 5 polls: before anything was submitted, with the socket
        // being made, and with the connect in the kernel.
        for polls in 0..6 {
            let mut connect = Box::pin(TcpStream::connect(addr));
            let mut done = None;
            for _ in 0..polls {
                let (out, again) = poll_once(connect).await;
                connect = again;
                if out.is_some() {
                    done = out;
                    break;
                }
                runtime::nop().await.unwrap();
            }
            match done {
                Some(result) => {
                    completed += 1;
                    drop(result);
                }
                None if polls > 0 => in_flight += 1,
                None => {}
            }
            drop(connect);
            assert_fds(
                base,
                &format!("after a connect dropped after {polls} polls"),
            )
            .await;
        }
        eprintln!("connects dropped in flight: {in_flight}; completed first: {completed}");
    }));
}

#[test]
fn a_dropped_incoming_stream_leaks_nothing_while_connections_keep_coming() {
    const CONNS: usize = 64;
    const TAKEN: usize = 8;
    let _serial = serial();
    rt().block_on(within("the test", async {
        let (listener, addr) = bound_listener();
        let base = open_fds();
        let connector = std::thread::spawn(move || {
            (0..CONNS)
                .map(|_| std::net::TcpStream::connect(addr).unwrap())
                .collect::<Vec<_>>()
        });
        let mut incoming = listener.incoming();
        let mut kept = Vec::new();
        for _ in 0..TAKEN {
            let stream = next(&mut incoming).await.unwrap().unwrap();
            kept.push(stream.peer_addr().unwrap());
        }
        // Let more connections land on the stream without taking them, then drop it.
        runtime::nop().await.unwrap();
        drop(incoming);
        // The connector needs nothing from this thread: the kernel completes connects.
        let mut clients = connector.join().unwrap();
        // `kept` holds addresses only: the kept streams were dropped as they came.
        assert_fds(base + CONNS, "after the stream was dropped").await;

        // The listener still works: connections the stream never took come next, then
        // a new one.
        let marker = std::net::TcpStream::connect(addr).unwrap();
        let marker_addr = marker.local_addr().unwrap();
        let mut incoming = listener.incoming();
        let mut waiting = Vec::new();
        loop {
            let stream = next(&mut incoming).await.unwrap().unwrap();
            let peer = stream.peer_addr().unwrap();
            if peer == marker_addr {
                break;
            }
            waiting.push(peer);
        }
        drop(incoming);
        // Every other connection was accepted and closed: its client reads end of
        // stream.
        let mut closed = 0;
        for client in &mut clients {
            let local = client.local_addr().unwrap();
            if kept.contains(&local) || waiting.contains(&local) {
                continue;
            }
            assert!(reads_eof(client), "{local} was accepted and closed");
            closed += 1;
        }
        eprintln!(
            "{} taken, {closed} closed by the dropped stream, {} left waiting",
            kept.len(),
            waiting.len()
        );
        drop((clients, marker));
        assert_fds(base, "once everything is dropped").await;
    }));
}

#[test]
fn a_dropped_recv_stream_gives_every_provided_buffer_back() {
    const COUNT: usize = 4;
    const SIZE: usize = 256;
    let _serial = serial();
    if !runtime::Probe::get().unwrap().multishot_recv() {
        eprintln!("skipped: this kernel has no multishot receive (Linux 6.0)");
        return;
    }
    let mut rt = Builder::new()
        .cores(1)
        .pin(false)
        .recv_buffers(COUNT as u16, SIZE as u32)
        .build()
        .unwrap();
    rt.block_on(within("the test", async {
        let base = open_fds();
        let (listener, addr) = bound_listener();
        // More than the ring holds, queued before the stream starts.
        let data = pattern(4 * COUNT * SIZE, 41);
        for held_when_dropped in [0, 2] {
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            let (r, _) = client.write_all(data.clone()).await;
            r.unwrap();
            let mut chunks = server.recv_stream();
            let mut held = Vec::new();
            for _ in 0..held_when_dropped {
                held.push(next(&mut chunks).await.unwrap().unwrap());
            }
            let (out, _) = poll_once(next(&mut chunks)).await;
            drop(out);
            // Let the kernel fill what it can, unseen.
            runtime::nop().await.unwrap();
            drop(chunks);
            drop(held);
        }
        // Dropped while armed, with data arriving after.
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut chunks = server.recv_stream();
        let (out, _) = poll_once(next(&mut chunks)).await;
        assert!(out.is_none(), "nothing was sent yet");
        runtime::nop().await.unwrap();
        drop(chunks);
        let (r, _) = client.write_all(data.clone()).await;
        r.unwrap();
        runtime::nop().await.unwrap();
        drop((client, server));

        // A new connection gets every buffer: it can hold all of them at once (with one
        // missing, this would wait forever).
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let writer = runtime::spawn({
            let data = data.clone();
            async move {
                let (r, _) = client.write_all(data).await;
                r.unwrap();
                client.shutdown(Shutdown::Write).await.unwrap();
                client
            }
        });
        let mut chunks = server.recv_stream();
        let mut received = Vec::new();
        let mut held = Vec::new();
        while held.len() < COUNT {
            let buf = within("a buffer", next(&mut chunks))
                .await
                .expect("data is coming")
                .unwrap();
            received.extend_from_slice(&buf);
            held.push(buf);
        }
        drop(held);
        while let Some(buf) = next(&mut chunks).await {
            received.extend_from_slice(&buf.unwrap());
        }
        assert_same_bytes("what the new connection received", &received, &data);
        drop(chunks);
        drop((writer.await.unwrap(), server, listener));
        assert_fds(base, "once everything is dropped").await;
    }));
}

#[test]
fn dropping_a_runtime_with_an_accept_pending_on_every_core_is_prompt_and_closes_all() {
    const CORES: usize = 4;
    let _serial = serial();
    let base = open_fds();
    let mut rt = Builder::new().cores(CORES).pin(false).build().unwrap();
    let addr = rt.block_on(within("every accept to be pending", async {
        // One listener per core and a spare for the multishot accept, on one port.
        let shared = TcpListener::bind_per_core("127.0.0.1:0", CORES + 1).unwrap();
        let addr = shared.local_addr();
        let first = shared.take(CORES).unwrap();
        let mut pending = Vec::new();
        for core in 0..CORES {
            let (tx, rx) = runtime::channel::oneshot();
            let shared = shared.clone();
            runtime::spawn_on(core, move || async move {
                let listener = shared.take(core).expect("each core takes its listener");
                let (out, accept) = poll_once(Box::pin(listener.accept())).await;
                assert!(out.is_none(), "nobody connects");
                runtime::nop().await.unwrap();
                tx.send(()).unwrap();
                let _ = accept.await;
            });
            pending.push(rx);
        }
        // And a multishot accept on the first listener.
        let (tx, rx) = runtime::channel::oneshot();
        runtime::spawn(async move {
            let mut incoming = first.incoming();
            let (out, _) = poll_once(next(&mut incoming)).await;
            assert!(out.is_none(), "nobody connects");
            runtime::nop().await.unwrap();
            tx.send(()).unwrap();
            let _ = next(&mut incoming).await;
        });
        pending.push(rx);
        for rx in pending {
            rx.await.unwrap();
        }
        addr
    }));
    let start = Instant::now();
    drop(rt);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!(
        open_fds(),
        base,
        "every listener, ring and eventfd is closed"
    );
    // Nothing holds the port any more: a listener without port sharing gets it.
    std::net::TcpListener::bind(addr).expect("the port is free again");
}

/// A byte buffer that notes when it is freed.
struct Flagged {
    data: Vec<u8>,
    freed: std::rc::Rc<std::cell::Cell<bool>>,
}

impl Drop for Flagged {
    fn drop(&mut self) {
        self.freed.set(true);
    }
}

// SAFETY: delegates to the inner Vec, whose heap block does not move with the struct.
unsafe impl runtime::buf::IoBuf for Flagged {
    fn stable_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.len()
    }
    fn bytes_total(&self) -> usize {
        self.data.capacity()
    }
}

#[test]
fn a_dropped_write_frees_its_buffer_only_after_its_completion_and_leaks_no_fd() {
    if tests::ring_only("the ring holds a dropped write's buffer until its CQE") {
        return;
    }
    let _serial = serial();
    rt().block_on(within("the test", async {
        let base = open_fds();
        let (listener, addr) = bound_listener();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        drop(listener);
        let server = std::rc::Rc::new(server);
        // Fill the connection: the client reads nothing, so writes end up waiting in
        // the kernel.
        let filler = runtime::spawn({
            let server = server.clone();
            let big = pattern(1 << 20, 42).repeat(64);
            async move { server.write_all(big).await.0 }
        });
        let client_fd = std::os::fd::AsRawFd::as_raw_fd(&client);
        while tests::bytes_readable(client_fd) == 0 {
            runtime::nop().await.unwrap();
        }
        // A write that the kernel holds (retried while the filler still finds room).
        let freed = loop {
            let freed = std::rc::Rc::new(std::cell::Cell::new(false));
            let buf = Flagged {
                data: pattern(4096, 43),
                freed: freed.clone(),
            };
            let mut write = Box::pin(server.write(buf));
            let mut done = false;
            for _ in 0..4 {
                let (out, again) = poll_once(write).await;
                write = again;
                if out.is_some() {
                    done = true;
                    break;
                }
                runtime::nop().await.unwrap();
            }
            if done {
                continue;
            }
            let (out, write) = poll_once(write).await;
            if out.is_some() {
                continue;
            }
            drop(write);
            assert!(
                !freed.get(),
                "the buffer outlives the dropped write while the kernel may read it"
            );
            break freed;
        };
        assert_fds(base + 2, "after the write was dropped").await;
        assert!(
            freed.get(),
            "the buffer was freed once the kernel let go of it"
        );
        filler.abort();
        assert!(filler.await.unwrap_err().is_cancelled());
        drop((server, client));
        assert_fds(base, "once everything is dropped").await;
    }));
}
