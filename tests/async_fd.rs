//! `AsyncFd`: readiness of fds the runtime does not drive itself (a pipe, a socket pair
//! made with `socketpair(2)`), on which the test makes its own non-blocking calls.
//!
//! Nothing here sleeps: "still pending" is checked after turns of the ring (a `nop`
//! round trip submits everything queued before it, so the poll is in the kernel), and
//! every wait that should end is bounded by `within`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::Mutex;

use runtime::io::AsyncFd;
use tests::{assert_same_bytes, open_fds, pattern, pipe, poll_once, rt, settle_fds, within, BOUND};

/// fd counts and ring counters are watched: the tests here run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn set_nonblocking(fd: &OwnedFd) {
    // SAFETY: fcntl on an fd we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    assert!(flags >= 0, "F_GETFL: {}", io::Error::last_os_error());
    // SAFETY: as above.
    let res = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    assert_eq!(res, 0, "F_SETFL: {}", io::Error::last_os_error());
}

/// A pipe whose read end is non-blocking (the write end is as the test needs it).
fn nonblocking_pipe() -> (OwnedFd, OwnedFd) {
    let (reader, writer) = pipe();
    set_nonblocking(&reader);
    (reader, writer)
}

/// A connected `AF_UNIX` stream pair, both ends non-blocking.
fn socketpair() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socketpair writes two fds into the array we pass.
    let res = unsafe { libc::socketpair(libc::AF_UNIX, ty, 0, fds.as_mut_ptr()) };
    assert_eq!(res, 0, "socketpair: {}", io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// read(2), with `-1` as the error.
fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length for the call.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// write(2), with `-1` as the error.
fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of its length for the call.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Writes without blocking until the kernel says `EAGAIN`; returns how much went in.
fn fill(fd: RawFd) -> usize {
    let chunk = vec![0xa5; 64 * 1024];
    let mut total = 0;
    loop {
        match write(fd, &chunk) {
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("filling: {e}"),
        }
    }
}

/// Reads without blocking until `EAGAIN` (or the end); returns how much came out.
fn drain(fd: RawFd) -> usize {
    let mut buf = vec![0; 64 * 1024];
    let mut total = 0;
    loop {
        match read(fd, &mut buf) {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return total,
            Err(e) => panic!("draining: {e}"),
        }
    }
}

/// Ops of this core the kernel has or will have, and whose last CQE is not reaped yet.
fn in_flight() -> u64 {
    let stats = runtime::stats();
    stats.ops_submitted - stats.ops_withdrawn - stats.ops_completed
}

/// Turns of the ring: everything queued before is in the kernel afterwards, and every
/// CQE it posted meanwhile reaped.
async fn turns(n: usize) {
    for _ in 0..n {
        runtime::nop().await.expect("a nop completes");
    }
}

/// Turns the ring until this core's in-flight ops are back to `expected`, for at most
/// [`BOUND`]; returns the last count.
async fn settle_ops(expected: u64) -> u64 {
    let deadline = std::time::Instant::now() + BOUND;
    loop {
        let now = in_flight();
        if now == expected || std::time::Instant::now() >= deadline {
            return now;
        }
        turns(1).await;
    }
}

/// A readable wait on `reader` is pending (after the poll reached the kernel) until
/// `writer` sends, then resolves, and the caller's read gets the bytes.
async fn readable_waits_for_the_writer(reader: OwnedFd, writer: OwnedFd) {
    let reader = AsyncFd::new(reader).unwrap();
    let (out, wait) = poll_once(reader.readable()).await;
    assert!(out.is_none(), "nothing was written yet");
    turns(3).await;
    let (out, wait) = poll_once(wait).await;
    assert!(
        out.is_none(),
        "still nothing written, with the poll in the kernel"
    );

    assert_eq!(write(writer.as_raw_fd(), b"ready").unwrap(), 5);
    let mut guard = within("readable after the write", wait).await.unwrap();
    let mut buf = [0; 16];
    let n = guard
        .try_io(|fd| read(fd.as_raw_fd(), &mut buf))
        .expect("readable, so no WouldBlock")
        .unwrap();
    assert_eq!(&buf[..n], b"ready");

    // Drained: the next try says WouldBlock and clears, and the next wait waits again.
    assert!(guard.try_io(|fd| read(fd.as_raw_fd(), &mut buf)).is_err());
    let (out, _wait) = poll_once(reader.readable()).await;
    assert!(out.is_none(), "readiness was cleared by the WouldBlock");
}

#[test]
fn readable_resolves_only_once_the_other_end_of_a_pipe_writes() {
    let _serial = serial();
    rt().block_on(async {
        let (reader, writer) = nonblocking_pipe();
        readable_waits_for_the_writer(reader, writer).await;
    });
}

#[test]
fn readable_resolves_only_once_the_other_end_of_a_socketpair_writes() {
    let _serial = serial();
    rt().block_on(async {
        let (a, b) = socketpair();
        readable_waits_for_the_writer(a, b).await;
    });
}

/// A writable wait on `writer` resolves at once while there is room, stays pending
/// while the buffer is full, and resolves once the reader drains it.
async fn writable_waits_while_full(reader: OwnedFd, writer: OwnedFd) {
    let writer = AsyncFd::new(writer).unwrap();
    let mut guard = within("writable while empty", writer.writable())
        .await
        .unwrap();
    let filled = guard
        .try_io(|fd| Ok(fill(fd.as_raw_fd())))
        .unwrap()
        .unwrap();
    assert!(filled > 0, "an empty buffer took something");
    // Full now: the next write says WouldBlock, which clears readiness.
    assert!(guard.try_io(|fd| write(fd.as_raw_fd(), b"x")).is_err());

    let (out, wait) = poll_once(writer.writable()).await;
    assert!(out.is_none(), "the buffer is full");
    turns(3).await;
    let (out, wait) = poll_once(wait).await;
    assert!(out.is_none(), "still full, with the poll in the kernel");

    assert_eq!(
        drain(reader.as_raw_fd()),
        filled,
        "every byte written is read"
    );
    let mut guard = within("writable after draining", wait).await.unwrap();
    let n = guard
        .try_io(|fd| write(fd.as_raw_fd(), b"x"))
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn writable_resolves_at_once_on_an_empty_pipe_and_waits_while_it_is_full() {
    let _serial = serial();
    rt().block_on(async {
        let (reader, writer) = pipe();
        set_nonblocking(&reader);
        set_nonblocking(&writer);
        writable_waits_while_full(reader, writer).await;
    });
}

#[test]
fn writable_waits_while_a_socketpair_is_full() {
    let _serial = serial();
    rt().block_on(async {
        let (a, b) = socketpair();
        writable_waits_while_full(b, a).await;
    });
}

#[test]
fn try_io_loop_reads_a_mebibyte_written_by_another_thread() {
    let _serial = serial();
    const LEN: usize = 1 << 20;
    let sent = pattern(LEN, 7);
    let (reader, writer) = nonblocking_pipe();
    let to_send = sent.clone();
    // The writer blocks whenever the pipe is full, so the reader waits many times.
    let writer = std::thread::spawn(move || {
        let mut file = std::fs::File::from(writer);
        for chunk in to_send.chunks(3000) {
            io::Write::write_all(&mut file, chunk).unwrap();
        }
        // Dropping the write end ends the stream.
    });
    let (got, waits) = rt().block_on(async {
        let reader = AsyncFd::new(reader).unwrap();
        let mut got = Vec::with_capacity(LEN);
        let mut buf = vec![0; 16 * 1024];
        let mut waits = 0;
        loop {
            let mut guard = within("readable", reader.readable()).await.unwrap();
            waits += 1;
            match guard.try_io(|fd| read(fd.as_raw_fd(), &mut buf)) {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Ok(Err(e)) => panic!("read: {e}"),
                Err(_would_block) => continue,
            }
        }
        (got, waits)
    });
    writer.join().unwrap();
    let checksum = |bytes: &[u8]| {
        bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
    };
    assert_eq!(got.len(), LEN);
    assert_eq!(
        checksum(&got),
        checksum(&sent),
        "FNV-1a of what came and what went"
    );
    assert_same_bytes("the transfer", &got, &sent);
    assert!(waits > 1, "the reader waited for the writer");
}

/// Closing the other end wakes a pending reader (a hang-up is readiness), and its read
/// then says end of stream.
async fn a_hang_up_is_readable(reader: OwnedFd, writer: OwnedFd) {
    let reader = AsyncFd::new(reader).unwrap();
    let (out, wait) = poll_once(reader.readable()).await;
    assert!(out.is_none());
    turns(3).await;
    let (out, wait) = poll_once(wait).await;
    assert!(out.is_none(), "the writer is still open");
    drop(writer);
    let mut guard = within("readable after the hang-up", wait).await.unwrap();
    let n = guard
        .try_io(|fd| read(fd.as_raw_fd(), &mut [0; 8]))
        .expect("a hang-up does not block")
        .unwrap();
    assert_eq!(n, 0, "end of stream");
}

#[test]
fn closing_a_pipes_writer_makes_the_reader_readable_with_end_of_file() {
    let _serial = serial();
    rt().block_on(async {
        let (reader, writer) = nonblocking_pipe();
        a_hang_up_is_readable(reader, writer).await;
    });
}

#[test]
fn closing_a_socketpairs_peer_makes_the_other_end_readable_with_end_of_stream() {
    let _serial = serial();
    rt().block_on(async {
        let (a, b) = socketpair();
        a_hang_up_is_readable(a, b).await;
    });
}

#[test]
fn dropping_pending_waits_a_thousand_times_leaks_nothing_and_a_later_wait_works() {
    let _serial = serial();
    rt().block_on(async {
        let (reader, writer) = nonblocking_pipe();
        let reader = AsyncFd::new(reader).unwrap();
        let fds = open_fds();
        let ops = in_flight();
        let withdrawn = runtime::stats().ops_withdrawn;
        for i in 0..1000 {
            let (out, wait) = poll_once(reader.readable()).await;
            assert!(out.is_none());
            if i % 2 == 1 {
                // In the kernel before it is dropped: cancelled, not withdrawn.
                turns(1).await;
            }
            drop(wait);
        }
        // On the epoll backend every dropped wait is withdrawn: none reached a kernel.
        assert_eq!(
            runtime::stats().ops_withdrawn - withdrawn,
            if tests::on_epoll() { 1000 } else { 500 },
            "the polls dropped before their turn were withdrawn, the others cancelled"
        );
        assert_eq!(settle_ops(ops).await, ops, "every poll's last CQE came");
        assert_eq!(settle_fds(fds).await, fds, "no fd leaked");

        assert_eq!(write(writer.as_raw_fd(), b"!").unwrap(), 1);
        let mut guard = within("a later readable", reader.readable()).await.unwrap();
        let mut buf = [0; 4];
        let n = guard
            .try_io(|fd| read(fd.as_raw_fd(), &mut buf))
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"!", "no dropped poll took the byte");
    });
}

#[test]
fn into_inner_with_a_wait_dropped_in_flight_hands_back_a_usable_fd() {
    let _serial = serial();
    rt().block_on(async {
        let (reader, writer) = nonblocking_pipe();
        let raw = reader.as_raw_fd();
        let ops = in_flight();
        let reader = AsyncFd::new(reader).unwrap();
        let (out, wait) = poll_once(reader.readable()).await;
        assert!(out.is_none());
        turns(1).await;
        drop(wait);
        // On the epoll backend a dropped wait is gone at once: nothing is in a kernel.
        assert_eq!(
            in_flight(),
            ops + u64::from(!tests::on_epoll()),
            "the cancelled poll is still in the kernel"
        );

        let fd: OwnedFd = reader.into_inner();
        assert_eq!(fd.as_raw_fd(), raw);
        assert_eq!(
            in_flight(),
            ops,
            "into_inner waited for the poll's last CQE"
        );

        assert_eq!(write(writer.as_raw_fd(), b"plain").unwrap(), 5);
        let mut buf = [0; 8];
        assert_eq!(read(fd.as_raw_fd(), &mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"plain");
    });
}

#[test]
fn dropping_an_async_fd_with_a_wait_cancelled_in_flight_closes_the_fd_at_once() {
    let _serial = serial();
    rt().block_on(async {
        let (reader, writer) = pipe();
        set_nonblocking(&reader);
        set_nonblocking(&writer);
        let filled = fill(writer.as_raw_fd());
        let writer = AsyncFd::new(writer).unwrap();
        let (out, wait) = poll_once(writer.writable()).await;
        assert!(out.is_none(), "the pipe is full");
        turns(1).await;
        drop(wait);
        // The poll holds the kernel's file of the write end until its last CQE; the
        // drop waits for it, so the write end is closed when the drop returns.
        drop(writer);
        let mut buf = vec![0; filled + 1];
        let mut total = 0;
        loop {
            match read(reader.as_raw_fd(), &mut buf[total..]) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) => panic!("the write end is closed, so no {e} after {total} bytes"),
            }
        }
        assert_eq!(total, filled);
    });
}

#[test]
fn poll_read_ready_serves_a_hand_written_future() {
    let _serial = serial();
    rt().block_on(async {
        let (reader, writer) = nonblocking_pipe();
        let reader = AsyncFd::new(reader).unwrap();
        let ops = in_flight();
        let mut polls = 0;
        let mut waiting = std::future::poll_fn(|cx| {
            polls += 1;
            reader.poll_read_ready(cx).map(|r| r.map(drop))
        });
        let (out, _) = poll_once(&mut waiting).await;
        assert!(out.is_none());
        turns(2).await;
        let (out, _) = poll_once(&mut waiting).await;
        assert!(out.is_none(), "nothing written");
        assert_eq!(
            in_flight(),
            ops + 1,
            "one poll in flight, kept between calls"
        );
        assert_eq!(write(writer.as_raw_fd(), b"?").unwrap(), 1);
        within("poll_read_ready", &mut waiting).await.unwrap();
        assert!(polls >= 3);
        assert_eq!(in_flight(), ops, "the poll ended with its CQE");

        // Readiness is remembered: ready at once, with no op.
        let submitted = runtime::stats().ops_submitted;
        std::future::poll_fn(|cx| reader.poll_read_ready(cx))
            .await
            .unwrap()
            .retain_ready();
        assert_eq!(runtime::stats().ops_submitted, submitted);

        // A poll in flight inside the AsyncFd is cancelled, and waited for, by its drop.
        let mut guard = reader.readable().await.unwrap();
        assert!(guard.try_io(|fd| read(fd.as_raw_fd(), &mut [0; 4])).is_ok());
        assert!(guard
            .try_io(|fd| read(fd.as_raw_fd(), &mut [0; 4]))
            .is_err());
        let pending = std::future::poll_fn(|cx| reader.poll_read_ready(cx).map(|r| r.map(drop)));
        let (out, _) = poll_once(Box::pin(pending)).await;
        assert!(out.is_none());
        turns(1).await;
        assert_eq!(in_flight(), ops + 1);
        drop(reader);
        assert_eq!(in_flight(), ops, "the drop waited for the cancelled poll");
    });
}

#[test]
fn several_tasks_of_the_core_wait_on_one_fd() {
    let _serial = serial();
    rt().block_on(async {
        let (reader, writer) = nonblocking_pipe();
        let reader = Rc::new(AsyncFd::new(reader).unwrap());
        let tasks: Vec<_> = (0..3)
            .map(|_| {
                let reader = reader.clone();
                runtime::spawn(async move { reader.readable().await.map(drop) })
            })
            .collect();
        turns(3).await;
        assert!(
            tasks.iter().all(|t| !t.is_finished()),
            "nothing written yet"
        );
        assert_eq!(write(writer.as_raw_fd(), b"all").unwrap(), 3);
        for task in tasks {
            within("each task's readable", task).await.unwrap().unwrap();
        }
    });
}

#[test]
fn a_negative_fd_is_invalid_input() {
    #[derive(Debug)]
    struct Negative;
    impl AsRawFd for Negative {
        fn as_raw_fd(&self) -> RawFd {
            -1
        }
    }
    let err = AsyncFd::new(Negative).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
}

#[test]
fn a_closed_fd_is_an_error_not_a_hang() {
    let _serial = serial();
    rt().block_on(async {
        // A number no file has (far above this process's fds).
        struct Closed;
        impl AsRawFd for Closed {
            fn as_raw_fd(&self) -> RawFd {
                1 << 20
            }
        }
        let fd = AsyncFd::new(Closed).unwrap();
        let err = within("readable on a closed fd", fd.readable())
            .await
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
    });
}

#[test]
fn a_loop_over_remembered_readiness_lets_the_other_tasks_run() {
    let _serial = serial();
    rt().block_on(async {
        let (reader, writer) = nonblocking_pipe();
        assert_eq!(write(writer.as_raw_fd(), b"never read").unwrap(), 10);
        let reader = AsyncFd::new(reader).unwrap();
        within("the first readable", reader.readable())
            .await
            .unwrap();
        let other_ran = Rc::new(std::cell::Cell::new(false));
        let other = runtime::spawn({
            let other_ran = other_ran.clone();
            async move { other_ran.set(true) }
        });
        // Readiness stays recorded (nothing clears it), so each wait is ready without
        // an op; the core's budget still makes the loop give way now and then.
        let mut waits = 0;
        while !other_ran.get() && waits < 100_000 {
            reader.readable().await.unwrap().retain_ready();
            waits += 1;
        }
        assert!(other_ran.get(), "the other task never ran in {waits} waits");
        other.await.unwrap();
    });
}
