//! `io::Compat` read futures dropped at random over a long TCP stream: polled once and
//! dropped (with the task's waker or a no-op one), raced against tiny timers, or
//! awaited, through the futures-io and tokio traits in turn, while the writer on the
//! other core does the same to its writes. `Compat` keeps a dropped read's operation
//! in flight, so not a byte may be lost: the reader's count and checksum must be the
//! writer's.

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use runtime::io::Compat;
use runtime::net::TcpStream;
use runtime::time::timeout;
use runtime::Builder;
use tests::stress::{self, Checksum, Rng, StreamCheck, StreamSource};
use tests::{poll_once, within};

/// How long the whole transfer may take before it counts as a hang.
const TRANSFER_BOUND: Duration = Duration::from_secs(120);

/// Polls `future` once with a waker that does nothing.
fn poll_with_noop<F: Future>(future: Pin<&mut F>) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(Waker::noop()))
}

/// What the reader did, by way, for the report.
#[derive(Debug, Default)]
struct Ways {
    awaited: u64,
    polled_then_dropped: u64,
    noop_polled_then_dropped: u64,
    raced_and_lost: u64,
    raced_and_won: u64,
    buffered: u64,
}

/// Reads the stream to its end through `Compat`, dropping reads at random.
async fn reader(stream: TcpStream, seed: u64, mut rng: Rng) -> (StreamCheck, Ways) {
    let capacity = rng.between(1, 64 * 1024);
    println!("  reader's Compat buffer: {capacity} bytes");
    let mut compat = Compat::with_capacity(stream, capacity, 64 * 1024);
    let mut check = StreamCheck::new(seed);
    let mut ways = Ways::default();
    let mut out = vec![0u8; 96 * 1024];
    loop {
        let len = rng.between(1, out.len());
        let dst = &mut out[..len];
        let n = match rng.below(8) {
            0 => {
                ways.awaited += 1;
                within("a futures-io read", compat.read(dst)).await
            }
            1 => {
                ways.awaited += 1;
                within(
                    "a tokio read",
                    tokio::io::AsyncReadExt::read(&mut compat, dst),
                )
                .await
            }
            2 | 3 => {
                // Polled once with the task's waker, dropped if not ready.
                let (done, read) = poll_once(compat.read(dst)).await;
                drop(read);
                match done {
                    Some(r) => r,
                    None => {
                        ways.polled_then_dropped += 1;
                        // Let the ring turn, so the receive may complete while no
                        // read is waiting for it.
                        if rng.percent(50) {
                            runtime::yield_now().await;
                        }
                        continue;
                    }
                }
            }
            4 => {
                // Polled once with a waker that does nothing, then dropped: the next
                // read must still be woken.
                let polled = {
                    let read = pin!(tokio::io::AsyncReadExt::read(&mut compat, dst));
                    poll_with_noop(read)
                };
                match polled {
                    Poll::Ready(r) => r,
                    Poll::Pending => {
                        ways.noop_polled_then_dropped += 1;
                        continue;
                    }
                }
            }
            5 | 6 => {
                let wait = Duration::from_micros(rng.below(100) as u64);
                match timeout(wait, compat.read(dst)).await {
                    Ok(r) => {
                        ways.raced_and_won += 1;
                        r
                    }
                    Err(_) => {
                        ways.raced_and_lost += 1;
                        continue;
                    }
                }
            }
            _ => {
                // The buffer itself, of which a random part is taken.
                ways.buffered += 1;
                let data = match within("a fill_buf", compat.fill_buf()).await {
                    Ok(data) => data,
                    Err(e) => panic!("fill_buf after {}: {e}", check.checksum()),
                };
                if data.is_empty() {
                    return (check, ways);
                }
                let take = rng.between(1, data.len());
                check.feed(&data[..take]);
                compat.consume_unpin(take);
                continue;
            }
        };
        match n {
            Ok(0) => return (check, ways),
            Ok(n) => check.feed(&out[..n]),
            Err(e) => panic!("a read after {} failed: {e}", check.checksum()),
        }
    }
}

/// Writes `total` bytes of the stream through `Compat` in random pieces (a few polled
/// once and dropped), flushing now and then, and closes.
async fn writer(stream: TcpStream, seed: u64, total: u64, mut rng: Rng) -> Checksum {
    let capacity = rng.between(1, 128 * 1024);
    let mut compat = Compat::with_capacity(stream, 16 * 1024, capacity);
    let mut source = StreamSource::new(seed, total);
    while source.remaining() > 0 {
        let data = source.peek(rng.between(1, 96 * 1024));
        match rng.below(6) {
            0 => {
                // Polled once and dropped: what it reports taken was taken.
                let (done, write) = poll_once(compat.write(&data)).await;
                drop(write);
                match done {
                    Some(Ok(n)) => source.took(&data, n),
                    Some(Err(e)) => panic!("a write after {}: {e}", source.checksum()),
                    None => {}
                }
            }
            1 => {
                let r = within(
                    "a tokio write_all",
                    tokio::io::AsyncWriteExt::write_all(&mut compat, &data),
                )
                .await;
                r.unwrap_or_else(|e| panic!("a write after {}: {e}", source.checksum()));
                source.took(&data, data.len());
            }
            2 => {
                let n = within("a write", compat.write(&data))
                    .await
                    .unwrap_or_else(|e| panic!("a write after {}: {e}", source.checksum()));
                source.took(&data, n);
            }
            _ => {
                within("a write_all", compat.write_all(&data))
                    .await
                    .unwrap_or_else(|e| panic!("a write after {}: {e}", source.checksum()));
                source.took(&data, data.len());
            }
        }
        if rng.percent(3) {
            within("a flush", compat.flush()).await.unwrap();
        }
    }
    within("the close", compat.close()).await.unwrap();
    source.checksum()
}

#[test]
fn compat_reads_dropped_at_random_lose_no_byte() {
    let seed = stress::seed("compat reads dropped at random");
    let total = stress::size("bytes sent", 64 << 20, 256 << 20) as u64;
    let mut rng = Rng::new(seed);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    drop(listener);

    let mut rt = Builder::new()
        .cores(2)
        .pin(false)
        .build()
        .expect("the runtime starts");
    let (writer_rng, reader_rng) = (rng.fork(), rng.fork());
    let stream_seed = rng.next_u64();
    let started = Instant::now();
    let (sent, (check, ways)) = rt.block_on(async move {
        let sending = runtime::spawn_on(1, move || async move {
            writer(
                TcpStream::from_std(client).unwrap(),
                stream_seed,
                total,
                writer_rng,
            )
            .await
        });
        let server = TcpStream::from_std(server).unwrap();
        let received = timeout(TRANSFER_BOUND, reader(server, stream_seed, reader_rng))
            .await
            .unwrap_or_else(|_| panic!("the transfer did not end within {TRANSFER_BOUND:?}"));
        let sent = within("the writer", sending)
            .await
            .expect("the writer finishes");
        (sent, received)
    });
    let took = started.elapsed();
    drop(rt);
    println!(
        "{took:?}: sent {sent}; received {}; reads: {ways:?}",
        check.checksum()
    );
    assert!(
        ways.polled_then_dropped + ways.noop_polled_then_dropped + ways.raced_and_lost > 0,
        "some reads were dropped before they finished"
    );
    assert_eq!(
        check.first_mismatch(),
        None,
        "the first byte that was not the one sent there (seed {seed:#x})"
    );
    assert_eq!(
        check.checksum(),
        sent,
        "what the reader got against what the writer sent (seed {seed:#x})"
    );
    assert_eq!(sent.len, total);
}
