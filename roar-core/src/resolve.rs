//! What a traced path names now: its real path (directories resolved,
//! cached per directory) and one `lstat` of the file, taken relative to an
//! open descriptor of its directory so the kernel walks one component, not
//! the whole path, for every file of a big tree.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use dag::FileKey;

use crate::paths::{as_path, to_bytes};

/// A regular file's identity now, and its ctime (when it last changed in
/// any way, which no program can set back).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Now {
    pub key: FileKey,
    pub ctime_ns: i64,
}

impl Now {
    pub fn of_metadata(md: &std::fs::Metadata) -> Now {
        use std::os::unix::fs::MetadataExt;
        Now {
            key: crate::hashing::file_key(md),
            ctime_ns: md.ctime() * 1_000_000_000 + md.ctime_nsec(),
        }
    }

    pub(crate) fn of_stat(st: &libc::stat) -> Now {
        Now {
            key: FileKey {
                dev: st.st_dev,
                ino: st.st_ino,
                size: st.st_size as u64,
                mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
            },
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
        }
    }
}

/// A path resolved, and what is there now when it is a regular file.
pub type Resolution = (Vec<u8>, Option<Now>);

/// What `lstat` (or `stat`, through a symlink) found at a path.
enum Found {
    File(Now),
    Symlink,
    Other,
}

fn found(st: &libc::stat) -> Found {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Found::File(Now::of_stat(st)),
        libc::S_IFLNK => Found::Symlink,
        _ => Found::Other,
    }
}

/// At most this many directory descriptors are held at once, by all the
/// resolvers of a collect together (and a quarter of the descriptors roar
/// may have); past it they are all closed and reopened as needed (a tree
/// walked in path order needs only the few it is in). Few on purpose: a
/// process's descriptor table starts with room for 64, and growing it in a
/// process with threads waits for an RCU grace period each time. Holding
/// 512 made resolving a 14,600-file tree take 44-56 ms instead of 26-29.
pub const OPEN_DIRS: usize = 32;

fn open_dirs_max() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur as usize
    } else {
        256
    };
    (soft / 4).clamp(4, OPEN_DIRS)
}

struct Dir {
    /// The directory's real path; None when it cannot be resolved (gone).
    real: Option<Vec<u8>>,
    fd: Option<OwnedFd>,
}

/// Resolves traced paths, caching what it learns about their directories.
pub struct Resolver<'p> {
    dirs: crate::FastMap<&'p [u8], Dir>,
    open: usize,
    max_open: usize,
}

impl Default for Resolver<'_> {
    fn default() -> Self {
        Resolver::holding(OPEN_DIRS)
    }
}

impl Resolver<'_> {
    /// A resolver that holds at most `dirs` directory descriptors (at least
    /// a few), within [`OPEN_DIRS`].
    pub fn holding(dirs: usize) -> Self {
        Resolver {
            dirs: Default::default(),
            open: 0,
            max_open: open_dirs_max().min(dirs.max(4)),
        }
    }
}

fn canonical(p: &[u8]) -> Option<Vec<u8>> {
    std::fs::canonicalize(as_path(p)).ok().map(|c| to_bytes(&c))
}

pub(crate) fn stat_at(fd: libc::c_int, name: &[u8], flags: libc::c_int) -> Option<libc::stat> {
    stat_at_in(fd, name, flags, &mut Vec::new())
}

/// [`stat_at`], with `buf` to hold `name` NUL-terminated (a walk of many
/// files reuses one). None for a name holding a NUL.
pub(crate) fn stat_at_in(
    fd: libc::c_int,
    name: &[u8],
    flags: libc::c_int,
    buf: &mut Vec<u8>,
) -> Option<libc::stat> {
    if name.contains(&0) {
        return None;
    }
    buf.clear();
    buf.extend_from_slice(name);
    buf.push(0);
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `buf` is NUL-terminated and `st` is written by the call before it is read.
    let r = unsafe { libc::fstatat(fd, buf.as_ptr().cast(), st.as_mut_ptr(), flags) };
    // SAFETY: fstatat filled `st` when it returned 0.
    (r == 0).then(|| unsafe { st.assume_init() })
}

/// `path` opened as a directory (`O_PATH`), relative to `at`, with `flags`.
pub(crate) fn open_at(at: libc::c_int, path: &[u8], flags: libc::c_int) -> Option<OwnedFd> {
    let c = CString::new(path).ok()?;
    let how = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | flags;
    // SAFETY: `c` is NUL-terminated; a descriptor returned is ours to own.
    let fd = unsafe { libc::openat(at, c.as_ptr(), how) };
    // SAFETY: a non-negative result is a new descriptor nobody else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) })
}

impl<'p> Resolver<'p> {
    /// `path` with its directory resolved and, when the file itself is a
    /// symlink, resolved in full.
    pub fn real_path(&mut self, path: &'p [u8]) -> Vec<u8> {
        self.resolve(path).0
    }

    /// [`Resolver::real_path`], with what is there now when it is a regular
    /// file (through a symlink: its target).
    pub fn resolve(&mut self, path: &'p [u8]) -> Resolution {
        let Some(slash) = dir_end(path) else {
            let st = stat_at(libc::AT_FDCWD, path, libc::AT_SYMLINK_NOFOLLOW);
            return match st.as_ref().map(found) {
                Some(Found::Symlink) => self.through_link(path),
                Some(Found::File(now)) => (path.to_vec(), Some(now)),
                _ => (path.to_vec(), None),
            };
        };
        let (dir, name) = path.split_at(slash);
        let fd = self.dir_fd(dir);
        let st = match fd {
            Some(fd) => stat_at(fd, &name[1..], libc::AT_SYMLINK_NOFOLLOW),
            None => stat_at(libc::AT_FDCWD, path, libc::AT_SYMLINK_NOFOLLOW),
        };
        let now = match st.as_ref().map(found) {
            Some(Found::Symlink) => return self.through_link(path),
            Some(Found::File(now)) => Some(now),
            _ => None,
        };
        (self.in_real_dir(path, slash), now)
    }

    /// [`Resolver::resolve`] of a file the run removed: its directory is
    /// resolved, the file is not looked at (what is there now, if anything,
    /// is not the run's).
    pub fn resolve_removed(&mut self, path: &'p [u8]) -> Resolution {
        let Some(slash) = dir_end(path) else {
            return (path.to_vec(), None);
        };
        self.dir_fd(&path[..slash]);
        (self.in_real_dir(path, slash), None)
    }

    /// `path`, whose directory ends at `slash` and was resolved, in that
    /// directory's real path.
    fn in_real_dir(&self, path: &[u8], slash: usize) -> Vec<u8> {
        let (dir, name) = path.split_at(slash);
        match self.dirs.get(dir).and_then(|d| d.real.as_deref()) {
            Some(real) if real != dir => [real, name].concat(),
            _ => path.to_vec(),
        }
    }

    /// A symlink's target, resolved in full, and what it is.
    fn through_link(&mut self, path: &[u8]) -> Resolution {
        let now = std::fs::metadata(as_path(path))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| Now::of_metadata(&m));
        (canonical(path).unwrap_or_else(|| path.to_vec()), now)
    }

    /// An open descriptor of `dir` (resolved once), when it can be opened.
    /// A directory is resolved from its parent: opened relative to the
    /// parent's descriptor without following a symlink, its real path is the
    /// parent's plus its name; only a symlink (or a name like `..`) costs a
    /// full `realpath`.
    fn dir_fd(&mut self, dir: &'p [u8]) -> Option<libc::c_int> {
        if let Some(d) = self.dirs.get(dir) {
            if let Some(fd) = &d.fd {
                return Some(fd.as_raw_fd());
            }
            let real = d.real.clone()?;
            self.make_room();
            let fd = open_at(libc::AT_FDCWD, &real, 0)?;
            return Some(self.keep(dir, Some(real), fd));
        }
        if let Some((parent, name)) = split(dir).filter(|(_, n)| plain(n)) {
            // Room is made before the parent's descriptor is taken, never
            // between: a descriptor closed here may be handed out again at
            // once to another thread, as another directory. (So the most
            // held can be passed by the depth of one path.)
            self.make_room();
            let parent_fd = self.dir_fd(parent);
            let parent_real = self.dirs.get(parent).and_then(|d| d.real.clone());
            if let (Some(pfd), Some(preal)) = (parent_fd, parent_real)
                && let Some(fd) = open_at(pfd, name, libc::O_NOFOLLOW)
            {
                let real = if preal == b"/" {
                    [b"/", name].concat()
                } else {
                    [preal.as_slice(), b"/", name].concat()
                };
                return Some(self.keep(dir, Some(real), fd));
            }
        }
        let real = canonical(dir);
        let fd = real.as_deref().and_then(|r| {
            self.make_room();
            open_at(libc::AT_FDCWD, r, 0)
        });
        match fd {
            Some(fd) => Some(self.keep(dir, real, fd)),
            None => {
                self.dirs.insert(dir, Dir { real, fd: None });
                None
            }
        }
    }

    /// Closes every held descriptor when the next would pass the most held.
    fn make_room(&mut self) {
        if self.open >= self.max_open {
            self.dirs.values_mut().for_each(|d| d.fd = None);
            self.open = 0;
        }
    }

    fn keep(&mut self, dir: &'p [u8], real: Option<Vec<u8>>, fd: OwnedFd) -> libc::c_int {
        let raw = fd.as_raw_fd();
        self.open += 1;
        self.dirs.insert(dir, Dir { real, fd: Some(fd) });
        raw
    }
}

/// Where `path`'s directory ends (its last `/`); None for a name in the
/// current directory and for a file right below `/`, which are looked up
/// whole.
fn dir_end(path: &[u8]) -> Option<usize> {
    path.iter().rposition(|b| *b == b'/').filter(|&i| i > 0)
}

/// `dir`'s parent and last name; None for `/` and relative names.
pub(crate) fn split(dir: &[u8]) -> Option<(&[u8], &[u8])> {
    let slash = dir.iter().rposition(|b| *b == b'/')?;
    let parent = if slash == 0 { &dir[..1] } else { &dir[..slash] };
    Some((parent, &dir[slash + 1..])).filter(|_| dir.len() > 1)
}

/// A name that is itself, not `.`, `..` or empty.
fn plain(name: &[u8]) -> bool {
    !matches!(name, b"" | b"." | b"..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    /// A directory `real` holding the file `f`, and `link`, a symlink to it.
    fn linked_dir() -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::TempDir::new().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(base.join("real")).unwrap();
        std::fs::write(base.join("real/f"), "abc").unwrap();
        std::os::unix::fs::symlink(base.join("real"), base.join("link")).unwrap();
        (d, base)
    }

    #[test]
    fn a_path_resolves_to_what_lstat_and_realpath_say() {
        let (_d, base) = linked_dir();
        std::os::unix::fs::symlink("f", base.join("real/l")).unwrap();
        let b = |p: &str| base.join(p).as_os_str().as_bytes().to_vec();
        let (f, via_dir, via_file) = (b("real/f"), b("link/f"), b("real/l"));
        let (gone, dir) = (b("real/x"), b("real"));
        let want = Now::of_metadata(&std::fs::metadata(base.join("real/f")).unwrap());
        let mut r = Resolver::default();
        assert_eq!(r.resolve(&f), (f.clone(), Some(want)));
        assert_eq!(r.resolve(&via_dir), (f.clone(), Some(want)));
        assert_eq!(r.resolve(&via_file), (f.clone(), Some(want)));
        assert_eq!(r.resolve(&gone), (gone.clone(), None));
        assert_eq!(r.resolve(&dir), (dir.clone(), None));
    }

    #[test]
    fn a_removed_file_is_resolved_through_its_directory_and_not_looked_at() {
        // real/f: something is there again, not put by the run.
        let (_d, base) = linked_dir();
        let b = |p: &str| base.join(p).as_os_str().as_bytes().to_vec();
        let (via_link, real) = (b("link/f"), b("real/f"));
        let mut r = Resolver::default();
        assert_eq!(r.resolve_removed(&via_link), (real.clone(), None));
        assert_eq!(r.resolve_removed(&real), (real.clone(), None));
        assert_eq!(r.resolve_removed(b"f"), (b"f".to_vec(), None));
        assert!(r.resolve(&via_link).1.is_some());
    }

    /// Resolvers on threads, with few descriptors each, over two trees with
    /// the same names (a copy): every file resolves to itself. A descriptor
    /// closed to make room and then used, reopened meanwhile by another
    /// thread as another directory, resolved `src/a/b` as `dst/a/b`.
    #[test]
    fn resolvers_on_threads_never_open_from_a_descriptor_they_closed() {
        let d = tempfile::TempDir::new().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let mut trees: Vec<Vec<(Vec<u8>, u64)>> = Vec::new();
        for top in ["src", "dst"] {
            let mut files = Vec::new();
            for i in 0..150 {
                let dir = base.join(format!("{top}/a{}/b{}/c{i}", i % 5, i % 15));
                std::fs::create_dir_all(&dir).unwrap();
                let f = dir.join("f");
                std::fs::write(&f, "x").unwrap();
                use std::os::unix::fs::MetadataExt;
                let ino = std::fs::metadata(&f).unwrap().ino();
                files.push((f.as_os_str().as_bytes().to_vec(), ino));
            }
            trees.push(files);
        }
        for _ in 0..20 {
            std::thread::scope(|s| {
                for files in &trees {
                    s.spawn(move || {
                        let mut r = Resolver::holding(4);
                        for (p, ino) in files {
                            let (real, now) = r.resolve(p);
                            assert_eq!(&real, p);
                            assert_eq!(
                                now.map(|n| n.key.ino),
                                Some(*ino),
                                "{}",
                                String::from_utf8_lossy(p)
                            );
                        }
                    });
                }
            });
        }
    }

    #[test]
    fn more_directories_than_descriptors_held_still_resolve() {
        let d = tempfile::TempDir::new().unwrap();
        let base = std::fs::canonicalize(d.path()).unwrap();
        let paths: Vec<Vec<u8>> = (0..open_dirs_max() * 3)
            .map(|i| {
                let dir = base.join(format!("d{i}"));
                std::fs::create_dir(&dir).unwrap();
                std::fs::write(dir.join("f"), i.to_string()).unwrap();
                dir.join("f").as_os_str().as_bytes().to_vec()
            })
            .collect();
        let mut r = Resolver::default();
        for round in 0..2 {
            for (i, p) in paths.iter().enumerate() {
                let (real, now) = r.resolve(p);
                assert_eq!(&real, p, "round {round}");
                assert_eq!(now.map(|n| n.key.size), Some(i.to_string().len() as u64));
            }
        }
        assert!(r.open <= r.max_open);
    }
}
