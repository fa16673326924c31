//! Hashes files while the command runs, on CPU it leaves idle: a thread at
//! SCHED_IDLE follows the run's trace streams as they are written and
//! hashes each regular file a record names (opened, renamed into place,
//! written) once it has stopped changing. After the run, `collect` takes a
//! hash from here only for a file that is still exactly what was hashed.
//!
//! A run that removes or rewrites what was already hashed (a mail-spool
//! benchmark, a build's temporary files) makes that work a loss, and worse:
//! reading its files on another core slows the command through the kernel
//! (page-cache and directory locks), whatever the thread's priority. After
//! [`Churn`] says the run churns, the thread stops hashing and `collect`
//! hashes what is left at the end.
//!
//! The streams are only hints: what the run read and wrote is decided from
//! the whole trace afterwards, as without this. A hash is kept only when
//! the file was the same (identity and ctime) before and after it was read,
//! and its ctime was already [`settled`] in the past when reading started,
//! so any later change gives it another ctime, even with a clock that
//! stamps files at the kernel tick.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dag::FileKey;
use tracer_wire::{Decoder, Event};

use crate::filter::Filter;
use crate::paths::is_under;
use crate::resolve::Now;
use crate::{FastMap, FastSet};

/// What was hashed during the run: a file's identity and ctime then, and
/// its hash.
#[derive(Default)]
pub struct Hashes(FastMap<FileKey, (i64, String)>);

impl Hashes {
    /// The hash of the file that is `now`, when it was hashed as exactly
    /// that file (same identity, same ctime).
    pub fn get(&self, now: &Now) -> Option<&str> {
        self.0
            .get(&now.key)
            .filter(|(ctime, _)| *ctime == now.ctime_ns)
            .map(|(_, h)| h.as_str())
    }

    /// The hash taken of a file that had identity `key` (whatever it is
    /// now): an input's content as read when the run read it with that
    /// identity, as far as identity tells, the hash cache's rule.
    pub fn with_identity(&self, key: &FileKey) -> Option<&str> {
        self.0.get(key).map(|(_, h)| h.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The longest [`settled`] waits.
const SETTLED: Duration = Duration::from_millis(20);

/// How long before it is read a file must have last changed: three ticks of
/// the coarse clock that stamps files (`CLOCK_REALTIME_COARSE`, a jiffy:
/// 4 ms at HZ=250), so that any later change, stamped at a later tick, gives
/// it another ctime; at least 3 ms, at most [`SETTLED`]. A fixed 20 ms left
/// the files of a run's last 20 ms (800 of a `cp -r` of 7,300 files) to be
/// hashed after it.
fn settled() -> Duration {
    static ONCE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *ONCE.get_or_init(|| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_getres writes the timespec it is given.
        let ok = unsafe { libc::clock_getres(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0;
        if !ok {
            return SETTLED;
        }
        let tick = Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.max(0) as u32);
        (3 * tick).clamp(Duration::from_millis(3), SETTLED)
    })
}

/// What looking at a queued file came to.
enum Looked {
    /// Hashed, or nothing to hash.
    Done,
    /// Still changing: look again after this long.
    Changing(Duration),
    /// Not to be hashed here (unreadable, or the run is over).
    GaveUp,
}

/// How often the streams are read for new records.
const POLL: Duration = Duration::from_millis(5);
/// How many times a file still changing is looked at again before it is
/// left to `collect`.
const TRIES: u32 = 40;
/// Bigger files are left to `collect`, which hashes them on every core.
const LARGEST: u64 = 256 << 20;
/// How much of a stream is read at a time (more for a record that is longer).
const CHUNK: usize = 16 << 10;

/// How much of what was hashed the run may throw away before hashing stops.
#[derive(Default, Debug)]
struct Churn {
    /// Files hashed.
    hashed: u32,
    /// Of those, removed or written again by the run after they were hashed.
    lost: u32,
    /// The paths hashed and not lost since.
    paths: FastSet<Vec<u8>>,
}

impl Churn {
    /// At least this many losses before a run is called churning: a few
    /// rewritten files (a log, a lock) are no reason to stop.
    const LEAST: u32 = 64;

    /// A quarter or more of the hashes taken were thrown away.
    fn churning(&self) -> bool {
        self.lost >= Self::LEAST && self.lost.saturating_mul(4) >= self.hashed
    }

    /// A hash of `path` was taken.
    fn took(&mut self, path: &[u8]) {
        self.hashed += 1;
        self.paths.insert(path.to_vec());
    }

    /// The run removed or rewrote `path`: a loss if it was hashed.
    fn changed(&mut self, path: &[u8]) {
        if self.paths.remove(path) {
            self.lost += 1;
        }
    }
}

/// What a record says about a path.
enum Seen {
    /// The path may have content to hash; `rewrite`: new content (a write,
    /// not a read).
    Content { path: Vec<u8>, rewrite: bool },
    /// The run removed it (unlinked, renamed away).
    Removed(Vec<u8>),
}

/// The thread, while the command runs.
pub struct Background {
    stop: Arc<AtomicBool>,
    /// What the thread hashed so far: it adds each hash as it is taken, so
    /// finishing never waits for the thread (at idle priority, a round of
    /// its work can last as long as the machine is busy).
    hashed: Arc<Mutex<Hashes>>,
    thread: std::thread::Thread,
}

impl Background {
    /// Follows the streams in `trace_dir`; `filter` and `own` skip what
    /// `collect` would not hash (system files, roar's own).
    pub fn start(trace_dir: &Path, filter: Filter, own: Vec<Vec<u8>>) -> Option<Background> {
        let stop = Arc::new(AtomicBool::new(false));
        let hashed = Arc::new(Mutex::new(Hashes::default()));
        let state = Follower::new(
            trace_dir.to_path_buf(),
            filter,
            own,
            Arc::clone(&hashed),
            Arc::clone(&stop),
        );
        let handle = std::thread::Builder::new()
            .name("roar-prehash".into())
            .spawn(move || {
                crate::spawn::idle_priority();
                state.run()
            })
            .ok()?;
        Some(Background {
            stop,
            hashed,
            thread: handle.thread().clone(),
        })
    }

    /// What was hashed until now. The thread is told to stop and left to
    /// end on its own (a file it is reading is dropped).
    pub fn finish(self) -> Hashes {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.unpark();
        self.hashed
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default()
    }
}

/// One stream being followed: how far its records were read.
struct Stream {
    /// Closed once the stream has ended (a run may start thousands).
    file: Option<std::fs::File>,
    offset: u64,
    /// The process whose stream it is (its first record's); under ptrace and
    /// eBPF, the command's, whose exit is the run's end.
    pid: Option<u32>,
    /// The process wrote its exit: nothing more will come.
    ended: bool,
}

struct Follower {
    dir: PathBuf,
    filter: Filter,
    own: Vec<Vec<u8>>,
    streams: HashMap<std::ffi::OsString, Stream>,
    /// Paths to look at, when due, and how often they were already.
    /// Soonest due first: files still settling wait different times.
    queue: BinaryHeap<Reverse<(Instant, u32, Vec<u8>)>>,
    queued: FastSet<Vec<u8>>,
    /// The files hashed, as they were then.
    done: FastSet<Now>,
    /// How much of what was hashed the run threw away.
    churn: Churn,
    hashed: Arc<Mutex<Hashes>>,
    stop: Arc<AtomicBool>,
    /// Records are read through this.
    buf: Vec<u8>,
    /// Files are hashed through this (one buffer, not one zeroed per file).
    hash_buf: Vec<u8>,
    last_dir: LastDir,
}

impl Follower {
    fn new(
        dir: PathBuf,
        filter: Filter,
        own: Vec<Vec<u8>>,
        hashed: Arc<Mutex<Hashes>>,
        stop: Arc<AtomicBool>,
    ) -> Follower {
        Follower {
            dir,
            filter,
            own,
            streams: HashMap::new(),
            queue: BinaryHeap::new(),
            queued: FastSet::default(),
            done: FastSet::default(),
            churn: Churn::default(),
            hashed,
            stop,
            buf: vec![0; CHUNK],
            hash_buf: vec![0; 64 << 10],
            last_dir: LastDir::default(),
        }
    }

    fn run(mut self) {
        while !self.stopped() && !self.churn.churning() {
            self.read_streams();
            self.hash_due();
            std::thread::park_timeout(POLL);
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// New records of every stream; new streams are opened.
    fn read_streams(&mut self) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                if !self.streams.contains_key(&name)
                    && name.as_encoded_bytes().ends_with(b".rwt")
                    && let Ok(file) = std::fs::File::open(e.path())
                {
                    let s = Stream {
                        file: Some(file),
                        offset: 0,
                        pid: None,
                        ended: false,
                    };
                    self.streams.insert(name, s);
                }
            }
        }
        let mut found = Vec::new();
        for s in self.streams.values_mut().filter(|s| !s.ended) {
            read_new(s, &mut self.buf, &mut found);
            if s.ended {
                s.file = None;
            }
        }
        let due = Instant::now();
        for seen in found {
            match seen {
                Seen::Content { path: p, rewrite } => {
                    if rewrite {
                        self.churn.changed(&p);
                    }
                    if p.first() == Some(&b'/')
                        && !self.filter.hides(&p)
                        && !self.own.iter().any(|o| is_under(&p, o))
                        && self.queued.insert(p.clone())
                    {
                        self.queue.push(Reverse((due, 0, p)));
                    }
                }
                Seen::Removed(p) => {
                    self.churn.changed(&p);
                    // Still queued, it is not looked at (see hash_due).
                    self.queued.remove(&p);
                }
            }
        }
    }

    /// Hashes the queued files that are due; one still changing is queued
    /// again, due once it will have settled.
    fn hash_due(&mut self) {
        let now = Instant::now();
        let mut later = Vec::new();
        while self
            .queue
            .peek()
            .is_some_and(|Reverse((due, _, _))| *due <= now)
        {
            let Some(Reverse((_, tries, path))) = self.queue.pop() else {
                break;
            };
            if self.stopped() || self.churn.churning() {
                return;
            }
            if !self.queued.contains(&path) {
                continue; // removed by the run since it was queued
            }
            match self.hash_one(&path) {
                Looked::Done => {
                    self.queued.remove(&path);
                }
                Looked::Changing(wait) if tries < TRIES => {
                    later.push(Reverse((now + wait, tries + 1, path)))
                }
                _ => {}
            }
        }
        self.queue.extend(later);
    }

    fn hash_one(&mut self, path: &[u8]) -> Looked {
        let Some((dir, name)) = self.last_dir.split(path) else {
            return Looked::Done;
        };
        let Some(st) = crate::resolve::stat_at(dir, name, 0) else {
            return Looked::Done;
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size as u64 > LARGEST {
            return Looked::Done;
        }
        let before = Now::of_stat(&st);
        if self.done.contains(&before) {
            return Looked::Done;
        }
        let settle = settled();
        let age = crate::time::now_ns() - before.ctime_ns;
        if age < settle.as_nanos() as i64 {
            // Due once settled (a changed ctime later waits again).
            let left = settle.as_nanos() as i64 - age.max(0);
            return Looked::Changing(Duration::from_nanos(left as u64) + Duration::from_millis(1));
        }
        match self.read_hash(dir, name, path, before) {
            Some(true) => Looked::Done,
            Some(false) => Looked::Changing(settle),
            None => Looked::GaveUp,
        }
    }

    /// Hashes the file `name` in directory `dir` (`path`), which was `before`
    /// a moment ago. Some(true): hashed; Some(false): it changed meanwhile;
    /// None: given up.
    fn read_hash(
        &mut self,
        dir: libc::c_int,
        name: &[u8],
        path: &[u8],
        before: Now,
    ) -> Option<bool> {
        let name = std::ffi::CString::new(name).ok()?;
        // Non-blocking: were it replaced by a FIFO since, the open must not wait.
        let how = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC;
        // SAFETY: `name` is NUL-terminated and `dir` is open (held by `last_dir`).
        let fd = unsafe { libc::openat(dir, name.as_ptr(), how) };
        if fd < 0 {
            return None;
        }
        // SAFETY: a new descriptor, owned by nobody else.
        let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
        let mut h = blake3::Hasher::new();
        let stop = &self.stop;
        let md =
            crate::hashing::read_all(&mut f, before.key.size, &mut h, &mut self.hash_buf, || {
                !stop.load(Ordering::Relaxed)
            });
        let after = Now::of_metadata(&md.ok()??);
        if after != before {
            return Some(false);
        }
        let hash = crate::hashing::text(h);
        self.done.insert(before);
        self.churn.took(path);
        if let Ok(mut hashed) = self.hashed.lock() {
            hashed.0.insert(before.key, (before.ctime_ns, hash));
        }
        Some(true)
    }
}

/// The directory of the file last hashed, held open: a run writes a tree's
/// files a directory at a time, and a stat and an open relative to the
/// directory walk one name where the whole path took six or more. Hashes are
/// kept by the file's identity, never by its path, so a directory renamed
/// meanwhile costs a hash nobody asks for, never a wrong one.
#[derive(Default)]
struct LastDir {
    path: Vec<u8>,
    fd: Option<OwnedFd>,
}

impl LastDir {
    /// `path`'s directory (opened unless it is the one held) and last name.
    fn split<'p>(&mut self, path: &'p [u8]) -> Option<(libc::c_int, &'p [u8])> {
        let (dir, name) = crate::resolve::split(path).filter(|(_, n)| !n.is_empty())?;
        if self.fd.is_none() || self.path != dir {
            self.fd = None;
            self.fd = Some(crate::resolve::open_at(libc::AT_FDCWD, dir, 0)?);
            self.path.clear();
            self.path.extend_from_slice(dir);
        }
        Some((self.fd.as_ref()?.as_raw_fd(), name))
    }
}

/// The paths named by `s`'s records since it was last read, up to the
/// first record not yet whole.
fn read_new(s: &mut Stream, buf: &mut Vec<u8>, found: &mut Vec<Seen>) {
    let Some(file) = &s.file else { return };
    buf.truncate(CHUNK);
    loop {
        let n = match file.read_at(buf, s.offset) {
            Ok(n) => n,
            Err(_) => return,
        };
        let mut used = 0;
        let mut dec = Decoder::new(&buf[..n]);
        while buf[used..n].len() >= 2 && buf[used..n][..2] != [0, 0] {
            let Some(Ok(rec)) = dec.next() else { break };
            used = dec.position();
            let pid = *s.pid.get_or_insert(rec.header.pid);
            match rec.event {
                Event::Open {
                    result,
                    flags,
                    stat: Some(st),
                    path,
                    ..
                } if result >= 0 && st.is_regular() => found.push(Seen::Content {
                    path: path.to_vec(),
                    rewrite: flags & (libc::O_WRONLY | libc::O_RDWR | libc::O_TRUNC) != 0,
                }),
                Event::Rename {
                    result: 0,
                    old,
                    new,
                    ..
                } => {
                    found.push(Seen::Removed(old.to_vec()));
                    found.push(Seen::Content {
                        path: new.to_vec(),
                        rewrite: true,
                    });
                }
                Event::Link { result: 0, new, .. } => found.push(Seen::Content {
                    path: new.to_vec(),
                    rewrite: true,
                }),
                Event::Unlink {
                    result: 0,
                    dir: false,
                    path,
                } => found.push(Seen::Removed(path.to_vec())),
                Event::Write { path } => found.push(Seen::Content {
                    path: path.to_vec(),
                    rewrite: true,
                }),
                Event::Exit { .. } if rec.header.pid == pid => s.ended = true,
                _ => {}
            }
        }
        s.offset += used as u64;
        let rest = &buf[used..n];
        // A short read is the stream's end; zeros are space reserved ahead
        // of the writers (preload's fallocate, the sink's sparse growth)
        // that no record has reached yet.
        if n < buf.len() || rest.starts_with(&[0, 0]) {
            return;
        }
        if used == 0 {
            // A record longer than the buffer: read it whole next time. One
            // that fits yet did not decode is not yet whole (or is damaged,
            // which collect reports): left for a later pass.
            match tracer_wire::stated_len(rest) {
                Some(len) if len > buf.len() && len <= tracer_wire::MAX_RECORD_LEN => {
                    buf.resize(len, 0);
                }
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_wire::{FileStat, Header, encode};

    /// A follower of the stream `trace/p.rwt` below `d`, as `start` makes one.
    fn follower(d: &Path) -> Follower {
        let trace = d.join("trace");
        std::fs::create_dir_all(&trace).unwrap();
        Follower::new(
            trace,
            Filter::default(),
            Vec::new(),
            Arc::new(Mutex::new(Hashes::default())),
            Arc::new(AtomicBool::new(false)),
        )
    }

    /// Appends `events` of pid 5 to the stream, as the run's process would.
    fn append(d: &Path, events: &[Event<'_>]) {
        let end = std::fs::metadata(d.join("trace/p.rwt")).map_or(0, |m| m.len());
        write_at(d, end, events);
    }

    /// Writes `events` of pid 5 at `at` of the stream, over space reserved
    /// ahead as a writer does; returns where the next record goes.
    fn write_at(d: &Path, at: u64, events: &[Event<'_>]) -> u64 {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(d.join("trace/p.rwt"))
            .unwrap();
        let mut buf = vec![0u8; 64 << 10];
        let mut at = at;
        for ev in events {
            let h = Header {
                pid: 5,
                tid: 5,
                ..Header::default()
            };
            let n = encode(&h, ev, &mut buf).unwrap();
            f.write_all_at(&buf[..n], at).unwrap();
            at += n as u64;
        }
        at
    }

    fn opened(path: &[u8], flags: i32) -> Event<'_> {
        Event::Open {
            flags,
            mode: 0o644,
            result: 3,
            stat: Some(FileStat {
                mode: 0o100644,
                ..FileStat::default()
            }),
            path,
        }
    }

    /// Files `d/f0..f{n}`, their paths, written and settled.
    fn files(d: &Path, n: usize) -> Vec<Vec<u8>> {
        let paths: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let p = d.join(format!("f{i}"));
                std::fs::write(&p, format!("content {i}")).unwrap();
                p.into_os_string().into_encoded_bytes()
            })
            .collect();
        std::thread::sleep(SETTLED + Duration::from_millis(5));
        paths
    }

    fn pass(f: &mut Follower) {
        f.read_streams();
        f.hash_due();
    }

    #[test]
    fn a_file_still_settling_holds_back_no_file_queued_after_it() {
        let d = tempfile::tempdir().unwrap();
        let mut f = follower(d.path());
        let old = files(d.path(), 1).remove(0);
        let write = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        // A file too new to hash yet. On a machine so loaded that this thread
        // stalls for the settling time between the write and the look, it
        // was settled after all: another one is written.
        let fresh = (0..20)
            .find_map(|i| {
                let p = d.path().join(format!("fresh{i}"));
                std::fs::write(&p, "just written").unwrap();
                let p = p.into_os_string().into_encoded_bytes();
                append(d.path(), &[opened(&p, write)]);
                pass(&mut f);
                f.queued.contains(&p).then_some(p)
            })
            .expect("a file just written was never too new to hash");
        let hashed_before = f.hashed.lock().unwrap().len();
        let Some(Reverse((due, 1, _))) = f.queue.peek() else {
            panic!("queued again once")
        };
        assert!(*due <= Instant::now() + settled() + Duration::from_millis(1));
        // Queued behind it and settled: hashed at once.
        append(d.path(), &[opened(&old, libc::O_RDONLY)]);
        pass(&mut f);
        assert!(!f.queued.contains(&old), "the settled file waited");
        assert!(f.queued.contains(&fresh));
        std::thread::sleep(settled() + Duration::from_millis(2));
        f.hash_due();
        assert!(f.queued.is_empty());
        assert_eq!(f.hashed.lock().unwrap().len(), hashed_before + 2);
    }

    #[test]
    fn the_settling_time_is_a_few_ticks_of_the_coarse_clock() {
        let s = settled();
        assert!(s >= Duration::from_millis(3) && s <= SETTLED, "{s:?}");
    }

    #[test]
    fn hashing_stops_once_the_run_throws_away_a_quarter_of_it() {
        let d = tempfile::tempdir().unwrap();
        let mut f = follower(d.path());
        let paths = files(d.path(), 200);
        let write = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        append(
            d.path(),
            &paths.iter().map(|p| opened(p, write)).collect::<Vec<_>>(),
        );
        pass(&mut f);
        assert_eq!(f.churn.hashed, 200);
        assert!(!f.churn.churning());

        // Read again: no loss.
        append(
            d.path(),
            &paths
                .iter()
                .map(|p| opened(p, libc::O_RDONLY))
                .collect::<Vec<_>>(),
        );
        f.read_streams();
        assert_eq!(f.churn.lost, 0);

        // 49 removed and rewritten: under a quarter, still hashing.
        let mut gone: Vec<Event<'_>> = paths[..30]
            .iter()
            .map(|p| Event::Unlink {
                result: 0,
                dir: false,
                path: p,
            })
            .collect();
        gone.extend(paths[30..49].iter().map(|p| Event::Write { path: p }));
        append(d.path(), &gone);
        f.read_streams();
        assert_eq!(f.churn.lost, 49);
        assert!(!f.churn.churning(), "{:?}", f.churn);

        // 64: past the least, over a quarter of what was hashed (the 19
        // rewritten ones hashed again make 219).
        pass(&mut f);
        append(
            d.path(),
            &paths[49..64]
                .iter()
                .map(|p| Event::Unlink {
                    result: 0,
                    dir: false,
                    path: p,
                })
                .collect::<Vec<_>>(),
        );
        pass(&mut f);
        assert_eq!(f.churn.lost, 64);
        assert!(f.churn.churning(), "{:?}", f.churn);

        // Nothing more is hashed.
        let later = files(d.path(), 201).pop().unwrap();
        let before = f.churn.hashed;
        append(d.path(), &[opened(&later, write)]);
        pass(&mut f);
        assert_eq!(f.churn.hashed, before);
    }

    /// The directory held open is renamed and another made at its path: a
    /// file queued there later is looked up in the directory the held
    /// descriptor now names. What that finds is hashed as the file it is
    /// (its identity), so the new file is never given the old one's hash.
    #[test]
    fn a_held_directory_replaced_never_lends_its_files_hash_to_the_new_one() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let mut f = follower(d.path());
        let dir = d.path().join("out");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("a"), "first a").unwrap();
        std::fs::write(dir.join("b"), "first b").unwrap();
        std::thread::sleep(SETTLED + Duration::from_millis(5));
        let path = |n: &str| dir.join(n).into_os_string().into_encoded_bytes();
        let write = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        append(d.path(), &[opened(&path("a"), write)]);
        pass(&mut f);
        assert_eq!(f.hashed.lock().unwrap().len(), 1);

        std::fs::rename(&dir, d.path().join("moved")).unwrap();
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("b"), "second b, longer").unwrap();
        std::thread::sleep(SETTLED + Duration::from_millis(5));
        append(d.path(), &[opened(&path("b"), write)]);
        pass(&mut f);

        let md = std::fs::metadata(dir.join("b")).unwrap();
        let now = Now::of_metadata(&md);
        let want = crate::hashing::text({
            let mut h = blake3::Hasher::new();
            h.update(b"second b, longer");
            h
        });
        let hashed = f.hashed.lock().unwrap();
        if let Some(h) = hashed.get(&now) {
            assert_eq!(h, want, "the new file got another file's hash");
        }
        for (key, (_, h)) in &hashed.0 {
            if key.ino == md.ino() {
                assert_eq!(*h, want);
            }
        }
    }

    #[test]
    fn a_file_removed_before_its_turn_is_not_hashed() {
        let d = tempfile::tempdir().unwrap();
        let mut f = follower(d.path());
        let paths = files(d.path(), 3);
        let write = libc::O_WRONLY | libc::O_CREAT;
        append(
            d.path(),
            &[
                opened(&paths[0], write),
                opened(&paths[1], write),
                Event::Unlink {
                    result: 0,
                    dir: false,
                    path: &paths[0],
                },
            ],
        );
        pass(&mut f);
        // paths[0] is still on disk (this test did not remove it) but the
        // run said it removed it: not read.
        assert_eq!(f.churn.hashed, 1);
        assert_eq!(f.churn.lost, 0);
        assert!(f.churn.paths.contains(&paths[1]));
    }

    #[test]
    fn space_reserved_ahead_of_the_writers_is_not_read() {
        let d = tempfile::tempdir().unwrap();
        let mut f = follower(d.path());
        let paths = files(d.path(), 3);
        let next = write_at(d.path(), 0, &[opened(&paths[0], libc::O_RDONLY)]);
        // 8 MiB reserved beyond the records, as zeros.
        let stream = std::fs::OpenOptions::new()
            .write(true)
            .open(d.path().join("trace/p.rwt"))
            .unwrap();
        stream.set_len(8 << 20).unwrap();
        f.read_streams();
        assert!(f.queued.contains(&paths[0]));
        // Zeros are not a record to read whole: the buffer stays as it was
        // (each pass had grown it to the largest record and read 4 MiB).
        assert_eq!(f.buf.len(), CHUNK);

        // Records that arrive later in the reserved space are read, a record
        // longer than the buffer too.
        let long = [b"/".as_slice(), &vec![b'x'; 3 * CHUNK]].concat();
        write_at(
            d.path(),
            next,
            &[
                opened(&paths[1], libc::O_RDONLY),
                Event::Write { path: &long },
                opened(&paths[2], libc::O_RDONLY),
            ],
        );
        f.read_streams();
        assert!(f.queued.contains(&paths[1]));
        assert!(f.queued.contains(&long));
        assert!(f.queued.contains(&paths[2]));
        assert!(f.buf.len() > 3 * CHUNK && f.buf.len() < 4 * CHUNK);
    }
}
