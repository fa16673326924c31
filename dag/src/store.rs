//! The SQLite-backed [`Store`]: opening and migrating, writing runs, reading them back.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior,
    params,
};

use crate::model::{
    FileKey, FileRecord, GitInfo, NewRun, OpenJdContext, ProcessRecord, Run, RunId, RunResult,
};
use crate::{StoreError, absolute_normal};

/// The schema, one file per version number. Numbers may have gaps (branches pick numbers
/// independently); `roar_migrations` records which ones were applied, and `user_version` holds
/// the highest, so an older roar refuses a store it does not understand.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_heads.sql")),
    (3, include_str!("../migrations/0003_ingest.sql")),
    (4, include_str!("../migrations/0004_backend_reason.sql")),
    (10, include_str!("../migrations/0010_identity.sql")),
    (11, include_str!("../migrations/0011_time_order.sql")),
    (20, include_str!("../migrations/0020_environment.sql")),
    (30, include_str!("../migrations/0030_container.sql")),
    (
        40,
        include_str!("../migrations/0040_hidden_inputs_unindexed.sql"),
    ),
];
pub(crate) const SCHEMA_VERSION: i64 = {
    let mut max = 0;
    let mut i = 0;
    while i < MIGRATIONS.len() {
        if MIGRATIONS[i].0 > max {
            max = MIGRATIONS[i].0;
        }
        i += 1;
    }
    max
};
/// `PRAGMA application_id` of every roar store: "roar" in ASCII.
const APPLICATION_ID: i64 = 0x726F_6172;
/// Concurrent `roar run`s share one store; writers wait for each other rather than fail.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

const RUN_COLUMNS: &str = "id, label, cwd, backend, backend_reason, started_at_ms, git_commit, git_branch, \
     git_dirty, git_remote, exit_code, signal, duration_ms, complete, finished, trace_dir, roar_pid, \
     uuid, COALESCE(origin_store, (SELECT value FROM store_meta WHERE key = 'store_uuid')) AS origin, \
     origin_store IS NOT NULL AS pulled, origin_host, order_key";

/// An open roar store. One per thread: the connection is `Send` but not `Sync`.
pub struct Store {
    pub(crate) conn: Connection,
    /// Recorded as the origin host of runs begun through this handle.
    host: Option<String>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.conn.path())
            .field("host", &self.host)
            .finish()
    }
}

/// What the file looked like before we touched it.
struct Probe {
    application_id: i64,
    user_version: i64,
    objects: i64,
    has_runs: bool,
}

impl Store {
    /// Opens the store at `path`, creating it (but not its directory) if it does not exist, and
    /// brings its schema up to date.
    ///
    /// A file that is not a SQLite database, or is one that roar did not create, is reported as
    /// [`StoreError::Corrupt`] or [`StoreError::NotARoarStore`] and left byte-for-byte as it was:
    /// nothing is written until the file has been recognised.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(StoreError::Io(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "cannot open store {}: directory {} does not exist",
                    path.display(),
                    parent.display()
                ),
            )));
        }
        // No SQLITE_OPEN_URI: a store path that happens to start with "file:" is still a path.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let opened = |e: StoreError| match &e {
            StoreError::Sqlite(se) => match crate::error::plain(se) {
                Some(reason) => StoreError::Open {
                    path: path.to_path_buf(),
                    reason: reason.into(),
                },
                None => e,
            },
            _ => e,
        };
        let conn = Connection::open_with_flags(path, flags).map_err(|e| opened(e.into()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;

        // Read-only checks first: reading the header and schema never writes to the file.
        let probe = probe(&conn).map_err(|e| opened(classify(path, e)))?;
        if probe.application_id == APPLICATION_ID {
            if probe.user_version > SCHEMA_VERSION {
                return Err(StoreError::TooNew {
                    path: path.to_path_buf(),
                    version: probe.user_version,
                });
            }
            if probe.user_version > 0 && !probe.has_runs {
                return Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail: "marked as a roar store but its runs table is missing".into(),
                });
            }
        } else if probe.application_id != 0 || probe.objects != 0 || probe.user_version != 0 {
            return Err(StoreError::NotARoarStore {
                path: path.to_path_buf(),
            });
        }

        // A store already at this version and in WAL mode needs no write lock to open: the
        // set-up below takes one (and every run paid for it).
        if probe.application_id == APPLICATION_ID
            && probe.user_version == SCHEMA_VERSION
            && up_to_date(&conn)
        {
            connection_pragmas(&conn)?;
            return Ok(Store {
                conn,
                host: this_host(),
            });
        }
        // Two roars creating one store at once can get SQLITE_BUSY without the busy handler
        // being consulted (switching to WAL, or a lock upgrade SQLite refuses to wait for):
        // setting up is idempotent, so try again until the busy timeout.
        let start = std::time::Instant::now();
        loop {
            let attempt = conn
                .query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0))
                .map_err(StoreError::from)
                .and_then(|_| migrate(&conn));
            match attempt {
                Err(StoreError::Sqlite(e))
                    if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                        && start.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(opened(e)),
                Ok(()) => {
                    return Ok(Store {
                        conn,
                        host: this_host(),
                    });
                }
            }
        }
    }

    /// A private store in memory, for tests and dry runs.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let conn = Connection::open_in_memory()?;
        migrate(&conn)?;
        Ok(Store {
            conn,
            host: this_host(),
        })
    }

    /// Names the host that runs begun from now on are recorded on (default: this machine's
    /// host name). Tests use it to play several machines on one.
    pub fn set_host(&mut self, host: Option<String>) {
        self.host = host;
    }

    /// This store's identity: a random UUID made when the store was created.
    pub fn store_id(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT value FROM store_meta WHERE key = 'store_uuid'")?
            .query_row([], |r| r.get(0))?)
    }

    pub(crate) fn write_tx(&self) -> Result<Transaction<'_>, StoreError> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Immediate,
        )?)
    }

    /// A read transaction, so that a run and its files are read from one consistent snapshot
    /// even while another roar is finishing a run.
    pub(crate) fn read_tx(&self) -> Result<Transaction<'_>, StoreError> {
        Ok(Transaction::new_unchecked(
            &self.conn,
            TransactionBehavior::Deferred,
        )?)
    }

    /// Records that a run has started, in its own short transaction, so that a roar killed
    /// mid-run leaves an unfinished (and therefore incomplete) record.
    pub fn begin_run(&self, run: &NewRun) -> Result<RunId, StoreError> {
        let tx = self.write_tx()?;
        let id = insert_run(&tx, run, &Identity::local(run, self.host.as_deref()))?;
        tx.commit()?;
        Ok(id)
    }

    /// Records that `tree` was ingested: the run (begun and finished in the same transaction)
    /// and the tree key together, so that a tree is recorded at most once even when several
    /// `roar ingest` run at once. Returns `None` (and writes nothing) when `tree` was already
    /// ingested. `run` is `None` for a tree that is deliberately not recorded.
    pub fn ingest_tree(
        &self,
        tree: &str,
        streams: usize,
        now_ms: i64,
        run: Option<(&NewRun, &RunResult)>,
    ) -> Result<Option<Option<RunId>>, StoreError> {
        let tx = self.write_tx()?;
        let seen: bool = tx
            .prepare_cached("SELECT count(*) > 0 FROM ingested_trees WHERE tree = ?1")?
            .query_row([tree], |r| r.get(0))?;
        if seen {
            return Ok(None);
        }
        let id = match run {
            Some((new, result)) => {
                let id = insert_run(&tx, new, &Identity::local(new, self.host.as_deref()))?;
                write_result(&tx, id, result)?;
                Some(id)
            }
            None => None,
        };
        tx.prepare_cached(
            "INSERT INTO ingested_trees (tree, run_id, streams, ingested_at_ms) \
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![tree, id, streams as i64, now_ms])?;
        if let Some(id) = id {
            tx.prepare_cached(
                "UPDATE runs SET finished_seq = \
                 (SELECT COALESCE(MAX(finished_seq), 0) + 1 FROM runs) WHERE id = ?1",
            )?
            .execute([id])?;
        }
        tx.commit()?;
        Ok(Some(id))
    }

    /// True when `tree` was already ingested (see [`Store::ingest_tree`]).
    pub fn is_ingested(&self, tree: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT count(*) > 0 FROM ingested_trees WHERE tree = ?1")?
            .query_row([tree], |r| r.get(0))?)
    }
}

/// Who recorded a run and where it sits in time: made here for a local run, carried over for a
/// pulled one.
struct Identity<'a> {
    uuid: String,
    /// `None`: this store.
    origin_store: Option<&'a str>,
    origin_host: Option<&'a str>,
    /// `None`: a local run, whose key is its start time kept above the store's previous run.
    order_key: Option<i64>,
}

impl<'a> Identity<'a> {
    fn local(run: &NewRun, host: Option<&'a str>) -> Identity<'a> {
        Identity {
            uuid: run_uuid(run.started_at_ms).to_string(),
            origin_store: None,
            origin_host: host,
            order_key: None,
        }
    }
}

/// A UUIDv7 whose timestamp is the run's start time, so that uuids sort roughly by start.
fn run_uuid(started_at_ms: i64) -> uuid::Uuid {
    let ms = u64::try_from(started_at_ms).unwrap_or(0);
    let ts = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, (ms % 1000) as u32 * 1_000_000);
    uuid::Uuid::new_v7(ts)
}

/// The host name of this machine (of its UTS namespace), as `hostname` prints it.
fn this_host() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

fn insert_run(tx: &Connection, run: &NewRun, ident: &Identity<'_>) -> Result<RunId, StoreError> {
    {
        let git = run.git.as_ref();
        // A local run's order key is its start time in microseconds, raised to stay above the
        // previous local run's, so that local id order and key order always agree.
        tx.prepare_cached(
            "INSERT INTO runs (label, cwd, backend, started_at_ms, git_commit, git_branch, \
             git_dirty, git_remote, trace_dir, roar_pid, backend_reason, seq, \
             uuid, origin_store, origin_host, order_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
             (SELECT COALESCE(MAX(seq), 0) + 1 FROM runs), ?12, ?13, ?14, \
             COALESCE(?15, MAX(?4 * 1000, \
               COALESCE((SELECT MAX(order_key) FROM runs WHERE origin_store IS NULL), 0) + 1)))",
        )?
        .execute(params![
            run.label,
            run.cwd,
            run.backend,
            run.started_at_ms,
            git.and_then(|g| g.commit.as_deref()),
            git.and_then(|g| g.branch.as_deref()),
            git.map(|g| g.dirty),
            git.and_then(|g| g.remote.as_deref()),
            run.trace_dir,
            run.roar_pid,
            run.backend_reason,
            ident.uuid,
            ident.origin_store,
            ident.origin_host,
            ident.order_key,
        ])?;
        let id = tx.last_insert_rowid();
        {
            let mut stmt = tx
                .prepare_cached("INSERT INTO run_command (run_id, idx, arg) VALUES (?1, ?2, ?3)")?;
            for (idx, arg) in run.command.iter().enumerate() {
                stmt.execute(params![id, idx as i64, arg])?;
            }
            let mut stmt = tx.prepare_cached(
                "INSERT INTO run_env (run_id, idx, name, value) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (idx, (name, value)) in run.env.iter().enumerate() {
                stmt.execute(params![id, idx as i64, name, value])?;
            }
        }
        if let Some(o) = &run.openjd {
            tx.prepare_cached(
                "INSERT INTO run_openjd (run_id, session_id, working_dir, step, environments) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                id,
                o.session_id,
                o.working_dir,
                o.step,
                o.environments.join("\n")
            ])?;
        }
        Ok(id)
    }
}

impl Store {
    /// Records everything learnt when a run ended, in one transaction, and marks it finished.
    ///
    /// Processes and file links replace any recorded before (finishing twice is not an error);
    /// `result.warnings` are appended after those added with [`Store::add_warning`].
    ///
    /// A run pulled from another store is refused ([`StoreError::ReadOnlyRun`]).
    pub fn finish_run(&self, id: RunId, result: &RunResult) -> Result<(), StoreError> {
        self.finish_run_with(id, result, None, None)
    }

    /// [`Store::finish_run`] with the run's git context and environment in the same
    /// transaction: one commit where a run used to make three (each commit writes every page
    /// it touched to the WAL again, and the next roar reads them back).
    pub fn finish_run_with(
        &self,
        id: RunId,
        result: &RunResult,
        git: Option<&GitInfo>,
        environment: Option<&crate::Environment>,
    ) -> Result<(), StoreError> {
        // Every id this transaction writes, it has just read or made itself (the run's, checked
        // by `require_own`; each artifact's, returned by its insert), so SQLite's check of each
        // reference is work without a purpose: two parent-key lookups per file link, a seventh
        // of storing a run of 7,300 copied files.
        let _unchecked = ForeignKeysOff::new(&self.conn)?;
        let tx = self.write_tx()?;
        require_own(&tx, id)?;
        if let Some(git) = git {
            update_git(&tx, id, git)?;
        }
        if let Some(env) = environment {
            crate::environment::write_environment(&tx, id, env)?;
        }
        write_result(&tx, id, result)?;
        // Push sends local runs in the order they were finished; finishing again gives the run
        // a new place, so a push sends it again (and the team store sees whether it changed).
        tx.prepare_cached(
            "UPDATE runs SET finished_seq = \
             (SELECT COALESCE(MAX(finished_seq), 0) + 1 FROM runs) WHERE id = ?1",
        )?
        .execute([id])?;
        tx.commit()?;
        Ok(())
    }
}

fn update_git(tx: &Connection, id: RunId, git: &GitInfo) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE runs SET git_commit = ?2, git_branch = ?3, git_dirty = ?4, git_remote = ?5 \
         WHERE id = ?1",
    )?
    .execute(params![id, git.commit, git.branch, git.dirty, git.remote])?;
    Ok(())
}

fn write_result(tx: &Connection, id: RunId, result: &RunResult) -> Result<(), StoreError> {
    {
        require_run(tx, id)?;
        // Spelled out rather than left to ON DELETE CASCADE: foreign keys are off here.
        tx.prepare_cached(
            "DELETE FROM process_argv WHERE process_id IN \
             (SELECT id FROM processes WHERE run_id = ?1)",
        )?
        .execute([id])?;
        for table in ["processes", "run_inputs", "run_outputs"] {
            tx.prepare_cached(&format!("DELETE FROM {table} WHERE run_id = ?1"))?
                .execute([id])?;
        }
        {
            let mut proc_stmt = tx.prepare_cached(
                "INSERT INTO processes (run_id, idx, pid, ppid, exe, cwd, exit_code, signal, \
                 started_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            let mut argv_stmt = tx.prepare_cached(
                "INSERT INTO process_argv (process_id, idx, arg) VALUES (?1, ?2, ?3)",
            )?;
            for (idx, p) in result.processes.iter().enumerate() {
                proc_stmt.execute(params![
                    id,
                    idx as i64,
                    p.pid,
                    p.ppid,
                    p.exe,
                    p.cwd,
                    p.exit_code,
                    p.signal,
                    u64_to_sql(p.started_ns),
                ])?;
                let process_id = tx.last_insert_rowid();
                for (i, arg) in p.argv.iter().enumerate() {
                    argv_stmt.execute(params![process_id, i as i64, arg])?;
                }
            }
        }
        let mut artifacts = HashMap::new();
        insert_links(tx, "run_inputs", id, &result.inputs, &mut artifacts)?;
        insert_links(tx, "run_outputs", id, &result.outputs, &mut artifacts)?;
        update_heads(tx, id)?;
        for warning in &result.warnings {
            insert_warning(tx, id, warning)?;
        }
        tx.prepare_cached(
            "UPDATE runs SET exit_code = ?2, signal = ?3, duration_ms = ?4, complete = ?5, \
             finished = 1 WHERE id = ?1",
        )?
        .execute(params![
            id,
            result.exit_code,
            result.signal,
            u64_to_sql(result.duration_ms),
            result.complete,
        ])?;
        Ok(())
    }
}

impl Store {
    /// Empties the WAL when a big transaction left it large. A checkpoint copies the WAL
    /// into the database but leaves the file as it is until the next write, so the next
    /// roar would rebuild its index from every frame still in it: 14 MB after a run of
    /// 16,000 files here, about 10 ms of that roar's start. Truncating costs the fsyncs of
    /// a checkpoint, paid only after such a run. Best effort: a reader in the way just
    /// leaves it for later.
    pub fn trim_wal(&self) {
        const LARGE: u64 = 4 << 20;
        let Some(db) = self.conn.path().filter(|p| !p.is_empty()) else {
            return;
        };
        let wal = format!("{db}-wal");
        if std::fs::metadata(wal).is_ok_and(|m| m.len() > LARGE) {
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
    }

    /// Records a run's git context once it is known (roar reads git while
    /// the command runs, after the run row was written).
    pub fn set_git(&self, id: RunId, git: &GitInfo) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        require_own(&tx, id)?;
        update_git(&tx, id, git)?;
        tx.commit()?;
        Ok(())
    }

    /// Appends a warning to a run, finished or not.
    pub fn add_warning(&self, id: RunId, warning: &str) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        require_own(&tx, id)?;
        insert_warning(&tx, id, warning)?;
        tx.commit()?;
        Ok(())
    }

    /// The cached hash of a file, if `key` matches the cached identity in all four fields.
    pub fn hash_cache_get(&self, key: &FileKey) -> Result<Option<String>, StoreError> {
        Ok(self
            .hash_cache_get_many(std::slice::from_ref(key))?
            .pop()
            .flatten())
    }

    /// [`Store::hash_cache_get`] for many files, in one read transaction: `None` where the
    /// cache does not know the file.
    pub fn hash_cache_get_many(&self, keys: &[FileKey]) -> Result<Vec<Option<String>>, StoreError> {
        let tx = self.read_tx()?;
        let mut stmt = tx.prepare_cached(
            "SELECT hash FROM hash_cache \
             WHERE dev = ?1 AND ino = ?2 AND size = ?3 AND mtime_ns = ?4",
        )?;
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(
                stmt.query_row(
                    params![
                        u64_to_sql(key.dev),
                        u64_to_sql(key.ino),
                        u64_to_sql(key.size),
                        key.mtime_ns
                    ],
                    |r| r.get(0),
                )
                .optional()?,
            );
        }
        Ok(out)
    }

    /// Caches hashes, replacing whatever was cached for the same (dev, ino) (of two entries
    /// for one identity, the later wins). An entry already cached as it is is not written
    /// again: a run that read a tree it read before leaves those pages clean.
    pub fn hash_cache_put(&self, entries: &[(FileKey, String)]) -> Result<(), StoreError> {
        // In key order, so the b-tree is filled page after page rather than split all over
        // (a copied tree's 14,600 entries took 21 ms one by one in the order found, 9 ms so).
        let mut sorted: Vec<&(FileKey, String)> = entries.iter().collect();
        sorted.sort_by_key(|(k, _)| (k.dev, k.ino));
        let tx = self.write_tx()?;
        for chunk in sorted.chunks(BATCH) {
            let keys: Vec<[i64; 4]> = chunk
                .iter()
                .map(|(k, _)| {
                    [
                        u64_to_sql(k.dev),
                        u64_to_sql(k.ino),
                        u64_to_sql(k.size),
                        k.mtime_ns,
                    ]
                })
                .collect();
            let values = chunk.iter().zip(&keys).flat_map(|((_, hash), k)| {
                [&k[0] as &dyn rusqlite::ToSql, &k[1], &k[2], &k[3], hash]
            });
            tx.prepare_cached(&format!(
                "INSERT INTO hash_cache (dev, ino, size, mtime_ns, hash) VALUES {} \
                 ON CONFLICT (dev, ino) DO UPDATE SET size = excluded.size, \
                   mtime_ns = excluded.mtime_ns, hash = excluded.hash \
                 WHERE (size, mtime_ns, hash) IS NOT (excluded.size, excluded.mtime_ns, excluded.hash)",
                placeholders(chunk.len(), 5)
            ))?
            .execute(rusqlite::params_from_iter(values))?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Runs, newest first, at most `limit` of them, each with its files and processes.
    pub fn runs(&self, limit: Option<usize>) -> Result<Vec<Run>, StoreError> {
        let tx = self.read_tx()?;
        // SQLite reads a negative LIMIT as "no limit".
        let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let mut runs = {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs ORDER BY order_key DESC, id DESC LIMIT ?1"
            ))?;
            stmt.query_map([limit], run_from_row)?
                .collect::<Result<Vec<_>, _>>()?
        };
        if let Some(newest) = runs.first() {
            // Consecutive in id order, so the newest's position gives every position.
            let first_seq = seq_of(&tx, newest.id)?;
            for (i, run) in runs.iter_mut().enumerate() {
                run.seq = first_seq - i as i64;
                fill(&tx, run)?;
            }
        }
        Ok(runs)
    }

    /// One run in full; [`StoreError::NoSuchRun`] if there is none with this id.
    pub fn run(&self, id: RunId) -> Result<Run, StoreError> {
        let tx = self.read_tx()?;
        load_run(&tx, id)
    }

    /// Runs that were begun but never finished (roar was killed, or is still running), oldest
    /// first.
    pub fn unfinished_runs(&self) -> Result<Vec<Run>, StoreError> {
        let tx = self.read_tx()?;
        let mut runs = {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE finished = 0 ORDER BY id"
            ))?;
            stmt.query_map([], run_from_row)?
                .collect::<Result<Vec<_>, _>>()?
        };
        for run in &mut runs {
            run.seq = seq_of(&tx, run.id)?;
            fill(&tx, run)?;
        }
        Ok(runs)
    }

    /// Resolves a run reference as the CLI accepts it:
    ///
    /// - `latest` or the empty string: the newest run;
    /// - `@N`: the N-th run in id order, counting from 1;
    /// - all digits: a run id (write `./123` for a file named `123`);
    /// - anything else: a path, made absolute against `cwd` and lexically normalised, naming
    ///   the newest run that has it among its outputs.
    pub fn resolve_ref(&self, r: &str, cwd: &Path) -> Result<RunId, StoreError> {
        let tx = self.read_tx()?;
        if r.is_empty() || r == "latest" {
            return tx
                .prepare_cached("SELECT id FROM runs ORDER BY order_key DESC, id DESC LIMIT 1")?
                .query_row([], |row| row.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NoSuchRun("latest (the store has no runs yet)".into()));
        }
        if let Some(digits) = r.strip_prefix('@') {
            let n = match digits.parse::<i64>() {
                Ok(n) if n >= 1 && digits.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(StoreError::BadRef(format!(
                        "{r:?}: expected @N with N a positive whole number"
                    )));
                }
            };
            let found = tx
                .prepare_cached("SELECT id FROM runs WHERE seq = ?1")?
                .query_row([n], |row| row.get(0))
                .optional()?;
            return match found {
                Some(id) => Ok(id),
                None => {
                    let total: i64 = tx.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?;
                    Err(StoreError::NoSuchRun(format!(
                        "{r} (the store has {total} run{})",
                        if total == 1 { "" } else { "s" }
                    )))
                }
            };
        }
        if r.bytes().all(|b| b.is_ascii_digit()) {
            let id: RunId = r
                .parse()
                .map_err(|_| StoreError::BadRef(format!("{r:?}: run id out of range")))?;
            require_run(&tx, id)?;
            return Ok(id);
        }
        let path = absolute_normal(Path::new(r), cwd);
        tx.prepare_cached(
            "SELECT o.run_id FROM run_outputs AS o JOIN runs AS r ON r.id = o.run_id \
             WHERE o.path = ?1 ORDER BY r.order_key DESC, r.id DESC LIMIT 1",
        )?
        .query_row([path.as_os_str().as_bytes()], |row| row.get(0))
        .optional()?
        .ok_or_else(|| {
            StoreError::NoSuchRun(format!(
                "{} (no recorded run wrote this path)",
                path.display()
            ))
        })
    }
}

/// `PRAGMA foreign_keys = OFF` until dropped. SQLite ignores the pragma inside a
/// transaction, so this goes before the transaction starts, and the transaction is dropped
/// (committed or rolled back) before this is.
struct ForeignKeysOff<'a>(&'a Connection);

impl<'a> ForeignKeysOff<'a> {
    fn new(conn: &'a Connection) -> Result<Self, StoreError> {
        conn.pragma_update(None, "foreign_keys", false)?;
        Ok(ForeignKeysOff(conn))
    }
}

impl Drop for ForeignKeysOff<'_> {
    fn drop(&mut self) {
        // Cannot fail outside a transaction; should it, the next statement that relies on
        // a cascade would show it.
        let _ = self.0.pragma_update(None, "foreign_keys", true);
    }
}

/// The settings each connection makes for itself.
fn connection_pragmas(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Every roar is a new process, so its first read rebuilds the WAL index by reading the
    // whole WAL (about 3 us a page): with SQLite's default checkpoint at 1,000 pages, a run
    // (about 50 pages) paid for about 500 of them, 1.5 ms. Checkpointing at 128 pages costs
    // an fsync every other run or so (0.3 ms here) and measured 0.6-0.9 ms less per run.
    conn.pragma_update(None, "wal_autocheckpoint", 128)?;
    // Sorts and statement journals in memory: SQLite's default puts each in a new file in
    // /var/tmp, which a run's store step created and unlinked every time (0.3-1 ms on
    // this machine's ext4). They hold one statement's rows, a few KB for a run.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Whether the store is in WAL mode with every migration applied (read only).
fn up_to_date(conn: &Connection) -> bool {
    let versions: Vec<String> = MIGRATIONS.iter().map(|(v, _)| v.to_string()).collect();
    let applied = conn.query_row(
        &format!(
            "SELECT (SELECT count(*) FROM roar_migrations WHERE version IN ({})), \
                    (SELECT journal_mode FROM pragma_journal_mode)",
            versions.join(", ")
        ),
        [],
        |r| Ok((r.get::<_, usize>(0)?, r.get::<_, String>(1)?)),
    );
    applied.is_ok_and(|(n, mode)| n == MIGRATIONS.len() && mode.eq_ignore_ascii_case("wal"))
}

/// Applies the connection settings and every migration not applied yet.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    connection_pragmas(conn)?;
    // One write transaction decides and applies everything, so two roars opening a fresh
    // store at once apply each migration exactly once.
    let tx = Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let current: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let tracked: bool = tx.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'roar_migrations'",
        [],
        |r| r.get(0),
    )?;
    if !tracked {
        tx.execute_batch(
            "CREATE TABLE roar_migrations (version INTEGER PRIMARY KEY) WITHOUT ROWID",
        )?;
        // Stores from before the table applied 1..=user_version, with no gaps.
        for v in 1..=current {
            tx.execute("INSERT INTO roar_migrations (version) VALUES (?1)", [v])?;
        }
    }
    let mut changed = !tracked;
    for (version, sql) in MIGRATIONS {
        let applied: bool = tx.query_row(
            "SELECT count(*) > 0 FROM roar_migrations WHERE version = ?1",
            [version],
            |r| r.get(0),
        )?;
        if applied {
            continue;
        }
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO roar_migrations (version) VALUES (?1)",
            [version],
        )?;
        changed = true;
    }
    if changed {
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.pragma_update(None, "user_version", current.max(SCHEMA_VERSION))?;
        tx.commit()?;
    }
    Ok(())
}

fn probe(conn: &Connection) -> rusqlite::Result<Probe> {
    // One statement, so one consistent snapshot: read piecemeal, a roar creating the store at
    // the same moment could be seen half before and half after its commit.
    conn.query_row(
        "SELECT (SELECT application_id FROM pragma_application_id), \
                (SELECT user_version FROM pragma_user_version), \
                (SELECT count(*) FROM sqlite_schema), \
                (SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'runs')",
        [],
        |r| {
            Ok(Probe {
                application_id: r.get(0)?,
                user_version: r.get(1)?,
                objects: r.get(2)?,
                has_runs: r.get::<_, i64>(3)? > 0,
            })
        },
    )
}

fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
            path: PathBuf::from(path),
            detail: e.to_string(),
        },
        _ => StoreError::Sqlite(e),
    }
}

fn require_run(conn: &Connection, id: RunId) -> Result<(), StoreError> {
    let exists = conn
        .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")?
        .query_row([id], |_| Ok(()))
        .optional()?;
    exists.ok_or_else(|| StoreError::NoSuchRun(id.to_string()))
}

/// The run exists and was recorded here: pulled runs are another store's record.
pub(crate) fn require_own(conn: &Connection, id: RunId) -> Result<(), StoreError> {
    let found: Option<(Option<String>, Option<String>)> = conn
        .prepare_cached("SELECT origin_store, uuid FROM runs WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match found {
        None => Err(StoreError::NoSuchRun(id.to_string())),
        Some((None, _)) => Ok(()),
        Some((Some(origin_store), uuid)) => Err(StoreError::ReadOnlyRun {
            id,
            uuid: uuid.unwrap_or_default(),
            origin_store,
        }),
    }
}

fn insert_warning(conn: &Connection, id: RunId, text: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO warnings (run_id, seq, text) \
         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM warnings WHERE run_id = ?1), ?2)",
    )?
    .execute(params![id, text])?;
    Ok(())
}

/// Rows per multi-row INSERT: a statement per row spent as long in SQLite's per-statement
/// work as in the b-trees (a run of 7,300 copied files stores 22,000 rows).
const BATCH: usize = 128;

/// `table` is one of our two link tables, never user input.
fn insert_links(
    conn: &Connection,
    table: &str,
    id: RunId,
    files: &[FileRecord],
    artifacts: &mut HashMap<String, i64>,
) -> Result<(), StoreError> {
    // One artifact row per content in a run, however many of its files have it (a copy's
    // input and output); its size is the first file's.
    let mut new: Vec<(&str, Option<i64>)> = Vec::new();
    let mut queued: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for file in files {
        if let Some(hash) = &file.hash
            && !artifacts.contains_key(hash)
            && queued.insert(hash)
        {
            new.push((hash, file.size.map(u64_to_sql)));
        }
    }
    for chunk in new.chunks(BATCH) {
        let mut stmt = conn.prepare_cached(&format!(
            "INSERT INTO artifacts (hash, size) VALUES {} \
             ON CONFLICT (hash) DO UPDATE SET size = COALESCE(artifacts.size, excluded.size) \
             RETURNING hash, id",
            placeholders(chunk.len(), 2)
        ))?;
        let values = chunk
            .iter()
            .flat_map(|(h, size)| [h as &dyn rusqlite::ToSql, size as &dyn rusqlite::ToSql]);
        let mut rows = stmt.query(rusqlite::params_from_iter(values))?;
        while let Some(row) = rows.next()? {
            artifacts.insert(row.get(0)?, row.get(1)?);
        }
    }
    for (n, chunk) in files.chunks(BATCH).enumerate() {
        // (idx, artifact, size): the values computed per row; path and filtered are bound
        // from the file itself.
        let computed: Vec<(i64, Option<i64>, Option<i64>)> = chunk
            .iter()
            .enumerate()
            .map(|(i, file)| {
                let artifact = file.hash.as_ref().and_then(|h| artifacts.get(h).copied());
                ((n * BATCH + i) as i64, artifact, file.size.map(u64_to_sql))
            })
            .collect();
        let values = chunk
            .iter()
            .zip(&computed)
            .flat_map(|(file, (idx, artifact, size))| {
                [
                    &id as &dyn rusqlite::ToSql,
                    idx,
                    &file.path,
                    artifact,
                    size,
                    &file.filtered,
                ]
            });
        conn.prepare_cached(&format!(
            "INSERT INTO {table} (run_id, idx, path, artifact_id, size, filtered) VALUES {}",
            placeholders(chunk.len(), 6)
        ))?
        .execute(rusqlite::params_from_iter(values))?;
    }
    Ok(())
}

/// `(?, ?), (?, ?), ...`: `rows` groups of `cols` parameters.
fn placeholders(rows: usize, cols: usize) -> String {
    let row = format!("({})", vec!["?"; cols].join(", "));
    vec![row; rows].join(", ")
}

/// Makes `id` the head of every path it wrote, unless a newer run already wrote the path.
/// (Finishing a run twice drops its head on paths it no longer claims.) Newer means a greater
/// `(order_key, id)`: a pulled run arrives with a high local id but keeps its place in time, so
/// an old run pulled today does not displace a newer local head.
fn update_heads(conn: &Connection, id: RunId) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM path_heads WHERE run_id = ?1 AND path NOT IN \
         (SELECT path FROM run_outputs WHERE run_id = ?1 AND filtered = 0)",
    )?
    .execute([id])?;
    conn.prepare_cached(
        "INSERT INTO path_heads (path, run_id, artifact_id) \
         SELECT path, run_id, artifact_id FROM run_outputs WHERE run_id = ?1 AND filtered = 0 \
         ON CONFLICT (path) DO UPDATE SET run_id = excluded.run_id, \
           artifact_id = excluded.artifact_id \
         WHERE (SELECT order_key, id FROM runs WHERE id = excluded.run_id) \
            >= (SELECT order_key, id FROM runs WHERE id = path_heads.run_id)",
    )?
    .execute([id])?;
    Ok(())
}

/// Run `id` in full, read through `conn`.
pub(crate) fn load_run(conn: &Connection, id: RunId) -> Result<Run, StoreError> {
    let mut run = conn
        .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
        .query_row([id], run_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NoSuchRun(id.to_string()))?;
    run.seq = seq_of(conn, id)?;
    fill(conn, &mut run)?;
    Ok(run)
}

fn seq_of(conn: &Connection, id: RunId) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT seq FROM runs WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?)
}

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<Run> {
    let git_dirty: Option<bool> = row.get("git_dirty")?;
    Ok(Run {
        id: row.get("id")?,
        uuid: row.get("uuid")?,
        origin: crate::model::Origin {
            store: row.get("origin")?,
            host: row.get("origin_host")?,
        },
        pulled: row.get("pulled")?,
        order_key: row.get("order_key")?,
        seq: 0,
        label: row.get("label")?,
        command: Vec::new(),
        cwd: row.get("cwd")?,
        backend: row.get("backend")?,
        backend_reason: row.get("backend_reason")?,
        started_at_ms: row.get("started_at_ms")?,
        git: match git_dirty {
            Some(dirty) => Some(GitInfo {
                commit: row.get("git_commit")?,
                branch: row.get("git_branch")?,
                dirty,
                remote: row.get("git_remote")?,
            }),
            None => None,
        },
        env: Vec::new(),
        openjd: None,
        exit_code: row.get("exit_code")?,
        signal: row.get("signal")?,
        duration_ms: row.get::<_, Option<i64>>("duration_ms")?.map(u64_from_sql),
        complete: row.get("complete")?,
        finished: row.get("finished")?,
        warnings: Vec::new(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        processes: Vec::new(),
        trace_dir: row.get("trace_dir")?,
        roar_pid: row.get("roar_pid")?,
    })
}

/// Loads a run's child rows.
fn fill(conn: &Connection, run: &mut Run) -> Result<(), StoreError> {
    let id = run.id;
    run.command = conn
        .prepare_cached("SELECT arg FROM run_command WHERE run_id = ?1 ORDER BY idx")?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    run.env = conn
        .prepare_cached("SELECT name, value FROM run_env WHERE run_id = ?1 ORDER BY idx")?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    run.warnings = conn
        .prepare_cached("SELECT text FROM warnings WHERE run_id = ?1 ORDER BY seq")?
        .query_map([id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    run.openjd = conn
        .prepare_cached(
            "SELECT session_id, working_dir, step, environments FROM run_openjd WHERE run_id = ?1",
        )?
        .query_row([id], |r| {
            let envs: String = r.get(3)?;
            Ok(OpenJdContext {
                session_id: r.get(0)?,
                working_dir: r.get(1)?,
                step: r.get(2)?,
                environments: envs
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .optional()?;
    run.inputs = load_links(conn, "run_inputs", id)?;
    run.outputs = load_links(conn, "run_outputs", id)?;

    let mut processes: Vec<(i64, ProcessRecord)> = conn
        .prepare_cached(
            "SELECT id, pid, ppid, exe, cwd, exit_code, signal, started_ns \
             FROM processes WHERE run_id = ?1 ORDER BY idx",
        )?
        .query_map([id], |r| {
            Ok((
                r.get(0)?,
                ProcessRecord {
                    pid: r.get(1)?,
                    ppid: r.get(2)?,
                    exe: r.get(3)?,
                    argv: Vec::new(),
                    cwd: r.get(4)?,
                    exit_code: r.get(5)?,
                    signal: r.get(6)?,
                    started_ns: u64_from_sql(r.get(7)?),
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    let mut argv_stmt =
        conn.prepare_cached("SELECT arg FROM process_argv WHERE process_id = ?1 ORDER BY idx")?;
    for (process_id, process) in &mut processes {
        process.argv = argv_stmt
            .query_map([*process_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
    }
    run.processes = processes.into_iter().map(|(_, p)| p).collect();
    Ok(())
}

/// `table` is one of our two link tables, never user input.
fn load_links(conn: &Connection, table: &str, id: RunId) -> Result<Vec<FileRecord>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT l.path, a.hash, COALESCE(l.size, a.size), l.filtered \
             FROM {table} AS l LEFT JOIN artifacts AS a ON a.id = l.artifact_id \
             WHERE l.run_id = ?1 ORDER BY l.idx"
        ))?
        .query_map([id], |r| {
            Ok(FileRecord {
                path: r.get(0)?,
                hash: r.get(1)?,
                size: r.get::<_, Option<i64>>(2)?.map(u64_from_sql),
                filtered: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

/// u64 values (dev, ino, sizes, nanoseconds) are stored as the i64 with the same bits, so the
/// full range round-trips even though SQLite integers are signed.
fn u64_to_sql(v: u64) -> i64 {
    v as i64
}

fn u64_from_sql(v: i64) -> u64 {
    v as u64
}

mod exchange;

#[cfg(test)]
mod tests;
