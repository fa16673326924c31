//! `roar diff A B`: what differs between two runs, as text or JSON (computed by
//! `roar_core::diff`).

use std::io::Write;

use anyhow::Result;
use dag::{Run, Store};
use roar_core::diff::{Change, Diff, Files, diff};

use crate::json::Json;
use crate::lineage::{run_title, short};
use crate::show::{Style, command_line};

pub fn run(store: &Store, a: &str, b: &str, json: bool, cwd: &std::path::Path) -> Result<()> {
    let (ra, rb) = (store.resolve_ref(a, cwd)?, store.resolve_ref(b, cwd)?);
    let (ra, rb) = (store.run(ra)?, store.run(rb)?);
    let d = diff(
        &ra,
        &store.environment(ra.id)?,
        &rb,
        &store.environment(rb.id)?,
    );
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", to_json(&ra, &rb, &d).to_pretty())?;
    } else {
        text(&mut out, &ra, &rb, &d, &Style::detect())?;
    }
    Ok(())
}

fn pair(c: &Option<Change<Json>>) -> Json {
    c.as_ref().map_or(Json::Null, |c| {
        Json::obj(vec![("a", c.a.clone()), ("b", c.b.clone())])
    })
}

fn map<T>(c: &Option<Change<T>>, f: impl Fn(&T) -> Json) -> Option<Change<Json>> {
    c.as_ref().map(|c| Change {
        a: f(&c.a),
        b: f(&c.b),
    })
}

fn files_json(f: &Files) -> Json {
    let list = |v: &[dag::FileRecord]| {
        let items = v.iter().map(|f| {
            Json::obj(vec![
                ("path", Json::Bytes(f.path.clone())),
                ("hash", Json::opt_str(f.hash.as_deref())),
            ])
        });
        Json::Arr(items.collect())
    };
    let changed = f.changed.iter().map(|c| {
        Json::obj(vec![
            ("path", Json::Bytes(c.path.clone())),
            ("a", Json::opt_str(c.a.as_deref())),
            ("b", Json::opt_str(c.b.as_deref())),
        ])
    });
    Json::obj(vec![
        ("added", list(&f.added)),
        ("removed", list(&f.removed)),
        ("changed", Json::Arr(changed.collect())),
    ])
}

fn to_json(a: &Run, b: &Run, d: &Diff) -> Json {
    let id = |r: &Run| {
        Json::obj(vec![
            ("id", Json::Int(r.id)),
            ("uuid", Json::Str(r.uuid.clone())),
        ])
    };
    let argv = |v: &Vec<Vec<u8>>| Json::Arr(v.iter().map(|x| Json::Bytes(x.clone())).collect());
    let ending = |e: &(Option<i32>, Option<i32>)| {
        Json::obj(vec![
            ("exit_code", Json::opt_int(e.0)),
            ("signal", Json::opt_int(e.1)),
        ])
    };
    let packages = d.packages.iter().map(|p| {
        Json::obj(vec![
            ("manager", Json::Str(p.manager.clone())),
            ("name", Json::Str(p.name.clone())),
            ("a", Json::opt_str(p.a.as_deref())),
            ("b", Json::opt_str(p.b.as_deref())),
        ])
    });
    let env = d.env.iter().map(|(n, c)| {
        Json::obj(vec![
            ("name", Json::Str(n.clone())),
            ("a", Json::opt_str(c.a.as_deref())),
            ("b", Json::opt_str(c.b.as_deref())),
        ])
    });
    let git = Json::obj(vec![
        (
            "commit",
            pair(&map(&d.git_commit, |c| Json::opt_str(c.as_deref()))),
        ),
        (
            "dirty",
            pair(&map(&d.git_dirty, |c| c.map_or(Json::Null, Json::Bool))),
        ),
    ]);
    let dur = |v: Option<u64>| Json::opt_int(v.map(|v| v as i64));
    Json::obj(vec![
        ("a", id(a)),
        ("b", id(b)),
        ("same", Json::Bool(d.same())),
        ("command", pair(&map(&d.command, argv))),
        (
            "image",
            pair(&map(&d.image, |c| Json::opt_str(c.as_deref()))),
        ),
        ("cwd", pair(&map(&d.cwd, |c| Json::Bytes(c.clone())))),
        ("inputs", files_json(&d.inputs)),
        ("outputs", files_json(&d.outputs)),
        ("packages", Json::Arr(packages.collect())),
        ("git", git),
        ("env", Json::Arr(env.collect())),
        ("exit", pair(&map(&d.ending, ending))),
        (
            "duration_ms",
            Json::obj(vec![
                ("a", dur(d.duration_ms.a)),
                ("b", dur(d.duration_ms.b)),
            ]),
        ),
    ])
}

fn files_text(out: &mut dyn Write, title: &str, f: &Files, st: &Style) -> std::io::Result<()> {
    if f.is_empty() {
        return Ok(());
    }
    writeln!(out, "{}", st.bold(title))?;
    let p = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for x in &f.removed {
        writeln!(
            out,
            "  - {}  {}",
            p(&x.path),
            st.dim(&short(x.hash.as_deref()))
        )?;
    }
    for x in &f.added {
        writeln!(
            out,
            "  + {}  {}",
            p(&x.path),
            st.dim(&short(x.hash.as_deref()))
        )?;
    }
    for c in &f.changed {
        let h = format!("{} -> {}", short(c.a.as_deref()), short(c.b.as_deref()));
        writeln!(out, "  ~ {}  {}", p(&c.path), st.dim(&h))?;
    }
    Ok(())
}

fn text(out: &mut dyn Write, a: &Run, b: &Run, d: &Diff, st: &Style) -> std::io::Result<()> {
    writeln!(out, "{} {}", st.bold("a:"), run_title(a))?;
    writeln!(out, "{} {}", st.bold("b:"), run_title(b))?;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
    let mut line = |what: &str, a: String, b: String| writeln!(out, "{what:<9} {a}  ->  {b}");
    if let Some(c) = &d.command {
        line("command", command_line(&c.a), command_line(&c.b))?;
    }
    if let Some(c) = &d.cwd {
        line(
            "cwd",
            String::from_utf8_lossy(&c.a).into(),
            String::from_utf8_lossy(&c.b).into(),
        )?;
    }
    if let Some(c) = &d.image {
        line("image", opt(&c.a), opt(&c.b))?;
    }
    if let Some(c) = &d.git_commit {
        line("git", opt(&c.a), opt(&c.b))?;
    }
    if let Some(c) = &d.git_dirty {
        line("dirty", format!("{:?}", c.a), format!("{:?}", c.b))?;
    }
    if let Some(c) = &d.ending {
        let e = |e: &(Option<i32>, Option<i32>)| match e {
            (_, Some(s)) => format!("signal {s}"),
            (Some(c), _) => format!("exit {c}"),
            _ => "exit ?".into(),
        };
        line("status", e(&c.a), e(&c.b))?;
    }
    for (n, c) in &d.env {
        line(&format!("${n}"), opt(&c.a), opt(&c.b))?;
    }
    let ms = |v: Option<u64>| v.map_or("?".into(), |v| format!("{:.2} s", v as f64 / 1000.0));
    line("duration", ms(d.duration_ms.a), ms(d.duration_ms.b))?;
    files_text(out, "inputs", &d.inputs, st)?;
    files_text(out, "outputs", &d.outputs, st)?;
    if !d.packages.is_empty() {
        writeln!(out, "{}", st.bold("packages"))?;
        for p in &d.packages {
            let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            writeln!(
                out,
                "  {} {}  {} -> {}",
                p.manager,
                p.name,
                v(&p.a),
                v(&p.b)
            )?;
        }
    }
    if d.same() {
        writeln!(
            out,
            "{}",
            st.dim("same command, files, packages, git and environment")
        )?;
    }
    Ok(())
}
