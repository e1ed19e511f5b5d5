//! The two io_uring system calls the driver makes itself: `io_uring_enter` (so that it
//! decides every flag, and can use a registered ring fd) and registering the ring fd.
//!
//! Every wait passes `IORING_ENTER_NO_IOWAIT` where the kernel has it (6.15+). A core
//! always has a read of its wake-up eventfd in flight, and the kernel counts a task
//! that waits in `io_uring_enter` with requests in flight as waiting for I/O: without
//! the flag every parked core shows up as iowait (`procs_blocked` in `/proc/stat`, the
//! load average, io pressure), on an idle machine.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub(crate) const ENTER_GETEVENTS: u32 = 1 << 0;
pub(crate) const ENTER_SQ_WAKEUP: u32 = 1 << 1;
pub(crate) const ENTER_SQ_WAIT: u32 = 1 << 2;
pub(crate) const ENTER_EXT_ARG: u32 = 1 << 3;
const ENTER_REGISTERED_RING: u32 = 1 << 4;
/// `IORING_ENTER_NO_IOWAIT` (Linux 6.15, `IORING_FEAT_NO_IOWAIT`); older kernels
/// refuse it with `EINVAL`.
const ENTER_NO_IOWAIT: u32 = 1 << 7;
const REGISTER_RING_FDS: libc::c_uint = 20;

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// `struct __kernel_timespec`.
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// `struct io_uring_getevents_arg`.
#[repr(C)]
struct GeteventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// How `io_uring_enter` names the ring (its fd, or its slot in the registered-ring
/// table) and how it waits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingFd {
    fd: libc::c_int,
    registered: bool,
    /// Waits pass `IORING_ENTER_NO_IOWAIT`.
    no_iowait: bool,
}

impl RingFd {
    /// Registers `fd` so that enters skip the file lookup (Linux 5.18+); falls back to
    /// the plain fd where the kernel cannot. `no_iowait` is the ring's
    /// `IORING_FEAT_NO_IOWAIT`: whether its waits may ask not to count as iowait.
    pub(crate) fn register(fd: RawFd, no_iowait: bool) -> RingFd {
        let mut update = RsrcUpdate {
            offset: u32::MAX,
            resv: 0,
            data: fd as u64,
        };
        // SAFETY: `update` is a live io_uring_rsrc_update the kernel reads and writes
        // (it fills in the slot) during the call; nr_args is 1 for that one struct.
        let res = unsafe {
            libc::syscall(
                libc::SYS_io_uring_register,
                fd,
                REGISTER_RING_FDS,
                &mut update as *mut RsrcUpdate,
                1,
            )
        };
        if res == 1 {
            RingFd {
                fd: update.offset as libc::c_int,
                registered: true,
                no_iowait,
            }
        } else {
            RingFd {
                fd,
                registered: false,
                no_iowait,
            }
        }
    }

    /// The plain fd, unregistered (a registered index is only good on the thread that
    /// registered it), for entering from another thread in tests.
    #[cfg(test)]
    pub(crate) fn unregistered(fd: RawFd) -> RingFd {
        RingFd {
            fd,
            registered: false,
            no_iowait: false,
        }
    }

    /// Whether enters name the ring by its registered index.
    pub(crate) fn is_registered(&self) -> bool {
        self.registered
    }

    /// Whether waits pass `IORING_ENTER_NO_IOWAIT`.
    pub(crate) fn waits_without_iowait(&self) -> bool {
        self.no_iowait
    }

    /// `io_uring_enter(to_submit, min_complete, flags)`, with an optional timeout for
    /// the wait (sent as `EXT_ARG`). A wait (`GETEVENTS` with `min_complete` above 0)
    /// is not counted as iowait where the kernel can say so.
    pub(crate) fn enter(
        self,
        to_submit: u32,
        min_complete: u32,
        mut flags: u32,
        timeout: Option<Duration>,
    ) -> io::Result<u32> {
        if self.registered {
            flags |= ENTER_REGISTERED_RING;
        }
        if self.no_iowait && min_complete > 0 && flags & ENTER_GETEVENTS != 0 {
            flags |= ENTER_NO_IOWAIT;
        }
        let ts;
        let arg;
        let (argp, argsz) = match timeout {
            Some(t) => {
                ts = KernelTimespec {
                    tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
                    tv_nsec: i64::from(t.subsec_nanos()),
                };
                arg = GeteventsArg {
                    sigmask: 0,
                    sigmask_sz: 0,
                    min_wait_usec: 0,
                    ts: &ts as *const KernelTimespec as u64,
                };
                flags |= ENTER_EXT_ARG;
                (
                    &arg as *const GeteventsArg as *const libc::c_void,
                    std::mem::size_of::<GeteventsArg>(),
                )
            }
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `argp` is null or points to `arg`, whose `ts` points to `ts`; both
        // live on this frame for the whole call, and the kernel only reads them.
        let res = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                self.fd,
                to_submit,
                min_complete,
                flags,
                argp,
                argsz,
            )
        };
        if res < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(res as u32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enter_flags_are_the_kernels() {
        use io_uring::EnterFlags;
        assert_eq!(ENTER_GETEVENTS, EnterFlags::GETEVENTS.bits());
        assert_eq!(ENTER_SQ_WAKEUP, EnterFlags::SQ_WAKEUP.bits());
        assert_eq!(ENTER_EXT_ARG, EnterFlags::EXT_ARG.bits());
        assert_eq!(ENTER_REGISTERED_RING, EnterFlags::REGISTERED_RING.bits());
        assert_eq!(ENTER_NO_IOWAIT, EnterFlags::NO_IOWAIT.bits());
    }

    /// Where the kernel has `IORING_FEAT_NO_IOWAIT` it takes the flag on a wait (an
    /// unknown enter flag would be `EINVAL`), and the wait still times out as asked.
    #[test]
    fn a_wait_without_iowait_is_accepted_where_the_feature_is() {
        let ring = io_uring::IoUring::new(4).unwrap();
        if !ring.params().is_feature_no_iowait() {
            println!("skipped: this kernel lacks IORING_FEAT_NO_IOWAIT (Linux 6.15)");
            return;
        }
        use std::os::fd::AsRawFd;
        let fd = RingFd::register(ring.as_raw_fd(), true);
        assert!(fd.waits_without_iowait());
        let start = std::time::Instant::now();
        let timeout = Duration::from_millis(5);
        match fd.enter(0, 1, ENTER_GETEVENTS, Some(timeout)) {
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
            other => panic!("the wait times out: {other:?}"),
        }
        assert!(start.elapsed() >= timeout);
    }
}
