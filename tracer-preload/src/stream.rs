//! The per-process-image stream file and the record writer.
//!
//! The library holds no file descriptor while the program runs its own
//! code: the stream is a `MAP_SHARED` mapping of its file, and the fd that
//! creates or grows it is opened close-on-exec inside the library and closed
//! before the library returns. So the program can close, reuse, count and
//! list its fds exactly as it would without the library, and nothing it does
//! with fds can point a record at one of its files.
//!
//! Writers take no lock: a record is encoded on the caller's stack, its
//! place is reserved with a compare-and-swap on the write offset, and its
//! bytes are copied into the mapping, the magic last (a writer killed midway
//! leaves a slot the decoder skips by its length). The file is allocated
//! ahead of the offset with `fallocate` (a full disk fails a reservation
//! instead of raising SIGBUS on a page fault), in steps that grow with it;
//! the allocated tail is zeros, which the decoder takes as the end. Growing
//! is done by one thread at a time (a flag, not a lock: a thread that needs
//! the space meanwhile waits briefly, then counts the record as lost), and
//! ahead of need, so others rarely wait.
//!
//! The state of the stream lives in [`Live`], on a private anonymous page
//! marked `MADV_WIPEONFORK`: a forked child, however it was made (`fork()`
//! runs [`after_fork_child`], a raw `clone` does not), finds the page zeroed
//! and opens a stream of its own at its first record (dated from the fork;
//! one that only execs opens none, its new image reports itself), while a vfork
//! child, which shares its parent's memory, appends to its parent's stream
//! as it always did (its records carry its own pid). The mappings are
//! `MADV_DONTFORK`: a forked child never holds its parent's stream. An exec
//! drops the mapping with the image; the new image's constructor opens a new
//! stream.
//!
//! At exec and exit, [`seal`] cuts the file to its length when a page or
//! more of zeros would be left; a record written after that grows it again.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_int};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicU64, Ordering, fence};

use tracer_wire::{Args, Event, FileStat, Header, LossReason, StartCause};

use crate::sys::{self, Buf};

/// True once the constructor found `ROAR_TRACE_DIR` and opened a stream.
pub static ACTIVE: AtomicBool = AtomicBool::new(false);
/// The [`Live`] page, set once by the constructor.
static LIVE: AtomicPtr<Live> = AtomicPtr::new(core::ptr::null_mut());
/// The kernel zeroes [`Live`] in forked children (Linux 4.14+). Without it
/// a child made by a raw `clone` cannot be told from a vfork child, so the
/// mappings stay inherited (such a child writes into its parent's stream,
/// as it did before, rather than fault on a mapping it lacks).
static WIPED_ON_FORK: AtomicBool = AtomicBool::new(false);
/// argc/argv as the constructor got them, for the fork child's ProcessStart.
static ARGC: AtomicI32 = AtomicI32::new(0);
static ARGV: AtomicPtr<*const c_char> = AtomicPtr::new(core::ptr::null_mut());

/// `ROAR_TRACE_DIR` made absolute, copied once by the constructor and read-only after.
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

const PAGE: u64 = 4096;
/// What a fresh stream allocates: one page holds ProcessStart and Exit of a
/// short process, so most streams never grow.
const FIRST_CAP: u64 = PAGE;
/// Kept free at the end of the allocated space for a Loss record, so that a
/// stream that cannot grow (full disk, RLIMIT_FSIZE) still says it lost records.
const RESERVE: u64 = 64;
/// Largest single growth step (the allocated tail is memory on tmpfs).
const MAX_STEP: u64 = 16 << 20;

/// [`Live::state`] values. Zero (a fresh or wiped page) means no stream.
const NONE: u32 = 0;
const CREATING: u32 = 1;
const READY: u32 = 2;
const OFF: u32 = 3;

/// The stream of this address space. All zeros is a valid value: no stream.
#[repr(C)]
struct Live {
    state: AtomicU32,
    /// Pid whose stream this is (a vfork child sees its parent's).
    owner: AtomicU32,
    /// Next sequence number.
    seq: AtomicU64,
    /// Records that could not be written and that no Loss record reported yet.
    lost: AtomicU64,
    /// Write offset: bytes reserved so far.
    off: AtomicU64,
    /// Bytes of the file that are allocated and mapped; writers stay below.
    committed: AtomicU64,
    /// Length of the mapping at `map` (at least `committed`).
    mapped: AtomicU64,
    map: AtomicPtr<u8>,
    /// One thread grows or seals at a time.
    growing: AtomicBool,
    /// [`seal`] is waiting for writers to leave before cutting the file.
    closing: AtomicBool,
    /// Writers between their check of `closing` and the end of their copy.
    inflight: AtomicU32,
    /// When the file's mtime was last set (monotonic ns).
    touched_ns: AtomicU64,
    /// The stream file, to check that a transient fd still names it.
    dev: AtomicU64,
    ino: AtomicU64,
    /// File name inside the trace dir; written while `CREATING`, read-only once `READY`.
    name: UnsafeCell<Buf<128>>,
    /// Set by [`after_fork_child`]: the forked process this page belongs
    /// to, its parent, and when it was forked (monotonic and realtime ns).
    /// Its stream is opened later, at its first record, but says it began
    /// at the fork; a vfork child of it (which shares the page) opens the
    /// stream as this process's, not its own.
    fork_pid: AtomicU32,
    fork_ppid: AtomicU32,
    fork_mono_ns: AtomicU64,
    fork_real_ns: AtomicU64,
}

// SAFETY: `name` is written only by the one thread that moved `state` to
// CREATING, before it stores READY (Release); readers load READY (Acquire).
unsafe impl Sync for Live {}

const _: () = assert!(size_of::<Live>() <= PAGE as usize);

fn live() -> Option<&'static Live> {
    let p = LIVE.load(Ordering::Acquire);
    // SAFETY: a non-null LIVE points to the page the constructor mapped and
    // never unmaps; all-zero bytes are a valid Live.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Bounded waiting: a few yields, then short sleeps, about 100 ms in all.
struct Backoff(u32);

impl Backoff {
    fn new() -> Self {
        Backoff(0)
    }
    /// Waits a little; false once waited long enough.
    fn wait(&mut self) -> bool {
        if self.0 >= 2_000 {
            return false;
        }
        self.0 += 1;
        if self.0 < 64 {
            sys::sched_yield();
        } else {
            sys::sleep_us(50);
        }
        true
    }
}

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

/// Creates `dir` and its missing parents (as `mkdir -p`; the umask applies),
/// so that a `ROAR_TRACE_DIR` a pod spec names on a fresh volume is used,
/// not silently ignored. Failures are left to the stream's creation.
fn make_dirs(dir: &[u8]) {
    let mut path = Buf::<4096>::new();
    for (i, &b) in dir.iter().enumerate() {
        if b == b'/' && i > 0 {
            let mut p = Buf::<4096>::new();
            p.push(path.as_slice());
            p.c_str();
            let _ = sys::mkdirat(libc::AT_FDCWD, p.as_slice_nul(), 0o777);
        }
        path.push(&[b]);
    }
    path.c_str();
    let _ = sys::mkdirat(libc::AT_FDCWD, path.as_slice_nul(), 0o777);
}

/// `$ROAR_TRACE_DIR/<name>`, NUL-terminated.
pub fn stream_path(name: &[u8]) -> Buf<4300> {
    // SAFETY: see TraceDir: only read after the constructor finished
    // writing it (or by the constructor itself).
    let dir = unsafe { &*TRACE_DIR.0.get() };
    let mut path = Buf::<4300>::new();
    path.push(dir.as_slice());
    path.push(b"/");
    path.push(name);
    path.c_str();
    path
}

fn live_path(live: &Live) -> Buf<4300> {
    // SAFETY: READY (checked by every caller) makes `name` read-only.
    stream_path(unsafe { &*live.name.get() }.as_slice())
}

/// Whose stream is being opened, and since when.
#[derive(Clone, Copy)]
struct Identity {
    pid: u32,
    ppid: u32,
    mono_ns: u64,
    real_ns: u64,
}

impl Identity {
    /// This process, now; or, for a forked process's stream opened after
    /// the fork, that process as it was forked.
    fn of(live: &Live, cause: StartCause) -> Identity {
        let pid = live.fork_pid.load(Ordering::Relaxed);
        if cause == StartCause::Fork && pid != 0 {
            return Identity {
                pid,
                ppid: live.fork_ppid.load(Ordering::Relaxed),
                mono_ns: live.fork_mono_ns.load(Ordering::Relaxed),
                real_ns: live.fork_real_ns.load(Ordering::Relaxed),
            };
        }
        Identity {
            pid: sys::getpid(),
            ppid: sys::getppid(),
            mono_ns: sys::clock_ns(libc::CLOCK_MONOTONIC),
            real_ns: sys::clock_ns(libc::CLOCK_REALTIME),
        }
    }
}

/// A fresh stream name: `<pid>.<mono_ns>.<rand>.<boot>-<pidns>.rwt`.
fn new_name(name: &mut Buf<128>, who: Identity) {
    *name = Buf::new();
    name.push_u64(who.pid as u64, 10);
    name.push(b".");
    name.push_u64(who.mono_ns, 10);
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
}

/// Allocates `[from, to)` of the stream file (and extends it to `to`).
fn allocate(fd: c_int, path: &[u8], from: u64, to: u64) -> bool {
    let r = sys::fallocate(fd, from, to - from);
    if r == 0 {
        return true;
    }
    // Filesystems without fallocate (NFSv3, some FUSE): a sparse extension.
    // The file is exactly `from` long here and only one thread grows it, so
    // this cannot cut anything off.
    (r == -(libc::EOPNOTSUPP as isize) || r == -(libc::ENOSYS as isize))
        && sys::truncate(path, to) == 0
}

/// Maps `[0, len)` of the file on `fd` for writing.
fn map_file(fd: c_int, len: u64) -> *mut u8 {
    let p = sys::mmap(
        len as usize,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_SHARED,
        fd,
    );
    if !p.is_null() && WIPED_ON_FORK.load(Ordering::Relaxed) {
        // SAFETY: the mapping just made.
        unsafe { sys::madvise(p, len as usize, libc::MADV_DONTFORK) };
    }
    p
}

/// True if `fd` is still the stream file (another thread of the program may
/// have closed our transient fd and opened one of its own files under the
/// same number).
fn is_stream_file(fd: c_int, live: &Live) -> bool {
    sys::fstat(fd).is_some_and(|st| {
        st.st_dev == live.dev.load(Ordering::Relaxed)
            && st.st_ino == live.ino.load(Ordering::Relaxed)
    })
}

/// Creates this address space's stream and writes its ProcessStart. The
/// caller moved `state` to CREATING; this leaves it READY or OFF.
fn create(live: &Live, cause: StartCause) -> bool {
    let ok = create_file(live, cause);
    live.state
        .store(if ok { READY } else { OFF }, Ordering::Release);
    ok
}

fn create_file(live: &Live, cause: StartCause) -> bool {
    // SAFETY: this thread moved `state` to CREATING, so it alone touches `name`.
    let name = unsafe { &mut *live.name.get() };
    let who = Identity::of(live, cause);
    new_name(name, who);
    if name.truncated {
        return false;
    }
    let path = stream_path(name.as_slice());
    if path.truncated {
        return false;
    }
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
    let mut fd = sys::openat(libc::AT_FDCWD, path.as_slice_nul(), flags, 0o644);
    if fd == -(libc::ENOENT as isize) {
        // A ROAR_TRACE_DIR that does not exist yet (a fresh volume): made,
        // not silently ignored. Only then, so a process start costs no
        // extra system call when it exists.
        // SAFETY: see TraceDir: read-only after the constructor wrote it.
        make_dirs(unsafe { &*TRACE_DIR.0.get() }.as_slice());
        fd = sys::openat(libc::AT_FDCWD, path.as_slice_nul(), flags, 0o644);
    }
    if fd < 0 {
        return false;
    }
    let fd = fd as c_int;
    // ProcessStart goes in with a plain write: the first write fault on a
    // fresh file's mapping is slow on some filesystems (ext4 journals the
    // time update), after a write it is not.
    let limit = sys::fsize_limit();
    let (mut len, mut cap) = (0, 0);
    let ok = write_start(cause, who, &mut |rec| {
        len = rec.len() as u64;
        cap = (len + 1024)
            .next_multiple_of(PAGE)
            .max(FIRST_CAP)
            .min(limit);
        len > 0
            && len <= cap
            && sys::pwrite(fd, rec, 0)
            && allocate(fd, path.as_slice_nul(), 0, cap)
    });
    let map = if ok {
        map_file(fd, cap)
    } else {
        core::ptr::null_mut()
    };
    let st = sys::fstat(fd);
    sys::close(fd);
    let (Some(st), false) = (st, map.is_null()) else {
        if !map.is_null() {
            // SAFETY: our mapping, never published.
            unsafe { sys::munmap(map, cap as usize) };
        }
        sys::unlink(path.as_slice_nul());
        return false;
    };
    live.dev.store(st.st_dev, Ordering::Relaxed);
    live.ino.store(st.st_ino, Ordering::Relaxed);
    live.owner.store(who.pid, Ordering::Relaxed);
    live.seq.store(1, Ordering::Relaxed);
    live.lost.store(0, Ordering::Relaxed);
    live.off.store(len, Ordering::Relaxed);
    live.mapped.store(cap, Ordering::Relaxed);
    live.map.store(map, Ordering::SeqCst);
    live.growing.store(false, Ordering::Relaxed);
    live.closing.store(false, Ordering::Relaxed);
    live.inflight.store(0, Ordering::Relaxed);
    live.touched_ns
        .store(sys::clock_ns(libc::CLOCK_MONOTONIC), Ordering::Relaxed);
    live.committed.store(cap, Ordering::Release);
    true
}

/// The stream of this address space, made first if this is a forked child
/// that has none yet.
fn ready() -> Option<&'static Live> {
    let live = live()?;
    let mut backoff = Backoff::new();
    loop {
        match live.state.load(Ordering::Acquire) {
            READY => return Some(live),
            NONE => {
                // A child of a raw clone: no fork handler ran.
                if live
                    .state
                    .compare_exchange(NONE, CREATING, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    return create(live, StartCause::Fork).then_some(live);
                }
            }
            CREATING => {
                if !backoff.wait() {
                    return None;
                }
            }
            _ => return None,
        }
    }
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
        // Absolute, so a fork child or a grown stream still finds it after a chdir.
        if dir.first() != Some(&b'/') {
            let mut cwd = [0u8; 4096];
            let n = sys::getcwd(&mut cwd).unwrap_or(0);
            d.push(cwd.get(..n).unwrap_or(&[]));
            d.push(b"/");
        }
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
    let page = sys::mmap(
        PAGE as usize,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
        -1,
    );
    if page.is_null() {
        return false;
    }
    // SAFETY: the page just mapped.
    let wiped = unsafe { sys::madvise(page, PAGE as usize, libc::MADV_WIPEONFORK) };
    WIPED_ON_FORK.store(wiped, Ordering::Relaxed);
    LIVE.store(page.cast(), Ordering::Release);
    let Some(live) = live() else { return false };
    live.state.store(CREATING, Ordering::Relaxed);
    if !create(live, StartCause::Exec) {
        // Tracing stays off: leave nothing behind.
        LIVE.store(core::ptr::null_mut(), Ordering::Release);
        // SAFETY: the page mapped above; no hook can see it (ACTIVE is off).
        unsafe { sys::munmap(page, PAGE as usize) };
        return false;
    }
    ACTIVE.store(true, Ordering::Release);
    true
}

/// `pthread_atfork` child handler: the child gets its own stream, opened
/// at its first record ([`ready`]) and dated from now. Most fork children
/// only exec, and the new image reports itself, so they never open one: a
/// file, its ProcessStart and about twenty system calls saved per fork and
/// exec. A child that forks, or whose vfork child records, opens it first
/// ([`before_fork`], [`Identity::of`]).
pub fn after_fork_child() {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    let Some(live) = live() else { return };
    // A fork child's memory is its own. Without MADV_WIPEONFORK the page
    // is a copy of the parent's, and so are the mappings: drop both.
    if !WIPED_ON_FORK.load(Ordering::Relaxed) && live.state.load(Ordering::Acquire) == READY {
        let map = live.map.load(Ordering::Relaxed);
        if !map.is_null() {
            // SAFETY: the parent's stream mapping, inherited; this
            // single-threaded child never writes to it again.
            unsafe { sys::munmap(map, live.mapped.load(Ordering::Relaxed) as usize) };
        }
        live.state.store(NONE, Ordering::Relaxed);
    }
    let _ = TID.try_with(|t| t.set(0));
    live.fork_pid.store(sys::getpid(), Ordering::Relaxed);
    live.fork_ppid.store(sys::getppid(), Ordering::Relaxed);
    live.fork_mono_ns
        .store(sys::clock_ns(libc::CLOCK_MONOTONIC), Ordering::Relaxed);
    live.fork_real_ns
        .store(sys::clock_ns(libc::CLOCK_REALTIME), Ordering::Relaxed);
}

/// `pthread_atfork` prepare handler: a process about to fork opens its
/// stream first if it has none, so its child's image always has a parent
/// to hang from (a subshell that only forks is still in the tree).
pub fn before_fork() {
    if unopened() {
        let _ = ready();
    }
}

/// True when this process's memory is its own, as far as the library can
/// tell cheaply: not a vfork child (or a `CLONE_VM` child) writing into its
/// parent's. False when unsure.
pub fn own_memory() -> bool {
    if !WIPED_ON_FORK.load(Ordering::Relaxed) {
        return false;
    }
    let Some(live) = live() else { return false };
    let me = sys::getpid();
    match live.state.load(Ordering::Acquire) {
        READY => live.owner.load(Ordering::Relaxed) == me,
        NONE => live.fork_pid.load(Ordering::Relaxed) == me,
        _ => false,
    }
}

/// True in a forked process (not a vfork child of one) that has recorded
/// nothing yet, so has no stream.
pub fn unopened() -> bool {
    ACTIVE.load(Ordering::Acquire)
        && live().is_some_and(|l| {
            l.state.load(Ordering::Acquire) == NONE
                && l.fork_pid.load(Ordering::Relaxed) == sys::getpid()
        })
}

/// True in a fork child that has recorded nothing, as it exits, when its
/// parent will report that exit: the parent is still the process that
/// forked it (it did not exit first) and does not leave its children to the
/// kernel. The child's Exit then needs no stream of its own (a file, its
/// ProcessStart and about twenty system calls, half a fork's cost): roar
/// lists it from the parent's ChildExit, with its status.
pub fn exit_reported_by_parent() -> bool {
    unopened()
        && live().is_some_and(|l| l.fork_ppid.load(Ordering::Relaxed) == sys::getppid())
        && !sys::children_reaped_unseen()
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

/// Whether [`join_argv`] into a `Buf<N>` (with no limit) keeps every
/// argument; nothing is copied.
///
/// # Safety
/// As for [`join_argv`].
pub unsafe fn argv_fits<const N: usize>(argv: *const *const c_char) -> bool {
    if argv.is_null() {
        return true;
    }
    let mut len = 0usize;
    let mut i = 0;
    loop {
        // SAFETY: argv is NULL-terminated and we stop at the NULL.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            return true;
        }
        // SAFETY: each entry is a C string.
        len += unsafe { sys::cstr(p, usize::MAX) }.len() + 1;
        if len > N {
            return false;
        }
        i += 1;
    }
}

pub fn to_filestat(st: &libc::stat) -> FileStat {
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

/// Encodes this image's ProcessStart (sequence 0) and hands it to `write`;
/// false if it could not be encoded or written. Buffers sized for the
/// common case come first: every stack page zeroed is a page fault (in a
/// forked child, a copy), and the full-size buffers are 18 pages.
fn write_start(cause: StartCause, who: Identity, write: &mut dyn FnMut(&[u8]) -> bool) -> bool {
    match start_with::<1024, 2048, 4608>(cause, who, true, write) {
        Some(ok) => ok,
        None => start_with::<4096, 32768, 32768>(cause, who, false, write).unwrap_or(false),
    }
}

/// [`write_start`] with `P`-byte paths, an `A`-byte argv and an `R`-byte
/// record. `strict`: `None` when something did not fit (the caller tries
/// larger buffers); otherwise what did not fit is cut and flagged.
#[inline(never)]
fn start_with<const P: usize, const A: usize, const R: usize>(
    cause: StartCause,
    who: Identity,
    strict: bool,
    write: &mut dyn FnMut(&[u8]) -> bool,
) -> Option<bool> {
    let mut exe = Buf::<P>::new();
    exe.len = sys::readlink(b"/proc/self/exe\0", &mut exe.bytes).unwrap_or(0);
    let mut cwd = Buf::<P>::new();
    let got_cwd = sys::getcwd(&mut cwd.bytes);
    cwd.len = got_cwd.unwrap_or(0);
    let mut argv = Buf::<A>::new();
    let argc = ARGC.load(Ordering::Relaxed).max(0) as usize;
    // SAFETY: ARGV is glibc's NULL-terminated argv from the constructor.
    unsafe { join_argv(ARGV.load(Ordering::Relaxed), argc, &mut argv) };
    if strict && (exe.len >= P || got_cwd.is_none() || argv.truncated) {
        return None;
    }
    let exe_stat = sys::fstatat(libc::AT_FDCWD, b"/proc/self/exe\0", 0)
        .as_ref()
        .map(to_filestat);
    let mut flags = 0;
    if argv.truncated {
        flags |= tracer_wire::FLAG_ARGV_TRUNCATED;
    }
    let ev = Event::ProcessStart {
        ppid: who.ppid,
        cause,
        realtime_ns: who.real_ns,
        exe: exe.as_slice(),
        exe_stat,
        argv: Args(argv.as_slice()),
        cwd: cwd.as_slice(),
    };
    // A stream opened for a forked process is dated from the fork and
    // written as its main thread's (a vfork child may be opening it).
    let h = Header {
        seq: 0,
        ts_ns: who.mono_ns,
        pid: who.pid,
        tid: if cause == StartCause::Fork {
            who.pid
        } else {
            sys::gettid()
        },
        flags,
    };
    let mut rec = [0u8; R];
    let len = if strict {
        tracer_wire::encode(&h, &ev, &mut rec).ok()?
    } else {
        encode_or_loss_as(h, &ev, &mut rec)?
    };
    Some(write(rec.get(..len)?))
}

fn header(flags: u32, pid: u32, tid: u32) -> Header {
    Header {
        seq: 0,
        ts_ns: sys::clock_ns(libc::CLOCK_MONOTONIC),
        pid,
        tid,
        flags,
    }
}

thread_local! {
    /// This thread's id, asked once (0: not yet; a fork child's is reset).
    /// Informational on the wire: nothing reads it back, and a vfork child,
    /// which shares its parent's memory, writes its parent thread's.
    static TID: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

fn thread_id() -> u32 {
    TID.try_with(|t| {
        if t.get() == 0 {
            t.set(sys::gettid());
        }
        t.get()
    })
    .unwrap_or_else(|_| sys::gettid())
}

/// The pid a record is written under, without a system call: the stream's
/// owner. With MADV_WIPEONFORK every forked child has a stream of its own,
/// so only a vfork child writes into another's, and the records it writes
/// (its exec and exit) say whose they are ([`Whose::Caller`]). Without
/// it, a raw clone child shares the stream too: then the kernel is asked.
fn record_pid(live: &Live) -> u32 {
    let owner = live.owner.load(Ordering::Relaxed);
    if owner != 0 && WIPED_ON_FORK.load(Ordering::Relaxed) {
        owner
    } else {
        sys::getpid()
    }
}

/// Whose pid and tid a record carries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// The stream's owner's (any hook of a process with a stream of its own).
    Owner,
    /// The calling thread's, asked: an exec or exit, which a vfork child
    /// may write into its parent's stream.
    Caller,
}

fn encode_or_loss_as(h: Header, ev: &Event<'_>, out: &mut [u8]) -> Option<usize> {
    tracer_wire::encode(&h, ev, out).ok().or_else(|| {
        let loss = Event::Loss {
            reason: LossReason::RecordTooLarge,
            count: 1,
        };
        tracer_wire::encode(&h, &loss, out).ok()
    })
}

/// Encodes and writes an event with at most one path. Buffers are sized
/// per event shape to keep hook stack use small (threads may have small
/// stacks).
pub fn emit(ev: &Event<'_>, flags: u32) {
    emit_with::<{ crate::path::PATH_CAP + 512 }>(ev, flags, Whose::Owner);
}

/// Encodes and writes an event with two paths or a path and an argv
/// (a 16 KiB record buffer).
pub fn emit_large(ev: &Event<'_>, flags: u32) {
    emit_large_by(ev, flags, Whose::Owner);
}

/// [`emit_large`], as `whose`.
pub fn emit_large_by(ev: &Event<'_>, flags: u32, whose: Whose) {
    emit_with::<{ 2 * crate::path::PATH_CAP + 512 }>(ev, flags, whose);
}

/// Encodes and writes an event without paths (exit statuses).
pub fn emit_small(ev: &Event<'_>, flags: u32) {
    emit_small_by(ev, flags, Whose::Owner);
}

/// [`emit_small`], as `whose`.
pub fn emit_small_by(ev: &Event<'_>, flags: u32, whose: Whose) {
    emit_with::<256>(ev, flags, whose);
}

/// Encodes `ev` into an `N`-byte stack buffer and writes it.
pub fn emit_with<const N: usize>(ev: &Event<'_>, flags: u32, whose: Whose) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    let Some(live) = ready() else { return };
    let h = match whose {
        Whose::Owner => header(flags, record_pid(live), thread_id()),
        Whose::Caller => header(flags, sys::getpid(), sys::gettid()),
    };
    let mut buf = [0u8; N];
    if let Some(len) = encode_or_loss_as(h, ev, &mut buf) {
        write_record(live, &mut buf, len);
    }
}

/// Stamps the next sequence number into an encoded record and appends it;
/// reports earlier losses after it.
fn write_record(live: &Live, buf: &mut [u8], len: usize) {
    let seq = live.seq.fetch_add(1, Ordering::Relaxed);
    // Numbered here, after encoding, so the counter stays gap-free even
    // when encoding fails; restamping seals the record again.
    let Some(rec) = buf.get_mut(..len) else {
        return;
    };
    tracer_wire::restamp(rec, seq);
    let rec = &*rec;
    if !append(live, rec, false) {
        live.lost.fetch_add(1, Ordering::Relaxed);
    }
    let lost = live.lost.swap(0, Ordering::Relaxed);
    if lost > 0 {
        let loss = Event::Loss {
            reason: LossReason::WriteFailed,
            count: lost,
        };
        let mut small = [0u8; 128];
        let h = header(0, record_pid(live), thread_id());
        if let Ok(l) = tracer_wire::encode(&h, &loss, &mut small) {
            let seq = live.seq.fetch_add(1, Ordering::Relaxed);
            if let Some(r) = small.get_mut(..l) {
                tracer_wire::restamp(r, seq);
            }
            if !small.get(..l).is_some_and(|r| append(live, r, true)) {
                live.lost.fetch_add(lost + 1, Ordering::Relaxed);
            }
        }
    }
}

/// Reserves room for `rec` at the write offset and copies it there; only a
/// Loss record may use the last [`RESERVE`] bytes.
fn append(live: &Live, rec: &[u8], loss: bool) -> bool {
    let len = rec.len() as u64;
    let keep = if loss { 0 } else { RESERVE };
    let mut backoff = Backoff::new();
    loop {
        live.inflight.fetch_add(1, Ordering::SeqCst);
        if live.closing.load(Ordering::SeqCst) {
            live.inflight.fetch_sub(1, Ordering::Release);
            if !backoff.wait() {
                return false;
            }
            continue;
        }
        let off = live.off.load(Ordering::Relaxed);
        let committed = live.committed.load(Ordering::Acquire);
        let end = off + len;
        if end + keep > committed {
            live.inflight.fetch_sub(1, Ordering::Release);
            if !grow(live, end + keep, &mut backoff) {
                return false;
            }
            continue;
        }
        if live
            .off
            .compare_exchange_weak(off, end, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            live.inflight.fetch_sub(1, Ordering::Release);
            continue;
        }
        // Any mapping published before `committed` covered `end` covers the slot.
        let base = live.map.load(Ordering::SeqCst);
        // SAFETY: [off, end) lies below `committed`, inside the mapping and
        // the allocated file, and was reserved by this thread alone.
        unsafe { store(base.add(off as usize), rec) };
        live.inflight.fetch_sub(1, Ordering::Release);
        if committed - end < committed / 4 {
            grow_ahead(live, committed + 1);
        }
        touch(live);
        return true;
    }
}

/// Copies a record into its slot, its first two bytes (the magic) last: a
/// slot whose writer died midway has a zero magic, and if the rest of its
/// header made it, the decoder skips it by its length.
///
/// # Safety
/// `dst` must be valid for writes of `rec.len()` bytes nobody else writes.
unsafe fn store(dst: *mut u8, rec: &[u8]) {
    let n = rec.len();
    if n < 8 {
        return;
    }
    let src = rec.as_ptr();
    // SAFETY: dst and src are valid for n bytes (caller) and do not overlap
    // (one is the stack, the other the mapping).
    unsafe {
        core::ptr::copy_nonoverlapping(src.add(2), dst.add(2), 6);
        fence(Ordering::Release);
        core::ptr::copy_nonoverlapping(src.add(8), dst.add(8), n - 8);
        fence(Ordering::Release);
        core::ptr::copy_nonoverlapping(src, dst, 2);
    }
}

/// Makes `[0, need)` writable; false if that failed or took too long.
fn grow(live: &Live, need: u64, backoff: &mut Backoff) -> bool {
    if live.committed.load(Ordering::Acquire) >= need {
        return true;
    }
    if live
        .growing
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // Another thread is growing (or sealing): let it finish.
        return backoff.wait();
    }
    let ok = grow_locked(live, need);
    live.growing.store(false, Ordering::Release);
    ok
}

/// Grows before the space runs out, unless another thread already is.
fn grow_ahead(live: &Live, need: u64) {
    if live
        .growing
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_ok()
    {
        grow_locked(live, need);
        live.growing.store(false, Ordering::Release);
    }
}

/// Allocates and maps the file up to at least `need`. Only the thread
/// holding `growing` calls this.
fn grow_locked(live: &Live, need: u64) -> bool {
    let committed = live.committed.load(Ordering::Relaxed);
    if committed >= need {
        return true;
    }
    let step = committed.max(FIRST_CAP).saturating_mul(3).min(MAX_STEP);
    // Growing past RLIMIT_FSIZE would raise SIGXFSZ in the program: a loss instead.
    let new = need
        .max(committed + step)
        .next_multiple_of(PAGE)
        .min(sys::fsize_limit());
    if new < need {
        return false;
    }
    let path = live_path(live);
    let fd = sys::openat(
        libc::AT_FDCWD,
        path.as_slice_nul(),
        libc::O_RDWR | libc::O_CLOEXEC,
        0,
    );
    if fd < 0 {
        return false;
    }
    let fd = fd as c_int;
    let ok = is_stream_file(fd, live)
        && allocate(fd, path.as_slice_nul(), committed, new)
        && map_at_least(live, fd, new);
    sys::close(fd);
    if ok {
        live.committed.store(new, Ordering::Release);
    }
    ok
}

/// Makes the mapping cover `[0, len)`: grown where it is if there is room,
/// else a new one (the old one is unmapped once no writer can be using it).
fn map_at_least(live: &Live, fd: c_int, len: u64) -> bool {
    let mapped = live.mapped.load(Ordering::Relaxed);
    if len <= mapped {
        return true;
    }
    let old = live.map.load(Ordering::Relaxed);
    // SAFETY: `old`/`mapped` describe our current mapping; growing it in
    // place keeps every address a writer may hold valid.
    if unsafe { sys::mremap_in_place(old, mapped as usize, len as usize) } {
        live.mapped.store(len, Ordering::Relaxed);
        return true;
    }
    let new = map_file(fd, len);
    if new.is_null() {
        return false;
    }
    if !is_stream_file(fd, live) {
        // SAFETY: our mapping, never published.
        unsafe { sys::munmap(new, len as usize) };
        return false;
    }
    live.map.store(new, Ordering::SeqCst);
    live.mapped.store(len, Ordering::Relaxed);
    // A writer loads the mapping after raising `inflight`: if none is in
    // flight now, every later one sees the new mapping. Otherwise the old
    // one stays until exec or exit.
    if live.inflight.load(Ordering::SeqCst) == 0 {
        // SAFETY: no writer holds the old mapping (above) and it is no
        // longer published.
        unsafe { sys::munmap(old, mapped as usize) };
    }
    true
}

/// Keeps the file's mtime recent while records arrive (`roar ingest` waits
/// for streams from other pid namespaces to settle by it, and a write
/// through a mapping updates it only on the first write to each page).
fn touch(live: &Live) {
    let now = sys::clock_ns(libc::CLOCK_MONOTONIC);
    let last = live.touched_ns.load(Ordering::Relaxed);
    if now.wrapping_sub(last) < 1_000_000_000
        || live
            .touched_ns
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    sys::touch(live_path(live).as_slice_nul());
}

/// Cuts the stream file to what was written, when a page or more of zeros
/// would be left, before an exec or at exit. Best effort: the zeros are a
/// valid end too. Only the stream's own process does it (a vfork child
/// exec'ing must not cut its parent's stream).
pub fn seal() {
    let Some(live) = live() else { return };
    if live.state.load(Ordering::Acquire) != READY
        || live.owner.load(Ordering::Relaxed) != sys::getpid()
    {
        return;
    }
    let off = live.off.load(Ordering::Relaxed);
    if live.committed.load(Ordering::Relaxed).saturating_sub(off) < PAGE {
        return;
    }
    // Not from a signal handler that interrupted this thread inside a hook:
    // it may be holding `inflight`, which seal would wait for.
    let Some(_guard) = crate::Guard::enter() else {
        return;
    };
    if live
        .growing
        .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    live.closing.store(true, Ordering::SeqCst);
    let mut backoff = Backoff::new();
    let mut drained = true;
    while live.inflight.load(Ordering::SeqCst) != 0 {
        if !backoff.wait() {
            drained = false;
            break;
        }
    }
    if drained {
        // No writer is between its check and its copy, and new ones wait:
        // the offset is final and nothing is written beyond it meanwhile.
        let end = live.off.load(Ordering::Relaxed);
        if sys::truncate(live_path(live).as_slice_nul(), end) == 0 {
            live.committed.store(end, Ordering::Release);
        }
    }
    live.closing.store(false, Ordering::SeqCst);
    live.growing.store(false, Ordering::Release);
}
