//! A server under test in a process of its own: started on one CPU, waited on
//! until it listens, its CPU time read from `/proc`, killed and reaped when
//! dropped, whatever made the caller let go of it (an error, a panic), and
//! killed by the kernel if `benches` itself dies.

use std::io::{self, BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use runtime::Backend;

/// How long a server may take from its start to saying it listens.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server process, killed and reaped on drop.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    what: String,
}

impl ServerProcess {
    /// Starts `command` with only `cpu` in its CPU mask (set between fork and
    /// exec, so every thread it ever starts inherits it) and waits until a
    /// line of its standard output contains `marker`. `what` names the server
    /// in errors.
    pub fn start(mut command: Command, cpu: usize, marker: &str, what: &str) -> io::Result<Self> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed; it makes two syscalls, on memory of
        // its own stack, and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                set_affinity(0, cpu)?;
                kill_with_parent()
            });
        }
        let mut child = command
            .spawn()
            .map_err(|err| io::Error::new(err.kind(), format!("{what}: cannot start: {err}")))?;
        let stdout = child.stdout.take();
        // From here on, `server` kills the child whatever happens.
        let mut server = ServerProcess {
            child,
            what: what.to_string(),
        };
        let stdout = stdout.ok_or_else(|| server.error("no standard output to read"))?;
        let (ready, listening) = mpsc::channel();
        let marker = marker.to_string();
        // The reader goes on draining the server's output after the marker,
        // so that the server never blocks on a full pipe; it ends at EOF, when
        // the server is killed.
        thread::Builder::new()
            .name("server-stdout".to_string())
            .spawn(move || {
                let mut seen = false;
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if !seen && line.contains(&marker) {
                        seen = true;
                        let _ = ready.send(());
                    }
                }
            })?;
        match listening.recv_timeout(START_TIMEOUT) {
            Ok(()) => Ok(server),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = server.child.wait()?;
                Err(server.error(&format!("exited before it listened ({status})")))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(server.error(&format!(
                "did not say it listens within {} s",
                START_TIMEOUT.as_secs()
            ))),
        }
    }

    /// CPU time the server has used so far, user and system, all its threads
    /// (the kernel's io_uring workers included).
    pub fn cpu_time(&self) -> io::Result<Duration> {
        process_cpu_time(self.child.id())
            .map_err(|err| io::Error::new(err.kind(), format!("{}: {err}", self.what)))
    }

    /// Checks from the outside that the server runs on `backend`: its fds hold
    /// an io_uring instance for [`Backend::IoUring`], and an epoll instance and
    /// no io_uring one for [`Backend::Epoll`] (`/proc/<pid>/fd`).
    pub fn check_backend(&self, backend: Backend) -> io::Result<()> {
        let kinds = anon_inodes(self.child.id())
            .map_err(|err| self.error(&format!("cannot list its fds: {err}")))?;
        let has = |kind: &str| kinds.iter().any(|k| k == kind);
        let runs = match backend {
            Backend::IoUring => has("[io_uring]"),
            Backend::Epoll => has("[eventpoll]") && !has("[io_uring]"),
            Backend::Auto => true,
        };
        if runs {
            Ok(())
        } else {
            Err(self.error(&format!(
                "was asked to run on {backend}, but its fds are {}",
                if kinds.is_empty() {
                    "no anonymous inodes".to_string()
                } else {
                    kinds.join(", ")
                }
            )))
        }
    }

    fn error(&self, message: &str) -> io::Error {
        io::Error::other(format!("{}: {message}", self.what))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // The child may have exited already: then kill fails, and wait reaps it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kinds of the anonymous-inode fds of process `pid` (`[io_uring]`,
/// `[eventpoll]`, `[eventfd]`, ...), each once, from `/proc/<pid>/fd`.
pub fn anon_inodes(pid: u32) -> io::Result<Vec<String>> {
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        // An fd closed while the directory is read is no error.
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        if let Some(kind) = target.strip_prefix("anon_inode:") {
            if !kinds.iter().any(|k| k == kind) {
                kinds.push(kind.to_string());
            }
        }
    }
    kinds.sort();
    Ok(kinds)
}

/// User plus system CPU time of process `pid` and all its threads, from
/// `/proc/<pid>/stat` (in clock ticks, usually 10 ms).
pub fn process_cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces or
    // parentheses itself: count fields from the last `)`.
    let after_name = stat
        .rfind(')')
        .map(|end| &stat[end + 1..])
        .ok_or_else(|| io::Error::other(format!("unexpected /proc/{pid}/stat: {stat}")))?;
    let mut fields = after_name.split_whitespace();
    // Field 3 (state) is the first after the name; utime and stime are 14 and 15.
    let mut tick_field = |n: usize| -> io::Result<u64> {
        fields
            .nth(n)
            .and_then(|field| field.parse().ok())
            .ok_or_else(|| io::Error::other(format!("unexpected /proc/{pid}/stat: {stat}")))
    };
    let utime = tick_field(14 - 3)?;
    let stime = tick_field(0)?;
    Ok(ticks(utime + stime))
}

fn ticks(count: u64) -> Duration {
    // SAFETY: sysconf reads a constant of the system and touches no memory of ours.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).unwrap_or(100).max(1);
    Duration::from_nanos(count * 1_000_000_000 / per_second)
}

/// Sets the CPU mask of thread or process `pid` (0: the caller) to `cpu` alone.
/// Makes a single syscall and allocates nothing, so it may run between fork
/// and exec.
pub fn set_affinity(pid: libc::pid_t, cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain bits; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: `cpu` is within the set's bits (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(pid, std::mem::size_of_val(&set), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks the kernel to kill the calling process when its parent thread dies,
/// so that a server outlives no `benches` that was itself killed (then no
/// drop runs). One syscall, no allocation: it may run between fork and exec.
fn kill_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A loopback address with a port nobody listens on right now.
pub fn free_address() -> io::Result<SocketAddr> {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    probe.local_addr()
}

#[cfg(test)]
mod tests {
    use super::{anon_inodes, process_cpu_time};

    #[test]
    fn lists_the_kinds_of_our_anonymous_fds() {
        // SAFETY: epoll_create1 takes flags only; the fd it returns is ours to close.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(fd >= 0);
        let kinds = anon_inodes(std::process::id()).unwrap();
        // SAFETY: `fd` is open and nothing else uses it.
        unsafe { libc::close(fd) };
        assert!(kinds.iter().any(|k| k == "[eventpoll]"), "{kinds:?}");
    }

    #[test]
    fn reads_our_own_cpu_time() {
        let before = process_cpu_time(std::process::id()).unwrap();
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = process_cpu_time(std::process::id()).unwrap();
        assert!(after >= before);
    }
}
