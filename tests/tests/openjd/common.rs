//! What the OpenJD end-to-end tests share: the runtime, a job run in a sandbox, the store
//! the templates record to, and the checks on what the runtime saw.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::{Sandbox, check, output, parse_json, runs_of};

/// `$OPENJD`, else `openjd` on PATH, else `<workspace>/.venv-openjd/bin/openjd`.
pub fn openjd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OPENJD").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let c = dir.join("openjd");
            if c.is_file() {
                return c;
            }
        }
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv-openjd/bin/openjd");
    assert!(
        venv.is_file(),
        "the OpenJD runtime is not installed: these tests need the `openjd` command \
         (python3 -m venv .venv-openjd && .venv-openjd/bin/pip install openjd-cli==0.8.0, \
         as .ci/run does; or set OPENJD=/path/to/openjd)"
    );
    venv
}

/// A unique marker in every process the test starts, to find leftovers.
pub fn marker(sb: &Sandbox) -> String {
    format!("ROAR_OPENJD_TEST={}", sb.path().display())
}

pub fn openjd(sb: &Sandbox) -> Command {
    let mut c = Command::new(openjd_bin());
    c.current_dir(sb.path())
        .env_remove("ROAR_DB")
        .env_remove("ROAR_BACKEND")
        .env_remove("LD_PRELOAD")
        .env_remove("ROAR_TRACE_DIR")
        .env("ROAR_OPENJD_TEST", sb.path())
        .stdin(Stdio::null());
    c
}

pub fn roar_db(sb: &Sandbox) -> Command {
    let mut c = sb.roar();
    c.env("ROAR_DB", sb.join("store/roar.db"));
    c
}

pub fn log(sb: &Sandbox) -> Vec<Value> {
    let out = check(roar_db(sb).args(["log", "--json"]));
    runs_of(parse_json(&String::from_utf8_lossy(&out)))
}

pub fn show(sb: &Sandbox, id: &Value) -> Value {
    let out = check(roar_db(sb).args(["show", "--json", &id.to_string()]));
    parse_json(&String::from_utf8_lossy(&out))
}

/// The runtime's log lines that carry task output the runtime interprets
/// (`openjd_progress`, `openjd_status`, ...), without timestamps.
pub fn openjd_lines(out: &Output) -> Vec<String> {
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter_map(|l| l.split_once('\t').map(|(_, rest)| rest).or(Some(l)))
        .filter(|l| l.starts_with("openjd_"))
        .map(str::to_owned)
        .collect()
}

/// "exited with code: N" lines of the runtime's log.
pub fn exit_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.find("exited with code:").map(|i| l[i..].to_owned()))
        .collect()
}

/// No process started by this test is still alive.
pub fn assert_nothing_left(sb: &Sandbox) {
    let marker = marker(sb);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != std::process::id())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
            })
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                format!(
                    "{pid}: {}",
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                )
            })
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn hashes(list: &Value) -> BTreeSet<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["hash"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

pub fn check_lineage(sb: &Sandbox, runs: &[Value], out: &str) {
    let part = |i| sb.join(format!("{out}/part-{i}.txt")).display().to_string();
    let all = sb.join(format!("{out}/all.txt")).display().to_string();
    let writer = |path: &str| -> Value {
        let found: Vec<&Value> = runs
            .iter()
            .filter(|r| hashes(&r["outputs"]).iter().any(|(p, _)| p == path))
            .collect();
        assert_eq!(found.len(), 1, "one run wrote {path}: {runs:#?}");
        found[0].clone()
    };
    let consume = writer(&all);
    let ins = hashes(&consume["inputs"]);
    for i in [1, 2] {
        let p = part(i);
        let produced = hashes(&writer(&p)["outputs"]);
        let h = produced.iter().find(|(q, _)| *q == p).unwrap();
        assert!(h.1.starts_with("blake3:"), "{p} is hashed");
        assert!(
            ins.contains(h),
            "the consuming run read {p} as produced: {consume:#}"
        );
    }
}

pub fn run_job(sb: &Sandbox, job: &str, env: Option<&Path>, out: &str) -> Output {
    let path = sb.join("job.yaml");
    std::fs::write(&path, job).unwrap();
    sb.mkdir(out);
    let mut c = openjd(sb);
    c.arg("run").arg(&path);
    if let Some(env) = env {
        c.arg("--environment").arg(env);
    }
    c.args(["-p", &format!("Out={}", sb.join(out).display())]);
    output(&mut c)
}

/// A two-step job: `Produce` writes one file per task (two tasks), `Consume`
/// reads them. An inner job environment exports a variable the tasks use, so
/// its actions must pass through the wrap hooks unchanged.
pub const JOB: &str = r#"specificationVersion: jobtemplate-2023-09
name: RoarTwoSteps
parameterDefinitions:
- name: Out
  type: STRING
jobEnvironments:
- name: Inner
  script:
    actions:
      onEnter:
        command: /bin/sh
        args: ["-c", "echo 'openjd_env: INNER_GREETING=hello'"]
steps:
- name: Produce
  parameterSpace:
    taskParameterDefinitions:
    - name: Index
      type: INT
      range: "1-2"
  script:
    actions:
      onRun:
        command: /bin/sh
        args:
        - "-c"
        - 'echo openjd_progress: 10; printf "%s %s|%s|%s\n" "$INNER_GREETING" {{Task.Param.Index}} "$1" "$2" > "{{Param.Out}}/part-{{Task.Param.Index}}.txt"; echo openjd_status: wrote {{Task.Param.Index}}; echo openjd_progress: 100'
        - "produce"
        - ""
        - "--dash"
- name: Consume
  dependencies:
  - dependsOn: Produce
  script:
    actions:
      onRun:
        command: /bin/sh
        args: ["-c", 'cat "{{Param.Out}}/part-1.txt" "{{Param.Out}}/part-2.txt" > "{{Param.Out}}/all.txt"; echo openjd_progress: 100']
"#;

pub const FAILING: &str = r#"specificationVersion: jobtemplate-2023-09
name: RoarFails
parameterDefinitions:
- name: Out
  type: STRING
steps:
- name: Fail
  script:
    actions:
      onRun:
        command: /bin/sh
        args: ["-c", "echo openjd_progress: 50; echo 'openjd_fail: on purpose'; exit 3"]
"#;

pub fn slow_job(timeout: Option<u32>) -> String {
    let timeout = timeout.map_or(String::new(), |t| format!("        timeout: {t}\n"));
    format!(
        r#"specificationVersion: jobtemplate-2023-09
name: RoarSlow
parameterDefinitions:
- name: Out
  type: STRING
steps:
- name: Slow
  script:
    actions:
      onRun:
        command: /bin/sh
        args: ["-c", 'trap "echo term > {{{{Param.Out}}}}/got-term; exit 7" TERM; echo started > {{{{Param.Out}}}}/started; while :; do sleep 0.1; done']
{timeout}        cancelation:
          mode: NOTIFY_THEN_TERMINATE
          notifyPeriodInSeconds: 5
"#
    )
}

/// A task that ignores SIGTERM and outlives its timeout: the runtime's final SIGKILL ends it.
pub const STUBBORN: &str = r#"specificationVersion: jobtemplate-2023-09
name: RoarStubborn
parameterDefinitions:
- name: Out
  type: STRING
steps:
- name: Stubborn
  script:
    actions:
      onRun:
        command: /bin/sh
        args: ["-c", 'trap "" TERM; echo partial > {{Param.Out}}/partial.txt; while :; do sleep 0.1; done']
        timeout: 2
        cancelation:
          mode: NOTIFY_THEN_TERMINATE
          notifyPeriodInSeconds: 1
"#;
