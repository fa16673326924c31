//! OpenLineage (spec 2-0-2): a recorded run as RunEvents, and sending them to a lineage server.
//!
//! Each run is a START event at its start time and a COMPLETE (exit status 0) or FAIL event at
//! its end; a run still running has only its START. The job is `namespace` (the project) and
//! the run's label or command line; datasets are files (namespace `file`, name the absolute
//! path) with their BLAKE3 hash as the dataset version. What OpenLineage has no facet for
//! (command, cwd, backend, git state, the packages and host) is in a `roar` run facet.
//!
//! A path that is not UTF-8 is written with each invalid byte (and each `%`) as `%XX`, since
//! OpenLineage names are strings.
//!
//! Sending: HTTP/1.1 POST of each event to `URL` (Marquez: `http://host:5000/api/v1/lineage`)
//! over a `TcpStream`, or TLS for `https://` (native-tls: the system's OpenSSL trust store, or
//! `SSL_CERT_FILE`), with one deadline for the whole batch, so a lineage server that is down
//! costs a run at most that long and never fails it.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use dag::{Environment, FileRecord, Run};
use serde_json::{Value, json};

use crate::time::rfc3339;

const SCHEMA_URL: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";
const PRODUCER: &str = concat!(
    env!("CARGO_PKG_REPOSITORY"),
    "/tree/v",
    env!("CARGO_PKG_VERSION")
);
const VERSION_FACET: &str = "https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet";
const PARENT_FACET: &str =
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet";
const ERROR_FACET: &str = "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet";
const JOB_TYPE_FACET: &str =
    "https://openlineage.io/spec/facets/2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet";
const SOURCE_FACET: &str = "https://openlineage.io/spec/facets/1-1-0/SourceCodeLocationJobFacet.json#/$defs/SourceCodeLocationJobFacet";
const ROAR_FACET: &str = concat!(
    env!("CARGO_PKG_REPOSITORY"),
    "/openlineage/RoarRunFacet.json"
);

/// The job namespace: `[openlineage] namespace`, else the project directory's name.
pub fn namespace(loc: &crate::location::Location, cfg: &crate::config::Config) -> String {
    cfg.openlineage.namespace.clone().unwrap_or_else(|| {
        loc.root
            .file_name()
            .map_or("roar".into(), |n| n.to_string_lossy().into_owned())
    })
}

/// The run's OpenLineage `runId`: its UUID in the store (a UUIDv7, the same in every store
/// the run is pushed to). The one place the export takes a run's identity from.
pub fn run_id(r: &Run) -> String {
    r.uuid.clone()
}

/// A UUID (version 8, RFC 9562's custom layout) made from BLAKE3 of `name`: stable ids for
/// things roar names but does not number, such as an OpenJD session as a parent run.
pub fn name_uuid(name: &str) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&blake3::hash(name.as_bytes()).as_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Bytes as an OpenLineage string: UTF-8 as is; otherwise invalid bytes and `%` as `%XX`.
pub fn text(b: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(b) {
        return s.to_string();
    }
    let mut out = String::new();
    for chunk in b.utf8_chunks() {
        out.push_str(&chunk.valid().replace('%', "%25"));
        for x in chunk.invalid() {
            out.push_str(&format!("%{x:02X}"));
        }
    }
    out
}

/// The job's name: the run's label, else its command line.
pub fn job_name(r: &Run) -> String {
    r.label.clone().unwrap_or_else(|| {
        r.command
            .iter()
            .map(|a| text(a))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

fn datasets(files: &[FileRecord]) -> Vec<Value> {
    files
        .iter()
        .filter(|f| !f.filtered)
        .map(|f| {
            let mut d = json!({"namespace": "file", "name": text(&f.path)});
            if let Some(h) = &f.hash {
                d["facets"] = json!({"version": {
                    "_producer": PRODUCER, "_schemaURL": VERSION_FACET, "datasetVersion": h,
                }});
            }
            d
        })
        .collect()
}

/// What OpenLineage has no standard facet for.
fn roar_facet(r: &Run, env: &Environment) -> Value {
    let host = env.host.as_ref().map(|h| {
        json!({
            "hostname": h.hostname, "kernel": h.kernel, "os_release": h.os,
            "cpu_model": h.cpu_model, "cpu_count": h.cpus, "memory_bytes": h.memory_bytes,
            "gpus": h.gpus,
        })
    });
    let packages: Vec<Value> = env
        .packages
        .iter()
        .map(|p| json!({"manager": p.manager, "name": p.name, "version": p.version}))
        .collect();
    json!({
        "_producer": PRODUCER, "_schemaURL": ROAR_FACET,
        "id": r.id,
        "command": r.command.iter().map(|a| text(a)).collect::<Vec<_>>(),
        "cwd": text(&r.cwd),
        "backend": r.backend,
        "exit_code": r.exit_code, "signal": r.signal,
        "complete": r.complete, "warnings": r.warnings,
        "git": r.git.as_ref().map(|g| json!({
            "commit": g.commit, "branch": g.branch, "dirty": g.dirty, "remote": g.remote,
        })),
        "environment": {"packages": packages, "host": host},
    })
}

fn job(r: &Run, namespace: &str) -> Value {
    let mut facets = json!({"jobType": {
        "_producer": PRODUCER, "_schemaURL": JOB_TYPE_FACET,
        "processingType": "BATCH", "integration": "ROAR", "jobType": "COMMAND",
    }});
    if let Some(g) = &r.git
        && let Some(url) = &g.remote
    {
        let mut s = json!({
            "_producer": PRODUCER, "_schemaURL": SOURCE_FACET, "type": "git", "url": url,
        });
        if let Some(c) = &g.commit {
            s["version"] = json!(c);
        }
        if let Some(b) = &g.branch {
            s["branch"] = json!(b);
        }
        facets["sourceCodeLocation"] = s;
    }
    json!({"namespace": namespace, "name": job_name(r), "facets": facets})
}

/// The run's events: START, then COMPLETE or FAIL once it has finished.
pub fn events(r: &Run, env: &Environment, namespace: &str) -> Vec<Value> {
    let mut run_facets = json!({"roar": roar_facet(r, env)});
    if let Some(session) = r.openjd.as_ref().and_then(|o| o.session_id.as_deref()) {
        run_facets["parent"] = json!({
            "_producer": PRODUCER, "_schemaURL": PARENT_FACET,
            "run": {"runId": name_uuid(&format!("openjd-session:{session}"))},
            "job": {"namespace": namespace, "name": format!("openjd-session {session}")},
        });
    }
    let start = json!({
        "eventType": "START",
        "eventTime": rfc3339(r.started_at_ms),
        "producer": PRODUCER, "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id(r), "facets": run_facets.clone()},
        "job": job(r, namespace),
        "inputs": [], "outputs": [],
    });
    let (true, Some(d)) = (r.finished, r.duration_ms) else {
        return vec![start];
    };
    let failed = match (r.exit_code, r.signal) {
        (_, Some(s)) => Some(format!("killed by signal {s}")),
        (Some(0), None) => None,
        (Some(c), None) => Some(format!("exit status {c}")),
        (None, None) => Some("ended without an exit status".into()),
    };
    if let Some(message) = &failed {
        run_facets["errorMessage"] = json!({
            "_producer": PRODUCER, "_schemaURL": ERROR_FACET,
            "message": message, "programmingLanguage": "shell",
        });
    }
    let end = json!({
        "eventType": if failed.is_some() { "FAIL" } else { "COMPLETE" },
        "eventTime": rfc3339(r.started_at_ms.saturating_add(d as i64)),
        "producer": PRODUCER, "schemaURL": SCHEMA_URL,
        "run": {"runId": run_id(r), "facets": run_facets},
        "job": job(r, namespace),
        "inputs": datasets(&r.inputs), "outputs": datasets(&r.outputs),
    });
    vec![start, end]
}

/// How long `roar run` and `roar ingest` may spend sending events, all runs together.
pub const SEND_BUDGET: Duration = Duration::from_secs(2);

/// Sends the events of `runs` to the lineage server named by `flag` or `[openlineage] url`,
/// if any; says what happened, for the summary line. Never an error: the run is recorded.
pub fn send_runs(
    store: &dag::Store,
    loc: &crate::location::Location,
    cfg: &crate::config::Config,
    flag: Option<&str>,
    runs: &[dag::RunId],
) -> Option<String> {
    let url = flag
        .filter(|u| !u.is_empty())
        .or(cfg.openlineage.url.as_deref())?;
    let ns = namespace(loc, cfg);
    let mut all = Vec::new();
    for &id in runs {
        let (Ok(r), Ok(env)) = (store.run(id), store.environment(id)) else {
            continue;
        };
        all.extend(events(&r, &env, &ns));
    }
    Some(match post(url, &all, SEND_BUDGET) {
        Ok(()) => format!("{} OpenLineage events sent to {url}", all.len()),
        Err(e) => format!("OpenLineage events not sent to {url} ({e})"),
    })
}

/// POSTs each event to `url` (`http://` or `https://`), all within `budget`; the first
/// failure ends it.
pub fn post(url: &str, events: &[Value], budget: Duration) -> Result<(), String> {
    let deadline = Instant::now() + budget;
    let (tls, rest) = if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else {
        return Err(format!("{url} is not an http:// or https:// URL"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && !p.contains(']') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("{url}: the port {p:?} is not a number"))?,
        ),
        _ => (authority, if tls { 443 } else { 80 }),
    };
    let target = Target {
        host,
        authority,
        port,
        path,
        tls,
    };
    for event in events {
        target.send(event.to_string().as_bytes(), deadline)?;
    }
    Ok(())
}

/// Where one POST goes.
struct Target<'a> {
    /// The name to resolve and, over TLS, to verify the certificate for (`[::1]` as `::1`).
    host: &'a str,
    /// `Host:` header: the URL's host and port as written.
    authority: &'a str,
    port: u16,
    path: &'a str,
    tls: bool,
}

impl Target<'_> {
    fn send(&self, body: &[u8], deadline: Instant) -> Result<(), String> {
        let left = || {
            deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| "timed out".to_string())
        };
        let name = self.host.trim_start_matches('[').trim_end_matches(']');
        let addr = (name, self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("cannot resolve {}", self.host))?;
        let s = TcpStream::connect_timeout(&addr, left()?).map_err(|e| e.to_string())?;
        // Read and write both end by the deadline (the TLS handshake included).
        s.set_write_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(left()?))
            .map_err(|e| e.to_string())?;
        if !self.tls {
            return self.exchange(s, body);
        }
        let connector =
            native_tls::TlsConnector::new().map_err(|e| format!("cannot set up TLS: {e}"))?;
        let stream = connector.connect(name, s).map_err(|e| match e {
            native_tls::HandshakeError::Failure(e) => format!("TLS with {}: {e}", self.host),
            native_tls::HandshakeError::WouldBlock(_) => "timed out".to_string(),
        })?;
        self.exchange(stream, body)
    }

    fn exchange(&self, mut s: impl Read + Write, body: &[u8]) -> Result<(), String> {
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nUser-Agent: roar/{}\r\nConnection: close\r\n\r\n",
            self.path,
            self.authority,
            body.len(),
            env!("CARGO_PKG_VERSION")
        );
        s.write_all(head.as_bytes())
            .and_then(|()| s.write_all(body))
            .and_then(|()| s.flush())
            .map_err(|e| e.to_string())?;
        let mut status = [0u8; 12];
        s.read_exact(&mut status).map_err(|e| e.to_string())?;
        // "HTTP/1.1 201"
        let code = std::str::from_utf8(&status[9..12]).unwrap_or("");
        if code.starts_with('2') {
            Ok(())
        } else {
            Err(format!("the server answered {code}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ids() {
        assert_eq!(text(b"/a/b"), "/a/b");
        assert_eq!(text(b"/a%\xff"), "/a%25%FF");
        let u = name_uuid("x");
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "8");
        assert_eq!(u, name_uuid("x"));
        assert!(post("ftp://x/", &[], Duration::from_secs(1)).is_err());
        let e = post("http://x:port/", &[json!({})], Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("port"), "{e}");
    }
}
