//! One recorded run, step by named step:
//!
//! [`open`] the store → [`choose`] the backend → [`begin`] the run (its row
//! and trace directory exist before the command starts) → [`start`] the
//! command traced → [`wait`] for it → [`drain`] the tracer → [`git`]
//! context → [`collect`] inputs and outputs → [`store`] the result.
//!
//! Every step is the same for every backend: what differs lives behind
//! [`crate::backend`]'s traits.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dag::{NewRun, RunId, RunResult, Store};

use crate::Observer;
use crate::backend::{self, Attached, Backend, Program};
use crate::collect::{self, Ending, Notes};
use crate::config::{self, Config};
use crate::error::{Error, Result, SETUP_FAILED, io};
use crate::location::{self, Location};
use crate::paths::{is_under, to_bytes};
use crate::spawn::{self, Child, Ended, SpawnError};
use crate::timing::Phases;
use crate::words::signal_name;
use crate::{env, git, recover};

/// What to record.
pub struct Request {
    /// `auto` or a backend's name.
    pub backend: String,
    pub label: Option<String>,
    /// SIGTERM after this many seconds, SIGKILL a grace period later.
    pub timeout: Option<f64>,
    /// The command and its arguments, verbatim.
    pub command: Vec<OsString>,
}

/// A run, recorded (or, when `stored` is an error, kept in its trace).
pub struct Recorded {
    pub id: RunId,
    pub backend: &'static str,
    /// How the command ended: roar ends the same way.
    pub ended: Ended,
    pub result: RunResult,
    /// The first thing that made the run incomplete.
    pub first_loss: Option<String>,
    /// Why the result could not be stored; its trace then stays in `trace_dir`.
    pub stored: std::result::Result<(), dag::StoreError>,
    pub trace_dir: PathBuf,
    pub phases: Phases,
    /// The store (still open), where it is and its config. Closing the last
    /// connection checkpoints and deletes the WAL (an fsync, and the next
    /// run creates it again: 2 to 10 ms on ext4), so a short-lived caller
    /// should exit without dropping it, as `roar run` does; the data is
    /// already committed.
    pub opened: Opened,
}

/// Records one run of `req.command`.
pub fn record(req: &Request, obs: &mut dyn Observer) -> Result<Recorded> {
    let started = Instant::now();
    let mut phases = Phases::new(started);
    let opened = open(obs)?;
    phases.mark("open");
    let (backend, program, reason) = choose(req, obs)?;
    phases.mark("backend");
    let mut notes = Notes {
        losses: backend.blind_spots(&program),
        warnings: opened.warnings.clone(),
    };
    // Whatever the backend: work a daemon starts is not in the tree.
    notes
        .losses
        .extend(crate::remote_exec::remote_work(&req.command));
    let begun = begin(&opened, req, backend.name(), reason)?;
    phases.mark("begin");
    let mut running = match start(&*backend, &program, req, &begun) {
        Ok(r) => r,
        Err(e) => return Err(not_started(&opened.store, &begun, started, e)),
    };
    phases.mark("spawn");
    // Git is read while the command runs, at idle priority; neither
    // untracked files nor tracked ones the run itself wrote count as dirty,
    // so when the read lands against the command's writes does not change
    // the answer.
    let git_reader = git::Background::start(&begun.cwd);
    // Earlier runs' traces go now, beside the command: a thread started
    // before the spawn made the set-up's own mappings cost every CPU a TLB
    // flush (open 0.2-0.8 ms slower).
    recover::clear_spent(&opened.loc.roar_dir());
    let machine = collect::Machine::start(!backend.reaps_any_child());
    // Files are hashed while the command runs too, on CPU it leaves idle.
    let (filter, own) = collect::scope(&opened.loc, &opened.cfg);
    let hasher = crate::prehash::Background::start(&begun.trace_dir, filter, own);
    let timeout = req.timeout.map(Duration::from_secs_f64);
    let waited = running.attached.wait(&running.child, timeout, obs);
    phases.mark("command");
    phases.traced(running.released.elapsed());
    let early = hasher.map(|h| h.finish()).unwrap_or_default();
    phases.mark("prehash");
    let ended = waited.ended;
    notes.losses.extend(waited.losses);
    notes.warnings.extend(waited.warnings);
    let (lingering, release) = drain(&mut running, &mut notes, waited.timed_out, req.timeout)
        .map_err(|e| not_started(&opened.store, &begun, started, e))?;
    phases.mark("drain");
    let top = Ending {
        pid: running.child.pid,
        ended,
        lingering: &lingering,
        early: &early,
    };
    let mut result = collect_run(&opened, &begun, top, &mut notes);
    phases.mark("collect");
    // Joined after collect: a walk the command's end caught unfinished
    // goes on beside it.
    let git = git_context(git_reader, &mut notes).map(|ctx| {
        let mut g = ctx.info;
        let written: Vec<&[u8]> = result.outputs.iter().map(|f| f.path.as_slice()).collect();
        g.dirty = git::dirty_besides(&g, &ctx.changed, &written);
        g
    });
    phases.mark("git");
    let (host, container) = machine.finish();
    let environment = collect::environment(&result, Some(host), container);
    notes
        .warnings
        .extend(image_changed(&opened.store, &begun, &environment));
    phases.mark("environment");
    result.duration_ms = started.elapsed().as_millis() as u64;
    let first_loss = notes.losses.first().cloned();
    let stored = store(
        &opened.store,
        &begun,
        &mut result,
        git.as_ref(),
        &environment,
        notes,
    );
    drop(release);
    phases.mark("store");
    Ok(Recorded {
        id: begun.id,
        backend: backend.name(),
        ended,
        result,
        first_loss,
        stored,
        trace_dir: begun.trace_dir,
        phases,
        opened,
    })
}

/// The store, open, with its config; runs of roars that died recovered.
pub struct Opened {
    pub loc: Location,
    pub cfg: Config,
    pub store: Store,
    /// Said once, recorded on the run.
    pub warnings: Vec<String>,
}

/// Step 1: find (or create) the store and open it.
pub fn open(obs: &mut dyn Observer) -> Result<Opened> {
    let cwd = std::env::current_dir().map_err(io("cannot read the current directory"))?;
    let (loc, created) = location::find_or_init(&cwd).map_err(Error::before_start)?;
    if created {
        obs.note(&format!(
            "initialised a new store in {}",
            loc.roar_dir().display()
        ));
    }
    let cfg = config::load(&loc.roar_dir()).map_err(Error::before_start)?;
    let store = Store::open(&loc.db).map_err(|e| Error::setup(SETUP_FAILED, e.to_string()))?;
    recover::recover(&store, &loc.roar_dir());
    let mut warnings = Vec::new();
    // The OpenJD runtime deletes the session directory when the session ends.
    if let Some(wd) = std::env::var_os("OPENJD_SESSION_WORKING_DIR")
        && is_under(&to_bytes(&loc.db), &to_bytes(Path::new(&wd)))
    {
        let w = format!(
            "the store {} is inside the OpenJD session directory, which the runtime deletes when the session ends; set ROAR_DB or the template's RoarDb parameter",
            loc.db.display()
        );
        obs.note(&format!("warning: {w}"));
        warnings.push(w);
    }
    Ok(Opened {
        loc,
        cfg,
        store,
        warnings,
    })
}

/// Step 2: what the command is, and the backend that traces it.
fn choose(req: &Request, obs: &mut dyn Observer) -> Result<(Box<dyn Backend>, Program, String)> {
    let path =
        spawn::resolve(&req.command[0]).map_err(|e| Error::setup(e.exit_code(), e.to_string()))?;
    let program = Program::new(path);
    let (backend, reason) = backend::choose(&req.backend, &program, obs)?;
    if let Some(t) = backend.load_time()
        && std::env::var_os("ROAR_EBPF_TIMING").is_some()
    {
        obs.note(&format!(
            "{} load+attach {:.1} ms",
            backend.name(),
            t.as_secs_f64() * 1000.0
        ));
    }
    Ok((backend, program, reason))
}

/// A run whose row is written and whose trace directory is locked.
struct Begun {
    id: RunId,
    cwd: PathBuf,
    trace_dir: PathBuf,
    /// Held for the run's lifetime: a later roar that can take this lock
    /// knows we died and may recover the trace.
    _lock: std::fs::File,
    vars: Vec<(OsString, OsString)>,
    /// The OpenJD session the run is part of, if any.
    session: Option<String>,
}

/// Step 3: the trace directory, its lock, and the run's row.
fn begin(opened: &Opened, req: &Request, backend: &str, reason: String) -> Result<Begun> {
    let cwd = std::env::current_dir().map_err(io("cannot read the current directory"))?;
    let traces = opened.loc.roar_dir().join("traces");
    let fail =
        |what: String| move |e: std::io::Error| Error::setup(SETUP_FAILED, format!("{what}: {e}"));
    std::fs::create_dir_all(&traces)
        .map_err(fail(format!("cannot create {}", traces.display())))?;
    let trace_dir = recover::tempdir_in(&traces).map_err(fail(format!(
        "cannot create a trace directory in {}",
        traces.display()
    )))?;
    let lock = recover::lock_dir(&trace_dir)
        .map_err(fail(format!("cannot lock {}", trace_dir.display())))?;
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let new_run = NewRun {
        label: req.label.clone(),
        command: req.command.iter().map(|a| a.as_bytes().to_vec()).collect(),
        cwd: to_bytes(&cwd),
        backend: backend.into(),
        backend_reason: Some(reason),
        started_at_ms: crate::time::now_ms(),
        git: None,
        env: env::capture(&vars, &opened.cfg.env.allow),
        trace_dir: Some(to_bytes(&trace_dir)),
        roar_pid: std::process::id(),
        openjd: crate::openjd::context(&vars, req.label.as_deref(), &opened.loc.roar_dir()),
    };
    let session = new_run.openjd.as_ref().and_then(|o| o.session_id.clone());
    let id = opened.store.begin_run(&new_run).map_err(|e| {
        let _ = std::fs::remove_dir_all(&trace_dir);
        Error::setup(
            SETUP_FAILED,
            format!("cannot record the run in {}: {e}", opened.loc.db.display()),
        )
    })?;
    // In the container template's container, the container is known now: a run whose roar
    // is killed there (and finished by recovery on the host) still says where it ran. The
    // full environment replaces this at the end.
    if crate::container::from_entry()
        && let Some(container) = crate::container::current()
    {
        let early = dag::Environment {
            container: Some(container),
            ..dag::Environment::default()
        };
        let _ = opened.store.set_environment(id, &early);
    }
    Ok(Begun {
        id,
        cwd,
        trace_dir,
        _lock: lock,
        vars,
        session,
    })
}

/// The command, started and traced.
struct Running {
    child: Child,
    attached: Box<dyn Attached>,
    /// When the command was let go, tracer attached.
    released: Instant,
}

/// Step 4: fork, the backend's child hook, attach, exec.
fn start(
    backend: &dyn Backend,
    program: &Program,
    req: &Request,
    begun: &Begun,
) -> std::result::Result<Running, SpawnError> {
    let name = req.command[0].to_string_lossy().into_owned();
    let prepared = backend.prepare(&begun.trace_dir).map_err(|e| {
        SpawnError::Attach(
            name.clone(),
            std::io::Error::new(
                e.kind(),
                format!("cannot set up the {} backend: {e}", backend.name()),
            ),
        )
    })?;
    let child_env = prepared.child_env(begun.vars.clone());
    // A set-up failure in the child is the tracer's, not the exec's.
    let child_hook = || prepared.in_child().map_err(|e| e | spawn::HOOK_FAILED);
    let cwd = to_bytes(&begun.cwd);
    let mut attached = None;
    let mut attach = |pid| {
        attached = Some((prepared.attach(pid, &cwd)?, Instant::now()));
        Ok(())
    };
    let hooks = spawn::Hooks {
        child: &child_hook,
        parent: &mut attach,
        wait_exec: prepared.waits_for_exec(),
    };
    let child = spawn::spawn(&program.path, &req.command, &child_env, hooks)?;
    let Some((attached, released)) = attached else {
        return Err(SpawnError::Attach(
            name,
            std::io::Error::other("the tracer did not attach"),
        ));
    };
    Ok(Running {
        child,
        attached,
        released,
    })
}

/// Step 6: the tracer stops and hands back what it lost; an exec that
/// failed under a tracer is reported now. Returns the processes still
/// running, and the backend's cleanup still under way (held until the run
/// is stored).
fn drain(
    running: &mut Running,
    notes: &mut Notes,
    timed_out: bool,
    timeout: Option<f64>,
) -> std::result::Result<(Vec<u32>, Option<backend::Release>), SpawnError> {
    let attached = std::mem::replace(&mut running.attached, Box::new(Gone));
    let finished = attached.finish();
    // On the error paths below it is dropped, so waited for, at once.
    let release = finished.release;
    notes.losses.extend(finished.losses);
    running.child.restore_mask();
    if let Some(e) = running.child.exec_error() {
        return Err(e);
    }
    if timed_out {
        notes.losses.push(format!(
            "the command timed out after {} s and was stopped",
            timeout.unwrap_or(0.0)
        ));
    }
    Ok((finished.lingering, release))
}

/// What stands in for a tracer that has finished.
struct Gone;

impl Attached for Gone {
    fn wait(
        &mut self,
        child: &Child,
        timeout: Option<Duration>,
        _: &mut dyn Observer,
    ) -> backend::Waited {
        backend::Waited::child(child, timeout)
    }

    fn finish(self: Box<Self>) -> backend::Finished {
        backend::Finished::default()
    }
}

/// Step 8: the git context, read while the command ran (and collect).
fn git_context(reader: git::Background, notes: &mut Notes) -> Option<git::Context> {
    match reader.finish() {
        Ok(g) => g,
        Err(e) => {
            notes
                .warnings
                .push(format!("git context not recorded: {}", e.message()));
            None
        }
    }
}

/// Step 7: inputs, outputs and processes from the trace; how the command
/// ended.
fn collect_run(opened: &Opened, begun: &Begun, top: Ending<'_>, notes: &mut Notes) -> RunResult {
    let ended = top.ended;
    let streams = collect::read_trace(&begun.trace_dir, notes);
    let mut result = collect::collect(
        &opened.store,
        &opened.loc,
        &opened.cfg,
        &streams,
        Some(top),
        notes,
    );
    match ended {
        Ended::Code(c) => result.exit_code = Some(c),
        Ended::Signal(sig) => {
            notes.losses.push(format!(
                "the command was killed by signal {sig} ({}); its outputs may be partial",
                signal_name(sig)
            ));
            result.signal = Some(sig);
        }
    }
    result
}

/// A warning when an earlier run of the same OpenJD session ran in a container of another
/// image: the session's results no longer come from one image.
fn image_changed(store: &Store, begun: &Begun, env: &dag::Environment) -> Option<String> {
    let session = begun.session.as_deref()?;
    let now = env.container.as_ref()?.image_id.as_deref()?;
    let before = store.session_image_ids(session, begun.id).ok()?;
    let other: Vec<&String> = before.iter().filter(|id| *id != now).collect();
    (!other.is_empty()).then(|| {
        let list: Vec<&str> = other.iter().map(|s| s.as_str()).collect();
        format!(
            "the container image changed within OpenJD session {session}: this run ran in {now}, earlier runs in {}",
            list.join(", ")
        )
    })
}

/// Step 9: the result in the store, in one transaction; the trace
/// directory goes once it is stored, and stays (for recovery) when not.
fn store(
    store: &Store,
    begun: &Begun,
    result: &mut RunResult,
    git: Option<&dag::GitInfo>,
    environment: &dag::Environment,
    notes: Notes,
) -> std::result::Result<(), dag::StoreError> {
    result.complete = notes.losses.is_empty();
    result.warnings = notes.losses.into_iter().chain(notes.warnings).collect();
    // One transaction for everything; should the git context or the environment be what
    // the store refuses, the result is stored without it, saying so.
    let stored = match store.finish_run_with(begun.id, result, git, Some(environment)) {
        Ok(()) => Ok(()),
        Err(_) => {
            if let Some(g) = git
                && let Err(e) = store.set_git(begun.id, g)
            {
                result
                    .warnings
                    .push(format!("git context not recorded: {e}"));
            }
            if let Err(e) = store.set_environment(begun.id, environment) {
                result
                    .warnings
                    .push(format!("packages and host not recorded: {e}"));
            }
            store.finish_run(begun.id, result)
        }
    };
    match &stored {
        Ok(()) => {
            recover::retire(&begun.trace_dir);
            store.trim_wal();
        }
        Err(e) => recover::note_reason(&begun.trace_dir, &e.to_string()),
    }
    stored
}

/// Records that the command never started, and the error to exit with.
fn not_started(store: &Store, begun: &Begun, started: Instant, e: SpawnError) -> Error {
    let code = e.exit_code();
    let result = RunResult {
        exit_code: Some(code),
        complete: false,
        warnings: vec![format!("the command did not start: {e}")],
        duration_ms: started.elapsed().as_millis() as u64,
        ..Default::default()
    };
    let _ = store.finish_run(begun.id, &result);
    let _ = std::fs::remove_dir_all(&begun.trace_dir);
    Error::setup(code, e.to_string())
}
