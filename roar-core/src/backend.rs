//! The one interface every way of tracing implements, and the chooser.
//!
//! A run goes through a backend in four steps, each a trait here:
//!
//! 1. [`Kind::open`]: make the backend ready for this command (eBPF loads
//!    and attaches its program here: opening it is the probe);
//! 2. [`Backend::prepare`]: set up, in roar, what one run needs once its
//!    trace directory exists, before the fork;
//! 3. [`Prepared::in_child`] (between fork and exec, in the child) and
//!    [`Prepared::attach`] (in roar, before the child may exec);
//! 4. [`Attached::wait`] for the command, then [`Attached::finish`], which
//!    hands back what the backend lost and which processes still run.
//!
//! Every backend writes `tracer-wire` streams into the run's trace
//! directory; [`crate::analysis`] reads them the same way for all.
//!
//! A new backend is one module implementing [`Kind`], [`Backend`],
//! [`Prepared`] and [`Attached`], and one line in [`KINDS`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Observer;
use crate::error::{Error, Result, SETUP_FAILED};
use crate::spawn::{Child, Ended};

pub mod ebpf;
pub mod preload;
pub mod ptrace;

/// Every backend, in the order `auto` prefers them: the cheapest that sees
/// the most first.
pub static KINDS: [&dyn Kind; 3] = [&ebpf::Ebpf, &preload::Preload, &ptrace::Ptrace];

/// The command about to run, as a backend needs to know it.
pub struct Program {
    /// What `execvp` would run.
    pub path: PathBuf,
    /// Statically linked: LD_PRELOAD cannot reach it.
    pub is_static: bool,
    /// How it is linked (`is_static` is [`crate::elf::Linking::Static`]):
    /// the preload backend picks its library by the interpreter's glibc.
    pub linking: crate::elf::Linking,
    /// Set-user-ID or set-group-ID to ids roar does not run as: executing
    /// it raises privileges (the loader then ignores LD_PRELOAD, and a
    /// traced exec keeps the caller's ids).
    pub raises_privileges: bool,
}

impl Program {
    /// What `path` is, for the backends.
    pub fn new(path: PathBuf) -> Program {
        let linking = crate::elf::linking(&path);
        Program {
            is_static: linking == crate::elf::Linking::Static,
            linking,
            raises_privileges: raises_privileges(&path),
            path,
        }
    }
}

/// True when executing `path` would give the process other ids than ours.
fn raises_privileges(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(path) else {
        return false;
    };
    // SAFETY: geteuid and getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    (md.mode() & 0o4000 != 0 && md.uid() != euid) || (md.mode() & 0o2000 != 0 && md.gid() != egid)
}

/// One way of tracing, before it is used for a run.
pub trait Kind: Sync {
    /// The name `--backend` takes and runs record.
    fn name(&self) -> &'static str;
    /// Makes the backend ready to trace `program`. `auto` is true when the
    /// user left the choice to roar: a backend that would run but not see
    /// this command refuses then. Ok carries why it fits, Err why not.
    fn open(&self, program: &Program, auto: bool) -> Result<(Box<dyn Backend>, String), String>;
    /// Whether it works on this machine, and exactly why not (`roar doctor`).
    fn check(&self) -> Check;
}

/// A backend ready for a run.
pub trait Backend {
    fn name(&self) -> &'static str;
    /// What it cannot see in this command, known before it starts; each one
    /// makes the run incomplete.
    fn blind_spots(&self, _program: &Program) -> Vec<String> {
        Vec::new()
    }
    /// How long opening it took, when that is worth reporting (eBPF's load
    /// and attach; `ROAR_EBPF_TIMING=1` asks for it).
    fn load_time(&self) -> Option<Duration> {
        None
    }
    /// Whether waiting on the command reaps any child of roar's
    /// (`waitpid(-1)`): roar then starts no process of its own while the
    /// command runs (one it did would be reaped from under it).
    fn reaps_any_child(&self) -> bool {
        false
    }
    /// Sets up what one run needs, once its trace directory exists.
    fn prepare(&self, trace_dir: &Path) -> std::io::Result<Box<dyn Prepared + '_>>;
}

/// A run's tracing, set up in roar, with the command not yet started.
pub trait Prepared {
    /// The command's environment, from the caller's.
    fn child_env(&self, env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
        env
    }
    /// In the forked child, before exec: async-signal-safe calls only. An
    /// errno means tracing could not be set up and the exec must not happen.
    fn in_child(&self) -> Result<(), libc::c_int> {
        Ok(())
    }
    /// Whether the spawn may block until the exec succeeded. A tracer on
    /// roar's own thread must not: the exec itself stops for it.
    fn waits_for_exec(&self) -> bool {
        true
    }
    /// In roar, right after fork and before the child may exec.
    fn attach(&self, pid: libc::pid_t, cwd: &[u8]) -> std::io::Result<Box<dyn Attached>>;
}

/// Tracing a command that runs.
pub trait Attached {
    /// Waits for the command to end, forwarding the signals roar gets and
    /// applying the timeout.
    fn wait(&mut self, child: &Child, timeout: Option<Duration>, obs: &mut dyn Observer) -> Waited;
    /// Stops tracing, once the command has ended.
    fn finish(self: Box<Self>) -> Finished;
}

/// How the wait ended.
pub struct Waited {
    pub ended: Ended,
    pub timed_out: bool,
    /// What the backend could not see while waiting.
    pub losses: Vec<String>,
    pub warnings: Vec<String>,
}

impl Waited {
    /// The plain wait for a command no tracer stands between.
    pub fn child(child: &Child, timeout: Option<Duration>) -> Waited {
        let (ended, timed_out) = child.wait(timeout);
        Waited {
            ended,
            timed_out,
            losses: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// What tracing ended with.
#[derive(Default)]
pub struct Finished {
    pub losses: Vec<String>,
    /// Processes of the run still alive when the command ended.
    pub lingering: Vec<u32>,
    /// The backend's own cleanup still under way (eBPF: freeing its slot,
    /// detaching hooks), done beside the collecting and storing; dropping
    /// it waits for the end.
    pub release: Option<Release>,
}

/// A backend's cleanup under way: dropping it waits for the end.
pub type Release = Box<dyn Send>;

/// What one backend needs, and whether this machine has it.
pub struct Check {
    pub name: &'static str,
    pub usable: bool,
    /// What works, or every reason it does not.
    pub reasons: Vec<String>,
    /// The errno a kernel refusal came with.
    pub errno: Option<i32>,
    pub load_ms: Option<f64>,
}

impl Check {
    pub fn usable(name: &'static str, why: String) -> Check {
        Check {
            name,
            usable: true,
            reasons: vec![why],
            errno: None,
            load_ms: None,
        }
    }

    pub fn unusable(name: &'static str, reasons: Vec<String>, errno: Option<i32>) -> Check {
        Check {
            name,
            usable: false,
            reasons,
            errno,
            load_ms: None,
        }
    }
}

/// Every backend's check, in `auto`'s order.
pub fn checks() -> Vec<Check> {
    KINDS.iter().map(|k| k.check()).collect()
}

/// What `--backend auto` would pick for a dynamically linked command.
pub fn auto_choice(checks: &[Check]) -> &'static str {
    checks.iter().find(|c| c.usable).map_or("none", |c| c.name)
}

/// The backend `--backend` asks for, opened, and why it was chosen. `auto`
/// takes the first of [`KINDS`] that opens and sees the command, and tells
/// `obs` what it fell back from.
pub fn choose(
    asked: &str,
    program: &Program,
    obs: &mut dyn Observer,
) -> Result<(Box<dyn Backend>, String)> {
    if asked != "auto" {
        let kind = KINDS.iter().find(|k| k.name() == asked).ok_or_else(|| {
            let mut names: Vec<&str> = vec!["auto"];
            names.extend(KINDS.iter().map(|k| k.name()));
            let last = names.pop().unwrap_or_default();
            Error::setup(
                2,
                format!(
                    "unknown backend '{asked}' (expected {} or {last})",
                    names.join(", ")
                ),
            )
        })?;
        return match kind.open(program, false) {
            Ok((b, _)) => Ok((b, format!("asked for with --backend {asked}"))),
            Err(why) => Err(Error::setup(SETUP_FAILED, why)),
        };
    }
    let mut refusals = Vec::new();
    for kind in KINDS {
        match kind.open(program, true) {
            Ok((b, fits)) if refusals.is_empty() => return Ok((b, format!("auto: {fits}"))),
            Ok((b, fits)) => {
                // "...; the command is statically linked, so ptrace"
                let sep = if fits.starts_with("so ") { ", " } else { "; " };
                let reason = format!("auto: {}{sep}{fits}", refusals.join("; "));
                obs.note(&reason);
                return Ok((b, reason));
            }
            Err(why) => refusals.push(why),
        }
    }
    Err(Error::setup(
        SETUP_FAILED,
        format!("no backend can trace this command: {}", refusals.join("; ")),
    ))
}
