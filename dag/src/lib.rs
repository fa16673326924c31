//! roar's provenance store.
//!
//! A [`Store`] is one SQLite database (normally `.roar/roar.db`) that records every `roar run`:
//! the command, its environment, the processes it started, and the files it read and wrote,
//! each linked to a content-addressed artifact. Runs are written in two steps —
//! [`Store::begin_run`] when the command starts and [`Store::finish_run`] when it ends — so a
//! roar that is killed leaves an honest, visibly unfinished record rather than nothing.
//!
//! The schema lives in ordered `migrations/*.sql` files embedded in the binary. The database is
//! marked with a fixed `application_id`; `roar_migrations` lists the migration numbers applied and
//! `user_version` is the highest of them; a file that is not SQLite, or is somebody else's SQLite database, is reported and
//! never modified.
//!
//! Every store has a random UUID and every run a UUIDv7, so runs can move between stores (the
//! team store pushes and pulls them; see [`Store::pending_push`] and [`Store::insert_pulled`]).
//! A pulled run keeps its identity and origin, gets a local id, and is read-only here. Since
//! local ids then no longer follow time across stores, lineage and path heads order runs by
//! their `order_key` (start time, kept increasing within a store), then id.
//!
//! Paths, argv elements and working directories are raw bytes (`Vec<u8>`) throughout, so that
//! names which are not UTF-8 round-trip exactly. This crate never prints; it only returns data
//! and [`StoreError`]s.
//!
//! Questions about the recorded history — lineage, staleness, the whole graph — are answered by
//! walking the store with indexed queries and building a petgraph of only what was touched
//! (`graph.rs`, [`status`]); nothing loads every run.
#![forbid(unsafe_code)]

mod environment;
mod error;
mod graph;
mod model;
mod paths;
pub mod status;
mod store;

pub use environment::{Container, Environment, Host, Package};
pub use error::StoreError;
pub use graph::{ArtifactId, ArtifactInfo, Edge, Lineage, Link, LinkKind, Node, Start, Version};
pub use model::{
    FileKey, FileRecord, GitInfo, Inserted, NewRun, OpenJdContext, Origin, Pending, ProcessRecord,
    RemoteMark, Run, RunId, RunResult,
};
pub use paths::absolute_normal;
pub use petgraph::graph::NodeIndex;
pub use store::Store;
