//! A sharded in-memory key-value store: each core owns the keys that hash to it.
//!
//! Every core keeps its shard in plain thread-local state (`RefCell<HashMap>`: no
//! lock, no atomics) and runs one shard server that takes commands from a channel.
//! Clients on every core route each command to the key's owner and await the reply
//! on a oneshot channel. At the end, `spawn_on` visits every core to read its shard
//! directly.
//!
//! `cargo run --release --example sharded_kv [ops per client]`

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::io;
use std::sync::Arc;
use std::time::Instant;

use runtime::channel::{mpsc, oneshot};

thread_local! {
    /// This core's shard. Only this core's tasks touch it.
    static SHARD: RefCell<HashMap<String, u64>> = RefCell::new(HashMap::new());
}

enum Command {
    Get {
        key: String,
        reply: oneshot::Sender<Option<u64>>,
    },
    Put {
        key: String,
        value: u64,
        reply: oneshot::Sender<Option<u64>>,
    },
}

/// The client side: a sender per shard, and the hash that picks the shard.
#[derive(Clone)]
struct Store {
    shards: Arc<[mpsc::Sender<Command>]>,
    hasher: RandomState,
}

impl Store {
    fn owner(&self, key: &str) -> usize {
        (self.hasher.hash_one(key) % self.shards.len() as u64) as usize
    }

    async fn call(
        &self,
        key: &str,
        make: impl FnOnce(oneshot::Sender<Option<u64>>) -> Command,
    ) -> io::Result<Option<u64>> {
        let (reply, answer) = oneshot();
        self.shards[self.owner(key)]
            .send(make(reply))
            .await
            .map_err(|_| io::Error::other("the shard server has stopped"))?;
        answer.await.map_err(io::Error::other)
    }

    /// The value of `key`, if any.
    async fn get(&self, key: &str) -> io::Result<Option<u64>> {
        let key = key.to_owned();
        self.call(&key.clone(), |reply| Command::Get { key, reply })
            .await
    }

    /// Sets `key` to `value`; returns the old value.
    async fn put(&self, key: &str, value: u64) -> io::Result<Option<u64>> {
        let key = key.to_owned();
        self.call(&key.clone(), |reply| Command::Put { key, value, reply })
            .await
    }
}

/// Serves this core's shard until every sender is gone.
async fn serve(mut commands: mpsc::Receiver<Command>) {
    while let Some(command) = commands.recv().await {
        // A client that stopped waiting dropped its receiver: nothing to tell it.
        let _ = match command {
            Command::Get { key, reply } => {
                reply.send(SHARD.with(|shard| shard.borrow().get(&key).copied()))
            }
            Command::Put { key, value, reply } => {
                reply.send(SHARD.with(|shard| shard.borrow_mut().insert(key, value)))
            }
        };
    }
}

/// Writes and reads back keys of its own, checking every answer.
async fn client(store: Store, core: usize, ops: u64) -> io::Result<u64> {
    const KEYS: u64 = 1_000;
    for i in 0..ops {
        let key = format!("core{core}-key{}", i % KEYS);
        let old = store.put(&key, i).await?;
        let expected_old = i.checked_sub(KEYS);
        if old != expected_old {
            return Err(io::Error::other(format!(
                "{key}: old value {old:?}, expected {expected_old:?}"
            )));
        }
        let now = store.get(&key).await?;
        if now != Some(i) {
            return Err(io::Error::other(format!(
                "{key}: read {now:?} after writing {i}"
            )));
        }
    }
    Ok(2 * ops)
}

#[runtime::main]
async fn main() -> io::Result<()> {
    let ops: u64 = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("ops per client: {e}"))
        })?,
        None => 20_000,
    };
    let cores = runtime::core_count();

    // One shard server per core.
    let mut shards = Vec::with_capacity(cores);
    for core in 0..cores {
        let (sender, commands) = mpsc::channel(1024);
        shards.push(sender);
        runtime::spawn_on(core, move || serve(commands));
    }
    let store = Store {
        shards: shards.into(),
        hasher: RandomState::new(),
    };

    // One client per core; most of their commands go to another core.
    let start = Instant::now();
    let clients: Vec<_> = (0..cores)
        .map(|core| {
            let store = store.clone();
            runtime::spawn_on(core, move || client(store, core, ops))
        })
        .collect();
    let mut total = 0;
    for client in clients {
        total += client.await??;
    }
    let elapsed = start.elapsed();
    println!(
        "{cores} cores: {total} commands in {elapsed:.2?} ({:.0} commands/s), every answer checked",
        total as f64 / elapsed.as_secs_f64()
    );

    // Visit every core to read its shard where it lives.
    for core in 0..cores {
        let keys =
            runtime::spawn_on(core, || async { SHARD.with(|shard| shard.borrow().len()) }).await?;
        let stats = runtime::Handle::current().stats().swap_remove(core);
        println!(
            "core {core}: {keys} keys; {} wakes and jobs sent, {} received, {} io_uring_enter calls",
            stats.remote_wakes_sent, stats.remote_wakes_received, stats.enters
        );
    }
    Ok(())
}
