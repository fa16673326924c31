//! `roar run` and `roar ingest`: the engine records; this says what it did
//! on stderr and, for `run`, ends roar the way the command ended.

use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::{Result, bail};
use dag::FileRecord;
use roar_core::record::{Request, record};
use roar_core::words::count;
use roar_core::{Observer, ingest, spawn};

/// Prints what the engine says while it works, as `roar: ...` on stderr, and draws its
/// progress as a bar on a terminal.
#[derive(Default)]
pub struct Stderr {
    bar: Option<crate::progress::Progress>,
}

impl Observer for Stderr {
    fn note(&mut self, line: &str) {
        if let Some(bar) = &mut self.bar {
            bar.clear();
        }
        eprintln!("roar: {line}");
    }

    fn progress(&mut self, what: &'static str, done: u64, total: u64) {
        match &mut self.bar {
            Some(bar) if bar.what() == what => bar.set(done, total),
            _ => {
                let mut bar = crate::progress::Progress::new(what, total);
                bar.set(done, total);
                self.bar = Some(bar);
            }
        }
    }
}

pub struct Options {
    pub backend: String,
    pub label: Option<String>,
    pub timeout: Option<f64>,
    pub quiet: bool,
    /// Push the run to the team store afterwards.
    pub push: bool,
    /// The team store (`--remote`); naming one pushes there.
    pub remote: Option<String>,
    /// Where to POST the run's OpenLineage events.
    pub openlineage_url: Option<String>,
    pub command: Vec<OsString>,
}

pub fn run(opts: Options) -> Result<std::convert::Infallible> {
    let req = Request {
        backend: opts.backend,
        label: opts.label,
        timeout: opts.timeout,
        command: opts.command,
    };
    let rec = record(&req, &mut Stderr::default())?;
    let o = &rec.opened;
    let mut notes: Vec<String> = Vec::new();
    if rec.stored.is_ok() {
        let url = opts.openlineage_url.as_deref();
        let sent = roar_core::openlineage::send_runs(&o.store, &o.loc, &o.cfg, url, &[rec.id]);
        let pushed =
            crate::remote::after_record(&o.loc.db, &o.cfg, opts.remote.as_deref(), opts.push);
        notes.extend(pushed.into_iter().chain(sent));
    }
    match &rec.stored {
        Ok(()) if !opts.quiet => {
            let tail: String = notes.iter().map(|n| format!("; {n}")).collect();
            eprintln!("{}{tail}", summary(&rec));
        }
        Ok(()) => {}
        Err(e) => eprintln!(
            "roar: could not store run {} ({e}); its trace stays in {}",
            rec.id,
            rec.trace_dir.display()
        ),
    }
    if let Some(line) = rec.phases.report() {
        eprintln!("roar: {line}");
    }
    spawn::exit_like(rec.ended)
}

/// `roar: run 7 recorded (preload, 0.12 s): 2 inputs, 1 output`, and the
/// first reason it is incomplete.
fn summary(rec: &roar_core::record::Recorded) -> String {
    let r = &rec.result;
    let secs = r.duration_ms as f64 / 1000.0;
    let shown = |v: &[FileRecord]| v.iter().filter(|f| !f.filtered).count();
    let mut line = format!(
        "roar: run {} recorded ({}, {secs:.2} s): {}, {}",
        rec.id,
        rec.backend,
        count(shown(&r.inputs), "input"),
        count(shown(&r.outputs), "output"),
    );
    if let Some(l) = &rec.first_loss {
        let more = r.warnings.len() - 1;
        line.push_str(&format!("; INCOMPLETE: {l}"));
        if more > 0 {
            line.push_str(&format!(" (+{more} more; roar show {})", rec.id));
        }
    }
    line
}

pub struct IngestOptions {
    pub dir: Option<PathBuf>,
    pub settle: f64,
    pub label: Option<String>,
    pub quiet: bool,
    pub remove: bool,
    pub push: bool,
    pub remote: Option<String>,
    pub openlineage_url: Option<String>,
}

pub fn ingest(opts: IngestOptions) -> Result<()> {
    let dir = match opts
        .dir
        .or_else(|| std::env::var_os("ROAR_TRACE_DIR").map(PathBuf::from))
    {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => bail!("name the trace directory to ingest (or set ROAR_TRACE_DIR)"),
    };
    let report = ingest::ingest(
        ingest::Options {
            dir,
            settle: std::time::Duration::from_secs_f64(opts.settle.max(0.0)),
            label: opts.label,
            remove: opts.remove,
        },
        &mut Stderr::default(),
    )?;
    let (pushed, sent) = if report.recorded.is_empty() {
        (None, None)
    } else {
        let (loc, store) = crate::open_located()?;
        let cfg = roar_core::config::load(&loc.roar_dir())?;
        let ids: Vec<dag::RunId> = report.recorded.iter().map(|r| r.id).collect();
        let url = opts.openlineage_url.as_deref();
        let sent = roar_core::openlineage::send_runs(&store, &loc, &cfg, url, &ids);
        let pushed = crate::remote::after_record(&loc.db, &cfg, opts.remote.as_deref(), opts.push);
        (pushed, sent)
    };
    if opts.quiet {
        return Ok(());
    }
    for r in &report.recorded {
        let cmd: Vec<String> = r
            .command
            .iter()
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        eprintln!(
            "roar: run {} recorded from {} process{} ({}){}",
            r.id,
            r.processes,
            if r.processes == 1 { "" } else { "es" },
            cmd.join(" "),
            if r.complete { "" } else { "; INCOMPLETE" }
        );
    }
    let mut line = format!(
        "roar: ingested {} from {}",
        count(report.recorded.len(), "run"),
        report.dir.display()
    );
    if report.seen > 0 {
        line.push_str(&format!(
            "; {} already ingested",
            count(report.seen, "tree")
        ));
    }
    if report.pending > 0 {
        line.push_str(&format!(
            "; {} still running, left for later",
            count(report.pending, "tree")
        ));
    }
    if !report.unreadable.is_empty() {
        line.push_str(&format!(
            "; {} empty or unreadable, kept: {}",
            count(report.unreadable.len(), "stream"),
            report.unreadable.join(", ")
        ));
    }
    eprintln!("{line}");
    crate::remote::say(pushed);
    crate::remote::say(sent);
    Ok(())
}
