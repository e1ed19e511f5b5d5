//! A tour of the runtime: tasks, timers, ring round trips, file I/O with owned
//! buffers, every core answering through `spawn_on` and a channel, and the counters.
//!
//! `cargo run --release --example tour`

use std::time::{Duration, Instant};

use runtime::fs::File;
use runtime::time::{interval, sleep, timeout};

#[runtime::main]
async fn main() -> std::io::Result<()> {
    // Tasks: futures need not be Send; they stay on this core.
    let greeting = std::rc::Rc::new(String::from("hello from a task"));
    let g = greeting.clone();
    let task = runtime::spawn(async move { g.len() });
    println!("{greeting}: {} bytes", task.await?);

    // Timers: the ring's wait is bounded by the nearest deadline.
    let start = Instant::now();
    let mut ticks = interval(Duration::from_millis(10));
    for _ in 0..3 {
        ticks.tick().await;
    }
    println!("three ticks of 10 ms took {:?}", start.elapsed());
    let slow = timeout(Duration::from_millis(5), sleep(Duration::from_secs(60))).await;
    println!("a 60 s sleep under a 5 ms timeout: {slow:?}");

    // Ring round trips: 100k nops, 64 tasks at a time.
    let start = Instant::now();
    let handles: Vec<_> = (0..64)
        .map(|_| {
            runtime::spawn(async {
                for _ in 0..100_000 / 64 {
                    runtime::nop().await?;
                }
                std::io::Result::Ok(())
            })
        })
        .collect();
    for h in handles {
        h.await??;
    }
    let per_op = start.elapsed() / (100_000 / 64 * 64);
    println!("nop round trip, 64 in flight: {per_op:?} per op");

    // File I/O with owned buffers: the buffer comes back with the result.
    let path = std::env::temp_dir().join(format!("runtime-tour-{}", std::process::id()));
    let file = File::from_std(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?,
    );
    let (written, _) = file.write_at(b"owned buffers".as_slice(), 0).await;
    let (read, buf) = file.read_at(Vec::with_capacity(64), 0).await;
    println!(
        "wrote {} bytes, read back {:?}",
        written?,
        String::from_utf8_lossy(&buf[..read?])
    );
    file.close().await?;
    std::fs::remove_file(&path)?;

    // Every core: a job sent with spawn_on reports back over a channel.
    let cores = runtime::core_count();
    let (tx, mut rx) = runtime::channel::mpsc::unbounded();
    for core in 0..cores {
        let tx = tx.clone();
        runtime::spawn_on(core, move || async move {
            let _ = tx.send((
                core,
                runtime::core_id(),
                std::thread::current().name().map(String::from),
            ));
        });
    }
    drop(tx);
    while let Some((asked, ran, thread)) = rx.recv().await {
        println!("core {asked} of {cores}: ran on core {ran}, thread {thread:?}");
    }

    let stats = runtime::stats();
    println!(
        "core stats: {} ops completed with {} io_uring_enter calls; {} tasks spawned, {} polls, {} timers fired",
        stats.ops_completed, stats.enters, stats.tasks_spawned, stats.tasks_polled, stats.timers_fired
    );
    Ok(())
}
