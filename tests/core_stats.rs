//! What `CoreStats` tells about a core's ring and run queue: ops in flight, how full
//! the SQ and CQ got, overflows, and tasks waiting to run.

use std::time::Duration;

use runtime::net::{TcpListener, TcpStream};
use tests::{ring_only, rt, within};

#[test]
fn ops_in_flight_counts_what_the_kernel_holds() {
    rt().block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let before = runtime::stats().ops_in_flight;
        // Reads that wait: the peer sends nothing until told.
        let server = std::rc::Rc::new(server);
        let reads: Vec<_> = (0..10)
            .map(|_| {
                let server = server.clone();
                runtime::spawn(async move { server.read(vec![0u8; 16]).await.0 })
            })
            .collect();
        within("the reads to be in flight", async {
            while runtime::stats().ops_in_flight < before + 10 {
                runtime::yield_now().await;
            }
        })
        .await;
        drop(reads);
        client.write_all(vec![1u8; 1]).await.0.unwrap();
        drop(client);
        within("the reads to end", async {
            while runtime::stats().ops_in_flight > before {
                runtime::yield_now().await;
            }
        })
        .await;
    });
}

#[test]
fn a_full_completion_queue_overflows_and_loses_nothing() {
    if ring_only("the SQ and CQ of a ring") {
        return;
    }
    let mut rt = runtime::Builder::new()
        .cores(1)
        .pin(false)
        .ring_entries(8)
        .build()
        .unwrap();
    let done = rt.block_on(async {
        let nops: Vec<_> = (0..256).map(|_| runtime::spawn(runtime::nop())).collect();
        let mut done = 0;
        for nop in nops {
            nop.await.unwrap().unwrap();
            done += 1;
        }
        done
    });
    assert_eq!(done, 256, "every nop completed");
    let stats = rt.stats();
    assert!(
        stats.sq_entries_max >= 1 && stats.sq_entries_max <= 8,
        "{stats:?}"
    );
    assert!(stats.cq_entries_max >= 8, "{stats:?}");
    // 256 completions into a CQ of 16 between reaps: the kernel kept the excess in its
    // overflow list, the core saw that and reaped them all.
    assert!(stats.cq_overflows >= 1, "{stats:?}");
    assert_eq!(stats.cqes_lost, 0, "{stats:?}");
}

#[test]
fn the_run_queue_shows_tasks_waiting_their_turn() {
    let seen = rt().block_on(async {
        let handles: Vec<_> = (0..2000)
            .map(|_| {
                runtime::spawn(async {
                    runtime::yield_now().await;
                    runtime::stats().run_queue
                })
            })
            .collect();
        let mut most = 0;
        for h in handles {
            most = most.max(h.await.unwrap());
        }
        most
    });
    // 2000 tasks woken at once go through ticks of 256: later ticks see the rest.
    assert!(seen >= 256, "run queue of at most {seen}");
}

#[test]
fn queue_run_time_adds_up_to_the_polls() {
    let mut rt = rt();
    rt.block_on(async {
        runtime::spawn(async {
            let start = std::time::Instant::now();
            while start.elapsed() < Duration::from_millis(20) {
                std::hint::spin_loop();
            }
        })
        .await
        .unwrap();
    });
    let stats = rt.stats();
    let default = &stats.queues[0];
    assert!(default.run_time >= Duration::from_millis(20), "{default:?}");
    assert!(default.polls >= 1);
}
