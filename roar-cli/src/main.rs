//! `roar`: record what a command reads, writes and runs, with content hashes
//! and git context, in a SQLite provenance store.
//!
//! This is the only crate that prints. Errors from every command end up in
//! [`main`], which maps them to exit codes in one place.
#![deny(unsafe_code)]

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod container;
mod diff;
mod doctor;
mod ebpf;
mod export;
mod json;
mod k8s;
mod lineage;
mod openjd;
mod progress;
mod remote;
mod reproduce;
mod run;
mod show;
mod sources;
mod status;
mod style;
mod tree;

use roar_core::{location, paths, recover};

#[derive(Parser)]
#[command(
    name = "roar",
    version,
    about = "Record what commands read and write, and where every file came from."
)]
struct Cli {
    /// The store to use (overrides ROAR_DB and discovery; created if missing).
    /// `--db=` (empty, as OpenJD templates pass an unset parameter) means none.
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<OsString>,
    /// The store when neither --db nor ROAR_DB names one (used by OpenJD templates).
    #[arg(long, global = true, value_name = "PATH", hide = true)]
    db_fallback: Option<OsString>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create DIR/.roar/ (default: the git top level, else the current directory).
    Init { dir: Option<PathBuf> },
    /// Run a command traced and record what it read, wrote and ran.
    Run {
        /// auto, preload, ptrace or ebpf (also ROAR_BACKEND).
        #[arg(long, env = "ROAR_BACKEND", default_value = "auto")]
        backend: String,
        /// A name for the run.
        #[arg(long)]
        label: Option<String>,
        /// SIGTERM the command after SECS seconds, SIGKILL 5 s later.
        #[arg(long, value_name = "SECS")]
        timeout: Option<f64>,
        /// No summary line.
        #[arg(short, long)]
        quiet: bool,
        /// Push the run to the team store when it is recorded (never failing the run).
        #[arg(long)]
        push: bool,
        /// The team store (postgresql://...); naming one pushes the run there.
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// POST the run's OpenLineage events to this lineage server (http://; also
        /// `[openlineage] url`), never failing the run when it is down.
        #[arg(long, value_name = "URL", env = "ROAR_OPENLINEAGE_URL")]
        openlineage_url: Option<String>,
        /// The command and its arguments, passed on verbatim.
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
        command: Vec<OsString>,
    },
    /// Recorded runs, newest first.
    Log {
        #[arg(long)]
        json: bool,
        /// Show at most N runs.
        #[arg(short = 'n', value_name = "N")]
        n: Option<usize>,
    },
    /// One run in full: id, @N, latest, or a path (the run that last wrote it).
    Show {
        #[arg(value_name = "REF", default_value = "latest")]
        reference: String,
        #[arg(long)]
        json: bool,
        /// Also list the system and tool files the filter hides.
        #[arg(long)]
        all: bool,
    },
    /// Everything upstream of PATH's recorded content: runs, commands, git commits, inputs,
    /// down to the sources no run produced. A run REF (id, @N, latest) works too.
    Lineage {
        #[arg(value_name = "PATH|REF")]
        target: OsString,
        #[arg(long)]
        json: bool,
    },
    /// What is stale, and why: runs whose inputs changed on disk or were re-produced, everything
    /// downstream of them, and outputs changed since they were recorded.
    Status {
        #[arg(long)]
        json: bool,
        /// Also stale: runs whose packages are now at other versions where they were installed.
        #[arg(long)]
        packages: bool,
    },
    /// The whole graph of runs and artifacts.
    Dag {
        #[arg(long, conflicts_with = "dot")]
        json: bool,
        /// Graphviz DOT (render with `dot -Tsvg`).
        #[arg(long)]
        dot: bool,
    },
    /// The store in a portable form: json (as `dag --json`), dot, W3C PROV-JSON, or
    /// OpenLineage RunEvents (JSON Lines).
    Export {
        #[arg(long, value_enum)]
        format: export::Format,
        /// Write to FILE instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// The recorded runs that rebuild PATH, in dependency order (a run REF works too).
    Reproduce {
        #[arg(value_name = "PATH|REF")]
        target: OsString,
        /// Print a POSIX shell script that runs them, stopping at the first failure.
        #[arg(long, conflicts_with = "json")]
        script: bool,
        #[arg(long)]
        json: bool,
    },
    /// Turn traces the preload library wrote on its own into runs, one per process tree.
    Ingest {
        /// The trace directory (default: $ROAR_TRACE_DIR).
        dir: Option<PathBuf>,
        /// A tree whose first process has not exited, in another pid namespace, is left for
        /// later while its streams changed in the last SECS seconds.
        #[arg(long, value_name = "SECS", default_value_t = 60.0)]
        settle: f64,
        /// A label for every run ingested.
        #[arg(long)]
        label: Option<String>,
        /// Only errors.
        #[arg(short, long)]
        quiet: bool,
        /// Delete the stream files of trees that are in the store (and DIR, once empty).
        #[arg(long)]
        remove: bool,
        /// Push the runs to the team store (never failing the ingest).
        #[arg(long)]
        push: bool,
        /// The team store (postgresql://...); naming one pushes there.
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        /// POST the run's OpenLineage events to this lineage server (http://; also
        /// `[openlineage] url`), never failing the run when it is down.
        #[arg(long, value_name = "URL", env = "ROAR_OPENLINEAGE_URL")]
        openlineage_url: Option<String>,
    },
    /// Send finished runs to the team store (PostgreSQL); idempotent.
    Push {
        /// postgresql://[user@]host[:port]/db[?sslmode=...] (else ROAR_REMOTE, else [remote] url).
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Bring the other stores' runs from the team store into this one; idempotent.
    Pull {
        /// postgresql://[user@]host[:port]/db[?sslmode=...] (else ROAR_REMOTE, else [remote] url).
        #[arg(long, value_name = "URL")]
        remote: Option<String>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// What differs between two runs: command, cwd, files by hash, packages, git, environment
    /// values, exit status, duration.
    Diff {
        #[arg(value_name = "A")]
        a: String,
        #[arg(value_name = "B")]
        b: String,
        #[arg(long)]
        json: bool,
    },
    /// The inputs of PATH's lineage that no recorded run produced: the data and code it rests on.
    Sources {
        #[arg(value_name = "PATH|REF")]
        target: OsString,
        #[arg(long)]
        json: bool,
    },
    /// Shell completions (bash, zsh, fish) on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The man page (roff) on stdout: `roar man > roar.1`.
    Man,
    /// Which backends work on this machine, and exactly why not.
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// The eBPF programs loaded once for a session or a machine.
    Ebpf {
        #[command(subcommand)]
        cmd: ebpf::EbpfCmd,
    },
    /// OpenJD: environment templates that record every task of a job.
    Openjd {
        #[command(subcommand)]
        cmd: OpenjdCmd,
    },
    /// Kubernetes: a pod template that records a pod's user container.
    K8s {
        #[command(subcommand)]
        cmd: K8sCmd,
    },
}

#[derive(Subcommand)]
enum K8sCmd {
    /// Print the pod template (only LD_PRELOAD and ROAR_TRACE_DIR in the user
    /// container) and the Job that ingests its traces.
    PodTemplate {
        /// Print an entry of OSMO's POD_TEMPLATE config (user container `{{USER_CONTAINER_NAME}}`).
        #[arg(long)]
        osmo: bool,
        /// The image with roar and its library (examples/kubernetes/Dockerfile.roar).
        #[arg(long, value_name = "IMAGE", default_value = "roar:latest")]
        roar_image: String,
        #[arg(long, value_enum, default_value = "yaml")]
        format: k8s::Format,
    },
}

#[derive(Subcommand)]
enum OpenjdCmd {
    /// Print an environment template (`openjd run --environment`).
    Template {
        #[arg(long, value_enum, default_value = "wrap")]
        mode: openjd::Mode,
        #[command(flatten)]
        container: openjd::ContainerArgs,
        /// Add RoarEbpfPersist: the session loads the eBPF programs in onEnter and releases them in onExit.
        #[arg(long)]
        ebpf_persist: bool,
    },
    /// The container wrap template's hooks.
    #[command(hide = true)]
    Container {
        #[command(subcommand)]
        cmd: container::ContainerCmd,
    },
    /// Used by the wrap template's enter/exit hooks: note the environment, then run its action.
    #[command(hide = true)]
    EnvAction {
        #[arg(long)]
        phase: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "false")]
        record: String,
        #[arg(long)]
        remote: Option<String>,
        #[arg(long, env = "ROAR_BACKEND", default_value = "auto")]
        backend: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
        command: Vec<OsString>,
    },
}

fn main() {
    roar_core::container::take_context();
    let cli = Cli::parse();
    if let Some(db) = cli.db {
        location::set_override(db.into());
    }
    if let Some(db) = cli.db_fallback {
        location::set_fallback(db.into());
    }
    let result = match cli.cmd {
        Cmd::Init { dir } => init(dir),
        Cmd::Run {
            backend,
            label,
            timeout,
            quiet,
            push,
            remote,
            openlineage_url,
            command,
        } => run::run(run::Options {
            backend,
            label,
            timeout,
            quiet,
            push,
            remote,
            openlineage_url,
            command,
        })
        .map(|never| match never {}),
        Cmd::Log { json, n } => log(json, n),
        Cmd::Show {
            reference,
            json,
            all,
        } => show(&reference, json, all),
        Cmd::Ingest {
            dir,
            settle,
            label,
            quiet,
            remove,
            push,
            remote,
            openlineage_url,
        } => run::ingest(run::IngestOptions {
            dir,
            settle,
            label,
            quiet,
            remove,
            push,
            remote,
            openlineage_url,
        }),
        Cmd::Push { remote, quiet } => remote::push(remote.as_deref(), quiet),
        Cmd::Pull { remote, quiet } => remote::pull(remote.as_deref(), quiet),
        Cmd::Doctor { json } => doctor::doctor(json),
        Cmd::Ebpf { cmd } => ebpf::run(cmd),
        Cmd::Openjd { cmd } => openjd_cmd(cmd),
        Cmd::K8s {
            cmd:
                K8sCmd::PodTemplate {
                    osmo,
                    roar_image,
                    format,
                },
        } => k8s::pod_template(osmo, roar_image, format),
        Cmd::Lineage { target, json } => {
            open_store().and_then(|s| lineage::lineage(&s, &target, json, &cwd()?))
        }
        Cmd::Status { json, packages } => {
            open_store().and_then(|s| status::status(&s, json, packages, &cwd()?))
        }
        Cmd::Diff { a, b, json } => open_store().and_then(|s| diff::run(&s, &a, &b, json, &cwd()?)),
        Cmd::Sources { target, json } => {
            open_store().and_then(|s| sources::sources(&s, &target, json, &cwd()?))
        }
        Cmd::Completions { shell } => completions(Some(shell)),
        Cmd::Man => completions(None),
        Cmd::Dag { json: true, .. } => export(export::Format::Json, None),
        Cmd::Dag { dot: true, .. } => export(export::Format::Dot, None),
        Cmd::Dag { .. } => dag_text(),
        Cmd::Export { format, output } => export(format, output),
        Cmd::Reproduce {
            target,
            script,
            json,
        } => open_store().and_then(|s| reproduce::reproduce(&s, &target, script, json, &cwd()?)),
    };
    if let Err(e) = result {
        exit_with(e);
    }
}

/// Ends roar for an error: quietly for a closed stdout (`roar log | head`), else saying it,
/// with the status the error carries.
fn exit_with(e: anyhow::Error) -> ! {
    if e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        std::process::exit(0);
    }
    let code = e
        .downcast_ref::<roar_core::Error>()
        .map_or(1, roar_core::Error::exit_code);
    eprintln!("roar: {e:#}");
    std::process::exit(code);
}

fn openjd_cmd(cmd: OpenjdCmd) -> Result<()> {
    match cmd {
        OpenjdCmd::Template {
            mode,
            container,
            ebpf_persist,
        } => openjd_template(mode, container, ebpf_persist),
        OpenjdCmd::Container { cmd } => container::dispatch(cmd),
        OpenjdCmd::EnvAction {
            phase,
            name,
            record,
            remote,
            backend,
            command,
        } => openjd::env_action(openjd::EnvAction {
            phase,
            name,
            record: record == "true",
            remote,
            backend,
            command,
        })
        .map(|never| match never {}),
    }
}

/// Shell completions for `shell`, or (`None`) the man page.
fn completions(shell: Option<clap_complete::Shell>) -> Result<()> {
    use clap::CommandFactory;
    let mut out = std::io::stdout().lock();
    match shell {
        Some(shell) => clap_complete::generate(shell, &mut Cli::command(), "roar", &mut out),
        None => clap_mangen::Man::new(Cli::command()).render(&mut out)?,
    }
    Ok(())
}

fn cwd() -> Result<PathBuf> {
    std::env::current_dir().context("cannot read the current directory")
}

fn init(dir: Option<PathBuf>) -> Result<()> {
    let cwd = cwd()?;
    let dir = match dir {
        Some(d) => cwd.join(d),
        None => location::default_root(&cwd),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let loc = location::init(&dir)?;
    let existed = loc.db.exists();
    dag::Store::open(&loc.db)?;
    let verb = if existed {
        "already initialised"
    } else {
        "initialised"
    };
    eprintln!("roar: {verb} {}", loc.roar_dir().display());
    Ok(())
}

fn open_store() -> Result<dag::Store> {
    Ok(open_located()?.1)
}

/// The store found from the cwd, open, with runs of dead roars recovered.
pub(crate) fn open_located() -> Result<(location::Location, dag::Store)> {
    let loc = location::require(&cwd()?)?;
    let store = dag::Store::open(&loc.db)?;
    recover::recover(&store, &loc.roar_dir());
    Ok((loc, store))
}

fn log(json: bool, n: Option<usize>) -> Result<()> {
    let store = open_store()?;
    let runs = store.runs(n)?;
    let mut out = std::io::stdout().lock();
    if json {
        let arr = json::Json::Arr(runs.iter().map(|r| show::run_json(r, false)).collect());
        writeln!(out, "{}", arr.to_pretty())?;
    } else {
        show::log_text(&mut out, &runs, &show::Style::detect())?;
    }
    Ok(())
}

fn show(reference: &str, json: bool, all: bool) -> Result<()> {
    let store = open_store()?;
    let id = store.resolve_ref(reference, &cwd()?)?;
    let run = store.run(id)?;
    let env = store.environment(id)?;
    let mut out = std::io::stdout().lock();
    if json {
        let mut obj = show::run_json(&run, all);
        if let json::Json::Obj(fields) = &mut obj {
            fields.push(("environment".into(), show::environment_json(&env)));
            fields.push(("container".into(), show::container_json(&env)));
        }
        writeln!(out, "{}", obj.to_pretty())?;
    } else {
        let st = show::Style::detect();
        show::show_text(&mut out, &run, all, &st)?;
        show::environment_text(&mut out, &env, &st)?;
    }
    Ok(())
}

fn openjd_template(
    mode: openjd::Mode,
    container: openjd::ContainerArgs,
    ebpf_persist: bool,
) -> Result<()> {
    if ebpf_persist && mode != openjd::Mode::Wrap {
        anyhow::bail!(
            "--ebpf-persist goes with --mode wrap: preload-mode tasks are traced by LD_PRELOAD, not eBPF"
        );
    }
    if ebpf_persist && container.container.is_some() {
        anyhow::bail!(
            "--ebpf-persist does not go with --container: in a container roar traces with preload or ptrace (eBPF needs the host's pid namespace)"
        );
    }
    let loc = location::find_or_default(&cwd()?);
    let db = std::path::absolute(&loc.db).unwrap_or(loc.db);
    let roar = std::env::current_exe().context("cannot tell where the roar binary is")?;
    let lib = roar_core::backend::preload::find_library()
        .map_err(|e| roar_core::Error::setup(roar_core::error::SETUP_FAILED, e))?;
    let paths = openjd::Paths {
        roar: &roar,
        lib: &lib,
        db: &db,
    };
    let text = match container.container {
        Some(_) if mode != openjd::Mode::Wrap => {
            anyhow::bail!("--container needs --mode wrap: the container runs each wrapped task")
        }
        Some(rt) => openjd::container_template(&paths, rt, &container)?,
        None => openjd::template(mode, &paths, ebpf_persist),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

fn export(format: export::Format, output: Option<PathBuf>) -> Result<()> {
    let (loc, store) = open_located()?;
    let root = paths::to_bytes(&loc.root);
    let cfg = roar_core::config::load(&loc.roar_dir())?;
    let ns = roar_core::openlineage::namespace(&loc, &cfg);
    match output {
        Some(path) => {
            let path = cwd()?.join(path);
            let file = std::fs::File::create(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = std::io::BufWriter::new(file);
            export::write(&store, format, &root, &ns, &mut w)?;
            w.flush()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        None => {
            let mut w = std::io::BufWriter::new(std::io::stdout().lock());
            export::write(&store, format, &root, &ns, &mut w)?;
            w.flush()?;
        }
    }
    Ok(())
}

/// `roar dag` without a format: every run with what it read and wrote, oldest first.
fn dag_text() -> Result<()> {
    let (loc, store) = open_located()?;
    let root = paths::to_bytes(&loc.root);
    let st = show::Style::detect();
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    store.for_each_run(|r| -> Result<()> {
        writeln!(w, "{}", st.bold(&lineage::run_title(&r)))?;
        for (arrow, list) in [("<-", &r.inputs), ("->", &r.outputs)] {
            for f in list.iter().filter(|f| !f.filtered) {
                writeln!(
                    w,
                    "    {arrow} {}  {}",
                    paths::display_rel(&f.path, &root),
                    st.dim(&lineage::short(f.hash.as_deref()))
                )?;
            }
        }
        Ok(())
    })?;
    w.flush()?;
    Ok(())
}
