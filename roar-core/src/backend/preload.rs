//! The preload backend: the command runs with `libroar_preload.so` in
//! `LD_PRELOAD` and `ROAR_TRACE_DIR` naming the run's trace directory; every
//! process image the library is loaded into writes its own stream there.
//! Nothing stands between roar and the command while it runs.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Attached, Backend, Check, Finished, Kind, Prepared, Program, Waited};
use crate::Observer;
use crate::elf::Linking;
use crate::spawn::Child;

pub const LIB_NAME: &str = "libroar_preload.so";

/// The same library linked against glibc 2.34, installed beside
/// [`LIB_NAME`]. Since 2.34, libdl and libpthread are part of libc, so it
/// needs only `libc.so.6`: every process image it is loaded into maps two
/// shared objects fewer (about 20 system calls and 10 page faults per
/// process). It cannot load where glibc is older, so roar gives it only to
/// a command whose program interpreter's glibc defines `GLIBC_2.34`; images
/// and pods get the portable [`LIB_NAME`].
pub const LIB_NAME_GLIBC_2_34: &str = "libroar_preload-glibc2.34.so";

/// Where roar looks for its preload library, in order. `ROAR_PRELOAD_LIB`
/// overrides the search: when set, it is the only place looked at.
pub fn candidates() -> Vec<PathBuf> {
    let mut c = Vec::new();
    if let Some(p) = overridden() {
        c.push(p);
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

/// `ROAR_PRELOAD_LIB`, when set: the one library roar uses.
fn overridden() -> Option<PathBuf> {
    std::env::var_os("ROAR_PRELOAD_LIB")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// The glibc 2.34 build installed beside the portable `lib`, unless
/// `ROAR_PRELOAD_LIB` names the one library to use.
fn glibc_2_34_beside(lib: &Path) -> Option<PathBuf> {
    if overridden().is_some() {
        return None;
    }
    let variant = lib.with_file_name(LIB_NAME_GLIBC_2_34);
    variant.is_file().then_some(variant)
}

/// The library to trace `program` with: the glibc 2.34 build beside the
/// portable one when the program runs with a glibc that has 2.34's
/// symbols, else the portable one. `ROAR_PRELOAD_LIB` is used as it is.
pub fn library_for(program: &Program) -> Result<PathBuf, String> {
    let lib = find_library()?;
    let newer = match &program.linking {
        Linking::Dynamic(interp) => {
            glibc_2_34_beside(&lib).filter(|_| crate::elf::glibc_defines(interp, "GLIBC_2.34"))
        }
        Linking::Static | Linking::Unknown => None,
    };
    Ok(newer.unwrap_or(lib))
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

pub struct Preload;

impl Kind for Preload {
    fn name(&self) -> &'static str {
        "preload"
    }

    fn open(&self, program: &Program, auto: bool) -> Result<(Box<dyn Backend>, String), String> {
        let lib = library_for(program)?;
        if auto && program.is_static {
            return Err("the command is statically linked".into());
        }
        Ok((
            Box::new(Ready { lib }),
            "the command is dynamically linked, so preload".into(),
        ))
    }

    fn check(&self) -> Check {
        match find_library() {
            Ok(lib) => {
                let variant = glibc_2_34_beside(&lib).map_or_else(String::new, |v| {
                    format!(" (for programs on glibc 2.34 or later: {})", v.display())
                });
                Check::usable(
                    "preload",
                    format!(
                        "library at {}{variant}; sees dynamically linked programs that keep LD_PRELOAD",
                        lib.display()
                    ),
                )
            }
            Err(e) => Check::unusable("preload", vec![format!("library not found: {e}")], None),
        }
    }
}

/// The library, found.
struct Ready {
    lib: PathBuf,
}

impl Backend for Ready {
    fn name(&self) -> &'static str {
        "preload"
    }

    fn blind_spots(&self, program: &Program) -> Vec<String> {
        let mut blind = Vec::new();
        if program.is_static {
            blind.push(format!(
                "{} is statically linked: the preload backend cannot see its file accesses (use --backend ptrace)",
                program.path.display()
            ));
        } else if program.raises_privileges {
            blind.push(format!(
                "{} is set-user-ID or set-group-ID: the dynamic loader ignores LD_PRELOAD for it, so the preload backend sees nothing it does (as root, --backend ebpf sees it)",
                program.path.display()
            ));
        }
        blind
    }

    fn prepare(&self, trace_dir: &Path) -> std::io::Result<Box<dyn Prepared + '_>> {
        Ok(Box::new(Run {
            lib: &self.lib,
            trace_dir: trace_dir.to_path_buf(),
        }))
    }
}

struct Run<'a> {
    lib: &'a Path,
    trace_dir: PathBuf,
}

impl Prepared for Run<'_> {
    fn child_env(&self, env: Vec<(OsString, OsString)>) -> Vec<(OsString, OsString)> {
        child_env(env, self.lib, &self.trace_dir)
    }

    fn attach(&self, pid: libc::pid_t, _cwd: &[u8]) -> std::io::Result<Box<dyn Attached>> {
        Ok(Box::new(Running {
            trace_dir: self.trace_dir.clone(),
            pids: u32::try_from(pid).ok().and_then(PidWindow::start),
        }))
    }
}

struct Running {
    trace_dir: PathBuf,
    /// Where the run's pids lie; None (unknown) means every process is looked at.
    pids: Option<PidWindow>,
}

impl Attached for Running {
    fn wait(&mut self, child: &Child, timeout: Option<Duration>, _: &mut dyn Observer) -> Waited {
        Waited::child(child, timeout)
    }

    fn finish(self: Box<Self>) -> Finished {
        Finished {
            lingering: still_running(&self.trace_dir, self.pids.as_ref()),
            ..Finished::default()
        }
    }
}

/// Processes of this run still alive: any process whose environment still
/// carries this run's trace directory (inherited from the command), found
/// by scanning /proc so that a child that has not written its first record
/// yet is not missed, and a reused pid is never mistaken for ours. Only the
/// pids in `window` are read, when it can say where they lie: reading every
/// process's environment costs about 6 us a process, 6 ms a run on a
/// machine running a thousand.
fn still_running(trace_dir: &Path, window: Option<&PidWindow>) -> Vec<u32> {
    let marker = marker(trace_dir);
    let me = std::process::id();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let within = window.and_then(PidWindow::now);
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| within.as_ref().is_none_or(|w| w.contains(*pid)))
        .filter(|pid| match environment(*pid) {
            Some(env) if env.is_empty() && within.is_some() => settled_carries(*pid, &marker),
            Some(env) => has_marker(&env, &marker),
            None => false,
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Every process that carries a run's trace directory was created after the
/// command, and the kernel hands out pids in turn, wrapping at `pid_max`: so
/// they all lie in the turn from the command's pid to the last pid handed
/// out, unless the counter went all the way round, which more forks than
/// pids would take. `/proc/stat` counts every fork and thread on the
/// machine, a bound on the pids our namespace handed out.
struct PidWindow {
    first: u32,
    forks: u64,
}

/// The pids handed out since the command started, as they stand now.
struct Turn {
    first: u32,
    last: u32,
}

impl PidWindow {
    fn start(first: u32) -> Option<PidWindow> {
        Some(PidWindow {
            first,
            forks: forks()?,
        })
    }

    /// None when the window is unknown or may have gone round: look at all.
    fn now(&self) -> Option<Turn> {
        let last: u32 = read_number("/proc/sys/kernel/ns_last_pid")?;
        let pid_max: u64 = read_number("/proc/sys/kernel/pid_max")?;
        let forks = forks()?.checked_sub(self.forks)?;
        // The kernel skips the first 300 pids once it wraps.
        (forks + 300 < pid_max).then_some(Turn {
            first: self.first,
            last,
        })
    }
}

impl Turn {
    fn contains(&self, pid: u32) -> bool {
        if self.first <= self.last {
            (self.first..=self.last).contains(&pid)
        } else {
            pid >= self.first || pid <= self.last
        }
    }
}

/// Forks and threads started on the machine since boot.
fn forks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|l| l.starts_with("processes "))?;
    line["processes ".len()..].trim().parse().ok()
}

fn read_number<T: std::str::FromStr>(path: &str) -> Option<T> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// True when process `pid` has `marker` (`ROAR_TRACE_DIR=<dir>\0`) in its
/// environment.
fn carries_trace_dir(pid: u32, marker: &[u8]) -> bool {
    environment(pid).is_some_and(|env| has_marker(&env, marker))
}

fn environment(pid: u32) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/environ")).ok()
}

fn has_marker(env: &[u8], marker: &[u8]) -> bool {
    env.windows(marker.len()).any(|w| w == marker)
}

/// An empty environment is also what a process shows for the moment its
/// execve replaces its memory (a forked child of the command going on to run
/// `sleep` as the command exits, say): unless it is a kernel thread, it is
/// read again until the exec is done, for at most 5 ms.
fn settled_carries(pid: u32, marker: &[u8]) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    // The flags are the 7th field after the command name.
    let kernel_thread = crate::spawn::proc_stat(pid)
        .and_then(|stat| stat.split_whitespace().nth(6)?.parse::<u64>().ok())
        .is_none_or(|flags| flags & PF_KTHREAD != 0);
    if kernel_thread {
        return false;
    }
    for _ in 0..25 {
        std::thread::sleep(std::time::Duration::from_micros(200));
        match environment(pid) {
            Some(env) if env.is_empty() => continue,
            Some(env) => return has_marker(&env, marker),
            None => return false,
        }
    }
    false
}

/// True when any process (in our pid namespace) carries the trace directory
/// `dir` in its environment.
pub fn any_alive_with_trace_dir(dir: &Path) -> bool {
    !still_running(dir, None).is_empty()
}

/// True when `pid` (in our own pid namespace) is alive and carries the trace
/// directory `dir` in its environment.
pub fn alive_with_trace_dir(pid: u32, dir: &Path) -> bool {
    carries_trace_dir(pid, &marker(dir))
}

/// `ROAR_TRACE_DIR=<dir>` and the NUL that ends it in an environment block.
fn marker(dir: &Path) -> Vec<u8> {
    let mut m = b"ROAR_TRACE_DIR=".to_vec();
    m.extend_from_slice(dir.as_os_str().as_bytes());
    m.push(0);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_of_pids_wraps_at_pid_max() {
        let plain = Turn {
            first: 100,
            last: 200,
        };
        assert!(plain.contains(100) && plain.contains(150) && plain.contains(200));
        assert!(!plain.contains(99) && !plain.contains(201));
        let wrapped = Turn {
            first: 32000,
            last: 400,
        };
        assert!(wrapped.contains(32000) && wrapped.contains(32767) && wrapped.contains(300));
        assert!(!wrapped.contains(31999) && !wrapped.contains(401));
    }

    #[test]
    fn a_process_started_after_the_window_opened_is_in_it_and_earlier_ones_are_not() {
        let Some(window) = PidWindow::start(std::process::id() + 1) else {
            return; // no /proc/stat here
        };
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let turn = window.now().expect("a handful of forks cannot go round");
        assert!(
            turn.contains(child.id()),
            "{} in {}..{}",
            child.id(),
            turn.first,
            turn.last
        );
        assert!(!turn.contains(1));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn an_empty_environment_is_read_again_but_a_kernel_thread_or_env_i_is_not_ours() {
        let marker = marker(Path::new("/nowhere/traces/run-1"));
        // kthreadd (pid 2 outside a pid namespace): a kernel thread is not
        // waited for.
        if std::fs::read_to_string("/proc/2/stat").is_ok_and(|s| s.contains("(kthreadd)")) {
            let start = std::time::Instant::now();
            assert!(!settled_carries(2, &marker));
            assert!(start.elapsed() < std::time::Duration::from_millis(2));
        }
        // A process started with no environment at all stays empty: given up
        // on after the wait.
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .env_clear()
            .spawn()
            .unwrap();
        let pid = child.id();
        while environment(pid).is_none_or(|e| !e.is_empty()) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!settled_carries(pid, &marker));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut env = b"A=1\0".to_vec();
        env.extend_from_slice(&marker);
        assert!(has_marker(&env, &marker) && !has_marker(b"A=1\0", &marker));
    }
}
