//! Instances pinned in bpffs, loaded once for a session or a machine.
//!
//! Layout: `ROOT/ID/` (ROOT is /sys/fs/bpf/roar, or `ROAR_BPFFS_DIR`; ID is
//! roar's version and the hash of the program it carries) holds
//! `map_NAME` for every map, `prog_NAME` for every program and `link_NAME`
//! for the tracepoint links, which keep the programs attached with no
//! process around: fork, exec and exit always, `sys_exit` only while a run is registered (the first run attaches them, the last
//! one to leave detaches them), so that an idle instance costs the
//! machine's system calls nothing. A holder that loaded with
//! `keep_attached` (a `keep-HASH` directory beside the pins) keeps them
//! attached until it unloads: attaching again soon after a detach waits
//! for an RCU grace period (10-15 ms here), which back-to-back runs would
//! otherwise pay. An instance is built in `ROOT/tmp-ID-PID` and renamed
//! into place, so a complete set appears at once; a set with a pin missing
//! (a crash while removing it, a hand-deleted file) is set aside and loaded
//! anew, never used. Every change happens under an exclusive `flock` of
//! ROOT, which registering runs take too (for microseconds).
//!
//! Holders (named, in the HOLDERS map: `default` for `roar ebpf load` and
//! persist, a session's own name for OpenJD) keep an instance loaded; runs
//! hold slots. An instance whose ID is not this roar's is left alone while
//! any of its slots is owned by a live run: a new instance is pinned under
//! the new ID beside it, takes over its holders, and the old one is removed
//! by the first roar that finds its slots empty.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap as BpfHashMap, Map, MapData};
use aya::programs::ProgramInfo;

use crate::instance::{CTL, Instance, MAPS, load_programs, pin_all};
use crate::record::Slot;
use crate::{ATTACH, LoadError, Tuning, kernel_btf, sys};

/// Where instances are pinned unless `ROAR_BPFFS_DIR` says otherwise.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/roar";
/// The holder `roar ebpf load` and persist use when none is named.
pub const DEFAULT_HOLDER: &str = "default";
const HOLDER_LEN: usize = 64;

/// The directory instances are pinned under.
pub fn root() -> PathBuf {
    std::env::var_os("ROAR_BPFFS_DIR")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(DEFAULT_ROOT), PathBuf::from)
}

/// The identity of the programs this roar carries: version and program hash.
pub fn id() -> String {
    // bpffs refuses names with a dot.
    format!(
        "v{}-{}",
        env!("CARGO_PKG_VERSION").replace('.', "_"),
        &env!("ROAR_EBPF_PROGRAM_HASH")[..12]
    )
}

/// What went wrong with a pinned instance.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{0}")]
    Bpffs(String),
    #[error("{0}")]
    Io(String),
    #[error("{0}")]
    InUse(String),
}

fn io_err(what: impl std::fmt::Display) -> impl Fn(io::Error) -> PinError {
    move |e| PinError::Io(format!("{what}: {e}"))
}

/// The program every system call of the machine runs: attached (its link
/// pinned) only while at least one run is registered, so that with no run
/// the machine's system calls pay nothing.
pub(crate) const ON_DEMAND: [&str; 1] = ["roar_sys_exit"];

/// Every pin a complete instance has (the on-demand links come and go).
fn expected() -> Vec<String> {
    let mut v: Vec<String> = MAPS.iter().map(|m| format!("map_{m}")).collect();
    for (p, _) in ATTACH {
        v.push(format!("prog_{p}"));
        if !ON_DEMAND.contains(&p) {
            v.push(format!("link_{p}"));
        }
    }
    v.push(format!("prog_{CTL}"));
    v
}

/// Attaches the system call hooks of the instance in `dir` unless they are.
/// Under the root's lock, with a slot claimed.
pub(crate) fn attach_syscalls(dir: &Path) -> io::Result<()> {
    for (prog, tp) in ATTACH.iter().filter(|(p, _)| ON_DEMAND.contains(p)) {
        let link = dir.join(format!("link_{prog}"));
        if link.exists() {
            continue;
        }
        let p = sys::obj_get(&dir.join(format!("prog_{prog}")))?;
        let l = sys::raw_tp_open(std::os::fd::AsFd::as_fd(&p), tp)?;
        sys::obj_pin(std::os::fd::AsFd::as_fd(&l), &link)?;
    }
    Ok(())
}

/// Whether the system call hooks of the instance in `dir` are attached.
pub fn syscalls_attached(dir: &Path) -> bool {
    ON_DEMAND
        .iter()
        .any(|p| dir.join(format!("link_{p}")).exists())
}

/// Detaches the system call hooks of the instance in `dir` when no live
/// run is registered with it any more and no holder keeps them attached.
pub(crate) fn detach_syscalls_if_idle(dir: &Path) {
    let Some(root) = dir.parent() else { return };
    let Ok(_l) = lock(root) else { return };
    detach_if_idle_locked(dir);
}

fn detach_if_idle_locked(dir: &Path) {
    if kept_attached(dir) || slots(dir).iter().any(|(_, _, alive)| *alive) {
        return;
    }
    for p in ON_DEMAND {
        let _ = std::fs::remove_file(dir.join(format!("link_{p}")));
    }
}

/// The directory that says `holder` keeps the system call hooks attached.
fn keep_marker(dir: &Path, holder: &str) -> PathBuf {
    dir.join(format!("keep-{:016x}", fnv(holder.as_bytes())))
}

/// The keep markers of the instance in `dir`.
fn keep_markers(dir: &Path) -> Vec<std::ffi::OsString> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("keep-"))
        .collect()
}

/// Whether a holder keeps the system call hooks of `dir` attached.
pub fn kept_attached(dir: &Path) -> bool {
    !keep_markers(dir).is_empty()
}

/// The pins `dir` lacks.
fn missing(dir: &Path) -> Vec<String> {
    expected()
        .into_iter()
        .filter(|f| !dir.join(f).exists())
        .collect()
}

/// An exclusive lock on the pin root, held while it changes.
pub struct Lock(#[allow(dead_code)] File);

fn lock(root: &Path) -> Result<Lock, PinError> {
    let f = File::open(root).map_err(io_err(format!("cannot open {}", root.display())))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_err(format!("cannot lock {}", root.display()))(
            io::Error::last_os_error(),
        ));
    }
    Ok(Lock(f))
}

/// Makes `root` exist on a BPF file system, mounting bpffs on /sys/fs/bpf
/// when nothing is mounted there.
fn ensure_root(root: &Path) -> Result<(), PinError> {
    if root.is_dir() && sys::is_bpffs(root) {
        return Ok(());
    }
    if root.exists() {
        return Err(PinError::Bpffs(format!(
            "{} exists but is not on a BPF file system (bpffs); roar pins its programs there",
            root.display()
        )));
    }
    let parent = root.parent().unwrap_or(Path::new("/"));
    if !sys::is_bpffs(parent) {
        if parent != Path::new("/sys/fs/bpf") {
            return Err(PinError::Bpffs(format!(
                "{} is not on a BPF file system (bpffs), so roar cannot pin there; mount one (mount -t bpf bpf DIR) or point ROAR_BPFFS_DIR under /sys/fs/bpf",
                parent.display()
            )));
        }
        sys::mount_bpffs(parent).map_err(|e| {
            PinError::Bpffs(format!(
                "no BPF file system is mounted on /sys/fs/bpf and mounting one failed ({e}); as root: mount -t bpf bpf /sys/fs/bpf"
            ))
        })?;
    }
    match std::fs::create_dir(root) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(format!("cannot create {}", root.display()))(e)),
    }
}

/// FNV-1a: a short stable name for a long holder name.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, c| {
        (h ^ u64::from(*c)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A holder's name as its key: a name longer than the key keeps its start
/// and gets a hash of the whole (session paths share long prefixes).
fn holder_key(name: &str) -> [u8; HOLDER_LEN] {
    let mut k = [0u8; HOLDER_LEN];
    let b = name.as_bytes();
    if b.len() < HOLDER_LEN {
        k[..b.len()].copy_from_slice(b);
        return k;
    }
    let tail = format!("~{:016x}", fnv(b));
    let keep = HOLDER_LEN - 1 - tail.len();
    k[..keep].copy_from_slice(&b[..keep]);
    k[keep..keep + tail.len()].copy_from_slice(tail.as_bytes());
    k
}

fn holders_map(dir: &Path) -> io::Result<BpfHashMap<MapData, [u8; HOLDER_LEN], u64>> {
    let md = MapData::from_pin(dir.join("map_HOLDERS")).map_err(io::Error::other)?;
    let m = Map::from_map_data(md).map_err(io::Error::other)?;
    BpfHashMap::try_from(m).map_err(io::Error::other)
}

/// The holders of the instance in `dir`, with when they started holding
/// (seconds since the epoch).
pub fn holders(dir: &Path) -> Vec<(String, u64)> {
    let Ok(m) = holders_map(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, u64)> = m
        .iter()
        .filter_map(Result::ok)
        .map(|(k, t)| {
            let end = k.iter().position(|b| *b == 0).unwrap_or(k.len());
            (String::from_utf8_lossy(&k[..end]).into_owned(), t)
        })
        .collect();
    v.sort();
    v
}

fn add_holder(dir: &Path, name: &str) -> Result<(), PinError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut m = holders_map(dir).map_err(io_err("cannot open the HOLDERS map"))?;
    m.insert(holder_key(name), now, 0)
        .map_err(|e| PinError::Io(format!("cannot record holder {name}: {e}")))
}

fn remove_holder(dir: &Path, name: &str) {
    if let Ok(mut m) = holders_map(dir) {
        let _ = m.remove(&holder_key(name));
    }
}

/// The slots of the instance in `dir` with whether their roar still runs.
pub fn slots(dir: &Path) -> Vec<(u32, Slot, bool)> {
    let open = || -> io::Result<Array<MapData, Slot>> {
        let md = MapData::from_pin(dir.join("map_SLOTS")).map_err(io::Error::other)?;
        Array::try_from(Map::from_map_data(md).map_err(io::Error::other)?).map_err(io::Error::other)
    };
    let Ok(a) = open() else {
        return Vec::new();
    };
    (0..a.len())
        .filter_map(|i| a.get(&i, 0).ok().map(|s| (i, s)))
        .filter(|(_, s)| s.pid != 0)
        .map(|(i, s)| (i, s, sys::start_time(s.pid) == Some(s.start_time)))
        .collect()
}

/// Unpins everything in `dir` and removes it (keep markers too). Programs
/// whose last link goes are detached by the kernel.
fn remove_dir(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let _ = std::fs::remove_file(e.path()).or_else(|_| std::fs::remove_dir(e.path()));
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// The instance directories under `root` (not the ones being built).
fn instance_dirs(root: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .filter(|(n, p)| !n.starts_with("tmp-") && p.is_dir())
        .collect();
    v.sort();
    v
}

/// Removes what no one needs any more: builds whose roar died, and
/// instances other than this roar's (replaced or broken) with no holder
/// and no live run.
fn gc(root: &Path) {
    let me = id();
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = name.strip_prefix("tmp-") {
            let pid = rest.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
            if pid.is_none_or(|p| sys::start_time(p).is_none()) {
                remove_dir(&e.path());
            }
            continue;
        }
        if name == me {
            continue;
        }
        let dir = e.path();
        let broken = !missing(&dir).is_empty();
        let idle = !slots(&dir).iter().any(|(_, _, alive)| *alive);
        if idle && (broken || holders(&dir).is_empty()) {
            remove_dir(&dir);
        }
    }
}

/// Moves an incomplete instance out of the way (runs on it keep their
/// descriptors; [`gc`] removes it once they are done).
fn set_aside(root: &Path, dir: &Path) -> Result<(), PinError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let to = root.join(format!("broken-{}-{nanos}", std::process::id()));
    std::fs::rename(dir, &to).map_err(io_err(format!(
        "cannot move the incomplete instance {} aside",
        dir.display()
    )))
}

/// Loads and pins this roar's instance unless a complete one is there,
/// adds `holder` to it, and hands over the holders of other instances.
/// Returns its directory and whether it was there already. Under the lock.
fn publish(root: &Path, btf: &Path, holder: Option<&str>) -> Result<(PathBuf, bool), PinError> {
    let dir = root.join(id());
    if dir.exists() {
        if missing(&dir).is_empty() {
            if let Some(h) = holder {
                add_holder(&dir, h)?;
            }
            return Ok((dir, true));
        }
        set_aside(root, &dir)?;
    }
    let btf_data = kernel_btf(btf).map_err(|reason| LoadError::NoBtf {
        path: btf.display().to_string(),
        reason,
    })?;
    let tmp = root.join(format!("tmp-{}-{}", id(), std::process::id()));
    remove_dir(&tmp);
    std::fs::create_dir(&tmp).map_err(io_err(format!("cannot create {}", tmp.display())))?;
    let built = load_programs(&btf_data, Tuning::default(), false, None)
        .and_then(|ebpf| pin_all(ebpf, &tmp))
        .map_err(PinError::from)
        .and_then(|()| {
            let mut names: Vec<String> = holder.into_iter().map(str::to_string).collect();
            for (_, other) in instance_dirs(root) {
                for (h, _) in holders(&other) {
                    remove_holder(&other, &h);
                    names.push(h);
                }
                // A holder that kept the old instance's hooks attached keeps the new one's.
                for m in keep_markers(&other) {
                    let _ = std::fs::create_dir(tmp.join(&m));
                    let _ = std::fs::remove_dir(other.join(&m));
                }
            }
            names.iter().try_for_each(|h| add_holder(&tmp, h))
        })
        .and_then(|()| {
            // The first run's ring buffer, made now: putting it in RINGS
            // waits for an RCU grace period, better paid here than by a run.
            Instance::open_pinned(&tmp)
                .and_then(|mut i| i.prepare_ring(0))
                .map_err(io_err("cannot give the new instance its first ring buffer"))
        })
        .and_then(|()| {
            std::fs::rename(&tmp, &dir).map_err(io_err(format!("cannot publish {}", dir.display())))
        });
    if let Err(e) = built {
        remove_dir(&tmp);
        return Err(e);
    }
    gc(root);
    Ok((dir, false))
}

/// What `roar ebpf load` did.
pub struct Loaded {
    pub dir: PathBuf,
    /// It was loaded already (the holder was added).
    pub already: bool,
}

/// Loads and pins this roar's instance (unless it is there) for `holder`.
/// With `keep_attached` its system call hooks are attached now and stay so
/// until `holder` unloads (or loads again without it), instead of only
/// while runs are registered.
pub fn load(btf: &Path, holder: &str, keep_attached: bool) -> Result<Loaded, PinError> {
    crate::check_can_load()?;
    let root = root();
    ensure_root(&root)?;
    let _l = lock(&root)?;
    let (dir, already) = publish(&root, btf, Some(holder))?;
    let marker = keep_marker(&dir, holder);
    if keep_attached {
        match std::fs::create_dir(&marker) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(io_err(format!("cannot create {}", marker.display()))(e));
            }
            _ => {}
        }
    } else {
        let _ = std::fs::remove_dir(&marker);
    }
    if kept_attached(&dir) {
        attach_syscalls(&dir).map_err(io_err("cannot attach the system call hooks"))?;
    } else {
        detach_if_idle_locked(&dir);
    }
    Ok(Loaded { dir, already })
}

/// What `roar ebpf unload` did.
#[derive(Debug, Default)]
pub struct Unloaded {
    /// Instances removed.
    pub removed: Vec<String>,
    /// Instances kept for other holders: id and holder names.
    pub kept: Vec<(String, Vec<String>)>,
}

/// Drops `holder`'s hold on every instance, and removes those no one else
/// holds. Refused while a run is in progress on one, unless `force`
/// (which removes every instance whoever holds it).
pub fn unload(holder: &str, force: bool) -> Result<Unloaded, PinError> {
    let root = root();
    let mut done = Unloaded::default();
    if !root.is_dir() {
        return Ok(done);
    }
    let _l = lock(&root)?;
    let dirs = instance_dirs(&root);
    if !force {
        for (name, dir) in &dirs {
            let live: Vec<String> = slots(dir)
                .into_iter()
                .filter(|(_, _, alive)| *alive)
                .map(|(i, s, _)| format!("slot {i}: roar pid {}", s.pid))
                .collect();
            if !live.is_empty() {
                return Err(PinError::InUse(format!(
                    "not unloading the eBPF instance {name}: {} run(s) in progress ({}); wait for them, or use --force (their recording then stops)",
                    live.len(),
                    live.join(", ")
                )));
            }
        }
    }
    for (name, dir) in dirs {
        remove_holder(&dir, holder);
        let _ = std::fs::remove_dir(keep_marker(&dir, holder));
        let others: Vec<String> = holders(&dir).into_iter().map(|(h, _)| h).collect();
        if force || others.is_empty() {
            remove_dir(&dir);
            done.removed.push(name);
        } else {
            detach_if_idle_locked(&dir);
            done.kept.push((name, others));
        }
    }
    gc(&root);
    Ok(done)
}

/// One program's counters (only advancing while kernel.bpf_stats_enabled=1).
pub struct ProgStat {
    pub name: String,
    pub run_count: u64,
    pub run_time_ns: u64,
}

/// One pinned instance as `roar ebpf status` shows it.
pub struct InstanceState {
    pub id: String,
    /// It is the one this roar carries.
    pub current: bool,
    /// Pins it lacks (an incomplete set is never used).
    pub missing: Vec<String>,
    pub holders: Vec<(String, u64)>,
    pub slots: Vec<(u32, Slot, bool)>,
    pub progs: Vec<ProgStat>,
    /// The system call hooks are attached (while runs are registered, or
    /// kept attached by a holder).
    pub syscalls_attached: bool,
    /// A holder keeps them attached when no run is registered.
    pub kept_attached: bool,
}

/// What is pinned under the root.
pub struct Status {
    pub root: PathBuf,
    pub instances: Vec<InstanceState>,
    /// kernel.bpf_stats_enabled: whether run counts and times advance.
    pub stats_enabled: bool,
}

/// The state of every instance under the root (read only, no lock).
pub fn status() -> Status {
    let root = root();
    let instances = instance_dirs(&root)
        .into_iter()
        .map(|(name, dir)| InstanceState {
            current: name == id(),
            missing: missing(&dir),
            holders: holders(&dir),
            slots: slots(&dir),
            syscalls_attached: syscalls_attached(&dir),
            kept_attached: kept_attached(&dir),
            progs: ATTACH
                .iter()
                .filter_map(|(p, _)| {
                    let info = ProgramInfo::from_pin(dir.join(format!("prog_{p}"))).ok()?;
                    Some(ProgStat {
                        name: p.to_string(),
                        run_count: info.run_count(),
                        run_time_ns: info.run_time().as_nanos() as u64,
                    })
                })
                .collect(),
            id: name,
        })
        .collect();
    let stats_enabled = std::fs::read_to_string("/proc/sys/kernel/bpf_stats_enabled")
        .is_ok_and(|s| s.trim() == "1");
    Status {
        root,
        instances,
        stats_enabled,
    }
}

/// For a run: the pinned instance to register with, locked, when one
/// matches or should be made (`persist`, an instance someone holds that
/// this roar replaces, or a broken one to repair); None for a private load.
pub(crate) fn for_run(btf: &Path, persist: bool) -> Result<Option<(Instance, Lock)>, PinError> {
    let root = root();
    let dir = root.join(id());
    let exists = dir.is_dir();
    let wanted = exists
        || persist
        || (root.is_dir()
            && instance_dirs(&root)
                .iter()
                .any(|(_, d)| !holders(d).is_empty()));
    if !wanted {
        return Ok(None);
    }
    ensure_root(&root)?;
    let l = lock(&root)?;
    let dir = if exists && missing(&dir).is_empty() {
        // An instance this one replaced goes once its last run is done.
        if std::fs::read_dir(&root).is_ok_and(|rd| rd.count() > 1) {
            gc(&root);
        }
        dir
    } else {
        publish(&root, btf, persist.then_some(DEFAULT_HOLDER))?.0
    };
    let inst = Instance::open_pinned(&dir).map_err(io_err(format!(
        "cannot open the pinned instance {}",
        dir.display()
    )))?;
    Ok(Some((inst, l)))
}
