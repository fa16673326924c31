//! Where the team store is: a `postgresql://` URL, its TLS mode, and the password found the way
//! libpq finds it. The URL may carry a password at run time; [`RemoteConfig`] never shows it.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::RemoteError;

/// How hard to insist on TLS, with libpq's meanings of `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// `disable`: plain TCP.
    Disable,
    /// `prefer` (libpq's default): TLS if the server offers it, certificate not checked.
    Prefer,
    /// `require`: TLS or fail, certificate not checked (unless `sslrootcert` is given, as libpq).
    Require,
    /// `verify-ca`: TLS, the certificate must chain to a trusted root.
    VerifyCa,
    /// `verify-full`: as `verify-ca`, and the certificate must name the host.
    VerifyFull,
}

/// A parsed team-store URL. `Debug` and [`RemoteConfig::redacted`] hide the password.
#[derive(Clone)]
pub struct RemoteConfig {
    /// The URL as given, minus the parameters roar handles itself.
    pub(crate) pg: postgres::Config,
    redacted: String,
    pub(crate) tls: TlsMode,
    pub(crate) root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for RemoteConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteConfig")
            .field("url", &self.redacted)
            .field("tls", &self.tls)
            .finish()
    }
}

impl RemoteConfig {
    /// Parses a `postgresql://` (or `postgres://`) URL. The password comes from the URL, else
    /// `PGPASSWORD`, else the password file (`PGPASSFILE`, default `~/.pgpass`), as libpq does;
    /// the user defaults to `PGUSER`, then `USER`. `sslmode` takes libpq's values and
    /// `sslrootcert` a PEM file of trusted roots.
    pub fn parse(url: &str) -> Result<RemoteConfig, RemoteError> {
        let redacted = redact_url(url);
        let bad = |reason: String| RemoteError::BadUrl {
            remote: redacted.clone(),
            reason,
        };
        if !(url.starts_with("postgresql://") || url.starts_with("postgres://")) {
            return Err(bad("expected a postgresql:// URL".into()));
        }
        // Take out what tokio-postgres does not know (it refuses unknown options).
        let (base, query) = match url.split_once('?') {
            Some((b, q)) => (b, q),
            None => (url, ""),
        };
        let mut kept = Vec::new();
        let mut tls = TlsMode::Prefer;
        let mut root_cert = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "sslmode" => {
                    tls = match v {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        other => {
                            return Err(bad(format!(
                                "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
                            )));
                        }
                    }
                }
                "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(v))),
                _ => kept.push(pair),
            }
        }
        if tls == TlsMode::Require && root_cert.is_some() {
            tls = TlsMode::VerifyCa;
        }
        let mut given = base.to_string();
        // tokio-postgres only knows disable/prefer/require: verification is ours.
        kept.push(match tls {
            TlsMode::Disable => "sslmode=disable",
            TlsMode::Prefer => "sslmode=prefer",
            _ => "sslmode=require",
        });
        given.push('?');
        given.push_str(&kept.join("&"));
        let mut pg = postgres::Config::from_str(&given)
            .map_err(|e| bad(redact_text(&e.to_string(), url)))?;
        if pg.get_hosts().is_empty() {
            return Err(bad("no host in the URL".into()));
        }
        if pg.get_user().is_none()
            && let Some(user) = std::env::var("PGUSER")
                .ok()
                .or_else(|| std::env::var("USER").ok())
        {
            pg.user(&user);
        }
        if pg.get_dbname().is_none()
            && let Ok(db) = std::env::var("PGDATABASE")
        {
            pg.dbname(&db);
        }
        if pg.get_password().is_none()
            && let Some(pw) = libpq_password(&pg)
        {
            pg.password(pw);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("roar");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(10));
        }
        Ok(RemoteConfig {
            pg,
            redacted,
            tls,
            root_cert,
        })
    }

    /// The URL with any password replaced by `***`: safe for messages and logs.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// Bounds how long one connection attempt may take (after-run pushes keep this short).
    pub fn set_connect_timeout(&mut self, timeout: Duration) {
        self.pg.connect_timeout(timeout);
    }

    /// Replaces the password (and anything else secret) in `text` by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        if let Some(pw) = self.pg.get_password()
            && let Ok(pw) = std::str::from_utf8(pw)
            && pw.len() >= 2
        {
            out = out.replace(pw, "***");
        }
        out
    }
}

/// `postgresql://user:secret@host/db?password=x` -> `postgresql://user:***@host/db?password=***`.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let q: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_string(),
                })
                .collect();
            format!("{path}?{}", q.join("&"))
        }
        None => tail.to_string(),
    };
    match scheme {
        Some(s) => format!("{s}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

/// Removes the password of `url` from an error text that might quote it.
fn redact_text(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact_url(url));
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.split('/').next().unwrap_or("").rsplit_once('@')
        && let Some((_, pw)) = userinfo.split_once(':')
        && !pw.is_empty()
    {
        out = out.replace(pw, "***");
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(hex) = std::str::from_utf8(&b[i + 1..i + 3])
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// PGPASSWORD, else the first matching line of the password file, as libpq reads them.
fn libpq_password(pg: &postgres::Config) -> Option<String> {
    if let Ok(pw) = std::env::var("PGPASSWORD") {
        return Some(pw);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
    let text = std::fs::read_to_string(file).ok()?;
    let host = match pg.get_hosts().first()? {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(_) => "localhost".into(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432).to_string();
    let db = pg.get_dbname().unwrap_or(pg.get_user().unwrap_or(""));
    let user = pg.get_user().unwrap_or("");
    pgpass_lookup(&text, &host, &port, db, user)
}

/// libpq's `~/.pgpass` format: `host:port:database:user:password`, `*` matches anything,
/// `\:` and `\\` escape.
pub(crate) fn pgpass_lookup(
    text: &str,
    host: &str,
    port: &str,
    db: &str,
    user: &str,
) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let m = |f: &str, v: &str| f == "*" || f == v;
        if m(&fields[0], host) && m(&fields[1], port) && m(&fields[2], db) && m(&fields[3], user) {
            return fields.pop();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords_everywhere() {
        assert_eq!(
            redact_url("postgresql://alice:s3cr%40t@db.example:5432/roar?sslmode=require"),
            "postgresql://alice:***@db.example:5432/roar?sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://h/roar?user=a&password=xyz"),
            "postgres://h/roar?user=a&password=***"
        );
        assert_eq!(redact_url("postgresql://bob@h/db"), "postgresql://bob@h/db");
        let e = RemoteConfig::parse("postgresql://u:hunter22@h/db?bogus=1").unwrap_err();
        assert!(!e.to_string().contains("hunter22"), "{e}");
        let e = RemoteConfig::parse("mysql://u:hunter22@h/db").unwrap_err();
        assert!(!e.to_string().contains("hunter22"), "{e}");
        assert!(e.to_string().contains("postgresql://"), "{e}");
    }

    #[test]
    fn sslmodes_follow_libpq() {
        let c = RemoteConfig::parse("postgresql://u@h/db").unwrap();
        assert_eq!(c.tls, TlsMode::Prefer);
        let c = RemoteConfig::parse("postgresql://u@h/db?sslmode=verify-full").unwrap();
        assert_eq!(c.tls, TlsMode::VerifyFull);
        let c =
            RemoteConfig::parse("postgresql://u@h/db?sslmode=require&sslrootcert=/ca.pem").unwrap();
        assert_eq!(c.tls, TlsMode::VerifyCa);
        assert!(RemoteConfig::parse("postgresql://u@h/db?sslmode=sometimes").is_err());
        let c = RemoteConfig::parse("postgresql://u:pw@h/db").unwrap();
        assert!(!format!("{c:?}").contains("pw@"));
    }

    #[test]
    fn pgpass_matches_like_libpq() {
        let text = "# comment\nother:5432:*:u:nope\nh:*:db:u:pa\\:ss\n*:*:*:*:fallback\n";
        assert_eq!(
            pgpass_lookup(text, "h", "5432", "db", "u").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_lookup(text, "x", "1", "y", "z").as_deref(),
            Some("fallback")
        );
        assert_eq!(pgpass_lookup("h:1:d:u:p", "h", "2", "d", "u"), None);
    }
}
