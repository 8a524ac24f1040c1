//! The optional config file.
//!
//! Settings come from, in order of precedence: command-line flags, `TROLL_*`
//! environment variables (clap reads both), this file, built-in defaults.
//! The file is `$TROLL_CONFIG` or `--config PATH` if given, else the first
//! of `$XDG_CONFIG_HOME/troll/troll.toml` (`~/.config/troll/troll.toml`)
//! and `/etc/troll/troll.toml` that exists. Credentials never come from
//! here: only from the environment or a provider's standard chain.

use crate::cli::value;
use crate::error::{Error, Result};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The file's values. Those a flag also takes are read by the flag's own
/// parser ([`value`]), so a bad one is caught when the file is read and
/// named by its key (`serve.dns: ...`), as clap names the flag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub state_dir: Option<PathBuf>,
    #[serde(deserialize_with = "deployment")]
    pub deployment: Option<String>,
    pub message: MessageConfig,
    pub serve: ServeConfig,
}

/// `[message]`: what `--wrap`, `--strict` and `--keep-target-name` default
/// to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageConfig {
    pub wrap: Option<bool>,
    pub strict: Option<bool>,
    pub keep_target_name: Option<bool>,
}

/// `[serve]`: the defaults of `troll serve`'s flags of the same names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(deserialize_with = "serve_dns")]
    pub dns: Option<SocketAddr>,
    pub dns_ttl: Option<u32>,
    pub interface: Option<String>,
    /// Probes per second one source may send before excess is dropped.
    pub rate: Option<u32>,
    /// Probes one source may send in a burst.
    pub burst: Option<u32>,
}

/// Reads the string at `key` and parses it with `parse`, the parser of the
/// flag it stands for; an error starts with the key.
fn keyed<'de, D, T>(
    d: D,
    key: &str,
    parse: fn(&str) -> std::result::Result<T, String>,
) -> std::result::Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(d)?;
    parse(&text)
        .map(Some)
        .map_err(|e| D::Error::custom(format!("{key}: {e}")))
}

fn deployment<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    keyed(d, "deployment", value::deployment_name)
}

fn serve_dns<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<SocketAddr>, D::Error> {
    keyed(d, "serve.dns", value::listen_addr)
}

impl Config {
    /// Loads the file named explicitly (which must exist), or the first
    /// default location that exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
        let path = match explicit {
            Some(path) => Some(path.to_path_buf()),
            None => default_paths().into_iter().find(|p| p.exists()),
        };
        let Some(path) = path else {
            return Ok((Config::default(), None));
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io("cannot read the config file", &path, e))?;
        let config = Config::parse(&text).map_err(|detail| Error::Config {
            path: path.clone(),
            detail,
        })?;
        Ok((config, Some(path)))
    }

    /// Parses the file's text; an error is one line that starts with the
    /// line of the file it is about.
    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().trim_end();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].lines().count().max(1);
                    format!("line {line}: {message}")
                }
                None => message.to_string(),
            }
        })
    }
}

fn default_paths() -> Vec<PathBuf> {
    let user = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    user.map(|d| d.join("troll/troll.toml"))
        .into_iter()
        .chain([PathBuf::from("/etc/troll/troll.toml")])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_section() {
        let c = Config::parse(
            "deployment = \"prod\"\n[message]\nwrap = true\n[serve]\nrate = 50\ndns = \"127.0.0.1:5353\"\n",
        )
        .unwrap();
        assert_eq!(c.deployment.as_deref(), Some("prod"));
        assert_eq!(c.message.wrap, Some(true));
        assert_eq!(c.serve.rate, Some(50));
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("[serve]\nrates = 5\n").unwrap_err();
        assert!(err.contains("rates"), "{err}");
    }

    #[test]
    fn bad_values_name_their_line_key_value_and_fix() {
        let err = Config::parse("[serve]\ndns = \"nope\"\n").unwrap_err();
        assert_eq!(
            err,
            "line 2: serve.dns: 'nope' is not an address and port; write e.g. 0.0.0.0:53 or [::]:53"
        );
        let c = Config::parse("[serve]\ndns = \"[::]:5353\"\n").unwrap();
        assert_eq!(c.serve.dns, Some("[::]:5353".parse().unwrap()));
        let err = Config::parse("[serve]\nrate = 5\nburst = \"big\"\n").unwrap_err();
        assert!(err.starts_with("line 3: invalid type: string"), "{err}");
        let err = Config::parse("deployment = \"a b\"\n").unwrap_err();
        assert!(
            err.starts_with("line 1: deployment: 'a b' is not a valid deployment name"),
            "{err}"
        );
    }

    #[test]
    fn an_explicit_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/troll.toml"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/troll.toml"));
    }
}
