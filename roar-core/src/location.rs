//! Where the store lives: `ROAR_DB`, the nearest `.roar/roar.db`, or a new one.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io};

pub const DIR: &str = ".roar";
pub const DB: &str = "roar.db";

/// A located store.
#[derive(Clone, Debug)]
pub struct Location {
    pub db: PathBuf,
    /// The project root: the directory holding `.roar/`.
    pub root: PathBuf,
}

impl Location {
    pub fn roar_dir(&self) -> PathBuf {
        self.db
            .parent()
            .map_or_else(|| self.root.join(DIR), Path::to_path_buf)
    }

    /// What roar itself writes, never a run's input or output: all of
    /// `.roar/`; or, for a store named by `--db`/`ROAR_DB` in some other
    /// directory (the project's own, say), the database and its `-wal`,
    /// `-shm` and `-journal` files, and the `traces/`, `config.toml` and
    /// OpenJD session files beside it, and nothing else there.
    pub fn own_paths(&self) -> Vec<Vec<u8>> {
        let dir = self.roar_dir();
        if dir.file_name().is_some_and(|n| n == DIR) {
            return vec![crate::paths::to_bytes(&dir)];
        }
        let db = crate::paths::to_bytes(&self.db);
        let mut own = vec![db.clone()];
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut p = db.clone();
            p.extend_from_slice(suffix.as_bytes());
            own.push(p);
        }
        for name in ["traces", "config.toml", crate::openjd::SESSIONS_DIR] {
            own.push(crate::paths::to_bytes(&dir.join(name)));
        }
        own
    }
}

/// `--db PATH`, which wins over `ROAR_DB` (OpenJD templates pass their
/// `RoarDb` parameter this way).
static OVERRIDE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sets the store for this process (an empty path means no override).
pub fn set_override(db: PathBuf) {
    if !db.as_os_str().is_empty() {
        let _ = OVERRIDE.set(db);
    }
}

/// `--db-fallback PATH`: the store when neither `--db` nor `ROAR_DB` names
/// one (OpenJD templates: the store where the template was generated, since
/// discovery from the session directory would create one there).
static FALLBACK: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Sets the fallback store (an empty path means none).
pub fn set_fallback(db: PathBuf) {
    if !db.as_os_str().is_empty() {
        let _ = FALLBACK.set(db);
    }
}

/// True when the store was named explicitly (`--db`, `ROAR_DB` or `--db-fallback`).
pub fn explicit() -> bool {
    OVERRIDE.get().is_some()
        || FALLBACK.get().is_some()
        || std::env::var_os("ROAR_DB").is_some_and(|v| !v.is_empty())
}

fn from_env(cwd: &Path) -> Option<Location> {
    let db = OVERRIDE
        .get()
        .map(|p| p.as_os_str().to_os_string())
        .or_else(|| std::env::var_os("ROAR_DB").filter(|v| !v.is_empty()))
        .or_else(|| FALLBACK.get().map(|p| p.as_os_str().to_os_string()))?;
    let db = cwd.join(db);
    let parent = db.parent().unwrap_or(Path::new("/"));
    let root = if parent.file_name().is_some_and(|n| n == DIR) {
        parent.parent().unwrap_or(parent).to_path_buf()
    } else {
        crate::git::toplevel(cwd).unwrap_or_else(|| cwd.to_path_buf())
    };
    Some(Location { db, root })
}

/// The store for commands that read: `ROAR_DB`, else the nearest one up.
pub fn find(cwd: &Path) -> Option<Location> {
    if let Some(l) = from_env(cwd) {
        return Some(l);
    }
    cwd.ancestors().find_map(|d| {
        let db = d.join(DIR).join(DB);
        db.is_file().then(|| Location {
            db,
            root: d.to_path_buf(),
        })
    })
}

/// Like [`find`], failing with a hint when there is no store.
pub fn require(cwd: &Path) -> Result<Location> {
    find(cwd).ok_or_else(|| {
        Error::Invalid(format!(
            "no roar store in {} or any parent (run `roar init`, or set ROAR_DB)",
            cwd.display()
        ))
    })
}

/// Creates `dir/.roar/` (idempotent) and ignores it in git.
pub fn init(dir: &Path) -> Result<Location> {
    let roar = dir.join(DIR);
    std::fs::create_dir_all(&roar).map_err(io(format!("cannot create {}", roar.display())))?;
    if crate::git::toplevel(dir).is_some() {
        let gi = dir.join(".gitignore");
        let existing = std::fs::read_to_string(&gi).unwrap_or_default();
        if !existing
            .lines()
            .any(|l| matches!(l.trim(), ".roar" | ".roar/" | "/.roar" | "/.roar/"))
        {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&gi)
                .map_err(io(format!("cannot update {}", gi.display())))?;
            let sep = if existing.is_empty() || existing.ends_with('\n') {
                ""
            } else {
                "\n"
            };
            writeln!(f, "{sep}.roar/").map_err(io(format!("cannot update {}", gi.display())))?;
        }
    }
    Ok(Location {
        db: roar.join(DB),
        root: dir.to_path_buf(),
    })
}

/// Where `roar init` without DIR, and `roar run` without a store, put it.
pub fn default_root(cwd: &Path) -> PathBuf {
    crate::git::toplevel(cwd).unwrap_or_else(|| cwd.to_path_buf())
}

/// The store for `roar run` and `roar ingest`: the one [`find`] finds (with
/// its directory created when `--db`/`ROAR_DB` names a new one), else a new
/// one at [`default_root`]. The second value is true when the store is new.
pub fn find_or_init(cwd: &Path) -> Result<(Location, bool)> {
    if let Some(l) = find(cwd) {
        if explicit()
            && let Some(dir) = l.db.parent()
            && !dir.is_dir()
        {
            std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        }
        let created = !l.db.exists();
        return Ok((l, created));
    }
    Ok((init(&default_root(cwd))?, true))
}

/// [`find`] for a template or a tool that names the store without creating
/// it: where it is, or where `roar run` would create it.
pub fn find_or_default(cwd: &Path) -> Location {
    find(cwd).unwrap_or_else(|| {
        let root = default_root(cwd);
        Location {
            db: root.join(DIR).join(DB),
            root,
        }
    })
}
