//! The eBPF backend: a BPF program (bpf/roar.bpf.c, built by build.rs with
//! clang) follows the command's process tree inside the kernel and hands
//! its file and process events to this crate through a ring buffer; this
//! crate turns them into `tracer-wire` records, the same events the preload
//! and ptrace backends produce, in one `*.rwt` stream.
//!
//! Programs used: `raw_tracepoint` on `sys_exit` (which takes a call's
//! arguments from the registers the kernel saved at its entry),
//! `sched_process_fork`, `sched_process_exec` and `sched_process_exit`.
//! They need root (CAP_BPF + CAP_PERFMON) and the kernel's BTF for CO-RE,
//! and neither tracefs nor kprobes, fentry or LSM hooks.
//!
//! Use: [`Prepared::open`] before fork (registers with the instance pinned
//! in bpffs when there is one for these programs, see [`pin`]; else
//! [`Prepared::load`]s and attaches privately, which is also the probe that
//! says whether the backend works here); [`Prepared::in_child`]
//! in the forked child before exec (waits until its pid is being traced);
//! [`Prepared::attach`] in the parent right after fork; [`Tracer::finish`]
//! once the command has ended.
//!
//! Paths: the kernel side reports each path argument as the caller wrote
//! it, plus, when it is relative, the directory it is relative to (the cwd
//! or the dirfd's directory) as a walk of dentry names; user space joins
//! them. Fd-based calls, fork and exec report their directory or file the
//! same way, so no fd or cwd state is tracked here and chdir is not
//! followed (a `cd` costs no record). The walk stops at the
//! global root (a chrooted process's paths come out as host paths) and after
//! 48 names (the record is then flagged truncated, never guessed).
//!
//! Loss: a record that does not fit the ring buffer, an argument that cannot
//! be read on a successful call, a cut walk, and ia32/x32 calls (not decoded)
//! are counted in the kernel or flagged on the record, and end up as `Loss`
//! records or truncation flags, which make the run incomplete with a warning.
//!
//! Runs: each has a slot in the instance (see `instance.rs`), its own ring
//! buffer, its own loss counters; its processes carry the slot in TRACED,
//! so concurrent runs on one pinned instance never see each other's records.
//!
//! Throughput: the kernel side does not wake the reader per record; the
//! reader drains the ring every 10 ms, or when a quarter of it is in
//! use. Load time: CO-RE relocation uses a minimal BTF cut at build time when
//! the running kernel is the build kernel (see build.rs), else the full BTF.
//!
//! Limits: roar must run in the initial pid namespace (the program sees host
//! pids); refused with that reason otherwise.

use std::collections::HashMap;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{MapData, RingBuf};
use aya::{Btf, Endianness};
use libc::c_int;
use tracer_stream::clock::{now_ns, realtime_ns};
use tracer_stream::path::join;
use tracer_stream::{Gate, Sink};
use tracer_wire::{
    Args, Event, ExitStatus, FLAG_ARGV_TRUNCATED, FLAG_PATH_TRUNCATED, FileStat, LossReason,
    StartCause,
};

mod instance;
pub mod pin;
pub mod record;
mod sys;

use instance::Instance;
pub use instance::RING_BYTES;

use record::*;

/// Where the kernel's BTF is read from unless told otherwise.
pub const DEFAULT_BTF: &str = "/sys/kernel/btf/vmlinux";

pub(crate) static PROGRAM: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/roar.bpf.o"));
/// The kernel types the program relocates against, from the build machine's
/// BTF (see build.rs), and that kernel's identity: BTF size (8 bytes LE)
/// followed by /sys/kernel/notes (its build id).
static MIN_BTF: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/min.btf"));
static BTF_IDENTITY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/btf_identity"));

/// The BTF to relocate against: the small one cut at build time when the
/// running kernel is the one it was cut from, else the full file at `path`.
pub(crate) fn kernel_btf(path: &Path) -> Result<Btf, String> {
    if path == Path::new(DEFAULT_BTF)
        && !MIN_BTF.is_empty()
        && BTF_IDENTITY.len() > 8
        && let Ok(notes) = std::fs::read("/sys/kernel/notes")
        && let Ok(md) = std::fs::metadata(path)
        && BTF_IDENTITY[..8] == md.len().to_le_bytes()
        && BTF_IDENTITY[8..] == notes[..]
        && let Ok(btf) = Btf::parse(MIN_BTF, Endianness::default())
    {
        return Ok(btf);
    }
    Btf::parse_file(path, Endianness::default()).map_err(|e| e.to_string())
}

/// The tracepoints attached, by program name.
/// A pinned instance keeps the first (every system call of the machine runs
/// it) attached only while a run is registered: see [`pin::ON_DEMAND`].
pub(crate) const ATTACH: [(&str, &str); 4] = [
    ("roar_sys_exit", "sys_exit"),
    ("roar_fork", "sched_process_fork"),
    ("roar_exec", "sched_process_exec"),
    ("roar_exit", "sched_process_exit"),
];

/// The inode of the initial pid namespace: a kernel constant
/// (`PROC_PID_INIT_INO`, include/linux/proc_ns.h); every other namespace
/// gets a dynamic one from 0xF0000000 up.
const PROC_PID_INIT_INO: u64 = 0xEFFF_FFFC;

/// Whether this process is in the initial pid namespace, as the kernel sees
/// it: the inode of `/proc/self/ns/pid` names the namespace of this task
/// whichever namespace mounted the /proc it is read through (`NSpid` in
/// /proc/self/status only lists the levels that /proc's namespace sees, one
/// under `unshare --pid --mount-proc`). Err says what was found.
pub fn in_initial_pid_namespace() -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata("/proc/self/ns/pid") {
        Ok(m) if m.ino() == PROC_PID_INIT_INO => Ok(()),
        Ok(m) => Err(format!(
            "/proc/self/ns/pid is pid:[{}], the initial one is pid:[{PROC_PID_INIT_INO}]",
            m.ino()
        )),
        Err(e) => Err(format!(
            "cannot tell which: /proc/self/ns/pid cannot be read ({e})"
        )),
    }
}

/// Why the backend cannot be used, precisely enough to act on.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("roar was built without its eBPF program ({0})")]
    NotBuilt(String),
    #[error("no BTF at {path}: {reason} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)")]
    NoBtf { path: String, reason: String },
    #[error(
        "roar runs in a child pid namespace ({0}); the eBPF program sees host pids, so it needs roar in the initial pid namespace"
    )]
    PidNamespace(String),
    #[error("the kernel refused to {step}: {detail}")]
    Refused {
        step: String,
        detail: String,
        errno: Option<i32>,
    },
}

impl LoadError {
    /// The errno the kernel answered with, when there was one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            LoadError::Refused { errno, .. } => *errno,
            _ => None,
        }
    }
}

fn errno_of(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(n) = io.raw_os_error()
        {
            return Some(n);
        }
        cur = e.source();
    }
    None
}

pub(crate) fn refused(step: impl Into<String>, e: impl std::error::Error + 'static) -> LoadError {
    let errno = errno_of(&e);
    let mut detail = e.to_string();
    // The verifier log is long; its last lines say what went wrong.
    if detail.len() > 600 {
        detail = format!("...{}", &detail[detail.len() - 600..]);
    }
    if let Some(n) = errno {
        detail.push_str(&format!(
            " [errno {n}: {}]",
            io::Error::from_raw_os_error(n)
        ));
    }
    if errno == Some(libc::EPERM) {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            detail.push_str(" (needs root, or CAP_BPF and CAP_PERFMON)");
        } else {
            detail.push_str(
                " (as root: BPF is disabled here, or a security policy such as lockdown or seccomp refuses it)",
            );
        }
    }
    LoadError::Refused {
        step: step.into(),
        detail,
        errno,
    }
}

/// Sizes the defaults of which tests shrink to reach rare paths.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tuning {
    /// The run's ring buffer in bytes (a power of two, at least a page)
    /// instead of the built-in 4 MiB: tiny, it proves overflows are
    /// reported.
    pub ring_bytes: Option<u32>,
    /// Words of the traced-pid bitmap instead of pid_max / 64: tiny, every
    /// pid takes the fallback a raised pid_max would. A private load only.
    pub pid_words: Option<u32>,
}

/// What must hold before any load is tried.
pub(crate) fn check_can_load() -> Result<(), LoadError> {
    if PROGRAM.is_empty() {
        return Err(LoadError::NotBuilt(
            env!("ROAR_EBPF_BUILD_ERROR").to_string(),
        ));
    }
    // The kernel side keys processes by their pids in the initial pid
    // namespace; inside a container roar would put a pid the program
    // never sees into TRACED and record nothing.
    in_initial_pid_namespace().map_err(LoadError::PidNamespace)
}

/// A run's slot in an instance; dropping it frees the slot.
struct Claim {
    inst: Instance,
    slot: u32,
}

impl Drop for Claim {
    fn drop(&mut self) {
        // A private instance goes as a whole.
        if let Some(dir) = self.inst.dir.clone() {
            self.inst.release(self.slot);
            pin::detach_syscalls_if_idle(&dir);
        }
    }
}

/// The programs ready (a private load, or a pinned instance), this run's
/// slot and ring buffer, and the pipe the child waits on.
pub struct Prepared {
    /// Taken by [`Prepared::attach`]; a Mutex so that attach can take
    /// `&self` while the child hook borrows it too. The ring is mapped
    /// here: mapping it takes about a millisecond, which would otherwise
    /// come between fork and exec.
    claim: std::sync::Mutex<Option<(Claim, RingBuf<MapData>)>>,
    gate: Gate,
    load_time: Duration,
    how: String,
}

impl Prepared {
    /// Loads the program privately (for this run only) with the BTF at
    /// `btf` and attaches every tracepoint. Nothing is traced until
    /// [`Prepared::attach`] names a pid.
    pub fn load(btf: &Path) -> Result<Prepared, LoadError> {
        Self::load_tuned(btf, Tuning::default())
    }

    /// [`Prepared::load`] with sizes tests shrink (see [`Tuning`]).
    pub fn load_tuned(btf: &Path, tuning: Tuning) -> Result<Prepared, LoadError> {
        let t0 = Instant::now();
        check_can_load()?;
        let btf_data = kernel_btf(btf).map_err(|reason| LoadError::NoBtf {
            path: btf.display().to_string(),
            reason,
        })?;
        let ring = tuning.ring_bytes.unwrap_or(instance::RING_BYTES);
        let inst = Instance::private(instance::load_programs(
            &btf_data,
            tuning,
            true,
            Some(ring),
        )?)?;
        Self::claim(inst, tuning, t0, "loaded for this run".into())
    }

    /// Registers with the pinned instance when one matches this roar (or
    /// pins one first when `persist`, or when it replaces or repairs one
    /// someone holds), else loads privately as [`Prepared::load_tuned`].
    pub fn open(btf: &Path, tuning: Tuning, persist: bool) -> Result<Prepared, pin::PinError> {
        let t0 = Instant::now();
        if tuning.pid_words.is_some() {
            return Ok(Self::load_tuned(btf, tuning)?);
        }
        check_can_load()?;
        match pin::for_run(btf, persist)? {
            Some((inst, lock)) => {
                let dir = inst.dir.clone().unwrap_or_default();
                let how = format!("pinned instance {}", dir.display());
                let p = Self::claim(inst, tuning, t0, how)?;
                // With the slot taken (so no release detaches them), under
                // the lock: the system call hooks, before the command runs.
                pin::attach_syscalls(&dir)
                    .map_err(|e| refused("attach the system call hooks", e))?;
                drop(lock);
                Ok(p)
            }
            None => Ok(Self::load_tuned(btf, tuning)?),
        }
    }

    fn claim(
        mut inst: Instance,
        tuning: Tuning,
        t0: Instant,
        how: String,
    ) -> Result<Prepared, LoadError> {
        if inst.dir.is_some() {
            inst.reclaim();
        }
        // Nothing may fail once the slot is claimed: dropping a claim takes
        // the pin root's lock, which open() may hold.
        let gate = Gate::new().map_err(|e| refused("create a pipe", e))?;
        let (slot, ring) = inst
            .claim(tuning.ring_bytes.unwrap_or(instance::RING_BYTES))
            .map_err(|e| refused("register the run", e))?;
        let claim = Claim { inst, slot };
        dont_fork_bpf_maps();
        Ok(Prepared {
            claim: std::sync::Mutex::new(Some((claim, ring))),
            gate,
            load_time: t0.elapsed(),
            how: format!("{how}, slot {slot}"),
        })
    }

    /// How long loading (or registering) took.
    pub fn load_time(&self) -> Duration {
        self.load_time
    }

    /// Which instance the run uses, and its slot.
    pub fn how(&self) -> &str {
        &self.how
    }

    /// In the forked child, before exec: waits until the parent has put the
    /// child's pid in the traced set. Only system calls; returns an errno.
    pub fn in_child(&self) -> Result<(), c_int> {
        self.gate.wait()
    }

    /// In the parent, right after fork: traces `pid` (whose working
    /// directory is `cwd` and parent `ppid`), starts reading events into
    /// `trace` (created), then lets the child go on to exec.
    pub fn attach(&self, pid: i32, ppid: u32, cwd: &[u8], trace: &Path) -> io::Result<Tracer> {
        let (mut claim, ring) = self
            .claim
            .lock()
            .ok()
            .and_then(|mut c| c.take())
            .ok_or_else(|| io::Error::other("the eBPF program was attached once already"))?;
        let sink = Sink::create(trace)?;
        claim.inst.trace(pid as u32, claim.slot)?;
        let stop = Arc::new(Wake::new()?);
        let conv = Converter::new(pid as u32, ppid, cwd.to_vec());
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("roar-ebpf".into())
                .spawn(move || read_loop(ring, sink, conv, &stop))?
        };
        self.gate.open()?;
        Ok(Tracer {
            claim: Some(claim),
            stop,
            thread: Some(thread),
        })
    }
}

/// Keeps the ring buffer's mappings (32 MiB of page table entries: the data
/// pages are mapped twice) out of the command's fork: copying them and then
/// dropping them at the child's exec cost about a millisecond between fork
/// and exec. Only roar reads the ring. A mapping that cannot be marked is
/// merely copied.
fn dont_fork_bpf_maps() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    for line in maps.lines().filter(|l| l.ends_with("anon_inode:bpf-map")) {
        let Some((range, _)) = line.split_once(' ') else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
            // SAFETY: advice on a range /proc/self/maps lists as mapped;
            // MADV_DONTFORK changes only what a fork child inherits.
            unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTFORK) };
        }
    }
}

/// The stop signal of the reader thread: a flag, and an eventfd that wakes
/// its poll at once (a poll timeout would add its length to every run).
struct Wake {
    flag: AtomicBool,
    fd: c_int,
}

impl Wake {
    fn new() -> io::Result<Wake> {
        // SAFETY: eventfd returns a new fd or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Wake {
            flag: AtomicBool::new(false),
            fd,
        })
    }

    fn set(&self) {
        self.flag.store(true, Ordering::Release);
        // SAFETY: writing 8 bytes from a local to our eventfd.
        unsafe { libc::write(self.fd, 1u64.to_ne_bytes().as_ptr().cast(), 8) };
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

impl Drop for Wake {
    fn drop(&mut self) {
        // SAFETY: closing our own eventfd.
        unsafe { libc::close(self.fd) };
    }
}

/// How often the reader drains the ring buffer when not woken earlier.
const BATCH_MS: c_int = 10;

/// Reads the ring buffer in batches until told to stop, then drains it.
fn read_loop(
    mut ring: RingBuf<MapData>,
    mut sink: Sink,
    mut conv: Converter,
    stop: &Wake,
) -> (RingBuf<MapData>, Sink, Converter) {
    let fd = ring.as_raw_fd();
    loop {
        let stopping = stop.is_set();
        while let Some(item) = ring.next() {
            conv.handle(&item, &mut sink);
        }
        if stopping {
            break;
        }
        let mut pfd = [
            libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.fd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: polling two pollfds we own. The kernel side does not wake
        // us per record (only when the ring fills up), so this timeout is
        // the batch interval.
        unsafe { libc::poll(pfd.as_mut_ptr(), 2, BATCH_MS) };
    }
    // The ring goes back to the caller: unmapping it (its data pages are
    // mapped twice) takes a few tenths of a millisecond that the release
    // thread, not the run, pays.
    (ring, sink, conv)
}

/// Tracing in progress.
pub struct Tracer {
    /// Taken by [`Tracer::finish`].
    claim: Option<Claim>,
    stop: Arc<Wake>,
    thread: Option<std::thread::JoinHandle<(RingBuf<MapData>, Sink, Converter)>>,
}

/// What tracing ended with.
#[derive(Debug, Default)]
pub struct Finished {
    /// Processes of the run still alive when tracing stopped.
    pub lingering: Vec<u32>,
    /// The run's slot being freed (and, for a private load, the programs
    /// detached) beside roar's own work: dropping it waits until that is
    /// done, so roar never leaves it half done.
    pub release: Release,
}

/// Work that ends a run in the kernel, on a thread of its own: untracing
/// the run's processes, freeing its slot and, when no other run is using
/// a pinned instance, detaching the system call hooks (the kernel retires
/// hooks in about half a millisecond or more, which the run need not wait
/// for). Dropping it joins the thread.
#[derive(Debug, Default)]
pub struct Release(Option<std::thread::JoinHandle<()>>);

impl Release {
    fn spawn(work: impl FnOnce() + Send + 'static) -> Release {
        match std::thread::Builder::new()
            .name("roar-ebpf-release".into())
            .spawn(work)
        {
            Ok(h) => Release(Some(h)),
            // No thread: whatever `work` owned was dropped here, so it is done.
            Err(_) => Release(None),
        }
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            let _ = h.join();
        }
    }
}

impl Tracer {
    /// After the command has ended: reads what is left in the ring buffer,
    /// reports every loss the kernel counted for this run, closes the
    /// stream and frees the run's slot.
    pub fn finish(mut self) -> io::Result<Finished> {
        let mut claim = self
            .claim
            .take()
            .ok_or_else(|| io::Error::other("tracer already finished"))?;
        self.stop.set();
        let (ring, mut sink, mut conv) = self
            .thread
            .take()
            .ok_or_else(|| io::Error::other("tracer already finished"))?
            .join()
            .map_err(|_| io::Error::other("the eBPF reader thread panicked"))?;
        let stats = claim.inst.stats(claim.slot);
        let stat = |i: u32| stats.get(i as usize).copied().unwrap_or(0);
        // A process of the run enters the traced set in the hook that emits
        // its fork record and leaves it in the one that emits its exit record,
        // and a record that cannot be delivered is counted. So with the ring
        // read to its end and nothing lost, the converter's live processes
        // are exactly the set's: none left means none lingers, and the set
        // (a scan of every bucket of the hash map, about 0.2 ms) is not read.
        let lost = stat(RE_STAT_RINGBUF_FULL) + conv.malformed;
        let mut lingering = if conv.procs.is_empty() && lost == 0 {
            Vec::new()
        } else {
            claim.inst.tgids(claim.slot)
        };
        lingering.sort_unstable();
        let now = now_ns();
        let root = conv.root;
        let left: Vec<u32> = conv.foreign.keys().copied().collect();
        for pid in left {
            conv.report_foreign(pid, now, &mut sink);
        }
        for (reason, count) in [
            (LossReason::RingBufferFull, stat(RE_STAT_RINGBUF_FULL)),
            (LossReason::Unreadable, conv.unreadable),
            (LossReason::RecordTooLarge, conv.malformed),
        ] {
            if count > 0 {
                sink.emit(now, root, root, 0, &Event::Loss { reason, count });
            }
        }
        sink.finish(now, root)?;
        // Freeing the slot (and detaching a private load's or an idle pinned
        // instance's hooks) is done beside roar's own storing.
        let private = claim.inst.take_private();
        let release = Release::spawn(move || drop((ring, private, claim)));
        Ok(Finished { lingering, release })
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.stop.set();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One traced process as user space knows it.
#[derive(Clone, Default)]
struct Proc {
    ppid: u32,
    exe: Vec<u8>,
    argv: Vec<u8>,
    cwd: Vec<u8>,
}

/// Turns kernel records into wire events.
struct Converter {
    root: u32,
    procs: HashMap<u32, Proc>,
    /// Successful calls whose path could not be read.
    unreadable: u64,
    /// Records that did not parse.
    malformed: u64,
    /// ia32/x32 system calls per process, reported when it ends.
    foreign: HashMap<u32, u64>,
}

fn strip_nul(b: &[u8]) -> &[u8] {
    b.strip_suffix(&[0]).unwrap_or(b)
}

/// Dentry names from the leaf up, NUL-terminated each, as an absolute path.
fn dpath(names: &[u8]) -> Vec<u8> {
    let names = strip_nul(names);
    if names.is_empty() {
        return b"/".to_vec();
    }
    let mut out = Vec::with_capacity(names.len() + 1);
    for n in names.split(|b| *b == 0).rev() {
        out.push(b'/');
        out.extend_from_slice(n);
    }
    out
}

/// `makedev` from the kernel's internal `major << 20 | minor`.
fn user_dev(kdev: u32) -> u64 {
    libc::makedev(kdev >> 20, kdev & 0xfffff)
}

fn wait_status(code: u32) -> ExitStatus {
    let code = code as i32;
    if code & 0x7f == 0 {
        ExitStatus::Code((code >> 8) & 0xff)
    } else {
        ExitStatus::Signal(code & 0x7f)
    }
}

impl Converter {
    fn new(root: u32, ppid: u32, cwd: Vec<u8>) -> Converter {
        let mut procs = HashMap::new();
        procs.insert(
            root,
            Proc {
                ppid,
                cwd,
                ..Proc::default()
            },
        );
        Converter {
            root,
            procs,
            unreadable: 0,
            malformed: 0,
            foreign: HashMap::new(),
        }
    }

    fn handle(&mut self, raw: &[u8], sink: &mut Sink) {
        let Some((r, s)) = RawRecord::parse(raw) else {
            self.malformed += 1;
            return;
        };
        let mut hflags = 0;
        if r.flags & RE_F_TRUNCATED != 0 {
            hflags |= FLAG_PATH_TRUNCATED;
        }
        let stat = (r.flags & RE_F_STAT != 0).then(|| FileStat {
            dev: user_dev(r.st_dev),
            ino: r.st_ino,
            size: r.st_size,
            mtime_ns: r.st_mtime_sec * 1_000_000_000 + i64::from(r.st_mtime_nsec),
            mode: r.st_mode,
        });
        let emit = |sink: &mut Sink, flags: u32, ev: &Event<'_>| {
            sink.emit(r.ts_ns, r.pid, r.tid, flags, ev)
        };
        match r.kind {
            RE_FORK => {
                let mut p = self.procs.get(&r.ppid).cloned().unwrap_or_default();
                p.ppid = r.ppid;
                // The kernel walks the child's cwd at the fork (chdir is
                // not followed).
                if !s[1].is_empty() {
                    p.cwd = dpath(s[1]);
                }
                emit(
                    sink,
                    0,
                    &Event::ProcessStart {
                        ppid: r.ppid,
                        cause: StartCause::Fork,
                        realtime_ns: realtime_ns(),
                        exe: &p.exe,
                        exe_stat: None,
                        argv: Args(&p.argv),
                        cwd: &p.cwd,
                    },
                );
                self.procs.insert(r.pid, p);
            }
            RE_EXEC => {
                let cwd = dpath(s[1]);
                let file = strip_nul(s[0]);
                let path = if file.starts_with(b"/") {
                    file.to_vec()
                } else {
                    join(&cwd, file)
                };
                let exe = if s[3].is_empty() {
                    path.clone()
                } else {
                    dpath(s[3])
                };
                let (argv, cut) = whole_args(s[2]);
                if cut || r.flags & RE_F_ARGV_TRUNCATED != 0 {
                    hflags |= FLAG_ARGV_TRUNCATED;
                }
                emit(
                    sink,
                    hflags,
                    &Event::Exec {
                        result: 0,
                        flags: 0,
                        path: &path,
                        argv: Args(&argv),
                    },
                );
                let p = self.procs.entry(r.pid).or_default();
                emit(
                    sink,
                    hflags & FLAG_ARGV_TRUNCATED,
                    &Event::ProcessStart {
                        ppid: p.ppid,
                        cause: StartCause::Exec,
                        realtime_ns: realtime_ns(),
                        exe: &exe,
                        exe_stat: stat,
                        argv: Args(&argv),
                        cwd: &cwd,
                    },
                );
                p.exe = exe;
                p.argv = argv;
                p.cwd = cwd;
            }
            RE_EXIT => {
                self.report_foreign(r.pid, r.ts_ns, sink);
                emit(
                    sink,
                    0,
                    &Event::Exit {
                        status: wait_status(r.exit_code),
                    },
                );
                self.procs.remove(&r.pid);
            }
            RE_SYSCALL => self.syscall(&r, s, stat, hflags, sink),
            _ => self.malformed += 1,
        }
    }

    /// The ia32/x32 calls process `pid` made, as one loss record.
    fn report_foreign(&mut self, pid: u32, ts: u64, sink: &mut Sink) {
        if let Some(count) = self.foreign.remove(&pid) {
            sink.emit(
                ts,
                pid,
                pid,
                0,
                &Event::Loss {
                    reason: LossReason::ForeignAbi,
                    count,
                },
            );
        }
    }

    fn syscall(
        &mut self,
        r: &RawRecord,
        s: [&[u8]; 4],
        stat: Option<FileStat>,
        hflags: u32,
        sink: &mut Sink,
    ) {
        if r.flags & RE_F_FOREIGN != 0 {
            *self.foreign.entry(r.pid).or_default() += 1;
            return;
        }
        let res = r.ret as i32;
        let a = r.args;
        if r.flags & RE_F_UNREADABLE != 0 && res >= 0 {
            // A call that succeeded with an argument we could not read:
            // what it touched is unknown.
            self.unreadable += 1;
            return;
        }
        let at = |i: usize| -> Vec<u8> {
            let rel = strip_nul(s[i]);
            if rel.starts_with(b"/") {
                rel.to_vec()
            } else {
                join(&dpath(s[i + 1]), rel)
            }
        };
        let emit = |sink: &mut Sink, ev: &Event<'_>| sink.emit(r.ts_ns, r.pid, r.tid, hflags, ev);
        let nr = r.nr as libc::c_long;
        match nr {
            libc::SYS_open | libc::SYS_openat | libc::SYS_openat2 | libc::SYS_creat => {
                let (flags, mode) = match nr {
                    libc::SYS_open => (a[1] as i32, a[2] as u32),
                    libc::SYS_creat => {
                        (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC, a[1] as u32)
                    }
                    _ => (a[2] as i32, a[3] as u32),
                };
                emit(
                    sink,
                    &Event::Open {
                        flags,
                        mode,
                        result: res,
                        stat,
                        path: &at(0),
                    },
                );
            }
            libc::SYS_rename | libc::SYS_renameat | libc::SYS_renameat2 => emit(
                sink,
                &Event::Rename {
                    flags: if nr == libc::SYS_renameat2 {
                        a[4] as u32
                    } else {
                        0
                    },
                    result: res,
                    old: &at(0),
                    new: &at(2),
                },
            ),
            libc::SYS_link | libc::SYS_linkat => emit(
                sink,
                &Event::Link {
                    result: res,
                    old: &at(0),
                    new: &at(2),
                },
            ),
            libc::SYS_symlink | libc::SYS_symlinkat => emit(
                sink,
                &Event::Symlink {
                    result: res,
                    target: strip_nul(s[0]),
                    link: &at(2),
                },
            ),
            libc::SYS_unlink | libc::SYS_rmdir | libc::SYS_unlinkat => emit(
                sink,
                &Event::Unlink {
                    result: res,
                    dir: nr == libc::SYS_rmdir
                        || (nr == libc::SYS_unlinkat && a[2] as i32 & libc::AT_REMOVEDIR != 0),
                    path: &at(0),
                },
            ),
            libc::SYS_truncate => emit(
                sink,
                &Event::Truncate {
                    result: res,
                    length: a[1],
                    path: &at(0),
                },
            ),
            libc::SYS_ftruncate if !s[1].is_empty() => emit(
                sink,
                &Event::Truncate {
                    result: res,
                    length: a[1],
                    path: &dpath(s[1]),
                },
            ),
            libc::SYS_mkdir | libc::SYS_mkdirat => emit(
                sink,
                &Event::Mkdir {
                    result: res,
                    mode: if nr == libc::SYS_mkdir {
                        a[1] as u32
                    } else {
                        a[2] as u32
                    },
                    path: &at(0),
                },
            ),
            libc::SYS_execve | libc::SYS_execveat => emit(
                sink,
                &Event::Exec {
                    result: res,
                    flags: 0,
                    path: &at(0),
                    argv: Args(&[]),
                },
            ),
            libc::SYS_sendfile | libc::SYS_copy_file_range | libc::SYS_splice
                if res > 0 && !s[1].is_empty() =>
            {
                emit(sink, &Event::Write { path: &dpath(s[1]) })
            }
            libc::SYS_io_uring_setup if res >= 0 => emit(
                sink,
                &Event::Loss {
                    reason: LossReason::IoUring,
                    count: 1,
                },
            ),
            _ => {}
        }
    }
}

/// The argument vector the kernel side read, as whole NUL-terminated
/// arguments: one longer than the kernel's buffer arrives cut inside an
/// argument, without its final NUL; the cut argument is dropped (the record
/// is flagged), so the argv is never malformed.
fn whole_args(raw: &[u8]) -> (Vec<u8>, bool) {
    if raw.is_empty() || raw.last() == Some(&0) {
        return (raw.to_vec(), false);
    }
    let keep = raw.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
    (raw[..keep].to_vec(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dentry_names_become_paths() {
        assert_eq!(dpath(b""), b"/");
        assert_eq!(dpath(b"c\0b\0a\0"), b"/a/b/c");
        assert_eq!(join(&dpath(b"w\0"), b"x.txt"), b"/w/x.txt");
    }

    /// The bytes the kernel would hand over: header, then the strings.
    fn raw(r: RawRecord, strs: [&[u8]; 4]) -> Vec<u8> {
        let mut r = r;
        r.version = RE_VERSION;
        for (i, s) in strs.iter().enumerate() {
            r.len[i] = s.len() as u16;
        }
        let n = std::mem::size_of::<RawRecord>();
        let mut b = vec![0u8; n];
        // SAFETY: writing a plain-integer struct into a buffer of its size.
        unsafe { std::ptr::write_unaligned(b.as_mut_ptr().cast(), r) };
        for s in strs {
            b.extend_from_slice(s);
        }
        b
    }

    #[test]
    fn kernel_records_become_wire_events_with_absolute_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.rwt");
        let mut sink = Sink::create(&path).unwrap();
        let mut conv = Converter::new(10, 1, b"/start".to_vec());
        // openat(AT_FDCWD, "in.txt", O_RDONLY) = 3 in /w/sub, file on 8:1.
        let open = RawRecord {
            kind: RE_SYSCALL,
            flags: RE_F_STAT,
            pid: 10,
            tid: 10,
            ts_ns: 5,
            ret: 3,
            nr: libc::SYS_openat as u64,
            args: [libc::AT_FDCWD as u64, 0, 0, 0, 0, 0],
            st_ino: 42,
            st_size: 7,
            st_mtime_sec: 2,
            st_mtime_nsec: 3,
            st_mode: 0o100644,
            st_dev: (8 << 20) | 1,
            ..RawRecord::default()
        };
        conv.handle(&raw(open, [b"in.txt\0", b"sub\0w\0", b"", b""]), &mut sink);
        // A truncated walk is flagged, not guessed.
        let cut = RawRecord {
            flags: RE_F_TRUNCATED,
            ts_ns: 6,
            ..open
        };
        conv.handle(&raw(cut, [b"x\0", b"d\0", b"", b""]), &mut sink);
        conv.handle(&[1, 2, 3], &mut sink);
        sink.finish(7, 10).unwrap();
        assert_eq!(conv.malformed, 1);

        let bytes = std::fs::read(&path).unwrap();
        let recs: Vec<_> = tracer_wire::Decoder::new(&bytes)
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(recs.len(), 2);
        match recs[0].event {
            Event::Open {
                path, result, stat, ..
            } => {
                assert_eq!(path, b"/w/sub/in.txt");
                assert_eq!(result, 3);
                let st = stat.unwrap();
                assert_eq!(st.dev, libc::makedev(8, 1));
                assert_eq!((st.ino, st.size, st.mtime_ns), (42, 7, 2_000_000_003));
            }
            e => panic!("{e:?}"),
        }
        assert_eq!(recs[0].header.flags, 0);
        assert_eq!(recs[1].header.flags, FLAG_PATH_TRUNCATED);
    }

    #[test]
    fn an_argv_cut_inside_an_argument_keeps_the_whole_ones() {
        assert_eq!(whole_args(b"cc\0-o\0x\0"), (b"cc\0-o\0x\0".to_vec(), false));
        assert_eq!(whole_args(b"cc\0-o\0very-lo"), (b"cc\0-o\0".to_vec(), true));
        assert_eq!(whole_args(b"nonul"), (Vec::new(), true));
        assert_eq!(whole_args(b""), (Vec::new(), false));
    }

    #[test]
    fn wait_statuses() {
        assert_eq!(wait_status(3 << 8), ExitStatus::Code(3));
        assert_eq!(wait_status(15), ExitStatus::Signal(15));
        assert_eq!(wait_status(0x80 | 6), ExitStatus::Signal(6));
    }
}
