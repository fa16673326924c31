//! `roar run`: start the command traced, wait, record what it did.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dag::{FileRecord, NewRun, ProcessRecord, RunResult, Store};
use tracer_wire::ExitStatus;

use crate::location::{self, Location};
use crate::paths::{as_path, is_under, to_bytes};
use crate::spawn::{self, Ended};
use crate::{config, elf, env, filter::Filter, git, hashing, preload, trace};

/// Exit status when tracing cannot be set up (as `env` uses 125).
pub const SETUP_FAILED: i32 = 125;

pub struct Options {
    pub backend: String,
    pub label: Option<String>,
    pub timeout: Option<f64>,
    pub quiet: bool,
    pub command: Vec<OsString>,
}

/// A failure before the command started: print it and exit with `code`.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
pub struct SetupError {
    pub msg: String,
    pub code: i32,
}

fn setup(code: i32, msg: impl Into<String>) -> anyhow::Error {
    SetupError {
        msg: msg.into(),
        code,
    }
    .into()
}

/// The store for `roar run`, initialised when there is none.
pub fn locate(cwd: &Path) -> Result<Location> {
    if let Some(l) = location::find(cwd) {
        // A store named by --db or ROAR_DB may be new: its directory too.
        if location::explicit()
            && let Some(dir) = l.db.parent()
            && !dir.is_dir()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        return Ok(l);
    }
    let root = location::default_root(cwd);
    let l = location::init(&root)?;
    eprintln!(
        "roar: initialised a new store in {}",
        l.roar_dir().display()
    );
    Ok(l)
}

pub fn run(opts: Options) -> Result<std::convert::Infallible> {
    let started = Instant::now();
    let mut phases = crate::timing::Phases::new(started);
    let started_ms = crate::time::now_ms();
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let loc = locate(&cwd).map_err(|e| setup(SETUP_FAILED, format!("{e:#}")))?;
    let cfg = config::load(&loc.roar_dir()).map_err(|e| setup(SETUP_FAILED, format!("{e:#}")))?;
    let store = Store::open(&loc.db).map_err(|e| setup(SETUP_FAILED, e.to_string()))?;
    recover(&store);
    phases.mark("open");
    let mut warnings = Vec::new();
    // The OpenJD runtime deletes the session directory when the session ends.
    if let Some(wd) = std::env::var_os("OPENJD_SESSION_WORKING_DIR")
        && is_under(&to_bytes(&loc.db), &to_bytes(Path::new(&wd)))
    {
        let w = format!(
            "the store {} is inside the OpenJD session directory, which the runtime deletes when the session ends; set ROAR_DB or the template's RoarDb parameter",
            loc.db.display()
        );
        eprintln!("roar: warning: {w}");
        warnings.push(w);
    }

    let program =
        spawn::resolve(&opts.command[0]).map_err(|e| setup(e.exit_code(), e.to_string()))?;
    let is_static = elf::is_static(&program);
    let (backend, backend_reason) = choose_backend(&opts.backend, is_static)?;
    phases.mark("backend");

    let mut losses = Vec::new();
    if is_static && matches!(backend, Backend::Preload(_)) {
        losses.push(format!(
            "{} is statically linked: the preload backend cannot see its file accesses (use --backend ptrace)",
            program.display()
        ));
    }

    let traces = loc.roar_dir().join("traces");
    std::fs::create_dir_all(&traces).map_err(|e| {
        setup(
            SETUP_FAILED,
            format!("cannot create {}: {e}", traces.display()),
        )
    })?;
    let trace_dir = tempdir_in(&traces).map_err(|e| {
        setup(
            SETUP_FAILED,
            format!(
                "cannot create a trace directory in {}: {e}",
                traces.display()
            ),
        )
    })?;
    // Held for the run's lifetime: a later roar that can take this lock
    // knows we died and may recover the trace.
    let lock = lock_dir(&trace_dir).map_err(|e| {
        setup(
            SETUP_FAILED,
            format!("cannot lock {}: {e}", trace_dir.display()),
        )
    })?;

    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let new_run = NewRun {
        label: opts.label.clone(),
        command: opts.command.iter().map(|a| a.as_bytes().to_vec()).collect(),
        cwd: to_bytes(&cwd),
        backend: backend.name().into(),
        backend_reason: Some(backend_reason),
        started_at_ms: started_ms,
        git: None,
        env: env::capture(&vars, &cfg.env.allow),
        trace_dir: Some(to_bytes(&trace_dir)),
        roar_pid: std::process::id(),
        openjd: crate::openjd::context(&vars, opts.label.as_deref(), &loc.roar_dir()),
    };
    let id = store.begin_run(&new_run).map_err(|e| {
        setup(
            SETUP_FAILED,
            format!("cannot record the run in {}: {e}", loc.db.display()),
        )
    })?;

    let ptrace = match &backend {
        Backend::Ptrace => Some(tracer_ptrace::Prepared::new().map_err(|e| {
            setup(
                SETUP_FAILED,
                format!("cannot set up the ptrace backend: {e}"),
            )
        })?),
        Backend::Preload(_) | Backend::Ebpf(_) => None,
    };
    let ebpf = match &backend {
        Backend::Ebpf(p) => Some(p),
        _ => None,
    };
    let child_env = match &backend {
        Backend::Preload(lib) => preload::child_env(vars, lib, &trace_dir),
        Backend::Ptrace | Backend::Ebpf(_) => vars,
    };
    // A set-up failure in the child is the tracer's, not the exec's.
    let child_hook = || {
        match (&ptrace, ebpf) {
            (Some(p), _) => p.in_child(),
            (None, Some(e)) => e.in_child(),
            (None, None) => Ok(()),
        }
        .map_err(|e| e | spawn::HOOK_FAILED)
    };
    let mut tracer = None;
    let mut ebpf_tracer = None;
    let cwd_bytes = to_bytes(&cwd);
    let mut released = None;
    let mut attach = |pid| {
        if let Some(p) = &ptrace {
            tracer = Some(p.attach(pid, &trace_dir.join("ptrace.rwt"))?);
        }
        if let Some(e) = ebpf {
            ebpf_tracer = Some(e.attach(
                pid,
                std::process::id(),
                &cwd_bytes,
                &trace_dir.join("ebpf.rwt"),
            )?);
        }
        released = Some(Instant::now());
        Ok(())
    };
    let hooks = spawn::Hooks {
        child: &child_hook,
        parent: &mut attach,
        wait_exec: ptrace.is_none(),
    };
    phases.mark("begin");
    let spawned = spawn::spawn(&program, &opts.command, &child_env, hooks);
    phases.mark("spawn");
    drop(ptrace);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Err(not_started(&store, id, &trace_dir, started, e)),
    };
    // Git is read while the command runs, at idle priority; neither
    // untracked files nor tracked ones the run itself wrote count as dirty,
    // so when the read lands against the command's writes does not change
    // the answer.
    let git_reader = git::Background::start(&cwd);

    let timeout = opts.timeout.map(Duration::from_secs_f64);
    let (ended, timed_out) = match tracer {
        None => child.wait(timeout),
        Some(t) => {
            let targets = t.targets();
            let fwd = spawn::Forwarder::start(
                std::sync::Arc::new(move || {
                    targets.lock().map_or_else(|_| Vec::new(), |t| t.clone())
                }),
                timeout,
            );
            let mut tell = |left: &[u32]| {
                eprintln!(
                    "roar: the command exited; following the {} it left running (pid {}) until {} too",
                    plural(left.len(), "process", "processes"),
                    join_pids(left),
                    if left.len() == 1 {
                        "it ends"
                    } else {
                        "they end"
                    },
                );
            };
            let traced = t.run(&mut tell);
            let timed_out = fwd.stop();
            if let Ok(o) = &traced
                && !o.outlived.is_empty()
            {
                warnings.push(format!(
                    "{} (pid {}) outlived the command; roar followed {} to {} end",
                    plural(o.outlived.len(), "process", "processes"),
                    join_pids(&o.outlived),
                    if o.outlived.len() == 1 { "it" } else { "them" },
                    if o.outlived.len() == 1 {
                        "its"
                    } else {
                        "their"
                    },
                ));
            }
            let ended = match traced.map(|o| o.status) {
                Ok(Some(ExitStatus::Code(c))) => Ended::Code(c),
                Ok(Some(ExitStatus::Signal(s))) => Ended::Signal(s),
                Ok(None) => {
                    losses.push("the command's exit status was not seen by the tracer".into());
                    Ended::Code(255)
                }
                Err(e) => {
                    losses.push(format!("the ptrace backend stopped early: {e}"));
                    Ended::Code(255)
                }
            };
            (ended, timed_out)
        }
    };
    phases.mark("command");
    if let Some(r) = released {
        phases.traced(r.elapsed());
    }
    let mut ebpf_lingering = Vec::new();
    if let Some(t) = ebpf_tracer {
        match t.finish() {
            Ok(f) => ebpf_lingering = f.lingering,
            Err(e) => losses.push(format!("the eBPF backend could not finish its trace: {e}")),
        }
    }
    child.restore_mask();
    if let Some(e) = child.exec_error() {
        return Err(not_started(&store, id, &trace_dir, started, e));
    }
    if timed_out {
        losses.push(format!(
            "the command timed out after {} s and was stopped",
            opts.timeout.unwrap_or(0.0)
        ));
    }
    phases.mark("drain");
    let git = match git_reader.finish() {
        Ok(g) => g,
        Err(e) => {
            warnings.push(format!("git context not recorded: {}", e.message()));
            None
        }
    };

    phases.mark("git");
    let streams = read_trace(&trace_dir, &mut losses);
    let lingering = match backend {
        Backend::Ebpf(_) => ebpf_lingering,
        _ => still_running(&trace_dir),
    };
    let mut result = collect(
        &store,
        &loc,
        &cfg,
        &streams,
        Some(Ending {
            pid: child.pid,
            ended,
            lingering: &lingering,
        }),
        &mut warnings,
        &mut losses,
    );
    if let Some(git::Context {
        info: mut g,
        changed,
    }) = git
    {
        let written: Vec<&[u8]> = result.outputs.iter().map(|f| f.path.as_slice()).collect();
        g.dirty = git::dirty_besides(&g, &changed, &written);
        if let Err(e) = store.set_git(id, &g) {
            warnings.push(format!("git context not recorded: {e}"));
        }
    }
    if let Ended::Signal(sig) = ended {
        losses.push(format!(
            "the command was killed by signal {sig} ({}); its outputs may be partial",
            signal_name(sig)
        ));
    }
    result.exit_code = match ended {
        Ended::Code(c) => Some(c),
        Ended::Signal(_) => None,
    };
    result.signal = match ended {
        Ended::Signal(s) => Some(s),
        Ended::Code(_) => None,
    };
    phases.mark("collect");
    result.duration_ms = started.elapsed().as_millis() as u64;
    result.complete = losses.is_empty();
    let first_loss = losses.first().cloned();
    result.warnings = losses.into_iter().chain(warnings).collect();
    let stored = store.finish_run(id, &result);
    drop(lock);
    match &stored {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&trace_dir);
        }
        Err(e) => eprintln!(
            "roar: could not store run {id} ({e}); its trace stays in {}",
            trace_dir.display()
        ),
    }
    if !opts.quiet && stored.is_ok() {
        let secs = result.duration_ms as f64 / 1000.0;
        let shown = |v: &[FileRecord]| v.iter().filter(|f| !f.filtered).count();
        let count = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let mut line = format!(
            "roar: run {id} recorded ({}, {secs:.2} s): {}, {}",
            backend.name(),
            count(shown(&result.inputs), "input"),
            count(shown(&result.outputs), "output"),
        );
        if let Some(l) = first_loss {
            let more = result.warnings.len() - 1;
            line.push_str(&format!("; INCOMPLETE: {l}"));
            if more > 0 {
                line.push_str(&format!(" (+{more} more; roar show {id})"));
            }
        }
        eprintln!("{line}");
    }
    phases.mark("store");
    phases.report();
    spawn::exit_like(ended)
}

/// "1 process", "2 processes".
fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn join_pids(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The backend a run uses, and what it needs.
enum Backend {
    /// The LD_PRELOAD library at this path.
    Preload(PathBuf),
    Ptrace,
    /// The eBPF program, loaded and attached.
    Ebpf(Box<tracer_ebpf::Prepared>),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Preload(_) => "preload",
            Backend::Ptrace => "ptrace",
            Backend::Ebpf(_) => "ebpf",
        }
    }
}

/// Loads and attaches the eBPF program: the probe and the real thing.
fn load_ebpf() -> Result<Box<tracer_ebpf::Prepared>, tracer_ebpf::LoadError> {
    // Test knobs: ROAR_EBPF_RING_BYTES, a smaller ring buffer (overflow);
    // ROAR_EBPF_PID_WORDS, a smaller pid bitmap (its fallback).
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    let tuning = tracer_ebpf::Tuning {
        ring_bytes: num("ROAR_EBPF_RING_BYTES"),
        pid_words: num("ROAR_EBPF_PID_WORDS"),
    };
    let p = tracer_ebpf::Prepared::load_tuned(&crate::doctor::btf_path(), tuning)?;
    if std::env::var_os("ROAR_EBPF_TIMING").is_some() {
        eprintln!(
            "roar: ebpf load+attach {:.1} ms",
            p.load_time().as_secs_f64() * 1000.0
        );
    }
    Ok(Box::new(p))
}

/// Picks the backend `--backend` asks for, and says why. `auto` takes eBPF
/// when it loads here (nearly free, sees everything); else preload when its
/// library is there and the command is dynamically linked; else ptrace,
/// which sees everything at a higher cost.
fn choose_backend(asked: &str, is_static: bool) -> Result<(Backend, String)> {
    match asked {
        "preload" => Ok((
            Backend::Preload(preload::find_library().map_err(|e| setup(SETUP_FAILED, e))?),
            "asked for with --backend preload".into(),
        )),
        "ptrace" => Ok((Backend::Ptrace, "asked for with --backend ptrace".into())),
        "ebpf" => match load_ebpf() {
            Ok(p) => Ok((Backend::Ebpf(p), "asked for with --backend ebpf".into())),
            Err(e) => Err(setup(
                SETUP_FAILED,
                format!("the ebpf backend cannot be used: {e}"),
            )),
        },
        "auto" => {
            let ebpf_err = match load_ebpf() {
                Ok(p) => {
                    return Ok((
                        Backend::Ebpf(p),
                        "auto: eBPF loads and attaches here".into(),
                    ));
                }
                Err(e) => e,
            };
            let (backend, why) = match preload::find_library() {
                Ok(lib) if !is_static => (
                    Backend::Preload(lib),
                    "the command is dynamically linked, so preload".to_string(),
                ),
                Ok(_) => (
                    Backend::Ptrace,
                    "the command is statically linked, so ptrace".to_string(),
                ),
                Err(e) => (Backend::Ptrace, format!("{e}; so ptrace")),
            };
            let reason = format!("auto: eBPF unavailable ({ebpf_err}); {why}");
            eprintln!("roar: {reason}");
            Ok((backend, reason))
        }
        other => Err(setup(
            2,
            format!("unknown backend '{other}' (expected auto, preload, ptrace or ebpf)"),
        )),
    }
}

/// Records that the command never started, and the error to exit with.
fn not_started(
    store: &Store,
    id: dag::RunId,
    trace_dir: &Path,
    started: Instant,
    e: spawn::SpawnError,
) -> anyhow::Error {
    let code = e.exit_code();
    let result = RunResult {
        exit_code: Some(code),
        complete: false,
        warnings: vec![format!("the command did not start: {e}")],
        duration_ms: started.elapsed().as_millis() as u64,
        ..Default::default()
    };
    let _ = store.finish_run(id, &result);
    let _ = std::fs::remove_dir_all(trace_dir);
    setup(code, e.to_string())
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGBUS => "SIGBUS",
        _ => "signal",
    }
}

/// How the traced command ended, as `roar run` saw it.
pub struct Ending<'a> {
    pub pid: i32,
    pub ended: Ended,
    /// Processes of the run still alive when the command ended.
    pub lingering: &'a [u32],
}

/// Every stream in `trace_dir`; a directory that cannot be read is a loss.
pub fn read_trace(trace_dir: &Path, losses: &mut Vec<String>) -> Vec<(String, Vec<u8>)> {
    match trace::read_dir(trace_dir) {
        Ok(s) => s,
        Err(e) => {
            losses.push(format!(
                "the trace in {} could not be read: {e}",
                trace_dir.display()
            ));
            Vec::new()
        }
    }
}

/// Decides inputs, outputs and processes from trace streams. It needs no
/// live child: `roar run` passes the command's pid and how it ended, and the
/// processes still running; recovery and `roar ingest` pass what they know.
pub fn collect(
    store: &Store,
    loc: &Location,
    cfg: &config::Config,
    streams: &[(String, Vec<u8>)],
    top: Option<Ending<'_>>,
    warnings: &mut Vec<String>,
    losses: &mut Vec<String>,
) -> RunResult {
    let summary = trace::analyze(streams);
    losses.extend(summary.warnings.iter().cloned());
    if summary.procs.is_empty() && losses.is_empty() {
        losses.push("the tracer recorded no process (under preload: the library was not loaded into the command; is it built for this architecture?)".into());
    }
    let root = to_bytes(&loc.root);
    let home = std::env::var_os("HOME").map(|h| h.as_bytes().to_vec());
    let filter = Filter::new(&root, home.as_deref(), &cfg.filter.ignore, &cfg.filter.keep);
    let own = loc.own_paths();

    let mut procs: Vec<ProcessRecord> = summary
        .procs
        .iter()
        .map(|p| {
            let (exit_code, signal) = match p.status {
                Some(ExitStatus::Code(c)) => (Some(c), None),
                Some(ExitStatus::Signal(s)) => (None, Some(s)),
                None => (None, None),
            };
            ProcessRecord {
                pid: p.pid,
                ppid: p.ppid,
                exe: p.exe.clone(),
                argv: p.argv.clone(),
                cwd: p.cwd.clone(),
                exit_code,
                signal,
                started_ns: p.started_ns,
            }
        })
        .collect();
    if let Some(Ending { lingering, .. }) = &top
        && !lingering.is_empty()
    {
        losses.push(format!(
            "{} (pid {}) {} still running when the command ended; what {} from now on is not recorded",
            plural(lingering.len(), "process", "processes"),
            join_pids(lingering),
            if lingering.len() == 1 { "was" } else { "were" },
            if lingering.len() == 1 { "it does" } else { "they do" }
        ));
    }
    if let Some(Ending { pid, ended, .. }) = top
        && let Some(p) = procs.iter_mut().rev().find(|p| p.pid == pid as u32)
    {
        match ended {
            Ended::Code(c) => (p.exit_code, p.signal) = (Some(c), None),
            Ended::Signal(s) => (p.exit_code, p.signal) = (None, Some(s)),
        }
    }

    // Inputs and outputs, hidden ones kept without hashing.
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let mut to_hash: Vec<(Vec<u8>, u64, bool, Option<dag::FileKey>)> = Vec::new(); // path, size, is_output, key as read
    let mut files: Vec<(&Vec<u8>, &trace::Access)> = summary.files.iter().collect();
    files.sort_by_key(|(_, a)| a.first_seen);
    for (path, acc) in files {
        if own.iter().any(|o| is_under(path, o)) {
            continue;
        }
        let hidden = filter.hides(path);
        if acc.written
            && let Ok(md) = std::fs::symlink_metadata(as_path(path))
            && md.is_file()
        {
            if hidden {
                outputs.push(FileRecord {
                    path: path.clone(),
                    hash: None,
                    size: Some(md.len()),
                    filtered: true,
                });
            } else {
                to_hash.push((path.clone(), md.len(), true, None));
            }
        }
        if let Some(st) = acc.read_as {
            if hidden {
                inputs.push(FileRecord {
                    path: path.clone(),
                    hash: None,
                    size: Some(st.size),
                    filtered: true,
                });
            } else {
                to_hash.push((
                    path.clone(),
                    st.size,
                    false,
                    Some(hashing::key_of_stat(&st)),
                ));
            }
        }
    }

    // Decide, for each file, whether its current content is what we want.
    let mut jobs: Vec<(usize, PathBuf, u64)> = Vec::new();
    let mut records: Vec<(bool, FileRecord, Option<dag::FileKey>)> = Vec::new();
    for (path, size, is_output, read_key) in to_hash {
        let p = as_path(&path).to_path_buf();
        let now = std::fs::metadata(&p)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| hashing::file_key(&m));
        let rec = FileRecord {
            path: path.clone(),
            hash: None,
            size: Some(size),
            filtered: false,
        };
        match (is_output, read_key, now) {
            (true, _, Some(k)) => {
                let cached = store.hash_cache_get(&k).ok().flatten();
                let i = records.len();
                records.push((
                    true,
                    FileRecord {
                        size: Some(k.size),
                        ..rec
                    },
                    Some(k),
                ));
                match cached {
                    Some(h) => records[i].1.hash = Some(h),
                    None => jobs.push((i, p, k.size)),
                }
            }
            (false, Some(rk), now) => {
                let i = records.len();
                records.push((
                    false,
                    FileRecord {
                        size: Some(rk.size),
                        ..rec
                    },
                    Some(rk),
                ));
                if let Some(h) = store.hash_cache_get(&rk).ok().flatten() {
                    records[i].1.hash = Some(h);
                } else if now == Some(rk) {
                    jobs.push((i, p, rk.size));
                } else {
                    warnings.push(format!(
                        "{} changed during the run before roar could hash it; its content as read is unknown",
                        String::from_utf8_lossy(&path)
                    ));
                }
            }
            _ => {}
        }
    }
    let job_refs: Vec<(&Path, u64)> = jobs.iter().map(|(_, p, s)| (p.as_path(), *s)).collect();
    let hashes = hashing::hash_many(&job_refs);
    let mut cache_new = Vec::new();
    for ((i, p, _), h) in jobs.iter().zip(hashes) {
        match h {
            Ok(h) => {
                records[*i].1.hash = Some(h.clone());
                if let Some(k) = records[*i].2 {
                    // Only cache when the file is still what we hashed.
                    if std::fs::metadata(p).ok().map(|m| hashing::file_key(&m)) == Some(k) {
                        cache_new.push((k, h));
                    }
                }
            }
            Err(e) => warnings.push(format!("{} could not be hashed: {e}", p.display())),
        }
    }
    if let Err(e) = store.hash_cache_put(&cache_new) {
        warnings.push(format!("hash cache not updated: {e}"));
    }
    for (is_output, rec, _) in records {
        if is_output {
            outputs.push(rec)
        } else {
            inputs.push(rec)
        }
    }
    RunResult {
        inputs,
        outputs,
        processes: procs,
        ..Default::default()
    }
}

/// Processes of this run still alive: any process whose environment still
/// carries this run's trace directory (inherited from the command), found
/// by scanning /proc so that a child that has not written its first record
/// yet is not missed, and a reused pid is never mistaken for ours.
fn still_running(trace_dir: &Path) -> Vec<u32> {
    let mut marker = b"ROAR_TRACE_DIR=".to_vec();
    marker.extend_from_slice(trace_dir.as_os_str().as_bytes());
    marker.push(0);
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.windows(marker.len()).any(|w| w == marker.as_slice()))
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Runs whose roar died (its lock on the trace directory is free) are
/// finished from whatever their trace holds, and marked incomplete.
pub fn recover(store: &Store) {
    let Ok(runs) = store.unfinished_runs() else {
        return;
    };
    for run in runs {
        let Some(dir) = run.trace_dir.as_ref().map(|d| as_path(d).to_path_buf()) else {
            continue;
        };
        let Ok(lock) = try_lock_dir(&dir) else {
            continue;
        };
        let Some(lock) = lock else { continue }; // still running
        let Some(loc) = location::find(&dir) else {
            continue;
        };
        let cfg = config::load(&loc.roar_dir()).unwrap_or_default();
        let mut warnings = Vec::new();
        let mut losses =
            vec!["roar was killed before the run ended; recorded what its trace held".to_string()];
        let streams = read_trace(&dir, &mut losses);
        let mut result = collect(
            store,
            &loc,
            &cfg,
            &streams,
            None,
            &mut warnings,
            &mut losses,
        );
        result.complete = false;
        result.warnings = losses.into_iter().chain(warnings).collect();
        if store.finish_run(run.id, &result).is_ok() {
            drop(lock);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn tempdir_in(parent: &Path) -> std::io::Result<PathBuf> {
    let mut n: u32 = 0;
    loop {
        let name = format!("run-{}-{}-{n}", std::process::id(), crate::time::now_ms());
        let p = parent.join(name);
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::File::create(dir.join(".lock"))?;
    f.lock()?;
    Ok(f)
}

fn try_lock_dir(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    if !dir.is_dir() {
        return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
