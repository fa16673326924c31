//! What differs between two recorded runs (`roar diff A B`): command, cwd, inputs and outputs
//! by content, the packages they used, git, allowed environment values, how they ended, and
//! how long they took.

use std::collections::{BTreeMap, BTreeSet};

use dag::{Environment, FileRecord, Run};

/// A value that differs: what run A had, and what run B had.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change<T> {
    pub a: T,
    pub b: T,
}

fn change<T: PartialEq + Clone>(a: &T, b: &T) -> Option<Change<T>> {
    (a != b).then(|| Change {
        a: a.clone(),
        b: b.clone(),
    })
}

/// A file in both runs at one path, with other content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changed {
    pub path: Vec<u8>,
    pub a: Option<String>,
    pub b: Option<String>,
}

/// Files (inputs or outputs) compared by path, then by hash. Hidden system files are left out;
/// the packages they belong to are compared instead.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Files {
    /// In B only.
    pub added: Vec<FileRecord>,
    /// In A only.
    pub removed: Vec<FileRecord>,
    pub changed: Vec<Changed>,
}

impl Files {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// A package used by one run only, or by both at other versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageChange {
    pub manager: String,
    pub name: String,
    /// `None`: not used by that run.
    pub a: Option<String>,
    pub b: Option<String>,
}

/// How a run ended: exit code, signal.
pub type Ending = (Option<i32>, Option<i32>);

/// Everything that differs; `None` and empty lists are "the same".
#[derive(Clone, Debug, PartialEq)]
pub struct Diff {
    pub command: Option<Change<Vec<Vec<u8>>>>,
    pub cwd: Option<Change<Vec<u8>>>,
    pub inputs: Files,
    pub outputs: Files,
    pub packages: Vec<PackageChange>,
    /// The container image each ran in (`name@id`; None on the host).
    pub image: Option<Change<Option<String>>>,
    pub git_commit: Option<Change<Option<String>>>,
    pub git_dirty: Option<Change<Option<bool>>>,
    /// Allowed variables whose recorded values differ (`None`: not set, or no value recorded).
    pub env: Vec<(String, Change<Option<String>>)>,
    pub ending: Option<Change<Ending>>,
    /// Always given: two runs never take exactly as long.
    pub duration_ms: Change<Option<u64>>,
}

impl Diff {
    /// Nothing differs but the time taken.
    pub fn same(&self) -> bool {
        self.command.is_none()
            && self.cwd.is_none()
            && self.inputs.is_empty()
            && self.outputs.is_empty()
            && self.packages.is_empty()
            && self.image.is_none()
            && self.git_commit.is_none()
            && self.git_dirty.is_none()
            && self.env.is_empty()
            && self.ending.is_none()
    }
}

/// Compares run A (with its environment) to run B.
pub fn diff(a: &Run, env_a: &Environment, b: &Run, env_b: &Environment) -> Diff {
    let git = |r: &Run| {
        (
            r.git.as_ref().and_then(|g| g.commit.clone()),
            r.git.as_ref().map(|g| g.dirty),
        )
    };
    let (commit_a, dirty_a) = git(a);
    let (commit_b, dirty_b) = git(b);
    Diff {
        command: change(&a.command, &b.command),
        cwd: change(&a.cwd, &b.cwd),
        inputs: files(&a.inputs, &b.inputs),
        outputs: files(&a.outputs, &b.outputs),
        packages: packages(env_a, env_b),
        image: change(&image(env_a), &image(env_b)),
        git_commit: change(&commit_a, &commit_b),
        git_dirty: change(&dirty_a, &dirty_b),
        env: env(&a.env, &b.env),
        ending: change(&(a.exit_code, a.signal), &(b.exit_code, b.signal)),
        duration_ms: Change {
            a: a.duration_ms,
            b: b.duration_ms,
        },
    }
}

/// `image@image_id` of the container a run ran in.
fn image(e: &Environment) -> Option<String> {
    e.container.as_ref().map(|c| {
        format!(
            "{}@{}",
            c.image.as_deref().unwrap_or("?"),
            c.image_id.as_deref().unwrap_or("?")
        )
    })
}

fn files(a: &[FileRecord], b: &[FileRecord]) -> Files {
    let shown = |v: &[FileRecord]| -> BTreeMap<Vec<u8>, FileRecord> {
        v.iter()
            .filter(|f| !f.filtered)
            .map(|f| (f.path.clone(), f.clone()))
            .collect()
    };
    let (a, b) = (shown(a), shown(b));
    let mut out = Files::default();
    for (path, fa) in &a {
        match b.get(path) {
            None => out.removed.push(fa.clone()),
            Some(fb) if fb.hash != fa.hash => out.changed.push(Changed {
                path: path.clone(),
                a: fa.hash.clone(),
                b: fb.hash.clone(),
            }),
            Some(_) => {}
        }
    }
    out.added = b
        .into_iter()
        .filter(|(p, _)| !a.contains_key(p))
        .map(|(_, f)| f)
        .collect();
    out
}

fn packages(a: &Environment, b: &Environment) -> Vec<PackageChange> {
    // A package may be used at two versions at once (two site-packages): compare version sets.
    let by_name = |e: &Environment| {
        let mut m: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for p in &e.packages {
            m.entry((p.manager.clone(), p.name.clone()))
                .or_default()
                .insert(p.version.clone());
        }
        m
    };
    let (a, b) = (by_name(a), by_name(b));
    let keys: BTreeSet<&(String, String)> = a.keys().chain(b.keys()).collect();
    let join =
        |v: Option<&BTreeSet<String>>| v.map(|s| s.iter().cloned().collect::<Vec<_>>().join(", "));
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| PackageChange {
            manager: k.0.clone(),
            name: k.1.clone(),
            a: join(a.get(k)),
            b: join(b.get(k)),
        })
        .collect()
}

type EnvList = [(String, Option<String>)];

fn env(a: &EnvList, b: &EnvList) -> Vec<(String, Change<Option<String>>)> {
    let map = |v: &EnvList| -> BTreeMap<String, Option<String>> { v.iter().cloned().collect() };
    let (a, b) = (map(a), map(b));
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter_map(|n| {
            let va = a.get(n).cloned().flatten();
            let vb = b.get(n).cloned().flatten();
            // Only values roar was allowed to record can differ visibly.
            change(&va, &vb).map(|c| (n.clone(), c))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dag::Package;

    fn file(path: &str, hash: &str) -> FileRecord {
        FileRecord {
            path: path.into(),
            hash: Some(hash.into()),
            size: Some(1),
            filtered: false,
        }
    }

    fn pip(name: &str, version: &str) -> Package {
        Package {
            manager: "pip".into(),
            name: name.into(),
            version: version.into(),
            location: Vec::new(),
        }
    }

    #[test]
    fn files_packages_and_env() {
        let f = files(
            &[file("/a", "1"), file("/b", "2"), file("/c", "3")],
            &[file("/b", "2"), file("/c", "4"), file("/d", "5")],
        );
        assert_eq!(f.removed, vec![file("/a", "1")]);
        assert_eq!(f.added, vec![file("/d", "5")]);
        assert_eq!(
            f.changed,
            vec![Changed {
                path: b"/c".to_vec(),
                a: Some("3".into()),
                b: Some("4".into())
            }]
        );
        let ea = Environment {
            packages: vec![pip("six", "1.16.0"), pip("x", "1")],
            host: None,
            container: None,
        };
        let eb = Environment {
            packages: vec![pip("six", "1.17.0"), pip("x", "1"), pip("y", "2")],
            host: None,
            container: Some(dag::Container {
                runtime: "docker".into(),
                image: Some("r".into()),
                image_id: Some("sha256:2".into()),
                id: None,
            }),
        };
        assert_eq!(
            image(&eb).as_deref(),
            Some("r@sha256:2"),
            "a run in a container against one on the host"
        );
        let p = packages(&ea, &eb);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].a.as_deref(), p[0].b.as_deref()),
            (Some("1.16.0"), Some("1.17.0"))
        );
        assert_eq!((p[1].a.as_deref(), p[1].b.as_deref()), (None, Some("2")));
        let e = env(
            &[("PATH".into(), Some("/bin".into())), ("HOME".into(), None)],
            &[
                ("PATH".into(), Some("/usr/bin".into())),
                ("HOME".into(), None),
            ],
        );
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].0, "PATH");
    }
}
