//! The Vultr provider: hop addresses and reverse DNS through the Vultr API v2.
//!
//! A show needs one routed address per distinct named line, and a PTR record
//! on each. At Vultr those are additional IPv4 addresses on the instance (or
//! reserved IPs attached to it, which outlive the instance), and addresses
//! from the instance's own IPv6 /64, which cost nothing and need no API call
//! (a hop address only appears as the source of replies, so it need not be
//! configured in the instance's OS). Reverse DNS is set per instance for
//! both families.
//!
//! Everything here is built to be run again: every create call is preceded
//! by an *intent* in the deployment's journal and followed by the created
//! resource, and [`Vultr::provision`] and [`Vultr::teardown`] first reconcile
//! the journal with the API's lists (new additional IPv4s that appeared
//! since an intent, reserved IPs carrying the label
//! `troll-<deployment> on <instance>`), so
//! a crash at any point leaves nothing behind that the next run does not
//! find. Requests are paced below Vultr's 30 per second, retried with
//! back-off on 429, 5xx, time-outs and dropped connections, and every one
//! has a time-out.
//!
//! Journal resources (`Resource::kind`, with their `extra` keys):
//! - `vultr-ipv4`: an additional IPv4; `id` = the address. `instance`; on an
//!   intent also `intent` and `before` (the instance's secondary addresses
//!   before the create call).
//! - `vultr-reserved-ip`: a reserved IPv4; `id` = Vultr's id. `instance`,
//!   `label`, `region`; on an intent also `intent`.
//! - `vultr-ipv6`: a hop address from the instance's /64; `instance`,
//!   `network`.
//! - `vultr-ptr`: a reverse DNS name troll set; `instance`, `name`, and
//!   `previous` (the name it replaced) on addresses troll did not allocate.

mod api;
mod client;
mod firewall;
mod ledger;
mod metadata;
mod provision;
mod reverse;
mod teardown;

pub use api::{expanded, FirewallRule, Instance, InstanceIpv4, ReservedIp, ReverseIpv6, V6Network};
pub use client::{ApiKey, Client, Settings, API_KEY_ENV, API_URL_ENV, AUTH_HINT, DEFAULT_API_URL};
pub use ledger::{
    EXTRA_BEFORE, EXTRA_INSTANCE, EXTRA_INTENT, EXTRA_LABEL, EXTRA_NAME, EXTRA_NETWORK,
    EXTRA_PREVIOUS, EXTRA_REGION, KIND_IPV4, KIND_IPV6, KIND_PTR, KIND_RESERVED,
};
pub use metadata::{instance_id_from_metadata, METADATA_URL, METADATA_URL_ENV};

use crate::progress::Progress;
use crate::{AddressPair, Error, PtrRecord, Result};
use api::ReservedIp as ApiReservedIp;
use std::net::{IpAddr, Ipv4Addr};

/// When the names set through the API can be expected in public resolvers.
pub const PROPAGATION_NOTE: &str =
    "Vultr has the new names now; public resolvers can take 6 to 12 hours to show them.";

/// How many addresses `provision` should hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProvisionRequest {
    /// IPv4 hop addresses (each costs money at Vultr).
    pub ipv4: usize,
    /// IPv6 hop addresses from the instance's /64 (free).
    pub ipv6: usize,
    /// New IPv4 addresses as reserved IPs (labelled
    /// `troll-<deployment> on <instance>` and attached to the instance)
    /// instead of additional addresses.
    pub reserved: bool,
    /// May troll change the instance itself: turn IPv6 on when the show
    /// needs it (`PATCH /instances/{id}` `enable_ipv6`)? Without it, a
    /// missing IPv6 network stops the run before any create, with the
    /// exact command.
    pub modify_instance: bool,
    /// Restart the instance through the API once new additional IPv4s
    /// are on it, and wait until it runs again (Vultr may pass no traffic
    /// to a new address before a restart). Never done without it.
    pub reboot: bool,
}

/// What the deployment holds after `provision`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The instance's main IPv4 address.
    pub target_v4: AddressPair,
    /// The instance's own IPv6 address, when it has IPv6.
    pub target_v6: Option<AddressPair>,
    /// Every IPv4 hop address the deployment holds (additional and
    /// reserved), in the order they were recorded: at least
    /// `request.ipv4`, more if an earlier run asked for more.
    pub ipv4: Vec<AddressPair>,
    /// Every IPv6 hop address the deployment holds, at least `request.ipv6`.
    pub ipv6: Vec<AddressPair>,
    /// Addresses created by this call.
    pub created: usize,
    /// Addresses an interrupted earlier run had created, found at Vultr and
    /// recorded by this call.
    pub adopted: usize,
    /// One-line notes for the operator: IPv6 turned on, a restart needed
    /// or done, firewall rules the instance's group lacks.
    pub notes: Vec<String>,
}

/// What `set_ptrs` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrReport {
    /// Records written because Vultr had another name (or none).
    pub changed: Vec<PtrRecord>,
    /// Records Vultr already had.
    pub unchanged: Vec<PtrRecord>,
    /// [`PROPAGATION_NOTE`]: when public resolvers will show the names.
    pub note: &'static str,
}

/// The reverse DNS name Vultr reports for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrStatus {
    pub address: IpAddr,
    /// `None` when Vultr has no name for it (or it is not on the instance).
    pub reported: Option<String>,
}

/// What `teardown` released.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeardownReport {
    /// Reverse DNS names reset (IPv4: to Vultr's default, or to the name an
    /// address troll did not allocate had before; IPv6: deleted or restored).
    pub ptrs_reset: usize,
    pub ipv4_deleted: Vec<Ipv4Addr>,
    /// Ids of the reserved IPs detached and deleted.
    pub reserved_deleted: Vec<String>,
    /// Resources found at Vultr from an interrupted run (by intent or by
    /// label) and released.
    pub adopted: usize,
}

/// How a provision through [`crate::Provider`] may treat the instance
/// (the counts come with each call).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// The deployment serves IPv6 too: the instance's IPv6 address is a
    /// target, and a provision fails when the instance has none.
    pub ipv6: bool,
    /// See [`ProvisionRequest::reserved`].
    pub reserved: bool,
    /// See [`ProvisionRequest::modify_instance`].
    pub modify_instance: bool,
    /// See [`ProvisionRequest::reboot`].
    pub reboot: bool,
}

/// The Vultr provider for one deployment on one instance.
#[derive(Debug, Clone)]
pub struct Vultr {
    client: Client,
    instance_id: String,
    label: String,
    /// The label of reserved IPs made before labels named the instance:
    /// adopted only when attached to this instance.
    legacy_label: String,
    options: Options,
}

impl Vultr {
    /// A provider for `deployment` on instance `instance_id`. Checks both
    /// before any call: the id goes into URL paths, the deployment into the
    /// label `troll-<deployment> on <instance>` that finds reserved IPs
    /// again (the instance in it, so that two servers under the same
    /// deployment name never adopt or delete each other's).
    pub fn new(client: Client, instance_id: &str, deployment: &str) -> Result<Vultr> {
        let id_ok = !instance_id.is_empty()
            && instance_id.len() <= 100
            && instance_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !id_ok {
            return Err(Error::Invalid {
                detail: format!(
                    "--instance {instance_id:?} is not a Vultr instance id (like cb676a46-66fd-4dfb-b839-443f2e6c0b60)"
                ),
            });
        }
        let deployment_ok = !deployment.is_empty()
            && deployment.len() <= 64
            && deployment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !deployment_ok {
            return Err(Error::Invalid {
                detail: format!(
                    "deployment name {deployment:?} cannot label Vultr resources: use up to 64 letters, digits, '-', '_' or '.'"
                ),
            });
        }
        Ok(Vultr {
            client,
            instance_id: instance_id.to_string(),
            label: format!("troll-{deployment} on {instance_id}"),
            legacy_label: format!("troll-{deployment}"),
            options: Options::default(),
        })
    }

    /// The provider with `options` for its [`crate::Provider`] calls.
    pub fn with_options(mut self, options: Options) -> Vultr {
        self.options = options;
        self
    }

    fn request(&self, request: crate::AddressRequest) -> ProvisionRequest {
        ProvisionRequest {
            ipv4: request.ipv4,
            ipv6: request.ipv6,
            reserved: self.options.reserved,
            modify_instance: self.options.modify_instance,
            reboot: self.options.reboot,
        }
    }

    /// A provider with the key from `VULTR_API_KEY` and the base URL from
    /// `TROLL_VULTR_API_URL` (or the real API).
    pub fn from_env(instance_id: &str, deployment: &str) -> Result<Vultr> {
        let client = Client::new(Settings::from_env(), ApiKey::from_env()?)?;
        Vultr::new(client, instance_id, deployment)
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// `troll-<deployment> on <instance>`: the label of the reserved IPs
    /// it creates.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether a listed reserved IP is this deployment's on this instance:
    /// its label, or the label of older troll versions (no instance in it)
    /// on an address attached to this instance.
    pub(crate) fn owns(&self, r: &ApiReservedIp) -> bool {
        !r.id.is_empty()
            && (r.label == self.label
                || (r.label == self.legacy_label
                    && r.instance_id.as_deref() == Some(self.instance_id.as_str())))
    }

    fn steps(&self, len: usize, what: &str) -> Steps {
        Steps(
            (self.client.settings().show_progress && len > 0)
                .then(|| Progress::new(len as u64, what)),
        )
    }
}

/// The inherent methods do the work; this maps their reports onto the
/// provider-neutral ones, in the sentences `troll` prints.
#[async_trait::async_trait(?Send)]
impl crate::Provider for Vultr {
    fn kind(&self) -> crate::ProviderKind {
        crate::ProviderKind::Vultr
    }

    fn publishes_ptr(&self) -> bool {
        true
    }

    async fn plan(
        &self,
        journal: &dyn crate::Journal,
        request: crate::AddressRequest,
    ) -> Result<Option<crate::ProvisionPlan>> {
        Ok(Some(
            Vultr::plan(self, journal, self.request(request)).await?,
        ))
    }

    async fn provision(
        &self,
        journal: &mut dyn crate::Journal,
        request: crate::AddressRequest,
    ) -> Result<crate::Provisioned> {
        let out = Vultr::provision(self, journal, self.request(request)).await?;
        let mut notes = Vec::new();
        if out.created + out.adopted > 0 {
            notes.push(format!(
                "Vultr: {} address(es) created, {} found from an interrupted run.",
                out.created, out.adopted
            ));
        }
        notes.extend(out.notes.iter().map(|note| format!("Vultr: {note}")));
        let mut targets = vec![out.target_v4];
        if self.options.ipv6 {
            targets.push(out.target_v6.ok_or_else(|| Error::Invalid {
                detail: format!(
                    "instance {} has no IPv6 network; enable IPv6 on it or drop --ipv6",
                    self.instance_id
                ),
            })?);
        }
        Ok(crate::Provisioned {
            targets,
            addresses: out.ipv4.into_iter().chain(out.ipv6).collect(),
            notes,
            instance: None,
            region: None,
        })
    }

    async fn set_ptrs(
        &self,
        journal: &mut dyn crate::Journal,
        records: &[PtrRecord],
    ) -> Result<crate::PtrReport> {
        let report = Vultr::set_ptrs(self, journal, records).await?;
        Ok(crate::PtrReport {
            lines: vec![format!(
                "Vultr: {} reverse name(s) set, {} already right. {}",
                report.changed.len(),
                report.unchanged.len(),
                report.note
            )],
        })
    }

    async fn status(
        &self,
        _: &dyn crate::Journal,
        addresses: &[IpAddr],
    ) -> Result<Vec<(IpAddr, Option<String>)>> {
        Ok(self
            .ptr_status(addresses)
            .await?
            .into_iter()
            .map(|s| (s.address, s.reported))
            .collect())
    }

    async fn teardown(&self, journal: &mut dyn crate::Journal) -> Result<crate::TeardownReport> {
        let r = Vultr::teardown(self, journal).await?;
        Ok(crate::TeardownReport {
            summary: Some(format!(
                "Vultr: {} reverse name(s) reset, {} additional IPv4 deleted, {} reserved IP(s) deleted",
                r.ptrs_reset,
                r.ipv4_deleted.len(),
                r.reserved_deleted.len()
            )),
            warnings: Vec::new(),
        })
    }
}

/// Progress when the settings ask for it.
struct Steps(Option<Progress>);

impl Steps {
    fn inc(&self, msg: &str) {
        if let Some(p) = &self.0 {
            p.inc(msg);
        }
    }

    fn note(&self, msg: &str) {
        if let Some(p) = &self.0 {
            p.note(msg);
        }
    }

    fn finish(&self, msg: &str) {
        if let Some(p) = &self.0 {
            p.finish(msg);
        }
    }
}

/// Errors worth another round of reconcile-and-retry: the API failed or
/// did not answer, but did not refuse.
fn transient(error: &Error) -> bool {
    matches!(error, Error::Api { .. })
}

/// How many calls run at once in one batch; the client's own limits (in
/// flight, per second) still apply on top.
const BATCH: usize = 16;
