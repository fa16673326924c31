//! What only the ptrace backend sees, and the process-tree corners it must
//! get right: static and raw-syscall programs, a cleared environment, exec
//! from a non-leader thread, vfork, job-control stops, 32-bit calls, paths
//! longer than a page.
//!
//! Where preload is blind by design (a raw `syscall()` never passes through
//! libc), the test says what preload records instead.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;
use tests::{Sandbox, output};

fn set(paths: &[&str]) -> BTreeSet<PathBuf> {
    paths.iter().map(PathBuf::from).collect()
}

/// Runs `cmd` under ptrace and returns the run, checking roar exited 0.
fn traced(sb: &Sandbox, cmd: &[&str]) -> Value {
    let out = sb.run("ptrace", cmd);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = sb.show_json("latest");
    assert_eq!(run["backend"], "ptrace", "{run:#}");
    run
}

fn assert_io(sb: &Sandbox, run: &Value, inputs: &[&str], outputs: &[&str]) {
    assert_eq!(
        sb.in_sandbox(&run["inputs"]),
        set(inputs),
        "inputs: {run:#}"
    );
    assert_eq!(
        sb.in_sandbox(&run["outputs"]),
        set(outputs),
        "outputs: {run:#}"
    );
}

/// A Go-style program: raw `syscall(SYS_openat)`, no libc file calls.
#[test]
fn raw_syscalls_are_seen() {
    let sb = Sandbox::new();
    sb.write("raw_in.txt", "raw\n");
    let run = traced(&sb, &[env!("FIXTURE_RAW_SYSCALL")]);
    assert_eq!(run["complete"], true, "{run:#}");
    assert_io(&sb, &run, &["raw_in.txt"], &["raw_out.txt"]);
    assert_eq!(sb.read("raw_out.txt"), b"raw\n");
}

/// A static binary writing a file is recorded in full, with no warning.
#[test]
fn static_binary_is_recorded_in_full() {
    let sb = Sandbox::new();
    let run = traced(&sb, &[env!("FIXTURE_STATIC_WRITE")]);
    assert_eq!(run["complete"], true, "{run:#}");
    assert_eq!(run["warnings"], serde_json::json!([]), "{run:#}");
    assert_io(&sb, &run, &[], &["static_out.txt"]);
}

/// `env -i` drops LD_PRELOAD; ptrace does not care about the environment.
#[test]
fn empty_environment_exec_is_recorded() {
    let sb = Sandbox::new();
    sb.write("in.txt", "env\n");
    let cmd = ["env", "-i", "/bin/sh", "-c", "cat in.txt > out.txt"];
    let run = traced(&sb, &cmd);
    assert_eq!(run["complete"], true, "{run:#}");
    assert_io(&sb, &run, &["in.txt"], &["out.txt"]);

    // Preload sees the exec drop its library and says so.
    let out = sb.run("preload", &cmd);
    assert_eq!(out.status.code(), Some(0));
    let run = sb.show_json("latest");
    assert_eq!(run["complete"], false, "{run:#}");
    assert!(
        run["warnings"]
            .to_string()
            .contains("without the preload library"),
        "{run:#}"
    );
}

/// `auto` must not pick preload for a static executable.
#[test]
fn auto_picks_ptrace_for_a_static_binary() {
    let sb = Sandbox::new();
    // Without eBPF (its BTF taken away), auto must not pick preload.
    let out = output(
        sb.roar()
            .env("ROAR_BTF", "/nonexistent/btf")
            // Nor through programs a user loaded on this machine (they need no BTF).
            .env("ROAR_BPFFS_DIR", "/nonexistent/roar-pins")
            .args(["run", "--backend", "auto", "-q", "--"])
            .arg(env!("FIXTURE_STATIC_WRITE")),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let run = sb.show_json("latest");
    assert_eq!(run["backend"], "ptrace", "{run:#}");
    let reason = run["backend_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("statically linked"), "{run:#}");
    assert_eq!(run["complete"], true, "{run:#}");
    assert_io(&sb, &run, &[], &["static_out.txt"]);
}

/// exec from a thread that is not the leader: the new image takes the
/// leader's pid, and what it does is still recorded.
#[test]
fn exec_from_a_non_leader_thread() {
    let sb = Sandbox::new();
    sb.write("in.txt", "thread\n");
    let run = traced(&sb, &[env!("FIXTURE_THREAD_EXEC")]);
    assert_eq!(run["complete"], true, "{run:#}");
    assert_io(&sb, &run, &["in.txt"], &["out.txt"]);
    let procs = run["processes"].as_array().unwrap();
    let first = procs[0]["pid"].clone();
    assert!(
        procs
            .iter()
            .any(|p| p["pid"] == first && p["argv"][0] == "sh"),
        "sh runs under the leader's pid: {run:#}"
    );
}

/// vfork + exec.
#[test]
fn vfork_then_exec() {
    let sb = Sandbox::new();
    sb.write("in.txt", "vfork\n");
    let run = traced(&sb, &[env!("FIXTURE_VFORK_EXEC")]);
    assert_io(&sb, &run, &["in.txt"], &["out.txt"]);
    let procs = run["processes"].as_array().unwrap();
    let cp = procs
        .iter()
        .find(|p| p["argv"][0] == "cp")
        .unwrap_or_else(|| panic!("no cp: {run:#}"));
    assert!(
        procs.iter().any(|p| p["pid"] == cp["ppid"]),
        "cp's parent is recorded: {run:#}"
    );
    assert_eq!(cp["exit_code"], 0);
}

/// A child stops itself with SIGSTOP and its parent continues it: job
/// control works exactly as untraced (the tracer must not resume a
/// group-stopped tracee itself).
#[test]
fn job_control_stop_and_continue() {
    let sb = Sandbox::new();
    let script = "sh -c 'kill -STOP $$; echo resumed > r.txt' & child=$!; \
                  sleep 0.3; \
                  [ -e r.txt ] && echo ran-while-stopped > bad.txt; \
                  kill -CONT $child; wait $child";
    let run = traced(&sb, &["sh", "-c", script]);
    assert!(
        !sb.join("bad.txt").exists(),
        "the stopped child kept running"
    );
    assert_eq!(sb.read("r.txt"), b"resumed\n");
    assert_io(&sb, &run, &[], &["r.txt"]);
}

/// Signals reach the tracee as they would untraced: a handler runs, and a
/// default action kills.
#[test]
fn signals_are_delivered_unchanged() {
    let sb = Sandbox::new();
    let run = traced(
        &sb,
        &[
            "sh",
            "-c",
            "trap 'echo usr1 > got.txt' USR1; kill -USR1 $$; exit 0",
        ],
    );
    assert_eq!(sb.read("got.txt"), b"usr1\n");
    assert_io(&sb, &run, &[], &["got.txt"]);

    let out = sb.run("ptrace", &["sh", "-c", "kill -SEGV $$"]);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(out.status.signal(), Some(11), "{out:?}");
    assert_eq!(sb.show_json("latest")["signal"], 11);
}

/// 32-bit calls (int $0x80) from a 64-bit process are not decoded: the run
/// says so and is incomplete, rather than mis-reading them as 64-bit calls.
#[test]
fn ia32_calls_are_reported_unseen() {
    // The eBPF backend does not decode them either, and says so the same way.
    for backend in ["ptrace", "ebpf"] {
        let sb = Sandbox::new();
        let out = sb.run(backend, &[env!("FIXTURE_IA32_OPEN")]);
        assert_eq!(out.status.code(), Some(0), "[{backend}] {out:?}");
        assert!(sb.join("ia32_out.txt").exists());
        let run = sb.show_json("latest");
        assert_eq!(run["complete"], false, "[{backend}] {run:#}");
        assert!(
            run["warnings"].to_string().contains("32-bit"),
            "[{backend}] {run:#}"
        );
    }
}

/// A relative path longer than a page (read across page boundaries).
#[test]
fn path_longer_than_a_page() {
    for backend in ["ptrace", "preload", "ebpf"] {
        let sb = Sandbox::new();
        // 16 components of 250 bytes: 4016 bytes relative.
        let mut rel = PathBuf::new();
        for i in 0..16u8 {
            rel.push(format!("{}{}", char::from(b'a' + i), "d".repeat(249)));
        }
        let file = rel.join("f");
        sb.write(&file, "deep\n");
        // Relative to the sandbox: under PATH_MAX, though the absolute
        // path is longer.
        let out = sb.run(backend, &["cat", file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "[{backend}] {out:?}");
        let run = sb.show_json("latest");
        assert_eq!(run["complete"], true, "[{backend}] {run:#}");
        assert_eq!(
            sb.in_sandbox(&run["inputs"]),
            set(&[file.to_str().unwrap()])
        );
    }
}

/// An exec that fails after the PATH lookup (a missing `#!` interpreter)
/// and a script with no `#!` (run by /bin/sh, as execvp does) end the same
/// way under both backends.
#[test]
fn exec_failures_match_preload() {
    for backend in ["preload", "ptrace"] {
        let sb = Sandbox::new();
        sb.write("bad.sh", "#!/nonexistent/interp\necho hi\n");
        sb.write("plain.sh", "echo from-sh > out.txt\n");
        for f in ["bad.sh", "plain.sh"] {
            let p = sb.join(f);
            let mut perm = std::fs::metadata(&p).unwrap().permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
            std::fs::set_permissions(&p, perm).unwrap();
        }
        let out = sb.run(backend, &["./bad.sh"]);
        assert_eq!(out.status.code(), Some(127), "[{backend}] {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("bad.sh"), "[{backend}] {err}");
        assert_eq!(sb.show_json("latest")["complete"], false, "[{backend}]");

        let out = sb.run(backend, &["./plain.sh"]);
        assert_eq!(out.status.code(), Some(0), "[{backend}] {out:?}");
        let run = sb.show_json("latest");
        assert_io(&sb, &run, &["plain.sh"], &["out.txt"]);
    }
}

/// Data moved into a file by `sendfile`/`copy_file_range` through an fd the
/// command inherited (opened by whoever started roar) makes that file an
/// output: ptrace reads the destination from the call. Preload does not see
/// fds it did not open.
#[test]
fn sendfile_into_an_inherited_fd_is_an_output() {
    let sb = Sandbox::new();
    sb.write("in.txt", "sent\n");
    let script = "import os\n\
                  src = os.open('in.txt', os.O_RDONLY)\n\
                  os.sendfile(3, src, 0, 5)\n\
                  src2 = os.open('in.txt', os.O_RDONLY)\n\
                  os.copy_file_range(src2, 3, 5)\n";
    let status = sb.run_with_inherited_fd3("out.txt", "ptrace", script);
    assert!(status.success());
    assert_eq!(sb.read("out.txt"), b"sent\nsent\n");
    let run = sb.show_json("latest");
    assert_io(&sb, &run, &["in.txt"], &["out.txt"]);
}

/// A read-only open is reported at its entry, from what the tracer sees at
/// its path. A process that makes its own mount namespace may see another
/// file there: from then on its opens are seen at their exit, so a file it
/// reads through a bind mount only it has is still an input (the path is
/// not the same file here, which the run says).
#[test]
fn a_read_in_a_mount_namespace_of_its_own_is_seen() {
    if !tests::is_root() {
        eprintln!("skipped: a mount namespace needs root");
        return;
    }
    let sb = Sandbox::new();
    sb.write("real/f", "only in the namespace\n");
    sb.write("plain.txt", "read before\n");
    std::fs::create_dir(sb.path().join("view")).unwrap();
    let run = traced(
        &sb,
        &[
            "sh",
            "-c",
            "cat plain.txt > /dev/null && exec unshare -m sh -c \
             'mount --bind real view && cat view/f > out.txt'",
        ],
    );
    assert_eq!(sb.read("out.txt"), b"only in the namespace\n");
    assert_io(&sb, &run, &["plain.txt", "view/f"], &["out.txt"]);
}
