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
    Decoder, Event, ExitStatus, FLAG_PATH_TRUNCATED, FileStat, LossReason, StartCause, exec_flags,
};

use crate::paths::normalize;

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
    /// The run wrote or created content at this path.
    pub written: bool,
    /// Order of first access, for stable output.
    pub first_seen: u64,
}

/// Everything learnt from one trace.
#[derive(Debug, Default)]
pub struct Summary {
    pub procs: Vec<Proc>,
    pub files: BTreeMap<Vec<u8>, Access>,
    pub warnings: Vec<String>,
    pub records: u64,
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
    let mut s = Summary::default();
    let mut items: Vec<Item<'_>> = Vec::new();
    for (i, (name, bytes)) in streams.iter().enumerate() {
        let mut seqs = Vec::new();
        let mut dec = Decoder::new(bytes);
        while let Some(r) = dec.next() {
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
                Err(e) => {
                    // A memory-mapped stream whose writer was killed ends in
                    // the zeros it had reserved: that is its end, not damage.
                    let rest = &bytes[dec.position().min(bytes.len())..];
                    if !rest.iter().all(|b| *b == 0) {
                        s.warnings.push(format!(
                            "trace stream {name} is damaged ({e}); the rest of it was not read"
                        ));
                    }
                }
            }
        }
        seqs.sort_unstable();
        let expected = seqs.len() as u64;
        let last = seqs.last().map_or(0, |l| l + 1);
        if last > expected {
            s.warnings.push(format!(
                "trace stream {name} is missing {} of {last} records",
                last - expected
            ));
        }
    }
    items.sort_by_key(|it| (it.ts, it.stream, it.seq));
    s.records = items.len() as u64;

    let mut order = 0u64;
    let mut last_image: HashMap<u32, usize> = HashMap::new();
    // Fork images not yet replaced by an exec: pid -> (index, did something).
    // One that did nothing before its exec is folded into the exec'd image,
    // so every backend lists the same processes (preload never sees the
    // child of a vfork or posix_spawn before its exec; ptrace and eBPF do).
    let mut fork_images: HashMap<u32, (usize, bool)> = HashMap::new();
    let mut folded: Vec<bool> = Vec::new();
    let mut truncated = 0u64;
    let mut static_execs: Vec<Vec<u8>> = Vec::new();
    let mut dropped: Vec<Vec<u8>> = Vec::new();
    for it in &items {
        let h = it.rec.header;
        if h.flags & FLAG_PATH_TRUNCATED != 0 {
            truncated += 1;
            continue;
        }
        order += 1;
        if !matches!(
            it.rec.event,
            Event::ProcessStart { .. } | Event::Exec { .. }
        ) && let Some(f) = fork_images.get_mut(&h.pid)
        {
            f.1 = true;
        }
        match it.rec.event {
            Event::ProcessStart {
                ppid,
                cause,
                exe,
                exe_stat,
                argv,
                cwd,
                ..
            } => {
                let proc = Proc {
                    pid: h.pid,
                    ppid,
                    exe: normalize(exe, b"/"),
                    argv: argv.iter().map(<[u8]>::to_vec).collect(),
                    cwd: normalize(cwd, b"/"),
                    started_ns: h.ts_ns,
                    status: None,
                };
                // Every image is its own entry: a fork child under its new
                // pid, an exec'd image after the earlier one of the same pid;
                // except a fork image that only exec'd.
                if let Some(f) = fork_images.get_mut(&ppid) {
                    f.1 = true; // it started a process of its own
                }
                if cause == StartCause::Fork {
                    fork_images.insert(h.pid, (s.procs.len(), false));
                } else if let Some((i, false)) = fork_images.remove(&h.pid) {
                    folded[i] = true;
                }
                last_image.insert(h.pid, s.procs.len());
                s.procs.push(proc);
                folded.push(false);
                if let Some(st) = exe_stat
                    && st.is_regular()
                {
                    let a = touch(&mut s.files, exe, order);
                    if !a.written && a.read_as.is_none() {
                        a.read_as = Some(st);
                    }
                }
            }
            Event::Exec {
                result,
                flags,
                path,
                ..
            } => {
                if result == 0 {
                    if flags & exec_flags::STATIC_BINARY != 0 {
                        static_execs.push(path.to_vec());
                    } else if flags & (exec_flags::PRELOAD_DROPPED | exec_flags::SETUID) != 0 {
                        dropped.push(path.to_vec());
                    }
                }
            }
            Event::Exit { status } => {
                if let Some(&i) = last_image.get(&h.pid) {
                    s.procs[i].status.get_or_insert(status);
                }
            }
            Event::ChildExit { child, status } => {
                if let Some(&i) = last_image.get(&child) {
                    s.procs[i].status = Some(status);
                }
            }
            Event::Open {
                flags,
                result,
                stat,
                path,
                ..
            } => {
                if result < 0 || flags & libc::O_PATH != 0 {
                    continue;
                }
                let Some(st) = stat else { continue };
                if !st.is_regular() {
                    continue;
                }
                let acc = flags & O_ACCMODE;
                // A file this open created, or emptied, had no earlier
                // content for the run to read: it is not an input.
                let created = flags & libc::O_EXCL != 0
                    || (flags & (libc::O_CREAT | libc::O_TRUNC) != 0 && st.size == 0);
                let reads = (acc == libc::O_RDONLY || acc == libc::O_RDWR) && !created;
                let writes =
                    acc == libc::O_WRONLY || acc == libc::O_RDWR || flags & libc::O_TRUNC != 0;
                let a = touch(&mut s.files, path, order);
                if reads && !a.written && a.read_as.is_none() {
                    a.read_as = Some(st);
                }
                if writes {
                    a.written = true;
                }
            }
            Event::Rename {
                result, old, new, ..
            } => {
                if result != 0 {
                    continue;
                }
                let old_k = normalize(old, b"/");
                let new_k = normalize(new, b"/");
                touch(&mut s.files, new, order).written = true;
                // Whatever the run wrote below a renamed directory now lives
                // under the new name.
                let mut prefix = old_k.clone();
                prefix.push(b'/');
                let moved: Vec<Vec<u8>> = s
                    .files
                    .iter()
                    .filter(|(k, a)| a.written && k.starts_with(&prefix))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in moved {
                    let mut nk = new_k.clone();
                    nk.extend_from_slice(&k[old_k.len()..]);
                    if let Some(a) = s.files.get_mut(&k) {
                        a.written = false;
                    }
                    touch(&mut s.files, &nk, order).written = true;
                }
                if let Some(a) = s.files.get_mut(&old_k) {
                    a.written = false;
                }
            }
            Event::Link { result, new, .. } => {
                if result == 0 {
                    touch(&mut s.files, new, order).written = true;
                }
            }
            Event::Truncate { result, path, .. } => {
                if result == 0 {
                    touch(&mut s.files, path, order).written = true;
                }
            }
            Event::Write { path } => {
                touch(&mut s.files, path, order).written = true;
            }
            Event::Loss {
                reason: LossReason::ForeignAbi,
                count,
            } => {
                s.warnings.push(format!(
                    "process {} made {count} 32-bit (ia32/x32) system calls, which roar does not decode: what they accessed is not recorded",
                    h.pid
                ));
            }
            Event::Loss {
                reason: LossReason::IoUring,
                ..
            } => {
                s.warnings.push(format!(
                    "process {} used io_uring: files it reads or writes through the ring are not recorded",
                    h.pid
                ));
            }
            Event::Loss {
                reason: LossReason::RingBufferFull,
                count,
            } => {
                s.warnings.push(format!(
                    "the kernel ring buffer was full: {count} events were lost"
                ));
            }
            Event::Loss {
                reason: LossReason::Unreadable,
                count,
            } => {
                s.warnings.push(format!(
                    "{count} calls succeeded with an argument the tracer could not read: what they touched is not recorded"
                ));
            }
            Event::Loss { reason, count } => {
                s.warnings
                    .push(format!("the tracer lost {count} events ({reason:?})"));
            }
            Event::Unlink { .. }
            | Event::Symlink { .. }
            | Event::Mkdir { .. }
            | Event::Chdir { .. } => {}
        }
    }
    let mut i = 0;
    s.procs.retain(|_| {
        i += 1;
        !folded[i - 1]
    });
    if truncated > 0 {
        s.warnings.push(format!(
            "{truncated} events had paths too long to capture and were left out"
        ));
    }
    static_execs.sort();
    static_execs.dedup();
    for p in static_execs {
        s.warnings.push(format!(
            "{} is statically linked: the preload backend cannot see its file accesses (use --backend ptrace)",
            String::from_utf8_lossy(&p)
        ));
    }
    dropped.sort();
    dropped.dedup();
    for p in dropped {
        s.warnings.push(format!(
            "{} was started without the preload library (environment cleared, or set-user-ID): its file accesses are not recorded",
            String::from_utf8_lossy(&p)
        ));
    }
    s
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
