//! The team store against a real PostgreSQL 15 (started by `harness`): machines played by
//! separate store files with their own store ids and host names on this host.

#[path = "team/harness.rs"]
mod harness;

use std::path::Path;
use std::time::{Duration, Instant};

use dag::{FileRecord, NewRun, RunResult, Start, Store};
use harness::Pg;
use team_store::{PullOptions, PushOptions, RemoteConfig, RemoteError, pull, push};

fn pg() -> Option<Pg> {
    Pg::start()
}

fn machine(dir: &Path, host: &str) -> Store {
    let mut s = Store::open(&dir.join(format!("{host}.db"))).unwrap();
    s.set_host(Some(host.into()));
    s
}

fn hash(bytes: &[u8]) -> String {
    format!("blake3:{}", blake3::hash(bytes).to_hex())
}

/// Writes `content` to `path` and returns the record a run would have of it.
fn file(path: &Path, content: &[u8]) -> FileRecord {
    std::fs::write(path, content).unwrap();
    FileRecord {
        path: path.as_os_str().as_encoded_bytes().to_vec(),
        hash: Some(hash(content)),
        size: Some(content.len() as u64),
        filtered: false,
    }
}

fn read(path: &Path) -> FileRecord {
    let content = std::fs::read(path).unwrap();
    FileRecord {
        path: path.as_os_str().as_encoded_bytes().to_vec(),
        hash: Some(hash(&content)),
        size: Some(content.len() as u64),
        filtered: false,
    }
}

fn record(
    store: &Store,
    label: &str,
    at_ms: i64,
    inputs: Vec<FileRecord>,
    outputs: Vec<FileRecord>,
) -> i64 {
    let id = store
        .begin_run(&NewRun {
            label: Some(label.into()),
            command: vec![label.as_bytes().to_vec(), b"--frames".to_vec()],
            cwd: b"/shared".to_vec(),
            backend: "preload".into(),
            started_at_ms: at_ms,
            env: vec![("PATH".into(), Some("/usr/bin".into()))],
            ..NewRun::default()
        })
        .unwrap();
    store
        .finish_run(
            id,
            &RunResult {
                exit_code: Some(0),
                signal: None,
                duration_ms: 10,
                complete: true,
                warnings: vec![format!("{label}: a warning")],
                inputs,
                outputs,
                processes: vec![dag::ProcessRecord {
                    pid: 100,
                    ppid: 1,
                    exe: b"/usr/bin/tool".to_vec(),
                    argv: vec![label.as_bytes().to_vec()],
                    cwd: b"/shared".to_vec(),
                    exit_code: Some(0),
                    signal: None,
                    started_ns: 1,
                }],
            },
        )
        .unwrap();
    id
}

fn cfg(url: &str) -> RemoteConfig {
    RemoteConfig::parse(url).unwrap()
}

fn remote_runs(pg: &Pg, db: &str) -> i64 {
    pg.admin(db)
        .query_one("SELECT count(*) FROM roar.runs", &[])
        .unwrap()
        .get(0)
}

const T0: i64 = 1_790_000_000_000;

#[test]
fn three_machines_chain_a_pipeline_and_lineage_crosses_them() {
    let Some(pg) = pg() else { return };
    let (_, worker) = pg.team_db("chain");
    let remote = cfg(&worker);
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let (a, b, c) = (
        machine(dir.path(), "worker-a"),
        machine(dir.path(), "worker-b"),
        machine(dir.path(), "worker-c"),
    );
    let ids: Vec<String> = [&a, &b, &c].iter().map(|s| s.store_id().unwrap()).collect();
    assert!(ids[0] != ids[1] && ids[1] != ids[2]);

    // Step 1 on A writes frames to shared storage; step 2 on B reads them; step 3 on C.
    let scene = file(&shared.join("scene.blend"), b"scene v1");
    let frames = file(&shared.join("frames.exr"), b"frames from scene v1");
    let render = record(&a, "render", T0, vec![scene], vec![frames]);
    // What the render used travels with it (schema version 2).
    let used = dag::Environment {
        packages: vec![dag::Package {
            manager: "pip".into(),
            name: "numpy".into(),
            version: "2.1.0".into(),
            location: b"/venv/lib/python3.12/site-packages".to_vec(),
        }],
        host: Some(dag::Host {
            hostname: Some("worker-a".into()),
            kernel: Some("6.1.0".into()),
            os: Some("Debian GNU/Linux 12 (bookworm)".into()),
            cpu_model: Some("a CPU".into()),
            cpus: Some(64),
            memory_bytes: Some(1 << 37),
            gpus: vec!["GPU 0: A100".into(), "GPU 1: A100".into()],
        }),
        container: Some(dag::Container {
            runtime: "docker".into(),
            image: Some("renderer:4.2".into()),
            image_id: Some("sha256:0123".into()),
            id: Some("c0ffee".into()),
        }),
    };
    a.set_environment(render, &used).unwrap();
    let movie = file(&shared.join("movie.mp4"), b"movie");
    record(
        &b,
        "composite",
        T0 + 1000,
        vec![read(&shared.join("frames.exr"))],
        vec![movie],
    );
    let fin = file(&shared.join("final.mp4"), b"final");
    let c_run = record(
        &c,
        "encode",
        T0 + 2000,
        vec![read(&shared.join("movie.mp4"))],
        vec![fin],
    );

    // C pushes first, then B, then A: order does not matter.
    for s in [&c, &b, &a] {
        let r = push(s, &remote, &PushOptions::default()).unwrap();
        assert_eq!((r.pending, r.sent, r.batches), (1, 1, 1), "{r:?}");
        assert!(r.bytes > 0);
    }
    assert_eq!(remote_runs(&pg, "chain"), 3);

    let r = pull(&c, &remote, &PullOptions::default()).unwrap();
    assert_eq!(
        (r.received, r.skipped),
        (2, 1),
        "C's own run is skipped: {r:?}"
    );
    // Lineage on C goes from C's output back through B to A's run and A's source.
    let version = c.version_of_hash(&hash(b"final")).unwrap().unwrap();
    let lin = c
        .lineage(&Start::Artifact {
            version,
            path: shared
                .join("final.mp4")
                .as_os_str()
                .as_encoded_bytes()
                .to_vec(),
        })
        .unwrap();
    let order = lin.runs_in_order();
    assert_eq!(order.len(), 3);
    assert_eq!(*order.last().unwrap(), c_run);
    let hosts: Vec<Option<String>> = order
        .iter()
        .map(|id| c.run(*id).unwrap().origin.host)
        .collect();
    assert_eq!(
        hosts,
        vec![
            Some("worker-a".into()),
            Some("worker-b".into()),
            Some("worker-c".into())
        ]
    );
    let first = c.run(order[0]).unwrap();
    assert!(first.pulled);
    assert_eq!(first.origin.store, ids[0]);
    assert_eq!(
        first.command,
        vec![b"render".to_vec(), b"--frames".to_vec()]
    );
    assert_eq!(first.warnings, vec!["render: a warning".to_string()]);
    assert_eq!(first.processes.len(), 1);
    let srcs = lin.sources();
    assert_eq!(srcs.len(), 1);
    assert!(
        matches!(&lin.graph[srcs[0]], dag::Node::Artifact { path, .. } if path.ends_with(b"scene.blend"))
    );
    // The pulled runs are the same runs as on their origin.
    let on_a = a.runs(None).unwrap().remove(0);
    assert!(first.same_content(&on_a));
    assert_eq!(c.environment(first.id).unwrap(), used);
    // B's run recorded no environment, and has none on C.
    assert_eq!(
        c.environment(order[1]).unwrap(),
        dag::Environment::default()
    );

    // Pulling again brings nothing; a pulled run is read-only.
    let r = pull(&c, &remote, &PullOptions::default()).unwrap();
    assert_eq!((r.received, r.skipped), (0, 0));
    assert!(matches!(
        c.add_warning(first.id, "x"),
        Err(dag::StoreError::ReadOnlyRun { .. })
    ));
    // Nor are pulled runs pushed back.
    let r = push(&c, &remote, &PushOptions::default()).unwrap();
    assert_eq!(r.pending, 0);
}

#[test]
fn pushing_twice_and_a_push_repeated_after_a_lost_mark_change_nothing() {
    let Some(pg) = pg() else { return };
    let (_, worker) = pg.team_db("twice");
    let remote = cfg(&worker);
    let dir = tempfile::tempdir().unwrap();
    let a = machine(dir.path(), "a");
    for i in 0..25 {
        record(&a, &format!("step{i}"), T0 + i, vec![], vec![]);
    }
    let opts = PushOptions {
        limits: team_store::Limits {
            runs: 10,
            rows: 1000,
        },
        ..PushOptions::default()
    };
    // A copy taken before the push is the store of a push killed after the remote commit and
    // before the local mark moved.
    drop(a);
    std::fs::copy(dir.path().join("a.db"), dir.path().join("a-copy.db")).unwrap();
    let a = machine(dir.path(), "a");
    let r = push(&a, &remote, &opts).unwrap();
    assert_eq!((r.sent, r.batches), (25, 3));
    let r = push(&a, &remote, &opts).unwrap();
    assert_eq!((r.pending, r.sent, r.batches), (0, 0, 0));
    let copy = machine(dir.path(), "a-copy");
    let r = push(&copy, &remote, &opts).unwrap();
    assert_eq!((r.pending, r.sent, r.already_there), (25, 0, 25));
    assert_eq!(remote_runs(&pg, "twice"), 25);
    let files: i64 = pg
        .admin("twice")
        .query_one("SELECT count(*) FROM roar.processes", &[])
        .unwrap()
        .get(0);
    assert_eq!(files, 25, "child rows are not duplicated");
}

/// Runs a push in a child process so that it can be SIGKILLed mid-transaction.
#[test]
fn child_push_entry() {
    let (Ok(db), Ok(url)) = (
        std::env::var("ROAR_TEST_CHILD_DB"),
        std::env::var("ROAR_TEST_CHILD_URL"),
    ) else {
        return;
    };
    let store = Store::open(Path::new(&db)).unwrap();
    push(&store, &cfg(&url), &PushOptions::default()).unwrap();
}

#[test]
fn a_push_killed_mid_transaction_and_retried_loses_and_duplicates_nothing() {
    let Some(pg) = pg() else { return };
    let (_, worker) = pg.team_db("killed");
    let dir = tempfile::tempdir().unwrap();
    let a = machine(dir.path(), "a");
    for i in 0..30 {
        record(&a, &format!("s{i}"), T0 + i, vec![], vec![]);
    }
    // Hold a lock the push needs halfway through its transaction (runs inserted, warnings not).
    let mut admin = pg.admin("killed");
    let mut lock = admin.transaction().unwrap();
    lock.batch_execute("LOCK TABLE roar.run_warnings IN EXCLUSIVE MODE")
        .unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_push_entry", "--exact", "--nocapture"])
        .env("ROAR_TEST_CHILD_DB", dir.path().join("a.db"))
        .env("ROAR_TEST_CHILD_URL", &worker)
        .spawn()
        .unwrap();
    let mut watcher = pg.admin("killed");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'roar' \
                 AND wait_event_type = 'Lock'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the push never reached the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    lock.rollback().unwrap();
    // The server notices the dead client; its transaction is rolled back.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(remote_runs(&pg, "killed"), 0);
    assert_eq!(
        a.pending_push(0, 100).unwrap().len(),
        30,
        "nothing lost locally"
    );
    let r = push(&a, &cfg(&worker), &PushOptions::default()).unwrap();
    assert_eq!(r.sent, 30);
    assert_eq!(remote_runs(&pg, "killed"), 30);
    let warnings: i64 = pg
        .admin("killed")
        .query_one("SELECT count(*) FROM roar.run_warnings", &[])
        .unwrap()
        .get(0);
    assert_eq!(warnings, 30);
}

#[test]
fn out_of_order_workers_and_one_a_day_late() {
    let Some(pg) = pg() else { return };
    let (_, worker) = pg.team_db("late");
    let remote = cfg(&worker);
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let puller = machine(dir.path(), "puller");
    let out = shared.join("result.dat");
    let workers: Vec<Store> = (0..4)
        .map(|i| machine(dir.path(), &format!("w{i}")))
        .collect();
    for (i, w) in workers.iter().enumerate() {
        record(
            w,
            &format!("job{i}"),
            T0 + 86_400_000 + i as i64 * 1000,
            vec![],
            vec![file(&out, format!("result {i}").as_bytes())],
        );
    }
    for i in [2usize, 0, 3, 1] {
        push(&workers[i], &remote, &PushOptions::default()).unwrap();
    }
    assert_eq!(
        pull(&puller, &remote, &PullOptions::default())
            .unwrap()
            .received,
        4
    );
    let head_of = |s: &Store| {
        let heads = s.heads().unwrap();
        let h = heads
            .iter()
            .find(|h| h.path.ends_with(b"result.dat"))
            .unwrap()
            .clone();
        s.run(h.run_id).unwrap().origin.host.unwrap()
    };
    assert_eq!(
        head_of(&puller),
        "w3",
        "the newest start wins, not the last push"
    );

    // Offline worker: its run is a day older, pushed after the puller already pulled.
    let late = machine(dir.path(), "late");
    record(
        &late,
        "old-job",
        T0,
        vec![],
        vec![file(&out, b"stale result")],
    );
    push(&late, &remote, &PushOptions::default()).unwrap();
    let r = pull(&puller, &remote, &PullOptions::default()).unwrap();
    assert_eq!(r.received, 1, "a late push is not skipped by the pull mark");
    assert_eq!(
        head_of(&puller),
        "w3",
        "an older run pulled later does not take the head"
    );
    assert_eq!(puller.runs(None).unwrap().len(), 5);
}

#[test]
fn pull_never_passes_a_push_that_commits_late() {
    let Some(pg) = pg() else { return };
    let (_, worker) = pg.team_db("horizon");
    let remote = cfg(&worker);
    let dir = tempfile::tempdir().unwrap();
    let slow = machine(dir.path(), "slow");
    record(&slow, "slow", T0, vec![], vec![]); // has a warning: blocked by the lock below
    let mut admin = pg.admin("horizon");
    let mut lock = admin.transaction().unwrap();
    lock.batch_execute("LOCK TABLE roar.run_warnings IN EXCLUSIVE MODE")
        .unwrap();
    let db = dir.path().join("slow.db");
    let url = worker.clone();
    let t = std::thread::spawn(move || {
        let s = Store::open(&db).unwrap();
        push(&s, &cfg(&url), &PushOptions::default()).unwrap().sent
    });
    let mut watcher = pg.admin("horizon");
    while watcher
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'roar' AND wait_event_type = 'Lock'", &[])
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A faster worker commits meanwhile (its transaction started later).
    let fast = machine(dir.path(), "fast");
    let id = fast
        .begin_run(&NewRun {
            label: Some("fast".into()),
            started_at_ms: T0 + 5,
            ..NewRun::default()
        })
        .unwrap();
    fast.finish_run(id, &RunResult::default()).unwrap();
    assert_eq!(
        push(&fast, &remote, &PushOptions::default()).unwrap().sent,
        1
    );
    let puller = machine(dir.path(), "puller");
    let r = pull(&puller, &remote, &PullOptions::default()).unwrap();
    assert_eq!(
        r.received, 0,
        "nothing past a transaction still running: {r:?}"
    );
    lock.commit().unwrap();
    assert_eq!(t.join().unwrap(), 1);
    let r = pull(&puller, &remote, &PullOptions::default()).unwrap();
    assert_eq!(r.received, 2);
}

#[test]
fn a_hundred_workers_push_at_once() {
    let Some(pg) = pg() else { return };
    let (_, worker) = pg.team_db("hundred");
    let threads: Vec<_> = (0..100)
        .map(|i| {
            let url = worker.clone();
            std::thread::spawn(move || {
                let mut s = Store::open_in_memory().unwrap();
                s.set_host(Some(format!("w{i}")));
                for j in 0..5 {
                    record(&s, &format!("w{i}-{j}"), T0 + j, vec![], vec![]);
                }
                push(&s, &cfg(&url), &PushOptions::default())
            })
        })
        .collect();
    let mut retries = 0;
    for t in threads {
        let r = t.join().unwrap().unwrap();
        assert_eq!(r.sent, 5);
        retries += r.retries;
    }
    eprintln!("100 workers: {retries} retries in all");
    assert_eq!(remote_runs(&pg, "hundred"), 500);
}

#[test]
fn bad_urls_wrong_passwords_and_newer_schemas_are_clear_and_lose_nothing() {
    let Some(pg) = pg() else { return };
    let (owner, worker) = pg.team_db("errors");
    let dir = tempfile::tempdir().unwrap();
    let a = machine(dir.path(), "a");
    record(&a, "x", T0, vec![], vec![]);

    for url in [
        "mysql://u:pw-xyz@h/db",
        "postgresql://u:pw-xyz@h/db?sslmode=sometimes",
        "postgresql://u:pw-xyz@h/db?nonsense=1",
    ] {
        let e = RemoteConfig::parse(url).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, RemoteError::BadUrl { .. })
                && !msg.contains("pw-xyz")
                && msg.contains("***"),
            "{msg}"
        );
    }

    let wrong = pg.url("roar_worker", "not-the-password", "errors");
    let e = push(&a, &cfg(&wrong), &PushOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RemoteError::Auth { .. }), "{msg}");
    assert!(
        !msg.contains("not-the-password")
            && msg.contains("roar_worker:***@")
            && msg.contains("PGPASSWORD"),
        "{msg}"
    );

    // Nobody listening: a bounded, clear failure (as after-run pushes need).
    let down = format!(
        "postgresql://u:pw-xyz@127.0.0.1:{}/db?sslmode=disable",
        harness::free_port()
    );
    let t = Instant::now();
    let e = push(&a, &cfg(&down), &PushOptions::after_run()).unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    let msg = e.to_string();
    assert!(
        matches!(e, RemoteError::Unreachable { .. }) && !msg.contains("pw-xyz"),
        "{msg}"
    );

    // A worker meeting a database without the schema may not create it.
    let mut admin = pg.admin("postgres");
    admin.batch_execute("CREATE DATABASE bare").unwrap();
    admin
        .batch_execute("GRANT CONNECT ON DATABASE bare TO roar_worker")
        .unwrap();
    let e = push(
        &a,
        &cfg(&pg.url("roar_worker", "worker-pw", "bare")),
        &PushOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, RemoteError::Permission { .. }), "{e}");
    assert!(e.to_string().contains("owner"), "{e}");

    // The worker role can insert and select, nothing else.
    let mut w = postgres::Client::connect(&worker, postgres::NoTls).unwrap();
    for sql in [
        "DELETE FROM roar.runs",
        "UPDATE roar.runs SET label = 'x'",
        "DROP TABLE roar.runs",
        "TRUNCATE roar.run_files",
    ] {
        let e = w.batch_execute(sql).unwrap_err();
        assert_eq!(
            e.code(),
            Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {e}"
        );
    }

    // A remote migrated by a newer roar.
    let mut o = postgres::Client::connect(&owner, postgres::NoTls).unwrap();
    o.batch_execute("INSERT INTO roar.migrations (version) VALUES (999)")
        .unwrap();
    for e in [
        push(&a, &cfg(&worker), &PushOptions::default()).unwrap_err(),
        pull(&a, &cfg(&worker), &PullOptions::default())
            .map(|_| ())
            .unwrap_err(),
    ] {
        let msg = e.to_string();
        assert!(
            matches!(e, RemoteError::TooNew { found: 999, .. }) && msg.contains("upgrade roar"),
            "{msg}"
        );
    }
    assert_eq!(remote_runs(&pg, "errors"), 0);
    assert_eq!(
        a.pending_push(0, 10).unwrap().len(),
        1,
        "nothing lost locally"
    );
    assert_eq!(a.runs(None).unwrap().len(), 1);
}

#[test]
fn the_same_uuid_with_other_content_is_an_error_naming_both() {
    let Some(pg) = pg() else { return };
    let (_, worker) = pg.team_db("conflict");
    let remote = cfg(&worker);
    let dir = tempfile::tempdir().unwrap();
    let a = machine(dir.path(), "a");
    let id = record(&a, "x", T0, vec![], vec![]);
    drop(a);
    std::fs::copy(dir.path().join("a.db"), dir.path().join("tampered.db")).unwrap();
    let a = machine(dir.path(), "a");
    push(&a, &remote, &PushOptions::default()).unwrap();
    let t = machine(dir.path(), "tampered");
    t.add_warning(id, "changed after the fact").unwrap();
    let e = push(&t, &remote, &PushOptions::default()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, RemoteError::Conflict { .. }), "{msg}");
    let uuid = t.run(id).unwrap().uuid;
    assert!(
        msg.contains(&uuid)
            && msg.contains("this store's run")
            && msg.contains("team store's copy"),
        "{msg}"
    );
    assert_eq!(remote_runs(&pg, "conflict"), 1);
}
