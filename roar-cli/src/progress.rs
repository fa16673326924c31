//! A progress bar on stderr for work that takes more than a second, drawn only when stderr
//! is a terminal (and `NO_PROGRESS` is unset), and erased when the work is done.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

pub struct Progress {
    what: &'static str,
    total: u64,
    done: u64,
    start: Instant,
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
            last: None,
            on: std::io::stderr().is_terminal() && std::env::var_os("NO_PROGRESS").is_none(),
        }
    }

    pub fn inc(&mut self) {
        self.done += 1;
        let now = Instant::now();
        if !self.on
            || now - self.start < Duration::from_secs(1)
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
            "\rroar: {} [{bar}] {}/{}",
            self.what, self.done, self.total
        );
        let _ = e.flush();
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.last.is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }
}
