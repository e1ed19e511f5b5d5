//! Helpers shared by the integration tests.

pub mod seccomp;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Open file descriptors of this process (entries of `/proc/self/fd`, less the one
/// `read_dir` itself holds while it runs).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable")
        .count()
        - 1
}

/// A buffer that runs a callback when it is dropped, to see *when* the runtime frees
/// memory it handed to the kernel.
pub struct TrackedBuf {
    data: Vec<u8>,
    on_drop: Option<Box<dyn FnOnce()>>,
}

impl TrackedBuf {
    pub fn new(capacity: usize, on_drop: impl FnOnce() + 'static) -> TrackedBuf {
        TrackedBuf {
            data: Vec::with_capacity(capacity),
            on_drop: Some(Box::new(on_drop)),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for TrackedBuf {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

// SAFETY: delegates to the inner Vec, whose heap block does not move with the struct.
unsafe impl runtime::buf::IoBuf for TrackedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.data.stable_ptr()
    }
    fn bytes_init(&self) -> usize {
        self.data.bytes_init()
    }
    fn bytes_total(&self) -> usize {
        self.data.bytes_total()
    }
}

// SAFETY: delegates to the inner Vec.
unsafe impl runtime::buf::IoBufMut for TrackedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data.stable_mut_ptr()
    }
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: the caller's promise is passed on unchanged.
        unsafe { self.data.set_init(pos) }
    }
}

/// Polls `future` exactly once and hands it back (so a test can drop it mid-flight).
pub async fn poll_once<F: Future + Unpin>(mut future: F) -> (Option<F::Output>, F) {
    let output = std::future::poll_fn(|cx: &mut Context<'_>| {
        Poll::Ready(match Pin::new(&mut future).poll(cx) {
            Poll::Ready(v) => Some(v),
            Poll::Pending => None,
        })
    })
    .await;
    (output, future)
}

/// A pipe as two `OwnedFd`s (read end, write end).
pub fn pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array we pass.
    let res = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(res, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: both fds were just created and are owned by nobody else.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

/// A runtime of one unpinned core, for tests (pinning would crowd the tests, which
/// run in parallel, onto one CPU).
pub fn rt() -> runtime::Runtime {
    runtime::Builder::new()
        .cores(1)
        .pin(false)
        .build()
        .expect("the runtime starts")
}

/// A waker that unparks the calling thread.
pub fn thread_waker() -> std::task::Waker {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())))
}

/// Runs `future` on this plain thread (no runtime), parking the thread while it is
/// pending: how a thread the runtime does not own awaits a `JoinHandle`.
pub fn block_on_thread<F: Future>(future: F) -> F::Output {
    let waker = thread_waker();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// The CPUs the calling thread may run on (`sched_getaffinity`).
pub fn thread_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is a plain bit array; sched_getaffinity fills the one we pass.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the size is the set's own.
    let res = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(
        res,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: reads one bit of the live set, in range.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect()
}
