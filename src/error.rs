//! The crate's one error type. Every variant says what failed and, where
//! the user can do something about it, what to do; `exit_code` maps it onto
//! the documented exit codes (1 failure, 2 usage error).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Encode(#[from] crate::message::EncodeError),
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    #[error(transparent)]
    Provider(#[from] troll_providers::Error),
    /// Bad input: flags, arguments, config values. Exit code 2.
    #[error("{0}")]
    Usage(String),
    /// A program troll runs is not installed.
    #[error("{program} is not installed; install the Debian package {package} (apt-get install {package})")]
    MissingTool {
        program: String,
        package: &'static str,
    },
    /// The deployment lacks what the command needs; another command first.
    #[error("deployment '{deployment}' has no {missing}; run `troll {command}` first")]
    Incomplete {
        deployment: String,
        missing: &'static str,
        command: &'static str,
    },
    #[error("cannot read the message from {path}: {source}")]
    ReadMessage {
        path: String,
        source: std::io::Error,
    },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "deployment '{deployment}' is in use by another troll command (pid {pid}); \
         wait for it to finish or stop it"
    )]
    Locked { deployment: String, pid: String },
    #[error(
        "deployment '{deployment}' is already being served by pid {pid}; \
         stop that `troll serve` first"
    )]
    AlreadyServed { deployment: String, pid: String },
    #[error(
        "deployment '{deployment}' is held by pid {pid}, which troll will not signal ({reason}); \
         stop that process yourself, then run this again"
    )]
    NotSignalled {
        deployment: String,
        pid: String,
        reason: crate::process::PidError,
    },
    #[error(
        "the state file {} is not valid ({detail}); troll will not overwrite it: \
         repair it or move it away",
        path.display()
    )]
    StateCorrupt { path: PathBuf, detail: String },
    #[error(
        "the state file {} has schema version {found}, newer than the {supported} this troll \
         understands; upgrade troll",
        path.display()
    )]
    StateFromFuture {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
    #[error("'{0}' is not a valid deployment name; use 1 to 64 letters, digits, '-' or '_'")]
    DeploymentName(String),
    #[error(
        "deployment '{0}' does not exist; create it with `troll set-message` or `troll provision`"
    )]
    NoDeployment(String),
    #[error("cannot change the firewall: {0}")]
    Rules(String),
    /// Adding or removing a window target on the host (`ip addr`).
    #[error("cannot change the host's addresses: {0}")]
    Address(String),
    #[error("{0}")]
    Privilege(String),
    #[error("the lab failed: {0}")]
    Lab(String),
    #[error(transparent)]
    Dns(#[from] crate::dns::DnsError),
    /// A socket operation of the responder failed; keeps the OS error and
    /// the interface (`None`: every interface).
    #[error("the responder failed: {op}{}: {source}", on_interface(interface.as_deref()))]
    Responder {
        op: &'static str,
        interface: Option<String>,
        source: std::io::Error,
    },
    #[error("the config file {} is not valid: {detail}", path.display())]
    Config { path: PathBuf, detail: String },
    /// `troll deploy` and the remote step of teardown, over SSH.
    #[error("{0}")]
    Remote(String),
    /// `troll check` found the show wrong, or could not look at it.
    #[error("{0}")]
    Check(String),
}

impl Error {
    /// 2 for mistakes in what the user gave us (flags, arguments, the
    /// config file's values), 1 for everything else
    /// (missing tools, an incomplete deployment, the environment).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Encode(_)
            | Error::Usage(_)
            | Error::DeploymentName(_)
            | Error::Config { .. }
            | Error::Plan(crate::plan::PlanError::TooManyHops { .. }) => 2,
            _ => 1,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Why `program` (from Debian's `package`) could not be started: not
    /// installed, or another I/O error.
    pub(crate) fn spawn(program: &str, package: &'static str, source: std::io::Error) -> Error {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::MissingTool {
                program: program.into(),
                package,
            }
        } else {
            Error::io("cannot run", program, source)
        }
    }
}

fn on_interface(interface: Option<&str>) -> String {
    interface.map(|i| format!(" on {i}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bad_input_exits_2() {
        let usage = Error::Usage("--hops needs --target".into());
        assert_eq!(usage.exit_code(), 2);
        let missing = Error::MissingTool {
            program: "iptables".into(),
            package: "iptables",
        };
        assert_eq!(missing.exit_code(), 1);
        assert_eq!(
            missing.to_string(),
            "iptables is not installed; install the Debian package iptables (apt-get install iptables)"
        );
        let incomplete = Error::Incomplete {
            deployment: "lab".into(),
            missing: "message",
            command: "set-message",
        };
        assert_eq!(incomplete.exit_code(), 1);
        assert_eq!(
            incomplete.to_string(),
            "deployment 'lab' has no message; run `troll set-message` first"
        );
    }

    #[test]
    fn responder_errors_keep_the_interface_and_the_os_error() {
        let e = Error::Responder {
            op: "cannot open the sockets",
            interface: Some("eth0".into()),
            source: std::io::Error::from_raw_os_error(libc::ENODEV),
        };
        assert_eq!(e.exit_code(), 1);
        let text = e.to_string();
        assert!(
            text.starts_with(
                "the responder failed: cannot open the sockets on eth0: No such device"
            ),
            "{text}"
        );
        assert_eq!(
            std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .and_then(std::io::Error::raw_os_error),
            Some(libc::ENODEV)
        );
    }
}
