use crate::Family;
use std::net::IpAddr;

/// The kinds of failure every provider maps its own onto, so the CLI can
/// explain each in one sentence whatever the provider.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{provider} rejected the credentials: {hint}")]
    Auth {
        provider: &'static str,
        hint: String,
    },
    #[error("{provider} is rate-limiting requests; try again in a minute")]
    RateLimited { provider: &'static str },
    #[error("{provider} has no {what}")]
    NotFound {
        provider: &'static str,
        what: String,
    },
    #[error("{provider} refused the change: {detail}")]
    Conflict {
        provider: &'static str,
        detail: String,
    },
    #[error(
        "the show needs {needed} {family} hop address(es) but only {available} were given; \
         add {missing} more with --hop-address"
    , missing = needed - available)]
    NotEnoughAddresses {
        family: Family,
        needed: usize,
        available: usize,
    },
    #[error("{address} is given twice; every hop address and the target must be distinct")]
    DuplicateAddress { address: IpAddr },
    #[error("{detail}")]
    Invalid { detail: String },
    /// The credentials work but lack a permission: `action` is the API
    /// action that was denied (e.g. `ec2:AllocateAddress`), `hint` says
    /// where to grant it.
    #[error("{provider} denied {action}; {hint}")]
    Permission {
        provider: &'static str,
        action: String,
        hint: String,
    },
    /// A limit of the account or the instance that the show would exceed,
    /// found before anything was created: `detail` names the limit, its
    /// number and the fix.
    #[error("{provider} limit: {detail}")]
    Limit {
        provider: &'static str,
        detail: String,
    },
    /// The provider is busy with another task on the resource (Vultr:
    /// "Server is currently locked") and the call did not take effect.
    #[error("{operation}: {detail}")]
    Busy {
        provider: &'static str,
        operation: String,
        detail: String,
    },
    /// The deployment's state could not record a resource; nothing was
    /// created after that.
    #[error("cannot record the resource in the state: {0}")]
    Journal(String),
    /// A provider's API could not be reached, kept failing (server errors,
    /// time-outs, dropped connections, rate limiting) after the retries, or
    /// answered something that cannot be read. `operation` says what was
    /// being done and to which address or id.
    #[error("{operation}: {detail}")]
    Api {
        provider: &'static str,
        operation: String,
        detail: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
