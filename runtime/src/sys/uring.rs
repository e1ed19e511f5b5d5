//! The two io_uring system calls the driver makes itself: `io_uring_enter` (so that it
//! decides every flag, and can use a registered ring fd) and registering the ring fd.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

pub(crate) const ENTER_GETEVENTS: u32 = 1 << 0;
pub(crate) const ENTER_SQ_WAKEUP: u32 = 1 << 1;
pub(crate) const ENTER_SQ_WAIT: u32 = 1 << 2;
pub(crate) const ENTER_EXT_ARG: u32 = 1 << 3;
const ENTER_REGISTERED_RING: u32 = 1 << 4;
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

/// How `io_uring_enter` names the ring: its fd, or its slot in the registered-ring table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingFd {
    fd: libc::c_int,
    registered: bool,
}

impl RingFd {
    /// Registers `fd` so that enters skip the file lookup (Linux 5.18+); falls back to
    /// the plain fd where the kernel cannot.
    pub(crate) fn register(fd: RawFd) -> RingFd {
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
            }
        } else {
            RingFd {
                fd,
                registered: false,
            }
        }
    }

    /// `io_uring_enter(to_submit, min_complete, flags)`, with an optional timeout for
    /// the wait (sent as `EXT_ARG`).
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
