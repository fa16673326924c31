//! `roar ebpf load|status|unload`: the eBPF programs pinned for a session
//! or a machine (the logic is in roar_core::backend::ebpf::pinned).

use std::io::Write as _;

use anyhow::Result;
use clap::Subcommand;
use roar_core::backend::ebpf::pinned::{self, DEFAULT_HOLDER, InstanceState};

use crate::json::Json;

#[derive(Subcommand)]
pub enum EbpfCmd {
    /// Load the eBPF programs once and pin them in bpffs: later runs only register.
    Load {
        /// Who holds them loaded (an OpenJD session names itself).
        #[arg(long, default_value = DEFAULT_HOLDER)]
        holder: String,
        /// Keep the system call hooks attached between runs too, until this holder unloads.
        /// Back-to-back runs then skip re-attaching them (which can wait 10-15 ms for the
        /// kernel); every other process's system calls pay for them meanwhile (`status`
        /// shows how much).
        #[arg(long)]
        keep_attached: bool,
        /// `false`: do nothing (an OpenJD template passes its parameter).
        #[arg(long, default_value = "true", hide = true)]
        when: String,
    },
    /// Whether they are loaded: version, holders, active runs, idle cost.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Drop this holder's hold; unpin when no one else holds them.
    Unload {
        #[arg(long, default_value = DEFAULT_HOLDER)]
        holder: String,
        /// Unpin even while other holders or runs use them (their recording stops).
        #[arg(long)]
        force: bool,
        #[arg(long, default_value = "true", hide = true)]
        when: String,
    },
}

pub fn run(cmd: EbpfCmd) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match cmd {
        EbpfCmd::Load { when, .. } | EbpfCmd::Unload { when, .. } if when != "true" => {}
        EbpfCmd::Load {
            holder,
            keep_attached,
            ..
        } => {
            let l = pinned::load(&holder, keep_attached)?;
            let what = if l.already {
                "already loaded"
            } else {
                "loaded and pinned"
            };
            writeln!(out, "{what}: {} (held by {holder})", l.dir.display())?;
        }
        EbpfCmd::Unload { holder, force, .. } => {
            let u = pinned::unload(&holder, force)?;
            for id in &u.removed {
                writeln!(out, "unloaded {id}")?;
            }
            for (id, hs) in &u.kept {
                writeln!(out, "kept {id}: still held by {}", hs.join(", "))?;
            }
            if u.removed.is_empty() && u.kept.is_empty() {
                writeln!(out, "not loaded")?;
            }
        }
        EbpfCmd::Status { json: true } => {
            let st = pinned::status();
            let doc = Json::obj(vec![
                ("root", Json::Str(st.root.display().to_string())),
                ("this_id", Json::Str(pinned::this_id())),
                ("bpf_stats_enabled", Json::Bool(st.stats_enabled)),
                (
                    "instances",
                    Json::Arr(st.instances.iter().map(instance_json).collect()),
                ),
            ]);
            writeln!(out, "{}", doc.to_pretty())?;
        }
        EbpfCmd::Status { json: false } => {
            let st = pinned::status();
            writeln!(out, "{}", pinned::summary())?;
            for i in &st.instances {
                let hs: Vec<&str> = i.holders.iter().map(|h| h.0.as_str()).collect();
                writeln!(out, "  holders: {}", hs.join(", "))?;
                for (slot, s, alive) in &i.slots {
                    let st = if *alive {
                        "running"
                    } else {
                        "dead (reclaimed by the next run)"
                    };
                    writeln!(
                        out,
                        "  slot {slot}: roar pid {}, command pid {}, {st}",
                        s.pid, s.root
                    )?;
                }
                let hooks = if i.kept_attached {
                    "attached, kept so between runs (`roar ebpf load --keep-attached`): every process's system calls pay the idle cost below"
                } else if i.syscalls_attached {
                    "attached (a run is registered)"
                } else {
                    "detached: no run is registered, so other processes' system calls pay nothing"
                };
                writeln!(out, "  system call hooks: {hooks}")?;
                match pinned::ns_per_call(i) {
                    Some(ns) => writeln!(out, "  idle cost: {ns:.0} ns per system call")?,
                    None if !st.stats_enabled => writeln!(
                        out,
                        "  idle cost: unknown (sysctl kernel.bpf_stats_enabled=1 to measure)"
                    )?,
                    None => writeln!(out, "  idle cost: no calls counted yet")?,
                }
            }
        }
    }
    Ok(())
}

fn instance_json(i: &InstanceState) -> Json {
    Json::obj(vec![
        ("id", Json::Str(i.id.clone())),
        ("current", Json::Bool(i.current)),
        (
            "missing",
            Json::Arr(i.missing.iter().cloned().map(Json::Str).collect()),
        ),
        (
            "holders",
            Json::Arr(i.holders.iter().map(|h| Json::Str(h.0.clone())).collect()),
        ),
        (
            "slots",
            Json::Arr(
                i.slots
                    .iter()
                    .map(|(slot, s, alive)| {
                        Json::obj(vec![
                            ("slot", Json::Int((*slot).into())),
                            ("pid", Json::Int(s.pid.into())),
                            ("command_pid", Json::Int(s.root.into())),
                            ("alive", Json::Bool(*alive)),
                        ])
                    })
                    .collect(),
            ),
        ),
        ("syscalls_attached", Json::Bool(i.syscalls_attached)),
        ("kept_attached", Json::Bool(i.kept_attached)),
        (
            "idle_ns_per_call",
            pinned::ns_per_call(i).map_or(Json::Null, |ns| Json::Int(ns.round() as i64)),
        ),
    ])
}
