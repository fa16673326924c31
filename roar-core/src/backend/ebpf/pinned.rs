//! `roar ebpf load|status|unload`: the eBPF programs loaded once and
//! pinned in bpffs for a session or a machine, so that each run only
//! registers (a slot, its ring buffer, its root pid) instead of loading,
//! verifying and attaching them. The mechanics are in `tracer_ebpf::pin`.

pub use tracer_ebpf::pin::{InstanceState, Loaded, Status, Unloaded};

use crate::error::{Error, Result};

/// The holder `roar ebpf load` uses when none is named.
pub const DEFAULT_HOLDER: &str = tracer_ebpf::pin::DEFAULT_HOLDER;

fn err(e: tracer_ebpf::pin::PinError) -> Error {
    Error::Invalid(e.to_string())
}

/// Loads and pins this roar's programs (unless they are pinned already)
/// and records `holder` as keeping them loaded; with `keep_attached`, their
/// system call hooks stay attached between runs too (see `roar ebpf load`).
pub fn load(holder: &str, keep_attached: bool) -> Result<Loaded> {
    tracer_ebpf::pin::load(&super::btf_path(), holder, keep_attached).map_err(err)
}

/// Drops `holder`'s hold; removes instances no one else holds. Refused
/// while a run is in progress, unless `force`.
pub fn unload(holder: &str, force: bool) -> Result<Unloaded> {
    tracer_ebpf::pin::unload(holder, force).map_err(err)
}

/// What is pinned, who holds it, which runs are registered.
pub fn status() -> Status {
    tracer_ebpf::pin::status()
}

/// The identity of the programs this roar carries (version and hash).
pub fn this_id() -> String {
    tracer_ebpf::pin::id()
}

/// What the pinned system call program (`sys_exit`; an older roar's
/// instance also has `sys_enter`) costs per system call, on average over every call they saw while attached (every
/// process's calls, traced or not; they are detached while no run is
/// registered, unless a holder keeps them attached): None until
/// kernel.bpf_stats_enabled=1 has let them count.
pub fn ns_per_call(inst: &InstanceState) -> Option<f64> {
    let (n, t) = inst
        .progs
        .iter()
        .filter(|p| p.name == "roar_sys_enter" || p.name == "roar_sys_exit")
        .fold((0u64, 0u64), |(n, t), p| {
            (n + p.run_count, t + p.run_time_ns)
        });
    (n > 0).then(|| t as f64 / n as f64)
}

/// One line for `roar doctor`: which state the machine is in.
pub fn summary() -> String {
    let st = status();
    if st.instances.is_empty() {
        return format!(
            "not loaded (each eBPF run loads its own; `roar ebpf load` pins it under {})",
            st.root.display()
        );
    }
    st.instances
        .iter()
        .map(|i| {
            let live = i.slots.iter().filter(|s| s.2).count();
            let state = if !i.missing.is_empty() {
                "incomplete (repaired by the next load)"
            } else if i.current {
                "loaded"
            } else {
                "loaded (another roar's programs; replaced when this roar loads)"
            };
            format!(
                "{state}: {}, {} holder(s), {live} active run(s)",
                i.id,
                i.holders.len()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
