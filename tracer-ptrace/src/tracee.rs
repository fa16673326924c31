//! Access to a tracee that is in a ptrace stop.
//!
//! Registers and memory of a tracee may only be read while it is stopped.
//! [`Stopped`] is the proof: it is made only from a `waitpid` report of a
//! ptrace stop, every read takes `&Stopped`, and every way of resuming takes
//! it by value, so no read can follow a resume.

use std::io;

use libc::{c_long, pid_t};
use nix::unistd::Pid;

/// Longest path the kernel accepts (`PATH_MAX`, including the NUL).
pub const PATH_MAX: usize = 4096;
/// Most argument bytes kept from one exec.
pub const ARGV_MAX: usize = 128 * 1024;

/// A tracee in a ptrace stop.
#[derive(Debug)]
pub struct Stopped {
    tid: pid_t,
}

/// A string read from the tracee.
pub struct Read {
    pub bytes: Vec<u8>,
    /// The string was longer than the limit and was cut.
    pub truncated: bool,
}

impl Stopped {
    /// Only the event loop calls this, right after `waitpid` reported a
    /// ptrace stop of `tid`.
    pub(crate) fn new(tid: pid_t) -> Self {
        Self { tid }
    }

    pub fn tid(&self) -> pid_t {
        self.tid
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.tid)
    }

    /// What the current syscall stop is about (`PTRACE_GET_SYSCALL_INFO`).
    pub fn syscall_info(&self) -> io::Result<libc::ptrace_syscall_info> {
        nix::sys::ptrace::syscall_info(self.pid()).map_err(io::Error::from)
    }

    /// The event message of the current event stop (new pid, former tid).
    pub fn event_msg(&self) -> io::Result<c_long> {
        nix::sys::ptrace::getevent(self.pid()).map_err(io::Error::from)
    }

    /// The general registers.
    pub fn regs(&self) -> io::Result<libc::user_regs_struct> {
        nix::sys::ptrace::getregs(self.pid()).map_err(io::Error::from)
    }

    /// Reads up to `buf.len()` bytes at `addr`; returns how many were read.
    ///
    /// `process_vm_readv` first; where it is refused (Docker's default
    /// seccomp profile denies it without CAP_SYS_PTRACE, while allowing
    /// ptrace itself), the tracer's `/proc/<tid>/mem`, which the kernel
    /// opens to the tracer of a stopped tracee.
    pub fn read_mem(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::sync::atomic::{AtomicBool, Ordering};
        static VM_READV_REFUSED: AtomicBool = AtomicBool::new(false);
        if buf.is_empty() {
            return Ok(0);
        }
        if !VM_READV_REFUSED.load(Ordering::Relaxed) {
            let local = [std::io::IoSliceMut::new(buf)];
            let remote = [nix::sys::uio::RemoteIoVec {
                base: addr as usize,
                len: local[0].len(),
            }];
            let mut local = local;
            match nix::sys::uio::process_vm_readv(self.pid(), &mut local, &remote) {
                Err(nix::errno::Errno::EPERM | nix::errno::Errno::ENOSYS) => {
                    VM_READV_REFUSED.store(true, Ordering::Relaxed);
                }
                r => return r.map_err(io::Error::from),
            }
        }
        self.read_proc_mem(addr, buf)
    }

    fn read_proc_mem(&self, addr: u64, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mem = std::fs::File::open(format!("/proc/{}/mem", self.tid))?;
        match mem.read_at(buf, addr) {
            // An unmapped address reads as EIO here, as EFAULT from the call.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                Err(io::Error::from_raw_os_error(libc::EFAULT))
            }
            r => r,
        }
    }

    /// Reads exactly `buf.len()` bytes at `addr`.
    pub fn read_exact(&self, addr: u64, buf: &mut [u8]) -> io::Result<()> {
        let n = self.read_mem(addr, buf)?;
        if n == buf.len() {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(libc::EFAULT))
        }
    }

    /// Reads a NUL-terminated string of at most `limit` bytes at `addr`.
    /// Reads never cross into a page that the string does not reach, so an
    /// unmapped page after the string is never touched.
    pub fn read_cstr(&self, addr: u64, limit: usize) -> io::Result<Read> {
        if addr == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        const PAGE: u64 = 4096;
        let mut out = Vec::new();
        let mut at = addr;
        let mut chunk = [0u8; PAGE as usize];
        while out.len() < limit {
            let to_page_end = (PAGE - at % PAGE) as usize;
            let want = to_page_end.min(limit - out.len());
            let n = self.read_mem(at, &mut chunk[..want])?;
            if n == 0 {
                return Err(io::Error::from_raw_os_error(libc::EFAULT));
            }
            if let Some(end) = chunk[..n].iter().position(|b| *b == 0) {
                out.extend_from_slice(&chunk[..end]);
                return Ok(Read {
                    bytes: out,
                    truncated: false,
                });
            }
            out.extend_from_slice(&chunk[..n]);
            at += n as u64;
        }
        Ok(Read {
            bytes: out,
            truncated: true,
        })
    }

    /// Reads a NULL-terminated array of string pointers (argv) as one
    /// NUL-separated buffer, at most [`ARGV_MAX`] bytes.
    pub fn read_argv(&self, addr: u64) -> io::Result<Read> {
        let mut out = Vec::new();
        if addr == 0 {
            return Ok(Read {
                bytes: out,
                truncated: false,
            });
        }
        let mut at = addr;
        let mut ptrs = [0u8; 8 * 64];
        loop {
            // Pointers up to the end of the page, at most 64 at a time.
            let to_page_end = (4096 - at % 4096) as usize;
            let want = to_page_end.min(ptrs.len());
            let n = self.read_mem(at, &mut ptrs[..want])?;
            if n < 8 {
                return Err(io::Error::from_raw_os_error(libc::EFAULT));
            }
            for p in ptrs[..n - n % 8].chunks_exact(8) {
                let p = u64::from_ne_bytes(p.try_into().unwrap_or_default());
                if p == 0 {
                    return Ok(Read {
                        bytes: out,
                        truncated: false,
                    });
                }
                let room = ARGV_MAX.saturating_sub(out.len());
                let s = self.read_cstr(p, room.min(PATH_MAX * 32))?;
                out.extend_from_slice(&s.bytes);
                out.push(0);
                if s.truncated || out.len() >= ARGV_MAX {
                    return Ok(Read {
                        bytes: out,
                        truncated: true,
                    });
                }
            }
            at += (n - n % 8) as u64;
        }
    }

    /// Resumes until the next stop the filter or the options ask for,
    /// delivering `sig` (0 for none).
    pub fn cont(self, sig: i32) {
        self.resume(libc::PTRACE_CONT, sig);
    }

    /// Resumes and stops again at this syscall's exit.
    pub fn to_syscall_exit(self, sig: i32) {
        self.resume(libc::PTRACE_SYSCALL, sig);
    }

    /// Leaves a group-stopped tracee stopped, but lets it report further
    /// events (`PTRACE_LISTEN`).
    pub fn listen(self) {
        self.resume(libc::PTRACE_LISTEN, 0);
    }

    fn resume(self, req: libc::c_uint, sig: i32) {
        // SAFETY: a resume request on a tracee we hold in a stop; a tracee
        // that died meanwhile gives ESRCH, and its exit is reported by
        // waitpid, so the error is ignored.
        unsafe {
            libc::ptrace(req, self.tid, 0usize, sig as usize);
        }
    }
}
