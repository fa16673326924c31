//! A throwaway PostgreSQL 15 for the tests: initdb and pg_ctl in a temp dir (as the postgres
//! user when we are root, since initdb refuses root), a free port, password auth over TCP,
//! stopped with `-m immediate` on drop.

use std::path::Path;
use std::process::Command;

const BIN: &str = "/usr/lib/postgresql/15/bin";
pub const ADMIN_PW: &str = "admin-secret-pw";

pub struct Pg {
    dir: tempfile::TempDir,
    pub port: u16,
    root: bool,
}

fn as_pg(root: bool, prog: &str) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"])
            .arg(Path::new(BIN).join(prog));
        c
    } else {
        Command::new(Path::new(BIN).join(prog))
    }
}

impl Pg {
    /// A running server, or `None` (with a message) when PostgreSQL is not installed and CI is
    /// not set. Under CI a missing PostgreSQL is a failure: scripts/deps.sh installs it.
    pub fn start() -> Option<Pg> {
        if !Path::new(BIN).join("initdb").exists() {
            if std::env::var_os("CI").is_some() {
                panic!("{BIN}/initdb missing: run scripts/deps.sh (installs postgresql)");
            }
            eprintln!("SKIP: PostgreSQL 15 not installed ({BIN}); run scripts/deps.sh");
            return None;
        }
        let root = unsafe_free_is_root();
        let dir = tempfile::tempdir().unwrap();
        if root {
            assert!(
                Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(dir.path())
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let d = dir.path();
        std::fs::write(d.join("pw"), ADMIN_PW).unwrap();
        if root {
            Command::new("chown")
                .args(["postgres:postgres"])
                .arg(d.join("pw"))
                .status()
                .unwrap();
        }
        let out = as_pg(root, "initdb")
            .arg("-D")
            .arg(d.join("data"))
            .args([
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .arg(format!("--pwfile={}", d.join("pw").display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let out = as_pg(root, "pg_ctl")
            .arg("-D")
            .arg(d.join("data"))
            .arg("-l")
            .arg(d.join("log"))
            .args(["-w", "-o"])
            .arg(format!(
                "-k {} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
                d.display()
            ))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {} {}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(d.join("log")).unwrap_or_default()
        );
        Some(Pg { dir, port, root })
    }

    pub fn url(&self, user: &str, pw: &str, db: &str) -> String {
        format!(
            "postgresql://{user}:{pw}@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    pub fn admin_url(&self, db: &str) -> String {
        self.url("postgres", ADMIN_PW, db)
    }

    pub fn admin(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(&self.admin_url(db), postgres::NoTls).unwrap()
    }

    /// A fresh database with the schema and a worker role `roar_worker` (password
    /// `worker-pw`) granted as pg/worker_role.sql says; returns (owner URL, worker URL).
    pub fn team_db(&self, name: &str) -> (String, String) {
        let mut c = self.admin("postgres");
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        c.batch_execute(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'roar_worker') \
             THEN CREATE ROLE roar_worker LOGIN PASSWORD 'worker-pw'; END IF; END $$",
        )
        .unwrap();
        let owner = team_store::RemoteConfig::parse(&self.admin_url(name)).unwrap();
        team_store::migrate(&owner, team_store::RetryPolicy::default()).unwrap();
        team_store::grant_worker(&owner, "roar_worker").unwrap();
        (
            self.admin_url(name),
            self.url("roar_worker", "worker-pw", name),
        )
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = as_pg(self.root, "pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn unsafe_free_is_root() -> bool {
    // The owner of /proc/self is our effective uid.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
