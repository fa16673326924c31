//! A progress bar on stderr for work that takes more than a second, drawn only when stderr
//! is a terminal (and `NO_PROGRESS` is unset), and erased when the work is done.
//! `ROAR_PROGRESS_DELAY_MS` sets how long work runs before its bar appears (default 1000).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    start: Instant,
    delay: Duration,
    last: Option<Instant>,
    on: bool,
}

impl Progress {
    pub fn new(what: &'static str, total: u64) -> Progress {
        Progress {
            what,
            total,
            done: 0,
            start: Instant::now(),
            delay: std::env::var("ROAR_PROGRESS_DELAY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(1), Duration::from_millis),
            last: None,
            on: std::io::stderr().is_terminal() && std::env::var_os("NO_PROGRESS").is_none(),
        }
    }

    pub fn inc(&mut self) {
        self.set(self.done + 1, self.total);
    }

    /// `done` of `total` (the total may grow as the work finds more).
    pub fn set(&mut self, done: u64, total: u64) {
        self.done = done;
        self.total = total;
        let now = Instant::now();
        if !self.on
            || now - self.start < self.delay
            || self
                .last
                .is_some_and(|l| now - l < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(now);
        let width = 30;
        let filled = (self.done.min(self.total) * width / self.total.max(1)) as usize;
        let bar = format!(
            "{}{}",
            "#".repeat(filled),
            ".".repeat(width as usize - filled)
        );
        let mut e = std::io::stderr().lock();
        let _ = write!(
            e,
            "\rroar: {} [{bar}] {}/{}\x1b[K",
            self.what, self.done, self.total
        );
        let _ = e.flush();
    }

    /// Erases the bar, if one was drawn, so a line can be printed.
    pub fn clear(&mut self) {
        if self.last.take().is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }

    pub fn what(&self) -> &'static str {
        self.what
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// A bar for `what` that follows `done`/`total` reports from a library.
pub fn reporter(what: &'static str) -> impl FnMut(u64, u64) {
    let mut bar = Progress::new(what, 0);
    move |done, total| bar.set(done, total)
}
