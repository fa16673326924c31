//! Which recorded paths are system or tool files, hidden unless `--all`.

use crate::paths::is_under;

/// Prefixes whose files belong to the system, not the project.
const SYSTEM: &[&str] = &[
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/bin",
    "/sbin",
    "/etc",
    "/var/lib",
    "/var/cache",
    "/nix/store",
    "/snap",
];
/// Below the system prefixes, where users keep their own data: never hidden
/// as system files (the config's `ignore` still can).
const USER_DATA: &[&str] = &["/dev/shm"];
/// Tool installs below the home directory.
const HOME_TOOLS: &[&str] = &[
    ".pyenv",
    ".rustup",
    ".cargo",
    ".cache",
    ".local/lib",
    ".conda",
    ".nvm",
    "miniconda3",
    "anaconda3",
];
/// Path components that mark interpreter installs, caches and VCS internals.
const COMPONENTS: &[&str] = &[
    "site-packages",
    "dist-packages",
    "__pycache__",
    ".git",
    "node_modules",
    ".roar",
];

#[derive(Clone, Debug, Default)]
pub struct Filter {
    root: Vec<u8>,
    hidden: Vec<Vec<u8>>,
    /// The config's own `ignore` prefixes (also in `hidden`).
    ignored: Vec<Vec<u8>>,
    kept: Vec<Vec<u8>>,
    user_data: Vec<Vec<u8>>,
}

impl Filter {
    /// `root` is the project root (never hidden as system files); `ignore`
    /// and `keep` come from the project's config.
    pub fn new(root: &[u8], home: Option<&[u8]>, ignore: &[String], keep: &[String]) -> Self {
        let mut hidden: Vec<Vec<u8>> = SYSTEM.iter().map(|s| s.as_bytes().to_vec()).collect();
        if let Some(home) = home {
            for t in HOME_TOOLS {
                let mut p = home.to_vec();
                p.push(b'/');
                p.extend_from_slice(t.as_bytes());
                hidden.push(p);
            }
        }
        hidden.extend(
            ignore
                .iter()
                .map(|s| s.trim_end_matches('/').as_bytes().to_vec()),
        );
        let kept = keep
            .iter()
            .map(|s| s.trim_end_matches('/').as_bytes().to_vec())
            .collect();
        let user_data = USER_DATA.iter().map(|s| s.as_bytes().to_vec()).collect();
        Filter {
            root: root.to_vec(),
            hidden,
            ignored: ignore
                .iter()
                .map(|s| s.trim_end_matches('/').as_bytes().to_vec())
                .collect(),
            kept,
            user_data,
        }
    }

    pub fn hides(&self, path: &[u8]) -> bool {
        if self.kept.iter().any(|k| is_under(path, k)) {
            return false;
        }
        let components = path.split(|b| *b == b'/');
        let mut by_component = false;
        for c in components {
            if COMPONENTS.iter().any(|x| x.as_bytes() == c) {
                by_component = true;
            }
        }
        if by_component || path.ends_with(b".pyc") {
            return true;
        }
        if is_under(path, &self.root) {
            return false;
        }
        if self.user_data.iter().any(|u| is_under(path, u)) {
            return self.ignored.iter().any(|h| is_under(path, h));
        }
        self.hidden.iter().any(|h| is_under(path, h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_system_but_never_the_project() {
        let f = Filter::new(
            b"/usr/src/proj",
            Some(b"/root"),
            &["/scratch".into()],
            &["/etc/app".into()],
        );
        assert!(f.hides(b"/usr/lib/x.so"));
        assert!(!f.hides(b"/usr/src/proj/data.csv"));
        assert!(f.hides(b"/usr/src/proj/.git/index"));
        assert!(f.hides(b"/usr/src/proj/.venv/lib/python3.11/site-packages/a.py"));
        assert!(f.hides(b"/root/.pyenv/versions/3.11.7/lib/python3.11/json/__init__.py"));
        assert!(f.hides(b"/scratch/tmp"));
        assert!(!f.hides(b"/etc/app/conf"));
        assert!(!f.hides(b"/tmp/proj/x"));
        assert!(!f.hides(b"/data/raw.csv"));
        assert!(!f.hides(b"/dev/shm/scratch.bin"), "user data in /dev/shm");
        assert!(f.hides(b"/dev/null"));
        let g = Filter::new(b"/p", None, &["/dev/shm/cache".into()], &[]);
        assert!(g.hides(b"/dev/shm/cache/x"), "unless the config ignores it");
        assert!(!g.hides(b"/dev/shm/other"));
    }
}
