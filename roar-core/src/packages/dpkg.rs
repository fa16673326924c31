//! Which dpkg package owns a file, from `/var/lib/dpkg/info/*.list`.
//!
//! Reading the 700-odd lists (7 MB here) takes 40 ms with a warm page cache and over a second
//! with a cold one, too much for every run. So they are read once into a compact index (a
//! 64-bit BLAKE3 of each path -> its package, sorted; package names with versions from
//! `status`), kept in the user's cache directory (`$XDG_CACHE_HOME/roar`, else
//! `~/.cache/roar`) and rebuilt when the info directory or the status file changes (dpkg
//! replaces both on every install, upgrade and removal). A run maps the ~1.5 MB file and binary
//! searches it in place, touching a few pages (reading it whole cost about 1 ms of every run).
//! Without a cache directory the index is built in memory, once per process.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"roardpk1";

/// Where an index's records are: the cache file, mapped, or built in memory.
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// The cache file at `f`, mapped.
fn map(f: &Path) -> Option<Bytes> {
    let file = std::fs::File::open(f).ok()?;
    // SAFETY: the cache file is only ever replaced whole (written to a temporary file and
    // renamed over it, see `Index::cached`), never truncated or written in place, so the
    // mapped inode's bytes do not change under us.
    let m = unsafe { memmap2::Mmap::map(&file) }.ok()?;
    Some(Bytes::Mapped(m))
}

/// Files -> packages, with each package's installed version.
pub struct Index {
    /// (path hash, package number) as 12-byte little-endian records, sorted by hash, from
    /// `start` on: the cache file as mapped, searched in place (not copied out of it).
    entries: Bytes,
    start: usize,
    /// Package (as its list file names it, `name` or `name:arch`) and its version.
    packages: Vec<(String, String)>,
}

fn key(path: &[u8]) -> u64 {
    let h = blake3::hash(path);
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn stamp(dir: &Path) -> Option<(i64, i64)> {
    let m = |p: PathBuf| {
        std::fs::metadata(p)
            .ok()
            .map(|m| m.mtime() * 1_000_000_000 + m.mtime_nsec())
    };
    Some((m(dir.join("info"))?, m(dir.join("status"))?))
}

/// `name` in roar's cache directory (`$XDG_CACHE_HOME/roar`, else `~/.cache/roar`).
pub fn cache_file(name: &str) -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("roar").join(name))
}

impl Index {
    /// The index of the dpkg database in `dir`, from the cache (when `cached`) if current.
    pub fn load(dir: &Path, cached: bool) -> Option<Index> {
        let stamp = stamp(dir)?;
        let cache = cache_file("dpkg-index").filter(|_| cached);
        Some(Index::cached(cache, stamp, || Index::build(dir)))
    }

    /// The index in `cache` if it was built at `stamp`, else `build()`'s, written there for
    /// the next roar.
    pub fn cached(
        cache: Option<PathBuf>,
        stamp: (i64, i64),
        build: impl FnOnce() -> Index,
    ) -> Index {
        if let Some(found) = cache.as_deref().and_then(map)
            && let Some(index) = Index::decode(found, stamp)
        {
            return index;
        }
        let index = build();
        if let Some(f) = cache
            && let Some(parent) = f.parent()
            && std::fs::create_dir_all(parent).is_ok()
        {
            // Written whole, then renamed: a concurrent roar reads the old index or the new.
            let tmp = f.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, index.encode(stamp)).is_ok() {
                let _ = std::fs::rename(&tmp, &f);
            }
            let _ = std::fs::remove_file(&tmp);
        }
        index
    }

    /// An index of `(path, package number)` pairs over `packages` (name, version).
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a [u8], u32)>,
        packages: Vec<(String, String)>,
    ) -> Index {
        Index::from_keys(
            pairs.into_iter().map(|(p, n)| (key(p), n)).collect(),
            packages,
        )
    }

    /// An index of `(path hash, package number)` records, in any order.
    fn from_keys(mut entries: Vec<(u64, u32)>, packages: Vec<(String, String)>) -> Index {
        entries.sort_unstable();
        let mut raw = Vec::with_capacity(entries.len() * 12);
        for (k, n) in entries {
            raw.extend(k.to_le_bytes());
            raw.extend(n.to_le_bytes());
        }
        Index {
            entries: Bytes::Owned(raw),
            start: 0,
            packages,
        }
    }

    fn build(dir: &Path) -> Index {
        let versions = versions(&dir.join("status"));
        let mut packages = Vec::new();
        let mut entries: Vec<(u64, u32)> = Vec::new();
        for entry in std::fs::read_dir(dir.join("info"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let Some(package) = name.to_str().and_then(|n| n.strip_suffix(".list")) else {
                continue;
            };
            let Ok(list) = std::fs::read(entry.path()) else {
                continue;
            };
            let Some(version) = versions.get(package) else {
                continue;
            };
            let n = packages.len() as u32;
            packages.push((package.to_string(), version.clone()));
            let lines = list.split(|b| *b == b'\n').filter(|l| l.len() > 1);
            entries.extend(lines.map(|l| (key(l), n)));
        }
        Index::from_keys(entries, packages)
    }

    fn encode(&self, stamp: (i64, i64)) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend(stamp.0.to_le_bytes());
        out.extend(stamp.1.to_le_bytes());
        let names: Vec<String> = self
            .packages
            .iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        let names = names.join("\n");
        out.extend((names.len() as u64).to_le_bytes());
        out.extend(names.as_bytes());
        out.extend(&self.entries[self.start..]);
        out
    }

    fn decode(b: Bytes, stamp: (i64, i64)) -> Option<Index> {
        let u64_at = |at: usize| Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?));
        if b.get(..8)? != MAGIC || u64_at(8)? as i64 != stamp.0 || u64_at(16)? as i64 != stamp.1 {
            return None;
        }
        let len = usize::try_from(u64_at(24)?).ok()?;
        let names = std::str::from_utf8(b.get(32..32 + len)?).ok()?;
        let packages = names
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.split_once(' ')
                    .map(|(n, v)| (n.to_string(), v.to_string()))
            })
            .collect::<Option<Vec<_>>>()?;
        if !(b.len() - 32 - len).is_multiple_of(12) {
            return None;
        }
        Some(Index {
            start: 32 + len,
            entries: b,
            packages,
        })
    }

    fn len(&self) -> usize {
        (self.entries.len() - self.start) / 12
    }

    fn record(&self, i: usize) -> (u64, u32) {
        let at = self.start + i * 12;
        let c = &self.entries[at..at + 12];
        let k = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
        (k, u32::from_le_bytes(c[8..].try_into().expect("4 bytes")))
    }

    /// The package owning `path` and its version.
    pub fn owner(&self, path: &[u8]) -> Option<&(String, String)> {
        let k = key(path);
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.record(mid).0 < k {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let (found, n) = (lo < self.len()).then(|| self.record(lo))?;
        (found == k)
            .then(|| self.packages.get(n as usize))
            .flatten()
    }
}

/// Installed dpkg packages and their versions, keyed both as `name` and `name:arch`.
pub fn versions(status: &Path) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let text = std::fs::read_to_string(status).unwrap_or_default();
    for stanza in text.split("\n\n") {
        let (mut name, mut arch, mut version, mut installed) = (None, None, None, false);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Architecture: ") {
                arch = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                installed = v.trim().ends_with(" installed");
            }
        }
        if let (Some(n), Some(v), true) = (name, version, installed) {
            out.insert(n.to_string(), v.to_string());
            if let Some(a) = arch {
                out.insert(format!("{n}:{a}"), v.to_string());
            }
        }
    }
    out
}
