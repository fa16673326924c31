//! `roar status`'s question: which head runs read content the files no longer hold (or, when
//! asked, packages now at other versions). Every tracked file is stat'ed; only a file whose
//! (dev, ino, size, mtime) is not in the hash cache is hashed.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use dag::status::{self, Now, Report};
use dag::{RunId, Store};

use crate::error::Result;
use crate::hashing;
use crate::paths::as_path;

/// What every path holds now, hashing only what the cache does not know.
/// `progress` hears how many of the paths are known (stat'ed, then hashed).
fn current(
    store: &Store,
    paths: &HashSet<&[u8]>,
    progress: &mut dyn FnMut(u64, u64),
) -> HashMap<Vec<u8>, Now> {
    let total = paths.len() as u64;
    let mut now = HashMap::with_capacity(paths.len());
    let mut jobs: Vec<(&[u8], dag::FileKey)> = Vec::new();
    for (i, &p) in paths.iter().enumerate() {
        if i % 64 == 0 {
            progress(now.len() as u64, total);
        }
        let state = match std::fs::metadata(as_path(p)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Now::Missing,
            Err(_) => Now::Unknown,
            Ok(md) if !md.is_file() => Now::Unknown,
            Ok(md) => {
                let key = hashing::file_key(&md);
                match store.hash_cache_get(&key) {
                    Ok(Some(h)) => Now::Content(h),
                    _ => {
                        jobs.push((p, key));
                        continue;
                    }
                }
            }
        };
        now.insert(p.to_vec(), state);
    }
    let refs: Vec<(&Path, u64)> = jobs.iter().map(|(p, k)| (as_path(p), k.size)).collect();
    // In slices, so the bar moves while a big store is hashed.
    let mut hashes = Vec::with_capacity(refs.len());
    for slice in refs.chunks(256) {
        hashes.extend(hashing::hash_many(slice));
        progress(now.len() as u64 + hashes.len() as u64, total);
    }
    let mut cache = Vec::new();
    for ((p, key), h) in jobs.into_iter().zip(hashes) {
        let state = match h {
            Ok(h) => {
                // Cache only what is still the file we hashed.
                if h.after == Some(key) {
                    cache.push((key, h.hash.clone()));
                }
                Now::Content(h.hash)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Now::Missing,
            Err(_) => Now::Unknown,
        };
        now.insert(p.to_vec(), state);
    }
    // A store we cannot write to still answers.
    let _ = store.hash_cache_put(&cache);
    now
}

pub struct Checked {
    pub report: Report,
    pub files: usize,
}

/// `packages`: also a reason when a package a head run used is now at another version.
/// `progress` hears how many of the files are checked.
pub fn check(store: &Store, packages: bool, progress: &mut dyn FnMut(u64, u64)) -> Result<Checked> {
    let heads = store.heads()?;
    let mut runs: Vec<RunId> = heads.iter().map(|h| h.run_id).collect();
    runs.sort_unstable();
    runs.dedup();
    let inputs = store.inputs_of(&runs)?;
    let paths: HashSet<&[u8]> = heads
        .iter()
        .chain(inputs.iter())
        .map(|l| l.path.as_slice())
        .collect();
    let now = current(store, &paths, progress);
    let extra = if packages {
        crate::packages::stale_reasons(store, &runs)?
    } else {
        Vec::new()
    };
    Ok(Checked {
        report: status::evaluate_with(&heads, &inputs, &now, extra),
        files: paths.len(),
    })
}
