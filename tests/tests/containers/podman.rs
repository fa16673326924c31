//! A private Podman for one test: its own containers.conf (runc, the rlimits this machine
//! allows: see platform notes) and storage (vfs, so nothing stays mounted) in a temp dir,
//! passed to every `podman` through `CONTAINERS_CONF` and `CONTAINERS_STORAGE_CONF`. Images
//! come from the same cached tars as the Docker harness's.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

use tempfile::TempDir;
use tests::output;

pub const CLIENT: &str = "/usr/bin/podman";

pub struct Podman {
    dir: TempDir,
}

impl Podman {
    /// None (saying why) when podman is not installed here; under CI it must be.
    pub fn start() -> Option<Podman> {
        if !Path::new(CLIENT).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "podman is missing: scripts/deps.sh installs it"
            );
            eprintln!("skipped: podman is not installed (scripts/deps.sh installs it)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("roar-podman-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        fs::write(
            d.join("containers.conf"),
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n",
        )
        .unwrap();
        fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"vfs\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
                d.display()
            ),
        )
        .unwrap();
        Some(Podman { dir })
    }

    /// The variables every podman of this instance needs (the hooks inherit them).
    pub fn envs(&self) -> [(&'static str, std::path::PathBuf); 2] {
        let d = self.dir.path();
        [
            ("CONTAINERS_CONF", d.join("containers.conf")),
            ("CONTAINERS_STORAGE_CONF", d.join("storage.conf")),
        ]
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(CLIENT);
        c.envs(self.envs()).stdin(Stdio::null());
        c
    }

    /// Imports the cached image `name` from `tar`.
    pub fn image(&self, name: &str, tar: &Path) {
        let out = output(self.cmd().arg("import").arg(tar).arg(name));
        assert!(out.status.success(), "podman import {name}: {out:?}");
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd()
            .args(["rm", "-af", "-t", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
