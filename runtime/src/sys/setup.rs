//! Turning a failed `io_uring_setup` into an error a user can act on.
//!
//! Every message names what was asked of the kernel (the optional setup flags and the
//! entry count), so an `EINVAL` for a combination of flags is not mistaken for a bad
//! ring size.

use std::error::Error;
use std::fmt;
use std::io;

use crate::stats::RingFlags;

/// Why `io_uring_setup` failed, in words, with the kernel's error kept as the source.
#[derive(Debug)]
struct SetupError {
    message: String,
    source: io::Error,
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.source)
    }
}

impl Error for SetupError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// Explains a failed `io_uring_setup(entries, ..)` of a ring asked for with `flags`.
///
/// The kernel answers `EPERM` both for `kernel.io_uring_disabled` and for a seccomp
/// filter, so the sysctl is read to tell them apart; for `SQPOLL` it also means the
/// process lacks the privilege older kernels want for it.
pub(crate) fn setup_error(err: io::Error, entries: u32, flags: RingFlags) -> io::Error {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let asked = Asked {
        entries,
        flags,
        release: super::probe::kernel_release(),
    };
    let (kind, message) = explain(&err, &asked, disabled, super::memlock_limit());
    io::Error::new(
        kind,
        SetupError {
            message,
            source: err,
        },
    )
}

/// What the failed `io_uring_setup` asked for.
struct Asked {
    entries: u32,
    flags: RingFlags,
    /// The kernel's (major, minor) release, `(0, 0)` if unknown.
    release: (u32, u32),
}

impl Asked {
    /// `SQPOLL|SINGLE_ISSUER with 1024 entries`.
    fn describe(&self) -> String {
        format!("{} with {} entries", self.flags.setup_names(), self.entries)
    }
}

fn explain(
    err: &io::Error,
    asked: &Asked,
    disabled: Option<u32>,
    memlock: Option<u64>,
) -> (io::ErrorKind, String) {
    use io::ErrorKind::*;
    let entries = asked.entries;
    let what = asked.describe();
    let (major, minor) = asked.release;
    match err.raw_os_error() {
        Some(libc::ENOSYS) => (
            Unsupported,
            "io_uring is not available: io_uring_setup returned ENOSYS, so this kernel was \
             built without io_uring (CONFIG_IO_URING) or predates it. runtime needs Linux 5.11 \
             or newer with io_uring enabled"
                .into(),
        ),
        // The same process could set up a ring without SQPOLL (the probe did), so
        // this is SQPOLL's own privilege check.
        Some(libc::EPERM) if asked.flags.sqpoll => (
            PermissionDenied,
            format!(
                "io_uring_setup refused {what} (EPERM): before Linux 5.11 only a process \
                 with CAP_SYS_ADMIN may start an SQPOLL thread (this kernel is \
                 {major}.{minor}); run with that capability, on a newer kernel, or without \
                 Builder::sqpoll"
            ),
        ),
        Some(libc::EPERM) => (
            PermissionDenied,
            match disabled {
                Some(2) => "io_uring is disabled on this machine (sysctl kernel.io_uring_disabled \
                            = 2); re-enable it with `sysctl -w kernel.io_uring_disabled=0`"
                    .into(),
                Some(1) => "io_uring is restricted on this machine (sysctl \
                            kernel.io_uring_disabled = 1): only processes with CAP_SYS_ADMIN or \
                            in the group named by kernel.io_uring_group may use it; add this \
                            user to that group or set the sysctl to 0"
                    .into(),
                _ => "io_uring_setup was denied (EPERM) although kernel.io_uring_disabled allows \
                      it, so a seccomp filter blocks it, as Docker's default profile does; run \
                      with a seccomp profile that allows io_uring_setup, io_uring_enter and \
                      io_uring_register (for a test, `docker run --security-opt \
                      seccomp=unconfined`)"
                    .into(),
            },
        ),
        Some(libc::ENOMEM) => (
            OutOfMemory,
            format!(
                "io_uring_setup could not allocate {what}; kernels before \
                 5.12, and some later ones, charge ring memory to RLIMIT_MEMLOCK unless the \
                 process has CAP_IPC_LOCK, and the limit is {}: raise it (`ulimit -l`, or \
                 LimitMEMLOCK= for a systemd service) or ask for fewer ring entries",
                match memlock {
                    Some(bytes) => format!("{bytes} bytes"),
                    None => "unlimited".into(),
                }
            ),
        ),
        Some(libc::EINVAL) if entries == 0 || entries > 32768 => (
            InvalidInput,
            format!("io_uring_setup rejected {what}: ring_entries must be between 1 and 32768"),
        ),
        Some(libc::EINVAL) => (
            InvalidInput,
            format!(
                "io_uring_setup rejected {what}: this kernel ({major}.{minor}) does not \
                 accept that combination of setup flags (the entry count is in range){}",
                if asked.flags.sqpoll {
                    "; SQPOLL is taken with SINGLE_ISSUER at most, never with \
                     DEFER_TASKRUN, COOP_TASKRUN or TASKRUN_FLAG"
                } else {
                    ""
                }
            ),
        ),
        Some(libc::EMFILE) | Some(libc::ENFILE) => (
            Other,
            "io_uring_setup could not get a file descriptor: the process or system has too \
             many open files; raise `ulimit -n`"
                .into(),
        ),
        _ => (err.kind(), format!("io_uring_setup failed for {what}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    fn plain(entries: u32) -> Asked {
        Asked {
            entries,
            flags: RingFlags::default(),
            release: (6, 18),
        }
    }

    fn sqpoll(entries: u32, release: (u32, u32)) -> Asked {
        Asked {
            entries,
            flags: RingFlags {
                sqpoll: true,
                single_issuer: true,
                ..RingFlags::default()
            },
            release,
        }
    }

    #[test]
    fn eperm_is_explained_by_the_sysctl_first() {
        let (kind, msg) = explain(&os(libc::EPERM), &plain(8), Some(2), None);
        assert_eq!(kind, io::ErrorKind::PermissionDenied);
        assert!(msg.contains("io_uring_disabled = 2"), "{msg}");
        let (_, msg) = explain(&os(libc::EPERM), &plain(8), Some(1), None);
        assert!(msg.contains("io_uring_group"), "{msg}");
        let (_, msg) = explain(&os(libc::EPERM), &plain(8), Some(0), None);
        assert!(msg.contains("seccomp"), "{msg}");
    }

    #[test]
    fn eperm_for_sqpoll_is_its_privilege_not_seccomp() {
        let (kind, msg) = explain(&os(libc::EPERM), &sqpoll(1024, (5, 10)), Some(0), None);
        assert_eq!(kind, io::ErrorKind::PermissionDenied);
        assert!(
            msg.contains("SQPOLL|SINGLE_ISSUER with 1024 entries"),
            "{msg}"
        );
        assert!(
            msg.contains("CAP_SYS_ADMIN") && msg.contains("5.10"),
            "{msg}"
        );
        assert!(!msg.contains("seccomp"), "{msg}");
    }

    #[test]
    fn einval_names_the_flags_and_blames_the_size_only_when_it_is_out_of_range() {
        let (kind, msg) = explain(&os(libc::EINVAL), &sqpoll(1024, (6, 18)), None, None);
        assert_eq!(kind, io::ErrorKind::InvalidInput);
        assert!(
            msg.starts_with("io_uring_setup rejected SQPOLL|SINGLE_ISSUER with 1024 entries:"),
            "{msg}"
        );
        assert!(msg.contains("combination of setup flags"), "{msg}");
        assert!(!msg.contains("must be between"), "{msg}");
        let (_, msg) = explain(&os(libc::EINVAL), &plain(1 << 20), None, None);
        assert!(
            msg.contains("no optional flags with 1048576 entries"),
            "{msg}"
        );
        assert!(msg.contains("must be between 1 and 32768"), "{msg}");
    }

    #[test]
    fn enomem_names_the_memlock_limit() {
        let (kind, msg) = explain(&os(libc::ENOMEM), &plain(8), None, Some(65536));
        assert_eq!(kind, io::ErrorKind::OutOfMemory);
        assert!(msg.contains("65536 bytes"), "{msg}");
    }

    #[test]
    fn the_os_error_stays_in_the_message_and_source() {
        let err = setup_error(os(libc::ENOSYS), 8, RingFlags::default());
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("os error 38"), "{err}");
        let source = err.get_ref().and_then(|e| e.source()).unwrap();
        assert!(source.to_string().contains("os error 38"));
    }
}
