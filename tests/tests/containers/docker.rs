//! A private dockerd for one test, and base images built without a
//! registry (mmdebstrap, busybox-static, host binaries), cached as tar files
//! across test runs and clones (see [`image_dir`]).
//!
//! The daemon touches nothing on the host: no bridge, no iptables, its own
//! data root, exec root and socket in a temp dir, stopped and removed when
//! the [`Docker`] is dropped. Containers run with `--network none`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tests::{is_root, output};

/// Debian's dynamic client: the static one first on PATH here is not
/// a program the preload library can see into.
const CLIENT: &str = "/usr/bin/docker";

/// Whether the container tests run here; None (with the reason printed)
/// when they are skipped. Under CI as root they must run: then a missing
/// tool is a failure, not a skip.
pub fn available() -> Option<()> {
    available_for(false)
}

/// [`available`], for tests that mount roar or the library into images
/// unlike this machine: they need what install.sh installed.
pub fn available_installed() -> Option<()> {
    available_for(true)
}

fn available_for(installed: bool) -> Option<()> {
    let ci = std::env::var_os("CI").is_some();
    let missing: Vec<&str> = [
        "/usr/sbin/dockerd",
        CLIENT,
        "/usr/bin/mmdebstrap",
        "/bin/busybox",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .collect();
    if !is_root() {
        assert!(!ci, "the container tests need root under CI");
        eprintln!("skipped: the container tests need root (they start their own dockerd)");
        return None;
    }
    if !missing.is_empty() {
        assert!(!ci, "missing {missing:?}: scripts/deps.sh installs them");
        eprintln!(
            "skipped: missing {missing:?} (scripts/deps.sh installs docker.io, mmdebstrap, busybox-static)"
        );
        return None;
    }
    if installed && !tests::testing_installed() {
        assert!(
            !ci,
            "the container tests need ROAR_TEST_BIN and ROAR_TEST_LIB under CI"
        );
        eprintln!(
            "skipped: the workspace build is linked for this machine; set ROAR_TEST_BIN and \
             ROAR_TEST_LIB to what `PREFIX=DIR ./install.sh` installed"
        );
        return None;
    }
    Some(())
}

pub struct Docker {
    dir: TempDir,
    daemon: Child,
}

impl Docker {
    pub fn start() -> Docker {
        let dir = tempfile::Builder::new()
            .prefix("roar-dockerd-")
            .tempdir_in(std::env::temp_dir())
            .unwrap();
        let d = dir.path();
        let log = fs::File::create(d.join("dockerd.log")).unwrap();
        let daemon = Command::new("/usr/sbin/dockerd")
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-forward=false",
                "--ip-masq=false",
            ])
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("--host")
            .arg(format!("unix://{}", d.join("docker.sock").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let docker = Docker { dir, daemon };
        let t0 = Instant::now();
        while !docker
            .cmd()
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "dockerd did not come up:\n{}",
                fs::read_to_string(docker.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        docker
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("docker.sock").display())
    }

    /// A docker client command talking to this daemon.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(CLIENT);
        c.env("DOCKER_HOST", self.host()).stdin(Stdio::null());
        c
    }

    /// `docker run --rm --network none ARGS...`, its whole output.
    pub fn run(&self, args: &[&str]) -> Output {
        output(
            self.cmd()
                .args(["run", "--rm", "--network", "none"])
                .args(args),
        )
    }

    /// Imports the cached image `name` (building it first if needed).
    pub fn image(&self, name: &str) -> String {
        let tar = image_tar(name);
        let out = output(
            self.cmd()
                .args(["import", "-", name])
                .stdin(fs::File::open(&tar).unwrap()),
        );
        assert!(out.status.success(), "docker import {name}: {out:?}");
        name.to_string()
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        // SIGTERM: dockerd stops its containers and unmounts.
        let _ = Command::new("kill")
            .arg(self.daemon.id().to_string())
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // Overlay mounts the daemon left (it was killed): unmount, then remove.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {0}[^ ]*' /proc/self/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.path().display()
            ))
            .status();
    }
}

/// Bumped whenever a recipe below changes, so that no cached tar outlives it.
const RECIPES: u32 = 2;

/// Where image tars are kept: `ROAR_TEST_IMAGES`, else a cache for the
/// whole machine (these tests run as root), so that every clone on it (CI
/// runs in a fresh one) builds each image once.
fn image_dir() -> PathBuf {
    std::env::var_os("ROAR_TEST_IMAGES")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/roar-tests/images"))
}

/// The tar of image `name`, built once per machine (a lock serialises
/// concurrent tests) and kept in [`image_dir`].
pub fn image_tar(name: &str) -> PathBuf {
    let dir = image_dir();
    fs::create_dir_all(&dir).unwrap();
    let lock = fs::File::create(dir.join(format!("{name}.lock"))).unwrap();
    lock.lock().unwrap();
    let tar = dir.join(format!("{name}.r{RECIPES}.tar"));
    if tar.is_file() {
        return tar;
    }
    // mmdebstrap picks the format from the extension.
    let tmp = dir.join(format!("{name}.tmp.tar"));
    match name {
        "bullseye" | "bookworm" => {
            let out = output(
                Command::new("nice")
                    .args([
                        "-n",
                        "15",
                        "mmdebstrap",
                        "--quiet",
                        "--variant=minbase",
                        // Less to unpack and import: no docs, man pages or
                        // translations.
                        "--dpkgopt=path-exclude=/usr/share/doc/*",
                        "--dpkgopt=path-exclude=/usr/share/man/*",
                        "--dpkgopt=path-exclude=/usr/share/locale/*",
                        name,
                    ])
                    .arg(&tmp),
            );
            assert!(out.status.success(), "mmdebstrap {name}: {out:?}");
        }
        "busybox" => staged_tar(&tmp, busybox_root),
        "nolibgcc" => staged_tar(&tmp, nolibgcc_root),
        _ => panic!("no recipe for image {name}"),
    }
    fs::rename(&tmp, &tar).unwrap();
    tar
}

fn staged_tar(tar: &Path, fill: fn(&Path)) {
    let stage = TempDir::new().unwrap();
    fill(stage.path());
    for d in ["tmp", "proc", "sys", "dev", "etc"] {
        fs::create_dir_all(stage.path().join(d)).unwrap();
    }
    let out = output(
        Command::new("tar")
            .arg("-C")
            .arg(stage.path())
            .arg("-cf")
            .arg(tar)
            .arg("."),
    );
    assert!(out.status.success(), "tar: {out:?}");
}

/// busybox-static and a link per applet: no libc at all.
fn busybox_root(root: &Path) {
    let bin = root.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let list = output(Command::new("/bin/busybox").arg("--list"));
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
}

/// A few host programs and the libraries `ldd` names for them: glibc, but
/// no libgcc_s (none of these need it).
fn nolibgcc_root(root: &Path) {
    let progs = [
        "/bin/sh",
        "/bin/cat",
        "/bin/echo",
        "/bin/ls",
        "/bin/mkdir",
        "/bin/true",
    ];
    for p in progs {
        copy_into(root, Path::new(p));
        let ldd = output(Command::new("ldd").arg(p));
        for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
            if word.starts_with('/') {
                copy_into(root, Path::new(word));
            }
        }
    }
    // glibc's own libraries, as the libc6 package ships them (the preload
    // library links libdl and libpthread for glibc 2.28's dlsym and
    // pthread symbols): a glibc image always has them.
    for lib in ["libdl.so.2", "libpthread.so.0", "librt.so.1", "libm.so.6"] {
        let p = Path::new("/lib/x86_64-linux-gnu").join(lib);
        if p.exists() {
            copy_into(root, &p);
        }
    }
    let mut found = Vec::new();
    for d in [
        "lib",
        "lib64",
        "usr/lib",
        "lib/x86_64-linux-gnu",
        "usr/lib/x86_64-linux-gnu",
    ] {
        if let Ok(rd) = fs::read_dir(root.join(d)) {
            found.extend(rd.flatten().map(|e| e.file_name()));
        }
    }
    assert!(
        !found
            .iter()
            .any(|f| f.to_string_lossy().starts_with("libgcc_s")),
        "the no-libgcc image holds libgcc_s: {found:?}"
    );
}

fn copy_into(root: &Path, p: &Path) {
    let dest = root.join(p.strip_prefix("/").unwrap());
    fs::create_dir_all(dest.parent().unwrap()).unwrap();
    fs::copy(p, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", p.display()));
}
