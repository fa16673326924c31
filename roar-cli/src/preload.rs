//! The preload backend's set-up: find the library, prepare the environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const LIB_NAME: &str = "libroar_preload.so";

/// Where roar looks for its preload library, in order. `ROAR_PRELOAD_LIB`
/// overrides the search: when set, it is the only place looked at.
pub fn candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = std::env::var_os("ROAR_PRELOAD_LIB").filter(|p| !p.is_empty()) {
        c.push(PathBuf::from(p));
        return c;
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        c.push(dir.join(LIB_NAME));
        c.push(dir.join("../lib/roar").join(LIB_NAME));
        c.push(dir.join("../lib").join(LIB_NAME));
    }
    c
}

/// The library's absolute path, or a message saying where roar looked.
pub fn find_library() -> Result<PathBuf, String> {
    let c = candidates();
    for p in &c {
        if p.is_file() {
            return Ok(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()));
        }
    }
    let looked: Vec<String> = c.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "cannot find {LIB_NAME} (looked in: {}); reinstall roar or set ROAR_PRELOAD_LIB",
        looked.join(", ")
    ))
}

/// The command's environment: the caller's, plus the library in front of
/// any LD_PRELOAD already set, plus where to write the trace.
pub fn child_env(
    vars: Vec<(OsString, OsString)>,
    lib: &Path,
    trace_dir: &Path,
) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = Vec::with_capacity(vars.len() + 2);
    let mut preload = lib.as_os_str().to_os_string();
    for (k, v) in vars {
        if k == "LD_PRELOAD" {
            if !v.is_empty() {
                preload.push(":");
                preload.push(&v);
            }
        } else if k != "ROAR_TRACE_DIR" {
            out.push((k, v));
        }
    }
    out.push(("LD_PRELOAD".into(), preload));
    out.push((
        "ROAR_TRACE_DIR".into(),
        trace_dir.as_os_str().to_os_string(),
    ));
    out
}
