//! `.roar/config.toml`: the project's filter, environment allow-list and
//! team store.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result, io};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default)]
    pub env: EnvConfig,
    #[serde(default)]
    pub remote: RemoteConfig,
    #[serde(default)]
    pub openlineage: OpenLineageConfig,
    #[serde(default)]
    pub ebpf: EbpfConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EbpfConfig {
    /// The first eBPF run pins the programs in bpffs and leaves them
    /// attached for later runs (`roar ebpf unload` removes them); also
    /// `ROAR_EBPF_PERSIST=1`.
    #[serde(default)]
    pub persist: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenLineageConfig {
    /// Where `roar run` and `roar ingest` POST each run's events (an http:// URL, e.g.
    /// Marquez's `http://host:5000/api/v1/lineage`).
    pub url: Option<String>,
    /// The job namespace (default: the project directory's name).
    pub namespace: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// The team store, a `postgresql://` URL (a password belongs in
    /// PGPASSWORD or ~/.pgpass, not here).
    pub url: Option<String>,
    /// When runs go there without `roar push`.
    #[serde(default)]
    pub push: PushWhen,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PushWhen {
    /// Only `roar push` (and `--push`) sends runs.
    #[default]
    Manual,
    /// Every `roar run` and `roar ingest` pushes what it recorded, giving up
    /// within a few seconds when the remote is down (the next push sends it).
    AfterRun,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Extra path prefixes hidden like system files.
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Prefixes never hidden, even under system locations.
    #[serde(default)]
    pub keep: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvConfig {
    /// Extra variable names (or `PREFIX*`) whose values are recorded.
    #[serde(default)]
    pub allow: Vec<String>,
}

pub fn load(roar_dir: &Path) -> Result<Config> {
    let path = roar_dir.join("config.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| {
            Error::Invalid(format!(
                "{} is not a valid roar config: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
        Err(e) => Err(io(format!("cannot read {}", path.display()))(e)),
    }
}
