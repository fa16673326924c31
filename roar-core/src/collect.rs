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
use crate::prehash::Hashes;
use crate::resolve::{Now, Resolution, Resolver};
use crate::spawn::Ended;
use crate::words::{join_pids, plural};

/// How the traced command ended, as `roar run` saw it.
pub struct Ending<'a> {
    pub pid: i32,
    pub ended: Ended,
    /// Processes of the run still alive when the command ended.
    pub lingering: &'a [u32],
    /// The files hashed while the command ran.
    pub early: &'a Hashes,
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

/// Where the trace was written, for deciding whether a file at a traced
/// path is the file the trace saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Here (`roar run`, recovery): a path names the same file as in the run.
    Here,
    /// Perhaps in another mount namespace (a container, a pod; `roar
    /// ingest`): a traced path may not exist here, or name another file.
    /// `started_ns`: when the traced tree started (wall clock, ns).
    Elsewhere { started_ns: u64 },
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
    collect_seen(store, loc, cfg, streams, top, Seen::Here, notes)
}

/// Which paths a run's record keeps without a hash (the filter) and which
/// are roar's own (never inputs or outputs), resolved as `collect` resolves
/// the run's paths.
pub fn scope(loc: &Location, cfg: &Config) -> (Filter, Vec<Vec<u8>>) {
    let real = |p: &[u8]| Resolver::default().real_path(p);
    let root = real(&to_bytes(&loc.root));
    let home = std::env::var_os("HOME").map(|h| h.as_bytes().to_vec());
    let filter = Filter::new(&root, home.as_deref(), &cfg.filter.ignore, &cfg.filter.keep);
    let own = loc.own_paths().iter().map(|p| real(p)).collect();
    (filter, own)
}

/// [`collect`] of a trace written where `seen` says: a traced file that is
/// not visible here (missing, or not the file the trace saw) is recorded
/// by path with no hash, and one warning names them.
pub fn collect_seen(
    store: &Store,
    loc: &Location,
    cfg: &Config,
    streams: &[(String, Vec<u8>)],
    top: Option<Ending<'_>>,
    seen: Seen,
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
    let none = Hashes::default();
    let early = top.as_ref().map_or(&none, |t| t.early);
    let (filter, own) = scope(loc, cfg);
    let mut files = candidates(&summary.files, &filter, &own, seen);
    hash_files(store, &mut files, seen, early, notes);
    RunResult {
        inputs: files.inputs,
        outputs: files.outputs,
        processes,
        ..Default::default()
    }
}

/// What the run used beyond its inputs: the packages its hidden files belong to and, for a
/// run recorded here and now, this machine.
/// `container`: the container the run ran in, when roar knows (None on the host).
pub fn environment(
    result: &RunResult,
    host: Option<dag::Host>,
    container: Option<dag::Container>,
) -> dag::Environment {
    let hidden = result.inputs.iter().filter(|f| f.filtered);
    dag::Environment {
        packages: crate::packages::used(hidden.map(|f| f.path.as_slice())),
        host,
        container,
    }
}

/// The machine a run runs on and the container it is in, and dpkg's file
/// index loaded: none of it depends on the command, so it is read on a thread
/// of its own while the command runs (about half a millisecond otherwise
/// spent after it, most of it /proc/cpuinfo and the index; more where
/// `nvidia-smi` runs). Not when `alongside` is false: a backend that reaps
/// any child would reap `nvidia-smi`, so it is all read after the command.
pub struct Machine(Option<std::thread::JoinHandle<(dag::Host, Option<dag::Container>)>>);

impl Machine {
    pub fn start(alongside: bool) -> Machine {
        let read = || {
            crate::packages::warm();
            machine_facts()
        };
        Machine(
            alongside
                .then(|| {
                    std::thread::Builder::new()
                        .name("roar-machine".into())
                        .spawn(read)
                        .ok()
                })
                .flatten(),
        )
    }

    pub fn finish(self) -> (dag::Host, Option<dag::Container>) {
        self.0
            .and_then(|h| h.join().ok())
            .unwrap_or_else(machine_facts)
    }
}

fn machine_facts() -> (dag::Host, Option<dag::Container>) {
    (crate::host::facts(), crate::container::current())
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

/// An accessed path resolved (directories and a symlinked file followed)
/// and what is there now (stat'ed once, after the run, for every later
/// decision: output or not, its identity for the hash and the cache).
struct Resolved {
    path: Vec<u8>,
    access: Access,
    /// What the resolved path is now when it is a regular file, symlinks
    /// followed; None when gone or not a file.
    now: Option<Now>,
}

/// From this many paths on, they are resolved on several threads (each
/// `lstat` is a system call; the kernel runs them side by side).
const PARALLEL_FROM: usize = 2048;

fn resolved(files: &std::collections::BTreeMap<Vec<u8>, Access>) -> Vec<Resolved> {
    // Stat'ed in path order (the files of a directory together), a run of
    // paths per thread, merged in the order the run first used them.
    let entries: Vec<(&Vec<u8>, &Access)> = files.iter().collect();
    let threads = if entries.len() < PARALLEL_FROM {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    };
    let resolve_run = |run: &[(&Vec<u8>, &Access)]| -> Vec<Resolution> {
        let mut resolver = Resolver::holding(crate::resolve::OPEN_DIRS / threads);
        run.iter()
            .map(|(p, a)| {
                if a.gone {
                    resolver.resolve_removed(p)
                } else {
                    resolver.resolve(p)
                }
            })
            .collect()
    };
    let stats: Vec<Resolution> = if threads == 1 {
        resolve_run(&entries)
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = entries
                .chunks(entries.len().div_ceil(threads))
                .map(|run| s.spawn(move || resolve_run(run)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut order: Vec<(&Access, Resolution)> = files.values().zip(stats).collect();
    order.sort_by_key(|(a, _)| a.first_seen);
    let mut seen: crate::FastMap<Vec<u8>, usize> = Default::default();
    let mut out: Vec<Resolved> = Vec::new();
    for (acc, (real, now)) in order {
        match seen.get(&real) {
            Some(&i) => {
                merge(&mut out[i].access, acc);
                // Removed under one name, there under another.
                if out[i].now.is_none() {
                    out[i].now = now;
                }
            }
            None => {
                seen.insert(real.clone(), out.len());
                out.push(Resolved {
                    path: real,
                    access: acc.clone(),
                    now,
                });
            }
        }
    }
    out
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
    /// What is at `path` now, when it is a regular file.
    now: Option<Now>,
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
///
/// Traced elsewhere, a written path whose directory does not exist here is
/// an output that is not visible here (a path that exists in a directory
/// that does is what it is here: the run may have removed it).
fn candidates(
    files: &std::collections::BTreeMap<Vec<u8>, Access>,
    filter: &Filter,
    own: &[Vec<u8>],
    seen: Seen,
) -> Files {
    let mut out = Files {
        inputs: Vec::new(),
        outputs: Vec::new(),
        pending: Vec::new(),
    };
    for Resolved {
        path,
        access: acc,
        now,
    } in &resolved(files)
    {
        if own.iter().any(|o| is_under(path, o)) {
            continue;
        }
        let hides = filter.hides(path);
        let now = now.as_ref();
        if acc.written
            && let Some(md) = now
            && (acc.changed
                || acc
                    .opened_as
                    .is_none_or(|o| hashing::key_of_stat(&o) != md.key))
        {
            if hides {
                out.outputs.push(hidden(path, md.key.size));
            } else {
                out.pending.push(Pending {
                    path: path.clone(),
                    is_output: true,
                    now: now.cloned(),
                    read_as: None,
                    as_read: None,
                });
            }
        } else if acc.written
            && seen != Seen::Here
            && !hides
            && !as_path(path).parent().is_some_and(Path::is_dir)
        {
            out.pending.push(Pending {
                path: path.clone(),
                is_output: true,
                now: None,
                read_as: None,
                as_read: None,
            });
        }
        if let Some(st) = acc.read_as {
            if hides {
                out.inputs.push(hidden(path, st.size));
            } else {
                let key = hashing::key_of_stat(&st);
                out.pending.push(Pending {
                    path: path.clone(),
                    is_output: false,
                    now: now.cloned(),
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
/// identity matches, and hashes the rest in parallel. A file not visible
/// here ([`visible`]) is recorded without a hash.
fn hash_files(store: &Store, files: &mut Files, seen: Seen, early: &Hashes, notes: &mut Notes) {
    let mut jobs: Vec<Job> = Vec::new();
    let mut records: Vec<(bool, FileRecord, Option<FileKey>)> = Vec::new();
    let mut invisible: Vec<String> = Vec::new();
    let mut learned: Vec<(FileKey, String)> = Vec::new();
    // Every file's identity first, then the cache asked once for all of them.
    let pending: Vec<(Pending, PathBuf, Identity)> = std::mem::take(&mut files.pending)
        .into_iter()
        .map(|f| {
            let p = as_path(&f.path).to_path_buf();
            let id = identity(&f, f.now.as_ref(), seen);
            (f, p, id)
        })
        .collect();
    // The cache is asked only for what the run did not hash as it ran (asking
    // for all of a copied tree's 14,600 files was 6 ms).
    let early_hash = |f: &Pending, key: &FileKey| {
        let now = f.now.as_ref().filter(|n| n.key == *key)?;
        early.get(now)
    };
    let wanted: Vec<FileKey> = pending
        .iter()
        .filter(|(f, _, _)| f.as_read.is_none())
        .filter_map(|(f, _, id)| match id {
            Identity::Known { key, .. } if early_hash(f, key).is_none() => Some(*key),
            _ => None,
        })
        .collect();
    let cached: crate::FastMap<FileKey, String> = store
        .hash_cache_get_many(&wanted)
        .map(|hits| {
            wanted
                .iter()
                .zip(hits)
                .filter_map(|(k, h)| Some((*k, h?)))
                .collect()
        })
        .unwrap_or_default();
    for (mut f, p, id) in pending {
        let (key, now) = match id {
            Identity::Invisible => {
                invisible.push(String::from_utf8_lossy(&f.path).into_owned());
                let size = f.read_as.map(|k| k.size);
                let rec = FileRecord {
                    path: f.path,
                    hash: None,
                    size,
                    filtered: false,
                };
                records.push((f.is_output, rec, None));
                continue;
            }
            Identity::Unknown => continue,
            Identity::Known { key, now } => (key, now),
        };
        let i = records.len();
        let as_read = f.as_read.take();
        let hash = as_read
            .or_else(|| {
                // Hashed while the run ran, as the very file that is there now.
                let h = early_hash(&f, &key)?.to_string();
                learned.push((key, h.clone()));
                Some(h)
            })
            .or_else(|| cached.get(&key).cloned());
        let mut rec = FileRecord {
            path: f.path,
            hash,
            size: Some(key.size),
            filtered: false,
        };
        if rec.hash.is_none() && !f.is_output && now != Some(key) {
            // Changed since the run read it: hashed while the run ran, with
            // the identity it was read with, it is known as read.
            rec.hash = early.with_identity(&key).map(str::to_string);
        }
        if rec.hash.is_none() {
            if f.is_output || now == Some(key) {
                jobs.push(Job {
                    record: i,
                    path: p,
                    size: key.size,
                });
            } else {
                notes.warnings.push(format!(
                    "{} changed {} before roar could hash it; its content as read is unknown",
                    String::from_utf8_lossy(&rec.path),
                    if seen == Seen::Here {
                        "during the run"
                    } else {
                        "since the run read it"
                    }
                ));
            }
        }
        records.push((f.is_output, rec, Some(key)));
    }
    if !invisible.is_empty() {
        notes.warnings.push(not_visible(&invisible));
    }
    hash_jobs(store, &jobs, &mut records, learned, notes);
    for (is_output, rec, _) in records {
        if is_output {
            files.outputs.push(rec)
        } else {
            files.inputs.push(rec)
        }
    }
}

/// What a pending file is here.
enum Identity {
    /// Not the file the trace saw ([`visible`]).
    Invisible,
    /// No identity to hash against (an output that is gone, an input never stat'ed).
    Unknown,
    /// `key`: the identity the hash must belong to (an output's now, an input's as read);
    /// `now`: the file's identity now.
    Known { key: FileKey, now: Option<FileKey> },
}

fn identity(f: &Pending, md: Option<&Now>, seen: Seen) -> Identity {
    let now = md.map(|m| m.key);
    let (read_as, now) = match visible(f, md, seen) {
        Visible::No => return Identity::Invisible,
        // The same file through another mount: its identity here.
        Visible::Moved => (now, now),
        Visible::Yes => (f.read_as, now),
    };
    match (f.is_output, read_as, now) {
        (true, _, Some(key)) => Identity::Known { key, now },
        (false, Some(key), _) => Identity::Known { key, now },
        _ => Identity::Unknown,
    }
}

enum Visible {
    Yes,
    /// The file the trace read, here under another device number (another
    /// mount of the same filesystem): same inode, size and mtime.
    Moved,
    No,
}

/// How long before a traced tree started a file it wrote may have last
/// changed (the writer's clock against this one).
const CLOCK_SLACK_NS: i64 = 5_000_000_000;

/// Whether the file at a traced path here is the one the trace saw. Here:
/// always. Elsewhere: an input must exist with the inode, size and mtime
/// it was read with (then only its content can have changed since); an
/// output must exist and have changed (ctime, which no program can set
/// back) since the tree started.
fn visible(f: &Pending, md: Option<&Now>, seen: Seen) -> Visible {
    let Seen::Elsewhere { started_ns } = seen else {
        return Visible::Yes;
    };
    let Some(md) = md else {
        return Visible::No;
    };
    if f.is_output {
        return if md.ctime_ns + CLOCK_SLACK_NS < started_ns as i64 {
            Visible::No
        } else {
            Visible::Yes
        };
    }
    let Some(rk) = f.read_as else {
        return Visible::Yes;
    };
    let now = md.key;
    if now.ino != rk.ino {
        Visible::No
    } else if now.dev != rk.dev && now.size == rk.size && now.mtime_ns == rk.mtime_ns {
        Visible::Moved
    } else {
        Visible::Yes
    }
}

/// The warning for files the trace saw that are not here.
fn not_visible(paths: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut list = paths[..paths.len().min(SHOWN)].join(", ");
    if paths.len() > SHOWN {
        list.push_str(&format!(" and {} more", paths.len() - SHOWN));
    }
    format!(
        "{} the run used {} not visible here ({list}): the trace was written in another \
         filesystem view (a container or a pod), and here {} missing or another file; recorded \
         without a hash. Ingest where the data is mounted at the same paths as in the run",
        plural(paths.len(), "file", "files"),
        if paths.len() == 1 { "is" } else { "are" },
        if paths.len() == 1 {
            "that path is"
        } else {
            "those paths are"
        },
    )
}

/// Hashes `jobs` in parallel into their records, and caches each hash
/// whose file is still what was hashed, with the hashes `learned` otherwise.
fn hash_jobs(
    store: &Store,
    jobs: &[Job],
    records: &mut [(bool, FileRecord, Option<FileKey>)],
    learned: Vec<(FileKey, String)>,
    notes: &mut Notes,
) {
    let refs: Vec<(&Path, u64)> = jobs.iter().map(|j| (j.path.as_path(), j.size)).collect();
    let hashes = hashing::hash_many(&refs);
    let mut cache_new = learned;
    for (j, h) in jobs.iter().zip(hashes) {
        match h {
            Ok(h) => {
                let rec = &mut records[j.record];
                rec.1.hash = Some(h.hash.clone());
                if let Some(k) = rec.2
                    && h.after == Some(k)
                {
                    cache_new.push((k, h.hash));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Resolved on threads, a big tree comes out as one resolver, one path
    /// after another, would give it: every path, in the run's order, aliases
    /// merged.
    #[test]
    fn a_big_tree_resolved_on_threads_is_what_one_resolver_says() {
        use std::os::unix::ffi::OsStrExt;
        let d = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let n = PARALLEL_FROM + 500;
        let mut files: std::collections::BTreeMap<Vec<u8>, Access> = Default::default();
        for i in 0..n {
            let dir = base.join(format!("d{}", i % 300));
            std::fs::create_dir_all(&dir).unwrap();
            let f = dir.join(format!("f{i}"));
            if i % 7 != 0 {
                std::fs::write(&f, i.to_string()).unwrap();
            }
            let access = Access {
                first_seen: (n - i) as u64,
                gone: i % 11 == 0,
                ..Default::default()
            };
            files.insert(f.as_os_str().as_bytes().to_vec(), access);
        }
        std::os::unix::fs::symlink(base.join("d1"), base.join("alias")).unwrap();
        let alias = base.join("alias/f1").as_os_str().as_bytes().to_vec();
        files.insert(
            alias,
            Access {
                first_seen: 0,
                ..Default::default()
            },
        );
        let got = resolved(&files);
        assert_eq!(got.len(), n, "the alias merged into d1/f1");
        let mut one = Resolver::default();
        let mut want: Vec<(u64, Vec<u8>, Option<Now>)> = files
            .iter()
            .map(|(p, a)| {
                let (real, now) = if a.gone {
                    one.resolve_removed(p)
                } else {
                    one.resolve(p)
                };
                (a.first_seen, real, now)
            })
            .collect();
        want.sort_by_key(|w| w.0);
        let mut seen = std::collections::HashSet::new();
        want.retain(|w| seen.insert(w.1.clone()));
        let got: Vec<(&Vec<u8>, &Option<Now>)> = got.iter().map(|r| (&r.path, &r.now)).collect();
        let want: Vec<(&Vec<u8>, &Option<Now>)> = want.iter().map(|w| (&w.1, &w.2)).collect();
        assert_eq!(got, want);
        assert!(got.iter().any(|r| r.1.is_some()));
        assert!(got.iter().filter(|r| r.1.is_none()).count() > n / 7);
    }

    fn input(key: FileKey) -> Pending {
        Pending {
            path: b"/x".to_vec(),
            is_output: false,
            now: None,
            read_as: Some(key),
            as_read: None,
        }
    }

    fn is(v: Visible) -> &'static str {
        match v {
            Visible::Yes => "yes",
            Visible::Moved => "moved",
            Visible::No => "no",
        }
    }

    #[test]
    fn a_file_elsewhere_is_visible_only_if_it_is_the_one_the_trace_saw() {
        let d = tempfile::TempDir::new().unwrap();
        let p = d.path().join("f");
        std::fs::write(&p, "x").unwrap();
        let md = Now::of_metadata(&std::fs::metadata(&p).unwrap());
        let key = md.key;
        let now_ns = crate::time::now_ms() as u64 * 1_000_000;
        let there = Seen::Elsewhere { started_ns: now_ns };
        let v = |f: &Pending, md, seen| is(visible(f, md, seen));
        assert_eq!(v(&input(key), Some(&md), there), "yes");
        assert_eq!(v(&input(key), None, there), "no");
        let other_inode = FileKey {
            ino: key.ino + 1,
            ..key
        };
        assert_eq!(v(&input(other_inode), Some(&md), there), "no");
        assert_eq!(v(&input(other_inode), Some(&md), Seen::Here), "yes");
        let other_mount = FileKey {
            dev: key.dev + 1,
            ..key
        };
        assert_eq!(v(&input(other_mount), Some(&md), there), "moved");
        let later = FileKey {
            size: key.size + 1,
            ..key
        };
        assert_eq!(v(&input(later), Some(&md), there), "yes");
        // An output: it must have changed since the tree started.
        let out = Pending {
            is_output: true,
            read_as: None,
            ..input(key)
        };
        assert_eq!(v(&out, Some(&md), there), "yes");
        let hour = 3_600_000_000_000;
        let after = Seen::Elsewhere {
            started_ns: now_ns + hour,
        };
        assert_eq!(v(&out, Some(&md), after), "no");
        assert_eq!(v(&out, None, there), "no");
    }

    #[test]
    fn the_warning_names_the_paths_and_what_to_do() {
        let paths: Vec<String> = (0..7).map(|i| format!("/scratch/{i}")).collect();
        let w = not_visible(&paths);
        assert!(w.starts_with("7 files the run used are not visible here (/scratch/0, "));
        assert!(w.contains("and 2 more") && w.contains("mounted at the same paths"));
        assert!(not_visible(&paths[..1]).starts_with("1 file the run used is not visible here"));
    }
}
