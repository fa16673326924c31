//! The few bpf(2) commands aya 0.14 does not offer, and the bpffs checks:
//! creating a standalone ring buffer (each run makes its own), opening a
//! pinned program, running `roar_ctl` with `BPF_PROG_TEST_RUN`, and
//! deleting an element of a map of maps.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_OBJ_GET: libc::c_long = 7;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_PROG_TEST_RUN: libc::c_long = 10;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;
/// `BPF_FS_MAGIC` (include/uapi/linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// A zeroed `union bpf_attr`, large enough for every command used here.
struct Attr([u8; 128]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 128])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn call(&mut self, cmd: libc::c_long) -> io::Result<libc::c_long> {
        // SAFETY: bpf(2) reads (and for some commands writes) at most
        // `size` bytes of the attribute buffer, which we own.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                self.0.as_mut_ptr(),
                self.0.len() as libc::c_uint,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel just returned this new file descriptor to us.
    unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }
}

/// A new ring buffer map of `bytes` (a power of two, at least a page).
pub fn ringbuf_create(bytes: u32) -> io::Result<OwnedFd> {
    let mut a = Attr::new();
    a.u32(0, BPF_MAP_TYPE_RINGBUF).u32(12, bytes);
    a.0[28..28 + 9].copy_from_slice(b"roar_ring");
    a.call(BPF_MAP_CREATE).map(owned)
}

/// The bpf object pinned at `path`.
pub fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut a = Attr::new();
    a.u64(0, c.as_ptr() as u64);
    a.call(BPF_OBJ_GET).map(owned)
}

/// Pins the bpf object `fd` at `path`.
pub fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut a = Attr::new();
    a.u64(0, c.as_ptr() as u64).u32(8, fd.as_raw_fd() as u32);
    a.call(BPF_OBJ_PIN).map(drop)
}

/// Attaches the raw tracepoint program `prog` to `tracepoint`: the link.
pub fn raw_tp_open(prog: BorrowedFd<'_>, tracepoint: &str) -> io::Result<OwnedFd> {
    let c = CString::new(tracepoint).map_err(io::Error::other)?;
    let mut a = Attr::new();
    a.u64(0, c.as_ptr() as u64).u32(8, prog.as_raw_fd() as u32);
    a.call(BPF_RAW_TRACEPOINT_OPEN).map(owned)
}

/// Runs the raw tracepoint program `prog` once on this CPU with `args` as
/// its context.
pub fn test_run(prog: BorrowedFd<'_>, args: &[u64]) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, prog.as_raw_fd() as u32)
        .u32(40, (args.len() * 8) as u32)
        .u64(48, args.as_ptr() as u64);
    a.call(BPF_PROG_TEST_RUN).map(drop)
}

/// Deletes `key` from the map `map` (ENOENT when it was not there).
pub fn map_delete(map: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    let mut a = Attr::new();
    a.u32(0, map.as_raw_fd() as u32)
        .u64(8, std::ptr::from_ref(&key) as u64);
    a.call(BPF_MAP_DELETE_ELEM).map(drop)
}

/// Every value of the array map `map` (`n` elements of `T`) in one call.
pub fn array_values<T: Copy + Default>(map: BorrowedFd<'_>, n: u32) -> io::Result<Vec<T>> {
    let mut keys = vec![0u32; n as usize];
    let mut values = vec![T::default(); n as usize];
    let mut out_batch = 0u32;
    let mut a = Attr::new();
    a.u64(8, std::ptr::from_mut(&mut out_batch) as u64)
        .u64(16, keys.as_mut_ptr() as u64)
        .u64(24, values.as_mut_ptr() as u64)
        .u32(32, n)
        .u32(36, map.as_raw_fd() as u32);
    match a.call(BPF_MAP_LOOKUP_BATCH) {
        // ENOENT: the batch reached the end of the map.
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
        _ => {}
    }
    let count = u32::from_ne_bytes(a.0[32..36].try_into().unwrap_or_default());
    values.truncate(count as usize);
    Ok(values)
}

/// Whether `dir` is on a BPF file system.
pub fn is_bpffs(dir: &Path) -> bool {
    let Ok(c) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct we own from a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    r == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// Mounts a BPF file system on `dir` (root only), the way systemd does on
/// /sys/fs/bpf.
pub fn mount_bpffs(dir: &Path) -> io::Result<()> {
    let c = CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: mount(2) with NUL-terminated strings we own.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The start time of process `pid` (field 22 of /proc/PID/stat, in clock
/// ticks since boot): with the pid, it names one process for good.
pub fn start_time(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    // Fields after the command name start at field 3 (state).
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}
