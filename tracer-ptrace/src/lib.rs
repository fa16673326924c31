//! The ptrace backend: follows a command and every process and thread it
//! starts through the kernel's syscall interface, and writes what they did
//! as `tracer-wire` records, the same events the preload shim produces.
//!
//! It sees what LD_PRELOAD cannot: static and Go binaries, raw `syscall()`,
//! programs that clear their environment. To stay cheap, a seccomp filter
//! stops the tracee only for the file and process calls listed in
//! [`filter::TRACED`]; everything else runs untouched.
//!
//! Use: [`Prepared::new`] before fork; [`Prepared::in_child`] in the child
//! between fork and exec (it waits until the parent has attached, then
//! installs the filter); [`Prepared::attach`] in the parent right after
//! fork; then [`Tracer::run`] on the same thread until every tracee is gone.
//!
//! Paths are resolved to absolute ones the way the kernel resolves them for
//! the tracee: relative to its working directory, or to the directory a
//! dirfd names in its fd table (read from `/proc/TID/fd`, which is exact for
//! duplicated, inherited and passed fds alike, so `dup`/`close` need no
//! tracing).

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use libc::{c_int, pid_t};
use tracer_wire::{
    Args, Event, ExitStatus, FLAG_ARGV_TRUNCATED, FLAG_PATH_TRUNCATED, FLAG_RESULT_AT_ENTRY,
    FileStat, LossReason, StartCause,
};

pub mod filter;
mod tracee;
mod wait;

use filter::{AUDIT_ARCH_X86_64, DATA_FOREIGN};
pub use tracee::Stopped;
use tracee::{PATH_MAX, Read};
use tracer_stream::clock::{now_ns, realtime_ns};
use tracer_stream::path::join;
use tracer_stream::{Gate, Sink};

/// Options set on the command and inherited by everything it starts.
fn options() -> nix::sys::ptrace::Options {
    use nix::sys::ptrace::Options as O;
    O::PTRACE_O_TRACESYSGOOD
        | O::PTRACE_O_TRACEFORK
        | O::PTRACE_O_TRACEVFORK
        | O::PTRACE_O_TRACECLONE
        | O::PTRACE_O_TRACEEXEC
        | O::PTRACE_O_TRACESECCOMP
        | O::PTRACE_O_EXITKILL
}

/// Set up before fork: the filter program and the pipe the child waits on.
pub struct Prepared {
    prog: Vec<libc::sock_filter>,
    gate: Gate,
}

impl Prepared {
    pub fn new() -> io::Result<Prepared> {
        Ok(Prepared {
            prog: filter::program(),
            gate: Gate::new()?,
        })
    }

    /// In the forked child, before exec: waits until the parent attached,
    /// then installs the filter. Only system calls; returns an errno.
    pub fn in_child(&self) -> Result<(), c_int> {
        self.gate.wait()?;
        filter::install(&self.prog)
    }

    /// In the parent, right after fork: seizes `pid` with the options, then
    /// lets the child go on to exec. Records go to `trace` (created).
    pub fn attach(&self, pid: pid_t, trace: &Path) -> io::Result<Tracer> {
        nix::sys::ptrace::seize(nix::unistd::Pid::from_raw(pid), options())
            .map_err(|e| io::Error::other(format!("ptrace(PTRACE_SEIZE) failed: {e}")))?;
        let sink = Sink::create(trace)?;
        self.gate.open()?;
        let mut t = Tracer {
            outlived: Vec::new(),
            targets: Arc::new(Mutex::new(vec![pid])),
            sink,
            root: pid,
            root_status: None,
            tasks: HashMap::new(),
            procs: HashMap::new(),
            expected: HashSet::new(),
            adopted: HashSet::new(),
            read: HashMap::new(),
            hashed: HashMap::new(),
            waiter: wait::Waiter::new(),
        };
        t.tasks.insert(pid, Task::new(pid));
        t.procs.insert(
            pid,
            Proc {
                ppid: std::process::id(),
                ..Proc::default()
            },
        );
        Ok(t)
    }
}

/// One traced thread.
struct Task {
    tgid: pid_t,
    /// A call stopped at entry whose result is needed at exit.
    pending: Option<Pending>,
}

impl Task {
    fn new(tgid: pid_t) -> Self {
        Task {
            tgid,
            pending: None,
        }
    }
}

/// One traced process (thread group).
#[derive(Default, Clone)]
struct Proc {
    ppid: u32,
    exe: Vec<u8>,
    /// NUL-separated, as in the wire format.
    argv: Vec<u8>,
    foreign_calls: u64,
    io_uring: u64,
    /// The process may see files under other paths than the tracer does
    /// (it changed its root or mount namespace, or started in others): its
    /// opens are all seen at their exit.
    other_view: bool,
}

/// What a call stopped at entry will be reported as at exit.
enum Pending {
    Open {
        path: Vec<u8>,
        flags: i32,
        mode: u32,
        trunc: bool,
    },
    /// `open_by_handle_at`: the path is known only from the new fd.
    OpenHandle { flags: i32 },
    Rename {
        old: Vec<u8>,
        new: Vec<u8>,
        flags: u32,
        trunc: bool,
    },
    Link {
        old: Vec<u8>,
        new: Vec<u8>,
        trunc: bool,
    },
    Symlink {
        target: Vec<u8>,
        link: Vec<u8>,
        trunc: bool,
    },
    Unlink {
        path: Vec<u8>,
        dir: bool,
        trunc: bool,
    },
    Truncate {
        path: Vec<u8>,
        length: u64,
        trunc: bool,
    },
    Mkdir {
        path: Vec<u8>,
        mode: u32,
        trunc: bool,
    },
    Exec {
        path: Vec<u8>,
        argv: Vec<u8>,
        flags: u32,
    },
}

/// How a traced command ended.
#[derive(Debug)]
pub struct Outcome {
    /// The command's own exit status (None if it was never seen).
    pub status: Option<ExitStatus>,
    /// Processes still running when the command exited, followed until they
    /// ended too.
    pub outlived: Vec<u32>,
}

/// Follows the command until it and everything it started have exited.
pub struct Tracer {
    outlived: Vec<u32>,
    /// Who signals for the command go to: the command while it runs, then
    /// the processes it left running.
    targets: Arc<Mutex<Vec<pid_t>>>,
    sink: Sink,
    root: pid_t,
    root_status: Option<ExitStatus>,
    tasks: HashMap<pid_t, Task>,
    procs: HashMap<pid_t, Proc>,
    /// New tasks named by a fork event whose first stop has not come yet.
    expected: HashSet<pid_t>,
    /// New tasks whose first stop came before their parent's fork event,
    /// registered then: the event, when it is read, must not register them
    /// again (by then they may have run and exited, and a second record
    /// would start a process that never ends).
    adopted: HashSet<pid_t>,
    /// Identities (dev, ino) of files the run opened for reading, with the
    /// stat they had: before a call changes, replaces or deletes one, its
    /// content is hashed (an input's hash as read).
    read: HashMap<(u64, u64), FileStat>,
    /// Identities whose content was already hashed, and as what stat.
    hashed: HashMap<(u64, u64), FileStat>,
    waiter: wait::Waiter,
}

fn status_of(raw: c_int) -> Option<ExitStatus> {
    if libc::WIFEXITED(raw) {
        Some(ExitStatus::Code(libc::WEXITSTATUS(raw)))
    } else if libc::WIFSIGNALED(raw) {
        Some(ExitStatus::Signal(libc::WTERMSIG(raw)))
    } else {
        None
    }
}

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn proc_path(tid: pid_t, rest: &str) -> String {
    format!("/proc/{tid}/{rest}")
}

/// Thread `tid`'s working directory, read when a relative path needs it.
/// chdir does not stop: a stop costs far more than this readlink, and
/// `cd`-heavy shells call chdir far more often than they open relative
/// paths (20,000 `cd` in bash: each was two stops).
fn cwd_of(tid: pid_t) -> Vec<u8> {
    readlink(&proc_path(tid, "cwd")).unwrap_or_else(|| b"/".to_vec())
}

fn readlink(p: &str) -> Option<Vec<u8>> {
    std::fs::read_link(p)
        .ok()
        .map(|l| l.as_os_str().as_bytes().to_vec())
}

fn stat(p: &[u8]) -> Option<FileStat> {
    let c = CString::new(p).ok()?;
    raw_stat(&c, 0).ok().as_ref().map(file_stat)
}

/// `fstatat` of `path` (relative to the tracer's cwd) with `how`, or the errno.
fn raw_stat(path: &std::ffi::CStr, how: c_int) -> Result<libc::stat, i32> {
    // SAFETY: fstatat into a zeroed struct from a NUL-terminated path.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(libc::AT_FDCWD, path.as_ptr(), &mut st, how) != 0 {
            return Err(errno());
        }
        Ok(st)
    }
}

fn file_stat(st: &libc::stat) -> FileStat {
    FileStat {
        dev: st.st_dev,
        ino: st.st_ino,
        size: st.st_size as u64,
        mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
        mode: st.st_mode,
    }
}

impl Tracer {
    /// Before a call that may change, replace or delete a file's content
    /// runs (the tracee is stopped at its entry): hash the file, if the run
    /// read it and it is still as read, or if it is opened for reading and
    /// writing (read, then rewritten in place: `r+`, sqlite). The content
    /// as read is then known even when the file is gone by the end.
    fn keep_content(&mut self, tid: pid_t, p: &Pending) {
        let (paths, rdwr): (&[&Vec<u8>], bool) = match p {
            Pending::Open { path, flags, .. } => {
                let acc = flags & libc::O_ACCMODE;
                if acc == libc::O_RDONLY && flags & libc::O_TRUNC == 0 {
                    return;
                }
                (&[path], acc == libc::O_RDWR && flags & libc::O_TRUNC == 0)
            }
            // The file renamed away (moved out of the tree) and the one it
            // replaces.
            Pending::Rename { old, new, .. } => (&[old, new], false),
            Pending::Link { new, .. } => (&[new], false),
            Pending::Unlink {
                path, dir: false, ..
            } => (&[path], false),
            Pending::Truncate { path, .. } => (&[path], false),
            _ => return,
        };
        for path in paths {
            self.hash_before(tid, path, rdwr);
        }
    }

    fn hash_before(&mut self, tid: pid_t, path: &[u8], rdwr: bool) {
        let Some(st) = stat(path) else { return };
        let id = (st.dev, st.ino);
        let wanted = rdwr || self.read.get(&id) == Some(&st);
        if !st.is_regular() || !wanted || self.hashed.get(&id) == Some(&st) {
            return;
        }
        let Ok(blake3) = hash_file(path) else { return };
        self.hashed.insert(id, st);
        self.emit(
            tid,
            0,
            &Event::Content {
                stat: st,
                blake3,
                path,
            },
        );
    }
}

/// Calls after which a process may see files under other paths than the
/// tracer: they stop, and the process's opens are seen at their exit from
/// then on (its children inherit that).
const VIEW_CHANGES: &[libc::c_long] = &[
    libc::SYS_chroot,
    libc::SYS_pivot_root,
    libc::SYS_unshare,
    libc::SYS_setns,
];

/// What a read-only open of `path` with `flags` will find: the file's stat,
/// or the errno the open will fail with. Not following a final symlink
/// under O_NOFOLLOW (the open fails with ELOOP), and, when roar is not
/// root, failing as an unreadable file fails (roar runs as the tracee's
/// user: a set-user-ID program drops its privileges when traced).
fn entry_stat(path: &[u8], flags: i32) -> Result<FileStat, i32> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    let nofollow = flags & libc::O_NOFOLLOW != 0;
    let how = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    let st = raw_stat(&c, how)?;
    let kind = st.st_mode & libc::S_IFMT;
    if nofollow && kind == libc::S_IFLNK && flags & libc::O_PATH == 0 {
        return Err(libc::ELOOP);
    }
    if flags & libc::O_DIRECTORY != 0 && kind != libc::S_IFDIR {
        return Err(libc::ENOTDIR);
    }
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if flags & libc::O_PATH == 0 && !root {
        // SAFETY: faccessat reads the NUL-terminated path.
        let r =
            unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::R_OK, libc::AT_EACCESS) };
        if r != 0 {
            return Err(errno());
        }
    }
    Ok(file_stat(&st))
}

/// The file type (`S_IFMT` bits) at `path`, not following a final symlink,
/// or the errno.
fn lstat_kind(path: &[u8]) -> Result<libc::mode_t, i32> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    Ok(raw_stat(&c, libc::AT_SYMLINK_NOFOLLOW)?.st_mode & libc::S_IFMT)
}

/// The BLAKE3 hash of the file at `path`.
fn hash_file(path: &[u8]) -> io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    let f = std::fs::File::open(std::ffi::OsStr::from_bytes(path))?;
    h.update_reader(f)?;
    Ok(*h.finalize().as_bytes())
}

/// True when the program `tid` just exec'd is set-user-ID or set-group-ID
/// and the kernel did not give it those ids: a traced exec keeps the
/// caller's credentials unless the tracer could trace the new ones.
fn privileges_dropped(tid: pid_t) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(proc_path(tid, "exe")) else {
        return false;
    };
    let (suid, sgid) = (md.mode() & 0o4000 != 0, md.mode() & 0o2000 != 0);
    if !suid && !sgid {
        return false;
    }
    let status = std::fs::read_to_string(proc_path(tid, "status")).unwrap_or_default();
    // "Uid:\treal\teffective\tsaved\tfs"
    let effective = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().nth(1)?.parse::<u32>().ok())
    };
    (suid && effective("Uid:").is_some_and(|e| e != md.uid()))
        || (sgid && effective("Gid:").is_some_and(|e| e != md.gid()))
}

/// The path an fd of `tid` names, when it names one (not a pipe or socket).
/// Whether `fd` of `tid` was opened for writing (its `flags:` in fdinfo, octal).
fn open_for_writing(tid: pid_t, fd: i32) -> bool {
    let Ok(info) = std::fs::read_to_string(proc_path(tid, &format!("fdinfo/{fd}"))) else {
        return false;
    };
    info.lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|f| f & libc::O_ACCMODE != libc::O_RDONLY)
}

fn fd_path(tid: pid_t, fd: i32) -> Option<Vec<u8>> {
    readlink(&proc_path(tid, &format!("fd/{fd}"))).filter(|p| p.starts_with(b"/"))
}

impl Tracer {
    /// Runs until every tracee has exited. Returns how the command (the
    /// first process) ended. Must run on the thread that attached.
    ///
    /// Processes the command leaves running are followed to their end:
    /// ptrace cannot let them go, because a tracee whose tracer detaches
    /// gets ENOSYS from every call its filter traces. `outlived` is told
    /// their pids once, when the command itself has exited.
    pub fn run(mut self, outlived: &mut dyn FnMut(&[u32])) -> io::Result<Outcome> {
        let mut told = false;
        loop {
            if !told && self.root_status.is_some() {
                told = true;
                let mut left: Vec<u32> = self.procs.keys().map(|p| *p as u32).collect();
                if let Ok(mut t) = self.targets.lock() {
                    *t = left.iter().map(|p| *p as pid_t).collect();
                }
                if !left.is_empty() {
                    left.sort_unstable();
                    outlived(&left);
                    self.outlived = left;
                }
            }
            let mut raw: c_int = 0;
            let tid = self.waiter.wait(&mut raw);
            if tid < 0 {
                match errno() {
                    libc::EINTR => continue,
                    libc::ECHILD => break,
                    e => return Err(io::Error::from_raw_os_error(e)),
                }
            }
            // Only a tracee let go from a system call is soon back: one
            // that forked, exec'd (ld.so's loading) or got a signal is not.
            self.waiter.soon = false;
            if let Some(st) = status_of(raw) {
                self.exited(tid, st);
                continue;
            }
            if !libc::WIFSTOPPED(raw) {
                continue;
            }
            let stop = Stopped::new(tid);
            let sig = libc::WSTOPSIG(raw);
            let event = (raw >> 16) & 0xff;
            if sig == libc::SIGTRAP | 0x80 {
                self.waiter.soon = true;
                self.syscall_exit(stop);
                continue;
            }
            match event {
                libc::PTRACE_EVENT_SECCOMP => {
                    self.waiter.soon = true;
                    self.seccomp(stop)
                }
                libc::PTRACE_EVENT_FORK | libc::PTRACE_EVENT_VFORK | libc::PTRACE_EVENT_CLONE => {
                    self.new_task(stop)
                }
                libc::PTRACE_EVENT_EXEC => self.exec(stop),
                libc::PTRACE_EVENT_STOP => self.event_stop(stop, sig),
                0 => {
                    // Signal-delivery stop: deliver it, exactly as untraced.
                    self.resume(stop, sig);
                }
                _ => self.resume(stop, 0),
            }
        }
        let now = now_ns();
        let leftover: Vec<(pid_t, Proc)> = self.procs.drain().collect();
        for (pid, p) in leftover {
            Self::report_blind(&mut self.sink, now, pid, &p);
        }
        self.sink.finish(now, self.root as u32)?;
        Ok(Outcome {
            status: self.root_status,
            outlived: self.outlived,
        })
    }

    /// The pids that signals meant for the command should go to, kept
    /// current while [`Tracer::run`] runs.
    pub fn targets(&self) -> Arc<Mutex<Vec<pid_t>>> {
        Arc::clone(&self.targets)
    }

    fn resume(&mut self, stop: Stopped, sig: i32) {
        let pending = self
            .tasks
            .get(&stop.tid())
            .is_some_and(|t| t.pending.is_some());
        if pending {
            stop.to_syscall_exit(sig);
        } else {
            stop.cont(sig);
        }
    }

    fn tgid(&self, tid: pid_t) -> pid_t {
        self.tasks.get(&tid).map_or(tid, |t| t.tgid)
    }

    fn emit(&mut self, tid: pid_t, flags: u32, ev: &Event<'_>) {
        let pid = self.tgid(tid) as u32;
        self.sink.emit(now_ns(), pid, tid as u32, flags, ev);
    }

    fn report_blind(sink: &mut Sink, ts: u64, pid: pid_t, p: &Proc) {
        for (reason, count) in [
            (LossReason::ForeignAbi, p.foreign_calls),
            (LossReason::IoUring, p.io_uring),
        ] {
            if count > 0 {
                sink.emit(
                    ts,
                    pid as u32,
                    pid as u32,
                    0,
                    &Event::Loss { reason, count },
                );
            }
        }
    }

    fn exited(&mut self, tid: pid_t, st: ExitStatus) {
        self.expected.remove(&tid);
        let Some(task) = self.tasks.remove(&tid) else {
            return;
        };
        if tid == self.root {
            self.root_status = Some(st);
        }
        if task.tgid == tid {
            if self.root_status.is_some()
                && let Ok(mut t) = self.targets.lock()
            {
                t.retain(|p| *p != tid);
            }
            self.sink.emit(
                now_ns(),
                tid as u32,
                tid as u32,
                0,
                &Event::Exit { status: st },
            );
            if let Some(p) = self.procs.remove(&tid) {
                Self::report_blind(&mut self.sink, now_ns(), tid, &p);
            }
        }
    }

    /// A `PTRACE_EVENT_STOP`: the first stop of a new task, or a group-stop.
    fn event_stop(&mut self, stop: Stopped, sig: i32) {
        let tid = stop.tid();
        if self.expected.remove(&tid) {
            stop.cont(0);
            return;
        }
        if !self.tasks.contains_key(&tid) {
            // A new task whose parent's fork event has not been read yet
            // (or never will be: a parent killed inside fork reports none).
            // The kernel knows what it is; adopt it now rather than hold it.
            self.adopt(tid);
            self.adopted.insert(tid);
            stop.cont(0);
            return;
        }
        match sig {
            libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU => stop.listen(),
            _ => stop.cont(0),
        }
    }

    /// Registers a task seen before its parent's fork event, from what
    /// `/proc/TID/status` says of its thread group and parent.
    fn adopt(&mut self, tid: pid_t) {
        let status = std::fs::read_to_string(proc_path(tid, "status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<pid_t>().ok())
        };
        let tgid = field("Tgid:").unwrap_or(tid);
        if tgid != tid {
            self.tasks.insert(tid, Task::new(tgid));
            return;
        }
        let parent = field("PPid:").unwrap_or(0);
        self.add_process(tid, self.tgid(parent), parent);
        // Its clone flags are not known here: whether it has a mount
        // namespace of its own is read instead.
        if readlink(&proc_path(tid, "ns/mnt")) != readlink("/proc/self/ns/mnt") {
            self.procs.entry(tid).or_default().other_view = true;
        }
    }

    /// Records a new process `new`, forked by thread `parent` of `ptgid`.
    fn add_process(&mut self, new: pid_t, ptgid: pid_t, parent: pid_t) {
        self.tasks.insert(new, Task::new(new));
        let mut p = self.procs.get(&ptgid).cloned().unwrap_or_default();
        p.ppid = ptgid as u32;
        p.foreign_calls = 0;
        p.io_uring = 0;
        let cwd = if self.procs.contains_key(&ptgid) {
            cwd_of(parent)
        } else {
            cwd_of(new)
        };
        self.sink.emit(
            now_ns(),
            new as u32,
            new as u32,
            0,
            &Event::ProcessStart {
                ppid: ptgid as u32,
                cause: StartCause::Fork,
                realtime_ns: realtime_ns(),
                exe: &p.exe,
                exe_stat: None,
                argv: Args(&p.argv),
                cwd: &cwd,
            },
        );
        self.procs.insert(new, p);
    }

    fn new_task(&mut self, stop: Stopped) {
        let parent = stop.tid();
        let Ok(new) = stop.event_msg() else {
            self.resume(stop, 0);
            return;
        };
        let new = new as pid_t;
        if !self.adopted.remove(&new) && !self.tasks.contains_key(&new) {
            // (A fork event may be a clone with flags too, such as a new mount namespace.)
            let cflags = clone_flags(&stop);
            let ptgid = self.tgid(parent);
            if cflags & libc::CLONE_THREAD as u64 != 0 {
                self.tasks.insert(new, Task::new(ptgid));
            } else {
                self.add_process(new, ptgid, parent);
                if cflags & libc::CLONE_NEWNS as u64 != 0 {
                    self.procs.entry(new).or_default().other_view = true;
                }
            }
            // Its first stop is still to come; resume it then.
            self.expected.insert(new);
        }
        self.resume(stop, 0);
    }

    fn exec(&mut self, stop: Stopped) {
        let tid = stop.tid();
        // The thread that called exec may not be the leader; after exec it
        // is, under the leader's id.
        let former = stop.event_msg().map_or(tid, |f| f as pid_t);
        let mut pending = self.tasks.get_mut(&former).and_then(|t| t.pending.take());
        if pending.is_none() {
            pending = self.tasks.get_mut(&tid).and_then(|t| t.pending.take());
        }
        if former != tid {
            self.tasks.remove(&former);
        }
        self.tasks.insert(tid, Task::new(tid));
        let (path, argv, mut flags) = match pending {
            Some(Pending::Exec { path, argv, flags }) => (path, argv, flags),
            _ => {
                let argv = std::fs::read(proc_path(tid, "cmdline")).unwrap_or_default();
                (Vec::new(), argv, 0)
            }
        };
        let exe_link = proc_path(tid, "exe");
        let exe = readlink(&exe_link).unwrap_or_else(|| path.clone());
        let exe_stat = stat(exe_link.as_bytes());
        let cwd = cwd_of(tid);
        let path = if path.is_empty() { exe.clone() } else { path };
        let exec_flags = if privileges_dropped(tid) {
            tracer_wire::exec_flags::PRIVILEGE_DROPPED
        } else {
            0
        };
        self.emit(
            tid,
            flags,
            &Event::Exec {
                result: 0,
                flags: exec_flags,
                path: &path,
                argv: Args(&argv),
            },
        );
        flags &= FLAG_ARGV_TRUNCATED;
        let ppid = self.procs.get(&tid).map_or(0, |p| p.ppid);
        self.sink.emit(
            now_ns(),
            tid as u32,
            tid as u32,
            flags,
            &Event::ProcessStart {
                ppid,
                cause: StartCause::Exec,
                realtime_ns: realtime_ns(),
                exe: &exe,
                exe_stat,
                argv: Args(&argv),
                cwd: &cwd,
            },
        );
        let p = self.procs.entry(tid).or_default();
        p.exe = exe;
        p.argv = argv;
        stop.cont(0);
    }

    /// Reads the path argument at `addr` and makes it absolute against
    /// `dirfd` (or the cwd for `AT_FDCWD`). None when it cannot be read, in
    /// which case the kernel fails the call with EFAULT too.
    fn path_at(&mut self, stop: &Stopped, dirfd: i32, addr: u64) -> Option<(Vec<u8>, bool)> {
        let Read { bytes, truncated } = stop.read_cstr(addr, PATH_MAX).ok()?;
        if bytes.starts_with(b"/") {
            return Some((bytes, truncated));
        }
        let tid = stop.tid();
        let base = if dirfd == libc::AT_FDCWD {
            cwd_of(tid)
        } else {
            fd_path(tid, dirfd)?
        };
        Some((join(&base, &bytes), truncated))
    }

    fn seccomp(&mut self, stop: Stopped) {
        let tid = stop.tid();
        // A task we never saw created (cannot happen with the options set)
        // is adopted as its own process.
        self.tasks.entry(tid).or_insert_with(|| Task::new(tid));
        let Ok(info) = stop.syscall_info() else {
            self.resume(stop, 0);
            return;
        };
        if info.op != libc::PTRACE_SYSCALL_INFO_SECCOMP {
            self.resume(stop, 0);
            return;
        }
        // SAFETY: op says the seccomp member is the one filled in.
        let sc = unsafe { info.u.seccomp };
        if sc.ret_data as u16 == DATA_FOREIGN || info.arch != AUDIT_ARCH_X86_64 {
            let tgid = self.tgid(tid);
            self.procs.entry(tgid).or_default().foreign_calls += 1;
            self.resume(stop, 0);
            return;
        }
        let nr = sc.nr as libc::c_long;
        if VIEW_CHANGES.contains(&nr) {
            let tgid = self.tgid(tid);
            self.procs.entry(tgid).or_default().other_view = true;
        }
        let mut pending = self.decode(&stop, nr, &sc.args);
        if let Some(p) = &pending {
            if self.read_at_entry(tid, p) {
                pending = None;
            } else {
                self.keep_content(tid, p);
                if self.name_at_entry(tid, p) {
                    pending = None;
                }
            }
        }
        if let Some(t) = self.tasks.get_mut(&tid) {
            t.pending = pending;
        }
        self.resume(stop, 0);
    }

    /// Turns a call stopped at entry into what to report at its exit.
    fn decode(&mut self, stop: &Stopped, nr: libc::c_long, a: &[u64; 6]) -> Option<Pending> {
        use libc::AT_FDCWD as CWD;
        let fd = |v: u64| v as i32;
        let open = |s: &mut Self, dirfd, addr, flags: i32, mode: u32| {
            let (path, trunc) = s.path_at(stop, dirfd, addr)?;
            Some(Pending::Open {
                path,
                flags,
                mode,
                trunc,
            })
        };
        let two = |s: &mut Self, d1, p1, d2, p2| {
            let (old, t1) = s.path_at(stop, d1, p1)?;
            let (new, t2) = s.path_at(stop, d2, p2)?;
            Some((old, new, t1 || t2))
        };
        match nr {
            libc::SYS_open => open(self, CWD, a[0], a[1] as i32, a[2] as u32),
            libc::SYS_openat => open(self, fd(a[0]), a[1], a[2] as i32, a[3] as u32),
            libc::SYS_creat => open(
                self,
                CWD,
                a[0],
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                a[1] as u32,
            ),
            libc::SYS_openat2 => {
                // struct open_how { u64 flags; u64 mode; u64 resolve; }
                let mut how = [0u8; 16];
                stop.read_exact(a[2], &mut how).ok()?;
                let flags = u64::from_ne_bytes(how[..8].try_into().ok()?) as i32;
                let mode = u64::from_ne_bytes(how[8..].try_into().ok()?) as u32;
                open(self, fd(a[0]), a[1], flags, mode)
            }
            libc::SYS_open_by_handle_at => Some(Pending::OpenHandle { flags: a[2] as i32 }),
            libc::SYS_rename => {
                let (old, new, trunc) = two(self, CWD, a[0], CWD, a[1])?;
                Some(Pending::Rename {
                    old,
                    new,
                    flags: 0,
                    trunc,
                })
            }
            libc::SYS_renameat | libc::SYS_renameat2 => {
                let (old, new, trunc) = two(self, fd(a[0]), a[1], fd(a[2]), a[3])?;
                let flags = if nr == libc::SYS_renameat2 {
                    a[4] as u32
                } else {
                    0
                };
                Some(Pending::Rename {
                    old,
                    new,
                    flags,
                    trunc,
                })
            }
            libc::SYS_link => {
                let (old, new, trunc) = two(self, CWD, a[0], CWD, a[1])?;
                Some(Pending::Link { old, new, trunc })
            }
            libc::SYS_linkat => {
                let (old, new, trunc) = two(self, fd(a[0]), a[1], fd(a[2]), a[3])?;
                Some(Pending::Link { old, new, trunc })
            }
            libc::SYS_symlink | libc::SYS_symlinkat => {
                let target = stop.read_cstr(a[0], PATH_MAX).ok()?;
                let (dirfd, addr) = if nr == libc::SYS_symlink {
                    (CWD, a[1])
                } else {
                    (fd(a[1]), a[2])
                };
                let (link, trunc) = self.path_at(stop, dirfd, addr)?;
                Some(Pending::Symlink {
                    target: target.bytes,
                    link,
                    trunc: trunc || target.truncated,
                })
            }
            libc::SYS_unlink | libc::SYS_rmdir => {
                let (path, trunc) = self.path_at(stop, CWD, a[0])?;
                Some(Pending::Unlink {
                    path,
                    dir: nr == libc::SYS_rmdir,
                    trunc,
                })
            }
            libc::SYS_unlinkat => {
                let (path, trunc) = self.path_at(stop, fd(a[0]), a[1])?;
                Some(Pending::Unlink {
                    path,
                    dir: a[2] as i32 & libc::AT_REMOVEDIR != 0,
                    trunc,
                })
            }
            libc::SYS_truncate => {
                let (path, trunc) = self.path_at(stop, CWD, a[0])?;
                Some(Pending::Truncate {
                    path,
                    length: a[1],
                    trunc,
                })
            }
            libc::SYS_ftruncate => Some(Pending::Truncate {
                path: fd_path(stop.tid(), fd(a[0]))?,
                length: a[1],
                trunc: false,
            }),
            libc::SYS_mkdir => {
                let (path, trunc) = self.path_at(stop, CWD, a[0])?;
                Some(Pending::Mkdir {
                    path,
                    mode: a[1] as u32,
                    trunc,
                })
            }
            libc::SYS_mkdirat => {
                let (path, trunc) = self.path_at(stop, fd(a[0]), a[1])?;
                Some(Pending::Mkdir {
                    path,
                    mode: a[2] as u32,
                    trunc,
                })
            }
            libc::SYS_execve | libc::SYS_execveat => {
                let (dirfd, addr, argv_at) = if nr == libc::SYS_execve {
                    (CWD, a[0], a[1])
                } else {
                    (fd(a[0]), a[1], a[2])
                };
                let (path, trunc) = self.path_at(stop, dirfd, addr)?;
                let argv = stop.read_argv(argv_at).ok()?;
                let mut flags = 0;
                if trunc {
                    flags |= FLAG_PATH_TRUNCATED;
                }
                if argv.truncated {
                    flags |= FLAG_ARGV_TRUNCATED;
                }
                Some(Pending::Exec {
                    path,
                    argv: argv.bytes,
                    flags,
                })
            }
            libc::SYS_copy_file_range | libc::SYS_splice => self.write_fd(stop.tid(), fd(a[2])),
            libc::SYS_sendfile => self.write_fd(stop.tid(), fd(a[0])),
            libc::SYS_io_uring_setup => {
                let tgid = self.tgid(stop.tid());
                self.procs.entry(tgid).or_default().io_uring += 1;
                None
            }
            _ => None,
        }
    }

    /// A read-only open is reported at its entry, with no stop at its exit
    /// (half the stops of a program that reads many files): the file at its
    /// path, stat'ed now, is what the kernel is about to open. False when
    /// the open must be seen at its exit: it may create, empty or write a
    /// file, its path was cut, or the process may see another filesystem.
    ///
    /// The documented differences: an open of an existing file that fails
    /// anyway (EMFILE; EACCES for a tracee whose credentials differ from
    /// roar's as root) counts as a read, and a file replaced by another
    /// process between this stat and the open is seen as it was.
    fn read_at_entry(&mut self, tid: pid_t, p: &Pending) -> bool {
        let Pending::Open {
            path,
            flags,
            mode,
            trunc: false,
        } = p
        else {
            return false;
        };
        let writes = libc::O_CREAT | libc::O_TRUNC | libc::O_TMPFILE;
        if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & writes != 0 {
            return false;
        }
        if self.procs.get(&self.tgid(tid)).is_none_or(|p| p.other_view) {
            return false;
        }
        let (result, stat) = match entry_stat(path, *flags) {
            Ok(st) => (0, Some(st)),
            Err(e) => (-e, None),
        };
        if let Some(st) = stat
            && st.is_regular()
        {
            self.read.entry((st.dev, st.ino)).or_insert(st);
        }
        let ev = Event::Open {
            flags: *flags,
            mode: *mode,
            result,
            stat,
            path,
        };
        self.emit(tid, FLAG_RESULT_AT_ENTRY, &ev);
        true
    }

    /// unlink, rmdir, mkdir and symlink are reported at their entry, with
    /// no stop at their exit (a third of postmark's stops): what they change
    /// is a name, which the analysis takes from the opens and renames and
    /// from the tree as it is after the run; their result is only a
    /// prediction from what is at the path now (an rmdir of a directory
    /// that is not empty is predicted to succeed). False when the call
    /// must be seen at its exit (its path was cut, or the process may see
    /// another filesystem).
    fn name_at_entry(&mut self, tid: pid_t, p: &Pending) -> bool {
        if self.procs.get(&self.tgid(tid)).is_none_or(|p| p.other_view) {
            return false;
        }
        let kind = |path: &[u8]| lstat_kind(path).map_err(|e| -e);
        let ev = match p {
            Pending::Unlink {
                path,
                dir,
                trunc: false,
            } => {
                let result = match kind(path) {
                    Ok(libc::S_IFDIR) if !dir => -libc::EISDIR,
                    Ok(k) if *dir && k != libc::S_IFDIR => -libc::ENOTDIR,
                    Ok(_) => 0,
                    Err(e) => e,
                };
                Event::Unlink {
                    result,
                    dir: *dir,
                    path,
                }
            }
            Pending::Mkdir {
                path,
                mode,
                trunc: false,
            } => Event::Mkdir {
                result: if kind(path).is_ok() { -libc::EEXIST } else { 0 },
                mode: *mode,
                path,
            },
            Pending::Symlink {
                target,
                link,
                trunc: false,
            } => Event::Symlink {
                result: if kind(link).is_ok() { -libc::EEXIST } else { 0 },
                target,
                link,
            },
            _ => return false,
        };
        self.emit(tid, FLAG_RESULT_AT_ENTRY, &ev);
        true
    }

    /// A call that writes into file `fd` (copy_file_range, sendfile, splice)
    /// is reported at its entry, with no stop at its exit (cp makes two per
    /// file: a third of its stops), when `fd` is open for writing (else the
    /// call fails with EBADF). The documented difference: such a call that
    /// fails anyway (ENOSPC, EXDEV) still counts as a write.
    fn write_fd(&mut self, tid: pid_t, fd: i32) -> Option<Pending> {
        if open_for_writing(tid, fd)
            && let Some(path) = fd_path(tid, fd)
        {
            self.emit(tid, 0, &Event::Write { path: &path });
        }
        None
    }

    fn syscall_exit(&mut self, stop: Stopped) {
        let tid = stop.tid();
        let Some(pending) = self.tasks.get_mut(&tid).and_then(|t| t.pending.take()) else {
            stop.cont(0);
            return;
        };
        let result = match stop.syscall_info() {
            // SAFETY: op says the exit member is the one filled in.
            Ok(i) if i.op == libc::PTRACE_SYSCALL_INFO_EXIT => unsafe { i.u.exit.sval },
            _ => {
                stop.cont(0);
                return;
            }
        };
        let r = result as i32;
        let pt = |t: bool| if t { FLAG_PATH_TRUNCATED } else { 0 };
        match pending {
            Pending::Open {
                path,
                flags,
                mode,
                trunc,
            } => {
                let stat = (r >= 0)
                    .then(|| stat(proc_path(tid, &format!("fd/{r}")).as_bytes()))
                    .flatten();
                let acc = flags & libc::O_ACCMODE;
                if let Some(st) = stat
                    && st.is_regular()
                    && (acc == libc::O_RDONLY || acc == libc::O_RDWR)
                {
                    self.read.entry((st.dev, st.ino)).or_insert(st);
                }
                self.emit(
                    tid,
                    pt(trunc),
                    &Event::Open {
                        flags,
                        mode,
                        result: r,
                        stat,
                        path: &path,
                    },
                );
            }
            Pending::OpenHandle { flags } => {
                if r >= 0
                    && let Some(path) = fd_path(tid, r)
                {
                    let stat = stat(&path);
                    self.emit(
                        tid,
                        0,
                        &Event::Open {
                            flags,
                            mode: 0,
                            result: r,
                            stat,
                            path: &path,
                        },
                    );
                }
            }
            Pending::Rename {
                old,
                new,
                flags,
                trunc,
            } => self.emit(
                tid,
                pt(trunc),
                &Event::Rename {
                    flags,
                    result: r,
                    old: &old,
                    new: &new,
                },
            ),
            Pending::Link { old, new, trunc } => self.emit(
                tid,
                pt(trunc),
                &Event::Link {
                    result: r,
                    old: &old,
                    new: &new,
                },
            ),
            Pending::Symlink {
                target,
                link,
                trunc,
            } => self.emit(
                tid,
                pt(trunc),
                &Event::Symlink {
                    result: r,
                    target: &target,
                    link: &link,
                },
            ),
            Pending::Unlink { path, dir, trunc } => self.emit(
                tid,
                pt(trunc),
                &Event::Unlink {
                    result: r,
                    dir,
                    path: &path,
                },
            ),
            Pending::Truncate {
                path,
                length,
                trunc,
            } => self.emit(
                tid,
                pt(trunc),
                &Event::Truncate {
                    result: r,
                    length,
                    path: &path,
                },
            ),
            Pending::Mkdir { path, mode, trunc } => self.emit(
                tid,
                pt(trunc),
                &Event::Mkdir {
                    result: r,
                    mode,
                    path: &path,
                },
            ),
            Pending::Exec { path, argv, flags } => {
                // Reached only when exec failed: success is an exec event.
                self.emit(
                    tid,
                    flags,
                    &Event::Exec {
                        result: r,
                        flags: 0,
                        path: &path,
                        argv: Args(&argv),
                    },
                );
            }
        }
        stop.cont(0);
    }
}

/// The flags of the clone call `stop` is in (0 when unreadable).
fn clone_flags(stop: &Stopped) -> u64 {
    let Ok(regs) = stop.regs() else { return 0 };
    match regs.orig_rax as libc::c_long {
        libc::SYS_clone => regs.rdi,
        libc::SYS_clone3 => {
            // struct clone_args starts with u64 flags.
            let mut b = [0u8; 8];
            match stop.read_exact(regs.rdi, &mut b) {
                Ok(()) => u64::from_ne_bytes(b),
                Err(_) => 0,
            }
        }
        _ => 0,
    }
}

/// Whether this process may trace a child of its own, and if not why:
/// forks a child that only waits, seizes it, and ends it. For `roar doctor`.
pub fn probe() -> io::Result<()> {
    if let Ok(s) = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        && s.trim() == "3"
    {
        return Err(io::Error::other(
            "ptrace is disabled (kernel.yama.ptrace_scope = 3)",
        ));
    }
    let gate = Gate::new()?;
    // SAFETY: the child only closes, reads and exits (async-signal-safe).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let _ = gate.wait();
        // SAFETY: leaving the forked child without running destructors.
        unsafe { libc::_exit(0) };
    }
    let r = nix::sys::ptrace::seize(nix::unistd::Pid::from_raw(pid), options());
    // SAFETY: ending and reaping our own child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, std::ptr::null_mut(), 0);
    }
    r.map_err(|e| io::Error::from_raw_os_error(e as i32))
}
