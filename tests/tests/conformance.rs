//! Conformance suite: every fixture is run under every backend in [`BACKENDS`]
//! and what roar records is compared with what CONTRACT.md says it must record.
//!
//! Expected paths are relative to the sandbox; paths roar records outside the
//! sandbox (the fixture binaries, interpreters, system files) are ignored.

use std::collections::BTreeSet;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{
    Sandbox, output, parse_json, roar_bin, roar_command, runs_of, send_signal, unescape_path,
    wait_for,
};

/// The backends every fixture runs under.
const BACKENDS: &[&str] = &["preload", "ptrace", "ebpf"];

/// Something to do in the sandbox before the traced command runs.
enum Setup {
    /// Write a file (parents created).
    File(&'static str, &'static str),
    /// Create a directory (parents created).
    Dir(&'static str),
    /// Create a symlink `link -> target`.
    Symlink(&'static str, &'static str),
    /// Run `sh -c` in the sandbox, untraced.
    Sh(&'static str),
}

/// One fixture: one tricky thing, and what roar must record for it.
struct Fixture {
    setup: &'static [Setup],
    cmd: &'static [&'static str],
    /// Exit code of the command (and therefore of roar).
    exit: i32,
    /// Expected inputs, relative to the sandbox. `"a|b"` means "a or b (or
    /// both)": used where the contract allows either spelling.
    inputs: &'static [&'static str],
    /// Expected outputs, relative to the sandbox. Non-UTF-8 bytes are written
    /// `\xNN`, as `parse_json` decodes roar's `\udcNN` escapes.
    outputs: &'static [&'static str],
    /// Files read and then rewritten by the run, with their content before
    /// the run: their input hash must be that content's hash or null.
    rewritten: &'static [(&'static str, &'static str)],
    /// A static executable: under `preload` the run must be marked incomplete
    /// with a warning mentioning "static", and its outputs are not expected
    /// (the documented difference between backends). Other backends see it.
    static_exe: bool,
}

const fn fixture() -> Fixture {
    Fixture {
        setup: &[],
        cmd: &[],
        exit: 0,
        inputs: &[],
        outputs: &[],
        rewritten: &[],
        static_exe: false,
    }
}

// ---------------------------------------------------------------------------
// The fixtures.

/// Fixture 1: Shell redirect + pipeline.
const SHELL_PIPELINE: Fixture = Fixture {
    setup: &[Setup::File("in.txt", "hello pipeline\n")],
    cmd: &["sh", "-c", "cat in.txt | tr a-z A-Z > out.txt"],
    inputs: &["in.txt"],
    outputs: &["out.txt"],
    ..fixture()
};

/// Fixture 2: Python reads a CSV and writes the model atomically (temp + os.replace).
const PYTHON_ATOMIC_WRITE: Fixture = Fixture {
    setup: &[
        Setup::File("data.csv", "a,b\n1,2\n3,4\n"),
        Setup::File(
            "train.py",
            "import os\n\
             with open('data.csv') as f:\n    rows = f.read().splitlines()\n\
             with open('model.tmp', 'w') as f:\n    f.write(str(len(rows)) + '\\n')\n\
             os.replace('model.tmp', 'model.bin')\n",
        ),
    ],
    cmd: &["python3", "train.py"],
    inputs: &["data.csv", "train.py"],
    outputs: &["model.bin"],
    ..fixture()
};

/// Fixture 3: `mv`: a rename puts b.txt in place; a.txt no longer exists and its
/// content was never read.
const MV_RENAME: Fixture = Fixture {
    setup: &[Setup::File("a.txt", "moved\n")],
    cmd: &["mv", "a.txt", "b.txt"],
    inputs: &[],
    outputs: &["b.txt"],
    ..fixture()
};

/// Fixture 4: `cp`.
const CP_COPY: Fixture = Fixture {
    setup: &[Setup::File("src.txt", "copied\n")],
    cmd: &["cp", "src.txt", "dst.txt"],
    inputs: &["src.txt"],
    outputs: &["dst.txt"],
    ..fixture()
};

/// Fixture 5a: `tar cf` of a directory reads every file in it.
const TAR_CREATE: Fixture = Fixture {
    setup: &[
        Setup::File("dir/one.txt", "one\n"),
        Setup::File("dir/two.txt", "two\n"),
    ],
    cmd: &["tar", "cf", "out.tar", "dir/"],
    inputs: &["dir/one.txt", "dir/two.txt"],
    outputs: &["out.tar"],
    ..fixture()
};

/// Fixture 5b: `tar xf` writes every file it extracts.
const TAR_EXTRACT: Fixture = Fixture {
    setup: &[
        Setup::File("dir/one.txt", "one\n"),
        Setup::File("dir/two.txt", "two\n"),
        Setup::Sh("tar cf out.tar dir/ && mkdir extracted"),
    ],
    cmd: &["tar", "xf", "out.tar", "-C", "extracted"],
    inputs: &["out.tar"],
    outputs: &["extracted/dir/one.txt", "extracted/dir/two.txt"],
    ..fixture()
};

/// Fixture 6: Four threads each write a file.
const THREADS: Fixture = Fixture {
    cmd: &[env!("FIXTURE_THREADS")],
    outputs: &["t0.txt", "t1.txt", "t2.txt", "t3.txt"],
    ..fixture()
};

/// Fixture 7: fork + exec: the child execs `/bin/cp in.txt out.txt`.
/// (The process tree is checked in its own test.)
const FORK_EXEC: Fixture = Fixture {
    setup: &[Setup::File("in.txt", "from the child\n")],
    cmd: &[env!("FIXTURE_FORK_EXEC")],
    inputs: &["in.txt"],
    outputs: &["out.txt"],
    ..fixture()
};

/// Fixture 8: chdir + openat relative to a directory fd reached through "..".
const CHDIR_OPENAT: Fixture = Fixture {
    setup: &[Setup::Dir("sub"), Setup::File("other/in.txt", "other\n")],
    cmd: &[env!("FIXTURE_CHDIR_OPENAT")],
    inputs: &["other/in.txt"],
    outputs: &["other/out.txt", "sub/here.txt"],
    ..fixture()
};

/// Fixture 9a: A temp file created and deleted by C, plus a real output.
const TEMP_DELETED_C: Fixture = Fixture {
    cmd: &[env!("FIXTURE_TEMP_THEN_DELETE")],
    outputs: &["result.txt"],
    ..fixture()
};

/// Fixture 9b: Python's tempfile (in the sandbox, deleted on close), plus a real output.
const TEMP_DELETED_PY: Fixture = Fixture {
    setup: &[Setup::File(
        "tmp.py",
        "import tempfile\n\
         with tempfile.NamedTemporaryFile(dir='.', delete=True) as t:\n    t.write(b'scratch')\n    t.flush()\n\
         with open('real.txt', 'w') as f:\n    f.write('real\\n')\n",
    )],
    cmd: &["python3", "tmp.py"],
    inputs: &["tmp.py"],
    outputs: &["real.txt"],
    ..fixture()
};

/// Fixture 10: Read-modify-write of one file.
const READ_MODIFY_WRITE: Fixture = Fixture {
    setup: &[
        Setup::File("counter.txt", "41\n"),
        Setup::File(
            "bump.py",
            "with open('counter.txt') as f:\n    n = int(f.read())\n\
             with open('counter.txt', 'w') as f:\n    f.write(str(n + 1) + '\\n')\n",
        ),
    ],
    cmd: &["python3", "bump.py"],
    inputs: &["counter.txt", "bump.py"],
    outputs: &["counter.txt"],
    rewritten: &[("counter.txt", "41\n")],
    ..fixture()
};

/// Fixture 11: Names with a space and with a byte that is not UTF-8.
/// (The raw JSON escape is checked in its own test.)
const ODD_NAMES: Fixture = Fixture {
    cmd: &[env!("FIXTURE_ODD_NAMES")],
    outputs: &["with space.txt", "caf\\xe9 data.txt"],
    ..fixture()
};

/// Fixture 12: Reading through a symlink: the link or its target must be recorded.
const SYMLINK_READ: Fixture = Fixture {
    setup: &[
        Setup::File("real.txt", "real\n"),
        Setup::Symlink("link.txt", "real.txt"),
    ],
    cmd: &["sh", "-c", "cat link.txt > out.txt"],
    // One file is one path: the resolved one.
    inputs: &["real.txt"],
    outputs: &["out.txt"],
    ..fixture()
};

/// Fixture 13: A static executable writing a file.
const STATIC_EXE: Fixture = Fixture {
    cmd: &[env!("FIXTURE_STATIC_WRITE")],
    outputs: &["static_out.txt"],
    static_exe: true,
    ..fixture()
};

/// Fixture 14a: A plain non-zero exit code.
const EXIT_CODE: Fixture = Fixture {
    setup: &[Setup::File("in.txt", "x\n")],
    cmd: &["sh", "-c", "cat in.txt > out.txt; exit 3"],
    exit: 3,
    inputs: &["in.txt"],
    outputs: &["out.txt"],
    ..fixture()
};

/// An exec whose argument vector is longer than a page (every link line,
/// `configure`, `xargs`), then more work: nothing after it may be lost.
const LONG_ARGV: Fixture = Fixture {
    setup: &[Setup::File("in.txt", "after a long exec\n")],
    cmd: &["sh", "-c", "/bin/true $(seq 1 3000); cat in.txt > out.txt"],
    inputs: &["in.txt"],
    outputs: &["out.txt"],
    ..fixture()
};

/// Files only opened for writing are not outputs: a log opened for append
/// and never written (`exec 3>>f`), an empty lock file that was there before
/// (opened read-write with O_CREAT, as lock helpers do).
const OPENED_NOT_WRITTEN: Fixture = Fixture {
    setup: &[
        Setup::File("in.txt", "data\n"),
        Setup::File("app.log", "old log line\n"),
        Setup::Sh(": > .lock && touch -d '1 hour ago' .lock app.log"),
    ],
    cmd: &[
        "sh",
        "-c",
        "exec 3>>app.log; python3 -c \"import os; os.close(os.open('.lock', os.O_RDWR | os.O_CREAT))\"; cat in.txt > out.txt",
    ],
    inputs: &["in.txt"],
    outputs: &["out.txt"],
    ..fixture()
};

/// `sort -o f f`: the first open is for writing (no O_TRUNC), then the
/// original content is read: f is an input (hashed as read, or null with a
/// warning) and an output.
const SORT_IN_PLACE: Fixture = Fixture {
    setup: &[Setup::File("f.txt", "b\na\n")],
    cmd: &["sort", "-o", "f.txt", "f.txt"],
    inputs: &["f.txt"],
    outputs: &["f.txt"],
    rewritten: &[("f.txt", "b\na\n")],
    ..fixture()
};

/// A write through a symlink to a file: the file it names is the output.
const WRITE_THROUGH_SYMLINK: Fixture = Fixture {
    setup: &[
        Setup::File("target.txt", "old\n"),
        Setup::Symlink("link.txt", "target.txt"),
    ],
    cmd: &["sh", "-c", "echo new > link.txt"],
    outputs: &["target.txt"],
    ..fixture()
};

/// A file reached through a symlinked directory is recorded once, under
/// its resolved path, under every backend.
const SYMLINKED_DIR: Fixture = Fixture {
    setup: &[
        Setup::File("src.txt", "through a directory link\n"),
        Setup::Dir("data"),
        Setup::Symlink("cur", "data"),
    ],
    cmd: &[
        "sh",
        "-c",
        "cat src.txt > cur/copy.txt; cat cur/copy.txt > back.txt",
    ],
    inputs: &["src.txt"],
    outputs: &["data/copy.txt", "back.txt"],
    ..fixture()
};

// ---------------------------------------------------------------------------
// The checks.

macro_rules! fixture_tests {
    ($($name:ident => $fixture:expr;)*) => {
        $(
            #[test]
            fn $name() {
                run_fixture(stringify!($name), &$fixture);
            }
        )*

        /// Every table fixture, for checks over the whole table.
        const ALL: &[(&str, &Fixture)] = &[$((stringify!($name), &$fixture)),*];
    };
}

fixture_tests! {
    shell_pipeline => SHELL_PIPELINE;
    python_atomic_write => PYTHON_ATOMIC_WRITE;
    mv_rename => MV_RENAME;
    cp_copy => CP_COPY;
    tar_create => TAR_CREATE;
    tar_extract => TAR_EXTRACT;
    threads => THREADS;
    fork_exec => FORK_EXEC;
    chdir_openat => CHDIR_OPENAT;
    temp_deleted_c => TEMP_DELETED_C;
    temp_deleted_py => TEMP_DELETED_PY;
    read_modify_write => READ_MODIFY_WRITE;
    odd_names => ODD_NAMES;
    symlink_read => SYMLINK_READ;
    static_exe => STATIC_EXE;
    exit_code => EXIT_CODE;
    long_argv => LONG_ARGV;
    opened_not_written => OPENED_NOT_WRITTEN;
    sort_in_place => SORT_IN_PLACE;
    write_through_symlink => WRITE_THROUGH_SYMLINK;
    symlinked_dir => SYMLINKED_DIR;
}

/// Runs `f` under every backend, reporting all failing backends at once.
fn run_fixture(name: &str, f: &Fixture) {
    let mut failures = Vec::new();
    for &backend in BACKENDS {
        let result = std::panic::catch_unwind(|| {
            let sb = Sandbox::new();
            prepare(&sb, f.setup);
            let out = sb.run(backend, f.cmd);
            check_fixture(&sb, backend, f, &out);
        });
        if result.is_err() {
            failures.push(backend);
        }
    }
    assert!(failures.is_empty(), "{name} failed under {failures:?}");
}

fn prepare(sb: &Sandbox, setup: &[Setup]) {
    for step in setup {
        match step {
            Setup::File(path, contents) => sb.write(path, contents),
            Setup::Dir(path) => sb.mkdir(path),
            Setup::Symlink(link, target) => symlink(target, sb.join(link)).expect("symlink"),
            Setup::Sh(script) => {
                tests::check(
                    Command::new("sh")
                        .args(["-c", script])
                        .current_dir(sb.path()),
                );
            }
        }
    }
}

fn check_fixture(sb: &Sandbox, backend: &str, f: &Fixture, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(f.exit),
        "[{backend}] roar's exit status must be the command's; stderr:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "[{backend}] nothing was printed to stdout, got {:?}",
        String::from_utf8_lossy(&out.stdout)
    );

    let run = sb.show_json("latest");
    let ctx = format!("[{backend}] run:\n{run:#}");
    assert_eq!(run["backend"], backend, "{ctx}");
    assert_eq!(run["exit_code"], f.exit, "{ctx}");
    assert_eq!(run["signal"], Value::Null, "{ctx}");

    let blind = f.static_exe && backend == "preload";
    if blind {
        assert_eq!(run["complete"], false, "static exe under preload: {ctx}");
        let warnings = run["warnings"].as_array().expect("warnings is an array");
        assert!(
            warnings
                .iter()
                .any(|w| w.to_string().to_lowercase().contains("static")),
            "a warning must say the executable is static: {ctx}"
        );
    } else {
        assert_eq!(run["complete"], true, "{ctx}");
    }

    check_paths_normal(&run, &ctx);
    let inputs = in_sandbox(sb, &run["inputs"]);
    let outputs = in_sandbox(sb, &run["outputs"]);
    compare("inputs", &inputs, f.inputs, &ctx);
    if !blind {
        compare("outputs", &outputs, f.outputs, &ctx);
    }

    // Output hashes and sizes describe the files as they are now.
    for o in artifacts(&run["outputs"]) {
        let path = unescape_path(o["path"].as_str().expect("path is a string"));
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("output {} must exist: {e}; {ctx}", path.display()));
        assert_eq!(
            o["hash"],
            hash(&bytes),
            "hash of output {}; {ctx}",
            path.display()
        );
        if !o["size"].is_null() {
            assert_eq!(o["size"], bytes.len(), "size of {}; {ctx}", path.display());
        }
    }
    // Input hashes describe the content as read: for an untouched input that
    // is the content now; for a rewritten one the old content or unknown.
    for i in artifacts(&run["inputs"]) {
        let raw = i["path"].as_str().expect("path is a string");
        let path = unescape_path(raw);
        let Ok(rel) = path.strip_prefix(sb.path()) else {
            continue;
        };
        if let Some((_, before)) = f.rewritten.iter().find(|(p, _)| Path::new(p) == rel) {
            assert!(
                i["hash"].is_null() || i["hash"] == hash(before.as_bytes()),
                "input hash of rewritten {raw} must be of its original content or null; {ctx}"
            );
        } else if outputs.contains(rel) {
            // Written by this run too (not declared as rewritten): skip.
        } else if let Ok(bytes) = std::fs::read(&path) {
            assert_eq!(i["hash"], hash(&bytes), "hash of input {raw}; {ctx}");
        }
    }
}

fn hash(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

fn artifacts(v: &Value) -> &[Value] {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("expected an array of artifacts, got {v}"))
}

/// The artifact paths under the sandbox, relative to it.
fn in_sandbox(sb: &Sandbox, list: &Value) -> BTreeSet<PathBuf> {
    sb.in_sandbox(list)
}

/// Every recorded path is absolute and lexically normal.
fn check_paths_normal(run: &Value, ctx: &str) {
    for key in ["inputs", "outputs"] {
        for a in artifacts(&run[key]) {
            let s = a["path"].as_str().expect("path is a string");
            let p = Path::new(s);
            assert!(p.is_absolute(), "{key} path {s} is not absolute; {ctx}");
            assert!(
                p.components()
                    .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
                    && !s.contains("//")
                    && (s == "/" || !s.ends_with('/')),
                "{key} path {s} is not lexically normal; {ctx}"
            );
        }
    }
}

/// Compares recorded paths with the expectation (`"a|b"` = either).
fn compare(what: &str, actual: &BTreeSet<PathBuf>, expected: &[&str], ctx: &str) {
    let mut allowed = BTreeSet::new();
    let mut missing = Vec::new();
    for entry in expected {
        let alternatives: Vec<PathBuf> = entry.split('|').map(unescape_path).collect();
        if !alternatives.iter().any(|a| actual.contains(a)) {
            missing.push(*entry);
        }
        allowed.extend(alternatives);
    }
    let extra: Vec<_> = actual.difference(&allowed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, unexpected {extra:?}; {ctx}"
    );
}

// ---------------------------------------------------------------------------
// Checks that do not fit the table.

/// Fixture 7: The process tree: at least the fixture and the `cp` it forked and
/// exec'd, with `cp`'s ppid the pid of a recorded process.
#[test]
fn fork_exec_process_tree() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        prepare(&sb, FORK_EXEC.setup);
        let out = sb.run(backend, FORK_EXEC.cmd);
        assert!(out.status.success(), "[{backend}] {out:?}");
        let run = sb.show_json("latest");
        let procs = run["processes"].as_array().expect("processes is an array");
        assert!(procs.len() >= 2, "[{backend}] processes: {run:#}");
        let pids: BTreeSet<i64> = procs.iter().filter_map(|p| p["pid"].as_i64()).collect();
        let is_cp = |p: &&Value| {
            p["argv"][0] == "cp"
                || p["exe"]
                    .as_str()
                    .is_some_and(|e| Path::new(e).file_name() == Some("cp".as_ref()))
        };
        let cp = procs
            .iter()
            .find(is_cp)
            .unwrap_or_else(|| panic!("[{backend}] no cp process: {run:#}"));
        let ppid = cp["ppid"].as_i64().expect("ppid is a number");
        assert!(
            pids.contains(&ppid),
            "[{backend}] cp's parent {ppid} must be a recorded process: {run:#}"
        );
        let parent = procs.iter().find(|p| p["pid"] == ppid).unwrap();
        assert_eq!(
            parent["argv"][0], FORK_EXEC.cmd[0],
            "[{backend}] cp's parent is the fixture: {run:#}"
        );
        assert_eq!(cp["exit_code"], 0, "[{backend}] {run:#}");
    }
}

/// A forked child killed before it does anything is still a process of
/// the run, under every backend (preload opens a fork child's stream only
/// at its first record, so this child is known from its parent's wait).
#[test]
fn a_fork_child_killed_before_it_did_anything_is_in_the_tree() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        sb.write(
            "die.py",
            "import os, signal\n\
             pid = os.fork()\n\
             if pid == 0:\n    os.kill(os.getpid(), signal.SIGKILL)\n\
             _, st = os.waitpid(pid, 0)\n\
             assert os.WIFSIGNALED(st)\n",
        );
        let out = sb.run(backend, &["python3", "die.py"]);
        assert!(out.status.success(), "[{backend}] {out:?}");
        let run = sb.show_json("latest");
        let child = python_fork_child(&run, "die.py", backend);
        assert_eq!(child["signal"], 9, "[{backend}] {run:#}");
    }
}

/// The fork child (same argv, ppid the parent's) of the `python3 SCRIPT`
/// process of `run` that was not killed: pyenv's shims wrap it in bash and
/// env images first.
fn python_fork_child<'a>(run: &'a Value, script: &str, backend: &str) -> &'a Value {
    let procs = run["processes"].as_array().expect("processes is an array");
    let top = procs
        .iter()
        .find(|p| {
            p["argv"][1] == script
                && p["exe"].as_str().is_some_and(|e| e.contains("python"))
                && p["signal"].is_null()
        })
        .unwrap_or_else(|| panic!("[{backend}] no python process: {run:#}"));
    procs
        .iter()
        .find(|p| p["ppid"] == top["pid"] && p["argv"] == top["argv"])
        .unwrap_or_else(|| panic!("[{backend}] no fork child of python: {run:#}"))
}

/// A fork child's cwd is the directory it was forked in, after chdirs in
/// its parent, and its relative paths resolve there, under every backend
/// (none follows chdir itself: eBPF walks the cwd at fork and exec).
#[test]
fn a_fork_child_after_chdir_has_the_new_cwd() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        sb.mkdir("sub/deeper");
        sb.write(
            "cd.py",
            "import os\n\
             os.chdir('sub')\n\
             os.chdir('deeper')\n\
             pid = os.fork()\n\
             if pid == 0:\n    open('made', 'w').write('x')\n    os._exit(0)\n\
             os.waitpid(pid, 0)\n",
        );
        let out = sb.run(backend, &["python3", "cd.py"]);
        assert!(out.status.success(), "[{backend}] {out:?}");
        let run = sb.show_json("latest");
        assert_eq!(
            in_sandbox(&sb, &run["outputs"]),
            BTreeSet::from([PathBuf::from("sub/deeper/made")]),
            "[{backend}] {run:#}"
        );
        let child = python_fork_child(&run, "cd.py", backend);
        let cwd = unescape_path(child["cwd"].as_str().expect("cwd is a string"));
        assert_eq!(cwd, sb.join("sub/deeper"), "[{backend}] {run:#}");
    }
}

/// Fixture 11: Non-UTF-8 bytes are escaped as `\udcXX` in the JSON text.
#[test]
fn odd_names_json_escape() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let out = sb.run(backend, ODD_NAMES.cmd);
        assert!(out.status.success(), "[{backend}] {out:?}");
        let raw = sb.show_raw("latest");
        assert!(
            raw.contains("caf\\udce9 data.txt"),
            "[{backend}] the 0xE9 byte must be escaped as \\udce9:\n{raw}"
        );
        assert!(
            !raw.contains('\u{fffd}') && !raw.contains("\\ufffd"),
            "[{backend}] never U+FFFD:\n{raw}"
        );
    }
}

/// Fixture 14: Killed by a signal: roar dies of the same signal and records it.
#[test]
fn exit_by_signal() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let out = sb.run(backend, &["sh", "-c", "kill -TERM $$"]);
        assert_eq!(
            out.status.signal(),
            Some(SIGTERM),
            "[{backend}] roar must die of SIGTERM like the command: {out:?}"
        );
        let run = sb.show_json("latest");
        assert_eq!(run["signal"], SIGTERM, "[{backend}] {run:#}");
    }
}

const SIGTERM: i32 = 15;

/// Fixture 14: A command that does not exist: 127, like a shell.
#[test]
fn exit_missing_command() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let out = sb.run(backend, &["roar-test-no-such-command"]);
        assert_eq!(out.status.code(), Some(127), "[{backend}] {out:?}");
        assert!(out.stdout.is_empty(), "[{backend}] {out:?}");
    }
}

/// Fixture 14: A file that is not executable: 126, like a shell.
#[test]
fn exit_not_executable() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        sb.write("notexec.sh", "#!/bin/sh\necho hi\n");
        let path = sb.join("notexec.sh");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = sb.run(backend, &["./notexec.sh"]);
        assert_eq!(out.status.code(), Some(126), "[{backend}] {out:?}");
        assert!(out.stdout.is_empty(), "[{backend}] {out:?}");
    }
}

/// Fixture 14: stdout is exactly the command's, with or without `-q`; roar's own
/// lines go to stderr and start with `roar: `.
#[test]
fn stdout_is_the_commands() {
    let cmd = [
        "sh",
        "-c",
        "echo hello; printf 'no newline\\tend'; echo err >&2",
    ];
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let direct = sb.direct(&cmd);
        let quiet = sb.run(backend, &cmd);
        assert_eq!(quiet.stdout, direct.stdout, "[{backend}] -q");
        assert_eq!(quiet.status.code(), Some(0));
        let loud = tests::output(
            sb.roar()
                .args(["run", "--backend", backend, "--"])
                .args(cmd),
        );
        assert_eq!(loud.stdout, direct.stdout, "[{backend}] without -q");
        let stderr = String::from_utf8_lossy(&loud.stderr);
        for line in stderr.lines().filter(|l| *l != "err") {
            assert!(
                line.starts_with("roar: "),
                "[{backend}] roar's stderr lines start with `roar: `: {stderr:?}"
            );
        }
        assert!(
            stderr.lines().any(|l| l == "err"),
            "[{backend}] the command's stderr passes through: {stderr:?}"
        );
    }
}

/// Fixture 15: `log --json` newest first; `show PATH` finds the run that wrote PATH;
/// `git` describes the repository.
#[test]
fn log_show_and_git() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let first = sb.run(backend, &["sh", "-c", "echo 1 > first.txt"]);
        assert!(first.status.success(), "[{backend}] {first:?}");
        let first_id = sb.show_json("latest")["id"].clone();
        let second = sb.run(backend, &["sh", "-c", "echo 2 > second.txt"]);
        assert!(second.status.success(), "[{backend}] {second:?}");
        let second_id = sb.show_json("latest")["id"].clone();
        assert_ne!(first_id, second_id);

        let log = sb.log_json();
        let ids: Vec<&Value> = log.iter().map(|r| &r["id"]).collect();
        assert_eq!(ids, [&second_id, &first_id], "[{backend}] newest first");
        assert_eq!(log[0]["command"][2], "echo 2 > second.txt");

        let by_path = sb.show_json("first.txt");
        assert_eq!(by_path["id"], first_id, "[{backend}] show first.txt");
        let by_path = sb.show_json("second.txt");
        assert_eq!(by_path["id"], second_id, "[{backend}] show second.txt");
        // The human form resolves paths too.
        tests::check(sb.roar().args(["show", "first.txt"]));

        let git = &by_path["git"];
        let head = sb.git(&["rev-parse", "HEAD"]);
        let commit = git["commit"].as_str().expect("git.commit is a string");
        assert!(
            commit.len() == 40 && commit.bytes().all(|b| b.is_ascii_hexdigit()),
            "[{backend}] 40-hex commit: {git}"
        );
        assert_eq!(commit, head, "[{backend}] {git}");
        assert_eq!(git["branch"], "main", "[{backend}] {git}");
        assert!(git["dirty"].is_boolean(), "[{backend}] {git}");
    }
}

/// Git's dirty flag describes the tree the command started from: tracked
/// files the run itself rewrote do not count (git is read while the command
/// runs, so they would count or not by timing), other changes do.
#[test]
fn git_dirty_leaves_out_what_the_run_wrote() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        sb.write("gen.txt", "old\n");
        sb.write("notes.txt", "a\n");
        sb.git(&["add", "gen.txt", "notes.txt"]);
        sb.git(&["commit", "-q", "-m", "tracked"]);
        // Git read after the write, then before it.
        for regen in [
            "echo new > gen.txt; sleep 0.2",
            "sleep 0.2; echo newer > gen.txt",
        ] {
            let out = sb.run(backend, &["sh", "-c", regen]);
            assert!(out.status.success(), "[{backend}] {out:?}");
            let run = sb.show_json("latest");
            assert_eq!(run["git"]["dirty"], false, "[{backend}] {regen}: {run:#}");
        }

        sb.write("notes.txt", "edited by hand\n");
        let out = sb.run(backend, &["sh", "-c", "echo newest > gen.txt"]);
        assert!(out.status.success(), "[{backend}] {out:?}");
        let run = sb.show_json("latest");
        assert_eq!(run["git"]["dirty"], true, "[{backend}] {run:#}");
    }
}

/// `sh -c SCRIPT` recorded in `work` under `backend` with the store at
/// `db` (ROAR_DB); the run as `show --json --all` gives it.
fn run_with_db(work: &Sandbox, db: &Path, backend: &str, script: &str) -> Value {
    let roar = |args: &[&str]| {
        let mut cmd = roar_command(work.path());
        cmd.env("ROAR_DB", db).args(args);
        cmd
    };
    let out = tests::output(&mut roar(&[
        "run",
        "--backend",
        backend,
        "-q",
        "--",
        "sh",
        "-c",
        script,
    ]));
    assert!(out.status.success(), "[{backend}] {out:?}");
    let show = tests::check(&mut roar(&["show", "--json", "--all", "latest"]));
    parse_json(&String::from_utf8_lossy(&show))
}

/// Fixture 16: Outside a git repository `git` is null.
#[test]
fn no_git_outside_a_repository() {
    for &backend in BACKENDS {
        let work = Sandbox::bare();
        let store = Sandbox::bare();
        let run = run_with_db(&work, &store.join("roar.db"), backend, "echo x > x.txt");
        assert_eq!(run["git"], Value::Null, "[{backend}] {run:#}");
        assert!(
            in_sandbox(&work, &run["outputs"]).contains(Path::new("x.txt")),
            "[{backend}] {run:#}"
        );
    }
}

/// A store that `ROAR_DB` puts in the project directory itself: roar leaves
/// out its own files there (the database, its WAL, the traces) and nothing
/// else. (It once left out the whole directory, and so recorded nothing.)
#[test]
fn a_store_in_the_project_directory_hides_only_its_own_files() {
    for &backend in BACKENDS {
        let work = Sandbox::bare();
        work.write("in.txt", "data\n");
        let db = work.join("provenance.db");
        let run = run_with_db(&work, &db, backend, "cat in.txt > out.txt");
        let set = |l: &[&str]| l.iter().map(PathBuf::from).collect::<BTreeSet<_>>();
        assert_eq!(
            in_sandbox(&work, &run["inputs"]),
            set(&["in.txt"]),
            "[{backend}] {run:#}"
        );
        assert_eq!(
            in_sandbox(&work, &run["outputs"]),
            set(&["out.txt"]),
            "[{backend}] {run:#}"
        );
    }
}

/// Fixture 17: Two `roar run` at once on one store are both recorded.
#[test]
fn concurrent_runs_both_land() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let spawn = |name: &str| {
            sb.roar()
                .args(["run", "--backend", backend, "-q", "--", "sh", "-c"])
                .arg(format!("sleep 0.3; echo {name} > {name}.txt"))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn roar")
        };
        let children = [spawn("a"), spawn("b")];
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "[{backend}] {out:?}");
        }
        let out = tests::check(sb.roar().args(["log", "--json"]));
        let log = runs_of(parse_json(&String::from_utf8_lossy(&out)));
        assert_eq!(log.len(), 2, "[{backend}] both runs recorded: {log:#?}");
        for name in ["a.txt", "b.txt"] {
            let run = sb.show_json(name);
            assert!(
                in_sandbox(&sb, &run["outputs"]).contains(Path::new(name)),
                "[{backend}] {run:#}"
            );
        }
    }
}

/// The table itself is right: run untraced, every fixture exits as declared
/// and leaves its declared inputs and outputs on disk. Needs no roar binary,
/// so a failure here is a bug in the suite, not in roar.
#[test]
fn fixtures_behave_untraced() {
    for (name, f) in ALL {
        let sb = Sandbox::bare();
        prepare(&sb, f.setup);
        let out = sb.direct(f.cmd);
        assert_eq!(out.status.code(), Some(f.exit), "{name}: {out:?}");
        for entry in f.inputs.iter().chain(f.outputs) {
            assert!(
                entry
                    .split('|')
                    .any(|p| std::fs::symlink_metadata(sb.join(unescape_path(p))).is_ok()),
                "{name}: {entry} must exist after the run"
            );
        }
        for (path, before) in f.rewritten {
            assert_ne!(
                sb.read(path),
                before.as_bytes(),
                "{name}: {path} is rewritten"
            );
        }
    }
}

// ---- Robustness: what happens when things go wrong -------------------------

/// `roar` killed with SIGKILL mid-run. Under preload and eBPF the command
/// lives on: its run stays unfinished and its trace is kept while any of
/// its processes runs. Once they end (under ptrace at once: the kernel ends
/// the tracees with their tracer), the next roar command finishes the run
/// from its trace, marked incomplete, with what the command had written
/// and, where the trace holds it (preload), how it ended.
#[test]
fn roar_killed_leaves_an_honest_partial_record() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        sb.write("in.txt", "data\n");
        let mut child = sb
            .roar()
            .args([
                "run",
                "--backend",
                backend,
                "-q",
                "--",
                "sh",
                "-c",
                "cat in.txt > out.txt; echo $$ > cmd.pid; sleep 1.5; exit 3",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sb.join("cmd.pid").exists() || sb.read("cmd.pid").is_empty() {
            assert!(
                Instant::now() < deadline,
                "[{backend}] the command never wrote cmd.pid"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        child.kill().unwrap();
        child.wait().unwrap();
        let pid: u32 = String::from_utf8_lossy(&sb.read("cmd.pid"))
            .trim()
            .parse()
            .unwrap();
        // Under preload and eBPF the command lives on without roar; its run
        // is not finished while it runs (ptrace's tracees die with roar).
        if backend != "ptrace" {
            assert!(running(pid), "[{backend}] pid {pid} lives on");
            let run = sb.show_json("latest");
            assert_eq!(run["finished"], false, "[{backend}] {run:#}");
            let traces = std::fs::read_dir(sb.join(".roar/traces")).unwrap().count();
            assert_eq!(
                traces, 1,
                "[{backend}] the trace stays while the command runs"
            );
        }
        let gone = Instant::now() + Duration::from_secs(20);
        while running(pid) {
            assert!(Instant::now() < gone, "[{backend}] pid {pid} did not end");
            std::thread::sleep(Duration::from_millis(20));
        }
        let run = sb.show_json("latest");
        assert_eq!(run["finished"], true, "[{backend}] {run:#}");
        assert_eq!(run["complete"], false, "[{backend}] {run:#}");
        let outs = in_sandbox(&sb, &run["outputs"]);
        assert!(
            outs.contains(Path::new("out.txt")),
            "[{backend}] out.txt missing: {run:#}"
        );
        let ins = in_sandbox(&sb, &run["inputs"]);
        assert!(
            ins.contains(Path::new("in.txt")),
            "[{backend}] in.txt missing: {run:#}"
        );
        let warnings = run["warnings"].to_string();
        assert!(warnings.contains("killed"), "[{backend}] {run:#}");
        if backend == "preload" {
            // The library in the command recorded how it ended.
            assert_eq!(run["exit_code"], 3, "[{backend}] {run:#}");
        }
    }
}

/// True while process `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// A store that is not a roar store is named, left byte-identical, and
/// `roar run` starts nothing (exit 125).
#[test]
fn corrupt_store_is_reported_and_untouched() {
    let sb = Sandbox::new();
    let db = sb.join(".roar/roar.db");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&db, &garbage).unwrap();
    let out = sb.run("preload", &["sh", "-c", "echo ran > ran.txt"]);
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("roar.db") && err.starts_with("roar: "),
        "{err}"
    );
    assert!(!sb.join("ran.txt").exists(), "the command must not run");
    assert_eq!(
        std::fs::read(&db).unwrap(),
        garbage,
        "the store must be left untouched"
    );
    let log = output(sb.roar().args(["log"]));
    assert_eq!(log.status.code(), Some(1), "{log:?}");
}

/// `--timeout`: SIGTERM reaches the command, roar dies of it, the run is
/// incomplete and says it timed out.
#[test]
fn timeout_terminates_and_is_recorded() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let start = Instant::now();
        let out = output(sb.roar().args([
            "run",
            "-q",
            "--backend",
            backend,
            "--timeout",
            "0.5",
            "--",
            "sh",
            "-c",
            "trap 'echo got-term; exit 7' TERM; sleep 20 >/dev/null 2>&1 & wait",
        ]));
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "[{backend}] timeout did not fire"
        );
        assert_eq!(out.status.code(), Some(7), "[{backend}] {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "got-term\n");
        let run = sb.show_json("latest");
        assert_eq!(run["complete"], false, "[{backend}]");
        assert!(
            run["warnings"].to_string().contains("timed out"),
            "[{backend}] {run:#}"
        );
        if backend == "ptrace" {
            // ptrace follows the `sleep` the command left running; the
            // timeout's SIGKILL, 5 s after the SIGTERM, ends it.
            let sleep = run["processes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["argv"][0] == "sleep")
                .unwrap_or_else(|| panic!("[{backend}] no sleep: {run:#}"));
            assert_eq!(sleep["signal"], 9, "[{backend}] {run:#}");
        }
    }
}

/// SIGTERM sent to roar (not to its group) is forwarded to the command.
#[test]
fn sigterm_to_roar_is_forwarded() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let mut child = sb
            .roar()
            .args(["run", "-q", "--backend", backend, "--", "sh", "-c", "trap 'echo forwarded > got.txt; exit 9' TERM; touch ready; while :; do sleep 0.05; done"])
            .spawn()
            .unwrap();
        wait_for(&sb.join("ready"), 20, "the command never started");
        send_signal(child.id(), "TERM");
        let status = child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(9),
            "[{backend}] roar must exit as the command did"
        );
        assert_eq!(sb.read("got.txt"), b"forwarded\n", "[{backend}]");
        assert_eq!(sb.show_json("latest")["exit_code"], 9, "[{backend}]");
    }
}

/// Without its preload library roar says where it looked and starts nothing.
#[test]
fn missing_preload_library_is_explained() {
    let sb = Sandbox::new();
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("roar");
    std::fs::copy(roar_bin(), &copy).unwrap();
    let out = output(
        Command::new(&copy)
            .args([
                "run",
                "--backend",
                "preload",
                "--",
                "sh",
                "-c",
                "echo ran > ran.txt",
            ])
            .current_dir(sb.path())
            .env_remove("ROAR_PRELOAD_LIB")
            .env_remove("ROAR_DB"),
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("libroar_preload.so") && err.contains(&dir.path().display().to_string()),
        "{err}"
    );
    assert!(!sb.join("ran.txt").exists());
}

/// A child left running when the command exits. Preload stops recording at
/// the command's exit: the run says so and is marked incomplete. Ptrace
/// cannot let a tracee go (its traced calls would fail with ENOSYS), so it
/// follows the child to its end, says so on stderr, and records it in full.
#[test]
fn lingering_child_is_reported() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let start = Instant::now();
        let out = sb.run(
            backend,
            &["sh", "-c", "sleep 1 >/dev/null 2>&1 & echo started"],
        );
        assert_eq!(out.status.code(), Some(0), "[{backend}] {out:?}");
        assert_eq!(out.stdout, b"started\n", "[{backend}]");
        let run = sb.show_json("latest");
        let warnings = run["warnings"].to_string();
        if backend == "ptrace" {
            assert!(start.elapsed() >= Duration::from_millis(900), "[{backend}]");
            assert_eq!(run["complete"], true, "[{backend}] {run:#}");
            assert!(warnings.contains("outlived"), "[{backend}] {run:#}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("left running"), "[{backend}] {err}");
            let sleep = run["processes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["argv"][0] == "sleep")
                .unwrap_or_else(|| panic!("[{backend}] no sleep process: {run:#}"));
            assert_eq!(sleep["exit_code"], 0, "[{backend}] {run:#}");
        } else {
            assert_eq!(run["complete"], false, "[{backend}] {run:#}");
            assert!(warnings.contains("still running"), "[{backend}] {run:#}");
        }
    }
}

/// A child that finished in time raises no such warning.
#[test]
fn waited_child_is_not_reported() {
    let sb = Sandbox::new();
    let out = sb.run("preload", &["sh", "-c", "sleep 0.1 & wait"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let run = sb.show_json("latest");
    assert_eq!(run["complete"], true, "{run:#}");
}

/// Trace directories no run owns (a roar killed before it wrote its run's
/// row, or whose row could not be written) are removed by the next roar
/// command once they are a minute old; a fresh one may belong to a roar
/// starting right now and stays.
#[test]
fn unowned_trace_directories_are_cleaned_up() {
    let sb = Sandbox::new();
    let out = sb.run("preload", &["true"]);
    assert!(out.status.success(), "{out:?}");
    let traces = sb.join(".roar/traces");
    for name in ["run-1-1-0", "run-2-2-0"] {
        std::fs::create_dir_all(traces.join(name)).unwrap();
        std::fs::write(traces.join(name).join(".lock"), "").unwrap();
    }
    let old = Command::new("touch")
        .args(["-d", "2 minutes ago"])
        .arg(traces.join("run-1-1-0"))
        .status()
        .unwrap();
    assert!(old.success());
    let out = output(sb.roar().args(["log"]));
    assert!(out.status.success(), "{out:?}");
    assert!(!traces.join("run-1-1-0").exists(), "the old one is gone");
    assert!(traces.join("run-2-2-0").exists(), "the fresh one stays");
}

/// A stored run's trace is not removed while its user waits (one unlink per
/// process): it waits in `traces/spent/` and the next run removes it while
/// its own command runs.
#[test]
fn a_stored_runs_trace_is_removed_by_the_next_run() {
    let sb = Sandbox::new();
    let out = sb.run("preload", &["sh", "-c", "true; true"]);
    assert!(out.status.success(), "{out:?}");
    let traces = sb.join(".roar/traces");
    let names = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(names(&traces), ["spent"], "only the spent traces are left");
    let first = names(&traces.join("spent"));
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].starts_with("run-"), "{first:?}");
    let out = sb.run("preload", &["sleep", "0.5"]);
    assert!(out.status.success(), "{out:?}");
    let now = names(&traces.join("spent"));
    assert!(!now.contains(&first[0]), "{now:?}");
    assert!(now.len() <= 1, "at most the second run's own: {now:?}");
}

/// Files in /dev/shm are where people put scratch data: recorded with
/// hashes like any other file, not hidden as system files.
#[test]
fn dev_shm_files_are_user_files() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        sb.write("in.txt", "to shm\n");
        let shm = format!("/dev/shm/roar-test-{}-{backend}.txt", std::process::id());
        let out = sb.run(
            backend,
            &[
                "sh",
                "-c",
                &format!("cat in.txt > {shm}; cat {shm} > back.txt"),
            ],
        );
        let _ = std::fs::remove_file(&shm);
        assert!(out.status.success(), "[{backend}] {out:?}");
        let run = sb.show_json("latest");
        let outs: Vec<&Value> = run["outputs"].as_array().unwrap().iter().collect();
        assert!(
            outs.iter()
                .any(|f| f["path"] == shm.as_str() && f["hash"].is_string()),
            "[{backend}] {shm} is an output with a hash: {run:#}"
        );
    }
}

/// A store this user may not write: `roar run` starts nothing (125) and
/// says once, with the path, what is wrong; a store in a directory that
/// does not exist is created by `roar run` and said, and named by `log`.
#[test]
fn unusable_stores_are_named_once() {
    if !tests::is_root() {
        eprintln!("skipped: needs root to play a user who may not write the store");
        return;
    }
    let (dir, roar) = tests::nobody_dir();
    let d = dir.path();
    let db = d.join("store/roar.db");
    std::fs::create_dir(d.join("store")).unwrap();
    let out = output(
        Command::new(&roar)
            .args(["init"])
            .env("ROAR_DB", &db)
            .current_dir(d),
    );
    assert!(out.status.success(), "{out:?}");
    let out = output(
        tests::as_nobody(d, &roar, false, &["run", "--", "touch", "ran.txt"]).env("ROAR_DB", &db),
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(!d.join("ran.txt").exists(), "nothing started");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        said.matches(db.to_str().unwrap()).count(),
        1,
        "the path, once: {said}"
    );
    assert!(said.contains("read-only"), "{said}");
    assert_eq!(
        said.matches("readonly").count(),
        0,
        "no raw SQLite text: {said}"
    );

    let missing = d.join("not/there/roar.db");
    let out = output(
        Command::new(&roar)
            .args(["log"])
            .env("ROAR_DB", &missing)
            .current_dir(d),
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(missing.to_str().unwrap()),
        "{out:?}"
    );
    let out = output(
        Command::new(&roar)
            .args(["run", "--", "true"])
            .env("ROAR_DB", &missing)
            .current_dir(d),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("initialised a new store"),
        "{out:?}"
    );
    assert!(missing.is_file());
}

/// The host's GPUs come from `nvidia-smi`, which roar starts while the
/// command runs, except under ptrace, whose tracer reaps any child of roar's:
/// there it is started after. Each backend records what it printed.
#[test]
fn gpus_are_recorded_under_every_backend() {
    for &backend in BACKENDS {
        let sb = Sandbox::new();
        let bin = sb.join("fakebin");
        sb.write(
            "fakebin/nvidia-smi",
            "#!/bin/sh\necho 'Fake GPU, 1024 MiB, 1.0'\n",
        );
        std::fs::set_permissions(
            bin.join("nvidia-smi"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = sb
            .roar()
            .env("PATH", path)
            .args(["run", "--backend", backend, "-q", "--", "sleep", "0.3"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "[{backend}] {out:?}");
        let run = sb.show_json("latest");
        assert_eq!(
            run["environment"]["host"]["gpus"],
            serde_json::json!(["Fake GPU, 1024 MiB, 1.0"]),
            "[{backend}] {run:#}"
        );
    }
}
