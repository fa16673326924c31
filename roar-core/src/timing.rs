//! `ROAR_TIMING=1`: where a `roar run` spends its time, phase by phase
//! (the CLI prints it on stderr). The benchmarks read it to split roar's own fixed cost from the
//! time the traced command itself took.

use std::time::{Duration, Instant};

pub struct Phases {
    on: bool,
    last: Instant,
    marks: Vec<(&'static str, Duration)>,
    traced: Option<Duration>,
}

impl Phases {
    pub fn new(start: Instant) -> Phases {
        Phases {
            on: std::env::var_os("ROAR_TIMING").is_some(),
            last: start,
            marks: Vec::new(),
            traced: None,
        }
    }

    /// Ends the phase called `name` now.
    pub fn mark(&mut self, name: &'static str) {
        if self.on {
            let now = Instant::now();
            self.marks.push((name, now - self.last));
            self.last = now;
        }
    }

    /// How long the command ran: from its release (the tracer attached, the
    /// child let go to exec) until roar saw it end.
    pub fn traced(&mut self, d: Duration) {
        self.traced = Some(d);
    }

    /// One line, when `ROAR_TIMING` asked for it: `timing: open 1.20 ms,
    /// backend 40.10 ms, ..., traced command 9.80 ms`.
    pub fn report(&self) -> Option<String> {
        self.on.then(|| {
            let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
            let mut parts: Vec<String> = self
                .marks
                .iter()
                .map(|(n, d)| format!("{n} {:.2} ms", ms(d)))
                .collect();
            if let Some(t) = &self.traced {
                parts.push(format!("traced command {:.2} ms", ms(t)));
            }
            format!("timing: {}", parts.join(", "))
        })
    }
}
