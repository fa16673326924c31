//! Making the paths a program passes absolute, without the heap.
//!
//! `..` and symlinks are kept as written: the CLI normalises, and resolving
//! here would cost syscalls in every hook.

use core::ffi::{c_char, c_int};

use crate::sys::{self, Buf};

/// Capacity of a path buffer: longer than PATH_MAX so a cwd prefix plus a
/// relative path still fits.
pub const PATH_CAP: usize = 8192;
pub type PathBuf = Buf<PATH_CAP>;

/// Appends the directory `dirfd` stands for (cwd for AT_FDCWD).
fn push_dir(dirfd: c_int, out: &mut PathBuf) {
    let start = out.len;
    let room = out.bytes.get_mut(start..).unwrap_or(&mut []);
    let n = if dirfd == libc::AT_FDCWD {
        sys::getcwd(room)
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
