//! Which backend the cores run on: io_uring, or the readiness (epoll) fallback.

use std::fmt;
use std::io;
use std::str::FromStr;

use crate::driver::Choice;
use crate::sys::probe::Probe;

/// The environment variable that overrides [`Backend::Auto`].
pub const BACKEND_ENV: &str = "RUNTIME_BACKEND";

/// The I/O backend of a runtime's cores ([`Builder::backend`](crate::Builder::backend)).
///
/// Both run the same API with the same results. io_uring is the fast one: ops are
/// queued in the ring and a core makes one system call per turn for all of them. The
/// epoll backend runs where io_uring is denied (Docker's and Kubernetes' default
/// seccomp profiles, `kernel.io_uring_disabled`, gVisor, kernels before 5.11): each
/// op is its plain system call, tried at once and, if it would block, retried when
/// epoll says its fd is ready. What has no readiness equivalent becomes its plain
/// counterpart: registered buffers are plain buffers, provided-buffer receives are
/// receives into the same pooled buffers, a zero-copy send is a send, a wake-up of
/// another core is its eventfd; there is no registered-file table, and file I/O runs
/// on the core's thread (see `docs/architecture.md`).
///
/// ```
/// use runtime::{Backend, Builder};
///
/// let rt = Builder::new().cores(1).pin(false).backend(Backend::Epoll).build()?;
/// assert_eq!(rt.backend(), Backend::Epoll);
/// assert!(rt.fallback_reason().is_none(), "asked for, not fallen back to");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    /// io_uring where a ring can be set up, else epoll (the default). The environment
    /// variable `RUNTIME_BACKEND=io_uring|epoll` chooses instead.
    #[default]
    Auto,
    /// io_uring, or the error that says why it is unavailable and what to do.
    IoUring,
    /// The readiness backend, on epoll.
    Epoll,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = io::Error;

    /// `auto`, `io_uring` (or `io-uring`, `uring`) or `epoll`, in any case.
    fn from_str(s: &str) -> io::Result<Backend> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(Backend::Auto),
            "io_uring" | "io-uring" | "iouring" | "uring" => Ok(Backend::IoUring),
            "epoll" => Ok(Backend::Epoll),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown backend {other:?}: expected io_uring, epoll or auto"),
            )),
        }
    }
}

/// The backend the builder's choice comes to: with [`Backend::Auto`], the environment's
/// choice, else io_uring if the probe can set a ring up, else epoll and why.
pub(crate) fn choose(asked: Backend) -> io::Result<(Choice, Option<io::Error>)> {
    let asked = match asked {
        Backend::Auto => match std::env::var(BACKEND_ENV) {
            Ok(value) => value.parse().map_err(|e: io::Error| {
                io::Error::new(e.kind(), format!("{BACKEND_ENV}={value}: {e}"))
            })?,
            Err(_) => Backend::Auto,
        },
        other => other,
    };
    let ring = || -> io::Result<Choice> {
        let probe = Probe::get()?;
        probe.check_required()?;
        Ok(Choice::Ring(probe))
    };
    match asked {
        Backend::IoUring => Ok((ring()?, None)),
        Backend::Epoll => Ok((Choice::Epoll, None)),
        Backend::Auto => match ring() {
            Ok(choice) => Ok((choice, None)),
            Err(why) => Ok((Choice::Epoll, Some(why))),
        },
    }
}
