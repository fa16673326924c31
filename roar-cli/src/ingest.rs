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
//!   [`run::collect`] that `roar run` uses.
//! * **Idempotent.** A tree is keyed by its root stream's file name (unique:
//!   it holds 64 random bits) and recorded in the store together with its
//!   run, in one transaction; a tree already there is skipped.
//! * **Trees still being written** (the root has not recorded its exit) are
//!   left for later while they may be running: in our own pid namespace
//!   while the root pid is alive with this trace directory in its
//!   environment, elsewhere while a stream changed in the last `--settle`
//!   seconds. After that they are recorded, marked incomplete.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use dag::{NewRun, Store};
use tracer_wire::{Decoder, Event, StartCause};

use crate::paths::normalize;
use crate::{config, run};

pub struct Options {
    pub dir: Option<PathBuf>,
    pub settle: f64,
    pub label: Option<String>,
    pub quiet: bool,
    /// Delete the stream files of every tree that is in the store.
    pub remove: bool,
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

/// True when `pid` (in our own pid namespace) is alive and carries this
/// trace directory in its environment.
fn alive_here(pid: u32, dir: &Path) -> bool {
    let mut marker = b"ROAR_TRACE_DIR=".to_vec();
    marker.extend_from_slice(dir.as_os_str().as_bytes());
    marker.push(0);
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.windows(marker.len()).any(|w| w == marker.as_slice()))
}

pub fn ingest(opts: Options) -> Result<()> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let dir = match opts
        .dir
        .or_else(|| std::env::var_os("ROAR_TRACE_DIR").map(PathBuf::from))
    {
        Some(d) if !d.as_os_str().is_empty() => cwd.join(d),
        _ => bail!("name the trace directory to ingest (or set ROAR_TRACE_DIR)"),
    };
    let loc = run::locate(&cwd)?;
    let cfg = config::load(&loc.roar_dir())?;
    let store = Store::open(&loc.db)?;
    run::recover(&store);

    let me = std::process::id();
    let own_ns = own_namespace();
    let mut images = Vec::new();
    let mut unreadable = 0usize;
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".rwt") {
            continue;
        }
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        let Ok(bytes) = std::fs::read(entry.path()) else {
            unreadable += 1;
            continue;
        };
        match read_image(name, bytes, modified) {
            Some(im) => images.push(im),
            // Not started yet (empty) or not a stream: nothing to record.
            None => unreadable += 1,
        }
    }

    // Stream contents apart from the images, so each tree can take its own.
    let mut contents: Vec<Vec<u8>> = images
        .iter_mut()
        .map(|im| std::mem::take(&mut im.bytes))
        .collect();
    let parent = parents(&images);
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
    // The root image of each tree: parentless, earliest.
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

    // In an OpenJD session's onExit (preload template): trees that ran in the
    // session directory are that session's actions.
    let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let openjd = crate::openjd::context(&vars, None, &loc.roar_dir());
    let settle = Duration::from_secs_f64(opts.settle.max(0.0));
    let now = SystemTime::now();
    let (mut recorded, mut seen, mut pending) = (0usize, 0usize, 0usize);
    // Trees now in the store, whose stream files --remove deletes.
    let mut done: Vec<usize> = Vec::new();
    for (root, members) in trees {
        let r = &images[root];
        if store.is_ingested(&r.name)? {
            seen += 1;
            done.extend(&members);
            continue;
        }
        // roar ingest itself runs preloaded in an OpenJD session's onExit
        // (and `sh` may exec it): a tree of nothing but this process is
        // marked as seen, without a run. One that holds more (a script that
        // runs roar ingest, and did work of its own) is still running: a
        // later ingest records it, rather than this one dropping that work.
        let own = |i: &usize| images[*i].pid == me && images[*i].ns == own_ns;
        if members.iter().any(own) {
            if members.iter().all(own) {
                store.ingest_tree(&r.name, members.len(), crate::time::now_ms(), None)?;
                done.extend(&members);
            } else {
                pending += 1;
            }
            continue;
        }
        // The root process's last image says whether the tree has ended.
        let last_root = members
            .iter()
            .copied()
            .filter(|&i| images[i].ns == r.ns && images[i].pid == r.pid)
            .max_by_key(|&i| (images[i].start, i))
            .unwrap_or(root);
        let ended = images[last_root].exited.is_some();
        if !ended {
            let running = if r.ns == own_ns {
                alive_here(r.pid, &dir)
            } else {
                members.iter().any(|&i| {
                    now.duration_since(images[i].modified)
                        .is_ok_and(|age| age < settle)
                })
            };
            if running {
                pending += 1;
                continue;
            }
        }
        let mut losses = Vec::new();
        let mut warnings = Vec::new();
        if !ended {
            losses.push(format!(
                "the tree's first process (pid {}) never recorded its exit: it was killed (SIGKILL) or its trace was cut short; recorded what the trace held",
                r.pid
            ));
        }
        if !crate::paths::as_path(&r.cwd).is_dir() {
            warnings.push(format!(
                "the tree ran in {}, which does not exist where roar ingest ran: files it wrote there are not recorded and files it read are not hashed; ingest where its volumes are mounted at the same paths",
                String::from_utf8_lossy(&r.cwd)
            ));
        }
        let streams: Vec<(String, Vec<u8>)> = members
            .iter()
            .map(|&i| (images[i].name.clone(), std::mem::take(&mut contents[i])))
            .collect();
        let mut result = run::collect(
            &store,
            &loc,
            &cfg,
            &streams,
            None,
            &mut warnings,
            &mut losses,
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
        result.complete = losses.is_empty();
        result.warnings = losses.into_iter().chain(warnings).collect();
        let new_run = NewRun {
            label: opts.label.clone(),
            command: r.argv.clone(),
            cwd: r.cwd.clone(),
            backend: "preload".into(),
            backend_reason: Some("standalone preload traces, imported by roar ingest".into()),
            started_at_ms: (r.realtime_ns / 1_000_000) as i64,
            git: None,
            env: Vec::new(),
            trace_dir: None,
            roar_pid: me,
            openjd: openjd
                .clone()
                .filter(|o| o.working_dir.as_deref() == Some(&r.cwd[..])),
        };
        match store.ingest_tree(
            &r.name,
            members.len(),
            crate::time::now_ms(),
            Some((&new_run, &result)),
        )? {
            Some(Some(id)) => {
                recorded += 1;
                done.extend(&members);
                if !opts.quiet {
                    let cmd: Vec<OsString> = r
                        .argv
                        .iter()
                        .map(|a| std::ffi::OsStr::from_bytes(a).to_os_string())
                        .collect();
                    eprintln!(
                        "roar: run {id} recorded from {} process{} ({}){}",
                        members.len(),
                        if members.len() == 1 { "" } else { "es" },
                        cmd.iter()
                            .map(|a| a.to_string_lossy())
                            .collect::<Vec<_>>()
                            .join(" "),
                        if result.complete { "" } else { "; INCOMPLETE" }
                    );
                }
            }
            _ => {
                seen += 1;
                done.extend(&members);
            }
        }
    }
    if opts.remove {
        for i in done {
            let _ = std::fs::remove_file(dir.join(&images[i].name));
        }
        // Only succeeds when nothing else is left in it.
        let _ = std::fs::remove_dir(&dir);
    }
    if !opts.quiet {
        let mut line = format!(
            "roar: ingested {} from {}",
            plural(recorded, "run"),
            dir.display()
        );
        if seen > 0 {
            line.push_str(&format!("; {} already ingested", plural(seen, "tree")));
        }
        if pending > 0 {
            line.push_str(&format!(
                "; {} still running, left for later",
                plural(pending, "tree")
            ));
        }
        if unreadable > 0 {
            line.push_str(&format!(
                "; {} empty or unreadable",
                plural(unreadable, "stream")
            ));
        }
        eprintln!("{line}");
    }
    Ok(())
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
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

    /// A parent that exited before the child started is not its parent (pid reuse).
    #[test]
    fn exited_parent_is_not_reused() {
        let mut a = image("5.10.a.n.rwt", 5, 1, StartCause::Exec, 10);
        a.exited = Some(15);
        let b = image("6.20.b.n.rwt", 6, 5, StartCause::Exec, 20);
        assert_eq!(parents(&[a, b]), vec![None, None]);
    }
}
