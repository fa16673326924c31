//! The preload library is invisible to the program it records: the same fd
//! table, the same fd numbers, the same `close` results, the same headroom
//! under a small `RLIMIT_NOFILE`, and no byte of a trace in the program's
//! files. Each program runs unwrapped, under `roar run --backend preload`
//! and in standalone mode (only `LD_PRELOAD` and `ROAR_TRACE_DIR`, then
//! `roar ingest`), and the three must agree byte for byte; the runs must
//! still be recorded whole.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tests::{Sandbox, check, output, preload_lib};

/// `args` with only the two variables a pod spec sets.
fn standalone(sb: &Sandbox, dir: &Path, args: &[&str]) -> Output {
    output(
        Command::new(args[0])
            .args(&args[1..])
            .current_dir(sb.path())
            .env_remove("ROAR_DB")
            .env("LD_PRELOAD", preload_lib())
            .env("ROAR_TRACE_DIR", dir)
            .stdin(Stdio::null()),
    )
}

/// Runs `args` unwrapped, under `roar run --backend preload` and standalone
/// (then ingested), checks that all three behave identically, and returns
/// the unwrapped output with the two recorded runs.
fn three_ways(sb: &Sandbox, args: &[&str]) -> (Output, Value, Value) {
    let native = sb.direct(args);
    let wrapped = sb.run("preload", args);
    let ran = sb.show_json("latest");
    let dir = sb.join("traces");
    std::fs::create_dir_all(&dir).unwrap();
    let alone = standalone(sb, &dir, args);
    let ingest = output(sb.roar().args(["ingest", "--settle", "0"]).arg(&dir));
    assert!(
        ingest.status.success(),
        "{}",
        String::from_utf8_lossy(&ingest.stderr)
    );
    let ingested = sb.show_json("latest");
    assert_ne!(ran["id"], ingested["id"], "roar ingest recorded no run");
    for (how, out) in [("roar run", &wrapped), ("standalone", &alone)] {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&native.stdout),
            "stdout under {how}"
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&native.stderr),
            "stderr under {how}"
        );
        assert_eq!(out.status, native.status, "exit status under {how}");
    }
    (native, ran, ingested)
}

fn paths(sb: &Sandbox, list: &Value) -> Vec<PathBuf> {
    sb.in_sandbox(list).into_iter().collect()
}

fn assert_whole(run: &Value) {
    assert_eq!(run["complete"], true, "{run:#}");
    assert_eq!(run["warnings"], Value::Array(vec![]), "{run:#}");
}

/// A program that closes its fds behind libc's back (raw close_range), then
/// opens files up to a high fd, finds its files holding exactly what it
/// wrote, lists the same /proc/self/fd and gets EBADF closing an fd it
/// never opened.
#[test]
fn the_fd_table_is_the_programs_own() {
    let sb = Sandbox::new();
    sb.write("in.txt", "input\n");
    let (native, ran, ingested) = three_ways(&sb, &[env!("FIXTURE_OWN_FDS")]);
    let text = String::from_utf8_lossy(&native.stdout).into_owned();
    assert!(native.status.success(), "{text}");
    assert!(text.contains("close(900) before: -1 EBADF"), "{text}");
    assert!(text.contains("files with other content: 0"), "{text}");
    let opened: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("opened "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(opened > 100, "{text}");
    let mut want: Vec<PathBuf> = (0..opened)
        .map(|i| PathBuf::from(format!("fd{i}.txt")))
        .collect();
    want.sort();
    for run in [&ran, &ingested] {
        assert_whole(run);
        assert_eq!(
            paths(&sb, &run["inputs"]),
            [PathBuf::from("in.txt")],
            "{run:#}"
        );
        assert_eq!(paths(&sb, &run["outputs"]), want);
    }
}

/// With `ulimit -n 12`, python opens as many files before EMFILE as it
/// does without the library.
#[test]
fn a_small_fd_limit_leaves_the_same_headroom() {
    let sb = Sandbox::new();
    let script = "import os\n\
                  held = []\n\
                  try:\n\
                  \x20   while True:\n\
                  \x20       held.append(open('in.txt'))\n\
                  except OSError as e:\n\
                  \x20   print(len(held), e.errno)\n\
                  for f in held:\n\
                  \x20   f.close()\n\
                  open('out.txt', 'w').write('done')\n";
    sb.write("in.txt", "input\n");
    sb.write("count.py", script);
    let (native, ran, ingested) =
        three_ways(&sb, &["sh", "-c", "ulimit -n 12 && exec python3 count.py"]);
    let text = String::from_utf8_lossy(&native.stdout).into_owned();
    assert!(native.status.success(), "{text}");
    assert!(text.ends_with(" 24\n"), "EMFILE expected: {text}");
    for run in [&ran, &ingested] {
        assert_whole(run);
        assert!(
            paths(&sb, &run["inputs"]).contains(&PathBuf::from("in.txt")),
            "{run:#}"
        );
        assert_eq!(paths(&sb, &run["outputs"]), [PathBuf::from("out.txt")]);
    }
}

/// Fork children (also of a raw clone, where no atfork handler runs), vfork
/// children and eight threads racing to grow one stream: every process is
/// there, every file is, and no record is missing.
#[test]
fn busy_streams_stay_whole() {
    let sb = Sandbox::new();
    sb.write("in.txt", "input\n");
    let (native, ran, ingested) = three_ways(&sb, &[env!("FIXTURE_BUSY_STREAMS")]);
    assert!(native.status.success());
    let mut want: Vec<PathBuf> = (0..20)
        .map(|i| format!("fork-{i}.txt"))
        .chain((0..5).map(|i| format!("raw-{i}.txt")))
        .chain((0..8).map(|i| format!("thread-{i}.txt")))
        .map(PathBuf::from)
        .collect();
    want.sort();
    for run in [&ran, &ingested] {
        assert_whole(run);
        assert_eq!(paths(&sb, &run["outputs"]), want, "{run:#}");
        // The program, its 20 + 5 forked children and 3 exec'd /bin/true.
        let procs = run["processes"].as_array().unwrap();
        assert_eq!(procs.len(), 29, "{run:#}");
        assert_eq!(paths(&sb, &run["inputs"]), [PathBuf::from("in.txt")]);
    }
    check(sb.roar().args(["show", "latest"]));
}

/// Under `ulimit -f 1` (1 KiB files) a stream cannot grow: the program runs
/// exactly as unwrapped (the old library's writes beyond the limit killed
/// it with SIGXFSZ), and the run says that records were lost.
#[test]
fn a_small_file_size_limit_costs_records_not_the_program() {
    let sb = Sandbox::new();
    sb.write("in.txt", "input\n");
    let (native, ran, ingested) = three_ways(
        &sb,
        &[
            "sh",
            "-c",
            "ulimit -f 1 && for i in $(seq 30); do : > out-$i.txt; cat in.txt >> out-$i.txt; done; echo done",
        ],
    );
    assert!(native.status.success());
    assert_eq!(native.stdout, b"done\n");
    for run in [&ran, &ingested] {
        assert_eq!(run["complete"], false, "{run:#}");
        assert!(run["warnings"].to_string().contains("lost"), "{run:#}");
    }
}
