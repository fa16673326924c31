//! A set-user-ID program, run as `nobody`, under every backend. Natively it
//! runs with the owner's privileges (euid 0). Under ptrace the kernel does
//! not raise them for a traced process; under preload the loader ignores
//! LD_PRELOAD for it; eBPF changes nothing. roar must never let either go
//! unsaid: the run is incomplete and the warning names the program, and
//! `auto` does not pick ptrace for it when preload can run it unchanged.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tests::{as_nobody, is_root, nobody_dir, output, parse_json};

/// The fixture installed set-user-ID root in `dir`.
fn install_setuid(dir: &Path) -> PathBuf {
    let prog = dir.join("setuid_euid");
    std::fs::copy(env!("FIXTURE_SETUID_EUID"), &prog).unwrap();
    std::os::unix::fs::chown(&prog, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&prog, PermissionsExt::from_mode(0o4755)).unwrap();
    prog
}

/// `prog` as nobody, without roar.
fn native(dir: &Path, prog: &Path) -> String {
    let _ = std::fs::remove_file(dir.join("euid.txt"));
    let out = output(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(prog)
            .current_dir(dir),
    );
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `roar ARGS` as nobody, after removing what the last run of the fixture
/// wrote (as root, it cannot be overwritten by nobody).
fn roar_as_nobody(dir: &Path, roar: &Path, caps: bool, args: &[&str]) -> std::process::Output {
    let _ = std::fs::remove_file(dir.join("euid.txt"));
    output(&mut as_nobody(dir, roar, caps, args))
}

fn latest(dir: &Path, roar: &Path) -> Value {
    let out = output(&mut as_nobody(dir, roar, false, &["show", "--json"]));
    assert!(out.status.success(), "{out:?}");
    parse_json(&String::from_utf8_lossy(&out.stdout))
}

fn warned_about(run: &Value, what: &str) -> bool {
    run["warnings"].as_array().into_iter().flatten().any(|w| {
        w.as_str()
            .is_some_and(|w| w.contains("setuid_euid") && w.contains(what))
    })
}

#[test]
fn set_user_id_programs_are_never_silently_changed_or_unseen() {
    if !is_root() {
        eprintln!("skipped: installing a set-user-ID root program needs root (CI runs as root)");
        return;
    }
    let (tmp, roar) = nobody_dir();
    let dir = tmp.path();
    let prog = install_setuid(dir);
    assert_eq!(
        native(dir, &prog),
        "euid 0\n",
        "the fixture must really be set-user-ID"
    );
    let p = prog.to_str().unwrap();

    // ptrace: the kernel runs it as nobody; roar says so.
    let out = roar_as_nobody(dir, &roar, false, &["run", "--backend", "ptrace", "--", p]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "euid 65534\n",
        "{out:?}"
    );
    let run = latest(dir, &roar);
    assert_eq!(run["complete"], false, "{run:#}");
    assert!(warned_about(&run, "without those privileges"), "{run:#}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("INCOMPLETE"),
        "the summary says it: {out:?}"
    );

    // preload: it runs as it would, unseen, and roar says why (not a guess
    // about architectures).
    let out = roar_as_nobody(dir, &roar, false, &["run", "--backend", "preload", "--", p]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "euid 0\n", "{out:?}");
    let run = latest(dir, &roar);
    assert_eq!(run["complete"], false, "{run:#}");
    assert!(warned_about(&run, "ignores LD_PRELOAD"), "{run:#}");
    assert!(
        !run.to_string().contains("architecture"),
        "no wrong guess: {run:#}"
    );

    // auto, with eBPF out of reach for nobody: preload, never ptrace.
    let out = roar_as_nobody(dir, &roar, false, &["run", "--", p]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "euid 0\n", "{out:?}");
    let run = latest(dir, &roar);
    assert_eq!(run["backend"], "preload", "{run:#}");

    // eBPF (nobody with CAP_BPF + CAP_PERFMON) sees it and changes nothing.
    let out = roar_as_nobody(dir, &roar, true, &["run", "--backend", "ebpf", "--", p]);
    if out.status.code() == Some(125) {
        eprintln!(
            "eBPF cannot load here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    assert_eq!(String::from_utf8_lossy(&out.stdout), "euid 0\n", "{out:?}");
    let run = latest(dir, &roar);
    assert_eq!(run["complete"], true, "{run:#}");
    let outputs: Vec<&str> = run["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(outputs.iter().any(|p| p.ends_with("/euid.txt")), "{run:#}");
}
