use std::io;
use std::os::fd::RawFd;

use io_uring::{cqueue, opcode, squeue::Entry, types};

use crate::buf::{IoBuf, RingId};
use crate::driver::{Exec, Multishot, Runner, Step, CQE_F_MORE, CQE_F_NOTIF};

/// `IORING_OP_SEND_ZC` (Linux 6.0): the kernel sends from the buffer itself. It posts
/// the send's result (with `F_MORE` when a notification follows) and then a
/// notification (`F_NOTIF`) once the network stack let go of the buffer: only then may
/// the buffer be reused or freed (rule 4). The op keeps it until that last CQE.
#[derive(Debug)]
pub(crate) struct SendZc<B> {
    fd: RawFd,
    buf: Option<B>,
    /// The readiness backend sent it: the notification is next.
    sent: bool,
}

impl<B: IoBuf> SendZc<B> {
    pub(crate) fn new(fd: RawFd, buf: B) -> SendZc<B> {
        SendZc {
            fd,
            buf: Some(buf),
            sent: false,
        }
    }

    /// The buffer back, once the op's last CQE has been taken.
    pub(crate) fn take_buf(&mut self) -> Option<B> {
        self.buf.take()
    }
}

/// One CQE of a zero-copy send.
#[derive(Debug)]
pub(crate) enum ZcEvent {
    /// The send's result: bytes sent or the error.
    Sent(io::Result<usize>),
    /// The kernel no longer uses the buffer.
    Released,
}

// SAFETY: the SQE's one pointer is the buffer's `stable_ptr`, with a length of at
// most its `bytes_init`: by `IoBuf`'s contract, initialised memory of that length that
// stays valid and in place wherever the op moves. The op keeps the buffer until the
// final CQE, which for a zero-copy send is the notification (`F_NOTIF`, rule 4): the
// buffer can only be taken (`take_buf`, through `MultiOp::data_mut`) once the op is
// done, and `item` never touches it. The kernel only reads it. No registered buffer
// is named (`SEND_ZC` is always the plain opcode), so `ring` is not needed.
unsafe impl<B: IoBuf> Multishot for SendZc<B> {
    type Item = ZcEvent;

    fn fd(&self) -> Option<RawFd> {
        Some(self.fd)
    }

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let buf = self.buf.as_ref().expect("a zero-copy send has its buffer");
        let len = u32::try_from(buf.bytes_init()).unwrap_or(u32::MAX);
        opcode::SendZc::new(types::Fd(self.fd), buf.stable_ptr(), len)
            .flags(libc::MSG_NOSIGNAL)
            .build()
    }

    /// A plain send, then the notification the ring would post: a copying send lets
    /// go of the buffer when it returns.
    fn step(&mut self, runner: &mut Runner<'_>) -> Step {
        if self.sent {
            return Step::Done(0, CQE_F_NOTIF);
        }
        let entry = self.prepare(RingId::new(0));
        // SAFETY: the SQE of our own `prepare`, valid while `self` lives (above).
        match unsafe { runner.run(&entry) } {
            Exec::Done(n) if n >= 0 => {
                self.sent = true;
                Step::Done(n, CQE_F_MORE)
            }
            Exec::Done(err) => Step::Done(err, 0),
            Exec::Wait(fd, events) => Step::Wait(fd, events),
            Exec::NextTurn => unreachable!("only a nop waits for the next turn"),
        }
    }

    fn item(&mut self, result: io::Result<u32>, flags: u32) -> ZcEvent {
        if cqueue::notif(flags) {
            ZcEvent::Released
        } else {
            ZcEvent::Sent(result.map(|n| n as usize))
        }
    }
}
