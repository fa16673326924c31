//! Push: finished local runs not yet on the remote, a batch per transaction, the local mark
//! moved only after the remote committed.

use std::time::{Duration, Instant};

use crate::connect::{Kind, Session, classify, connect, error, session};
use crate::plan::{Limits, plan_push};
use crate::rows::{WriteError, write};
use crate::{RemoteConfig, RemoteError, RetryPolicy};

/// How a push behaves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushOptions {
    pub limits: Limits,
    pub retry: RetryPolicy,
    /// Bounds each connection attempt (default: the URL's `connect_timeout`, else 10 s).
    pub connect_timeout: Option<Duration>,
}

impl PushOptions {
    /// For `[remote] push = "after-run"`: gives up within about 5 s when the remote is down
    /// or busy (what was not sent goes with the next push).
    pub fn after_run() -> PushOptions {
        PushOptions {
            limits: Limits::default(),
            retry: RetryPolicy {
                deadline: Duration::from_secs(3),
                first_pause: Duration::from_millis(50),
                max_pause: Duration::from_millis(500),
            },
            connect_timeout: Some(Duration::from_secs(2)),
        }
    }
}

/// What a push did. Nothing is printed; the caller reports it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushReport {
    /// The remote's identity (its marks are kept under it).
    pub remote_id: String,
    /// Runs that were waiting to be pushed.
    pub pending: u64,
    /// Runs the remote did not have.
    pub sent: u64,
    /// Runs the remote already had (a retried or concurrent push): no-ops.
    pub already_there: u64,
    pub batches: u64,
    /// About how many bytes of run data were sent.
    pub bytes: u64,
    /// Attempts repeated after a retryable failure.
    pub retries: u64,
    pub elapsed: Duration,
}

/// Sends every finished local run not yet on `remote`, oldest finished first.
pub fn push(
    store: &dag::Store,
    remote: &RemoteConfig,
    opts: &PushOptions,
) -> Result<PushReport, RemoteError> {
    push_with(store, remote, opts, &mut |_, _| {})
}

/// [`push`], telling `progress` how many of the pending runs went after each batch.
pub fn push_with(
    store: &dag::Store,
    remote: &RemoteConfig,
    opts: &PushOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PushReport, RemoteError> {
    let started = Instant::now();
    let Session {
        remote,
        mut backoff,
        mut client,
        remote_id,
    } = session(remote, opts.connect_timeout, opts.retry)?;
    let remote = &remote;
    let mark = store.remote_mark(&remote_id)?.pushed_seq;
    let pending = store.pending_push(mark, usize::MAX)?;
    let mut report = PushReport {
        remote_id: remote_id.clone(),
        pending: pending.len() as u64,
        ..PushReport::default()
    };
    for batch in plan_push(&pending, opts.limits) {
        let runs = store.runs_by_id(&batch.ids)?;
        let mut sorted: Vec<&dag::Run> = runs.iter().collect();
        sorted.sort_by(|a, b| a.uuid.cmp(&b.uuid));
        let envs = runs
            .iter()
            .map(|r| Ok((r.uuid.clone(), store.environment(r.id)?)))
            .collect::<Result<std::collections::HashMap<_, _>, dag::StoreError>>()?;
        let written = loop {
            let attempt = client
                .transaction()
                .map_err(WriteError::Pg)
                .and_then(|mut tx| {
                    let w = write(&mut tx, &sorted, &envs)?;
                    tx.commit()?;
                    Ok(w)
                });
            match attempt {
                Ok(w) => break w,
                Err(WriteError::Conflict { uuid, theirs }) => {
                    let ours = sorted
                        .iter()
                        .find(|r| r.uuid == uuid)
                        .map(|r| format!("this store's run {}", r.id))
                        .unwrap_or_default();
                    return Err(RemoteError::Conflict {
                        remote: remote.redacted().into(),
                        uuid,
                        ours,
                        theirs,
                    });
                }
                Err(WriteError::Pg(e)) if classify(&e) == Kind::Retry => {
                    if !backoff.wait() {
                        return Err(error(remote, &e, Some(backoff.elapsed())));
                    }
                    if client.is_closed() {
                        client = connect(remote, &mut backoff)?;
                    }
                }
                Err(WriteError::Pg(e)) => return Err(error(remote, &e, None)),
            }
        };
        // Only now: a push killed before this line sends the batch again, as a no-op.
        store.set_pushed(&remote_id, batch.last_seq)?;
        report.sent += written.inserted;
        report.already_there += written.already_there;
        report.bytes += written.bytes;
        report.batches += 1;
        progress(report.sent + report.already_there, report.pending);
    }
    report.retries = backoff.retries;
    report.elapsed = started.elapsed();
    Ok(report)
}
