//! The per-core registered-file table: slots the ring resolves without the fd table
//! lookup (and its reference counting) on every op.

use std::cell::RefCell;

use io_uring::{opcode, Submitter};

use crate::sys::probe::Probe;

/// Which slots of the ring's registered-file table are free.
///
/// A slot is taken by [`File::register`](crate::fs::File::register) and given back
/// only when the `FILES_UPDATE` that empties it completes: ops queued before that name
/// the slot, so it must not hold another file until they have been issued.
#[derive(Debug)]
pub(crate) struct FileTable {
    free: RefCell<Vec<u32>>,
}

impl FileTable {
    /// Registers an empty table of `count` slots with the ring.
    pub(crate) fn register(
        submitter: &Submitter<'_>,
        count: u32,
        probe: &Probe,
    ) -> Result<FileTable, String> {
        if !probe.supports(opcode::FilesUpdate::CODE) {
            return Err("registered files need IORING_OP_FILES_UPDATE (Linux 5.6); \
                        files use their plain fd"
                .to_owned());
        }
        let registered = submitter.register_files_sparse(count).or_else(|_| {
            // Before 5.19 there is no sparse registration; -1 marks an empty slot.
            submitter.register_files(&vec![-1; count as usize])
        });
        match registered {
            Ok(()) => Ok(FileTable {
                free: RefCell::new((0..count).rev().collect()),
            }),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => Err(format!(
                "a registered-file table of {count} slots is larger than RLIMIT_NOFILE \
                 allows: raise the limit (ulimit -n) or ask Builder::fixed_files for fewer"
            )),
            Err(e) => Err(format!(
                "registering a table of {count} files failed: {e}; files use their plain fd"
            )),
        }
    }

    /// Takes a free slot.
    pub(crate) fn take(&self) -> Option<u32> {
        self.free.borrow_mut().pop()
    }

    /// Gives back a slot that is empty in the kernel's table.
    pub(crate) fn put_back(&self, slot: u32) {
        self.free.borrow_mut().push(slot);
    }
}
