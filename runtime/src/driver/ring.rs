//! A turn of the ring: the driver's queue of SQEs, handing it to the kernel, waiting,
//! and reaping completions into the slot table.

use std::time::{Duration, Instant};

use io_uring::{opcode, squeue, types, IoUring};

use super::messages::MSG_SENT_LOW;
use super::{fatal, Cqe, Inner, Token, CANCEL_UD, SPECIAL_LOW, WAKE_UD, WITHDRAWN_UD};
use crate::stats::Counters;
use crate::sys::uring::{ENTER_GETEVENTS, ENTER_SQ_WAIT, ENTER_SQ_WAKEUP};

impl Inner {
    /// Copies queued SQEs from `pending[next..]` into the kernel's submission queue while
    /// it has room, skipping withdrawn ones; returns where it stopped.
    fn fill_sq(&mut self, mut next: usize) -> usize {
        let mut sq = self.ring.submission();
        while let Some(entry) = self.pending.get(next) {
            if entry.get_user_data() != WITHDRAWN_UD {
                // SAFETY: rule 1: every pointer in `entry` is into memory owned by its op
                // (held by the op future, or by an `Ignored` slot) or by the driver (the
                // wake-up buffer), and stays valid until the op's final CQE is reaped; a
                // withdrawn op, whose memory may be gone, is never copied.
                if unsafe { sq.push(entry) }.is_err() {
                    break;
                }
            }
            next += 1;
        }
        next
    }

    /// Hands every queued SQE to the kernel and, with `wait`, waits for a completion (at
    /// most `timeout`): the one `io_uring_enter` of a turn, unless the queue holds more
    /// than the kernel's submission queue (then one enter per queueful).
    ///
    /// Without SQPOLL, it returns only once the kernel has taken every SQE: the kernel
    /// reads the submission queue only inside `io_uring_enter`, so no SQE of ours waits
    /// there between turns, and an op dropped between turns can still be withdrawn from
    /// `pending`. When the kernel takes fewer than it was given (`EBUSY`/`EAGAIN`: it
    /// wants completions reaped, or is short of memory), they are reaped and the rest is
    /// handed over again; nothing is given up on. With SQPOLL the kernel's thread takes
    /// them in its own time; see [`Inner::submit_all`].
    pub(super) fn submit(&mut self, wait: bool, timeout: Option<Duration>) {
        let mut next = 0;
        let mut waited = !wait;
        let mut refused = 0u32;
        loop {
            next = self.fill_sq(next);
            let all_in = next == self.pending.len();
            let wait_now = !waited && all_in;
            match self.enter(wait_now, timeout, !all_in) {
                Ok(()) => refused = 0,
                // A signal, or the timeout passed: the caller reaps and decides again.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR) | Some(libc::ETIME)) => {}
                // The kernel dropped CQEs (it could not keep an overflowed one): said
                // once, then cleared. They are counted; the ring goes on.
                Err(e) if e.raw_os_error() == Some(libc::EBADR) => self.count_lost(),
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBUSY) | Some(libc::EAGAIN) | Some(libc::ENOMEM)
                    ) =>
                {
                    refused += 1;
                }
                Err(e) => fatal(e),
            }
            waited |= wait_now;
            let left = self.ring.submission().len();
            if all_in && (self.sqpoll || left == 0) {
                break;
            }
            if !self.sqpoll && left > 0 {
                // The kernel took fewer than it was given: make room in the completion
                // queue, and if it keeps refusing, give in-flight work a moment.
                self.reap();
                if refused >= 8 {
                    let _ = self.enter(true, Some(Duration::from_millis(1)), false);
                }
            }
        }
        self.pending.clear();
        self.epoch += 1;
    }

    /// [`Inner::submit`], and with SQPOLL also waits until the kernel's thread has taken
    /// every entry. Before an fd leaves our hands, no SQE naming it may be left behind.
    pub(super) fn submit_all(&mut self) {
        self.submit(false, None);
        if !self.sqpoll {
            return;
        }
        while !self.ring.submission().is_empty() {
            if self.ring.submission().need_wakeup() {
                let _ = self.enter(false, None, false);
            }
            std::thread::yield_now();
        }
    }

    /// One `io_uring_enter`: submits what is in the submission queue and, with `wait`,
    /// waits for a completion (at most `timeout`). Asks for completions (`GETEVENTS`)
    /// whenever the kernel has some to post (`SQ_TASKRUN`, which `DEFER_TASKRUN` needs)
    /// or an overflow to flush, and skips the call when there is nothing to do. Under
    /// SQPOLL, wakes the kernel's thread if it sleeps and, with `sq_full`, waits for it
    /// to make room.
    fn enter(
        &mut self,
        wait: bool,
        timeout: Option<Duration>,
        sq_full: bool,
    ) -> std::io::Result<()> {
        let (to_submit, mut flags) = {
            let sq = self.ring.submission();
            let getevents = wait || sq.taskrun() || sq.cq_overflow();
            (sq.len() as u32, if getevents { ENTER_GETEVENTS } else { 0 })
        };
        self.counters.sq_max.raise(u64::from(to_submit));
        if self.sqpoll {
            if to_submit > 0 && self.ring.submission().need_wakeup() {
                flags |= ENTER_SQ_WAKEUP;
            }
            if sq_full {
                flags |= ENTER_SQ_WAIT;
            }
            if flags == 0 {
                // The SQ thread is awake and will see the new entries by itself.
                return Ok(());
            }
        } else if to_submit == 0 && flags == 0 {
            return Ok(());
        }
        self.counters.enters.add(1);
        self.ring_fd
            .enter(to_submit, u32::from(wait), flags, timeout)
            .map(drop)
    }

    /// Waits for at least one completion or the earliest timer, submitting what is
    /// queued in the same call.
    pub(super) fn park(&mut self) {
        let Some(deadline) = self.timers.next_deadline() else {
            return self.submit(true, None);
        };
        match deadline.checked_duration_since(Instant::now()) {
            Some(timeout) if !timeout.is_zero() => self.submit(true, Some(timeout)),
            _ => self.submit(false, None),
        }
    }

    /// Moves every posted CQE into its slot, collecting the owners to wake and the
    /// abandoned ops to finish.
    pub(super) fn reap(&mut self) {
        let in_flight = self.slots.in_flight();
        let Inner {
            ring,
            slots,
            wake_armed,
            ready,
            finished,
            msg_failed,
            counters,
            bufs,
            ..
        } = self;
        let mut cqes = 0;
        let mut cq = ring.completion();
        let capacity = cq.capacity() as u64;
        for entry in &mut cq {
            cqes += 1;
            let cqe = Cqe {
                result: entry.result(),
                flags: entry.flags(),
            };
            let ud = entry.user_data();
            // One compare sorts out the driver's own CQEs: their low halves are the top
            // few values of a u32, which no op token's slot index reaches.
            if ud as u32 >= SPECIAL_LOW {
                match ud {
                    WAKE_UD => *wake_armed = false,
                    ud if ud as u32 == MSG_SENT_LOW && cqe.result < 0 => {
                        msg_failed.push((ud >> 32) as u16);
                    }
                    // Cancels (only failures post one), and messages from other cores,
                    // which only had to end the park.
                    _ => {}
                }
                continue;
            }
            if io_uring::cqueue::buffer_select(cqe.flags).is_some() {
                // A provided buffer the kernel filled: held by this CQE until an op
                // takes it (or gives it back).
                if let Some(bufs) = bufs {
                    bufs.named_by_cqe();
                }
            }
            if let Some(done) = slots.complete(Token(ud), cqe, ready) {
                finished.push(done);
            }
        }
        // Hands the reaped entries back to the kernel.
        drop(cq);
        counters.cqes.add(cqes);
        counters.cq_max.raise(cqes);
        let left = slots.in_flight();
        counters.ops_completed.add((in_flight - left) as u64);
        counters.ops_in_flight.set(left as u64);
        if cqes >= capacity {
            Inner::cq_was_full(ring, counters);
        }
    }

    /// A reap found the CQ full: CQEs that did not fit may wait in the kernel's
    /// overflow list (flushed by the next enter), or, if the kernel could not keep
    /// them, be lost. Both happen only when the CQ is full, and a full CQ is what the
    /// next reap finds, so this is the one place that looks.
    #[cold]
    #[inline(never)]
    fn cq_was_full(ring: &mut IoUring, counters: &Counters) {
        if ring.submission().cq_overflow() {
            counters.cq_overflows.add(1);
        }
        Inner::read_lost(ring, counters);
    }

    /// Reads the kernel's count of the CQEs it dropped.
    #[cold]
    fn count_lost(&mut self) {
        Inner::read_lost(&mut self.ring, &self.counters);
    }

    fn read_lost(ring: &mut IoUring, counters: &Counters) {
        counters
            .cqes_lost
            .set(u64::from(ring.completion().overflow()));
    }

    /// Keeps a read of the wake-up eventfd in the ring, so a write ends a park.
    pub(super) fn arm_wake_read(&mut self) {
        let Some(fd) = self.wake_fd else { return };
        if self.wake_armed || self.closed {
            return;
        }
        let entry = opcode::Read::new(types::Fd(fd), self.wake_buf.as_mut_ptr().cast(), 8)
            .build()
            .user_data(WAKE_UD);
        self.pending.push(entry);
        self.wake_armed = true;
    }

    /// Queues a cancel of the op with `user_data`.
    pub(super) fn cancel(&mut self, user_data: u64) {
        let mut entry = opcode::AsyncCancel::new(user_data)
            .build()
            .user_data(CANCEL_UD);
        if self.msg_skip {
            // Its CQE says nothing the target's own will not: only failures post one.
            entry = entry.flags(squeue::Flags::SKIP_SUCCESS);
        }
        self.pending.push(entry);
    }
}
