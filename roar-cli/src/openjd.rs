//! OpenJD integration: environment templates that record every task of a
//! job, and the small pieces of roar those templates call.
//!
//! * `--mode wrap` uses the `WRAP_ACTIONS` extension (see
//!   reference: RFC 0008 as released): `onWrapTaskRun` runs `roar run` on the
//!   wrapped task, with the step name as label and the task's timeout and
//!   cancelation forwarded to the hook, so the runtime treats roar exactly as
//!   it would treat the task. The enter/exit hooks go through
//!   `roar openjd env-action`, which notes the environment's name for the
//!   session and then `exec`s the inner action unchanged (or records it with
//!   `roar run` when the template parameter asks for it).
//! * `--mode preload` needs no extension: `onEnter` exports `LD_PRELOAD` and
//!   `ROAR_TRACE_DIR` (a directory of its own per session) through
//!   `openjd_env`, and `onExit` runs `roar ingest --remove` on it (the
//!   session's directory is gone afterwards unless something was left).
//!
//! The store is never the session directory (the runtime deletes it): the
//! template's `RoarDb` parameter wins; empty (the default), `ROAR_DB` from the
//! worker's environment does; failing both, the store roar finds where the
//! template is generated (`ROAR_DB`, else the nearest `.roar/roar.db`, else
//! the one `roar init` would create there), passed as `--db-fallback`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::Path;

use anyhow::Result;
use roar_core::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Wrap,
    Preload,
}

/// A YAML double-quoted scalar.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Paths embedded in the template.
pub struct Paths<'a> {
    pub roar: &'a Path,
    pub lib: &'a Path,
    pub db: &'a Path,
}

fn parameters(p: &Paths<'_>, extra: &str) -> String {
    let mut text = format!(
        "parameterDefinitions:
- name: RoarDb
  type: STRING
  description: {desc}
  default: \"\"
",
        desc = q(&format!(
            "The roar store (roar.db) runs are recorded in; empty: ROAR_DB from the worker's environment, else {}. Never inside the session directory, which the runtime deletes.",
            p.db.display()
        )),
    );
    text.push_str(
        "- name: RoarRemote
  type: STRING
  description: \"A team store (postgresql://...) every recorded run is pushed to when it ends; empty: ROAR_REMOTE from the worker's environment or [remote] in the store's config. A push never fails a task.\"
  default: \"\"
",
    );
    text.push_str(extra);
    text
}

/// The parameters of both wrap templates beyond the store and the remote.
const WRAP_PARAMETERS: &str = "- name: RoarBackend
  type: STRING
  description: The roar backend that traces each task.
  default: auto
  allowedValues: [auto, preload, ptrace, ebpf]
- name: RoarRecordEnvironments
  type: STRING
  description: \"true: also record the enter and exit actions of the session's other environments as runs.\"
  default: \"false\"
  allowedValues: [\"true\", \"false\"]
";

/// The environment template for `mode`.
/// The end of every wrap hook: the wrapped action's command and arguments
/// after `--`, and its timeout and cancelation passed through unchanged.
const WRAPPED_ACTION: &str = "        - --
        - \"{{WrappedAction.Command}}\"
        - \"{{WrappedAction.Args}}\"
        timeout: \"{{WrappedAction.Timeout}}\"
        cancelation:
          mode: \"{{WrappedAction.Cancelation.Mode}}\"
          notifyPeriodInSeconds: \"{{WrappedAction.Cancelation.NotifyPeriodInSeconds}}\"
";

/// `ebpf_persist` (`--ebpf-persist`, wrap mode) adds the RoarEbpfPersist
/// parameter and the onEnter/onExit actions that hold the pinned eBPF
/// programs for the session; without it the template has no actions
/// beyond the wrap hooks, so a session runs exactly the actions it would
/// unwrapped.
pub fn template(mode: Mode, p: &Paths<'_>, ebpf_persist: bool) -> String {
    match mode {
        Mode::Wrap => wrap_template(p, ebpf_persist),
        Mode::Preload => preload_template(p),
    }
}

/// RoarEbpfPersist: the session loads roar's eBPF programs in onEnter and
/// releases its hold in onExit (`roar ebpf load|unload --holder`, named
/// after the session's working directory).
const EBPF_PARAM: &str = "- name: RoarEbpfPersist
  type: STRING
  description: \"true: load roar's eBPF programs once in onEnter (pinned in bpffs, held by this session) so each eBPF task only registers, and release them in onExit. Needs root.\"
  default: \"true\"
  allowedValues: [\"true\", \"false\"]
";

fn ebpf_hold(roar: &str) -> String {
    let action = |hook: &str, verb: &str| {
        format!(
            "      {hook}:
        command: {roar}
        args:
        - ebpf
        - {verb}
        - --holder=openjd:{{{{Session.WorkingDirectory}}}}
        - --when={{{{Param.RoarEbpfPersist}}}}
"
        )
    };
    action("onEnter", "load") + &action("onExit", "unload")
}

/// `--mode wrap`: every task through `roar run`, with the step as label.
fn wrap_template(p: &Paths<'_>, ebpf_persist: bool) -> String {
    let roar = q(&p.roar.to_string_lossy());
    {
        {
            let params =
                parameters(p, WRAP_PARAMETERS) + if ebpf_persist { EBPF_PARAM } else { "" };
            let fallback = q(&format!("--db-fallback={}", p.db.display()));
            let env_hook = |phase: &str| {
                format!(
                    "      {hook}:
        command: {roar}
        args:
        - openjd
        - env-action
        - --phase={phase}
        - --name={{{{WrappedEnv.Name}}}}
        - --record={{{{Param.RoarRecordEnvironments}}}}
        - --remote={{{{Param.RoarRemote}}}}
        - --db={{{{Param.RoarDb}}}}
        - {fallback}
        - --backend={{{{Param.RoarBackend}}}}
{wrapped}",
                    wrapped = WRAPPED_ACTION,
                    hook = if phase == "enter" {
                        "onWrapEnvEnter"
                    } else {
                        "onWrapEnvExit"
                    },
                )
            };
            format!(
                "# Generated by `roar openjd template --mode wrap`.
# Records every task of the session with `roar run` (label: the step name).
# Use: openjd run job.yaml --environment this.yaml [-p RoarDb=/abs/roar.db]
specificationVersion: environment-2023-09
extensions: [EXPR, WRAP_ACTIONS, FEATURE_BUNDLE_1]
{params}environment:
  name: RoarProvenance
  description: Records what every task reads, writes and runs in a roar store.
  script:
    actions:
{hold}{enter}      onWrapTaskRun:
        command: {roar}
        args:
        - run
        - --remote={{{{Param.RoarRemote}}}}
        - --db={{{{Param.RoarDb}}}}
        - {fallback}
        - --backend={{{{Param.RoarBackend}}}}
        - --label={{{{WrappedStep.Name}}}}
{wrapped}{exit}",
                wrapped = WRAPPED_ACTION,
                hold = if ebpf_persist {
                    ebpf_hold(&roar)
                } else {
                    String::new()
                },
                enter = env_hook("enter"),
                exit = env_hook("exit"),
            )
        }
    }
}

/// `--mode preload`: the library exported to every later action through
/// `openjd_env`, the traces ingested in `onExit`.
fn preload_template(p: &Paths<'_>) -> String {
    let roar = q(&p.roar.to_string_lossy());
    {
        {
            let params = parameters(
                p,
                "- name: RoarTraceRoot
  type: STRING
  description: Each session writes its traces to a directory of its own below this one.
  default: \"\"
",
            );
            let default_root =
                p.db.parent()
                    .unwrap_or(Path::new("/"))
                    .join("traces")
                    .join("openjd");
            // The session directory's name is unique per session; the
            // runtime starts onEnter in it. A worker's own LD_PRELOAD is kept
            // behind roar's library.
            let enter = "root=\"${1:-$2}\"; dir=\"$root/$(basename \"$PWD\")\"; mkdir -p -- \"$dir\" && printf 'openjd_env: LD_PRELOAD=%s%s\\nopenjd_env: ROAR_TRACE_DIR=%s\\n' \"$3\" \"${LD_PRELOAD:+:$LD_PRELOAD}\" \"$dir\"";
            format!(
                "# Generated by `roar openjd template --mode preload`.
# Preloads roar's library into every later action of the session; onExit
# turns what it recorded into runs (one per task). No extension needed, but
# no per-task labels, and static or set-user-ID programs are not seen.
specificationVersion: environment-2023-09
{params}environment:
  name: RoarPreload
  description: Records what every action of the session reads, writes and runs in a roar store.
  script:
    actions:
      onEnter:
        command: /bin/sh
        args:
        - -c
        - {enter}
        - roar-preload
        - \"{{{{Param.RoarTraceRoot}}}}\"
        - {root}
        - {lib}
      onExit:
        command: {roar}
        args:
        - ingest
        - --remote={{{{Param.RoarRemote}}}}
        - --db={{{{Param.RoarDb}}}}
        - {fallback}
        - --settle=0
        - --remove
",
                enter = q(enter),
                root = q(&default_root.to_string_lossy()),
                lib = q(&p.lib.to_string_lossy()),
                fallback = q(&format!("--db-fallback={}", p.db.display())),
            )
        }
    }
}

pub struct EnvAction {
    pub phase: String,
    pub name: String,
    pub record: bool,
    /// The team store recorded actions are pushed to (empty: none named).
    pub remote: Option<String>,
    pub backend: String,
    pub command: Vec<OsString>,
}

/// `roar openjd env-action`: notes the environment for the session (on
/// enter), then becomes the inner action (`exec`, so pid, stdio, signals and
/// exit status are the action's own), or records it with `roar run`.
pub fn env_action(a: EnvAction) -> Result<std::convert::Infallible> {
    if a.phase == "enter"
        && let Some(wd) = std::env::var_os("OPENJD_SESSION_WORKING_DIR")
        && let Ok(cwd) = std::env::current_dir()
        && let Some(loc) = roar_core::location::find(&cwd)
    {
        roar_core::openjd::note_environment(&loc.roar_dir(), Path::new(&wd), &a.name);
    }
    if a.record {
        return crate::run::run(crate::run::Options {
            backend: a.backend,
            label: Some(format!("{} ({})", a.name, a.phase)),
            timeout: None,
            quiet: false,
            push: false,
            remote: a.remote,
            openlineage_url: None,
            command: a.command,
        });
    }
    let err = std::process::Command::new(&a.command[0])
        .args(&a.command[1..])
        .exec();
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    Err(Error::setup(
        code,
        format!("cannot run {}: {err}", a.command[0].to_string_lossy()),
    )
    .into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ContainerRuntime {
    Docker,
    Podman,
}

/// `roar openjd template --container ...`: every task (and inner environment action) in a
/// container, under `roar run` there.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ContainerArgs {
    /// Run each task in a container of this engine (needs --image).
    #[arg(long, value_enum)]
    pub container: Option<ContainerRuntime>,
    /// The image the tasks run in (the template's RoarImage parameter defaults to it).
    #[arg(long, required_if_eq_any = [("container", "docker"), ("container", "podman")])]
    pub image: Option<String>,
    /// session: one container for the session; task: one per task; external: a running one.
    #[arg(long, default_value = "session", value_parser = ["session", "task", "external"])]
    pub lifetime: String,
    /// The container's name (external: the one to attach to; default roar-<session id>).
    #[arg(long)]
    pub name: Option<String>,
    /// SRC:DST[:OPTIONS] bind-mounted into the container (repeat).
    #[arg(long = "mount", value_name = "SRC:DST")]
    pub mounts: Vec<String>,
    /// One more argument for `docker run` (repeat: --run-arg=--network --run-arg=none).
    #[arg(long = "run-arg", allow_hyphen_values = true, value_name = "ARG")]
    pub run_args: Vec<String>,
}

/// `--mode wrap --container RT`: the session's container started in `onEnter` and removed in
/// `onExit` (or one per task, or the user's), every wrapped action run in it by
/// `roar openjd container task`.
pub fn container_template(
    p: &Paths<'_>,
    rt: ContainerRuntime,
    c: &ContainerArgs,
) -> Result<String> {
    let roar = q(&p.roar.to_string_lossy());
    let rt = match rt {
        ContainerRuntime::Docker => "docker",
        ContainerRuntime::Podman => "podman",
    };
    let image = c.image.clone().unwrap_or_default();
    if c.lifetime == "external" && c.name.as_deref().unwrap_or("").is_empty() {
        anyhow::bail!("--lifetime external needs --name: the running container to attach to");
    }
    let params = parameters(
        p,
        &format!(
            "{WRAP_PARAMETERS}- name: RoarImage
  type: STRING
  description: The image the tasks run in.
  default: {image}
- name: RoarContainer
  type: STRING
  description: {name_desc}
  default: {name}
",
            image = q(&image),
            name = q(c.name.as_deref().unwrap_or("")),
            name_desc = q(if c.lifetime == "external" {
                "The running container to attach to (never stopped by roar)."
            } else {
                "The container's name; empty: roar-<session id>."
            }),
        ),
    );
    let mut spec = vec![
        format!("--runtime={rt}"),
        "--image={{Param.RoarImage}}".to_string(),
        format!("--lifetime={}", c.lifetime),
        "--container-name={{Param.RoarContainer}}".to_string(),
        "--db={{Param.RoarDb}}".to_string(),
        format!("--db-fallback={}", p.db.display()),
    ];
    spec.extend(c.mounts.iter().map(|m| format!("--mount={m}")));
    spec.extend(c.run_args.iter().map(|a| format!("--run-arg={a}")));
    let spec: String = spec
        .iter()
        .map(|a| format!("        - {}\n", q(a)))
        .collect();
    let plain = |name: &str, what: &str| {
        format!(
            "      {name}:
        command: {roar}
        args:
        - openjd
        - container
        - {what}
{spec}"
        )
    };
    let hook = |name: &str, phase: &str, label: &str| {
        format!(
            "{}        - --phase={phase}
        - --label={label}
        - --record={{{{Param.RoarRecordEnvironments}}}}
        - --remote={{{{Param.RoarRemote}}}}
        - --backend={{{{Param.RoarBackend}}}}
        - --
        - \"{{{{WrappedAction.Environment}}}}\"
{WRAPPED_ACTION}",
            plain(name, "task")
        )
    };
    Ok(format!(
        "# Generated by `roar openjd template --mode wrap --container {rt}`.
# Runs every task of the session in a {rt} container of RoarImage ({lifetime} lifetime) and
# records it there with `roar run` (label: the step name). roar and its library are mounted
# read-only from this machine; the session directory and the store's directory are mounted
# at the same paths.
# Use: openjd run job.yaml --environment this.yaml [-p RoarDb=/abs/roar.db]
specificationVersion: environment-2023-09
extensions: [EXPR, WRAP_ACTIONS, FEATURE_BUNDLE_1]
{params}environment:
  name: RoarContainer
  description: Runs every task in a container and records what it reads, writes and runs.
  script:
    actions:
{enter}{env_enter}{task}{env_exit}{exit}",
        lifetime = c.lifetime,
        enter = plain("onEnter", "enter"),
        env_enter = hook("onWrapEnvEnter", "enter", "{{WrappedEnv.Name}}"),
        task = hook("onWrapTaskRun", "task", "{{WrappedStep.Name}}"),
        env_exit = hook("onWrapEnvExit", "exit", "{{WrappedEnv.Name}}"),
        exit = plain("onExit", "exit"),
    ))
}
