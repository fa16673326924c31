//! The eBPF backend: raw tracepoint programs follow the command's process
//! tree inside the kernel and stream records through a ring buffer to a
//! reader thread. Opening it registers the run with the pinned instance
//! when one matches this roar (see [`pinned`]), or loads and attaches the
//! program for this run, which is also the only honest probe of whether it
//! works here.

pub mod pinned;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Attached, Backend, Check, Finished, Kind, Prepared, Program, Waited};
use crate::Observer;
use crate::spawn::Child;

pub struct Ebpf;

/// The kernel BTF the eBPF backend loads against (`ROAR_BTF` overrides it,
/// for machines that ship BTF elsewhere and for tests that take it away).
pub fn btf_path() -> PathBuf {
    std::env::var_os("ROAR_BTF")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(tracer_ebpf::DEFAULT_BTF), PathBuf::from)
}

/// Whether eBPF runs should load and pin an instance when none is pinned:
/// `ROAR_EBPF_PERSIST` (1/true or 0/false) over `[ebpf] persist` in the
/// store's config.
pub fn persist_wanted() -> bool {
    match std::env::var("ROAR_EBPF_PERSIST").ok().as_deref() {
        Some("1" | "true" | "yes") => return true,
        Some("0" | "false" | "no") => return false,
        _ => {}
    }
    std::env::current_dir()
        .ok()
        .and_then(|cwd| crate::location::find(&cwd))
        .and_then(|loc| crate::config::load(&loc.roar_dir()).ok())
        .is_some_and(|c| c.ebpf.persist)
}

/// Registers with the pinned instance, or loads and attaches the eBPF
/// program: the probe and the real thing.
fn load() -> Result<Loaded, tracer_ebpf::pin::PinError> {
    // Test knobs: ROAR_EBPF_RING_BYTES, a smaller ring buffer (overflow);
    // ROAR_EBPF_PID_WORDS, a smaller pid bitmap (its fallback).
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
    let tuning = tracer_ebpf::Tuning {
        ring_bytes: num("ROAR_EBPF_RING_BYTES"),
        pid_words: num("ROAR_EBPF_PID_WORDS"),
    };
    Ok(Loaded {
        prepared: tracer_ebpf::Prepared::open(&btf_path(), tuning, persist_wanted())?,
    })
}

impl Kind for Ebpf {
    fn name(&self) -> &'static str {
        "ebpf"
    }

    fn open(&self, _: &Program, auto: bool) -> Result<(Box<dyn Backend>, String), String> {
        match load() {
            Ok(l) => {
                let why = if l.prepared.how().starts_with("pinned") {
                    "eBPF is loaded here (a pinned instance)"
                } else {
                    "eBPF loads and attaches here"
                };
                Ok((Box::new(l), why.into()))
            }
            Err(e) if auto => Err(format!("eBPF unavailable ({e})")),
            Err(e) => Err(format!("the ebpf backend cannot be used: {e}")),
        }
    }

    fn check(&self) -> Check {
        let btf = btf_path();
        let reasons = missing_privilege_or_btf(&btf);
        if !reasons.is_empty() {
            return Check::unusable("ebpf", reasons, None);
        }
        match tracer_ebpf::Prepared::load(&btf) {
            Ok(p) => Check {
                load_ms: Some(p.load_time().as_secs_f64() * 1000.0),
                ..Check::usable(
                    "ebpf",
                    "raw_tracepoint programs load and attach (no tracefs, kprobes, fentry or LSM needed)"
                        .into(),
                )
            },
            Err(e) => Check::unusable("ebpf", vec![e.to_string()], e.errno()),
        }
    }
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// What this process lacks before a load is worth trying: privilege, BTF.
fn missing_privilege_or_btf(btf: &Path) -> Vec<String> {
    let mut reasons = Vec::new();
    let caps = cap_eff();
    let has = |c: u32| caps & (1 << c) != 0;
    if !(has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) {
        let unpriv = read_trimmed("/proc/sys/kernel/unprivileged_bpf_disabled")
            .map_or(String::new(), |v| {
                format!("; kernel.unprivileged_bpf_disabled = {v}")
            });
        reasons.push(format!(
            "not root (euid {}) and without CAP_BPF + CAP_PERFMON{unpriv}",
            euid()
        ));
    }
    if !btf.is_file() {
        reasons.push(format!(
            "no BTF: {} does not exist (the kernel needs CONFIG_DEBUG_INFO_BTF=y)",
            btf.display()
        ));
    }
    reasons
}

/// A field of /proc/self/status.
fn status_field(name: &str) -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(name))
        .map(|v| v.trim().to_string())
}

/// The effective capability set of this process.
fn cap_eff() -> u64 {
    status_field("CapEff:")
        .and_then(|v| u64::from_str_radix(&v, 16).ok())
        .unwrap_or(0)
}

/// The effective uid.
fn euid() -> u32 {
    status_field("Uid:")
        .and_then(|v| v.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(u32::MAX)
}

fn read_trimmed(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The program, loaded and attached.
struct Loaded {
    prepared: tracer_ebpf::Prepared,
}

impl Backend for Loaded {
    fn name(&self) -> &'static str {
        "ebpf"
    }

    fn prepare(&self, trace_dir: &Path) -> std::io::Result<Box<dyn Prepared + '_>> {
        Ok(Box::new(Run {
            loaded: self,
            trace: trace_dir.join("ebpf.rwt"),
        }))
    }

    fn load_time(&self) -> Option<Duration> {
        Some(self.prepared.load_time())
    }
}

struct Run<'a> {
    loaded: &'a Loaded,
    trace: PathBuf,
}

impl Prepared for Run<'_> {
    fn in_child(&self) -> Result<(), libc::c_int> {
        self.loaded.prepared.in_child()
    }

    fn attach(&self, pid: libc::pid_t, cwd: &[u8]) -> std::io::Result<Box<dyn Attached>> {
        let tracer = self
            .loaded
            .prepared
            .attach(pid, std::process::id(), cwd, &self.trace)?;
        Ok(Box::new(Tracing { tracer }))
    }
}

struct Tracing {
    tracer: tracer_ebpf::Tracer,
}

impl Attached for Tracing {
    fn wait(&mut self, child: &Child, timeout: Option<Duration>, _: &mut dyn Observer) -> Waited {
        Waited::child(child, timeout)
    }

    fn finish(self: Box<Self>) -> Finished {
        match self.tracer.finish() {
            Ok(f) => Finished {
                losses: Vec::new(),
                lingering: f.lingering,
                release: Some(Box::new(f.release)),
            },
            Err(e) => Finished {
                losses: vec![format!("the eBPF backend could not finish its trace: {e}")],
                ..Finished::default()
            },
        }
    }
}
