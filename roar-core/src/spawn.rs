//! Starting the command exactly as it would run unwrapped, and waiting.
//!
//! We fork by hand rather than use `std::process::Command`: every backend
//! needs a hook between fork and exec (ptrace's TRACEME, eBPF's "wait until
//! my pid is in the map"), the child must keep roar's process group, stdio
//! and signal dispositions, and the exit status must be passed on verbatim.
//! Everything the child touches after `fork` is prepared before it, so the
//! child only calls async-signal-safe functions.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Signals forwarded to the command when someone sends them to roar.
pub const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// A signal set holding `signals`.
pub(crate) fn sigset(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset only write the set they are given; sigset_t is POD.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// How long a command gets between SIGTERM and SIGKILL after `--timeout`.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{0}: command not found")]
    NotFound(String),
    #[error("{0}: permission denied")]
    NotExecutable(String),
    #[error("{0}: {1}")]
    Exec(String, std::io::Error),
    #[error("could not start {0}: {1}")]
    Fork(String, std::io::Error),
    #[error("could not trace {0}: {1}")]
    Attach(String, std::io::Error),
}

impl SpawnError {
    /// The status `env` would exit with.
    pub fn exit_code(&self) -> i32 {
        match self {
            SpawnError::NotFound(_) => 127,
            SpawnError::Exec(_, e) if e.kind() == std::io::ErrorKind::NotFound => 127,
            SpawnError::Attach(..) => crate::error::SETUP_FAILED,
            _ => 126,
        }
    }
}

/// How the command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Code(i32),
    Signal(i32),
}

/// Finds what `execvp` would run for `arg0`.
pub fn resolve(arg0: &OsStr) -> Result<PathBuf, SpawnError> {
    let name = arg0.to_string_lossy().into_owned();
    let check = |p: &Path| -> Option<bool> {
        let md = std::fs::metadata(p).ok()?;
        Some(md.is_file() && md.permissions().mode() & 0o111 != 0)
    };
    if arg0.as_bytes().contains(&b'/') {
        let p = PathBuf::from(arg0);
        return match check(&p) {
            None => Err(SpawnError::Exec(
                name,
                std::io::Error::from_raw_os_error(libc::ENOENT),
            )),
            Some(false) => Err(SpawnError::NotExecutable(name)),
            Some(true) => Ok(p),
        };
    }
    if arg0.is_empty() {
        return Err(SpawnError::NotFound(name));
    }
    let path =
        std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    let mut denied = false;
    for dir in path.as_bytes().split(|b| *b == b':') {
        let dir = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(OsStr::from_bytes(dir))
        };
        let cand = dir.join(arg0);
        match check(&cand) {
            Some(true) => return Ok(cand),
            Some(false) => denied = true,
            None => {}
        }
    }
    Err(if denied {
        SpawnError::NotExecutable(name)
    } else {
        SpawnError::NotFound(name)
    })
}

fn cstr(b: &[u8]) -> CString {
    // Arguments and environment strings from the OS cannot contain NUL.
    CString::new(b.to_vec()).unwrap_or_default()
}

/// A child that was forked and exec'd, blocked signals in roar.
pub struct Child {
    pub pid: libc::pid_t,
    name: String,
    old_mask: libc::sigset_t,
    /// Read end of the exec-error pipe, when [`Hooks::wait_exec`] was false.
    exec_pipe: Option<libc::c_int>,
}

/// What to do in the child between fork and exec (async-signal-safe only).
/// An error is an errno; with [`HOOK_FAILED`] or'ed in, it is reported as a
/// tracing set-up failure rather than as the exec's.
pub type PreExec<'a> = &'a dyn Fn() -> Result<(), libc::c_int>;

/// Marks a [`PreExec`] errno as the tracer's set-up failing in the child.
pub const HOOK_FAILED: libc::c_int = 1 << 30;

/// What a backend needs done around fork.
pub struct Hooks<'a> {
    /// Runs in the child between fork and exec (async-signal-safe only).
    pub child: PreExec<'a>,
    /// Runs in roar right after fork, before the child may exec (a tracer
    /// attaching). An error kills the child and fails the spawn.
    pub parent: &'a mut dyn FnMut(libc::pid_t) -> std::io::Result<()>,
    /// Block until the exec succeeded or failed. A tracer on this thread
    /// must not: the exec itself stops for it. It asks
    /// [`Child::exec_error`] once the command has ended instead.
    pub wait_exec: bool,
}

/// The wake-up signal that ends a [`Forwarder`] (a realtime signal no
/// program sends to roar).
fn wake_signal() -> libc::c_int {
    libc::SIGRTMIN()
}

/// Forks and execs `program` with `args` (args[0] included) and `env`.
///
/// Signals in [`FORWARDED`] and SIGCHLD are blocked in roar from here on so
/// that a [`Forwarder`] thread takes them synchronously; the child gets roar's
/// original mask back.
pub fn spawn(
    program: &Path,
    args: &[OsString],
    env: &[(OsString, OsString)],
    hooks: Hooks<'_>,
) -> Result<Child, SpawnError> {
    let name = args
        .first()
        .map_or_else(String::new, |a| a.to_string_lossy().into_owned());
    let prog = cstr(program.as_os_str().as_bytes());
    let argv_c: Vec<CString> = args.iter().map(|a| cstr(a.as_bytes())).collect();
    let mut argv: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let env_c: Vec<CString> = env
        .iter()
        .map(|(k, v)| {
            let mut kv = k.clone().into_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            cstr(&kv)
        })
        .collect();
    let mut envp: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // ENOEXEC fallback, as execvp does: run it with /bin/sh.
    let sh = cstr(b"/bin/sh");
    let mut sh_argv: Vec<*const libc::c_char> = vec![sh.as_ptr(), prog.as_ptr()];
    sh_argv.extend(argv.iter().skip(1));

    let mut blocked = FORWARDED.to_vec();
    blocked.extend([libc::SIGCHLD, wake_signal()]);
    let set = sigset(&blocked);
    // SAFETY: plain libc calls on locals we own; sigset_t is POD.
    unsafe {
        let mut old_mask: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old_mask);

        let mut fds = [0; 2];
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            let e = std::io::Error::last_os_error();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
            return Err(SpawnError::Fork(name, e));
        }
        let pid = libc::fork();
        if pid < 0 {
            let e = std::io::Error::last_os_error();
            libc::close(fds[0]);
            libc::close(fds[1]);
            libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
            return Err(SpawnError::Fork(name, e));
        }
        if pid == 0 {
            libc::close(fds[0]);
            // Rust ignores SIGPIPE at start-up; programs expect the default.
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            libc::pthread_sigmask(libc::SIG_SETMASK, &old_mask, std::ptr::null_mut());
            let err = match (hooks.child)() {
                Err(e) => e,
                Ok(()) => {
                    libc::execve(prog.as_ptr(), argv.as_ptr(), envp.as_ptr());
                    let mut e = *libc::__errno_location();
                    if e == libc::ENOEXEC {
                        libc::execve(sh.as_ptr(), sh_argv.as_ptr(), envp.as_ptr());
                        e = *libc::__errno_location();
                    }
                    e
                }
            };
            let bytes = err.to_ne_bytes();
            libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127);
        }
        libc::close(fds[1]);
        let mut child = Child {
            pid,
            name: name.clone(),
            old_mask,
            exec_pipe: None,
        };
        if let Err(e) = (hooks.parent)(pid) {
            libc::kill(pid, libc::SIGKILL);
            libc::close(fds[0]);
            let _ = child.reap();
            child.restore_mask();
            return Err(SpawnError::Attach(name, e));
        }
        if !hooks.wait_exec {
            child.exec_pipe = Some(fds[0]);
            return Ok(child);
        }
        match read_exec_error(fds[0]) {
            None => Ok(child),
            Some(errno) => {
                let _ = child.reap();
                child.restore_mask();
                Err(exec_failure(name, errno))
            }
        }
    }
}

/// Reads the errno a failed exec left in the pipe (closes it). None when
/// the exec succeeded (the close-on-exec pipe closed empty).
fn read_exec_error(fd: libc::c_int) -> Option<i32> {
    let mut buf = [0u8; 4];
    // SAFETY: reading into a local buffer from our pipe, then closing it.
    let n = unsafe {
        let n = loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), 4);
            if !(n < 0 && *libc::__errno_location() == libc::EINTR) {
                break n;
            }
        };
        libc::close(fd);
        n
    };
    (n == 4).then(|| i32::from_ne_bytes(buf))
}

fn exec_failure(name: String, errno: i32) -> SpawnError {
    if errno & HOOK_FAILED != 0 {
        return SpawnError::Attach(
            name,
            std::io::Error::from_raw_os_error(errno & !HOOK_FAILED),
        );
    }
    match errno {
        libc::EACCES => SpawnError::NotExecutable(name),
        _ => SpawnError::Exec(name, std::io::Error::from_raw_os_error(errno)),
    }
}

/// Who forwarded signals go to, asked each time one is sent.
pub type Targets = std::sync::Arc<dyn Fn() -> Vec<libc::pid_t> + Send + Sync>;

/// Forwards the signals in [`FORWARDED`] sent to roar, and applies a
/// timeout, to the command, on a thread of its own, until stopped.
pub struct Forwarder {
    thread: Option<std::thread::JoinHandle<bool>>,
}

impl Forwarder {
    /// Starts forwarding to `targets`. The signals must already be blocked
    /// (as [`spawn`] leaves them), so that only this thread takes them.
    pub fn start(targets: Targets, timeout: Option<Duration>) -> Forwarder {
        let thread = std::thread::Builder::new()
            .name("roar-signals".into())
            .spawn(move || forward(&*targets, timeout))
            .ok();
        Forwarder { thread }
    }

    /// Stops forwarding; returns whether the timeout fired.
    pub fn stop(mut self) -> bool {
        let Some(t) = self.thread.take() else {
            return false;
        };
        // SAFETY: signalling our own thread, which is alive until it sees it.
        unsafe {
            use std::os::unix::thread::JoinHandleExt;
            libc::pthread_kill(t.as_pthread_t(), wake_signal());
        }
        t.join().unwrap_or(false)
    }
}

fn forward(targets: &dyn Fn() -> Vec<libc::pid_t>, timeout: Option<Duration>) -> bool {
    let send = |sig| {
        for pid in targets() {
            // SAFETY: kill(2) on a process of the command.
            unsafe { libc::kill(pid, sig) };
        }
    };
    let start = Instant::now();
    let mut timed_out = false;
    let mut kill_at: Option<Instant> = None;
    let mut waited = FORWARDED.to_vec();
    waited.push(wake_signal());
    let set = sigset(&waited);
    let me = std::process::id() as libc::pid_t;
    loop {
        let deadline = match (timeout, kill_at) {
            (_, Some(k)) => Some(k),
            (Some(t), None) => Some(start + t),
            (None, None) => None,
        };
        let wait_for = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if let Some(w) = wait_for
            && w.is_zero()
        {
            if kill_at.is_none() {
                timed_out = true;
                send(libc::SIGTERM);
                kill_at = Some(Instant::now() + KILL_GRACE);
            } else {
                send(libc::SIGKILL);
                kill_at = Some(Instant::now() + Duration::from_secs(3600));
            }
            continue;
        }
        // SAFETY: siginfo_t and timespec are POD; the set is ours.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let w = wait_for.unwrap_or(Duration::from_secs(3600));
            let ts = libc::timespec {
                tv_sec: w.as_secs() as libc::time_t,
                tv_nsec: w.subsec_nanos() as libc::c_long,
            };
            let sig = libc::sigtimedwait(&set, &mut info, &ts);
            if sig == wake_signal() && info.si_pid() == me {
                return timed_out;
            }
            // A terminal's ^C reaches the whole process group already
            // (si_code SI_KERNEL); forward only what was sent to us.
            if sig > 0 && sig != wake_signal() && info.si_code <= 0 {
                send(sig);
            }
        }
    }
}

impl Child {
    /// Waits for the command, forwarding signals sent to roar and applying
    /// the timeout. Returns how it ended and whether the timeout fired.
    pub fn wait(&self, timeout: Option<Duration>) -> (Ended, bool) {
        let pid = self.pid;
        let fwd = Forwarder::start(std::sync::Arc::new(move || vec![pid]), timeout);
        let ended = self.reap();
        (ended, fwd.stop())
    }

    /// Blocks until the command has ended and returns how.
    fn reap(&self) -> Ended {
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child with a valid out pointer.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                if libc::WIFEXITED(status) {
                    return Ended::Code(libc::WEXITSTATUS(status));
                }
                if libc::WIFSIGNALED(status) {
                    return Ended::Signal(libc::WTERMSIG(status));
                }
            } else if r < 0
                && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
            {
                // Already reaped elsewhere: nothing more to learn.
                return Ended::Code(255);
            }
        }
    }

    /// After the command ended: the exec failure it reported, if its exec
    /// failed (only for spawns that did not wait for the exec).
    pub fn exec_error(&mut self) -> Option<SpawnError> {
        let fd = self.exec_pipe.take()?;
        read_exec_error(fd).map(|errno| exec_failure(self.name.clone(), errno))
    }

    /// Gives roar its original signal mask back.
    pub fn restore_mask(&self) {
        // SAFETY: restoring a mask we saved.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.old_mask, std::ptr::null_mut()) };
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(fd) = self.exec_pipe.take() {
            // SAFETY: closing our pipe fd.
            unsafe { libc::close(fd) };
        }
    }
}

/// Puts the calling thread at SCHED_IDLE: it runs only on CPU nothing else
/// wants. False when refused (it then stays at normal priority).
pub fn idle_priority() -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
}

/// Gives thread `tid` of this process normal priority back. Leaving
/// SCHED_IDLE takes root or CAP_SYS_NICE: false when refused.
pub fn normal_priority(tid: i32) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; a tid that is gone gives ESRCH.
    unsafe { libc::sched_setscheduler(tid, libc::SCHED_OTHER, &param) == 0 }
}

/// The calling thread's id.
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// The fields of `/proc/PID/stat` after the command name, the state first
/// (the name may hold spaces and parentheses, so they follow the last `)`);
/// None when the process is gone.
pub(crate) fn proc_stat(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(stat[stat.rfind(')')? + 1..].to_owned())
}

/// Ends roar the way the command ended: same code, or death by the same signal.
pub fn exit_like(ended: Ended) -> ! {
    match ended {
        Ended::Code(c) => std::process::exit(c),
        Ended::Signal(sig) => {
            // SAFETY: resetting our own disposition and raising; no core file
            // of roar's should appear where the command's would.
            unsafe {
                let rl = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &rl);
                libc::signal(sig, libc::SIG_DFL);
                let set = sigset(&[sig]);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(sig);
            }
            std::process::exit(128 + sig)
        }
    }
}
