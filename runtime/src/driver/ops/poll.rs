use std::io;
use std::os::fd::RawFd;

use io_uring::{opcode, squeue::Entry, types};

use crate::buf::RingId;
use crate::driver::Completable;

/// A one-shot `IORING_OP_POLL_ADD`: completes once `fd` reports any of `events` (the
/// `poll(2)` bits), with the mask it reported. The kernel checks the file's state when
/// it arms the poll, so a file that is ready already completes it at once.
#[derive(Debug)]
pub(crate) struct PollAdd {
    fd: RawFd,
    events: u32,
}

impl PollAdd {
    pub(crate) fn new(fd: RawFd, events: u32) -> PollAdd {
        PollAdd { fd, events }
    }
}

// SAFETY: the SQE carries no pointer, only the fd and the event mask, so there is no
// memory for the kernel to use after the op is gone. (The kernel holds its own
// reference to the file while the poll is armed; `fd` returns the fd so that a
// hand-off of it waits for the last CQE of a poll dropped in flight.)
unsafe impl Completable for PollAdd {
    type Output = io::Result<u32>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::PollAdd::new(types::Fd(self.fd), self.events).build()
    }

    /// The events the file reported (a subset of those asked for, plus `POLLERR` and
    /// `POLLHUP`, which the kernel always reports); a negative result is the error.
    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<u32> {
        result
    }
}
