//! The torture tests, kept: many runs at once on one store, roar SIGKILLed
//! at random moments, and real programs whose output must be byte for byte
//! what it is without roar, under every backend. After each, the store
//! passes SQLite's own integrity check and no run is lost.

use std::process::{Command, Stdio};
use std::time::Duration;

use tests::{Sandbox, output};

const BACKENDS: &[&str] = &["preload", "ptrace", "ebpf"];

/// `PRAGMA integrity_check` of the sandbox's store, through python's sqlite3
/// (an independent reader).
fn integrity(sb: &Sandbox) -> String {
    let db = sb.join(".roar/roar.db");
    let out = output(Command::new("python3").args([
        "-c",
        "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
        db.to_str().unwrap(),
    ]));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// 16 runs at once, 3 rounds, every backend: all recorded, all complete.
#[test]
fn concurrent_runs_are_all_recorded() {
    let sb = Sandbox::new();
    sb.write("in.txt", "shared input\n");
    let mut launched = 0;
    for round in 0..3 {
        let children: Vec<_> = (0..16)
            .map(|i| {
                let backend = BACKENDS[i % BACKENDS.len()];
                sb.roar()
                    .args(["run", "-q", "--backend", backend, "--", "sh", "-c"])
                    .arg(format!("cat in.txt > out-{round}-{i}.txt"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            launched += 1;
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{out:?}");
        }
    }
    let runs = sb.log_json();
    assert_eq!(
        runs.len(),
        launched,
        "launched {launched}, recorded {}",
        runs.len()
    );
    for r in &runs {
        assert_eq!(r["complete"], true, "{r:#}");
    }
    assert_eq!(integrity(&sb), "ok");
}

/// roar SIGKILLed at spread-out moments of a run, under every backend:
/// every run is in the store once the command is gone, none complete, and
/// the store is intact.
#[test]
fn sigkill_at_any_moment_loses_no_run() {
    let sb = Sandbox::new();
    sb.write("in.txt", "x\n");
    let mut launched = 0;
    for &backend in BACKENDS {
        for k in 0..6u64 {
            let mut child = sb
                .roar()
                .args(["run", "-q", "--backend", backend, "--", "sh", "-c"])
                .arg("cat in.txt > a.txt; sleep 0.05; cat a.txt > b.txt")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(k * 15));
            let _ = child.kill();
            let _ = child.wait();
            launched += 1;
        }
    }
    // The commands roar left behind finish within a moment.
    std::thread::sleep(Duration::from_millis(500));
    let runs = sb.log_json();
    let unfinished: Vec<_> = runs.iter().filter(|r| r["finished"] != true).collect();
    assert!(unfinished.is_empty(), "{unfinished:#?}");
    // A roar killed before it wrote its run's row records nothing; every
    // other one is there, and none it did not finish claims to be complete.
    assert!(runs.len() <= launched);
    for r in &runs {
        if r["warnings"].to_string().contains("killed") {
            assert_eq!(r["complete"], false, "{r:#}");
        }
    }
    assert_eq!(integrity(&sb), "ok");
}

/// Real programs: stdout, stderr and exit status byte for byte as without
/// roar, under every backend.
#[test]
fn real_programs_are_unchanged_byte_for_byte() {
    let sb = Sandbox::new();
    sb.write("data/b.txt", "banana\ncherry\napple\n");
    sb.write("data/a.txt", "one two three\nfour five\n");
    let programs: &[&[&str]] = &[
        &["cat", "data/a.txt", "data/b.txt"],
        &["sort", "data/b.txt"],
        &["wc", "data/a.txt"],
        &["sha256sum", "data/a.txt"],
        &["b2sum", "data/b.txt"],
        &["grep", "-n", "an", "data/b.txt"],
        &["sed", "s/o/0/g", "data/a.txt"],
        &["awk", "{print NF, $1}", "data/a.txt"],
        &["tr", "a-z", "A-Z"],
        &["ls", "-1", "data"],
        &["find", "data", "-type", "f"],
        &["head", "-c", "7", "data/b.txt"],
        &["sh", "-c", "ls /proc/self/fd | wc -l; ulimit -n"],
        &["sh", "-c", "cat nope.txt; echo status $?"],
        &["sh", "-c", "exit 7"],
        &[
            "python3",
            "-c",
            "import sys, os; print(len(os.listdir('/proc/self/fd'))); sys.exit(3)",
        ],
        &["perl", "-e", "print join(',', sort qw(c a b)), qq(\\n)"],
        &[
            "tar",
            "cf",
            "-",
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "data",
        ],
        &["gzip", "-c", "-n", "data/a.txt"],
        &["git", "--version"],
        &["cc", "--version"],
        &["stat", "-c", "%s %F", "data/a.txt"],
    ];
    for argv in programs {
        let native = sb.direct(argv);
        for &backend in BACKENDS {
            let traced = sb.run(backend, argv);
            assert_eq!(
                traced.status.code(),
                native.status.code(),
                "[{backend}] {argv:?} status"
            );
            assert!(
                traced.stdout == native.stdout,
                "[{backend}] {argv:?} stdout differs"
            );
            // roar's own lines (none with -q) are the only difference allowed.
            let stderr: Vec<&[u8]> = traced
                .stderr
                .split_inclusive(|b| *b == b'\n')
                .filter(|l| !l.starts_with(b"roar: "))
                .collect();
            assert_eq!(
                stderr.concat(),
                native.stderr,
                "[{backend}] {argv:?} stderr"
            );
        }
    }
}
