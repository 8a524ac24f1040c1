//! The `aws` provider: a show on an EC2 instance.
//!
//! Why it exists: EC2 reaches an instance through 1:1 NAT, so every fake hop
//! needs two addresses. The *public* one is an Elastic IP: clients see it
//! and it carries the PTR record that spells the line. The *local* one is a
//! secondary private address on the instance's primary interface, which the
//! Elastic IP is associated with: the responder reads and writes it on the
//! wire. The target is the Elastic IP on the primary private address. This
//! module creates exactly those resources (Elastic IPs, secondary private
//! addresses, associations, the interface's source/destination check off),
//! sets the Elastic IPs' reverse DNS (which AWS accepts only when the
//! forward A record already points at the Elastic IP), reports on them, and
//! gives back everything it created, in the order AWS requires.
//!
//! Crash safety: before every call that creates something, the resource is
//! recorded in the deployment's [`Journal`] as `Intent`; after it, as
//! `Created` with its id; every Elastic IP is tagged with the deployment and
//! the instance *at allocation* (`TagSpecifications`). A crash at any point
//! leaves a journal entry or a tag, and both [`AwsProvider::provision`] and
//! [`AwsProvider::teardown`] start by reconciling the journal with what EC2
//! reports, so nothing leaks and nothing is created twice. The journal's
//! kinds and keys are in [`kinds`].
//!
//! Endpoint and credentials come from the standard AWS configuration:
//! `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_EC2`, the default credential
//! chain (environment, profile, web identity, container, instance role).

mod dns;
mod ec2;
mod imds;
mod ledger;
mod limits;
mod provision;
mod ptr;
mod route53;
mod teardown;

pub use dns::{same_name, zone_fragment, ForwardRecord, Resolver, SystemResolver};
pub use imds::{instance_identity, InstanceIdentity, DEFAULT_ENDPOINT as IMDS_ENDPOINT};
pub use ledger::kinds;
pub use route53::RECORD_TTL;

use crate::{AddressPair, Error, Result};
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use ec2::Ec2;
use std::net::Ipv4Addr;
use std::time::Duration;

pub(crate) const PROVIDER: &str = "AWS";

/// Tag on every Elastic IP troll allocates: the deployment's name.
pub const TAG_DEPLOYMENT: &str = "troll:deployment";
/// Tag on every Elastic IP troll allocates: the instance it serves, so two
/// instances using the same deployment name never sweep each other's.
pub const TAG_INSTANCE: &str = "troll:instance";
/// Tag on every Elastic IP troll allocates: its slot (`hop-N` or `target`).
pub const TAG_SLOT: &str = "troll:slot";
/// Attempts per EC2 call (the SDK's standard retry mode: throttling, 5xx
/// and transient network errors, with exponential backoff).
pub const MAX_ATTEMPTS: u32 = 5;

/// What the provider needs to know; the instance and region may come from
/// the instance metadata service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// The deployment's name, the value of the `troll:deployment` tag.
    pub deployment: String,
    /// The domain the host names live under (a line becomes
    /// `<line>.<domain>`); the operator publishes its A records.
    pub domain: String,
    /// Default: from the instance metadata service.
    pub instance_id: Option<String>,
    /// Default: the SDK's region chain (AWS_REGION, profile, metadata).
    pub region: Option<String>,
}

/// How long teardown waits for AWS to finish removing reverse DNS records
/// (an Elastic IP with one cannot be released), and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PtrWait {
    pub timeout: Duration,
    pub interval: Duration,
}

impl Default for PtrWait {
    fn default() -> PtrWait {
        PtrWait {
            timeout: Duration::from_secs(600),
            interval: Duration::from_secs(10),
        }
    }
}

/// The EC2 provider for one deployment on one instance.
#[derive(Debug, Clone)]
pub struct AwsProvider {
    ec2: Ec2,
    instance_id: String,
    region: String,
    deployment: String,
    domain: String,
    ptr_wait: PtrWait,
    /// The hosted zone troll writes the forward records into, if given.
    route53: Option<route53::Route53>,
}

/// What [`AwsProvider::provision`] set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    /// The target: the Elastic IP on the instance's primary private address.
    pub target: AddressPair,
    /// One pair per distinct named line, in order: Elastic IP and the
    /// secondary private address it is associated with.
    pub hops: Vec<AddressPair>,
    /// The instance's primary network interface.
    pub interface: String,
    /// Elastic IPs allocated by this call (0 when everything was there).
    pub allocated: usize,
    /// Elastic IPs this call released: surplus hops of a shorter message,
    /// or tagged ones the journal did not know.
    pub released: Vec<Ipv4Addr>,
    /// Things the operator should know (e.g. the target was allocated).
    pub notes: Vec<String>,
}

/// An Elastic IP's reverse-DNS update as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrUpdate {
    /// The name being set (empty while a reset is in progress).
    pub value: String,
    /// AWS's status, e.g. `PENDING`.
    pub status: String,
    pub reason: Option<String>,
}

impl PtrUpdate {
    /// Whether AWS is still working on it.
    pub fn is_pending(&self) -> bool {
        !matches!(
            self.status.to_ascii_uppercase().as_str(),
            "" | "SUCCESSFUL" | "SUCCEEDED" | "SUCCESS" | "FAILED" | "FAILURE"
        )
    }
}

/// What [`AwsProvider::set_ptrs`] did for one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrOutcome {
    /// The Elastic IP.
    pub address: Ipv4Addr,
    /// The full host name.
    pub name: String,
    pub action: PtrAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtrAction {
    /// Sent to AWS; `status` is what AWS answered (usually `PENDING`).
    Sent { status: Option<String> },
    /// AWS already has this name.
    AlreadySet,
    /// AWS is already setting this name.
    AlreadyPending { status: String },
    /// Not sent: the forward A record does not resolve to the Elastic IP
    /// (`found` is what it resolves to). Publish
    /// [`PtrOutcome::forward_record`] and run again.
    ForwardMissing { found: Vec<Ipv4Addr> },
    /// Sent, and AWS refused it (for example because its resolver does
    /// not see the forward record yet); `reason` is AWS's word.
    Refused { reason: String },
}

impl PtrOutcome {
    /// The A record AWS needs for this name.
    pub fn forward_record(&self) -> ForwardRecord {
        ForwardRecord {
            name: self.name.clone(),
            address: self.address,
        }
    }
}

/// What [`AwsProvider::set_ptrs`] did, record by record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PtrReport {
    pub outcomes: Vec<PtrOutcome>,
}

impl PtrReport {
    /// The A records still missing: the operator must create these.
    pub fn missing_forward_records(&self) -> Vec<ForwardRecord> {
        self.outcomes
            .iter()
            .filter(|o| matches!(o.action, PtrAction::ForwardMissing { .. }))
            .map(PtrOutcome::forward_record)
            .collect()
    }
}

/// One Elastic IP of the deployment, as [`AwsProvider::status`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopStatus {
    /// `hop-1`, `hop-2`, ... or `target`.
    pub slot: String,
    pub allocation_id: String,
    /// The Elastic IP.
    pub public: Ipv4Addr,
    /// The private address it is associated with, when known.
    pub local: Option<Ipv4Addr>,
    /// The name troll asked for, if it did.
    pub wanted: Option<String>,
    /// AWS's PtrRecord.
    pub ptr: Option<String>,
    /// AWS's update in progress or last update.
    pub update: Option<PtrUpdate>,
    /// What the wanted name's A record resolves to.
    pub forward: Vec<Ipv4Addr>,
    /// What a resolver returns for the Elastic IP's PTR.
    pub reverse: Vec<String>,
}

/// What [`AwsProvider::teardown`] gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeardownReport {
    /// Elastic IPs whose reverse DNS was reset (or restored, for a target
    /// Elastic IP that was there before troll).
    pub ptrs_reset: Vec<Ipv4Addr>,
    pub disassociated: usize,
    pub released: Vec<Ipv4Addr>,
    pub unassigned: Vec<Ipv4Addr>,
    /// The source/destination check value restored, if it was changed.
    pub source_dest_check_restored: Option<bool>,
    /// Route 53 A records deleted (those troll wrote, still as it wrote
    /// them).
    pub forward_deleted: usize,
    pub warnings: Vec<String>,
}

impl HopStatus {
    /// The Elastic IP's reverse name as `troll status` shows it: set,
    /// pending, refused (and why), or no forward record.
    pub fn describe(&self) -> String {
        let ptr = self.ptr.as_deref().unwrap_or("").trim_end_matches('.');
        match (&self.update, &self.wanted) {
            (Some(u), _) if u.is_pending() => format!("pending: {} ({})", u.value, u.status),
            (Some(u), _)
                if matches!(u.status.to_ascii_uppercase().as_str(), "FAILED" | "FAILURE") =>
            {
                format!(
                    "refused: {} ({})",
                    u.value,
                    u.reason.as_deref().unwrap_or("AWS gave no reason")
                )
            }
            (_, Some(w)) if !self.forward.contains(&self.public) && !same_name(ptr, w) => {
                format!("no forward record: {w} has no A record to {}", self.public)
            }
            (_, Some(w)) if !same_name(ptr, w) => format!("not set yet: {w} (AWS has {ptr:?})"),
            _ if ptr.is_empty() => {
                "no reverse name: publish its forward A record, then run set-message".to_string()
            }
            _ => format!("set: {ptr}"),
        }
    }
}

impl PtrReport {
    /// The report as `troll set-message` prints it: a line per record,
    /// then the A records still missing as a zone fragment.
    fn lines(&self, zone: Option<&str>) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(zone) = zone {
            lines.push(format!(
                "Route 53: the A records of {} name(s) are in hosted zone {zone} (INSYNC).",
                self.outcomes.len()
            ));
        }
        for outcome in &self.outcomes {
            let what = match &outcome.action {
                PtrAction::Sent { status } => {
                    format!("sent ({})", status.as_deref().unwrap_or("accepted"))
                }
                PtrAction::AlreadySet => "already set".into(),
                PtrAction::AlreadyPending { status } => format!("already {status}"),
                PtrAction::ForwardMissing { .. } => {
                    "not sent: its A record does not point to the Elastic IP yet".into()
                }
                PtrAction::Refused { reason } => format!("refused by AWS: {reason}"),
            };
            lines.push(format!("  {}  {}  {what}", outcome.address, outcome.name));
        }
        let missing = self.missing_forward_records();
        if !missing.is_empty() {
            lines.push(
                "Create these A records, then run `troll set-message` again (AWS sets a reverse name only when its forward record points to the Elastic IP):".into(),
            );
            lines.extend(zone_fragment(&missing, 300).lines().map(str::to_string));
        }
        lines
    }
}

/// The inherent methods do the work; this maps their reports onto the
/// provider-neutral ones, in the sentences `troll` prints. Forward records
/// are looked up with the system's resolver.
#[async_trait::async_trait(?Send)]
impl crate::Provider for AwsProvider {
    fn kind(&self) -> crate::ProviderKind {
        crate::ProviderKind::Aws
    }

    fn publishes_ptr(&self) -> bool {
        true
    }

    async fn plan(
        &self,
        journal: &dyn crate::Journal,
        request: crate::AddressRequest,
    ) -> Result<Option<crate::ProvisionPlan>> {
        let count = ipv4_only_request(request)?;
        Ok(Some(AwsProvider::plan(self, count, journal).await?))
    }

    async fn provision(
        &self,
        journal: &mut dyn crate::Journal,
        request: crate::AddressRequest,
    ) -> Result<crate::Provisioned> {
        let count = ipv4_only_request(request)?;
        let out = AwsProvider::provision(self, count, journal).await?;
        let mut notes: Vec<String> = out.notes.iter().map(|n| format!("AWS: {n}")).collect();
        if !out.released.is_empty() {
            notes.push(format!(
                "AWS: released {} Elastic IP(s) the message no longer needs.",
                out.released.len()
            ));
        }
        Ok(crate::Provisioned {
            targets: vec![out.target],
            addresses: out.hops,
            notes,
            instance: Some(self.instance_id.clone()),
            region: Some(self.region.clone()),
        })
    }

    async fn set_ptrs(
        &self,
        journal: &mut dyn crate::Journal,
        records: &[crate::PtrRecord],
    ) -> Result<crate::PtrReport> {
        let report = AwsProvider::set_ptrs(self, records, &SystemResolver, journal).await?;
        Ok(crate::PtrReport {
            lines: report.lines(self.route53_zone()),
        })
    }

    async fn status(
        &self,
        journal: &dyn crate::Journal,
        _: &[std::net::IpAddr],
    ) -> Result<Vec<(std::net::IpAddr, Option<String>)>> {
        Ok(AwsProvider::status(self, journal, &SystemResolver)
            .await?
            .into_iter()
            .map(|h| (std::net::IpAddr::V4(h.public), Some(h.describe())))
            .collect())
    }

    async fn teardown(&self, journal: &mut dyn crate::Journal) -> Result<crate::TeardownReport> {
        let r = AwsProvider::teardown(self, journal).await?;
        let summary = format!(
            "AWS: {} reverse name(s) reset, {} Elastic IP(s) released, {} private address(es) unassigned{}{}",
            r.ptrs_reset.len(),
            r.released.len(),
            r.unassigned.len(),
            if r.source_dest_check_restored.is_some() { ", source/dest check restored" } else { "" },
            if self.route53_zone().is_some() { format!(", {} Route 53 record(s) deleted", r.forward_deleted) } else { String::new() }
        );
        Ok(crate::TeardownReport {
            summary: Some(summary),
            warnings: r.warnings,
        })
    }
}

/// The hop count of a request: AWS offers no reverse DNS for its IPv6
/// addresses, so IPv6 hops could not carry a message.
fn ipv4_only_request(request: crate::AddressRequest) -> Result<usize> {
    if request.ipv6 > 0 {
        return Err(Error::Invalid {
            detail: "AWS offers no reverse DNS for its IPv6 addresses, so IPv6 hops could not carry the message; drop --ipv6".into(),
        });
    }
    Ok(request.ipv4)
}

/// The retry policy troll uses for EC2: the SDK's standard mode, bounded.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS)
}

/// Bounded time-outs per attempt and per call.
pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .operation_attempt_timeout(Duration::from_secs(30))
        .operation_timeout(Duration::from_secs(180))
        .build()
}

impl AwsProvider {
    /// Builds the provider from the standard AWS configuration (endpoint
    /// from `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_EC2`, default credential
    /// chain), asking the instance metadata service for the instance id
    /// and region that `settings` leaves out.
    pub async fn connect(settings: AwsSettings) -> Result<AwsProvider> {
        let mut settings = settings;
        if settings.instance_id.is_none() {
            let id = instance_identity(None).await?;
            settings.instance_id = Some(id.instance_id);
            settings.region.get_or_insert(id.region);
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry_config())
            .timeout_config(timeout_config());
        if let Some(region) = &settings.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        let config = loader.load().await;
        let Some(region) = config.region().map(ToString::to_string) else {
            return Err(Error::Invalid {
                detail: "no AWS region: give the region or set AWS_REGION".into(),
            });
        };
        settings.region = Some(region);
        AwsProvider::with_client(aws_sdk_ec2::Client::new(&config), settings)
    }

    /// Builds the provider on an SDK client the caller configured (tests
    /// point it at an emulator and turn retries off). The instance id is
    /// required here.
    pub fn with_client(client: aws_sdk_ec2::Client, settings: AwsSettings) -> Result<AwsProvider> {
        let instance_id = settings
            .instance_id
            .filter(|i| !i.trim().is_empty())
            .ok_or_else(|| Error::Invalid {
                detail: "no EC2 instance id given".into(),
            })?;
        let deployment = settings.deployment.trim().to_string();
        if deployment.is_empty() || deployment.len() > 200 {
            return Err(Error::Invalid {
                detail: format!(
                    "the deployment name {deployment:?} must be 1 to 200 characters (it is an EC2 tag value)"
                ),
            });
        }
        let region = settings
            .region
            .or_else(|| client.config().region().map(ToString::to_string))
            .unwrap_or_default();
        Ok(AwsProvider {
            ec2: Ec2::new(client),
            instance_id: instance_id.trim().to_string(),
            region,
            deployment,
            domain: dns::validate_domain(&settings.domain)?,
            ptr_wait: PtrWait::default(),
            route53: None,
        })
    }

    /// Writes the forward A records into this Route 53 hosted zone (UPSERT,
    /// waiting for INSYNC) instead of asking the operator to publish them;
    /// the client comes from the standard AWS configuration
    /// (`AWS_ENDPOINT_URL_ROUTE_53` or `AWS_ENDPOINT_URL` for an emulator).
    pub async fn with_route53_zone(self, zone: &str) -> Result<AwsProvider> {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(retry_config())
            .timeout_config(timeout_config())
            .region(aws_config::Region::new(self.region.clone()))
            .load()
            .await;
        let client = aws_sdk_route53::Client::new(&config);
        self.with_route53(client, zone)
    }

    /// As [`AwsProvider::with_route53_zone`], on a client the caller
    /// configured (tests point it at an emulator).
    pub fn with_route53(
        mut self,
        client: aws_sdk_route53::Client,
        zone: &str,
    ) -> Result<AwsProvider> {
        self.route53 = Some(route53::Route53::new(client, zone)?);
        Ok(self)
    }

    /// The Route 53 hosted zone troll writes the forward records into.
    pub fn route53_zone(&self) -> Option<&str> {
        self.route53.as_ref().map(route53::Route53::zone)
    }

    /// Sets how long teardown waits for reverse DNS resets.
    pub fn with_ptr_wait(mut self, wait: PtrWait) -> AwsProvider {
        self.ptr_wait = wait;
        self
    }

    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The full host name of a line: `<line>.<domain>` (a name already
    /// under the domain is kept). Errors say what DNS would refuse.
    pub fn host_name(&self, line: &str) -> Result<String> {
        dns::host_name(line, &self.domain)
    }

    /// The tags every Elastic IP of this deployment gets at allocation.
    fn tags(&self, slot: &str) -> Vec<(&'static str, String)> {
        vec![
            (TAG_DEPLOYMENT, self.deployment.clone()),
            (TAG_INSTANCE, self.instance_id.clone()),
            (TAG_SLOT, slot.to_string()),
            ("Name", format!("troll {} {slot}", self.deployment)),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::from_conf(
            aws_sdk_ec2::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(aws_config::Region::new("eu-west-3"))
                .build(),
        )
    }

    fn settings() -> AwsSettings {
        AwsSettings {
            deployment: "show".into(),
            domain: "example.com.".into(),
            instance_id: Some("i-1".into()),
            region: None,
        }
    }

    #[test]
    fn settings_are_checked_when_the_provider_is_built() {
        let aws = AwsProvider::with_client(client(), settings()).unwrap();
        assert_eq!(aws.region(), "eu-west-3", "from the client when not given");
        assert_eq!(aws.domain(), "example.com");
        assert_eq!(aws.host_name("hi").unwrap(), "hi.example.com");
        let no_instance = AwsSettings {
            instance_id: None,
            ..settings()
        };
        assert!(AwsProvider::with_client(client(), no_instance).is_err());
        let no_domain = AwsSettings {
            domain: " ".into(),
            ..settings()
        };
        assert!(AwsProvider::with_client(client(), no_domain).is_err());
        let long = AwsSettings {
            deployment: "x".repeat(201),
            ..settings()
        };
        assert!(AwsProvider::with_client(client(), long).is_err());
    }

    #[test]
    fn only_unfinished_updates_are_pending() {
        let update = |status: &str| PtrUpdate {
            value: "a.example.com".into(),
            status: status.into(),
            reason: None,
        };
        assert!(update("PENDING").is_pending());
        assert!(update("IN_PROGRESS").is_pending());
        assert!(!update("SUCCESSFUL").is_pending());
        assert!(!update("failed").is_pending());
        assert!(!update("").is_pending());
    }

    #[test]
    fn the_operations_can_run_on_any_runtime_thread() {
        fn send<T: Send>(_: T) {}
        let aws = AwsProvider::with_client(client(), settings()).unwrap();
        let mut journal = crate::MemoryJournal::default();
        send(aws.provision(1, &mut journal));
        send(aws.set_ptrs(&[], &SystemResolver, &mut journal));
        send(aws.status(&journal, &SystemResolver));
        send(aws.teardown(&mut journal));
        send(instance_identity(None));
    }

    #[test]
    fn retries_are_bounded() {
        assert_eq!(retry_config().max_attempts(), MAX_ATTEMPTS);
        assert!(timeout_config().operation_timeout().is_some());
    }
}
