use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use io_uring::{cqueue, opcode, squeue::Entry, types};

use crate::buf::ring::{BufRing, GROUP};
use crate::buf::{RecvBuf, RingId};
use crate::driver::{Exec, Multishot, Runner, Step, CQE_BUFFER_SHIFT, CQE_F_BUFFER, CQE_F_MORE};

/// Multishot `IORING_OP_RECV` over the core's provided-buffer ring (Linux 6.0): each
/// CQE names the buffer the kernel filled. A buffer nobody takes (the stream was
/// dropped) goes straight back to the ring.
#[derive(Debug)]
pub(crate) struct RecvMulti {
    fd: RawFd,
    ring: Rc<BufRing>,
}

impl RecvMulti {
    pub(crate) fn new(fd: RawFd, ring: Rc<BufRing>) -> RecvMulti {
        RecvMulti { fd, ring }
    }

    pub(crate) fn ring(&self) -> &Rc<BufRing> {
        &self.ring
    }
}

/// What one CQE of a multishot receive carries.
#[derive(Debug)]
pub(crate) enum Received {
    Data(RecvBuf),
    /// The peer shut down its side: no more data.
    Eof,
}

// SAFETY: the SQE carries no pointer: it names the provided-buffer group, whose
// descriptor ring and buffers the driver registered. Their memory lives as long as any
// `Rc<BufRing>`: the op holds one until it is dropped, after its final CQE, and the
// driver unregisters the ring before letting go of its own. The kernel writes only
// buffers published in the ring; each CQE hands over the one it names, which `item`
// takes from the ring (`BufRing::take` checks the id and length, and publishes the
// buffer again only when its `RecvBuf` is dropped), so nothing reads a buffer the
// kernel may still write.
unsafe impl Multishot for RecvMulti {
    type Item = io::Result<Received>;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::RecvMulti::new(types::Fd(self.fd), GROUP).build()
    }

    /// A plain receive into the next pooled buffer, which the CQE made up names, as
    /// the kernel's would: the same `item` takes it. No free buffer is `-ENOBUFS`, as
    /// on the ring.
    fn step(&mut self, runner: &mut Runner<'_>) -> Step {
        let Some((bid, ptr, size)) = self.ring.pop() else {
            return Step::Done(-libc::ENOBUFS, 0);
        };
        let entry = opcode::Recv::new(types::Fd(self.fd), ptr, size).build();
        // SAFETY: `ptr` is `size` bytes of buffer `bid` in the ring's buffer block,
        // which lives as long as `self.ring`; popped, it is in no other hand.
        match unsafe { runner.run(&entry) } {
            Exec::Done(n) if n > 0 => {
                self.ring.named_by_cqe();
                Step::Done(
                    n,
                    CQE_F_BUFFER | CQE_F_MORE | u32::from(bid) << CQE_BUFFER_SHIFT,
                )
            }
            // The end of the stream (0) or an error: the last CQE, naming no buffer.
            Exec::Done(result) => {
                self.ring.unpop();
                Step::Done(result, 0)
            }
            Exec::Wait(fd, events) => {
                self.ring.unpop();
                Step::Wait(fd, events)
            }
            Exec::NextTurn => unreachable!("only a nop waits for the next turn"),
        }
    }

    fn item(&mut self, result: io::Result<u32>, flags: u32) -> io::Result<Received> {
        let n = result?;
        let Some(bid) = cqueue::buffer_select(flags) else {
            return if n == 0 {
                Ok(Received::Eof)
            } else {
                Err(io::Error::other(format!(
                    "the kernel reported {n} bytes received without naming a buffer"
                )))
            };
        };
        match self.ring.take(bid, n) {
            Some(buf) if n == 0 => {
                drop(buf);
                Ok(Received::Eof)
            }
            Some(buf) => Ok(Received::Data(buf)),
            None => Err(io::Error::other(format!(
                "the kernel named receive buffer {bid} with {n} bytes, outside the ring"
            ))),
        }
    }
}
