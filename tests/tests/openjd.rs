//! End-to-end tests with the real OpenJD runtime (the Python `openjd` CLI,
//! installed by `.ci/run` into `.venv-openjd/`): both templates that
//! `roar openjd template` prints run a two-step job, and what the runtime
//! sees with roar wrapping the task is what it sees without.
//!
//! These tests fail (never skip) when `openjd` cannot be found.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tests::{Sandbox, check, output, parse_json, roar_bin, runs_of, send_signal, wait_for};

#[path = "openjd/common.rs"]
mod common;
use common::*;

fn template(sb: &Sandbox, mode: &str) -> PathBuf {
    let text = check(sb.roar().args([
        "--db",
        sb.join("store/roar.db").to_str().unwrap(),
        "openjd",
        "template",
        "--mode",
        mode,
    ]));
    let path = sb.join(format!("env-{mode}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn templates_pass_openjd_check() {
    let sb = Sandbox::bare();
    for mode in ["wrap", "preload"] {
        let t = template(&sb, mode);
        let text = std::fs::read_to_string(&t).unwrap();
        let out = output(openjd(&sb).arg("check").arg(&t));
        assert!(
            out.status.success(),
            "openjd check rejects the {mode} template:\n{}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let wrap = std::fs::read_to_string(sb.join("env-wrap.yaml")).unwrap();
    for needle in [
        "specificationVersion: environment-2023-09",
        "extensions: [EXPR, WRAP_ACTIONS, FEATURE_BUNDLE_1]",
        "--label={{WrappedStep.Name}}",
        "timeout: \"{{WrappedAction.Timeout}}\"",
        "mode: \"{{WrappedAction.Cancelation.Mode}}\"",
    ] {
        assert!(wrap.contains(needle), "{needle} missing:\n{wrap}");
    }
    let preload = std::fs::read_to_string(sb.join("env-preload.yaml")).unwrap();
    assert!(!preload.contains("extensions"), "{preload}");
    let lib = tests::preload_lib().canonicalize().unwrap();
    assert!(
        preload.contains(&format!("\"{}\"", lib.display())),
        "the preload template names the library roar uses: {preload}"
    );
}

#[test]
fn wrap_mode_records_every_task_exactly_as_unwrapped() {
    let sb = Sandbox::bare();
    let plain = run_job(&sb, JOB, None, "plain");
    assert!(plain.status.success(), "{plain:?}");
    let env = template(&sb, "wrap");
    let wrapped = run_job(&sb, JOB, Some(&env), "out");
    assert!(
        wrapped.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&wrapped.stdout),
        String::from_utf8_lossy(&wrapped.stderr)
    );
    // The runtime saw the same openjd_ lines, in the same order, and the
    // task wrote the same bytes (argv verbatim, the inner environment's
    // variable present).
    let lines = openjd_lines(&plain);
    for expected in [
        "openjd_progress: 10",
        "openjd_status: wrote 2",
        "openjd_env: INNER_GREETING=hello",
    ] {
        assert!(lines.iter().any(|l| l == expected), "{expected}: {lines:?}");
    }
    assert_eq!(openjd_lines(&wrapped), lines);
    assert_eq!(exit_lines(&wrapped), exit_lines(&plain));
    assert_eq!(exit_lines(&plain).len(), 4, "{plain:?}");
    for i in [1, 2] {
        assert_eq!(
            sb.read(format!("out/part-{i}.txt")),
            format!("hello {i}||--dash\n").as_bytes()
        );
    }
    let runs: Vec<Value> = log(&sb).iter().map(|r| show(&sb, &r["id"])).collect();
    let labels: Vec<&str> = runs
        .iter()
        .rev()
        .map(|r| r["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["Produce", "Produce", "Consume"], "{runs:#?}");
    for r in &runs {
        assert_eq!(r["complete"], true, "{r:#}");
        assert_eq!(r["exit_code"], 0);
        let o = &r["openjd"];
        assert_eq!(o["step"], r["label"]);
        let wd = o["working_dir"].as_str().unwrap();
        assert_eq!(
            Some(o["session_id"].as_str().unwrap()),
            Path::new(wd).file_name().and_then(|n| n.to_str())
        );
        assert_eq!(o["environments"], serde_json::json!(["Inner"]), "{r:#}");
    }
    let produce = &runs[runs.len() - 1];
    let argv: Vec<&str> = produce["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&argv[argv.len() - 3..], ["produce", "", "--dash"]);
    check_lineage(&sb, &runs, "out");
    assert_nothing_left(&sb);
}

#[test]
fn preload_mode_records_every_task() {
    let sb = Sandbox::bare();
    let env = template(&sb, "preload");
    let out = run_job(&sb, JOB, Some(&env), "out");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sb.read("out/all.txt"),
        b"hello 1||--dash\nhello 2||--dash\n"
    );
    let runs: Vec<Value> = log(&sb).iter().map(|r| show(&sb, &r["id"])).collect();
    // One run per action after onEnter: the inner environment's onEnter and
    // the three tasks.
    assert_eq!(runs.len(), 4, "{runs:#?}");
    for r in &runs {
        assert_eq!(r["exit_code"], 0, "{r:#}");
        assert_eq!(r["complete"], true, "{r:#}");
        // The session is known (the step is not: nothing tells the library).
        let o = &r["openjd"];
        assert_eq!(o["working_dir"], r["cwd"], "{r:#}");
        assert_eq!(o["step"], Value::Null);
    }
    check_lineage(&sb, &runs, "out");
    // onExit ingested with --remove: the session's trace directory is gone.
    let trace_root = sb.join("store/traces/openjd");
    let left: Vec<_> = std::fs::read_dir(&trace_root).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    assert_nothing_left(&sb);
}

#[test]
fn failing_task_has_the_same_exit_code_wrapped() {
    let sb = Sandbox::bare();
    let plain = run_job(&sb, FAILING, None, "plain");
    let env = template(&sb, "wrap");
    let wrapped = run_job(&sb, FAILING, Some(&env), "out");
    assert!(!plain.status.success());
    assert_eq!(wrapped.status.code(), plain.status.code());
    assert_eq!(exit_lines(&wrapped), exit_lines(&plain));
    assert!(exit_lines(&plain)[0].contains("code: 3"), "{plain:?}");
    assert_eq!(openjd_lines(&wrapped), openjd_lines(&plain));
    let runs = log(&sb);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["exit_code"], 3);
    assert_eq!(runs[0]["label"], "Fail");
    assert_nothing_left(&sb);
}

#[test]
fn task_timeout_reaches_the_task_as_sigterm() {
    let sb = Sandbox::bare();
    let env = template(&sb, "wrap");
    let out = run_job(&sb, &slow_job(Some(2)), Some(&env), "out");
    assert!(!out.status.success());
    assert_eq!(
        sb.read("out/got-term"),
        b"term\n",
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let runs = log(&sb);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0]["label"], "Slow");
    assert_eq!(runs[0]["exit_code"], 7, "{:#}", runs[0]);
    assert_nothing_left(&sb);
}

#[test]
fn cancelled_session_leaves_a_consistent_store() {
    for mode in ["wrap", "preload"] {
        let sb = Sandbox::bare();
        let env = template(&sb, mode);
        std::fs::write(sb.join("job.yaml"), slow_job(None)).unwrap();
        sb.mkdir("out");
        let child = openjd(&sb)
            .arg("run")
            .arg(sb.join("job.yaml"))
            .arg("--environment")
            .arg(&env)
            .args(["-p", &format!("Out={}", sb.join("out").display())])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(
            &sb.join("out/started"),
            30,
            &format!("[{mode}] the task never started"),
        );
        std::thread::sleep(Duration::from_millis(300));
        send_signal(child.id(), "TERM");
        let status = child.wait_with_output().unwrap();
        assert!(!status.status.success(), "[{mode}] cancelled");
        assert_eq!(
            sb.read("out/got-term"),
            b"term\n",
            "[{mode}] the task was notified:\n{}",
            String::from_utf8_lossy(&status.stdout)
        );
        assert_nothing_left(&sb);
        // The store opens, and holds the task's run, finished.
        let runs = log(&sb);
        let task: Vec<&Value> = runs
            .iter()
            .filter(|r| {
                r["command"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|a| a.as_str().is_some_and(|a| a.contains("trap")))
                }) || r["label"] == "Slow"
            })
            .collect();
        if mode == "wrap" {
            assert_eq!(task.len(), 1, "[{mode}] {runs:#?}");
            assert_eq!(task[0]["exit_code"], 7, "[{mode}] {:#}", task[0]);
        } else {
            // The task's tree: the runtime's script for the task, which ran sh -c.
            let ran_trap = runs.iter().any(|r| {
                r["processes"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["argv"].to_string().contains("trap")))
                    && r["exit_code"] == 7
            });
            assert!(ran_trap, "[{mode}] {runs:#?}");
        }
        for r in &runs {
            assert_eq!(r["finished"], true, "[{mode}] {r:#}");
        }
    }
}

#[test]
fn roar_is_found_without_path() {
    // The templates name roar by absolute path, so a worker needs no PATH entry.
    let sb = Sandbox::bare();
    let t = std::fs::read_to_string(template(&sb, "wrap")).unwrap();
    let roar = roar_bin().canonicalize().unwrap();
    assert!(
        t.contains(&format!("command: \"{}\"", roar.display())),
        "{t}"
    );
}

/// A task that ignores SIGTERM: the runtime ends with SIGKILL of roar's
/// process group. The next roar command finds the run roar could not finish
/// and records it from its trace, marked incomplete.
#[test]
fn final_sigkill_leaves_an_honest_partial_record() {
    let sb = Sandbox::bare();
    let env = template(&sb, "wrap");
    let out = run_job(&sb, STUBBORN, Some(&env), "out");
    assert!(!out.status.success());
    assert_nothing_left(&sb);
    let runs = log(&sb);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let run = show(&sb, &runs[0]["id"]);
    assert_eq!(run["label"], "Stubborn");
    assert_eq!(run["finished"], true, "{run:#}");
    assert_eq!(run["complete"], false, "{run:#}");
    assert!(run["warnings"].to_string().contains("killed"), "{run:#}");
    let partial = sb.join("out/partial.txt").display().to_string();
    assert!(
        hashes(&run["outputs"]).iter().any(|(p, _)| *p == partial),
        "{run:#}"
    );
}

/// `-p RoarRecordEnvironments=true`: the other environments' enter and exit
/// actions are recorded as runs too, and still do what they did (the task
/// sees the variable the inner environment exported).
#[test]
fn environment_actions_are_recorded_on_request() {
    let sb = Sandbox::bare();
    let env = template(&sb, "wrap");
    let path = sb.join("job.yaml");
    let job = JOB.replace(
        "        args: [\"-c\", \"echo 'openjd_env: INNER_GREETING=hello'\"]\n",
        "        args: [\"-c\", \"echo 'openjd_env: INNER_GREETING=hello'\"]\n      onExit:\n        command: /bin/sh\n        args: [\"-c\", \"echo bye > {{Param.Out}}/bye.txt\"]\n",
    );
    std::fs::write(&path, job).unwrap();
    sb.mkdir("out");
    let out = output(
        openjd(&sb)
            .arg("run")
            .arg(&path)
            .arg("--environment")
            .arg(&env)
            .args(["-p", &format!("Out={}", sb.join("out").display())])
            .args(["-p", "RoarRecordEnvironments=true"]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(sb.read("out/part-1.txt"), b"hello 1||--dash\n");
    let runs = log(&sb);
    let mut labels: Vec<&str> = runs.iter().map(|r| r["label"].as_str().unwrap()).collect();
    labels.reverse();
    assert_eq!(
        labels,
        [
            "Inner (enter)",
            "Produce",
            "Produce",
            "Consume",
            "Inner (exit)"
        ],
        "{runs:#?}"
    );
    let exit = &runs[0];
    let bye = sb.join("out/bye.txt").display().to_string();
    assert!(
        hashes(&exit["outputs"]).iter().any(|(p, _)| *p == bye),
        "{exit:#}"
    );
    assert_nothing_left(&sb);
}

/// The store: the template's RoarDb parameter if given, else ROAR_DB from
/// the worker's environment, else the store the template was generated for.
#[test]
fn store_is_roar_db_unless_the_parameter_names_another() {
    let sb = Sandbox::bare();
    let env = template(&sb, "wrap");
    let path = sb.join("job.yaml");
    std::fs::write(&path, FAILING).unwrap();
    sb.mkdir("out");
    let count = |db: &str| -> usize {
        let db = sb.join(db);
        if !db.exists() {
            return 0;
        }
        let out = check(sb.roar().env("ROAR_DB", &db).args(["log", "--json"]));
        runs_of(parse_json(&String::from_utf8_lossy(&out))).len()
    };
    let job = |extra: &[String], roar_db: Option<&str>| {
        let mut c = openjd(&sb);
        c.arg("run").arg(&path).arg("--environment").arg(&env);
        c.args(["-p", &format!("Out={}", sb.join("out").display())]);
        for e in extra {
            c.args(["-p", e]);
        }
        if let Some(db) = roar_db {
            c.env("ROAR_DB", sb.join(db));
        }
        output(&mut c);
    };
    job(&[], None);
    assert_eq!(count("store/roar.db"), 1, "the generated default");
    job(&[], Some("worker/roar.db"));
    assert_eq!(count("worker/roar.db"), 1, "ROAR_DB of the worker");
    job(
        &[format!("RoarDb={}", sb.join("param/roar.db").display())],
        Some("worker/roar.db"),
    );
    assert_eq!(count("param/roar.db"), 1, "the parameter wins");
    assert_eq!(count("worker/roar.db"), 1);
    assert_eq!(count("store/roar.db"), 1);
}
