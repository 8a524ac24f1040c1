//! `provision`: make the deployment hold enough hop addresses, adopting
//! what an interrupted run left at Vultr before creating anything new.

use super::api::{Instance, InstanceIpv4, ReservedIp};
use super::ledger::*;
use super::{transient, ProvisionRequest, Provisioned, Vultr};
use crate::{AddressPair, Error, Family, Journal, ResourceStatus, Result};
use futures_util::{stream, StreamExt};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Rounds of reconcile-then-create before `provision` gives up on
/// failures whose outcome was unknown.
const MAX_ROUNDS: usize = 3;

/// IPv6 hop addresses start at this offset in the instance's network
/// (`prefix::1000`), well away from the instance's own SLAAC address.
const IPV6_HOP_OFFSET: u128 = 0x1000;

/// What the API says the instance and the account have now.
pub(super) struct Seen {
    pub instance: Instance,
    pub ipv4: Vec<InstanceIpv4>,
    pub reserved: Option<Vec<ReservedIp>>,
}

/// The outcome of one batch of create calls.
struct Batch {
    created: usize,
    /// A create call succeeded without naming its address: the next round
    /// finds it in the list.
    unresolved: bool,
    error: Option<Error>,
}

enum Made {
    Ipv4(Option<Ipv4Addr>),
    Reserved(Box<(ReservedIp, Result<()>)>),
}

impl Vultr {
    /// Makes the deployment hold at least `request.ipv4` IPv4 and
    /// `request.ipv6` IPv6 hop addresses, and returns them with the targets
    /// (the instance's main addresses).
    ///
    /// Idempotent: what the journal holds, and what an interrupted run left
    /// (found through the journal's intents and the label), counts; only
    /// the difference is created. Each create call is preceded by an intent
    /// in `journal` and followed by the created resource.
    pub async fn provision<J: Journal + ?Sized>(
        &self,
        journal: &mut J,
        request: ProvisionRequest,
    ) -> Result<Provisioned> {
        let mut ledger = Ledger::open(journal);
        let (mut created, mut adopted) = (0, 0);
        let mut last_error: Option<Error> = None;
        let settings = self.client.settings().clone();
        let lock_deadline = tokio::time::Instant::now() + settings.lock_wait;
        let (mut round, mut waits) = (0, 0u32);
        let mut notes = Vec::new();
        loop {
            let list_reserved = request.reserved
                || ledger.of(KIND_RESERVED).next().is_some()
                || ledger.intents(KIND_IPV4).next().is_some();
            let mut seen = self.look(list_reserved).await?;
            adopted += self.reconcile(&mut ledger, Some(&seen.ipv4), seen.reserved.as_deref())?;
            if round == 0 && waits == 0 {
                // A limit that can be known: IPv6, before the first create.
                if request.ipv6 > 0 && seen.instance.v6.is_none() {
                    seen.instance = self.turn_ipv6_on(&request, &mut notes).await?;
                }
                self.take_ipv6(&mut ledger, &seen.instance, request.ipv6)?;
            }
            self.attach_pending(&ledger, seen.reserved.as_deref())
                .await?;
            let held = self.held_ipv4(&ledger).len();
            let missing = request.ipv4.saturating_sub(held);
            if missing == 0 {
                let done = self.provisioned(&ledger, &seen.instance, created, adopted);
                return self.finish(done, &seen.instance, request, notes).await;
            }
            if round == MAX_ROUNDS {
                break;
            }
            let batch = self
                .create(&mut ledger, &seen, missing, request.reserved)
                .await?;
            created += batch.created;
            match batch.error {
                // The instance is busy with the task the last create
                // started: the refused call did not take effect. Look
                // again (the listing shows what did) and go on, for up
                // to `lock_wait`.
                Some(Error::Busy {
                    operation, detail, ..
                }) => {
                    waits += 1;
                    let delay = super::client::backoff_delay(&settings, waits);
                    if tokio::time::Instant::now() + delay > lock_deadline {
                        return Err(Error::Busy {
                            provider: "Vultr",
                            operation,
                            detail: format!(
                                "{detail}; instance {} stayed busy for {} s: wait for its task to end \
                                 (the Vultr portal shows it) and run provision again",
                                self.instance_id,
                                settings.lock_wait.as_secs()
                            ),
                        });
                    }
                    tokio::time::sleep(delay).await;
                }
                Some(Error::Conflict { detail, .. }) => {
                    let held = self.held_ipv4(&ledger).len();
                    return Err(Error::Limit {
                        provider: "Vultr",
                        detail: format!(
                            "Vultr refused another IPv4 address for instance {} ({detail}); Vultr \
                             caps the extra IPv4 of each instance or account and does not list the \
                             cap, so this is most likely it: the deployment holds {held} of the {} \
                             it needs (recorded; `troll teardown` gives them back); ask Vultr \
                             support to raise the cap, or use a message with fewer distinct lines \
                             or --ipv6",
                            self.instance_id, request.ipv4
                        ),
                    });
                }
                Some(e) if !transient(&e) => return Err(e),
                Some(e) => {
                    last_error = Some(e);
                    round += 1;
                }
                None if !batch.unresolved => {
                    let done = self.provisioned(&ledger, &seen.instance, created, adopted);
                    return self.finish(done, &seen.instance, request, notes).await;
                }
                None => round += 1,
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Api {
            provider: "Vultr",
            operation: format!("adding IPv4 addresses to instance {}", self.instance_id),
            detail: format!(
                "the new addresses did not appear in the instance's list after {MAX_ROUNDS} rounds"
            ),
        }))
    }

    /// What [`Vultr::provision`] would do for `request`, worked out with
    /// read calls only (the instance, its IPv4 list, the reserved IPs) on a
    /// copy of the journal: `journal` and Vultr are left as they are.
    pub async fn plan<J: Journal + ?Sized>(
        &self,
        journal: &J,
        request: ProvisionRequest,
    ) -> Result<crate::ProvisionPlan> {
        let mut scratch = crate::MemoryJournal {
            resources: journal.resources(),
        };
        let mut ledger = Ledger::open(&mut scratch);
        let list_reserved = request.reserved
            || ledger.of(KIND_RESERVED).next().is_some()
            || ledger.intents(KIND_IPV4).next().is_some();
        let seen = self.look(list_reserved).await?;
        self.reconcile(&mut ledger, Some(&seen.ipv4), seen.reserved.as_deref())?;
        let held = self.held_ipv4(&ledger).len();
        let missing = request.ipv4.saturating_sub(held);
        let id = &self.instance_id;
        let mut calls = Vec::new();
        for n in 1..=missing {
            if request.reserved {
                calls.push(crate::PlannedCall {
                    call: format!(
                        "POST /reserved-ips {{region: {}, ip_type: v4, label: {}}}",
                        seen.instance.region, self.label
                    ),
                    what: format!("reserved IPv4 {n} of {missing}"),
                });
                calls.push(crate::PlannedCall {
                    call: format!("POST /reserved-ips/{{new id}}/attach {{instance_id: {id}}}"),
                    what: format!("attach reserved IPv4 {n} of {missing} to the instance"),
                });
            } else {
                calls.push(crate::PlannedCall {
                    call: format!("POST /instances/{id}/ipv4 {{reboot: false}}"),
                    what: format!("additional IPv4 {n} of {missing}"),
                });
            }
        }
        let mut notes = Vec::new();
        if request.ipv6 > 0 && seen.instance.v6.is_none() {
            if request.modify_instance {
                calls.insert(
                    0,
                    crate::PlannedCall {
                        call: format!("PATCH /instances/{id} {{enable_ipv6: true}}"),
                        what: "turn IPv6 on for the instance (no restart)".into(),
                    },
                );
            } else {
                notes.push(format!(
                    "instance {id} has IPv6 off and --no-modify-instance forbids turning it on: the run would stop before any create"
                ));
            }
        }
        if missing > 0 && request.reboot && !request.reserved {
            calls.push(crate::PlannedCall {
                call: format!("POST /instances/{id}/reboot"),
                what: "restart, so the new addresses pass traffic (--reboot)".into(),
            });
        }
        if missing > 0 && !request.reserved && !request.reboot {
            notes.push(
                "Vultr may pass no traffic to a new additional IPv4 until the instance restarts; troll never restarts it by itself"
                    .to_string(),
            );
        }
        Ok(crate::ProvisionPlan {
            provider: crate::ProviderKind::Vultr,
            calls,
            held_ipv4: held,
            new_ipv4: missing,
            released_ipv4: 0,
            ipv6: request.ipv6,
            notes,
            reads: 2 + usize::from(list_reserved),
        })
    }

    /// The instance, its IPv4 list and (when asked) the reserved IPs, read
    /// in parallel.
    pub(super) async fn look(&self, list_reserved: bool) -> Result<Seen> {
        let id = &self.instance_id;
        let reserved = async {
            if list_reserved {
                self.client.list_reserved_ips().await.map(Some)
            } else {
                Ok(None)
            }
        };
        let (instance, ipv4, reserved) = tokio::try_join!(
            self.client.get_instance(id),
            self.client.list_instance_ipv4(id),
            reserved
        )?;
        Ok(Seen {
            instance,
            ipv4,
            reserved,
        })
    }

    /// Brings the journal in line with the API's lists and returns how many
    /// resources it adopted:
    /// - additional IPv4s no longer on the instance are forgotten;
    /// - an intent to add an IPv4 adopts a secondary address that was not
    ///   there before it (per its `before` list) and is not known otherwise;
    /// - reserved IPs with the deployment's label that the journal lacks are
    ///   adopted, and recorded ones that are gone are forgotten.
    ///
    /// `ipv4` is `None` when the instance no longer exists.
    pub(super) fn reconcile<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger<'_, J>,
        ipv4: Option<&[InstanceIpv4]>,
        reserved: Option<&[ReservedIp]>,
    ) -> Result<usize> {
        let mut adopted = 0;
        let mut changed = false;
        let secondaries: BTreeSet<Ipv4Addr> = ipv4
            .unwrap_or_default()
            .iter()
            .filter(|a| a.is_secondary())
            .map(|a| a.ip)
            .collect();
        changed |= ledger.remove(|r| {
            r.kind == KIND_IPV4
                && r.status == ResourceStatus::Created
                && !matches!(r.address.map(|a| a.public), Some(IpAddr::V4(a)) if secondaries.contains(&a))
        });

        let intents: Vec<_> = ledger.intents(KIND_IPV4).cloned().collect();
        if !intents.is_empty() {
            let mut known: BTreeSet<Ipv4Addr> = ledger
                .addresses(KIND_IPV4)
                .into_iter()
                .chain(ledger.addresses(KIND_RESERVED))
                .filter_map(|a| match a {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => None,
                })
                .collect();
            known.extend(
                reserved
                    .unwrap_or_default()
                    .iter()
                    .filter_map(ReservedIp::ipv4),
            );
            // An intent without its `before` list cannot tell a new address
            // from an old one; it adopts nothing rather than someone else's.
            let befores: Vec<BTreeSet<Ipv4Addr>> = intents
                .iter()
                .filter_map(|i| i.extra.get(EXTRA_BEFORE))
                .map(|b| b.split(',').filter_map(|a| a.trim().parse().ok()).collect())
                .collect();
            let fresh: Vec<Ipv4Addr> = secondaries
                .iter()
                .copied()
                .filter(|a| !known.contains(a) && befores.iter().any(|b| !b.contains(a)))
                .collect();
            if fresh.len() > intents.len() {
                tracing::warn!(
                    instance = %self.instance_id,
                    "{} new additional IPv4 address(es) for {} intent(s): adopting the lowest",
                    fresh.len(),
                    intents.len()
                );
            }
            for ip in fresh.into_iter().take(intents.len()) {
                tracing::info!(%ip, instance = %self.instance_id, "adopting an additional IPv4 from an interrupted run");
                ledger.items.push(resource(
                    KIND_IPV4,
                    Some(ip.to_string()),
                    Some(IpAddr::V4(ip)),
                    ResourceStatus::Created,
                    &[(EXTRA_INSTANCE, self.instance_id.clone())],
                ));
                adopted += 1;
            }
            ledger.remove(|r| r.kind == KIND_IPV4 && r.status == ResourceStatus::Intent);
            changed = true;
        }

        if let Some(list) = reserved {
            let ids: BTreeSet<&str> = list.iter().map(|r| r.id.as_str()).collect();
            changed |= ledger.remove(|r| {
                r.kind == KIND_RESERVED
                    && r.status == ResourceStatus::Created
                    && !r.id.as_deref().is_some_and(|id| ids.contains(id))
            });
            for r in list.iter().filter(|r| self.owns(r)) {
                let recorded = ledger
                    .created(KIND_RESERVED)
                    .any(|x| x.id.as_deref() == Some(r.id.as_str()));
                if !recorded {
                    tracing::info!(id = %r.id, label = %self.label, "adopting a reserved IP by its label");
                    ledger.items.push(resource(
                        KIND_RESERVED,
                        Some(r.id.clone()),
                        r.ipv4().map(IpAddr::V4),
                        ResourceStatus::Created,
                        &[
                            (EXTRA_INSTANCE, self.instance_id.clone()),
                            (EXTRA_LABEL, self.label.clone()),
                            (EXTRA_REGION, r.region.clone()),
                        ],
                    ));
                    adopted += 1;
                    changed = true;
                }
            }
            changed |=
                ledger.remove(|r| r.kind == KIND_RESERVED && r.status == ResourceStatus::Intent);
        }
        if changed {
            ledger.save()?;
        }
        Ok(adopted)
    }

    /// Records IPv6 hop addresses from the instance's network up to
    /// `wanted`: `prefix::1000`, `prefix::1001`, ... (no API call creates
    /// them), skipping the instance's own address.
    fn take_ipv6<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger<'_, J>,
        instance: &Instance,
        wanted: usize,
    ) -> Result<()> {
        let Some(net) = instance.v6 else {
            if wanted > 0 {
                return Err(Error::Invalid {
                    detail: format!(
                        "instance {} has no IPv6 network; enable IPv6 on it (Vultr portal, Settings, IPv6) and provision again",
                        self.instance_id
                    ),
                });
            }
            if ledger.remove(|r| r.kind == KIND_IPV6) {
                ledger.save()?;
            }
            return Ok(());
        };
        let mut changed = ledger.remove(|r| {
            r.kind == KIND_IPV6
                && !matches!(r.address.map(|a| a.public), Some(IpAddr::V6(a)) if net.contains(a))
        });
        let mut held: BTreeSet<IpAddr> = ledger.addresses(KIND_IPV6).into_iter().collect();
        let base = u128::from(net.network)
            & u128::MAX
                .checked_shl(128 - u32::from(net.prefix_len))
                .unwrap_or(0);
        let network = format!("{}/{}", net.network, net.prefix_len);
        let mut offset = IPV6_HOP_OFFSET;
        while held.len() < wanted {
            let candidate = Ipv6Addr::from(base.wrapping_add(offset));
            offset += 1;
            if !net.contains(candidate) {
                return Err(Error::Invalid {
                    detail: format!(
                        "the IPv6 network {network} of instance {} is too small for {wanted} hop addresses",
                        self.instance_id
                    ),
                });
            }
            if Some(candidate) == net.main_ip || !held.insert(IpAddr::V6(candidate)) {
                continue;
            }
            ledger.items.push(resource(
                KIND_IPV6,
                None,
                Some(IpAddr::V6(candidate)),
                ResourceStatus::Created,
                &[
                    (EXTRA_INSTANCE, self.instance_id.clone()),
                    (EXTRA_NETWORK, network.clone()),
                ],
            ));
            changed = true;
        }
        if changed {
            ledger.save()?;
        }
        Ok(())
    }

    /// Attaches the deployment's reserved IPs that are not attached to the
    /// instance (a run interrupted between create and attach).
    async fn attach_pending<J: Journal + ?Sized>(
        &self,
        ledger: &Ledger<'_, J>,
        reserved: Option<&[ReservedIp]>,
    ) -> Result<()> {
        let Some(list) = reserved else {
            return Ok(());
        };
        let mut pending = Vec::new();
        for r in ledger.created(KIND_RESERVED) {
            let Some(listed) = list.iter().find(|l| Some(l.id.as_str()) == r.id.as_deref()) else {
                continue;
            };
            match listed.instance_id.as_deref() {
                Some(i) if i == self.instance_id => {}
                Some(other) => {
                    return Err(Error::Conflict {
                        provider: "Vultr",
                        detail: format!(
                            "reserved IP {} ({}) labelled {} is attached to instance {other}, not {}; detach it or tear the deployment down",
                            listed.id, listed.subnet, self.label, self.instance_id
                        ),
                    })
                }
                None => pending.push(listed.id.clone()),
            }
        }
        let attach = |id: String| async move { self.attach(&id).await };
        let results: Vec<Result<()>> = stream::iter(pending)
            .map(attach)
            .buffered(1)
            .collect()
            .await;
        results.into_iter().collect()
    }

    /// Attaches a reserved IP to the instance; an attach the API refuses
    /// because it was already done (a retried call) counts as done.
    async fn attach(&self, reserved_id: &str) -> Result<()> {
        match self
            .client
            .attach_reserved_ip(reserved_id, &self.instance_id)
            .await
        {
            Err(Error::Conflict { .. }) if self.is_attached(reserved_id).await => Ok(()),
            other => other,
        }
    }

    async fn is_attached(&self, reserved_id: &str) -> bool {
        self.client.list_reserved_ips().await.is_ok_and(|list| {
            list.iter().any(|r| {
                r.id == reserved_id && r.instance_id.as_deref() == Some(self.instance_id.as_str())
            })
        })
    }

    /// Creates `missing` IPv4 addresses in parallel, each after its intent.
    async fn create<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger<'_, J>,
        seen: &Seen,
        missing: usize,
        reserved: bool,
    ) -> Result<Batch> {
        let kind = if reserved { KIND_RESERVED } else { KIND_IPV4 };
        let before = seen
            .ipv4
            .iter()
            .filter(|a| a.is_secondary())
            .map(|a| a.ip.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let region = seen.instance.region.as_str();
        let tokens: Vec<String> = (0..missing).map(|_| token()).collect();
        for t in &tokens {
            let mut extra = vec![
                (EXTRA_INSTANCE, self.instance_id.clone()),
                (EXTRA_INTENT, t.clone()),
            ];
            if reserved {
                extra.push((EXTRA_LABEL, self.label.clone()));
                extra.push((EXTRA_REGION, region.to_string()));
            } else {
                extra.push((EXTRA_BEFORE, before.clone()));
            }
            ledger
                .items
                .push(resource(kind, None, None, ResourceStatus::Intent, &extra));
        }
        ledger.save()?;

        let what = if reserved {
            format!(
                "creating {missing} reserved IPv4 address(es) labelled {}",
                self.label
            )
        } else {
            format!(
                "adding {missing} IPv4 address(es) to instance {}",
                self.instance_id
            )
        };
        let steps = self.steps(missing, &what);
        let one = |t: String| async move {
            let made = if reserved {
                match self.client.create_reserved_ipv4(region, &self.label).await {
                    Ok(r) => {
                        let attached = self.attach(&r.id).await;
                        Ok(Made::Reserved(Box::new((r, attached))))
                    }
                    Err(e) => Err(e),
                }
            } else {
                self.client
                    .create_instance_ipv4(&self.instance_id)
                    .await
                    .map(Made::Ipv4)
            };
            (t, made)
        };
        // One at a time: each create starts a task on the instance, and
        // Vultr refuses ("Server is currently locked") while one runs.
        let batch_tokens: BTreeSet<String> = tokens.iter().cloned().collect();
        let mut results = stream::iter(tokens).map(one).buffered(1);
        let mut unresolved = BTreeSet::new();
        let mut batch = Batch {
            created: 0,
            unresolved: false,
            error: None,
        };
        while let Some((t, made)) = results.next().await {
            match made {
                Ok(Made::Ipv4(Some(ip))) => {
                    ledger.fulfil(
                        &t,
                        resource(
                            KIND_IPV4,
                            Some(ip.to_string()),
                            Some(IpAddr::V4(ip)),
                            ResourceStatus::Created,
                            &[(EXTRA_INSTANCE, self.instance_id.clone())],
                        ),
                    );
                    ledger.save()?;
                    batch.created += 1;
                    steps.inc(&ip.to_string());
                }
                Ok(Made::Ipv4(None)) => {
                    batch.unresolved = true;
                    unresolved.insert(t.clone());
                    steps.inc("added; the address comes from the instance's list");
                }
                Ok(Made::Reserved(made)) if matches!(made.1, Err(Error::Conflict { .. })) => {
                    // Vultr would not attach it (the instance's IPv4 cap):
                    // give the new reserved IP back at once rather than
                    // pay for an address that serves nothing.
                    let (r, attached) = *made;
                    match self.client.delete_reserved_ip(&r.id).await {
                        Ok(()) => {
                            ledger.remove(|x| x.extra.get(EXTRA_INTENT) == Some(&t));
                        }
                        Err(e) => {
                            tracing::warn!(id = %r.id, "cannot delete the unattached reserved IP: {e}");
                            ledger.fulfil(
                                &t,
                                resource(
                                    KIND_RESERVED,
                                    Some(r.id.clone()),
                                    r.ipv4().map(IpAddr::V4),
                                    ResourceStatus::Created,
                                    &[
                                        (EXTRA_INSTANCE, self.instance_id.clone()),
                                        (EXTRA_LABEL, self.label.clone()),
                                        (EXTRA_REGION, r.region.clone()),
                                    ],
                                ),
                            );
                        }
                    }
                    ledger.save()?;
                    if let Err(e) = attached {
                        steps.note(&e.to_string());
                        batch.error.get_or_insert(e);
                    }
                }
                Ok(Made::Reserved(made)) => {
                    let (r, attached) = *made;
                    ledger.fulfil(
                        &t,
                        resource(
                            KIND_RESERVED,
                            Some(r.id.clone()),
                            r.ipv4().map(IpAddr::V4),
                            ResourceStatus::Created,
                            &[
                                (EXTRA_INSTANCE, self.instance_id.clone()),
                                (EXTRA_LABEL, self.label.clone()),
                                (EXTRA_REGION, r.region.clone()),
                            ],
                        ),
                    );
                    ledger.save()?;
                    batch.created += 1;
                    steps.inc(&format!("{} ({})", r.subnet, r.id));
                    if let Err(e) = attached {
                        steps.note(&e.to_string());
                        batch.error.get_or_insert(e);
                    }
                }
                Err(e) => {
                    if transient(&e) {
                        unresolved.insert(t.clone());
                    }
                    steps.note(&e.to_string());
                    batch.error.get_or_insert(e);
                }
            }
            if batch.error.is_some() {
                break;
            }
        }
        drop(results);
        // The intents of this batch that can stand for an address: calls
        // that went through without naming it, and a call whose outcome
        // is unknown. A refusal (locked, the cap, a permission) did not
        // take effect, and the calls after the first error were never
        // made: their intents go, so the journal holds what Vultr holds.
        if ledger.remove(|r| {
            r.status == ResourceStatus::Intent
                && r.kind == kind
                && r.extra
                    .get(EXTRA_INTENT)
                    .is_some_and(|t| batch_tokens.contains(t) && !unresolved.contains(t))
        }) {
            ledger.save()?;
        }
        steps.finish(&format!("{} created", batch.created));
        Ok(batch)
    }

    /// IPv4 hop addresses held: additional addresses, then reserved IPs.
    fn held_ipv4<J: Journal + ?Sized>(&self, ledger: &Ledger<'_, J>) -> Vec<IpAddr> {
        ledger
            .items
            .iter()
            .filter(|r| {
                (r.kind == KIND_IPV4 || r.kind == KIND_RESERVED)
                    && r.status == ResourceStatus::Created
            })
            .filter_map(|r| r.address.map(|a| a.public))
            .filter(|a| Family::of(*a) == Family::Ipv4)
            .collect()
    }

    fn provisioned<J: Journal + ?Sized>(
        &self,
        ledger: &Ledger<'_, J>,
        instance: &Instance,
        created: usize,
        adopted: usize,
    ) -> Provisioned {
        Provisioned {
            target_v4: AddressPair::same(IpAddr::V4(instance.main_ip)),
            target_v6: instance
                .v6
                .and_then(|n| n.main_ip)
                .map(|a| AddressPair::same(IpAddr::V6(a))),
            ipv4: self
                .held_ipv4(ledger)
                .into_iter()
                .map(AddressPair::same)
                .collect(),
            ipv6: ledger
                .addresses(KIND_IPV6)
                .into_iter()
                .map(AddressPair::same)
                .collect(),
            created,
            adopted,
            notes: Vec::new(),
        }
    }

    /// Turns IPv6 on for the instance (when allowed) and waits until the
    /// API shows its network; otherwise stops with the exact command.
    async fn turn_ipv6_on(
        &self,
        request: &ProvisionRequest,
        notes: &mut Vec<String>,
    ) -> Result<Instance> {
        let id = &self.instance_id;
        if !request.modify_instance {
            return Err(Error::Invalid {
                detail: format!(
                    "instance {id} has IPv6 off and --no-modify-instance forbids turning it on: run \
                     `curl -X PATCH -H \"Authorization: Bearer $VULTR_API_KEY\" -H \"Content-Type: application/json\" \
                     --data '{{\"enable_ipv6\":true}}' https://api.vultr.com/v2/instances/{id}`, or drop --ipv6"
                ),
            });
        }
        self.client.enable_ipv6(id).await?;
        let instance = self
            .wait_until(|i| i.v6.is_some(), "its IPv6 network")
            .await?;
        notes.push(format!(
            "turned IPv6 on for instance {id} (no restart needed)"
        ));
        Ok(instance)
    }

    /// Reads the instance until `ready` holds, for up to `lock_wait`.
    async fn wait_until(&self, ready: impl Fn(&Instance) -> bool, what: &str) -> Result<Instance> {
        let settings = self.client.settings();
        let deadline = tokio::time::Instant::now() + settings.lock_wait;
        let mut attempt = 0;
        loop {
            let instance = self.client.get_instance(&self.instance_id).await?;
            if ready(&instance) {
                return Ok(instance);
            }
            attempt += 1;
            let delay = super::client::backoff_delay(settings, attempt);
            if tokio::time::Instant::now() + delay > deadline {
                return Err(Error::Busy {
                    provider: "Vultr",
                    operation: format!("waiting for {what} on instance {}", self.instance_id),
                    detail: format!(
                        "not there after {} s; look at the instance in the Vultr portal and run provision again",
                        settings.lock_wait.as_secs()
                    ),
                });
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// The end of a provision: the restart (with `reboot`) or the note on
    /// it, and the firewall group's missing rules.
    async fn finish(
        &self,
        mut done: Provisioned,
        instance: &Instance,
        request: ProvisionRequest,
        mut notes: Vec<String>,
    ) -> Result<Provisioned> {
        let id = &self.instance_id;
        let new_additional = done.created + done.adopted > 0 && !request.reserved;
        if new_additional && request.reboot {
            self.client.reboot_instance(id).await?;
            // The restart is a task: wait for the instance to be free again.
            tokio::time::sleep(super::client::backoff_delay(self.client.settings(), 1)).await;
            self.wait_until(Instance::is_ready, "the end of the restart")
                .await?;
            notes.push(format!("restarted instance {id}; it is running again"));
        } else if new_additional {
            notes.push(format!(
                "Vultr may pass no traffic to a new additional IPv4 until instance {id} restarts: \
                 restart it when convenient, or run provision again with --reboot"
            ));
        }
        if let Some(group) = &instance.firewall_group_id {
            match self.client.list_firewall_rules(group).await {
                Ok(rules) => {
                    let missing = super::firewall::missing(&rules, request.ipv6 > 0);
                    if !missing.is_empty() {
                        notes.push(format!(
                            "firewall group {group} on instance {id} lacks inbound rules for {}: \
                             add them (Vultr portal, Network, Firewall) or those probes never arrive",
                            missing.join(", ")
                        ));
                    }
                }
                Err(e) => notes.push(format!("cannot read firewall group {group}: {e}")),
            }
        }
        done.notes = notes;
        Ok(done)
    }
}
