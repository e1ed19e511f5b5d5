//! The silent far ends of the pending connections, held by a child process (this
//! binary, run as `benches hold ADDR COUNT`) so that this process's fd limit
//! goes to the runtime's ends: with both ends here, 16,000 connections would
//! need more fds than the hard limit of a small machine allows.
//!
//! The child runs on [`PEER_CPU`], connects `COUNT` times to `ADDR`, says so on
//! its standard output, and then sleeps until its standard input closes; it
//! never sends a byte. It is killed and reaped when its [`Holder`] drops, and by
//! the kernel if the thread that started it dies first.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Instant;

use super::{raise_fd_limit, PATIENCE, PEER_CPU};
use crate::net::process::set_affinity;

/// The first argument that makes `benches` the child.
pub const HOLD: &str = "hold";

/// What the child prints once every connection is made.
const HELD: &str = "held";

/// Fds of the child beyond its connections.
const SPARE_FDS: u64 = 64;

/// A listener with room in its backlog for a child that connects faster than
/// this process accepts.
pub fn listener() -> io::Result<TcpListener> {
    let socket = runtime::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    Ok(socket.listen(4096)?.into_std())
}

/// A running child that holds the far ends of `count` connections.
#[derive(Debug)]
pub struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Holder {
    /// Starts a child that connects `count` times to `listener`, accepts its
    /// connections and returns them with the child, once the child says it holds
    /// them all.
    pub fn start(listener: &TcpListener, count: usize) -> io::Result<(Holder, Vec<TcpStream>)> {
        let addr = listener.local_addr()?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .args([HOLD.to_string(), addr.to_string(), count.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: it makes two syscalls on memory of
        // its own stack and allocates nothing.
        unsafe {
            command.pre_exec(|| {
                set_affinity(0, PEER_CPU)?;
                die_with_parent()
            });
        }
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        // From here on, `holder` kills the child whatever happens.
        let mut holder = Holder { child, stdin };
        let accepted = holder.accept(listener, count)?;
        let stdout = stdout.ok_or_else(|| io::Error::other("the holder has no stdout"))?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != format!("{HELD} {count}") {
            return Err(io::Error::other(format!(
                "the holder said {:?} where it should say it holds {count} connections",
                line.trim()
            )));
        }
        Ok((holder, accepted))
    }

    /// Accepts the child's `count` connections, giving up if the child exits or
    /// [`PATIENCE`] runs out.
    fn accept(&mut self, listener: &TcpListener, count: usize) -> io::Result<Vec<TcpStream>> {
        listener.set_nonblocking(true)?;
        let deadline = Instant::now() + PATIENCE;
        let mut accepted = Vec::with_capacity(count);
        while accepted.len() < count {
            match listener.accept() {
                Ok((stream, _)) => accepted.push(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if let Some(status) = self.child.try_wait()? {
                        return Err(io::Error::other(format!(
                            "the holder exited ({status}) after {} of {count} connections",
                            accepted.len()
                        )));
                    }
                    if Instant::now() > deadline {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!(
                                "the holder made {} of {count} connections in {PATIENCE:?}",
                                accepted.len()
                            ),
                        ));
                    }
                    wait_readable(listener, 100)?;
                }
                Err(e) => return Err(e),
            }
        }
        listener.set_nonblocking(false)?;
        Ok(accepted)
    }

    /// Lets the child close its ends and exit, and reaps it.
    pub fn release(mut self) -> io::Result<()> {
        drop(self.stdin.take());
        let status = self.child.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("the holder failed: {status}")))
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // After `release` the child has been reaped: kill then fails, and wait
        // returns the status it has.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asks the kernel to kill the calling process when the thread that started it
/// dies. One syscall, no allocation: it may run between fork and exec.
fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits up to `millis` for `listener` to have a connection to accept.
fn wait_readable(listener: &TcpListener, millis: i32) -> io::Result<()> {
    let mut fds = [libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: `fds` is one valid pollfd, and poll writes only its `revents`.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 1, millis) };
    if rc < 0 {
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

/// The child's side: `args` are what follows `hold` on its command line.
pub fn hold(args: &[String]) -> io::Result<()> {
    let [addr, count] = args else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: benches hold ADDR COUNT",
        ));
    };
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("`{addr}`: {e}")))?;
    let count: usize = count
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("`{count}`: {e}")))?;
    let limit = raise_fd_limit(count as u64 + SPARE_FDS)?;
    if limit < count as u64 + SPARE_FDS {
        return Err(io::Error::other(format!(
            "{count} connections need {} fds, the fd limit is {limit}",
            count as u64 + SPARE_FDS
        )));
    }
    let held = (0..count)
        .map(|_| TcpStream::connect(addr))
        .collect::<io::Result<Vec<_>>>()?;
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{HELD} {}", held.len())?;
    stdout.flush()?;
    // Until the parent closes our stdin (or dies, and the kernel kills us).
    let mut rest = Vec::new();
    io::stdin().lock().read_to_end(&mut rest)?;
    drop(held);
    Ok(())
}
