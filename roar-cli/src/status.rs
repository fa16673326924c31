//! `roar status`: which recorded runs no longer match the files, and why.
//!
//! Looks at the newest writer of every tracked path and what those runs read. Every such file
//! is stat'ed; only a file whose (dev, ino, size, mtime) is not in the hash cache is hashed.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Result;
use dag::status::Reason;
use dag::{RunId, Store};

use crate::json::Json;
use crate::lineage::{run_title, short};
use crate::show::{Style, run_json};
use roar_core::paths::display_rel;

use roar_core::staleness::{Checked, check};

fn seq_and_title(store: &Store, id: RunId) -> String {
    match store.run(id) {
        Ok(r) => format!("run {} (@{})", r.id, r.seq),
        Err(_) => format!("run {id}"),
    }
}

pub fn reason_text(store: &Store, r: &Reason, cwd: &[u8]) -> String {
    match r {
        Reason::Modified { path } => format!("{} modified", display_rel(path, cwd)),
        Reason::Deleted { path } => format!("{} deleted", display_rel(path, cwd)),
        Reason::Reproduced { path, by } => format!(
            "{} re-produced differently by {}",
            display_rel(path, cwd),
            seq_and_title(store, *by)
        ),
        Reason::Upstream { path, run } => format!(
            "upstream {} is stale ({})",
            seq_and_title(store, *run),
            display_rel(path, cwd)
        ),
        Reason::Package {
            manager,
            name,
            was,
            now,
        } => match now {
            Some(now) => format!("{manager} package {name} {was} is now {now}"),
            None => format!("{manager} package {name} {was} is no longer installed"),
        },
    }
}

fn reason_json(store: &Store, r: &Reason, cwd: &[u8]) -> Json {
    if let Reason::Package {
        manager,
        name,
        was,
        now,
    } = r
    {
        return Json::obj(vec![
            ("kind", Json::Str("package".into())),
            ("manager", Json::Str(manager.clone())),
            ("name", Json::Str(name.clone())),
            ("recorded_version", Json::Str(was.clone())),
            ("version", Json::opt_str(now.as_deref())),
            ("text", Json::Str(reason_text(store, r, cwd))),
        ]);
    }
    let (kind, path, run) = match r {
        Reason::Modified { path } => ("modified", path, None),
        Reason::Deleted { path } => ("deleted", path, None),
        Reason::Reproduced { path, by } => ("reproduced", path, Some(*by)),
        Reason::Upstream { path, run } => ("upstream", path, Some(*run)),
        Reason::Package { .. } => unreachable!("answered above"),
    };
    Json::obj(vec![
        ("kind", Json::Str(kind.into())),
        ("path", Json::Bytes(path.clone())),
        ("run", Json::opt_int(run)),
        ("text", Json::Str(reason_text(store, r, cwd))),
    ])
}

pub fn status(store: &Store, json: bool, packages: bool, cwd: &Path) -> Result<()> {
    let mut bar = crate::progress::reporter("checking files");
    let Checked { report, files } = check(store, packages, &mut bar)?;
    drop(bar);
    let cwd = cwd.as_os_str().as_bytes();
    let mut out = std::io::stdout().lock();
    if json {
        let runs = report
            .runs
            .iter()
            .map(|(id, reasons)| -> Result<Json> {
                let mut obj = run_json(&store.run(*id)?, false);
                if let Json::Obj(o) = &mut obj {
                    o.push(("stale".into(), Json::Bool(!reasons.is_empty())));
                    o.push((
                        "reasons".into(),
                        Json::Arr(reasons.iter().map(|r| reason_json(store, r, cwd)).collect()),
                    ));
                }
                Ok(obj)
            })
            .collect::<Result<Vec<_>>>()?;
        let outputs = report
            .outputs
            .iter()
            .map(|o| {
                Json::obj(vec![
                    ("path", Json::Bytes(o.path.clone())),
                    ("run", Json::Int(o.run)),
                    (
                        "change",
                        Json::Str(
                            if o.now.is_some() {
                                "modified"
                            } else {
                                "deleted"
                            }
                            .into(),
                        ),
                    ),
                    ("recorded_hash", Json::Str(o.recorded.clone())),
                    ("hash", Json::opt_str(o.now.as_deref())),
                ])
            })
            .collect();
        let doc = Json::obj(vec![
            ("stale", Json::Int(report.stale().count() as i64)),
            ("files_checked", Json::Int(files as i64)),
            ("runs", Json::Arr(runs)),
            ("outputs", Json::Arr(outputs)),
        ]);
        writeln!(out, "{}", doc.to_pretty())?;
        return Ok(());
    }
    let st = Style::detect();
    let stale: Vec<_> = report.stale().collect();
    if stale.is_empty() && report.outputs.is_empty() {
        writeln!(
            out,
            "up to date: {} run{}, {files} file{} checked",
            report.runs.len(),
            if report.runs.len() == 1 { "" } else { "s" },
            if files == 1 { "" } else { "s" }
        )?;
        return Ok(());
    }
    if !stale.is_empty() {
        writeln!(
            out,
            "{}",
            st.bold(&format!("stale runs ({}):", stale.len()))
        )?;
        for (id, reasons) in &stale {
            let r = store.run(*id)?;
            let why: Vec<String> = reasons.iter().map(|x| reason_text(store, x, cwd)).collect();
            writeln!(
                out,
                "  {}  {}",
                run_title(&r),
                st.warn(&format!("— {}", why.join("; ")))
            )?;
        }
    }
    if !report.outputs.is_empty() {
        writeln!(
            out,
            "{}",
            st.bold(&format!(
                "outputs changed since recorded ({}):",
                report.outputs.len()
            ))
        )?;
        for o in &report.outputs {
            let what = match &o.now {
                Some(h) => format!(
                    "modified ({} -> {})",
                    short(Some(&o.recorded)),
                    short(Some(h))
                ),
                None => "deleted".into(),
            };
            writeln!(
                out,
                "  {}  {}  {}",
                display_rel(&o.path, cwd),
                st.warn(&what),
                st.dim(&format!("written by {}", seq_and_title(store, o.run)))
            )?;
        }
    }
    Ok(())
}
