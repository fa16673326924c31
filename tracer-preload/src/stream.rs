//! The per-process-image stream file and the record writer.
//!
//! State is a handful of atomics: the stream fd, the sequence counter, the
//! lost-record counter. A record is encoded on the caller's stack and
//! written with one `write` on an `O_APPEND` fd, so records of concurrent
//! threads never interleave and no lock is needed.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering};

use tracer_wire::{Args, Event, FileStat, Header, LossReason, StartCause};

use crate::sys::{self, Buf};

/// True once the constructor found `ROAR_TRACE_DIR` and opened a stream.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The (high-numbered) stream fd, -1 when none.
pub static FD: AtomicI32 = AtomicI32::new(-1);
/// Next sequence number of the current stream.
static SEQ: AtomicU64 = AtomicU64::new(0);
/// Records whose write failed and that no Loss record reported yet.
static LOST_WRITES: AtomicU64 = AtomicU64::new(0);
/// Pid that owns the current stream (set by the constructor and the fork
/// handler; a vfork child sees its parent's value).
pub static OWNER_PID: AtomicU32 = AtomicU32::new(0);
/// A vfork child that had the stream fd replaced under it stores its pid
/// here so it stops writing to the fd number; the parent's pid never
/// matches, so the shared value is harmless to the parent.
pub static CLOBBERED_PID: AtomicU32 = AtomicU32::new(0);
/// argc/argv as the constructor got them, for the fork child's ProcessStart.
static ARGC: AtomicI32 = AtomicI32::new(0);
static ARGV: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());

/// `ROAR_TRACE_DIR`, copied once by the constructor and read-only after.
struct TraceDir(UnsafeCell<Buf<4096>>);
// SAFETY: written only by the constructor before ACTIVE is set (Release);
// readers load ACTIVE (Acquire) first and never write.
unsafe impl Sync for TraceDir {}
static TRACE_DIR: TraceDir = TraceDir(UnsafeCell::new(Buf::new()));

/// `<boot>-<pidns>`: which kernel boot and pid namespace this process's pids belong to, set once
/// by the constructor and read-only after (same discipline as [`TRACE_DIR`]). Containers that
/// share one trace directory reuse pid numbers; this tells their streams apart.
struct Namespace(UnsafeCell<Buf<64>>);
// SAFETY: as for TraceDir.
unsafe impl Sync for Namespace {}
static NAMESPACE: Namespace = Namespace(UnsafeCell::new(Buf::new()));

/// Fills `out` with the first 12 hex digits of the boot id and the pid namespace inode, each
/// `0` when /proc cannot tell (no /proc mounted).
fn namespace_id(out: &mut Buf<64>) {
    let mut boot = [0u8; 64];
    let fd = sys::openat(
        libc::AT_FDCWD,
        b"/proc/sys/kernel/random/boot_id\0",
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    );
    let mut n = 0;
    if fd >= 0 {
        let r = sys::pread(fd as c_int, &mut boot, 0);
        sys::close(fd as c_int);
        for &b in boot.get(..r.max(0) as usize).unwrap_or(&[]) {
            if b.is_ascii_hexdigit() && n < 12 {
                out.push(&[b.to_ascii_lowercase()]);
                n += 1;
            }
        }
    }
    if n == 0 {
        out.push(b"0");
    }
    out.push(b"-");
    // "pid:[4026531836]"
    let mut link = [0u8; 64];
    let len = sys::readlink(b"/proc/self/ns/pid\0", &mut link).unwrap_or(0);
    let mut digits = 0;
    for &b in link.get(..len).unwrap_or(&[]) {
        if b.is_ascii_digit() {
            out.push(&[b]);
            digits += 1;
        }
    }
    if digits == 0 {
        out.push(b"0");
    }
}

/// Lowest fd number the stream fd is moved to.
fn high_fd_floor() -> usize {
    let soft = sys::nofile_soft_limit().unwrap_or(1024);
    soft.saturating_sub(16).clamp(3, 900) as usize
}

/// Moves `fd` to a high number (close-on-exec) and returns the new fd.
pub fn move_high(fd: c_int) -> c_int {
    let r = sys::fcntl(fd, libc::F_DUPFD_CLOEXEC, high_fd_floor());
    if r < 0 {
        return fd;
    }
    sys::close(fd);
    r as c_int
}

/// Copies `fd` to a free high number (close-on-exec), leaving `fd` open.
pub fn move_high_keep(fd: c_int) -> c_int {
    let r = sys::fcntl(fd, libc::F_DUPFD_CLOEXEC, high_fd_floor());
    if r < 0 { -1 } else { r as c_int }
}

/// Opens a fresh stream file in the trace directory.
fn open_stream_file() -> Option<c_int> {
    // SAFETY: see TraceDir: only read after the constructor finished
    // writing it (or by the constructor itself).
    let dir = unsafe { &*TRACE_DIR.0.get() };
    let mut name = Buf::<4200>::new();
    name.push(dir.as_slice());
    name.push(b"/");
    name.push_u64(sys::getpid() as u64, 10);
    name.push(b".");
    name.push_u64(sys::clock_ns(libc::CLOCK_MONOTONIC), 10);
    name.push(b".");
    let mut rnd = [0u8; 8];
    let rv = if sys::getrandom(&mut rnd) {
        u64::from_le_bytes(rnd)
    } else {
        sys::clock_ns(libc::CLOCK_REALTIME) ^ ((sys::gettid() as u64) << 32)
    };
    let mut hex = Buf::<16>::new();
    hex.push_u64(rv, 16);
    for _ in hex.len..16 {
        name.push(b"0");
    }
    name.push(hex.as_slice());
    name.push(b".");
    // SAFETY: see Namespace: written only by the constructor, before any stream is opened.
    name.push(unsafe { &*NAMESPACE.0.get() }.as_slice());
    name.push(b".rwt");
    if name.truncated {
        return None;
    }
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_APPEND | libc::O_CLOEXEC;
    let fd = sys::openat(libc::AT_FDCWD, name.c_str(), flags, 0o644);
    (fd >= 0).then_some(fd as c_int)
}

/// Constructor part: remembers the trace dir and argv, opens the stream and
/// writes ProcessStart. Returns false when tracing stays off.
///
/// # Safety
/// Must run once, single-threaded, before any hook sees ACTIVE; `argv`
/// must be glibc's argument vector (or null).
pub unsafe fn init(dir: &[u8], argc: c_int, argv: *const *const c_char) -> bool {
    if dir.is_empty() {
        return false;
    }
    {
        // SAFETY: nobody reads TRACE_DIR before ACTIVE is set below.
        let d = unsafe { &mut *TRACE_DIR.0.get() };
        d.push(dir);
        if d.truncated {
            return false;
        }
    }
    {
        // SAFETY: as above, nobody reads NAMESPACE before the first stream is opened below.
        namespace_id(unsafe { &mut *NAMESPACE.0.get() });
    }
    ARGC.store(argc, Ordering::Relaxed);
    ARGV.store(argv.cast_mut(), Ordering::Relaxed);
    let Some(fd) = open_stream_file() else {
        return false;
    };
    FD.store(move_high(fd), Ordering::Relaxed);
    SEQ.store(0, Ordering::Relaxed);
    OWNER_PID.store(sys::getpid(), Ordering::Relaxed);
    ACTIVE.store(true, Ordering::Release);
    process_start(StartCause::Exec, sys::getppid());
    true
}

/// `pthread_atfork` child handler: the child gets its own stream.
pub fn after_fork_child() {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    let old = FD.load(Ordering::Relaxed);
    match open_stream_file() {
        Some(fd) => {
            // Reuse the inherited high fd number so nothing else moves.
            if old >= 0 && sys::dup3(fd, old, libc::O_CLOEXEC) >= 0 {
                sys::close(fd);
            } else {
                FD.store(move_high(fd), Ordering::Relaxed);
            }
        }
        None => {
            // Writing into the parent's stream would break its sequence.
            ACTIVE.store(false, Ordering::Release);
            return;
        }
    }
    SEQ.store(0, Ordering::Relaxed);
    LOST_WRITES.store(0, Ordering::Relaxed);
    CLOBBERED_PID.store(0, Ordering::Relaxed);
    OWNER_PID.store(sys::getpid(), Ordering::Relaxed);
    process_start(StartCause::Fork, sys::getppid());
}

/// Joins a NULL-terminated argv into NUL-separated bytes, whole arguments
/// only. Sets `truncated` when something was left out.
///
/// # Safety
/// `argv` must be null or a NULL-terminated array of C strings.
pub unsafe fn join_argv<const N: usize>(
    argv: *const *const c_char,
    limit: usize,
    out: &mut Buf<N>,
) {
    if argv.is_null() {
        return;
    }
    let mut i = 0;
    loop {
        if i >= limit {
            break;
        }
        // SAFETY: argv is NULL-terminated and we stop at the NULL.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: each entry is a C string.
        let s = unsafe { sys::cstr(p, usize::MAX) };
        if out.len + s.len() + 1 > N {
            out.truncated = true;
            break;
        }
        out.push(s);
        out.push(&[0]);
        i += 1;
    }
}

fn to_filestat(st: &libc::stat) -> FileStat {
    FileStat {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime_ns: st
            .st_mtime
            .wrapping_mul(1_000_000_000)
            .wrapping_add(st.st_mtime_nsec),
        mode: st.st_mode,
    }
}

/// `fstat` of an fd as a wire FileStat.
pub fn stat_fd(fd: c_int) -> Option<FileStat> {
    sys::fstat(fd).as_ref().map(to_filestat)
}

fn process_start(cause: StartCause, ppid: u32) {
    let mut exe = Buf::<4096>::new();
    exe.len = sys::readlink(b"/proc/self/exe\0", &mut exe.bytes).unwrap_or(0);
    let exe_stat = sys::fstatat(libc::AT_FDCWD, b"/proc/self/exe\0", 0)
        .as_ref()
        .map(to_filestat);
    let mut cwd = Buf::<4096>::new();
    cwd.len = sys::getcwd(&mut cwd.bytes).unwrap_or(0);
    let mut argv = Buf::<32768>::new();
    let argc = ARGC.load(Ordering::Relaxed).max(0) as usize;
    // SAFETY: ARGV is glibc's NULL-terminated argv from the constructor.
    unsafe { join_argv(ARGV.load(Ordering::Relaxed), argc, &mut argv) };
    let mut flags = 0;
    if argv.truncated {
        flags |= tracer_wire::FLAG_ARGV_TRUNCATED;
    }
    let ev = Event::ProcessStart {
        ppid,
        cause,
        realtime_ns: sys::clock_ns(libc::CLOCK_REALTIME),
        exe: exe.as_slice(),
        exe_stat,
        argv: Args(argv.as_slice()),
        cwd: cwd.as_slice(),
    };
    emit_with::<32768>(&ev, flags);
}

/// Encodes and writes an event with at most one path. Buffers are sized
/// per event shape to keep hook stack use small (threads may have small
/// stacks).
pub fn emit(ev: &Event<'_>, flags: u32) {
    emit_with::<{ crate::path::PATH_CAP + 512 }>(ev, flags);
}

/// Encodes and writes an event with two paths or a path and an argv
/// (a 16 KiB record buffer).
pub fn emit_large(ev: &Event<'_>, flags: u32) {
    emit_with::<{ 2 * crate::path::PATH_CAP + 512 }>(ev, flags);
}

/// Encodes and writes an event without paths (exit statuses).
pub fn emit_small(ev: &Event<'_>, flags: u32) {
    emit_with::<256>(ev, flags);
}

/// Encodes `ev` into an `N`-byte stack buffer and writes it.
pub fn emit_with<const N: usize>(ev: &Event<'_>, flags: u32) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    let mut buf = [0u8; N];
    let pid = sys::getpid();
    if CLOBBERED_PID.load(Ordering::Relaxed) == pid {
        return;
    }
    let header = Header {
        seq: 0,
        ts_ns: sys::clock_ns(libc::CLOCK_MONOTONIC),
        pid,
        tid: sys::gettid(),
        flags,
    };
    match tracer_wire::encode(&header, ev, &mut buf) {
        Ok(len) => write_record(&mut buf, len),
        Err(_) => {
            let loss = Event::Loss {
                reason: LossReason::RecordTooLarge,
                count: 1,
            };
            if let Ok(len) = tracer_wire::encode(&header, &loss, &mut buf) {
                write_record(&mut buf, len);
            }
        }
    }
}

/// Stamps the sequence number into an encoded record and writes it.
fn write_record(buf: &mut [u8], len: usize) {
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    // The header's seq field is bytes 8..16 (see tracer_wire::encode);
    // stamping it here keeps the counter gap-free even when encoding fails.
    if let Some(slot) = buf.get_mut(8..16) {
        slot.copy_from_slice(&seq.to_le_bytes());
    }
    let Some(rec) = buf.get(..len) else { return };
    let fd = FD.load(Ordering::Relaxed);
    if sys::write(fd, rec) != len as isize {
        LOST_WRITES.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let lost = LOST_WRITES.swap(0, Ordering::Relaxed);
    if lost > 0 {
        let header = Header {
            seq: 0,
            ts_ns: sys::clock_ns(libc::CLOCK_MONOTONIC),
            pid: sys::getpid(),
            tid: sys::gettid(),
            flags: 0,
        };
        let loss = Event::Loss {
            reason: LossReason::WriteFailed,
            count: lost,
        };
        let mut small = [0u8; 128];
        if let Ok(l) = tracer_wire::encode(&header, &loss, &mut small) {
            let seq = SEQ.fetch_add(1, Ordering::Relaxed);
            if let Some(slot) = small.get_mut(8..16) {
                slot.copy_from_slice(&seq.to_le_bytes());
            }
            if let Some(rec) = small.get(..l)
                && sys::write(fd, rec) != l as isize
            {
                LOST_WRITES.fetch_add(lost + 1, Ordering::Relaxed);
            }
        }
    }
}

/// True if `fd` is the stream fd (hooks protect it from the program).
pub fn is_stream_fd(fd: c_int) -> bool {
    fd >= 0 && ACTIVE.load(Ordering::Acquire) && FD.load(Ordering::Relaxed) == fd
}
