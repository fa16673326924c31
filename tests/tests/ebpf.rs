//! The eBPF backend beyond the shared fixtures, `--backend auto`, and
//! `roar doctor`, on this machine and with each requirement taken away:
//! the BTF file (`ROAR_BTF`), the preload library (`ROAR_PRELOAD_LIB`),
//! and root (running roar as `nobody` with `setpriv`, with and without
//! CAP_BPF + CAP_PERFMON).
//!
//! eBPF needs root. CI runs as root, so everything here runs there; run as
//! another user, the tests that need eBPF check the fallback instead and
//! say so.

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tests::{Sandbox, as_nobody, is_root, nobody_dir, output, parse_json, roar_bin};

fn doctor(cmd: &mut Command) -> Value {
    let out = output(cmd.args(["doctor", "--json"]));
    assert!(out.status.success(), "{out:?}");
    parse_json(&String::from_utf8_lossy(&out.stdout))
}

fn backend<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|b| b["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {doc:#}"))
}

fn reasons(b: &Value) -> String {
    b["reasons"].to_string()
}

#[test]
fn auto_picks_ebpf_where_it_works_and_says_why() {
    let sb = Sandbox::new();
    sb.write("in.txt", "auto\n");
    let out = sb.run("auto", &["sh", "-c", "cat in.txt > out.txt"]);
    assert!(out.status.success(), "{out:?}");
    let run = sb.show_json("latest");
    let reason = run["backend_reason"].as_str().unwrap_or_default();
    if is_root() {
        assert_eq!(run["backend"], "ebpf", "{run:#}");
        assert!(reason.contains("eBPF"), "{run:#}");
    } else {
        eprintln!("not root: eBPF cannot load, checking the fallback instead");
        assert_eq!(run["backend"], "preload", "{run:#}");
        assert!(reason.contains("eBPF unavailable"), "{run:#}");
    }
    assert_eq!(run["complete"], true, "{run:#}");
}

#[test]
fn auto_without_btf_falls_back_to_preload_and_records_why() {
    let sb = Sandbox::new();
    let out = output(
        sb.roar()
            .env("ROAR_BTF", "/nonexistent/vmlinux")
            // A pinned instance needs no BTF: test the load, not one the machine has.
            .env("ROAR_BPFFS_DIR", "/nonexistent/roar-pins")
            .args(["run", "-q", "--", "sh", "-c", "echo x > out.txt"]),
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("roar: auto: eBPF unavailable"),
        "auto says what it fell back from: {stderr}"
    );
    let run = sb.show_json("latest");
    assert_eq!(run["backend"], "preload", "{run:#}");
    let reason = run["backend_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("/nonexistent/vmlinux") && reason.contains("preload"),
        "{run:#}"
    );
}

#[test]
fn ebpf_that_cannot_load_exits_125_before_the_command_runs() {
    let sb = Sandbox::new();
    let out = output(
        sb.roar()
            .env("ROAR_BTF", "/nonexistent/vmlinux")
            // A pinned instance needs no BTF: test the load, not one the machine has.
            .env("ROAR_BPFFS_DIR", "/nonexistent/roar-pins")
            .args([
                "run",
                "--backend",
                "ebpf",
                "--",
                "sh",
                "-c",
                "echo ran > ran.txt",
            ]),
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no BTF at /nonexistent/vmlinux"),
        "{stderr}"
    );
    assert!(!sb.join("ran.txt").exists(), "the command must not run");
}

#[test]
fn ebpf_records_the_commands_own_first_image() {
    if !is_root() {
        eprintln!("skipped: the eBPF backend needs root (CI runs as root)");
        return;
    }
    let sb = Sandbox::new();
    let out = sb.run("ebpf", &["true"]);
    assert!(out.status.success(), "{out:?}");
    let run = sb.show_json("latest");
    let procs = run["processes"].as_array().expect("processes");
    // Traced from before its exec: the first process is `true` itself.
    assert_eq!(procs[0]["argv"][0], "true", "{run:#}");
    assert!(
        procs[0]["exe"].as_str().unwrap_or("").ends_with("/true"),
        "{run:#}"
    );
    assert_eq!(procs[0]["exit_code"], 0, "{run:#}");
    assert_eq!(run["complete"], true, "{run:#}");
}

/// The kernel walks at most 48 directory names per path: a deeper path is
/// cut, and the run says so instead of recording a wrong path. (preload and
/// ptrace read such paths whole: the one documented difference.)
#[test]
fn ebpf_paths_too_deep_to_walk_are_warned_not_guessed() {
    if !is_root() {
        eprintln!("skipped: the eBPF backend needs root (CI runs as root)");
        return;
    }
    let sb = Sandbox::new();
    let deep: String = std::iter::repeat_n("d", 60).collect::<Vec<_>>().join("/");
    sb.write(Path::new(&deep).join("f.txt"), "deep\n");
    let script = format!("cd {deep} && cat f.txt > /dev/null");
    let out = sb.run("ebpf", &["sh", "-c", &script]);
    assert!(out.status.success(), "{out:?}");
    let run = sb.show_json("latest");
    assert_eq!(run["complete"], false, "{run:#}");
    assert!(
        run["warnings"].to_string().contains("too long to capture"),
        "{run:#}"
    );
}

#[test]
fn doctor_reports_every_backend_the_store_and_git() {
    let sb = Sandbox::new();
    sb.git(&["init", "-q"]);
    let doc = doctor(&mut sb.roar());
    for name in ["ebpf", "preload", "ptrace"] {
        let b = backend(&doc, name);
        assert!(b["usable"].is_boolean(), "{doc:#}");
        assert!(!reasons(b).is_empty(), "{doc:#}");
    }
    assert_eq!(backend(&doc, "preload")["usable"], true, "{doc:#}");
    assert_eq!(backend(&doc, "ptrace")["usable"], true, "{doc:#}");
    if is_root() {
        let e = backend(&doc, "ebpf");
        assert_eq!(e["usable"], true, "{doc:#}");
        assert!(e["load_attach_ms"].as_i64().is_some(), "{doc:#}");
        assert_eq!(doc["auto"], "ebpf", "{doc:#}");
    }
    assert!(doc["store"]["db"].as_str().is_some(), "{doc:#}");
    assert!(doc["git"].is_object(), "{doc:#}");

    let text = output(sb.roar().arg("doctor"));
    assert!(text.status.success(), "{text:?}");
    let text = String::from_utf8_lossy(&text.stdout);
    for word in ["ebpf", "preload", "ptrace", "store", "git"] {
        assert!(text.contains(word), "{text}");
    }
}

#[test]
fn doctor_names_each_missing_requirement() {
    let sb = Sandbox::new();
    let doc = doctor(
        sb.roar()
            .env("ROAR_BTF", "/nonexistent/vmlinux")
            // A pinned instance needs no BTF: test the load, not one the machine has.
            .env("ROAR_BPFFS_DIR", "/nonexistent/roar-pins")
            .env("ROAR_PRELOAD_LIB", "/nonexistent/libroar_preload.so"),
    );
    let e = backend(&doc, "ebpf");
    assert_eq!(e["usable"], false, "{doc:#}");
    assert!(reasons(e).contains("no BTF"), "{doc:#}");
    let p = backend(&doc, "preload");
    assert_eq!(p["usable"], false, "{doc:#}");
    assert!(
        reasons(p).contains("/nonexistent/libroar_preload.so"),
        "{doc:#}"
    );
    assert_eq!(doc["auto"], "ptrace", "{doc:#}");
}

/// The kernel refusing bpf(2) (BPF disabled, or the program type refused):
/// doctor names the call and the errno, auto falls back and records why,
/// and `--backend ebpf` starts nothing.
#[test]
fn bpf_refused_by_the_kernel_is_named_with_its_errno() {
    let sb = Sandbox::new();
    let deny = |args: &[&str]| {
        let mut cmd = Command::new(env!("FIXTURE_DENY_BPF"));
        cmd.arg(roar_bin())
            .args(args)
            .current_dir(sb.path())
            .env_remove("ROAR_DB")
            .env_remove("ROAR_BACKEND")
            .stdin(std::process::Stdio::null());
        cmd
    };
    let out = output(&mut deny(&["doctor", "--json"]));
    assert!(out.status.success(), "{out:?}");
    let doc = parse_json(&String::from_utf8_lossy(&out.stdout));
    let e = backend(&doc, "ebpf");
    assert_eq!(e["usable"], false, "{doc:#}");
    assert_eq!(e["errno"], libc_eperm(), "{doc:#}");
    assert!(
        reasons(e).contains("errno 1: Operation not permitted"),
        "{doc:#}"
    );
    if is_root() {
        assert!(!reasons(e).contains("needs root"), "{doc:#}");
    }
    assert_eq!(doc["auto"], "preload", "{doc:#}");

    let out = output(&mut deny(&[
        "run",
        "-q",
        "--",
        "sh",
        "-c",
        "echo x > out.txt",
    ]));
    assert!(out.status.success(), "{out:?}");
    let run = sb.show_json("latest");
    assert_eq!(run["backend"], "preload", "{run:#}");
    assert!(
        run["backend_reason"]
            .as_str()
            .unwrap_or_default()
            .contains("eBPF unavailable"),
        "{run:#}"
    );

    let out = output(&mut deny(&[
        "run",
        "--backend",
        "ebpf",
        "--",
        "sh",
        "-c",
        "echo ran > ran.txt",
    ]));
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(!sb.join("ran.txt").exists(), "the command must not run");
}

fn libc_eperm() -> i64 {
    1
}

#[test]
fn doctor_as_an_unprivileged_user_says_not_root() {
    if !is_root() {
        eprintln!("skipped: switching to nobody needs root (CI runs as root)");
        return;
    }
    let (dir, roar) = nobody_dir();
    let doc = doctor(&mut as_nobody(dir.path(), &roar, false, &[]));
    let e = backend(&doc, "ebpf");
    assert_eq!(e["usable"], false, "{doc:#}");
    assert!(reasons(e).contains("not root (euid 65534)"), "{doc:#}");
    assert!(reasons(e).contains("CAP_BPF"), "{doc:#}");
    assert_ne!(doc["auto"], "ebpf", "{doc:#}");
}

/// Root is not needed: CAP_BPF and CAP_PERFMON are enough, for doctor and
/// for a real run (as `nobody`, with the two capabilities ambient).
#[test]
fn ebpf_works_without_root_given_cap_bpf_and_cap_perfmon() {
    if !is_root() {
        eprintln!("skipped: granting capabilities to nobody needs root (CI runs as root)");
        return;
    }
    let (dir, roar) = nobody_dir();
    let d = dir.path();
    std::fs::write(d.join("in.txt"), "capabilities\n").unwrap();
    let doc = doctor(&mut as_nobody(d, &roar, true, &[]));
    let e = backend(&doc, "ebpf");
    assert_eq!(e["usable"], true, "{doc:#}");
    assert_eq!(doc["auto"], "ebpf", "{doc:#}");

    let cmd = [
        "run",
        "--backend",
        "ebpf",
        "--",
        "sh",
        "-c",
        "cat in.txt > out.txt",
    ];
    let out = output(&mut as_nobody(d, &roar, true, &cmd));
    assert!(out.status.success(), "{out:?}");
    let out = output(&mut as_nobody(
        d,
        &roar,
        true,
        &["show", "--json", "latest"],
    ));
    assert!(out.status.success(), "{out:?}");
    let run = parse_json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(run["backend"], "ebpf", "{run:#}");
    assert_eq!(run["complete"], true, "{run:#}");
    let paths = |k: &str| -> Vec<String> {
        run[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    let real = d.canonicalize().unwrap();
    assert_eq!(
        paths("inputs"),
        [real.join("in.txt").display().to_string()],
        "{run:#}"
    );
    assert_eq!(
        paths("outputs"),
        [real.join("out.txt").display().to_string()],
        "{run:#}"
    );
}

/// A command, files to write first, expected inputs, expected outputs.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
    &'static [&'static str],
    &'static [&'static str],
);

/// What LD_PRELOAD cannot see, eBPF sees as ptrace does: raw `syscall()`,
/// static binaries, a cleared environment, exec from a non-leader thread,
/// vfork + exec (the same fixtures as tests/tests/ptrace.rs).
#[test]
fn ebpf_sees_what_preload_cannot() {
    if !is_root() {
        eprintln!("skipped: the eBPF backend needs root (CI runs as root)");
        return;
    }
    let cases: [Case; 5] = [
        (
            &[env!("FIXTURE_RAW_SYSCALL")],
            &[("raw_in.txt", "raw\n")],
            &["raw_in.txt"],
            &["raw_out.txt"],
        ),
        (
            &[env!("FIXTURE_STATIC_WRITE")],
            &[],
            &[],
            &["static_out.txt"],
        ),
        (
            &["env", "-i", "/bin/sh", "-c", "cat in.txt > out.txt"],
            &[("in.txt", "env\n")],
            &["in.txt"],
            &["out.txt"],
        ),
        (
            &[env!("FIXTURE_THREAD_EXEC")],
            &[("in.txt", "thread\n")],
            &["in.txt"],
            &["out.txt"],
        ),
        (
            &[env!("FIXTURE_VFORK_EXEC")],
            &[("in.txt", "vfork\n")],
            &["in.txt"],
            &["out.txt"],
        ),
    ];
    for (cmd, files, inputs, outputs) in cases {
        let sb = Sandbox::new();
        for (f, c) in files {
            sb.write(f, c);
        }
        let out = sb.run("ebpf", cmd);
        assert_eq!(out.status.code(), Some(0), "{cmd:?}: {out:?}");
        let run = sb.show_json("latest");
        assert_eq!(run["backend"], "ebpf", "{run:#}");
        assert_eq!(run["complete"], true, "{cmd:?}: {run:#}");
        let set = |l: &[&str]| l.iter().map(std::path::PathBuf::from).collect();
        assert_eq!(sb.in_sandbox(&run["inputs"]), set(inputs), "{run:#}");
        assert_eq!(sb.in_sandbox(&run["outputs"]), set(outputs), "{run:#}");
        let procs = run["processes"].as_array().unwrap();
        for p in procs {
            assert!(
                p["ppid"] == procs[0]["ppid"] || procs.iter().any(|q| q["pid"] == p["ppid"]),
                "every process descends from the command: {run:#}"
            );
        }
    }
}

/// Ring-buffer overflow is counted in the kernel and surfaces as a warning
/// on an incomplete run: here with a one-page ring (ROAR_EBPF_RING_BYTES)
/// and a burst of file calls made while roar, the command's parent, is
/// stopped, so no reader can drain the ring however fast the machine is.
#[test]
fn ebpf_ring_buffer_overflow_is_reported() {
    if !is_root() {
        eprintln!("skipped: the eBPF backend needs root (CI runs as root)");
        return;
    }
    let sb = Sandbox::new();
    let out = output(sb.roar().env("ROAR_EBPF_RING_BYTES", "4096").args([
        "run",
        "--backend",
        "ebpf",
        "--",
        "sh",
        "-c",
        "kill -STOP $PPID; i=0; while [ $i -lt 500 ]; do : > f$i; i=$((i+1)); done; kill -CONT $PPID",
    ]));
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("INCOMPLETE"),
        "the summary says so: {stderr}"
    );
    let run = sb.show_json("latest");
    assert_eq!(run["complete"], false, "{run:#}");
    assert!(
        run["warnings"].to_string().contains("ring buffer was full"),
        "{run:#}"
    );
}

/// Every system call on the machine asks whether its process is traced: a
/// bitmap sized from kernel.pid_max answers, and a pid beyond it (pid_max
/// raised after load) falls back to the hash of traced pids. With a
/// one-word bitmap every real pid takes the fallback, and the run records
/// the same as with the full bitmap.
#[test]
fn ebpf_pid_bitmap_fallback_records_the_same() {
    if !is_root() {
        eprintln!("skipped: the eBPF backend needs root (CI runs as root)");
        return;
    }
    let cmd = [
        "sh",
        "-c",
        "cat in.txt > out.txt; cp out.txt copy.txt; (cd sub && cat ../in.txt > o.txt)",
    ];
    let record = |words: Option<&str>| {
        let sb = Sandbox::new();
        sb.write("in.txt", "bits\n");
        std::fs::create_dir(sb.join("sub")).unwrap();
        let mut c = sb.roar();
        if let Some(w) = words {
            c.env("ROAR_EBPF_PID_WORDS", w);
        }
        let out = output(c.args(["run", "--backend", "ebpf", "-q", "--"]).args(cmd));
        assert!(out.status.success(), "{out:?}");
        let run = sb.show_json("latest");
        assert_eq!(run["complete"], true, "{run:#}");
        let procs: Vec<String> = run["processes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["argv"].to_string())
            .collect();
        (
            sb.in_sandbox(&run["inputs"]),
            sb.in_sandbox(&run["outputs"]),
            procs,
        )
    };
    let full = record(None);
    assert_eq!(
        full.1,
        ["copy.txt", "out.txt", "sub/o.txt"]
            .iter()
            .map(std::path::PathBuf::from)
            .collect(),
        "{full:?}"
    );
    assert_eq!(record(Some("1")), full);
}

/// `roar ...` inside a new pid namespace that mounted its own /proc (as a
/// container does): there `NSpid` shows one level only, so reading it
/// cannot tell. The namespace's inode can.
fn in_own_pid_namespace(sb: &Sandbox, args: &[&str]) -> std::process::Output {
    let cmd = sb.roar();
    let mut wrapped = Command::new("unshare");
    wrapped
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(roar_bin())
        .args(args)
        .current_dir(sb.join(""))
        .stdin(std::process::Stdio::null());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    output(&mut wrapped)
}

#[test]
fn ebpf_in_a_pid_namespace_with_its_own_proc_is_refused_and_auto_falls_back() {
    if !is_root() {
        eprintln!("skipped: a new pid namespace needs root");
        return;
    }
    let sb = Sandbox::new();
    sb.write("in.txt", "ns\n");
    let out = in_own_pid_namespace(
        &sb,
        &[
            "run",
            "--backend",
            "ebpf",
            "--",
            "sh",
            "-c",
            "cat in.txt > refused.txt",
        ],
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("child pid namespace"), "{stderr}");
    assert!(!sb.join("refused.txt").exists(), "the command must not run");

    let out = in_own_pid_namespace(&sb, &["run", "--", "sh", "-c", "cat in.txt > out.txt"]);
    assert!(out.status.success(), "{out:?}");
    let run = sb.show_json("latest");
    assert_ne!(run["backend"], "ebpf", "{run:#}");
    let reason = run["backend_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("pid namespace"), "{run:#}");
    let outputs = run["outputs"].to_string();
    assert!(outputs.contains("out.txt"), "not an empty run: {run:#}");

    let out = in_own_pid_namespace(&sb, &["doctor", "--json"]);
    let doc = parse_json(&String::from_utf8_lossy(&out.stdout));
    let ebpf = backend(&doc, "ebpf");
    assert_ne!(ebpf["usable"], true, "{doc:#}");
    assert!(reasons(ebpf).contains("pid namespace"), "{doc:#}");
}

/// Data copied in the kernel (`sendfile`, `copy_file_range`) into a file
/// the command did not open, through a descriptor it inherited, makes that
/// file an output: the kernel side walks the destination's path. So do
/// copies into files it opened itself, one after another on the same
/// descriptor number.
#[test]
fn ebpf_copies_into_inherited_and_own_descriptors_are_outputs() {
    if !is_root() {
        eprintln!("skipped: eBPF needs root");
        return;
    }
    let sb = Sandbox::new();
    sb.write("in.txt", "sent\n");
    let script = "import os\n\
                  src = os.open('in.txt', os.O_RDONLY)\n\
                  os.sendfile(3, src, 0, 5)\n\
                  src2 = os.open('in.txt', os.O_RDONLY)\n\
                  os.copy_file_range(src2, 3, 5)\n\
                  for i in range(40):\n\
                  \x20   own = os.open(f'own{i}.txt', os.O_WRONLY | os.O_CREAT, 0o644)\n\
                  \x20   os.copy_file_range(os.open('in.txt', os.O_RDONLY), own, 5)\n\
                  \x20   os.close(own)\n";
    let status = sb.run_with_inherited_fd3("out.txt", "ebpf", script);
    assert!(status.success());
    assert_eq!(sb.read("out.txt"), b"sent\nsent\n");
    let run = sb.show_json("latest");
    assert_eq!(run["backend"], "ebpf", "{run:#}");
    let outputs = sb.in_sandbox(&run["outputs"]);
    let mut want: std::collections::BTreeSet<std::path::PathBuf> =
        (0..40).map(|i| format!("own{i}.txt").into()).collect();
    want.insert("out.txt".into());
    assert_eq!(outputs, want, "{run:#}");
    assert_eq!(
        sb.in_sandbox(&run["inputs"]),
        ["in.txt".into()].into_iter().collect(),
        "{run:#}"
    );
}

/// The kernel side keeps each process's walked cwd, checked on every use
/// against the cwd's dentry, parent and name. A directory removed and
/// another made (which may reuse the freed dentry), and the cwd itself
/// renamed, are walked again: files written relative to the cwd by the same
/// shell are recorded where they are.
#[test]
fn ebpf_relative_paths_follow_a_cwd_removed_remade_or_renamed() {
    if !is_root() {
        eprintln!("skipped: eBPF needs root");
        return;
    }
    let sb = Sandbox::new();
    let script = "mkdir d1 && cd d1 && echo 1 > f && cd .. && rm -r d1 && \
                  mkdir d2 && cd d2 && echo 2 > f && cd .. && \
                  mkdir same && cd same && echo 3 > f && cd .. && rm -r same && \
                  mkdir same && cd same && echo 4 > g && \
                  mv ../same ../moved && echo 5 > h";
    let out = sb.run("ebpf", &["sh", "-c", script]);
    assert!(out.status.success(), "{out:?}");
    let run = sb.show_json("latest");
    assert_eq!(run["backend"], "ebpf", "{run:#}");
    assert_eq!(sb.read("moved/h"), b"5\n");
    let want: std::collections::BTreeSet<std::path::PathBuf> = ["d2/f", "moved/g", "moved/h"]
        .iter()
        .map(Into::into)
        .collect();
    assert_eq!(sb.in_sandbox(&run["outputs"]), want, "{run:#}");
}
