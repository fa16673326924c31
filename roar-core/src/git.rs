//! Git context of a run, read with libgit2 (no git binary needed).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use dag::GitInfo;

mod index;

/// The repository around `cwd`, or None outside any repository.
/// A repository with no commits has no commit; a detached HEAD no branch.
pub fn context(cwd: &Path) -> Result<Option<GitInfo>, git2::Error> {
    Ok(context_with_changes(cwd)?.map(|c| c.info))
}

/// The git context and the tracked paths that differ from HEAD.
pub struct Context {
    pub info: GitInfo,
    /// Absolute; empty when there were more than [`CHANGED_CAP`].
    pub changed: Vec<Vec<u8>>,
}

/// More changed paths than this and a run's own writes are not subtracted:
/// the tree is simply dirty.
const CHANGED_CAP: usize = 10_000;

/// [`context`], and the tracked paths (absolute) whose content differs from
/// HEAD, so that `roar run` can leave out the ones the run itself wrote:
/// whether git is read before or after the command's writes land must not
/// change the answer.
pub fn context_with_changes(cwd: &Path) -> Result<Option<Context>, git2::Error> {
    read_context(cwd, &AtomicBool::new(true))
}

/// [`context_with_changes`]; the work tree is stated on several threads
/// once `hurry` is set (a walk begun at idle priority goes on alone until
/// then: threads it started would stay idle).
fn read_context(cwd: &Path, hurry: &AtomicBool) -> Result<Option<Context>, git2::Error> {
    let repo = match git2::Repository::discover(cwd) {
        Ok(r) => r,
        Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if repo.is_bare() {
        return Ok(None);
    }
    let commit = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .map(|c| c.id().to_string());
    let branch = match repo.find_reference("HEAD") {
        Ok(head) => head
            .symbolic_target()
            .and_then(|t| t.strip_prefix("refs/heads/"))
            .map(str::to_string),
        Err(_) => None,
    };
    let (dirty, changed) = match suspects(&repo, hurry) {
        Some(paths) if paths.is_empty() => (false, Vec::new()),
        only => status(&repo, only.as_deref())?,
    };
    let remote = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().map(str::to_string))
        .or_else(|| {
            let names = repo.remotes().ok()?;
            let first = names.get(0)?.to_string();
            repo.find_remote(&first).ok()?.url().map(str::to_string)
        });
    Ok(Some(Context {
        info: GitInfo {
            commit,
            branch,
            dirty,
            remote,
        },
        changed,
    }))
}

/// Whether tracked content differs from HEAD, and the changed paths, by
/// libgit2's status: of the paths `only` names when given (libgit2 then
/// descends only into their directories), else of the whole tree.
/// Untracked files (the run's own new outputs, typically) do not make a tree
/// dirty.
fn status(
    repo: &git2::Repository,
    only: Option<&[Vec<u8>]>,
) -> Result<(bool, Vec<Vec<u8>>), git2::Error> {
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(false)
        .include_ignored(false)
        .exclude_submodules(true)
        // Write the refreshed stat cache back, as `git status` does; otherwise
        // every run re-hashes each racily-clean or touched tracked file
        // (seconds for a few hundred MiB of tracked data). libgit2 skips the
        // write when another git holds the index lock.
        .update_index(true)
        .disable_pathspec_match(only.is_some());
    for p in only.into_iter().flatten() {
        opts.pathspec(p.as_slice());
    }
    let statuses = repo.statuses(Some(&mut opts))?;
    Ok((!statuses.is_empty(), changed_paths(repo, &statuses)))
}

/// The absolute paths of `statuses`, unless there are more than
/// [`CHANGED_CAP`].
fn changed_paths(repo: &git2::Repository, statuses: &git2::Statuses<'_>) -> Vec<Vec<u8>> {
    let Some(top) = repo.workdir().filter(|_| statuses.len() <= CHANGED_CAP) else {
        return Vec::new();
    };
    let mut prefix = crate::paths::to_bytes(top);
    if prefix.last() != Some(&b'/') {
        prefix.push(b'/');
    }
    statuses
        .iter()
        .map(|e| [prefix.as_slice(), e.path_bytes()].concat())
        .collect()
}

/// The tracked paths whose content may differ from HEAD, by the index's stat
/// data alone, as git itself decides: a file whose lstat matches its index
/// entry exactly (and is not racily clean: changed in the index's own second
/// or later) is unchanged, given that the tree the index describes is HEAD's
/// (the cache tree's root when git kept it valid, else hashed here from the
/// entries, never written). Every other entry is a suspect: different,
/// missing, or below a directory replaced by a symlink. None when the index
/// itself says more (staged changes, an index [`index::parse`] does not
/// take, no HEAD) or there are more than [`SUSPECTS_CAP`]: libgit2's status
/// of the whole tree decides. libgit2 walks the work tree's directories
/// (ignored ones too) and reads HEAD's trees: 64.5 ms for Django's 6,810
/// files beside 5,000 ignored ones, where this took 21.5 with a whole-path
/// lstat per file; each file is now stated by name in its directory, opened
/// once.
fn suspects(repo: &git2::Repository, hurry: &AtomicBool) -> Option<Vec<Vec<u8>>> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let top = repo.workdir()?;
    let mut data = Vec::new();
    let written = std::fs::File::open(repo.path().join("index"))
        .and_then(|mut f| {
            let m = f.metadata()?;
            f.read_to_end(&mut data)?;
            Ok(m)
        })
        .ok()?;
    let written = (written.mtime(), written.mtime_nsec());
    let index = index::parse(&data)?;
    let head = repo.head().ok()?.peel_to_tree().ok()?.id();
    if index.tree.or_else(|| index_tree(&index.entries, 0))? != head {
        return None;
    }
    let entries = &index.entries[..];
    let mut walk = Walk::new(top, written)?;
    let mut done = 0;
    while done < entries.len() {
        let left = &entries[done..];
        if left.len() >= PARALLEL_FROM && hurry.load(Ordering::Relaxed) {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
            let parts: Vec<Option<Vec<Vec<u8>>>> = std::thread::scope(|s| {
                let handles: Vec<_> = left
                    .chunks(left.len().div_ceil(threads))
                    .map(|part| {
                        s.spawn(move || {
                            let mut w = Walk::new(top, written)?;
                            part.iter().try_for_each(|e| w.check(e))?;
                            Some(w.suspects)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().ok().flatten())
                    .collect()
            });
            for part in parts {
                walk.suspects.extend(part?);
            }
            return (walk.suspects.len() <= SUSPECTS_CAP).then_some(walk.suspects);
        }
        let chunk = &left[..left.len().min(WALK_CHUNK)];
        chunk.iter().try_for_each(|e| walk.check(e))?;
        done += chunk.len();
    }
    Some(walk.suspects)
}

/// From this many entries left, a hurried walk states them on several
/// threads (each lstat is a system call; the kernel runs them side by side).
const PARALLEL_FROM: usize = 1024;
/// Entries stated between two looks at whether to hurry.
const WALK_CHUNK: usize = 512;

/// One thread's share of the clean check: the entries it found suspect.
struct Walk {
    dirs: Dirs,
    name: Vec<u8>,
    /// The index file's mtime: an entry changed in its second or later is
    /// racily clean.
    written: (i64, i64),
    suspects: Vec<Vec<u8>>,
}

impl Walk {
    fn new(top: &Path, written: (i64, i64)) -> Option<Walk> {
        Some(Walk {
            dirs: Dirs::new(top)?,
            name: Vec::new(),
            written,
            suspects: Vec::new(),
        })
    }

    /// Notes `e` as a suspect unless its lstat matches it exactly; None once
    /// there are more than [`SUSPECTS_CAP`].
    fn check(&mut self, e: &index::Entry<'_>) -> Option<()> {
        if e.mode == 0o160000 {
            return Some(());
        }
        let unchanged = self.dirs.lstat(e.path, &mut self.name).is_some_and(|st| {
            let kind = st.st_mode & libc::S_IFMT;
            let mode_matches = match e.mode {
                0o120000 => kind == libc::S_IFLNK,
                0o100644 => kind == libc::S_IFREG && st.st_mode & 0o100 == 0,
                0o100755 => kind == libc::S_IFREG && st.st_mode & 0o100 != 0,
                _ => false,
            };
            let mtime = (i64::from(e.mtime.0), i64::from(e.mtime.1));
            mode_matches
                && (st.st_mtime, st.st_mtime_nsec) == mtime
                && (st.st_ctime, st.st_ctime_nsec) == (i64::from(e.ctime.0), i64::from(e.ctime.1))
                && st.st_size as u32 == e.size
                && st.st_ino as u32 == e.ino
                && st.st_uid == e.uid
                && st.st_gid == e.gid
                && mtime < self.written
        });
        if !unchanged {
            if self.suspects.len() == SUSPECTS_CAP {
                return None;
            }
            self.suspects.push(e.path.to_vec());
        }
        Some(())
    }
}

/// More suspects than this and the whole tree's status is read: a checkout
/// or a `touch` of everything, which the full status also writes back to
/// the index.
const SUSPECTS_CAP: usize = 1_000;

#[cfg(test)]
fn stat_clean(repo: &git2::Repository) -> bool {
    suspects(repo, &AtomicBool::new(false)).is_some_and(|s| s.is_empty())
}

/// The directories of a work tree, held open along the path of the entry
/// last stated (the index is in path order, so a directory is opened once),
/// each opened by name in its parent without following a symlink: a tracked
/// directory replaced by a symlink is a change, as git sees it, even to a
/// place holding the same files.
struct Dirs {
    top: std::os::fd::OwnedFd,
    /// The open directories below `top`, each with where its name ends in
    /// `held`.
    open: Vec<(usize, std::os::fd::OwnedFd)>,
    /// Their path, each name followed by '/'.
    held: Vec<u8>,
}

impl Dirs {
    fn new(top: &Path) -> Option<Dirs> {
        Some(Dirs {
            top: crate::resolve::open_at(libc::AT_FDCWD, &crate::paths::to_bytes(top), 0)?,
            open: Vec::new(),
            held: Vec::new(),
        })
    }

    /// The lstat of `path` (relative to the top), `name` a buffer for its
    /// last name.
    fn lstat(&mut self, path: &[u8], name: &mut Vec<u8>) -> Option<libc::stat> {
        use std::os::fd::AsRawFd;
        let split = path.iter().rposition(|&b| b == b'/').map_or(0, |s| s + 1);
        let dir = &path[..split];
        while !dir.starts_with(&self.held) {
            self.open.pop();
            self.held.truncate(self.open.last().map_or(0, |o| o.0));
        }
        while self.held.len() < dir.len() {
            let rest = &dir[self.held.len()..];
            let end = rest.iter().position(|&b| b == b'/')?;
            if matches!(&rest[..end], b"" | b"." | b"..") {
                return None;
            }
            let at = self.open.last().map_or(&self.top, |o| &o.1).as_raw_fd();
            let fd = crate::resolve::open_at(at, &rest[..end], libc::O_NOFOLLOW)?;
            self.held.extend_from_slice(&rest[..=end]);
            self.open.push((self.held.len(), fd));
        }
        let at = self.open.last().map_or(&self.top, |o| &o.1).as_raw_fd();
        crate::resolve::stat_at_in(at, &path[split..], libc::AT_SYMLINK_NOFOLLOW, name)
    }
}

/// The id of the tree that `entries` (an index's, in its order: by path,
/// which is git's tree order too) make below the `skip` bytes of path they
/// share.
fn index_tree(entries: &[index::Entry<'_>], skip: usize) -> Option<git2::Oid> {
    let mut body = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let name = entries[i].path.get(skip..)?;
        match name.iter().position(|&b| b == b'/') {
            Some(slash) => {
                let dir = &name[..=slash];
                let end = i + entries[i..]
                    .iter()
                    .take_while(|e| e.path.get(skip..).is_some_and(|n| n.starts_with(dir)))
                    .count();
                let sub = index_tree(&entries[i..end], skip + dir.len())?;
                body.extend_from_slice(b"40000 ");
                body.extend_from_slice(&dir[..slash]);
                body.push(0);
                body.extend_from_slice(sub.as_bytes());
                i = end;
            }
            None => {
                let e = &entries[i];
                body.extend_from_slice(format!("{:o} ", e.mode).as_bytes());
                body.extend_from_slice(name);
                body.push(0);
                body.extend_from_slice(e.id.as_bytes());
                i += 1;
            }
        }
    }
    git2::Oid::hash_object(git2::ObjectType::Tree, &body).ok()
}

/// The git context read on a thread of its own while the command runs, at
/// SCHED_IDLE: a status walk over a large work tree must take only CPU the
/// command leaves idle, or it slows the very command it describes (on two
/// cores, `git status` inside a run ran 1.5x slower beside it).
pub struct Background {
    handle: std::thread::JoinHandle<Result<Option<Context>, git2::Error>>,
    /// (finishing, tid of the thread once it is at idle priority).
    state: std::sync::Arc<std::sync::Mutex<(bool, Option<i32>)>>,
    /// Set once the walk runs at normal priority with nothing to leave CPU
    /// for: it may then use every core.
    hurry: std::sync::Arc<AtomicBool>,
    cwd: std::path::PathBuf,
}

impl Background {
    pub fn start(cwd: &Path) -> Background {
        let state = std::sync::Arc::new(std::sync::Mutex::new((false, None)));
        let hurry = std::sync::Arc::new(AtomicBool::new(false));
        let handle = {
            let state = std::sync::Arc::clone(&state);
            let hurry = std::sync::Arc::clone(&hurry);
            let cwd = cwd.to_path_buf();
            std::thread::spawn(move || {
                if let Ok(mut s) = state.lock()
                    && !s.0
                    && crate::spawn::idle_priority()
                {
                    s.1 = Some(crate::spawn::thread_id());
                }
                read_context(&cwd, &hurry)
            })
        };
        Background {
            handle,
            state,
            hurry,
            cwd: cwd.to_path_buf(),
        }
    }

    /// The context, once the command has ended. A walk still running gets
    /// normal priority back, so that a machine kept busy by others cannot
    /// hold roar at idle priority; where that is refused (it takes root or
    /// CAP_SYS_NICE) the walk is done again here, at normal priority.
    pub fn finish(self) -> Result<Option<Context>, git2::Error> {
        let idle = match self.state.lock() {
            Ok(mut s) => {
                s.0 = true;
                s.1
            }
            Err(_) => None,
        };
        if !self.handle.is_finished() {
            if idle.is_some_and(|tid| !crate::spawn::normal_priority(tid)) {
                return context_with_changes(&self.cwd);
            }
            self.hurry.store(true, Ordering::Relaxed);
        }
        self.handle.join().unwrap_or(Ok(None))
    }
}

/// Dirty but for the paths in `written`: true when some changed path is not
/// one the run wrote, or the changes were too many to list.
pub fn dirty_besides(g: &GitInfo, changed: &[Vec<u8>], written: &[&[u8]]) -> bool {
    if !g.dirty || changed.is_empty() {
        return g.dirty;
    }
    // A set: a run may write many thousands of files.
    let written: std::collections::HashSet<&[u8]> = written.iter().copied().collect();
    changed.iter().any(|c| !written.contains(c.as_slice()))
}

/// The work tree's top level, if `dir` is inside one.
pub fn toplevel(dir: &Path) -> Option<std::path::PathBuf> {
    let repo = git2::Repository::discover(dir).ok()?;
    repo.workdir().map(|w| w.components().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let st = Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(
            st.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    }

    /// A repository with `a.txt` committed as "1".
    fn one_commit(p: &Path) {
        git(p, &["init", "-q"]);
        std::fs::write(p.join("a.txt"), "1").unwrap();
        git(p, &["add", "a.txt"]);
        git(p, &["commit", "-qm", "one"]);
    }

    #[test]
    fn background_read_gives_the_same_answer() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        one_commit(p);
        std::fs::write(p.join("a.txt"), "2").unwrap();
        let direct = context_with_changes(p).unwrap().unwrap();
        // Finished at once (the walk may still be running at idle priority)
        // and after it has surely ended.
        for wait in [0, 200] {
            let bg = Background::start(p);
            std::thread::sleep(std::time::Duration::from_millis(wait));
            let got = bg.finish().unwrap().unwrap();
            assert_eq!(got.info, direct.info);
            assert_eq!(got.changed, direct.changed);
        }
    }

    #[test]
    fn no_repository_is_none() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(context(d.path()).unwrap(), None);
    }

    #[test]
    fn repository_without_commits_has_branch_but_no_commit() {
        let d = tempfile::tempdir().unwrap();
        git(d.path(), &["init", "-q"]);
        let g = context(d.path()).unwrap().unwrap();
        assert_eq!(g.commit, None);
        assert_eq!(g.branch.as_deref(), Some("main"));
        assert!(!g.dirty);
    }

    #[test]
    fn commit_branch_dirty_remote_and_detached_head() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        one_commit(p);
        git(
            p,
            &["remote", "add", "origin", "https://example.invalid/r.git"],
        );
        let g = context(p).unwrap().unwrap();
        let commit = g.commit.clone().unwrap();
        assert_eq!(commit.len(), 40);
        assert_eq!(g.branch.as_deref(), Some("main"));
        assert_eq!(g.remote.as_deref(), Some("https://example.invalid/r.git"));
        assert!(!g.dirty);

        // Untracked files (a run's new outputs) do not make the tree dirty.
        std::fs::write(p.join("new.txt"), "x").unwrap();
        assert!(!context(p).unwrap().unwrap().dirty);
        // Changed tracked content does.
        std::fs::write(p.join("a.txt"), "2").unwrap();
        assert!(context(p).unwrap().unwrap().dirty);

        // ...unless the run wrote it itself.
        let Context { info: g, changed } = context_with_changes(p).unwrap().unwrap();
        let a = crate::paths::to_bytes(&p.canonicalize().unwrap().join("a.txt"));
        assert_eq!(changed, vec![a.clone()]);
        assert!(!dirty_besides(&g, &changed, &[a.as_slice()]));
        assert!(dirty_besides(&g, &changed, &[b"/elsewhere".as_slice()]));

        git(p, &["checkout", "-q", "--detach", "HEAD"]);
        let g = context(&p.join(".")).unwrap().unwrap();
        assert_eq!(g.branch, None);
        assert_eq!(g.commit.as_deref(), Some(commit.as_str()));
    }

    /// A committed tree whose names test git's tree order ("foo.c" before
    /// the directory "foo", "foo0" after it), with an executable and a
    /// symlink; files dated 2020, so that no entry is racily clean. Returns
    /// the repository, opened.
    fn tricky_commit(p: &Path) -> git2::Repository {
        use std::os::unix::fs::PermissionsExt;
        git(p, &["init", "-q"]);
        std::os::unix::fs::symlink("foo.c", p.join("link")).unwrap();
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800);
        for (name, body) in [
            ("foo.c", "c"),
            ("foo/x", "x"),
            ("foo0", "0"),
            ("a-b", "ab"),
            ("a/c/d", "d"),
            ("run.sh", "#!/bin/sh"),
        ] {
            let f = p.join(name);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, body).unwrap();
            if name == "run.sh" {
                std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
            }
            set_mtime(&f, old);
        }
        // Past the symlink's own time (a coarse clock's tick).
        std::thread::sleep(std::time::Duration::from_millis(20));
        git(p, &["add", "-A"]);
        git(p, &["commit", "-qm", "tricky"]);
        git2::Repository::open(p).unwrap()
    }

    /// The work tree, as the changed paths begin.
    fn top(repo: &git2::Repository) -> Vec<u8> {
        crate::paths::to_bytes(repo.workdir().unwrap())
    }

    fn set_mtime(f: &Path, t: std::time::SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn a_clean_tree_is_known_clean_from_the_index_alone() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let repo = tricky_commit(p);
        // The index's trees, hashed here, are HEAD's.
        assert!(stat_clean(&repo));
        let c = context_with_changes(p).unwrap().unwrap();
        assert!(!c.info.dirty);
        assert!(c.changed.is_empty());
    }

    #[test]
    fn the_cache_tree_and_the_tree_hashed_from_the_entries_are_heads() {
        let d = tempfile::tempdir().unwrap();
        let repo = tricky_commit(d.path());
        let data = std::fs::read(d.path().join(".git/index")).unwrap();
        let index = index::parse(&data).unwrap();
        let head = repo.head().unwrap().peel_to_tree().unwrap().id();
        assert_eq!(index.entries.len(), 7);
        assert_eq!(index.tree, Some(head));
        assert_eq!(index_tree(&index.entries, 0), Some(head));
        // Staged, the cache tree's root is invalid and the entries decide.
        std::fs::write(d.path().join("foo0"), "1").unwrap();
        git(d.path(), &["add", "foo0"]);
        let data = std::fs::read(d.path().join(".git/index")).unwrap();
        let index = index::parse(&data).unwrap();
        assert_eq!(index.tree, None);
        assert!(index_tree(&index.entries, 0).is_some_and(|t| t != head));
    }

    /// A path holding a NUL would be stated as its prefix: such an index is
    /// not this reader's.
    #[test]
    fn an_index_path_holding_a_nul_is_refused() {
        let d = tempfile::tempdir().unwrap();
        tricky_commit(d.path());
        let mut data = std::fs::read(d.path().join(".git/index")).unwrap();
        assert!(index::parse(&data).is_some());
        let at = data.windows(6).position(|w| w == b"run.sh").unwrap();
        data[at + 2] = 0;
        assert!(index::parse(&data).is_none());
    }

    #[test]
    fn a_tracked_directory_replaced_by_a_symlink_to_it_is_a_change() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let repo = tricky_commit(p);
        assert!(stat_clean(&repo));
        // The same files, stat for stat, but no longer at their tracked
        // paths as git sees them: `git status` says foo/x was deleted.
        std::fs::rename(p.join("foo"), p.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink("elsewhere", p.join("foo")).unwrap();
        assert!(!stat_clean(&repo));
        assert!(context(p).unwrap().unwrap().dirty);
    }

    /// The status of the suspects alone against libgit2's of the whole
    /// tree, after each kind of change git tells apart.
    #[test]
    fn the_suspects_status_is_the_whole_trees() {
        use std::os::unix::fs::PermissionsExt;
        type Change = fn(&Path);
        let changes: [(&str, Change); 8] = [
            ("nothing", |_| {}),
            ("content, same size", |p| {
                std::fs::write(p.join("foo/x"), "y").unwrap()
            }),
            ("touched, same content", |p| {
                std::fs::write(p.join("a/c/d"), "d").unwrap()
            }),
            ("deleted", |p| std::fs::remove_file(p.join("foo0")).unwrap()),
            ("made executable", |p| {
                std::fs::set_permissions(p.join("foo.c"), std::fs::Permissions::from_mode(0o755))
                    .unwrap()
            }),
            ("file to symlink", |p| {
                std::fs::remove_file(p.join("a-b")).unwrap();
                std::os::unix::fs::symlink("foo.c", p.join("a-b")).unwrap();
            }),
            ("directory to symlink", |p| {
                std::fs::rename(p.join("a"), p.join("moved")).unwrap();
                std::os::unix::fs::symlink("moved", p.join("a")).unwrap();
            }),
            ("directory deleted", |p| {
                std::fs::remove_dir_all(p.join("foo")).unwrap()
            }),
        ];
        for (what, change) in changes {
            let d = tempfile::tempdir().unwrap();
            let p = d.path();
            let repo = tricky_commit(p);
            change(p);
            let only = suspects(&repo, &AtomicBool::new(false)).unwrap();
            assert_eq!(only.is_empty(), what == "nothing", "{what}: {only:?}");
            let mut got = status(&repo, Some(&only)).unwrap();
            let mut whole = status(&repo, None).unwrap();
            got.1.sort();
            whole.1.sort();
            assert_eq!(got, whole, "{what}");
            assert_eq!(
                got.0,
                what != "nothing" && what != "touched, same content",
                "{what}"
            );
        }
    }

    /// A hurried walk (on several threads) finds what a walk alone does,
    /// in the index's order.
    #[test]
    fn a_hurried_walk_finds_the_same_suspects() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        git(p, &["init", "-q"]);
        let n = PARALLEL_FROM + 300;
        for i in 0..n {
            let dir = p.join(format!("d{}", i / 100));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("f{i}")), format!("{i}")).unwrap();
        }
        git(p, &["add", "-A"]);
        git(p, &["commit", "-qm", "many"]);
        // Past the index's own second, so that nothing is racily clean.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        git(p, &["update-index", "--really-refresh"]);
        let repo = git2::Repository::open(p).unwrap();
        assert_eq!(suspects(&repo, &AtomicBool::new(true)), Some(vec![]));
        for i in [3, n / 2, n - 1] {
            std::fs::write(p.join(format!("d{}/f{i}", i / 100)), "changed").unwrap();
        }
        std::fs::remove_file(p.join("d7/f777")).unwrap();
        let alone = suspects(&repo, &AtomicBool::new(false)).unwrap();
        let hurried = suspects(&repo, &AtomicBool::new(true)).unwrap();
        assert_eq!(alone.len(), 4, "{alone:?}");
        assert_eq!(hurried, alone);
    }

    #[test]
    fn an_index_this_reader_does_not_take_is_left_to_libgit2() {
        // Version 4's prefix-compressed paths: libgit2 reads them.
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let repo = tricky_commit(p);
        git(p, &["update-index", "--index-version", "4"]);
        let data = std::fs::read(p.join(".git/index")).unwrap();
        assert!(index::parse(&data).is_none());
        assert!(!stat_clean(&repo));
        assert!(!context(p).unwrap().unwrap().dirty);
        std::fs::write(p.join("foo/x"), "y").unwrap();
        assert!(context(p).unwrap().unwrap().dirty);
        // A split index (libgit2 refuses it too, and the run says so).
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let repo = tricky_commit(p);
        git(p, &["update-index", "--split-index"]);
        let data = std::fs::read(p.join(".git/index")).unwrap();
        assert!(index::parse(&data).is_none());
        assert!(!stat_clean(&repo));
    }

    #[test]
    fn anything_but_a_plainly_clean_tree_is_left_to_libgit2() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let repo = tricky_commit(p);

        // An index written before its entries' times: racily clean, so the
        // content decides (and it is unchanged).
        let index = p.join(".git/index");
        let then = std::fs::metadata(&index).unwrap().modified().unwrap();
        set_mtime(
            &index,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000),
        );
        assert!(!stat_clean(&repo));
        assert!(!context(p).unwrap().unwrap().dirty);
        set_mtime(&index, then);
        assert!(stat_clean(&repo));

        // Staged: the work tree matches the index, which is not HEAD's tree.
        let f = p.join("foo0");
        std::fs::write(&f, "1").unwrap();
        set_mtime(
            &f,
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_801),
        );
        git(p, &["add", "foo0"]);
        let repo = git2::Repository::open(p).unwrap();
        assert!(!stat_clean(&repo));
        let c = context_with_changes(p).unwrap().unwrap();
        assert!(c.info.dirty);
        assert_eq!(c.changed, vec![[top(&repo).as_slice(), b"foo0"].concat()]);
        git(p, &["commit", "-qm", "foo0"]);
        let repo = git2::Repository::open(p).unwrap();
        assert!(stat_clean(&repo));

        // Changed in the work tree, same size.
        std::fs::write(p.join("foo/x"), "y").unwrap();
        assert!(!stat_clean(&repo));
        let c = context_with_changes(p).unwrap().unwrap();
        assert!(c.info.dirty);
        assert_eq!(c.changed, vec![[top(&repo).as_slice(), b"foo/x"].concat()]);

        // Deleted.
        std::fs::write(p.join("foo/x"), "x").unwrap();
        git(p, &["checkout", "-q", "--", "foo/x"]);
        std::fs::remove_file(p.join("a/c/d")).unwrap();
        assert!(!stat_clean(&repo));
        assert!(context(p).unwrap().unwrap().dirty);
    }
}
