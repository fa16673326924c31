//! The environment a run used: the packages whose files it read or executed, and the host.
//!
//! Kept beside the run rather than in [`Run`](crate::Run): it is written once, just before the
//! run is finished, and read only by the commands that ask about it.

use rusqlite::{OptionalExtension, params};

use crate::model::RunId;
use crate::{Store, StoreError};

/// One installed package a run used.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Package {
    /// `pip`, `dpkg` or `conda`.
    pub manager: String,
    pub name: String,
    pub version: String,
    /// Where it is installed (a site-packages directory, a conda prefix); empty for dpkg.
    pub location: Vec<u8>,
}

/// The machine a run ran on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Host {
    pub hostname: Option<String>,
    /// `uname -r` and `uname -v`.
    pub kernel: Option<String>,
    /// `PRETTY_NAME` from os-release.
    pub os: Option<String>,
    pub cpu_model: Option<String>,
    pub cpus: Option<u32>,
    pub memory_bytes: Option<u64>,
    /// One line per GPU (`nvidia-smi`), empty when there is none or no way to tell.
    pub gpus: Vec<String>,
}

/// The container a run ran in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    /// `docker` or `podman`.
    pub runtime: String,
    /// The image as it was named (`debian:bookworm`).
    pub image: Option<String>,
    /// What that name was when the run ran (`sha256:...`).
    pub image_id: Option<String>,
    /// The container's full id.
    pub id: Option<String>,
}

/// What a run used, beyond its inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Environment {
    /// Sorted by manager, then name.
    pub packages: Vec<Package>,
    pub host: Option<Host>,
    /// None on the host.
    pub container: Option<Container>,
}

impl Store {
    /// The distinct image ids the containers of an OpenJD session's runs had, other than
    /// `except`'s run, oldest first.
    pub fn session_image_ids(
        &self,
        session: &str,
        except: RunId,
    ) -> Result<Vec<String>, StoreError> {
        let tx = self.read_tx()?;
        let mut stmt = tx.prepare_cached(
            "SELECT c.image_id FROM run_container c JOIN run_openjd o ON o.run_id = c.run_id \
             WHERE o.session_id = ?1 AND c.run_id != ?2 AND c.image_id IS NOT NULL \
             GROUP BY c.image_id ORDER BY MIN(c.run_id)",
        )?;
        let ids = stmt
            .query_map(params![session, except], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Records (or replaces) a run's environment. Pulled runs are read-only.
    pub fn set_environment(&self, id: RunId, env: &Environment) -> Result<(), StoreError> {
        let tx = self.write_tx()?;
        crate::store::require_own(&tx, id)?;
        write_environment(&tx, id, env)?;
        tx.commit()?;
        Ok(())
    }

    /// A run's environment; empty when none was recorded.
    pub fn environment(&self, id: RunId) -> Result<Environment, StoreError> {
        let tx = self.read_tx()?;
        let packages = packages_of(&tx, id)?;
        let host = tx
            .prepare_cached(
                "SELECT hostname, kernel, os, cpu_model, cpus, memory_bytes, gpus \
                 FROM run_host WHERE run_id = ?1",
            )?
            .query_row([id], |r| {
                let gpus: String = r.get(6)?;
                Ok(Host {
                    hostname: r.get(0)?,
                    kernel: r.get(1)?,
                    os: r.get(2)?,
                    cpu_model: r.get(3)?,
                    cpus: r.get(4)?,
                    memory_bytes: r.get::<_, Option<i64>>(5)?.map(|m| m as u64),
                    gpus: gpus.lines().map(str::to_owned).collect(),
                })
            })
            .optional()?;
        let container = tx
            .prepare_cached(
                "SELECT runtime, image, image_id, container_id FROM run_container \
                 WHERE run_id = ?1",
            )?
            .query_row([id], |r| {
                Ok(Container {
                    runtime: r.get(0)?,
                    image: r.get(1)?,
                    image_id: r.get(2)?,
                    id: r.get(3)?,
                })
            })
            .optional()?;
        Ok(Environment {
            packages,
            host,
            container,
        })
    }

    /// The packages each of `runs` used.
    pub fn packages_of(&self, runs: &[RunId]) -> Result<Vec<(RunId, Package)>, StoreError> {
        let tx = self.read_tx()?;
        let mut out = Vec::new();
        for &id in runs {
            out.extend(packages_of(&tx, id)?.into_iter().map(|p| (id, p)));
        }
        Ok(out)
    }
}

/// Replaces run `id`'s environment rows in the caller's transaction.
pub(crate) fn write_environment(
    tx: &rusqlite::Connection,
    id: RunId,
    env: &Environment,
) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM run_packages WHERE run_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM run_host WHERE run_id = ?1")?
        .execute([id])?;
    tx.prepare_cached("DELETE FROM run_container WHERE run_id = ?1")?
        .execute([id])?;
    if let Some(c) = &env.container {
        tx.prepare_cached(
            "INSERT INTO run_container (run_id, runtime, image, image_id, container_id) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![id, c.runtime, c.image, c.image_id, c.id])?;
    }
    let mut stmt = tx.prepare_cached(
        "INSERT INTO run_packages (run_id, idx, manager, name, version, location) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (i, p) in env.packages.iter().enumerate() {
        stmt.execute(params![
            id, i as i64, p.manager, p.name, p.version, p.location
        ])?;
    }
    if let Some(h) = &env.host {
        tx.prepare_cached(
            "INSERT INTO run_host (run_id, hostname, kernel, os, cpu_model, cpus, \
             memory_bytes, gpus) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            id,
            h.hostname,
            h.kernel,
            h.os,
            h.cpu_model,
            h.cpus,
            h.memory_bytes.map(|m| m as i64),
            h.gpus.join("\n"),
        ])?;
    }
    Ok(())
}

fn packages_of(conn: &rusqlite::Connection, id: RunId) -> Result<Vec<Package>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT manager, name, version, location FROM run_packages \
             WHERE run_id = ?1 ORDER BY idx",
        )?
        .query_map([id], |r| {
            Ok(Package {
                manager: r.get(0)?,
                name: r.get(1)?,
                version: r.get(2)?,
                location: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NewRun;

    #[test]
    fn environment_round_trips_and_replaces() {
        let store = Store::open_in_memory().unwrap();
        let id = store
            .begin_run(&NewRun {
                command: vec![b"true".to_vec()],
                cwd: b"/".to_vec(),
                backend: "preload".into(),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(store.environment(id).unwrap(), Environment::default());
        let env = Environment {
            packages: vec![Package {
                manager: "pip".into(),
                name: "six".into(),
                version: "1.17.0".into(),
                location: b"/venv/lib/python3.11/site-packages".to_vec(),
            }],
            host: Some(Host {
                hostname: Some("h".into()),
                cpus: Some(2),
                memory_bytes: Some(1 << 33),
                gpus: vec!["A100".into(), "A100".into()],
                ..Default::default()
            }),
            container: Some(Container {
                runtime: "docker".into(),
                image: Some("debian:bookworm".into()),
                image_id: Some("sha256:1".into()),
                id: None,
            }),
        };
        store.set_environment(id, &env).unwrap();
        store.set_environment(id, &env).unwrap();
        assert_eq!(store.environment(id).unwrap(), env);
        assert_eq!(store.packages_of(&[id]).unwrap().len(), 1);
        // Replacing it replaces the container too.
        let moved = Environment {
            container: None,
            ..env
        };
        store.set_environment(id, &moved).unwrap();
        assert_eq!(store.environment(id).unwrap(), moved);
    }
}
