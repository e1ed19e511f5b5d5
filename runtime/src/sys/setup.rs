//! Turning a failed `io_uring_setup` into an error a user can act on.

use std::error::Error;
use std::fmt;
use std::io;

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

/// Explains a failed `io_uring_setup(entries, ..)`.
///
/// The kernel answers `EPERM` both for `kernel.io_uring_disabled` and for a seccomp
/// filter, so the sysctl is read to tell them apart.
pub(crate) fn setup_error(err: io::Error, entries: u32) -> io::Error {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let (kind, message) = explain(&err, entries, disabled, super::memlock_limit());
    io::Error::new(
        kind,
        SetupError {
            message,
            source: err,
        },
    )
}

fn explain(
    err: &io::Error,
    entries: u32,
    disabled: Option<u32>,
    memlock: Option<u64>,
) -> (io::ErrorKind, String) {
    use io::ErrorKind::*;
    match err.raw_os_error() {
        Some(libc::ENOSYS) => (
            Unsupported,
            "io_uring is not available: io_uring_setup returned ENOSYS, so this kernel was \
             built without io_uring (CONFIG_IO_URING) or predates it. runtime needs Linux 5.11 \
             or newer with io_uring enabled"
                .into(),
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
                "io_uring_setup could not allocate a ring of {entries} entries; kernels before \
                 5.12, and some later ones, charge ring memory to RLIMIT_MEMLOCK unless the \
                 process has CAP_IPC_LOCK, and the limit is {}: raise it (`ulimit -l`, or \
                 LimitMEMLOCK= for a systemd service) or ask for fewer ring entries",
                match memlock {
                    Some(bytes) => format!("{bytes} bytes"),
                    None => "unlimited".into(),
                }
            ),
        ),
        Some(libc::EINVAL) => (
            InvalidInput,
            format!(
                "io_uring_setup rejected a ring of {entries} entries: ring_entries must be \
                 between 1 and 32768"
            ),
        ),
        Some(libc::EMFILE) | Some(libc::ENFILE) => (
            Other,
            "io_uring_setup could not get a file descriptor: the process or system has too \
             many open files; raise `ulimit -n`"
                .into(),
        ),
        _ => (err.kind(), "io_uring_setup failed".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn eperm_is_explained_by_the_sysctl_first() {
        let (kind, msg) = explain(&os(libc::EPERM), 8, Some(2), None);
        assert_eq!(kind, io::ErrorKind::PermissionDenied);
        assert!(msg.contains("io_uring_disabled = 2"), "{msg}");
        let (_, msg) = explain(&os(libc::EPERM), 8, Some(1), None);
        assert!(msg.contains("io_uring_group"), "{msg}");
        let (_, msg) = explain(&os(libc::EPERM), 8, Some(0), None);
        assert!(msg.contains("seccomp"), "{msg}");
    }

    #[test]
    fn enomem_names_the_memlock_limit() {
        let (kind, msg) = explain(&os(libc::ENOMEM), 8, None, Some(65536));
        assert_eq!(kind, io::ErrorKind::OutOfMemory);
        assert!(msg.contains("65536 bytes"), "{msg}");
    }

    #[test]
    fn the_os_error_stays_in_the_message_and_source() {
        let err = setup_error(os(libc::ENOSYS), 8);
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("os error 38"), "{err}");
        let source = err.get_ref().and_then(|e| e.source()).unwrap();
        assert!(source.to_string().contains("os error 38"));
    }
}
