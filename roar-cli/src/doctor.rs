//! `roar doctor`: which backends work here, and exactly why not.
//!
//! Every probe is the real thing, done once and not cached: the eBPF program
//! is loaded and attached, the preload library is looked up where `roar run`
//! looks, and a child is forked and seized with ptrace. Inputs a test can
//! take away are parameters: `ROAR_BTF` (the kernel BTF file),
//! `ROAR_PRELOAD_LIB` (the library), and the user roar runs as.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::json::Json;
use crate::{git, location, preload};

/// The kernel BTF the eBPF backend loads against (`ROAR_BTF` overrides it,
/// for machines that ship BTF elsewhere and for tests that take it away).
pub fn btf_path() -> PathBuf {
    std::env::var_os("ROAR_BTF")
        .filter(|p| !p.is_empty())
        .map_or_else(|| PathBuf::from(tracer_ebpf::DEFAULT_BTF), PathBuf::from)
}

/// What one backend needs, and whether this machine has it.
pub struct Check {
    pub name: &'static str,
    pub usable: bool,
    /// What works, or every reason it does not.
    pub reasons: Vec<String>,
    /// The errno a kernel refusal came with.
    pub errno: Option<i32>,
    pub load_ms: Option<f64>,
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process.
fn cap_eff() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

fn read_trimmed(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn check_ebpf(btf: &Path) -> Check {
    let mut reasons = Vec::new();
    let caps = cap_eff();
    let has = |c: u32| caps & (1 << c) != 0;
    let privileged = has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON));
    if !privileged {
        let euid = euid();
        let unpriv = read_trimmed("/proc/sys/kernel/unprivileged_bpf_disabled")
            .map_or(String::new(), |v| {
                format!("; kernel.unprivileged_bpf_disabled = {v}")
            });
        reasons.push(format!(
            "not root (euid {euid}) and without CAP_BPF + CAP_PERFMON{unpriv}"
        ));
    }
    if !btf.is_file() {
        reasons.push(format!(
            "no BTF: {} does not exist (the kernel needs CONFIG_DEBUG_INFO_BTF=y)",
            btf.display()
        ));
    }
    if !reasons.is_empty() {
        return Check {
            name: "ebpf",
            usable: false,
            reasons,
            errno: None,
            load_ms: None,
        };
    }
    match tracer_ebpf::Prepared::load(btf) {
        Ok(p) => Check {
            name: "ebpf",
            usable: true,
            reasons: vec![
                "raw_tracepoint programs load and attach (no tracefs, kprobes, fentry or LSM needed)"
                    .into(),
            ],
            errno: None,
            load_ms: Some(p.load_time().as_secs_f64() * 1000.0),
        },
        Err(e) => Check {
            name: "ebpf",
            usable: false,
            errno: e.errno(),
            reasons: vec![e.to_string()],
            load_ms: None,
        },
    }
}

/// The effective uid, from /proc (this crate has no unsafe code).
fn euid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

pub fn check_preload() -> Check {
    match preload::find_library() {
        Ok(lib) => Check {
            name: "preload",
            usable: true,
            reasons: vec![format!(
                "library at {}; sees dynamically linked programs that keep LD_PRELOAD",
                lib.display()
            )],
            errno: None,
            load_ms: None,
        },
        Err(e) => Check {
            name: "preload",
            usable: false,
            reasons: vec![format!("library not found: {e}")],
            errno: None,
            load_ms: None,
        },
    }
}

pub fn check_ptrace() -> Check {
    match tracer_ptrace::probe() {
        Ok(()) => Check {
            name: "ptrace",
            usable: true,
            reasons: vec!["a child can be traced (PTRACE_SEIZE works)".into()],
            errno: None,
            load_ms: None,
        },
        Err(e) => Check {
            name: "ptrace",
            usable: false,
            errno: e.raw_os_error(),
            reasons: vec![format!("PTRACE_SEIZE of a child failed: {e}")],
            load_ms: None,
        },
    }
}

/// What `--backend auto` would pick for a dynamically linked command.
fn auto_choice(checks: &[Check]) -> &'static str {
    checks.iter().find(|c| c.usable).map_or("none", |c| c.name)
}

pub fn doctor(json: bool) -> Result<()> {
    let checks = vec![check_ebpf(&btf_path()), check_preload(), check_ptrace()];
    let cwd = std::env::current_dir()?;
    let store = location::find(&cwd);
    let git = git::context(&cwd);
    let mut out = std::io::stdout().lock();
    if json {
        let backends = checks
            .iter()
            .map(|c| {
                Json::obj(vec![
                    ("name", Json::Str(c.name.into())),
                    ("usable", Json::Bool(c.usable)),
                    (
                        "reasons",
                        Json::Arr(c.reasons.iter().cloned().map(Json::Str).collect()),
                    ),
                    ("errno", Json::opt_int(c.errno)),
                    (
                        "load_attach_ms",
                        c.load_ms
                            .map_or(Json::Null, |ms| Json::Int(ms.round() as i64)),
                    ),
                ])
            })
            .collect();
        let store_json = match &store {
            Some(l) => Json::obj(vec![
                ("db", Json::Bytes(crate::paths::to_bytes(&l.db))),
                ("exists", Json::Bool(l.db.exists())),
            ]),
            None => Json::Null,
        };
        let git_json = match &git {
            Ok(Some(g)) => Json::obj(vec![
                ("commit", Json::opt_str(g.commit.as_deref())),
                ("branch", Json::opt_str(g.branch.as_deref())),
                ("dirty", Json::Bool(g.dirty)),
                ("remote", Json::opt_str(g.remote.as_deref())),
            ]),
            _ => Json::Null,
        };
        let doc = Json::obj(vec![
            ("backends", Json::Arr(backends)),
            ("auto", Json::Str(auto_choice(&checks).into())),
            ("store", store_json),
            ("git", git_json),
        ]);
        writeln!(out, "{}", doc.to_pretty())?;
        return Ok(());
    }
    for c in &checks {
        let state = if c.usable { "usable" } else { "NOT usable" };
        let ms = c
            .load_ms
            .map_or(String::new(), |ms| format!(" (load+attach {ms:.0} ms)"));
        writeln!(out, "{:<8} {state}{ms}", c.name)?;
        for r in &c.reasons {
            writeln!(out, "         {r}")?;
        }
    }
    writeln!(
        out,
        "auto     picks {} for a dynamically linked command",
        auto_choice(&checks)
    )?;
    match &store {
        Some(l) => writeln!(out, "store    {}", l.db.display())?,
        None => writeln!(
            out,
            "store    none yet; roar run would create {}",
            location::default_root(&cwd)
                .join(location::DIR)
                .join(location::DB)
                .display()
        )?,
    }
    match git {
        Ok(Some(g)) => writeln!(
            out,
            "git      {} on {}{}",
            g.commit.as_deref().unwrap_or("(no commits)"),
            g.branch.as_deref().unwrap_or("(detached)"),
            if g.dirty { ", dirty" } else { "" }
        )?,
        Ok(None) => writeln!(out, "git      not a git repository")?,
        Err(e) => writeln!(out, "git      unreadable: {}", e.message())?,
    }
    Ok(())
}
