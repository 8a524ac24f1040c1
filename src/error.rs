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
    #[error("{0}")]
    Usage(String),
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
    #[error("{0}")]
    Privilege(String),
    #[error("the lab failed: {0}")]
    Lab(String),
    #[error(transparent)]
    Dns(#[from] crate::dns::DnsError),
    #[error("the responder failed: {0}")]
    Responder(String),
    #[error("the config file {} is not valid: {detail}", path.display())]
    Config { path: PathBuf, detail: String },
    /// `troll check` found the show wrong, or could not look at it.
    #[error("{0}")]
    Check(String),
}

impl Error {
    /// 2 for mistakes in what the user gave us, 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Encode(_)
            | Error::Usage(_)
            | Error::DeploymentName(_)
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
}
