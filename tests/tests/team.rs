//! `roar push` and `roar pull` through the CLI, against a real PostgreSQL 15
//! (team-store's harness starts it): two machines, played by two projects
//! with their own stores and host names, chain a pipeline through a shared
//! directory, and lineage on the second reaches the first's run after a
//! pull. A remote that is down never fails or holds up a run, and the
//! password never reaches the store or the terminal.

#[path = "../../team-store/tests/team/harness.rs"]
mod harness;

use std::path::Path;
use std::time::Instant;

use harness::Pg;
use serde_json::Value;
use tests::{Sandbox, on_terminal, output, parse_json};

fn lineage(sb: &Sandbox, path: &Path) -> Value {
    let out = output(sb.roar().arg("lineage").arg(path).arg("--json"));
    assert!(out.status.success(), "{out:?}");
    parse_json(&String::from_utf8_lossy(&out.stdout))
}

/// Every run id that lineage JSON names.
fn run_uuids(doc: &Value) -> Vec<String> {
    let mut found = Vec::new();
    fn walk(v: &Value, found: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(u)) = m.get("uuid") {
                    found.push(u.clone());
                }
                m.values().for_each(|x| walk(x, found));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, found)),
            _ => {}
        }
    }
    walk(doc, &mut found);
    found
}

#[test]
fn two_machines_one_lineage_through_push_and_pull() {
    let Some(pg) = Pg::start() else { return };
    let (_, worker) = pg.team_db("cli_chain");
    let shared = tempfile::tempdir().unwrap();
    let frame = shared.path().join("frame.txt");
    let video = shared.path().join("video.txt");

    let a = Sandbox::new();
    a.write("scene.txt", "a scene\n");
    let out = output(
        a.roar()
            .args(["run", "-q", "--", "sh", "-c"])
            .arg(format!("cat scene.txt > {}", frame.display())),
    );
    assert!(out.status.success(), "{out:?}");
    // At a terminal, with the bar drawn at once (it waits a second otherwise).
    let mut push = a.roar();
    push.env("ROAR_PROGRESS_DELAY_MS", "0")
        .args(["push", "--remote", &worker]);
    let said = on_terminal(&push);
    assert!(said.contains("\rroar: pushing runs ["), "{said:?}");
    assert!(said.contains("pushed 1 run"), "{said}");
    assert!(
        !said.contains("worker-pw"),
        "the password is never printed: {said}"
    );
    let a_run = a.show_json("latest");

    let b = Sandbox::new();
    let out = output(b.roar().args(["run", "-q", "--", "sh", "-c"]).arg(format!(
        "cat {} > {}",
        frame.display(),
        video.display()
    )));
    assert!(out.status.success(), "{out:?}");
    // Before the pull, B's lineage stops at the frame.
    assert!(
        !run_uuids(&lineage(&b, &video)).contains(&a_run["uuid"].as_str().unwrap().to_string())
    );
    let mut pull = b.roar();
    pull.env("ROAR_REMOTE", &worker)
        .env("ROAR_PROGRESS_DELAY_MS", "0")
        .arg("pull");
    let said = on_terminal(&pull);
    assert!(said.contains("\rroar: pulling runs ["), "{said:?}");
    assert!(said.contains("pulled 1 run"), "{said:?}");
    let uuids = run_uuids(&lineage(&b, &video));
    assert!(
        uuids.contains(&a_run["uuid"].as_str().unwrap().to_string()),
        "lineage on B reaches A's run: {uuids:?}"
    );
    // The pulled run keeps its identity and origin, and is marked pulled.
    let out = output(b.roar().args(["log", "--json"]));
    let runs: Value = parse_json(&String::from_utf8_lossy(&out.stdout));
    let pulled: Vec<&Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["origin"]["pulled"] == true)
        .collect();
    assert_eq!(pulled.len(), 1, "{runs:#}");
    assert_eq!(pulled[0]["uuid"], a_run["uuid"]);
    assert_eq!(pulled[0]["origin"]["store"], a_run["origin"]["store"]);
    // Pulling and pushing again change nothing.
    let out = output(b.roar().env("ROAR_REMOTE", &worker).args(["pull"]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pulled 0 runs"),
        "{out:?}"
    );
    let out = output(a.roar().args(["push", "--remote", &worker]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pushed 0 runs"),
        "{out:?}"
    );
    // No password in either store.
    for sb in [&a, &b] {
        for f in ["roar.db", "roar.db-wal"] {
            let bytes = std::fs::read(sb.join(".roar").join(f)).unwrap_or_default();
            assert!(
                !bytes.windows(9).any(|w| w == b"worker-pw"),
                "{f} holds no password"
            );
        }
    }
}

#[test]
fn after_run_push_never_fails_or_holds_up_a_run() {
    let Some(pg) = Pg::start() else { return };
    let (_, worker) = pg.team_db("cli_after");
    let sb = Sandbox::new();
    // A remote that is down: a port nobody listens on.
    let dead = format!(
        "postgresql://roar_worker:worker-pw@127.0.0.1:{}/cli_after?sslmode=disable",
        harness::free_port()
    );
    sb.write(
        ".roar/config.toml",
        format!("[remote]\nurl = \"{dead}\"\npush = \"after-run\"\n"),
    );
    let t = Instant::now();
    let out = output(
        sb.roar()
            .args(["run", "--", "sh", "-c", "echo x > out.txt; exit 3"]),
    );
    assert_eq!(out.status.code(), Some(3), "the command's status: {out:?}");
    assert!(t.elapsed().as_secs() < 15, "bounded: {:?}", t.elapsed());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("not pushed").count(), 1, "said once: {said}");
    assert!(!said.contains("worker-pw"), "{said}");
    // Once the remote is up, the next run's push sends both.
    sb.write(
        ".roar/config.toml",
        format!("[remote]\nurl = \"{worker}\"\npush = \"after-run\"\n"),
    );
    let out = output(sb.roar().args(["run", "--", "true"]));
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("pushed to") && said.contains("2 sent"),
        "{said}"
    );
}

#[test]
fn after_run_push_to_a_server_that_accepts_and_stalls_is_bounded() {
    // Accepts every connection and never says a word: no PostgreSQL needed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let sb = Sandbox::new();
    let url = format!("postgresql://roar_worker:pw@127.0.0.1:{port}/team?sslmode=disable");
    let t = Instant::now();
    let out = output(
        sb.roar()
            .args(["run", "--remote", &url, "--", "sh", "-c", "exit 5"]),
    );
    assert_eq!(out.status.code(), Some(5), "the command's status: {out:?}");
    assert!(t.elapsed().as_secs() < 12, "bounded: {:?}", t.elapsed());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(said.matches("not pushed").count(), 1, "said once: {said}");
    assert_eq!(sb.log_json().len(), 1, "the run is recorded");
}
