//! Where a show's addresses come from.
//!
//! `troll` needs, for every named hop and for the target, an address that
//! clients see (the *public* address, which carries the PTR record) and the
//! address the responder reads and writes on the wire (the *local* address).
//! On most hosts the two are the same; behind AWS's 1:1 NAT they differ.
//! Each provider (local lab, static, Vultr, AWS) hands out such pairs, sets
//! reverse DNS where its API can, and gives everything back on teardown. This
//! crate holds the vocabulary they share: address pairs, provider kinds, the
//! price table, the error kinds every provider maps its failures onto, and
//! the [`Provider`] trait itself.

pub mod aws;
mod error;
pub mod local;
mod plan;
mod prices;
pub mod progress;
mod static_provider;
pub mod vultr;

pub use error::{Error, Result};
pub use local::LocalProvider;
pub use plan::{PlannedCall, ProvisionPlan};
pub use prices::{monthly_cost_cents, offers, PriceEntry, PRICES, PRICES_CHECKED};
pub use static_provider::{parse_pair, StaticProvider};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// An address family. IPv4 addresses cost money at every cloud; IPv6
/// addresses from an instance's /64 do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

impl Family {
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "IPv4",
            Family::Ipv6 => "IPv6",
        })
    }
}

/// What clients see (`public`, the address that carries the PTR) and what
/// the responder uses on the wire (`local`). Equal except behind 1:1 NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddressPair {
    pub public: IpAddr,
    pub local: IpAddr,
}

impl AddressPair {
    /// A pair for a host without NAT: the same address on both sides.
    pub fn same(addr: IpAddr) -> AddressPair {
        AddressPair {
            public: addr,
            local: addr,
        }
    }

    /// The family of the pair; both sides always share it.
    pub fn family(&self) -> Family {
        Family::of(self.public)
    }
}

impl fmt::Display for AddressPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.public == self.local {
            write!(f, "{}", self.public)
        } else {
            write!(f, "{} (local {})", self.public, self.local)
        }
    }
}

/// Which provider a deployment's addresses come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Network namespaces on this machine (the lab and `troll demo`).
    Local,
    /// Addresses the operator already has.
    Static,
    Vultr,
    Aws,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 4] = [
        ProviderKind::Local,
        ProviderKind::Static,
        ProviderKind::Vultr,
        ProviderKind::Aws,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ProviderKind::Local => "local",
            ProviderKind::Static => "static",
            ProviderKind::Vultr => "vultr",
            ProviderKind::Aws => "aws",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How many addresses of each family a show needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressRequest {
    pub ipv4: usize,
    pub ipv6: usize,
}

/// A reverse-DNS record a provider should publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PtrRecord {
    pub address: IpAddr,
    pub name: String,
}

/// A cloud resource a deployment created, or is about to create. Recorded
/// in the deployment's state *before* the call that creates it (status
/// `Intent`) and updated after it (`Created`, with the provider's id), so
/// that a crash at any point leaves a record to reconcile and nothing leaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// e.g. `vultr-ipv4`, `vultr-reserved-ip`, `aws-eip`.
    pub kind: String,
    /// The provider's id, once known.
    pub id: Option<String>,
    pub address: Option<AddressPair>,
    pub status: ResourceStatus,
    /// Anything else teardown needs (association id, old setting, ...).
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceStatus {
    Intent,
    Created,
}

/// Where a provider records resources. troll's state file implements it:
/// every call writes the state atomically before returning, so a resource
/// is on disk before the API call that creates it is made.
pub trait Journal {
    /// What the deployment has recorded so far.
    fn resources(&self) -> Vec<Resource>;
    /// Replaces the recorded list and makes it durable.
    fn record(&mut self, resources: Vec<Resource>) -> Result<()>;
}

/// A journal in memory, for tests and dry runs.
#[derive(Debug, Clone, Default)]
pub struct MemoryJournal {
    pub resources: Vec<Resource>,
}

impl Journal for MemoryJournal {
    fn resources(&self) -> Vec<Resource> {
        self.resources.clone()
    }

    fn record(&mut self, resources: Vec<Resource>) -> Result<()> {
        self.resources = resources;
        Ok(())
    }
}

/// One implementation per provider. A provider validates its own settings
/// when it is built, hands out address pairs, publishes PTR records where it
/// can, and releases exactly what it allocated.
pub trait Provider {
    fn kind(&self) -> ProviderKind;

    /// Address pairs for the hops, `request.ipv4` IPv4 pairs then
    /// `request.ipv6` IPv6 pairs, or an error naming what is missing.
    fn allocate(&mut self, request: AddressRequest) -> Result<Vec<AddressPair>>;

    /// The target's address pairs, one per family the deployment serves.
    fn targets(&self) -> Vec<AddressPair>;

    /// Publishes reverse DNS, or says it cannot (the caller then serves the
    /// names itself or exports a zone).
    fn publishes_ptr(&self) -> bool;

    /// Gives back every address this provider allocated.
    fn release(&mut self) -> Result<()>;
}
