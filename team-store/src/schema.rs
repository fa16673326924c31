//! The team store's own ordered migrations (`pg/*.sql`), applied under an advisory lock so that
//! a hundred workers starting at once apply each exactly once, and refused when the remote's
//! schema is newer than this roar.

use postgres::Client;

use crate::RemoteError;
use crate::config::RemoteConfig;
use crate::connect::error;

/// Numbered like the SQLite ones: numbers may have gaps, each is applied once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../pg/0001_init.sql")),
    (2, include_str!("../pg/0002_environment.sql")),
];

/// The highest schema version this roar knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// `pg_advisory_lock` key of schema changes: "roarschm".
const LOCK: i64 = 0x726f_6172_7363_686d;

/// Brings the schema up to date (if this role may) and returns the remote's identity.
pub(crate) fn ensure(client: &mut Client, remote: &RemoteConfig) -> Result<String, RemoteError> {
    let err = |e: postgres::Error| error(remote, &e, None);
    let applied = applied(client).map_err(err)?;
    check_not_newer(&applied, remote)?;
    if MIGRATIONS.iter().any(|(v, _)| !applied.contains(v)) {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
            .map_err(err)?;
        let result = migrate_locked(client, remote);
        // The lock is the session's: release it whatever happened (a broken connection frees it).
        let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK]);
        result?;
    }
    let row = client
        .query_one("SELECT value FROM roar.meta WHERE key = 'remote_id'", &[])
        .map_err(err)?;
    Ok(row.get(0))
}

fn applied(client: &mut Client) -> Result<Vec<i64>, postgres::Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('roar.migrations') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    Ok(client
        .query("SELECT version FROM roar.migrations ORDER BY version", &[])?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

fn check_not_newer(applied: &[i64], remote: &RemoteConfig) -> Result<(), RemoteError> {
    match applied.iter().max() {
        Some(&found) if found > SCHEMA_VERSION => Err(RemoteError::TooNew {
            remote: remote.redacted().into(),
            found,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

fn migrate_locked(client: &mut Client, remote: &RemoteConfig) -> Result<(), RemoteError> {
    let err = |e: postgres::Error| match error(remote, &e, None) {
        RemoteError::Permission { remote, detail, .. } => RemoteError::Permission {
            remote,
            detail,
            hint: format!(
                "the team store's schema needs version {SCHEMA_VERSION} and this role may not \
                 create it: push once as the database owner, or apply team-store/pg/*.sql"
            ),
        },
        other => other,
    };
    // Someone else may have migrated while we waited for the lock.
    let applied = applied(client).map_err(err)?;
    check_not_newer(&applied, remote)?;
    let mut tx = client.transaction().map_err(err)?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS roar; \
         CREATE TABLE IF NOT EXISTS roar.migrations ( \
             version bigint PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .map_err(err)?;
    for (version, sql) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        tx.batch_execute(sql).map_err(err)?;
        tx.execute(
            "INSERT INTO roar.migrations (version) VALUES ($1)",
            &[version],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)
}
