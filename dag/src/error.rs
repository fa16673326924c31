//! The store's error type.

use std::path::PathBuf;

/// Everything that can go wrong opening, writing or querying a store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file exists but is not a readable SQLite database. It was left untouched.
    #[error("{}: not a valid roar store (the file is not a SQLite database or is damaged: {detail}); it was left untouched", path.display())]
    Corrupt { path: PathBuf, detail: String },
    /// The file is a SQLite database, but not one of roar's. It was left untouched.
    #[error("{}: is a SQLite database that does not belong to roar; it was left untouched", path.display())]
    NotARoarStore { path: PathBuf },
    /// The store was written by a newer roar with a schema this one does not know.
    #[error("{}: store schema version {version} is newer than this roar understands (up to {}); upgrade roar", path.display(), crate::store::SCHEMA_VERSION)]
    TooNew { path: PathBuf, version: i64 },
    /// No run matches the given reference or id.
    #[error("no such run: {0}")]
    NoSuchRun(String),
    // No `#[source]` on the two below: their message already holds the
    // cause, and a chain would print it twice ("X: X").
    #[error("store database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("store I/O error: {0}")]
    Io(std::io::Error),
    /// The store could not be opened or set up; `reason` says why, in words
    /// (read-only, a read-only file system, a full disk).
    #[error("cannot open the store {}: {reason}", path.display())]
    Open { path: PathBuf, reason: String },
    /// A run pulled from another store: it is that store's record and cannot be changed here.
    #[error(
        "run {id} ({uuid}) was recorded by store {origin_store} and pulled here; it is read-only"
    )]
    ReadOnlyRun {
        id: i64,
        uuid: String,
        origin_store: String,
    },
    /// The same run id arrived with other content: one of the two stores is damaged or lying.
    /// Nothing was written.
    #[error(
        "run {uuid} conflicts: {ours} holds it with other content than {theirs}; nothing was written"
    )]
    Conflict {
        uuid: String,
        /// Where the stored copy is (e.g. "this store, run 12, recorded by store X on host H").
        ours: String,
        /// Where the incoming copy came from.
        theirs: String,
    },
    /// A run given to [`Store::insert_pulled`](crate::Store::insert_pulled) that cannot be a
    /// pulled run (unfinished, no uuid, or recorded by this very store).
    #[error("cannot insert run {uuid:?}: {reason}")]
    BadForeignRun { uuid: String, reason: String },
    /// A run reference that cannot be parsed.
    #[error("bad run reference: {0}")]
    BadRef(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// What a SQLite failure means for a user, in words, when its code says.
pub(crate) fn plain(e: &rusqlite::Error) -> Option<&'static str> {
    use rusqlite::ErrorCode;
    Some(match e.sqlite_error_code()? {
        ErrorCode::ReadOnly => {
            "it is read-only to this user (roar writes the database, and its write-ahead log beside it in the same directory)"
        }
        ErrorCode::CannotOpen => {
            "it cannot be opened or created (a read-only file system, or a directory this user may not write)"
        }
        ErrorCode::DiskFull => "the disk is full",
        ErrorCode::PermissionDenied => "permission denied",
        _ => return None,
    })
}
