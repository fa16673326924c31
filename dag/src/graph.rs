//! The provenance graph: runs and artifacts (content versions) as nodes, `wrote` edges from a
//! run to what it wrote and `read` edges from an artifact to the runs that read it.
//!
//! Nothing here loads the store whole. A question walks outwards from where it starts with
//! indexed queries (a run's inputs by its primary key, an artifact's producers by the
//! `run_outputs(artifact_id)` index) and builds a petgraph of only the part it touched.
//!
//! A run is downstream of another only through content: a run that read a path is linked to the
//! newest earlier run that wrote *the bytes it read*, never merely to a run that wrote a file of
//! the same name. Earlier means a lower `(order_key, id)`: within one store that is id order;
//! runs pulled from other stores keep their place in time (start time) although their local
//! ids are newer. Every link goes from a lower key to a higher one, so the graph is acyclic by
//! construction.

use std::collections::{HashMap, VecDeque};

use petgraph::Direction;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use rusqlite::{Connection, OptionalExtension, params};

use crate::model::{Run, RunId};
use crate::{Store, StoreError};

/// An `artifacts` row id.
pub type ArtifactId = i64;

/// One version of a file's content, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// `None` when the content is unknown (the file changed before roar could hash it).
    pub artifact: Option<ArtifactId>,
    /// `"blake3:<64 hex>"`.
    pub hash: Option<String>,
    pub size: Option<u64>,
}

/// A run's recorded read or write of one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    pub run_id: RunId,
    pub path: Vec<u8>,
    pub version: Version,
}

/// Whether a [`Link`] was a write or a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    Output,
    Input,
}

/// A node of the provenance graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    Run(RunId),
    /// A content version, at the path it was read (or, for the root, asked about) at.
    /// `producer` is the run that wrote it, `None` for a source no recorded run produced.
    Artifact {
        version: Version,
        path: Vec<u8>,
        producer: Option<RunId>,
    },
}

/// An edge, with the path the file had when it was written or read.
#[derive(Clone, Debug, PartialEq)]
pub enum Edge {
    /// run -> artifact
    Wrote(Vec<u8>),
    /// artifact -> run
    Read(Vec<u8>),
}

/// Where a lineage walk starts.
#[derive(Clone, Debug)]
pub enum Start {
    /// A content version seen at `path`.
    Artifact { version: Version, path: Vec<u8> },
    /// A run: its inputs and everything upstream of them.
    Run(RunId),
}

/// Everything upstream of one artifact or run.
#[derive(Debug)]
pub struct Lineage {
    pub graph: DiGraph<Node, Edge>,
    pub root: NodeIndex,
    /// `(order_key, id)` of every run in the graph.
    order: HashMap<RunId, (i64, RunId)>,
}

impl Lineage {
    /// Run ids, each after every run that produced something it read.
    pub fn runs_in_order(&self) -> Vec<RunId> {
        // Producers always have a lower (order_key, id) than the runs that read their output.
        let mut runs: Vec<(i64, RunId)> = self
            .graph
            .node_weights()
            .filter_map(|n| match n {
                Node::Run(id) => Some(self.order.get(id).copied().unwrap_or((i64::MIN, *id))),
                Node::Artifact { .. } => None,
            })
            .collect();
        runs.sort_unstable();
        runs.into_iter().map(|(_, id)| id).collect()
    }

    /// The run node that wrote an artifact node, with the path it wrote it at.
    pub fn producer(&self, artifact: NodeIndex) -> Option<(NodeIndex, &[u8])> {
        self.graph
            .edges_directed(artifact, Direction::Incoming)
            .find_map(|e| match e.weight() {
                Edge::Wrote(path) => Some((e.source(), path.as_slice())),
                Edge::Read(_) => None,
            })
    }

    /// The artifact nodes a run node read, with the path each was read at, sorted by path.
    pub fn inputs(&self, run: NodeIndex) -> Vec<(NodeIndex, &[u8])> {
        let mut v: Vec<(NodeIndex, &[u8])> = self
            .graph
            .edges_directed(run, Direction::Incoming)
            .filter_map(|e| match e.weight() {
                Edge::Read(path) => Some((e.source(), path.as_slice())),
                Edge::Wrote(_) => None,
            })
            .collect();
        v.sort_by(|a, b| a.1.cmp(b.1));
        v
    }

    /// Artifact nodes that no recorded run produced, sorted by path.
    pub fn sources(&self) -> Vec<NodeIndex> {
        let mut v: Vec<NodeIndex> = self
            .graph
            .node_indices()
            .filter(|&i| matches!(self.graph[i], Node::Artifact { producer: None, .. }))
            .collect();
        v.sort_by(|a, b| node_path(&self.graph[*a]).cmp(node_path(&self.graph[*b])));
        v
    }

    /// The node of a run, if the run is part of this lineage.
    pub fn run_node(&self, id: RunId) -> Option<NodeIndex> {
        self.graph
            .node_indices()
            .find(|&i| self.graph[i] == Node::Run(id))
    }
}

fn node_path(n: &Node) -> &[u8] {
    match n {
        Node::Artifact { path, .. } => path,
        Node::Run(_) => &[],
    }
}

/// An artifact as `roar dag` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct ArtifactInfo {
    pub id: ArtifactId,
    pub hash: String,
    pub size: Option<u64>,
    /// Every path this content was recorded at (not filtered), sorted.
    pub paths: Vec<Vec<u8>>,
}

const PAGE: i64 = 512;

impl Store {
    /// The artifact holding this exact content, if any run ever recorded it.
    pub fn version_of_hash(&self, hash: &str) -> Result<Option<Version>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT id, size FROM artifacts WHERE hash = ?1")?
            .query_row([hash], |r| {
                Ok(Version {
                    artifact: Some(r.get(0)?),
                    hash: Some(hash.to_string()),
                    size: r.get::<_, Option<i64>>(1)?.map(|s| s as u64),
                })
            })
            .optional()?)
    }

    /// The newest recorded write of `path`, or failing that its newest recorded read (a
    /// hidden read last: those are not in the path index, so finding one is a scan).
    pub fn latest_at_path(&self, path: &[u8]) -> Result<Option<(Link, LinkKind)>, StoreError> {
        let tx = self.read_tx()?;
        for (table, kind, which) in [
            ("run_outputs", LinkKind::Output, ""),
            ("run_inputs", LinkKind::Input, "AND l.filtered = 0"),
            ("run_inputs", LinkKind::Input, "AND l.filtered <> 0"),
        ] {
            let found = tx
                .prepare_cached(&format!(
                    "SELECT l.run_id, l.artifact_id, a.hash, COALESCE(l.size, a.size) \
                     FROM {table} AS l LEFT JOIN artifacts AS a ON a.id = l.artifact_id \
                     JOIN runs AS r ON r.id = l.run_id \
                     WHERE l.path = ?1 {which} ORDER BY r.order_key DESC, r.id DESC LIMIT 1"
                ))?
                .query_row([path], |r| {
                    Ok(Link {
                        run_id: r.get(0)?,
                        path: path.to_vec(),
                        version: version_from(r, 1)?,
                    })
                })
                .optional()?;
            if let Some(link) = found {
                return Ok(Some((link, kind)));
            }
        }
        Ok(None)
    }

    /// Walks upstream from `start` down to sources that no run produced.
    pub fn lineage(&self, start: &Start) -> Result<Lineage, StoreError> {
        let tx = self.read_tx()?;
        let mut w = Walk {
            conn: &tx,
            graph: DiGraph::new(),
            runs: HashMap::new(),
            order: HashMap::new(),
            artifacts: HashMap::new(),
            queue: VecDeque::new(),
        };
        let root = match start {
            Start::Run(id) => {
                let exists = tx
                    .prepare_cached("SELECT 1 FROM runs WHERE id = ?1")?
                    .query_row([id], |_| Ok(()))
                    .optional()?;
                if exists.is_none() {
                    return Err(StoreError::NoSuchRun(id.to_string()));
                }
                w.run_node(*id)?
            }
            Start::Artifact { version, path } => w.artifact_node(version, path, None)?,
        };
        while let Some(run) = w.queue.pop_front() {
            let inputs: Vec<Link> = tx
                .prepare_cached(
                    "SELECT l.path, l.artifact_id, a.hash, COALESCE(l.size, a.size) \
                     FROM run_inputs AS l LEFT JOIN artifacts AS a ON a.id = l.artifact_id \
                     WHERE l.run_id = ?1 AND l.filtered = 0 ORDER BY l.idx",
                )?
                .query_map([run], |r| {
                    Ok(Link {
                        run_id: run,
                        path: r.get(0)?,
                        version: version_from(r, 1)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            let run_node = w.runs[&run];
            for input in inputs {
                let a = w.artifact_node(&input.version, &input.path, Some(run))?;
                w.graph.add_edge(a, run_node, Edge::Read(input.path));
            }
        }
        Ok(Lineage {
            graph: w.graph,
            root,
            order: w.order,
        })
    }

    /// The newest writer of every path (filtered files excluded), with what it wrote.
    pub fn heads(&self) -> Result<Vec<Link>, StoreError> {
        let tx = self.read_tx()?;
        let v = tx
            .prepare_cached(
                "SELECT h.path, h.run_id, h.artifact_id, a.hash, a.size \
                 FROM path_heads AS h LEFT JOIN artifacts AS a ON a.id = h.artifact_id",
            )?
            .query_map([], |r| {
                Ok(Link {
                    path: r.get(0)?,
                    run_id: r.get(1)?,
                    version: version_from(r, 2)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(v)
    }

    /// The (not filtered) inputs of the given runs.
    pub fn inputs_of(&self, runs: &[RunId]) -> Result<Vec<Link>, StoreError> {
        let tx = self.read_tx()?;
        let mut stmt = tx.prepare_cached(
            "SELECT l.path, l.artifact_id, a.hash, COALESCE(l.size, a.size) \
             FROM run_inputs AS l LEFT JOIN artifacts AS a ON a.id = l.artifact_id \
             WHERE l.run_id = ?1 AND l.filtered = 0 ORDER BY l.idx",
        )?;
        let mut out = Vec::new();
        for &run in runs {
            let rows = stmt.query_map([run], |r| {
                Ok(Link {
                    run_id: run,
                    path: r.get(0)?,
                    version: version_from(r, 1)?,
                })
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// How many runs the store holds.
    pub fn run_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM runs")?
            .query_row([], |r| r.get(0))?;
        Ok(n as u64)
    }

    /// Calls `f` with every run in full, oldest first, reading a page of runs at a time.
    pub fn for_each_run<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(Run) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut after: RunId = 0;
        loop {
            let ids: Vec<RunId> = self
                .conn
                .prepare_cached("SELECT id FROM runs WHERE id > ?1 ORDER BY id LIMIT ?2")
                .and_then(|mut s| {
                    s.query_map(params![after, PAGE], |r| r.get(0))?
                        .collect::<Result<_, _>>()
                })
                .map_err(StoreError::from)?;
            let Some(&last) = ids.last() else {
                return Ok(());
            };
            for id in ids {
                f(self.run(id)?)?;
            }
            after = last;
        }
    }

    /// Calls `f` with every artifact that some run read or wrote at a path that is not
    /// filtered, in id order, a page at a time.
    pub fn for_each_artifact<E: From<StoreError>>(
        &self,
        mut f: impl FnMut(ArtifactInfo) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut after: ArtifactId = 0;
        loop {
            let page: Vec<ArtifactInfo> = self.artifact_page(after).map_err(E::from)?;
            let Some(last) = page.last().map(|a| a.id) else {
                return Ok(());
            };
            for a in page {
                if !a.paths.is_empty() {
                    f(a)?;
                }
            }
            after = last;
        }
    }

    fn artifact_page(&self, after: ArtifactId) -> Result<Vec<ArtifactInfo>, StoreError> {
        let tx = self.read_tx()?;
        let mut page: Vec<ArtifactInfo> = tx
            .prepare_cached(
                "SELECT id, hash, size FROM artifacts WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![after, PAGE], |r| {
                Ok(ArtifactInfo {
                    id: r.get(0)?,
                    hash: r.get(1)?,
                    size: r.get::<_, Option<i64>>(2)?.map(|s| s as u64),
                    paths: Vec::new(),
                })
            })?
            .collect::<Result<_, _>>()?;
        let (Some(first), Some(last)) = (page.first().map(|a| a.id), page.last().map(|a| a.id))
        else {
            return Ok(page);
        };
        // Two index range scans per page rather than two lookups per artifact.
        let rows = tx
            .prepare_cached(
                "SELECT artifact_id, path FROM run_outputs \
                 WHERE artifact_id BETWEEN ?1 AND ?2 AND filtered = 0 \
                 UNION SELECT artifact_id, path FROM run_inputs \
                 WHERE artifact_id BETWEEN ?1 AND ?2 AND filtered = 0 \
                 ORDER BY 1, 2",
            )?
            .query_map(params![first, last], |r| {
                Ok((r.get::<_, ArtifactId>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut i = 0;
        for (id, path) in rows {
            while page[i].id < id {
                i += 1;
            }
            if page[i].id == id {
                page[i].paths.push(path);
            }
        }
        Ok(page)
    }
}

fn version_from(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Version> {
    Ok(Version {
        artifact: r.get(first)?,
        hash: r.get(first + 1)?,
        size: r.get::<_, Option<i64>>(first + 2)?.map(|s| s as u64),
    })
}

/// Key of an artifact node: the content, who produced it, and for unknown content the path
/// (two unknown files are not the same thing).
type ArtifactKey = (Option<ArtifactId>, Option<RunId>, Vec<u8>);

struct Walk<'c> {
    conn: &'c Connection,
    graph: DiGraph<Node, Edge>,
    runs: HashMap<RunId, NodeIndex>,
    order: HashMap<RunId, (i64, RunId)>,
    artifacts: HashMap<ArtifactKey, NodeIndex>,
    queue: VecDeque<RunId>,
}

impl Walk<'_> {
    fn run_node(&mut self, id: RunId) -> Result<NodeIndex, StoreError> {
        if let Some(&n) = self.runs.get(&id) {
            return Ok(n);
        }
        let key: i64 = self
            .conn
            .prepare_cached("SELECT order_key FROM runs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?;
        let n = self.graph.add_node(Node::Run(id));
        self.runs.insert(id, n);
        self.order.insert(id, (key, id));
        self.queue.push_back(id);
        Ok(n)
    }

    /// The node for `version` as read by run `reader` (or asked about, with `None`), linked
    /// to the newest earlier run (by `(order_key, id)`) that wrote exactly that content.
    fn artifact_node(
        &mut self,
        version: &Version,
        path: &[u8],
        reader: Option<RunId>,
    ) -> Result<NodeIndex, StoreError> {
        let (before_key, before_id) = match reader {
            Some(r) => self.order[&r],
            None => (i64::MAX, RunId::MAX),
        };
        let producer: Option<(RunId, Vec<u8>)> = match version.artifact {
            Some(a) => self
                .conn
                .prepare_cached(
                    "SELECT o.run_id, o.path FROM run_outputs AS o JOIN runs AS r ON r.id = o.run_id \
                     WHERE o.artifact_id = ?1 AND o.filtered = 0 AND (r.order_key, r.id) < (?2, ?3) \
                     ORDER BY r.order_key DESC, r.id DESC LIMIT 1",
                )?
                .query_row(params![a, before_key, before_id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?,
            None => None,
        };
        let key: ArtifactKey = (
            version.artifact,
            producer.as_ref().map(|p| p.0),
            if version.artifact.is_none() {
                path.to_vec()
            } else {
                Vec::new()
            },
        );
        if let Some(&n) = self.artifacts.get(&key) {
            return Ok(n);
        }
        let n = self.graph.add_node(Node::Artifact {
            version: version.clone(),
            path: path.to_vec(),
            producer: producer.as_ref().map(|p| p.0),
        });
        self.artifacts.insert(key, n);
        if let Some((run, wrote_at)) = producer {
            let r = self.run_node(run)?;
            self.graph.add_edge(r, n, Edge::Wrote(wrote_at));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
