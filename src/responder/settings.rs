//! The round-trip delays a deployment stores (`set-message --hop-delay`,
//! `--line-delay`) or `serve` takes from its flags, and those flags'
//! parsers: every value checked once, capped at [`MAX_DELAY_MS`].

use super::delay::{delay_of_line, Delays, MAX_DELAY_MS};
use serde::{Deserialize, Serialize};

/// The delay settings of a deployment (stored in its state) or of a show
/// from flags: hop `t` waits `t × hop_ms`, unless line `t` has its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelaySettings {
    /// Milliseconds per hop (0: none).
    #[serde(default)]
    pub hop_ms: u32,
    /// `(line, ms)`: one line's own delay (lines from 1), in line order.
    #[serde(default)]
    pub lines: Vec<(usize, u32)>,
}

impl DelaySettings {
    /// True when no reply waits.
    pub fn is_none(&self) -> bool {
        self.hop_ms == 0 && self.lines.iter().all(|(_, ms)| *ms == 0)
    }

    /// The delay of line `line` (1-based), capped at [`MAX_DELAY_MS`].
    pub fn of_line(&self, line: usize) -> u32 {
        delay_of_line(self.hop_ms, &self.lines, line)
    }

    /// The per-line table the loop uses.
    pub fn delays(&self) -> Delays {
        Delays::new(self.hop_ms, &self.lines)
    }

    /// One line for logs and `status`.
    pub fn describe(&self) -> String {
        if self.is_none() {
            return "none".into();
        }
        let mut parts = Vec::new();
        if self.hop_ms > 0 {
            parts.push(format!("{} ms per hop", self.hop_ms));
        }
        parts.extend(
            self.lines
                .iter()
                .map(|(l, ms)| format!("line {l}: {ms} ms")),
        );
        parts.join(", ")
    }
}

/// Parses a delay in milliseconds, at most [`MAX_DELAY_MS`] (`--hop-delay`,
/// and the MS of `--line-delay`). Like the parsers of `crate::cli::value`,
/// the error leaves the flag's name to clap.
pub fn parse_ms(text: &str) -> Result<u32, String> {
    let ms: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number of milliseconds; write e.g. 20"))?;
    if ms > MAX_DELAY_MS {
        return Err(format!(
            "{ms}: delays are capped at {MAX_DELAY_MS} ms, under traceroute's 5-second wait; give at most {MAX_DELAY_MS}"
        ));
    }
    Ok(ms)
}

/// Parses `--line-delay LINE=MS`.
pub fn parse_line_delay(text: &str) -> Result<(usize, u32), String> {
    let (line, ms) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' needs the form LINE=MS, e.g. 3=150"))?;
    let line: usize = line
        .trim()
        .parse()
        .ok()
        .filter(|l| *l >= 1)
        .ok_or_else(|| format!("'{text}': LINE is a line number from 1"))?;
    Ok((line, parse_ms(ms)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn lines_wait_per_hop_unless_they_have_their_own_delay_capped_at_2000() {
        let s = DelaySettings {
            hop_ms: 20,
            lines: vec![(3, 500)],
        };
        assert_eq!(s.of_line(1), 20);
        assert_eq!(s.of_line(4), 80);
        assert_eq!(s.of_line(3), 500);
        assert_eq!(s.of_line(200), MAX_DELAY_MS);
        let d = s.delays();
        assert_eq!(d.of_line(4), Duration::from_millis(80));
        assert_eq!(d.of_line(0), Duration::ZERO);
        assert_eq!(DelaySettings::default().delays().of_line(4), Duration::ZERO);
        assert_eq!(s.describe(), "20 ms per hop, line 3: 500 ms");
    }

    #[test]
    fn delay_flags_are_checked_with_one_clear_sentence() {
        assert_eq!(parse_ms("20"), Ok(20));
        assert_eq!(parse_ms("2000"), Ok(2000));
        let e = parse_ms("2001").unwrap_err();
        assert!(e.starts_with("2001: delays are capped at 2000 ms"), "{e}");
        assert_eq!(
            parse_ms("x").unwrap_err(),
            "'x' is not a number of milliseconds; write e.g. 20"
        );
        assert_eq!(parse_line_delay("3=150"), Ok((3, 150)));
        assert!(parse_line_delay("0=5").unwrap_err().contains("from 1"));
        assert!(parse_line_delay("3").unwrap_err().contains("LINE=MS"));
        assert!(parse_line_delay("3=2500").unwrap_err().contains("capped"));
    }
}
