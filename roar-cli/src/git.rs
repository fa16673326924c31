//! Git context of a run, read with libgit2 (no git binary needed).

use std::path::Path;

use dag::GitInfo;

/// The repository around `cwd`, or None outside any repository.
/// A repository with no commits has no commit; a detached HEAD no branch.
pub fn context(cwd: &Path) -> Result<Option<GitInfo>, git2::Error> {
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
        .exclude_submodules(true);
    let dirty = repo.statuses(Some(&mut opts)).map(|s| !s.is_empty())?;
    let remote = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().map(str::to_string))
        .or_else(|| {
            let names = repo.remotes().ok()?;
            let first = names.get(0)?.to_string();
            repo.find_remote(&first).ok()?.url().map(str::to_string)
        });
    Ok(Some(GitInfo {
        commit,
        branch,
        dirty,
        remote,
    }))
}

/// The work tree's top level, if `dir` is inside one.
pub fn toplevel(dir: &Path) -> Option<std::path::PathBuf> {
    let repo = git2::Repository::discover(dir).ok()?;
    repo.workdir().map(|w| w.components().collect())
}
