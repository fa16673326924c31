//! Running OpenJD actions in a Docker or Podman container under `roar run`: the session's
//! container (start, stop, attach to one the user runs), the host side of each task (a
//! `docker exec` or `docker run` of roar's own entry, with signals forwarded into the
//! container, which `docker exec` does not do), the entry inside it (a pid file for those
//! signals, a status file so the host dies of the same signal, and a watch on its stdin so a
//! host side killed with SIGKILL ends the task), and the container a run ran in.
//!
//! roar and its preload library are bind-mounted read-only at their host paths (the static
//! roar runs in any image); the session directory, the store's directory and the user's
//! mounts are bind-mounted at the same paths, so paths recorded in the container are the
//! host's and lineage joins runs on both sides.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dag::Container;

use crate::error::{Error, Result};

/// The container engine's client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Docker,
    Podman,
}

impl Runtime {
    pub fn parse(s: &str) -> Result<Runtime> {
        match s {
            "docker" => Ok(Runtime::Docker),
            "podman" => Ok(Runtime::Podman),
            other => Err(Error::Invalid(format!(
                "unknown container runtime {other:?}: docker or podman"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Podman => "podman",
        }
    }

    /// The client program: `ROAR_DOCKER` / `ROAR_PODMAN` if set, else the name on PATH.
    fn client(self) -> OsString {
        let var = match self {
            Runtime::Docker => "ROAR_DOCKER",
            Runtime::Podman => "ROAR_PODMAN",
        };
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| self.name().into())
    }

    fn cmd(self) -> Command {
        let mut c = Command::new(self.client());
        c.stdin(Stdio::null());
        c
    }
}

/// How long the container lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    /// One container for the session: started on enter, removed on exit.
    Session,
    /// A fresh `run --rm` per task.
    Task,
    /// One the user runs: attached to, never stopped.
    External,
}

impl Lifetime {
    pub fn parse(s: &str) -> Result<Lifetime> {
        match s {
            "session" => Ok(Lifetime::Session),
            "task" => Ok(Lifetime::Task),
            "external" => Ok(Lifetime::External),
            other => Err(Error::Invalid(format!(
                "unknown container lifetime {other:?}: session, task or external"
            ))),
        }
    }
}

/// What the template says about the container.
#[derive(Clone, Debug)]
pub struct Spec {
    pub runtime: Runtime,
    pub image: String,
    pub lifetime: Lifetime,
    /// The container's name; empty: `roar-<session id>` (the session directory's name).
    pub name: String,
    /// `SRC:DST[:OPTIONS]`, as `-v` takes them.
    pub mounts: Vec<String>,
    /// More arguments for `docker run` (`--network none`, `--gpus all`, ...).
    pub run_args: Vec<String>,
    /// The store the runs go to; its directory is mounted.
    pub db: PathBuf,
}

/// What the user sees when the container side cannot be set up: exit status 125, as
/// `docker run` uses for its own failures.
fn setup(msg: String) -> Error {
    Error::setup(125, msg)
}

impl Spec {
    /// The container's name for the session whose directory is `session_dir`.
    pub fn container_name(&self, session_dir: &Path) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        let id = session_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "session".into());
        let clean: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        format!("roar-{clean}")
    }

    /// Bind mounts: roar `exe` and its library `lib` (read-only), the session directory, the
    /// store's directory, and the user's, each at its host path.
    fn volumes(&self, session_dir: &Path, exe: &Path, lib: &Path) -> Result<Vec<String>> {
        let store_dir = self
            .db
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        std::fs::create_dir_all(&store_dir).map_err(|e| {
            setup(format!(
                "cannot create the store's directory {}: {e}",
                store_dir.display()
            ))
        })?;
        let same =
            |p: &Path, ro: bool| format!("{0}:{0}{1}", p.display(), if ro { ":ro" } else { "" });
        let mut v = vec![
            same(exe, true),
            same(lib.parent().unwrap_or(Path::new("/")), true),
            same(session_dir, false),
        ];
        if !session_dir.starts_with(&store_dir) {
            v.push(same(&store_dir, false));
        }
        v.extend(self.mounts.iter().cloned());
        Ok(v)
    }
}

/// This roar and its preload library, as absolute paths.
fn roar_files() -> Result<(PathBuf, PathBuf)> {
    let exe = std::env::current_exe()
        .and_then(std::fs::canonicalize)
        .map_err(|e| setup(format!("cannot find roar's own executable: {e}")))?;
    let lib = crate::backend::preload::find_library().map_err(setup)?;
    Ok((exe, lib))
}

fn run_client(mut cmd: Command, what: &str) -> Result<String> {
    let out = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .output()
        .map_err(|e| {
            setup(format!(
                "cannot run {}: {e}",
                cmd.get_program().to_string_lossy()
            ))
        })?;
    if !out.status.success() {
        return Err(setup(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The id of `image` as the engine has it now.
fn image_id(rt: Runtime, image: &str) -> Result<String> {
    let mut c = rt.cmd();
    c.args(["image", "inspect", "--format", "{{.Id}}", image]);
    run_client(c, &format!("{} image inspect {image}", rt.name()))
}

/// A running container's (id, image id, image name), or why it cannot be used.
fn inspect(rt: Runtime, name: &str) -> Result<(String, String, String, bool)> {
    let mut c = rt.cmd();
    let image_name = match rt {
        Runtime::Docker => "{{.Config.Image}}",
        Runtime::Podman => "{{.ImageName}}",
    };
    c.args([
        "container",
        "inspect",
        "--format",
        &format!("{{{{.Id}}}} {{{{.Image}}}} {{{{.State.Running}}}} {image_name}"),
        name,
    ]);
    let line = run_client(c, &format!("{} container inspect {name}", rt.name()))?;
    let mut f = line.split_whitespace();
    let (Some(id), Some(img), Some(running)) = (f.next(), f.next(), f.next()) else {
        return Err(setup(format!("cannot read what {name} is: {line:?}")));
    };
    let img_name = f.next().unwrap_or("").to_owned();
    Ok((id.to_owned(), img.to_owned(), img_name, running == "true"))
}

/// `onEnter`: for `session`, starts the container (roar's idle entry as its pid 1); for
/// `external`, checks the named one is running the image asked for with roar visible in it;
/// for `task`, checks the image is there. Says what it did on stderr (never an `openjd_` line).
pub fn enter(spec: &Spec, session_dir: &Path) -> Result<String> {
    let rt = spec.runtime;
    let name = spec.container_name(session_dir);
    match spec.lifetime {
        Lifetime::Task => {
            let id = image_id(rt, &spec.image)?;
            Ok(format!(
                "each task runs in a new {} container of {} ({id})",
                rt.name(),
                spec.image
            ))
        }
        Lifetime::External => {
            let (id, img, img_name, running) = inspect(rt, &name)?;
            if !running {
                return Err(setup(format!(
                    "the container {name} is not running: start it, or use --lifetime session"
                )));
            }
            let want = image_id(rt, &spec.image)?;
            if want != img {
                return Err(setup(format!(
                    "the container {name} runs {img_name} ({img}), not {} ({want})",
                    spec.image
                )));
            }
            let (exe, lib) = roar_files()?;
            let mut probe = rt.cmd();
            probe.args(["exec", &name]).arg(&exe).arg("--version");
            run_client(probe, &format!("roar in {name}")).map_err(|e| {
                setup(format!(
                    "{e}: roar is not visible in {name}; start it with {}",
                    spec.volumes(session_dir, &exe, &lib)
                        .unwrap_or_default()
                        .iter()
                        .map(|v| format!("-v {v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ))
            })?;
            Ok(format!(
                "attached to the running container {name} ({id:.12})"
            ))
        }
        Lifetime::Session => {
            let (exe, lib) = roar_files()?;
            // A container of this name left by a session that was killed: replace it.
            let mut rm = rt.cmd();
            rm.args(["rm", "-f", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = rm.status();
            let mut c = rt.cmd();
            c.args(["run", "-d", "--name", &name, "--label", "roar.session=1"]);
            for v in spec.volumes(session_dir, &exe, &lib)? {
                c.args(["-v", &v]);
            }
            c.args(&spec.run_args)
                .arg("--entrypoint")
                .arg(&exe)
                .arg(&spec.image)
                .args(["openjd", "container", "idle"]);
            let id = run_client(c, &format!("{} run {}", rt.name(), spec.image))?;
            Ok(format!(
                "started {} container {name} ({:.12}) of {}",
                rt.name(),
                id,
                spec.image
            ))
        }
    }
}

/// `onExit`: removes the session's container (whatever the tasks did); leaves an external
/// one running. Returns what it did.
pub fn exit(spec: &Spec, session_dir: &Path) -> Result<String> {
    let name = spec.container_name(session_dir);
    if spec.lifetime != Lifetime::Session {
        return Ok(String::new());
    }
    let mut c = spec.runtime.cmd();
    match spec.runtime {
        Runtime::Podman => {
            c.args(["rm", "-f", "-t", "2", &name]);
        }
        Runtime::Docker => {
            // docker rm has no -t; stop first so the container's processes get SIGTERM.
            let mut stop = spec.runtime.cmd();
            stop.args(["stop", "-t", "2", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = stop.status();
            c.args(["rm", "-f", &name]);
        }
    }
    run_client(c, &format!("{} rm {name}", spec.runtime.name()))?;
    Ok(format!("removed the container {name}"))
}

/// What the host side passes to the entry: where the pid and status files go.
struct Files {
    pid: PathBuf,
    status: PathBuf,
}

impl Files {
    fn new(session_dir: &Path) -> Files {
        let dir = session_dir.join(".roar-container");
        let _ = std::fs::create_dir_all(&dir);
        let tag = format!("{}-{}", std::process::id(), crate::time::now_ms());
        Files {
            pid: dir.join(format!("{tag}.pid")),
            status: dir.join(format!("{tag}.status")),
        }
    }
}

/// One action to run in the container: the roar arguments the entry runs there (`run ...`
/// or `openjd env-action ...`), and the session-defined variables (`K=V`).
pub struct Action {
    pub roar_args: Vec<OsString>,
    pub env: Vec<OsString>,
}

/// The host side of one action: runs it in the container, forwards SIGTERM, SIGINT, SIGHUP,
/// SIGQUIT, SIGUSR1 and SIGUSR2 into it, and ends as it ended (the same exit status, or
/// death by the same signal). Never returns.
pub fn run_action(
    spec: &Spec,
    session_dir: &Path,
    action: Action,
) -> Result<std::convert::Infallible> {
    let rt = spec.runtime;
    let (exe, lib) = roar_files()?;
    let files = Files::new(session_dir);
    let cwd = std::env::current_dir()
        .map_err(|e| setup(format!("cannot read the current directory: {e}")))?;
    let (name, context) = match spec.lifetime {
        Lifetime::Task => {
            let id = image_id(rt, &spec.image)?;
            let name = format!(
                "{}-task-{}",
                spec.container_name(session_dir),
                crate::time::now_ms() % 100_000_000
            );
            (name, (spec.image.clone(), id, String::new()))
        }
        _ => {
            let name = spec.container_name(session_dir);
            let (id, img, _, running) = inspect(rt, &name)?;
            if !running {
                return Err(setup(format!(
                    "the session's container {name} is not running (it stopped or was removed)"
                )));
            }
            (name, (spec.image.clone(), img, id))
        }
    };
    let context = format!("{}\t{}\t{}\t{}", rt.name(), context.0, context.1, context.2);
    let mut c = Command::new(rt.client());
    match spec.lifetime {
        Lifetime::Task => {
            c.args(["run", "--rm", "-i", "--name", &name]);
            for v in spec.volumes(session_dir, &exe, &lib)? {
                c.args(["-v", &v]);
            }
            c.args(&spec.run_args).arg("--entrypoint").arg(&exe);
        }
        _ => {
            c.args(["exec", "-i"]);
        }
    }
    c.arg("-w").arg(&cwd);
    let mut env: Vec<OsString> = action.env;
    for (k, v) in std::env::vars_os() {
        if k.as_bytes().starts_with(b"OPENJD_") {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            env.push(kv);
        }
    }
    for kv in &env {
        c.arg("-e").arg(kv);
    }
    if spec.lifetime == Lifetime::Task {
        c.arg(&spec.image);
    } else {
        c.arg(&name).arg(&exe);
    }
    c.args(["openjd", "container", "entry", "--pid-file"])
        .arg(&files.pid)
        .arg("--status-file")
        .arg(&files.status)
        .arg("--context")
        .arg(&context)
        .arg("--")
        .args(&action.roar_args);
    host_side(rt, &name, &exe, c, &files)
}

/// Signals the host side forwards into the container: those `roar run` forwards.
use crate::spawn::{FORWARDED, sigset};

/// Blocks `signals` in this thread (and the threads it starts), so one thread can wait for
/// them with `sigwait`.
fn block(signals: &[libc::c_int]) {
    let set = sigset(signals);
    // SAFETY: changes only this thread's signal mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

fn sigwait(signals: &[libc::c_int]) -> libc::c_int {
    let set = sigset(signals);
    let mut sig = 0;
    // SAFETY: waits for one of the blocked signals in `set`.
    unsafe {
        libc::sigwait(&set, &mut sig);
    }
    sig
}

fn host_side(
    rt: Runtime,
    name: &str,
    exe: &Path,
    mut c: Command,
    files: &Files,
) -> Result<std::convert::Infallible> {
    block(&FORWARDED);
    // The child's stdin is a pipe this process holds open and never writes: when this
    // process dies (even of SIGKILL) the entry in the container sees its end and stops.
    // The client is in a process group of its own, so a signal to this one's group (the
    // Rust runtime signals the group) is forwarded once, by this process, and the client
    // stays to carry the task's output and status to the end.
    c.stdin(Stdio::piped()).process_group(0);
    let mut child = c
        .spawn()
        .map_err(|e| setup(format!("cannot run {}: {e}", rt.client().to_string_lossy())))?;
    let _hold = child.stdin.take();
    {
        let (name, exe, pid_file) = (name.to_owned(), exe.to_owned(), files.pid.clone());
        std::thread::spawn(move || {
            loop {
                let sig = sigwait(&FORWARDED);
                let mut k = rt.cmd();
                k.args(["exec", &name])
                    .arg(&exe)
                    .args(["openjd", "container", "signal", "--pid-file"])
                    .arg(&pid_file)
                    .arg(format!("--signal={sig}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                let _ = k.status();
            }
        });
    }
    let status = child
        .wait()
        .map_err(|e| setup(format!("cannot wait for {}: {e}", rt.name())))?;
    let ended = std::fs::read_to_string(&files.status).ok();
    let _ = std::fs::remove_file(&files.pid);
    let _ = std::fs::remove_file(&files.status);
    match ended.as_deref().map(str::trim) {
        Some(s) if s.starts_with("signal ") => {
            let sig: i32 = s[7..].parse().unwrap_or(libc::SIGKILL);
            crate::spawn::exit_like(crate::spawn::Ended::Signal(sig))
        }
        Some(s) if s.starts_with("exit ") => std::process::exit(s[5..].parse().unwrap_or(1)),
        _ => {
            // The entry never ran or never finished: the engine's own status is all there is.
            eprintln!(
                "roar: the action did not finish in the container {name} ({} exited with {status})",
                rt.name()
            );
            std::process::exit(status.code().unwrap_or(125))
        }
    }
}

/// `roar openjd container entry`, inside the container: writes its pid, runs roar with
/// `args` (stdin /dev/null), forwards signals to it, stops it when its own stdin ends (the
/// host side is gone), writes how it ended and ends the same way.
pub fn entry(
    pid_file: &Path,
    status_file: &Path,
    context: &str,
    args: &[OsString],
) -> Result<std::convert::Infallible> {
    block(&FORWARDED);
    std::fs::write(pid_file, std::process::id().to_string())
        .map_err(|e| setup(format!("cannot write {}: {e}", pid_file.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| setup(format!("cannot find roar's own executable: {e}")))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env("ROAR_CONTAINER_CONTEXT", context)
        .stdin(Stdio::null());
    // SAFETY: the pre-exec hook only calls pthread_sigmask, async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let set = sigset(&FORWARDED);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| setup(format!("cannot start roar in the container: {e}")))?;
    let pid = child.id() as libc::pid_t;
    std::thread::spawn(move || {
        loop {
            let sig = sigwait(&FORWARDED);
            // SAFETY: signals our own child.
            unsafe { libc::kill(pid, sig) };
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        // The host side is gone: stop roar (it records what it saw), then make sure.
        // SAFETY: signals our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        std::thread::sleep(Duration::from_secs(3));
        // SAFETY: as above; roar exits as soon as `wait` returns, so the pid is not reused
        // while this thread lives.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let status = child
        .wait()
        .map_err(|e| setup(format!("cannot wait for roar in the container: {e}")))?;
    let (line, ended) = match (status.code(), status.signal()) {
        (Some(c), _) => (format!("exit {c}\n"), crate::spawn::Ended::Code(c)),
        (None, Some(s)) => (format!("signal {s}\n"), crate::spawn::Ended::Signal(s)),
        _ => ("exit 1\n".to_owned(), crate::spawn::Ended::Code(1)),
    };
    let _ = std::fs::write(status_file, line);
    let _ = std::fs::remove_file(pid_file);
    crate::spawn::exit_like(ended)
}

/// `roar openjd container signal`: sends `sig` to the entry whose pid is in `pid_file`.
pub fn signal(pid_file: &Path, sig: i32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    // The entry may not have written it yet.
    let pid = loop {
        match std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<libc::pid_t>().ok())
        {
            Some(p) => break p,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            None => {
                return Err(setup(format!(
                    "no process to signal: {} is missing",
                    pid_file.display()
                )));
            }
        }
    };
    // SAFETY: kill(2) with a pid read from our own file.
    if unsafe { libc::kill(pid, sig) } != 0 {
        return Err(setup(format!(
            "cannot signal {pid}: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

/// `roar openjd container idle`: the session container's pid 1. Reaps what is left to it
/// and ends on SIGTERM, SIGINT or SIGHUP.
pub fn idle() -> ! {
    let stop = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD];
    block(&stop);
    loop {
        let sig = sigwait(&stop);
        if sig == libc::SIGCHLD {
            // SAFETY: reaps any exited child without blocking.
            while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
            continue;
        }
        std::process::exit(0);
    }
}

/// The context the entry passed down, taken out of this process's environment by
/// [`take_context`] so the command never sees it.
static PASSED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// Takes `ROAR_CONTAINER_CONTEXT` (set by the entry for the roar it starts) out of the
/// environment. Call first thing in `main`, before any thread starts.
pub fn take_context() {
    let v = std::env::var_os("ROAR_CONTAINER_CONTEXT");
    if v.is_some() {
        // SAFETY: called at the start of main, while roar has one thread.
        unsafe { std::env::remove_var("ROAR_CONTAINER_CONTEXT") };
    }
    let _ = PASSED.set(v.map(|v| v.to_string_lossy().into_owned()));
}

/// Whether this roar was started by the container template's entry (and so is in the
/// container it names).
pub fn from_entry() -> bool {
    matches!(PASSED.get(), Some(Some(_)))
}

/// The container this process runs in, as the entry passed it down (`runtime`, `image`,
/// `image id`, `id`, tab-separated; an empty id is detected here), else as the container
/// engines leave it (`/run/.containerenv` of Podman, `/.dockerenv` of Docker). None on the
/// host.
pub fn current() -> Option<Container> {
    if let Some(Some(ctx)) = PASSED.get() {
        let mut f = ctx
            .split('\t')
            .map(|s| Some(s.to_owned()).filter(|s| !s.is_empty()));
        let runtime = f.next().flatten()?;
        let (image, image_id, id) = (f.next().flatten(), f.next().flatten(), f.next().flatten());
        return Some(Container {
            runtime,
            image,
            image_id,
            id: id.or_else(own_id),
        });
    }
    if let Ok(text) = std::fs::read_to_string("/run/.containerenv") {
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(|v| v.trim_matches('"').to_owned())
                .filter(|v| !v.is_empty())
        };
        return Some(Container {
            runtime: "podman".into(),
            image: field("image"),
            image_id: field("imageid"),
            id: field("id").or_else(own_id),
        });
    }
    if Path::new("/.dockerenv").exists() {
        return Some(Container {
            runtime: "docker".into(),
            image: None,
            image_id: None,
            id: own_id(),
        });
    }
    None
}

/// This container's id: Podman's `/run/.containerenv`, else the engine's own files
/// bind-mounted into it (`.../containers/<64 hex>/hostname`, or `vfs-containers`,
/// `overlay-containers`, ...).
fn own_id() -> Option<String> {
    if let Ok(text) = std::fs::read_to_string("/run/.containerenv")
        && let Some(id) = text
            .lines()
            .find_map(|l| l.strip_prefix("id="))
            .map(|v| v.trim_matches('"').to_owned())
            .filter(|v| !v.is_empty())
    {
        return Some(id);
    }
    let info = std::fs::read("/proc/self/mountinfo").ok()?;
    for line in info.split(|&b| b == b'\n') {
        for part in line.split(|&b| b == b' ') {
            let mut it = part.split(|&b| b == b'/');
            while let Some(seg) = it.next() {
                if seg.ends_with(b"containers")
                    && let Some(id) = it.next()
                    && id.len() == 64
                    && id.iter().all(u8::is_ascii_hexdigit)
                {
                    return Some(String::from_utf8_lossy(id).into_owned());
                }
            }
        }
    }
    None
}

/// The arguments after the session-defined variables: `K=V ... -- COMMAND ARGS`, as the
/// template passes `{{WrappedAction.Environment}}` (every entry has `=`; `--` never does).
pub fn split_env(args: &[OsString]) -> Result<(Vec<OsString>, Vec<OsString>)> {
    let at = args
        .iter()
        .position(|a| a == OsStr::new("--"))
        .ok_or_else(|| {
            Error::Invalid("expected the action's variables, then -- and its command".into())
        })?;
    let (env, rest) = args.split_at(at);
    if let Some(bad) = env.iter().find(|e| !e.as_bytes().contains(&b'=')) {
        return Err(Error::Invalid(format!(
            "{} is not a NAME=VALUE variable",
            bad.to_string_lossy()
        )));
    }
    Ok((env.to_vec(), rest[1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_then_the_command() {
        let a: Vec<OsString> = ["A=1", "B=", "--", "sh", "--", "-c"]
            .iter()
            .map(OsString::from)
            .collect();
        let (env, cmd) = split_env(&a).unwrap();
        assert_eq!(env, vec![OsString::from("A=1"), OsString::from("B=")]);
        assert_eq!(cmd, vec![OsString::from("sh"), "--".into(), "-c".into()]);
        assert!(split_env(&[OsString::from("nope"), "--".into()]).is_err());
        let none: Vec<OsString> = vec!["--".into(), "true".into()];
        assert_eq!(split_env(&none).unwrap().0.len(), 0);
    }

    #[test]
    fn names_are_safe_for_the_engine() {
        let spec = Spec {
            runtime: Runtime::Docker,
            image: "x".into(),
            lifetime: Lifetime::Session,
            name: String::new(),
            mounts: vec![],
            run_args: vec![],
            db: "/s/roar.db".into(),
        };
        assert_eq!(
            spec.container_name(Path::new("/tmp/session-ab:cd")),
            "roar-session-ab-cd"
        );
    }
}
