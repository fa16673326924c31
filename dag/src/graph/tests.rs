use std::collections::HashMap;
use std::path::Path;

use crate::status::{self, Now, Reason};
use crate::{FileRecord, NewRun, RunResult, Start, Store};

use super::*;

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

fn record(store: &Store, cmd: &str, inputs: Vec<FileRecord>, outputs: Vec<FileRecord>) -> RunId {
    let id = store
        .begin_run(&NewRun {
            command: vec![cmd.as_bytes().to_vec()],
            cwd: b"/p".to_vec(),
            backend: "preload".into(),
            ..NewRun::default()
        })
        .unwrap();
    store
        .finish_run(
            id,
            &RunResult {
                exit_code: Some(0),
                complete: true,
                inputs,
                outputs,
                ..RunResult::default()
            },
        )
        .unwrap();
    id
}

/// prepare: raw(r) -> clean(c); train: clean(c) + train.py(t) -> model(m);
/// train.py edited (u), train again -> model(n); evaluate: model(n) -> metrics(x).
fn pipeline(store: &Store) -> [RunId; 4] {
    let prep = record(
        store,
        "prepare",
        vec![f("/p/raw", 'r')],
        vec![f("/p/clean", 'c')],
    );
    let train1 = record(
        store,
        "train",
        vec![f("/p/clean", 'c'), f("/p/train.py", 't')],
        vec![f("/p/model", 'm')],
    );
    let train2 = record(
        store,
        "train",
        vec![f("/p/clean", 'c'), f("/p/train.py", 'u')],
        vec![f("/p/model", 'n')],
    );
    let eval = record(
        store,
        "evaluate",
        vec![f("/p/model", 'n')],
        vec![f("/p/metrics", 'x')],
    );
    [prep, train1, train2, eval]
}

#[test]
fn lineage_follows_content_not_names() {
    let store = Store::open_in_memory().unwrap();
    let [prep, _train1, train2, eval] = pipeline(&store);
    let v = store.version_of_hash(&h('x')).unwrap().unwrap();
    let lin = store
        .lineage(&Start::Artifact {
            version: v,
            path: b"/p/metrics".to_vec(),
        })
        .unwrap();
    // train1 wrote a model of the same name, but evaluate read train2's bytes.
    assert_eq!(lin.runs_in_order(), vec![prep, train2, eval]);
    let sources: Vec<&[u8]> = lin
        .sources()
        .into_iter()
        .map(|n| node_path(&lin.graph[n]))
        .collect();
    assert_eq!(sources, vec![&b"/p/raw"[..], b"/p/train.py"]);
    assert!(petgraph::algo::toposort(&lin.graph, None).is_ok());
}

#[test]
fn heads_keep_only_the_newest_writer() {
    let store = Store::open_in_memory().unwrap();
    let [prep, _, train2, eval] = pipeline(&store);
    let mut heads: Vec<(String, RunId)> = store
        .heads()
        .unwrap()
        .into_iter()
        .map(|l| (String::from_utf8(l.path).unwrap(), l.run_id))
        .collect();
    heads.sort();
    assert_eq!(
        heads,
        vec![
            ("/p/clean".into(), prep),
            ("/p/metrics".into(), eval),
            ("/p/model".into(), train2),
        ]
    );
}

#[test]
fn status_propagates_and_names_reasons() {
    let store = Store::open_in_memory().unwrap();
    let [prep, _, train2, eval] = pipeline(&store);
    let heads = store.heads().unwrap();
    let mut runs: Vec<RunId> = heads.iter().map(|l| l.run_id).collect();
    runs.sort();
    runs.dedup();
    let inputs = store.inputs_of(&runs).unwrap();
    let mut now: HashMap<Vec<u8>, Now> = [
        ("/p/raw", 'r'),
        ("/p/clean", 'c'),
        ("/p/train.py", 'u'),
        ("/p/model", 'n'),
        ("/p/metrics", 'x'),
    ]
    .into_iter()
    .map(|(p, c)| (p.as_bytes().to_vec(), Now::Content(h(c))))
    .collect();
    let report = status::evaluate(&heads, &inputs, &now);
    assert_eq!(report.stale().count(), 0, "{report:?}");

    // Edit the raw data: prepare is stale, and through it train2 and evaluate.
    now.insert(b"/p/raw".to_vec(), Now::Content(h('s')));
    let report = status::evaluate(&heads, &inputs, &now);
    let stale: Vec<RunId> = report.stale().map(|(id, _)| *id).collect();
    assert_eq!(stale, vec![prep, train2, eval]);
    assert_eq!(
        report.runs.iter().find(|r| r.0 == eval).unwrap().1,
        vec![Reason::Upstream {
            path: b"/p/model".to_vec(),
            run: train2
        }]
    );

    // A deleted output: listed, and its reader is stale.
    now.insert(b"/p/raw".to_vec(), Now::Content(h('r')));
    now.insert(b"/p/model".to_vec(), Now::Missing);
    let report = status::evaluate(&heads, &inputs, &now);
    let stale: Vec<RunId> = report.stale().map(|(id, _)| *id).collect();
    assert_eq!(stale, vec![eval]);
    assert_eq!(report.outputs.len(), 1);
    assert_eq!(report.outputs[0].now, None);
}

#[test]
fn reproduced_input_is_named() {
    let store = Store::open_in_memory().unwrap();
    record(
        &store,
        "prepare",
        vec![f("/p/raw", 'r')],
        vec![f("/p/clean", 'c')],
    );
    let train = record(
        &store,
        "train",
        vec![f("/p/clean", 'c')],
        vec![f("/p/model", 'm')],
    );
    let prep2 = record(
        &store,
        "prepare",
        vec![f("/p/raw", 's')],
        vec![f("/p/clean", 'd')],
    );
    let heads = store.heads().unwrap();
    let inputs = store.inputs_of(&[train, prep2]).unwrap();
    let now: HashMap<Vec<u8>, Now> = [("/p/raw", 's'), ("/p/clean", 'd'), ("/p/model", 'm')]
        .into_iter()
        .map(|(p, c)| (p.as_bytes().to_vec(), Now::Content(h(c))))
        .collect();
    let report = status::evaluate(&heads, &inputs, &now);
    let stale: Vec<&(RunId, Vec<Reason>)> = report.stale().collect();
    assert_eq!(
        stale,
        vec![&(
            train,
            vec![Reason::Reproduced {
                path: b"/p/clean".to_vec(),
                by: prep2
            }]
        )]
    );
}

#[test]
fn migration_backfills_heads() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("roar.db");
    {
        let store = Store::open(&db).unwrap();
        pipeline(&store);
        // Pretend the store predates migration 2 (a store made by a roar
        // that had migrations 1 and 3 only).
        store
            .conn
            .execute_batch(
                "DROP TABLE path_heads; DROP INDEX runs_seq; ALTER TABLE runs DROP COLUMN seq; \
                 DELETE FROM roar_migrations WHERE version = 2;",
            )
            .unwrap();
    }
    let store = Store::open(&db).unwrap();
    assert_eq!(store.heads().unwrap().len(), 3);
    let seqs: Vec<i64> = store.runs(None).unwrap().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![4, 3, 2, 1]);
    assert_eq!(store.resolve_ref("@2", Path::new("/")).unwrap(), 2);
    let id = store.begin_run(&NewRun::default()).unwrap();
    assert_eq!(store.run(id).unwrap().seq, 5);
}

#[test]
fn a_run_that_rewrites_its_input_is_not_stale_because_of_it() {
    let store = Store::open_in_memory().unwrap();
    record(&store, "init", vec![], vec![f("/p/ckpt", 'a')]);
    let step = record(
        &store,
        "step",
        vec![f("/p/ckpt", 'a')],
        vec![f("/p/ckpt", 'b')],
    );
    let heads = store.heads().unwrap();
    let inputs = store.inputs_of(&[step]).unwrap();
    let mut now: HashMap<Vec<u8>, Now> =
        HashMap::from([(b"/p/ckpt".to_vec(), Now::Content(h('b')))]);
    let report = status::evaluate(&heads, &inputs, &now);
    assert_eq!(report.stale().count(), 0, "{report:?}");
    // Edited by hand afterwards: now it is.
    now.insert(b"/p/ckpt".to_vec(), Now::Content(h('c')));
    let report = status::evaluate(&heads, &inputs, &now);
    assert_eq!(report.stale().count(), 1, "{report:?}");
    assert_eq!(report.outputs.len(), 1);
}

#[test]
fn artifacts_come_with_every_path_they_had() {
    let store = Store::open_in_memory().unwrap();
    pipeline(&store);
    record(
        &store,
        "cp",
        vec![f("/p/clean", 'c')],
        vec![f("/p/copy", 'c')],
    );
    let mut seen: Vec<(String, Vec<String>)> = Vec::new();
    store
        .for_each_artifact(|a| -> Result<(), StoreError> {
            let paths = a
                .paths
                .iter()
                .map(|p| String::from_utf8(p.clone()).unwrap())
                .collect();
            seen.push((a.hash, paths));
            Ok(())
        })
        .unwrap();
    assert_eq!(seen.len(), 7);
    let clean = seen.iter().find(|(hash, _)| *hash == h('c')).unwrap();
    assert_eq!(clean.1, vec!["/p/clean".to_string(), "/p/copy".to_string()]);
    let mut runs = Vec::new();
    store
        .for_each_run(|r| -> Result<(), StoreError> {
            runs.push(r.id);
            Ok(())
        })
        .unwrap();
    assert_eq!(runs, vec![1, 2, 3, 4, 5]);
}

#[test]
fn a_hidden_read_is_found_by_path_though_only_shown_reads_are_indexed() {
    let store = Store::open_in_memory().unwrap();
    let hidden = FileRecord {
        path: b"/usr/lib/libx.so".to_vec(),
        hash: None,
        size: Some(3),
        filtered: true,
    };
    let reader = record(&store, "load", vec![hidden], vec![]);
    let (link, kind) = store.latest_at_path(b"/usr/lib/libx.so").unwrap().unwrap();
    assert_eq!((link.run_id, kind), (reader, LinkKind::Input));
    let shown = record(&store, "read", vec![f("/p/data", 'd')], vec![]);
    let (link, _) = store.latest_at_path(b"/p/data").unwrap().unwrap();
    assert_eq!(link.run_id, shown);
    assert!(store.latest_at_path(b"/p/never").unwrap().is_none());
    // The shown lookup is an index search; hidden rows are not in that index.
    let plan: Vec<String> = store
        .conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT l.run_id FROM run_inputs AS l \
             WHERE l.path = ?1 AND l.filtered = 0",
        )
        .unwrap()
        .query_map([b"/p/data".to_vec()], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter()
            .any(|p| p.contains("INDEX run_inputs_path (path=?)")),
        "{plan:?}"
    );
    let indexed: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM run_inputs INDEXED BY run_inputs_path \
             WHERE path >= x'' AND filtered = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexed, 1);
}
