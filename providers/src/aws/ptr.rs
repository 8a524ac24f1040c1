//! Reverse DNS of the deployment's Elastic IPs: the forward records the
//! operator must publish, setting the PTRs once those resolve, and the
//! status AWS and a resolver report.

use super::dns::{host_name, is_custom_ptr, same_name, ForwardRecord, Resolver};
use super::ledger::{entry, extra, extra_v4, kinds, slot_of, Ledger};
use super::{AwsProvider, HopStatus, PtrAction, PtrOutcome, PtrReport};
use crate::progress::Progress;
use crate::{Error, Journal, PtrRecord, Resource, ResourceStatus, Result};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// An Elastic IP of the deployment, as the journal records it.
struct Known {
    slot: String,
    allocation_id: String,
    public: Ipv4Addr,
    local: Option<Ipv4Addr>,
    adopted: bool,
}

fn known(ledger: &Ledger) -> Vec<Known> {
    ledger
        .all(kinds::EIP)
        .into_iter()
        .filter(|r| r.status == ResourceStatus::Created)
        .filter_map(|r: &Resource| {
            Some(Known {
                slot: slot_of(r)?.to_string(),
                allocation_id: r.id.clone()?,
                public: extra_v4(r, "public_ip")?,
                local: r.address.and_then(|a| match a.local {
                    IpAddr::V4(v4) => Some(v4),
                    IpAddr::V6(_) => None,
                }),
                adopted: extra(r, "adopted") == Some("true"),
            })
        })
        .collect()
}

fn ipv4_only(address: IpAddr) -> Result<Ipv4Addr> {
    match address {
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(_) => Err(Error::Invalid {
            detail: format!(
                "{address}: AWS reverse DNS is set on Elastic IPs, which are IPv4; serve IPv6 \
                 names from troll's own DNS"
            ),
        }),
    }
}

impl AwsProvider {
    /// The A records AWS needs before it sets each record's PTR: the
    /// record's name under the domain, pointing at the record's address
    /// (the Elastic IP). Print them, or [`super::zone_fragment`] them.
    pub fn forward_records(&self, records: &[PtrRecord]) -> Result<Vec<ForwardRecord>> {
        records
            .iter()
            .map(|r| {
                Ok(ForwardRecord {
                    name: host_name(&r.name, &self.domain)?,
                    address: ipv4_only(r.address)?,
                })
            })
            .collect()
    }

    /// Sets the reverse DNS of the deployment's Elastic IPs: each record's
    /// address is an Elastic IP of the deployment (or the private address
    /// associated with one), its name a line (put under the domain). A
    /// record whose forward A record does not resolve to the Elastic IP is
    /// reported and not sent (AWS would refuse it); one AWS already has is
    /// left alone. The status AWS answers (`PENDING`) is reported. With a
    /// Route 53 zone ([`AwsProvider::with_route53`]), the A records are
    /// UPSERTed there first (and waited for), and the ones an earlier
    /// message needed are deleted.
    pub async fn set_ptrs<J: Journal + ?Sized>(
        &self,
        records: &[PtrRecord],
        resolver: &dyn Resolver,
        journal: &mut J,
    ) -> Result<PtrReport> {
        let mut ledger = Ledger::load(journal);
        let eips = known(&ledger);
        let mut plan = Vec::with_capacity(records.len());
        for record in records {
            let address = ipv4_only(record.address)?;
            let eip = eips
                .iter()
                .find(|e| e.public == address || e.local == Some(address))
                .ok_or_else(|| Error::Invalid {
                    detail: format!(
                        "{address} is not an Elastic IP of deployment {}; run provision first",
                        self.deployment
                    ),
                })?;
            plan.push((eip, host_name(&record.name, &self.domain)?));
        }
        // With a Route 53 zone, troll writes the A records itself first.
        let mut wanted: Vec<ForwardRecord> = Vec::with_capacity(plan.len());
        for (eip, name) in &plan {
            if !wanted.iter().any(|w| same_name(&w.name, name)) {
                wanted.push(ForwardRecord {
                    name: name.clone(),
                    address: eip.public,
                });
            }
        }
        let published = self.sync_forward(&wanted, &mut ledger, journal).await?;
        let ids: Vec<String> = plan.iter().map(|(e, _)| e.allocation_id.clone()).collect();
        let states: BTreeMap<String, _> = self
            .ec2
            .ptrs(&ids)
            .await?
            .into_iter()
            .map(|s| (s.allocation_id.clone(), s))
            .collect();

        let progress = Progress::new(plan.len() as u64, "aws reverse DNS");
        let mut report = PtrReport::default();
        for (eip, name) in plan {
            let state = states.get(&eip.allocation_id);
            let current = state.and_then(|s| s.ptr.as_deref());
            let update = state.and_then(|s| s.update.as_ref());
            let action = if update.is_some_and(|u| u.is_pending() && same_name(&u.value, &name)) {
                PtrAction::AlreadyPending {
                    status: update.map(|u| u.status.clone()).unwrap_or_default(),
                }
            } else if current.is_some_and(|c| same_name(c, &name))
                && !update.is_some_and(|u| u.is_pending())
            {
                PtrAction::AlreadySet
            } else {
                let found = if published.contains(&name.to_ascii_lowercase()) {
                    vec![eip.public]
                } else {
                    resolver.resolve_a(&name)
                };
                if !found.contains(&eip.public) {
                    PtrAction::ForwardMissing { found }
                } else {
                    // An adopted target keeps the PTR it had, to get it back.
                    let previous = match ledger.get(kinds::PTR, &eip.slot) {
                        Some(r) => extra(r, "previous").unwrap_or("").to_string(),
                        None if eip.adopted && is_custom_ptr(current) => {
                            current.unwrap_or("").to_string()
                        }
                        None => String::new(),
                    };
                    let extra = [("name", name.clone()), ("previous", previous)];
                    let id = Some(eip.allocation_id.clone());
                    ledger.put(entry(
                        kinds::PTR,
                        &eip.slot,
                        id.clone(),
                        ResourceStatus::Intent,
                        &extra,
                    ));
                    ledger.commit(journal)?;
                    match self.ec2.set_ptr(&eip.allocation_id, &name).await {
                        Ok(answer) => {
                            ledger.put(entry(
                                kinds::PTR,
                                &eip.slot,
                                id,
                                ResourceStatus::Created,
                                &extra,
                            ));
                            ledger.commit(journal)?;
                            PtrAction::Sent {
                                status: answer.update.map(|u| u.status),
                            }
                        }
                        // AWS's own check of the name (its resolver may not
                        // see the record yet): this line only.
                        Err(Error::Conflict { detail, .. }) => {
                            PtrAction::Refused { reason: detail }
                        }
                        Err(e) => return Err(e),
                    }
                }
            };
            progress.inc(&format!("{name} -> {}: {action:?}", eip.public));
            report.outcomes.push(PtrOutcome {
                address: eip.public,
                name,
                action,
            });
        }
        self.follow(&mut report, &progress).await?;
        progress.finish("done");
        Ok(report)
    }

    /// Follows the updates just sent to their end: polls
    /// DescribeAddressesAttribute until none is PENDING (bounded by the PTR
    /// wait), and records each final status; one AWS failed is refused for
    /// its own line only.
    async fn follow(&self, report: &mut PtrReport, progress: &Progress) -> Result<()> {
        let sent = |o: &PtrOutcome| matches!(o.action, PtrAction::Sent { .. });
        let mut ids: Vec<String> = Vec::new();
        let known_ids: BTreeMap<Ipv4Addr, String> = {
            let all = self.ec2.addresses(&[]).await?;
            all.into_iter()
                .map(|e| (e.public_ip, e.allocation_id))
                .collect()
        };
        for o in report.outcomes.iter().filter(|o| sent(o)) {
            if let Some(id) = known_ids.get(&o.address) {
                ids.push(id.clone());
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let deadline = std::time::Instant::now() + self.ptr_wait.timeout;
        loop {
            let states = self.ec2.ptrs(&ids).await?;
            let pending = states
                .iter()
                .filter(|s| s.update.as_ref().is_some_and(|u| u.is_pending()))
                .count();
            for st in &states {
                let Some(u) = &st.update else { continue };
                let Some(address) = known_ids
                    .iter()
                    .find(|(_, id)| **id == st.allocation_id)
                    .map(|(a, _)| *a)
                else {
                    continue;
                };
                for o in report
                    .outcomes
                    .iter_mut()
                    .filter(|o| o.address == address && sent(o))
                {
                    let failed = !u.is_pending()
                        && matches!(u.status.to_ascii_uppercase().as_str(), "FAILED" | "FAILURE");
                    o.action = if failed {
                        PtrAction::Refused {
                            reason: format!(
                                "AWS reported the update {} ({})",
                                u.status,
                                u.reason.clone().unwrap_or_default()
                            ),
                        }
                    } else {
                        PtrAction::Sent {
                            status: Some(u.status.clone()),
                        }
                    };
                }
            }
            if pending == 0 || std::time::Instant::now() >= deadline {
                return Ok(());
            }
            progress.note(&format!(
                "waiting for AWS: {pending} reverse name(s) still PENDING"
            ));
            tokio::time::sleep(self.ptr_wait.interval).await;
        }
    }

    /// Per Elastic IP of the deployment (hops in order, then the target):
    /// the addresses, the name troll asked for, AWS's PtrRecord and update
    /// status, and what `resolver` returns for the forward and reverse
    /// names.
    pub async fn status<J: Journal + ?Sized>(
        &self,
        journal: &J,
        resolver: &dyn Resolver,
    ) -> Result<Vec<HopStatus>> {
        let ledger = Ledger::load(journal);
        let eips = known(&ledger);
        let ids: Vec<String> = eips.iter().map(|e| e.allocation_id.clone()).collect();
        let mut states: BTreeMap<String, _> = self
            .ec2
            .ptrs(&ids)
            .await?
            .into_iter()
            .map(|s| (s.allocation_id.clone(), s))
            .collect();
        Ok(eips
            .into_iter()
            .map(|e| {
                let state = states.remove(&e.allocation_id);
                let wanted = ledger
                    .get(kinds::PTR, &e.slot)
                    .and_then(|r| extra(r, "name"))
                    .map(str::to_string);
                HopStatus {
                    forward: wanted
                        .as_deref()
                        .map(|n| resolver.resolve_a(n))
                        .unwrap_or_default(),
                    reverse: resolver.resolve_ptr(e.public),
                    ptr: state.as_ref().and_then(|s| s.ptr.clone()),
                    update: state.and_then(|s| s.update),
                    slot: e.slot,
                    allocation_id: e.allocation_id,
                    public: e.public,
                    local: e.local,
                    wanted,
                }
            })
            .collect())
    }
}
