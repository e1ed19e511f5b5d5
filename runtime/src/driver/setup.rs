//! Building a core's ring and its registered resources (provided buffers, fixed
//! buffers, the registered-file table), and letting go of them.

use std::cell::RefCell;
use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;

use io_uring::{opcode, IoUring};

use super::epoll::Poller;
use super::{Config, Driver, Engine, FileTable, Inner, Missing, Slots};
use crate::buf::fixed::Pool;
use crate::buf::ring::{self, BufRing};
use crate::stats::Counters;
use crate::sys::probe::Probe;
use crate::sys::uring::RingFd;

impl Driver {
    /// Sets up a ring with the best flags this kernel has (see [`Probe`]).
    pub(crate) fn new(
        config: &Config,
        probe: &Probe,
        counters: Arc<Counters>,
    ) -> io::Result<Driver> {
        let id = next_id();
        let entries = config.entries;
        let (ring, mut flags) =
            probe.setup_ring(entries, config.sqpoll_idle, config.tokio_bridge)?;
        let ring_fd = RingFd::register(ring.as_raw_fd(), ring.params().is_feature_no_iowait());
        flags.registered_fd = ring_fd.is_registered();
        flags.no_iowait = ring_fd.waits_without_iowait();
        counters.set_ring(flags);
        let msg_skip = ring.params().is_feature_skip_cqe_on_success();
        let recv_ring = match config.recv_buffers {
            (0, _) => Err(Missing::Disabled(
                "this core has no receive buffers: multishot receive needs \
                 Builder::recv_buffers(count, size) with a count above 0",
            )),
            (count, size) => {
                let buf_ring = Rc::new(BufRing::new(count, size)?);
                // SAFETY: rule 1: the descriptor block is page-aligned, `entries` long,
                // and outlives the registration: the driver holds an Rc to it and
                // unregisters it in its drop, before letting go.
                let registered = unsafe {
                    ring.submitter().register_buf_ring_with_flags(
                        buf_ring.ring_addr(),
                        buf_ring.entries(),
                        ring::GROUP,
                        0,
                    )
                };
                match registered {
                    Ok(()) => Ok(buf_ring),
                    Err(e) => Err(Missing::Failed(format!(
                        "registering {count} receive buffers of {size} bytes failed: {e} \
                         (provided-buffer rings need Linux 5.19)"
                    ))),
                }
            }
        };
        let fixed_pool = match config.fixed_buffers {
            (0, _) => Err(Missing::Disabled(
                "this core has no registered buffers: ask for them with \
                 Builder::fixed_buffers(count, size)",
            )),
            (count, size) => register_pool(&ring, count, size, id)?,
        };
        let files = match config.fixed_files {
            0 => Err(Missing::Disabled(
                "this core has no registered-file table: ask for one with \
                 Builder::fixed_files(count)",
            )),
            count => FileTable::register(&ring.submitter(), count, probe)
                .map(Rc::new)
                .map_err(Missing::Failed),
        };
        let bufs = recv_ring.as_ref().ok().cloned();
        Ok(Driver {
            id,
            recv_ring,
            fixed_pool,
            files,
            engine: Engine::Ring(RefCell::new(Inner {
                ring,
                ring_fd,
                sqpoll: flags.sqpoll,
                slots: Slots::with_capacity(entries as usize),
                pending: Vec::with_capacity(entries as usize),
                epoch: 0,
                bufs,
                timers: Default::default(),
                wake_fd: None,
                wake_buf: crate::buf::KernelBox::new(0),
                wake_armed: false,
                ready: Vec::new(),
                finished: Vec::new(),
                closed: false,
                msg_ring: config.msg_ring && probe.supports(opcode::MsgRingData::CODE),
                msg_skip,
                msg_failed: Vec::new(),
                counters,
            })),
        })
    }

    /// Sets up the readiness backend: an epoll set, and plain memory for what the ring
    /// would register (provided and fixed buffers work as plain buffers; there is no
    /// registered-file table).
    pub(crate) fn new_epoll(config: &Config, counters: Arc<Counters>) -> io::Result<Driver> {
        let id = next_id();
        let recv_ring = match config.recv_buffers {
            (0, _) => Err(Missing::Disabled(
                "this core has no receive buffers: multishot receive needs \
                 Builder::recv_buffers(count, size) with a count above 0",
            )),
            (count, size) => Ok(Rc::new(BufRing::new(count, size)?)),
        };
        let fixed_pool = match config.fixed_buffers {
            (0, _) => Err(Missing::Disabled(
                "this core has no registered buffers: ask for them with \
                 Builder::fixed_buffers(count, size)",
            )),
            (count, size) => Ok(Rc::new(Pool::new(count, size, id)?)),
        };
        Ok(Driver {
            id,
            recv_ring,
            fixed_pool,
            files: Err(Missing::Disabled(
                "the epoll backend has no registered-file table: registered files are an \
                 io_uring feature",
            )),
            engine: Engine::Epoll(RefCell::new(Poller::new(counters)?)),
        })
    }
}

/// A driver id never used before in this process (see [`super::current_id`]).
fn next_id() -> u64 {
    static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Normally the runtime has shut down already; this keeps rule 6 if it has not.
        self.shutdown();
        let Engine::Ring(inner) = &self.engine else {
            return;
        };
        let inner = inner.borrow();
        if self.fixed_pool.is_ok() {
            // No op is in flight: the kernel lets go of the pages here, and FixedBufs
            // still held keep the memory alive as plain memory.
            let _ = inner.ring.submitter().unregister_buffers();
        }
        if self.recv_ring.is_ok() {
            // No op is in flight any more; RecvBufs still held keep the memory alive,
            // and the kernel forgets it here (or when the ring fd closes).
            let _ = inner.ring.submitter().unregister_buf_ring(ring::GROUP);
        }
    }
}

/// Maps and registers one core's pool of `count` buffers of `size` bytes. A failed
/// registration is not an error of the runtime's start: the core runs without a pool,
/// and the reason (with the locked-memory figures when that was it) is kept for
/// [`FixedBufPool::current`](crate::buf::FixedBufPool::current) to report.
fn register_pool(
    ring: &IoUring,
    count: u16,
    size: usize,
    id: u64,
) -> io::Result<Result<Rc<Pool>, Missing>> {
    let pool = Rc::new(Pool::new(count, size, id)?);
    let iovecs = pool.iovecs();
    // SAFETY: rule 1: every iovec is a buffer inside the pool's mapping, which lives as
    // long as the Rc the driver keeps (and any FixedBuf's), and the driver unregisters
    // the buffers (or closes the ring) before dropping it.
    let registered = unsafe { ring.submitter().register_buffers(&iovecs) };
    Ok(match registered {
        Ok(()) => Ok(pool),
        Err(e) if e.raw_os_error() == Some(libc::ENOMEM) => {
            let limit = crate::sys::memlock_limit().map_or_else(
                || "unlimited".to_owned(),
                |l| format!("{l} bytes ({} KiB)", l / 1024),
            );
            let needed = pool.locked_bytes();
            Err(Missing::Failed(format!(
                "registering {count} fixed buffers of {size} bytes needs {needed} bytes \
                 ({} KiB) of locked memory on this core, and RLIMIT_MEMLOCK is {limit}; \
                 the kernel counts the locked memory of every core (and every other \
                 program of this user) against that one limit. Raise it (ulimit -l, \
                 LimitMEMLOCK= for a systemd service, --ulimit memlock= for docker) or \
                 ask Builder::fixed_buffers for less. The runtime runs without \
                 registered buffers.",
                needed / 1024
            )))
        }
        Err(e) => Err(Missing::Failed(format!(
            "registering {count} fixed buffers of {size} bytes failed: {e}; the runtime \
             runs without registered buffers"
        ))),
    })
}
