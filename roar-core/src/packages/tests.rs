use std::fs;

use super::*;

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// A site-packages with one pip and one conda-installed dist, a conda prefix, a dpkg database.
fn world(root: &Path) {
    let site = root.join("venv/lib/python3.11/site-packages");
    write(&site.join("six.py"), "");
    write(
        &site.join("six-1.17.0.dist-info/METADATA"),
        "Metadata-Version: 2.1\nName: six\nVersion: 1.17.0\n\nlong text\nVersion: 9\n",
    );
    write(
        &site.join("six-1.17.0.dist-info/RECORD"),
        "six.py,sha256=x,1\n__pycache__/six.cpython-311.pyc,,\n\"we,ird.py\",,\n../../../bin/six-tool,,\n",
    );
    write(&site.join("six-1.17.0.dist-info/INSTALLER"), "pip\n");
    write(&site.join("np-2.0.dist-info/RECORD"), "np.py,,\n");
    write(&site.join("np-2.0.dist-info/INSTALLER"), "conda\n");
    write(&root.join("venv/conda-meta/history"), "");
    write(
        &root.join("venv/conda-meta/numpy-2.0-py311.json"),
        r#"{"name": "numpy", "version": "2.0", "files": ["lib/python3.11/site-packages/np.py"]}"#,
    );
    write(
        &root.join("dpkg/info/coreutils.list"),
        "/.\n/bin\n/bin/cat\n/usr/bin/env\n",
    );
    write(
        &root.join("dpkg/info/libc6:amd64.list"),
        "/lib/x86_64-linux-gnu/libc.so.6\n",
    );
    write(
        &root.join("dpkg/status"),
        "Package: coreutils\nStatus: install ok installed\nArchitecture: amd64\nVersion: 9.1-1\n\n\
         Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n\n\
         Package: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
    );
}

#[test]
fn maps_used_files_to_their_packages_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    world(root);
    let r = to_bytes(root);
    let p = |s: &str| [&r[..], s.as_bytes()].concat();
    let site = p("/venv/lib/python3.11/site-packages");
    let paths = [
        p("/venv/lib/python3.11/site-packages/__pycache__/six.cpython-311.pyc"),
        p("/venv/lib/python3.11/site-packages/six-1.17.0.dist-info/METADATA"),
        p("/venv/lib/python3.11/site-packages/np.py"),
        b"/usr/bin/env".to_vec(),
        b"/usr/lib/x86_64-linux-gnu/libc.so.6".to_vec(),
        b"/proc/self/maps".to_vec(),
        b"/opt/nobody/owns/this".to_vec(),
    ];
    let got = used_with(paths.iter().map(Vec::as_slice), &root.join("dpkg"));
    let want = vec![
        Package {
            manager: "conda".into(),
            name: "numpy".into(),
            version: "2.0".into(),
            location: p("/venv"),
        },
        Package {
            manager: "dpkg".into(),
            name: "coreutils".into(),
            version: "9.1-1".into(),
            location: Vec::new(),
        },
        Package {
            manager: "dpkg".into(),
            name: "libc6".into(),
            version: "2.36-9".into(),
            location: Vec::new(),
        },
        Package {
            manager: "pip".into(),
            name: "six".into(),
            version: "1.17.0".into(),
            location: site.clone(),
        },
    ];
    assert_eq!(got, want);
    // A second lookup builds the full dpkg index and finds the same.
    let again = used_with([&b"/bin/cat"[..]], &root.join("dpkg"));
    assert_eq!(again[0].name, "coreutils");
    let now = current_versions_with(&want, &root.join("dpkg"));
    assert_eq!(
        now,
        ["2.0", "9.1-1", "2.36-9", "1.17.0"].map(|v| Some(v.to_string()))
    );
}

#[test]
fn record_paths_and_names() {
    assert_eq!(record_path(b"a/b.py,sha256=x,3"), b"a/b.py");
    assert_eq!(record_path(b"\"a,b.py\",,"), b"a,b.py");
    assert!(same_pip_name("Typing_Extensions", "typing-extensions"));
    assert!(!same_pip_name("six", "sixx"));
    assert_eq!(
        dpkg_names(b"/usr/lib/nonexistent-x"),
        vec![
            b"/usr/lib/nonexistent-x".to_vec(),
            b"/lib/nonexistent-x".to_vec()
        ]
    );
}

#[test]
fn the_pip_index_is_cached_until_the_site_directory_changes() {
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site-packages");
    let dist = |v: &str| {
        let info = site.join(format!("six-{v}.dist-info"));
        write(
            &info.join("METADATA"),
            &format!("Name: six\nVersion: {v}\n\n"),
        );
        write(&info.join("RECORD"), "six.py,,\n");
        info
    };
    write(&site.join("six.py"), "");
    let old = dist("1.16.0");
    let cache = dir.path().join("cache");
    let file = to_bytes(&site.join("six.py"));
    let owner = || {
        pip_index_cached_at(&site, Some(cache.join("pip")))
            .owner(&file)
            .cloned()
    };
    assert_eq!(owner(), Some(("six".into(), "1.16.0".into())));
    assert!(cache.join("pip").is_file(), "written for the next run");
    // The cache, not the RECORDs, answers while the directory is unchanged.
    std::fs::write(old.join("RECORD"), "other.py,,\n").unwrap();
    assert_eq!(owner(), Some(("six".into(), "1.16.0".into())));
    // An upgrade replaces the dist-info: the directory changes, and so does the answer.
    std::fs::remove_dir_all(&old).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    dist("1.17.0");
    assert_eq!(owner(), Some(("six".into(), "1.17.0".into())));
}

/// A dpkg database under `root/dpkg` with one installed package listing `files`.
fn one_package_dpkg(root: &Path, name: &str, version: &str, files: &str) {
    write(&root.join(format!("dpkg/info/{name}.list")), files);
    write(
        &root.join("dpkg/status"),
        &format!("Package: {name}\nStatus: install ok installed\nVersion: {version}\n\n"),
    );
}

#[test]
fn a_symlink_is_resolved_only_when_its_own_name_is_unlisted_and_git_internals_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let listed = root.join("opt/tool/bin/tool");
    write(&listed, "");
    std::os::unix::fs::symlink(&listed, root.join("tool-link")).unwrap();
    let repo_file = root.join("repo/.git/hooks/pre-commit");
    write(&repo_file, "");
    let list = format!("{}\n{}\n", listed.display(), repo_file.display());
    one_package_dpkg(root, "tool", "3", &list);
    let names = |paths: &[&Path]| -> Vec<String> {
        let paths: Vec<Vec<u8>> = paths.iter().map(|p| to_bytes(p)).collect();
        used_with(paths.iter().map(Vec::as_slice), &root.join("dpkg"))
            .into_iter()
            .map(|p| format!("{} {}", p.name, p.version))
            .collect()
    };
    assert_eq!(names(&[&root.join("tool-link")]), ["tool 3"]);
    assert_eq!(names(&[&repo_file]), Vec::<String>::new());
}

#[test]
fn a_path_resolves_through_linked_directories_and_a_linked_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    write(&root.join("real/sub/file"), "");
    std::os::unix::fs::symlink(root.join("real"), root.join("dirlink")).unwrap();
    std::os::unix::fs::symlink(root.join("real/sub/file"), root.join("real/sub/filelink")).unwrap();
    let mut dirs = HashMap::new();
    let via = |p: &str| to_bytes(&root.join(p));
    for p in ["dirlink/sub/file", "dirlink/sub/filelink", "real/sub/file"] {
        assert_eq!(
            resolved(&via(p), &mut dirs),
            Some(root.join("real/sub/file")),
            "{p}"
        );
    }
    assert_eq!(resolved(&via("dirlink/sub/missing"), &mut dirs), None);
    assert_eq!(resolved(b"/", &mut dirs), Some(PathBuf::from("/")));
}

#[test]
fn files_under_a_home_directory_are_never_dpkg_s() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    one_package_dpkg(
        root,
        "odd",
        "1",
        "/home/u/.pyenv/bin/python\n/usr/bin/odd\n",
    );
    let got = |p: &[u8]| used_with([p], &root.join("dpkg")).len();
    assert_eq!(got(b"/home/u/.pyenv/bin/python"), 0);
    assert_eq!(got(b"/usr/bin/odd"), 1);
}
