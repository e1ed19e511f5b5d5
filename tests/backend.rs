//! Choosing a backend, and what the readiness backend must get right that the ring
//! gets for free: fd numbers reused behind its back, fds handed back blocking, and a
//! task whose I/O is always ready not starving the others. Every test runs on the
//! backend the suite runs on, and on the one it names.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Mutex;
use std::time::Duration;

use runtime::net::{TcpListener, TcpStream};
use runtime::{Backend, Builder};
use tests::{open_fds, settle_fds, within, TempDir};

/// fd counts are per process: the tests that count them must not run beside any test
/// that opens fds, so every test here takes this.
static FDS: Mutex<()> = Mutex::new(());

fn runtime_on(backend: Backend) -> runtime::Runtime {
    Builder::new()
        .cores(1)
        .pin(false)
        .backend(backend)
        .build()
        .expect("the runtime starts")
}

/// The backends to check: epoll always, io_uring where the probe says it is there.
fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::Epoll];
    match runtime::Probe::get() {
        Ok(_) => all.push(Backend::IoUring),
        Err(why) => eprintln!("the probe says io_uring is unavailable ({why}): epoll only"),
    }
    all
}

#[test]
fn the_backend_asked_for_is_the_one_that_runs_and_says_so() {
    let _serial = FDS.lock().unwrap();
    for backend in backends() {
        let mut rt = runtime_on(backend);
        assert_eq!(rt.backend(), backend);
        assert!(
            rt.fallback_reason().is_none(),
            "asked for, not fallen back to"
        );
        let on_core = rt.block_on(async { runtime::backend() });
        assert_eq!(on_core, Some(backend));
    }
    assert_eq!(runtime::backend(), None, "no core runs on this thread now");
    // Auto is whatever the environment says, else io_uring where there is one.
    let rt = runtime_on(Backend::Auto);
    let expected = if tests::on_epoll() || runtime::Probe::get().is_err() {
        Backend::Epoll
    } else {
        Backend::IoUring
    };
    assert_eq!(rt.backend(), expected);
}

#[test]
fn backend_names_parse_and_print() {
    let _serial = FDS.lock().unwrap();
    for (name, backend) in [
        ("io_uring", Backend::IoUring),
        ("epoll", Backend::Epoll),
        ("auto", Backend::Auto),
        ("EPOLL", Backend::Epoll),
        ("io-uring", Backend::IoUring),
    ] {
        assert_eq!(name.parse::<Backend>().unwrap(), backend);
    }
    assert_eq!(Backend::IoUring.to_string(), "io_uring");
    assert_eq!(Backend::Epoll.to_string(), "epoll");
    let err = "poll".parse::<Backend>().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("epoll"), "{err}");
}

/// A connect that fails, or is dropped while it waits, closes its own socket inside
/// the op, where the epoll backend does not see it; the next socket gets the same
/// number, and must be registered and made non-blocking anew, not taken for the old
/// one (its waits would never end, its calls would block the core).
#[test]
fn a_number_freed_by_a_failed_connect_serves_the_next_socket() {
    let _serial = FDS.lock().unwrap();
    // The readiness backend's bookkeeping per fd number is what this checks; the ring
    // must of course serve the same sequence.
    for backend in backends() {
        runtime_on(backend).block_on(within("the connects", async {
            let base = open_fds();
            // A port nobody listens on: bind one, note it, close it.
            let refused = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            // TEST-NET-2 (RFC 5737): nothing answers there, so a connect waits (where
            // there is a route; without one it fails at once, and the round proves less).
            let silent: std::net::SocketAddr = "198.51.100.1:9".parse().unwrap();
            for round in 0..50u8 {
                let err = TcpStream::connect(refused).await.unwrap_err();
                assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
                // A connect dropped while it waits: its socket was in the epoll set
                // when the op closed it.
                let waiting = TcpStream::connect(silent);
                let _ = runtime::time::timeout(Duration::from_millis(2), waiting).await;
                let client = TcpStream::connect(addr).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                let (n, _) = client.write_all(vec![round; 3]).await;
                n.unwrap();
                let (n, buf) = server.read_exact(vec![0; 3]).await;
                n.unwrap();
                assert_eq!(buf, [round; 3], "{backend}: round {round}");
                // The client (the number the dropped connect had) waits for data
                // that comes only after it waits.
                let read = client.read(Vec::with_capacity(8));
                let (n, _) = server.write_all(b"late".to_vec()).await;
                n.unwrap();
                let (n, buf) = read.await;
                assert_eq!(&buf[..n.unwrap()], b"late");
            }
            drop(listener);
            assert_eq!(settle_fds(base).await, base, "{backend}: an fd leaked");
        }));
    }
}

fn is_nonblocking(fd: &impl AsRawFd) -> bool {
    // fcntl F_GETFL takes plain integers.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0);
    flags & libc::O_NONBLOCK != 0
}

/// A socket that waited for readiness and is then handed off is blocking again, as
/// std expects, and no longer watched by the core.
#[test]
fn a_socket_handed_off_after_waiting_is_blocking_and_works_with_std() {
    let _serial = FDS.lock().unwrap();
    for backend in backends() {
        let (std_stream, mut std_peer) = runtime_on(backend).block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            // A read that has to wait, then gets its data.
            let read = server.read(Vec::with_capacity(8));
            let (n, _) = client.write_all(b"first".to_vec()).await;
            n.unwrap();
            let (n, _) = read.await;
            assert_eq!(n.unwrap(), 5);
            (server.into_std(), client.into_std())
        });
        assert!(
            !is_nonblocking(&std_stream),
            "{backend}: handed back blocking"
        );
        use std::io::{Read, Write};
        std_peer.write_all(b"std!").unwrap();
        let mut buf = [0; 4];
        let mut s = std_stream;
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"std!");
    }
}

/// A task whose every read is ready at once (a file in the page cache) returns to the
/// run loop now and then, so the other tasks on the core run meanwhile.
#[test]
fn a_task_whose_io_is_always_ready_lets_the_others_run() {
    let _serial = FDS.lock().unwrap();
    let dir = TempDir::new("backend-ready-loop");
    let path = dir.join("data");
    std::fs::write(&path, vec![7u8; 4096]).unwrap();
    for backend in backends() {
        let path = path.clone();
        runtime_on(backend).block_on(within("the loop", async move {
            let other_ran = Rc::new(Cell::new(0u32));
            let seen = other_ran.clone();
            let _other = runtime::spawn(async move {
                loop {
                    seen.set(seen.get() + 1);
                    runtime::yield_now().await;
                }
            });
            let file = runtime::fs::File::open(&path).await.unwrap();
            let mut buf = vec![0u8; 512];
            let start = other_ran.get();
            for _ in 0..2000 {
                let (n, back) = file.read_at(buf, 0).await;
                assert_eq!(n.unwrap(), 512);
                buf = back;
            }
            assert!(
                other_ran.get() > start,
                "{backend}: the other task never ran during 2000 ready reads"
            );
        }));
    }
}

/// Data and the end of the stream that arrive together, after a receive got less than
/// it asked for: the next receive sees the end at once (on epoll the end is reported
/// only once, edge-triggered, so a receive that skipped its call as "nothing more to
/// read" would wait for ever).
#[test]
fn the_end_of_a_stream_that_came_with_its_last_bytes_is_seen_after_a_short_read() {
    let _serial = FDS.lock().unwrap();
    for backend in backends() {
        runtime_on(backend).block_on(within("the end of the stream", async {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            for round in 0..20u8 {
                // A short receive that had to wait first.
                let read = client.read(Vec::with_capacity(64));
                let (n, _) = server.write_all(vec![round; 5]).await;
                n.unwrap();
                let (n, buf) = read.await;
                assert_eq!(&buf[..n.unwrap()], [round; 5], "{backend}");
            }
            // The last bytes and the end, sent before anyone looks.
            let (n, _) = server.write_all(b"last".to_vec()).await;
            n.unwrap();
            server.shutdown(std::net::Shutdown::Write).await.unwrap();
            let mut got = Vec::new();
            loop {
                let (n, buf) = client.read(Vec::with_capacity(64)).await;
                match n.unwrap() {
                    0 => break,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
            assert_eq!(got, b"last", "{backend}");
        }));
    }
}

/// A peer that does not read: a write waits (its socket's buffers are full), and is
/// dropped while it waits; a second write waits too and finishes once the peer reads.
/// The peer gets what the first write got out (a whole number of its bytes, in order),
/// then all of the second's, and nothing leaks.
#[test]
fn writes_to_a_peer_that_does_not_read_wait_and_a_dropped_one_loses_only_itself() {
    let _serial = FDS.lock().unwrap();
    for backend in backends() {
        runtime_on(backend).block_on(within("the writes", async {
            let base = open_fds();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = TcpStream::connect(addr).await.unwrap();
            let (server, _) = listener.accept().await.unwrap();
            // Far more than the socket buffers of both ends hold.
            const BIG: usize = 32 << 20;
            let first = client.write_all(vec![1u8; BIG]);
            let (out, first) = tests::poll_once(Box::pin(first)).await;
            assert!(
                out.is_none(),
                "{backend}: 32 MiB went out to a peer that reads nothing"
            );
            drop(first);
            let second = runtime::spawn(async move {
                let (n, _) = client.write_all(vec![2u8; 1000]).await;
                n.unwrap();
                client
            });
            let mut got = Vec::new();
            while got.last() != Some(&2) || got.iter().filter(|&&b| b == 2).count() < 1000 {
                let (n, buf) = server.read(Vec::with_capacity(1 << 16)).await;
                let n = n.unwrap();
                assert!(n > 0, "{backend}: the stream ended early");
                got.extend_from_slice(&buf[..n]);
            }
            let ones = got.iter().take_while(|&&b| b == 1).count();
            assert!(ones < BIG, "{backend}: the dropped write finished");
            assert_eq!(
                got.len(),
                ones + 1000,
                "{backend}: only ones, then the second write"
            );
            assert!(got[ones..].iter().all(|&b| b == 2), "{backend}");
            drop(second.await.unwrap());
            drop((server, listener));
            assert_eq!(settle_fds(base).await, base, "{backend}: an fd leaked");
        }));
    }
}
