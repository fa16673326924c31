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
    let statuses = repo.statuses(Some(&mut opts))?;
    let dirty = !statuses.is_empty();
    let mut changed = Vec::new();
    if let Some(top) = repo.workdir()
        && statuses.len() <= CHANGED_CAP
    {
        let mut prefix = crate::paths::to_bytes(top);
        if prefix.last() != Some(&b'/') {
            prefix.push(b'/');
        }
        for e in statuses.iter() {
            changed.push([prefix.as_slice(), e.path_bytes()].concat());
        }
    }
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
}
