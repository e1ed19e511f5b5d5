//! Multishot receives sharing one core's provided buffers when one of them holds them
//! all: a stream that is armed but not polled lets the kernel fill every buffer with
//! its data, and those completions sit in its queue. Another stream must then wait
//! for a buffer to come back (not spin through the ring re-arming), and once the
//! buffers return it gets its data, whole.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;

use futures_core::Stream as _;

use runtime::net::TcpStream;
use runtime::{Builder, Probe};
use tests::stress::{self, Rng};
use tests::{next, poll_once, within};

const BUFFERS: u16 = 8;
const BUFFER_SIZE: u32 = 4096;
/// Ring turns the starved stream is watched for.
const WINDOW: usize = 200;
/// Polls a waiting stream may take in that window (its first poll, the wake of the
/// `-ENOBUFS` that sends it to wait, a spare); a spinning one takes about one per turn.
const MAX_POLLS: u32 = 8;

fn std_pair(listener: &std::net::TcpListener) -> (TcpStream, std::net::TcpStream) {
    let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (TcpStream::from_std(server).unwrap(), client)
}

#[test]
fn a_stream_starved_by_another_waits_without_spinning_and_loses_nothing() {
    let probe = Probe::get().expect("io_uring is available");
    if !probe.multishot_recv() {
        println!("skipped: multishot receive needs Linux 6.0");
        return;
    }
    let seed = stress::seed("starved recv stream");
    let rounds = stress::size("rounds", 5, 20);
    let mut rng = Rng::new(seed);
    let mut rt = Builder::new()
        .cores(1)
        .pin(false)
        .recv_buffers(BUFFERS, BUFFER_SIZE)
        .build()
        .expect("the runtime starts");
    rt.block_on(within("the starved streams", async move {
        let maker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        for round in 0..rounds {
            let (hog, mut hog_peer) = std_pair(&maker);
            let (starved, mut starved_peer) = std_pair(&maker);

            // The hog is armed, then not polled while its data fills every buffer.
            let mut hog_items = hog.recv_stream();
            let (first, _) = poll_once(next(&mut hog_items)).await;
            assert!(first.is_none(), "nothing was sent yet");
            let hog_len = 2 * usize::from(BUFFERS) * BUFFER_SIZE as usize;
            std::io::Write::write_all(&mut hog_peer, &vec![1u8; hog_len]).unwrap();
            for _ in 0..8 {
                runtime::nop().await.unwrap();
            }

            // The other stream, with data waiting and no buffer to put it in.
            let message = stress::StreamSource::new(rng.next_u64(), 1000).peek(1000);
            std::io::Write::write_all(&mut starved_peer, &message).unwrap();
            let polls = Rc::new(Cell::new(0u32));
            let reader = runtime::spawn({
                let polls = polls.clone();
                let want = message.len();
                async move {
                    let mut items = starved.recv_stream();
                    let mut got = Vec::new();
                    while got.len() < want {
                        let item = std::future::poll_fn(|cx| {
                            polls.set(polls.get() + 1);
                            Pin::new(&mut items).poll_next(cx)
                        })
                        .await;
                        match item {
                            Some(Ok(buf)) => got.extend_from_slice(&buf),
                            other => panic!("the starved stream ended: {other:?}"),
                        }
                    }
                    got
                }
            });
            for _ in 0..WINDOW {
                runtime::nop().await.unwrap();
            }
            let seen = polls.get();
            assert!(
                seen <= MAX_POLLS,
                "round {round}: a stream with no provided buffer to receive into was polled \
                 {seen} times in {WINDOW} turns of the ring: it spins instead of waiting for \
                 a buffer to come back"
            );

            // The hog takes its data and lets its buffers go: the other stream goes on.
            let mut taken = 0;
            while taken < hog_len {
                match within("the hog's data", next(&mut hog_items)).await {
                    Some(Ok(buf)) => taken += buf.len(),
                    other => panic!("the hog's stream ended: {other:?}"),
                }
            }
            let got = within("the starved stream's data", reader).await.unwrap();
            assert_eq!(got, message, "round {round}: the starved stream's bytes");
            drop(hog_items);
            drop((hog, hog_peer, starved_peer));
        }
    }));
}
