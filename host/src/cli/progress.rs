//! Progress of a finite `vigil run --events` on a terminal: one line on
//! stderr, redrawn in place at most twice a second (events/s, the line
//! reached, findings so far), and a last one when the stream ends. Nothing
//! when stderr is not a terminal: logs and pipes get only the summary.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::pipeline::RunStats;

/// How often the line is redrawn.
const EVERY: Duration = Duration::from_millis(500);

pub struct Progress {
    enabled: bool,
    started: Instant,
    /// When the line was last drawn; `None` before the first.
    drawn: Option<Instant>,
}

impl Progress {
    /// Draws only when stderr is a terminal.
    pub fn on_stderr() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
            drawn: None,
        }
    }

    /// After each line: redraws if it is time.
    pub fn tick(&mut self, name: &str, line: u64, stats: &RunStats) {
        if !self.enabled || self.drawn.is_some_and(|at| at.elapsed() < EVERY) {
            return;
        }
        self.draw(name, line, stats);
    }

    /// At the end of a stream: the final counts, and a newline.
    pub fn finish(&mut self, name: &str, stats: &RunStats) {
        if !self.enabled || self.drawn.is_none() {
            return;
        }
        self.draw(name, stats.lines, stats);
        eprintln!();
        self.drawn = None;
    }

    fn draw(&mut self, name: &str, line: u64, stats: &RunStats) {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = stats.events as f64 / secs;
        let mut err = std::io::stderr().lock();
        // \r and clear to the end of the line: redrawn in place.
        let _ = write!(
            err,
            "\r\x1b[Kvigil: {name}: line {line}, {} events ({rate:.0}/s), {} findings, {} rejected",
            stats.events, stats.findings, stats.rejected
        );
        let _ = err.flush();
        self.drawn = Some(Instant::now());
    }
}
