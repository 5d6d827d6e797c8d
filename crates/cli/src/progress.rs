//! A small progress bar on stderr, shown only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Redraws at most this often.
const REDRAW: Duration = Duration::from_millis(100);

pub struct Progress {
    label: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
}

impl Progress {
    pub fn new(label: &str, total: Option<u64>) -> Self {
        Progress {
            label: label.to_string(),
            total,
            done: 0,
            started: Instant::now(),
            last_draw: None,
            enabled: std::io::stderr().is_terminal(),
        }
    }

    pub fn advance(&mut self, n: u64) {
        self.done += n;
        if self.enabled && self.last_draw.is_none_or(|t| t.elapsed() >= REDRAW) {
            self.draw();
        }
    }

    fn draw(&mut self) {
        self.last_draw = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.done as f64 / secs / 1e6;
        let line = match self.total {
            Some(t) if t > 0 => {
                let frac = (self.done as f64 / t as f64).min(1.0);
                let width = 30;
                let fill = (frac * width as f64) as usize;
                format!(
                    "\r{} [{}{}] {:>5.1}% {:.1}/{:.1} MB {:.1} MB/s",
                    self.label,
                    "#".repeat(fill),
                    " ".repeat(width - fill),
                    frac * 100.0,
                    self.done as f64 / 1e6,
                    t as f64 / 1e6,
                    rate
                )
            }
            _ => format!(
                "\r{} {:.1} MB {:.1} MB/s",
                self.label,
                self.done as f64 / 1e6,
                rate
            ),
        };
        let mut e = std::io::stderr();
        let _ = e.write_all(line.as_bytes());
        let _ = e.flush();
    }

    pub fn finish(&mut self) {
        if self.enabled && self.last_draw.is_some() {
            self.draw();
            eprintln!();
        }
    }
}
