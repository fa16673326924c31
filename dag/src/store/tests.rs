use std::path::Path;

use super::*;

fn hash(c: char) -> String {
    format!("blake3:{}", c.to_string().repeat(64))
}

fn new_run(label: &str) -> NewRun {
    NewRun {
        label: Some(label.into()),
        command: vec![
            b"python3".to_vec(),
            b"train.py".to_vec(),
            b"\xff\xfe".to_vec(),
        ],
        cwd: b"/proj".to_vec(),
        backend: "preload".into(),
        backend_reason: Some("auto: eBPF unavailable; preload".into()),
        started_at_ms: 1_763_791_200_000,
        git: Some(GitInfo {
            commit: Some("a".repeat(40)),
            branch: Some("main".into()),
            dirty: true,
            remote: None,
        }),
        env: vec![
            ("PATH".into(), Some("/usr/bin".into())),
            ("SECRET".into(), None),
        ],
        trace_dir: Some(b"/proj/.roar/traces/1".to_vec()),
        roar_pid: 4242,
        openjd: None,
    }
}

fn file(path: &[u8], h: Option<char>, size: Option<u64>) -> FileRecord {
    FileRecord {
        path: path.to_vec(),
        hash: h.map(hash),
        size,
        filtered: false,
    }
}

fn result_writing(outputs: Vec<FileRecord>) -> RunResult {
    RunResult {
        exit_code: Some(0),
        duration_ms: 10,
        complete: true,
        outputs,
        ..RunResult::default()
    }
}

#[test]
fn full_run_round_trips() {
    let store = Store::open_in_memory().unwrap();
    let new = new_run("train");
    let id = store.begin_run(&new).unwrap();
    store.add_warning(id, "early warning").unwrap();
    let result = RunResult {
        exit_code: None,
        signal: Some(9),
        duration_ms: u64::MAX,
        complete: false,
        warnings: vec!["3 events dropped".into()],
        inputs: vec![
            file(b"/proj/data-\xc3\x28.csv", Some('1'), Some(10)),
            file(b"/proj/unknown.bin", None, Some(7)),
            FileRecord {
                filtered: true,
                ..file(b"/usr/lib/libc.so.6", Some('2'), None)
            },
        ],
        outputs: vec![
            file(b"/proj/model\x80.bin", Some('3'), Some(20)),
            file(b"/proj/x", None, None),
        ],
        processes: vec![
            ProcessRecord {
                pid: 100,
                ppid: 99,
                exe: b"/usr/bin/python3".to_vec(),
                argv: vec![b"python3".to_vec(), b"train.py".to_vec()],
                cwd: b"/proj".to_vec(),
                exit_code: None,
                signal: Some(9),
                started_ns: u64::MAX - 1,
            },
            ProcessRecord {
                pid: u32::MAX,
                ppid: 100,
                exe: b"/bin/\xffsh".to_vec(),
                argv: vec![],
                cwd: b"/".to_vec(),
                exit_code: Some(-1),
                signal: None,
                started_ns: 5,
            },
        ],
    };
    store.finish_run(id, &result).unwrap();

    let run = store.run(id).unwrap();
    assert_eq!(run.uuid.len(), 36);
    assert_eq!(&run.uuid[14..15], "7", "a UUIDv7");
    assert_eq!(run.origin.store, store.store_id().unwrap());
    assert!(!run.pulled);
    assert_eq!(run.order_key, new.started_at_ms * 1000);
    let expected = Run {
        id,
        uuid: run.uuid.clone(),
        origin: run.origin.clone(),
        pulled: false,
        order_key: run.order_key,
        seq: 1,
        label: new.label.clone(),
        command: new.command.clone(),
        cwd: new.cwd.clone(),
        backend: new.backend.clone(),
        backend_reason: new.backend_reason.clone(),
        started_at_ms: new.started_at_ms,
        git: new.git.clone(),
        env: new.env.clone(),
        openjd: None,
        exit_code: None,
        signal: Some(9),
        duration_ms: Some(u64::MAX),
        complete: false,
        finished: true,
        warnings: vec!["early warning".into(), "3 events dropped".into()],
        inputs: result.inputs.clone(),
        outputs: result.outputs.clone(),
        processes: result.processes.clone(),
        trace_dir: new.trace_dir.clone(),
        roar_pid: 4242,
    };
    assert_eq!(run, expected);
    assert_eq!(store.runs(None).unwrap(), vec![expected]);
}

#[test]
fn run_without_git_or_label() {
    let store = Store::open_in_memory().unwrap();
    let id = store
        .begin_run(&NewRun {
            backend: "ptrace".into(),
            ..NewRun::default()
        })
        .unwrap();
    let run = store.run(id).unwrap();
    assert_eq!(run.git, None);
    assert_eq!(run.label, None);
    assert_eq!(run.trace_dir, None);
}

#[test]
fn same_content_is_one_artifact() {
    let store = Store::open_in_memory().unwrap();
    let a = store.begin_run(&new_run("a")).unwrap();
    store
        .finish_run(
            a,
            &RunResult {
                inputs: vec![file(b"/proj/in", Some('5'), Some(3))],
                ..result_writing(vec![
                    file(b"/proj/one", Some('5'), Some(3)),
                    file(b"/proj/two", Some('5'), Some(3)),
                ])
            },
        )
        .unwrap();
    let b = store.begin_run(&new_run("b")).unwrap();
    store
        .finish_run(
            b,
            &result_writing(vec![file(b"/proj/three", Some('5'), Some(3))]),
        )
        .unwrap();
    let artifacts: i64 = store
        .conn
        .query_row("SELECT count(*) FROM artifacts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(artifacts, 1);
    let run = store.run(a).unwrap();
    assert_eq!(run.outputs[1].hash, Some(hash('5')));
    assert_eq!(run.inputs[0].size, Some(3));
}

#[test]
fn refs_resolve() {
    let store = Store::open_in_memory().unwrap();
    let cwd = Path::new("/proj");
    assert!(matches!(
        store.resolve_ref("latest", cwd),
        Err(StoreError::NoSuchRun(_))
    ));

    let first = store.begin_run(&new_run("1")).unwrap();
    store
        .finish_run(
            first,
            &result_writing(vec![file(b"/proj/out/model.bin", Some('a'), Some(1))]),
        )
        .unwrap();
    let second = store.begin_run(&new_run("2")).unwrap();
    store
        .finish_run(
            second,
            &result_writing(vec![file(b"/proj/out/model.bin", Some('b'), Some(1))]),
        )
        .unwrap();
    let third = store.begin_run(&new_run("3")).unwrap();
    store
        .finish_run(
            third,
            &result_writing(vec![file(b"/proj/other", Some('c'), Some(1))]),
        )
        .unwrap();

    assert_eq!(store.resolve_ref("latest", cwd).unwrap(), third);
    assert_eq!(store.resolve_ref("", cwd).unwrap(), third);
    assert_eq!(store.resolve_ref("@1", cwd).unwrap(), first);
    assert_eq!(store.resolve_ref("@3", cwd).unwrap(), third);
    assert_eq!(store.resolve_ref(&second.to_string(), cwd).unwrap(), second);
    // The newest writer wins, however the path is spelt.
    assert_eq!(store.resolve_ref("out/model.bin", cwd).unwrap(), second);
    assert_eq!(
        store.resolve_ref("./out/../out//model.bin", cwd).unwrap(),
        second
    );
    assert_eq!(
        store
            .resolve_ref("/proj/out/model.bin", Path::new("/"))
            .unwrap(),
        second
    );
    assert_eq!(store.resolve_ref("../proj/other", cwd).unwrap(), third);

    for bad in ["@0", "@", "@x", "@-1", "@+1", "99999999999999999999999"] {
        match store.resolve_ref(bad, cwd) {
            Err(StoreError::BadRef(msg)) => assert!(msg.contains(bad), "{msg}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    for (missing, needle) in [("@4", "@4"), ("42", "42"), ("nope.txt", "/proj/nope.txt")] {
        match store.resolve_ref(missing, cwd) {
            Err(e @ StoreError::NoSuchRun(_)) => {
                assert!(e.to_string().contains(needle), "{e}")
            }
            other => panic!("{missing}: {other:?}"),
        }
    }
    assert!(matches!(store.run(42), Err(StoreError::NoSuchRun(_))));
}

#[test]
fn runs_are_newest_first_with_positions() {
    let store = Store::open_in_memory().unwrap();
    let ids: Vec<RunId> = (0..5)
        .map(|i| store.begin_run(&new_run(&i.to_string())).unwrap())
        .collect();
    let runs = store.runs(Some(2)).unwrap();
    assert_eq!(
        runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    assert_eq!(runs.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 4]);
    assert_eq!(store.runs(None).unwrap().len(), 5);
    assert_eq!(store.run(ids[1]).unwrap().seq, 2);
}

#[test]
fn unfinished_run_is_visible_and_incomplete() {
    let store = Store::open_in_memory().unwrap();
    let done = store.begin_run(&new_run("done")).unwrap();
    store.finish_run(done, &result_writing(vec![])).unwrap();
    let killed = store.begin_run(&new_run("killed")).unwrap();

    let run = store.run(killed).unwrap();
    assert!(!run.finished);
    assert!(!run.complete);
    assert_eq!(run.duration_ms, None);
    assert_eq!(run.exit_code, None);
    let unfinished = store.unfinished_runs().unwrap();
    assert_eq!(
        unfinished.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![killed]
    );
    assert_eq!(unfinished[0].seq, 2);
    assert_eq!(store.resolve_ref("latest", Path::new("/")).unwrap(), killed);

    // Finishing it later (crash recovery) takes it off the list.
    store
        .finish_run(
            killed,
            &RunResult {
                warnings: vec!["roar was killed".into()],
                ..RunResult::default()
            },
        )
        .unwrap();
    assert!(store.unfinished_runs().unwrap().is_empty());
    assert!(matches!(
        store.finish_run(77, &RunResult::default()),
        Err(StoreError::NoSuchRun(_))
    ));
    assert!(matches!(
        store.add_warning(77, "x"),
        Err(StoreError::NoSuchRun(_))
    ));
}

#[test]
fn hash_cache_matches_all_fields() {
    let store = Store::open_in_memory().unwrap();
    let key = FileKey {
        dev: u64::MAX,
        ino: 12,
        size: 100,
        mtime_ns: -5,
    };
    assert_eq!(store.hash_cache_get(&key).unwrap(), None);
    store.hash_cache_put(&[(key, hash('a'))]).unwrap();
    assert_eq!(store.hash_cache_get(&key).unwrap(), Some(hash('a')));
    assert_eq!(
        store
            .hash_cache_get(&FileKey { mtime_ns: 6, ..key })
            .unwrap(),
        None
    );
    assert_eq!(
        store.hash_cache_get(&FileKey { size: 101, ..key }).unwrap(),
        None
    );

    // A rewrite replaces the row for that (dev, ino); the old version no longer hits.
    let newer = FileKey {
        mtime_ns: 7,
        size: 3,
        ..key
    };
    store.hash_cache_put(&[(newer, hash('b'))]).unwrap();
    assert_eq!(store.hash_cache_get(&newer).unwrap(), Some(hash('b')));
    assert_eq!(store.hash_cache_get(&key).unwrap(), None);
    let rows: i64 = store
        .conn
        .query_row("SELECT count(*) FROM hash_cache", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

#[test]
fn file_store_reopens_and_is_marked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roar.db");
    let id = {
        let store = Store::open(&path).unwrap();
        let id = store.begin_run(&new_run("x")).unwrap();
        store
            .finish_run(id, &result_writing(vec![file(b"/p/o", Some('1'), Some(1))]))
            .unwrap();
        id
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.run(id).unwrap().outputs.len(), 1);
    let (app, version, mode): (i64, i64, String) = store
        .conn
        .query_row(
            "SELECT application_id, user_version, journal_mode \
             FROM pragma_application_id, pragma_user_version, pragma_journal_mode",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (app, version, mode.as_str()),
        (APPLICATION_ID, SCHEMA_VERSION, "wal")
    );
}

/// Opening a store that is up to date takes no write lock: a run starting while another
/// roar holds the write lock (finishing its run) opens at once instead of queueing.
#[test]
fn an_up_to_date_store_opens_while_another_writer_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roar.db");
    drop(Store::open(&path).unwrap());
    let writer = Connection::open(&path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let store = Store::open(&path).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "open waited {:?} for the writer",
        started.elapsed()
    );
    writer.execute_batch("COMMIT").unwrap();
    assert_eq!(store.runs(None).unwrap().len(), 0);
    let fk: bool = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert!(fk, "the connection's own settings are still made");
}

/// A run of many files leaves a large WAL; trimming empties it (so the next roar has no
/// frames to rebuild its index from) and leaves small ones alone.
#[test]
fn a_large_wal_is_trimmed_and_a_small_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roar.db");
    let wal = dir.path().join("roar.db-wal");
    let store = Store::open(&path).unwrap();
    let id = store.begin_run(&new_run("small")).unwrap();
    store
        .finish_run(id, &result_writing(vec![file(b"/p/o", Some('1'), Some(1))]))
        .unwrap();
    store.trim_wal();
    let small = std::fs::metadata(&wal).unwrap().len();
    assert!(small > 0, "a small WAL is kept as it is");
    let outputs = (0..20_000)
        .map(|i| FileRecord {
            path: format!("/p/big/{i:05}-with-a-longer-name-to-fill-pages").into_bytes(),
            hash: Some(format!("{i:064x}")),
            size: Some(i),
            filtered: false,
        })
        .collect();
    let id = store.begin_run(&new_run("big")).unwrap();
    store.finish_run(id, &result_writing(outputs)).unwrap();
    assert!(std::fs::metadata(&wal).unwrap().len() > 4 << 20);
    store.trim_wal();
    assert_eq!(std::fs::metadata(&wal).unwrap().len(), 0);
    drop(store);
    let again = Store::open(&path).unwrap();
    assert_eq!(again.run(id).unwrap().outputs.len(), 20_000);
}

#[test]
fn missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/roar.db");
    assert!(matches!(Store::open(&path), Err(StoreError::Io(_))));
    assert!(!dir.path().join("no").exists());
}

#[test]
fn garbage_file_is_corrupt_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roar.db");
    // Deterministic pseudo-random bytes (xorshift), several pages' worth.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    for _ in 0..2 {
        match Store::open(&path) {
            Err(e @ StoreError::Corrupt { .. }) => {
                assert!(e.to_string().contains(&path.display().to_string()), "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, vec!["roar.db"]);
}

#[test]
fn foreign_sqlite_db_is_not_ours_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('soup');",
        )
        .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    assert!(matches!(
        Store::open(&path),
        Err(StoreError::NotARoarStore { .. })
    ));
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Empty, but claimed by another application.
    let claimed = dir.path().join("claimed.db");
    Connection::open(&claimed)
        .unwrap()
        .pragma_update(None, "application_id", 1234)
        .unwrap();
    assert!(matches!(
        Store::open(&claimed),
        Err(StoreError::NotARoarStore { .. })
    ));
}

#[test]
fn newer_schema_is_too_new() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roar.db");
    drop(Store::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    match Store::open(&path) {
        Err(StoreError::TooNew { version, .. }) => assert_eq!(version, SCHEMA_VERSION + 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn concurrent_writers_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roar.db");
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        for t in 0..2u8 {
            let (path, barrier) = (&path, &barrier);
            s.spawn(move || {
                barrier.wait();
                // Both threads also race to create and migrate the fresh store.
                let store = Store::open(path).unwrap();
                for i in 0..50u8 {
                    let id = store.begin_run(&new_run(&format!("{t}-{i}"))).unwrap();
                    let out = file(format!("/p/{t}/{i}").as_bytes(), Some('f'), Some(1));
                    store.finish_run(id, &result_writing(vec![out])).unwrap();
                }
            });
        }
    });
    let store = Store::open(&path).unwrap();
    let runs = store.runs(None).unwrap();
    assert_eq!(runs.len(), 100);
    assert!(runs.iter().all(|r| r.finished && r.outputs.len() == 1));
    assert_eq!(runs[0].seq, 100);
    assert_eq!(runs[99].seq, 1);
}

#[test]
fn ingesting_a_tree_twice_adds_nothing() {
    let store = Store::open_in_memory().unwrap();
    let new = new_run("tree");
    let result = result_writing(vec![file(b"/p/o", Some('2'), Some(2))]);
    assert!(!store.is_ingested("1.2.3.rwt").unwrap());
    let first = store
        .ingest_tree("1.2.3.rwt", 4, 10, Some((&new, &result)))
        .unwrap();
    let id = first.flatten().expect("a run was recorded");
    assert!(store.run(id).unwrap().finished);
    assert!(store.is_ingested("1.2.3.rwt").unwrap());
    assert_eq!(
        store
            .ingest_tree("1.2.3.rwt", 4, 11, Some((&new, &result)))
            .unwrap(),
        None
    );
    assert_eq!(store.runs(None).unwrap().len(), 1);
    // A tree skipped on purpose is remembered too, without a run.
    assert_eq!(
        store.ingest_tree("9.9.9.rwt", 1, 12, None).unwrap(),
        Some(None)
    );
    assert!(store.is_ingested("9.9.9.rwt").unwrap());
}

#[test]
fn openjd_context_round_trips() {
    let store = Store::open_in_memory().unwrap();
    let ctx = OpenJdContext {
        session_id: Some("abc123".into()),
        working_dir: Some(b"/tmp/sess/abc123".to_vec()),
        step: Some("Render".into()),
        environments: vec!["Provenance".into(), "Conda".into()],
    };
    let id = store
        .begin_run(&NewRun {
            openjd: Some(ctx.clone()),
            ..new_run("x")
        })
        .unwrap();
    assert_eq!(store.run(id).unwrap().openjd, Some(ctx));
    let plain = store.begin_run(&new_run("y")).unwrap();
    assert_eq!(store.run(plain).unwrap().openjd, None);
}

/// A store written before `roar_migrations` existed (user_version 1, no table) gets the newer
/// migrations, and a store missing a lower-numbered migration (merged from another branch)
/// gets it applied later without touching the others.
#[test]
fn migrations_tolerate_legacy_stores_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("roar.db");
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0].1).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let store = Store::open(&path).unwrap();
    let versions: Vec<i64> = store
        .conn
        .prepare("SELECT version FROM roar_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let known: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
    assert_eq!(versions, known);
    assert!(!store.is_ingested("x").unwrap());
    drop(store);
    // Opening again changes nothing.
    let store = Store::open(&path).unwrap();
    let version: i64 = store
        .conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// Finishing a run again replaces its processes and their argv, with foreign keys (and so
/// ON DELETE CASCADE) off while it does, and leaves them on afterwards.
#[test]
fn finishing_again_replaces_processes_and_their_argv() {
    let store = Store::open_in_memory().unwrap();
    let id = store.begin_run(&new_run("twice")).unwrap();
    let proc_with = |pid: u32, argv: &[&[u8]]| ProcessRecord {
        pid,
        ppid: 1,
        exe: b"/bin/sh".to_vec(),
        argv: argv.iter().map(|a| a.to_vec()).collect(),
        cwd: b"/".to_vec(),
        exit_code: Some(0),
        signal: None,
        started_ns: 1,
    };
    let first = RunResult {
        processes: vec![
            proc_with(10, &[b"sh", b"-c", b"one"]),
            proc_with(11, &[b"a"]),
        ],
        ..result_writing(vec![file(b"/proj/out", Some('1'), Some(1))])
    };
    store.finish_run(id, &first).unwrap();
    let second = RunResult {
        processes: vec![proc_with(20, &[b"sh", b"two"])],
        ..result_writing(vec![file(b"/proj/out", Some('2'), Some(2))])
    };
    store.finish_run(id, &second).unwrap();
    let run = store.run(id).unwrap();
    assert_eq!(run.processes, second.processes);
    let argv_rows: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM process_argv", [], |r| r.get(0))
        .unwrap();
    assert_eq!(argv_rows, 2, "the first finish's argv rows are gone");
    let fk: bool = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert!(fk, "foreign keys are back on after finishing");
}
