//! The optional config file.
//!
//! Settings come from, in order of precedence: command-line flags, `TROLL_*`
//! environment variables (clap reads both), this file, built-in defaults.
//! The file is `$TROLL_CONFIG` or `--config PATH` if given, else the first
//! of `$XDG_CONFIG_HOME/troll/troll.toml` (`~/.config/troll/troll.toml`)
//! and `/etc/troll/troll.toml` that exists. Credentials never come from
//! here: only from the environment or a provider's standard chain.

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub deployment: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub message: MessageConfig,
    pub serve: ServeConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MessageConfig {
    pub wrap: Option<bool>,
    pub strict: Option<bool>,
    pub keep_target_name: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    pub interface: Option<String>,
    /// Probes per second one source may send before excess is dropped.
    pub rate: Option<u32>,
    /// Probes one source may send in a burst.
    pub burst: Option<u32>,
    pub dns: Option<String>,
    pub dns_ttl: Option<u32>,
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

    pub fn parse(text: &str) -> std::result::Result<Config, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
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
    fn an_explicit_missing_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/troll.toml"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/troll.toml"));
    }
}
