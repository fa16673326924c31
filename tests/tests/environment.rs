//! The questions asked of runs nobody watched, on a recorded pipeline: a venv with a real
//! package from PyPI (six), a step that reads an input, the same step after the input
//! changed. Environment (packages, host), `diff`, `sources`, `status --packages`, pins in
//! `reproduce --script`, OpenLineage (validated against the vendored spec, and POSTed to a
//! local HTTP server), PROV-JSON read back by the W3C `prov` library, completions, man page,
//! the process tree.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tests::{Sandbox, check, output, parse_json};

const BACKEND: &str = "preload";

const STEP: &str = "\
import six
data = open('data/raw.csv').read()
with open('out.txt', 'w') as f:
    f.write('six %s: %d bytes\\n' % (six.__version__, len(data)))
";

struct Pipeline {
    sb: Sandbox,
    /// The venv's site-packages.
    site: PathBuf,
    six: String,
}

impl Pipeline {
    /// `roar export --format FORMAT -o NAME` in the sandbox; the file's path.
    fn export(&self, format: &str, name: &str) -> PathBuf {
        let file = self.sb.join(name);
        check(
            self.sb
                .roar()
                .args(["export", "--format", format, "-o"])
                .arg(&file),
        );
        file
    }

    /// A venv with six installed, and the step run twice with the input changed in between
    /// (runs 1 and 2), then `cat data/raw.csv` (run 3).
    fn new() -> Pipeline {
        let sb = Sandbox::new();
        sb.write("data/raw.csv", "a,b\n1,2\n");
        sb.write("step.py", STEP);
        check(
            Command::new("python3")
                .args(["-m", "venv"])
                .arg(sb.join("venv")),
        );
        check(Command::new(sb.join("venv/bin/python")).args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "six",
        ]));
        let site = std::fs::read_dir(sb.join("venv/lib"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("site-packages");
        let dist = std::fs::read_dir(&site)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n.starts_with("six-") && n.ends_with(".dist-info"))
            .expect("six is installed");
        let six = dist
            .trim_start_matches("six-")
            .trim_end_matches(".dist-info")
            .to_string();
        let p = Pipeline { sb, site, six };
        p.run(&["venv/bin/python", "step.py"]);
        p.sb.write("data/raw.csv", "a,b\n1,2\n3,4\n");
        p.run(&["venv/bin/python", "step.py"]);
        p.run(&["cat", "data/raw.csv"]);
        p
    }

    fn run(&self, args: &[&str]) {
        let out = self.sb.run(BACKEND, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        parse_json(&String::from_utf8(check(self.sb.roar().args(args))).unwrap())
    }

    fn text(&self, args: &[&str]) -> String {
        String::from_utf8(check(self.sb.roar().args(args))).unwrap()
    }
}

fn has_package(run: &Value, manager: &str, name: &str) -> Option<String> {
    run["environment"]["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["manager"] == manager && p["name"] == name)
        .map(|p| p["version"].as_str().unwrap().to_string())
}

fn blake3_of(path: &Path) -> String {
    format!(
        "blake3:{}",
        blake3::hash(&std::fs::read(path).unwrap()).to_hex()
    )
}

#[test]
fn environment_diff_sources_status_and_pins() {
    let p = Pipeline::new();
    let step = p.sb.show_json("1");
    assert_eq!(
        has_package(&step, "pip", "six"),
        Some(p.six.clone()),
        "{step:#}"
    );
    let host = &step["environment"]["host"];
    assert!(
        host["hostname"].is_string() && host["kernel"].is_string(),
        "{host}"
    );
    assert!(host["cpu_count"].as_i64().unwrap() >= 1);
    assert!(host["memory_bytes"].as_i64().unwrap() > 0);
    // Only what was used: pip itself is installed in the venv but the step never imported it.
    assert_eq!(has_package(&step, "pip", "pip"), None);
    let cat = p.sb.show_json("3");
    if Path::new("/var/lib/dpkg/info/coreutils.list").exists() {
        assert!(has_package(&cat, "dpkg", "coreutils").is_some(), "{cat:#}");
    }

    let d = p.json(&["diff", "1", "2", "--json"]);
    assert_eq!(d["same"], false);
    let raw = p.sb.join("data/raw.csv");
    assert_eq!(
        d["inputs"]["changed"][0]["path"],
        raw.to_str().unwrap(),
        "{d:#}"
    );
    assert_eq!(d["inputs"]["changed"][0]["b"], blake3_of(&raw).as_str());
    assert_eq!(
        d["outputs"]["changed"][0]["path"],
        p.sb.join("out.txt").to_str().unwrap()
    );
    assert_eq!(d["command"], Value::Null);
    assert!(d["packages"].as_array().unwrap().is_empty());
    let d = p.json(&["diff", "2", "3", "--json"]);
    assert!(d["command"]["a"].is_array() && d["outputs"]["removed"].as_array().unwrap().len() == 1);
    assert!(
        p.text(&["diff", "1", "2"]).contains("~ "),
        "text diff marks changes"
    );

    let sources = p.json(&["sources", "out.txt", "--json"]);
    let names: Vec<&str> = sources
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap())
        .collect();
    assert!(names.contains(&raw.to_str().unwrap()), "{sources:#}");
    assert!(names.contains(&p.sb.join("step.py").to_str().unwrap()));
    assert!(
        sources
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["hash"].as_str().unwrap().starts_with("blake3:"))
    );

    let script = p.text(&["reproduce", "out.txt", "--script"]);
    assert!(
        script.contains(&format!("pip install six=={}", p.six)),
        "{script}"
    );

    // Another six appears where the step found it: stale with --packages only.
    let status = p.json(&["status", "--json", "--packages"]);
    assert_eq!(status["stale"], 0, "{status:#}");
    let meta = p.site.join(format!("six-{}.dist-info/METADATA", p.six));
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(
        &meta,
        text.replacen(&format!("Version: {}", p.six), "Version: 99.0", 1),
    )
    .unwrap();
    assert_eq!(p.json(&["status", "--json"])["stale"], 0);
    let status = p.json(&["status", "--json", "--packages"]);
    assert_eq!(status["stale"], 1, "{status:#}");
    let reasons = &status["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["stale"] == true)
        .unwrap()["reasons"];
    assert_eq!(reasons[0]["kind"], "package");
    assert_eq!(reasons[0]["version"], "99.0");
}

#[test]
fn openlineage_events_validate_against_the_spec() {
    let p = Pipeline::new();
    let file = p.export("openlineage", "events.jsonl");
    let text = std::fs::read_to_string(&file).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 6, "START and COMPLETE for each of 3 runs");
    let uuid = p.sb.show_json("1")["uuid"].as_str().unwrap().to_string();
    let mine: Vec<&Value> = events
        .iter()
        .filter(|e| e["run"]["runId"] == uuid.as_str())
        .collect();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0]["eventType"], "START");
    assert_eq!(mine[1]["eventType"], "COMPLETE");
    let input = mine[1]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"].as_str().unwrap().ends_with("/data/raw.csv"))
        .unwrap();
    assert_eq!(input["namespace"], "file");
    assert!(
        input["facets"]["version"]["datasetVersion"]
            .as_str()
            .unwrap()
            .starts_with("blake3:")
    );
    let out = output(
        Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("validate_openlineage.py"))
            .arg(&file),
    );
    assert_ne!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "invalid events:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A one-shot HTTP server on 127.0.0.1 answering 201 to every POST; returns the bodies.
fn serve(listener: TcpListener, requests: usize) -> std::thread::JoinHandle<Vec<(String, Value)>> {
    std::thread::spawn(move || {
        (0..requests)
            .map(|_| answer(listener.accept().unwrap().0))
            .collect()
    })
}

/// Reads one POST from `s` and answers 201: its request line and its body.
fn answer(mut s: impl Read + Write) -> (String, Value) {
    let mut r = BufReader::new(&mut s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).unwrap();
        if h == "\r\n" {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).unwrap();
    s.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    (line, serde_json::from_slice(&body).unwrap())
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made by the openssl CLI:
/// (certificate PEM path, TLS identity).
fn certificate(dir: &Path) -> (PathBuf, native_tls::Identity) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    check(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    let id = native_tls::Identity::from_pkcs8(
        &std::fs::read(&cert).unwrap(),
        &std::fs::read(&key).unwrap(),
    )
    .unwrap();
    (cert, id)
}

#[test]
fn events_go_to_an_https_server_that_the_trust_store_vouches_for() {
    let sb = Sandbox::new();
    let (cert, id) = certificate(sb.path());
    let acceptor = native_tls::TlsAcceptor::new(id).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut got = Vec::new();
        for _ in 0..3 {
            let tcp = listener.accept().unwrap().0;
            // The run whose trust store lacks the certificate gives up in the handshake.
            match acceptor.accept(tcp) {
                Ok(tls) => got.push(answer(tls)),
                Err(_) => got.push((String::new(), Value::Null)),
            }
        }
        got
    });
    let url = format!("https://localhost:{port}/api/v1/lineage");
    let mut run = sb.roar();
    run.env("SSL_CERT_FILE", &cert)
        .args(["run", "--backend", BACKEND, "--openlineage-url", &url])
        .args(["--", "true"]);
    let out = output(&mut run);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("2 OpenLineage events sent"), "{said}");
    // Not trusted: not sent, said why, and the run is still recorded with its status.
    let out = output(
        sb.roar()
            .env("SSL_CERT_FILE", "/nonexistent")
            .env("SSL_CERT_DIR", "/nonexistent")
            .args(["run", "--backend", BACKEND, "--openlineage-url", &url])
            .args(["--", "sh", "-c", "exit 4"]),
    );
    assert_eq!(out.status.code(), Some(4));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("not sent") && said.contains("TLS"), "{said}");
    let got = server.join().unwrap();
    assert!(
        got[0].0.starts_with("POST /api/v1/lineage HTTP/1.1"),
        "{got:?}"
    );
    assert_eq!(got[0].1["eventType"], "START");
    assert_eq!(got[1].1["eventType"], "COMPLETE");
    assert_eq!(got[2].1, Value::Null, "the untrusted run sent nothing");
    assert_eq!(sb.log_json().len(), 2);
}

#[test]
fn run_posts_its_events_and_never_fails_when_the_server_is_down() {
    let sb = Sandbox::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/lineage", listener.local_addr().unwrap());
    let server = serve(listener, 2);
    let out = output(sb.roar().args([
        "run",
        "--backend",
        BACKEND,
        "--openlineage-url",
        &url,
        "--",
        "true",
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = server.join().unwrap();
    assert!(got[0].0.starts_with("POST /api/v1/lineage HTTP/1.1"));
    let uuid = sb.show_json("latest")["uuid"].as_str().unwrap().to_string();
    assert_eq!(got[0].1["eventType"], "START");
    assert_eq!(got[1].1["eventType"], "COMPLETE");
    assert!(got.iter().all(|(_, e)| e["run"]["runId"] == uuid.as_str()));

    // Nobody listens on this port now: the run is recorded, its status is the command's.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v1/lineage", dead.local_addr().unwrap());
    drop(dead);
    let out = output(sb.roar().args([
        "run",
        "--backend",
        BACKEND,
        "--openlineage-url",
        &url,
        "--",
        "sh",
        "-c",
        "exit 3",
    ]));
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not sent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sb.log_json().len(), 2);
}

#[test]
fn prov_json_is_read_by_the_w3c_prov_library_with_every_record() {
    let p = Pipeline::new();
    let file = p.export("prov-json", "prov.json");
    let out = output(
        Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("read_prov.py"))
            .arg(&file),
    );
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn completions_man_page_and_the_process_tree() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let c = String::from_utf8(check(sb.roar().args(["completions", shell]))).unwrap();
        assert!(c.contains("lineage") && c.contains("sources"), "{shell}");
    }
    let man = String::from_utf8(check(sb.roar().arg("man"))).unwrap();
    assert!(
        man.starts_with(".ie") || man.contains(".TH roar"),
        "{}",
        &man[..200.min(man.len())]
    );
    // A shell that execs its last command: folded into what it ran.
    sb.write(
        "wrap.sh",
        "#!/bin/sh\ncat README > /dev/null\nexec cat README\n",
    );
    let out = sb.run(BACKEND, &["sh", "wrap.sh"]);
    assert!(out.status.success());
    let text = String::from_utf8(check(sb.roar().arg("show"))).unwrap();
    assert!(
        text.contains("cat README  (via sh wrap.sh; 1 helper process folded)"),
        "{text}"
    );
    let all = String::from_utf8(check(sb.roar().args(["show", "--all"]))).unwrap();
    assert!(all.contains("└─") && !all.contains("(via"), "{all}");
}
