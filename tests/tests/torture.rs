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

/// Every string a run names: command, cwd, paths, process images.
fn names(run: &serde_json::Value) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let mut add = |v: &serde_json::Value| {
        if let Some(s) = v.as_str() {
            out.insert(s.to_string());
        }
    };
    for a in run["command"].as_array().into_iter().flatten() {
        add(a);
    }
    add(&run["cwd"]);
    for list in ["inputs", "outputs"] {
        for f in run[list].as_array().into_iter().flatten() {
            add(&f["path"]);
        }
    }
    for p in run["processes"].as_array().into_iter().flatten() {
        add(&p["exe"]);
        add(&p["cwd"]);
        for a in p["argv"].as_array().into_iter().flatten() {
            add(a);
        }
    }
    out
}

/// 200 damaged copies of a standalone trace (flipped bytes, inserted
/// bytes, cut or emptied streams) through `roar ingest`: never a panic,
/// never a command, path or process the real trace does not hold, and
/// every damage inside a stream is said, naming the stream file.
#[test]
fn damaged_traces_never_become_silent_garbage() {
    let sb = Sandbox::new();
    sb.write("in1.txt", "one\n");
    let clean = sb.join("clean");
    std::fs::create_dir(&clean).unwrap();
    let out = output(
        Command::new("sh")
            .args([
                "-c",
                "cat in1.txt > mid.txt; cp mid.txt out.txt; ls > list.txt",
            ])
            .current_dir(sb.path())
            .env("LD_PRELOAD", tests::preload_lib())
            .env("ROAR_TRACE_DIR", &clean),
    );
    assert!(out.status.success(), "{out:?}");
    let ingest = |dir: &std::path::Path, db: &std::path::Path| {
        output(
            sb.roar()
                .args(["ingest", "--settle", "0"])
                .arg(dir)
                .env("ROAR_DB", db),
        )
    };
    let runs_of = |db: &std::path::Path| {
        let out = output(sb.roar().args(["log", "--json"]).env("ROAR_DB", db));
        tests::parse_json(&String::from_utf8_lossy(&out.stdout))
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let db = sb.join("clean.db");
    assert!(ingest(&clean, &db).status.success());
    let truth: std::collections::BTreeSet<String> = runs_of(&db).iter().flat_map(names).collect();
    let streams: Vec<_> = std::fs::read_dir(&clean)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(streams.len() >= 4, "{streams:?}");

    let mut seed: u64 = 0x5eed;
    let mut rand = |n: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as usize) % n.max(1)
    };
    let (mut said, mut damaged) = (0, 0);
    for round in 0..200 {
        let dir = sb.join(format!("m{round}"));
        std::fs::create_dir(&dir).unwrap();
        for s in &streams {
            std::fs::copy(s, dir.join(s.file_name().unwrap())).unwrap();
        }
        let victim = dir.join(streams[rand(streams.len())].file_name().unwrap());
        let mut bytes = std::fs::read(&victim).unwrap();
        let kind = rand(4);
        match kind {
            0 => {
                let i = rand(bytes.len());
                bytes[i] ^= 1 << rand(8);
            }
            1 => {
                let i = rand(bytes.len());
                bytes.splice(i..i, *b"\x01garbage\x7f");
            }
            2 => bytes.truncate(rand(bytes.len())),
            _ => bytes.clear(),
        }
        std::fs::write(&victim, &bytes).unwrap();
        let db = sb.join(format!("m{round}.db"));
        let out = ingest(&dir, &db);
        assert!(out.status.success(), "round {round}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let runs = runs_of(&db);
        for r in &runs {
            let extra: Vec<_> = names(r).difference(&truth).cloned().collect();
            assert!(
                extra.is_empty(),
                "round {round} (mutation {kind}): garbage {extra:?} in {r:#}"
            );
        }
        // Flipped or inserted bytes are damage a reader can see: it must
        // be said, naming the file (in a run's warnings or ingest's line).
        if kind < 2 {
            damaged += 1;
            let name = victim.file_name().unwrap().to_string_lossy().into_owned();
            let warned = stderr.contains(&name)
                || runs
                    .iter()
                    .any(|r| r["warnings"].to_string().contains(&name));
            if warned {
                said += 1;
            }
            assert!(
                warned,
                "round {round} (mutation {kind}) of {name} unsaid: {stderr} {runs:#?}"
            );
        }
    }
    assert_eq!(said, damaged);
}
