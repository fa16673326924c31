//! Moving runs between stores: what push reads and what pull writes. The team store itself
//! (PostgreSQL) lives in another crate; this side only knows runs, uuids and marks.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use super::{Identity, RUN_COLUMNS, fill, insert_run, run_from_row, write_result};
use crate::model::{Inserted, Pending, RemoteMark, Run, RunId};
use crate::{Store, StoreError};

impl Store {
    /// What this store has exchanged with the team store whose identity is `remote` (the
    /// remote's own UUID, never its URL). All zero for a remote never seen.
    pub fn remote_mark(&self, remote: &str) -> Result<RemoteMark, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT pushed_seq, pulled_tx, pulled_seq FROM remote_marks WHERE remote = ?1",
            )?
            .query_row([remote], |r| {
                Ok(RemoteMark {
                    pushed_seq: r.get(0)?,
                    pulled_tx: r.get(1)?,
                    pulled_seq: r.get(2)?,
                })
            })
            .optional()?
            .unwrap_or_default())
    }

    /// Finished runs recorded here with a `finished_seq` above `after`, in finishing order, at
    /// most `limit` of them: the headers a push plans with.
    pub fn pending_push(&self, after: i64, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let tx = self.read_tx()?;
        let v = tx
            .prepare_cached(
                "SELECT r.finished_seq, r.id, r.uuid, \
                   (SELECT count(*) FROM run_inputs WHERE run_id = r.id) \
                   + (SELECT count(*) FROM run_outputs WHERE run_id = r.id) \
                   + (SELECT count(*) FROM processes WHERE run_id = r.id) \
                 FROM runs AS r \
                 WHERE r.finished_seq > ?1 AND r.origin_store IS NULL AND r.finished = 1 \
                 ORDER BY r.finished_seq LIMIT ?2",
            )?
            .query_map(params![after, limit], |r| {
                Ok(Pending {
                    finished_seq: r.get(0)?,
                    id: r.get(1)?,
                    uuid: r.get(2)?,
                    rows: r.get::<_, i64>(3)? as u64,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(v)
    }

    /// Records that local runs up to `finished_seq` are on `remote`. Call it only after the
    /// remote committed them. The mark never moves back.
    pub fn set_pushed(&self, remote: &str, finished_seq: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO remote_marks (remote, pushed_seq) VALUES (?1, ?2) \
                 ON CONFLICT (remote) DO UPDATE \
                 SET pushed_seq = MAX(pushed_seq, excluded.pushed_seq)",
            )?
            .execute(params![remote, finished_seq])?;
        Ok(())
    }

    /// The given runs in full, in the order asked, from one consistent snapshot.
    pub fn runs_by_id(&self, ids: &[RunId]) -> Result<Vec<Run>, StoreError> {
        let tx = self.read_tx()?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            out.push(super::load_run(&tx, id)?);
        }
        Ok(out)
    }

    /// A page of finished local runs after `after` (a `finished_seq`), each in full with its
    /// `finished_seq`.
    pub fn finished_runs_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, Run)>, StoreError> {
        let pending = self.pending_push(after, limit)?;
        let ids: Vec<RunId> = pending.iter().map(|p| p.id).collect();
        Ok(pending
            .iter()
            .map(|p| p.finished_seq)
            .zip(self.runs_by_id(&ids)?)
            .collect())
    }

    /// Which of `uuids` this store already holds (recorded here or pulled).
    pub fn known_uuids<S: AsRef<str>>(&self, uuids: &[S]) -> Result<HashSet<String>, StoreError> {
        let tx = self.read_tx()?;
        let mut stmt = tx.prepare_cached("SELECT 1 FROM runs WHERE uuid = ?1")?;
        let mut known = HashSet::new();
        for u in uuids {
            if stmt
                .query_row([u.as_ref()], |_| Ok(()))
                .optional()?
                .is_some()
            {
                known.insert(u.as_ref().to_string());
            }
        }
        Ok(known)
    }

    /// Writes runs recorded by other stores, with all their rows, in one transaction, and moves
    /// the pull mark of `mark.0` (the remote's identity) to `(mark.1, mark.2)` in the same
    /// transaction, so a pull killed at any point leaves either all of a batch or none.
    ///
    /// A run whose uuid is already here with the same content is a no-op; with other content
    /// it is a [`StoreError::Conflict`] naming both copies, and nothing of the batch is
    /// written. Pulled runs keep their uuid, origin and order key, get local ids, and are
    /// read-only.
    pub fn insert_pulled(
        &self,
        runs: &[Run],
        mark: Option<(&str, i64, i64)>,
    ) -> Result<Inserted, StoreError> {
        self.insert_pulled_with(runs, &[], mark)
    }

    /// [`Store::insert_pulled`], with each new run's environment: `envs[i]` is `runs[i]`'s
    /// (runs beyond `envs` get none). A run already here keeps the environment it has.
    pub fn insert_pulled_with(
        &self,
        runs: &[Run],
        envs: &[crate::Environment],
        mark: Option<(&str, i64, i64)>,
    ) -> Result<Inserted, StoreError> {
        let own = self.store_id()?;
        let tx = self.write_tx()?;
        let mut done = Inserted::default();
        for (i, run) in runs.iter().enumerate() {
            if run.uuid.is_empty() || !run.finished {
                return Err(StoreError::BadForeignRun {
                    uuid: run.uuid.clone(),
                    reason: "only finished runs with a uuid can be exchanged".into(),
                });
            }
            let existing: Option<RunId> = tx
                .prepare_cached("SELECT id FROM runs WHERE uuid = ?1")?
                .query_row([&run.uuid], |r| r.get(0))
                .optional()?;
            if let Some(id) = existing {
                let mut ours = tx
                    .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
                    .query_row([id], run_from_row)?;
                fill(&tx, &mut ours)?;
                if ours.same_content(run) {
                    done.already_present += 1;
                    continue;
                }
                return Err(StoreError::Conflict {
                    uuid: run.uuid.clone(),
                    ours: format!("this store's run {id} (recorded by {})", describe(&ours)),
                    theirs: format!("the incoming copy (recorded by {})", describe(run)),
                });
            }
            if run.origin.store == own {
                return Err(StoreError::BadForeignRun {
                    uuid: run.uuid.clone(),
                    reason: format!(
                        "it names this store ({own}) as its origin but is not here; \
                         was this store restored from an older copy?"
                    ),
                });
            }
            let (new, result) = run.split();
            let ident = Identity {
                uuid: run.uuid.clone(),
                origin_store: Some(&run.origin.store),
                origin_host: run.origin.host.as_deref(),
                order_key: Some(run.order_key),
            };
            let id = insert_run(&tx, &new, &ident)?;
            write_result(&tx, id, &result)?;
            if let Some(env) = envs.get(i) {
                crate::environment::write_environment(&tx, id, env)?;
            }
            done.runs += 1;
        }
        if let Some((remote, pulled_tx, pulled_seq)) = mark {
            tx.prepare_cached(
                "INSERT INTO remote_marks (remote, pulled_tx, pulled_seq) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (remote) DO UPDATE \
                 SET pulled_tx = excluded.pulled_tx, pulled_seq = excluded.pulled_seq \
                 WHERE (excluded.pulled_tx, excluded.pulled_seq) > (pulled_tx, pulled_seq)",
            )?
            .execute(params![remote, pulled_tx, pulled_seq])?;
        }
        tx.commit()?;
        Ok(done)
    }
}

fn describe(run: &Run) -> String {
    format!(
        "store {} on host {}",
        run.origin.store,
        run.origin.host.as_deref().unwrap_or("(unknown)")
    )
}

#[cfg(test)]
mod tests;
