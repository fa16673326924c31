//! The machine a run ran on: host name, kernel, OS release, CPU, memory, GPUs.
//!
//! Read from `/proc` and `/etc/os-release`; GPUs from `nvidia-smi` when it is installed (the
//! only program started, with a two-second limit), so a machine without one pays nothing.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dag::Host;

/// What this machine is.
pub fn facts() -> Host {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let line = |p: &str| {
        read(p)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let kernel = match (
        line("/proc/sys/kernel/osrelease"),
        line("/proc/sys/kernel/version"),
    ) {
        (Some(r), Some(v)) => Some(format!("{r} {v}")),
        (r, _) => r,
    };
    let cpuinfo = read("/proc/cpuinfo").unwrap_or_default();
    Host {
        hostname: line("/proc/sys/kernel/hostname"),
        kernel,
        os: read("/etc/os-release")
            .or_else(|| read("/usr/lib/os-release"))
            .and_then(|t| field(&t, "PRETTY_NAME=").map(|v| v.trim_matches('"').to_string())),
        cpu_model: field(&cpuinfo, "model name")
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()),
        cpus: std::thread::available_parallelism()
            .ok()
            .map(|n| n.get() as u32)
            .max(Some(
                cpuinfo
                    .lines()
                    .filter(|l| l.starts_with("processor"))
                    .count() as u32,
            ))
            .filter(|&n| n > 0),
        memory_bytes: read("/proc/meminfo")
            .and_then(|m| field(&m, "MemTotal:").map(str::to_string))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024),
        gpus: gpus(),
    }
}

/// The rest of the first line starting with `key`.
fn field<'t>(text: &'t str, key: &str) -> Option<&'t str> {
    text.lines().find_map(|l| l.strip_prefix(key))
}

/// One line per NVIDIA GPU: name, memory, driver.
fn gpus() -> Vec<String> {
    let Some(smi) = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("nvidia-smi"))
            .find(|p| Path::new(p).is_file())
    }) else {
        return Vec::new();
    };
    let child = Command::new(smi)
        .args([
            "--query-gpu=name,memory.total,driver_version",
            "--format=csv,noheader",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Vec::new();
    };
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Vec::new();
            }
        }
    }
    let mut out = String::new();
    let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_machine() {
        let h = super::facts();
        assert!(h.hostname.is_some() && h.kernel.is_some());
        assert!(h.cpus.unwrap_or(0) >= 1);
        assert!(h.memory_bytes.unwrap_or(0) > 1 << 20);
    }
}
