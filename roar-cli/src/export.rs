//! `roar dag` and `roar export`: the whole graph as JSON, Graphviz DOT or W3C PROV-JSON.
//!
//! Everything is streamed: runs and artifacts are read from the store a page at a time and
//! written as they come, so exporting a long history needs little memory.
//!
//! Node identity: a run is `run:<id>`; an artifact (one content version) is its content hash.
//! Links whose content is unknown (no hash) are left out of the graph edges; they still appear
//! in the run objects.

use std::io::Write;

use anyhow::Result;
use dag::{Run, Store};

use crate::json::{Json, Stream};
use crate::show::{command_line, run_json};
use roar_core::paths::display_rel;
use roar_core::time::rfc3339;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Dot,
    #[value(name = "prov-json")]
    ProvJson,
    /// OpenLineage 2-0-2 RunEvents, one JSON object a line.
    #[value(name = "openlineage")]
    OpenLineage,
}

/// `namespace`: the OpenLineage job namespace.
pub fn write(
    store: &Store,
    format: Format,
    root: &[u8],
    namespace: &str,
    out: &mut dyn Write,
) -> Result<()> {
    match format {
        Format::Json => json(store, out),
        Format::Dot => dot(store, root, out),
        Format::ProvJson => prov_json(store, out),
        Format::OpenLineage => openlineage(store, namespace, out),
    }
}

fn openlineage(store: &Store, namespace: &str, out: &mut dyn Write) -> Result<()> {
    let mut bar = crate::progress::Progress::new("exporting runs", store.run_count()?);
    store.for_each_run(|r| -> Result<()> {
        let env = store.environment(r.id)?;
        for event in roar_core::openlineage::events(&r, &env, namespace) {
            writeln!(out, "{event}")?;
        }
        bar.inc();
        Ok(())
    })
}

fn run_node(id: i64) -> String {
    format!("run:{id}")
}

fn json(store: &Store, out: &mut dyn Write) -> Result<()> {
    let mut top = Stream::object(out, 0)?;
    {
        let mut runs = top.array_field("runs")?;
        let mut bar = crate::progress::Progress::new("exporting runs", store.run_count()?);
        store.for_each_run(|r| -> Result<()> {
            runs.item(&run_json(&r, false))?;
            bar.inc();
            Ok(())
        })?;
        runs.end()?;
    }
    {
        let mut arts = top.array_field("artifacts")?;
        store.for_each_artifact(|a| -> Result<()> {
            arts.item(&Json::obj(vec![
                ("id", Json::Str(a.hash.clone())),
                ("hash", Json::Str(a.hash)),
                ("size", Json::opt_int(a.size.map(|s| s as i64))),
                (
                    "paths",
                    Json::Arr(a.paths.into_iter().map(Json::Bytes).collect()),
                ),
            ]))?;
            Ok(())
        })?;
        arts.end()?;
    }
    {
        let mut edges = top.array_field("edges")?;
        store.for_each_run(|r| -> Result<()> {
            for (kind, list) in [("read", &r.inputs), ("wrote", &r.outputs)] {
                for f in list.iter().filter(|f| !f.filtered) {
                    let Some(h) = &f.hash else { continue };
                    let (from, to) = if kind == "read" {
                        (h.clone(), run_node(r.id))
                    } else {
                        (run_node(r.id), h.clone())
                    };
                    edges.item(&Json::obj(vec![
                        ("from", Json::Str(from)),
                        ("to", Json::Str(to)),
                        ("type", Json::Str(kind.into())),
                        ("path", Json::Bytes(f.path.clone())),
                    ]))?;
                }
            }
            Ok(())
        })?;
        edges.end()?;
    }
    top.end()?;
    writeln!(out)?;
    Ok(())
}

/// A DOT double-quoted string.
fn dot_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn short(h: &str) -> &str {
    let h = h.strip_prefix("blake3:").unwrap_or(h);
    &h[..h.len().min(12)]
}

fn dot(store: &Store, root: &[u8], out: &mut dyn Write) -> Result<()> {
    writeln!(out, "digraph roar {{")?;
    writeln!(out, "  rankdir=LR;")?;
    writeln!(out, "  node [fontname=\"Helvetica\", fontsize=10];")?;
    writeln!(out, "  edge [fontname=\"Helvetica\", fontsize=8];")?;
    store.for_each_artifact(|a| -> Result<()> {
        let first = a
            .paths
            .first()
            .map(|p| display_rel(p, root))
            .unwrap_or_default();
        let more = match a.paths.len() {
            0 | 1 => String::new(),
            n => format!(" (+{} paths)", n - 1),
        };
        writeln!(
            out,
            "  {} [shape=note, label={}];",
            dot_str(&a.hash),
            dot_str(&format!("{first}{more}\n{}", short(&a.hash)))
        )?;
        Ok(())
    })?;
    store.for_each_run(|r: Run| -> Result<()> {
        let label = match &r.label {
            Some(l) => format!(
                "@{} run {} [{l}]\n{}",
                r.seq,
                r.id,
                command_line(&r.command)
            ),
            None => format!("@{} run {}\n{}", r.seq, r.id, command_line(&r.command)),
        };
        let style = if r.complete && r.exit_code == Some(0) {
            "rounded"
        } else {
            "rounded,dashed"
        };
        writeln!(
            out,
            "  {} [shape=box, style={}, label={}];",
            dot_str(&run_node(r.id)),
            dot_str(style),
            dot_str(&label)
        )?;
        for f in r.inputs.iter().filter(|f| !f.filtered) {
            if let Some(h) = &f.hash {
                writeln!(out, "  {} -> {};", dot_str(h), dot_str(&run_node(r.id)))?;
            }
        }
        for f in r.outputs.iter().filter(|f| !f.filtered) {
            if let Some(h) = &f.hash {
                writeln!(out, "  {} -> {};", dot_str(&run_node(r.id)), dot_str(h))?;
            }
        }
        Ok(())
    })?;
    writeln!(out, "}}")?;
    Ok(())
}

/// The namespace of roar's own PROV attributes and of run identifiers.
const ROAR_NS: &str = "https://roar.invalid/ns#";
const RUN_NS: &str = "https://roar.invalid/run/";
/// Artifacts are named by content: `blake3:<hex>` is already a QName in this namespace.
const BLAKE3_NS: &str = "urn:blake3:";
/// Relation identifiers (`rel:g7.0`, the generation of run 7's first output), declared so
/// that a derivation's `prov:generation` and `prov:usage` resolve; PROV tools drop (and
/// prov 3.3 rejects) references to undeclared blank-node names such as `_:g7.0`.
const REL_NS: &str = "https://roar.invalid/relation/";
const AGENT: &str = "roar:roar";

/// A qualified name as an attribute value: a PROV-JSON typed literal.
fn qname(q: &str) -> Json {
    Json::obj(vec![
        ("$", Json::Str(q.into())),
        ("type", Json::Str("xsd:QName".into())),
    ])
}

fn prov_activity(r: &Run) -> Json {
    let mut f = vec![
        ("prov:type", qname("roar:Run")),
        (
            "prov:label",
            Json::Str(match &r.label {
                Some(l) => format!("{l}: {}", command_line(&r.command)),
                None => command_line(&r.command),
            }),
        ),
        ("prov:startTime", Json::Str(rfc3339(r.started_at_ms))),
    ];
    if let Some(d) = r.duration_ms {
        f.push((
            "prov:endTime",
            Json::Str(rfc3339(r.started_at_ms.saturating_add(d as i64))),
        ));
    }
    f.push(("roar:runId", Json::Int(r.id)));
    f.push(("roar:command", Json::Str(command_line(&r.command))));
    f.push((
        "roar:argv",
        Json::Arr(r.command.iter().map(|a| Json::Bytes(a.clone())).collect()),
    ));
    f.push(("roar:cwd", Json::Bytes(r.cwd.clone())));
    if let Some(c) = r.exit_code {
        f.push(("roar:exitCode", Json::Int(c.into())));
    }
    if let Some(s) = r.signal {
        f.push(("roar:signal", Json::Int(s.into())));
    }
    f.push(("roar:complete", Json::Bool(r.complete)));
    if let Some(g) = &r.git {
        if let Some(c) = &g.commit {
            f.push(("roar:gitCommit", Json::Str(c.clone())));
        }
        if let Some(b) = &g.branch {
            f.push(("roar:gitBranch", Json::Str(b.clone())));
        }
        f.push(("roar:gitDirty", Json::Bool(g.dirty)));
        if let Some(rm) = &g.remote {
            f.push(("roar:gitRemote", Json::Str(rm.clone())));
        }
    }
    Json::obj(f)
}

fn prov_json(store: &Store, out: &mut dyn Write) -> Result<()> {
    let mut top = Stream::object(out, 0)?;
    top.field(
        b"prefix",
        &Json::obj(vec![
            ("roar", Json::Str(ROAR_NS.into())),
            ("run", Json::Str(RUN_NS.into())),
            ("blake3", Json::Str(BLAKE3_NS.into())),
            ("rel", Json::Str(REL_NS.into())),
        ]),
    )?;
    {
        let mut agents = top.object_field("agent")?;
        agents.field(
            AGENT.as_bytes(),
            &Json::obj(vec![
                ("prov:type", qname("prov:SoftwareAgent")),
                ("prov:label", Json::Str("roar".into())),
                ("roar:version", Json::Str(env!("CARGO_PKG_VERSION").into())),
            ]),
        )?;
        agents.end()?;
    }
    {
        let mut ents = top.object_field("entity")?;
        store.for_each_artifact(|a| -> Result<()> {
            let mut f = vec![
                ("prov:type", qname("roar:Artifact")),
                (
                    "prov:label",
                    Json::Bytes(a.paths.first().cloned().unwrap_or_default()),
                ),
                ("roar:hash", Json::Str(a.hash.clone())),
                (
                    "roar:path",
                    Json::Arr(a.paths.iter().cloned().map(Json::Bytes).collect()),
                ),
            ];
            if let Some(s) = a.size {
                f.push(("roar:size", Json::Int(s as i64)));
            }
            ents.field(a.hash.as_bytes(), &Json::obj(f))?;
            Ok(())
        })?;
        ents.end()?;
    }
    {
        let mut acts = top.object_field("activity")?;
        store.for_each_run(|r| -> Result<()> {
            acts.field(run_id(&r).as_bytes(), &prov_activity(&r))?;
            Ok(())
        })?;
        acts.end()?;
    }
    // Relations, one pass over the runs each.
    for section in [
        "used",
        "wasGeneratedBy",
        "wasDerivedFrom",
        "wasAssociatedWith",
    ] {
        let mut rel = top.object_field(section)?;
        store.for_each_run(|r| -> Result<()> {
            prov_relations(section, &r, &mut rel)?;
            Ok(())
        })?;
        rel.end()?;
    }
    top.end()?;
    writeln!(out)?;
    Ok(())
}

/// One run's records of a relation section of the PROV-JSON document.
fn prov_relations(section: &str, r: &Run, rel: &mut Stream<'_>) -> std::io::Result<()> {
    let act = run_id(r);
    let ins: Vec<(usize, &dag::FileRecord)> = r
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.filtered && f.hash.is_some())
        .collect();
    let outs: Vec<(usize, &dag::FileRecord)> = r
        .outputs
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.filtered && f.hash.is_some())
        .collect();
    match section {
        "used" => {
            for (i, f) in &ins {
                rel.field(
                    format!("rel:u{}.{i}", r.id).as_bytes(),
                    &Json::obj(vec![
                        ("prov:activity", Json::Str(act.clone())),
                        ("prov:entity", Json::opt_str(f.hash.as_deref())),
                        ("roar:path", Json::Bytes(f.path.clone())),
                    ]),
                )?;
            }
        }
        "wasGeneratedBy" => {
            for (i, f) in &outs {
                let mut v = vec![
                    ("prov:entity", Json::opt_str(f.hash.as_deref())),
                    ("prov:activity", Json::Str(act.clone())),
                ];
                if let Some(d) = r.duration_ms {
                    v.push((
                        "prov:time",
                        Json::Str(rfc3339(r.started_at_ms.saturating_add(d as i64))),
                    ));
                }
                v.push(("roar:path", Json::Bytes(f.path.clone())));
                rel.field(format!("rel:g{}.{i}", r.id).as_bytes(), &Json::obj(v))?;
            }
        }
        "wasDerivedFrom" => {
            for (o, fo) in &outs {
                for (i, fi) in &ins {
                    if fo.hash == fi.hash {
                        continue;
                    }
                    rel.field(
                        format!("rel:d{}.{o}.{i}", r.id).as_bytes(),
                        &Json::obj(vec![
                            ("prov:generatedEntity", Json::opt_str(fo.hash.as_deref())),
                            ("prov:usedEntity", Json::opt_str(fi.hash.as_deref())),
                            ("prov:activity", Json::Str(act.clone())),
                            ("prov:generation", Json::Str(format!("rel:g{}.{o}", r.id))),
                            ("prov:usage", Json::Str(format!("rel:u{}.{i}", r.id))),
                        ]),
                    )?;
                }
            }
        }
        _ => {
            rel.field(
                format!("rel:a{}", r.id).as_bytes(),
                &Json::obj(vec![
                    ("prov:activity", Json::Str(act)),
                    ("prov:agent", Json::Str(AGENT.into())),
                ]),
            )?;
        }
    }
    Ok(())
}

fn run_id(r: &Run) -> String {
    format!("run:{}", r.id)
}
