//! What a PATH-or-REF argument names (`roar lineage`, `reproduce`, `sources`): a run, or the
//! recorded content version at a path to walk upstream from.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use dag::{Start, Store};

use crate::error::{Error, Result, io};
use crate::hashing;

/// How the file at a path relates to what was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathState {
    /// Its current content is a recorded version.
    Recorded,
    /// It holds content no run recorded; the newest recorded version stands in.
    Unrecorded,
    /// It is gone; its newest recorded version stands in.
    Missing,
}

impl PathState {
    pub fn name(self) -> &'static str {
        match self {
            PathState::Recorded => "recorded",
            PathState::Unrecorded => "unrecorded",
            PathState::Missing => "missing",
        }
    }
}

/// What a PATH-or-REF argument names.
pub struct Target {
    pub start: Start,
    /// For a path: the path, its state and its current hash.
    pub path: Option<(Vec<u8>, PathState, Option<String>)>,
}

/// `latest`, `@N` and run ids name runs, as everywhere else; anything else is a path.
pub fn is_run_ref(arg: &str) -> bool {
    arg == "latest"
        || arg.strip_prefix('@').is_some_and(|d| !d.is_empty())
        || (!arg.is_empty() && arg.bytes().all(|b| b.is_ascii_digit()))
}

/// The current content hash of a regular file, through the hash cache.
pub fn current_hash(store: &Store, path: &Path) -> Result<Option<String>> {
    let md = match std::fs::metadata(path) {
        Ok(md) if md.is_file() => md,
        Ok(_) => {
            return Err(Error::Invalid(format!(
                "{} is not a regular file",
                path.display()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("cannot stat {}", path.display()))(e)),
    };
    let key = hashing::file_key(&md);
    if let Some(h) = store.hash_cache_get(&key)? {
        return Ok(Some(h));
    }
    let h = hashing::hash_file(path, key.size)
        .map_err(io(format!("cannot hash {}", path.display())))?;
    // A read-only store still answers; the cache is only an optimisation,
    // and only right while the file is what was hashed.
    if h.after == Some(key) {
        let _ = store.hash_cache_put(&[(key, h.hash.clone())]);
    }
    Ok(Some(h.hash))
}

/// `arg` is an OsStr because a path need not be UTF-8; a run REF always is.
pub fn resolve(store: &Store, arg: &OsStr, cwd: &Path) -> Result<Target> {
    if let Some(r) = arg.to_str().filter(|r| is_run_ref(r)) {
        let id = store.resolve_ref(r, cwd)?;
        return Ok(Target {
            start: Start::Run(id),
            path: None,
        });
    }
    let path = dag::absolute_normal(Path::new(arg), cwd);
    let bytes = path.as_os_str().as_bytes().to_vec();
    let now = current_hash(store, &path)?;
    if let Some(h) = &now
        && let Some(version) = store.version_of_hash(h)?
    {
        return Ok(Target {
            start: Start::Artifact {
                version,
                path: bytes.clone(),
            },
            path: Some((bytes, PathState::Recorded, now)),
        });
    }
    let state = if now.is_some() {
        PathState::Unrecorded
    } else {
        PathState::Missing
    };
    match store.latest_at_path(&bytes)? {
        Some((link, _)) => Ok(Target {
            start: Start::Artifact {
                version: link.version,
                path: bytes.clone(),
            },
            path: Some((bytes, state, now)),
        }),
        None if now.is_some() => Err(Error::Invalid(format!(
            "{}: its content was never recorded, and no recorded run read or wrote this path",
            path.display()
        ))),
        None => Err(Error::Invalid(format!(
            "{}: no such file, and no recorded run read or wrote this path",
            path.display()
        ))),
    }
}
