//! Wake-ups sent to other cores' rings with `IORING_OP_MSG_RING`: queued on this
//! core's ring, they go to the kernel with its next turn, at no syscall of their own.

use std::os::fd::RawFd;

use io_uring::{opcode, squeue, types};

use super::Driver;

/// `user_data` of the CQE another ring's `MSG_RING` posts here: only a wake-up.
pub(super) const MSG_UD: u64 = u64::MAX - 2;
/// Low half of the `user_data` of a `MSG_RING` this ring sent (the high half is the
/// target core); its CQE comes only if it failed (or without `CQE_SKIP_SUCCESS`).
pub(super) const MSG_SENT_LOW: u32 = u32::MAX - 3;

const fn msg_sent_ud(core: u16) -> u64 {
    (core as u64) << 32 | MSG_SENT_LOW as u64
}

impl Driver {
    /// Queues an `IORING_OP_MSG_RING` that posts a wake-up CQE to the ring `target_fd`
    /// (the ring of process-wide core `core`); the next turn submits it with the rest.
    /// `false` if it could not be queued: no `MSG_RING`, or the driver is busy (a wake
    /// sent from inside a driver call) or closed; the caller then uses the eventfd.
    pub(crate) fn send_msg(&self, target_fd: RawFd, core: u16) -> bool {
        if !self.is_ring() {
            return false;
        }
        let Ok(mut inner) = self.inner().try_borrow_mut() else {
            return false;
        };
        if !inner.msg_ring || inner.closed {
            return false;
        }
        let mut entry = opcode::MsgRingData::new(types::Fd(target_fd), 0, MSG_UD, None)
            .build()
            .user_data(msg_sent_ud(core));
        if inner.msg_skip {
            entry = entry.flags(squeue::Flags::SKIP_SUCCESS);
        }
        inner.pending.push(entry);
        true
    }

    /// Cores whose `MSG_RING` failed since the last call (no allocation when none).
    pub(crate) fn take_failed_msgs(&self) -> Vec<u16> {
        if !self.is_ring() {
            return Vec::new();
        }
        std::mem::take(&mut self.inner().borrow_mut().msg_failed)
    }

    /// Whether some `MSG_RING` failed since the last [`take_failed_msgs`](Self::take_failed_msgs).
    #[inline]
    pub(crate) fn has_failed_msgs(&self) -> bool {
        self.is_ring() && !self.inner().borrow().msg_failed.is_empty()
    }
}
