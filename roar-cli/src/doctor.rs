//! `roar doctor`: which backends work here, and exactly why not.
//!
//! Every probe is the real thing, done once and not cached: the eBPF program
//! is loaded and attached, the preload library is looked up where `roar run`
//! looks, and a child is forked and seized with ptrace. Inputs a test can
//! take away are parameters: `ROAR_BTF` (the kernel BTF file),
//! `ROAR_PRELOAD_LIB` (the library), and the user roar runs as.

use std::io::Write as _;

use anyhow::Result;
use roar_core::backend::ebpf::pinned;
use roar_core::backend::{auto_choice, checks};
use roar_core::{git, location};

use crate::json::Json;

pub fn doctor(json: bool) -> Result<()> {
    let checks = checks();
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
                ("db", Json::Bytes(roar_core::paths::to_bytes(&l.db))),
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
            ("ebpf_pinned", Json::Str(pinned::summary())),
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
    writeln!(out, "pinned   {}", pinned::summary())?;
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
