//! Test support for the AWS provider: moto in server mode, the proxy that
//! fills moto's gaps, an EC2 instance to work on, and snapshots of what EC2
//! holds. No test reaches AWS.
#![allow(dead_code, unused_imports)]

pub mod http;
pub mod imds;
pub mod proxy;

use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{DomainType, Filter, InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::Client;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use troll_providers::aws::{AwsProvider, AwsSettings, PtrAction, PtrOutcome, PtrWait, Resolver};
use troll_providers::{AddressPair, MemoryJournal, PtrRecord};

pub use proxy::{KillPoint, Proxy};

#[path = "../common/notes.rs"]
mod notes;
pub use notes::note;

pub const REGION: &str = "us-east-1";
pub const DOMAIN: &str = "example.com";

/// moto_server on a free port of 127.0.0.1, killed on drop (also when the
/// test panics, and, through PR_SET_PDEATHSIG, when the test process dies).
#[derive(Debug)]
pub struct Moto {
    child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

/// `.tools/moto-venv` of the repository, found from the crate of the test
/// that uses this harness (the providers crate, or the root crate).
pub fn moto_bin() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .map(|d| d.join(".tools/moto-venv/bin/moto_server"))
        .find(|p| p.exists())
        .unwrap_or_else(|| manifest.join("../.tools/moto-venv/bin/moto_server"))
}

impl Moto {
    pub fn start() -> Moto {
        let bin = moto_bin();
        assert!(
            bin.exists(),
            "moto is not installed ({} is missing): run scripts/setup-moto.sh (as root) first",
            bin.display()
        );
        // Another process may take the free port before moto binds it: try
        // a few.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Moto::try_start(&bin) {
                Ok(moto) => return moto,
                Err(why) => failures.push(why),
            }
        }
        panic!("moto_server did not start: {failures:?}");
    }

    fn try_start(bin: &std::path::Path) -> Result<Moto, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::env::temp_dir().join(format!("troll-moto-{port}.log"));
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let log_err = log_file.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent; it only asks the kernel to kill moto when we die.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut moto = Moto { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TcpStream::connect(addr).is_ok() {
                return Ok(moto);
            }
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!(
                    "moto_server exited ({status}): {}",
                    std::fs::read_to_string(&moto.log).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                return Err("no answer in 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// An SDK client for `endpoint` with test credentials and the given
/// retry policy.
pub fn client(endpoint: &str, retry: aws_sdk_ec2::config::retry::RetryConfig) -> Client {
    let config = aws_sdk_ec2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(endpoint)
        .retry_config(retry)
        .build();
    Client::from_conf(config)
}

/// A Route 53 client for `endpoint` with test credentials, retries off.
pub fn route53_client(endpoint: &str) -> aws_sdk_route53::Client {
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(aws_sdk_route53::config::BehaviorVersion::latest())
        .region(aws_sdk_route53::config::Region::new(REGION))
        .credentials_provider(aws_sdk_route53::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_route53::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_route53::Client::from_conf(config)
}

/// moto, the proxy, and an instance in a fresh VPC.
#[derive(Debug)]
pub struct Env {
    pub proxy: Proxy,
    pub moto: Moto,
    /// Straight to moto, for setup and snapshots.
    pub direct: Client,
    /// Through the proxy, retries off.
    pub client: Client,
    pub instance_id: String,
    pub eni: String,
    /// The instance's security group (closed, as a new one is).
    pub group_id: String,
}

impl Env {
    /// An Env on a t3.large (12 private addresses per interface).
    pub async fn start() -> Env {
        Env::start_on(InstanceType::T3Large).await
    }

    /// An Env whose instance is of `instance_type`: moto gives it AWS's
    /// limits (DescribeInstanceTypes), the proxy enforces them.
    pub async fn start_on(instance_type: InstanceType) -> Env {
        let moto = Moto::start();
        let proxy = Proxy::start(moto.addr);
        let direct = client(
            &format!("http://{}", moto.addr),
            aws_sdk_ec2::config::retry::RetryConfig::disabled(),
        );
        let client = client(
            &proxy.url(),
            aws_sdk_ec2::config::retry::RetryConfig::disabled(),
        );
        let vpc = direct
            .create_vpc()
            .cidr_block("10.0.0.0/16")
            .send()
            .await
            .expect("create VPC");
        let vpc_id = vpc.vpc().and_then(|v| v.vpc_id()).expect("VPC id");
        let subnet = direct
            .create_subnet()
            .vpc_id(vpc_id)
            .cidr_block("10.0.1.0/24")
            .send()
            .await
            .expect("create subnet");
        let subnet_id = subnet
            .subnet()
            .and_then(|s| s.subnet_id())
            .expect("subnet id");
        // A security group of its own, closed as a new one is (no inbound
        // rule), as every EC2 instance has at least one.
        let group = direct
            .create_security_group()
            .group_name("troll-test")
            .description("troll test instance")
            .vpc_id(vpc_id)
            .send()
            .await
            .expect("create security group");
        let group_id = group.group_id().expect("group id").to_string();
        let run = direct
            .run_instances()
            .security_group_ids(&group_id)
            .image_id("ami-12c6146b")
            .instance_type(instance_type)
            .min_count(1)
            .max_count(1)
            .subnet_id(subnet_id)
            .send()
            .await
            .expect("run instance");
        let instance = run.instances().first().expect("an instance");
        let instance_id = instance.instance_id().expect("instance id").to_string();
        let eni = instance
            .network_interfaces()
            .first()
            .and_then(|n| n.network_interface_id())
            .expect("primary interface")
            .to_string();
        Env {
            proxy,
            moto,
            direct,
            client,
            instance_id,
            eni,
            group_id,
        }
    }

    /// A test's start on a t3.large: the Env, what EC2 holds before the
    /// test, the provider of `deployment` and an empty journal.
    pub async fn begin(deployment: &str) -> (Env, Snapshot, AwsProvider, MemoryJournal) {
        Env::begin_on(InstanceType::T3Large, deployment).await
    }

    /// [`Env::begin`] on an instance of `instance_type`.
    pub async fn begin_on(
        instance_type: InstanceType,
        deployment: &str,
    ) -> (Env, Snapshot, AwsProvider, MemoryJournal) {
        let env = Env::start_on(instance_type).await;
        let before = env.snapshot().await;
        let aws = env.provider(deployment);
        (env, before, aws, MemoryJournal::default())
    }

    /// Tears down with `aws` and checks that EC2 holds what it held
    /// `before`.
    pub async fn teardown_to(
        &self,
        aws: &AwsProvider,
        journal: &mut MemoryJournal,
        before: &Snapshot,
    ) {
        aws.teardown(journal).await.expect("teardown");
        assert_eq!(&self.snapshot().await, before);
    }

    pub fn settings(&self, deployment: &str) -> AwsSettings {
        AwsSettings {
            deployment: deployment.into(),
            domain: DOMAIN.into(),
            instance_id: Some(self.instance_id.clone()),
            region: Some(REGION.into()),
        }
    }

    /// A Route 53 hosted zone for DOMAIN in moto; its id.
    pub async fn route53_zone(&self) -> String {
        let zone = route53_client(&format!("http://{}", self.moto.addr))
            .create_hosted_zone()
            .name(format!("{DOMAIN}."))
            .caller_reference(format!("troll-test-{}", self.instance_id))
            .send()
            .await
            .expect("create a hosted zone");
        let id = zone.hosted_zone().expect("a zone").id();
        id.trim_start_matches("/hostedzone/").to_string()
    }

    /// The A records in moto's zone: name (no final dot) -> values.
    pub async fn route53_records(&self, zone: &str) -> BTreeMap<String, Vec<String>> {
        let out = route53_client(&format!("http://{}", self.moto.addr))
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .send()
            .await
            .expect("list the zone");
        out.resource_record_sets()
            .iter()
            .filter(|s| s.r#type().as_str() == "A")
            .map(|s| {
                (
                    s.name().trim_end_matches('.').to_string(),
                    s.resource_records()
                        .iter()
                        .map(|r| r.value().to_string())
                        .collect(),
                )
            })
            .collect()
    }

    /// The provider on the proxy, writing forward records into `zone`
    /// (Route 53 through the proxy too, so its calls are logged).
    pub fn provider_with_zone(&self, deployment: &str, zone: &str) -> AwsProvider {
        self.provider(deployment)
            .with_route53(route53_client(&self.proxy.url()), zone)
            .expect("route53 zone")
    }

    /// The provider on the proxy, retries off, short PTR waits.
    pub fn provider(&self, deployment: &str) -> AwsProvider {
        AwsProvider::with_client(self.client.clone(), self.settings(deployment))
            .expect("provider")
            .with_ptr_wait(fast_wait())
    }

    /// An Elastic IP allocated outside troll (optionally tagged), for
    /// "nothing else is touched" checks.
    pub async fn foreign_eip(&self, tags: &[(&str, &str)]) -> (String, Ipv4Addr) {
        let mut call = self.direct.allocate_address().domain(DomainType::Vpc);
        if !tags.is_empty() {
            let mut spec = TagSpecification::builder().resource_type(ResourceType::ElasticIp);
            for (k, v) in tags {
                spec = spec.tags(Tag::builder().key(*k).value(*v).build());
            }
            call = call.tag_specifications(spec.build());
        }
        let out = call.send().await.expect("allocate a foreign EIP");
        (
            out.allocation_id().expect("id").to_string(),
            out.public_ip().expect("ip").parse().expect("ipv4"),
        )
    }

    /// Associates an Elastic IP with the instance's primary address, as an
    /// operator would have before troll.
    pub async fn associate_with_primary(&self, allocation_id: &str) {
        self.direct
            .associate_address()
            .allocation_id(allocation_id)
            .instance_id(&self.instance_id)
            .send()
            .await
            .expect("associate with the primary address");
    }

    /// What EC2 holds that troll could touch.
    pub async fn snapshot(&self) -> Snapshot {
        let addresses = self
            .direct
            .describe_addresses()
            .send()
            .await
            .expect("describe addresses")
            .addresses()
            .iter()
            .map(|a| {
                let tags: BTreeMap<String, String> = a
                    .tags()
                    .iter()
                    .map(|t| (t.key().unwrap_or("").into(), t.value().unwrap_or("").into()))
                    .collect();
                (
                    a.allocation_id().unwrap_or("").to_string(),
                    format!(
                        "{} assoc={:?} eni={:?} tags={tags:?}",
                        a.public_ip().unwrap_or(""),
                        a.association_id(),
                        a.network_interface_id()
                    ),
                )
            })
            .collect();
        let eni = self
            .direct
            .describe_network_interfaces()
            .network_interface_ids(&self.eni)
            .send()
            .await
            .expect("describe interface");
        let eni = eni.network_interfaces().first().expect("the interface");
        let mut private_ips: Vec<String> = eni
            .private_ip_addresses()
            .iter()
            .filter_map(|p| p.private_ip_address().map(str::to_string))
            .collect();
        private_ips.sort();
        Snapshot {
            addresses,
            private_ips,
            source_dest_check: eni.source_dest_check(),
            ptrs: self.proxy.ptr_table(),
        }
    }

    /// Tagged Elastic IPs of `deployment`, straight from moto.
    pub async fn tagged(&self, deployment: &str) -> Vec<String> {
        self.direct
            .describe_addresses()
            .filters(
                Filter::builder()
                    .name("tag:troll:deployment")
                    .values(deployment)
                    .build(),
            )
            .send()
            .await
            .expect("describe tagged")
            .addresses()
            .iter()
            .filter_map(|a| a.public_ip().map(str::to_string))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub addresses: BTreeMap<String, String>,
    pub private_ips: Vec<String>,
    pub source_dest_check: Option<bool>,
    pub ptrs: BTreeMap<String, String>,
}

pub fn fast_wait() -> PtrWait {
    PtrWait {
        timeout: Duration::from_secs(5),
        interval: Duration::from_millis(10),
    }
}

/// A resolver that answers from a table, like DNS after the operator
/// published (some of) the forward records.
#[derive(Debug, Default, Clone)]
pub struct TableResolver {
    pub a: BTreeMap<String, Vec<Ipv4Addr>>,
}

impl TableResolver {
    pub fn publish(&mut self, name: &str, address: Ipv4Addr) {
        self.a
            .entry(name.to_ascii_lowercase())
            .or_default()
            .push(address);
    }
}

impl Resolver for TableResolver {
    fn resolve_a(&self, name: &str) -> Vec<Ipv4Addr> {
        self.a
            .get(&name.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }
}

/// The address of an Elastic IP or private address, which is IPv4 at AWS.
pub fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => panic!("{v6} is not IPv4"),
    }
}

/// A record per pair, in order: the pair's Elastic IP -> the name.
pub fn records(pairs: &[AddressPair], names: &[&str]) -> Vec<PtrRecord> {
    pairs
        .iter()
        .zip(names)
        .map(|(p, n)| PtrRecord {
            address: p.public,
            name: (*n).to_string(),
        })
        .collect()
}

/// [`records`], and a resolver where each `<name>.DOMAIN` has its A
/// record, as after the operator published them.
pub fn published(pairs: &[AddressPair], names: &[&str]) -> (TableResolver, Vec<PtrRecord>) {
    let mut dns = TableResolver::default();
    for (p, n) in pairs.iter().zip(names) {
        dns.publish(&format!("{n}.{DOMAIN}"), v4(p.public));
    }
    (dns, records(pairs, names))
}

/// Checks that each of `outcomes` was sent and followed until AWS was done
/// (the proxy keeps an update PENDING for a read).
pub fn assert_sent_and_done(outcomes: &[PtrOutcome]) {
    for o in outcomes {
        assert_eq!(
            o.action,
            PtrAction::Sent {
                status: Some("SUCCESSFUL".into())
            },
            "{o:?}"
        );
    }
}

/// The journal's AWS entries (kind, id, extra), for "nothing left" checks.
pub fn aws_entries(journal: &MemoryJournal) -> Vec<String> {
    journal
        .resources
        .iter()
        .filter(|r| r.kind.starts_with("aws-"))
        .map(|r| format!("{} {:?} {:?}", r.kind, r.id, r.extra))
        .collect()
}
