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

/// A stored run, as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub id: RunId,
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

/// A file's identity and version as `stat` sees it: the hash-cache key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}
