//! `roar show` and `roar log`: runs as JSON and as text a person reads.

use std::io::Write;

use dag::{Environment, FileRecord, Run};

use crate::json::Json;
use roar_core::paths::display_rel;
use roar_core::time::rfc3339;

fn bytes_list(v: &[Vec<u8>]) -> Json {
    Json::Arr(v.iter().map(|a| Json::Bytes(a.clone())).collect())
}

fn files(v: &[FileRecord], all: bool) -> Json {
    Json::Arr(
        v.iter()
            .filter(|f| all || !f.filtered)
            .map(|f| {
                let mut fields = vec![
                    ("path", Json::Bytes(f.path.clone())),
                    ("hash", Json::opt_str(f.hash.as_deref())),
                    ("size", Json::opt_int(f.size.map(|s| s as i64))),
                ];
                if all {
                    fields.push(("filtered", Json::Bool(f.filtered)));
                }
                Json::obj(fields)
            })
            .collect(),
    )
}

/// The run as the JSON object CONTRACT.md defines.
pub fn run_json(r: &Run, all: bool) -> Json {
    let git = r.git.as_ref().map_or(Json::Null, |g| {
        Json::obj(vec![
            ("commit", Json::opt_str(g.commit.as_deref())),
            ("branch", Json::opt_str(g.branch.as_deref())),
            ("dirty", Json::Bool(g.dirty)),
            ("remote", Json::opt_str(g.remote.as_deref())),
        ])
    });
    let processes = Json::Arr(
        r.processes
            .iter()
            .map(|p| {
                Json::obj(vec![
                    ("pid", Json::Int(p.pid.into())),
                    ("ppid", Json::Int(p.ppid.into())),
                    ("exe", Json::Bytes(p.exe.clone())),
                    ("argv", bytes_list(&p.argv)),
                    ("cwd", Json::Bytes(p.cwd.clone())),
                    ("exit_code", Json::opt_int(p.exit_code)),
                    ("signal", Json::opt_int(p.signal)),
                ])
            })
            .collect(),
    );
    let env = Json::Obj(
        r.env
            .iter()
            .map(|(k, v)| (k.clone(), Json::opt_str(v.as_deref())))
            .collect(),
    );
    let openjd = r.openjd.as_ref().map_or(Json::Null, |o| {
        Json::obj(vec![
            ("session_id", Json::opt_str(o.session_id.as_deref())),
            (
                "working_dir",
                o.working_dir.clone().map_or(Json::Null, Json::Bytes),
            ),
            ("step", Json::opt_str(o.step.as_deref())),
            (
                "environments",
                Json::Arr(
                    o.environments
                        .iter()
                        .map(|e| Json::Str(e.clone()))
                        .collect(),
                ),
            ),
        ])
    });
    let origin = Json::obj(vec![
        ("store", Json::Str(r.origin.store.clone())),
        ("host", Json::opt_str(r.origin.host.as_deref())),
        ("pulled", Json::Bool(r.pulled)),
    ]);
    Json::obj(vec![
        ("id", Json::Int(r.id)),
        ("uuid", Json::Str(r.uuid.clone())),
        ("origin", origin),
        ("ref", Json::Str(format!("@{}", r.seq))),
        ("label", Json::opt_str(r.label.as_deref())),
        ("command", bytes_list(&r.command)),
        ("cwd", Json::Bytes(r.cwd.clone())),
        ("backend", Json::Str(r.backend.clone())),
        (
            "backend_reason",
            r.backend_reason.clone().map_or(Json::Null, Json::Str),
        ),
        ("exit_code", Json::opt_int(r.exit_code)),
        ("signal", Json::opt_int(r.signal)),
        ("started_at", Json::Str(rfc3339(r.started_at_ms))),
        (
            "duration_ms",
            Json::opt_int(r.duration_ms.map(|d| d as i64)),
        ),
        ("complete", Json::Bool(r.complete)),
        ("finished", Json::Bool(r.finished)),
        (
            "warnings",
            Json::Arr(r.warnings.iter().map(|w| Json::Str(w.clone())).collect()),
        ),
        ("git", git),
        ("inputs", files(&r.inputs, all)),
        ("outputs", files(&r.outputs, all)),
        ("processes", processes),
        ("env", env),
        ("openjd", openjd),
    ])
}

pub use crate::style::{Style, command_line};

fn status(r: &Run) -> String {
    match (r.finished, r.exit_code, r.signal) {
        (false, _, _) => "running or lost".into(),
        (_, _, Some(s)) => format!("signal {s}"),
        (_, Some(c), _) => format!("exit {c}"),
        _ => "exit ?".into(),
    }
}

fn short_hash(h: &Option<String>) -> String {
    match h {
        Some(h) => h.trim_start_matches("blake3:").chars().take(12).collect(),
        None => "unknown     ".into(),
    }
}

fn human_size(n: Option<u64>) -> String {
    let Some(n) = n else { return "?".into() };
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

pub fn show_text(out: &mut dyn Write, r: &Run, all: bool, st: &Style) -> std::io::Result<()> {
    let label = r
        .label
        .as_deref()
        .map(|l| format!("  {l}"))
        .unwrap_or_default();
    writeln!(
        out,
        "{}{}",
        st.bold(&format!("run {} (@{})", r.id, r.seq)),
        st.bold(&label)
    )?;
    writeln!(out, "  command   {}", command_line(&r.command))?;
    writeln!(out, "  cwd       {}", String::from_utf8_lossy(&r.cwd))?;
    let dur = r
        .duration_ms
        .map_or("?".into(), |d| format!("{:.2} s", d as f64 / 1000.0));
    writeln!(
        out,
        "  started   {}  ({dur}, {}, {})",
        rfc3339(r.started_at_ms),
        status(r),
        r.backend
    )?;
    match &r.git {
        Some(g) => writeln!(
            out,
            "  git       {} on {}{}{}",
            g.commit
                .as_deref()
                .map_or("(no commits)", |c| &c[..c.len().min(12)]),
            g.branch.as_deref().unwrap_or("(detached)"),
            if g.dirty { " (dirty)" } else { "" },
            g.remote
                .as_deref()
                .map(|r| format!("  {r}"))
                .unwrap_or_default()
        )?,
        None => writeln!(out, "  git       (not a git repository)")?,
    }
    if let Some(o) = &r.openjd {
        let mut line = format!(
            "  openjd    session {}",
            o.session_id.as_deref().unwrap_or("?")
        );
        if let Some(step) = &o.step {
            line.push_str(&format!(", step {step}"));
        }
        if !o.environments.is_empty() {
            line.push_str(&format!(", environments {}", o.environments.join(", ")));
        }
        writeln!(out, "{line}")?;
    }
    if !r.complete {
        writeln!(
            out,
            "  {}",
            st.warn("INCOMPLETE: this record may miss file accesses")
        )?;
    }
    for w in &r.warnings {
        writeln!(out, "  {} {w}", st.warn("warning:"))?;
    }
    for (title, list) in [("inputs", &r.inputs), ("outputs", &r.outputs)] {
        let shown: Vec<&FileRecord> = list.iter().filter(|f| all || !f.filtered).collect();
        let hidden = list.len() - shown.len();
        let extra = if hidden > 0 {
            format!("  {}", st.dim(&format!("(+{hidden} system files: --all)")))
        } else {
            String::new()
        };
        writeln!(out, "  {} ({}){extra}", st.bold(title), shown.len())?;
        for f in shown {
            writeln!(
                out,
                "    {}  {:>9}  {}{}",
                st.dim(&short_hash(&f.hash)),
                human_size(f.size),
                display_rel(&f.path, &r.cwd),
                if f.filtered {
                    st.dim("  (hidden)")
                } else {
                    String::new()
                }
            )?;
        }
    }
    writeln!(out, "  {} ({})", st.bold("processes"), r.processes.len())?;
    let folded = crate::tree::draw(out, &r.processes, all, st)?;
    if folded > 0 {
        let what = format!("({folded} helper processes of shell wrappers folded: --all)");
        writeln!(out, "  {}", st.dim(&what))?;
    }
    Ok(())
}

/// `"environment"` of `roar show --json`: the packages the run used and the host.
pub fn environment_json(e: &Environment) -> Json {
    let packages = e.packages.iter().map(|p| {
        Json::obj(vec![
            ("manager", Json::Str(p.manager.clone())),
            ("name", Json::Str(p.name.clone())),
            ("version", Json::Str(p.version.clone())),
        ])
    });
    let host = e.host.as_ref().map_or(Json::Null, |h| {
        Json::obj(vec![
            ("hostname", Json::opt_str(h.hostname.as_deref())),
            ("kernel", Json::opt_str(h.kernel.as_deref())),
            ("os_release", Json::opt_str(h.os.as_deref())),
            ("cpu_model", Json::opt_str(h.cpu_model.as_deref())),
            ("cpu_count", Json::opt_int(h.cpus)),
            (
                "memory_bytes",
                Json::opt_int(h.memory_bytes.map(|m| m as i64)),
            ),
            (
                "gpus",
                Json::Arr(h.gpus.iter().map(|g| Json::Str(g.clone())).collect()),
            ),
        ])
    });
    Json::obj(vec![
        ("packages", Json::Arr(packages.collect())),
        ("host", host),
    ])
}

/// `"container"` of `roar show --json`: the container the run ran in, null on the host.
pub fn container_json(e: &Environment) -> Json {
    e.container.as_ref().map_or(Json::Null, |c| {
        Json::obj(vec![
            ("runtime", Json::Str(c.runtime.clone())),
            ("image", Json::opt_str(c.image.as_deref())),
            ("image_id", Json::opt_str(c.image_id.as_deref())),
            ("id", Json::opt_str(c.id.as_deref())),
        ])
    })
}

/// The environment lines of `roar show`.
pub fn environment_text(out: &mut dyn Write, e: &Environment, st: &Style) -> std::io::Result<()> {
    if let Some(c) = &e.container {
        writeln!(
            out,
            "  container {} {} ({}; {})",
            c.runtime,
            c.image.as_deref().unwrap_or("?"),
            c.image_id.as_deref().map_or("?", |i| &i[..i.len().min(19)]),
            c.id.as_deref().map_or("?", |i| &i[..i.len().min(12)]),
        )?;
    }
    if let Some(h) = &e.host {
        let mem = h.memory_bytes.map(|m| format!(", {}", human_size(Some(m))));
        writeln!(
            out,
            "  host      {} ({}; {}; {} x {}{})",
            h.hostname.as_deref().unwrap_or("?"),
            h.os.as_deref().unwrap_or("?"),
            h.kernel
                .as_deref()
                .and_then(|k| k.split(' ').next())
                .unwrap_or("?"),
            h.cpus.map_or("?".into(), |c| c.to_string()),
            h.cpu_model.as_deref().unwrap_or("?"),
            mem.unwrap_or_default()
        )?;
        for g in &h.gpus {
            writeln!(out, "  gpu       {g}")?;
        }
    }
    writeln!(out, "  {} ({})", st.bold("packages"), e.packages.len())?;
    for p in &e.packages {
        writeln!(
            out,
            "    {:<6} {} {}",
            p.manager,
            p.name,
            st.dim(&p.version)
        )?;
    }
    Ok(())
}

pub fn log_text(out: &mut dyn Write, runs: &[Run], st: &Style) -> std::io::Result<()> {
    for r in runs {
        let ins = r.inputs.iter().filter(|f| !f.filtered).count();
        let outs = r.outputs.iter().filter(|f| !f.filtered).count();
        let label = r
            .label
            .as_deref()
            .map(|l| format!("[{l}] "))
            .unwrap_or_default();
        let flag = if r.complete {
            String::new()
        } else {
            st.warn(" (incomplete)")
        };
        writeln!(
            out,
            "{} {:>5}  {}  {:<9} {:>3} in {:>3} out  {}{}{}",
            st.bold(&format!("@{:<4}", r.seq)),
            r.id,
            rfc3339(r.started_at_ms),
            status(r),
            ins,
            outs,
            label,
            command_line(&r.command),
            flag
        )?;
    }
    Ok(())
}
