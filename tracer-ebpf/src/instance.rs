//! One loaded copy of the programs and maps, and the slots runs take in it.
//!
//! An instance is either private (loaded for one run, gone when the run
//! ends: the default) or pinned in bpffs (see [`crate::pin`]) and shared by
//! every run on the machine. Either way a run registers the same way: it
//! claims a free slot in SLOTS (its pid and start time, so a later run can
//! tell the owner died), creates its own ring buffer and puts it in
//! RINGS[slot], zeroes its counters in STATS, and has `roar_ctl` put its
//! command's pid in the traced set with that slot. Children inherit the
//! slot in the kernel, so concurrent runs never see each other's records.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::maps::{Array, ArrayOfMaps, HashMap as BpfHashMap, Map, MapData, RingBuf};
use aya::programs::RawTracePoint;
use aya::programs::links::FdLink;
use aya::{Btf, Ebpf, EbpfLoader};

use crate::record::{RE_CTL_TRACE, RE_CTL_UNTRACE, RE_NSLOTS, RE_NSTATS, Slot};
use crate::{ATTACH, LoadError, PROGRAM, Tuning, refused, sys};

/// The program user space runs to change the traced set.
pub(crate) const CTL: &str = "roar_ctl";
/// `start_time` of a free slot (pid 0) whose release found none of its
/// processes still tagged: the next claim need not look for them.
const CLEAN: u64 = u64::MAX;
/// The maps of the program, all pinned.
pub(crate) const MAPS: [&str; 10] = [
    "EVENTS",
    "TRACED",
    "TRACED_BITS",
    "SCRATCH",
    "RINGS",
    "STATS",
    "SLOTS",
    "HOLDERS",
    "CWDS",
    "CWD_NEW",
];
/// The ring buffer a run gets unless told otherwise. The kernel side wakes
/// the reader at a quarter full, so this is headroom for the reader's
/// latency, not for a whole burst: two `cp -r` of 8,000 files at once and
/// a tar of them lose nothing in 2 MiB. Each run maps it (twice over, the
/// kernel's wrap-around view), which cost 2.4 ms at 16 MiB and 0.6 at 4.
pub const RING_BYTES: u32 = 4 << 20;
/// Slots below this keep their ring buffer for the next run (a pinned
/// instance): putting one in RINGS, or taking it out, waits for an RCU
/// grace period (~10 ms here). Higher slots, used only by many concurrent
/// runs, give theirs back.
const KEEP_RINGS: u32 = 4;

/// The programs loaded and the five tracepoints attached, not yet pinned.
/// With `attach` false the programs are loaded only ([`pin_all`] attaches
/// them with links it pins). `private_ring`: the size of EVENTS, the one
/// ring buffer of a private instance; None for a pinned one (runs bring
/// their own, in RINGS).
pub(crate) fn load_programs(
    btf: &Btf,
    tuning: Tuning,
    attach: bool,
    private_ring: Option<u32>,
) -> Result<Ebpf, LoadError> {
    let mut loader = EbpfLoader::new();
    loader.btf(Some(btf));
    match private_ring {
        Some(bytes) => {
            loader.override_global("private_ring", &1u32, true);
            loader.map_max_entries("EVENTS", bytes);
        }
        None => {
            loader.map_max_entries("EVENTS", page_size());
        }
    }
    // One bit per possible pid.
    let words = tuning.pid_words.or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .map(|max| max.div_ceil(64))
    });
    if let Some(w) = words {
        loader.map_max_entries("TRACED_BITS", w.max(1));
    }
    let mut ebpf = loader
        .load(PROGRAM)
        .map_err(|e| refused("load the BPF maps and programs", e))?;
    for (prog, tp) in ATTACH.iter().copied().chain([(CTL, "")]) {
        let p: &mut RawTracePoint = ebpf
            .program_mut(prog)
            .ok_or_else(|| LoadError::NotBuilt(format!("program {prog} missing")))?
            .try_into()
            .map_err(|e| refused(format!("use {prog} as a raw tracepoint"), e))?;
        p.load()
            .map_err(|e| refused(format!("load the raw_tracepoint program {prog}"), e))?;
        if attach && !tp.is_empty() {
            p.attach(tp)
                .map_err(|e| refused(format!("attach to raw_tracepoint {tp}"), e))?;
        }
    }
    Ok(ebpf)
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u32 } else { 4096 }
}

/// Pins every map and program of `ebpf` in `dir` (which exists), and the
/// links of the hooks that stay attached (fork, exec, exit), which the pins
/// keep attached. The system call hooks are attached by runs.
pub(crate) fn pin_all(mut ebpf: Ebpf, dir: &Path) -> Result<(), LoadError> {
    for m in MAPS {
        ebpf.map(m)
            .ok_or_else(|| LoadError::NotBuilt(format!("map {m} missing")))?
            .pin(dir.join(format!("map_{m}")))
            .map_err(|e| refused(format!("pin map {m} in {}", dir.display()), e))?;
    }
    for (prog, _) in ATTACH.iter().copied().chain([(CTL, "")]) {
        let p: &mut RawTracePoint = ebpf
            .program_mut(prog)
            .ok_or_else(|| LoadError::NotBuilt(format!("program {prog} missing")))?
            .try_into()
            .map_err(|e| refused(format!("use {prog} as a raw tracepoint"), e))?;
        p.pin(dir.join(format!("prog_{prog}")))
            .map_err(|e| refused(format!("pin program {prog}"), e))?;
    }
    for (prog, tp) in ATTACH
        .into_iter()
        .filter(|(p, _)| !crate::pin::ON_DEMAND.contains(p))
    {
        let p: &mut RawTracePoint = ebpf
            .program_mut(prog)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| LoadError::NotBuilt(format!("program {prog} missing")))?;
        let id = p
            .attach(tp)
            .map_err(|e| refused(format!("attach to raw_tracepoint {tp}"), e))?;
        let link = p
            .take_link(id)
            .map_err(|e| refused(format!("take the {tp} link"), e))?;
        FdLink::from(link)
            .pin(dir.join(format!("link_{prog}")))
            .map_err(|e| refused(format!("pin the {tp} link"), e))?;
    }
    Ok(())
}

/// The handles one run needs, from a private load or from pins.
pub struct Instance {
    /// A private instance: dropping it detaches the programs.
    ebpf: Option<Ebpf>,
    /// A private instance's ring buffer (EVENTS), until a run claims it.
    private_ring: Option<RingBuf<MapData>>,
    traced: BpfHashMap<MapData, u32, u32>,
    rings: ArrayOfMaps<MapData, MapData>,
    /// RINGS again, for deletes (aya has none for maps of maps).
    rings_fd: OwnedFd,
    /// SLOTS again, for batch reads.
    slots_fd: OwnedFd,
    stats: Array<MapData, u64>,
    slots: Array<MapData, Slot>,
    ctl: OwnedFd,
    /// Where it is pinned.
    pub dir: Option<PathBuf>,
}

fn map_err(what: &str) -> impl Fn(aya::maps::MapError) -> io::Error + '_ {
    move |e| io::Error::other(format!("the {what} map: {e}"))
}

impl Instance {
    /// A private instance from a fresh load.
    pub(crate) fn private(mut ebpf: Ebpf) -> Result<Instance, LoadError> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| LoadError::NotBuilt(format!("map {name} missing")))
        };
        let (traced, rings, stats, slots) = (
            take("TRACED")?,
            take("RINGS")?,
            take("STATS")?,
            take("SLOTS")?,
        );
        let ring = RingBuf::try_from(take("EVENTS")?)
            .map_err(|e| refused("map the EVENTS ring buffer", e))?;
        let ctl = ebpf
            .program(CTL)
            .ok_or_else(|| LoadError::NotBuilt(format!("program {CTL} missing")))?
            .fd()
            .map_err(|e| refused("open roar_ctl", e))?
            .as_fd()
            .try_clone_to_owned();
        Self::from_maps(traced, rings, stats, slots, ctl, None)
            .map(|mut i| {
                i.ebpf = Some(ebpf);
                i.private_ring = Some(ring);
                i
            })
            .map_err(|e| refused("open the program's maps", e))
    }

    /// The instance pinned in `dir`.
    pub(crate) fn open_pinned(dir: &Path) -> io::Result<Instance> {
        let map = |name: &str| -> io::Result<Map> {
            let md = MapData::from_pin(dir.join(format!("map_{name}")))
                .map_err(|e| io::Error::other(format!("cannot open pinned map {name}: {e}")))?;
            Map::from_map_data(md).map_err(map_err(name))
        };
        let ctl = sys::obj_get(&dir.join(format!("prog_{CTL}")))?;
        Self::from_maps(
            map("TRACED")?,
            map("RINGS")?,
            map("STATS")?,
            map("SLOTS")?,
            Ok(ctl),
            Some(dir.to_path_buf()),
        )
    }

    fn from_maps(
        traced: Map,
        rings: Map,
        stats: Map,
        slots: Map,
        ctl: io::Result<OwnedFd>,
        dir: Option<PathBuf>,
    ) -> io::Result<Instance> {
        let slots_fd = match &slots {
            Map::Array(md) => md.fd().as_fd().try_clone_to_owned()?,
            _ => return Err(io::Error::other("the SLOTS map is not an array")),
        };
        let rings_fd = match &rings {
            Map::ArrayOfMaps(md) => md.fd().as_fd().try_clone_to_owned()?,
            _ => return Err(io::Error::other("the RINGS map is not an array of maps")),
        };
        Ok(Instance {
            ebpf: None,
            private_ring: None,
            rings_fd,
            slots_fd,
            traced: BpfHashMap::try_from(traced).map_err(map_err("TRACED"))?,
            rings: ArrayOfMaps::try_from(rings).map_err(map_err("RINGS"))?,
            stats: Array::try_from(stats).map_err(map_err("STATS"))?,
            slots: Array::try_from(slots).map_err(map_err("SLOTS"))?,
            ctl: ctl?,
            dir,
        })
    }

    /// Who owns each slot (one batch read of SLOTS).
    pub fn slots(&self) -> Vec<(u32, Slot)> {
        let fd = self.slots_fd.as_fd();
        let all = sys::array_values::<Slot>(fd, RE_NSLOTS).unwrap_or_else(|_| {
            (0..RE_NSLOTS)
                .map(|i| self.slots.get(&i, 0).unwrap_or_default())
                .collect()
        });
        (0..RE_NSLOTS)
            .zip(all)
            .filter(|(_, s)| s.pid != 0)
            .collect()
    }

    /// The tgids traced for `slot`.
    pub fn tgids(&self, slot: u32) -> Vec<u32> {
        self.traced
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, s)| *s == slot)
            .map(|(t, _)| t)
            .collect()
    }

    /// Runs `roar_ctl` with (command, tgid, slot). Always all three: the
    /// kernel refuses a test run whose context is shorter than the furthest
    /// the program reads, so a two-argument untrace failed, unseen, and
    /// every process a run left running stayed traced under its freed slot.
    fn ctl(&self, command: u64, tgid: u32, slot: u32) -> io::Result<()> {
        sys::test_run(self.ctl.as_fd(), &[command, tgid.into(), slot.into()])
    }

    /// Takes every process tagged with `slot` out of the traced set; true
    /// when there was none.
    fn untrace_slot(&self, slot: u32) -> bool {
        let tagged = self.tgids(slot);
        for t in &tagged {
            let _ = self.ctl(RE_CTL_UNTRACE, *t, 0);
        }
        tagged.is_empty()
    }

    /// Puts `tgid` in the traced set for `slot`.
    pub(crate) fn trace(&mut self, tgid: u32, slot: u32) -> io::Result<()> {
        self.ctl(RE_CTL_TRACE, tgid, slot)
            .map_err(|e| io::Error::other(format!("cannot trace pid {tgid}: {e}")))?;
        // For `roar ebpf status`: the command the slot's run traces.
        if let Ok(mut s) = self.slots.get(&slot, 0) {
            s.root = tgid;
            let _ = self.slots.set(slot, s, 0);
        }
        Ok(())
    }

    /// Frees `slot`: its processes are no longer traced, its ring goes.
    pub(crate) fn release(&mut self, slot: u32) {
        // Until a pass finds none (a process that forked while a pass ran is
        // found by the next), three passes at most. Once none is tagged, none
        // can be: only a tagged process's fork and the slot's owner tag.
        let clean = (0..3).any(|_| self.untrace_slot(slot));
        if slot >= KEEP_RINGS {
            let _ = sys::map_delete(self.rings_fd(), slot);
        }
        let free = Slot {
            start_time: if clean { CLEAN } else { 0 },
            ..Slot::default()
        };
        let _ = self.slots.set(slot, free, 0);
    }

    fn rings_fd(&self) -> BorrowedFd<'_> {
        self.rings_fd.as_fd()
    }

    /// Frees the slots whose roar is gone (killed, or it died).
    pub(crate) fn reclaim(&mut self) -> Vec<Slot> {
        let dead: Vec<(u32, Slot)> = self
            .slots()
            .into_iter()
            // A slot of a live roar is in use; one whose roar is gone
            // (killed) is freed, its processes untraced.
            .filter(|(_, s)| sys::start_time(s.pid) != Some(s.start_time))
            .collect();
        for (i, _) in &dead {
            self.release(*i);
        }
        dead.into_iter().map(|(_, s)| s).collect()
    }

    /// Claims a free slot for this process and gives it a ring buffer of
    /// `ring_bytes`. The caller holds the instance's lock when it is shared.
    pub(crate) fn claim(&mut self, ring_bytes: u32) -> io::Result<(u32, RingBuf<MapData>)> {
        let taken: Vec<u32> = self.slots().into_iter().map(|(i, _)| i).collect();
        let slot = (0..RE_NSLOTS).find(|i| !taken.contains(i)).ok_or_else(|| {
            io::Error::other(format!(
                "all {RE_NSLOTS} eBPF run slots are taken by runs in progress"
            ))
        })?;
        // What a process of an earlier owner forked as that owner's slot was
        // freed can still be tagged with it: not this run's. Not looked for
        // when that release found none left (a scan of every bucket of the
        // traced set, about 0.2 ms).
        if self
            .slots
            .get(&slot, 0)
            .map_or(true, |s| s.start_time != CLEAN)
        {
            self.untrace_slot(slot);
        }
        let pid = std::process::id();
        let me = Slot {
            pid,
            root: 0,
            start_time: sys::start_time(pid).unwrap_or(0),
        };
        self.slots.set(slot, me, 0).map_err(map_err("SLOTS"))?;
        for i in 0..RE_NSTATS {
            let _ = self.stats.set(slot * RE_NSTATS + i, 0, 0);
        }
        let ring = match self.private_ring.take() {
            Some(r) => Ok(r),
            None => self.slot_ring(slot, ring_bytes),
        };
        match ring {
            Ok(r) => Ok((slot, r)),
            Err(e) => {
                self.release(slot);
                Err(e)
            }
        }
    }

    /// The ring buffer of `slot` in RINGS, empty: the one a previous run
    /// left there when it has the size asked for, else a new one.
    fn slot_ring(&mut self, slot: u32, ring_bytes: u32) -> io::Result<RingBuf<MapData>> {
        let kept: Option<MapData> = self.rings.get(&slot, 0).ok();
        if let Some(md) = kept
            && md.info().is_ok_and(|i| i.max_entries() == ring_bytes)
        {
            let mut ring = RingBuf::try_from(Map::RingBuf(md)).map_err(map_err("ring buffer"))?;
            // What the previous owner's processes wrote before they were
            // untraced is not this run's.
            while ring.next().is_some() {}
            return Ok(ring);
        }
        let md = sys::ringbuf_create(ring_bytes)
            .map_err(|e| {
                io::Error::other(format!(
                    "cannot create a {ring_bytes}-byte ring buffer: {e}"
                ))
            })
            .and_then(|fd| MapData::from_fd(fd).map_err(map_err("ring buffer")))?;
        self.rings.set(slot, &md, 0).map_err(map_err("RINGS"))?;
        RingBuf::try_from(Map::RingBuf(md)).map_err(map_err("ring buffer"))
    }

    /// Gives `slot` a ring buffer of the default size before any run needs it.
    pub(crate) fn prepare_ring(&mut self, slot: u32) -> io::Result<()> {
        self.slot_ring(slot, RING_BYTES).map(drop)
    }

    /// The counters of `slot`.
    pub(crate) fn stats(&self, slot: u32) -> Vec<u64> {
        (0..RE_NSTATS)
            .map(|i| self.stats.get(&(slot * RE_NSTATS + i), 0).unwrap_or(0))
            .collect()
    }

    /// Takes the private load out, to drop it off the run's critical path.
    pub(crate) fn take_private(&mut self) -> Option<Ebpf> {
        self.ebpf.take()
    }
}
