//! `provision`: the resources of a show, created in order (Elastic IPs
//! tagged at allocation, secondary private addresses, associations, the
//! source/destination check off, the target's Elastic IP), with the
//! journal and the deployment tags reconciled first so that a crash at any
//! earlier point neither leaks nor duplicates anything. The reconciling
//! and the reads here are shared with `teardown`.

use super::ec2::{Eip, InstanceInfo, Interface};
use super::ledger::{
    entry, extra, extra_v4, hop_number, hop_slot, kinds, pair, slot_of, Ledger, INTERFACE, TARGET,
};
use super::{
    AwsProvider, Provisioned, TeardownReport, PROVIDER, TAG_DEPLOYMENT, TAG_INSTANCE, TAG_SLOT,
};
use crate::progress::Progress;
use crate::{Error, Journal, ResourceStatus, Result};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ResourceStatus::{Created, Intent};

/// What EC2 holds under the deployment's tags, split by whether the
/// journal knows it.
pub(super) struct Tagged {
    pub(super) all: Vec<Eip>,
    pub(super) orphans: Vec<Eip>,
}

impl AwsProvider {
    /// Makes the instance ready for a show of `count` named hops: one
    /// Elastic IP per hop, tagged at allocation, each associated with its
    /// own secondary private address on the primary interface; the
    /// interface's source/destination check off; the target's Elastic IP
    /// on the primary private address (the one there, or a new one).
    ///
    /// Idempotent: what the journal and EC2 already have is kept, so a
    /// second call allocates nothing. A shorter show gives the surplus
    /// hops back.
    pub async fn provision<J: Journal + ?Sized>(
        &self,
        count: usize,
        journal: &mut J,
    ) -> Result<Provisioned> {
        let progress = Progress::new(count as u64 * 2 + 3, "aws provision");
        let mut ledger = Ledger::load(journal);
        let (instance, iface) = self.instance_interface().await?;
        let tagged = self.reconcile(&mut ledger, journal, Some(&iface)).await?;
        // Every limit that can be known, before the first create call.
        self.check_limits(&ledger, &instance, &iface, count, &tagged.orphans)
            .await?;

        let mut report = TeardownReport::default();
        let surplus: BTreeSet<String> = ledger
            .slots()
            .into_iter()
            .filter(|s| hop_number(s).is_some_and(|n| n > count || n == 0))
            .collect();
        if !surplus.is_empty() || !tagged.orphans.is_empty() {
            progress.note(&format!(
                "giving back {} surplus hop(s) and {} untracked Elastic IP(s)",
                surplus.len(),
                tagged.orphans.len()
            ));
            self.dismantle(
                &mut ledger,
                journal,
                &surplus,
                &tagged,
                Some(&iface),
                &mut report,
            )
            .await?;
        }

        let mut allocated = 0;
        for i in 1..=count {
            let slot = hop_slot(i);
            if ledger.get(kinds::EIP, &slot).is_none() {
                self.allocate(&mut ledger, journal, &slot).await?;
                allocated += 1;
            }
            progress.inc(&format!("Elastic IP for {slot}"));
        }

        let iface = self.assign(&mut ledger, journal, iface, count).await?;
        progress.inc("secondary private addresses");

        let ids: Vec<String> = (1..=count)
            .filter_map(|i| ledger.get(kinds::EIP, &hop_slot(i))?.id.clone())
            .collect();
        let current: BTreeMap<String, Eip> = self
            .ec2
            .addresses_by_id(&ids)
            .await?
            .into_iter()
            .map(|e| (e.allocation_id.clone(), e))
            .collect();
        let mut hops = Vec::with_capacity(count);
        for i in 1..=count {
            let slot = hop_slot(i);
            hops.push(
                self.associate(&mut ledger, journal, &iface, &slot, &current)
                    .await?,
            );
            progress.inc(&format!("association for {slot}"));
        }

        self.source_dest_off(&mut ledger, journal, &iface).await?;
        progress.inc("source/destination check off");

        let mut notes = Vec::new();
        let target = self
            .ensure_target(&mut ledger, journal, &iface, &mut allocated, &mut notes)
            .await?;
        // Read only: do the instance's security groups let the probes in?
        match self.ec2.inbound(&instance.security_groups).await {
            Ok(_) if instance.security_groups.is_empty() => {}
            Ok(permissions) => {
                let missing = super::limits::missing_probe_rules(&permissions);
                if !missing.is_empty() {
                    notes.push(format!(
                        "the security group(s) {} of instance {} admit no {} from 0.0.0.0/0: add \
                         inbound rules for them or those probes never reach the show",
                        instance.security_groups.join(", "),
                        self.instance_id,
                        missing.join(", ")
                    ));
                }
            }
            Err(e) => notes.push(format!("cannot read the security groups: {e}")),
        }
        progress.finish(&format!("target {target}, {count} hop(s)"));
        Ok(Provisioned {
            target,
            hops,
            interface: iface.id,
            allocated,
            released: report.released,
            notes,
        })
    }

    /// The instance's primary interface, fresh from EC2.
    pub(super) async fn interface(&self) -> Result<Interface> {
        Ok(self.instance_interface().await?.1)
    }

    /// The instance (its type) and its primary interface, fresh from EC2.
    pub(super) async fn instance_interface(&self) -> Result<(InstanceInfo, Interface)> {
        let instance = self.ec2.instance(&self.instance_id).await?;
        let iface = self.ec2.interface(&instance.eni).await?;
        Ok((instance, iface))
    }

    /// The deployment's tagged Elastic IPs.
    pub(super) async fn tagged(&self) -> Result<Vec<Eip>> {
        let tag_deployment = format!("tag:{TAG_DEPLOYMENT}");
        let tag_instance = format!("tag:{TAG_INSTANCE}");
        self.ec2
            .addresses(&[
                (&tag_deployment, &self.deployment),
                (&tag_instance, &self.instance_id),
            ])
            .await
    }

    /// Brings the journal in line with EC2 after a crash: an Elastic IP
    /// `Intent` adopts the tagged Elastic IP of its slot (the allocation
    /// went through) or is dropped (it did not); private address and
    /// association intents become `Created` or are dropped by what EC2
    /// shows; entries for things removed outside troll are dropped.
    /// Returns the tagged Elastic IPs, and those the journal does not know.
    pub(super) async fn reconcile<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger,
        journal: &mut J,
        iface: Option<&Interface>,
    ) -> Result<Tagged> {
        let all = self.tagged().await?;
        let by_id: BTreeMap<&str, &Eip> =
            all.iter().map(|e| (e.allocation_id.as_str(), e)).collect();

        for r in ledger
            .all(kinds::EIP)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
        {
            let Some(slot) = slot_of(&r).map(str::to_string) else {
                continue;
            };
            if extra(&r, "adopted") == Some("true") {
                continue;
            }
            match &r.id {
                None => {
                    let found = all.iter().find(|e| {
                        e.tags.get(TAG_SLOT) == Some(&slot)
                            && !ledger.has_id(kinds::EIP, &e.allocation_id)
                    });
                    match found {
                        Some(e) => {
                            ledger.put(eip_entry(&slot, e.allocation_id.clone(), e.public_ip))
                        }
                        None => ledger.remove(kinds::EIP, &slot),
                    }
                }
                Some(id) if !by_id.contains_key(id.as_str()) => {
                    // Released outside troll: nothing left to give back.
                    ledger.remove(kinds::EIP, &slot);
                    ledger.remove(kinds::ASSOCIATION, &slot);
                    ledger.remove(kinds::PTR, &slot);
                }
                Some(_) => {}
            }
        }

        if let Some(iface) = iface {
            for r in ledger
                .all(kinds::PRIVATE_IP)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
            {
                let Some(slot) = slot_of(&r).map(str::to_string) else {
                    continue;
                };
                let ip: Option<Ipv4Addr> = r.id.as_deref().and_then(|i| i.parse().ok());
                let on_interface = extra(&r, "eni") == Some(iface.id.as_str())
                    && ip.is_some_and(|ip| iface.addresses.contains(&ip) && ip != iface.primary);
                if !on_interface {
                    ledger.remove(kinds::PRIVATE_IP, &slot);
                } else if r.status == Intent {
                    let mut r = r;
                    r.status = Created;
                    ledger.put(r);
                }
            }
        }

        for r in ledger
            .all(kinds::ASSOCIATION)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
        {
            let Some(slot) = slot_of(&r).map(str::to_string) else {
                continue;
            };
            let live = extra(&r, "allocation_id")
                .and_then(|a| by_id.get(a))
                .filter(|e| {
                    e.network_interface_id.as_deref() == extra(&r, "eni")
                        && e.private_ip == extra_v4(&r, "private_ip")
                })
                .and_then(|e| e.association_id.clone());
            match live {
                Some(id) => {
                    let mut r = r;
                    r.id = Some(id);
                    r.status = Created;
                    ledger.put(r);
                }
                None => ledger.remove(kinds::ASSOCIATION, &slot),
            }
        }
        ledger.commit(journal)?;

        let orphans = all
            .iter()
            .filter(|e| !ledger.has_id(kinds::EIP, &e.allocation_id))
            .cloned()
            .collect();
        Ok(Tagged { all, orphans })
    }

    /// Allocates the Elastic IP of `slot`, journaled around the call.
    pub(super) async fn allocate<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger,
        journal: &mut J,
        slot: &str,
    ) -> Result<(String, Ipv4Addr)> {
        ledger.put(entry(kinds::EIP, slot, None, Intent, &[]));
        ledger.commit(journal)?;
        let tags = self.tags(slot);
        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (id, public) = self.ec2.allocate_address(&tags).await?;
        ledger.put(eip_entry(slot, id.clone(), public));
        ledger.commit(journal)?;
        Ok((id, public))
    }

    /// Gives every hop slot up to `count` a secondary private address:
    /// free ones of the subnet are chosen first and journaled by address,
    /// so a crash during the call leaves exact records. Returns the
    /// interface as it is afterwards.
    pub(super) async fn assign<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger,
        journal: &mut J,
        iface: Interface,
        count: usize,
    ) -> Result<Interface> {
        let needed: Vec<String> = (1..=count)
            .map(hop_slot)
            .filter(|s| ledger.get(kinds::PRIVATE_IP, s).is_none())
            .collect();
        if needed.is_empty() {
            return Ok(iface);
        }
        let (network, prefix) = self.ec2.subnet_block(&iface.subnet_id).await?;
        let mut used = self.ec2.used_addresses(&iface.subnet_id).await?;
        used.extend(iface.addresses.iter().copied());
        used.extend(
            ledger
                .all(kinds::PRIVATE_IP)
                .iter()
                .filter_map(|r| r.id.as_deref()?.parse::<Ipv4Addr>().ok()),
        );
        let picks = free_addresses(network, prefix, &used, needed.len());
        if picks.len() < needed.len() {
            return Err(Error::Conflict {
                provider: PROVIDER,
                detail: format!(
                    "subnet {} ({network}/{prefix}) has {} free address(es) but the show needs {}",
                    iface.subnet_id,
                    picks.len(),
                    needed.len()
                ),
            });
        }
        for (slot, ip) in needed.iter().zip(&picks) {
            ledger.put(entry(
                kinds::PRIVATE_IP,
                slot,
                Some(ip.to_string()),
                Intent,
                &[("eni", iface.id.clone())],
            ));
        }
        ledger.commit(journal)?;
        self.ec2.assign_private_addresses(&iface.id, &picks).await?;
        for slot in &needed {
            if let Some(r) = ledger.get(kinds::PRIVATE_IP, slot).cloned() {
                let mut r = r;
                r.status = Created;
                ledger.put(r);
            }
        }
        ledger.commit(journal)?;
        self.ec2.interface(&iface.id).await
    }

    /// Associates the Elastic IP of a hop slot with its private address,
    /// unless EC2 shows that done already.
    pub(super) async fn associate<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger,
        journal: &mut J,
        iface: &Interface,
        slot: &str,
        current: &BTreeMap<String, Eip>,
    ) -> Result<crate::AddressPair> {
        let eip = ledger
            .get(kinds::EIP, slot)
            .cloned()
            .ok_or_else(|| internal(format!("{slot} has no Elastic IP after allocation")))?;
        let allocation_id = eip
            .id
            .clone()
            .ok_or_else(|| internal(format!("{slot}'s Elastic IP has no id")))?;
        let public = extra_v4(&eip, "public_ip")
            .ok_or_else(|| internal(format!("{slot}'s Elastic IP has no address")))?;
        let private: Ipv4Addr = ledger
            .get(kinds::PRIVATE_IP, slot)
            .and_then(|r| r.id.as_deref()?.parse().ok())
            .ok_or_else(|| internal(format!("{slot} has no private address after assignment")))?;
        let live = current.get(&allocation_id).ok_or_else(|| Error::NotFound {
            provider: PROVIDER,
            what: format!("Elastic IP {public} ({allocation_id}) any more"),
        })?;
        let assoc_extra = [
            ("allocation_id", allocation_id.clone()),
            ("eni", iface.id.clone()),
            ("private_ip", private.to_string()),
        ];
        match &live.association_id {
            Some(id)
                if live.network_interface_id.as_deref() == Some(iface.id.as_str())
                    && live.private_ip == Some(private) =>
            {
                if ledger
                    .get(kinds::ASSOCIATION, slot)
                    .and_then(|r| r.id.as_ref())
                    != Some(id)
                {
                    ledger.put(entry(
                        kinds::ASSOCIATION,
                        slot,
                        Some(id.clone()),
                        Created,
                        &assoc_extra,
                    ));
                }
            }
            Some(_) => {
                return Err(Error::Conflict {
                    provider: PROVIDER,
                    detail: format!(
                        "Elastic IP {public} of deployment {} is associated with {} {} instead of \
                         {private}; run teardown and provision again",
                        self.deployment,
                        live.network_interface_id
                            .as_deref()
                            .unwrap_or("another resource"),
                        live.private_ip.map(|p| p.to_string()).unwrap_or_default(),
                    ),
                })
            }
            None => {
                ledger.put(entry(kinds::ASSOCIATION, slot, None, Intent, &assoc_extra));
                ledger.commit(journal)?;
                let id = self
                    .ec2
                    .associate_address(&allocation_id, &iface.id, private)
                    .await?;
                ledger.put(entry(
                    kinds::ASSOCIATION,
                    slot,
                    Some(id),
                    Created,
                    &assoc_extra,
                ));
            }
        }
        let mut eip = eip;
        eip.address = Some(pair(public, private));
        ledger.put(eip);
        ledger.commit(journal)?;
        Ok(pair(public, private))
    }

    /// Turns the interface's source/destination check off, recording the
    /// value to restore first (and only the first time).
    pub(super) async fn source_dest_off<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger,
        journal: &mut J,
        iface: &Interface,
    ) -> Result<()> {
        let recorded = ledger
            .get(kinds::SOURCE_DEST_CHECK, INTERFACE)
            .filter(|r| r.id.as_deref() == Some(iface.id.as_str()))
            .cloned();
        let previous = match &recorded {
            Some(r) => extra(r, "previous").unwrap_or("true").to_string(),
            None => iface.source_dest_check.unwrap_or(true).to_string(),
        };
        let extra = [("previous", previous)];
        if iface.source_dest_check == Some(false) {
            if recorded.as_ref().is_none_or(|r| r.status != Created) {
                ledger.put(entry(
                    kinds::SOURCE_DEST_CHECK,
                    INTERFACE,
                    Some(iface.id.clone()),
                    Created,
                    &extra,
                ));
                ledger.commit(journal)?;
            }
            return Ok(());
        }
        ledger.put(entry(
            kinds::SOURCE_DEST_CHECK,
            INTERFACE,
            Some(iface.id.clone()),
            Intent,
            &extra,
        ));
        ledger.commit(journal)?;
        self.ec2.set_source_dest_check(&iface.id, false).await?;
        ledger.put(entry(
            kinds::SOURCE_DEST_CHECK,
            INTERFACE,
            Some(iface.id.clone()),
            Created,
            &extra,
        ));
        ledger.commit(journal)
    }

    /// The target: the Elastic IP on the primary private address. One that
    /// was there before troll is adopted (never released); otherwise one
    /// is allocated, tagged, and associated.
    pub(super) async fn ensure_target<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger,
        journal: &mut J,
        iface: &Interface,
        allocated: &mut usize,
        notes: &mut Vec<String>,
    ) -> Result<crate::AddressPair> {
        let on_interface = self
            .ec2
            .addresses(&[("network-interface-id", &iface.id)])
            .await?;
        let on_primary = on_interface
            .into_iter()
            .find(|e| e.private_ip == Some(iface.primary) && e.association_id.is_some());
        let recorded = ledger.get(kinds::EIP, TARGET).cloned();
        if let Some(e) = on_primary {
            let ours = e.tags.get(TAG_DEPLOYMENT) == Some(&self.deployment)
                && e.tags.get(TAG_INSTANCE) == Some(&self.instance_id);
            let mut r = if ours {
                eip_entry(TARGET, e.allocation_id.clone(), e.public_ip)
            } else {
                if recorded
                    .as_ref()
                    .is_some_and(|r| r.id.as_ref() != Some(&e.allocation_id))
                    && recorded.as_ref().and_then(|r| extra(r, "adopted")) != Some("true")
                {
                    return Err(Error::Conflict {
                        provider: PROVIDER,
                        detail: format!(
                            "the primary address {} now has Elastic IP {} from outside troll, \
                             while the deployment holds another for the target; run teardown first",
                            iface.primary, e.public_ip
                        ),
                    });
                }
                let mut r = eip_entry(TARGET, e.allocation_id.clone(), e.public_ip);
                r.extra.insert("adopted".into(), "true".into());
                r
            };
            r.address = Some(pair(e.public_ip, iface.primary));
            if ours {
                if let Some(id) = &e.association_id {
                    ledger.put(entry(
                        kinds::ASSOCIATION,
                        TARGET,
                        Some(id.clone()),
                        Created,
                        &[
                            ("allocation_id", e.allocation_id.clone()),
                            ("eni", iface.id.clone()),
                            ("private_ip", iface.primary.to_string()),
                        ],
                    ));
                }
            }
            ledger.put(r);
            ledger.commit(journal)?;
            return Ok(pair(e.public_ip, iface.primary));
        }

        // Nothing on the primary address: use our own target Elastic IP.
        let owned = recorded
            .as_ref()
            .filter(|r| extra(r, "adopted") != Some("true"))
            .and_then(|r| Some((r.id.clone()?, extra_v4(r, "public_ip")?)));
        let (allocation_id, public) = match owned {
            Some(owned) => owned,
            None => {
                if recorded.is_some() {
                    // An adopted one that left the primary address: forget
                    // it (it was never ours to release).
                    ledger.remove(kinds::EIP, TARGET);
                    ledger.remove(kinds::PTR, TARGET);
                }
                *allocated += 1;
                self.allocate(ledger, journal, TARGET).await?
            }
        };
        notes.push(format!(
            "allocated Elastic IP {public} for the target; it replaces any automatic public \
             address of the instance's primary address until teardown"
        ));
        let assoc_extra = [
            ("allocation_id", allocation_id.clone()),
            ("eni", iface.id.clone()),
            ("private_ip", iface.primary.to_string()),
        ];
        ledger.put(entry(
            kinds::ASSOCIATION,
            TARGET,
            None,
            Intent,
            &assoc_extra,
        ));
        ledger.commit(journal)?;
        // Said before the call: the association moves the instance's
        // public address, and an SSH session to the old one drops.
        eprintln!(
            "AWS: the instance's public address becomes {public} now (the target's Elastic IP); \
             an SSH session to the old address drops: use tmux, or open a second session to {public}. \
             Teardown gives back a new automatic public address, not the old one."
        );
        let id = self
            .ec2
            .associate_address(&allocation_id, &iface.id, iface.primary)
            .await?;
        ledger.put(entry(
            kinds::ASSOCIATION,
            TARGET,
            Some(id),
            Created,
            &assoc_extra,
        ));
        let mut r = eip_entry(TARGET, allocation_id, public);
        r.address = Some(pair(public, iface.primary));
        ledger.put(r);
        ledger.commit(journal)?;
        Ok(pair(public, iface.primary))
    }
}

pub(super) fn eip_entry(slot: &str, id: String, public: Ipv4Addr) -> crate::Resource {
    let mut r = entry(
        kinds::EIP,
        slot,
        Some(id),
        Created,
        &[("public_ip", public.to_string())],
    );
    r.address = Some(crate::AddressPair::same(IpAddr::V4(public)));
    r
}

pub(super) fn internal(detail: String) -> Error {
    Error::Invalid {
        detail: format!("the deployment's AWS records are inconsistent: {detail}"),
    }
}

/// Up to `n` free addresses of the subnet, lowest first, skipping what AWS
/// reserves (the first four and the last address of every subnet).
pub(crate) fn free_addresses(
    network: Ipv4Addr,
    prefix: u8,
    used: &BTreeSet<Ipv4Addr>,
    n: usize,
) -> Vec<Ipv4Addr> {
    if prefix > 28 {
        return Vec::new();
    }
    let base = u32::from(network);
    let size = 1u64 << (32 - prefix);
    (4..size - 1)
        .map(|i| Ipv4Addr::from(base.wrapping_add(i as u32)))
        .filter(|a| !used.contains(a))
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_addresses_skip_reserved_and_used() {
        let used = BTreeSet::from([Ipv4Addr::new(10, 0, 1, 4), Ipv4Addr::new(10, 0, 1, 6)]);
        let got = free_addresses(Ipv4Addr::new(10, 0, 1, 0), 24, &used, 3);
        assert_eq!(
            got,
            [
                Ipv4Addr::new(10, 0, 1, 5),
                Ipv4Addr::new(10, 0, 1, 7),
                Ipv4Addr::new(10, 0, 1, 8)
            ]
        );
        // A /28 has 16 addresses, 11 usable.
        assert_eq!(
            free_addresses(Ipv4Addr::new(10, 0, 1, 0), 28, &BTreeSet::new(), 99).len(),
            11
        );
        assert!(free_addresses(Ipv4Addr::new(10, 0, 1, 0), 30, &BTreeSet::new(), 1).is_empty());
    }
}
