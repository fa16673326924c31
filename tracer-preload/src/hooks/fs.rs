//! File-system hooks: open family, rename, link, symlink, unlink, truncate,
//! mkdir. Each calls the real function first and records the outcome with
//! absolute paths. The chdir family records nothing: it only tells the cwd
//! cache ([`path::cwd_call`]) that relative paths now mean something else.

use core::ffi::{c_char, c_int, c_uint};

use libc::{FILE, mode_t, off_t, off64_t};
use tracer_wire::{Event, FLAG_PATH_TRUNCATED};

use super::call_real;
use crate::path::{self, PathBuf};
use crate::stream::{self, emit, emit_large};
use crate::{content, record, result, sys};

fn path_flags(p: &PathBuf) -> u32 {
    if p.truncated { FLAG_PATH_TRUNCATED } else { 0 }
}

fn two_path_flags(a: &PathBuf, b: &PathBuf) -> u32 {
    path_flags(a) | path_flags(b)
}

/// An open of a device, FIFO or socket (`> /dev/null`, a terminal, a
/// pipe) is not recorded: no backend's analysis keeps one (only regular
/// files have content), and in a fork child that only redirects and execs
/// it would open a stream for nothing.
fn not_a_file(stat: &Option<tracer_wire::FileStat>) -> bool {
    stat.is_some_and(|st| {
        matches!(
            st.mode & libc::S_IFMT,
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO | libc::S_IFSOCK
        )
    })
}

/// Records an open-family call.
///
/// # Safety
/// `path` must be null or a C string.
unsafe fn record_open(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint, ret: c_int) {
    record(|errno| {
        let raw = if ret >= 0 { sys::fstat(ret) } else { None };
        let stat = raw.as_ref().map(stream::to_filestat);
        if not_a_file(&stat) {
            return;
        }
        // SAFETY: forwarded from the caller.
        let abs = unsafe { path::absolute(dirfd, path) };
        if let Some(st) = &raw {
            // SAFETY: forwarded from the caller.
            unsafe { content::after_open(dirfd, path, flags, st) };
        }
        let creates = flags & libc::O_CREAT != 0 || flags & libc::O_TMPFILE == libc::O_TMPFILE;
        let ev = Event::Open {
            flags,
            mode: if creates { mode } else { 0 },
            result: result(ret, errno),
            stat,
            path: abs.as_slice(),
        };
        emit(&ev, path_flags(&abs));
    });
}

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, c_uint) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint) -> c_int;
type Open2Fn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type Openat2Fn = unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
type CreatFn = unsafe extern "C" fn(*const c_char, mode_t) -> c_int;

// `open` is variadic in C; on x86_64 and aarch64 a fixed third integer
// argument reads the same register the variadic mode would be passed in.
macro_rules! open_hook {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
            // SAFETY: path is the caller's C string.
            unsafe { content::before_open(libc::AT_FDCWD, path, flags) };
            let ret = call_real!($name: OpenFn, (path, flags, mode), -1);
            // SAFETY: path is the caller's C string.
            unsafe { record_open(libc::AT_FDCWD, path, flags, mode, ret) };
            ret
        }
    };
}
open_hook!(open);
open_hook!(open64);

macro_rules! openat_hook {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            dirfd: c_int,
            path: *const c_char,
            flags: c_int,
            mode: c_uint,
        ) -> c_int {
            // SAFETY: path is the caller's C string.
            unsafe { content::before_open(dirfd, path, flags) };
            let ret = call_real!($name: OpenatFn, (dirfd, path, flags, mode), -1);
            // SAFETY: path is the caller's C string.
            unsafe { record_open(dirfd, path, flags, mode, ret) };
            ret
        }
    };
}
openat_hook!(openat);
openat_hook!(openat64);

macro_rules! open2_hook {
    ($name:ident) => {
        /// Fortified `open` (`_FORTIFY_SOURCE`), no mode argument.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int) -> c_int {
            // SAFETY: path is the caller's C string.
            unsafe { content::before_open(libc::AT_FDCWD, path, flags) };
            let ret = call_real!($name: Open2Fn, (path, flags), -1);
            // SAFETY: path is the caller's C string.
            unsafe { record_open(libc::AT_FDCWD, path, flags, 0, ret) };
            ret
        }
    };
}
open2_hook!(__open_2);
open2_hook!(__open64_2);

macro_rules! openat2_hook {
    ($name:ident) => {
        /// Fortified `openat`, no mode argument.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
            // SAFETY: path is the caller's C string.
            unsafe { content::before_open(dirfd, path, flags) };
            let ret = call_real!($name: Openat2Fn, (dirfd, path, flags), -1);
            // SAFETY: path is the caller's C string.
            unsafe { record_open(dirfd, path, flags, 0, ret) };
            ret
        }
    };
}
openat2_hook!(__openat_2);
openat2_hook!(__openat64_2);

macro_rules! creat_hook {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, mode: mode_t) -> c_int {
            let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
            // SAFETY: path is the caller's C string.
            unsafe { content::before_open(libc::AT_FDCWD, path, flags) };
            let ret = call_real!($name: CreatFn, (path, mode), -1);
            // SAFETY: path is the caller's C string.
            unsafe { record_open(libc::AT_FDCWD, path, flags, mode, ret) };
            ret
        }
    };
}
creat_hook!(creat);
creat_hook!(creat64);

// mkstemp and its kin create the file inside libc (no hooked open), so
// without these a shell's here-document file would look like a file the
// run only read, then deleted.
type MkstempFn = unsafe extern "C" fn(*mut c_char) -> c_int;
type MkostempFn = unsafe extern "C" fn(*mut c_char, c_int) -> c_int;
type MkstempsFn = unsafe extern "C" fn(*mut c_char, c_int) -> c_int;
type MkostempsFn = unsafe extern "C" fn(*mut c_char, c_int, c_int) -> c_int;

/// Records the file a mkstemp-family call created (the template now holds
/// its name).
///
/// # Safety
/// `template` must be null or a C string.
unsafe fn record_mkstemp(template: *const c_char, flags: c_int, ret: c_int) {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | flags;
    // SAFETY: forwarded from the caller.
    unsafe { record_open(libc::AT_FDCWD, template, flags, 0o600, ret) };
}

macro_rules! mkstemp_hook {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(template: *mut c_char) -> c_int {
            let ret = call_real!($name: MkstempFn, (template), -1);
            // SAFETY: the caller's template, a C string.
            unsafe { record_mkstemp(template, 0, ret) };
            ret
        }
    };
}
mkstemp_hook!(mkstemp);
mkstemp_hook!(mkstemp64);

macro_rules! mkostemp_hook {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(template: *mut c_char, flags: c_int) -> c_int {
            let ret = call_real!($name: MkostempFn, (template, flags), -1);
            // SAFETY: the caller's template, a C string.
            unsafe { record_mkstemp(template, flags, ret) };
            ret
        }
    };
}
mkostemp_hook!(mkostemp);
mkostemp_hook!(mkostemp64);

macro_rules! mkstemps_hook {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(template: *mut c_char, suffix: c_int) -> c_int {
            let ret = call_real!($name: MkstempsFn, (template, suffix), -1);
            // SAFETY: the caller's template, a C string.
            unsafe { record_mkstemp(template, 0, ret) };
            ret
        }
    };
}
mkstemps_hook!(mkstemps);
mkstemps_hook!(mkstemps64);

macro_rules! mkostemps_hook {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(template: *mut c_char, suffix: c_int, flags: c_int) -> c_int {
            let ret = call_real!($name: MkostempsFn, (template, suffix, flags), -1);
            // SAFETY: the caller's template, a C string.
            unsafe { record_mkstemp(template, flags, ret) };
            ret
        }
    };
}
mkostemps_hook!(mkostemps);
mkostemps_hook!(mkostemps64);

/// `fopen` mode string to `O_*` flags, as glibc interprets it.
///
/// # Safety
/// `mode` must be null or a C string.
unsafe fn fopen_flags(mode: *const c_char) -> c_int {
    // SAFETY: forwarded from the caller.
    let m = unsafe { sys::cstr(mode, 64) };
    let mut acc = libc::O_RDONLY;
    let mut extra = 0;
    match m.first() {
        Some(b'w') => {
            acc = libc::O_WRONLY;
            extra = libc::O_CREAT | libc::O_TRUNC;
        }
        Some(b'a') => {
            acc = libc::O_WRONLY;
            extra = libc::O_CREAT | libc::O_APPEND;
        }
        _ => {}
    }
    // glibc stops at ',' (the ",ccs=" suffix).
    for &c in m.iter().skip(1).take_while(|c| **c != b',') {
        match c {
            b'+' => acc = libc::O_RDWR,
            b'x' => extra |= libc::O_EXCL,
            b'e' => extra |= libc::O_CLOEXEC,
            _ => {}
        }
    }
    acc | extra
}

/// Records an fopen-family call.
///
/// # Safety
/// `path`/`mode` must be null or C strings, `fp` null or a live FILE.
unsafe fn record_fopen(path: *const c_char, mode: *const c_char, fp: *mut FILE) {
    if path.is_null() {
        return;
    }
    record(|errno| {
        // SAFETY: forwarded from the caller.
        let flags = unsafe { fopen_flags(mode) };
        let fd = if fp.is_null() {
            -1
        } else {
            // SAFETY: fp is a FILE the real fopen returned.
            unsafe { libc::fileno(fp) }
        };
        let raw = if fd >= 0 { sys::fstat(fd) } else { None };
        let stat = raw.as_ref().map(stream::to_filestat);
        if not_a_file(&stat) {
            return;
        }
        // SAFETY: forwarded from the caller.
        let abs = unsafe { path::absolute(libc::AT_FDCWD, path) };
        if let Some(st) = &raw {
            // SAFETY: forwarded from the caller.
            unsafe { content::after_open(libc::AT_FDCWD, path, flags, st) };
        }
        let ev = Event::Open {
            flags,
            mode: if flags & libc::O_CREAT != 0 { 0o666 } else { 0 },
            result: if fp.is_null() { -errno } else { fd },
            stat,
            path: abs.as_slice(),
        };
        emit(&ev, path_flags(&abs));
    });
}

/// Hashes the file an fopen-family call may change, first.
///
/// # Safety
/// `path`/`mode` must be null or C strings.
unsafe fn before_fopen(path: *const c_char, mode: *const c_char) {
    if path.is_null() || !stream::ACTIVE.load(core::sync::atomic::Ordering::Acquire) {
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe { content::before_open(libc::AT_FDCWD, path, fopen_flags(mode)) };
}

type FopenFn = unsafe extern "C" fn(*const c_char, *const c_char) -> *mut FILE;
type FreopenFn = unsafe extern "C" fn(*const c_char, *const c_char, *mut FILE) -> *mut FILE;

macro_rules! fopen_hook {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, mode: *const c_char) -> *mut FILE {
            // SAFETY: the caller's C strings.
            unsafe { before_fopen(path, mode) };
            let fp = call_real!($name: FopenFn, (path, mode), core::ptr::null_mut());
            // SAFETY: the caller's strings and the FILE just returned.
            unsafe { record_fopen(path, mode, fp) };
            fp
        }
    };
}
fopen_hook!(fopen);
fopen_hook!(fopen64);

macro_rules! freopen_hook {
    ($name:ident) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            path: *const c_char,
            mode: *const c_char,
            stream: *mut FILE,
        ) -> *mut FILE {
            // SAFETY: the caller's C strings.
            unsafe { before_fopen(path, mode) };
            let fp = call_real!($name: FreopenFn, (path, mode, stream), core::ptr::null_mut());
            // SAFETY: the caller's strings and the FILE just returned.
            unsafe { record_fopen(path, mode, fp) };
            fp
        }
    };
}
freopen_hook!(freopen);
freopen_hook!(freopen64);

/// Records a rename from `(odir, old)` to `(ndir, new)`.
///
/// # Safety
/// The paths must be null or C strings.
unsafe fn record_rename(
    odir: c_int,
    old: *const c_char,
    ndir: c_int,
    new: *const c_char,
    flags: c_uint,
    ret: c_int,
) {
    record(|errno| {
        // SAFETY: forwarded from the caller.
        let (o, n) = unsafe { (path::absolute(odir, old), path::absolute(ndir, new)) };
        let ev = Event::Rename {
            flags,
            result: result(ret, errno),
            old: o.as_slice(),
            new: n.as_slice(),
        };
        emit_large(&ev, two_path_flags(&o, &n));
    });
}

/// A rename moves the file away from `old` (out of the tree, perhaps) and
/// replaces whatever `new` held: both are hashed first.
///
/// # Safety
/// The paths must be null or C strings.
unsafe fn before_rename(odir: c_int, old: *const c_char, ndir: c_int, new: *const c_char) {
    // SAFETY: forwarded from the caller.
    unsafe {
        content::before_path(odir, old, false);
        content::before_path(ndir, new, false);
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn rename(old: *const c_char, new: *const c_char) -> c_int {
    type F = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    // SAFETY: the caller's C strings.
    unsafe { before_rename(libc::AT_FDCWD, old, libc::AT_FDCWD, new) };
    let ret = call_real!(rename: F, (old, new), -1);
    // SAFETY: the caller's C strings.
    unsafe { record_rename(libc::AT_FDCWD, old, libc::AT_FDCWD, new, 0, ret) };
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn renameat(
    odir: c_int,
    old: *const c_char,
    ndir: c_int,
    new: *const c_char,
) -> c_int {
    type F = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char) -> c_int;
    // SAFETY: the caller's C strings.
    unsafe { before_rename(odir, old, ndir, new) };
    let ret = call_real!(renameat: F, (odir, old, ndir, new), -1);
    // SAFETY: the caller's C strings.
    unsafe { record_rename(odir, old, ndir, new, 0, ret) };
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn renameat2(
    odir: c_int,
    old: *const c_char,
    ndir: c_int,
    new: *const c_char,
    flags: c_uint,
) -> c_int {
    type F = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, c_uint) -> c_int;
    // SAFETY: the caller's C strings.
    unsafe { before_rename(odir, old, ndir, new) };
    let ret = call_real!(renameat2: F, (odir, old, ndir, new, flags), -1);
    // SAFETY: the caller's C strings.
    unsafe { record_rename(odir, old, ndir, new, flags, ret) };
    ret
}

/// # Safety
/// The paths must be null or C strings.
unsafe fn record_link(
    odir: c_int,
    old: *const c_char,
    ndir: c_int,
    new: *const c_char,
    ret: c_int,
) {
    record(|errno| {
        // SAFETY: forwarded from the caller.
        let (o, n) = unsafe { (path::absolute(odir, old), path::absolute(ndir, new)) };
        let ev = Event::Link {
            result: result(ret, errno),
            old: o.as_slice(),
            new: n.as_slice(),
        };
        emit_large(&ev, two_path_flags(&o, &n));
    });
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn link(old: *const c_char, new: *const c_char) -> c_int {
    type F = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    let ret = call_real!(link: F, (old, new), -1);
    // SAFETY: the caller's C strings.
    unsafe { record_link(libc::AT_FDCWD, old, libc::AT_FDCWD, new, ret) };
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn linkat(
    odir: c_int,
    old: *const c_char,
    ndir: c_int,
    new: *const c_char,
    flags: c_int,
) -> c_int {
    type F = unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, c_int) -> c_int;
    let ret = call_real!(linkat: F, (odir, old, ndir, new, flags), -1);
    // SAFETY: the caller's C strings.
    unsafe { record_link(odir, old, ndir, new, ret) };
    ret
}

/// # Safety
/// The strings must be null or C strings.
unsafe fn record_symlink(target: *const c_char, ndir: c_int, linkpath: *const c_char, ret: c_int) {
    record(|errno| {
        // SAFETY: forwarded from the caller.
        let t = unsafe { sys::cstr(target, path::PATH_CAP) };
        // SAFETY: forwarded from the caller.
        let l = unsafe { path::absolute(ndir, linkpath) };
        let ev = Event::Symlink {
            result: result(ret, errno),
            target: t,
            link: l.as_slice(),
        };
        emit_large(&ev, path_flags(&l));
    });
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn symlink(target: *const c_char, linkpath: *const c_char) -> c_int {
    type F = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
    let ret = call_real!(symlink: F, (target, linkpath), -1);
    // SAFETY: the caller's C strings.
    unsafe { record_symlink(target, libc::AT_FDCWD, linkpath, ret) };
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn symlinkat(
    target: *const c_char,
    ndir: c_int,
    linkpath: *const c_char,
) -> c_int {
    type F = unsafe extern "C" fn(*const c_char, c_int, *const c_char) -> c_int;
    let ret = call_real!(symlinkat: F, (target, ndir, linkpath), -1);
    // SAFETY: the caller's C strings.
    unsafe { record_symlink(target, ndir, linkpath, ret) };
    ret
}

/// # Safety
/// `path` must be null or a C string.
unsafe fn record_unlink(dirfd: c_int, path: *const c_char, dir: bool, ret: c_int) {
    record(|errno| {
        // SAFETY: forwarded from the caller.
        let p = unsafe { path::absolute(dirfd, path) };
        let ev = Event::Unlink {
            result: result(ret, errno),
            dir,
            path: p.as_slice(),
        };
        emit(&ev, path_flags(&p));
    });
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn unlink(path: *const c_char) -> c_int {
    type F = unsafe extern "C" fn(*const c_char) -> c_int;
    // SAFETY: the caller's C string.
    unsafe { content::before_path(libc::AT_FDCWD, path, false) };
    let ret = call_real!(unlink: F, (path), -1);
    // SAFETY: the caller's C string.
    unsafe { record_unlink(libc::AT_FDCWD, path, false, ret) };
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    type F = unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int;
    let dir = flags & libc::AT_REMOVEDIR != 0;
    if !dir {
        // SAFETY: the caller's C string.
        unsafe { content::before_path(dirfd, path, false) };
    }
    let ret = call_real!(unlinkat: F, (dirfd, path, flags), -1);
    // SAFETY: the caller's C string.
    unsafe { record_unlink(dirfd, path, dir, ret) };
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn rmdir(path: *const c_char) -> c_int {
    type F = unsafe extern "C" fn(*const c_char) -> c_int;
    let ret = call_real!(rmdir: F, (path), -1);
    // SAFETY: the caller's C string.
    unsafe { record_unlink(libc::AT_FDCWD, path, true, ret) };
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn remove(path: *const c_char) -> c_int {
    type F = unsafe extern "C" fn(*const c_char) -> c_int;
    // remove() picks unlink or rmdir inside libc; look first to know which.
    // The same lstat says whether a file's content is to be hashed first.
    let is_dir = crate::Guard::enter().is_some_and(|_g| {
        // SAFETY: the caller's C string.
        let p = unsafe { sys::cstr(path, path::PATH_CAP) };
        let mut b = PathBuf::new();
        b.push(p);
        let st = sys::fstatat(libc::AT_FDCWD, b.c_str(), libc::AT_SYMLINK_NOFOLLOW);
        let is_dir = st.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        if let Some(st) = st.filter(|_| !is_dir) {
            // SAFETY: the caller's C string, and b a copy of it.
            unsafe { content::before_stated(libc::AT_FDCWD, path, &mut b, &st) };
        }
        is_dir
    });
    let ret = call_real!(remove: F, (path), -1);
    // SAFETY: the caller's C string.
    unsafe { record_unlink(libc::AT_FDCWD, path, is_dir, ret) };
    ret
}

fn record_truncate(p: &PathBuf, length: i64, ret: c_int) {
    record(|errno| {
        let ev = Event::Truncate {
            result: result(ret, errno),
            length: length as u64,
            path: p.as_slice(),
        };
        emit(&ev, path_flags(p));
    });
}

macro_rules! truncate_hook {
    ($name:ident, $off:ty) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, length: $off) -> c_int {
            type F = unsafe extern "C" fn(*const c_char, $off) -> c_int;
            // SAFETY: the caller's C string.
            unsafe { content::before_path(libc::AT_FDCWD, path, true) };
            let ret = call_real!($name: F, (path, length), -1);
            if crate::stream::ACTIVE.load(core::sync::atomic::Ordering::Acquire) {
                // SAFETY: the caller's C string.
                let p = unsafe { path::absolute(libc::AT_FDCWD, path) };
                record_truncate(&p, length, ret);
            }
            ret
        }
    };
}
truncate_hook!(truncate, off_t);
truncate_hook!(truncate64, off64_t);

macro_rules! ftruncate_hook {
    ($name:ident, $off:ty) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(fd: c_int, length: $off) -> c_int {
            type F = unsafe extern "C" fn(c_int, $off) -> c_int;
            content::before_fd(fd);
            let ret = call_real!($name: F, (fd, length), -1);
            if crate::stream::ACTIVE.load(core::sync::atomic::Ordering::Acquire) {
                let p = path::of_fd(fd);
                record_truncate(&p, length, ret);
            }
            ret
        }
    };
}
ftruncate_hook!(ftruncate, off_t);
ftruncate_hook!(ftruncate64, off64_t);

/// # Safety
/// `path` must be null or a C string.
unsafe fn record_mkdir(dirfd: c_int, path: *const c_char, mode: mode_t, ret: c_int) {
    record(|errno| {
        // SAFETY: forwarded from the caller.
        let p = unsafe { path::absolute(dirfd, path) };
        let ev = Event::Mkdir {
            result: result(ret, errno),
            mode,
            path: p.as_slice(),
        };
        emit(&ev, path_flags(&p));
    });
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn mkdir(path: *const c_char, mode: mode_t) -> c_int {
    type F = unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
    let ret = call_real!(mkdir: F, (path, mode), -1);
    // SAFETY: the caller's C string.
    unsafe { record_mkdir(libc::AT_FDCWD, path, mode, ret) };
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: mode_t) -> c_int {
    type F = unsafe extern "C" fn(c_int, *const c_char, mode_t) -> c_int;
    let ret = call_real!(mkdirat: F, (dirfd, path, mode), -1);
    // SAFETY: the caller's C string.
    unsafe { record_mkdir(dirfd, path, mode, ret) };
    ret
}

type ChdirFn = unsafe extern "C" fn(*const c_char) -> c_int;
type FchdirFn = unsafe extern "C" fn(c_int) -> c_int;
type FlagsFn = unsafe extern "C" fn(c_int) -> c_int;
type SetnsFn = unsafe extern "C" fn(c_int, c_int) -> c_int;

#[unsafe(no_mangle)]
pub unsafe extern "C" fn chdir(path: *const c_char) -> c_int {
    path::cwd_call(call_real!(chdir: ChdirFn, (path), -1))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fchdir(fd: c_int) -> c_int {
    path::cwd_call(call_real!(fchdir: FchdirFn, (fd), -1))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn chroot(path: *const c_char) -> c_int {
    path::cwd_call(call_real!(chroot: ChdirFn, (path), -1))
}

/// A thread with an fs of its own, or a new mount namespace, may see
/// another cwd than the process's cache.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn unshare(flags: c_int) -> c_int {
    if flags & (libc::CLONE_FS | libc::CLONE_NEWNS) != 0 {
        path::cwd_unknowable();
    }
    call_real!(unshare: FlagsFn, (flags), -1)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn setns(fd: c_int, nstype: c_int) -> c_int {
    path::cwd_unknowable();
    call_real!(setns: SetnsFn, (fd, nstype), -1)
}
