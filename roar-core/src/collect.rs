//! From trace streams to a run's result: processes, inputs and outputs
//! with their hashes. It needs no live child: `roar run` passes the
//! command's pid, how it ended and the processes still running; recovery
//! and `roar ingest` pass what they know.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use dag::{FileKey, FileRecord, ProcessRecord, RunResult, Store};
use tracer_wire::ExitStatus;

use crate::analysis::{self, Access, Proc};
use crate::config::Config;
use crate::filter::Filter;
use crate::hashing;
use crate::location::Location;
use crate::paths::{as_path, is_under, to_bytes};
use crate::spawn::Ended;
use crate::words::{join_pids, plural};

/// How the traced command ended, as `roar run` saw it.
pub struct Ending<'a> {
    pub pid: i32,
    pub ended: Ended,
    /// Processes of the run still alive when the command ended.
    pub lingering: &'a [u32],
}

/// What a collection found that the run's record must say: `losses` make
/// the run incomplete, `warnings` do not.
#[derive(Default)]
pub struct Notes {
    pub losses: Vec<String>,
    pub warnings: Vec<String>,
}

/// Every stream in `trace_dir`; a directory that cannot be read is a loss.
pub fn read_trace(trace_dir: &Path, notes: &mut Notes) -> Vec<(String, Vec<u8>)> {
    match analysis::read_dir(trace_dir) {
        Ok(s) => s,
        Err(e) => {
            notes.losses.push(format!(
                "the trace in {} could not be read: {e}",
                trace_dir.display()
            ));
            Vec::new()
        }
    }
}

/// Decides inputs, outputs and processes from trace streams and hashes the
/// files that need it.
pub fn collect(
    store: &Store,
    loc: &Location,
    cfg: &Config,
    streams: &[(String, Vec<u8>)],
    top: Option<Ending<'_>>,
    notes: &mut Notes,
) -> RunResult {
    let summary = analysis::analyze(streams);
    notes.losses.extend(summary.warnings.iter().cloned());
    notes.warnings.extend(summary.notes.iter().cloned());
    if summary.procs.is_empty() && notes.losses.is_empty() {
        notes.losses.push("the tracer recorded no process (under preload: the library was not loaded into the command; is it built for this architecture?)".into());
    }
    let mut processes: Vec<ProcessRecord> = summary.procs.iter().map(process_record).collect();
    if let Some(top) = &top {
        apply_ending(&mut processes, top, notes);
    }
    // Paths are compared resolved, as `candidates` resolves the run's.
    let real = |p: &[u8]| {
        let mut dirs = Default::default();
        real_path(p, &mut dirs)
    };
    let root = real(&to_bytes(&loc.root));
    let home = std::env::var_os("HOME").map(|h| h.as_bytes().to_vec());
    let filter = Filter::new(&root, home.as_deref(), &cfg.filter.ignore, &cfg.filter.keep);
    let own: Vec<Vec<u8>> = loc.own_paths().iter().map(|p| real(p)).collect();
    let mut files = candidates(&summary.files, &filter, &own);
    hash_files(store, &mut files, notes);
    RunResult {
        inputs: files.inputs,
        outputs: files.outputs,
        processes,
        ..Default::default()
    }
}

/// What the run used beyond its inputs: the packages its hidden files belong to and, for a
/// run recorded here and now, this machine.
pub fn environment(result: &RunResult, on_this_host: bool) -> dag::Environment {
    let hidden = result.inputs.iter().filter(|f| f.filtered);
    dag::Environment {
        packages: crate::packages::used(hidden.map(|f| f.path.as_slice())),
        host: on_this_host.then(crate::host::facts),
    }
}

fn process_record(p: &Proc) -> ProcessRecord {
    let (exit_code, signal) = match p.status {
        Some(ExitStatus::Code(c)) => (Some(c), None),
        Some(ExitStatus::Signal(s)) => (None, Some(s)),
        None => (None, None),
    };
    ProcessRecord {
        pid: p.pid,
        ppid: p.ppid,
        exe: p.exe.clone(),
        argv: p.argv.clone(),
        cwd: p.cwd.clone(),
        exit_code,
        signal,
        started_ns: p.started_ns,
    }
}

/// The command's own ending wins over its trace's; processes still running
/// are a loss.
fn apply_ending(procs: &mut [ProcessRecord], top: &Ending<'_>, notes: &mut Notes) {
    let lingering = top.lingering;
    if !lingering.is_empty() {
        let one = lingering.len() == 1;
        notes.losses.push(format!(
            "{} (pid {}) {} still running when the command ended; what {} from now on is not recorded",
            plural(lingering.len(), "process", "processes"),
            join_pids(lingering),
            if one { "was" } else { "were" },
            if one { "it does" } else { "they do" }
        ));
    }
    if let Some(p) = procs.iter_mut().rev().find(|p| p.pid == top.pid as u32) {
        match top.ended {
            Ended::Code(c) => (p.exit_code, p.signal) = (Some(c), None),
            Ended::Signal(s) => (p.exit_code, p.signal) = (None, Some(s)),
        }
    }
}

/// The accesses by the file's real path: a path reached through symlinks
/// (a symlinked directory, or a symlink to the file itself) is recorded
/// under its resolved path, so one file is one path under every backend;
/// accesses to one file by several names are merged. Directories are
/// resolved once each; a file that no longer exists keeps its name in its
/// resolved directory. In the order the run first touched them.
fn resolved(files: &std::collections::BTreeMap<Vec<u8>, Access>) -> Vec<(Vec<u8>, Access)> {
    let mut dirs: std::collections::HashMap<&[u8], Option<Vec<u8>>> = Default::default();
    let mut seen: std::collections::HashMap<Vec<u8>, usize> = Default::default();
    let mut out: Vec<(Vec<u8>, Access)> = Vec::new();
    let mut order: Vec<(&Vec<u8>, &Access)> = files.iter().collect();
    order.sort_by_key(|(_, a)| a.first_seen);
    for (path, acc) in order {
        let real = real_path(path, &mut dirs);
        match seen.get(&real) {
            Some(&i) => merge(&mut out[i].1, acc),
            None => {
                seen.insert(real.clone(), out.len());
                out.push((real, acc.clone()));
            }
        }
    }
    out
}

/// `path` with its directory resolved (cached per directory) and, when the
/// file itself is a symlink, resolved in full.
fn real_path<'p>(
    path: &'p [u8],
    dirs: &mut std::collections::HashMap<&'p [u8], Option<Vec<u8>>>,
) -> Vec<u8> {
    let canon = |p: &[u8]| std::fs::canonicalize(as_path(p)).ok().map(|c| to_bytes(&c));
    if std::fs::symlink_metadata(as_path(path)).is_ok_and(|m| m.file_type().is_symlink())
        && let Some(c) = canon(path)
    {
        return c;
    }
    let Some(slash) = path.iter().rposition(|b| *b == b'/').filter(|&i| i > 0) else {
        return path.to_vec();
    };
    let (dir, name) = path.split_at(slash);
    match dirs.entry(dir).or_insert_with(|| canon(dir)) {
        Some(real) if real.as_slice() != dir => [real.as_slice(), name].concat(),
        _ => path.to_vec(),
    }
}

/// Folds the accesses `b` made under another name of the same file into `a`
/// (which came first).
fn merge(a: &mut Access, b: &Access) {
    if a.read_as.is_none() && !a.written {
        a.read_as = b.read_as;
    }
    a.written |= b.written;
    a.changed |= b.changed;
    a.opened_as = a.opened_as.or(b.opened_as);
    if b.content.is_some() {
        a.content = b.content.clone();
    }
}

/// A file whose hash is to be decided.
struct Pending {
    path: Vec<u8>,
    is_output: bool,
    /// The file's identity when the run first read it (inputs).
    read_as: Option<FileKey>,
    /// Its hash as read, when a backend took it before the run changed it.
    as_read: Option<String>,
}

/// Inputs and outputs so far: hidden ones complete (kept without a hash),
/// the rest still to be hashed.
struct Files {
    inputs: Vec<FileRecord>,
    outputs: Vec<FileRecord>,
    pending: Vec<Pending>,
}

fn hidden(path: &[u8], size: u64) -> FileRecord {
    FileRecord {
        path: path.to_vec(),
        hash: None,
        size: Some(size),
        filtered: true,
    }
}

/// Which accessed paths are inputs and outputs: outputs are written paths
/// that are regular files now and whose content changed (a file only opened
/// for writing is not one); inputs are paths whose original content was read. roar's own
/// files are neither.
fn candidates(
    files: &std::collections::BTreeMap<Vec<u8>, Access>,
    filter: &Filter,
    own: &[Vec<u8>],
) -> Files {
    let mut out = Files {
        inputs: Vec::new(),
        outputs: Vec::new(),
        pending: Vec::new(),
    };
    for (path, acc) in &resolved(files) {
        if own.iter().any(|o| is_under(path, o)) {
            continue;
        }
        let hides = filter.hides(path);
        if acc.written
            && let Ok(md) = std::fs::symlink_metadata(as_path(path))
            && md.is_file()
            && (acc.changed
                || acc
                    .opened_as
                    .is_none_or(|o| hashing::key_of_stat(&o) != hashing::file_key(&md)))
        {
            if hides {
                out.outputs.push(hidden(path, md.len()));
            } else {
                out.pending.push(Pending {
                    path: path.clone(),
                    is_output: true,
                    read_as: None,
                    as_read: None,
                });
            }
        }
        if let Some(st) = acc.read_as {
            if hides {
                out.inputs.push(hidden(path, st.size));
            } else {
                let key = hashing::key_of_stat(&st);
                out.pending.push(Pending {
                    path: path.clone(),
                    is_output: false,
                    read_as: Some(key),
                    as_read: acc
                        .content
                        .as_ref()
                        .filter(|(c, _)| hashing::key_of_stat(c) == key)
                        .map(|(_, h)| h.clone()),
                });
            }
        }
    }
    out
}

/// One file to hash: which record it fills, where it is, how big.
struct Job {
    record: usize,
    path: PathBuf,
    size: u64,
}

/// Decides, for each pending file, whether its current content is what the
/// record wants (an output's content now; an input's as read, when the file
/// is still what was read), takes hashes from the cache where the file's
/// identity matches, and hashes the rest in parallel.
fn hash_files(store: &Store, files: &mut Files, notes: &mut Notes) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut records: Vec<(bool, FileRecord, Option<FileKey>)> = Vec::new();
    for f in std::mem::take(&mut files.pending) {
        let p = as_path(&f.path).to_path_buf();
        let now = std::fs::metadata(&p)
            .ok()
            .filter(|m| m.is_file())
            .map(|m| hashing::file_key(&m));
        // The identity the hash must belong to: an output's now, an input's
        // as read.
        let key = match (f.is_output, f.read_as, now) {
            (true, _, Some(k)) => k,
            (false, Some(rk), _) => rk,
            _ => continue,
        };
        let i = records.len();
        let rec = FileRecord {
            path: f.path,
            hash: f
                .as_read
                .or_else(|| store.hash_cache_get(&key).ok().flatten()),
            size: Some(key.size),
            filtered: false,
        };
        if rec.hash.is_none() {
            if f.is_output || now == Some(key) {
                jobs.push(Job {
                    record: i,
                    path: p,
                    size: key.size,
                });
            } else {
                notes.warnings.push(format!(
                    "{} changed during the run before roar could hash it; its content as read is unknown",
                    String::from_utf8_lossy(&rec.path)
                ));
            }
        }
        records.push((f.is_output, rec, Some(key)));
    }
    hash_jobs(store, &jobs, &mut records, notes);
    for (is_output, rec, _) in records {
        if is_output {
            files.outputs.push(rec)
        } else {
            files.inputs.push(rec)
        }
    }
}

/// Hashes `jobs` in parallel into their records, and caches each hash
/// whose file is still what was hashed.
fn hash_jobs(
    store: &Store,
    jobs: &[Job],
    records: &mut [(bool, FileRecord, Option<FileKey>)],
    notes: &mut Notes,
) {
    let refs: Vec<(&Path, u64)> = jobs.iter().map(|j| (j.path.as_path(), j.size)).collect();
    let hashes = hashing::hash_many(&refs);
    let mut cache_new = Vec::new();
    for (j, h) in jobs.iter().zip(hashes) {
        match h {
            Ok(h) => {
                let rec = &mut records[j.record];
                rec.1.hash = Some(h.clone());
                if let Some(k) = rec.2
                    && std::fs::metadata(&j.path)
                        .ok()
                        .map(|m| hashing::file_key(&m))
                        == Some(k)
                {
                    cache_new.push((k, h));
                }
            }
            Err(e) => notes
                .warnings
                .push(format!("{} could not be hashed: {e}", j.path.display())),
        }
    }
    if let Err(e) = store.hash_cache_put(&cache_new) {
        notes.warnings.push(format!("hash cache not updated: {e}"));
    }
}
