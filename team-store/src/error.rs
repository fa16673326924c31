//! The team store's error type. Every variant names the remote (password redacted) and says
//! what to do.

/// Everything a push or pull can run into. Nothing local is lost in any of these: the local
/// store is only written in whole transactions.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("team store {remote}: bad URL: {reason}")]
    BadUrl { remote: String, reason: String },
    /// The server could not be reached (refused, unreachable, timed out, too many clients)
    /// even after retrying.
    #[error(
        "team store {remote}: cannot connect: {detail} (is the server running and reachable? \
         nothing was lost locally; push again later)"
    )]
    Unreachable { remote: String, detail: String },
    #[error(
        "team store {remote}: authentication failed: {detail} (give the password with \
         PGPASSWORD, ~/.pgpass or in the URL; roar never stores it)"
    )]
    Auth { remote: String, detail: String },
    #[error(
        "team store {remote}: its schema is version {found}, newer than this roar understands \
         (up to {supported}); upgrade roar. Nothing was sent or changed"
    )]
    TooNew {
        remote: String,
        found: i64,
        supported: i64,
    },
    /// The role may not do what was needed (e.g. a worker role meeting a schema to create).
    #[error("team store {remote}: permission denied: {detail} ({hint})")]
    Permission {
        remote: String,
        detail: String,
        hint: String,
    },
    /// A run with this uuid is there with other content.
    #[error(
        "team store {remote}: run {uuid} conflicts: {ours} differs from {theirs}; nothing of \
         this batch was written (one of the stores holds a damaged or altered copy)"
    )]
    Conflict {
        remote: String,
        uuid: String,
        ours: String,
        theirs: String,
    },
    /// The time allowed (e.g. for an after-run push) ran out; what was committed stays.
    #[error("team store {remote}: gave up after {secs:.1} s: {detail} (push again later)")]
    Deadline {
        remote: String,
        secs: f64,
        detail: String,
    },
    #[error("team store {remote}: {detail}")]
    Postgres { remote: String, detail: String },
    #[error("local store: {0}")]
    Store(#[from] dag::StoreError),
}
