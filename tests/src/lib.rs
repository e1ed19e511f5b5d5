//! Helpers shared by the integration tests.

pub mod seccomp;
pub mod stress;

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

/// Implements `IoBuf` and `IoBufMut` for a test buffer type by delegating to its
/// `data: Vec<u8>` field.
#[macro_export]
macro_rules! vec_backed_buf {
    ($ty:ty) => {
        // SAFETY: delegates to the inner Vec, whose heap block does not move with the
        // struct and is never reallocated (nothing here grows it).
        unsafe impl runtime::buf::IoBuf for $ty {
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
        unsafe impl runtime::buf::IoBufMut for $ty {
            fn stable_mut_ptr(&mut self) -> *mut u8 {
                self.data.stable_mut_ptr()
            }
            unsafe fn set_init(&mut self, pos: usize) {
                // SAFETY: the caller's promise is passed on unchanged.
                unsafe { self.data.set_init(pos) }
            }
        }
    };
}

vec_backed_buf!(TrackedBuf);

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

/// An empty file at `path` (truncated if it exists), open for reading and writing.
pub async fn create_rw(path: &std::path::Path) -> runtime::fs::File {
    runtime::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .await
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()))
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

/// Whether this run of the suite is on the readiness backend (`RUNTIME_BACKEND=epoll`,
/// which [`rt`] and every `Backend::Auto` runtime then use).
pub fn on_epoll() -> bool {
    std::env::var(runtime::BACKEND_ENV)
        .ok()
        .and_then(|v| v.parse::<runtime::Backend>().ok())
        == Some(runtime::Backend::Epoll)
}

/// For a test of an io_uring mechanism (how the ring holds an op's memory until its
/// CQE, withdrawal before submission, SQE opcodes, registration, the probe, ring
/// flags): `true`, after saying so, in the suite's epoll run, where the test does not
/// apply; it runs in the io_uring run.
pub fn ring_only(mechanism: &str) -> bool {
    let skip = on_epoll();
    if skip {
        eprintln!("io_uring only ({mechanism}): not run on the epoll backend");
    }
    skip
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

/// How long a network test waits for anything before calling it a hang.
pub const BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Awaits `future` for at most [`BOUND`]; a bug that would hang fails instead, naming
/// what it waited for.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match runtime::time::timeout(BOUND, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: still waiting after {BOUND:?}"),
    }
}

/// The next item of `stream` (`None` once it ended). The future is `Unpin`, so it can
/// go through [`poll_once`].
pub fn next<S: futures_core::Stream + Unpin>(
    stream: &mut S,
) -> impl Future<Output = Option<S::Item>> + Unpin + '_ {
    std::future::poll_fn(move |cx| Pin::new(&mut *stream).poll_next(cx))
}

/// `len` bytes of a pseudo-random sequence (xorshift) picked by `seed`: a chunk that
/// was lost, repeated, reordered or zeroed does not compare equal.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Turns the ring until this process has `expected` fds open (closes are queued
/// through the ring, so they land a turn or two after a drop), for at most [`BOUND`].
/// Returns the last count seen, for the caller to compare.
///
/// It turns the ring a few times before it first looks, so that what was queued
/// (cancels of dropped ops, closes) has reached the kernel and been answered even when
/// the count already matches.
pub async fn settle_fds(expected: usize) -> usize {
    let deadline = std::time::Instant::now() + BOUND;
    let mut turns = 0;
    loop {
        if turns >= 4 {
            let open = open_fds();
            if open == expected || std::time::Instant::now() >= deadline {
                return open;
            }
        }
        runtime::nop().await.expect("a nop completes");
        runtime::yield_now().await;
        turns += 1;
    }
}

/// Raises this process's soft fd limit to its hard limit if it is below `wanted`.
/// `Err` says why `wanted` fds cannot be had.
pub fn raise_fd_limit(wanted: u64) -> Result<(), String> {
    // SAFETY: rlimit is plain old data; getrlimit fills the one we pass.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(format!("getrlimit: {}", std::io::Error::last_os_error()));
    }
    if limit.rlim_cur >= wanted {
        return Ok(());
    }
    if limit.rlim_max < wanted {
        // Only a privileged process may raise the hard limit (up to fs.nr_open).
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: wanted,
        };
        // SAFETY: setrlimit reads the rlimit we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(());
        }
        return Err(format!(
            "RLIMIT_NOFILE's hard limit is {}, below the {wanted} fds needed, and this \
             process may not raise it ({})",
            limit.rlim_max,
            std::io::Error::last_os_error()
        ));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit reads the rlimit we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(format!("setrlimit: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// A fresh directory under the system's temporary directory, removed with everything
/// in it when dropped (for Unix socket paths).
#[derive(Debug)]
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), tag)
    }

    /// A fresh directory under `base`: for tests that need a disk filesystem (O_DIRECT),
    /// `env!("CARGO_TARGET_TMPDIR")`, in the target directory, rather than a `/tmp`
    /// that may be tmpfs.
    pub fn new_in(base: &std::path::Path, tag: &str) -> TempDir {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = base.join(format!("rt-{}-{tag}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("the temporary directory can be made");
        TempDir(path)
    }

    /// `name` inside the directory.
    pub fn join(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asserts two byte strings are equal; on failure says where they first differ rather
/// than printing them whole.
#[track_caller]
pub fn assert_same_bytes(what: &str, got: &[u8], want: &[u8]) {
    if got == want {
        return;
    }
    let at = got.iter().zip(want).position(|(a, b)| a != b);
    match at {
        Some(at) => panic!(
            "{what}: byte {at} differs ({:#04x}, expected {:#04x}); {} bytes, expected {}",
            got[at],
            want[at],
            got.len(),
            want.len()
        ),
        None => panic!(
            "{what}: {} bytes, expected {} (the shorter is a prefix of the longer)",
            got.len(),
            want.len()
        ),
    }
}

/// Bytes waiting in a socket's receive queue (`FIONREAD`).
pub fn bytes_readable(fd: std::os::fd::RawFd) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int into the one we pass.
    let res = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    assert_eq!(res, 0, "FIONREAD: {}", std::io::Error::last_os_error());
    n as usize
}

/// The type of the filesystem holding `path`, by name where it is a common one.
pub fn filesystem_of(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return "unknown".into();
    };
    // SAFETY: statfs is plain old data; statfs(2) fills the one we pass, and reads the
    // NUL-terminated path, which lives across the call.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut fs) } != 0 {
        return format!("unknown ({})", std::io::Error::last_os_error());
    }
    let name = match fs.f_type as u64 {
        0x0102_1994 => "tmpfs",
        0xEF53 => "ext2/3/4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        other => return format!("filesystem type {other:#x}"),
    };
    name.into()
}

/// Why the filesystem at `dir` refuses `O_DIRECT` to a plain `open(2)`, or `None` if
/// it takes it: a test that got `EINVAL` from the runtime's open may skip only when
/// the kernel refuses the same open without the runtime.
pub fn o_direct_refused(dir: &std::path::Path) -> Option<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("o-direct-probe");
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path);
    let _ = std::fs::remove_file(&path);
    match opened {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Some(format!(
            "{} ({}) answers open(2) with O_DIRECT with {e}",
            dir.display(),
            filesystem_of(dir)
        )),
        _ => None,
    }
}
