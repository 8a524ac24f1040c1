//! The bridge between the synchronous commands and the async cloud
//! providers (Vultr's API, AWS's EC2): building a provider from a
//! deployment's state, running its calls on a small runtime, and the few
//! sentences each operation prints.

use crate::error::{Error, Result};
use crate::state::{Locked, State};
use troll_providers::aws::{self, AwsProvider, AwsSettings, SystemResolver};
use troll_providers::vultr::{self, Vultr};
use troll_providers::{AddressPair, ProviderKind, ProvisionPlan, PtrRecord};

/// Runs one provider future to completion.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("cannot start the async runtime", "tokio", e))?;
    Ok(runtime.block_on(future))
}

/// The cloud provider of a deployment, if it has one.
#[derive(Debug)]
pub enum Cloud {
    Vultr(Vultr),
    Aws(Box<AwsProvider>),
}

impl Cloud {
    /// Builds the provider recorded in the state (credentials from the
    /// environment); `None` for local and static deployments.
    pub fn of(state: &State) -> Result<Option<Cloud>> {
        let instance = || {
            state.instance.clone().ok_or_else(|| Error::StateCorrupt {
                path: state.deployment.clone().into(),
                detail: "a cloud deployment without an instance id".into(),
            })
        };
        match state.provider {
            Some(ProviderKind::Vultr) => Ok(Some(Cloud::Vultr(Vultr::from_env(
                &instance()?,
                &state.deployment,
            )?))),
            Some(ProviderKind::Aws) => {
                let settings = AwsSettings {
                    deployment: state.deployment.clone(),
                    domain: state.domain.clone().unwrap_or_default(),
                    instance_id: Some(instance()?),
                    region: state.region.clone(),
                };
                let zone = state.route53_zone.clone();
                let provider = block_on(async move {
                    let provider = AwsProvider::connect(settings).await?;
                    match zone {
                        Some(zone) => provider.with_route53_zone(&zone).await,
                        None => Ok(provider),
                    }
                })??;
                Ok(Some(Cloud::Aws(Box::new(provider))))
            }
            _ => Ok(None),
        }
    }

    /// Publishes the deployment's PTR records and says what happened.
    pub fn publish(&self, records: &[PtrRecord], locked: &mut Locked) -> Result<()> {
        match self {
            Cloud::Vultr(v) => {
                let report = block_on(v.set_ptrs(locked, records))??;
                println!(
                    "Vultr: {} reverse name(s) set, {} already right. {}",
                    report.changed.len(),
                    report.unchanged.len(),
                    report.note
                );
            }
            Cloud::Aws(a) => {
                let report = block_on(a.set_ptrs(records, &SystemResolver, locked))??;
                if let Some(zone) = a.route53_zone() {
                    println!(
                        "Route 53: the A records of {} name(s) are in hosted zone {zone} (INSYNC).",
                        report.outcomes.len()
                    );
                }
                for outcome in &report.outcomes {
                    let what = match &outcome.action {
                        aws::PtrAction::Sent { status } => {
                            format!("sent ({})", status.as_deref().unwrap_or("accepted"))
                        }
                        aws::PtrAction::AlreadySet => "already set".into(),
                        aws::PtrAction::AlreadyPending { status } => format!("already {status}"),
                        aws::PtrAction::ForwardMissing { .. } => {
                            "not sent: its A record does not point to the Elastic IP yet".into()
                        }
                        aws::PtrAction::Refused { reason } => format!("refused by AWS: {reason}"),
                    };
                    println!("  {}  {}  {what}", outcome.address, outcome.name);
                }
                let missing = report.missing_forward_records();
                if !missing.is_empty() {
                    println!(
                        "Create these A records, then run `troll set-message` again (AWS sets a reverse name only when its forward record points to the Elastic IP):"
                    );
                    print!("{}", aws::zone_fragment(&missing, 300));
                }
            }
        }
        Ok(())
    }

    /// What the provider reports as each address's reverse name.
    pub fn reported(
        &self,
        addresses: &[std::net::IpAddr],
        locked_state: &State,
    ) -> Result<Vec<(std::net::IpAddr, Option<String>)>> {
        match self {
            Cloud::Vultr(v) => Ok(block_on(v.ptr_status(addresses))??
                .into_iter()
                .map(|s| (s.address, s.reported))
                .collect()),
            Cloud::Aws(a) => {
                let journal = crate::state::ReadJournal(locked_state);
                Ok(block_on(a.status(&journal, &SystemResolver))??
                    .into_iter()
                    .map(|h| (std::net::IpAddr::V4(h.public), Some(aws_line_state(&h))))
                    .collect())
            }
        }
    }

    /// Releases everything the deployment created at the provider.
    pub fn teardown(&self, locked: &mut Locked) -> Result<String> {
        match self {
            Cloud::Vultr(v) => {
                let r = block_on(v.teardown(locked))??;
                Ok(format!(
                    "Vultr: {} reverse name(s) reset, {} additional IPv4 deleted, {} reserved IP(s) deleted",
                    r.ptrs_reset,
                    r.ipv4_deleted.len(),
                    r.reserved_deleted.len()
                ))
            }
            Cloud::Aws(a) => {
                let r = block_on(a.teardown(locked))??;
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
                Ok(format!(
                    "AWS: {} reverse name(s) reset, {} Elastic IP(s) released, {} private address(es) unassigned{}{}",
                    r.ptrs_reset.len(),
                    r.released.len(),
                    r.unassigned.len(),
                    if r.source_dest_check_restored.is_some() { ", source/dest check restored" } else { "" },
                    if a.route53_zone().is_some() { format!(", {} Route 53 record(s) deleted", r.forward_deleted) } else { String::new() }
                ))
            }
        }
    }
}

/// One AWS line's reverse name as `troll status` shows it: set, pending,
/// refused (and why), or no forward record.
fn aws_line_state(h: &aws::HopStatus) -> String {
    let ptr = h.ptr.as_deref().unwrap_or("").trim_end_matches('.');
    match (&h.update, &h.wanted) {
        (Some(u), _) if u.is_pending() => format!("pending: {} ({})", u.value, u.status),
        (Some(u), _) if matches!(u.status.to_ascii_uppercase().as_str(), "FAILED" | "FAILURE") => {
            format!(
                "refused: {} ({})",
                u.value,
                u.reason.as_deref().unwrap_or("AWS gave no reason")
            )
        }
        (_, Some(w)) if !h.forward.contains(&h.public) && !aws::same_name(ptr, w) => {
            format!("no forward record: {w} has no A record to {}", h.public)
        }
        (_, Some(w)) if !aws::same_name(ptr, w) => format!("not set yet: {w} (AWS has {ptr:?})"),
        _ if ptr.is_empty() => {
            "no reverse name: publish its forward A record, then run set-message".to_string()
        }
        _ => format!("set: {ptr}"),
    }
}

/// How a Vultr provision may treat the instance.
#[derive(Debug, Clone, Copy, Default)]
pub struct VultrOptions {
    pub ipv6: bool,
    pub reserved: bool,
    /// Turn IPv6 on when it is off (`--no-modify-instance` clears it).
    pub modify_instance: bool,
    /// Restart the instance after adding IPv4 (`--reboot`).
    pub reboot: bool,
}

fn vultr_request(count: usize, o: VultrOptions) -> vultr::ProvisionRequest {
    vultr::ProvisionRequest {
        ipv4: count,
        ipv6: if o.ipv6 { count } else { 0 },
        reserved: o.reserved,
        modify_instance: o.modify_instance,
        reboot: o.reboot,
    }
}

/// The Vultr instance to serve on: `--instance`, the one recorded, the
/// one whose main IPv4 is `--host`, or (on the instance) the metadata
/// service's `instance-v2-id`.
pub fn vultr_instance(
    given: Option<String>,
    recorded: Option<String>,
    host: Option<std::net::Ipv4Addr>,
) -> Result<String> {
    if let Some(id) = given.or(recorded) {
        return Ok(id);
    }
    if let Some(ip) = host {
        let client = vultr::Client::new(vultr::Settings::from_env(), vultr::ApiKey::from_env()?)?;
        return Ok(block_on(client.find_instance_by_main_ip(ip))??);
    }
    Ok(block_on(vultr::instance_id_from_metadata(None))??)
}

/// What a Vultr provision would do, from read calls only.
pub fn plan_vultr(
    state: &State,
    instance: &str,
    deployment: &str,
    count: usize,
    options: VultrOptions,
) -> Result<ProvisionPlan> {
    let v = Vultr::from_env(instance, deployment)?;
    let journal = crate::state::ReadJournal(state);
    Ok(block_on(v.plan(&journal, vultr_request(count, options)))??)
}

/// What an AWS provision would do, from Describe calls only (the limits
/// are checked as a real run checks them).
pub fn plan_aws(state: &State, settings: AwsSettings, count: usize) -> Result<ProvisionPlan> {
    let provider = block_on(AwsProvider::connect(settings))??;
    let journal = crate::state::ReadJournal(state);
    Ok(block_on(provider.plan(count, &journal))??)
}

/// Provisions at Vultr: `count` IPv4 (and as many IPv6 with `ipv6`),
/// after printing the plan and its cost.
pub fn provision_vultr(
    locked: &mut Locked,
    instance: &str,
    deployment: &str,
    count: usize,
    options: VultrOptions,
) -> Result<(Vec<AddressPair>, Vec<AddressPair>)> {
    let ipv6 = options.ipv6;
    let v = Vultr::from_env(instance, deployment)?;
    let request = vultr_request(count, options);
    let plan = {
        let journal = crate::state::ReadJournal(&locked.state);
        block_on(v.plan(&journal, request))??
    };
    print!("{}", plan.render());
    let out = block_on(v.provision(locked, request))??;
    if out.created + out.adopted > 0 {
        println!(
            "Vultr: {} address(es) created, {} found from an interrupted run.",
            out.created, out.adopted
        );
    }
    for note in &out.notes {
        println!("Vultr: {note}");
    }
    let mut targets = vec![out.target_v4];
    if ipv6 {
        targets.push(out.target_v6.ok_or_else(|| Error::NoIpv6 {
            instance: instance.to_string(),
        })?);
    }
    Ok((targets, out.ipv4.into_iter().chain(out.ipv6).collect()))
}

/// Provisions at AWS: one Elastic IP per distinct line.
pub fn provision_aws(
    locked: &mut Locked,
    settings: AwsSettings,
    count: usize,
) -> Result<(String, String, Vec<AddressPair>, Vec<AddressPair>)> {
    let provider = block_on(AwsProvider::connect(settings))??;
    let plan = {
        let journal = crate::state::ReadJournal(&locked.state);
        block_on(provider.plan(count, &journal))??
    };
    print!("{}", plan.render());
    let out = block_on(provider.provision(count, locked))??;
    for note in &out.notes {
        println!("AWS: {note}");
    }
    if !out.released.is_empty() {
        println!(
            "AWS: released {} Elastic IP(s) the message no longer needs.",
            out.released.len()
        );
    }
    Ok((
        provider.instance_id().to_string(),
        provider.region().to_string(),
        vec![out.target],
        out.hops,
    ))
}
