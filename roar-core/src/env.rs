//! Which environment values a run records: names always, values only when
//! allow-listed and not credential-like.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

const ALLOW: &[&str] = &[
    "PATH",
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES",
    "OPENJD_*",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "LANG",
    "LC_ALL",
    "TZ",
];
const SECRET_HINTS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "CREDENTIAL",
    "KEY",
    "AUTH",
    "COOKIE",
    "SESSION",
];

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

fn secret_like(name: &str) -> bool {
    let up = name.to_ascii_uppercase();
    SECRET_HINTS.iter().any(|h| up.contains(h))
}

/// `(name, value if recorded)` for every variable, sorted by name.
pub fn capture(
    vars: &[(OsString, OsString)],
    extra_allow: &[String],
) -> Vec<(String, Option<String>)> {
    let mut out: Vec<(String, Option<String>)> = vars
        .iter()
        .map(|(k, v)| {
            let name = String::from_utf8_lossy(k.as_bytes()).into_owned();
            let allowed = ALLOW
                .iter()
                .copied()
                .chain(extra_allow.iter().map(String::as_str))
                .any(|p| matches(p, &name))
                && !secret_like(&name);
            let value = allowed.then(|| String::from_utf8_lossy(v.as_bytes()).into_owned());
            (name, value)
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_only_for_allowed_and_never_for_secrets() {
        let vars: Vec<(OsString, OsString)> = [
            ("PATH", "/bin"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("OPENJD_SESSION_ID", "s"),
            ("OPENJD_STEP", "a"),
            ("MY", "v"),
        ]
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect();
        let c = capture(&vars, &["MY".into()]);
        let get = |n: &str| c.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("PATH").as_deref(), Some("/bin"));
        assert_eq!(get("AWS_SECRET_ACCESS_KEY"), None);
        assert_eq!(get("OPENJD_SESSION_ID"), None);
        assert_eq!(get("OPENJD_STEP").as_deref(), Some("a"));
        assert_eq!(get("MY").as_deref(), Some("v"));
    }
}
