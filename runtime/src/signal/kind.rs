//! [`SignalKind`]: which signal a listener waits for, and which signals it refuses.

use std::fmt;
use std::io;

/// The standard signals are 1 to 31 on every Linux architecture; the realtime ones
/// follow, the first few of them taken by the C library.
const LAST_STANDARD: i32 = 31;

/// A signal a [`Signal`](super::Signal) listener can wait for.
///
/// The named constructors cover the signals a service usually handles;
/// [`from_raw`](SignalKind::from_raw) names any other. A kind is only a number: whether
/// the signal may be waited for is decided when a listener is made, and a refused one
/// (`SIGKILL`, `SIGSTOP`, the fault signals, `SIGABRT`, numbers that are no signal)
/// gives that listener an [`InvalidInput`](io::ErrorKind::InvalidInput) error that
/// says why (see the [module docs](super#which-signals-can-be-waited-for)).
///
/// ```
/// use runtime::signal::SignalKind;
///
/// assert_eq!(SignalKind::terminate().as_raw(), libc::SIGTERM);
/// assert_eq!(SignalKind::from_raw(libc::SIGHUP), SignalKind::hangup());
/// assert_eq!(SignalKind::user_defined1().to_string(), "SIGUSR1");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

impl SignalKind {
    /// `SIGINT`: Ctrl-C in a terminal.
    pub const fn interrupt() -> SignalKind {
        SignalKind(libc::SIGINT)
    }

    /// `SIGTERM`: a request to stop. `kill PID` sends it, and so do `docker stop`,
    /// Kubernetes (which sends `SIGKILL` when the grace period is over) and systemd.
    pub const fn terminate() -> SignalKind {
        SignalKind(libc::SIGTERM)
    }

    /// `SIGHUP`: the controlling terminal went away. Services often take it as "reload
    /// the configuration".
    pub const fn hangup() -> SignalKind {
        SignalKind(libc::SIGHUP)
    }

    /// `SIGQUIT`: Ctrl-\ in a terminal. Its default action also dumps core.
    pub const fn quit() -> SignalKind {
        SignalKind(libc::SIGQUIT)
    }

    /// `SIGUSR1`: no meaning of its own; a program gives it one.
    pub const fn user_defined1() -> SignalKind {
        SignalKind(libc::SIGUSR1)
    }

    /// `SIGUSR2`: no meaning of its own; a program gives it one.
    pub const fn user_defined2() -> SignalKind {
        SignalKind(libc::SIGUSR2)
    }

    /// `SIGCHLD`: a child process ended, stopped or went on. Waiting for it does not
    /// reap the child; that is still `waitpid`'s job. A process that had it ignored
    /// (`SIG_IGN`, whose children are reaped by the kernel) keeps zombies from then on
    /// until it waits for them.
    pub const fn child() -> SignalKind {
        SignalKind(libc::SIGCHLD)
    }

    /// `SIGWINCH`: the terminal's window changed size.
    pub const fn window_change() -> SignalKind {
        SignalKind(libc::SIGWINCH)
    }

    /// `SIGPIPE`: a write to a pipe or socket whose reading end is closed. Rust programs
    /// ignore it from the start, and the write fails with `BrokenPipe`; with a listener
    /// the write still fails so, and the listener wakes as well. The runtime's own
    /// socket writes never raise it.
    pub const fn pipe() -> SignalKind {
        SignalKind(libc::SIGPIPE)
    }

    /// `SIGALRM`: a timer of `alarm(2)` or `setitimer(ITIMER_REAL)` expired.
    pub const fn alarm() -> SignalKind {
        SignalKind(libc::SIGALRM)
    }

    /// The signal of number `signum`, for instance a realtime signal
    /// (`libc::SIGRTMIN() + n`). Any number is taken here; a listener for one that
    /// cannot be waited for fails with `InvalidInput`.
    pub const fn from_raw(signum: i32) -> SignalKind {
        SignalKind(signum)
    }

    /// The signal's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }

    /// Whether a handler may be installed for this signal; if not, an
    /// `InvalidInput` error that says why.
    pub(super) fn check(self) -> io::Result<()> {
        let refuse = |why: String| Err(io::Error::new(io::ErrorKind::InvalidInput, why));
        let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        match self.0 {
            n if n < 1 || n > rtmax => refuse(format!(
                "{n} is not a signal number: signals on this system are 1 to {rtmax}"
            )),
            libc::SIGKILL | libc::SIGSTOP => refuse(format!(
                "{self} cannot be waited for: the kernel never lets a process catch \
                 SIGKILL or SIGSTOP"
            )),
            libc::SIGSEGV
            | libc::SIGBUS
            | libc::SIGILL
            | libc::SIGFPE
            | libc::SIGTRAP
            | libc::SIGSYS => refuse(format!(
                "{self} cannot be waited for: it reports a fault of the instruction a \
                 thread was running (bad memory access, illegal instruction, arithmetic \
                 fault, breakpoint or forbidden system call), and catching it would hide \
                 the fault instead of letting it end the process"
            )),
            libc::SIGABRT => refuse(format!(
                "{self} cannot be waited for: abort() sends it to end the process (a \
                 failed C assertion, a Rust panic with panic=abort), and it must stay fatal"
            )),
            n if n > LAST_STANDARD && n < rtmin => refuse(format!(
                "signal {n} cannot be waited for: the C library keeps it for its threads; \
                 the realtime signals a program may use are SIGRTMIN ({rtmin}) to \
                 SIGRTMAX ({rtmax})"
            )),
            _ => Ok(()),
        }
    }
}

/// The signal's name: `SIGTERM`, `SIGRTMIN`, `SIGRTMIN+2`, or `signal N` for a number
/// with no name.
impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.0 {
            libc::SIGHUP => "SIGHUP",
            libc::SIGINT => "SIGINT",
            libc::SIGQUIT => "SIGQUIT",
            libc::SIGILL => "SIGILL",
            libc::SIGTRAP => "SIGTRAP",
            libc::SIGABRT => "SIGABRT",
            libc::SIGBUS => "SIGBUS",
            libc::SIGFPE => "SIGFPE",
            libc::SIGKILL => "SIGKILL",
            libc::SIGUSR1 => "SIGUSR1",
            libc::SIGSEGV => "SIGSEGV",
            libc::SIGUSR2 => "SIGUSR2",
            libc::SIGPIPE => "SIGPIPE",
            libc::SIGALRM => "SIGALRM",
            libc::SIGTERM => "SIGTERM",
            libc::SIGCHLD => "SIGCHLD",
            libc::SIGCONT => "SIGCONT",
            libc::SIGSTOP => "SIGSTOP",
            libc::SIGTSTP => "SIGTSTP",
            libc::SIGTTIN => "SIGTTIN",
            libc::SIGTTOU => "SIGTTOU",
            libc::SIGURG => "SIGURG",
            libc::SIGXCPU => "SIGXCPU",
            libc::SIGXFSZ => "SIGXFSZ",
            libc::SIGVTALRM => "SIGVTALRM",
            libc::SIGPROF => "SIGPROF",
            libc::SIGWINCH => "SIGWINCH",
            libc::SIGIO => "SIGIO",
            libc::SIGSYS => "SIGSYS",
            n if n == libc::SIGRTMIN() => "SIGRTMIN",
            n if n > libc::SIGRTMIN() && n <= libc::SIGRTMAX() => {
                return write!(f, "SIGRTMIN+{}", n - libc::SIGRTMIN());
            }
            n => return write!(f, "signal {n}"),
        };
        f.write_str(name)
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalKind({self})")
    }
}
