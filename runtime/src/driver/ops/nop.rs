use std::io;

use io_uring::{opcode, squeue::Entry};

use crate::buf::RingId;
use crate::driver::Completable;

/// `IORING_OP_NOP`: a round trip through the ring that does nothing.
#[derive(Debug)]
pub(crate) struct Nop;

// SAFETY: the SQE carries no pointer (nothing), so there is no memory for the
// kernel to use after the op is gone.
unsafe impl Completable for Nop {
    type Output = io::Result<()>;

    fn prepare(&mut self, _ring: RingId) -> Entry {
        opcode::Nop::new().build()
    }

    fn complete(self, result: io::Result<u32>, _flags: u32) -> io::Result<()> {
        result.map(drop)
    }
}
