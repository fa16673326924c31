//! Staleness: which runs read content that is no longer what the project holds.
//!
//! Only the newest writer of each path (its *head*, see [`Store::heads`](crate::Store::heads))
//! counts: an older run of the same step is history, not something to redo. A head run is stale
//! when a file it read now holds other content or is gone, and everything that read what a
//! stale run wrote is stale too. The caller says what each path holds now; this module never
//! touches the file system.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::graph::Link;
use crate::model::RunId;

/// What a path holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Now {
    Missing,
    Content(String),
    /// Not a regular file, or unreadable: nothing can be concluded.
    Unknown,
}

/// Why a run is stale.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// A file it read now holds other content (a source or code edited, or an output edited by
    /// hand).
    Modified { path: Vec<u8> },
    /// A file it read is gone.
    Deleted { path: Vec<u8> },
    /// A file it read was written again, differently, by a newer run.
    Reproduced { path: Vec<u8>, by: RunId },
    /// It read what a stale run wrote.
    Upstream { path: Vec<u8>, run: RunId },
    /// A package it used is now at another version (`now`), or gone (`None`).
    Package {
        manager: String,
        name: String,
        was: String,
        now: Option<String>,
    },
}

/// An output whose file no longer holds what its newest writer recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedOutput {
    pub path: Vec<u8>,
    pub run: RunId,
    pub recorded: String,
    /// `None`: deleted.
    pub now: Option<String>,
}

/// The verdict for every head run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Every head run in id order, with its reasons (empty: up to date).
    pub runs: Vec<(RunId, Vec<Reason>)>,
    pub outputs: Vec<ChangedOutput>,
}

impl Report {
    pub fn stale(&self) -> impl Iterator<Item = &(RunId, Vec<Reason>)> {
        self.runs.iter().filter(|(_, r)| !r.is_empty())
    }
}

/// Decides staleness from the heads, the inputs of the head runs, and what each path holds now
/// (`now` must answer for every path in `heads` and `inputs`; a path it does not know is
/// treated as [`Now::Unknown`]).
pub fn evaluate(heads: &[Link], inputs: &[Link], now: &HashMap<Vec<u8>, Now>) -> Report {
    evaluate_with(heads, inputs, now, Vec::new())
}

/// [`evaluate`], with more reasons for head runs found elsewhere (packages that changed
/// version); they make the runs downstream stale too. Reasons for runs that are not heads are
/// ignored.
pub fn evaluate_with(
    heads: &[Link],
    inputs: &[Link],
    now: &HashMap<Vec<u8>, Now>,
    extra: Vec<(RunId, Reason)>,
) -> Report {
    let head_of: HashMap<&[u8], &Link> = heads.iter().map(|h| (h.path.as_slice(), h)).collect();
    let mut reasons: BTreeMap<RunId, Vec<Reason>> =
        heads.iter().map(|h| (h.run_id, vec![])).collect();
    // run -> (reader, path) for each head output a head run read exactly as written.
    let mut readers: HashMap<RunId, Vec<(RunId, &[u8])>> = HashMap::new();

    for input in inputs {
        let Some(read) = input.version.hash.as_deref() else {
            continue;
        };
        let reason = match now.get(&input.path).unwrap_or(&Now::Unknown) {
            Now::Unknown => None,
            Now::Missing => Some(Reason::Deleted {
                path: input.path.clone(),
            }),
            Now::Content(h) if h == read => None,
            // The run rewrote what it read (an in-place update): what is there now is its own
            // output, which is not a reason to redo it.
            Now::Content(h)
                if head_of.get(input.path.as_slice()).is_some_and(|head| {
                    head.run_id == input.run_id && head.version.hash.as_deref() == Some(h.as_str())
                }) =>
            {
                None
            }
            Now::Content(h) => Some(match head_of.get(input.path.as_slice()) {
                Some(head)
                    if head.run_id != input.run_id
                        && head.version.hash.as_deref() == Some(h.as_str()) =>
                {
                    Reason::Reproduced {
                        path: input.path.clone(),
                        by: head.run_id,
                    }
                }
                _ => Reason::Modified {
                    path: input.path.clone(),
                },
            }),
        };
        if let Some(r) = reason {
            reasons.entry(input.run_id).or_default().push(r);
        }
        if let Some(head) = head_of.get(input.path.as_slice())
            && head.run_id != input.run_id
            && head.version.hash.as_deref() == Some(read)
        {
            readers
                .entry(head.run_id)
                .or_default()
                .push((input.run_id, input.path.as_slice()));
        }
    }

    for (run, reason) in extra {
        if let Some(list) = reasons.get_mut(&run) {
            list.push(reason);
        }
    }
    let mut queue: VecDeque<RunId> = reasons
        .iter()
        .filter(|(_, r)| !r.is_empty())
        .map(|(id, _)| *id)
        .collect();
    while let Some(stale) = queue.pop_front() {
        for &(reader, path) in readers.get(&stale).map(Vec::as_slice).unwrap_or(&[]) {
            let list = reasons.entry(reader).or_default();
            let newly = list.is_empty();
            let reason = Reason::Upstream {
                path: path.to_vec(),
                run: stale,
            };
            if !list.contains(&reason) {
                list.push(reason);
            }
            if newly {
                queue.push_back(reader);
            }
        }
    }

    let mut outputs: Vec<ChangedOutput> = heads
        .iter()
        .filter_map(|h| {
            let recorded = h.version.hash.as_deref()?;
            let current = match now.get(&h.path).unwrap_or(&Now::Unknown) {
                Now::Unknown => return None,
                Now::Missing => None,
                Now::Content(c) if c == recorded => return None,
                Now::Content(c) => Some(c.clone()),
            };
            Some(ChangedOutput {
                path: h.path.clone(),
                run: h.run_id,
                recorded: recorded.to_string(),
                now: current,
            })
        })
        .collect();
    outputs.sort_by(|a, b| a.path.cmp(&b.path));
    Report {
        runs: reasons.into_iter().collect(),
        outputs,
    }
}
