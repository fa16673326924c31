//! `roar openjd container ...`: the hooks of the container wrap template (`roar openjd
//! template --container docker|podman`). The work is `roar_core::container`'s; this parses
//! what the template passes and says on stderr what happened (never an `openjd_` line).

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use roar_core::container::{self, Action, Lifetime, Runtime, Spec};

/// The container, as every hook of the template names it.
#[derive(Args, Clone, Debug)]
pub struct SpecArgs {
    /// docker or podman.
    #[arg(long, default_value = "docker")]
    pub runtime: String,
    #[arg(long)]
    pub image: String,
    /// session, task or external.
    #[arg(long, default_value = "session")]
    pub lifetime: String,
    /// The container's name (external: the one to attach to); empty: roar-<session id>.
    #[arg(long = "container-name", default_value = "")]
    pub name: String,
    /// SRC:DST[:OPTIONS], bind-mounted as `-v` would.
    #[arg(long = "mount")]
    pub mounts: Vec<String>,
    /// One more argument for `docker run` (repeat: --run-arg=--network --run-arg=none).
    #[arg(long = "run-arg", allow_hyphen_values = true)]
    pub run_args: Vec<String>,
}

#[derive(Subcommand)]
pub enum ContainerCmd {
    /// onEnter: start the session's container, or check the external one.
    Enter {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// onExit: remove the session's container.
    Exit {
        #[command(flatten)]
        spec: SpecArgs,
    },
    /// A wrap hook: run the action in the container under roar: `-- K=V... -- COMMAND ARGS`.
    Task {
        #[command(flatten)]
        spec: SpecArgs,
        /// task, enter or exit.
        #[arg(long, default_value = "task")]
        phase: String,
        /// The step (task) or environment (enter/exit) name.
        #[arg(long, default_value = "")]
        label: String,
        /// Record inner environments' actions too.
        #[arg(long, default_value = "false")]
        record: String,
        #[arg(long, default_value = "")]
        remote: String,
        #[arg(long, default_value = "auto")]
        backend: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
        args: Vec<OsString>,
    },
    /// Inside the container: run roar with ARGS, for the host side.
    Entry {
        #[arg(long)]
        pid_file: PathBuf,
        #[arg(long)]
        status_file: PathBuf,
        #[arg(long, default_value = "")]
        context: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, num_args = 1..)]
        args: Vec<OsString>,
    },
    /// Inside the container: signal the entry whose pid is in PID_FILE.
    Signal {
        #[arg(long)]
        pid_file: PathBuf,
        #[arg(long)]
        signal: i32,
    },
    /// The session container's pid 1.
    Idle,
}

fn spec(a: SpecArgs) -> Result<Spec> {
    let cwd = std::env::current_dir()?;
    let (loc, _) = roar_core::location::find_or_init(&cwd)?;
    Ok(Spec {
        runtime: Runtime::parse(&a.runtime)?,
        image: a.image,
        lifetime: Lifetime::parse(&a.lifetime)?,
        name: a.name,
        mounts: a.mounts,
        run_args: a.run_args,
        db: std::path::absolute(&loc.db).unwrap_or(loc.db),
    })
}

/// The session directory: the hooks run in it.
fn session_dir() -> Result<PathBuf> {
    Ok(std::env::var_os("OPENJD_SESSION_WORKING_DIR")
        .map(PathBuf::from)
        .unwrap_or(std::env::current_dir()?))
}

pub fn dispatch(cmd: ContainerCmd) -> Result<()> {
    match cmd {
        ContainerCmd::Enter { spec: a } => {
            let said = container::enter(&spec(a)?, &session_dir()?)?;
            eprintln!("roar: {said}");
        }
        ContainerCmd::Exit { spec: a } => {
            let said = container::exit(&spec(a)?, &session_dir()?)?;
            if !said.is_empty() {
                eprintln!("roar: {said}");
            }
        }
        ContainerCmd::Task {
            spec: a,
            phase,
            label,
            record,
            remote,
            backend,
            args,
        } => {
            let spec = spec(a)?;
            let (env, command) = container::split_env(&args)?;
            let mut inner: Vec<OsString> = vec![format!("--db={}", spec.db.display()).into()];
            if phase == "task" {
                inner.extend(["run".into(), format!("--label={label}").into()]);
            } else {
                inner.extend([
                    "openjd".into(),
                    "env-action".into(),
                    format!("--phase={phase}").into(),
                    format!("--name={label}").into(),
                    format!("--record={record}").into(),
                ]);
            }
            inner.extend([
                format!("--remote={remote}").into(),
                format!("--backend={backend}").into(),
                "--".into(),
            ]);
            inner.extend(command);
            let action = Action {
                roar_args: inner,
                env,
            };
            match container::run_action(&spec, &session_dir()?, action)? {}
        }
        ContainerCmd::Entry {
            pid_file,
            status_file,
            context,
            args,
        } => match container::entry(&pid_file, &status_file, &context, &args)? {},
        ContainerCmd::Signal { pid_file, signal } => container::signal(&pid_file, signal)?,
        ContainerCmd::Idle => container::idle(),
    }
    Ok(())
}
