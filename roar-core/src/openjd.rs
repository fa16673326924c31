//! What a run learns from the OpenJD session it runs in: the session
//! directory the runtime exports, its id (that directory's name), the step
//! (the wrap template passes it as the label), and the environments the
//! session entered, which `roar openjd env-action` notes in a file per
//! session beside the store.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use dag::OpenJdContext;

/// Where `roar openjd env-action` notes the environments each session entered.
pub const SESSIONS_DIR: &str = "openjd-sessions";

/// The file listing the environments a session entered.
fn session_file(roar_dir: &Path, session: &str) -> PathBuf {
    roar_dir
        .join(SESSIONS_DIR)
        .join(format!("{session}.environments"))
}

/// The OpenJD context of a run started inside a session: the runtime sets
/// `OPENJD_SESSION_WORKING_DIR`; the session id is that directory's name
/// (the runtimes do not export the id itself).
pub fn context(
    vars: &[(OsString, OsString)],
    step: Option<&str>,
    roar_dir: &Path,
) -> Option<OpenJdContext> {
    let wd = vars
        .iter()
        .find(|(k, _)| k == "OPENJD_SESSION_WORKING_DIR")
        .map(|(_, v)| PathBuf::from(v))?;
    let session = wd.file_name().map(|n| n.to_string_lossy().into_owned());
    let environments = session
        .as_deref()
        .and_then(|s| std::fs::read_to_string(session_file(roar_dir, s)).ok())
        .map(|t| t.lines().map(str::to_owned).collect())
        .unwrap_or_default();
    Some(OpenJdContext {
        session_id: session,
        working_dir: Some(wd.as_os_str().as_bytes().to_vec()),
        step: step.map(str::to_owned),
        environments,
    })
}

/// Notes that the session whose directory is `working_dir` entered the
/// environment `name`, for the runs that follow. Best effort: a context
/// that cannot be noted must not fail the environment's action.
pub fn note_environment(roar_dir: &Path, working_dir: &Path, name: &str) {
    let Some(session) = working_dir.file_name() else {
        return;
    };
    let file = session_file(roar_dir, &session.to_string_lossy());
    let _ = std::fs::create_dir_all(file.parent().unwrap_or(Path::new("/")));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&file)
    {
        use std::io::Write as _;
        let _ = writeln!(f, "{}", name.replace('\n', " "));
    }
}
