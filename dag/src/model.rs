//! The records the store takes in and hands back.

/// A run's primary key. Ids are never reused.
pub type RunId = i64;

/// The state of the git repository the command ran in.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GitInfo {
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub dirty: bool,
    pub remote: Option<String>,
}

/// What is known when a run starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NewRun {
    pub label: Option<String>,
    pub command: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub backend: String,
    /// Why that backend was chosen (`auto`'s reasoning, or that it was asked for).
    pub backend_reason: Option<String>,
    /// Unix time in milliseconds.
    pub started_at_ms: i64,
    pub git: Option<GitInfo>,
    /// Variable names, with the value only when the variable is allow-listed.
    pub env: Vec<(String, Option<String>)>,
    pub trace_dir: Option<Vec<u8>>,
    pub roar_pid: u32,
    pub openjd: Option<OpenJdContext>,
}

/// Where in an OpenJD session a run happened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenJdContext {
    pub session_id: Option<String>,
    /// The session working directory (raw bytes).
    pub working_dir: Option<Vec<u8>>,
    pub step: Option<String>,
    /// Names of the session's environments, in the order they were entered.
    pub environments: Vec<String>,
}

/// One file a run read or wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct FileRecord {
    pub path: Vec<u8>,
    /// `"blake3:<64 hex>"`; `None` when the content is unknown.
    pub hash: Option<String>,
    pub size: Option<u64>,
    /// Hidden by the system-file filter (shown with `--all`).
    pub filtered: bool,
}

/// One process of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessRecord {
    pub pid: u32,
    pub ppid: u32,
    pub exe: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub started_ns: u64,
}

/// What is known when a run ends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunResult {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_ms: u64,
    /// The trace is believed to have seen everything (no drops, no invisible processes).
    pub complete: bool,
    pub warnings: Vec<String>,
    pub inputs: Vec<FileRecord>,
    pub outputs: Vec<FileRecord>,
    pub processes: Vec<ProcessRecord>,
}

/// The store and host that recorded a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The recording store's UUID ([`Store::store_id`](crate::Store::store_id) there).
    pub store: String,
    /// The host name where it was recorded; `None` for runs recorded before roar kept it.
    pub host: Option<String>,
}

/// A stored run, as read back.
///
/// A run is also the unit that moves between stores: [`Store::insert_pulled`](crate::Store::insert_pulled)
/// takes runs read from another store, keeping `uuid`, `origin` and `order_key` and giving them
/// local `id` and `seq`.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// Local to this store: a pulled run gets the next free id when it arrives.
    pub id: RunId,
    /// The run's identity in every store (a UUIDv7, text form).
    pub uuid: String,
    /// Who recorded it. For a run recorded here, this store's id.
    pub origin: Origin,
    /// Brought in from another store by a pull: read-only here.
    pub pulled: bool,
    /// The run's place in time across stores (start time in microseconds, kept increasing
    /// within its store); lineage and path heads order runs by `(order_key, id)`.
    pub order_key: i64,
    /// 1-based position among all runs in id order: the `N` of `@N`.
    pub seq: i64,
    pub label: Option<String>,
    pub command: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub backend: String,
    pub backend_reason: Option<String>,
    pub started_at_ms: i64,
    pub git: Option<GitInfo>,
    pub env: Vec<(String, Option<String>)>,
    pub openjd: Option<OpenJdContext>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// `None` until the run is finished.
    pub duration_ms: Option<u64>,
    pub complete: bool,
    /// [`Store::finish_run`](crate::Store::finish_run) was called for this run.
    pub finished: bool,
    pub warnings: Vec<String>,
    pub inputs: Vec<FileRecord>,
    pub outputs: Vec<FileRecord>,
    pub processes: Vec<ProcessRecord>,
    pub trace_dir: Option<Vec<u8>>,
    pub roar_pid: u32,
}

impl Run {
    /// True when `other` records the same run with the same content: everything that travels
    /// between stores (not the local `id`, `seq`, `pulled` flag or trace directory).
    pub fn same_content(&self, other: &Run) -> bool {
        self.uuid == other.uuid
            && self.origin == other.origin
            && self.order_key == other.order_key
            && self.label == other.label
            && self.command == other.command
            && self.cwd == other.cwd
            && self.backend == other.backend
            && self.backend_reason == other.backend_reason
            && self.started_at_ms == other.started_at_ms
            && self.git == other.git
            && self.env == other.env
            && self.openjd == other.openjd
            && self.exit_code == other.exit_code
            && self.signal == other.signal
            && self.duration_ms == other.duration_ms
            && self.complete == other.complete
            && self.finished == other.finished
            && self.warnings == other.warnings
            && self.inputs == other.inputs
            && self.outputs == other.outputs
            && self.processes == other.processes
            && self.roar_pid == other.roar_pid
    }

    /// The run as the two records it was written from.
    pub(crate) fn split(&self) -> (NewRun, RunResult) {
        (
            NewRun {
                label: self.label.clone(),
                command: self.command.clone(),
                cwd: self.cwd.clone(),
                backend: self.backend.clone(),
                backend_reason: self.backend_reason.clone(),
                started_at_ms: self.started_at_ms,
                git: self.git.clone(),
                env: self.env.clone(),
                trace_dir: None,
                roar_pid: self.roar_pid,
                openjd: self.openjd.clone(),
            },
            RunResult {
                exit_code: self.exit_code,
                signal: self.signal,
                duration_ms: self.duration_ms.unwrap_or(0),
                complete: self.complete,
                warnings: self.warnings.clone(),
                inputs: self.inputs.clone(),
                outputs: self.outputs.clone(),
                processes: self.processes.clone(),
            },
        )
    }
}

/// What this store has exchanged with one team store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RemoteMark {
    /// Local runs with a `finished_seq` up to this are on the remote.
    pub pushed_seq: i64,
    /// The remote's position (transaction id, row sequence) up to which its runs were pulled.
    pub pulled_tx: i64,
    pub pulled_seq: i64,
}

/// A finished local run waiting to be pushed: cheap to list, so that a push can be planned
/// before any run is read in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The order in which local runs were finished (push sends them in this order).
    pub finished_seq: i64,
    pub id: RunId,
    pub uuid: String,
    /// Input, output and process rows: a measure of how big the run is to send.
    pub rows: u64,
}

/// What [`Store::insert_pulled`](crate::Store::insert_pulled) did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inserted {
    /// New runs written.
    pub runs: u64,
    /// Runs that were already here with the same content (no-ops).
    pub already_present: u64,
}

/// A file's identity and version as `stat` sees it: the hash-cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}
