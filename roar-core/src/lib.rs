//! roar's recording engine, for any program that wants to record a run (the
//! `roar` CLI is one): find or create the store ([`location`]), choose a
//! backend and say why ([`backend`]), start the command with its exit and
//! signals passed on ([`spawn`]), turn trace streams into processes and file
//! accesses ([`analysis`]), decide inputs and outputs and hash them
//! ([`collect`]), read git context ([`git`]), finish runs whose roar died
//! ([`recover`]) and import standalone preload traces ([`ingest`]).
//! [`record`] composes these into one run, step by named step.
//!
//! Nothing here prints: what a user should be told comes back through an
//! [`Observer`] or in the returned values, and the CLI words it.

pub mod analysis;
pub mod backend;
pub mod collect;
pub mod config;
pub mod container;
pub mod diff;
pub mod elf;
pub mod env;
pub mod error;
pub mod filter;
pub mod git;
pub mod hashing;
pub mod host;
pub mod ingest;
pub mod k8s;
pub mod location;
pub mod openjd;
pub mod openlineage;
pub mod packages;
pub mod paths;
pub mod prehash;
pub mod proctree;
pub mod record;
pub mod recover;
pub mod remote_exec;
pub mod resolve;
pub mod spawn;
pub mod staleness;
pub mod target;
pub mod time;
pub mod timing;
pub mod words;

pub use error::{Error, Result};

/// A hash map for roar's own bookkeeping of a run's paths and file
/// identities: hashed with foldhash, seeded per map, instead of SipHash,
/// which was a twentieth of the time spent deciding a copied tree's
/// 14,600 files.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
/// The set kin of [`FastMap`].
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// Told what a user of `roar run` should hear while it runs (auto's choice
/// and its reason, a new store, processes the command left running). The
/// CLI prints each line on stderr after `roar: `; a library user may log or
/// drop them.
pub trait Observer {
    fn note(&mut self, line: &str);

    /// How far a long piece of work has got: `done` of `total` units of `what` (the CLI
    /// draws a bar on a terminal). Called often; the default ignores it.
    fn progress(&mut self, what: &'static str, done: u64, total: u64) {
        let _ = (what, done, total);
    }
}

/// An observer that drops everything.
pub struct Quiet;

impl Observer for Quiet {
    fn note(&mut self, _: &str) {}
}
