//! A terminal progress bar for long scans, shown only once work has taken more than a moment.
//! It counts the line items the scan has read, out of the total the Parquet footers give (CSV: a count
//! without a total).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kubecur_shared::ports::Progress;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long work runs silently before a bar appears.
const QUIET_FOR: Duration = Duration::from_millis(400);

pub struct TerminalProgress {
    bar: ProgressBar,
    started: Instant,
    visible: AtomicBool,
}

impl TerminalProgress {
    pub fn new() -> TerminalProgress {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
        let style = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {human_pos}/{human_len} line items, {elapsed}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        TerminalProgress {
            bar,
            started: Instant::now(),
            visible: AtomicBool::new(false),
        }
    }

    fn reveal_if_slow(&self) {
        if !self.visible.load(Ordering::Relaxed) && self.started.elapsed() > QUIET_FOR {
            self.visible.store(true, Ordering::Relaxed);
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
            self.bar.enable_steady_tick(Duration::from_millis(120));
        }
    }
}

impl Progress for TerminalProgress {
    fn phase(&self, message: &str) {
        self.bar.set_message(message.to_string());
        self.reveal_if_slow();
    }

    fn set_total_rows(&self, rows: Option<u64>) {
        self.bar.set_position(0);
        match rows {
            Some(rows) => self.bar.set_length(rows),
            None => self.bar.unset_length(),
        }
    }

    fn rows_read(&self, rows: u64) {
        self.bar.set_position(rows);
        self.reveal_if_slow();
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
