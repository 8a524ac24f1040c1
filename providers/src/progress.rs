//! Progress for slow provider operations: an indicatif bar on a terminal,
//! plain lines otherwise (logs, CI, pipes).

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    what: String,
}

impl Progress {
    /// A bar of `len` steps titled `what`.
    pub fn new(len: u64, what: &str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {pos}/{len} {msg}")
                    .expect("the template is valid")
                    .progress_chars("=> "),
            );
            bar.set_prefix(what.to_string());
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        if bar.is_none() {
            eprintln!("{what}: {len} step(s)");
        }
        Progress {
            bar,
            what: what.to_string(),
        }
    }

    /// One step done.
    pub fn inc(&self, msg: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(msg.to_string());
                bar.inc(1);
            }
            None => eprintln!("{}: {msg}", self.what),
        }
    }

    /// A note that is not a step (a retry, a wait).
    pub fn note(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.println(msg),
            None => eprintln!("{}: {msg}", self.what),
        }
    }

    pub fn finish(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.finish_with_message(msg.to_string()),
            None => eprintln!("{}: {msg}", self.what),
        }
    }
}
