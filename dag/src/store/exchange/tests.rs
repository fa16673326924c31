use std::collections::HashMap;

use crate::status::{self, Now};
use crate::{FileRecord, NewRun, RunResult, Start, Store, StoreError};

fn h(c: char) -> String {
    format!("blake3:{}", c.to_string().repeat(64))
}

fn f(path: &str, c: char) -> FileRecord {
    FileRecord {
        path: path.as_bytes().to_vec(),
        hash: Some(h(c)),
        size: Some(1),
        filtered: false,
    }
}

fn machine(host: &str) -> Store {
    let mut s = Store::open_in_memory().unwrap();
    s.set_host(Some(host.into()));
    s
}

fn record(
    store: &Store,
    cmd: &str,
    started_at_ms: i64,
    inputs: Vec<FileRecord>,
    outputs: Vec<FileRecord>,
) -> i64 {
    let id = store
        .begin_run(&NewRun {
            command: vec![cmd.as_bytes().to_vec()],
            cwd: b"/shared".to_vec(),
            backend: "preload".into(),
            started_at_ms,
            env: vec![("PATH".into(), Some("/bin".into())), ("TOKEN".into(), None)],
            ..NewRun::default()
        })
        .unwrap();
    store.add_warning(id, "a warning").unwrap();
    store
        .finish_run(
            id,
            &RunResult {
                exit_code: Some(0),
                duration_ms: 5,
                complete: true,
                inputs,
                outputs,
                ..RunResult::default()
            },
        )
        .unwrap();
    id
}

/// Everything `from` recorded, as a push would read it.
fn all_local(from: &Store) -> Vec<crate::Run> {
    from.finished_runs_after(0, 1000)
        .unwrap()
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

#[test]
fn stores_and_runs_have_identities() {
    let a = machine("a");
    let b = machine("b");
    assert_ne!(a.store_id().unwrap(), b.store_id().unwrap());
    let r1 = record(&a, "one", 1_000, vec![], vec![]);
    let r2 = record(&a, "two", 1_000, vec![], vec![]);
    let (r1, r2) = (a.run(r1).unwrap(), a.run(r2).unwrap());
    assert_ne!(r1.uuid, r2.uuid);
    assert_eq!(r1.origin.host.as_deref(), Some("a"));
    // Same start time: the key still follows id order.
    assert_eq!(r1.order_key, 1_000_000);
    assert_eq!(r2.order_key, 1_000_001);
}

#[test]
fn pulled_runs_round_trip_are_read_only_and_idempotent() {
    let a = machine("a");
    let b = machine("b");
    record(
        &a,
        "make",
        1_000,
        vec![f("/shared/in", 'i')],
        vec![f("/shared/out", 'o')],
    );
    let runs = all_local(&a);
    let done = b.insert_pulled(&runs, Some(("remote-1", 7, 3))).unwrap();
    assert_eq!((done.runs, done.already_present), (1, 0));
    assert_eq!(b.remote_mark("remote-1").unwrap().pulled_tx, 7);

    let got = b
        .run(b.resolve_ref("latest", "/".as_ref()).unwrap())
        .unwrap();
    assert!(got.pulled);
    assert!(got.same_content(&runs[0]), "{got:?}\nvs\n{:?}", runs[0]);
    assert_eq!(got.origin.store, a.store_id().unwrap());

    // The same run again: nothing changes; an older mark does not move the mark back.
    let done = b.insert_pulled(&runs, Some(("remote-1", 5, 1))).unwrap();
    assert_eq!((done.runs, done.already_present), (0, 1));
    assert_eq!(b.remote_mark("remote-1").unwrap().pulled_tx, 7);
    assert_eq!(b.runs(None).unwrap().len(), 1);

    // Read-only here.
    for e in [
        b.finish_run(got.id, &RunResult::default()).unwrap_err(),
        b.add_warning(got.id, "x").unwrap_err(),
        b.set_git(got.id, &crate::GitInfo::default()).unwrap_err(),
    ] {
        assert!(matches!(e, StoreError::ReadOnlyRun { .. }), "{e}");
    }
    // Pulled runs are not pushed again from here.
    assert!(b.pending_push(0, 100).unwrap().is_empty());

    // Same uuid, other content: an error naming both, and nothing of the batch written.
    let mut other = runs[0].clone();
    other.exit_code = Some(1);
    let c_run = {
        let c = machine("c");
        record(&c, "unrelated", 3_000, vec![], vec![]);
        all_local(&c).remove(0)
    };
    let e = b.insert_pulled(&[c_run, other], None).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Conflict { .. }), "{msg}");
    assert!(
        msg.contains(&runs[0].uuid) && msg.contains("this store's run") && msg.contains("incoming"),
        "{msg}"
    );
    assert_eq!(b.runs(None).unwrap().len(), 1, "the batch was rolled back");
}

#[test]
fn lineage_follows_content_into_a_pulled_older_run() {
    // Worker A renders frames at t=1s; worker B reads them at t=2s and is recorded first in
    // B's store; A's run arrives in B's store later, with a higher local id.
    let a = machine("a");
    let b = machine("b");
    record(
        &a,
        "render",
        1_000,
        vec![f("/shared/scene", 's')],
        vec![f("/shared/frame", 'f')],
    );
    let comp = record(
        &b,
        "composite",
        2_000,
        vec![f("/shared/frame", 'f')],
        vec![f("/shared/movie", 'm')],
    );
    b.insert_pulled(&all_local(&a), None).unwrap();
    let render = b
        .runs(None)
        .unwrap()
        .into_iter()
        .find(|r| r.pulled)
        .unwrap();
    assert!(render.id > comp);
    // By start time, B's own later run is still the latest.
    assert_eq!(b.resolve_ref("latest", "/".as_ref()).unwrap(), comp);

    let movie = b.version_of_hash(&h('m')).unwrap().unwrap();
    let lin = b
        .lineage(&Start::Artifact {
            version: movie,
            path: b"/shared/movie".to_vec(),
        })
        .unwrap();
    assert_eq!(lin.runs_in_order(), vec![render.id, comp], "producer first");
    let sources: Vec<_> = lin
        .sources()
        .into_iter()
        .map(|n| lin.graph[n].clone())
        .collect();
    assert_eq!(sources.len(), 1);
    assert!(matches!(&sources[0], crate::Node::Artifact { path, .. } if path == b"/shared/scene"));

    // Status sees both: editing the scene makes both stale.
    let heads = b.heads().unwrap();
    let ids: Vec<i64> = heads.iter().map(|h| h.run_id).collect();
    let inputs = b.inputs_of(&ids).unwrap();
    let now: HashMap<Vec<u8>, Now> = [
        (b"/shared/scene".to_vec(), Now::Content(h('S'))),
        (b"/shared/frame".to_vec(), Now::Content(h('f'))),
        (b"/shared/movie".to_vec(), Now::Content(h('m'))),
    ]
    .into();
    let report = status::evaluate(&heads, &inputs, &now);
    let stale: Vec<i64> = report.stale().map(|(id, _)| *id).collect();
    assert_eq!(stale.len(), 2, "{report:?}");
}

#[test]
fn a_pulled_older_run_does_not_take_a_newer_local_head() {
    let a = machine("a");
    let b = machine("b");
    record(&a, "old", 1_000, vec![], vec![f("/shared/out", 'o')]);
    record(&a, "newest", 9_000, vec![], vec![f("/shared/other", 'n')]);
    let local = record(&b, "mine", 5_000, vec![], vec![f("/shared/out", 'l')]);
    b.insert_pulled(&all_local(&a), None).unwrap();
    let heads = b.heads().unwrap();
    let out = heads.iter().find(|h| h.path == b"/shared/out").unwrap();
    assert_eq!(out.run_id, local, "the local run started later");
    assert_eq!(b.resolve_ref("/shared/out", "/".as_ref()).unwrap(), local);

    // A pulled run that started later does take the head.
    let c = machine("c");
    record(&c, "later", 7_000, vec![], vec![f("/shared/out", 'c')]);
    b.insert_pulled(&all_local(&c), None).unwrap();
    let heads = b.heads().unwrap();
    let out = heads.iter().find(|h| h.path == b"/shared/out").unwrap();
    assert_eq!(b.run(out.run_id).unwrap().origin.host.as_deref(), Some("c"));
    assert_eq!(out.version.hash.as_deref(), Some(h('c').as_str()));
}

#[test]
fn push_pending_follows_finishing_order_and_the_mark_only_moves_forward() {
    let a = machine("a");
    let first = a
        .begin_run(&NewRun {
            started_at_ms: 1,
            ..NewRun::default()
        })
        .unwrap();
    let second = record(&a, "second", 2, vec![], vec![]);
    a.finish_run(first, &RunResult::default()).unwrap();
    let pending = a.pending_push(0, 10).unwrap();
    let ids: Vec<i64> = pending.iter().map(|p| p.id).collect();
    assert_eq!(ids, vec![second, first], "in the order they finished");
    a.set_pushed("r", pending[0].finished_seq).unwrap();
    let mark = a.remote_mark("r").unwrap().pushed_seq;
    assert_eq!(a.pending_push(mark, 10).unwrap().len(), 1);
    a.set_pushed("r", 0).unwrap();
    assert_eq!(a.remote_mark("r").unwrap().pushed_seq, mark);
    // Unfinished runs are never pending.
    a.begin_run(&NewRun::default()).unwrap();
    assert_eq!(a.pending_push(0, 10).unwrap().len(), 2);
}

#[test]
fn migration_gives_existing_runs_ordered_identities() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("roar.db");
    {
        let store = Store::open(&db).unwrap();
        for (i, t) in [5_000i64, 3_000, 3_000].into_iter().enumerate() {
            record(&store, &format!("r{i}"), t, vec![], vec![]);
        }
        // Pretend the store predates migration 10.
        store
            .conn
            .execute_batch(
                "DROP INDEX runs_time_order; DROP TABLE remote_marks; DROP TABLE store_meta; DROP INDEX runs_uuid; \
                 DROP INDEX runs_local_order; DROP INDEX runs_finished_seq; \
                 ALTER TABLE runs DROP COLUMN uuid; ALTER TABLE runs DROP COLUMN origin_store; \
                 ALTER TABLE runs DROP COLUMN origin_host; ALTER TABLE runs DROP COLUMN order_key; \
                 ALTER TABLE runs DROP COLUMN finished_seq; \
                 DELETE FROM roar_migrations WHERE version IN (10, 11);",
            )
            .unwrap();
    }
    let store = Store::open(&db).unwrap();
    let mut runs = store.runs(None).unwrap();
    runs.reverse();
    let keys: Vec<i64> = runs.iter().map(|r| r.order_key).collect();
    assert_eq!(
        keys,
        vec![5_000_000, 5_000_001, 5_000_002],
        "increasing in id order"
    );
    for r in &runs {
        assert_eq!(&r.uuid[14..15], "7");
        let ms = i64::from_str_radix(&r.uuid.replace('-', "")[..12], 16).unwrap();
        assert_eq!(ms, r.started_at_ms, "the uuid carries the start time");
        assert!(r.origin.host.is_none() && !r.pulled);
    }
    // Runs with the same start sort by id.
    assert!(runs[1].uuid < runs[2].uuid);
    assert_eq!(store.pending_push(0, 10).unwrap().len(), 3);
    // A new run keeps increasing.
    let id = record(&store, "new", 1, vec![], vec![]);
    assert_eq!(store.run(id).unwrap().order_key, 5_000_003);
}
