//! `roar sources PATH`: the leaf inputs of PATH's lineage that no recorded run produced (the
//! data and code a result rests on), each with its recorded hash and whether the file still
//! holds it.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Result;
use dag::{Node, Store};

use crate::json::Json;
use crate::lineage::{self, current_hash, short};
use crate::show::Style;
use roar_core::paths::{as_path, display_rel};

pub fn sources(store: &Store, arg: &OsStr, json: bool, cwd: &Path) -> Result<()> {
    let target = lineage::resolve(store, arg, cwd)?;
    let lin = store.lineage(&target.start)?;
    let mut rows = Vec::new();
    for n in lin.sources() {
        let Node::Artifact { version, path, .. } = &lin.graph[n] else {
            continue;
        };
        let now = current_hash(store, as_path(path)).unwrap_or(None);
        let state = match (&now, &version.hash) {
            (None, _) => "missing",
            (Some(h), Some(r)) if h == r => "unchanged",
            _ => "modified",
        };
        let mut readers: Vec<i64> = lin
            .graph
            .neighbors(n)
            .filter_map(|r| match lin.graph[r] {
                Node::Run(id) => Some(id),
                Node::Artifact { .. } => None,
            })
            .collect();
        readers.sort_unstable();
        readers.dedup();
        rows.push((path.clone(), version.clone(), state, readers));
    }
    let mut out = std::io::stdout().lock();
    if json {
        let items = rows.iter().map(|(path, v, state, readers)| {
            Json::obj(vec![
                ("path", Json::Bytes(path.clone())),
                ("hash", Json::opt_str(v.hash.as_deref())),
                ("size", Json::opt_int(v.size.map(|s| s as i64))),
                ("state", Json::Str((*state).into())),
                (
                    "read_by",
                    Json::Arr(readers.iter().map(|&r| Json::Int(r)).collect()),
                ),
            ])
        });
        writeln!(out, "{}", Json::Arr(items.collect()).to_pretty())?;
        return Ok(());
    }
    let st = Style::detect();
    let base = cwd.as_os_str().as_bytes();
    for (path, v, state, _) in &rows {
        let flag = if *state == "unchanged" {
            String::new()
        } else {
            st.warn(&format!("  ({state})"))
        };
        writeln!(
            out,
            "{}  {}{flag}",
            st.dim(&short(v.hash.as_deref())),
            display_rel(path, base)
        )?;
    }
    Ok(())
}
