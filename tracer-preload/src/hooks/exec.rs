//! Exec and spawn hooks: record the attempt (with what the loader will do
//! to our preload) before the real call, and the failure if it returns.

use core::ffi::{c_char, c_int, c_void};

use libc::pid_t;
use tracer_wire::{Args, Event, FLAG_ARGV_TRUNCATED, FLAG_PATH_TRUNCATED, exec_flags};

use super::call_real;
use crate::path::{self, PathBuf};
use crate::stream::{Whose, argv_fits, emit_large_by, join_argv};
use crate::sys::{self, Buf, Errno};
use crate::{Guard, record};

unsafe extern "C" {
    static environ: *const *const c_char;
}

fn current_environ() -> *const *const c_char {
    // SAFETY: reading the pointer value of libc's environ.
    unsafe { core::ptr::addr_of!(environ).read() }
}

/// How the program named the executable.
enum Target {
    /// A path relative to a directory fd; `search` applies PATH lookup
    /// to names without a slash (the p-variants).
    Path {
        dirfd: c_int,
        path: *const c_char,
        search: bool,
    },
    /// An open fd (fexecve, execveat with AT_EMPTY_PATH).
    Fd(c_int),
}

/// The most of an exec's argv recorded with it (the new image records its
/// own).
const ARGV_CAP: usize = 16384;

/// What `before` recorded, so `after` can report a failure.
struct Attempt {
    active: bool,
    flags: u32,
    hdr_flags: u32,
    path: PathBuf,
    /// The caller's argv, still valid when the call returns: joined only
    /// when a record is written (most execs write none; see `before`), so a
    /// fork child's exec does not fault in the pages of a 16 KiB buffer.
    argv: *const *const c_char,
}

fn read_u16(b: &[u8], at: usize) -> usize {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map_or(0, |a| u16::from_le_bytes(a) as usize)
}

fn read_u32(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, |a| u32::from_le_bytes(a) as u64)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// True when the ELF file on `fd` has no PT_INTERP (the loader, and so
/// LD_PRELOAD, never runs for it).
fn elf_is_static(fd: c_int, ehdr: &[u8]) -> bool {
    const PT_INTERP: u64 = 3;
    // Only little-endian files (what x86_64 and aarch64 run).
    if ehdr.get(5) != Some(&1) {
        return false;
    }
    let (phoff, phentsize, phnum) = match ehdr.get(4) {
        Some(2) => (
            read_u64(ehdr, 0x20),
            read_u16(ehdr, 0x36),
            read_u16(ehdr, 0x38),
        ),
        Some(1) => (
            read_u32(ehdr, 0x1c),
            read_u16(ehdr, 0x2a),
            read_u16(ehdr, 0x2c),
        ),
        _ => return false,
    };
    if phentsize < 4 || phnum == 0 {
        return false;
    }
    let mut ph = [0u8; 4096];
    let want = (phentsize * phnum).min(ph.len());
    let Some(dst) = ph.get_mut(..want) else {
        return false;
    };
    let n = sys::pread(fd, dst, phoff);
    if n <= 0 {
        return false;
    }
    let n = n as usize;
    let mut off = 0;
    while off + 4 <= n {
        if read_u32(&ph, off) == PT_INTERP {
            return false;
        }
        off += phentsize;
    }
    true
}

/// Static-binary and setuid flags of the file at NUL-terminated `path`;
/// follows a `#!` line one level.
fn inspect(path: &[u8], depth: u32) -> u32 {
    let fd = sys::openat(libc::AT_FDCWD, path, libc::O_RDONLY | libc::O_CLOEXEC, 0);
    if fd < 0 {
        return 0;
    }
    let fd = fd as c_int;
    let mut flags = 0;
    if let Some(st) = sys::fstat(fd) {
        let suid = st.st_mode & libc::S_ISUID != 0 && st.st_uid != sys::geteuid();
        let sgid = st.st_mode & libc::S_ISGID != 0 && st.st_gid != sys::getegid();
        if suid || sgid {
            flags |= exec_flags::SETUID;
        }
    }
    let mut head = [0u8; 256];
    let n = sys::pread(fd, &mut head, 0).max(0) as usize;
    let head = head.get(..n).unwrap_or(&[]);
    if head.starts_with(b"\x7fELF") {
        if elf_is_static(fd, head) {
            flags |= exec_flags::STATIC_BINARY;
        }
    } else if head.starts_with(b"#!") && depth == 0 {
        let rest = head.get(2..).unwrap_or(&[]);
        let start = rest.iter().position(|c| *c != b' ' && *c != b'\t');
        if let Some(start) = start {
            let rest = rest.get(start..).unwrap_or(&[]);
            let end = rest
                .iter()
                .position(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0))
                .unwrap_or(rest.len());
            let mut interp = Buf::<256>::new();
            interp.push(rest.get(..end).unwrap_or(&[]));
            if !interp.truncated && end > 0 {
                flags |= inspect(interp.c_str(), depth + 1);
            }
        }
    }
    sys::close(fd);
    flags
}

/// PRELOAD_DROPPED unless `envp` still carries our library and trace dir.
///
/// # Safety
/// `envp` must be null or a NULL-terminated array of C strings.
unsafe fn env_flags(envp: *const *const c_char) -> u32 {
    let (mut preload, mut dir) = (false, false);
    let mut i = 0;
    while !envp.is_null() {
        // SAFETY: NULL-terminated array, we stop at the NULL.
        let p = unsafe { *envp.add(i) };
        if p.is_null() {
            break;
        }
        // SAFETY: each entry is a C string.
        let s = unsafe { sys::cstr(p, usize::MAX) };
        if let Some(v) = s.strip_prefix(b"LD_PRELOAD=") {
            preload = v.windows(12).any(|w| w == b"roar_preload");
        } else if let Some(v) = s.strip_prefix(b"ROAR_TRACE_DIR=") {
            dir = !v.is_empty();
        }
        i += 1;
    }
    if preload && dir {
        0
    } else {
        exec_flags::PRELOAD_DROPPED
    }
}

/// Finds `file` in $PATH like execvp; returns the candidate path.
fn search_path(file: &[u8]) -> Option<PathBuf> {
    // SAFETY: getenv with a NUL-terminated name.
    let p = unsafe { libc::getenv(c"PATH".as_ptr()) };
    // SAFETY: getenv returns null or a C string.
    let list = if p.is_null() {
        &b"/bin:/usr/bin"[..]
    } else {
        // SAFETY: as above.
        unsafe { sys::cstr(p, usize::MAX) }
    };
    for dir in list.split(|c| *c == b':') {
        let mut cand = PathBuf::new();
        cand.push(if dir.is_empty() { b"." } else { dir });
        cand.push(b"/");
        cand.push(file);
        if cand.truncated {
            continue;
        }
        let c = cand.c_str();
        let regular = sys::fstatat(libc::AT_FDCWD, c, 0)
            .is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG);
        if regular && sys::access(c, libc::X_OK) {
            return Some(cand);
        }
    }
    None
}

/// Records the exec attempt. Clears the re-entry guard before returning,
/// because in a vfork child a successful exec never comes back to clear it.
/// `replaces`: the call replaces this image (an exec, not a spawn).
///
/// # Safety
/// `argv`/`envp` must be null or NULL-terminated arrays of C strings and
/// a `Target::Path` path null or a C string.
unsafe fn before(
    target: Target,
    argv: *const *const c_char,
    envp: *const *const c_char,
    replaces: bool,
) -> Attempt {
    let mut att = Attempt {
        active: false,
        flags: 0,
        hdr_flags: 0,
        path: PathBuf::new(),
        argv,
    };
    let Some(guard) = Guard::enter() else {
        return att;
    };
    let e = Errno::save();
    att.active = true;
    match target {
        Target::Fd(fd) => {
            att.path = path::of_fd(fd);
            att.flags |= inspect(sys::proc_fd_path(fd).as_slice_nul(), 0);
        }
        Target::Path {
            dirfd,
            path: p,
            search,
        } => {
            // SAFETY: forwarded from the caller.
            let name = unsafe { sys::cstr(p, path::PATH_CAP) };
            if search && !name.is_empty() && !name.contains(&b'/') {
                match search_path(name) {
                    Some(mut cand) => {
                        att.flags |= inspect(cand.c_str(), 0);
                        // SAFETY: cand is NUL-terminated by c_str above.
                        att.path = unsafe {
                            path::absolute(libc::AT_FDCWD, cand.as_slice_nul().as_ptr().cast())
                        };
                    }
                    // Not found: report the name as given, no inspection.
                    None => att.path.push(name),
                }
            } else {
                // SAFETY: forwarded from the caller.
                att.path = unsafe { path::absolute(dirfd, p) };
                // c_str only adds a NUL after the path when there is room.
                if !att.path.truncated && att.path.len < path::PATH_CAP {
                    att.flags |= inspect(att.path.c_str(), 0);
                }
            }
        }
    }
    // SAFETY: forwarded from the caller.
    att.flags |= unsafe { env_flags(envp) };
    if att.path.truncated {
        att.hdr_flags |= FLAG_PATH_TRUNCATED;
    }
    // SAFETY: forwarded from the caller.
    if !unsafe { argv_fits::<ARGV_CAP>(argv) } {
        att.hdr_flags |= FLAG_ARGV_TRUNCATED;
    }
    // A fork child with no stream yet that execs a program the library
    // will be loaded into: the new image's ProcessStart says all the
    // attempt would (the analysis folds such a fork image into its exec),
    // so no stream is opened for it. A failure is still recorded.
    let reported_by_next_image = replaces && att.flags == 0 && att.hdr_flags == 0;
    if !(reported_by_next_image && crate::stream::unopened()) {
        // SAFETY: att.argv is the caller's, forwarded.
        unsafe { emit_attempt(&att, 0) };
    }
    e.restore();
    drop(guard);
    att
}

/// [`before`] for a call that replaces this image: the stream is also cut
/// to length, since the mapping goes with the image.
///
/// # Safety
/// As for [`before`].
unsafe fn before_exec(
    target: Target,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> Attempt {
    // SAFETY: forwarded from the caller.
    let att = unsafe { before(target, argv, envp, true) };
    crate::stream::seal();
    att
}

/// Records a failed attempt (the real call returned `-err`).
fn failed(att: &Attempt, err: c_int) {
    if !att.active {
        return;
    }
    // SAFETY: the call failed, so the caller's argv is still there.
    record(|_| unsafe { emit_attempt(att, -err) });
}

/// Writes the record of an attempt, its argv joined here: not inlined, so
/// that only an exec that writes a record has this frame's buffers on its
/// stack.
///
/// # Safety
/// `att.argv` must be null or the caller's NULL-terminated argv.
#[inline(never)]
unsafe fn emit_attempt(att: &Attempt, result: c_int) {
    let mut argv = Buf::<ARGV_CAP>::new();
    // SAFETY: forwarded from the caller.
    unsafe { join_argv(att.argv, usize::MAX, &mut argv) };
    // `before` flagged a cut argv already.
    let hdr_flags = att.hdr_flags;
    emit_large_by(
        &Event::Exec {
            result,
            flags: att.flags,
            path: att.path.as_slice(),
            argv: Args(argv.as_slice()),
        },
        hdr_flags,
        Whose::Caller,
    );
}

type ExecveFn =
    unsafe extern "C" fn(*const c_char, *const *const c_char, *const *const c_char) -> c_int;
type ExecvFn = unsafe extern "C" fn(*const c_char, *const *const c_char) -> c_int;

fn at_cwd(path: *const c_char, search: bool) -> Target {
    Target::Path {
        dirfd: libc::AT_FDCWD,
        path,
        search,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execve(
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's exec arguments.
    let att = unsafe { before_exec(at_cwd(path, false), argv, envp) };
    let ret = call_real!(execve: ExecveFn, (path, argv, envp), -1);
    failed(&att, Errno::save().get());
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execv(path: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: the caller's exec arguments.
    let att = unsafe { before_exec(at_cwd(path, false), argv, current_environ()) };
    let ret = call_real!(execv: ExecvFn, (path, argv), -1);
    failed(&att, Errno::save().get());
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int {
    // SAFETY: the caller's exec arguments.
    let att = unsafe { before_exec(at_cwd(file, true), argv, current_environ()) };
    let ret = call_real!(execvp: ExecvFn, (file, argv), -1);
    failed(&att, Errno::save().get());
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execvpe(
    file: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: the caller's exec arguments.
    let att = unsafe { before_exec(at_cwd(file, true), argv, envp) };
    let ret = call_real!(execvpe: ExecveFn, (file, argv, envp), -1);
    failed(&att, Errno::save().get());
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn fexecve(
    fd: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    type F = unsafe extern "C" fn(c_int, *const *const c_char, *const *const c_char) -> c_int;
    // SAFETY: the caller's exec arguments.
    let att = unsafe { before_exec(Target::Fd(fd), argv, envp) };
    let ret = call_real!(fexecve: F, (fd, argv, envp), -1);
    failed(&att, Errno::save().get());
    ret
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn execveat(
    dirfd: c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
    flags: c_int,
) -> c_int {
    type F = unsafe extern "C" fn(
        c_int,
        *const c_char,
        *const *const c_char,
        *const *const c_char,
        c_int,
    ) -> c_int;
    // SAFETY: the caller's C string.
    let empty = unsafe { sys::strnlen(path, 1) } == 0;
    let target = if empty && flags & libc::AT_EMPTY_PATH != 0 {
        Target::Fd(dirfd)
    } else {
        Target::Path {
            dirfd,
            path,
            search: false,
        }
    };
    // SAFETY: the caller's exec arguments.
    let att = unsafe { before_exec(target, argv, envp) };
    let ret = call_real!(execveat: F, (dirfd, path, argv, envp, flags), -1);
    failed(&att, Errno::save().get());
    ret
}

type SpawnFn = unsafe extern "C" fn(
    *mut pid_t,
    *const c_char,
    *const c_void,
    *const c_void,
    *const *const c_char,
    *const *const c_char,
) -> c_int;

macro_rules! spawn_hook {
    ($name:ident, $search:expr) => {
        /// The child image reports itself; here we record the attempt.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(
            pid: *mut pid_t,
            path: *const c_char,
            actions: *const c_void,
            attr: *const c_void,
            argv: *const *const c_char,
            envp: *const *const c_char,
        ) -> c_int {
            // SAFETY: the caller's spawn arguments.
            let att = unsafe { before(at_cwd(path, $search), argv, envp, false) };
            let ret = call_real!($name: SpawnFn, (pid, path, actions, attr, argv, envp), libc::ENOSYS);
            if ret != 0 {
                let e = Errno::save();
                failed(&att, ret);
                e.restore();
            }
            ret
        }
    };
}
spawn_hook!(posix_spawn, false);
spawn_hook!(posix_spawnp, true);

/// Max arguments (including argv[0]) the execl family passes on.
const EXECL_MAX: usize = 64;

/// Turns the fixed parameter list of an execl-family call into an argv
/// array (NULL-terminated) and the pointer after the NULL (execle's envp).
fn collect(list: &[*const c_char]) -> ([*const c_char; EXECL_MAX + 1], *const *const c_char) {
    let mut argv = [core::ptr::null(); EXECL_MAX + 1];
    let mut envp: *const *const c_char = current_environ();
    for (i, a) in list.iter().enumerate().take(EXECL_MAX + 1) {
        if a.is_null() {
            if let Some(e) = list.get(i + 1) {
                envp = (*e).cast();
            }
            break;
        }
        if let Some(slot) = argv.get_mut(i).filter(|_| i < EXECL_MAX) {
            *slot = *a;
        }
    }
    (argv, envp)
}

// C's execl family is variadic; stable Rust cannot define that, so each
// takes a fixed list of pointer parameters (the SysV ABI passes variadic
// pointers exactly like fixed ones) and stops at the NULL terminator.
macro_rules! execl_hooks {
    ($($a:ident),*) => {
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn execl(path: *const c_char, $($a: *const c_char),*) -> c_int {
            let (argv, _) = collect(&[$($a),*]);
            let envp = current_environ();
            // SAFETY: the caller's exec arguments.
            let att = unsafe { before_exec(at_cwd(path, false), argv.as_ptr(), envp) };
            let ret = call_real!(execve: ExecveFn, (path, argv.as_ptr(), envp), -1);
            failed(&att, Errno::save().get());
            ret
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn execlp(file: *const c_char, $($a: *const c_char),*) -> c_int {
            let (argv, _) = collect(&[$($a),*]);
            // SAFETY: the caller's exec arguments.
            let att = unsafe { before_exec(at_cwd(file, true), argv.as_ptr(), current_environ()) };
            let ret = call_real!(execvp: ExecvFn, (file, argv.as_ptr()), -1);
            failed(&att, Errno::save().get());
            ret
        }

        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn execle(path: *const c_char, $($a: *const c_char),*) -> c_int {
            let (argv, envp) = collect(&[$($a),*]);
            // SAFETY: the caller's exec arguments.
            let att = unsafe { before_exec(at_cwd(path, false), argv.as_ptr(), envp) };
            let ret = call_real!(execve: ExecveFn, (path, argv.as_ptr(), envp), -1);
            failed(&att, Errno::save().get());
            ret
        }
    };
}
execl_hooks!(
    a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17, a18, a19, a20,
    a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31, a32, a33, a34, a35, a36, a37, a38, a39,
    a40, a41, a42, a43, a44, a45, a46, a47, a48, a49, a50, a51, a52, a53, a54, a55, a56, a57, a58,
    a59, a60, a61, a62, a63, a64, a65
);
