//! Text to host names.
//!
//! Every line of a message becomes the PTR name of one hop, and a PTR name
//! is only shown by a traceroute client if glibc's resolver accepts it:
//! labels of `[A-Za-z0-9_-]`, none starting with `-`, at most 63 bytes each,
//! at most 253 bytes in all (DESIGN.md §2). This module turns free text into
//! such names, reports every change it had to make so the operator is never
//! surprised by what a client prints, and refuses what cannot fit.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest label glibc accepts.
pub const MAX_LABEL: usize = 63;
/// Longest name (in presentation form, without the final dot).
pub const MAX_NAME: usize = 253;

/// How to encode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Split lines longer than [`MAX_NAME`] over several hops at word
    /// boundaries instead of failing.
    pub wrap: bool,
}

/// One hop's worth of message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Line {
    /// A host name that glibc accepts, case kept.
    Named { name: String },
    /// A blank line: the hop does not answer and the client prints `* * *`.
    Silent,
}

impl Line {
    pub fn name(&self) -> Option<&str> {
        match self {
            Line::Named { name } => Some(name),
            Line::Silent => None,
        }
    }
}

/// A change the encoder made to make a line valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// 1-based line number in the input text.
    pub line: usize,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// Non-ASCII characters replaced by their ASCII transliteration.
    Transliterated { from: String, to: String },
    /// Apostrophes dropped (`Don't` -> `Dont`).
    ApostrophesDropped { count: usize },
    /// Characters that cannot appear in a host name removed.
    Removed { chars: String },
    /// A label started with `-`, which glibc rejects; it became `_`.
    LeadingHyphen { label: String, now: String },
    /// The line was longer than one name and was split over several hops.
    Wrapped { hops: usize },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: ", self.line)?;
        match &self.change {
            Change::Transliterated { from, to } => {
                write!(f, "non-ASCII \"{from}\" written as \"{to}\"")
            }
            Change::ApostrophesDropped { count } => {
                write!(
                    f,
                    "{count} apostrophe(s) dropped (host names cannot contain ')"
                )
            }
            Change::Removed { chars } => write!(
                f,
                "removed {chars:?} (host names may only contain letters, digits, '-' and '_')"
            ),
            Change::LeadingHyphen { label, now } => write!(
                f,
                "label \"{label}\" starts with '-', which resolvers reject; it became \"{now}\""
            ),
            Change::Wrapped { hops } => write!(f, "too long for one hop; split over {hops} hops"),
        }
    }
}

/// Why a message cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the message is empty; give at least one line of text")]
    Empty,
    #[error(
        "line {line}: the word \"{word}\" is {len} bytes after encoding, over the {MAX_LABEL}-byte \
         limit of a host-name label; shorten it or put spaces in it"
    )]
    WordTooLong {
        line: usize,
        word: String,
        len: usize,
    },
    #[error(
        "line {line} is {len} bytes after encoding, over the {MAX_NAME}-byte limit of a host name; \
         shorten it or pass --wrap to split it over several hops"
    )]
    LineTooLong { line: usize, len: usize },
    #[error(
        "line {line} (\"{text}\") has nothing left that a host name can hold; \
         write it with letters, digits, '-' or '_', or leave it blank for a silent hop"
    )]
    NothingLeft { line: usize, text: String },
    #[error("{count} change(s) were needed and --strict is set:\n  {}", list.join("\n  "))]
    Strict { count: usize, list: Vec<String> },
}

/// The encoded message: one [`Line`] per hop, and what was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Encoded {
    pub lines: Vec<Line>,
    pub warnings: Vec<Warning>,
}

impl Encoded {
    /// Fails if anything was changed (`--strict`).
    pub fn strict(self) -> Result<Encoded, EncodeError> {
        if self.warnings.is_empty() {
            Ok(self)
        } else {
            Err(EncodeError::Strict {
                count: self.warnings.len(),
                list: self.warnings.iter().map(ToString::to_string).collect(),
            })
        }
    }
}

/// Encodes a whole message. Lines are separated by `\n` (`\r\n` is fine);
/// one final newline does not make an extra silent hop.
pub fn encode(text: &str, options: Options) -> Result<Encoded, EncodeError> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(EncodeError::Empty);
    }
    let mut out = Encoded {
        lines: Vec::new(),
        warnings: Vec::new(),
    };
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        encode_line(number, raw, options, &mut out)?;
    }
    Ok(out)
}

fn encode_line(
    number: usize,
    raw: &str,
    options: Options,
    out: &mut Encoded,
) -> Result<(), EncodeError> {
    if raw.trim().is_empty() {
        out.lines.push(Line::Silent);
        return Ok(());
    }
    let mut warn = |change| {
        out.warnings.push(Warning {
            line: number,
            change,
        })
    };

    // 1. Non-ASCII to ASCII, reporting each run that changed.
    let ascii = if raw.is_ascii() {
        raw.to_string()
    } else {
        let mut ascii = String::with_capacity(raw.len());
        let (mut from, mut to) = (String::new(), String::new());
        for ch in raw.chars() {
            if is_apostrophe(ch) || ch.is_ascii() {
                ascii.push(ch);
                continue;
            }
            let t = deunicode::deunicode_char(ch).unwrap_or("");
            from.push(ch);
            to.push_str(t);
            ascii.push_str(t);
        }
        if !from.is_empty() {
            warn(Change::Transliterated { from, to });
        }
        ascii
    };

    // 2. Apostrophes go without a trace, everything else not allowed goes
    //    too; whitespace and dots separate labels.
    let mut labels: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut apostrophes = 0;
    let mut removed = String::new();
    for ch in ascii.chars() {
        if is_apostrophe(ch) {
            apostrophes += 1;
        } else if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' {
            current.push(ch);
        } else if ch.is_whitespace() || ch == '.' {
            if !current.is_empty() {
                labels.push(std::mem::take(&mut current));
            }
        } else if !removed.contains(ch) {
            removed.push(ch);
        }
    }
    if !current.is_empty() {
        labels.push(current);
    }
    if apostrophes > 0 {
        warn(Change::ApostrophesDropped { count: apostrophes });
    }
    if !removed.is_empty() {
        warn(Change::Removed { chars: removed });
    }

    // 3. A leading '-' makes glibc reject the whole name.
    for label in &mut labels {
        if label.starts_with('-') {
            let now = format!("_{}", &label[1..]);
            warn(Change::LeadingHyphen {
                label: label.clone(),
                now: now.clone(),
            });
            *label = now;
        }
    }

    if labels.is_empty() {
        return Err(EncodeError::NothingLeft {
            line: number,
            text: raw.to_string(),
        });
    }
    if let Some(long) = labels.iter().find(|l| l.len() > MAX_LABEL) {
        return Err(EncodeError::WordTooLong {
            line: number,
            word: long.clone(),
            len: long.len(),
        });
    }

    let total = labels.iter().map(|l| l.len() + 1).sum::<usize>() - 1;
    if total <= MAX_NAME {
        out.lines.push(Line::Named {
            name: labels.join("."),
        });
        return Ok(());
    }
    if !options.wrap {
        return Err(EncodeError::LineTooLong {
            line: number,
            len: total,
        });
    }
    let mut names: Vec<String> = Vec::new();
    let mut name = String::new();
    for label in labels {
        if !name.is_empty() && name.len() + 1 + label.len() > MAX_NAME {
            names.push(std::mem::take(&mut name));
        }
        if !name.is_empty() {
            name.push('.');
        }
        name.push_str(&label);
    }
    names.push(name);
    warn(Change::Wrapped { hops: names.len() });
    out.lines
        .extend(names.into_iter().map(|name| Line::Named { name }));
    Ok(())
}

fn is_apostrophe(ch: char) -> bool {
    matches!(ch, '\'' | '\u{2019}' | '\u{2018}' | '`' | '\u{02bc}')
}

/// Whether `name` satisfies every rule this module promises; used by tests
/// and as a last check before a name is published.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(text: &str) -> Vec<Option<String>> {
        encode(text, Options::default())
            .unwrap()
            .lines
            .into_iter()
            .map(|l| l.name().map(str::to_string))
            .collect()
    }

    fn one(text: &str) -> (String, Vec<Change>) {
        let e = encode(text, Options::default()).unwrap();
        assert_eq!(e.lines.len(), 1);
        (
            e.lines[0].name().unwrap().to_string(),
            e.warnings.into_iter().map(|w| w.change).collect(),
        )
    }

    #[test]
    fn spaces_become_dots_and_case_is_kept() {
        assert_eq!(one("Douglas Adams"), ("Douglas.Adams".into(), vec![]));
        assert_eq!(one("  Mostly    Harmless  ").0, "Mostly.Harmless");
        assert_eq!(one("a\tb").0, "a.b");
        assert_eq!(one("already.dotted..name").0, "already.dotted.name");
    }

    #[test]
    fn apostrophes_are_dropped_with_a_warning() {
        let (name, changes) = one("Don't Panic");
        assert_eq!(name, "Dont.Panic");
        assert_eq!(changes, vec![Change::ApostrophesDropped { count: 1 }]);
        assert_eq!(one("It\u{2019}s").0, "Its");
    }

    #[test]
    fn punctuation_is_removed_with_a_warning() {
        let (name, changes) = one("Hello, World!");
        assert_eq!(name, "Hello.World");
        assert_eq!(changes, vec![Change::Removed { chars: ",!".into() }]);
    }

    #[test]
    fn non_ascii_is_transliterated() {
        let (name, changes) = one("Grüße aus Köln");
        assert_eq!(name, "Grusse.aus.Koln");
        assert!(matches!(&changes[0], Change::Transliterated { from, .. } if from == "üßö"));
    }

    #[test]
    fn border_lines_lose_their_leading_hyphen() {
        let (name, changes) = one("-----");
        assert_eq!(name, "_----");
        assert_eq!(changes.len(), 1);
        assert_eq!(one("0----0"), ("0----0".into(), vec![]));
        assert_eq!(one("a -b").0, "a._b");
    }

    #[test]
    fn blank_lines_are_silent_and_final_newline_is_ignored() {
        assert_eq!(
            names("a\n\n   \nb\n"),
            vec![Some("a".into()), None, None, Some("b".into())]
        );
        assert_eq!(
            names("a\r\nb\r\n"),
            vec![Some("a".into()), Some("b".into())]
        );
    }

    #[test]
    fn empty_messages_are_refused() {
        assert_eq!(encode("", Options::default()), Err(EncodeError::Empty));
        assert_eq!(encode("\n \n", Options::default()), Err(EncodeError::Empty));
    }

    #[test]
    fn a_line_with_nothing_left_is_an_error_naming_it() {
        let err = encode("ok\n!!!", Options::default()).unwrap_err();
        assert_eq!(
            err,
            EncodeError::NothingLeft {
                line: 2,
                text: "!!!".into()
            }
        );
    }

    #[test]
    fn long_words_and_lines_are_errors_naming_line_and_length() {
        let word = "x".repeat(64);
        let err = encode(&format!("fine\n{word}"), Options::default()).unwrap_err();
        assert_eq!(
            err,
            EncodeError::WordTooLong {
                line: 2,
                word: word.clone(),
                len: 64
            }
        );
        assert!(err.to_string().starts_with("line 2: the word"));
        let line = vec!["abcdefghi"; 26].join(" "); // 26*10-1 = 259
        let err = encode(&line, Options::default()).unwrap_err();
        assert_eq!(err, EncodeError::LineTooLong { line: 1, len: 259 });
        assert_eq!(one(&"y".repeat(63)).0.len(), 63);
    }

    #[test]
    fn wrap_splits_at_word_boundaries() {
        let line = vec!["abcdefghi"; 60].join(" ");
        let e = encode(&line, Options { wrap: true }).unwrap();
        assert_eq!(e.lines.len(), 3);
        for l in &e.lines {
            let name = l.name().unwrap();
            assert!(is_valid_name(name), "{name}");
            assert!(name.split('.').all(|w| w == "abcdefghi"));
        }
        assert_eq!(e.warnings[0].change, Change::Wrapped { hops: 3 });
    }

    #[test]
    fn strict_turns_warnings_into_an_error() {
        let e = encode("Don't", Options::default()).unwrap();
        let err = e.strict().unwrap_err();
        assert!(err.to_string().contains("line 1: 1 apostrophe(s) dropped"));
        assert!(encode("Fine", Options::default()).unwrap().strict().is_ok());
    }

    /// `text` is refused, or every name it gives is a valid host name.
    fn error_or_valid_names(text: &str, wrap: bool) -> Result<(), TestCaseError> {
        if let Ok(e) = encode(text, Options { wrap }) {
            for line in &e.lines {
                if let Line::Named { name } = line {
                    prop_assert!(is_valid_name(name), "{:?} -> {:?}", text, name);
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn any_input_gives_an_error_or_valid_names(text in "\\PC{0,300}", wrap in any::<bool>()) {
            error_or_valid_names(&text, wrap)?;
        }

        #[test]
        fn ascii_noise_gives_an_error_or_valid_names(text in "[ -~\n\t]{0,600}", wrap in any::<bool>()) {
            error_or_valid_names(&text, wrap)?;
        }
    }
}
