//! Pull: the remote's runs recorded by other stores, after the local mark, a batch per local
//! transaction that also moves the mark.

use std::time::{Duration, Instant};

use crate::connect::{Kind, Session, classify, connect, error, session};
use crate::plan::{Limits, RemoteRun, plan_pull};
use crate::rows::{ReadError, read};
use crate::{RemoteConfig, RemoteError, RetryPolicy};

/// How a pull behaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullOptions {
    pub limits: Limits,
    pub retry: RetryPolicy,
    pub connect_timeout: Option<Duration>,
}

/// What a pull did. Nothing is printed; the caller reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PullReport {
    pub remote_id: String,
    /// Runs new to this store, now in it (read-only, with their origin).
    pub received: u64,
    /// Runs passed over: recorded by this store, or already here.
    pub skipped: u64,
    pub batches: u64,
    /// About how many bytes of run data were read.
    pub bytes: u64,
    pub retries: u64,
    pub elapsed: Duration,
}

/// Brings every run on `remote` that another store recorded, and this one lacks, into `store`.
pub fn pull(
    store: &dag::Store,
    remote: &RemoteConfig,
    opts: &PullOptions,
) -> Result<PullReport, RemoteError> {
    pull_with(store, remote, opts, &mut |_, _| {})
}

/// [`pull`], telling `progress` how many of the listed runs were taken or passed over
/// after each batch.
pub fn pull_with(
    store: &dag::Store,
    remote: &RemoteConfig,
    opts: &PullOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PullReport, RemoteError> {
    let started = Instant::now();
    let Session {
        remote,
        mut backoff,
        mut client,
        remote_id,
    } = session(remote, opts.connect_timeout, opts.retry)?;
    let remote = &remote;
    let own = store.store_id()?;
    let mark = store.remote_mark(&remote_id)?;

    // Only rows of transactions older than every transaction still running: a push that
    // commits after this snapshot cannot have rows below the horizon, so the mark never
    // passes over a run that appears later.
    let listed = loop {
        let attempt = (|| -> Result<Vec<RemoteRun>, postgres::Error> {
            let mut tx = client
                .build_transaction()
                .isolation_level(postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let rows = tx.query(
                "SELECT tx::text, seq, uuid::text, origin_store::text FROM roar.runs \
                 WHERE (tx, seq) > ($1::text::xid8, $2) \
                   AND tx < pg_snapshot_xmin(pg_current_snapshot()) \
                 ORDER BY tx, seq",
                &[&mark.pulled_tx.to_string(), &mark.pulled_seq],
            )?;
            tx.commit()?;
            Ok(rows
                .iter()
                .map(|r| RemoteRun {
                    tx: r.get::<_, &str>(0).parse::<u64>().unwrap_or(0) as i64,
                    seq: r.get(1),
                    uuid: r.get(2),
                    origin_store: r.get(3),
                })
                .collect())
        })();
        match attempt {
            Ok(v) => break v,
            Err(e) if classify(&e) == Kind::Retry && backoff.wait() => {
                if client.is_closed() {
                    client = connect(remote, &mut backoff)?;
                }
            }
            Err(e) => return Err(error(remote, &e, None)),
        }
    };
    let candidates: Vec<&str> = listed
        .iter()
        .filter(|r| r.origin_store != own)
        .map(|r| r.uuid.as_str())
        .collect();
    let known = store.known_uuids(&candidates)?;
    let mut report = PullReport {
        remote_id: remote_id.clone(),
        ..PullReport::default()
    };
    for batch in plan_pull(&listed, &own, &known, opts.limits) {
        let (runs, envs, bytes) = if batch.uuids.is_empty() {
            (Vec::new(), Vec::new(), 0)
        } else {
            loop {
                match read(&mut client, &batch.uuids) {
                    Ok(v) => break v,
                    Err(ReadError::Damaged { uuid, why }) => {
                        return Err(RemoteError::Postgres {
                            remote: remote.redacted().into(),
                            detail: format!("run {uuid} is damaged on the team store: {why}"),
                        });
                    }
                    Err(ReadError::Pg(e)) if classify(&e) == Kind::Retry && backoff.wait() => {
                        if client.is_closed() {
                            client = connect(remote, &mut backoff)?;
                        }
                    }
                    Err(ReadError::Pg(e)) => return Err(error(remote, &e, None)),
                }
            }
        };
        let done = store
            .insert_pulled_with(&runs, &envs, Some((&remote_id, batch.mark.0, batch.mark.1)))
            .map_err(|e| match e {
                dag::StoreError::Conflict { uuid, ours, theirs } => RemoteError::Conflict {
                    remote: remote.redacted().into(),
                    uuid,
                    ours,
                    theirs,
                },
                other => RemoteError::Store(other),
            })?;
        report.received += done.runs;
        report.skipped += batch.skipped + done.already_present;
        report.bytes += bytes;
        report.batches += 1;
        progress(report.received + report.skipped, listed.len() as u64);
    }
    report.retries = backoff.retries;
    report.elapsed = started.elapsed();
    Ok(report)
}
