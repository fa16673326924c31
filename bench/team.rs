//! Team-store benchmark: W simulated workers x R runs each pushed to one PostgreSQL, J workers
//! at a time, then one pull into a fresh store, then lineage and status on the pulled store.
//!
//! ```sh
//! # a throwaway server as root (see reference/platform.md), then:
//! cargo run --release -p team-store --example team -- postgresql://postgres@127.0.0.1:54329/roar_bench?sslmode=disable [--workers 100] [--runs 1000] [--jobs 16]
//! ```
//!
//! Each worker records pipelines of 10 stages (stage k reads 2 outputs of stage k-1 and writes
//! 2 files; stage 0 reads a source and the last output of the partner worker's pipeline, so
//! lineage crosses machines). Worker stores are written with the dag API, in memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dag::{FileRecord, NewRun, ProcessRecord, RunResult, Start, Store};
use team_store::{PullOptions, PushOptions, RemoteConfig, pull, push};

fn rec(path: String, content: &str) -> FileRecord {
    FileRecord {
        hash: Some(format!(
            "blake3:{}",
            blake3::hash(content.as_bytes()).to_hex()
        )),
        size: Some(content.len() as u64),
        path: path.into_bytes(),
        filtered: false,
    }
}

/// Round p of pipeline p % 10 rewrites that pipeline's files with new content.
fn out_path(w: usize, p: usize, s: usize, j: usize) -> String {
    format!("/shared/w{w:03}/p{:02}/stage{s}/o{j}.dat", p % 10)
}

fn worker_store(w: usize, runs: usize) -> Store {
    let mut store = Store::open_in_memory().unwrap();
    store.set_host(Some(format!("worker-{w:03}")));
    let t0 = 1_790_000_000_000i64;
    for i in 0..runs {
        let (p, s) = (i / 10, i % 10);
        let mut inputs = Vec::new();
        if s == 0 {
            inputs.push(rec(format!("/shared/src/s{p}.dat"), &format!("source {p}")));
            // The partner's previous pipeline, finished before this one started.
            let partner = w ^ 1;
            if partner < w && p > 0 {
                let q = p - 1;
                inputs.push(rec(
                    out_path(partner, q, 9, 0),
                    &format!("{partner}/{q}/9/0"),
                ));
            }
        } else {
            for j in 0..2 {
                inputs.push(rec(
                    out_path(w, p, s - 1, j),
                    &format!("{w}/{p}/{}/{j}", s - 1),
                ));
            }
        }
        let outputs = (0..2)
            .map(|j| rec(out_path(w, p, s, j), &format!("{w}/{p}/{s}/{j}")))
            .collect();
        let id = store
            .begin_run(&NewRun {
                label: Some(format!("stage{s}")),
                command: vec![b"python3".to_vec(), format!("stage{s}.py").into_bytes()],
                cwd: b"/shared".to_vec(),
                backend: "preload".into(),
                // Workers run in parallel: worker w's i-th run starts at t0 + i s + w ms.
                started_at_ms: t0 + i as i64 * 1000 + w as i64,
                ..NewRun::default()
            })
            .unwrap();
        store
            .finish_run(
                id,
                &RunResult {
                    exit_code: Some(0),
                    duration_ms: 900,
                    complete: true,
                    inputs,
                    outputs,
                    processes: vec![ProcessRecord {
                        pid: 1000 + i as u32,
                        ppid: 1,
                        exe: b"/usr/bin/python3".to_vec(),
                        argv: vec![b"python3".to_vec()],
                        cwd: b"/shared".to_vec(),
                        exit_code: Some(0),
                        signal: None,
                        started_ns: 0,
                    }],
                    ..RunResult::default()
                },
            )
            .unwrap();
    }
    store
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .expect("usage: team URL [--workers N] [--runs N] [--jobs N]")
        .clone();
    let opt = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().unwrap())
    };
    let (workers, runs, jobs) = (
        opt("--workers", 100),
        opt("--runs", 1000),
        opt("--jobs", 16),
    );
    let remote = RemoteConfig::parse(&url).unwrap();
    team_store::migrate(&remote, team_store::RetryPolicy::default()).unwrap();

    // Record every worker's store first (not timed with the push).
    let t = Instant::now();
    let next = Arc::new(Mutex::new(0usize));
    let built: Vec<Store> = {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let handles: Vec<_> = (0..cores)
            .map(|_| {
                let next = next.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let w = {
                            let mut n = next.lock().unwrap();
                            let w = *n;
                            *n += 1;
                            w
                        };
                        if w >= workers {
                            return mine;
                        }
                        mine.push((w, worker_store(w, runs)));
                    }
                })
            })
            .collect();
        let mut all: Vec<(usize, Store)> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_by_key(|(w, _)| *w);
        all.into_iter().map(|(_, s)| s).collect()
    };
    println!(
        "recorded {} runs in {} stores in {:.1} s",
        workers * runs,
        workers,
        t.elapsed().as_secs_f64()
    );

    // Push, `jobs` workers at a time (Store is Send, not Sync: each thread owns its stores).
    let queue = Arc::new(Mutex::new(built.into_iter().collect::<Vec<_>>()));
    let t = Instant::now();
    let handles: Vec<_> = (0..jobs)
        .map(|_| {
            let queue = queue.clone();
            let remote = remote.clone();
            std::thread::spawn(move || {
                let mut totals = (0u64, 0u64, 0u64, 0u64);
                loop {
                    let Some(store) = queue.lock().unwrap().pop() else {
                        return totals;
                    };
                    let r = push(&store, &remote, &PushOptions::default()).unwrap();
                    totals.0 += r.sent;
                    totals.1 += r.batches;
                    totals.2 += r.bytes;
                    totals.3 += r.retries;
                }
            })
        })
        .collect();
    let mut sent = (0u64, 0u64, 0u64, 0u64);
    for h in handles {
        let t = h.join().unwrap();
        sent = (sent.0 + t.0, sent.1 + t.1, sent.2 + t.2, sent.3 + t.3);
    }
    let push_s = t.elapsed().as_secs_f64();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let on_remote: i64 = admin
        .query_one("SELECT count(*) FROM roar.runs", &[])
        .unwrap()
        .get(0);
    println!(
        "push: {} runs in {:.1} s = {:.0} runs/s ({} batches, {:.1} MB, {} retries, {jobs} at a time); remote holds {on_remote}",
        sent.0,
        push_s,
        sent.0 as f64 / push_s,
        sent.1,
        sent.2 as f64 / 1e6,
        sent.3
    );

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pulled.db");
    let store = Store::open(&db).unwrap();
    let t = Instant::now();
    let r = pull(&store, &remote, &PullOptions::default()).unwrap();
    let pull_s = t.elapsed().as_secs_f64();
    let local = store.runs(Some(1)).unwrap()[0].seq;
    println!(
        "pull: {} runs in {:.1} s = {:.0} runs/s ({} batches, {:.1} MB); pulled store holds {local}",
        r.received,
        pull_s,
        r.received as f64 / pull_s,
        r.batches,
        r.bytes as f64 / 1e6
    );

    // Lineage of the last output of worker 1's last pipeline: 20 runs on two machines.
    let last_p = runs / 10 - 1;
    let path = out_path(1, last_p, 9, 0);
    let hash = format!(
        "blake3:{}",
        blake3::hash(format!("1/{last_p}/9/0").as_bytes()).to_hex()
    );
    let mut best = f64::MAX;
    let mut n = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let v = store.version_of_hash(&hash).unwrap().unwrap();
        let lin = store
            .lineage(&Start::Artifact {
                version: v,
                path: path.clone().into_bytes(),
            })
            .unwrap();
        n = lin.runs_in_order().len();
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("lineage of {path}: {n} runs, best of 5 {best:.1} ms");
    let mut best = f64::MAX;
    let mut heads_n = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let heads = store.heads().unwrap();
        let ids: Vec<i64> = heads.iter().map(|h| h.run_id).collect();
        let inputs = store.inputs_of(&ids).unwrap();
        let now = HashMap::new();
        let report = dag::status::evaluate(&heads, &inputs, &now);
        heads_n = report.runs.len();
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "status (store side: heads, inputs, evaluate; no file system): {heads_n} head runs, best of 3 {best:.0} ms"
    );
}
