use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use io_uring::{opcode, squeue::Entry};

use crate::buf::{KernelBox, RingId};
use crate::driver::{Completable, FileTable};

/// `IORING_OP_FILES_UPDATE` that empties one slot of the registered-file table. Queued
/// behind the ops that name the slot, it runs after they have taken their reference
/// to the file; the slot goes back to the table's free list only with its CQE, so no
/// op queued earlier can meet another file in it.
pub(crate) struct FilesUpdate {
    table: Rc<FileTable>,
    slot: u32,
    /// The fd array the kernel reads: one entry, -1 (empty the slot).
    fds: KernelBox<[RawFd; 1]>,
}

impl FilesUpdate {
    pub(crate) fn clear(table: Rc<FileTable>, slot: u32) -> FilesUpdate {
        FilesUpdate {
            table,
            slot,
            fds: KernelBox::new([-1]),
        }
    }
}

// SAFETY: the SQE's one pointer is the fd array, the op's `KernelBox<[RawFd; 1]>`, with
// a count of 1: a heap block that stays allocated and in place until the op is
// dropped, after the final CQE (the op runs even if its future is dropped, and its
// slot then owns it). Nothing writes the array after `new`; the kernel only reads it.
// The table index (`offset`) is not a pointer: the kernel checks it against the table.
unsafe impl Completable for FilesUpdate {
    type Output = io::Result<()>;

    /// The slot must be emptied whatever happens to the future.
    const RUN_IF_DROPPED: bool = true;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        let offset = i32::try_from(self.slot).unwrap_or(i32::MAX);
        opcode::FilesUpdate::new(self.fds.as_ptr().cast::<RawFd>(), 1)
            .offset(offset)
            .build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        // On error the slot may still hold the file; it stays out of use rather than be
        // handed out holding something.
        if result.is_ok() {
            self.table.put_back(self.slot);
        }
        result.map(drop)
    }
}
