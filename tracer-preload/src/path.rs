//! Making the paths a program passes absolute, without the heap.
//!
//! `..` and symlinks are kept as written: the CLI normalises, and resolving
//! here would cost syscalls in every hook.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::sys::{self, Buf};

/// Capacity of a path buffer: longer than PATH_MAX so a cwd prefix plus a
/// relative path still fits.
pub const PATH_CAP: usize = 8192;
pub type PathBuf = Buf<PATH_CAP>;

/// The cwd, cached for the process: every relative path a hook sees is
/// made absolute against it, and `getcwd` is a system call. The chdir
/// family (hooked for this alone, nothing is recorded) moves [`CWD_GEN`]
/// on, so a cached copy from an older generation is asked again. Where the
/// cwd can change with this process's memory not knowing, the cache is
/// off for good ([`cwd_unknowable`]): a vfork child's chdir (its cwd is its
/// own, its memory its parent's), `unshare` of the fs, `setns`, and a
/// kernel without MADV_WIPEONFORK.
struct CwdCache {
    /// Generation the copy was taken at; 0: none.
    gen_: AtomicU64,
    /// One thread reads or fills at a time; the others ask the kernel.
    busy: AtomicBool,
    len: AtomicUsize,
    bytes: UnsafeCell<[u8; CWD_CAP]>,
}
// SAFETY: `bytes` is only touched by the thread that set `busy`.
unsafe impl Sync for CwdCache {}

const CWD_CAP: usize = 4096;
static CWD: CwdCache = CwdCache {
    gen_: AtomicU64::new(0),
    busy: AtomicBool::new(false),
    len: AtomicUsize::new(0),
    bytes: UnsafeCell::new([0; CWD_CAP]),
};
static CWD_GEN: AtomicU64 = AtomicU64::new(1);
static CWD_OFF: AtomicBool = AtomicBool::new(false);

/// After a chdir, fchdir or chroot of this process that returned `ret`:
/// a success moves the cache on. Returns `ret`.
pub fn cwd_call(ret: c_int) -> c_int {
    if ret == 0 {
        if !crate::stream::own_memory() {
            cwd_unknowable();
        }
        CWD_GEN.fetch_add(1, Ordering::AcqRel);
    }
    ret
}

/// The cwd may differ from what this memory would learn: never cache it.
pub fn cwd_unknowable() {
    CWD_OFF.store(true, Ordering::Release);
}

/// `getcwd` into `room`, from the cache when it is current.
fn cwd_into(room: &mut [u8]) -> Option<usize> {
    if CWD_OFF.load(Ordering::Acquire)
        || CWD
            .busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
    {
        return sys::getcwd(room);
    }
    // Read before asking: a chdir racing the fill leaves the copy stale.
    let now = CWD_GEN.load(Ordering::Acquire);
    // SAFETY: this thread holds `busy`.
    let cached = unsafe { &mut *CWD.bytes.get() };
    let n = if CWD.gen_.load(Ordering::Relaxed) == now {
        let n = CWD.len.load(Ordering::Relaxed);
        match (room.get_mut(..n), cached.get(..n)) {
            (Some(dst), Some(src)) => {
                dst.copy_from_slice(src);
                Some(n)
            }
            _ => sys::getcwd(room),
        }
    } else {
        let n = sys::getcwd(room);
        if let Some((dst, src)) = n.and_then(|n| Some((cached.get_mut(..n)?, room.get(..n)?))) {
            dst.copy_from_slice(src);
            CWD.len.store(src.len(), Ordering::Relaxed);
            CWD.gen_.store(now, Ordering::Relaxed);
        }
        n
    };
    CWD.busy.store(false, Ordering::Release);
    n
}

/// Appends the directory `dirfd` stands for (cwd for AT_FDCWD).
fn push_dir(dirfd: c_int, out: &mut PathBuf) {
    let start = out.len;
    let room = out.bytes.get_mut(start..).unwrap_or(&mut []);
    let n = if dirfd == libc::AT_FDCWD {
        cwd_into(room)
    } else {
        let link = sys::proc_fd_path(dirfd);
        sys::readlink(link.as_slice_nul(), room)
    };
    match n {
        Some(n) if start + n < PATH_CAP => out.len = start + n,
        _ => out.truncated = true,
    }
}

/// Absolute form of `path` relative to `dirfd`.
///
/// # Safety
/// `path` must be null or a NUL-terminated string.
pub unsafe fn absolute(dirfd: c_int, path: *const c_char) -> PathBuf {
    let mut out = PathBuf::new();
    // SAFETY: forwarded from the caller.
    let mut p = unsafe { sys::cstr(path, PATH_CAP + 1) };
    if p.first() != Some(&b'/') {
        // "./x" is "x": drop leading "./" so the common case reads cleanly
        // ("..", which needs symlink knowledge, is left to the CLI).
        while let Some(rest) = p.strip_prefix(b"./") {
            p = rest.strip_prefix(b"/").unwrap_or(rest);
        }
        push_dir(dirfd, &mut out);
        if !p.is_empty() && out.as_slice().last() != Some(&b'/') {
            out.push(b"/");
        }
    }
    out.push(p);
    out
}

/// Absolute path of an open fd (via /proc/self/fd).
pub fn of_fd(fd: c_int) -> PathBuf {
    let mut out = PathBuf::new();
    push_dir(fd, &mut out);
    out
}
