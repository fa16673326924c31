//! `roar ingest DIR`: turn what the preload library wrote on its own
//! (standalone preload: only `LD_PRELOAD` and `ROAR_TRACE_DIR` set, no roar
//! process running) into runs, one per process tree.
//!
//! * **Streams.** Each process image wrote `<pid>.<mono>.<rand>.<ns>.rwt`;
//!   `<ns>` (`<boot>-<pidns>`) says which pid numbering its pids belong to,
//!   so containers that share the directory and reuse pid numbers are told
//!   apart. Pids are only compared within one `<ns>`.
//! * **Trees.** An image's parent is the earlier image of the same pid (it
//!   exec'd) or, failing that, the newest image of its ppid that started
//!   before it and had not exited yet (fork, vfork, posix_spawn). An image
//!   without a parent is the root of a tree: it was started from outside the
//!   traced set. Each tree becomes one run, built by the same
//!   [`collect`](crate::collect::collect) that `roar run` uses, told that
//!   the trace may come from another filesystem view
//!   ([`Seen::Elsewhere`](crate::collect::Seen)): a file not visible here
//!   (missing, or not the file the trace saw) is recorded with no hash and
//!   a warning, never hashed as something else.
//! * **Idempotent.** A tree is keyed by its root stream's file name (unique:
//!   it holds 64 random bits) and recorded in the store together with its
//!   run, in one transaction; a tree already there is skipped.
//! * **Trees still being written** (the root has not recorded its exit) are
//!   left for later while they may be running: in our own pid namespace
//!   while the root pid is alive with this trace directory in its
//!   environment, elsewhere while a stream changed in the last `--settle`
//!   seconds. After that they are recorded, marked incomplete.
//! * **Pid and namespace are not enough.** Sequential containers get the
//!   same pid-namespace inode, so `roar ingest` as a container's pid 1 shares
//!   `<ns>` and pid with the workload container's pid 1 before it. A process
//!   is only taken for an image when it started no later than the image did
//!   (an exec follows its fork), so a tree that began before `roar ingest`
//!   is never its own, and a live pid that started after a tree's root did
//!   is not that root.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use dag::{NewRun, OpenJdContext, RunId, Store};
use tracer_wire::{Decoder, Event, StartCause};

use crate::Observer;
use crate::backend::preload::alive_with_trace_dir;
use crate::collect::{Notes, Seen, collect_seen};
use crate::config::Config;
use crate::error::{Result, io};
use crate::location::Location;
use crate::paths::normalize;
use crate::{config, location, recover};

pub struct Options {
    /// The trace directory (absolute, or relative to the cwd).
    pub dir: PathBuf,
    /// A tree whose root has not exited, in another pid namespace, is left
    /// for later while its streams changed in the last `settle`.
    pub settle: Duration,
    pub label: Option<String>,
    /// Delete the stream files of every tree that is in the store.
    pub remove: bool,
}

/// What one ingest did.
#[derive(Debug, Default)]
pub struct Report {
    pub dir: PathBuf,
    /// The runs it recorded, in order.
    pub recorded: Vec<Ingested>,
    /// Trees already in the store.
    pub seen: usize,
    /// Trees still running, left for later.
    pub pending: usize,
    /// Streams that were empty or could not be read (kept by `--remove`).
    pub unreadable: Vec<String>,
}

/// One run made from one process tree.
#[derive(Debug)]
pub struct Ingested {
    pub id: RunId,
    pub processes: usize,
    pub command: Vec<Vec<u8>>,
    pub complete: bool,
}

/// One stream file: one process image.
struct Image {
    name: String,
    bytes: Vec<u8>,
    ns: String,
    pid: u32,
    ppid: u32,
    cause: StartCause,
    start: u64,
    last: u64,
    realtime_ns: u64,
    exited: Option<u64>,
    argv: Vec<Vec<u8>>,
    cwd: Vec<u8>,
    modified: SystemTime,
}

/// The `<ns>` field of a stream name (empty for names without one).
fn ns_of(name: &str) -> &str {
    let stem = name.strip_suffix(".rwt").unwrap_or(name);
    let mut parts = stem.splitn(4, '.');
    parts.nth(3).unwrap_or("")
}

/// The `<pid>` field of a stream name.
fn pid_of(name: &str) -> Option<u32> {
    name.split('.').next()?.parse().ok()
}

/// Our own `<boot>-<pidns>`, computed as the preload library does.
pub fn own_namespace() -> String {
    let boot: String = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(12)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let ns: String = std::fs::read_link("/proc/self/ns/pid")
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let or0 = |s: String| if s.is_empty() { "0".to_string() } else { s };
    format!("{}-{}", or0(boot), or0(ns))
}

fn read_image(name: String, bytes: Vec<u8>, modified: SystemTime) -> Option<Image> {
    let mut img: Option<Image> = None;
    for rec in Decoder::new(&bytes).flatten() {
        let ts = rec.header.ts_ns;
        match (&mut img, rec.event) {
            (
                None,
                Event::ProcessStart {
                    ppid,
                    cause,
                    realtime_ns,
                    argv,
                    cwd,
                    ..
                },
            ) => {
                img = Some(Image {
                    ns: ns_of(&name).to_string(),
                    name: name.clone(),
                    bytes: Vec::new(),
                    pid: rec.header.pid,
                    ppid,
                    cause,
                    start: ts,
                    last: ts,
                    realtime_ns,
                    exited: None,
                    argv: argv.iter().map(<[u8]>::to_vec).collect(),
                    cwd: normalize(cwd, b"/"),
                    modified,
                })
            }
            (None, _) => return None,
            (Some(i), ev) => {
                i.last = i.last.max(ts);
                if let Event::Exit { .. } = ev {
                    i.exited.get_or_insert(ts);
                }
            }
        }
    }
    let mut img = img?;
    img.bytes = bytes;
    Some(img)
}

/// The parent of each image (an index), per the rules in the module docs.
fn parents(images: &[Image]) -> Vec<Option<usize>> {
    let mut by_pid: HashMap<(&str, u32), Vec<usize>> = HashMap::new();
    for (i, im) in images.iter().enumerate() {
        by_pid.entry((&im.ns, im.pid)).or_default().push(i);
    }
    for v in by_pid.values_mut() {
        v.sort_by_key(|&i| (images[i].start, i));
    }
    images
        .iter()
        .enumerate()
        .map(|(i, im)| {
            let before = |pid: u32| {
                by_pid.get(&(im.ns.as_str(), pid)).and_then(|v| {
                    v.iter().copied().rfind(|&j| {
                        j != i
                            && (images[j].start < im.start
                                || (images[j].start == im.start && j < i))
                            && images[j].exited.is_none_or(|e| e >= im.start)
                    })
                })
            };
            let exec_parent = if im.cause == StartCause::Fork {
                None
            } else {
                before(im.pid)
            };
            exec_parent.or_else(|| before(im.ppid).filter(|_| im.ppid != im.pid))
        })
        .collect()
}

fn find(up: &mut [usize], mut i: usize) -> usize {
    while up[i] != i {
        up[i] = up[up[i]];
        i = up[i];
    }
    i
}

/// Ingests every finished tree in `opts.dir` into the store found from
/// the current directory (created when there is none).
pub fn ingest(opts: Options, obs: &mut dyn Observer) -> Result<Report> {
    let cwd = std::env::current_dir().map_err(io("cannot read the current directory"))?;
    let dir = cwd.join(&opts.dir);
    let (loc, created) = location::find_or_init(&cwd)?;
    if created {
        obs.note(&format!(
            "initialised a new store in {}",
            loc.roar_dir().display()
        ));
    }
    let cfg = config::load(&loc.roar_dir())?;
    let store = Store::open(&loc.db)?;
    recover::recover(&store, &loc.roar_dir());
    let (mut images, unreadable) = scan(&dir)?;
    // Stream contents apart from the images, so each tree can take its own.
    let mut contents: Vec<Vec<u8>> = images
        .iter_mut()
        .map(|im| std::mem::take(&mut im.bytes))
        .collect();
    let mut report = Report {
        dir: dir.clone(),
        unreadable: unreadable.clone(),
        ..Report::default()
    };
    // In an OpenJD session's onExit (preload template): trees that ran in the
    // session directory are that session's actions.
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let ctx = Context {
        store: &store,
        loc: &loc,
        cfg: &cfg,
        dir: &dir,
        openjd: crate::openjd::context(&vars, None, &loc.roar_dir()),
        label: opts.label.clone(),
        settle: opts.settle,
        now: SystemTime::now(),
        me: Started::of(std::process::id()),
        own_ns: own_namespace(),
        unreadable: &unreadable,
    };
    // Trees now in the store, whose stream files --remove deletes.
    let mut done: Vec<usize> = Vec::new();
    let all = trees(&images);
    let total = all.len() as u64;
    for (n, (root, members)) in all.into_iter().enumerate() {
        obs.progress("ingesting process trees", n as u64, total);
        match ctx.tree(&images, root, &members, &mut contents)? {
            Outcome::Seen => report.seen += 1,
            Outcome::Pending => {
                report.pending += 1;
                continue;
            }
            Outcome::Marked => {}
            Outcome::Recorded(r) => report.recorded.push(r),
        }
        done.extend(&members);
    }
    if opts.remove {
        for i in done {
            let _ = std::fs::remove_file(dir.join(&images[i].name));
        }
        // Only succeeds when nothing else is left in it.
        let _ = std::fs::remove_dir(&dir);
    }
    Ok(report)
}

/// Every process image in `dir`, and how many streams held none.
fn scan(dir: &Path) -> Result<(Vec<Image>, Vec<String>)> {
    let what = || format!("cannot read {}", dir.display());
    let mut images = Vec::new();
    let mut unreadable = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(what()))? {
        let entry = entry.map_err(io(what()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".rwt") {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        let Ok(bytes) = std::fs::read(entry.path()) else {
            unreadable.push(name);
            continue;
        };
        match read_image(name.clone(), bytes, modified) {
            Some(im) => images.push(im),
            // Not started yet (empty), not a stream, or its first record
            // damaged: nothing to record, and a tree may miss a process.
            None => unreadable.push(name),
        }
    }
    Ok((images, unreadable))
}

/// The process trees of `images`: each tree's root image (parentless,
/// earliest) and its members, oldest root first.
fn trees(images: &[Image]) -> Vec<(usize, Vec<usize>)> {
    let parent = parents(images);
    let mut up: Vec<usize> = (0..images.len()).collect();
    for (i, p) in parent.iter().enumerate() {
        if let Some(p) = *p {
            let (a, b) = (find(&mut up, i), find(&mut up, p));
            up[a] = b;
        }
    }
    let mut trees: HashMap<usize, Vec<usize>> = HashMap::new();
    for i in 0..images.len() {
        let r = find(&mut up, i);
        trees.entry(r).or_default().push(i);
    }
    let mut trees: Vec<(usize, Vec<usize>)> = trees
        .into_values()
        .map(|members| {
            let root = members
                .iter()
                .copied()
                .filter(|&i| parent[i].is_none())
                .min_by_key(|&i| (images[i].start, i))
                .unwrap_or(members[0]);
            (root, members)
        })
        .collect();
    trees.sort_by_key(|(root, _)| (images[*root].realtime_ns, images[*root].start));
    trees
}

/// What became of one tree.
enum Outcome {
    /// Already in the store.
    Seen,
    /// Still running: left for later.
    Pending,
    /// Noted as seen without a run (roar ingest's own process).
    Marked,
    Recorded(Ingested),
}

/// What every tree of one ingest shares.
struct Context<'a> {
    store: &'a Store,
    loc: &'a Location,
    cfg: &'a Config,
    dir: &'a Path,
    openjd: Option<OpenJdContext>,
    label: Option<String>,
    settle: Duration,
    now: SystemTime,
    me: Started,
    own_ns: String,
    /// Streams that could not be read: a tree may be missing one.
    unreadable: &'a [String],
}

/// A live process of our pid namespace and when it started, on the
/// preload library's clock (CLOCK_MONOTONIC, as stream timestamps are).
#[derive(Clone, Copy)]
struct Started {
    pid: u32,
    /// None when /proc does not say (then pid and namespace decide alone).
    mono_ns: Option<u64>,
}

impl Started {
    fn of(pid: u32) -> Started {
        let offset = recover::boottime_minus_monotonic_ns();
        let mono_ns = recover::started_at_ns(pid).map(|b| b.saturating_sub(offset));
        Started { pid, mono_ns }
    }

    /// Whether this process may be the one that wrote `im`: same pid, and
    /// started no later than the image (its start in /proc is rounded down
    /// to a clock tick, so the process that exec'd the image always passes).
    fn may_have_written(&self, im: &Image) -> bool {
        im.pid == self.pid && self.mono_ns.is_none_or(|s| s <= im.start)
    }
}

impl Context<'_> {
    fn tree(
        &self,
        images: &[Image],
        root: usize,
        members: &[usize],
        contents: &mut [Vec<u8>],
    ) -> Result<Outcome> {
        let r = &images[root];
        if self.store.is_ingested(&r.name)? {
            return Ok(Outcome::Seen);
        }
        // roar ingest itself runs preloaded in an OpenJD session's onExit
        // (and `sh` may exec it): a tree of nothing but this process is
        // marked as seen, without a run. One that holds more (a script that
        // runs roar ingest, and did work of its own) is still running: a
        // later ingest records it, rather than this one dropping that work.
        let own = |i: &usize| images[*i].ns == self.own_ns && self.me.may_have_written(&images[*i]);
        if members.iter().any(own) {
            if members.iter().all(own) {
                self.store
                    .ingest_tree(&r.name, members.len(), crate::time::now_ms(), None)?;
                return Ok(Outcome::Marked);
            }
            return Ok(Outcome::Pending);
        }
        // The root process's last image says whether the tree has ended.
        let last_root = members
            .iter()
            .copied()
            .filter(|&i| images[i].ns == r.ns && images[i].pid == r.pid)
            .max_by_key(|&i| (images[i].start, i))
            .unwrap_or(root);
        let ended = images[last_root].exited.is_some();
        if !ended && self.running(images, r, members) {
            return Ok(Outcome::Pending);
        }
        let streams: Vec<(String, Vec<u8>)> = members
            .iter()
            .map(|&i| (images[i].name.clone(), std::mem::take(&mut contents[i])))
            .collect();
        self.record(images, root, last_root, members, &streams)
    }

    /// Whether an unfinished tree may still be running: in our own pid
    /// namespace while its root is alive, elsewhere while a stream changed
    /// in the last `settle`.
    fn running(&self, images: &[Image], r: &Image, members: &[usize]) -> bool {
        if r.ns == self.own_ns {
            return alive_with_trace_dir(r.pid, self.dir) && Started::of(r.pid).may_have_written(r);
        }
        members.iter().any(|&i| {
            self.now
                .duration_since(images[i].modified)
                .is_ok_and(|age| age < self.settle)
        })
    }

    /// Records one tree as a run, with its key, in one transaction.
    fn record(
        &self,
        images: &[Image],
        root: usize,
        last_root: usize,
        members: &[usize],
        streams: &[(String, Vec<u8>)],
    ) -> Result<Outcome> {
        let r = &images[root];
        let mut notes = Notes::default();
        if images[last_root].exited.is_none() {
            notes.losses.push(format!(
                "the tree's first process (pid {}) never recorded its exit: it was killed (SIGKILL) or its trace was cut short; recorded what the trace held",
                r.pid
            ));
        }
        if let Some(lost) = self
            .unreadable
            .iter()
            .find(|n| ns_of(n) == r.ns && pid_of(n).is_some_and(|p| p == r.ppid || p == r.pid))
        {
            notes.losses.push(format!(
                "the trace stream {lost} of this tree's parent process (pid {}) could not be read: this run may be part of a larger one, and what that process did is missing",
                r.ppid
            ));
        }
        if !crate::paths::as_path(&r.cwd).is_dir() {
            notes.warnings.push(format!(
                "the tree ran in {}, which does not exist where roar ingest ran: the files it used there are recorded without hashes; ingest where its volumes are mounted at the same paths",
                String::from_utf8_lossy(&r.cwd)
            ));
        }
        // Traced in a container or pod, perhaps: a path may not be here.
        let seen = Seen::Elsewhere {
            started_ns: r.realtime_ns,
        };
        let mut result = collect_seen(
            self.store, self.loc, self.cfg, streams, None, seen, &mut notes,
        );
        if let Some(p) = result
            .processes
            .iter()
            .rev()
            .find(|p| p.pid == r.pid && p.started_ns >= images[last_root].start)
        {
            result.exit_code = p.exit_code;
            result.signal = p.signal;
        }
        let last = members.iter().map(|&i| images[i].last).max().unwrap_or(0);
        result.duration_ms = last.saturating_sub(r.start) / 1_000_000;
        // A tree of another pid namespace ran in a container: the packages installed here
        // are not the ones it used.
        let foreign = r.ns != self.own_ns;
        if foreign {
            notes.warnings.push(
                "packages not derived: the tree ran in another pid namespace (a container or pod), whose installed packages are not visible here".into(),
            );
        }
        result.complete = notes.losses.is_empty();
        result.warnings = notes.losses.into_iter().chain(notes.warnings).collect();
        let new_run = NewRun {
            label: self.label.clone(),
            command: r.argv.clone(),
            cwd: r.cwd.clone(),
            backend: "preload".into(),
            backend_reason: Some("standalone preload traces, imported by roar ingest".into()),
            started_at_ms: (r.realtime_ns / 1_000_000) as i64,
            git: None,
            env: Vec::new(),
            trace_dir: None,
            roar_pid: self.me.pid,
            openjd: self
                .openjd
                .clone()
                .filter(|o| o.working_dir.as_deref() == Some(&r.cwd[..])),
        };
        let stored = self.store.ingest_tree(
            &r.name,
            members.len(),
            crate::time::now_ms(),
            Some((&new_run, &result)),
        )?;
        if let Some(Some(id)) = stored
            && !foreign
        {
            // Packages as installed where roar ingest runs; the host is not known.
            let env = crate::collect::environment(&result, None, None);
            let _ = self.store.set_environment(id, &env);
        }
        Ok(match stored {
            Some(Some(id)) => Outcome::Recorded(Ingested {
                id,
                processes: members.len(),
                command: r.argv.clone(),
                complete: result.complete,
            }),
            _ => Outcome::Seen,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(name: &str, pid: u32, ppid: u32, cause: StartCause, start: u64) -> Image {
        Image {
            name: name.into(),
            bytes: Vec::new(),
            ns: ns_of(name).into(),
            pid,
            ppid,
            cause,
            start,
            last: start,
            realtime_ns: start,
            exited: None,
            argv: Vec::new(),
            cwd: b"/".to_vec(),
            modified: SystemTime::now(),
        }
    }

    #[test]
    fn namespace_field_of_names() {
        assert_eq!(ns_of("12.345.00ff.abc-4026531836.rwt"), "abc-4026531836");
        assert_eq!(ns_of("12.345.00ff.rwt"), "");
    }

    /// Two containers with the same pids share a directory: two trees, not one.
    #[test]
    fn same_pids_in_two_namespaces_are_two_trees() {
        let images = vec![
            image("1.10.a.b-1.rwt", 1, 0, StartCause::Exec, 10),
            image("7.20.b.b-1.rwt", 7, 1, StartCause::Fork, 20),
            image("7.30.c.b-1.rwt", 7, 1, StartCause::Exec, 30),
            image("1.11.d.b-2.rwt", 1, 0, StartCause::Exec, 11),
            image("7.21.e.b-2.rwt", 7, 1, StartCause::Fork, 21),
        ];
        let p = parents(&images);
        assert_eq!(p, vec![None, Some(0), Some(1), None, Some(3)]);
    }

    /// `roar ingest` as pid 1 of a container that came after the workload's
    /// (same pid-namespace id): the workload's pid-1 tree began before this
    /// process did, so it is not ours.
    #[test]
    fn an_image_older_than_us_is_not_ours() {
        let me = Started::of(std::process::id());
        let now = recover::started_at_ns(std::process::id()).unwrap();
        let offset = recover::boottime_minus_monotonic_ns();
        let mut mine = image("x.rwt", me.pid, 0, StartCause::Exec, 0);
        mine.start = now - offset + 1_000_000;
        assert!(me.may_have_written(&mine));
        let mut earlier = image("y.rwt", me.pid, 0, StartCause::Exec, 0);
        earlier.start = (now - offset).saturating_sub(50_000_000);
        assert!(!me.may_have_written(&earlier));
        let other = image("z.rwt", me.pid + 1, 0, StartCause::Exec, mine.start);
        assert!(!me.may_have_written(&other));
    }

    /// A parent that exited before the child started is not its parent (pid reuse).
    #[test]
    fn exited_parent_is_not_reused() {
        let mut a = image("5.10.a.n.rwt", 5, 1, StartCause::Exec, 10);
        a.exited = Some(15);
        let b = image("6.20.b.n.rwt", 6, 5, StartCause::Exec, 20);
        assert_eq!(parents(&[a, b]), vec![None, None]);
    }
}
