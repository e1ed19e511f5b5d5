//! Making one system call fail with a chosen errno, the way a container's
//! seccomp profile blocks io_uring.
//!
//! A seccomp filter cannot be removed once installed, and every thread the
//! process creates afterwards inherits it. Install one only in a child process
//! started for that purpose (see `tests/setup_errors.rs`).

use std::io;
use std::mem::{offset_of, size_of};

/// The number of `io_uring_setup` on x86_64 and aarch64 (and most other
/// architectures since Linux 5.1).
pub const SYS_IO_URING_SETUP: u32 = 425;
/// `io_uring_enter`.
pub const SYS_IO_URING_ENTER: u32 = 426;
/// `io_uring_register`.
pub const SYS_IO_URING_REGISTER: u32 = 427;

/// Denies `io_uring_setup`, `io_uring_enter` and `io_uring_register` with `errno`, as
/// Docker's default seccomp profile (and containerd's, Kubernetes' `RuntimeDefault`)
/// does with `EPERM`. One filter per call; the kernel applies every filter installed.
pub fn deny_io_uring(errno: i32) -> io::Result<()> {
    for nr in [
        SYS_IO_URING_SETUP,
        SYS_IO_URING_ENTER,
        SYS_IO_URING_REGISTER,
    ] {
        deny_syscall(nr, errno)?;
    }
    Ok(())
}

// `AUDIT_ARCH_*` from <linux/audit.h>: the ELF machine, 64-bit, little-endian.
const AUDIT_ARCH_64BIT_LE: u32 = 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: Option<u32> = Some(AUDIT_ARCH_64BIT_LE | 62); // EM_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: Option<u32> = Some(AUDIT_ARCH_64BIT_LE | 183); // EM_AARCH64
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const AUDIT_ARCH: Option<u32> = None;

const fn statement(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump_if_equal(k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    }
}

/// Makes every later call of system call `nr` by this process fail with
/// `errno`, without running it. Every other system call is left alone.
///
/// Sets `PR_SET_NO_NEW_PRIVS` first, which an unprivileged process needs to
/// install a filter. Fails with `ErrorKind::Unsupported` on an architecture
/// this helper does not know, and with the OS error if the kernel refuses
/// the filter.
pub fn deny_syscall(nr: u32, errno: i32) -> io::Result<()> {
    let Some(arch) = AUDIT_ARCH else {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "seccomp helper: unknown audit arch for this target",
        ));
    };
    let errno = u32::try_from(errno)
        .ok()
        .filter(|&e| e <= libc::SECCOMP_RET_DATA)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "errno out of range"))?;

    let load_word = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let mut program = [
        // A call made with another architecture's numbering is not ours to judge.
        statement(load_word, offset_of!(libc::seccomp_data, arch) as u32),
        jump_if_equal(arch, 0, 3),
        statement(load_word, offset_of!(libc::seccomp_data, nr) as u32),
        jump_if_equal(nr, 0, 1),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ERRNO | errno),
        statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_mut_ptr(),
    };
    debug_assert_eq!(size_of::<libc::sock_filter>(), 8);

    // SAFETY: PR_SET_NO_NEW_PRIVS takes plain integers and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fprog` points at `program`, a valid filter of `len` instructions
    // that outlives the call; the kernel copies it before returning.
    let installed = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if installed == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
