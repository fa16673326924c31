//! `roar lineage`: everything upstream of a file's recorded content (or of a run), as a tree.
//! Also how a PATH-or-REF argument is turned into a place to start walking, which
//! `roar reproduce` shares.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Result;
use dag::{Lineage, Node, NodeIndex, Run, RunId, Store, Version};

use crate::json::Json;
use crate::show::{Style, command_line, run_json};
use roar_core::paths::display_rel;

pub use roar_core::target::{PathState, Target, current_hash, resolve};

/// The full runs of a lineage, by id.
pub fn load_runs(store: &Store, lin: &Lineage) -> Result<HashMap<RunId, Run>> {
    let mut runs = HashMap::new();
    for id in lin.runs_in_order() {
        runs.insert(id, store.run(id)?);
    }
    Ok(runs)
}

fn file_json(path: &[u8], v: &Version) -> Vec<(&'static str, Json)> {
    vec![
        ("path", Json::Bytes(path.to_vec())),
        ("hash", Json::opt_str(v.hash.as_deref())),
        ("size", Json::opt_int(v.size.map(|s| s as i64))),
    ]
}

pub fn lineage(store: &Store, arg: &OsStr, json: bool, cwd: &Path) -> Result<()> {
    let target = resolve(store, arg, cwd)?;
    let lin = store.lineage(&target.start)?;
    let runs = load_runs(store, &lin)?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", lineage_json(&target, &lin, &runs).to_pretty())?;
        return Ok(());
    }
    let st = Style::detect();
    let cwd_b = cwd.as_os_str().as_bytes().to_vec();
    if let Some((path, state, _)) = &target.path {
        match state {
            PathState::Recorded => {}
            PathState::Unrecorded => writeln!(
                out,
                "{}",
                st.warn(&format!(
                    "{}: its current content was never recorded; showing its newest recorded version",
                    display_rel(path, &cwd_b)
                ))
            )?,
            PathState::Missing => writeln!(
                out,
                "{}",
                st.warn(&format!(
                    "{}: the file is gone; showing its newest recorded version",
                    display_rel(path, &cwd_b)
                ))
            )?,
        }
    }
    let mut tree = Tree {
        lin: &lin,
        runs: &runs,
        cwd: &cwd_b,
        st: &st,
        shown: HashSet::new(),
        out: &mut out,
    };
    match &lin.graph[lin.root] {
        Node::Run(_) => tree.run(lin.root, "", false)?,
        Node::Artifact { .. } => tree.artifact(lin.root, None, "", "", "")?,
    }
    Ok(())
}

fn lineage_json(target: &Target, lin: &Lineage, runs: &HashMap<RunId, Run>) -> Json {
    let mut fields: Vec<(&str, Json)> = Vec::new();
    match (&target.path, &lin.graph[lin.root]) {
        (Some((path, state, now)), Node::Artifact { version, .. }) => {
            fields.push(("path", Json::Bytes(path.clone())));
            fields.push(("state", Json::Str(state.name().into())));
            fields.push(("current_hash", Json::opt_str(now.as_deref())));
            fields.push(("recorded", Json::obj(file_json(path, version))));
        }
        _ => {
            if let Node::Run(id) = lin.graph[lin.root] {
                fields.push(("run", Json::Int(id)));
            }
        }
    }
    let run_objs = lin
        .runs_in_order()
        .iter()
        .filter_map(|id| {
            let run = runs.get(id)?;
            let node = lin.run_node(*id)?;
            let mut obj = run_json(run, false);
            let from = lin
                .inputs(node)
                .into_iter()
                .map(|(a, path)| {
                    let (version, producer) = match &lin.graph[a] {
                        Node::Artifact {
                            version, producer, ..
                        } => (version.clone(), *producer),
                        Node::Run(_) => unreachable!("inputs are artifacts"),
                    };
                    let mut f = file_json(path, &version);
                    f.push(("run", Json::opt_int(producer)));
                    Json::obj(f)
                })
                .collect();
            if let Json::Obj(ref mut o) = obj {
                o.push(("inputs_from".into(), Json::Arr(from)));
            }
            Some(obj)
        })
        .collect();
    fields.push(("runs", Json::Arr(run_objs)));
    let sources = lin
        .sources()
        .into_iter()
        .filter_map(|n| match &lin.graph[n] {
            Node::Artifact { version, path, .. } => Some(Json::obj(file_json(path, version))),
            Node::Run(_) => None,
        })
        .collect();
    fields.push(("sources", Json::Arr(sources)));
    Json::obj(fields)
}

struct Tree<'a> {
    lin: &'a Lineage,
    runs: &'a HashMap<RunId, Run>,
    cwd: &'a [u8],
    st: &'a Style,
    shown: HashSet<RunId>,
    out: &'a mut dyn Write,
}

pub fn short(h: Option<&str>) -> String {
    match h {
        Some(h) => h.trim_start_matches("blake3:").chars().take(12).collect(),
        None => "unknown".into(),
    }
}

pub fn run_title(r: &Run) -> String {
    let label = r
        .label
        .as_deref()
        .map(|l| format!("[{l}] "))
        .unwrap_or_default();
    format!(
        "@{} run {}  {label}{}",
        r.seq,
        r.id,
        command_line(&r.command)
    )
}

pub fn git_short(r: &Run) -> String {
    match &r.git {
        Some(g) => format!(
            "git {}{}",
            g.commit
                .as_deref()
                .map_or("(no commit)", |c| &c[..c.len().min(12)]),
            if g.dirty { " dirty" } else { "" }
        ),
        None => "no git".into(),
    }
}

impl Tree<'_> {
    /// One artifact line, then its producer below it.
    fn artifact(
        &mut self,
        node: NodeIndex,
        read_at: Option<&[u8]>,
        lead: &str,
        branch: &str,
        cont: &str,
    ) -> std::io::Result<()> {
        let Node::Artifact {
            version,
            path,
            producer,
        } = &self.lin.graph[node]
        else {
            return Ok(());
        };
        let shown_path = read_at.unwrap_or(path.as_slice());
        let tail = if producer.is_none() {
            self.st.dim("  source")
        } else {
            String::new()
        };
        writeln!(
            self.out,
            "{lead}{branch}{}  {}{tail}",
            self.st.bold(&display_rel(shown_path, self.cwd)),
            self.st.dim(&short(version.hash.as_deref())),
        )?;
        if let Some((run, _)) = self.lin.producer(node) {
            self.run(run, &format!("{lead}{cont}"), true)?;
        }
        Ok(())
    }

    /// One run line (under `lead`, as a branch when it is `below` an artifact), then its
    /// inputs as children.
    fn run(&mut self, node: NodeIndex, lead: &str, below: bool) -> std::io::Result<()> {
        let Node::Run(id) = self.lin.graph[node] else {
            return Ok(());
        };
        let (branch, cont) = if below { ("└─ ", "   ") } else { ("", "") };
        let Some(r) = self.runs.get(&id) else {
            return Ok(());
        };
        if !self.shown.insert(id) {
            return writeln!(
                self.out,
                "{lead}{branch}{}",
                self.st
                    .dim(&format!("@{} run {} (shown above)", r.seq, r.id))
            );
        }
        writeln!(
            self.out,
            "{lead}{branch}{}  {}",
            run_title(r),
            self.st.dim(&git_short(r))
        )?;
        let inputs = self.lin.inputs(node);
        let n = inputs.len();
        for (i, (a, path)) in inputs.into_iter().enumerate() {
            let last = i + 1 == n;
            self.artifact(
                a,
                Some(path),
                &format!("{lead}{cont}"),
                if last { "└─ " } else { "├─ " },
                if last { "   " } else { "│  " },
            )?;
        }
        Ok(())
    }
}
