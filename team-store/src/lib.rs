//! roar's team store: every machine records locally (SQLite, `dag`) and pushes finished runs to
//! one PostgreSQL database; any machine pulls the others' runs back and asks across all of them.
//!
//! The design follows atuin's sync: a run is immutable once finished and keyed by its UUID, so
//! nothing ever merges. [`push`] lists the local runs finished since the remote's mark,
//! [plans](plan::plan_push) batches, and sends each in one transaction with
//! `ON CONFLICT DO NOTHING`, moving the local mark only after the commit: a push killed at any
//! point and retried loses and duplicates nothing. [`pull`] lists the remote's runs after the
//! local pull mark (below the oldest running transaction, so a late commit is never skipped),
//! plans batches, and writes each batch with its mark in one local transaction.
//!
//! Passwords come only from the URL, `PGPASSWORD` or `~/.pgpass` at run time, are never written
//! anywhere, and every error names the remote with its password replaced by `***`.
//! Serialization failures, deadlocks, "too many connections" and refused connections are
//! retried with jittered exponential backoff until [`RetryPolicy::deadline`].
//!
//! The schema is the team store's own (`pg/*.sql`, applied in order under an advisory lock);
//! `pg/worker_role.sql` is the least-privilege role for workers (SELECT and INSERT).
//! This crate never prints; it returns reports and [`RemoteError`]s.
#![forbid(unsafe_code)]

mod config;
mod connect;
mod error;
pub mod plan;
mod pull;
mod push;
mod rows;
mod schema;

pub use config::{RemoteConfig, TlsMode, redact_url};
pub use connect::RetryPolicy;
pub use error::RemoteError;
pub use plan::Limits;
pub use pull::{PullOptions, PullReport, pull, pull_with};
pub use push::{PushOptions, PushReport, push, push_with};
pub use schema::SCHEMA_VERSION;

/// The GRANTs of the least-privilege worker role, with `roar_worker` as the role's name.
pub const WORKER_ROLE_SQL: &str = include_str!("../pg/worker_role.sql");

/// Creates or upgrades the schema (needs the owner role) and returns the remote's identity.
pub fn migrate(remote: &RemoteConfig, retry: RetryPolicy) -> Result<String, RemoteError> {
    let mut backoff = connect::Backoff::new(retry);
    let mut client = connect::connect(remote, &mut backoff)?;
    schema::ensure(&mut client, remote)
}

/// Grants `role` (which must exist) what a worker needs, as in `pg/worker_role.sql`. Run it
/// as the owner after [`migrate`].
pub fn grant_worker(remote: &RemoteConfig, role: &str) -> Result<(), RemoteError> {
    if role.is_empty()
        || !role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(RemoteError::BadUrl {
            remote: remote.redacted().into(),
            reason: format!("role name {role:?}: use lower-case letters, digits and _"),
        });
    }
    let mut backoff = connect::Backoff::new(RetryPolicy::default());
    let mut client = connect::connect(remote, &mut backoff)?;
    let sql: String = WORKER_ROLE_SQL
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("roar_worker", role);
    client
        .batch_execute(&sql)
        .map_err(|e| connect::error(remote, &e, None))
}
