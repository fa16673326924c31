//! Test harness for roar's conformance suite, in the style of ripgrep's
//! `tests/util.rs`: find the built `roar` binary and preload library, and run
//! commands in a throw-away [`Sandbox`] (a git repository with a roar store).
//!
//! The suite itself lives in `tests/conformance.rs`; the C fixture programs in
//! `fixtures/` are compiled by `build.rs`.

use std::env;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

/// The cargo target profile directory holding the built binaries
/// (`.../target/debug`).
///
/// Derived from the running test executable (`.../target/debug/deps/<test>`),
/// which is right for both `cargo test` and `cargo nextest`; `CARGO_TARGET_DIR`
/// is the fallback when that layout is not recognisable.
pub fn target_dir() -> PathBuf {
    if let Ok(exe) = env::current_exe()
        && let Some(deps) = exe.parent()
        && deps.file_name() == Some(OsStr::new("deps"))
        && let Some(profile) = deps.parent()
    {
        return profile.to_path_buf();
    }
    let base = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    base.join("debug")
}

fn built(name: &str) -> PathBuf {
    let path = target_dir().join(name);
    assert!(
        path.is_file(),
        "{} not found: run `cargo build --workspace` first (the tests use the built binaries)",
        path.display()
    );
    path
}

/// An installed artifact named by `var` (`.ci/run` runs the suite against
/// what `install.sh` installed), else the workspace build's `name`.
fn artifact(var: &str, name: &str) -> PathBuf {
    match env::var_os(var).filter(|v| !v.is_empty()) {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "{var}={} is not a file", p.display());
            p
        }
        None => built(name),
    }
}

/// Whether the suite runs against installed artifacts (`ROAR_TEST_BIN` and
/// `ROAR_TEST_LIB`, as `.ci/run` sets them) rather than the debug build.
pub fn testing_installed() -> bool {
    env::var_os("ROAR_TEST_BIN").is_some_and(|v| !v.is_empty())
        && env::var_os("ROAR_TEST_LIB").is_some_and(|v| !v.is_empty())
}

/// The `roar` binary under test: `ROAR_TEST_BIN`, else the built one.
pub fn roar_bin() -> PathBuf {
    artifact("ROAR_TEST_BIN", "roar")
}

/// The preload library under test: `ROAR_TEST_LIB`, else the one built
/// next to `roar`.
pub fn preload_lib() -> PathBuf {
    artifact("ROAR_TEST_LIB", "libroar_preload.so")
}

/// A `roar` command with a clean environment for roar's own settings: no
/// `ROAR_DB`/`ROAR_BACKEND` inherited from whoever runs the tests.
pub fn roar_command(cwd: &Path) -> Command {
    // Fail early with the helpful message if the library is missing too.
    preload_lib();
    let mut cmd = Command::new(roar_bin());
    cmd.current_dir(cwd)
        .env_remove("ROAR_DB")
        .env_remove("ROAR_BACKEND")
        .env_remove("LD_PRELOAD")
        .env_remove("ROAR_TRACE_DIR")
        .stdin(Stdio::null());
    cmd
}

/// Runs a command to completion, panicking with its stderr if it cannot start.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Runs a command that must succeed, returning its stdout.
pub fn check(cmd: &mut Command) -> Vec<u8> {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Parses roar's JSON output.
///
/// roar escapes each byte of a path that is not valid UTF-8 as a lone
/// surrogate `\udcXX` (PEP 383 surrogateescape), which serde_json refuses to
/// decode into a `String`. Those escapes are rewritten to the literal text
/// `\xXX` first; [`unescape_path`] turns that back into the real bytes.
pub fn parse_json(raw: &str) -> Value {
    let sanitized = raw.replace("\\udc", "\\\\x");
    serde_json::from_str(&sanitized)
        .unwrap_or_else(|e| panic!("roar printed invalid JSON ({e}):\n{raw}"))
}

/// The file-system path behind a JSON path string from [`parse_json`]:
/// `\xXX` sequences become the raw byte `0xXX`.
pub fn unescape_path(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && b.get(i + 1) == Some(&b'x')
            && let Some(byte) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    PathBuf::from(OsString::from_vec(out))
}

/// A temporary project: a git repository with one commit and an initialised
/// roar store. Removed when dropped.
pub struct Sandbox {
    _tmp: TempDir,
    root: PathBuf,
}

impl Sandbox {
    /// A git repository (user configured, one commit) with `roar init` run.
    pub fn new() -> Sandbox {
        let sb = Sandbox::bare();
        sb.git(&["init", "-q", "-b", "main"]);
        sb.git(&["config", "user.name", "roar tests"]);
        sb.git(&["config", "user.email", "tests@roar.invalid"]);
        sb.git(&["config", "commit.gpgsign", "false"]);
        sb.write("README", "sandbox\n");
        sb.git(&["add", "README"]);
        sb.git(&["commit", "-q", "-m", "initial"]);
        check(sb.roar().arg("init"));
        sb
    }

    /// An empty temporary directory: no git, no store.
    pub fn bare() -> Sandbox {
        let tmp = tempfile::Builder::new()
            .prefix("roar-test-")
            .tempdir()
            .expect("create temp dir");
        // Canonical, so it compares equal to the absolute paths roar records.
        let root = tmp.path().canonicalize().expect("canonicalize temp dir");
        Sandbox { _tmp: tmp, root }
    }

    /// The paths of a run's `inputs` or `outputs` that lie in the sandbox,
    /// relative to it.
    pub fn in_sandbox(&self, list: &Value) -> std::collections::BTreeSet<PathBuf> {
        list.as_array()
            .unwrap_or_else(|| panic!("expected an array of artifacts, got {list}"))
            .iter()
            .filter_map(|a| {
                let p = unescape_path(a["path"].as_str().expect("path is a string"));
                p.strip_prefix(self.path()).ok().map(Path::to_path_buf)
            })
            .collect()
    }

    /// `roar run -q --backend BACKEND -- python3 -c SCRIPT` with fd 3 open for
    /// writing on `fd3` (a sandbox file): the caller's shell opens it, then
    /// becomes roar, so the command inherits a descriptor it never opened.
    pub fn run_with_inherited_fd3(
        &self,
        fd3: &str,
        backend: &str,
        script: &str,
    ) -> std::process::ExitStatus {
        Command::new("sh")
            .args([
                "-c",
                &format!(
                    "exec 3>{fd3} && exec \"$0\" run -q --backend {backend} -- python3 -c \"$1\""
                ),
            ])
            .arg(roar_bin())
            .arg(script)
            .current_dir(&self.root)
            .env_remove("ROAR_DB")
            .env_remove("ROAR_BACKEND")
            .status()
            .expect("run sh")
    }

    /// The sandbox directory (absolute, canonical).
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `rel` inside the sandbox.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes a file, creating parent directories.
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) {
        let path = self.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dirs");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Creates a directory and its parents.
    pub fn mkdir(&self, rel: impl AsRef<Path>) {
        fs::create_dir_all(self.join(rel)).expect("create dir");
    }

    /// Reads a file.
    pub fn read(&self, rel: impl AsRef<Path>) -> Vec<u8> {
        let path = self.join(rel);
        fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    }

    /// Runs git in the sandbox; it must succeed. Returns stdout, trimmed.
    pub fn git(&self, args: &[&str]) -> String {
        let out = check(
            Command::new("git")
                .args(args)
                .current_dir(&self.root)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env_remove("GIT_DIR")
                .env_remove("GIT_WORK_TREE"),
        );
        String::from_utf8_lossy(&out).trim().to_owned()
    }

    /// A `roar` command with the sandbox as cwd and `ROAR_DB` unset.
    pub fn roar(&self) -> Command {
        roar_command(&self.root)
    }

    /// Runs a command in the sandbox with no tracing, as a reference.
    pub fn direct(&self, args: &[&str]) -> Output {
        output(
            Command::new(args[0])
                .args(&args[1..])
                .current_dir(&self.root)
                .stdin(Stdio::null()),
        )
    }

    /// `roar run --backend <backend> -q -- args...` in the sandbox.
    pub fn run<S: AsRef<OsStr>>(&self, backend: &str, args: &[S]) -> Output {
        output(
            self.roar()
                .args(["run", "--backend", backend, "-q", "--"])
                .args(args),
        )
    }

    /// The raw stdout of `roar show --json <reference>`; it must succeed.
    pub fn show_raw(&self, reference: &str) -> String {
        let out = check(self.roar().args(["show", "--json", reference]));
        String::from_utf8(out).expect("roar show --json prints UTF-8")
    }

    /// `roar show --json <reference>`, parsed (see [`parse_json`]).
    pub fn show_json(&self, reference: &str) -> Value {
        parse_json(&self.show_raw(reference))
    }

    /// `roar log --json`: the list of run objects, newest first.
    pub fn log_json(&self) -> Vec<Value> {
        let out = check(self.roar().args(["log", "--json"]));
        runs_of(parse_json(&String::from_utf8_lossy(&out)))
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// The run objects of a `log --json` document: either a bare array or an
/// object holding a `runs` array.
pub fn runs_of(doc: Value) -> Vec<Value> {
    match doc {
        Value::Array(runs) => runs,
        Value::Object(mut map) => match map.remove("runs") {
            Some(Value::Array(runs)) => runs,
            _ => panic!("log --json: expected an array of runs or {{\"runs\": [...]}}"),
        },
        other => panic!("log --json: expected an array of runs, got {other}"),
    }
}

/// Waits until `path` exists, failing the test with `what` after `secs` seconds.
pub fn wait_for(path: &Path, secs: u64, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Sends `signal` (a `kill` name such as "TERM") to `pid` with kill(1).
pub fn send_signal(pid: u32, signal: &str) {
    let ok = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{signal} {pid} failed");
}

/// True when the tests run as root (CI does).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A directory `nobody` may write, holding a copy of roar and its preload
/// library it can run (the build tree may be under a private home).
pub fn nobody_dir() -> (TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o777)).unwrap();
    let roar = dir.path().join("roar");
    fs::copy(roar_bin(), &roar).unwrap();
    fs::copy(preload_lib(), dir.path().join("libroar_preload.so")).unwrap();
    for f in [&roar, &dir.path().join("libroar_preload.so")] {
        fs::set_permissions(f, PermissionsExt::from_mode(0o755)).unwrap();
    }
    (dir, roar)
}

/// `roar ARGS` as `nobody` in `dir`, with CAP_BPF + CAP_PERFMON ambient
/// when `caps`.
pub fn as_nobody(dir: &Path, roar: &Path, caps: bool, args: &[&str]) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    if caps {
        c.args(["--inh-caps=+bpf,+perfmon", "--ambient-caps=+bpf,+perfmon"]);
    }
    c.arg("--")
        .arg(roar)
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("ROAR_DB", dir.join("roar.db"))
        .env_remove("ROAR_BACKEND")
        .env_remove("ROAR_PRELOAD_LIB");
    c
}

/// Runs `cmd` with its stdin, stdout and stderr on a pseudo-terminal (util-linux
/// `script`), as a user at a terminal would: what it printed there, both streams merged.
pub fn on_terminal(cmd: &Command) -> String {
    let quote = |s: &OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
    let line: Vec<String> = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(quote)
        .collect();
    let mut term = Command::new("script");
    term.args(["-qec", &line.join(" "), "/dev/null"])
        .stdin(Stdio::null());
    if let Some(dir) = cmd.get_current_dir() {
        term.current_dir(dir);
    }
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => term.env(k, v),
            None => term.env_remove(k),
        };
    }
    let out = output(&mut term);
    assert!(out.status.success(), "{cmd:?} on a terminal: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
