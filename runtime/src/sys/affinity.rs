//! The CPUs a thread may run on (`sched_getaffinity`/`sched_setaffinity`).

use std::fmt;
use std::io;

/// A set of CPUs, as the kernel's `cpu_set_t`.
#[derive(Clone)]
pub(crate) struct CpuSet(libc::cpu_set_t);

impl CpuSet {
    /// The CPUs the calling thread may run on: its affinity mask, which `taskset`,
    /// cgroup cpusets and container limits narrow.
    pub(crate) fn of_current_thread() -> io::Result<CpuSet> {
        // SAFETY: cpu_set_t is a plain bit array, valid when zeroed.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`,
        // which lives for the call.
        super::syscall!(sched_getaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &mut set
        ))?;
        Ok(CpuSet(set))
    }

    /// Makes this the calling thread's affinity mask.
    pub(crate) fn apply_to_current_thread(&self) -> io::Result<()> {
        // sched_setaffinity reads size_of::<cpu_set_t>() bytes from a live set.
        super::syscall!(sched_setaffinity(
            0,
            std::mem::size_of::<libc::cpu_set_t>(),
            &self.0
        ))
        .map(drop)
    }

    /// The CPU numbers in the set, in increasing order.
    pub(crate) fn cpus(&self) -> Vec<usize> {
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: CPU_ISSET reads one bit of a live set, in bounds by the range.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &self.0) })
            .collect()
    }
}

impl fmt::Debug for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.cpus()).finish()
    }
}
