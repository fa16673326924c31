//! Runs whose roar died: the run row was written before the command
//! started, and roar held a lock on the run's trace directory while it
//! lived. A later roar that can take that lock finishes the run from
//! whatever the trace holds, marked incomplete.

use std::path::{Path, PathBuf};

use dag::Store;

use crate::collect::{Notes, collect, read_trace};
use crate::{config, location};

/// How old an unclaimed trace directory must be before it is removed: a
/// roar that has just created its directory holds its lock a moment later.
const UNCLAIMED_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Finishes every unfinished run of `store` whose roar is gone, and removes
/// trace directories in `roar_dir/traces` that no run owns (a roar killed
/// before its run's row was written, or whose row could not be written).
pub fn recover(store: &Store, roar_dir: &Path) {
    let Ok(runs) = store.unfinished_runs() else {
        return;
    };
    let owned: std::collections::HashSet<Vec<u8>> =
        runs.iter().filter_map(|r| r.trace_dir.clone()).collect();
    sweep(&roar_dir.join("traces"), &owned);
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
        finish(store, run.id, &dir, lock);
    }
}

/// Why a run's roar could not finish it, when it knew: written into the
/// trace directory (a full disk, a store that refused the write), so that
/// recovery says so rather than "roar was killed".
const REASON_FILE: &str = ".unfinished";

/// Notes in `trace_dir` why its run could not be stored.
pub fn note_reason(trace_dir: &Path, reason: &str) {
    let _ = std::fs::write(trace_dir.join(REASON_FILE), reason);
}

/// Finishes run `id` from its trace in `dir`, unless a process of the run
/// is still alive: then it is left for a later roar, so that nothing the
/// run still does is cut off and its trace is not deleted under it.
fn finish(store: &Store, id: dag::RunId, dir: &Path, lock: std::fs::File) {
    // Its roar may have finished it, and let the lock go, since the list of
    // unfinished runs was read: with the lock held now, the store says.
    if !store.run(id).is_ok_and(|r| !r.finished) {
        return;
    }
    let Some(loc) = location::find(dir) else {
        return;
    };
    let cause = match std::fs::read_to_string(dir.join(REASON_FILE)) {
        Ok(r) => format!(
            "roar could not store the run when it ended ({}); recorded what its trace held",
            r.trim()
        ),
        Err(_) => "roar was killed before the run ended; recorded what its trace held".to_string(),
    };
    let mut notes = Notes {
        losses: vec![cause],
        warnings: Vec::new(),
    };
    let streams = read_trace(dir, &mut notes);
    let summary = crate::analysis::analyze(&streams);
    if still_alive(dir, &summary) {
        return;
    }
    let cfg = config::load(&loc.roar_dir()).unwrap_or_default();
    let mut result = collect(store, &loc, &cfg, &streams, None, &mut notes);
    // The trace holds how the command (its first process) ended, and when
    // its last record was written.
    if let Some(root) = summary.procs.first() {
        if let Some(p) = result.processes.iter().find(|p| p.pid == root.pid) {
            result.exit_code = p.exit_code;
            result.signal = p.signal;
        }
        result.duration_ms = summary.last_ns.saturating_sub(root.started_ns) / 1_000_000;
    }
    result.complete = false;
    result.warnings = notes.losses.into_iter().chain(notes.warnings).collect();
    if store.finish_run(id, &result).is_ok() {
        drop(lock);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// True when a process of the run whose partial trace is `summary` is still
/// alive: one that carries the trace directory in its environment
/// (preload), or one the trace saw start and not end whose pid is alive
/// and was started when the trace says (eBPF, and anything the command left
/// running).
fn still_alive(dir: &Path, summary: &crate::analysis::Summary) -> bool {
    if crate::backend::preload::any_alive_with_trace_dir(dir) {
        return true;
    }
    let offset = boottime_minus_monotonic_ns();
    summary
        .procs
        .iter()
        .filter(|p| p.status.is_none())
        .any(|p| {
            started_at_ns(p.pid)
                .is_some_and(|s| s.abs_diff(p.started_ns.saturating_add(offset)) < 2_000_000_000)
        })
}

/// When process `pid` started, in CLOCK_BOOTTIME nanoseconds (field 22 of
/// /proc/PID/stat, in clock ticks); None when it is gone or a zombie (dead,
/// not yet reaped: where pid 1 does not reap orphans, that is forever).
pub(crate) fn started_at_ns(pid: u32) -> Option<u64> {
    let stat = crate::spawn::proc_stat(pid)?;
    let mut fields = stat.split_whitespace();
    if matches!(fields.next(), Some("Z" | "X")) {
        return None;
    }
    let ticks: u64 = fields.nth(18)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * (1_000_000_000 / hz))
}

/// CLOCK_BOOTTIME minus CLOCK_MONOTONIC (time spent suspended), to compare
/// trace timestamps with process start times.
pub(crate) fn boottime_minus_monotonic_ns() -> u64 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec we pass.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    read(libc::CLOCK_BOOTTIME).saturating_sub(read(libc::CLOCK_MONOTONIC))
}

/// Removes the `run-*` directories below `traces` that no unfinished run
/// owns, once they are old enough and their lock is free.
fn sweep(traces: &Path, owned: &std::collections::HashSet<Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(traces) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let unclaimed = e.file_name().as_encoded_bytes().starts_with(b"run-")
            && !owned.contains(&crate::paths::to_bytes(&path))
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > UNCLAIMED_AGE));
        if unclaimed && let Ok(Some(_lock)) = try_lock_dir(&path) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Below `traces`: the trace directories of runs already stored, waiting to
/// be removed by the next `roar run` while its command runs. Removing a
/// trace is one unlink per process (60-85 ms for a loop of 1,000 programs
/// with the store on this machine's ext4, 0.4 ms for `git status`) that the
/// user waited for after the run was recorded.
pub const SPENT: &str = "spent";

/// Traces larger than this are removed at once rather than left for the
/// next run: their space matters more than the wait.
const SPENT_MAX_BYTES: u64 = 64 << 20;

/// Removes the stored run's trace directory `dir`, or moves it into
/// [`SPENT`] beside it when it is small, for [`clear_spent`] to remove.
pub fn retire(dir: &Path) {
    let small = std::fs::read_dir(dir).is_ok_and(|entries| {
        let mut total = 0u64;
        entries.flatten().all(|e| {
            total += e.metadata().map_or(u64::MAX, |m| m.len());
            total <= SPENT_MAX_BYTES
        })
    });
    if small && let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) {
        let spent = parent.join(SPENT);
        let _ = std::fs::create_dir(&spent);
        if std::fs::rename(dir, spent.join(name)).is_ok() {
            return;
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Removes the spent traces below `roar_dir/traces` on a thread of its own,
/// which a roar ending first just leaves unfinished (the next run goes on).
pub fn clear_spent(roar_dir: &Path) {
    let spent = roar_dir.join("traces").join(SPENT);
    if std::fs::symlink_metadata(&spent).is_ok_and(|m| m.is_dir()) {
        let _ = std::thread::Builder::new()
            .name("roar-spent".into())
            .spawn(move || {
                let Ok(entries) = std::fs::read_dir(&spent) else {
                    return;
                };
                for e in entries.flatten() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            });
    }
}

/// Locks a run's trace directory for as long as the returned file is open:
/// a later roar that can take the lock knows this one died.
pub fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    let f = std::fs::File::create(dir.join(".lock"))?;
    f.lock()?;
    Ok(f)
}

/// A new directory for one run's trace under `parent`, named `run-<pid>-<ms>-<n>`. The
/// preload library reads the run's start (`<ms>`) from this name to tell files that existed
/// before the run (hashed before it destroys them) from its own (tracer-preload
/// `content.rs`): change the two together.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's trace directory below `traces`, holding one stream of `len`
    /// bytes (sparse: its size is what counts).
    fn trace(traces: &Path, name: &str, len: u64) -> PathBuf {
        let dir = traces.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let f = std::fs::File::create(dir.join("1.rwt")).unwrap();
        f.set_len(len).unwrap();
        dir
    }

    #[test]
    fn a_small_trace_waits_in_spent_a_large_one_goes_at_once() {
        let d = tempfile::tempdir().unwrap();
        let traces = d.path().join("traces");
        let small = trace(&traces, "run-1-1-0", 4096);
        retire(&small);
        assert!(!small.exists());
        assert!(traces.join(SPENT).join("run-1-1-0/1.rwt").exists());
        let large = trace(&traces, "run-2-2-0", SPENT_MAX_BYTES + 1);
        retire(&large);
        assert!(!large.exists());
        assert!(!traces.join(SPENT).join("run-2-2-0").exists());

        clear_spent(d.path());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while traces.join(SPENT).join("run-1-1-0").exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "spent trace not removed"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}
