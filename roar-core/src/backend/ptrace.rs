//! The ptrace backend: roar's main thread becomes the tracer (ptrace ties a
//! tracee to the thread that attached), so waiting for the command is
//! running the tracer; a `roar-signals` thread forwards signals to every
//! process it follows and applies the timeout.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tracer_wire::ExitStatus;

use super::{Attached, Backend, Check, Finished, Kind, Prepared, Program, Waited};
use crate::Observer;
use crate::spawn::{Child, Ended, Forwarder};
use crate::words::{join_pids, plural};

pub struct Ptrace;

impl Kind for Ptrace {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    fn open(&self, _: &Program, _auto: bool) -> Result<(Box<dyn Backend>, String), String> {
        // `auto` reaches ptrace only for what preload cannot run seen: a
        // static command, or no library. A dynamic set-user-ID command
        // never gets here under auto: preload runs it with its privileges
        // (unseen, warned), which ptrace cannot. Every traced exec that
        // lost its privileges is flagged by the tracer.
        Ok((Box::new(Ready), "so ptrace".into()))
    }

    fn check(&self) -> Check {
        match tracer_ptrace::probe() {
            Ok(()) => Check::usable(
                "ptrace",
                "a child can be traced (PTRACE_SEIZE works)".into(),
            ),
            Err(e) => Check::unusable(
                "ptrace",
                vec![format!("PTRACE_SEIZE of a child failed: {e}")],
                e.raw_os_error(),
            ),
        }
    }
}

struct Ready;

impl Backend for Ready {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    /// The tracer waits with `waitpid(-1, __WALL)`.
    fn reaps_any_child(&self) -> bool {
        true
    }

    fn prepare(&self, trace_dir: &Path) -> std::io::Result<Box<dyn Prepared + '_>> {
        Ok(Box::new(Run {
            prepared: tracer_ptrace::Prepared::new()?,
            trace: trace_dir.join("ptrace.rwt"),
        }))
    }
}

struct Run {
    prepared: tracer_ptrace::Prepared,
    trace: PathBuf,
}

impl Prepared for Run {
    fn in_child(&self) -> Result<(), libc::c_int> {
        self.prepared.in_child()
    }

    fn waits_for_exec(&self) -> bool {
        false
    }

    fn attach(&self, pid: libc::pid_t, _cwd: &[u8]) -> std::io::Result<Box<dyn Attached>> {
        Ok(Box::new(Tracing {
            tracer: Some(self.prepared.attach(pid, &self.trace)?),
        }))
    }
}

struct Tracing {
    /// Taken by the wait, which runs it.
    tracer: Option<tracer_ptrace::Tracer>,
}

impl Attached for Tracing {
    fn wait(&mut self, child: &Child, timeout: Option<Duration>, obs: &mut dyn Observer) -> Waited {
        let Some(t) = self.tracer.take() else {
            return Waited::child(child, timeout);
        };
        let targets = t.targets();
        let fwd = Forwarder::start(
            std::sync::Arc::new(move || targets.lock().map_or_else(|_| Vec::new(), |t| t.clone())),
            timeout,
        );
        let mut tell = |left: &[u32]| {
            obs.note(&format!(
                "the command exited; following the {} it left running (pid {}) until {} too",
                plural(left.len(), "process", "processes"),
                join_pids(left),
                if left.len() == 1 {
                    "it ends"
                } else {
                    "they end"
                },
            ));
        };
        let traced = t.run(&mut tell);
        let timed_out = fwd.stop();
        let mut w = Waited {
            ended: Ended::Code(255),
            timed_out,
            losses: Vec::new(),
            warnings: Vec::new(),
        };
        match traced {
            Ok(o) => {
                if !o.outlived.is_empty() {
                    w.warnings.push(outlived(&o.outlived));
                }
                match o.status {
                    Some(ExitStatus::Code(c)) => w.ended = Ended::Code(c),
                    Some(ExitStatus::Signal(s)) => w.ended = Ended::Signal(s),
                    None => w
                        .losses
                        .push("the command's exit status was not seen by the tracer".into()),
                }
            }
            Err(e) => w
                .losses
                .push(format!("the ptrace backend stopped early: {e}")),
        }
        w
    }

    fn finish(self: Box<Self>) -> Finished {
        // Processes the command left running were followed to their end.
        Finished::default()
    }
}

/// The warning for processes ptrace followed after the command exited.
fn outlived(pids: &[u32]) -> String {
    let one = pids.len() == 1;
    format!(
        "{} (pid {}) outlived the command; roar followed {} to {} end",
        plural(pids.len(), "process", "processes"),
        join_pids(pids),
        if one { "it" } else { "them" },
        if one { "its" } else { "their" },
    )
}
