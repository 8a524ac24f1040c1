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

/// What a provision set up: the targets (one per family the deployment
/// serves), the hop addresses in order, and what the operator should read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Provisioned {
    pub targets: Vec<AddressPair>,
    pub addresses: Vec<AddressPair>,
    /// Whole lines for the operator, each naming its provider.
    pub notes: Vec<String>,
    /// The instance the addresses are on, when the provider found it
    /// itself (AWS, from the instance metadata service).
    pub instance: Option<String>,
    /// The region, when the provider found it itself.
    pub region: Option<String>,
}

/// What [`Provider::set_ptrs`] did, as lines for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PtrReport {
    pub lines: Vec<String>,
}

/// What [`Provider::teardown`] gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeardownReport {
    /// One sentence saying what was released; `None` when the provider
    /// held nothing (local, static).
    pub summary: Option<String>,
    /// Things that could not be restored but do not stop the teardown.
    pub warnings: Vec<String>,
}

/// One implementation per provider: the whole life of a deployment's
/// addresses over its [`Journal`]. A provider validates its own settings
/// when it is built, hands out address pairs, publishes PTR records where it
/// can, reports them, and releases exactly what it allocated.
#[async_trait::async_trait(?Send)]
pub trait Provider {
    fn kind(&self) -> ProviderKind;

    /// Whether [`Provider::set_ptrs`] publishes reverse DNS; when not, the
    /// caller serves the names itself or exports a zone.
    fn publishes_ptr(&self) -> bool;

    /// What [`Provider::provision`] would do, from read calls only;
    /// `None` for a provider that makes no API call.
    async fn plan(
        &self,
        journal: &dyn Journal,
        request: AddressRequest,
    ) -> Result<Option<ProvisionPlan>>;

    /// The targets and hop address pairs, `request.ipv4` IPv4 pairs then
    /// `request.ipv6` IPv6 pairs (or more, if the deployment holds more),
    /// or an error naming what is missing. Every resource is recorded in
    /// `journal` before the call that creates it.
    async fn provision(
        &self,
        journal: &mut dyn Journal,
        request: AddressRequest,
    ) -> Result<Provisioned>;

    /// Publishes the reverse names (see [`Provider::publishes_ptr`]).
    async fn set_ptrs(&self, journal: &mut dyn Journal, records: &[PtrRecord])
        -> Result<PtrReport>;

    /// The reverse name the provider reports for the deployment's
    /// addresses (`addresses`, or those in `journal`); empty when it
    /// reports none.
    async fn status(
        &self,
        journal: &dyn Journal,
        addresses: &[IpAddr],
    ) -> Result<Vec<(IpAddr, Option<String>)>>;

    /// Gives back everything the journal says this provider created.
    async fn teardown(&self, journal: &mut dyn Journal) -> Result<TeardownReport>;
}

/// A provider whose addresses are fixed when it is built (local, static):
/// it makes no call, records nothing in the journal, publishes no reverse
/// names (troll's DNS server or an exported zone does) and holds nothing to
/// give back: the lab's namespaces go with the lab, the operator's addresses
/// stay the operator's.
pub(crate) trait FixedAddresses {
    const KIND: ProviderKind;

    /// The targets and the hop pairs `request` asks for.
    fn provisioned(&self, request: AddressRequest) -> Result<Provisioned>;
}

#[async_trait::async_trait(?Send)]
impl<T: FixedAddresses> Provider for T {
    fn kind(&self) -> ProviderKind {
        T::KIND
    }

    fn publishes_ptr(&self) -> bool {
        false
    }

    async fn plan(&self, _: &dyn Journal, _: AddressRequest) -> Result<Option<ProvisionPlan>> {
        Ok(None)
    }

    async fn provision(&self, _: &mut dyn Journal, request: AddressRequest) -> Result<Provisioned> {
        self.provisioned(request)
    }

    async fn set_ptrs(&self, _: &mut dyn Journal, _: &[PtrRecord]) -> Result<PtrReport> {
        Ok(PtrReport::default())
    }

    async fn status(&self, _: &dyn Journal, _: &[IpAddr]) -> Result<Vec<(IpAddr, Option<String>)>> {
        Ok(Vec::new())
    }

    async fn teardown(&self, _: &mut dyn Journal) -> Result<TeardownReport> {
        Ok(TeardownReport::default())
    }
}

/// Validated settings for one provider: what [`build`] needs to make it.
/// Credentials are not in here: Vultr's key comes from `VULTR_API_KEY`,
/// AWS's from the SDK's default chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderSettings {
    /// The lab: a target per family in `families`.
    Local { families: Vec<Family> },
    /// The operator's own addresses.
    Static {
        targets: Vec<AddressPair>,
        hops: Vec<AddressPair>,
    },
    /// A Vultr instance.
    Vultr {
        instance: String,
        deployment: String,
        options: vultr::Options,
    },
    /// An EC2 instance, with the Route 53 hosted zone troll writes the
    /// forward records into, if any.
    Aws {
        settings: aws::AwsSettings,
        route53_zone: Option<String>,
    },
}

impl ProviderSettings {
    pub fn kind(&self) -> ProviderKind {
        match self {
            ProviderSettings::Local { .. } => ProviderKind::Local,
            ProviderSettings::Static { .. } => ProviderKind::Static,
            ProviderSettings::Vultr { .. } => ProviderKind::Vultr,
            ProviderSettings::Aws { .. } => ProviderKind::Aws,
        }
    }
}

/// The one place that knows every provider: builds the one `settings`
/// names, checking them (static addresses, Vultr ids, AWS's instance and
/// zone) before any change anywhere.
pub async fn build(settings: ProviderSettings) -> Result<Box<dyn Provider>> {
    Ok(match settings {
        ProviderSettings::Local { families } => Box::new(LocalProvider::new(&families)),
        ProviderSettings::Static { targets, hops } => Box::new(StaticProvider::new(targets, hops)?),
        ProviderSettings::Vultr {
            instance,
            deployment,
            options,
        } => Box::new(vultr::Vultr::from_env(&instance, &deployment)?.with_options(options)),
        ProviderSettings::Aws {
            settings,
            route53_zone,
        } => {
            let provider = aws::AwsProvider::connect(settings).await?;
            Box::new(match route53_zone {
                Some(zone) => provider.with_route53_zone(&zone).await?,
                None => provider,
            })
        }
    })
}
