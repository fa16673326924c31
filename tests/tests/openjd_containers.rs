//! OpenJD tasks in containers, end to end: the real OpenJD runtime runs a job with the
//! template `roar openjd template --mode wrap --container docker` prints, under a private
//! dockerd (see `containers/docker.rs`), in a bookworm image built without a registry. Each
//! lifetime (session, task, external): what the runtime sees is what it sees without roar
//! and without a container (the same `openjd_` lines, exit codes, files), every task is a run
//! labelled with its step, recorded inside the container with the container named, lineage
//! joins the steps, and no container is left behind (the external one keeps running).
//!
//! They need root and the installed static roar (`ROAR_TEST_BIN`); elsewhere they are
//! skipped and say so. Under CI they must run.

// Both are shared with other test files, which use what this one does not.
#[allow(dead_code)]
#[path = "openjd/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "containers/docker.rs"]
mod docker;
#[path = "containers/podman.rs"]
mod podman;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use docker::{Docker, available_installed};
use podman::Podman;
use serde_json::Value;
use tests::{Sandbox, check, output, preload_lib, roar_bin, send_signal, wait_for};

const IMAGE: &str = "bookworm";

/// The container engine under test, private to the test.
enum Engine {
    Docker(Docker),
    Podman(Podman),
}

/// A sandbox whose OpenJD hooks reach the private engine.
struct Setup {
    sb: Sandbox,
    engine: Engine,
}

impl Setup {
    fn new() -> Option<Setup> {
        available_installed()?;
        let docker = Docker::start();
        docker.image(IMAGE);
        Some(Setup {
            sb: Sandbox::bare(),
            engine: Engine::Docker(docker),
        })
    }

    fn podman() -> Option<Setup> {
        available_installed()?;
        let podman = Podman::start()?;
        podman.image(IMAGE, &docker::image_tar(IMAGE));
        Some(Setup {
            sb: Sandbox::bare(),
            engine: Engine::Podman(podman),
        })
    }

    fn runtime(&self) -> &'static str {
        match self.engine {
            Engine::Docker(_) => "docker",
            Engine::Podman(_) => "podman",
        }
    }

    /// The engine's client, talking to the private instance.
    fn client(&self) -> std::process::Command {
        match &self.engine {
            Engine::Docker(d) => d.cmd(),
            Engine::Podman(p) => p.cmd(),
        }
    }

    /// The container template for `lifetime`; the sandbox is mounted at its own path.
    fn template(&self, lifetime: &str, extra: &[&str]) -> PathBuf {
        let sb = &self.sb;
        let mount = format!("--mount={0}:{0}", sb.path().display());
        let text = check(
            sb.roar()
                .args(["--db", sb.join("store/roar.db").to_str().unwrap()])
                .args(["openjd", "template", "--mode", "wrap"])
                .args(["--container", self.runtime()])
                .args(["--image", IMAGE, "--lifetime", lifetime, &mount])
                .args(["--run-arg=--network", "--run-arg=none"])
                .args(extra),
        );
        let path = sb.join(format!("env-{lifetime}.yaml"));
        std::fs::write(&path, text).unwrap();
        let out = output(self.openjd().arg("check").arg(&path));
        assert!(out.status.success(), "openjd check: {out:?}");
        path
    }

    fn openjd(&self) -> std::process::Command {
        let mut c = openjd(&self.sb);
        match &self.engine {
            Engine::Docker(d) => {
                c.env("DOCKER_HOST", d.host())
                    .env("ROAR_DOCKER", "/usr/bin/docker");
            }
            Engine::Podman(p) => {
                c.envs(p.envs()).env("ROAR_PODMAN", podman::CLIENT);
            }
        }
        c
    }

    fn run(&self, job: &str, env: Option<&Path>, out: &str) -> std::process::Output {
        self.run_with(job, env, out, &[])
    }

    /// [`Setup::run`] with more `-p NAME=VALUE` parameters.
    fn run_with(
        &self,
        job: &str,
        env: Option<&Path>,
        out: &str,
        params: &[&str],
    ) -> std::process::Output {
        let path = self.sb.join("job.yaml");
        std::fs::write(&path, job).unwrap();
        self.sb.mkdir(out);
        let mut c = self.openjd();
        c.arg("run").arg(&path);
        if let Some(env) = env {
            c.arg("--environment").arg(env);
        }
        c.args(["-p", &format!("Out={}", self.sb.join(out).display())]);
        for p in params {
            c.args(["-p", p]);
        }
        output(&mut c)
    }

    /// Names of the containers the daemon has, running or not.
    fn containers(&self) -> Vec<String> {
        let out = check(self.client().args(["ps", "-a", "--format", "{{.Names}}"]));
        String::from_utf8_lossy(&out)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn image_id(&self) -> String {
        let out = check(
            self.client()
                .args(["image", "inspect", "--format", "{{.Id}}", IMAGE]),
        );
        String::from_utf8_lossy(&out).trim().to_owned()
    }

    fn runs(&self) -> Vec<Value> {
        log(&self.sb)
            .iter()
            .map(|r| show(&self.sb, &r["id"]))
            .collect()
    }
}

/// The runtime's exit lines of the wrapped job without the container environment's own
/// `onEnter` (start the container) and `onExit` (remove it), which must have succeeded.
fn task_exit_lines(out: &std::process::Output) -> Vec<String> {
    let all = exit_lines(out);
    assert!(all.len() >= 2, "{all:?}");
    for own in [&all[0], &all[all.len() - 1]] {
        assert!(
            own.contains("code: 0 "),
            "the container's enter/exit: {all:?}"
        );
    }
    all[1..all.len() - 1].to_vec()
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The two-step job, wrapped with `lifetime`: the same as unwrapped on the host, every task
/// a run in a container of the image; returns the runs (oldest first).
fn two_steps_in(setup: &Setup, lifetime: &str, extra: &[&str]) -> Vec<Value> {
    let plain = setup.run(JOB, None, "plain");
    assert!(plain.status.success(), "{plain:?}");
    let env = setup.template(lifetime, extra);
    let wrapped = setup.run(JOB, Some(&env), "out");
    assert!(wrapped.status.success(), "[{lifetime}] {}", text(&wrapped));
    assert_eq!(openjd_lines(&wrapped), openjd_lines(&plain), "[{lifetime}]");
    assert_eq!(
        task_exit_lines(&wrapped),
        exit_lines(&plain),
        "[{lifetime}]"
    );
    for i in [1, 2] {
        assert_eq!(
            setup.sb.read(format!("out/part-{i}.txt")),
            setup.sb.read(format!("plain/part-{i}.txt")),
            "[{lifetime}] argv and the inner environment's variable reach the task"
        );
    }
    let mut runs = setup.runs();
    runs.reverse();
    let labels: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        ["Produce", "Produce", "Consume"],
        "[{lifetime}] {runs:#?}"
    );
    check_lineage(&setup.sb, &runs, "out");
    let image_id = setup.image_id();
    for r in &runs {
        let c = &r["container"];
        assert_eq!(c["runtime"], setup.runtime(), "[{lifetime}] {r:#}");
        assert_eq!(c["image"], IMAGE, "[{lifetime}] {r:#}");
        assert_eq!(c["image_id"], image_id.as_str(), "[{lifetime}] {r:#}");
        let id = c["id"].as_str().unwrap_or("");
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "[{lifetime}] the container's id: {c}"
        );
        assert_eq!(r["exit_code"], 0);
        assert_eq!(r["complete"], true, "[{lifetime}] {r:#}");
    }
    runs
}

/// Every run in one container, and it is gone now, with every process of the session.
fn one_container_then_none(setup: &Setup, runs: &[Value]) {
    let ids: Vec<&Value> = runs.iter().map(|r| &r["container"]["id"]).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one container: {ids:?}");
    assert_eq!(setup.containers(), Vec::<String>::new(), "none left");
    assert_nothing_left(&setup.sb);
}

#[test]
fn session_lifetime_runs_every_task_in_one_container_and_removes_it() {
    let Some(setup) = Setup::new() else { return };
    let runs = two_steps_in(&setup, "session", &[]);
    one_container_then_none(&setup, &runs);
    // A run on the host is not in the task's container (null on a machine that is not
    // itself a container; this one may be: then it names its own).
    let host = setup.sb.run("preload", &["true"]);
    assert!(host.status.success());
    let here = setup.sb.show_json("latest")["container"].clone();
    if Path::new("/.dockerenv").exists() || Path::new("/run/.containerenv").exists() {
        assert_ne!(here["id"], runs[0]["container"]["id"], "{here}");
    } else {
        assert_eq!(here, Value::Null);
    }
}

#[test]
fn task_lifetime_gives_each_task_its_own_container() {
    let Some(setup) = Setup::new() else { return };
    let runs = two_steps_in(&setup, "task", &[]);
    let mut ids: Vec<&str> = runs
        .iter()
        .map(|r| r["container"]["id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "a container per task: {ids:?}");
    assert_eq!(setup.containers(), Vec::<String>::new(), "none left");
}

#[test]
fn external_lifetime_attaches_to_a_running_container_and_never_stops_it() {
    let Some(setup) = Setup::new() else { return };
    let sb = &setup.sb;
    // The user's container, with what roar needs mounted at the same paths: roar and its
    // library, and /tmp (the sandbox, the store and OpenJD's session directories).
    let roar = roar_bin().canonicalize().unwrap();
    let lib = preload_lib().canonicalize().unwrap();
    let libdir = lib.parent().unwrap();
    let vol = |p: &Path| format!("{0}:{0}:ro", p.display());
    let started = output(setup.client().args([
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "users-box",
        "-v",
        &vol(&roar),
        "-v",
        &vol(libdir),
        "-v",
        "/tmp:/tmp",
        IMAGE,
        "sleep",
        "infinity",
    ]));
    assert!(started.status.success(), "{started:?}");
    let runs = two_steps_in(&setup, "external", &["--name", "users-box"]);
    assert!(
        runs.iter()
            .all(|r| r["container"]["id"] == runs[0]["container"]["id"])
    );
    assert_eq!(setup.containers(), vec!["users-box".to_string()], "kept");
    let running =
        check(
            setup
                .client()
                .args(["inspect", "--format", "{{.State.Running}}", "users-box"]),
        );
    assert_eq!(String::from_utf8_lossy(&running).trim(), "true");

    // Another image than the one asked for: refused, saying which; nothing runs.
    let env = setup.template("external", &["--name", "users-box"]);
    let out = setup.run_with(JOB, Some(&env), "out2", &["RoarImage=busybox-none"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("busybox-none"), "{}", text(&out));
    // A container that is not running: refused, saying so.
    check(setup.client().args(["stop", "-t", "0", "users-box"]));
    let out = setup.run(JOB, Some(&env), "out3");
    assert!(!out.status.success());
    assert!(text(&out).contains("is not running"), "{}", text(&out));
    assert_eq!(log(sb).len(), 3, "the refused sessions recorded nothing");
}

#[test]
fn failing_and_cancelled_tasks_in_the_container_end_as_on_the_host() {
    let Some(setup) = Setup::new() else { return };
    let sb = &setup.sb;
    // A failing step: the same exit code, the same lines.
    let plain = setup.run(FAILING, None, "plain");
    let env = setup.template("session", &[]);
    let wrapped = setup.run(FAILING, Some(&env), "out");
    assert_eq!(
        wrapped.status.code(),
        plain.status.code(),
        "{}",
        text(&wrapped)
    );
    assert_eq!(task_exit_lines(&wrapped), exit_lines(&plain));
    assert_eq!(openjd_lines(&wrapped), openjd_lines(&plain));
    assert_eq!(log(sb)[0]["exit_code"], 3);
    assert_eq!(
        setup.containers(),
        Vec::<String>::new(),
        "removed after a failed task"
    );

    // Cancelation reaches the task in the container as SIGTERM; the run is recorded with
    // the task's exit status and the container is removed.
    std::fs::write(sb.join("job.yaml"), slow_job(None)).unwrap();
    sb.mkdir("slow");
    let child = setup
        .openjd()
        .arg("run")
        .arg(sb.join("job.yaml"))
        .arg("--environment")
        .arg(&env)
        .args(["-p", &format!("Out={}", sb.join("slow").display())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&sb.join("slow/started"), 60, "the task never started");
    std::thread::sleep(Duration::from_millis(300));
    send_signal(child.id(), "TERM");
    let done = child.wait_with_output().unwrap();
    assert!(!done.status.success());
    assert_eq!(
        sb.read("slow/got-term"),
        b"term\n",
        "the task was notified: {}",
        text(&done)
    );
    let runs = log(sb);
    let slow = runs.iter().find(|r| r["label"] == "Slow").expect("the run");
    assert_eq!(slow["exit_code"], 7, "{slow:#}");
    assert_eq!(slow["finished"], true);
    assert_eq!(setup.containers(), Vec::<String>::new(), "none left");
    assert_nothing_left(sb);
}

#[test]
fn podman_session_runs_every_task_in_one_container_and_removes_it() {
    let Some(setup) = Setup::podman() else { return };
    let runs = two_steps_in(&setup, "session", &[]);
    one_container_then_none(&setup, &runs);
}

#[test]
fn final_sigkill_in_the_container_leaves_an_honest_partial_record_and_no_container() {
    let Some(setup) = Setup::new() else { return };
    let sb = &setup.sb;
    let env = setup.template("session", &[]);
    // The task ignores SIGTERM: the runtime's final SIGKILL takes the host side; the entry
    // in the container sees its stdin end and stops roar there.
    let out = setup.run(STUBBORN, Some(&env), "out");
    assert!(!out.status.success());
    assert_eq!(setup.containers(), Vec::<String>::new(), "none left");
    assert_nothing_left(sb);
    let runs = log(sb);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = show(sb, &runs[0]["id"]);
    assert_eq!(run["label"], "Stubborn");
    assert_eq!(run["finished"], true, "{run:#}");
    assert_eq!(run["complete"], false, "{run:#}");
    assert_eq!(run["container"]["runtime"], "docker", "{run:#}");
    let partial = sb.join("out/partial.txt").display().to_string();
    assert!(
        hashes(&run["outputs"]).iter().any(|(p, _)| *p == partial),
        "{run:#}"
    );
}

/// Two tasks of one session in containers of different image ids (a tag moved between
/// them): the second run says so. The entry's hand-over is played by hand here, so this
/// runs everywhere.
#[test]
fn a_session_whose_image_changes_between_tasks_is_warned() {
    let sb = Sandbox::bare();
    let session = sb.join("session-1");
    sb.mkdir("session-1");
    let task = |image_id: &str| {
        let out = output(
            sb.roar()
                .env("ROAR_DB", sb.join("store/roar.db"))
                .env("OPENJD_SESSION_WORKING_DIR", &session)
                .env(
                    "ROAR_CONTAINER_CONTEXT",
                    format!("docker\trenderer:4.2\t{image_id}\tc0ffee"),
                )
                .current_dir(&session)
                .args(["run", "--backend", "preload", "--label", "Render", "--"])
                .args(["sh", "-c", "test -z \"$ROAR_CONTAINER_CONTEXT\""]),
        );
        assert!(
            out.status.success(),
            "the command never sees the hand-over: {out:?}"
        );
        show(&sb, &log(&sb)[0]["id"])
    };
    let first = task("sha256:aaa");
    assert_eq!(first["container"]["image_id"], "sha256:aaa");
    assert!(
        !first["warnings"].to_string().contains("image changed"),
        "{first:#}"
    );
    let same = task("sha256:aaa");
    assert!(
        !same["warnings"].to_string().contains("image changed"),
        "{same:#}"
    );
    let moved = task("sha256:bbb");
    assert_eq!(moved["container"]["id"], "c0ffee");
    let w = moved["warnings"].to_string();
    assert!(
        w.contains("image changed") && w.contains("sha256:aaa") && w.contains("sha256:bbb"),
        "{moved:#}"
    );
}

#[test]
fn inner_environment_actions_run_in_the_container_and_are_recorded_on_request() {
    let Some(setup) = Setup::new() else { return };
    let env = setup.template("session", &[]);
    let out = setup.run_with(JOB, Some(&env), "out", &["RoarRecordEnvironments=true"]);
    assert!(out.status.success(), "{}", text(&out));
    // The inner environment still exports its variable to the tasks.
    assert_eq!(setup.sb.read("out/part-1.txt"), b"hello 1||--dash\n");
    let runs = setup.runs();
    let inner: Vec<&Value> = runs
        .iter()
        .filter(|r| r["label"] == "Inner (enter)")
        .collect();
    assert_eq!(inner.len(), 1, "{runs:#?}");
    assert_eq!(inner[0]["container"]["runtime"], "docker", "{:#}", inner[0]);
    let task = runs.iter().find(|r| r["label"] == "Consume").unwrap();
    assert_eq!(task["container"]["id"], inner[0]["container"]["id"]);
    assert_eq!(setup.containers(), Vec::<String>::new(), "none left");
}
