//! Runs whose roar died: the run row was written before the command
//! started, and roar held a lock on the run's trace directory while it
//! lived. A later roar that can take that lock finishes the run from
//! whatever the trace holds, marked incomplete.

use std::path::{Path, PathBuf};

use dag::Store;

use crate::collect::{Notes, collect, read_trace};
use crate::{config, location};

/// Finishes every unfinished run of `store` whose roar is gone.
pub fn recover(store: &Store) {
    let Ok(runs) = store.unfinished_runs() else {
        return;
    };
    for run in runs {
        let Some(dir) = run
            .trace_dir
            .as_ref()
            .map(|d| crate::paths::as_path(d).to_path_buf())
        else {
            continue;
        };
        let Ok(Some(lock)) = try_lock_dir(&dir) else {
            continue; // gone, or still running
        };
        let Some(loc) = location::find(&dir) else {
            continue;
        };
        let cfg = config::load(&loc.roar_dir()).unwrap_or_default();
        let mut notes = Notes {
            losses: vec![
                "roar was killed before the run ended; recorded what its trace held".to_string(),
            ],
            warnings: Vec::new(),
        };
        let streams = read_trace(&dir, &mut notes);
        let mut result = collect(store, &loc, &cfg, &streams, None, &mut notes);
        result.complete = false;
        result.warnings = notes.losses.into_iter().chain(notes.warnings).collect();
        if store.finish_run(run.id, &result).is_ok() {
            drop(lock);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Locks a run's trace directory for as long as the returned file is open:
/// a later roar that can take the lock knows this one died.
pub fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::File::create(dir.join(".lock"))?;
    f.lock()?;
    Ok(f)
}

/// A new directory for one run's trace under `parent`.
pub fn tempdir_in(parent: &Path) -> std::io::Result<PathBuf> {
    let mut n: u32 = 0;
    loop {
        let name = format!("run-{}-{}-{n}", std::process::id(), crate::time::now_ms());
        let p = parent.join(name);
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

fn try_lock_dir(dir: &Path) -> std::io::Result<Option<std::fs::File>> {
    if !dir.is_dir() {
        return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(".lock"))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
