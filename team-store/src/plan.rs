//! What to send and what to fetch, decided before anything moves: pure functions from what
//! each side has to a list of batches, each with the mark to record once it is done.

use std::collections::HashSet;

use dag::{Pending, RunId};

/// How big one batch (one transaction) may get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Runs per batch.
    pub runs: usize,
    /// Input, output and process rows per batch; a single bigger run is a batch of its own.
    pub rows: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            runs: 500,
            rows: 20_000,
        }
    }
}

/// One push transaction: these local runs; after its commit the push mark moves to `last_seq`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushBatch {
    pub ids: Vec<RunId>,
    pub last_seq: i64,
    pub rows: u64,
}

/// Splits the pending runs (in finishing order) into batches within `limits`.
pub fn plan_push(pending: &[Pending], limits: Limits) -> Vec<PushBatch> {
    let max_runs = limits.runs.max(1);
    let mut batches: Vec<PushBatch> = Vec::new();
    for p in pending {
        let fits = batches
            .last()
            .is_some_and(|b| b.ids.len() < max_runs && b.rows + p.rows <= limits.rows.max(1));
        if !fits {
            batches.push(PushBatch {
                ids: Vec::new(),
                last_seq: p.finished_seq,
                rows: 0,
            });
        }
        let b = batches.last_mut().expect("just pushed");
        b.ids.push(p.id);
        b.last_seq = p.finished_seq;
        b.rows += p.rows;
    }
    batches
}

/// A run as the team store lists it for pulling: where it sits (inserting transaction, row
/// sequence), who it is and who recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRun {
    pub tx: i64,
    pub seq: i64,
    pub uuid: String,
    pub origin_store: String,
}

/// One pull transaction: fetch these uuids, insert them, and move the pull mark to `mark` in
/// the same local transaction. `skipped` counts runs passed over (recorded here, or already
/// pulled), which the mark moves past too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullBatch {
    pub uuids: Vec<String>,
    pub mark: (i64, i64),
    pub skipped: u64,
}

/// Groups the remote's runs after the local mark (in `(tx, seq)` order) into batches of at most
/// `limits.runs` runs to fetch, leaving out this store's own runs and those it already has.
pub fn plan_pull(
    remote: &[RemoteRun],
    own_store: &str,
    known: &HashSet<String>,
    limits: Limits,
) -> Vec<PullBatch> {
    let max_runs = limits.runs.max(1);
    let mut batches: Vec<PullBatch> = Vec::new();
    let mut current: Option<PullBatch> = None;
    for r in remote {
        let b = current.get_or_insert_with(|| PullBatch {
            uuids: Vec::new(),
            mark: (r.tx, r.seq),
            skipped: 0,
        });
        b.mark = (r.tx, r.seq);
        if r.origin_store == own_store || known.contains(&r.uuid) {
            b.skipped += 1;
        } else {
            b.uuids.push(r.uuid.clone());
        }
        if b.uuids.len() >= max_runs {
            batches.extend(current.take());
        }
    }
    batches.extend(current);
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(seq: i64, id: RunId, rows: u64) -> Pending {
        Pending {
            finished_seq: seq,
            id,
            uuid: format!("u{id}"),
            rows,
        }
    }

    #[test]
    fn push_batches_keep_order_and_limits() {
        let p: Vec<Pending> = (1..=7).map(|i| pending(i + 10, i, 10)).collect();
        let b = plan_push(
            &p,
            Limits {
                runs: 3,
                rows: 1000,
            },
        );
        assert_eq!(b.len(), 3);
        assert_eq!(b[0].ids, vec![1, 2, 3]);
        assert_eq!(b[0].last_seq, 13);
        assert_eq!(b[2].ids, vec![7]);
        assert_eq!(b[2].last_seq, 17);
        // Rows limit: a run bigger than the limit goes alone.
        let p = vec![
            pending(1, 1, 5),
            pending(2, 2, 50),
            pending(3, 3, 5),
            pending(4, 4, 4),
        ];
        let b = plan_push(&p, Limits { runs: 10, rows: 10 });
        let ids: Vec<Vec<RunId>> = b.iter().map(|b| b.ids.clone()).collect();
        assert_eq!(ids, vec![vec![1], vec![2], vec![3, 4]]);
        assert!(plan_push(&[], Limits::default()).is_empty());
    }

    #[test]
    fn push_batches_follow_finishing_order_not_ids() {
        let p = vec![pending(1, 9, 1), pending(2, 4, 1)];
        let b = plan_push(&p, Limits { runs: 1, rows: 10 });
        assert_eq!(b[0].ids, vec![9]);
        assert_eq!(b[1].ids, vec![4]);
        assert_eq!(b[1].last_seq, 2);
    }

    fn rr(tx: i64, seq: i64, uuid: &str, origin: &str) -> RemoteRun {
        RemoteRun {
            tx,
            seq,
            uuid: uuid.into(),
            origin_store: origin.into(),
        }
    }

    #[test]
    fn pull_skips_own_and_known_runs_but_moves_past_them() {
        let remote = vec![
            rr(5, 1, "a1", "A"),
            rr(5, 2, "me1", "ME"),
            rr(6, 3, "a2", "A"),
            rr(7, 4, "b1", "B"),
            rr(7, 5, "me2", "ME"),
        ];
        let known: HashSet<String> = ["a2".to_string()].into();
        let b = plan_pull(&remote, "ME", &known, Limits { runs: 1, rows: 0 });
        assert_eq!(
            b,
            vec![
                PullBatch {
                    uuids: vec!["a1".into()],
                    mark: (5, 1),
                    skipped: 0
                },
                PullBatch {
                    uuids: vec!["b1".into()],
                    mark: (7, 4),
                    skipped: 2
                },
                PullBatch {
                    uuids: vec![],
                    mark: (7, 5),
                    skipped: 1
                },
            ]
        );
        assert!(plan_pull(&[], "ME", &known, Limits::default()).is_empty());
        let b = plan_pull(&remote, "ME", &HashSet::new(), Limits::default());
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].uuids, vec!["a1", "a2", "b1"]);
        assert_eq!(b[0].mark, (7, 5));
    }
}
