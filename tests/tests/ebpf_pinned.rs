//! The eBPF programs pinned once (`roar ebpf load`, persist) and runs that
//! only register with them: status and unload, the same records as a cold
//! run, concurrent runs kept apart, a killed run's slot reclaimed, an
//! instance of other programs replaced under a run in progress, a broken
//! pin set repaired, unload refused under a run, persist from the
//! environment.
//!
//! Each test pins under a root of its own (`ROAR_BPFFS_DIR`), never the
//! machine's /sys/fs/bpf/roar, and removes it. They need root; run as
//! another user they say so and pass.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Sandbox, check, is_root, output, parse_json, roar_command};

/// A private pin root, unloaded and removed when the test ends.
struct Pins {
    root: PathBuf,
}

impl Pins {
    fn new(tag: &str) -> Option<Pins> {
        if !is_root() {
            eprintln!("skipped: pinning eBPF programs needs root (CI runs as root)");
            return None;
        }
        let root = PathBuf::from(format!(
            "/sys/fs/bpf/roar-test-{tag}-{}",
            std::process::id()
        ));
        Some(Pins { root })
    }

    /// `roar` in `cwd` using this root.
    fn roar(&self, cwd: &Path) -> Command {
        let mut c = roar_command(cwd);
        c.env("ROAR_BPFFS_DIR", &self.root)
            .env_remove("ROAR_EBPF_PERSIST");
        c
    }

    fn status(&self) -> Value {
        let out = check(self.roar(Path::new("/")).args(["ebpf", "status", "--json"]));
        parse_json(&String::from_utf8_lossy(&out))
    }

    fn instances(&self) -> Vec<Value> {
        self.status()["instances"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn load(&self, holder: &str) {
        check(
            self.roar(Path::new("/"))
                .args(["ebpf", "load", "--holder", holder]),
        );
    }

    /// `roar run --backend ebpf` in `sb` with this root.
    fn run(&self, sb: &Sandbox, script: &str) -> std::process::Output {
        output(self.roar(sb.path()).args([
            "run",
            "--backend",
            "ebpf",
            "-q",
            "--",
            "sh",
            "-c",
            script,
        ]))
    }

    fn spawn(&self, sb: &Sandbox, script: &str) -> Child {
        self.roar(sb.path())
            .args(["run", "--backend", "ebpf", "-q", "--", "sh", "-c", script])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn roar run")
    }

    /// Waits until `n` live runs are registered with the instance `id`
    /// (the current one when None).
    fn wait_live(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let live: usize = self
                .instances()
                .iter()
                .map(|i| {
                    i["slots"]
                        .as_array()
                        .map_or(0, |s| s.iter().filter(|s| s["alive"] == true).count())
                })
                .sum();
            if live >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} runs never registered: {:#}",
                self.status()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = self
            .roar(Path::new("/"))
            .args(["ebpf", "unload", "--force"])
            .output();
        let _ = std::fs::remove_dir(&self.root);
    }
}

fn current(pins: &Pins) -> Value {
    pins.instances()
        .into_iter()
        .find(|i| i["current"] == true)
        .unwrap_or_else(|| panic!("no current instance: {:#}", pins.status()))
}

fn holders(inst: &Value) -> Vec<String> {
    inst["holders"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn files(sb: &Sandbox, run: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = sb
        .in_sandbox(&run[key])
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn load_status_and_unload_with_two_holders() {
    let Some(pins) = Pins::new("holders") else {
        return;
    };
    assert!(pins.instances().is_empty());
    pins.load("a");
    let out = check(
        pins.roar(Path::new("/"))
            .args(["ebpf", "load", "--holder", "b"]),
    );
    assert!(String::from_utf8_lossy(&out).contains("already loaded"));
    let inst = current(&pins);
    assert_eq!(holders(&inst), ["a", "b"], "{inst:#}");
    assert_eq!(inst["missing"], serde_json::json!([]), "{inst:#}");
    let text = check(pins.roar(Path::new("/")).args(["ebpf", "status"]));
    assert!(
        String::from_utf8_lossy(&text).starts_with("loaded: "),
        "{}",
        String::from_utf8_lossy(&text)
    );
    // a's unload leaves it to b.
    let out = check(
        pins.roar(Path::new("/"))
            .args(["ebpf", "unload", "--holder", "a"]),
    );
    assert!(String::from_utf8_lossy(&out).contains("still held by b"));
    assert_eq!(holders(&current(&pins)), ["b"]);
    check(
        pins.roar(Path::new("/"))
            .args(["ebpf", "unload", "--holder", "b"]),
    );
    assert!(pins.instances().is_empty(), "{:#}", pins.status());
    assert_eq!(
        std::fs::read_dir(&pins.root).unwrap().count(),
        0,
        "every pin is gone"
    );
}

#[test]
fn a_run_on_the_pinned_instance_records_what_a_cold_run_does() {
    let Some(pins) = Pins::new("same") else {
        return;
    };
    let (cold_sb, pinned_sb) = (Sandbox::new(), Sandbox::new());
    let script =
        "cat in.txt > out.txt; mkdir -p d; cp in.txt d/copy; rm -f gone; ln -s in.txt link";
    for sb in [&cold_sb, &pinned_sb] {
        sb.write("in.txt", "x\n");
        sb.write("gone", "");
    }
    let out = pins.run(&cold_sb, script);
    assert!(out.status.success(), "{out:?}");
    assert!(
        pins.instances().is_empty(),
        "without persist nothing stays pinned"
    );
    let cold = cold_sb.show_json("latest");
    pins.load("default");
    // The command asks, while it runs, which runs the instance serves.
    let seen = pinned_sb.join("status.json");
    let out = pins.run(
        &pinned_sb,
        &format!(
            "{} ebpf status --json > {}; {script}",
            tests::roar_bin().display(),
            seen.display()
        ),
    );
    assert!(out.status.success(), "{out:?}");
    let seen = std::fs::read_to_string(seen).unwrap();
    assert_eq!(
        parse_json(&seen)["instances"][0]["slots"][0]["alive"],
        true,
        "the run was registered with the pinned instance: {seen}"
    );
    let pinned = pinned_sb.show_json("latest");
    assert_eq!(files(&cold_sb, &cold, "inputs"), ["in.txt"], "{cold:#}");
    assert_eq!(
        files(&cold_sb, &cold, "inputs"),
        files(&pinned_sb, &pinned, "inputs"),
        "{pinned:#}"
    );
    let mut outs = files(&pinned_sb, &pinned, "outputs");
    outs.retain(|f| f != "status.json");
    assert_eq!(
        files(&cold_sb, &cold, "outputs"),
        outs,
        "cold {cold:#} pinned {pinned:#}"
    );
    assert_eq!(
        pinned["processes"].as_array().map(Vec::len),
        cold["processes"].as_array().map(|p| p.len() + 1)
    );
    assert_eq!(pinned["complete"], true, "{pinned:#}");
    assert_eq!(
        parse_json(&seen)["instances"][0]["syscalls_attached"],
        true,
        "{seen}"
    );
    // The run freed its slot, and with no run left the system call hooks
    // are detached: an idle instance costs other processes nothing.
    let idle = current(&pins);
    assert_eq!(idle["slots"], serde_json::json!([]));
    assert_eq!(idle["syscalls_attached"], false, "{idle:#}");
}

/// `--keep-attached`: the system call hooks are attached at load and stay
/// attached after runs (the next run skips re-attaching them), until that
/// holder unloads; another holder's plain hold does not keep them.
#[test]
fn keep_attached_holds_the_hooks_between_runs_until_its_holder_unloads() {
    let Some(pins) = Pins::new("keep") else {
        return;
    };
    pins.load("plain");
    assert_eq!(current(&pins)["syscalls_attached"], false);
    check(
        pins.roar(Path::new("/"))
            .args(["ebpf", "load", "--holder", "farm", "--keep-attached"]),
    );
    let inst = current(&pins);
    assert_eq!(inst["syscalls_attached"], true, "{inst:#}");
    assert_eq!(inst["kept_attached"], true, "{inst:#}");
    let text = check(pins.roar(Path::new("/")).args(["ebpf", "status"]));
    assert!(
        String::from_utf8_lossy(&text).contains("kept so between runs"),
        "{}",
        String::from_utf8_lossy(&text)
    );
    let sb = Sandbox::new();
    sb.write("in.txt", "x\n");
    for _ in 0..3 {
        let out = pins.run(&sb, "cat in.txt > out.txt");
        assert!(out.status.success(), "{out:?}");
        let run = sb.show_json("latest");
        assert_eq!(files(&sb, &run, "inputs"), ["in.txt"], "{run:#}");
        assert_eq!(files(&sb, &run, "outputs"), ["out.txt"], "{run:#}");
        assert_eq!(run["complete"], true, "{run:#}");
        let after = current(&pins);
        assert_eq!(after["slots"], serde_json::json!([]), "{after:#}");
        assert_eq!(
            after["syscalls_attached"], true,
            "kept after the run: {after:#}"
        );
    }
    // The keeping holder leaves: the plain holder keeps the programs
    // loaded, but no longer the hooks attached.
    check(
        pins.roar(Path::new("/"))
            .args(["ebpf", "unload", "--holder", "farm"]),
    );
    let inst = current(&pins);
    assert_eq!(holders(&inst), ["plain"], "{inst:#}");
    assert_eq!(inst["syscalls_attached"], false, "{inst:#}");
    assert_eq!(inst["kept_attached"], false, "{inst:#}");
    let out = pins.run(&sb, "cat in.txt > out.txt");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(current(&pins)["syscalls_attached"], false);
}

/// A process a run leaves running is untraced when the run ends: the next
/// run, given the same slot, neither reports it as its own lingering
/// process nor records what it does.
#[test]
fn a_process_left_running_is_not_the_next_runs() {
    let Some(pins) = Pins::new("left") else {
        return;
    };
    pins.load("default");
    let (first, next) = (Sandbox::new(), Sandbox::new());
    next.write("in.txt", "x\n");
    let out = pins.run(
        &first,
        "sh -c 'sleep 0.5; while :; do echo late > late.txt; sleep 0.2; done' >/dev/null 2>&1 & echo $! > left.pid",
    );
    assert!(out.status.success(), "{out:?}");
    let left = String::from_utf8_lossy(&first.read("left.pid"))
        .trim()
        .to_string();
    let run = first.show_json("latest");
    assert_eq!(run["complete"], false, "it left a process: {run:#}");
    let out = pins.run(&next, "sleep 1; cat in.txt > out.txt");
    let alive = Command::new("kill")
        .args(["-0", &left])
        .status()
        .unwrap()
        .success();
    let _ = Command::new("kill").arg(&left).status();
    assert!(out.status.success(), "{out:?}");
    assert!(alive, "the left process ran on through the next run");
    assert!(
        first.join("late.txt").exists(),
        "it wrote while the next run ran"
    );
    let run = next.show_json("latest");
    assert_eq!(run["complete"], true, "{run:#}");
    assert_eq!(files(&next, &run, "inputs"), ["in.txt"], "{run:#}");
    assert_eq!(files(&next, &run, "outputs"), ["out.txt"], "{run:#}");
    assert!(!run.to_string().contains("late.txt"), "{run:#}");
}

#[test]
fn eight_concurrent_runs_see_only_their_own_events() {
    let Some(pins) = Pins::new("eight") else {
        return;
    };
    pins.load("default");
    let boxes: Vec<Sandbox> = (0..8).map(|_| Sandbox::new()).collect();
    let go = format!("/tmp/roar-pinned-go-{}", std::process::id());
    let children: Vec<Child> = boxes
        .iter()
        .enumerate()
        .map(|(k, sb)| {
            sb.write(format!("in{k}.txt"), format!("{k}\n"));
            // All eight overlap: each waits until every run is registered.
            pins.spawn(sb, &format!(
                "while [ ! -e {go} ]; do sleep 0.02; done; for i in 1 2 3 4 5; do cat in{k}.txt > out{k}-$i.txt; done"
            ))
        })
        .collect();
    pins.wait_live(8);
    std::fs::write(&go, "").unwrap();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let _ = std::fs::remove_file(&go);
    for (k, sb) in boxes.iter().enumerate() {
        let run = sb.show_json("latest");
        let want: Vec<String> = (1..=5).map(|i| format!("out{k}-{i}.txt")).collect();
        assert_eq!(files(sb, &run, "outputs"), want, "{run:#}");
        assert_eq!(files(sb, &run, "inputs"), [format!("in{k}.txt")], "{run:#}");
        let all = run.to_string();
        for (j, other) in boxes.iter().enumerate() {
            if j != k {
                assert!(
                    !all.contains(&other.path().display().to_string()),
                    "run {k} saw run {j}'s files: {run:#}"
                );
            }
        }
        assert_eq!(run["complete"], true, "{run:#}");
    }
}

#[test]
fn a_sigkilled_runs_slot_is_reclaimed_by_the_next_run() {
    let Some(pins) = Pins::new("kill") else {
        return;
    };
    pins.load("default");
    let sb = Sandbox::new();
    let mut child = pins.spawn(&sb, "echo $$ > cmd.pid; exec sleep 30");
    pins.wait_live(1);
    tests::wait_for(&sb.join("cmd.pid"), 20, "the command never started");
    tests::send_signal(child.id(), "KILL");
    let _ = child.wait();
    let pid = std::fs::read_to_string(sb.join("cmd.pid")).unwrap();
    tests::send_signal(pid.trim().parse().unwrap(), "KILL");
    let slots = current(&pins)["slots"].clone();
    assert_eq!(
        slots[0]["alive"], false,
        "the dead roar still owns its slot: {slots:#}"
    );
    let out = pins.run(&sb, "echo y > after.txt");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        current(&pins)["slots"],
        serde_json::json!([]),
        "the slot was reclaimed"
    );
    let run = sb.show_json("latest");
    assert_eq!(files(&sb, &run, "outputs"), ["after.txt"], "{run:#}");
}

#[test]
fn unload_refuses_while_a_run_holds_a_slot() {
    let Some(pins) = Pins::new("busy") else {
        return;
    };
    pins.load("default");
    let sb = Sandbox::new();
    let child = pins.spawn(
        &sb,
        "while [ ! -e go ]; do sleep 0.02; done; echo z > out.txt",
    );
    pins.wait_live(1);
    let out = output(pins.roar(Path::new("/")).args(["ebpf", "unload"]));
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("in progress") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(holders(&current(&pins)), ["default"], "the hold stays");
    sb.write("go", "");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(files(&sb, &sb.show_json("latest"), "outputs"), ["out.txt"]);
    check(pins.roar(Path::new("/")).args(["ebpf", "unload"]));
    assert!(pins.instances().is_empty());
}

#[test]
fn an_instance_of_other_programs_is_replaced_without_disturbing_its_run() {
    let Some(pins) = Pins::new("replace") else {
        return;
    };
    pins.load("session-1");
    let sb = Sandbox::new();
    sb.write("in.txt", "old\n");
    let child = pins.spawn(
        &sb,
        "while [ ! -e go ]; do sleep 0.02; done; cat in.txt > out.txt",
    );
    pins.wait_live(1);
    // What an older roar would have left: the same pins under another id.
    let id = current(&pins)["id"].as_str().unwrap().to_string();
    std::fs::rename(pins.root.join(&id), pins.root.join("v0_0_1-0123456789ab")).unwrap();
    // This roar's next run pins its own instance beside it and takes over
    // the old one's holders; the old one stays while its run goes on.
    let sb2 = Sandbox::new();
    let out = pins.run(&sb2, "echo n > new.txt");
    assert!(out.status.success(), "{out:?}");
    let insts = pins.instances();
    assert_eq!(insts.len(), 2, "{:#}", pins.status());
    let old = insts.iter().find(|i| i["current"] == false).unwrap();
    assert_eq!(old["slots"][0]["alive"], true, "{old:#}");
    assert_eq!(holders(&current(&pins)), ["session-1"]);
    assert_eq!(
        files(&sb2, &sb2.show_json("latest"), "outputs"),
        ["new.txt"]
    );
    // The run on the old instance completes, recorded in full.
    sb.write("go", "");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let run = sb.show_json("latest");
    assert_eq!(files(&sb, &run, "outputs"), ["out.txt"], "{run:#}");
    assert_eq!(files(&sb, &run, "inputs"), ["in.txt"], "{run:#}");
    // The next run removes the old one, now idle.
    let out = pins.run(&sb2, "true");
    assert!(out.status.success(), "{out:?}");
    let insts = pins.instances();
    assert_eq!(insts.len(), 1, "{:#}", pins.status());
    assert_eq!(insts[0]["current"], true);
}

#[test]
fn a_half_present_pin_set_is_repaired_not_used() {
    let Some(pins) = Pins::new("repair") else {
        return;
    };
    pins.load("default");
    let id = current(&pins)["id"].as_str().unwrap().to_string();
    std::fs::remove_file(pins.root.join(&id).join("link_roar_exec")).unwrap();
    let inst = current(&pins);
    assert_eq!(
        inst["missing"],
        serde_json::json!(["link_roar_exec"]),
        "{inst:#}"
    );
    let sb = Sandbox::new();
    sb.write("in.txt", "r\n");
    let out = pins.run(&sb, "cat in.txt > out.txt");
    assert!(out.status.success(), "{out:?}");
    let run = sb.show_json("latest");
    assert_eq!(files(&sb, &run, "outputs"), ["out.txt"], "{run:#}");
    // The exec hook works again: the run saw cat's image.
    assert!(run.to_string().contains("/cat"), "{run:#}");
    let insts = pins.instances();
    assert_eq!(
        insts.len(),
        1,
        "the broken set is gone: {:#}",
        pins.status()
    );
    assert_eq!(insts[0]["missing"], serde_json::json!([]));
    assert_eq!(holders(&insts[0]), ["default"], "its holders carried over");
}

#[test]
fn persist_from_the_environment_pins_on_the_first_run() {
    let Some(pins) = Pins::new("persist") else {
        return;
    };
    let sb = Sandbox::new();
    let out = output(pins.roar(sb.path()).env("ROAR_EBPF_PERSIST", "1").args([
        "run",
        "--backend",
        "ebpf",
        "-q",
        "--",
        "sh",
        "-c",
        "echo p > p.txt",
    ]));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(holders(&current(&pins)), ["default"]);
    assert_eq!(files(&sb, &sb.show_json("latest"), "outputs"), ["p.txt"]);
    // [ebpf] persist in the config does the same; ROAR_EBPF_PERSIST=0 wins over it.
    check(pins.roar(Path::new("/")).args(["ebpf", "unload"]));
    sb.write(".roar/config.toml", "[ebpf]\npersist = true\n");
    let out = output(pins.roar(sb.path()).env("ROAR_EBPF_PERSIST", "0").args([
        "run",
        "--backend",
        "ebpf",
        "-q",
        "--",
        "true",
    ]));
    assert!(out.status.success(), "{out:?}");
    assert!(pins.instances().is_empty(), "{:#}", pins.status());
    let out = pins.run(&sb, "true");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(holders(&current(&pins)), ["default"]);
}

/// The OpenJD runtime, where the OpenJD tests find it (OPENJD, PATH, or
/// the checkout's .venv-openjd).
fn openjd_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("OPENJD").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("openjd"))
        .chain([Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-openjd/bin/openjd")])
        .find(|p| p.is_file())
}

/// With RoarEbpfPersist=true the session loads the programs in onEnter,
/// holds them (named after its working directory) while its tasks run
/// under eBPF, and releases them in onExit.
#[test]
fn an_openjd_session_holds_the_pinned_programs_while_it_lasts() {
    let Some(pins) = Pins::new("openjd") else {
        return;
    };
    let Some(openjd) = openjd_bin() else {
        panic!(
            "the OpenJD runtime is not installed (see tests/tests/openjd.rs: .venv-openjd, or OPENJD=)"
        );
    };
    let sb = Sandbox::bare();
    let db = sb.join("store/roar.db");
    let env = check(pins.roar(sb.path()).args([
        "--db",
        db.to_str().unwrap(),
        "openjd",
        "template",
        "--ebpf-persist",
    ]));
    std::fs::write(sb.join("env.yaml"), env).unwrap();
    let job = format!(
        "specificationVersion: jobtemplate-2023-09
name: Pinned
steps:
- name: Look
  script:
    actions:
      onRun:
        command: /bin/sh
        args: [\"-c\", \"{} ebpf status --json > {}\"]
",
        tests::roar_bin().display(),
        sb.join("seen.json").display()
    );
    std::fs::write(sb.join("job.yaml"), job).unwrap();
    let out = output(
        Command::new(openjd)
            .current_dir(sb.path())
            .env("ROAR_BPFFS_DIR", &pins.root)
            .env_remove("ROAR_DB")
            .env_remove("LD_PRELOAD")
            .args(["run", "job.yaml", "--environment", "env.yaml"])
            .args(["-p", "RoarBackend=ebpf"])
            .stdin(Stdio::null()),
    );
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = parse_json(&std::fs::read_to_string(sb.join("seen.json")).unwrap());
    let inst = &seen["instances"][0];
    let hs = holders(inst);
    assert!(hs.len() == 1 && hs[0].starts_with("openjd:/"), "{seen:#}");
    assert_eq!(
        inst["slots"][0]["alive"], true,
        "the task ran on the session's instance: {seen:#}"
    );
    assert!(
        pins.instances().is_empty(),
        "onExit released it: {:#}",
        pins.status()
    );
}
