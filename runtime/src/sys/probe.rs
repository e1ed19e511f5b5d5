//! What this kernel's io_uring supports, asked once per process.
//!
//! Setup flags are found by trying them: the kernel answers `EINVAL` for a flag it does
//! not know, and the probe drops flags one at a time, best first, until a ring is made.
//! Opcodes are asked with `IORING_REGISTER_PROBE`. The answer is kept for the life of
//! the process, so every core's ring is set up alike without trying again.

use std::io;
use std::sync::OnceLock;

use io_uring::IoUring;

/// The optional setup flags a ring may get, each only where the kernel has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SetupFlags {
    pub(crate) single_issuer: bool,
    pub(crate) defer_taskrun: bool,
    pub(crate) coop_taskrun: bool,
}

impl SetupFlags {
    const ALL: SetupFlags = SetupFlags {
        single_issuer: true,
        defer_taskrun: true,
        coop_taskrun: true,
    };

    /// The next weaker set to try after `EINVAL`, or `None` when nothing is left to drop.
    fn weaker(self) -> Option<SetupFlags> {
        let mut next = self;
        if next.defer_taskrun {
            next.defer_taskrun = false;
        } else if next.single_issuer {
            next.single_issuer = false;
        } else if next.coop_taskrun {
            next.coop_taskrun = false;
        } else {
            return None;
        }
        Some(next)
    }

    /// A ring builder with these flags (plus the ones every ring gets).
    pub(crate) fn builder(self, entries: u32, sqpoll_idle_ms: Option<u32>) -> io_uring::Builder {
        let mut b = IoUring::builder();
        b.dontfork().setup_cqsize(entries.saturating_mul(2));
        if self.single_issuer {
            b.setup_single_issuer();
        }
        // The kernel refuses DEFER_TASKRUN with SQPOLL: completions would have to be
        // run by a thread that never enters.
        if self.defer_taskrun && sqpoll_idle_ms.is_none() {
            b.setup_defer_taskrun();
        }
        if self.coop_taskrun {
            b.setup_coop_taskrun().setup_taskrun_flag();
        }
        if let Some(idle) = sqpoll_idle_ms {
            b.setup_sqpoll(idle);
        }
        b
    }
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
/// ```
#[derive(Clone)]
pub struct Probe {
    flags: SetupFlags,
    opcodes: [u64; 4],
    ext_arg: bool,
    nodrop: bool,
    /// Kernel release (major, minor) from uname, `(0, 0)` if unreadable.
    release: (u32, u32),
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("single_issuer", &self.flags.single_issuer)
            .field("defer_taskrun", &self.flags.defer_taskrun)
            .field("coop_taskrun", &self.flags.coop_taskrun)
            .field("ext_arg", &self.ext_arg)
            .field("nodrop", &self.nodrop)
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
        let mut flags = SetupFlags::ALL;
        let ring = loop {
            match flags.builder(ENTRIES, None).build(ENTRIES) {
                Ok(ring) => break ring,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match flags.weaker() {
                    Some(weaker) => flags = weaker,
                    None => return Err(super::setup_error(e, ENTRIES)),
                },
                Err(e) => return Err(super::setup_error(e, ENTRIES)),
            }
        };
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
            release: kernel_release(),
        })
    }

    /// Whether the kernel has this opcode (`io_uring::opcode::X::CODE`).
    pub fn supports(&self, opcode: u8) -> bool {
        self.opcodes[usize::from(opcode / 64)] & (1 << (opcode % 64)) != 0
    }

    /// Whether rings get `IORING_SETUP_SINGLE_ISSUER` (Linux 6.0+).
    pub fn single_issuer(&self) -> bool {
        self.flags.single_issuer
    }

    /// Whether rings get `IORING_SETUP_DEFER_TASKRUN` (Linux 6.1+).
    pub fn defer_taskrun(&self) -> bool {
        self.flags.defer_taskrun
    }

    /// Whether rings get `IORING_SETUP_COOP_TASKRUN` and `TASKRUN_FLAG` (Linux 5.19+).
    pub fn coop_taskrun(&self) -> bool {
        self.flags.coop_taskrun
    }

    /// Whether `io_uring_enter` takes a timeout argument (`IORING_FEAT_EXT_ARG`, 5.11+).
    pub fn ext_arg(&self) -> bool {
        self.ext_arg
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

    pub(crate) fn setup_flags(&self) -> SetupFlags {
        self.flags
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
fn kernel_release() -> (u32, u32) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weakening_drops_one_flag_at_a_time_and_ends() {
        let mut seen = vec![SetupFlags::ALL];
        while let Some(next) = seen.last().unwrap().weaker() {
            seen.push(next);
        }
        assert_eq!(seen.len(), 4);
        assert_eq!(
            *seen.last().unwrap(),
            SetupFlags {
                single_issuer: false,
                defer_taskrun: false,
                coop_taskrun: false
            }
        );
    }

    #[test]
    fn nop_is_always_supported() {
        let p = Probe::get().unwrap();
        assert!(p.supports(io_uring::opcode::Nop::CODE));
        assert!(std::ptr::eq(p, Probe::get().unwrap()));
    }
}
