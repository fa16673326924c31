//! Which installed packages a run used, from the files it read or executed.
//!
//! The filter hides interpreter and library files as inputs (they are noise there), but they
//! say which numpy made a model. Each such file is mapped to the package that installed it:
//!
//! * under a `site-packages`/`dist-packages` directory, to the `*.dist-info` whose `RECORD`
//!   lists it (pip; a dist-info whose `INSTALLER` is `conda` is left to conda);
//! * under a conda prefix (a directory with `conda-meta/`), to the `conda-meta/*.json` whose
//!   `files` list it;
//! * anywhere else, to the dpkg package whose `/var/lib/dpkg/info/*.list` lists it (also under
//!   its `/usr`-merged alias and its resolved path).
//!
//! Only packages with a used file are reported, never the whole environment. pip and conda
//! indexes are built once per process; dpkg's is cached across runs (see `dpkg.rs`). No
//! subprocess is started.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use dag::Package;

use crate::paths::{as_path, normalize, to_bytes};

mod dpkg;

/// Where dpkg keeps its file lists and status (a test points it elsewhere).
const DPKG_DIR: &str = "/var/lib/dpkg";

/// Name and version of one installed package.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dist {
    name: String,
    version: String,
}

/// Every file of the distributions installed in one directory.
#[derive(Default)]
struct Index {
    files: HashMap<Vec<u8>, usize>,
    dists: Vec<Dist>,
}

#[derive(Default)]
struct Resolver {
    dpkg_dir: PathBuf,
    /// Site-packages directory -> its pip index (cached on disk like the dpkg one).
    sites: HashMap<Vec<u8>, dpkg::Index>,
    /// Directory -> the conda prefix it is in (or none), for every directory asked about.
    conda_prefix: HashMap<Vec<u8>, Option<Vec<u8>>>,
    condas: HashMap<Vec<u8>, Index>,
    /// The dpkg index, loaded at the first lookup (`None` inside: no dpkg here).
    dpkg: Option<Option<dpkg::Index>>,
}

static CACHE: Mutex<Option<Resolver>> = Mutex::new(None);

/// The packages whose files are among `paths` (absolute paths a run read or executed), sorted.
pub fn used<'a>(paths: impl IntoIterator<Item = &'a [u8]>) -> Vec<Package> {
    used_with(paths, Path::new(DPKG_DIR))
}

/// Loads dpkg's file index now, so that [`used`] does not wait for it later.
pub fn warm() {
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    resolver_for(&mut guard, Path::new(DPKG_DIR)).dpkg_index();
}

fn used_with<'a>(paths: impl IntoIterator<Item = &'a [u8]>, dpkg_dir: &Path) -> Vec<Package> {
    let mut guard = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    resolver_for(&mut guard, dpkg_dir).resolve(paths)
}

/// The cached resolver, started afresh when it was for another dpkg directory.
fn resolver_for<'g>(cache: &'g mut Option<Resolver>, dpkg_dir: &Path) -> &'g mut Resolver {
    let resolver = cache.get_or_insert_with(Resolver::default);
    if resolver.dpkg_dir != dpkg_dir {
        *resolver = Resolver {
            dpkg_dir: dpkg_dir.to_path_buf(),
            ..Default::default()
        };
    }
    resolver
}

impl Resolver {
    fn resolve<'a>(&mut self, paths: impl IntoIterator<Item = &'a [u8]>) -> Vec<Package> {
        let mut found = BTreeSet::new();
        let mut system: Vec<&[u8]> = Vec::new();
        for path in paths {
            if is_metadata(path) || is_internal(path) || !path.starts_with(b"/") {
                continue;
            }
            if let Some(p) = self.pip(path) {
                found.insert(p);
            } else if let Some(p) = self.conda(path) {
                found.insert(p);
            } else if !is_virtual(path) && !is_home(path) {
                system.push(path);
            }
        }
        found.extend(self.dpkg(&system));
        found.into_iter().collect()
    }

    fn pip(&mut self, path: &[u8]) -> Option<Package> {
        let site = site_dir(path)?;
        let index = self
            .sites
            .entry(site.to_vec())
            .or_insert_with(|| cached_pip_index(as_path(site)));
        let (name, version) = index.owner(path)?;
        Some(Package {
            manager: "pip".into(),
            name: name.clone(),
            version: version.clone(),
            location: site.to_vec(),
        })
    }

    fn conda(&mut self, path: &[u8]) -> Option<Package> {
        let prefix = self.conda_prefix_of(parent(path)?)?;
        let index = self
            .condas
            .entry(prefix.clone())
            .or_insert_with(|| conda_index(as_path(&prefix)));
        let dist = &index.dists[*index.files.get(path)?];
        Some(Package {
            manager: "conda".into(),
            name: dist.name.clone(),
            version: dist.version.clone(),
            location: prefix,
        })
    }

    /// The conda prefix `dir` is in: the nearest ancestor holding `conda-meta/`.
    fn conda_prefix_of(&mut self, dir: &[u8]) -> Option<Vec<u8>> {
        if let Some(known) = self.conda_prefix.get(dir) {
            return known.clone();
        }
        let here = if as_path(dir).join("conda-meta").is_dir() {
            Some(dir.to_vec())
        } else {
            parent(dir).and_then(|up| self.conda_prefix_of(up))
        };
        self.conda_prefix.insert(dir.to_vec(), here.clone());
        here
    }

    /// The dpkg index, loaded at the first call (None: no dpkg here).
    fn dpkg_index(&mut self) -> Option<&dpkg::Index> {
        let dir = &self.dpkg_dir;
        self.dpkg
            .get_or_insert_with(|| dpkg::Index::load(dir, dir == Path::new(DPKG_DIR)))
            .as_ref()
    }

    fn dpkg(&mut self, paths: &[&[u8]]) -> Vec<Package> {
        if paths.is_empty() {
            return Vec::new();
        }
        let Some(index) = self.dpkg_index() else {
            return Vec::new();
        };
        let mut found = BTreeSet::new();
        let mut real_dirs = HashMap::new();
        for path in paths {
            // Under each name dpkg may list it by.
            if let Some((name, version)) = dpkg_owner(index, path, &mut real_dirs) {
                // The package's name without the architecture a multi-arch list file carries.
                let plain = name.split(':').next().unwrap_or(name);
                found.insert(Package {
                    manager: "dpkg".into(),
                    name: plain.to_string(),
                    version: version.clone(),
                    location: Vec::new(),
                });
            }
        }
        found.into_iter().collect()
    }
}

/// Files that describe packages rather than belong to their code: reading them (as pip and
/// `importlib.metadata` do for every installed package) is not using the package.
fn is_metadata(path: &[u8]) -> bool {
    path.split(|b| *b == b'/')
        .any(|c| c.ends_with(b".dist-info") || c.ends_with(b".egg-info") || c == b"conda-meta")
}

/// Inside a git directory or a roar store: hidden like an installed file,
/// but no package manager puts files there, so not looked up in any.
fn is_internal(path: &[u8]) -> bool {
    path.split(|b| *b == b'/')
        .any(|c| c == b".git" || c == b".roar")
}

/// Under a home directory, where dpkg installs nothing (Debian policy): a
/// pyenv or rustup toolchain's files are looked for in pip and conda only.
fn is_home(path: &[u8]) -> bool {
    path.starts_with(b"/root/") || path.starts_with(b"/home/")
}

/// Kernel interfaces no package owns.
fn is_virtual(path: &[u8]) -> bool {
    [&b"/proc/"[..], b"/sys/", b"/dev/", b"/run/"]
        .iter()
        .any(|p| path.starts_with(p))
}

fn parent(path: &[u8]) -> Option<&[u8]> {
    let cut = path.iter().rposition(|b| *b == b'/')?;
    (cut > 0).then(|| &path[..cut])
}

/// The `.../site-packages` (or `dist-packages`) directory `path` is in.
fn site_dir(path: &[u8]) -> Option<&[u8]> {
    let mut at = 0;
    for c in path.split(|b| *b == b'/') {
        at += c.len() + 1;
        if c == b"site-packages" || c == b"dist-packages" {
            return Some(&path[..at - 1]);
        }
    }
    None
}

/// [`pip_index`] of `site`, from roar's cache directory while `site` itself has not changed
/// (pip adds or removes a `*.dist-info` entry in it on every install, upgrade and removal):
/// reading every RECORD of a big environment costs tens of milliseconds a run.
fn cached_pip_index(site: &Path) -> dpkg::Index {
    let name = blake3::hash(site.as_os_str().as_encoded_bytes()).to_hex();
    pip_index_cached_at(site, dpkg::cache_file(&format!("pip-{}", &name[..16])))
}

/// [`cached_pip_index`] with the cache file named.
fn pip_index_cached_at(site: &Path, cache: Option<PathBuf>) -> dpkg::Index {
    let build = || {
        let index = pip_index(site);
        let packages = index
            .dists
            .iter()
            .map(|d| (d.name.clone(), d.version.clone()))
            .collect();
        dpkg::Index::from_pairs(
            index.files.iter().map(|(p, &d)| (p.as_slice(), d as u32)),
            packages,
        )
    };
    match std::fs::metadata(site) {
        Ok(m) => {
            let stamp = (m.mtime() * 1_000_000_000 + m.mtime_nsec(), m.ino() as i64);
            dpkg::Index::cached(cache, stamp, build)
        }
        Err(_) => build(),
    }
}

/// The pip distributions of one site-packages directory, file by file from their RECORDs.
fn pip_index(site: &Path) -> Index {
    let mut index = Index::default();
    let Ok(entries) = std::fs::read_dir(site) else {
        return index;
    };
    let site_bytes = to_bytes(site);
    for entry in entries.flatten() {
        let dir = entry.path();
        if dir.extension() != Some(OsStr::new("dist-info")) {
            continue;
        }
        let installer = std::fs::read_to_string(dir.join("INSTALLER")).unwrap_or_default();
        if installer.trim() == "conda" {
            continue;
        }
        let (Some(dist), Ok(record)) = (dist_info(&dir), std::fs::read(dir.join("RECORD"))) else {
            continue;
        };
        let d = index.dists.len();
        index.dists.push(dist);
        for line in record.split(|b| *b == b'\n') {
            let rel = record_path(line);
            if !rel.is_empty() {
                index.files.insert(normalize(rel, &site_bytes), d);
            }
        }
    }
    index
}

/// The first field of a RECORD line (CSV: quoted when it holds a comma).
fn record_path(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(rest) = line.strip_prefix(b"\"") {
        let end = rest.iter().position(|b| *b == b'"').unwrap_or(rest.len());
        return &rest[..end];
    }
    let end = line.iter().position(|b| *b == b',').unwrap_or(line.len());
    &line[..end]
}

/// Name and version from a dist-info's METADATA header, else from the directory's name.
fn dist_info(dir: &Path) -> Option<Dist> {
    let mut name = None;
    let mut version = None;
    if let Ok(meta) = std::fs::read_to_string(dir.join("METADATA")) {
        for line in meta.lines().take_while(|l| !l.is_empty()) {
            if let Some(v) = line.strip_prefix("Name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("Version:") {
                version = Some(v.trim().to_string());
            }
        }
    }
    if name.is_none() || version.is_none() {
        let stem = dir.file_stem()?.to_str()?;
        let (n, v) = stem.rsplit_once('-')?;
        name.get_or_insert_with(|| n.to_string());
        version.get_or_insert_with(|| v.to_string());
    }
    Some(Dist {
        name: name?,
        version: version?,
    })
}

#[derive(serde::Deserialize)]
struct CondaMeta {
    name: String,
    version: String,
    #[serde(default)]
    files: Vec<String>,
}

/// The conda packages of one prefix, from `conda-meta/*.json`.
fn conda_index(prefix: &Path) -> Index {
    let mut index = Index::default();
    let Ok(entries) = std::fs::read_dir(prefix.join("conda-meta")) else {
        return index;
    };
    let prefix_bytes = to_bytes(prefix);
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension() != Some(OsStr::new("json")) {
            continue;
        }
        let Some(meta) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<CondaMeta>(&b).ok())
        else {
            continue;
        };
        let d = index.dists.len();
        for f in &meta.files {
            index
                .files
                .insert(normalize(f.as_bytes(), &prefix_bytes), d);
        }
        index.dists.push(Dist {
            name: meta.name,
            version: meta.version,
        });
    }
    index
}

/// The names dpkg may list a file by: as used and its `/usr`-merge alias.
fn dpkg_names(path: &[u8]) -> Vec<Vec<u8>> {
    let mut names = vec![path.to_vec()];
    if let Some(rest) = path.strip_prefix(b"/usr")
        && merged_dir(rest)
    {
        names.push(rest.to_vec());
    } else if merged_dir(path) {
        names.push([&b"/usr"[..], path].concat());
    }
    names
}

/// The package dpkg says owns `path`: by the names it was used by, else by
/// its resolved path's, resolved only then.
fn dpkg_owner<'i>(
    index: &'i dpkg::Index,
    path: &[u8],
    real_dirs: &mut HashMap<Vec<u8>, Option<PathBuf>>,
) -> Option<&'i (String, String)> {
    let found = |p: &[u8]| dpkg_names(p).iter().find_map(|n| index.owner(n));
    found(path).or_else(|| {
        let real = resolved(path, real_dirs)?;
        let real = real.as_os_str().as_bytes();
        (real != path).then(|| found(real)).flatten()
    })
}

/// `path` with every symbolic link resolved. Each directory is resolved once
/// (`real_dirs` keeps them: a run's files share a few dozen), so a file
/// costs one `lstat` rather than a `readlink` per component.
fn resolved(path: &[u8], real_dirs: &mut HashMap<Vec<u8>, Option<PathBuf>>) -> Option<PathBuf> {
    let cut = path.iter().rposition(|b| *b == b'/')?;
    let (dir, name) = (&path[..cut.max(1)], &path[cut + 1..]);
    let real_dir = real_dirs
        .entry(dir.to_vec())
        .or_insert_with(|| std::fs::canonicalize(as_path(dir)).ok())
        .as_ref()?;
    let candidate = real_dir.join(OsStr::from_bytes(name));
    let meta = std::fs::symlink_metadata(&candidate).ok()?;
    if meta.file_type().is_symlink() {
        std::fs::canonicalize(&candidate).ok()
    } else {
        Some(candidate)
    }
}

/// `/bin`, `/sbin` and `/lib*`, the directories `/usr`-merge links into `/usr`.
fn merged_dir(path: &[u8]) -> bool {
    let first = path.split(|b| *b == b'/').nth(1).unwrap_or_default();
    first == b"bin" || first == b"sbin" || first.starts_with(b"lib")
}

/// The version of each package installed now, where it was installed; `None` when it is gone.
pub fn current_versions(packages: &[Package]) -> Vec<Option<String>> {
    current_versions_with(packages, Path::new(DPKG_DIR))
}

fn current_versions_with(packages: &[Package], dpkg_dir: &Path) -> Vec<Option<String>> {
    let mut dpkg: Option<HashMap<String, String>> = None;
    let mut pip: HashMap<&[u8], Vec<Dist>> = HashMap::new();
    let mut conda: HashMap<&[u8], Vec<Dist>> = HashMap::new();
    packages
        .iter()
        .map(|p| match p.manager.as_str() {
            "dpkg" => dpkg
                .get_or_insert_with(|| dpkg::versions(&dpkg_dir.join("status")))
                .get(&p.name)
                .cloned(),
            "pip" => pip
                .entry(&p.location)
                .or_insert_with(|| pip_dists(as_path(&p.location)))
                .iter()
                .find(|d| same_pip_name(&d.name, &p.name))
                .map(|d| d.version.clone()),
            "conda" => conda
                .entry(&p.location)
                .or_insert_with(|| conda_index(as_path(&p.location)).dists)
                .iter()
                .find(|d| d.name == p.name)
                .map(|d| d.version.clone()),
            _ => None,
        })
        .collect()
}

/// The distributions installed in a site-packages directory (names and versions only).
fn pip_dists(site: &Path) -> Vec<Dist> {
    std::fs::read_dir(site)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().extension() == Some(OsStr::new("dist-info")))
                .filter_map(|e| dist_info(&e.path()))
                .collect()
        })
        .unwrap_or_default()
}

/// PEP 503: names compare case-insensitively with runs of `-`, `_` and `.` as one.
fn same_pip_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| -> String {
        s.to_ascii_lowercase()
            .split(['-', '_', '.'])
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    };
    norm(a) == norm(b)
}

/// Why each of `runs` is stale through its packages: one reason per package it used that is
/// now at another version where it was installed, or gone.
pub fn stale_reasons(
    store: &dag::Store,
    runs: &[dag::RunId],
) -> Result<Vec<(dag::RunId, dag::status::Reason)>, dag::StoreError> {
    let used = store.packages_of(runs)?;
    let pkgs: Vec<Package> = used.iter().map(|(_, p)| p.clone()).collect();
    let now = current_versions(&pkgs);
    Ok(used
        .into_iter()
        .zip(now)
        .filter(|((_, p), now)| now.as_deref() != Some(p.version.as_str()))
        .map(|((run, p), now)| {
            let reason = dag::status::Reason::Package {
                manager: p.manager,
                name: p.name,
                was: p.version,
                now,
            };
            (run, reason)
        })
        .collect())
}

#[cfg(test)]
mod tests;
