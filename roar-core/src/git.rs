//! Git context of a run, read with libgit2 (no git binary needed).

use std::path::Path;

use dag::GitInfo;

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
    // Dirty means tracked content differs from HEAD; untracked files (the
    // run's own new outputs, typically) do not make a tree dirty.
    let mut opts = git2::StatusOptions::new();
    opts.include_untracked(false)
        .include_ignored(false)
        .exclude_submodules(true)
        // Write the refreshed stat cache back, as `git status` does; otherwise
        // every run re-hashes each racily-clean or touched tracked file
        // (seconds for a few hundred MiB of tracked data). libgit2 skips the
        // write when another git holds the index lock.
        .update_index(true);
    let (dirty, changed) = if stat_clean(&repo) {
        (false, Vec::new())
    } else {
        let statuses = repo.statuses(Some(&mut opts))?;
        (!statuses.is_empty(), changed_paths(&repo, &statuses))
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

/// Whether the work tree is clean by the index's stat data alone, as git
/// itself decides: every tracked file's lstat matches its index entry
/// exactly (and is not racily clean: changed in the index's own second or
/// later), and the tree the index describes is HEAD's. Its tree ids are
/// hashed here from the index, never written. Anything else (a
/// difference, a conflict, an intent-to-add or skip-worktree entry, no
/// HEAD) says false, and libgit2's status, which reads content, decides.
/// libgit2 walks the work tree's directories (ignored ones too) and reads
/// HEAD's trees: 64.5 ms for Django's 6,810 files beside 5,000 ignored ones,
/// where this takes 21.5 (most of it one lstat per file).
fn stat_clean(repo: &git2::Repository) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Some(top), Ok(index)) = (repo.workdir(), repo.index()) else {
        return false;
    };
    let Ok(written) = std::fs::metadata(repo.path().join("index")) else {
        return false;
    };
    let written = (written.mtime(), written.mtime_nsec());
    let Some(head) = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_tree().ok())
        .map(|t| t.id())
    else {
        return false;
    };
    let mut entries = Vec::with_capacity(index.len());
    for e in index.iter() {
        const STAGE: u16 = 0x3000;
        if e.flags & STAGE != 0 || e.flags_extended != 0 {
            return false;
        }
        let gitlink = e.mode == 0o160000;
        if !gitlink {
            let path = top.join(crate::paths::as_path(&e.path));
            let Ok(m) = std::fs::symlink_metadata(&path) else {
                return false;
            };
            let mtime = secs_nsecs(e.mtime);
            let mode_matches = match e.mode {
                0o120000 => m.file_type().is_symlink(),
                0o100644 => m.is_file() && m.mode() & 0o100 == 0,
                0o100755 => m.is_file() && m.mode() & 0o100 != 0,
                _ => false,
            };
            if !mode_matches
                || (m.mtime(), m.mtime_nsec()) != mtime
                || (m.ctime(), m.ctime_nsec()) != secs_nsecs(e.ctime)
                || m.size() as u32 != e.file_size
                || m.ino() as u32 != e.ino
                || m.uid() != e.uid
                || m.gid() != e.gid
                || mtime >= written
            {
                return false;
            }
        }
        entries.push((e.path, e.mode, e.id));
    }
    index_tree(&entries, 0).is_some_and(|id| id == head)
}

/// An index entry's time as `MetadataExt` gives a file's: seconds and
/// nanoseconds.
fn secs_nsecs(t: git2::IndexTime) -> (i64, i64) {
    (i64::from(t.seconds()), i64::from(t.nanoseconds()))
}

/// The id of the tree that `entries` (an index's, in its order: by path,
/// which is git's tree order too) make below the `skip` bytes of path they
/// share.
fn index_tree(entries: &[(Vec<u8>, u32, git2::Oid)], skip: usize) -> Option<git2::Oid> {
    let mut body = Vec::new();
    let mut i = 0;
    while i < entries.len() {
        let name = entries[i].0.get(skip..)?;
        match name.iter().position(|&b| b == b'/') {
            Some(slash) => {
                let dir = &name[..=slash];
                let end = i + entries[i..]
                    .iter()
                    .take_while(|e| e.0.get(skip..).is_some_and(|n| n.starts_with(dir)))
                    .count();
                let sub = index_tree(&entries[i..end], skip + dir.len())?;
                body.extend_from_slice(b"40000 ");
                body.extend_from_slice(&dir[..slash]);
                body.push(0);
                body.extend_from_slice(sub.as_bytes());
                i = end;
            }
            None => {
                let (_, mode, id) = &entries[i];
                body.extend_from_slice(format!("{mode:o} ").as_bytes());
                body.extend_from_slice(name);
                body.push(0);
                body.extend_from_slice(id.as_bytes());
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
    cwd: std::path::PathBuf,
}

impl Background {
    pub fn start(cwd: &Path) -> Background {
        let state = std::sync::Arc::new(std::sync::Mutex::new((false, None)));
        let handle = {
            let state = std::sync::Arc::clone(&state);
            let cwd = cwd.to_path_buf();
            std::thread::spawn(move || {
                if let Ok(mut s) = state.lock()
                    && !s.0
                    && crate::spawn::idle_priority()
                {
                    s.1 = Some(crate::spawn::thread_id());
                }
                context_with_changes(&cwd)
            })
        };
        Background {
            handle,
            state,
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
        if !self.handle.is_finished()
            && let Some(tid) = idle
            && !crate::spawn::normal_priority(tid)
        {
            return context_with_changes(&self.cwd);
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
