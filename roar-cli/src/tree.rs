//! `roar show`'s process tree. A process that went through shell wrappers before exec'ing
//! the real program (a pyenv shim: bash, then pyenv's scripts, then python) is drawn as that
//! program, with the wrappers named once and their helper processes folded; `--all` draws
//! every image.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use dag::ProcessRecord;

use crate::show::{Style, command_line};

const WRAPPERS: &[&[u8]] = &[b"sh", b"bash", b"dash", b"zsh", b"env"];

fn base(p: &[u8]) -> &[u8] {
    p.rsplit(|b| *b == b'/').next().unwrap_or(p)
}

fn is_wrapper(p: &ProcessRecord) -> bool {
    WRAPPERS.contains(&base(&p.exe))
}

struct Tree<'r> {
    procs: &'r [ProcessRecord],
    images: HashMap<u32, Vec<usize>>,
    children: HashMap<u32, Vec<u32>>,
    all: bool,
}

impl<'r> Tree<'r> {
    fn new(procs: &'r [ProcessRecord], all: bool) -> (Tree<'r>, Vec<u32>) {
        let mut images: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut order = Vec::new();
        for (i, p) in procs.iter().enumerate() {
            let e = images.entry(p.pid).or_default();
            if e.is_empty() {
                order.push(p.pid);
            }
            e.push(i);
        }
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        let mut roots = Vec::new();
        for &pid in &order {
            let ppid = procs[images[&pid][0]].ppid;
            if ppid != pid && images.contains_key(&ppid) {
                children.entry(ppid).or_default().push(pid);
            } else {
                roots.push(pid);
            }
        }
        let tree = Tree {
            procs,
            images,
            children,
            all,
        };
        (tree, roots)
    }

    /// The image shown for `pid`, the wrappers folded into it, and when it started.
    fn shown(&self, pid: u32) -> (&'r ProcessRecord, Vec<&'r ProcessRecord>) {
        let imgs: Vec<&ProcessRecord> = self.images[&pid].iter().map(|&i| &self.procs[i]).collect();
        let (last, before) = imgs.split_last().expect("a pid has an image");
        if !self.all && !before.is_empty() && before.iter().all(|p| is_wrapper(p)) {
            (last, before.to_vec())
        } else {
            (imgs[0], Vec::new())
        }
    }

    /// Processes below `pid`, itself included.
    fn count(&self, pid: u32, seen: &mut HashSet<u32>) -> usize {
        if !seen.insert(pid) {
            return 0;
        }
        let kids = self.children.get(&pid).map(Vec::as_slice).unwrap_or(&[]);
        1 + kids.iter().map(|&c| self.count(c, seen)).sum::<usize>()
    }

    fn draw(
        &self,
        out: &mut dyn Write,
        st: &Style,
        pid: u32,
        prefix: &str,
        seen: &mut HashSet<u32>,
    ) -> std::io::Result<usize> {
        if !seen.insert(pid) {
            return Ok(0);
        }
        let (p, wrappers) = self.shown(pid);
        let kids = self.children.get(&pid).map(Vec::as_slice).unwrap_or(&[]);
        // Helpers the wrappers started before the real program: folded with them.
        let (helpers, kids): (Vec<u32>, Vec<u32>) = kids.iter().partition(|&&c| {
            !wrappers.is_empty() && self.procs[self.images[&c][0]].started_ns < p.started_ns
        });
        let folded: usize = helpers.iter().map(|&c| self.count(c, seen)).sum();
        let end = match (p.exit_code, p.signal) {
            (_, Some(s)) => format!("signal {s}"),
            (Some(c), _) => format!("exit {c}"),
            _ if self.images[&pid].len() > 1 && self.all => "exec".into(),
            _ => "exit ?".into(),
        };
        let mut note = String::new();
        if !wrappers.is_empty() {
            let names: Vec<String> = wrappers
                .iter()
                .map(|w| command_line(&w.argv[..w.argv.len().min(2)]))
                .collect();
            note = format!("  (via {}", names.join(" → "));
            if folded > 0 {
                note.push_str(&format!(
                    "; {folded} helper process{} folded",
                    if folded == 1 { "" } else { "es" }
                ));
            }
            note.push(')');
        }
        writeln!(
            out,
            "{:>7} {:<8} {}{}",
            p.pid,
            end,
            command_line(&p.argv),
            st.dim(&note)
        )?;
        let mut n = folded;
        for (i, &c) in kids.iter().enumerate() {
            let last = i + 1 == kids.len();
            write!(out, "    {prefix}{}", if last { "└─" } else { "├─" })?;
            let deeper = format!("{prefix}{}", if last { "  " } else { "│ " });
            n += self.draw(out, st, c, &deeper, seen)?;
        }
        Ok(n)
    }
}

/// Draws the processes as a tree; returns how many were folded into their wrappers.
pub fn draw(
    out: &mut dyn Write,
    procs: &[ProcessRecord],
    all: bool,
    st: &Style,
) -> std::io::Result<usize> {
    let (tree, roots) = Tree::new(procs, all);
    let mut seen = HashSet::new();
    let mut folded = 0;
    for pid in roots {
        write!(out, "  ")?;
        folded += tree.draw(out, st, pid, "", &mut seen)?;
    }
    Ok(folded)
}
