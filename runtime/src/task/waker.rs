//! Wakers that are plain numbers.
//!
//! A task's waker carries no pointer and no reference count: its data word packs the
//! task's slot in its core's task table, the slot's generation and the core's number
//! in the process-wide registry. Cloning and dropping it do nothing, and waking it on
//! its own core is a table look-up and a push onto the run queue: no atomics. Woken
//! from any other thread, it goes to its core's inbox (see `remote.rs`). A waker that
//! outlives its task, or its core, finds a different generation or no slot, and its
//! wake does nothing; at worst, after 2^24 reuses of one slot, a task is polled once
//! when nothing happened, which every future must tolerate.

use std::task::{RawWaker, RawWakerVTable, Waker};

const INDEX_BITS: u32 = 28;
const CORE_BITS: u32 = 12;
const GEN_BITS: u32 = 24;

/// The largest number of live tasks per core.
pub(crate) const MAX_TASKS: usize = (1 << INDEX_BITS) - 1;
/// The slot index that stands for the future passed to `block_on`.
pub(crate) const MAIN_INDEX: u32 = (1 << INDEX_BITS) - 1;
/// The largest number of cores alive at once in a process.
pub(crate) const MAX_CORES: usize = 1 << CORE_BITS;

const _: () = assert!(INDEX_BITS + CORE_BITS + GEN_BITS == 64);
const _: () = assert!(usize::BITS == 64, "wakers pack 64 bits into a pointer");

/// A task's identity: core, slot and generation, packed into 64 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskId(u64);

impl TaskId {
    pub(crate) fn new(core: u16, index: u32, generation: u32) -> TaskId {
        debug_assert!((core as usize) < MAX_CORES && index <= MAIN_INDEX);
        TaskId(
            u64::from(generation & ((1 << GEN_BITS) - 1)) << (INDEX_BITS + CORE_BITS)
                | u64::from(core) << INDEX_BITS
                | u64::from(index),
        )
    }

    /// The id whose wake polls the future a core's `block_on` runs.
    pub(crate) fn main(core: u16) -> TaskId {
        TaskId::new(core, MAIN_INDEX, 0)
    }

    pub(crate) fn index(self) -> u32 {
        (self.0 & ((1 << INDEX_BITS) - 1)) as u32
    }

    pub(crate) fn core(self) -> u16 {
        ((self.0 >> INDEX_BITS) & ((1 << CORE_BITS) - 1)) as u16
    }

    /// The generation, as stored in the table (already cut to the bits a waker keeps).
    pub(crate) fn generation(self) -> u32 {
        (self.0 >> (INDEX_BITS + CORE_BITS)) as u32
    }

    /// Cuts a table generation to what a waker keeps.
    pub(crate) fn cut_generation(generation: u32) -> u32 {
        generation & ((1 << GEN_BITS) - 1)
    }

    pub(crate) fn waker(self) -> Waker {
        // SAFETY: the vtable's functions treat the data word as a plain integer: there
        // is nothing to free, share or keep alive, so any thread may call them.
        unsafe { Waker::from_raw(raw(self.0)) }
    }

    /// The task a waker wakes, if it is one of ours (of any core): its vtable is ours,
    /// and then its data word is the id.
    #[inline]
    pub(crate) fn of_waker(waker: &Waker) -> Option<TaskId> {
        std::ptr::eq(waker.vtable(), &VTABLE).then(|| TaskId(waker.data() as usize as u64))
    }
}

fn raw(id: u64) -> RawWaker {
    RawWaker::new(id as usize as *const (), &VTABLE)
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop_waker);

fn clone(data: *const ()) -> RawWaker {
    raw(data as usize as u64)
}

fn wake(data: *const ()) {
    super::wake(TaskId(data as usize as u64));
}

fn drop_waker(_: *const ()) {}
