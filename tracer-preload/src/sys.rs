//! Raw system calls and the few libc-free helpers built on them.
//!
//! The shim's own I/O goes through here as raw syscalls rather than libc
//! wrappers: they cannot re-enter our hooks, never touch `errno`, never
//! allocate and never take a lock. (The only libc calls the shim makes are
//! `dlsym`, `getenv`, `fileno`, `clock_gettime` and `pthread_atfork`.)

use core::ffi::{c_char, c_int, c_long};

/// Performs a raw system call and returns the kernel's result
/// (negative errno on failure).
///
/// # Safety
/// The arguments must be valid for system call `nr` (pointers point to
/// memory of the size the kernel will access).
#[cfg(target_arch = "x86_64")]
#[inline]
pub unsafe fn syscall6(nr: c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the arguments are valid for `nr`; the
    // kernel clobbers only rcx and r11 besides rax.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a[0],
            in("rsi") a[1],
            in("rdx") a[2],
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Performs a raw system call and returns the kernel's result
/// (negative errno on failure).
///
/// # Safety
/// The arguments must be valid for system call `nr`.
#[cfg(target_arch = "aarch64")]
#[inline]
pub unsafe fn syscall6(nr: c_long, a: [usize; 6]) -> isize {
    let ret: isize;
    // SAFETY: the caller guarantees the arguments are valid for `nr`.
    unsafe {
        core::arch::asm!(
            "svc 0",
            in("x8") nr as usize,
            inlateout("x0") a[0] as isize => ret,
            in("x1") a[1],
            in("x2") a[2],
            in("x3") a[3],
            in("x4") a[4],
            in("x5") a[5],
            options(nostack),
        );
    }
    ret
}

macro_rules! sc {
    ($nr:expr) => { $crate::sys::syscall6($nr, [0; 6]) };
    ($nr:expr, $($a:expr),+ $(,)?) => {{
        let mut args = [0usize; 6];
        let vals = [$($a as usize),+];
        let mut i = 0;
        while i < vals.len() && i < 6 {
            args[i] = vals[i];
            i += 1;
        }
        $crate::sys::syscall6($nr, args)
    }};
}

pub fn getpid() -> u32 {
    // SAFETY: getpid takes no arguments and cannot fail.
    unsafe { sc!(libc::SYS_getpid) as u32 }
}

pub fn gettid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { sc!(libc::SYS_gettid) as u32 }
}

pub fn getppid() -> u32 {
    // SAFETY: getppid takes no arguments and cannot fail.
    unsafe { sc!(libc::SYS_getppid) as u32 }
}

/// True when the kernel reaps this process's children without a wait:
/// SIGCHLD ignored, or `SA_NOCLDWAIT` (both inherited by a fork child).
/// Also true when the disposition cannot be read.
pub fn children_reaped_unseen() -> bool {
    // The kernel's struct sigaction starts with the handler and the flags
    // (x86_64 and aarch64 alike); room for the restorer and the mask.
    let mut old = [0usize; 4];
    // SAFETY: a null new action only reads the current one into `old`,
    // which is as large as the kernel's struct for an 8-byte mask.
    let r = unsafe {
        sc!(
            libc::SYS_rt_sigaction,
            libc::SIGCHLD,
            0usize,
            old.as_mut_ptr(),
            8usize
        )
    };
    r != 0 || old[0] == libc::SIG_IGN || old[1] & libc::SA_NOCLDWAIT as usize != 0
}

pub fn geteuid() -> u32 {
    // SAFETY: no arguments.
    unsafe { sc!(libc::SYS_geteuid) as u32 }
}

pub fn getegid() -> u32 {
    // SAFETY: no arguments.
    unsafe { sc!(libc::SYS_getegid) as u32 }
}

/// `clock_gettime(clock)` in nanoseconds, 0 on failure.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // libc's clock_gettime goes through the vDSO (no syscall) and never
    // re-enters our hooks; it only touches errno on failure, and every
    // caller restores errno anyway.
    // SAFETY: ts is a valid timespec it fills.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    if r < 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

pub fn close(fd: c_int) -> isize {
    // SAFETY: closing an fd touches no memory.
    unsafe { sc!(libc::SYS_close, fd) }
}

/// `openat` on a NUL-terminated path.
pub fn openat(dirfd: c_int, path: &[u8], flags: c_int, mode: u32) -> isize {
    if path.last() != Some(&0) {
        return -(libc::EINVAL as isize);
    }
    // SAFETY: path is NUL-terminated.
    unsafe { sc!(libc::SYS_openat, dirfd, path.as_ptr(), flags, mode) }
}

/// `mkdirat` on a NUL-terminated path.
pub fn mkdirat(dirfd: c_int, path: &[u8], mode: u32) -> isize {
    if path.last() != Some(&0) {
        return -(libc::EINVAL as isize);
    }
    // SAFETY: path is NUL-terminated.
    unsafe { sc!(libc::SYS_mkdirat, dirfd, path.as_ptr(), mode) }
}

pub fn pread(fd: c_int, buf: &mut [u8], off: u64) -> isize {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    unsafe { sc!(libc::SYS_pread64, fd, buf.as_mut_ptr(), buf.len(), off) }
}

/// `pwrite` of all of `buf` at `off` (one call; short writes count as failure).
pub fn pwrite(fd: c_int, buf: &[u8], off: u64) -> bool {
    // SAFETY: buf is valid for reads of buf.len() bytes.
    let r = unsafe { sc!(libc::SYS_pwrite64, fd, buf.as_ptr(), buf.len(), off) };
    r == buf.len() as isize
}

/// `fallocate(fd, 0, off, len)`: allocates the range and extends the file to cover it, never
/// shrinking it; the kernel's result.
pub fn fallocate(fd: c_int, off: u64, len: u64) -> isize {
    // SAFETY: touches no memory.
    unsafe { sc!(libc::SYS_fallocate, fd, 0, off, len) }
}

/// `truncate` of a NUL-terminated path.
pub fn truncate(path: &[u8], len: u64) -> isize {
    if path.last() != Some(&0) {
        return -(libc::EINVAL as isize);
    }
    // SAFETY: path is NUL-terminated.
    unsafe { sc!(libc::SYS_truncate, path.as_ptr(), len) }
}

/// `unlink` of a NUL-terminated path.
pub fn unlink(path: &[u8]) -> isize {
    if path.last() != Some(&0) {
        return -(libc::EINVAL as isize);
    }
    // SAFETY: path is NUL-terminated.
    unsafe { sc!(libc::SYS_unlinkat, libc::AT_FDCWD, path.as_ptr(), 0) }
}

/// Sets the access and modification times of a NUL-terminated path to now.
pub fn touch(path: &[u8]) -> isize {
    if path.last() != Some(&0) {
        return -(libc::EINVAL as isize);
    }
    // SAFETY: path is NUL-terminated; a null times pointer means "now".
    unsafe {
        sc!(
            libc::SYS_utimensat,
            libc::AT_FDCWD,
            path.as_ptr(),
            0usize,
            0
        )
    }
}

/// `mmap`; the address, or null on failure.
pub fn mmap(len: usize, prot: c_int, flags: c_int, fd: c_int) -> *mut u8 {
    // SAFETY: a null hint lets the kernel choose free address space, so no
    // existing memory is replaced.
    let r = unsafe { sc!(libc::SYS_mmap, 0usize, len, prot, flags, fd, 0usize) };
    if (-4095..0).contains(&r) {
        core::ptr::null_mut()
    } else {
        r as *mut u8
    }
}

/// Grows a mapping where it is (`mremap` without `MREMAP_MAYMOVE`).
///
/// # Safety
/// `addr` and `old` must describe a mapping this library made.
pub unsafe fn mremap_in_place(addr: *mut u8, old: usize, new: usize) -> bool {
    // SAFETY: forwarded from the caller; without MAYMOVE nothing moves.
    unsafe { sc!(libc::SYS_mremap, addr, old, new, 0) == addr as isize }
}

/// # Safety
/// `addr` and `len` must describe a mapping this library made and no
/// longer uses.
pub unsafe fn munmap(addr: *mut u8, len: usize) {
    // SAFETY: forwarded from the caller.
    unsafe { sc!(libc::SYS_munmap, addr, len) };
}

/// # Safety
/// `addr` and `len` must describe a mapping this library made.
pub unsafe fn madvise(addr: *mut u8, len: usize, advice: c_int) -> bool {
    // SAFETY: forwarded from the caller; the advice values used here
    // change only what fork does with the range.
    unsafe { sc!(libc::SYS_madvise, addr, len, advice) == 0 }
}

/// Gives the CPU away once.
pub fn sched_yield() {
    // SAFETY: no arguments.
    unsafe { sc!(libc::SYS_sched_yield) };
}

/// Sleeps for about `us` microseconds.
pub fn sleep_us(us: u64) {
    let ts = libc::timespec {
        tv_sec: (us / 1_000_000) as libc::time_t,
        tv_nsec: ((us % 1_000_000) * 1000) as libc::c_long,
    };
    // SAFETY: ts is a valid timespec; a null remainder pointer is allowed.
    unsafe { sc!(libc::SYS_nanosleep, &ts as *const libc::timespec, 0usize) };
}

pub fn fstat(fd: c_int) -> Option<libc::stat> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: st is a valid, writable struct stat (the kernel's layout on
    // x86_64 and aarch64).
    let r = unsafe { sc!(libc::SYS_fstat, fd, &mut st as *mut libc::stat) };
    (r >= 0).then_some(st)
}

/// `fstatat` on a NUL-terminated path.
pub fn fstatat(dirfd: c_int, path: &[u8], flags: c_int) -> Option<libc::stat> {
    if path.last() != Some(&0) {
        return None;
    }
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { core::mem::zeroed() };
    // SAFETY: path is NUL-terminated, st is writable.
    let r = unsafe {
        sc!(
            libc::SYS_newfstatat,
            dirfd,
            path.as_ptr(),
            &mut st as *mut libc::stat,
            flags
        )
    };
    (r >= 0).then_some(st)
}

/// `faccessat(dirfd, path, mode)` on a NUL-terminated path.
pub fn access(path: &[u8], mode: c_int) -> bool {
    if path.last() != Some(&0) {
        return false;
    }
    // SAFETY: path is NUL-terminated.
    unsafe { sc!(libc::SYS_faccessat, libc::AT_FDCWD, path.as_ptr(), mode) == 0 }
}

/// `getcwd` into `buf`; returns the length without the NUL.
pub fn getcwd(buf: &mut [u8]) -> Option<usize> {
    // SAFETY: buf is writable for buf.len() bytes.
    let r = unsafe { sc!(libc::SYS_getcwd, buf.as_mut_ptr(), buf.len()) };
    // The kernel returns the length including the NUL.
    if r <= 0 {
        return None;
    }
    Some((r as usize).saturating_sub(1))
}

/// `readlink` of a NUL-terminated path into `buf`; returns the length.
pub fn readlink(path: &[u8], buf: &mut [u8]) -> Option<usize> {
    if path.last() != Some(&0) {
        return None;
    }
    // SAFETY: path is NUL-terminated, buf is writable.
    let r = unsafe {
        sc!(
            libc::SYS_readlinkat,
            libc::AT_FDCWD,
            path.as_ptr(),
            buf.as_mut_ptr(),
            buf.len()
        )
    };
    (r >= 0).then_some(r as usize)
}

/// Fills `buf` from the kernel's random pool without blocking.
pub fn getrandom(buf: &mut [u8]) -> bool {
    // SAFETY: buf is writable for buf.len() bytes.
    let r = unsafe {
        sc!(
            libc::SYS_getrandom,
            buf.as_mut_ptr(),
            buf.len(),
            libc::GRND_NONBLOCK
        )
    };
    r == buf.len() as isize
}

/// Soft `RLIMIT_FSIZE` (`u64::MAX` when unlimited or unknown): a file grown
/// beyond it raises SIGXFSZ.
pub fn fsize_limit() -> u64 {
    let mut lim = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is writable; a null new limit means "only read".
    let r = unsafe {
        sc!(
            libc::SYS_prlimit64,
            0,
            libc::RLIMIT_FSIZE,
            0usize,
            &mut lim as *mut libc::rlimit64
        )
    };
    if r == 0 { lim.rlim_cur } else { u64::MAX }
}

/// Terminates the process without libc (fallback if libc's exit vanished).
pub fn exit_group(code: c_int) -> ! {
    loop {
        // SAFETY: exit_group touches no memory and does not return.
        unsafe {
            sc!(libc::SYS_exit_group, code);
        }
    }
}

/// Length of a NUL-terminated C string, at most `max`.
///
/// # Safety
/// `s` must be null or point to a NUL-terminated string (or at least
/// `max` readable bytes).
pub unsafe fn strnlen(s: *const c_char, max: usize) -> usize {
    if s.is_null() {
        return 0;
    }
    let mut n = 0;
    // SAFETY: the caller guarantees the bytes up to the NUL are readable.
    while n < max && unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    n
}

/// The bytes of a C string (without the NUL), capped at `max`.
///
/// # Safety
/// As for [`strnlen`]; the bytes must stay valid for the returned lifetime.
pub unsafe fn cstr<'a>(s: *const c_char, max: usize) -> &'a [u8] {
    if s.is_null() {
        return &[];
    }
    // SAFETY: forwarded from the caller.
    let n = unsafe { strnlen(s, max) };
    // SAFETY: the n bytes were just read.
    unsafe { core::slice::from_raw_parts(s.cast::<u8>(), n) }
}

/// Saved `errno`, restored on demand so the program sees exactly the
/// value the real call left.
pub struct Errno(c_int);

impl Errno {
    pub fn save() -> Self {
        // SAFETY: __errno_location returns this thread's errno slot.
        Errno(unsafe { *libc::__errno_location() })
    }
    pub fn get(&self) -> c_int {
        self.0
    }
    pub fn restore(self) {
        // SAFETY: as in save.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// A small fixed-capacity byte buffer (no heap). Its length comes first:
/// a short content and the length then share a page, so a buffer used for a
/// short path touches one page of its capacity, not its first and its last
/// (each a page fault in a process just started or forked).
#[repr(C)]
pub struct Buf<const N: usize> {
    pub len: usize,
    /// Something did not fit.
    pub truncated: bool,
    pub bytes: [u8; N],
}

impl<const N: usize> Buf<N> {
    pub const fn new() -> Self {
        Buf {
            len: 0,
            truncated: false,
            bytes: [0; N],
        }
    }
    pub fn push(&mut self, data: &[u8]) {
        let room = N.saturating_sub(self.len);
        let n = data.len().min(room);
        if let (Some(dst), Some(src)) = (self.bytes.get_mut(self.len..self.len + n), data.get(..n))
        {
            dst.copy_from_slice(src);
            self.len += n;
        }
        if n < data.len() {
            self.truncated = true;
        }
    }
    pub fn push_u64(&mut self, mut v: u64, base: u64) {
        let mut tmp = [0u8; 20];
        let mut i = tmp.len();
        loop {
            i -= 1;
            let d = (v % base) as u8;
            if let Some(slot) = tmp.get_mut(i) {
                *slot = if d < 10 { b'0' + d } else { b'a' + d - 10 };
            }
            v /= base;
            if v == 0 || i == 0 {
                break;
            }
        }
        self.push(tmp.get(i..).unwrap_or(&[]));
    }
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
    /// The contents including the trailing NUL written by `c_str`.
    pub fn as_slice_nul(&self) -> &[u8] {
        self.bytes.get(..=self.len).unwrap_or(&[])
    }
    /// The contents followed by a NUL (replacing the last byte if full).
    pub fn c_str(&mut self) -> &[u8] {
        if self.len >= N {
            self.len = N.saturating_sub(1);
            self.truncated = true;
        }
        if let Some(b) = self.bytes.get_mut(self.len) {
            *b = 0;
        }
        self.bytes.get(..=self.len).unwrap_or(&[])
    }
}

/// Builds "/proc/self/fd/<fd>\0".
pub fn proc_fd_path(fd: c_int) -> Buf<32> {
    let mut b = Buf::<32>::new();
    b.push(b"/proc/self/fd/");
    b.push_u64(fd as u32 as u64, 10);
    b.c_str();
    b
}
