//! BLAKE3 content hashes, cached by file identity.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use dag::FileKey;

/// Files above this size are memory-mapped and hashed on every core.
const BIG: u64 = 1 << 20;

pub fn file_key(md: &Metadata) -> FileKey {
    FileKey {
        dev: md.dev(),
        ino: md.ino(),
        size: md.size(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
    }
}

pub fn key_of_stat(st: &tracer_wire::FileStat) -> FileKey {
    FileKey {
        dev: st.dev,
        ino: st.ino,
        size: st.size,
        mtime_ns: st.mtime_ns,
    }
}

/// A file's hash and its identity once read: a cache entry is only right
/// when that is still the identity the hash is filed under.
pub struct Hashed {
    pub hash: String,
    /// The file's identity after it was read (from the descriptor read, so
    /// no second path walk); None when it could not be taken.
    pub after: Option<FileKey>,
}

/// `blake3:<hex>`: how a hash is written in the store.
pub fn text(h: blake3::Hasher) -> String {
    format!("blake3:{}", h.finalize().to_hex())
}

thread_local! {
    /// Each hashing thread's read buffer, allocated once: a buffer per file
    /// (as `update_reader` has on its stack) is 64 KiB zeroed for every small
    /// file, which for a copied tree of 5,800 files was a tenth of the time
    /// roar spent after the command.
    static READ_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 64 << 10]);
}

/// Feeds `f`'s content to `h` through `buf`, expecting `size` bytes (what a
/// stat just said), and returns `f`'s metadata after the last read. Once
/// that many are read, an `fstat` says whether there is more, where reading
/// on to the end would take one more read that returns nothing: for a small
/// file, one system call of the five hashing it costs. `go` is asked before
/// each read; None when it said stop.
pub fn read_all(
    f: &mut std::fs::File,
    mut size: u64,
    h: &mut blake3::Hasher,
    buf: &mut [u8],
    go: impl Fn() -> bool,
) -> std::io::Result<Option<Metadata>> {
    use std::io::Read;
    let mut got = 0u64;
    loop {
        if got >= size {
            let md = f.metadata()?;
            if md.len() <= got {
                return Ok(Some(md));
            }
            size = md.len();
        }
        if !go() {
            return Ok(None);
        }
        match f.read(buf) {
            Ok(0) => return f.metadata().map(Some),
            Ok(n) => {
                h.update(&buf[..n]);
                got += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// `blake3:<hex>` of the file's content.
pub fn hash_file(path: &Path, size: u64) -> std::io::Result<Hashed> {
    let mut h = blake3::Hasher::new();
    let after = if size >= BIG {
        h.update_mmap_rayon(path)?;
        std::fs::metadata(path).ok()
    } else {
        let mut f = std::fs::File::open(path)?;
        READ_BUF.with_borrow_mut(|buf| read_all(&mut f, size, &mut h, buf, || true))?
    };
    Ok(Hashed {
        hash: text(h),
        after: after.as_ref().map(file_key),
    })
}

/// Hashes every job on a few threads; results come back in job order.
pub fn hash_many(paths: &[(&Path, u64)]) -> Vec<std::io::Result<Hashed>> {
    let n = paths.len();
    // Most runs leave nothing or one file to hash here (the rest were hashed
    // while they ran): no thread for that, nor the cgroup reads that size the
    // pool.
    if n <= 1 {
        return paths.iter().map(|(p, size)| hash_file(p, *size)).collect();
    }
    let results: Vec<Mutex<Option<std::io::Result<Hashed>>>> =
        (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map_or(2, |p| p.get())
        .min(n.max(1))
        .min(8);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((p, size)) = paths.get(i) else { break };
                    let r = hash_file(p, *size);
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .unwrap_or_else(|| Err(std::io::Error::other("not hashed")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_files_hash_in_order_as_one_does_however_many_there_are() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(std::path::PathBuf, u64)> = (0..5)
            .map(|i| {
                let p = dir.path().join(format!("f{i}"));
                std::fs::write(&p, format!("content {i}")).unwrap();
                (p, 9)
            })
            .collect();
        let one = |p: &Path| hash_file(p, 9).unwrap().hash;
        for n in [0, 1, 5] {
            let refs: Vec<(&Path, u64)> =
                files[..n].iter().map(|(p, s)| (p.as_path(), *s)).collect();
            let got: Vec<String> = hash_many(&refs)
                .into_iter()
                .map(|r| r.unwrap().hash)
                .collect();
            let want: Vec<String> = files[..n].iter().map(|(p, _)| one(p)).collect();
            assert_eq!(got, want, "{n} files");
        }
        // A size that is not the file's (it grew or shrank since the stat
        // that gave it) still hashes the whole content there now.
        for size in [0, 3, 9, 100] {
            assert_eq!(
                hash_file(&files[0].0, size).unwrap().hash,
                one(&files[0].0),
                "size {size}"
            );
        }
        let missing = dir.path().join("gone");
        assert!(hash_many(&[(missing.as_path(), 1)])[0].is_err());
    }
}
