//! A run's processes as a tree, for `roar show`. A process that went through shell wrappers
//! before exec'ing the real program (a pyenv shim: bash, then pyenv's scripts, then python)
//! becomes one row for that program, naming the wrappers and folding the helper processes
//! they started; unfolded, every process is a row.

use std::collections::{HashMap, HashSet};

use dag::ProcessRecord;

const WRAPPERS: &[&[u8]] = &[b"sh", b"bash", b"dash", b"zsh", b"env"];

/// One line of the tree.
pub struct Row {
    /// The image shown (an index into the run's processes).
    pub proc: usize,
    /// The shell wrappers folded into it, in exec order.
    pub wrappers: Vec<usize>,
    /// Processes those wrappers started, folded with them.
    pub folded: usize,
    /// For each level down to this row: whether the process at that level is the last child
    /// of its parent (empty for a root).
    pub last: Vec<bool>,
    /// This pid exec'd again later (shown unfolded).
    pub replaced: bool,
}

fn is_wrapper(p: &ProcessRecord) -> bool {
    let exe = p.exe.rsplit(|b| *b == b'/').next().unwrap_or(&p.exe);
    WRAPPERS.contains(&exe)
}

struct Tree<'r> {
    procs: &'r [ProcessRecord],
    images: HashMap<u32, Vec<usize>>,
    children: HashMap<u32, Vec<u32>>,
    fold: bool,
    seen: HashSet<u32>,
    rows: Vec<Row>,
}

/// The rows of `procs` (in recorded order), depth first.
pub fn rows(procs: &[ProcessRecord], fold: bool) -> Vec<Row> {
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
    let mut t = Tree {
        procs,
        images,
        children,
        fold,
        seen: HashSet::new(),
        rows: Vec::new(),
    };
    for pid in roots {
        t.walk(pid, Vec::new());
    }
    t.rows
}

impl Tree<'_> {
    fn count(&mut self, pid: u32) -> usize {
        if !self.seen.insert(pid) {
            return 0;
        }
        let kids = self.children.get(&pid).cloned().unwrap_or_default();
        1 + kids.into_iter().map(|c| self.count(c)).sum::<usize>()
    }

    fn walk(&mut self, pid: u32, last: Vec<bool>) {
        if !self.seen.insert(pid) {
            return;
        }
        let imgs = self.images[&pid].clone();
        let (&shown, before) = imgs.split_last().expect("a pid has an image");
        let folds =
            self.fold && !before.is_empty() && before.iter().all(|&i| is_wrapper(&self.procs[i]));
        let (proc, wrappers) = if folds {
            (shown, before.to_vec())
        } else {
            (imgs[0], Vec::new())
        };
        let started = self.procs[proc].started_ns;
        let kids = self.children.get(&pid).cloned().unwrap_or_default();
        // Helpers the wrappers started before the real program: folded with them.
        let (helpers, kids): (Vec<u32>, Vec<u32>) = kids
            .into_iter()
            .partition(|c| folds && self.procs[self.images[c][0]].started_ns < started);
        let folded = helpers.into_iter().map(|c| self.count(c)).sum();
        self.rows.push(Row {
            proc,
            wrappers,
            folded,
            last: last.clone(),
            replaced: imgs.len() > 1 && !folds,
        });
        let n = kids.len();
        for (i, c) in kids.into_iter().enumerate() {
            let mut deeper = last.clone();
            deeper.push(i + 1 == n);
            self.walk(c, deeper);
        }
    }
}
