//! Standalone preload, as the Kubernetes example uses it: only `LD_PRELOAD`
//! and `ROAR_TRACE_DIR` in the environment, no roar process running, many
//! process trees (and pid namespaces, as containers have) writing to one
//! directory; then `roar ingest`, twice.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Sandbox, check, output, preload_lib};

/// A process tree started from outside the traced set, with only the two
/// variables the pod spec sets.
fn traced(sb: &Sandbox, dir: &Path, script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script])
        .current_dir(sb.path())
        .env_remove("ROAR_DB")
        .env("LD_PRELOAD", pod_lib(dir))
        .env("ROAR_TRACE_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

/// The layout of `examples/kubernetes/pod.yaml` under the sandbox:
/// `roar/lib/libroar_preload.so` (what the init container copies) and
/// `roar/traces` (the shared trace volume).
fn trace_dir(sb: &Sandbox) -> PathBuf {
    sb.mkdir("roar/lib");
    sb.mkdir("roar/traces");
    let lib = sb.join("roar/lib/libroar_preload.so");
    if !lib.exists() {
        std::fs::copy(preload_lib(), &lib).unwrap();
    }
    sb.join("roar/traces")
}

/// The library as the pod's `LD_PRELOAD` names it.
fn pod_lib(dir: &Path) -> PathBuf {
    dir.parent().unwrap().join("lib/libroar_preload.so")
}

fn ingest(sb: &Sandbox, dir: &Path, extra: &[&str]) -> String {
    let out = output(sb.roar().arg("ingest").args(extra).arg(dir));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "roar ingest failed: {err}");
    assert!(
        out.stdout.is_empty(),
        "roar ingest writes nothing to stdout"
    );
    err
}

fn runs(sb: &Sandbox) -> Vec<Value> {
    sb.log_json()
}

fn output_paths(run: &Value) -> Vec<String> {
    run["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn concurrent_trees_become_one_run_each_and_ingest_is_idempotent() {
    let sb = Sandbox::new();
    let dir = trace_dir(&sb);
    sb.write("in.txt", "input\n");
    const TREES: usize = 8;
    let children: Vec<Child> = (0..TREES)
        .map(|k| {
            // Each tree forks and execs several processes (a subshell, a
            // pipeline, cat, cp) and writes its own files.
            let script = format!(
                "for i in 1 2 3 4 5; do cat in.txt >> out-{k}.txt; done; \
                 (sh -c 'cat out-{k}.txt | wc -l > count-{k}.txt'); cp out-{k}.txt copy-{k}.txt; exit {k}"
            );
            traced(&sb, &dir, &script).spawn().unwrap()
        })
        .collect();
    for (k, mut c) in children.into_iter().enumerate() {
        assert_eq!(c.wait().unwrap().code(), Some(k as i32));
    }
    let err = ingest(&sb, &dir, &[]);
    let all = runs(&sb);
    assert_eq!(all.len(), TREES, "{err}\n{all:#?}");
    for k in 0..TREES {
        let mine: Vec<&Value> = all
            .iter()
            .filter(|r| {
                output_paths(r)
                    .iter()
                    .any(|p| p.ends_with(&format!("/copy-{k}.txt")))
            })
            .collect();
        assert_eq!(mine.len(), 1, "tree {k}: {all:#?}");
        let r = mine[0];
        assert_eq!(r["exit_code"], k as i64, "{r:#}");
        assert_eq!(r["complete"], true, "{r:#}");
        let mut outs = output_paths(r);
        outs.sort();
        let expect: Vec<String> = ["copy", "count", "out"]
            .iter()
            .map(|n| sb.join(format!("{n}-{k}.txt")).display().to_string())
            .collect();
        assert_eq!(outs, expect, "{r:#}");
        assert!(
            r["inputs"].to_string().contains("in.txt"),
            "tree {k} read in.txt: {r:#}"
        );
        assert!(r["processes"].as_array().unwrap().len() >= 4, "{r:#}");
    }
    // Twice: nothing new.
    let again = ingest(&sb, &dir, &[]);
    assert_eq!(runs(&sb).len(), TREES);
    assert!(
        again.contains(&format!("{TREES} trees already ingested")),
        "{again}"
    );
}

/// Containers reuse pid numbers: trees in two pid namespaces, both with
/// pid 1 and children 2, 3, ..., stay two runs.
#[test]
fn trees_in_separate_pid_namespaces_stay_apart() {
    let sb = Sandbox::new();
    let dir = trace_dir(&sb);
    let lib = pod_lib(&dir);
    let children: Vec<Child> = (0..3)
        .map(|k| {
            // unshare itself is not traced: like a container runtime, it
            // starts the traced tree from outside.
            Command::new("unshare")
                .args(["--pid", "--fork", "--mount-proc", "env"])
                .arg(format!("LD_PRELOAD={}", lib.display()))
                .arg(format!("ROAR_TRACE_DIR={}", dir.display()))
                .args([
                    "sh",
                    "-c",
                    &format!("echo $$ > pid-{k}.txt; sh -c 'echo {k} > ns-{k}.txt'; cat ns-{k}.txt > done-{k}.txt"),
                ])
                .current_dir(sb.path())
                .env_remove("LD_PRELOAD")
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        let st = c.wait().unwrap();
        assert!(
            st.success(),
            "unshare --pid needs root (CI runs as root): {st:?}"
        );
    }
    for k in 0..3 {
        assert_eq!(
            sb.read(format!("pid-{k}.txt")),
            b"1\n",
            "pid 1 in its namespace"
        );
    }
    ingest(&sb, &dir, &[]);
    let all = runs(&sb);
    assert_eq!(all.len(), 3, "{all:#?}");
    for k in 0..3 {
        let done = sb.join(format!("done-{k}.txt")).display().to_string();
        let ns = sb.join(format!("ns-{k}.txt")).display().to_string();
        let mine: Vec<&Value> = all
            .iter()
            .filter(|r| output_paths(r).contains(&done))
            .collect();
        assert_eq!(mine.len(), 1, "{all:#?}");
        let outs = output_paths(mine[0]);
        assert!(outs.contains(&ns), "{:#}", mine[0]);
        // Nothing from the other namespaces.
        assert_eq!(outs.len(), 3, "{:#}", mine[0]);
        assert_eq!(mine[0]["processes"][0]["pid"], 1);
    }
}

/// A tree still running is left for later; once it has been killed, it is
/// recorded, marked incomplete, with what it wrote.
#[test]
fn running_tree_waits_and_killed_tree_is_incomplete() {
    let sb = Sandbox::new();
    let dir = trace_dir(&sb);
    let mut child = traced(&sb, &dir, "echo partial > partial.txt; exec sleep 60")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sb.join("partial.txt").exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let err = ingest(&sb, &dir, &["--settle", "0"]);
    assert!(
        err.contains("1 tree still running, left for later"),
        "{err}"
    );
    assert!(runs(&sb).is_empty());
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(9));
    ingest(&sb, &dir, &["--settle", "0"]);
    let all = runs(&sb);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0]["complete"], false);
    assert!(
        all[0]["warnings"]
            .to_string()
            .contains("never recorded its exit")
    );
    assert!(output_paths(&all[0]).contains(&sb.join("partial.txt").display().to_string()));
    // And once only.
    ingest(&sb, &dir, &["--settle", "0"]);
    assert_eq!(runs(&sb).len(), 1);
}

/// Two `roar ingest` at once on one directory record each tree once.
#[test]
fn concurrent_ingests_record_each_tree_once() {
    let sb = Sandbox::new();
    let dir = trace_dir(&sb);
    for k in 0..4 {
        let st = traced(&sb, &dir, &format!("echo {k} > f-{k}.txt"))
            .status()
            .unwrap();
        assert!(st.success());
    }
    let a = sb.roar().arg("ingest").arg("-q").arg(&dir).spawn().unwrap();
    let b = sb.roar().arg("ingest").arg("-q").arg(&dir).spawn().unwrap();
    for mut c in [a, b] {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(runs(&sb).len(), 4);
    check(sb.roar().args(["show", "latest"]));
}

/// A tree from another container (another pid namespace: simulated by
/// renaming its stream files) whose root never recorded an exit: left for
/// later while its streams are fresh, then recorded incomplete. A copy of the
/// same streams under a third namespace is a tree of its own.
#[test]
fn tree_from_another_namespace_waits_for_settle() {
    let sb = Sandbox::new();
    let dir = trace_dir(&sb);
    let st = traced(&sb, &dir, "echo x > killed.txt; kill -9 $$")
        .status()
        .unwrap();
    assert_eq!(st.signal(), Some(9));
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let fields: Vec<&str> = name.split('.').collect();
        assert_eq!(fields.len(), 5, "{name}");
        for ns in ["000000000000-1", "000000000000-2"] {
            let other = format!("{}.{}.{}.{ns}.rwt", fields[0], fields[1], fields[2]);
            std::fs::copy(&path, dir.join(other)).unwrap();
        }
        std::fs::remove_file(&path).unwrap();
    }
    let err = ingest(&sb, &dir, &["--settle", "3600"]);
    assert!(
        err.contains("2 trees still running, left for later"),
        "{err}"
    );
    assert!(runs(&sb).is_empty());
    ingest(&sb, &dir, &["--settle", "0"]);
    let all = runs(&sb);
    assert_eq!(all.len(), 2, "{all:#?}");
    for r in &all {
        assert_eq!(r["complete"], false, "{r:#}");
        assert!(
            output_paths(r).contains(&sb.join("killed.txt").display().to_string()),
            "{r:#}"
        );
    }
}

/// A `ROAR_TRACE_DIR` that does not exist yet (a fresh volume) is created,
/// not silently ignored.
#[test]
fn a_missing_trace_dir_is_created() {
    let sb = Sandbox::new();
    let lib_dir = trace_dir(&sb);
    sb.write("in.txt", "fresh\n");
    let dir = sb.join("roar/fresh/volume/traces");
    let mut c = traced(&sb, &lib_dir, "cat in.txt > out.txt");
    c.env("ROAR_TRACE_DIR", &dir);
    assert!(c.status().unwrap().success());
    assert!(dir.is_dir(), "{} was created", dir.display());
    ingest(&sb, &dir, &[]);
    let runs = runs(&sb);
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert!(
        output_paths(&runs[0])
            .iter()
            .any(|p| p.ends_with("/out.txt"))
    );
}
