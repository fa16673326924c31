//! Scale benchmark: a store of 100,000 runs and 1,000,000 input/output links over a project of
//! 10,000 tracked files, then the real `roar` binary timed on it.
//!
//! ```sh
//! cargo build --release -p roar-cli
//! cargo run --release -p dag --example scale -- [DIR] [--runs N]
//! ```
//!
//! The project: 160 pipelines of 10 stages. Stage 0 reads 5 of the 2,000 source files; stage k
//! reads 2 sources and the 3 first outputs of stage k-1; every stage writes 5 outputs (8,000
//! output paths). Rounds re-run every stage in pipeline order, each run writing new content,
//! until there are N runs (default 100,000: 62.5 rounds, so 5 inputs + 5 outputs per run make
//! 1,000,000 links and about 500,000 artifacts). The files on disk hold the final versions and
//! the hash cache knows them, as after real `roar run`s, so `roar status` finds nothing changed.
//!
//! The store is written with SQL in one transaction (the schema comes from `dag::Store::open`),
//! since 100,000 `roar run`s would take hours.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::{Connection, params};

const SOURCES: usize = 2_000;
const PIPELINES: usize = 160;
const STAGES: usize = 10;
const OUTS: usize = 5;

fn content(path: &[u8], version: usize) -> Vec<u8> {
    let mut c = path.to_vec();
    c.extend_from_slice(format!("#{version}\n").as_bytes());
    c
}

fn hash(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

struct Layout {
    project: PathBuf,
}

impl Layout {
    fn source(&self, i: usize) -> Vec<u8> {
        let p = self.project.join(format!("data/src/s{i:04}.dat"));
        p.as_os_str().as_bytes().to_vec()
    }
    fn output(&self, pipeline: usize, stage: usize, j: usize) -> Vec<u8> {
        let p = self
            .project
            .join(format!("out/p{pipeline:03}/stage{stage}/o{j}.dat"));
        p.as_os_str().as_bytes().to_vec()
    }
}

fn generate(dir: &Path, total_runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let roar_dir = dir.join("project/.roar");
    std::fs::create_dir_all(&roar_dir)?;
    // Recorded paths are absolute, as roar records them.
    let project = dir.join("project").canonicalize()?;
    let db = roar_dir.join("roar.db");
    if db.exists() {
        return Err(format!("{} exists: remove {} first", db.display(), dir.display()).into());
    }
    drop(dag::Store::open(&db)?);
    let lay = Layout {
        project: project.clone(),
    };
    let mut conn = Connection::open(&db)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    let mut next_artifact: i64 = 1;
    {
        let mut art = tx.prepare("INSERT INTO artifacts (id, hash, size) VALUES (?1, ?2, ?3)")?;
        let mut run = tx.prepare(
            "INSERT INTO runs (id, label, cwd, backend, started_at_ms, git_commit, git_branch, \
             git_dirty, git_remote, exit_code, signal, duration_ms, complete, finished, \
             trace_dir, roar_pid, seq) \
             VALUES (?1, ?2, ?3, 'preload', ?4, ?5, 'main', 0, NULL, 0, NULL, 1200, 1, 1, NULL, 1, ?1)",
        )?;
        let mut cmd =
            tx.prepare("INSERT INTO run_command (run_id, idx, arg) VALUES (?1, ?2, ?3)")?;
        let mut process = tx.prepare(
            "INSERT INTO processes (id, run_id, idx, pid, ppid, exe, cwd, exit_code, signal, \
             started_ns) VALUES (?1, ?1, 0, ?2, 1, ?4, ?3, 0, NULL, 0)",
        )?;
        let mut argv =
            tx.prepare("INSERT INTO process_argv (process_id, idx, arg) VALUES (?1, ?2, ?3)")?;
        let mut input = tx.prepare(
            "INSERT INTO run_inputs (run_id, idx, path, artifact_id, size, filtered) \
             VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        )?;
        let mut output = tx.prepare(
            "INSERT INTO run_outputs (run_id, idx, path, artifact_id, size, filtered) \
             VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        )?;

        let mut source_art = Vec::with_capacity(SOURCES);
        for i in 0..SOURCES {
            let p = lay.source(i);
            let c = content(&p, 0);
            art.execute(params![next_artifact, hash(&c), c.len() as i64])?;
            source_art.push((next_artifact, c.len() as i64));
            next_artifact += 1;
        }
        // Current (artifact id, size, version) of every output path.
        let mut current = vec![(0i64, 0i64, 0usize); PIPELINES * STAGES * OUTS];
        let slot = |p: usize, s: usize, j: usize| (p * STAGES + s) * OUTS + j;
        let cwd = project.as_os_str().as_bytes().to_vec();
        let commit = "c0ffee".repeat(7)[..40].to_string();
        let mut id: i64 = 0;
        'rounds: for round in 0.. {
            for p in 0..PIPELINES {
                for s in 0..STAGES {
                    if id as usize == total_runs {
                        break 'rounds;
                    }
                    id += 1;
                    let script = format!("stage{s}.py");
                    run.execute(params![
                        id,
                        format!("p{p:03}-stage{s}"),
                        cwd,
                        1_763_791_200_000i64 + id * 1000,
                        commit
                    ])?;
                    for (i, a) in ["python3", script.as_str(), &format!("--pipeline={p}")]
                        .iter()
                        .enumerate()
                    {
                        cmd.execute(params![id, i as i64, a.as_bytes()])?;
                        if i == 0 {
                            process.execute(params![
                                id,
                                1000 + id,
                                cwd,
                                &b"/usr/bin/python3"[..]
                            ])?;
                        }
                        argv.execute(params![id, i as i64, a.as_bytes()])?;
                    }
                    // Inputs: sources, then the previous stage's outputs as they are now.
                    let src = |k: usize| (p * 7 + s * 3 + k * 11) % SOURCES;
                    let mut idx = 0i64;
                    let n_src = if s == 0 { 5 } else { 2 };
                    for k in 0..n_src {
                        let i = src(k);
                        let (a, size) = source_art[i];
                        input.execute(params![id, idx, lay.source(i), a, size])?;
                        idx += 1;
                    }
                    if s > 0 {
                        for j in 0..3 {
                            let (a, size, _) = current[slot(p, s - 1, j)];
                            input.execute(params![id, idx, lay.output(p, s - 1, j), a, size])?;
                            idx += 1;
                        }
                    }
                    for j in 0..OUTS {
                        let path = lay.output(p, s, j);
                        let c = content(&path, round);
                        art.execute(params![next_artifact, hash(&c), c.len() as i64])?;
                        output.execute(params![
                            id,
                            j as i64,
                            path,
                            next_artifact,
                            c.len() as i64
                        ])?;
                        current[slot(p, s, j)] = (next_artifact, c.len() as i64, round);
                        next_artifact += 1;
                    }
                }
            }
        }
        println!("store: {id} runs, {} artifacts", next_artifact - 1);

        // The files as the last runs left them, and the hash cache as `roar run` filled it.
        let mut cache = tx.prepare(
            "INSERT OR REPLACE INTO hash_cache (dev, ino, size, mtime_ns, hash) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut files: Vec<(Vec<u8>, Vec<u8>)> = (0..SOURCES)
            .map(|i| {
                let p = lay.source(i);
                let c = content(&p, 0);
                (p, c)
            })
            .collect();
        for p in 0..PIPELINES {
            for s in 0..STAGES {
                for j in 0..OUTS {
                    let path = lay.output(p, s, j);
                    let c = content(&path, current[slot(p, s, j)].2);
                    files.push((path, c));
                }
            }
        }
        for (path, c) in &files {
            let path = Path::new(std::ffi::OsStr::from_bytes(path));
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::write(path, c)?;
            let md = std::fs::metadata(path)?;
            cache.execute(params![
                md.dev() as i64,
                md.ino() as i64,
                md.size() as i64,
                md.mtime() * 1_000_000_000 + md.mtime_nsec(),
                hash(c)
            ])?;
        }
        println!("project: {} tracked files", files.len());
    }
    // Identities as migration 0010 gives them (uuid, order key, finishing order); then heads,
    // exactly as migration 0002 computes them.
    tx.execute_batch(
        "UPDATE runs SET uuid = '00000000-0000-7000-8000-' || printf('%012x', id),
                         order_key = started_at_ms * 1000 + id, finished_seq = id;
         DELETE FROM path_heads;
         INSERT OR REPLACE INTO path_heads (path, run_id, artifact_id)
         SELECT o.path, o.run_id, o.artifact_id FROM run_outputs AS o
         WHERE o.filtered = 0 AND o.run_id =
             (SELECT MAX(o2.run_id) FROM run_outputs AS o2 WHERE o2.path = o.path AND o2.filtered = 0);",
    )?;
    tx.commit()?;
    conn.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")?;
    let links: i64 = conn.query_row(
        "SELECT (SELECT count(*) FROM run_inputs) + (SELECT count(*) FROM run_outputs)",
        [],
        |r| r.get(0),
    )?;
    println!(
        "links: {links}; store size {:.0} MiB",
        std::fs::metadata(&db)?.len() as f64 / (1 << 20) as f64
    );
    Ok(())
}

/// Name, arguments, target, repetitions, what to do before each repetition.
type Case<'a> = (&'a str, Vec<&'a str>, &'a str, usize, &'a dyn Fn());

fn time(
    roar: &Path,
    project: &Path,
    args: &[&str],
    reps: usize,
    before: &dyn Fn(),
) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(reps);
    let mut bytes = 0;
    for i in 0..=reps {
        before();
        let t = Instant::now();
        let out = Command::new(roar)
            .args(args)
            .current_dir(project)
            .env_remove("ROAR_DB")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run roar");
        let d = t.elapsed();
        assert!(
            out.status.success(),
            "roar {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bytes = out.stdout.len();
        // The first run warms the page cache.
        if i > 0 {
            times.push(d);
        }
    }
    times.sort();
    (times[times.len() / 2], times[0], bytes)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dir: Option<PathBuf> = None;
    let mut runs = 100_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().ok_or("--runs N")?.parse()?,
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from("bench/out/scale"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let roar = root.join("target/release/roar");
    if !roar.is_file() {
        return Err(format!(
            "{} not found: cargo build --release -p roar-cli",
            roar.display()
        )
        .into());
    }
    let project = dir.join("project");
    if !project.join(".roar/roar.db").exists() {
        let t = Instant::now();
        generate(&dir, runs)?;
        println!("generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    let deep = format!("out/p{:03}/stage{}/o0.dat", PIPELINES / 2, STAGES - 1);
    // Rewrites 100 output files with the same bytes: new mtimes, so the cache misses and
    // status hashes exactly those 100 (and finds nothing stale).
    let touch = || {
        for p in 0..100 {
            let path = project.join(format!("out/p{p:03}/stage0/o1.dat"));
            let c = std::fs::read(&path).expect("read output");
            std::fs::write(&path, c).expect("rewrite output");
        }
    };
    let nothing = || {};
    let cases: Vec<Case> = vec![
        (
            "roar log -n 20",
            vec!["log", "-n", "20"],
            "20 ms",
            9,
            &nothing,
        ),
        ("roar show (latest)", vec!["show"], "50 ms", 9, &nothing),
        ("roar show PATH", vec!["show", &deep], "50 ms", 9, &nothing),
        (
            "roar show --json @50000",
            vec!["show", "--json", "@50000"],
            "50 ms",
            9,
            &nothing,
        ),
        (
            "roar lineage PATH (10 stages)",
            vec!["lineage", &deep],
            "50 ms",
            9,
            &nothing,
        ),
        (
            "roar lineage --json PATH",
            vec!["lineage", "--json", &deep],
            "50 ms",
            9,
            &nothing,
        ),
        (
            "roar reproduce --script PATH",
            vec!["reproduce", "--script", &deep],
            "-",
            9,
            &nothing,
        ),
        (
            "roar status (nothing changed)",
            vec!["status"],
            "1 s",
            9,
            &nothing,
        ),
        (
            "roar status (100 files touched, same bytes)",
            vec!["status"],
            "-",
            5,
            &touch,
        ),
        (
            "roar status --json (1,600 run objects)",
            vec!["status", "--json"],
            "-",
            3,
            &nothing,
        ),
        (
            "roar export --format dot (whole store)",
            vec!["export", "--format", "dot", "-o", "/dev/null"],
            "-",
            1,
            &nothing,
        ),
    ];
    println!("\n| command | median | min | target | stdout bytes |");
    println!("|---|---|---|---|---|");
    for (name, args, target, reps, before) in cases {
        let (median, min, bytes) = time(&roar, &project, &args, reps, before);
        println!(
            "| `{name}` | {:.1} ms | {:.1} ms | {target} | {bytes} |",
            median.as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3
        );
    }
    Ok(())
}
