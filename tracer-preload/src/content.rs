//! The content of a file as it was before the program destroys it.
//!
//! An input that the run then rewrites, replaces or deletes (`sed -i`,
//! `gzip`, `mv` out of the tree, sqlite, a Python `r+` rewrite) is gone by
//! the time roar hashes the run's files. So, just before a call that may
//! destroy a file's content — `rename` over it or away from it,
//! `unlink`/`unlinkat`/`remove`, `truncate`/`ftruncate`, or an open that
//! truncates it or opens it for writing — the hook hashes the file (BLAKE3)
//! and writes an [`Event::Content`] record with the identity it had.
//! roar-core uses the hash only when that identity is the one the run read,
//! so hashing a file the run never read costs time but never gives a wrong
//! hash.
//!
//! Which files: a process knows only its own reads, and the file may have
//! been read by an earlier process of the run (`cat f; mv f elsewhere`). So
//! every regular file that already existed when the run started is hashed:
//! its ctime is older than the run's start, which the library reads from
//! the trace directory's name (`roar run` names it `run-<pid>-<ms>-<n>`,
//! `<ms>` the start in Unix milliseconds). A file created or changed during
//! the run is not hashed: its first access was a write, so it cannot be an
//! input (or, if it can, its identity no longer matches and roar warns).
//! Without a start (standalone preload: the directory is not one run's),
//! every regular file is hashed. Within a run, a file of 1 MiB or more is
//! hashed once per identity, by whichever process first creates the marker
//! `hashed-<dev>-<ino>-<size>-<mtime>` in the trace directory (a loop of
//! `sqlite3 db 'select ...'` opens the database read-write every time). Files larger than `ROAR_PRELOAD_HASH_MAX`
//! bytes (default 128 MiB; 0 turns hashing off) are not: roar then records
//! the input's hash as unknown and warns, naming the file.
//!
//! All of it is raw syscalls on the caller's stack plus one anonymous
//! mapping for the read buffer: no heap, no lock, no fd left open
//! (close-on-exec, closed before returning), `errno` restored, safe in a
//! signal handler.

use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicU64, Ordering};

use tracer_wire::Event;

use crate::path::{self, PathBuf};
use crate::stream::{self, emit};
use crate::sys::{self, Buf};

/// Files whose ctime is older than this (ns since the epoch) existed before
/// the run. `u64::MAX`: the start is unknown, every file counts.
static RUN_START_NS: AtomicU64 = AtomicU64::new(u64::MAX);
/// Largest file hashed, in bytes.
static LIMIT: AtomicU64 = AtomicU64::new(DEFAULT_LIMIT);
const DEFAULT_LIMIT: u64 = 128 << 20;
/// The read buffer: one anonymous mapping per hash, so threads with small
/// stacks are safe.
const BUF_LEN: usize = 64 << 10;
/// From this size on, a file is hashed once per identity in a run.
const SHARED_FROM: i64 = 1 << 20;
/// Added to the run's start: its name is in whole milliseconds, and a file
/// created in the same millisecond must still count as the run's (a file
/// hashed needlessly costs time; one skipped costs its hash).
const START_SLACK_NS: u64 = 10_000_000;

/// Reads the run's start from the trace directory's name and the size limit
/// from the environment. Runs once, in the constructor.
pub fn init(trace_dir: &[u8]) {
    if let Some(ms) = start_ms(trace_dir) {
        let ns = ms.saturating_mul(1_000_000).saturating_add(START_SLACK_NS);
        RUN_START_NS.store(ns, Ordering::Relaxed);
    }
    // SAFETY: getenv with a NUL-terminated name, in the constructor.
    let v = unsafe { libc::getenv(c"ROAR_PRELOAD_HASH_MAX".as_ptr()) };
    // SAFETY: getenv returns null or a C string.
    let v = unsafe { sys::cstr(v, 32) };
    if let Some(n) = parse_u64(v) {
        LIMIT.store(n, Ordering::Relaxed);
    }
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// `<ms>` of a directory named `run-<pid>-<ms>-<n>` (trailing slashes
/// allowed).
fn start_ms(dir: &[u8]) -> Option<u64> {
    let mut d = dir;
    while let Some(rest) = d.strip_suffix(b"/") {
        d = rest;
    }
    let base = d.rsplit(|c| *c == b'/').next()?;
    let rest = base.strip_prefix(b"run-")?;
    let mut parts = rest.split(|c| *c == b'-');
    let (pid, ms, n) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    parse_u64(pid)?;
    parse_u64(n)?;
    parse_u64(ms)
}

/// Whether the file `st` describes is worth hashing before it is destroyed.
fn wanted(st: &libc::stat) -> bool {
    if st.st_mode & libc::S_IFMT != libc::S_IFREG {
        return false;
    }
    let limit = LIMIT.load(Ordering::Relaxed);
    if st.st_size < 0 || st.st_size as u64 > limit || limit == 0 {
        return false;
    }
    let ctime = (st.st_ctime as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(st.st_ctime_nsec as u64);
    ctime < RUN_START_NS.load(Ordering::Relaxed)
}

/// Whether this process is the run's first to hash the identity `st` (a
/// large file within a run): it creates the identity's marker in the trace
/// directory. Any failure but "exists" means hash anyway.
fn first_to_hash(st: &libc::stat) -> bool {
    if st.st_size < SHARED_FROM || RUN_START_NS.load(Ordering::Relaxed) == u64::MAX {
        return true;
    }
    let mut name = Buf::<128>::new();
    name.push(b"hashed-");
    for (i, v) in [
        st.st_dev,
        st.st_ino,
        st.st_size as u64,
        (st.st_mtime as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(st.st_mtime_nsec as u64),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            name.push(b"-");
        }
        name.push_u64(v, 16);
    }
    let marker = stream::stream_path(name.as_slice());
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
    let fd = sys::openat(libc::AT_FDCWD, marker.as_slice_nul(), flags, 0o600);
    if fd >= 0 {
        sys::close(fd as c_int);
    }
    fd != -(libc::EEXIST as isize)
}

/// Opens `path` (NUL-terminated, relative to `dirfd`) for reading without
/// touching its access time where the kernel allows it.
fn open_read(dirfd: c_int, path: &[u8], nofollow: bool) -> Option<c_int> {
    let mut flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let mut fd = sys::openat(dirfd, path, flags | libc::O_NOATIME, 0);
    if fd == -(libc::EPERM as isize) {
        fd = sys::openat(dirfd, path, flags, 0);
    }
    (fd >= 0).then_some(fd as c_int)
}

/// BLAKE3 of everything `fd` holds, read with `pread` (the offset of a
/// shared open file is left alone).
fn hash_fd(fd: c_int, size: u64) -> Option<[u8; 32]> {
    let buf = sys::mmap(
        BUF_LEN,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
    );
    if buf.is_null() {
        return None;
    }
    // SAFETY: a fresh private mapping of BUF_LEN bytes, unmapped below and
    // never shared.
    let slice = unsafe { core::slice::from_raw_parts_mut(buf, BUF_LEN) };
    let mut h = blake3::Hasher::new();
    let mut off: u64 = 0;
    let ok = loop {
        let n = sys::pread(fd, slice, off);
        if n == -(libc::EINTR as isize) {
            continue;
        }
        if n < 0 {
            break false;
        }
        if n == 0 {
            break off == size;
        }
        h.update(slice.get(..n as usize).unwrap_or(&[]));
        off += n as u64;
        if off > size {
            break false;
        }
    };
    // SAFETY: the mapping made above, no longer used.
    unsafe { sys::munmap(buf, BUF_LEN) };
    ok.then(|| *h.finalize().as_bytes())
}

fn same_content(a: &libc::stat, b: &libc::stat) -> bool {
    a.st_dev == b.st_dev
        && a.st_ino == b.st_ino
        && a.st_size == b.st_size
        && a.st_mtime == b.st_mtime
        && a.st_mtime_nsec == b.st_mtime_nsec
}

/// Hashes the open file `fd` (which `st` described) and records it under
/// `abs`, unless it changed meanwhile.
fn hash_and_emit(fd: c_int, st: &libc::stat, abs: &PathBuf) {
    let before = sys::fstat(fd);
    let hash = match before {
        Some(b) if same_content(&b, st) => hash_fd(fd, st.st_size as u64),
        _ => None,
    };
    let after = sys::fstat(fd);
    sys::close(fd);
    let (Some(blake3), Some(after)) = (hash, after) else {
        return;
    };
    if !same_content(&after, st) || abs.truncated {
        return;
    }
    let stat = stream::to_filestat(&after);
    emit(
        &Event::Content {
            stat,
            blake3,
            path: abs.as_slice(),
        },
        0,
    );
}

/// Runs `f` inside the re-entry guard with `errno` kept as the program left
/// it, when this thread may record.
fn guarded(f: impl FnOnce()) {
    let Some(_g) = crate::Guard::enter() else {
        return;
    };
    let e = sys::Errno::save();
    f();
    e.restore();
}

/// Before a call that may destroy the file at `path` (relative to `dirfd`):
/// hash it if it is a pre-existing regular file. `follow`: the call follows
/// a final symlink (opens, truncate); renames and unlinks act on the link.
///
/// # Safety
/// `path` must be null or a C string.
pub unsafe fn before_path(dirfd: c_int, path: *const c_char, follow: bool) {
    if path.is_null() || LIMIT.load(Ordering::Relaxed) == 0 {
        return;
    }
    guarded(|| {
        // SAFETY: forwarded from the caller.
        let Some(mut p) = (unsafe { copied(path) }) else {
            return;
        };
        let flags = if follow { 0 } else { libc::AT_SYMLINK_NOFOLLOW };
        let Some(st) = sys::fstatat(dirfd, p.c_str(), flags) else {
            return;
        };
        // SAFETY: forwarded from the caller.
        unsafe { hash_stated(dirfd, path, &mut p, &st, !follow) };
    });
}

/// `path` copied, NUL-terminated; None when it does not fit.
///
/// # Safety
/// `path` must be a C string.
unsafe fn copied(path: *const c_char) -> Option<PathBuf> {
    let mut p = PathBuf::new();
    // SAFETY: forwarded from the caller.
    p.push(unsafe { sys::cstr(path, path::PATH_CAP) });
    (!p.truncated).then_some(p)
}

/// [`before_path`] for a hook that has already stat'ed the file (without
/// following a final symlink) inside its own guard: `remove`, which must
/// know whether the path is a directory. Saves the second `fstatat`.
///
/// # Safety
/// `path` must be a C string, `p` a copy of it, `st` its `lstat`.
pub unsafe fn before_stated(dirfd: c_int, path: *const c_char, p: &mut PathBuf, st: &libc::stat) {
    if path.is_null() || LIMIT.load(Ordering::Relaxed) == 0 || p.truncated {
        return;
    }
    let e = sys::Errno::save();
    // SAFETY: forwarded from the caller.
    unsafe { hash_stated(dirfd, path, p, st, true) };
    e.restore();
}

/// Hashes the file `st` describes when it is one to hash.
///
/// # Safety
/// `path` must be a C string, `p` a copy of it.
unsafe fn hash_stated(
    dirfd: c_int,
    path: *const c_char,
    p: &mut PathBuf,
    st: &libc::stat,
    nofollow: bool,
) {
    if !wanted(st) || !first_to_hash(st) {
        return;
    }
    let Some(fd) = open_read(dirfd, p.c_str(), nofollow) else {
        return;
    };
    // SAFETY: forwarded from the caller.
    let abs = unsafe { path::absolute(dirfd, path) };
    hash_and_emit(fd, st, &abs);
}

/// Before an open with `flags`: hash the file when the open itself destroys
/// its content (`O_TRUNC`) and it exists. An open for writing that does not
/// truncate changes nothing until the program writes: [`after_open`] hashes
/// that file, with the `fstat` the hook takes anyway, which saves a path
/// lookup on every append (a log, a mail spool).
///
/// # Safety
/// `path` must be null or a C string.
pub unsafe fn before_open(dirfd: c_int, path: *const c_char, flags: c_int) {
    let excl = flags & libc::O_CREAT != 0 && flags & libc::O_EXCL != 0;
    let tmpfile = flags & libc::O_TMPFILE == libc::O_TMPFILE;
    if flags & libc::O_TRUNC != 0 && !excl && !tmpfile {
        // SAFETY: forwarded from the caller.
        unsafe { before_path(dirfd, path, flags & libc::O_NOFOLLOW == 0) };
    }
}

/// After an open with `flags` of `path` (relative to `dirfd`) returned a
/// descriptor that `st` describes, before the program can use it: hash the
/// file when the open lets the program change it without having truncated
/// it, and it existed before the run. Called inside the hook's guard.
///
/// The file is opened again by path for reading (the program's descriptor
/// may be write-only, and its offset is the program's); `hash_and_emit`
/// checks that it is the file `st` describes.
///
/// # Safety
/// `path` must be a C string.
pub unsafe fn after_open(dirfd: c_int, path: *const c_char, flags: c_int, st: &libc::stat) {
    let writes = flags & libc::O_ACCMODE != libc::O_RDONLY;
    // `wanted` first, before the path is copied: most files opened for
    // writing are the run's own.
    if !writes || flags & libc::O_TRUNC != 0 || !wanted(st) {
        return;
    }
    // SAFETY: forwarded from the caller.
    unsafe { hash_opened(dirfd, path, flags, st) };
}

/// The part of [`after_open`] that hashes. Not inlined, and neither are the
/// other hooks' hashing parts: a function's whole frame is probed, page by
/// page, when it is entered, and in a process just forked or started every
/// stack page touched for the first time is a page fault. Every open would
/// otherwise enter 16 KiB of path buffers it seldom uses.
///
/// # Safety
/// As for [`after_open`].
#[inline(never)]
unsafe fn hash_opened(dirfd: c_int, path: *const c_char, flags: c_int, st: &libc::stat) {
    // SAFETY: forwarded from the caller.
    let Some(mut p) = (unsafe { copied(path) }) else {
        return;
    };
    // SAFETY: forwarded from the caller; `p` is a copy of `path`.
    unsafe { hash_stated(dirfd, path, &mut p, st, flags & libc::O_NOFOLLOW != 0) };
}

/// Before `ftruncate(fd, ..)`: hash the file the fd names.
pub fn before_fd(fd: c_int) {
    if fd < 0 || LIMIT.load(Ordering::Relaxed) == 0 {
        return;
    }
    guarded(|| {
        let Some(st) = sys::fstat(fd) else { return };
        if !wanted(&st) || !first_to_hash(&st) {
            return;
        }
        // Reopened for reading: the program's fd may be write-only.
        let link: Buf<32> = sys::proc_fd_path(fd);
        let Some(rfd) = open_read(libc::AT_FDCWD, link.as_slice_nul(), false) else {
            return;
        };
        let abs = path::of_fd(fd);
        hash_and_emit(rfd, &st, &abs);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_is_read_from_a_run_directory_name() {
        assert_eq!(
            start_ms(b"/p/.roar/traces/run-4242-1764633600123-0"),
            Some(1764633600123)
        );
        assert_eq!(start_ms(b"/p/.roar/traces/run-1-2-3/"), Some(2));
        assert_eq!(start_ms(b"/var/roar-traces"), None);
        assert_eq!(start_ms(b"/x/run-1-2"), None);
        assert_eq!(start_ms(b"/x/run-a-2-3"), None);
        assert_eq!(start_ms(b"/x/run-1-2x-3"), None);
    }

    #[test]
    fn limits_parse_as_plain_decimal() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"1048576"), Some(1 << 20));
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"1M"), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
    }
}
