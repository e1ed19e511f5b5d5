//! The I/O calls' futures are named types: a struct can hold one, poll it by hand and
//! keep it across polls, without boxing. Their loops (`read_exact`, `write_all`,
//! `read_exact_at`, `write_all_at`) move a mebibyte whole and report errors as they
//! always did; dropping one part-way hands nothing back and frees the buffer after
//! the kernel lets go of it.

use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::io::ErrorKind;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use runtime::fs::{File, ReadAt, ReadExactAt, WriteAllAt};
use runtime::net::{Read, ReadExact, UnixStream, Write, WriteAll};
use tests::{assert_same_bytes, create_rw, pattern, poll_once, rt, within, TempDir, TrackedBuf};

const MIB: usize = 1 << 20;

/// A connection's two directions at once, each a named future the struct owns: the
/// shape of a hand-written protocol state machine.
struct Exchange<'a> {
    send: Option<WriteAll<'a, Vec<u8>>>,
    recv: Option<ReadExact<'a, Vec<u8>>>,
    sent: Option<Vec<u8>>,
    received: Option<Vec<u8>>,
}

impl Future for Exchange<'_> {
    type Output = (Vec<u8>, Vec<u8>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        if let Some(send) = &mut this.send {
            if let Poll::Ready((result, buf)) = Pin::new(send).poll(cx) {
                result.expect("write_all sends the mebibyte");
                this.sent = Some(buf);
                this.send = None;
            }
        }
        if let Some(recv) = &mut this.recv {
            if let Poll::Ready((result, buf)) = Pin::new(recv).poll(cx) {
                result.expect("read_exact fills the mebibyte");
                this.received = Some(buf);
                this.recv = None;
            }
        }
        match (this.sent.take(), this.received.take()) {
            (Some(sent), Some(received)) => Poll::Ready((sent, received)),
            (sent, received) => {
                this.sent = sent;
                this.received = received;
                Poll::Pending
            }
        }
    }
}

#[test]
fn a_struct_holding_write_all_and_read_exact_moves_a_mebibyte_each_way() {
    rt().block_on(within("the exchange", async {
        let (a, b) = UnixStream::pair().unwrap();
        // b echoes: far more than a socket buffer, so both of a's futures must make
        // progress together, through many short sends and reads.
        let echo = runtime::spawn(async move {
            let (r, buf) = b.read_exact(Vec::with_capacity(MIB)).await;
            r.unwrap();
            let (r, _) = b.write_all(buf).await;
            r.unwrap();
        });
        let data = pattern(MIB, 7);
        let exchange = Exchange {
            send: Some(a.write_all(data.clone())),
            recv: Some(a.read_exact(Vec::with_capacity(MIB))),
            sent: None,
            received: None,
        };
        let (sent, received) = exchange.await;
        assert_same_bytes("the buffer write_all handed back", &sent, &data);
        assert_same_bytes("the echo", &received, &data);
        echo.await.unwrap();
    }));
}

#[test]
fn reads_kept_in_a_vec_are_polled_by_hand_and_each_gets_its_own_bytes() {
    rt().block_on(within("the reads", async {
        let pairs: Vec<(UnixStream, UnixStream)> =
            (0..4).map(|_| UnixStream::pair().unwrap()).collect();
        let mut reads: Vec<Option<Read<'_, Vec<u8>>>> = pairs
            .iter()
            .map(|(a, _)| Some(a.read(Vec::with_capacity(64))))
            .collect();
        // Each read is in flight (submitted, waiting) before any byte is sent.
        poll_fn(|cx| {
            for read in reads.iter_mut().flatten() {
                assert!(Pin::new(read).poll(cx).is_pending(), "nothing was sent yet");
            }
            Poll::Ready(())
        })
        .await;
        for (i, (_, b)) in pairs.iter().enumerate() {
            let (r, _) = b.write(format!("message {i}").into_bytes()).await;
            r.unwrap();
        }
        let mut got = vec![None; reads.len()];
        poll_fn(|cx| {
            for (i, slot) in reads.iter_mut().enumerate() {
                if let Some(read) = slot {
                    if let Poll::Ready((r, buf)) = Pin::new(read).poll(cx) {
                        assert_eq!(r.unwrap(), buf.len());
                        got[i] = Some(String::from_utf8(buf).unwrap());
                        *slot = None;
                    }
                }
            }
            if reads.iter().all(Option::is_none) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        for (i, got) in got.into_iter().enumerate() {
            assert_eq!(got.as_deref(), Some(format!("message {i}").as_str()));
        }
    }));
}

#[test]
fn a_file_struct_holding_write_all_at_then_read_exact_at_round_trips_a_mebibyte() {
    /// A copy into the file, then a read back, one named future at a time.
    enum Copy<'a> {
        Writing(WriteAllAt<'a, Vec<u8>>),
        Reading(ReadExactAt<'a, Vec<u8>>),
    }
    let dir = TempDir::new("named-futures");
    let path = dir.join("mebibyte");
    rt().block_on(within("the file round trip", async {
        let file = create_rw(&path).await;
        let data = pattern(MIB, 11);
        let mut copy = Copy::Writing(file.write_all_at(data.clone(), 4096));
        let back = poll_fn(|cx| loop {
            match &mut copy {
                Copy::Writing(write) => {
                    let (r, _) = std::task::ready!(Pin::new(write).poll(cx));
                    r.expect("write_all_at writes the mebibyte");
                    copy = Copy::Reading(file.read_exact_at(Vec::with_capacity(MIB), 4096));
                }
                Copy::Reading(read) => {
                    let (r, buf) = std::task::ready!(Pin::new(read).poll(cx));
                    r.expect("read_exact_at reads it back");
                    return Poll::Ready(buf);
                }
            }
        })
        .await;
        assert_same_bytes("the bytes read back", &back, &data);
        assert_eq!(file.metadata().await.unwrap().len(), (4096 + MIB) as u64);
    }));
}

#[test]
fn read_exact_reports_an_early_end_with_the_bytes_that_came() {
    rt().block_on(within("the short read", async {
        let (a, b) = UnixStream::pair().unwrap();
        let (r, _) = b.write_all(b"only ten b".to_vec()).await;
        r.unwrap();
        b.close().await.unwrap();
        let (r, buf) = a.read_exact(Vec::with_capacity(16)).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        assert_eq!(e.to_string(), "the stream ended after 10 of 16 bytes");
        assert_eq!(buf, b"only ten b");
    }));
}

#[test]
fn write_all_to_a_closed_peer_is_an_error_with_the_buffer_back() {
    rt().block_on(within("the refused write", async {
        let (a, b) = UnixStream::pair().unwrap();
        // Closed, and the kernel has let go of it, before the write starts.
        b.close().await.unwrap();
        let data = pattern(4096, 3);
        let (r, buf) = a.write_all(data.clone()).await;
        let e = r.unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset),
            "{e:?}"
        );
        assert_same_bytes("the buffer handed back", &buf, &data);
    }));
}

#[test]
fn read_exact_at_past_the_end_of_a_file_is_unexpected_eof_with_what_was_read() {
    let dir = TempDir::new("named-futures");
    let path = dir.join("short");
    rt().block_on(async {
        let file = create_rw(&path).await;
        let (r, _) = file.write_all_at(b"0123456789".to_vec(), 0).await;
        r.unwrap();
        let (r, buf) = file.read_exact_at(Vec::with_capacity(8), 6).await;
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnexpectedEof);
        assert_eq!(e.to_string(), "end of file after 4 of 8 bytes");
        assert_eq!(buf, b"6789");
    });
}

#[test]
fn empty_buffers_finish_at_once_without_an_op() {
    rt().block_on(async {
        let (a, _b) = UnixStream::pair().unwrap();
        let before = runtime::stats().ops_submitted;
        let (r, buf) = a.read_exact(Vec::new()).await;
        r.unwrap();
        assert!(buf.is_empty());
        let (r, _) = a.write_all(Vec::new()).await;
        r.unwrap();
        assert_eq!(
            runtime::stats().ops_submitted,
            before,
            "no op was submitted"
        );
    });
}

#[test]
fn a_read_exact_dropped_part_way_hands_nothing_back_and_frees_its_buffer_after_the_cqe() {
    rt().block_on(within("the dropped read_exact", async {
        let (a, b) = UnixStream::pair().unwrap();
        let freed = Rc::new(Cell::new(false));
        let buf = TrackedBuf::new(8, {
            let freed = freed.clone();
            move || freed.set(true)
        });
        let read = a.read_exact(buf);
        let (out, mut read) = poll_once(read).await;
        assert!(out.is_none(), "nothing was sent yet");
        let (r, _) = b.write_all(b"half".to_vec()).await;
        r.unwrap();
        // Poll until the first receive took its 4 bytes and the next is in flight.
        poll_fn(|cx| {
            assert!(Pin::new(&mut read).poll(cx).is_pending(), "only half came");
            if format!("{read:?}").contains("done: 4") {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
        drop(read);
        // The cancelled receive's CQE comes in a turn or two; only then is the buffer
        // (with the 4 bytes) freed. Nothing was handed back to anyone.
        while !freed.get() {
            runtime::nop().await.unwrap();
        }
        // The stream is still usable: the next bytes go to the next read.
        let (r, _) = b.write_all(b"more".to_vec()).await;
        r.unwrap();
        let (r, buf) = a.read(Vec::with_capacity(8)).await;
        assert_eq!(r.unwrap(), 4);
        assert_eq!(buf, b"more");
    }));
}

#[test]
fn a_set_len_future_that_is_never_polled_changes_nothing() {
    let dir = TempDir::new("named-futures");
    let path = dir.join("lazy");
    rt().block_on(async {
        let file = create_rw(&path).await;
        let (r, _) = file.write_all_at(pattern(100, 1), 0).await;
        r.unwrap();
        drop(file.set_len(0));
        drop(file.write_at(b"never".to_vec(), 0));
        assert_eq!(file.metadata().await.unwrap().len(), 100);
        let (r, buf) = file.read_exact_at(Vec::with_capacity(100), 0).await;
        r.unwrap();
        assert_same_bytes("the file", &buf, &pattern(100, 1));
        file.set_len(10).await.unwrap();
        assert_eq!(file.metadata().await.unwrap().len(), 10);
    });
}

/// A file future made while one runtime runs and first polled under another names the
/// file as the second ring knows it: the op is made at the first poll, so it never
/// carries the first ring's registered slot to a ring where that slot is another file.
#[test]
fn a_file_future_made_under_one_runtime_reads_its_own_file_under_another() {
    if tests::ring_only("the registered-file table") {
        return;
    }
    let dir = TempDir::new("named-futures");
    let (path_a, path_b) = (dir.join("a"), dir.join("b"));
    std::fs::write(&path_a, b"file a").unwrap();
    std::fs::write(&path_b, b"file b").unwrap();
    let mut first = rt();
    let mut second = rt();
    let mut a = File::from_std(std::fs::File::open(&path_a).unwrap());
    first.block_on(async { a.register() }).unwrap();
    #[expect(
        clippy::async_yields_async,
        reason = "the future is made under the first runtime and awaited under the second"
    )]
    let read: ReadAt<'_, Vec<u8>> = first.block_on(async { a.read_at(Vec::with_capacity(16), 0) });
    let (r, buf) = second.block_on(async {
        let mut b = File::from_std(std::fs::File::open(&path_b).unwrap());
        b.register().unwrap();
        // The same slot number, each in its own ring's table: a slot carried from the
        // first ring would read b.
        assert_eq!(slot_of(&a), slot_of(&b));
        let out = read.await;
        drop(b);
        out
    });
    assert_eq!(r.unwrap(), 6);
    assert_eq!(buf, b"file a");
}

/// The registered slot a file's `Debug` shows.
fn slot_of(file: &File) -> String {
    let shown = format!("{file:?}");
    let at = shown.find("slot: ").expect("File's Debug shows its slot");
    shown[at..].to_string()
}

#[test]
fn write_is_a_plain_future_for_callers_that_await() {
    // What generic code over `impl Future` sees is unchanged.
    async fn send_all<F: Future<Output = runtime::buf::BufResult<usize, Vec<u8>>>>(f: F) -> usize {
        f.await.0.unwrap()
    }
    rt().block_on(async {
        let (a, b) = UnixStream::pair().unwrap();
        let write: Write<'_, Vec<u8>> = a.write(b"abc".to_vec());
        assert_eq!(send_all(write).await, 3);
        let (r, buf) = b.read(Vec::with_capacity(8)).await;
        assert_eq!(r.unwrap(), 3);
        assert_eq!(buf, b"abc");
    });
}
