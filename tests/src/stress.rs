//! Tools of the stress tests (`tests/stress_*.rs`): a seeded generator whose seed is
//! printed and can be given back (`STRESS_SEED`), sizes that shrink in debug builds
//! (and grow or shrink again with `STRESS_SCALE`), buffers that count their drops, a
//! byte stream whose every byte is known from its position, and ways to drop a future
//! at a chosen point of its life.

use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

/// The splitmix64 finaliser: a good 64-bit mix of `z`.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A small seeded generator (splitmix64): the same seed makes the same choices.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "Rng::below(0)");
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// `true` with probability `p`%.
    pub fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    /// A generator of its own, seeded from this one (one per task, so a task's choices
    /// do not depend on how the others were scheduled).
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// The seed of a stress test: `STRESS_SEED` (decimal or `0x` hex) if set, else one
/// from the clock. Printed with the way to replay it.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("STRESS_SEED") {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("STRESS_SEED={text:?} is not a number: {e}"))
        }
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("the clock is after 1970");
            mix(now.as_nanos() as u64 ^ (u64::from(std::process::id()) << 32))
        }
    };
    println!("{test}: seed {seed:#x} (replay with STRESS_SEED={seed:#x})");
    seed
}

/// A size of a stress test: `debug` in a debug build, `release` otherwise, times
/// `STRESS_SCALE` (a factor, default 1), at least 1. Printed.
pub fn size(what: &str, debug: usize, release: usize) -> usize {
    let base = if cfg!(debug_assertions) {
        debug
    } else {
        release
    };
    let scale = match std::env::var("STRESS_SCALE") {
        Ok(text) => text
            .trim()
            .parse::<f64>()
            .unwrap_or_else(|e| panic!("STRESS_SCALE={text:?} is not a number: {e}")),
        Err(_) => 1.0,
    };
    let n = ((base as f64 * scale).round() as usize).max(1);
    println!("  {what}: {n}");
    n
}

/// Counts the buffers a test makes ([`CountedBuf`]) and how many times each was
/// dropped, so it can say at the end that every one was dropped exactly once.
#[derive(Debug, Default)]
pub struct Ledger {
    drops: Mutex<Vec<u32>>,
}

impl Ledger {
    pub fn new() -> Arc<Ledger> {
        Arc::new(Ledger::default())
    }

    fn log(&self) -> MutexGuard<'_, Vec<u32>> {
        self.drops.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An empty buffer of `capacity` bytes, for a read.
    pub fn empty(self: &Arc<Self>, capacity: usize) -> CountedBuf {
        self.holding(Vec::with_capacity(capacity))
    }

    /// A buffer holding `data`, for a write.
    pub fn holding(self: &Arc<Self>, data: Vec<u8>) -> CountedBuf {
        let mut log = self.log();
        let id = log.len();
        log.push(0);
        CountedBuf {
            data,
            id,
            ledger: self.clone(),
        }
    }

    /// Buffers made so far.
    pub fn made(&self) -> usize {
        self.log().len()
    }

    /// Buffers made and not yet dropped.
    pub fn live(&self) -> usize {
        self.log().iter().filter(|&&n| n == 0).count()
    }

    /// `Err` unless every buffer made was dropped exactly once; the message counts the
    /// ones still alive and the ones dropped more than once, with a few of their ids.
    pub fn check(&self) -> Result<(), String> {
        let log = self.log();
        let alive: Vec<usize> = (0..log.len()).filter(|&i| log[i] == 0).collect();
        let twice: Vec<usize> = (0..log.len()).filter(|&i| log[i] > 1).collect();
        if alive.is_empty() && twice.is_empty() {
            return Ok(());
        }
        Err(format!(
            "of {} buffers, {} were never dropped (ids {:?}...) and {} were dropped more \
             than once (ids {:?}...)",
            log.len(),
            alive.len(),
            &alive[..alive.len().min(8)],
            twice.len(),
            &twice[..twice.len().min(8)],
        ))
    }
}

/// A buffer that tells its [`Ledger`] when it is dropped.
pub struct CountedBuf {
    data: Vec<u8>,
    id: usize,
    ledger: Arc<Ledger>,
}

impl CountedBuf {
    /// The initialised bytes (what a read filled, or what a write sends).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl fmt::Debug for CountedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountedBuf")
            .field("id", &self.id)
            .field("len", &self.data.len())
            .field("capacity", &self.data.capacity())
            .finish()
    }
}

impl Drop for CountedBuf {
    fn drop(&mut self) {
        self.ledger.log()[self.id] += 1;
    }
}

crate::vec_backed_buf!(CountedBuf);

/// Fills `out` with bytes `pos..` of the stream named by `seed`: eight bytes per mix
/// of their position, so a chunk that is lost, repeated or moved does not match.
pub fn stream_bytes(seed: u64, pos: u64, out: &mut [u8]) {
    let word = |index: u64| mix(seed ^ index.wrapping_mul(0xd6e8_feb8_6659_fd93)).to_le_bytes();
    let mut at = pos;
    let mut rest = out;
    // Up to the next multiple of 8, then whole words, then the tail.
    let head = ((8 - at % 8) % 8).min(rest.len() as u64) as usize;
    if head > 0 {
        let w = word(at / 8);
        let from = (at % 8) as usize;
        rest[..head].copy_from_slice(&w[from..from + head]);
        at += head as u64;
        rest = &mut rest[head..];
    }
    let mut chunks = rest.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(at / 8));
        at += 8;
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let n = tail.len();
        tail.copy_from_slice(&word(at / 8)[..n]);
    }
}

/// An order-sensitive checksum and byte count of a stream: each 8-byte word of the
/// stream (little-endian, counted from the stream's start, wherever the pieces it
/// arrives in were cut) is folded into the hash with a multiply and a rotate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checksum {
    pub len: u64,
    /// The hash of the whole words so far.
    hash: u64,
    /// The bytes of the last, incomplete word.
    partial: u64,
}

impl Default for Checksum {
    fn default() -> Checksum {
        Checksum {
            len: 0,
            hash: 0xcbf2_9ce4_8422_2325,
            partial: 0,
        }
    }
}

impl Checksum {
    fn fold(hash: u64, word: u64) -> u64 {
        (hash ^ word).wrapping_mul(0x0100_0000_01b3).rotate_left(29)
    }

    pub fn update(&mut self, mut data: &[u8]) {
        // Complete the partial word byte by byte, then whole words.
        while self.len % 8 != 0 && !data.is_empty() {
            self.partial |= u64::from(data[0]) << (8 * (self.len % 8));
            self.len += 1;
            data = &data[1..];
            if self.len % 8 == 0 {
                self.hash = Checksum::fold(self.hash, self.partial);
                self.partial = 0;
            }
        }
        let mut words = data.chunks_exact(8);
        let mut hash = self.hash;
        for word in &mut words {
            hash = Checksum::fold(hash, u64::from_le_bytes(word.try_into().unwrap()));
        }
        self.hash = hash;
        self.len += (data.len() - words.remainder().len()) as u64;
        for &b in words.remainder() {
            self.partial |= u64::from(b) << (8 * (self.len % 8));
            self.len += 1;
        }
    }

    /// The hash, with the bytes of an incomplete last word folded in.
    pub fn value(&self) -> u64 {
        if self.len % 8 == 0 {
            self.hash
        } else {
            Checksum::fold(self.hash, self.partial ^ ((self.len % 8) << 61))
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes, checksum {:#018x}", self.len, self.value())
    }
}

/// The sending side of a checked stream: makes the bytes to send and sums what the
/// kernel took.
#[derive(Debug)]
pub struct StreamSource {
    seed: u64,
    total: u64,
    sum: Checksum,
}

impl StreamSource {
    /// A stream of `total` bytes.
    pub fn new(seed: u64, total: u64) -> StreamSource {
        StreamSource {
            seed,
            total,
            sum: Checksum::default(),
        }
    }

    /// Bytes not yet taken.
    pub fn remaining(&self) -> u64 {
        self.total - self.sum.len
    }

    /// The next `len` bytes (fewer at the end), without taking them.
    pub fn peek(&self, len: usize) -> Vec<u8> {
        let len = len.min(self.remaining() as usize);
        let mut out = vec![0; len];
        stream_bytes(self.seed, self.sum.len, &mut out);
        out
    }

    /// Records that the kernel took the first `n` bytes of `sent` (which came from
    /// [`peek`](Self::peek)).
    pub fn took(&mut self, sent: &[u8], n: usize) {
        self.sum.update(&sent[..n]);
    }

    pub fn checksum(&self) -> Checksum {
        self.sum
    }
}

/// The receiving side of a checked stream: sums what arrives and notes the first byte
/// that is not the one sent at that position.
#[derive(Debug)]
pub struct StreamCheck {
    seed: u64,
    sum: Checksum,
    first_bad: Option<u64>,
    scratch: Vec<u8>,
}

impl StreamCheck {
    pub fn new(seed: u64) -> StreamCheck {
        StreamCheck {
            seed,
            sum: Checksum::default(),
            first_bad: None,
            scratch: Vec::new(),
        }
    }

    pub fn feed(&mut self, data: &[u8]) {
        if self.first_bad.is_none() {
            self.scratch.resize(data.len(), 0);
            stream_bytes(self.seed, self.sum.len, &mut self.scratch);
            if self.scratch != data {
                let at = self.scratch.iter().zip(data).position(|(a, b)| a != b);
                self.first_bad = Some(self.sum.len + at.unwrap_or(0) as u64);
            }
        }
        self.sum.update(data);
    }

    pub fn checksum(&self) -> Checksum {
        self.sum
    }

    /// The offset of the first byte that differed from what was sent there.
    pub fn first_mismatch(&self) -> Option<u64> {
        self.first_bad
    }
}

/// Where a test lets go of a future it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropPoint {
    /// Never polled: nothing reached the ring.
    Unpolled,
    /// Polled once and dropped within the same poll of its task: its SQE has not
    /// left the submission queue.
    Queued,
    /// Polled at each of `n` + 1 turns of the ring, then dropped (in the kernel, or
    /// finished and not yet looked at).
    Polled(u8),
    /// Polled once, then dropped after `n` turns of the ring without another poll:
    /// its completion may have come and wait, unclaimed.
    Unclaimed(u8),
    /// Raced against a timer of this many microseconds, dropped if the timer wins.
    Raced(u16),
}

impl DropPoint {
    /// A point picked at random, up to `max_turns` turns and `max_micros` of racing.
    pub fn random(rng: &mut Rng, max_turns: u8, max_micros: u16) -> DropPoint {
        match rng.below(5) {
            0 => DropPoint::Unpolled,
            1 => DropPoint::Queued,
            2 => DropPoint::Polled(rng.between(0, max_turns.into()) as u8),
            3 => DropPoint::Unclaimed(rng.between(1, max_turns.max(1).into()) as u8),
            _ => DropPoint::Raced(rng.between(0, max_micros.into()) as u16),
        }
    }

    /// The point without its count, to tally by.
    pub fn name(self) -> &'static str {
        match self {
            DropPoint::Unpolled => "unpolled",
            DropPoint::Queued => "queued",
            DropPoint::Polled(_) => "polled",
            DropPoint::Unclaimed(_) => "unclaimed",
            DropPoint::Raced(_) => "raced",
        }
    }
}

/// Polls `future` once with the task's waker; the output if it finished.
async fn poll_pinned<F: Future>(mut future: Pin<&mut F>) -> Option<F::Output> {
    std::future::poll_fn(|cx: &mut Context<'_>| {
        Poll::Ready(match future.as_mut().poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await
}

/// Drives `future` up to `point` and drops it there; its output if it finished
/// first.
pub async fn drive<F: Future>(future: F, point: DropPoint) -> Option<F::Output> {
    let mut future = pin!(future);
    match point {
        DropPoint::Unpolled => None,
        DropPoint::Queued => poll_pinned(future.as_mut()).await,
        DropPoint::Polled(turns) => {
            for turn in 0..=turns {
                if let Some(v) = poll_pinned(future.as_mut()).await {
                    return Some(v);
                }
                if turn < turns {
                    runtime::yield_now().await;
                }
            }
            None
        }
        DropPoint::Unclaimed(turns) => {
            if let Some(v) = poll_pinned(future.as_mut()).await {
                return Some(v);
            }
            for _ in 0..turns {
                runtime::yield_now().await;
            }
            None
        }
        DropPoint::Raced(micros) => {
            runtime::time::timeout(Duration::from_micros(micros.into()), future)
                .await
                .ok()
        }
    }
}

/// Which of two futures finished first.
#[derive(Debug)]
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls both futures (`a` first) until one finishes, then drops the other: a
/// `select!` of two branches.
pub async fn first_of<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    std::future::poll_fn(|cx: &mut Context<'_>| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}

/// A counter many tasks (on any core) add to.
#[derive(Debug, Default)]
pub struct Tally(AtomicU64);

impl Tally {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod checks {
    use super::*;

    #[test]
    fn a_stream_is_the_same_however_it_is_cut() {
        let mut whole = vec![0; 1000];
        stream_bytes(7, 3, &mut whole);
        let mut rng = Rng::new(1);
        for _ in 0..100 {
            let (mut sum, mut check) = (Checksum::default(), StreamCheck::new(7));
            let mut pieces = Checksum::default();
            pieces.update(&[]);
            let mut at = 0;
            while at < whole.len() {
                let n = rng.between(1, 20).min(whole.len() - at);
                let mut piece = vec![0; n];
                stream_bytes(7, 3 + at as u64, &mut piece);
                assert_eq!(piece, whole[at..at + n]);
                sum.update(&piece);
                at += n;
            }
            let mut from_start = vec![0; 1003];
            stream_bytes(7, 0, &mut from_start);
            check.feed(&from_start);
            assert_eq!(check.first_mismatch(), None);
            let mut one = Checksum::default();
            one.update(&whole);
            assert_eq!(sum, one);
            assert_eq!(sum.len, 1000);
        }
    }

    #[test]
    fn a_changed_or_moved_byte_changes_the_checksum() {
        let mut data = vec![0; 100];
        stream_bytes(9, 0, &mut data);
        let sum = |d: &[u8]| {
            let mut c = Checksum::default();
            c.update(d);
            c.value()
        };
        let base = sum(&data);
        let mut changed = data.clone();
        changed[57] ^= 1;
        assert_ne!(sum(&changed), base);
        let mut swapped = data.clone();
        swapped.swap(3, 50);
        assert_ne!(sum(&swapped), base);
        assert_ne!(sum(&data[..99]), base);
        let mut check = StreamCheck::new(9);
        check.feed(&changed);
        assert_eq!(check.first_mismatch(), Some(57));
    }
}
