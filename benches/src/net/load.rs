//! The echo load: many connections driven by one thread through one io_uring
//! ring, so that the load itself costs little and runs on one CPU.
//!
//! Every connection is a closed loop: it sends one message, reads until the
//! whole echo is back, checks that the echo is byte for byte what it sent, and
//! sends the next. The send and the receive of a message are in flight
//! together. Each message carries its sequence number in its first bytes, so an
//! echo of an older message does not pass for the current one.
//!
//! No wait is unbounded: a server that stops answering fails the run after
//! a few seconds instead of hanging it. Before it returns, for success or
//! error, the client shuts every socket down and reaps every operation still
//! in flight: no buffer is freed while the kernel may still write into it.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, types, CompletionQueue, IoUring, SubmissionQueue};

use super::raw::push;
use super::Window;

/// The shape of an echo load.
#[derive(Debug, Clone, Copy)]
pub struct EchoLoad {
    /// Connections, each with one message in flight at a time.
    pub connections: usize,
    /// Bytes per message.
    pub size: usize,
    /// Time the load runs before the measured window opens.
    pub warmup: Duration,
    /// Length of the measured window.
    pub window: Duration,
}

/// The longest one wait for a completion lasts before the clock is looked at.
const WAIT_STEP: Duration = Duration::from_millis(100);

/// A server that completes no echo for this long has stalled: the run fails.
const STALL: Duration = Duration::from_secs(5);

/// The bits of `user_data` that say which operation completed.
const SEND: u64 = 0;
const RECV: u64 = 1;

/// One connection of the load and the message it has in flight.
struct Connection {
    stream: TcpStream,
    message: Vec<u8>,
    echo: Vec<u8>,
    sent: usize,
    received: usize,
    sequence: u64,
    sending: bool,
    receiving: bool,
}

impl Connection {
    fn new(stream: TcpStream, index: usize, size: usize) -> Self {
        // A pattern that differs from connection to connection.
        let message = (0..size)
            .map(|i| (i as u8).wrapping_mul(31) ^ (index as u8))
            .collect();
        Connection {
            stream,
            message,
            echo: vec![0; size],
            sent: 0,
            received: 0,
            sequence: 0,
            sending: false,
            receiving: false,
        }
    }

    fn in_flight(&self) -> usize {
        usize::from(self.sending) + usize::from(self.receiving)
    }
}

/// Connects `load.connections` connections to `addr` and runs the load:
/// `load.warmup`, then the measured window of `load.window`. `server_cpu` is
/// called as the window opens and as it closes; the difference is the
/// window's CPU time.
pub fn run(
    addr: SocketAddr,
    load: &EchoLoad,
    server_cpu: &mut dyn FnMut() -> io::Result<Duration>,
) -> io::Result<Window> {
    if load.size == 0 {
        return Err(io::Error::other("echo messages must not be empty"));
    }
    let mut connections = Vec::with_capacity(load.connections);
    for index in 0..load.connections {
        let stream = TcpStream::connect(addr)
            .map_err(|err| context(err, &format!("connection {index}: connect")))?;
        stream.set_nodelay(true)?;
        connections.push(Connection::new(stream, index, load.size));
    }
    let entries = (2 * load.connections).next_power_of_two().max(8) as u32;
    let mut ring = IoUring::builder()
        .dontfork()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .setup_cqsize(2 * entries)
        .build(entries)?;
    let (submitter, mut sq, mut cq) = ring.split();
    let mut client = Client {
        submitter,
        connections: &mut connections,
        completed: 0,
        running: true,
    };
    let result = client.drive(&mut sq, &mut cq, load, server_cpu);
    if let Err(err) = client.quiesce(&mut sq, &mut cq) {
        // The kernel may still own buffers: leak them rather than free them
        // under its feet.
        std::mem::forget(connections);
        return Err(context(err, "cannot reap the load's last operations"));
    }
    result
}

struct Client<'a> {
    submitter: io_uring::Submitter<'a>,
    connections: &'a mut Vec<Connection>,
    completed: u64,
    running: bool,
}

impl Client<'_> {
    fn drive(
        &mut self,
        sq: &mut SubmissionQueue<'_>,
        cq: &mut CompletionQueue<'_>,
        load: &EchoLoad,
        server_cpu: &mut dyn FnMut() -> io::Result<Duration>,
    ) -> io::Result<Window> {
        for index in 0..self.connections.len() {
            self.start_message(sq, index)?;
        }
        let warm = Instant::now() + load.warmup;
        self.turn_until(sq, cq, warm)?;
        let (start, cpu_start, done_start) = (Instant::now(), server_cpu()?, self.completed);
        self.turn_until(sq, cq, start + load.window)?;
        let (end, cpu_end, done_end) = (Instant::now(), server_cpu()?, self.completed);
        Ok(Window {
            ops: done_end - done_start,
            wall: end - start,
            cpu: cpu_end.saturating_sub(cpu_start),
            rate: None,
        })
    }

    /// Submits, waits for completions and handles every one there is, until
    /// `deadline`.
    fn turn_until(
        &mut self,
        sq: &mut SubmissionQueue<'_>,
        cq: &mut CompletionQueue<'_>,
        deadline: Instant,
    ) -> io::Result<()> {
        let mut progress = Instant::now();
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(());
            }
            if now - progress > STALL {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the server echoed nothing for {} s ({} connections waiting)",
                        STALL.as_secs(),
                        self.connections
                            .iter()
                            .filter(|c| c.in_flight() > 0)
                            .count()
                    ),
                ));
            }
            let done = self.completed;
            self.turn(sq, cq)?;
            if self.completed != done {
                progress = Instant::now();
            }
        }
    }

    /// Submits what is queued, waits up to [`WAIT_STEP`] for a completion, and
    /// handles every completion there is.
    fn turn(
        &mut self,
        sq: &mut SubmissionQueue<'_>,
        cq: &mut CompletionQueue<'_>,
    ) -> io::Result<()> {
        sq.sync();
        let timeout = types::Timespec::from(WAIT_STEP);
        let args = types::SubmitArgs::new().timespec(&timeout);
        match self.submitter.submit_with_args(1, &args) {
            Ok(_) => {}
            // Timed out, or a signal came: look at the clock and wait again.
            Err(err) if matches!(err.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
            Err(err) => return Err(err),
        }
        cq.sync();
        for cqe in &mut *cq {
            self.complete(sq, &cqe)?;
        }
        Ok(())
    }

    fn complete(&mut self, sq: &mut SubmissionQueue<'_>, cqe: &cqueue::Entry) -> io::Result<()> {
        let index = (cqe.user_data() >> 1) as usize;
        let kind = cqe.user_data() & 1;
        let result = cqe.result();
        let running = self.running;
        let connection = &mut self.connections[index];
        if kind == SEND {
            connection.sending = false;
        } else {
            connection.receiving = false;
        }
        if !running {
            return Ok(());
        }
        if result < 0 {
            let op = if kind == SEND { "send" } else { "recv" };
            let err = io::Error::from_raw_os_error(-result);
            return Err(context(err, &format!("connection {index}: {op}")));
        }
        let size = connection.message.len();
        if kind == SEND {
            connection.sent += result as usize;
            if connection.sent < size {
                return self.push_send(sq, index);
            }
        } else {
            if result == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection {index}: the server closed the connection \
                         with {} of {size} bytes of an echo back",
                        connection.received
                    ),
                ));
            }
            connection.received += result as usize;
            if connection.received < size {
                return self.push_recv(sq, index);
            }
        }
        if connection.in_flight() == 0 {
            if connection.echo != connection.message {
                let at = connection
                    .echo
                    .iter()
                    .zip(&connection.message)
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "connection {index}: message {} came back wrong from byte {at} on",
                        connection.sequence
                    ),
                ));
            }
            self.completed += 1;
            connection.sequence += 1;
            self.start_message(sq, index)?;
        }
        Ok(())
    }

    fn start_message(&mut self, sq: &mut SubmissionQueue<'_>, index: usize) -> io::Result<()> {
        let connection = &mut self.connections[index];
        let stamp = connection.sequence.to_le_bytes();
        let n = stamp.len().min(connection.message.len());
        connection.message[..n].copy_from_slice(&stamp[..n]);
        connection.sent = 0;
        connection.received = 0;
        self.push_send(sq, index)?;
        self.push_recv(sq, index)
    }

    fn push_send(&mut self, sq: &mut SubmissionQueue<'_>, index: usize) -> io::Result<()> {
        let connection = &mut self.connections[index];
        let rest = &connection.message[connection.sent..];
        let fd = types::Fd(connection.stream.as_raw_fd());
        let entry = opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32)
            .build()
            .user_data(((index as u64) << 1) | SEND);
        connection.sending = true;
        push(&mut self.submitter, sq, &entry)
    }

    fn push_recv(&mut self, sq: &mut SubmissionQueue<'_>, index: usize) -> io::Result<()> {
        let connection = &mut self.connections[index];
        let rest = &mut connection.echo[connection.received..];
        let fd = types::Fd(connection.stream.as_raw_fd());
        let entry = opcode::Recv::new(fd, rest.as_mut_ptr(), rest.len() as u32)
            .build()
            .user_data(((index as u64) << 1) | RECV);
        connection.receiving = true;
        push(&mut self.submitter, sq, &entry)
    }

    /// Stops the load: shuts every socket down, which ends its pending
    /// operations, and reaps until none is left in flight.
    fn quiesce(
        &mut self,
        sq: &mut SubmissionQueue<'_>,
        cq: &mut CompletionQueue<'_>,
    ) -> io::Result<()> {
        self.running = false;
        for connection in self.connections.iter() {
            let _ = connection.stream.shutdown(std::net::Shutdown::Both);
        }
        let deadline = Instant::now() + STALL;
        while self.connections.iter().any(|c| c.in_flight() > 0) {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "operations still in flight after every socket was shut down",
                ));
            }
            self.turn(sq, cq)?;
        }
        Ok(())
    }
}

fn context(err: io::Error, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{what}: {err}"))
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::thread;
    use std::time::Duration;

    use super::{run, EchoLoad};

    /// A blocking echo server, a thread per connection, that flips the last
    /// byte of every `corrupt_every`-th read (never if 0).
    fn echo_server(corrupt_every: usize) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                thread::spawn(move || {
                    let mut buf = [0; 4096];
                    let mut reads = 0;
                    loop {
                        let n = match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        reads += 1;
                        if corrupt_every > 0 && reads % corrupt_every == 0 {
                            buf[n - 1] ^= 1;
                        }
                        if stream.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    fn load(size: usize) -> EchoLoad {
        EchoLoad {
            connections: 4,
            size,
            warmup: Duration::from_millis(10),
            window: Duration::from_millis(100),
        }
    }

    #[test]
    fn counts_checked_echoes() {
        let addr = echo_server(0);
        let mut cpu_reads = 0;
        let window = run(addr, &load(100), &mut || {
            cpu_reads += 1;
            Ok(Duration::from_millis(cpu_reads))
        })
        .unwrap();
        assert!(window.ops > 0);
        assert_eq!(cpu_reads, 2, "CPU time read as the window opens and closes");
        assert_eq!(window.cpu, Duration::from_millis(1));
        assert!(window.wall >= Duration::from_millis(100));
    }

    #[test]
    fn a_wrong_echo_fails_the_run() {
        let addr = echo_server(50);
        let err = run(addr, &load(64), &mut || Ok(Duration::ZERO)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }
}
