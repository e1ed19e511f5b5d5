//! The ceiling: echo and HTTP servers written straight against io_uring, with
//! nothing between the loop and the ring.
//!
//! One ring, set up as `runtime` sets up its rings (see [`crate::raw::ring`]),
//! with its fd registered. One accept is in flight at a time and is re-armed
//! when it completes. Each connection owns one buffer and has exactly one
//! operation in flight: a recv into its buffer, or a send of what is to go
//! back (re-issued for the rest after a short send), then the recv again.
//! `user_data` holds the connection's slot and the kind of operation.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};

use io_uring::{cqueue, opcode, squeue, types, SubmissionQueue, Submitter};

use super::http::{self, READ_BUFFER};
use super::Protocol;

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const KIND_BITS: u32 = 2;

/// One accepted connection.
struct Connection {
    stream: TcpStream,
    /// Received bytes; for HTTP the first `filled` are an unfinished request.
    buf: Vec<u8>,
    filled: usize,
    /// HTTP responses waiting to go out.
    out: Vec<u8>,
    /// Whether the send in flight is from `buf` (echo) or `out` (HTTP).
    echoing: bool,
    /// Bytes to send, and how many have gone.
    to_send: usize,
    sent: usize,
}

/// Serves `protocol` on `addr` until killed; calls `listening` once bound.
pub fn serve(protocol: Protocol, addr: SocketAddr, listening: &dyn Fn()) -> io::Result<()> {
    let listener = TcpListener::bind(addr)?;
    let mut ring = crate::raw::ring()?;
    let (mut submitter, mut sq, mut cq) = ring.split();
    submitter.register_ring_fd()?;
    let mut server = Server {
        protocol,
        submitter,
        listener,
        connections: Vec::new(),
        free: Vec::new(),
    };
    server.push_accept(&mut sq)?;
    listening();
    loop {
        sq.sync();
        match server.submitter.submit_and_wait(1) {
            // A wait cut short by a signal, or by the process being stopped
            // and resumed: the CQ is looked at all the same.
            Err(err) if err.raw_os_error() == Some(libc::EINTR) => {}
            result => {
                result?;
            }
        }
        cq.sync();
        for cqe in &mut cq {
            server.complete(&mut sq, &cqe)?;
        }
    }
}

struct Server<'a> {
    protocol: Protocol,
    submitter: Submitter<'a>,
    listener: TcpListener,
    connections: Vec<Option<Connection>>,
    free: Vec<usize>,
}

impl Server<'_> {
    fn complete(&mut self, sq: &mut SubmissionQueue<'_>, cqe: &cqueue::Entry) -> io::Result<()> {
        let slot = (cqe.user_data() >> KIND_BITS) as usize;
        let result = cqe.result();
        match cqe.user_data() & ((1 << KIND_BITS) - 1) {
            ACCEPT => {
                if result >= 0 {
                    // SAFETY: a successful accept returns a new socket fd that
                    // nothing else owns.
                    let stream = unsafe { TcpStream::from_raw_fd(result) };
                    self.open(sq, stream)?;
                } else if -result != libc::ECONNABORTED && -result != libc::EINTR {
                    return Err(io::Error::from_raw_os_error(-result));
                }
                self.push_accept(sq)
            }
            RECV if result <= 0 => {
                // EOF, or an error such as a reset: the connection is over.
                self.close(slot);
                Ok(())
            }
            RECV => self.received(sq, slot, result as usize),
            _ if result < 0 => {
                self.close(slot);
                Ok(())
            }
            _ => self.sent(sq, slot, result as usize),
        }
    }

    fn open(&mut self, sq: &mut SubmissionQueue<'_>, stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let connection = Connection {
            stream,
            buf: vec![0; READ_BUFFER],
            filled: 0,
            out: Vec::new(),
            echoing: false,
            to_send: 0,
            sent: 0,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.connections[slot] = Some(connection);
                slot
            }
            None => {
                self.connections.push(Some(connection));
                self.connections.len() - 1
            }
        };
        self.push_recv(sq, slot)
    }

    fn close(&mut self, slot: usize) {
        // No operation of this connection is in flight: it has one at a time,
        // and this is its completion. Dropping the stream closes the socket.
        if let Some(connection) = self.connections.get_mut(slot) {
            if connection.take().is_some() {
                self.free.push(slot);
            }
        }
    }

    fn received(&mut self, sq: &mut SubmissionQueue<'_>, slot: usize, n: usize) -> io::Result<()> {
        let Some(connection) = self.connections[slot].as_mut() else {
            return Ok(());
        };
        match self.protocol {
            Protocol::Echo => {
                connection.echoing = true;
                connection.to_send = n;
            }
            Protocol::Http => {
                connection.filled += n;
                let Ok(parsed) = http::parse(&connection.buf[..connection.filled]) else {
                    self.close(slot);
                    return Ok(());
                };
                if parsed.requests == 0 {
                    return self.push_recv(sq, slot);
                }
                http::respond(parsed.requests, &mut connection.out);
                connection
                    .buf
                    .copy_within(parsed.consumed..connection.filled, 0);
                connection.filled -= parsed.consumed;
                connection.echoing = false;
                connection.to_send = connection.out.len();
            }
        }
        connection.sent = 0;
        self.push_send(sq, slot)
    }

    fn sent(&mut self, sq: &mut SubmissionQueue<'_>, slot: usize, n: usize) -> io::Result<()> {
        let Some(connection) = self.connections[slot].as_mut() else {
            return Ok(());
        };
        connection.sent += n;
        if connection.sent < connection.to_send {
            self.push_send(sq, slot)
        } else {
            self.push_recv(sq, slot)
        }
    }

    fn push_accept(&mut self, sq: &mut SubmissionQueue<'_>) -> io::Result<()> {
        let fd = types::Fd(self.listener.as_raw_fd());
        let entry = opcode::Accept::new(fd, std::ptr::null_mut(), std::ptr::null_mut())
            .build()
            .user_data(ACCEPT);
        push(&mut self.submitter, sq, &entry)
    }

    fn push_recv(&mut self, sq: &mut SubmissionQueue<'_>, slot: usize) -> io::Result<()> {
        let Some(connection) = self.connections[slot].as_mut() else {
            return Ok(());
        };
        let free = &mut connection.buf[connection.filled..];
        let entry = opcode::Recv::new(
            types::Fd(connection.stream.as_raw_fd()),
            free.as_mut_ptr(),
            free.len() as u32,
        )
        .build()
        .user_data(((slot as u64) << KIND_BITS) | RECV);
        push(&mut self.submitter, sq, &entry)
    }

    fn push_send(&mut self, sq: &mut SubmissionQueue<'_>, slot: usize) -> io::Result<()> {
        let Some(connection) = self.connections[slot].as_mut() else {
            return Ok(());
        };
        let source = if connection.echoing {
            &connection.buf
        } else {
            &connection.out
        };
        let rest = &source[connection.sent..connection.to_send];
        let entry = opcode::Send::new(
            types::Fd(connection.stream.as_raw_fd()),
            rest.as_ptr(),
            rest.len() as u32,
        )
        .build()
        .user_data(((slot as u64) << KIND_BITS) | SEND);
        push(&mut self.submitter, sq, &entry)
    }
}

/// Pushes `entry`; if the submission queue is full, hands what is queued to
/// the kernel first.
pub fn push(
    submitter: &mut Submitter<'_>,
    sq: &mut SubmissionQueue<'_>,
    entry: &squeue::Entry,
) -> io::Result<()> {
    loop {
        // SAFETY: every entry pushed here points into a buffer owned by a
        // connection that keeps it, unmoved and untouched, until the entry's
        // completion is reaped: a connection has one operation in flight and
        // is dropped only on that operation's completion (or, in the load
        // client, after every operation has been reaped). Vec heap blocks do
        // not move when their owner does.
        if unsafe { sq.push(entry) }.is_ok() {
            return Ok(());
        }
        sq.sync();
        submitter.submit()?;
        sq.sync();
    }
}
