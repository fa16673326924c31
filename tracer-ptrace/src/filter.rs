//! The seccomp filter that decides which system calls stop for the tracer.
//!
//! Every system call not listed here runs at full speed: the kernel answers
//! ALLOW from the filter and the tracer never wakes up. Listed calls return
//! `SECCOMP_RET_TRACE`, which stops the tracee at syscall entry with
//! `PTRACE_EVENT_SECCOMP`; the 16-bit data travels with the stop and tells
//! the tracer whether the call is one it decodes ([`DATA_NATIVE`]) or one of
//! an ABI it does not ([`DATA_FOREIGN`]).

use libc::{c_int, sock_filter};

/// x86_64's `AUDIT_ARCH_*` value (`EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`);
/// `libc` does not define it.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// Bit set in the syscall number of x32 calls.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Stop data: an x86_64 call the tracer decodes.
pub const DATA_NATIVE: u16 = 1;
/// Stop data: an ia32 or x32 call; counted and reported as not seen.
pub const DATA_FOREIGN: u16 = 2;

/// The x86_64 calls that stop. Forks and clones need no entry here: the
/// ptrace options report them as events; chdir needs none either: a relative
/// path is resolved against `/proc/TID/cwd` when it is used.
pub const TRACED: &[libc::c_long] = &[
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_creat,
    libc::SYS_open_by_handle_at,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_rmdir,
    libc::SYS_truncate,
    libc::SYS_ftruncate,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_copy_file_range,
    libc::SYS_sendfile,
    libc::SYS_splice,
    libc::SYS_io_uring_setup,
    libc::SYS_chroot,
    libc::SYS_pivot_root,
    libc::SYS_unshare,
    libc::SYS_setns,
];

// Classic BPF opcodes (linux/filter.h).
const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

/// Offsets in `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

fn stmt(code: u16, k: u32) -> sock_filter {
    sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Builds the filter program.
pub fn program() -> Vec<sock_filter> {
    let trace = |data: u16| libc::SECCOMP_RET_TRACE | u32::from(data);
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        // Not x86_64 (an ia32 call through int 0x80): stop, as foreign.
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, trace(DATA_FOREIGN)),
        stmt(BPF_LD_W_ABS, OFF_NR),
        // x32 calls carry a high bit in the number: stop, as foreign.
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, trace(DATA_FOREIGN)),
    ];
    // One comparison per traced call, each jumping to the shared TRACE
    // return at the end; the fall-through is ALLOW.
    let n = TRACED.len();
    for (i, &nr) in TRACED.iter().enumerate() {
        let to_trace = (n - i) as u8; // skip the rest and the ALLOW
        p.push(jump(BPF_JEQ_K, nr as u32, to_trace, 0));
    }
    p.push(stmt(BPF_RET_K, libc::SECCOMP_RET_ALLOW));
    p.push(stmt(BPF_RET_K, trace(DATA_NATIVE)));
    p
}

/// Installs `prog` on the calling thread. Runs in the forked child, so it
/// only makes system calls. As root no `no_new_privs` is needed (set-user-ID
/// programs keep working); otherwise the kernel requires it.
pub fn install(prog: &[sock_filter]) -> Result<(), c_int> {
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr().cast_mut(),
    };
    let set = || {
        // SAFETY: seccomp(2) reads `fprog`, which points at `prog`, alive
        // for the call.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        }
    };
    if set() == 0 {
        return Ok(());
    }
    let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    if errno != libc::EACCES {
        return Err(errno);
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    if set() == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_land_on_the_trace_return() {
        let p = program();
        let ret_trace = p.len() - 1;
        for (i, ins) in p.iter().enumerate() {
            if ins.code == BPF_JEQ_K && ins.jt > 0 && i >= 6 {
                assert_eq!(i + 1 + ins.jt as usize, ret_trace, "instruction {i}");
            }
        }
        assert!(p.len() < 4096, "BPF_MAXINSNS");
    }
}
