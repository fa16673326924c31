//! From trace records to what a run read, wrote and ran.
//!
//! Records of every stream are merged in timestamp order. A path is an
//! input when the run's first access to it read a regular file; it is an
//! output candidate when the run wrote, created, truncated, linked or renamed
//! it into place. Which candidates are outputs (they still exist) and which
//! hash each input had as read is decided later, against the file system.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use tracer_wire::{
    Decoder, Event, ExitStatus, FLAG_ARGV_TRUNCATED, FLAG_PATH_TRUNCATED, FileStat, LossReason,
    StartCause, exec_flags,
};

use crate::paths::normalize;
use crate::words::plural;

/// One process image seen by the trace.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    pub exe: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub cwd: Vec<u8>,
    pub started_ns: u64,
    pub status: Option<ExitStatus>,
}

/// What the trace says about one path.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Identity of the file when first read, if the first access was a read.
    pub read_as: Option<FileStat>,
    /// The run opened it for writing, or put content at this path.
    pub written: bool,
    /// The content certainly changed: created, truncated, renamed or linked
    /// into place, written through a copy call.
    pub changed: bool,
    /// The file's identity when the run first opened it for writing without
    /// creating or truncating it: if it is the same at the end, nothing was
    /// written (a lock file, `exec 3>>f`), and a read in between read the
    /// original content (`sort -o f f`).
    pub opened_as: Option<FileStat>,
    /// The newest content hash a backend took before the run changed the
    /// file (`blake3:<hex>`), with the identity the file had then.
    pub content: Option<(FileStat, String)>,
    /// Order of first access, for stable output.
    pub first_seen: u64,
    /// The run's last act at this path was removing the file (unlinked, or
    /// renamed away): nothing it left is there, so what is there now is not
    /// looked at.
    pub gone: bool,
}

/// Everything learnt from one trace.
#[derive(Debug, Default)]
pub struct Summary {
    pub procs: Vec<Proc>,
    pub files: BTreeMap<Vec<u8>, Access>,
    /// What the trace lost: the run is incomplete.
    pub warnings: Vec<String>,
    /// What the user must be told that loses no file access (a command
    /// line recorded cut).
    pub notes: Vec<String>,
    pub records: u64,
    /// Timestamp of the last record.
    pub last_ns: u64,
}

struct Item<'a> {
    ts: u64,
    stream: usize,
    seq: u64,
    rec: tracer_wire::Record<'a>,
}

/// Reads every `*.rwt` stream in `dir`.
pub fn read_dir(dir: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".rwt") {
            out.push((name, std::fs::read(entry.path())?));
        }
    }
    out.sort();
    Ok(out)
}

const O_ACCMODE: i32 = libc::O_ACCMODE;

/// The access record of a path, created on first sight.
fn touch<'f>(files: &'f mut BTreeMap<Vec<u8>, Access>, p: &[u8], order: u64) -> &'f mut Access {
    files.entry(normalize(p, b"/")).or_insert_with(|| Access {
        first_seen: order,
        ..Default::default()
    })
}

/// Builds the summary of a set of streams.
pub fn analyze(streams: &[(String, Vec<u8>)]) -> Summary {
    let mut warnings = Vec::new();
    let items = merge(streams, &mut warnings);
    let mut a = Analyzer {
        s: Summary {
            warnings,
            records: items.len() as u64,
            last_ns: items.last().map_or(0, |it| it.ts),
            ..Summary::default()
        },
        ..Analyzer::default()
    };
    for it in &items {
        a.record(&it.rec);
    }
    a.finish()
}

/// Every record of every stream, in timestamp order; damage and sequence
/// gaps become warnings.
fn merge<'a>(streams: &'a [(String, Vec<u8>)], warnings: &mut Vec<String>) -> Vec<Item<'a>> {
    let mut items: Vec<Item<'_>> = Vec::new();
    for (i, (name, bytes)) in streams.iter().enumerate() {
        let mut seqs = Vec::new();
        let mut damaged: Vec<tracer_wire::DecodeError> = Vec::new();
        for r in Decoder::new(bytes) {
            match r {
                Ok(rec) => {
                    seqs.push(rec.header.seq);
                    items.push(Item {
                        ts: rec.header.ts_ns,
                        stream: i,
                        seq: rec.header.seq,
                        rec,
                    });
                }
                Err(e) => damaged.push(e),
            }
        }
        if let Some(first) = damaged.first() {
            warnings.push(format!(
                "trace stream {name} is damaged: {} skipped ({first}); what they recorded is missing",
                plural(damaged.len(), "stretch of it was", "stretches of it were")
            ));
        }
        seqs.sort_unstable();
        let expected = seqs.len() as u64;
        let last = seqs.last().map_or(0, |l| l + 1);
        if last > expected {
            warnings.push(format!(
                "trace stream {name} is missing {} of {last} records",
                last - expected
            ));
        }
    }
    items.sort_by_key(|it| (it.ts, it.stream, it.seq));
    items
}

/// How much older than the run's first record a file created by it may
/// look: file times come from a coarse clock.
const CLOCK_SLACK_NS: i64 = 2_000_000_000;

impl Access {
    /// Content was put at this path.
    fn put(&mut self) {
        self.written = true;
        self.changed = true;
        self.gone = false;
    }
}

/// The state of one pass over a run's records.
#[derive(Default)]
struct Analyzer {
    s: Summary,
    /// Wall-clock time of the run's first process start, to tell files it
    /// created from ones that were there.
    run_start_ns: Option<i64>,
    order: u64,
    last_image: HashMap<u32, usize>,
    /// Fork images not yet replaced by an exec: pid -> (index, did
    /// something). One that did nothing before its exec is folded into the
    /// exec'd image, so every backend lists the same processes (preload
    /// never sees the child of a vfork or posix_spawn before its exec;
    /// ptrace and eBPF do).
    fork_images: HashMap<u32, (usize, bool)>,
    folded: Vec<bool>,
    truncated: u64,
    static_execs: Vec<Vec<u8>>,
    dropped: Vec<Vec<u8>>,
    /// Set-user-ID programs the kernel ran without their privileges.
    unprivileged: Vec<Vec<u8>>,
    /// Images whose command line the backend could only record cut:
    /// (pid, exe, arguments kept).
    cut_argv: Vec<(u32, Vec<u8>, usize)>,
}

impl Analyzer {
    fn record(&mut self, rec: &tracer_wire::Record<'_>) {
        let h = rec.header;
        if h.flags & FLAG_PATH_TRUNCATED != 0 {
            self.truncated += 1;
            return;
        }
        self.order += 1;
        if !matches!(rec.event, Event::ProcessStart { .. } | Event::Exec { .. })
            && let Some(f) = self.fork_images.get_mut(&h.pid)
        {
            f.1 = true;
        }
        match rec.event {
            Event::ProcessStart {
                ppid,
                cause,
                exe,
                exe_stat,
                argv,
                cwd,
                realtime_ns,
            } => {
                self.run_start_ns.get_or_insert(realtime_ns as i64);
                if h.flags & FLAG_ARGV_TRUNCATED != 0 {
                    self.cut_argv
                        .push((h.pid, normalize(exe, b"/"), argv.iter().count()));
                }
                let proc = Proc {
                    pid: h.pid,
                    ppid,
                    exe: normalize(exe, b"/"),
                    argv: argv.iter().map(<[u8]>::to_vec).collect(),
                    cwd: normalize(cwd, b"/"),
                    started_ns: h.ts_ns,
                    status: None,
                };
                self.process_start(proc, cause, exe, exe_stat);
            }
            Event::Exec {
                result,
                flags,
                path,
                ..
            } => {
                if result == 0 {
                    if flags & exec_flags::STATIC_BINARY != 0 {
                        self.static_execs.push(path.to_vec());
                    } else if flags & (exec_flags::PRELOAD_DROPPED | exec_flags::SETUID) != 0 {
                        self.dropped.push(path.to_vec());
                    }
                    if flags & exec_flags::PRIVILEGE_DROPPED != 0 {
                        self.unprivileged.push(path.to_vec());
                    }
                }
            }
            Event::Exit { status } => {
                if let Some(&i) = self.last_image.get(&h.pid) {
                    self.s.procs[i].status.get_or_insert(status);
                }
            }
            Event::ChildExit { child, status } => self.child_exit(h.pid, h.ts_ns, child, status),
            Event::Open {
                flags,
                result,
                stat,
                path,
                ..
            } => self.open(flags, result, stat, path),
            Event::Rename {
                result, old, new, ..
            } => {
                if result == 0 {
                    self.rename(old, new);
                }
            }
            Event::Link { result, new, .. } => {
                if result == 0 {
                    self.touch(new).put();
                }
            }
            Event::Truncate { result, path, .. } => {
                if result == 0 {
                    self.touch(path).put();
                }
            }
            Event::Write { path } => self.touch(path).put(),
            Event::Content { stat, blake3, path } => {
                self.touch(path).content = Some((stat, hex_hash(&blake3)));
            }
            Event::Loss { reason, count } => self.s.warnings.push(loss_text(h.pid, reason, count)),
            Event::Unlink {
                result: 0,
                dir: false,
                path,
            } => {
                if let Some(a) = self.s.files.get_mut(&normalize(path, b"/")) {
                    a.gone = true;
                }
            }
            Event::Symlink {
                result: 0, link, ..
            } => {
                if let Some(a) = self.s.files.get_mut(&normalize(link, b"/")) {
                    a.gone = false;
                }
            }
            Event::Unlink { .. }
            | Event::Symlink { .. }
            | Event::Mkdir { .. }
            | Event::Chdir { .. } => {}
        }
    }

    /// A reaped child. The preload library opens a fork child's stream at
    /// its first record, so a child that neither recorded nor exec'd (killed
    /// before it did anything) is known only from here: it is listed as
    /// the fork image of its reaper that it was.
    fn child_exit(&mut self, reaper: u32, ts_ns: u64, child: u32, status: ExitStatus) {
        if let Some(&i) = self.last_image.get(&child) {
            self.s.procs[i].status = Some(status);
            return;
        }
        let Some(&r) = self.last_image.get(&reaper) else {
            return;
        };
        let parent = &self.s.procs[r];
        let proc = Proc {
            pid: child,
            ppid: reaper,
            exe: parent.exe.clone(),
            argv: parent.argv.clone(),
            cwd: parent.cwd.clone(),
            started_ns: ts_ns,
            status: Some(status),
        };
        self.last_image.insert(child, self.s.procs.len());
        self.s.procs.push(proc);
        self.folded.push(false);
    }

    /// The access record of a path, created on first sight.
    fn touch(&mut self, p: &[u8]) -> &mut Access {
        touch(&mut self.s.files, p, self.order)
    }

    /// Every image is its own entry: a fork child under its new pid, an
    /// exec'd image after the earlier one of the same pid; except a fork
    /// image that only exec'd.
    fn process_start(
        &mut self,
        proc: Proc,
        cause: StartCause,
        exe: &[u8],
        exe_stat: Option<FileStat>,
    ) {
        let pid = proc.pid;
        if let Some(f) = self.fork_images.get_mut(&proc.ppid) {
            f.1 = true; // it started a process of its own
        }
        if cause == StartCause::Fork {
            self.fork_images.insert(pid, (self.s.procs.len(), false));
        } else if let Some((i, false)) = self.fork_images.remove(&pid) {
            self.folded[i] = true;
        }
        self.last_image.insert(pid, self.s.procs.len());
        self.s.procs.push(proc);
        self.folded.push(false);
        if let Some(st) = exe_stat
            && st.is_regular()
        {
            let a = self.touch(exe);
            if !a.written && a.read_as.is_none() {
                a.read_as = Some(st);
            }
        }
    }

    fn open(&mut self, flags: i32, result: i32, stat: Option<FileStat>, path: &[u8]) {
        if result < 0 || flags & libc::O_PATH != 0 {
            return;
        }
        let Some(st) = stat else { return };
        if !st.is_regular() {
            return;
        }
        let acc = flags & O_ACCMODE;
        // A file this open created, or emptied, had no earlier content for
        // the run to read: it is not an input.
        let created = flags & libc::O_EXCL != 0
            || (flags & (libc::O_CREAT | libc::O_TRUNC) != 0 && st.size == 0);
        let reads = (acc == libc::O_RDONLY || acc == libc::O_RDWR) && !created;
        let writes = acc == libc::O_WRONLY || acc == libc::O_RDWR || flags & libc::O_TRUNC != 0;
        // An empty file that O_CREAT opened and that is older than the run
        // was there before (a lock file): opening it changed nothing.
        let made_now = flags & (libc::O_EXCL | libc::O_TRUNC) != 0
            || (created
                && self
                    .run_start_ns
                    .is_none_or(|t| st.mtime_ns >= t - CLOCK_SLACK_NS));
        let a = self.touch(path);
        a.gone = false;
        // A read sees the run's own writes, unless nothing was written yet.
        let original = !a.written || (!a.changed && a.opened_as == Some(st));
        if reads && original && a.read_as.is_none() {
            a.read_as = Some(st);
        }
        if writes {
            a.written = true;
            if made_now {
                a.changed = true;
            } else if !a.changed && a.opened_as.is_none() {
                a.opened_as = Some(st);
            }
        }
    }

    fn rename(&mut self, old: &[u8], new: &[u8]) {
        let old_k = normalize(old, b"/");
        let new_k = normalize(new, b"/");
        self.touch(new).put();
        // Whatever the run wrote below a renamed directory now lives under
        // the new name.
        let mut prefix = old_k.clone();
        prefix.push(b'/');
        // The map is in path order: what is below the directory is one range.
        let moved: Vec<Vec<u8>> = self
            .s
            .files
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, a)| a.written)
            .map(|(k, _)| k.clone())
            .collect();
        for k in moved {
            let mut nk = new_k.clone();
            nk.extend_from_slice(&k[old_k.len()..]);
            let (changed, opened_as) = match self.s.files.get_mut(&k) {
                Some(a) => {
                    a.written = false;
                    a.gone = true;
                    (std::mem::take(&mut a.changed), a.opened_as.take())
                }
                None => (true, None),
            };
            let to = self.touch(&nk);
            to.written = true;
            to.changed |= changed;
            to.opened_as = to.opened_as.or(opened_as);
        }
        if old_k != new_k
            && let Some(a) = self.s.files.get_mut(&old_k)
        {
            a.written = false;
            a.changed = false;
            a.gone = true;
        }
    }

    /// Drops folded fork images and turns what could not be seen into
    /// warnings.
    fn finish(mut self) -> Summary {
        let mut i = 0;
        let folded = self.folded;
        self.s.procs.retain(|_| {
            i += 1;
            !folded[i - 1]
        });
        if self.truncated > 0 {
            self.s.warnings.push(format!(
                "{} events had paths too long to capture and were left out",
                self.truncated
            ));
        }
        if let Some(w) = cut_argv_warning(&self.cut_argv) {
            self.s.notes.push(w);
        }
        for p in sorted_unique(self.static_execs) {
            self.s.warnings.push(format!(
                "{} is statically linked: the preload backend cannot see its file accesses (use --backend ptrace)",
                String::from_utf8_lossy(&p)
            ));
        }
        for p in sorted_unique(self.unprivileged) {
            self.s
                .warnings
                .push(unprivileged(&String::from_utf8_lossy(&p)));
        }
        for p in sorted_unique(self.dropped) {
            self.s.warnings.push(format!(
                "{} was started without the preload library (environment cleared, or set-user-ID): its file accesses are not recorded",
                String::from_utf8_lossy(&p)
            ));
        }
        self.s
    }
}

/// One warning for every image whose argument vector the backend recorded
/// cut (eBPF reads at most about 4 KiB of it in the kernel): which, and how
/// many arguments were kept.
fn cut_argv_warning(cut: &[(u32, Vec<u8>, usize)]) -> Option<String> {
    let (first, rest) = cut.split_first()?;
    let name = |(pid, exe, kept): &(u32, Vec<u8>, usize)| {
        format!(
            "pid {pid} ({}, {kept} arguments kept)",
            String::from_utf8_lossy(exe)
        )
    };
    let mut listed: Vec<String> = std::iter::once(first)
        .chain(rest)
        .take(5)
        .map(name)
        .collect();
    if cut.len() > 5 {
        listed.push(format!("and {} more", cut.len() - 5));
    }
    Some(format!(
        "{} command line{} too long for the backend to record whole and recorded cut: {}",
        cut.len(),
        if cut.len() == 1 { " was" } else { "s were" },
        listed.join(", ")
    ))
}

/// The warning for a set-user-ID program that ran without its privileges
/// because it was traced.
fn unprivileged(program: &str) -> String {
    format!(
        "{program} is set-user-ID or set-group-ID, and under ptrace the kernel runs it without those privileges: it may have failed or done something else than it would untraced (the ebpf and preload backends do not change it)"
    )
}

/// `blake3:<hex>`, as the store writes hashes.
fn hex_hash(h: &[u8; 32]) -> String {
    let mut s = String::with_capacity(7 + 64);
    s.push_str("blake3:");
    for b in h {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn sorted_unique(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v.dedup();
    v
}

/// The warning for events a producer says it lost.
fn loss_text(pid: u32, reason: LossReason, count: u64) -> String {
    match reason {
        LossReason::ForeignAbi => format!(
            "process {pid} made {count} 32-bit (ia32/x32) system calls, which roar does not decode: what they accessed is not recorded"
        ),
        LossReason::IoUring => format!(
            "process {pid} used io_uring: files it reads or writes through the ring are not recorded"
        ),
        LossReason::RingBufferFull => {
            format!("the kernel ring buffer was full: {count} events were lost")
        }
        LossReason::Unreadable => format!(
            "{count} calls succeeded with an argument the tracer could not read: what they touched is not recorded"
        ),
        reason => format!("the tracer lost {count} events ({reason:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_wire::{Args, Header, StartCause, encode};

    /// A stream of one process, pid 5.
    fn stream(events: &[Event<'_>]) -> Vec<u8> {
        let tagged: Vec<(u32, Event<'_>)> = events.iter().map(|e| (5, *e)).collect();
        tree(&tagged)
    }

    /// A stream of (pid, event), as ptrace and eBPF write one for a tree.
    fn tree(events: &[(u32, Event<'_>)]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        for (i, (pid, ev)) in events.iter().enumerate() {
            let h = Header {
                seq: i as u64,
                ts_ns: i as u64 * 10,
                pid: *pid,
                tid: *pid,
                flags: 0,
            };
            let n = encode(&h, ev, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        out
    }

    #[test]
    fn a_command_line_recorded_cut_is_a_warning_naming_the_process() {
        let mut buf = [0u8; 512];
        let h = Header {
            seq: 0,
            ts_ns: 1,
            pid: 7,
            tid: 7,
            flags: FLAG_ARGV_TRUNCATED,
        };
        let n = encode(&h, &start(1, StartCause::Exec, b"cat\0a\0b\0"), &mut buf).unwrap();
        let s = analyze(&[("ebpf.rwt".into(), buf[..n].to_vec())]);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(
            s.notes,
            [
                "1 command line was too long for the backend to record whole and recorded cut: pid 7 (/bin/x, 3 arguments kept)"
            ]
        );
        let whole = analyze(&[(
            "p.rwt".into(),
            stream(&[start(1, StartCause::Exec, b"cat\0")]),
        )]);
        assert!(whole.notes.is_empty(), "{:?}", whole.notes);
    }

    fn start(ppid: u32, cause: StartCause, argv: &[u8]) -> Event<'_> {
        Event::ProcessStart {
            ppid,
            cause,
            realtime_ns: 0,
            exe: b"/bin/x",
            exe_stat: None,
            argv: Args(argv),
            cwd: b"/w",
        }
    }

    #[test]
    fn a_fork_image_that_only_execs_is_folded_into_its_exec() {
        let open = Event::Open {
            flags: 0,
            mode: 0,
            result: 3,
            stat: Some(REG),
            path: b"/w/in",
        };
        let failed_exec = Event::Exec {
            result: -libc::ENOENT,
            flags: 0,
            path: b"/usr/local/bin/cp",
            argv: Args(b"cp\0"),
        };
        let s = analyze(&[(
            "t.rwt".into(),
            tree(&[
                (10, start(1, StartCause::Exec, b"sh\0")),
                // 11 forks and execs cp at once (a PATH miss first).
                (11, start(10, StartCause::Fork, b"sh\0")),
                (11, failed_exec),
                (11, start(10, StartCause::Exec, b"cp\0")),
                // 12 reads a file before its exec: a process of its own.
                (12, start(10, StartCause::Fork, b"sh\0")),
                (12, open),
                (12, start(10, StartCause::Exec, b"cat\0")),
                // 13 starts a child of its own before its exec.
                (13, start(10, StartCause::Fork, b"sh\0")),
                (14, start(13, StartCause::Fork, b"sh\0")),
                (13, start(10, StartCause::Exec, b"wc\0")),
                // 15 never execs.
                (15, start(10, StartCause::Fork, b"sh\0")),
            ]),
        )]);
        let got: Vec<(u32, &[u8])> = s
            .procs
            .iter()
            .map(|p| (p.pid, p.argv[0].as_slice()))
            .collect();
        assert_eq!(
            got,
            [
                (10, &b"sh"[..]),
                (11, b"cp"),
                (12, b"sh"),
                (12, b"cat"),
                (13, b"sh"),
                (14, b"sh"),
                (13, b"wc"),
                (15, b"sh"),
            ]
        );
    }

    const REG: FileStat = FileStat {
        dev: 1,
        ino: 2,
        size: 3,
        mtime_ns: 4,
        mode: 0o100644,
    };

    #[test]
    fn read_then_atomic_replace() {
        let s = analyze(&[(
            "a.rwt".into(),
            stream(&[
                Event::ProcessStart {
                    ppid: 1,
                    cause: StartCause::Exec,
                    realtime_ns: 0,
                    exe: b"/usr/bin/python3",
                    exe_stat: Some(REG),
                    argv: Args(b"python3\0t.py\0"),
                    cwd: b"/w",
                },
                Event::Open {
                    flags: 0,
                    mode: 0,
                    result: 3,
                    stat: Some(REG),
                    path: b"/w/data.csv",
                },
                Event::Open {
                    flags: libc::O_WRONLY | libc::O_CREAT,
                    mode: 0o644,
                    result: 4,
                    stat: Some(REG),
                    path: b"/w/m.tmp",
                },
                Event::Rename {
                    flags: 0,
                    result: 0,
                    old: b"/w/m.tmp",
                    new: b"/w/m.bin",
                },
                Event::Open {
                    flags: 0,
                    mode: 0,
                    result: 3,
                    stat: Some(REG),
                    path: b"/w/m.bin",
                },
            ]),
        )]);
        assert!(s.files[&b"/w/data.csv"[..]].read_as.is_some());
        assert!(!s.files[&b"/w/m.tmp"[..]].written);
        let m = &s.files[&b"/w/m.bin"[..]];
        assert!(
            m.written && m.read_as.is_none(),
            "read after write is not an input"
        );
        assert_eq!(s.procs.len(), 1);
        assert!(s.warnings.is_empty());
    }

    #[test]
    fn what_the_run_removed_last_is_gone() {
        let open = |path| Event::Open {
            flags: libc::O_WRONLY | libc::O_CREAT,
            mode: 0o644,
            result: 4,
            stat: Some(REG),
            path,
        };
        let unlink = |path| Event::Unlink {
            result: 0,
            dir: false,
            path,
        };
        let rename = |old, new| Event::Rename {
            flags: 0,
            result: 0,
            old,
            new,
        };
        let s = analyze(&[(
            "a.rwt".into(),
            stream(&[
                open(b"/w/tmp1"),
                unlink(b"/w/tmp1"),
                open(b"/w/again"),
                unlink(b"/w/again"),
                open(b"/w/again"),
                open(b"/w/d/f"),
                rename(b"/w/d", b"/w/e"),
                open(b"/w/same"),
                rename(b"/w/same", b"/w/same"),
                open(b"/w/link"),
                unlink(b"/w/link"),
                Event::Symlink {
                    result: 0,
                    target: b"x",
                    link: b"/w/link",
                },
                open(b"/w/failed"),
                Event::Unlink {
                    result: -libc::EBUSY,
                    dir: false,
                    path: b"/w/failed",
                },
                unlink(b"/w/never-opened"),
            ]),
        )]);
        let gone = |p: &[u8]| s.files[p].gone;
        assert!(gone(b"/w/tmp1"));
        assert!(!gone(b"/w/again"), "created again after its removal");
        assert!(gone(b"/w/d/f"), "its directory was renamed away");
        assert!(!gone(b"/w/e/f"));
        assert!(!gone(b"/w/same"), "renamed onto itself");
        assert!(s.files[&b"/w/same"[..]].written);
        assert!(!gone(b"/w/link"), "a symlink was put there");
        assert!(!gone(b"/w/failed"));
        assert!(!s.files.contains_key(&b"/w/never-opened"[..]));
    }

    #[test]
    fn kernel_losses_are_warned() {
        let s = analyze(&[(
            "ebpf.rwt".into(),
            stream(&[
                Event::Loss {
                    reason: LossReason::RingBufferFull,
                    count: 3,
                },
                Event::Loss {
                    reason: LossReason::Unreadable,
                    count: 2,
                },
            ]),
        )]);
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("ring buffer was full: 3 events")),
            "{:?}",
            s.warnings
        );
        assert!(
            s.warnings.iter().any(|w| w.contains("2 calls succeeded")),
            "{:?}",
            s.warnings
        );
    }

    #[test]
    fn gaps_are_warned() {
        let mut bytes = stream(&[
            Event::Chdir {
                result: 0,
                path: b"/",
            },
            Event::Chdir {
                result: 0,
                path: b"/",
            },
        ]);
        let mut buf = [0u8; 256];
        let h = Header {
            seq: 5,
            ..Default::default()
        };
        let n = encode(
            &h,
            &Event::Chdir {
                result: 0,
                path: b"/",
            },
            &mut buf,
        )
        .unwrap();
        bytes.extend_from_slice(&buf[..n]);
        let s = analyze(&[("a.rwt".into(), bytes)]);
        assert!(
            s.warnings.iter().any(|w| w.contains("missing 3 of 6")),
            "{:?}",
            s.warnings
        );
    }
}
