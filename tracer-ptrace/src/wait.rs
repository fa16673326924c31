//! Waiting for the next stop of any tracee.
//!
//! A blocking `waitpid` puts the tracer to sleep until a tracee stops; the
//! wake-up (an inter-processor interrupt, and on a VM an idle CPU leaving its
//! halt) costs more than handling the stop. Polling `waitpid` for a few tens
//! of microseconds first catches the next stop of a busy tracee without the
//! sleep: on this project's 2-core VM, `cp -r` of 7,304 files traced went
//! from 2.7 to 1.9 s and an open/close pair from 54 to 32 us. But polling
//! takes a CPU, which a tracee (gzip beside tar) may need: so the tracer polls
//! only while the machine has a CPU to spare, no more runnable tasks than
//! CPUs, the tracer and the tracee it just let go among them (looked at in
//! `/proc/stat` every few milliseconds), and never where it may use only one.

use std::time::{Duration, Instant};

use libc::{c_int, pid_t};

/// How long to poll before sleeping.
const POLL: Duration = Duration::from_micros(50);
/// How often the machine's load is looked at again.
const RECHECK: Duration = Duration::from_millis(5);

pub(crate) struct Waiter {
    /// CPUs in the system (`/proc/stat` counts runnable tasks of all of them).
    online: usize,
    /// Whether this process may run on two CPUs or more (affinity and CFS quota).
    parallel: bool,
    spin: bool,
    checked: Option<Instant>,
    /// How long a tracee let go from a system call took to stop again, on
    /// a moving average: polled for while under [`POLL`].
    gap: Duration,
    /// The tracee just let go is expected back soon (set by the event loop:
    /// from a system call, not from a fork, an exec or a signal).
    pub(crate) soon: bool,
}

impl Waiter {
    pub(crate) fn new() -> Waiter {
        // SAFETY: sysconf has no memory effects.
        let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
        Waiter {
            online: usize::try_from(online).unwrap_or(1),
            parallel: std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2),
            spin: false,
            checked: None,
            gap: Duration::ZERO,
            soon: false,
        }
    }

    /// `waitpid(-1, raw, __WALL)`, polled first when the tracee let go was
    /// in a system call, a CPU is spare and such tracees have lately come
    /// back within the polling time (one in a long stretch of its own work,
    /// ld.so loading a program, is not polled for: polling regardless made
    /// 200 runs of `hello` 5% slower).
    pub(crate) fn wait(&mut self, raw: &mut c_int) -> pid_t {
        let start = Instant::now();
        if self.soon && self.gap < POLL && self.spare() {
            loop {
                // SAFETY: waitpid with a valid status pointer.
                let tid = unsafe { libc::waitpid(-1, raw, libc::__WALL | libc::WNOHANG) };
                if tid != 0 {
                    self.seen(start.elapsed());
                    return tid;
                }
                if start.elapsed() >= POLL {
                    break;
                }
                std::hint::spin_loop();
            }
        }
        // SAFETY: waitpid with a valid status pointer.
        let tid = unsafe { libc::waitpid(-1, raw, libc::__WALL) };
        if self.soon {
            self.seen(start.elapsed());
        }
        tid
    }

    /// A tracee let go from a system call stopped again after `gap`.
    fn seen(&mut self, gap: Duration) {
        self.gap = (self.gap * 3 + gap) / 4;
    }

    fn spare(&mut self) -> bool {
        if !self.parallel {
            return false;
        }
        let now = Instant::now();
        if self
            .checked
            .is_none_or(|t| now.duration_since(t) >= RECHECK)
        {
            self.checked = Some(now);
            self.spin = procs_running().is_some_and(|n| spare_cpu(n, self.online));
        }
        self.spin
    }
}

/// Whether `running` runnable tasks leave a CPU for polling. The count is
/// taken right after a stop was handled, so it holds the tracer and, most
/// often, the tracee it just let go: each has a CPU when there are no more
/// of them than CPUs.
fn spare_cpu(running: usize, online: usize) -> bool {
    online >= 2 && running <= online
}

/// `procs_running` of `/proc/stat`: the tasks runnable now, system-wide.
fn procs_running() -> Option<usize> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    parse_procs_running(&stat)
}

fn parse_procs_running(stat: &str) -> Option<usize> {
    stat.lines()
        .find_map(|l| l.strip_prefix("procs_running "))
        .and_then(|n| n.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runnable_tasks_are_read_from_proc_stat() {
        let stat = "cpu  1 2 3\ncpu0 1 2 3\nctxt 99\nprocs_running 3\nprocs_blocked 0\n";
        assert_eq!(parse_procs_running(stat), Some(3));
        assert_eq!(parse_procs_running("cpu 1\n"), None);
        // This machine's own file has the line.
        assert!(procs_running().is_some_and(|n| n >= 1));
    }

    #[test]
    fn polls_only_with_a_cpu_to_spare() {
        // The tracer and the tracee it let go, on two CPUs (cp -r).
        assert!(spare_cpu(2, 2));
        // And a busy third (gzip beside tar): polling would take its CPU.
        assert!(!spare_cpu(3, 2));
        assert!(spare_cpu(3, 8));
        // One CPU: polling only delays the tracee.
        assert!(!spare_cpu(1, 1));
    }

    #[test]
    fn wait_reports_a_child_polled_or_not() {
        for spare in [false, true] {
            // In a process of its own: waitpid(-1) there sees only its child.
            // SAFETY: fork in a test; the child makes system calls only (the
            // waiter's load check is settled before, so nothing allocates).
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let mut w = Waiter::new();
                w.parallel = true;
                w.spin = spare;
                w.checked = Some(Instant::now() + Duration::from_secs(3600));
                w.soon = true;
                // SAFETY: as above.
                let c = unsafe { libc::fork() };
                if c == 0 {
                    // SAFETY: ending the grandchild at once.
                    unsafe { libc::_exit(7) };
                }
                let mut raw = 0;
                let ok =
                    w.wait(&mut raw) == c && libc::WIFEXITED(raw) && libc::WEXITSTATUS(raw) == 7;
                // SAFETY: ending the child with the verdict.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            let mut raw = 0;
            // SAFETY: waiting for our own child.
            assert_eq!(unsafe { libc::waitpid(pid, &mut raw, 0) }, pid);
            assert!(
                libc::WIFEXITED(raw) && libc::WEXITSTATUS(raw) == 0,
                "polled: {spare}"
            );
        }
    }
}
