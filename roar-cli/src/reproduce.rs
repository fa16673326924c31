//! `roar reproduce`: the recorded runs that rebuild a file, in dependency order, as a list or
//! as a POSIX shell script.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use anyhow::Result;
use dag::{Node, Run, RunId, Store};

use crate::json::Json;
use crate::lineage::{self, PathState};
use crate::show::{Style, run_json};
use roar_core::paths::display_rel;
use roar_core::time::rfc3339;

/// `arg` as one POSIX shell word: bare when that is unambiguous, else single-quoted (a `'`
/// inside becomes `'\''`). Bytes that are not UTF-8 pass through unchanged.
pub fn sh_quote(arg: &[u8]) -> Vec<u8> {
    if !arg.is_empty()
        && arg
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(b))
    {
        return arg.to_vec();
    }
    let mut out = Vec::with_capacity(arg.len() + 2);
    out.push(b'\'');
    for &b in arg {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

fn sh_command(cmd: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, a) in cmd.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend(sh_quote(a));
    }
    out
}

/// A comment line: no newline can end it early.
fn comment(s: &str) -> String {
    format!("# {}\n", s.replace(['\n', '\r'], " "))
}

fn git_note(r: &Run) -> String {
    match &r.git {
        Some(g) => format!(
            "git {} on {}{}",
            g.commit.as_deref().unwrap_or("(no commit)"),
            g.branch.as_deref().unwrap_or("(detached)"),
            if g.dirty {
                " with uncommitted changes"
            } else {
                ""
            }
        ),
        None => "not in a git repository".into(),
    }
}

/// What rebuilds the target: its runs in order and the sources they rest on.
struct Plan {
    target: lineage::Target,
    /// What is rebuilt, for messages.
    what: String,
    order: Vec<RunId>,
    runs: HashMap<RunId, Run>,
    sources: Vec<(Vec<u8>, Option<String>)>,
    /// The packages the runs used, as recorded.
    pins: Vec<dag::Package>,
}

pub fn reproduce(store: &Store, arg: &OsStr, script: bool, json: bool, cwd: &Path) -> Result<()> {
    let target = lineage::resolve(store, arg, cwd)?;
    let lin = store.lineage(&target.start)?;
    let sources = lin
        .sources()
        .into_iter()
        .filter_map(|n| match &lin.graph[n] {
            Node::Artifact { version, path, .. } => Some((path.clone(), version.hash.clone())),
            Node::Run(_) => None,
        })
        .collect();
    let mut pins: Vec<dag::Package> = store
        .packages_of(&lin.runs_in_order())?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    pins.sort();
    pins.dedup();
    let plan = Plan {
        pins,
        what: match &target.path {
            Some((p, _, _)) => String::from_utf8_lossy(p).into_owned(),
            None => format!("the inputs of run {}", arg.to_string_lossy()),
        },
        runs: lineage::load_runs(store, &lin)?,
        order: lin.runs_in_order(),
        target,
        sources,
    };
    if let Some((p, PathState::Unrecorded, _)) = &plan.target.path {
        eprintln!(
            "roar: {}: its current content was never recorded; these runs rebuild its newest recorded version",
            String::from_utf8_lossy(p)
        );
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", plan.json().to_pretty())?;
    } else if script {
        out.write_all(&plan.script())?;
    } else {
        plan.text(&mut out, cwd.as_os_str().as_bytes())?;
    }
    Ok(())
}

impl Plan {
    fn json(&self) -> Json {
        let run_objs = self
            .order
            .iter()
            .map(|id| {
                let r = &self.runs[id];
                let mut obj = run_json(r, false);
                if let Json::Obj(o) = &mut obj {
                    let mut line = b"cd ".to_vec();
                    line.extend(sh_quote(&r.cwd));
                    line.extend_from_slice(b" && ");
                    line.extend(sh_command(&r.command));
                    o.push(("shell".into(), Json::Bytes(line)));
                }
                obj
            })
            .collect();
        let sources = self
            .sources
            .iter()
            .map(|(p, h)| {
                Json::obj(vec![
                    ("path", Json::Bytes(p.clone())),
                    ("hash", Json::opt_str(h.as_deref())),
                ])
            })
            .collect();
        Json::obj(vec![
            (
                "path",
                match &self.target.path {
                    Some((p, _, _)) => Json::Bytes(p.clone()),
                    None => Json::Null,
                },
            ),
            ("runs", Json::Arr(run_objs)),
            ("sources", Json::Arr(sources)),
        ])
    }

    fn text(&self, out: &mut dyn Write, cwd: &[u8]) -> std::io::Result<()> {
        let st = Style::detect();
        let n = self.order.len();
        writeln!(
            out,
            "{}",
            st.bold(&format!(
                "{n} run{} rebuild {}",
                if n == 1 { "" } else { "s" },
                display_rel(self.what.as_bytes(), cwd)
            ))
        )?;
        for id in &self.order {
            let r = &self.runs[id];
            writeln!(
                out,
                "{}  {}",
                st.bold(&lineage::run_title(r)),
                st.dim(&git_note(r))
            )?;
            writeln!(out, "    cd {}", String::from_utf8_lossy(&sh_quote(&r.cwd)))?;
            writeln!(
                out,
                "    {}",
                String::from_utf8_lossy(&sh_command(&r.command))
            )?;
        }
        if !self.sources.is_empty() {
            writeln!(out, "{}", st.bold("from sources no run produced:"))?;
            for (p, h) in &self.sources {
                writeln!(
                    out,
                    "    {}  {}",
                    display_rel(p, cwd),
                    st.dim(&lineage::short(h.as_deref()))
                )?;
            }
        }
        Ok(())
    }

    /// A POSIX shell script that checks the sources are there, then runs
    /// every run in order, stopping at the first failure.
    fn script(&self) -> Vec<u8> {
        let mut s: Vec<u8> = Vec::new();
        s.extend_from_slice(b"#!/bin/sh\n");
        s.extend(
            comment(&format!(
                "Rebuilds {} from its recorded lineage ({} runs).",
                self.what,
                self.order.len()
            ))
            .bytes(),
        );
        s.extend(comment("Written by `roar reproduce --script`. It checks nothing out: the sources must already be in place.").bytes());
        s.extend_from_slice(&pins(&self.pins));
        s.extend_from_slice(b"set -eu\n\n");
        if !self.sources.is_empty() {
            s.extend_from_slice(b"for f in");
            for (p, _) in &self.sources {
                s.push(b' ');
                s.extend(sh_quote(p));
            }
            s.extend_from_slice(
                b"; do\n    [ -e \"$f\" ] || { echo \"reproduce: missing source: $f\" >&2; exit 1; }\ndone\n",
            );
        }
        for id in &self.order {
            let r = &self.runs[id];
            s.push(b'\n');
            s.extend(
                comment(&format!(
                    "{}, recorded {}, {}",
                    lineage::run_title(r),
                    rfc3339(r.started_at_ms),
                    git_note(r)
                ))
                .bytes(),
            );
            if r.exit_code != Some(0) {
                s.extend(comment("note: this run did not exit 0 when it was recorded").bytes());
            }
            s.extend_from_slice(b"cd ");
            s.extend(sh_quote(&r.cwd));
            s.push(b'\n');
            s.extend(sh_command(&r.command));
            s.push(b'\n');
        }
        s
    }
}

/// The packages the runs used, as commands that install exactly those versions, commented
/// out: installing is the caller's decision.
fn pins(packages: &[dag::Package]) -> Vec<u8> {
    if packages.is_empty() {
        return Vec::new();
    }
    let mut s = comment(
        "The packages these runs used, as recorded; install these versions to rebuild exactly:",
    )
    .into_bytes();
    for p in packages {
        let name = String::from_utf8_lossy(&sh_quote(p.name.as_bytes())).into_owned();
        let line = match p.manager.as_str() {
            "pip" => format!(
                "  pip install {name}=={}    (in {})",
                p.version,
                String::from_utf8_lossy(&p.location)
            ),
            "dpkg" => format!("  apt-get install {name}={}", p.version),
            _ => format!(
                "  {} install {name}={}    (in {})",
                p.manager,
                p.version,
                String::from_utf8_lossy(&p.location)
            ),
        };
        s.extend(comment(&line).bytes());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_posix_sh() {
        assert_eq!(sh_quote(b"train.py"), b"train.py");
        assert_eq!(sh_quote(b""), b"''");
        assert_eq!(sh_quote(b"a b"), b"'a b'");
        assert_eq!(sh_quote(b"it's"), b"'it'\\''s'");
        assert_eq!(sh_quote(b"$HOME;`x`"), b"'$HOME;`x`'");
        assert_eq!(sh_quote(b"caf\xe9"), b"'caf\xe9'");
    }

    #[test]
    fn quoted_words_survive_sh() {
        let args: [&[u8]; 5] = [b"a b", b"it's", b"$x", b"\\n\n", b"*"];
        let cmd: Vec<Vec<u8>> = std::iter::once(b"printf".to_vec())
            .chain(std::iter::once(b"[%s]".to_vec()))
            .chain(args.iter().map(|a| a.to_vec()))
            .collect();
        let line = sh_command(&cmd);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(std::ffi::OsStr::from_bytes(&line))
            .output()
            .unwrap();
        assert_eq!(out.stdout, b"[a b][it's][$x][\\n\n][*]");
    }
}
