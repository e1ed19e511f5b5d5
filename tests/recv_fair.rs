//! Receive streams share their core's provided buffers fairly: a stream that is armed
//! but not read holds the buffers its queued completions name, and another stream on
//! the same core still receives its data, promptly and without spinning on the ring.

use std::io::Write as _;
use std::time::Duration;

use runtime::net::{TcpListener, TcpStream};
use tests::{next, poll_once, within, BOUND};

/// Turns the ring until `n` more CQEs than `base` were reaped (bounded).
async fn reaped(base: u64, n: u64) {
    within("completions", async {
        while runtime::stats().cqes_reaped < base + n {
            runtime::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

async fn connection(listener: &TcpListener) -> (TcpStream, std::net::TcpStream) {
    let addr = listener.local_addr().unwrap();
    let peer = std::net::TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(BOUND)).unwrap();
    peer.set_nodelay(true).unwrap();
    let (stream, _) = within("accept", listener.accept()).await.unwrap();
    (stream, peer)
}

#[test]
fn an_unread_stream_holding_every_buffer_does_not_stall_another() {
    if tests::ring_only("the kernel fills provided buffers for a stream nobody polls") {
        return;
    }
    if !runtime::Probe::get().unwrap().multishot_recv() {
        eprintln!("skipped: this kernel has no multishot receive (Linux 6.0)");
        return;
    }
    const BUFFERS: u16 = 4;
    const SIZE: u32 = 64;
    let mut rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .recv_buffers(BUFFERS, SIZE)
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let (idle, mut idle_peer) = connection(&listener).await;
        let (busy, mut busy_peer) = connection(&listener).await;

        // The idle stream is armed, then never read again: the kernel fills every
        // buffer for it, and its completions wait in its queue.
        let mut idle_chunks = idle.recv_stream();
        let (out, _) = poll_once(next(&mut idle_chunks)).await;
        assert!(out.is_none());
        runtime::yield_now().await;
        let base = runtime::stats().cqes_reaped;
        for _ in 0..BUFFERS {
            idle_peer.write_all(&[b'i'; SIZE as usize]).unwrap();
        }
        reaped(base, u64::from(BUFFERS)).await;

        // The other stream's data must come, chunk after chunk, without the ring being
        // entered over and over while the buffers stay taken.
        let mut busy_chunks = busy.recv_stream();
        let mut received = Vec::new();
        let submitted_before = runtime::stats().ops_submitted;
        for round in 0..20u8 {
            let message = [b'a' + round; 100];
            busy_peer.write_all(&message).unwrap();
            while received.len() < 100 * (usize::from(round) + 1) {
                let chunk = within("the busy stream's data", next(&mut busy_chunks))
                    .await
                    .expect("the busy stream goes on")
                    .expect("no error");
                received.extend_from_slice(&chunk);
            }
        }
        let submitted = runtime::stats().ops_submitted - submitted_before;
        let want: Vec<u8> = (0..20u8).flat_map(|r| [b'a' + r; 100]).collect();
        assert_eq!(received, want, "every byte, in order");
        assert!(
            submitted < 200,
            "{submitted} ops submitted to receive 20 messages: the stream spins"
        );

        // The idle stream still has everything, in order, once it reads.
        let mut idle_received = Vec::new();
        while idle_received.len() < usize::from(BUFFERS) * SIZE as usize {
            let chunk = within("the idle stream's data", next(&mut idle_chunks))
                .await
                .expect("not ended")
                .expect("no error");
            idle_received.extend_from_slice(&chunk);
        }
        assert!(idle_received.iter().all(|&b| b == b'i'));
        drop((idle_chunks, busy_chunks));
    });
}

#[test]
fn streams_take_turns_when_buffers_are_scarce() {
    if !runtime::Probe::get().unwrap().multishot_recv() {
        eprintln!("skipped: this kernel has no multishot receive (Linux 6.0)");
        return;
    }
    // Three streams over two buffers, each read by its own task: all get all their
    // data.
    let mut rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .recv_buffers(2, 32)
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut tasks = Vec::new();
        let mut peers = Vec::new();
        for id in 0..3u8 {
            let (stream, peer) = connection(&listener).await;
            peers.push(peer);
            tasks.push(runtime::spawn(async move {
                let mut chunks = stream.recv_stream();
                let mut got = Vec::new();
                while let Some(chunk) = next(&mut chunks).await {
                    got.extend_from_slice(&chunk.unwrap());
                }
                (id, got)
            }));
        }
        let payload = |id: u8| -> Vec<u8> { (0..4096u32).map(|i| (i as u8) ^ id).collect() };
        for (id, peer) in peers.iter_mut().enumerate() {
            peer.write_all(&payload(id as u8)).unwrap();
        }
        drop(peers);
        for task in tasks {
            let (id, got) = within("a stream to end", task).await.unwrap();
            assert_eq!(got, payload(id), "stream {id}");
        }
    });
}
