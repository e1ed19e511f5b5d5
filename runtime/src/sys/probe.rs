//! What this kernel's io_uring supports, asked once per process, and the setup of
//! every core's ring from that answer.
//!
//! Setup flags are found by trying them: the kernel answers `EINVAL` for a flag it does
//! not know, and the probe drops flags one at a time, best first, until a ring is made.
//! Opcodes are asked with `IORING_REGISTER_PROBE`. The answer is kept for the life of
//! the process, so every core's ring is set up alike without trying again.
//!
//! `SQPOLL` is asked apart, and only once something wants it (an `SQPOLL` ring starts
//! a kernel thread). The kernel refuses `COOP_TASKRUN`, `TASKRUN_FLAG` and
//! `DEFER_TASKRUN` with `SQPOLL` (`EINVAL`: they decide how the submitting thread is
//! interrupted to run completions, and with `SQPOLL` a kernel thread submits), so an
//! `SQPOLL` ring gets `SINGLE_ISSUER` at most. Kernels before 5.11 allow `SQPOLL` only
//! with `CAP_SYS_ADMIN` (`EPERM`) and only on registered files
//! (`IORING_FEAT_SQPOLL_NONFIXED`); the probe reports either as `SQPOLL` missing.
//!
//! A ring is built with exactly the flags recorded for it ([`RingFlags`]): nothing is
//! added or dropped on the way, so what a core reports is what the kernel accepted.

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use io_uring::IoUring;

use crate::stats::RingFlags;

/// The flags the probe tries first for a ring without `SQPOLL`.
const BEST: RingFlags = RingFlags {
    sqpoll: false,
    single_issuer: true,
    defer_taskrun: true,
    coop_taskrun: true,
    taskrun_flag: true,
    registered_fd: false,
    no_iowait: false,
};

/// The next weaker set to try after `EINVAL`, or `None` when nothing is left to drop.
/// `DEFER_TASKRUN` goes first (6.1), then `SINGLE_ISSUER` (6.0, and `DEFER_TASKRUN`
/// needs it), then `COOP_TASKRUN` with `TASKRUN_FLAG` (5.19).
fn weaker(flags: RingFlags) -> Option<RingFlags> {
    let mut next = flags;
    if next.defer_taskrun {
        next.defer_taskrun = false;
    } else if next.single_issuer {
        next.single_issuer = false;
    } else if next.coop_taskrun || next.taskrun_flag {
        next.coop_taskrun = false;
        next.taskrun_flag = false;
    } else {
        return None;
    }
    Some(next)
}

/// A ring builder with exactly the setup flags in `flags` (plus `CQSIZE`, twice the
/// SQ, and `MADV_DONTFORK` ring memory, which every ring gets). `sqpoll_idle_ms` is
/// the SQ thread's idle time, used only with `flags.sqpoll`.
fn builder(flags: RingFlags, entries: u32, sqpoll_idle_ms: u32) -> io_uring::Builder {
    let mut b = IoUring::builder();
    b.dontfork().setup_cqsize(entries.saturating_mul(2));
    if flags.sqpoll {
        b.setup_sqpoll(sqpoll_idle_ms);
    }
    if flags.single_issuer {
        b.setup_single_issuer();
    }
    if flags.defer_taskrun {
        b.setup_defer_taskrun();
    }
    if flags.coop_taskrun {
        b.setup_coop_taskrun();
    }
    if flags.taskrun_flag {
        b.setup_taskrun_flag();
    }
    b
}

/// What the kernel's io_uring offers this process: setup flags, features and opcodes.
///
/// Tests and applications that need a newer kernel feature ask it and skip or fall
/// back when it is missing:
///
/// ```
/// let probe = runtime::Probe::get().expect("io_uring is available");
/// if !probe.supports(io_uring::opcode::MsgRingData::CODE) {
///     println!("skipped: this kernel lacks IORING_OP_MSG_RING");
/// }
/// if let Err(why) = probe.sqpoll() {
///     println!("no SQPOLL rings here: {why}");
/// }
/// ```
#[derive(Clone)]
pub struct Probe {
    /// The flags of a ring without `SQPOLL`, as the kernel accepted them.
    flags: RingFlags,
    opcodes: [u64; 4],
    ext_arg: bool,
    nodrop: bool,
    no_iowait: bool,
    /// Kernel release (major, minor) from uname, `(0, 0)` if unreadable.
    release: (u32, u32),
    /// The flags of an `SQPOLL` ring, or why there can be none; asked on first use.
    sqpoll: OnceLock<Result<RingFlags, (io::ErrorKind, String)>>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sqpoll = match self.sqpoll.get() {
            None => "not asked yet".to_owned(),
            Some(Ok(flags)) => flags.setup_names(),
            Some(Err((_, why))) => why.clone(),
        };
        f.debug_struct("Probe")
            .field("release", &self.release)
            .field("flags", &self.flags.setup_names())
            .field("sqpoll", &sqpoll)
            .field("ext_arg", &self.ext_arg)
            .field("nodrop", &self.nodrop)
            .field("no_iowait", &self.no_iowait)
            .finish_non_exhaustive()
    }
}

static PROBE: OnceLock<Probe> = OnceLock::new();

impl Probe {
    /// Asks the kernel once per process (later calls return the same answer).
    ///
    /// Fails with an error that says what to do when io_uring cannot be used at all:
    /// a kernel without it, `kernel.io_uring_disabled`, or a seccomp filter.
    pub fn get() -> io::Result<&'static Probe> {
        if let Some(p) = PROBE.get() {
            return Ok(p);
        }
        let probe = Probe::ask()?;
        Ok(PROBE.get_or_init(|| probe))
    }

    fn ask() -> io::Result<Probe> {
        const ENTRIES: u32 = 4;
        let mut flags = BEST;
        let ring = loop {
            match builder(flags, ENTRIES, 0).build(ENTRIES) {
                Ok(ring) => break ring,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match weaker(flags) {
                    Some(next) => flags = next,
                    None => return Err(super::setup_error(e, ENTRIES, flags)),
                },
                Err(e) => return Err(super::setup_error(e, ENTRIES, flags)),
            }
        };
        // A filter may let the ring be made and still deny the calls that use it.
        check_enter(&ring)?;
        let mut kernel = io_uring::Probe::new();
        let mut opcodes = [0u64; 4];
        // Kernels before 5.6 have no probe; they have none of the optional opcodes either.
        if ring.submitter().register_probe(&mut kernel).is_ok() {
            for code in 0..=255u8 {
                if kernel.is_supported(code) {
                    opcodes[usize::from(code / 64)] |= 1 << (code % 64);
                }
            }
        }
        let params = ring.params();
        Ok(Probe {
            flags,
            opcodes,
            ext_arg: params.is_feature_ext_arg(),
            nodrop: params.is_feature_nodrop(),
            no_iowait: params.is_feature_no_iowait(),
            release: kernel_release(),
            sqpoll: OnceLock::new(),
        })
    }

    /// Tries an `SQPOLL` ring: with `SINGLE_ISSUER` where rings get it, else (or when
    /// the kernel refuses the pair) alone.
    fn ask_sqpoll(&self) -> Result<RingFlags, (io::ErrorKind, String)> {
        const ENTRIES: u32 = 4;
        let mut flags = RingFlags {
            sqpoll: true,
            single_issuer: self.flags.single_issuer,
            ..RingFlags::default()
        };
        loop {
            let e = match builder(flags, ENTRIES, 1).build(ENTRIES) {
                Ok(ring) if ring.params().is_feature_sqpoll_nonfixed() => return Ok(flags),
                Ok(_) => {
                    return Err((
                        io::ErrorKind::Unsupported,
                        "this kernel's SQPOLL thread works only on registered files \
                         (IORING_FEAT_SQPOLL_NONFIXED, Linux 5.11), and the runtime's ops \
                         use plain fds"
                            .to_owned(),
                    ))
                }
                Err(e) => e,
            };
            if e.raw_os_error() == Some(libc::EINVAL) && flags.single_issuer {
                flags.single_issuer = false;
                continue;
            }
            let e = super::setup_error(e, ENTRIES, flags);
            return Err((e.kind(), e.to_string()));
        }
    }

    /// The flags of an `SQPOLL` ring, or an error that says why this kernel (or this
    /// process's privileges) gives none.
    fn sqpoll_flags(&self) -> io::Result<RingFlags> {
        match self.sqpoll.get_or_init(|| self.ask_sqpoll()) {
            Ok(flags) => Ok(*flags),
            Err((kind, why)) => Err(io::Error::new(
                *kind,
                format!("SQPOLL is unavailable: {why}"),
            )),
        }
    }

    /// Sets up one core's ring of `entries` with the flags the probe found, or with
    /// `SQPOLL` (idle time `sqpoll_idle`) and what the kernel takes with it; returns the
    /// ring and exactly the setup flags it was created with.
    ///
    /// A `pollable` ring has no `DEFER_TASKRUN`: its completions are posted (and its fd
    /// polls readable) without the thread entering the ring, so another reactor
    /// (epoll) that watches the fd wakes for them.
    pub(crate) fn setup_ring(
        &self,
        entries: u32,
        sqpoll_idle: Option<Duration>,
        pollable: bool,
    ) -> io::Result<(IoUring, RingFlags)> {
        let (mut flags, idle_ms) = match sqpoll_idle {
            // The kernel reads an idle time of 0 as its default of a second; the
            // nearest thing to "sleep at once" it takes is 1 ms.
            Some(idle) => (
                self.sqpoll_flags()?,
                u32::try_from(idle.as_millis()).unwrap_or(u32::MAX).max(1),
            ),
            None => (self.flags, 0),
        };
        flags.defer_taskrun &= !pollable;
        let ring = builder(flags, entries, idle_ms)
            .build(entries)
            .map_err(|e| super::setup_error(e, entries, flags))?;
        Ok((ring, flags))
    }

    /// Whether the kernel has this opcode (`io_uring::opcode::X::CODE`).
    pub fn supports(&self, opcode: u8) -> bool {
        self.opcodes[usize::from(opcode / 64)] & (1 << (opcode % 64)) != 0
    }

    /// Whether rings get `IORING_SETUP_SINGLE_ISSUER` (Linux 6.0+).
    pub fn single_issuer(&self) -> bool {
        self.flags.single_issuer
    }

    /// Whether rings get `IORING_SETUP_DEFER_TASKRUN` (Linux 6.1+; never with `SQPOLL`).
    pub fn defer_taskrun(&self) -> bool {
        self.flags.defer_taskrun
    }

    /// Whether rings get `IORING_SETUP_COOP_TASKRUN` and `TASKRUN_FLAG` (Linux 5.19+;
    /// never with `SQPOLL`).
    pub fn coop_taskrun(&self) -> bool {
        self.flags.coop_taskrun
    }

    /// `Ok` if rings can be set up with `IORING_SETUP_SQPOLL`
    /// ([`Builder::sqpoll`](crate::Builder::sqpoll)), else the error that says why not:
    /// the kernel refuses it, or (before Linux 5.11) it needs `CAP_SYS_ADMIN` or
    /// registered files.
    ///
    /// The first call sets up a small `SQPOLL` ring to find out (which starts and stops
    /// a kernel thread); later calls return the same answer.
    pub fn sqpoll(&self) -> io::Result<()> {
        self.sqpoll_flags().map(drop)
    }

    /// Whether `io_uring_enter` takes a timeout argument (`IORING_FEAT_EXT_ARG`, 5.11+).
    pub fn ext_arg(&self) -> bool {
        self.ext_arg
    }

    /// Whether a wait can ask not to be counted as waiting for I/O
    /// (`IORING_FEAT_NO_IOWAIT`, Linux 6.15+). Where it can, cores park with
    /// `IORING_ENTER_NO_IOWAIT`; before, an idle core shows up as iowait.
    pub fn no_iowait(&self) -> bool {
        self.no_iowait
    }

    /// The running kernel's release as (major, minor), from `uname`; `(0, 0)` if it
    /// could not be read. For messages and known kernel bugs only: features are asked
    /// of the kernel, never inferred from its version.
    pub fn kernel_release(&self) -> (u32, u32) {
        self.release
    }

    /// Whether multishot accept can be trusted: Linux 5.19 has it, but 6.6 to 6.8 could
    /// post invalid fds with `DEFER_TASKRUN`; there, accept one connection at a time.
    pub fn multishot_accept(&self) -> bool {
        let (major, minor) = self.release;
        let known_bad = self.flags.defer_taskrun && major == 6 && (6..=8).contains(&minor);
        (major, minor) >= (5, 19) && !known_bad
    }

    /// Whether multishot receive over a provided-buffer ring is there (Linux 6.0).
    pub fn multishot_recv(&self) -> bool {
        self.release >= (6, 0)
    }

    /// Whether `IORING_OP_SEND_ZC` is there (Linux 6.0).
    pub fn send_zc(&self) -> bool {
        self.supports(io_uring::opcode::SendZc::CODE)
    }

    /// Fails, saying why, when the kernel lacks a feature the runtime cannot do without.
    pub(crate) fn check_required(&self) -> io::Result<()> {
        let missing = if !self.ext_arg {
            "IORING_FEAT_EXT_ARG (timed waits, Linux 5.11)"
        } else if !self.nodrop {
            "IORING_FEAT_NODROP (no lost completions, Linux 5.5)"
        } else {
            return Ok(());
        };
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("this kernel's io_uring lacks {missing}; runtime needs Linux 5.11 or newer"),
        ))
    }
}

/// The running kernel's (major, minor) release, `(0, 0)` if it cannot be read.
pub(crate) fn kernel_release() -> (u32, u32) {
    // SAFETY: utsname is plain old data; uname fills it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // The pointer is to a live utsname.
    if super::syscall!(uname(&mut uts)).is_err() {
        return (0, 0);
    }
    let release: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let text = String::from_utf8_lossy(&release);
    let mut parts = text
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
}

/// Enters the ring once (with nothing to submit), to see that `io_uring_enter` is
/// allowed.
fn check_enter(ring: &io_uring::IoUring) -> io::Result<()> {
    ring.submitter().submit().map(drop).map_err(|e| {
        let hint = if e.raw_os_error() == Some(libc::EPERM) {
            "a seccomp filter denies it (Docker's default profile denies io_uring_setup, \
             io_uring_enter and io_uring_register); allow those three system calls"
        } else {
            "the ring cannot be used"
        };
        io::Error::new(
            e.kind(),
            format!("io_uring_setup worked but io_uring_enter failed ({e}): {hint}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::sys::uring::{RingFd, ENTER_GETEVENTS};

    #[test]
    fn weakening_drops_one_flag_at_a_time_and_ends() {
        let mut seen = vec![BEST];
        while let Some(next) = weaker(*seen.last().unwrap()) {
            seen.push(next);
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(*seen.last().unwrap(), RingFlags::default());
        // DEFER_TASKRUN is never tried without SINGLE_ISSUER, which it needs.
        assert!(seen.iter().all(|f| !f.defer_taskrun || f.single_issuer));
    }

    #[test]
    fn nop_is_always_supported() {
        let p = Probe::get().unwrap();
        assert!(p.supports(io_uring::opcode::Nop::CODE));
        assert!(std::ptr::eq(p, Probe::get().unwrap()));
    }

    /// The flags this kernel refuses with SQPOLL are refused, and the error names the
    /// very combination instead of guessing at the ring size.
    #[test]
    fn sqpoll_with_coop_taskrun_is_refused_and_the_error_names_the_flags() {
        let probe = Probe::get().unwrap();
        if !probe.coop_taskrun() {
            println!("skipped: this kernel lacks COOP_TASKRUN (Linux 5.19)");
            return;
        }
        let refused = RingFlags {
            sqpoll: true,
            coop_taskrun: true,
            taskrun_flag: true,
            ..RingFlags::default()
        };
        let err = builder(refused, 1024, 10)
            .build(1024)
            .map(drop)
            .expect_err("the kernel refuses COOP_TASKRUN with SQPOLL");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        let err = super::super::setup_error(err, 1024, refused);
        let msg = err.to_string();
        assert!(
            msg.contains(
                "io_uring_setup rejected SQPOLL|COOP_TASKRUN|TASKRUN_FLAG with 1024 entries"
            ),
            "{msg}"
        );
        assert!(!msg.contains("ring_entries must be"), "{msg}");
    }

    #[test]
    fn an_sqpoll_ring_gets_sqpoll_and_nothing_the_kernel_refuses_with_it() {
        let probe = Probe::get().unwrap();
        if let Err(why) = probe.sqpoll() {
            println!("skipped: {why}");
            return;
        }
        let (ring, flags) = probe
            .setup_ring(64, Some(Duration::from_millis(5)), false)
            .expect("the probe said SQPOLL works");
        assert!(flags.sqpoll && ring.params().is_setup_sqpoll(), "{flags}");
        assert!(!flags.defer_taskrun && !flags.coop_taskrun && !flags.taskrun_flag);
        assert_eq!(flags.single_issuer, ring.params().is_setup_single_issuer());
        if probe.release >= (6, 1) {
            assert!(
                flags.single_issuer,
                "6.1+ takes SQPOLL|SINGLE_ISSUER: {flags}"
            );
        }
    }

    /// Runs `io_uring_enter` on `fd` from a new thread, which did not create the ring.
    fn enter_from_another_thread(fd: i32, to_submit: u32, flags: u32) -> io::Result<u32> {
        std::thread::spawn(move || {
            RingFd::unregistered(fd).enter(
                to_submit,
                u32::from(flags & ENTER_GETEVENTS != 0),
                flags,
                Some(Duration::from_millis(1)),
            )
        })
        .join()
        .unwrap()
    }

    /// SINGLE_ISSUER and DEFER_TASKRUN are not only asked for: the kernel enforces
    /// them. A thread that did not create the ring may not submit to it (EEXIST), and
    /// with DEFER_TASKRUN may not wait on it either; a ring without the flags lets it.
    #[test]
    fn the_kernel_holds_a_ring_to_the_thread_that_made_it() {
        let probe = Probe::get().unwrap();
        if !probe.single_issuer() {
            println!("skipped: this kernel lacks SINGLE_ISSUER (Linux 6.0)");
            return;
        }
        let (ring, flags) = probe.setup_ring(8, None, false).unwrap();
        assert!(flags.single_issuer && ring.params().is_setup_single_issuer());
        let fd = ring.as_raw_fd();
        let submit = enter_from_another_thread(fd, 1, 0).expect_err("not the issuer");
        assert_eq!(submit.raw_os_error(), Some(libc::EEXIST), "{submit}");
        if flags.defer_taskrun {
            let wait = enter_from_another_thread(fd, 0, ENTER_GETEVENTS)
                .expect_err("DEFER_TASKRUN: only the issuer waits");
            assert_eq!(wait.raw_os_error(), Some(libc::EEXIST), "{wait}");
        } else {
            println!("not checked: this kernel lacks DEFER_TASKRUN (Linux 6.1)");
        }
        // The thread that made it may do both.
        let me = RingFd::unregistered(fd);
        assert_eq!(me.enter(1, 0, 0, None).unwrap(), 0);
        match me.enter(0, 1, ENTER_GETEVENTS, Some(Duration::from_millis(1))) {
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            other => panic!("a timed wait on an empty ring times out: {other:?}"),
        }
        // The control: without SINGLE_ISSUER another thread may submit.
        let plain = builder(RingFlags::default(), 8, 0).build(8).unwrap();
        assert_eq!(
            enter_from_another_thread(plain.as_raw_fd(), 1, 0).unwrap(),
            0
        );
    }
}
