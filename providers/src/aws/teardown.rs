//! `teardown`: everything the deployment created, given back in the
//! order AWS requires (reverse DNS reset and waited for, associations,
//! Elastic IPs, secondary private addresses, the source/destination
//! check, the Route 53 records troll wrote), after the same reconciling as `provision`, so that it can be
//! run again after any failure.

use super::dns::is_custom_ptr;
use super::ec2::{Eip, Interface};
use super::ledger::{extra, extra_v4, kinds, Ledger, INTERFACE, TARGET};
use super::provision::Tagged;
use super::{AwsProvider, TeardownReport, PROVIDER};
use crate::{Error, Journal, Result};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Instant;

impl AwsProvider {
    /// Gives back everything this deployment created, in the order AWS
    /// requires: reverse DNS reset (and waited for), associations removed,
    /// Elastic IPs released (those the journal knows and those carrying the
    /// deployment's tags), secondary private addresses unassigned, the
    /// source/destination check restored. A target Elastic IP that was
    /// there before troll keeps its address and gets its old PTR back.
    /// Nothing else is touched. Safe to run again after any failure.
    pub async fn teardown<J: Journal + ?Sized>(&self, journal: &mut J) -> Result<TeardownReport> {
        let mut ledger = Ledger::load(journal);
        let mut report = TeardownReport::default();
        let iface = match self.interface().await {
            Ok(iface) => Some(iface),
            Err(Error::NotFound { what, .. }) => {
                report.warnings.push(format!(
                    "AWS has no {what}: releasing the Elastic IPs only (private addresses go with the interface)"
                ));
                None
            }
            Err(e) => return Err(e),
        };
        let tagged = self.reconcile(&mut ledger, journal, iface.as_ref()).await?;
        self.restore_adopted_target(&mut ledger, journal, &mut report)
            .await?;
        let slots: BTreeSet<String> = ledger
            .slots()
            .into_iter()
            .filter(|s| s != INTERFACE)
            .collect();
        self.dismantle(
            &mut ledger,
            journal,
            &slots,
            &tagged,
            iface.as_ref(),
            &mut report,
        )
        .await?;
        report.forward_deleted = self
            .delete_forward(&mut ledger, journal, &BTreeSet::new())
            .await?;

        if let Some(r) = ledger.get(kinds::SOURCE_DEST_CHECK, INTERFACE).cloned() {
            let previous = extra(&r, "previous") != Some("false");
            if let Some(iface) = iface.as_ref().filter(|i| Some(&i.id) == r.id.as_ref()) {
                if iface.source_dest_check != Some(previous) {
                    self.ec2.set_source_dest_check(&iface.id, previous).await?;
                    report.source_dest_check_restored = Some(previous);
                }
            }
            ledger.remove(kinds::SOURCE_DEST_CHECK, INTERFACE);
            ledger.commit(journal)?;
        }
        Ok(report)
    }

    /// A target Elastic IP that was there before troll: give it back its
    /// old PTR (or none) and forget it.
    pub(super) async fn restore_adopted_target<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger,
        journal: &mut J,
        report: &mut TeardownReport,
    ) -> Result<()> {
        let Some(target) = ledger
            .get(kinds::EIP, TARGET)
            .filter(|r| extra(r, "adopted") == Some("true"))
            .cloned()
        else {
            return Ok(());
        };
        if let (Some(ptr), Some(id)) = (ledger.get(kinds::PTR, TARGET).cloned(), target.id.clone())
        {
            let previous = extra(&ptr, "previous").unwrap_or("").to_string();
            let public = extra_v4(&target, "public_ip");
            match self.ec2.ptrs(std::slice::from_ref(&id)).await {
                Ok(states) => {
                    // What AWS will have once the update in flight is done.
                    let current = states.first().and_then(|s| match &s.update {
                        Some(u) if u.is_pending() => (!u.value.is_empty()).then(|| u.value.clone()),
                        _ => s.ptr.clone(),
                    });
                    let same = if previous.is_empty() {
                        !is_custom_ptr(current.as_deref())
                    } else {
                        current
                            .as_deref()
                            .is_some_and(|c| super::dns::same_name(c, &previous))
                    };
                    if !same {
                        if previous.is_empty() {
                            self.ec2.reset_ptr(&id).await?;
                        } else if let Err(e) = self.ec2.set_ptr(&id, &previous).await {
                            report.warnings.push(format!(
                                "could not give the target's Elastic IP its old reverse DNS {previous}: {e}"
                            ));
                        }
                        report.ptrs_reset.extend(public);
                    }
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        ledger.remove(kinds::PTR, TARGET);
        ledger.remove(kinds::EIP, TARGET);
        ledger.remove(kinds::ASSOCIATION, TARGET);
        ledger.commit(journal)
    }

    /// Gives back the owned Elastic IPs of `slots` and the orphans, and
    /// the private addresses of `slots`: PTRs reset and waited for,
    /// disassociated, released, unassigned; journal updated after each.
    pub(super) async fn dismantle<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger,
        journal: &mut J,
        slots: &BTreeSet<String>,
        tagged: &Tagged,
        iface: Option<&Interface>,
        report: &mut TeardownReport,
    ) -> Result<()> {
        // Only what carries the deployment's tags is released.
        let mut victims: Vec<(Option<String>, &Eip)> = Vec::new();
        for slot in slots {
            let owned_id = ledger
                .get(kinds::EIP, slot)
                .filter(|r| extra(r, "adopted") != Some("true"))
                .and_then(|r| r.id.clone());
            if let Some(e) =
                owned_id.and_then(|id| tagged.all.iter().find(|e| e.allocation_id == id))
            {
                victims.push((Some(slot.clone()), e));
            }
        }
        victims.extend(tagged.orphans.iter().map(|e| (None, e)));

        // 1. Reverse DNS: an Elastic IP with a PTR cannot be released.
        let ids: Vec<String> = victims
            .iter()
            .map(|(_, e)| e.allocation_id.clone())
            .collect();
        let mut waiting = Vec::new();
        for state in self.ec2.ptrs(&ids).await? {
            let reset_in_flight = state
                .update
                .as_ref()
                .is_some_and(|u| u.is_pending() && u.value.is_empty());
            let busy = is_custom_ptr(state.ptr.as_deref())
                || state.update.as_ref().is_some_and(|u| u.is_pending());
            if busy && !reset_in_flight {
                self.ec2.reset_ptr(&state.allocation_id).await?;
                if let Some((_, e)) = victims
                    .iter()
                    .find(|(_, e)| e.allocation_id == state.allocation_id)
                {
                    report.ptrs_reset.push(e.public_ip);
                }
            }
            if busy {
                waiting.push(state.allocation_id);
            }
        }
        self.wait_ptrs_clear(&waiting).await?;
        for slot in slots {
            ledger.remove(kinds::PTR, slot);
        }
        ledger.commit(journal)?;

        // 2. Associations.
        for (slot, e) in &victims {
            if let Some(association) = &e.association_id {
                self.ec2.disassociate_address(association).await?;
                report.disassociated += 1;
            }
            if let Some(slot) = slot {
                ledger.remove(kinds::ASSOCIATION, slot);
                ledger.commit(journal)?;
            }
        }

        // 3. Elastic IPs.
        for (slot, e) in &victims {
            self.ec2.release_address(&e.allocation_id).await?;
            report.released.push(e.public_ip);
            if let Some(slot) = slot {
                ledger.remove(kinds::EIP, slot);
                ledger.commit(journal)?;
            }
        }
        for slot in slots {
            let adopted = ledger
                .get(kinds::EIP, slot)
                .is_some_and(|r| extra(r, "adopted") == Some("true"));
            if !adopted {
                ledger.remove(kinds::EIP, slot);
                ledger.remove(kinds::ASSOCIATION, slot);
            }
        }
        ledger.commit(journal)?;

        // 4. Secondary private addresses.
        let mine: Vec<Ipv4Addr> = slots
            .iter()
            .filter_map(|s| ledger.get(kinds::PRIVATE_IP, s))
            .filter(|r| iface.is_some_and(|i| extra(r, "eni") == Some(i.id.as_str())))
            .filter_map(|r| r.id.as_deref()?.parse().ok())
            .filter(|ip| iface.is_some_and(|i| i.addresses.contains(ip) && *ip != i.primary))
            .collect();
        if let (Some(iface), false) = (iface, mine.is_empty()) {
            self.ec2
                .unassign_private_addresses(&iface.id, &mine)
                .await?;
            report.unassigned.extend(mine);
        }
        for slot in slots {
            ledger.remove(kinds::PRIVATE_IP, slot);
        }
        ledger.commit(journal)
    }

    /// Waits (bounded) until AWS has no PTR and no update in progress on
    /// any of `ids`.
    pub(super) async fn wait_ptrs_clear(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + self.ptr_wait.timeout;
        loop {
            let states = self.ec2.ptrs(ids).await?;
            let busy: Vec<_> = states
                .iter()
                .filter(|s| {
                    is_custom_ptr(s.ptr.as_deref())
                        || s.update.as_ref().is_some_and(|u| u.is_pending())
                })
                .collect();
            if busy.is_empty() {
                return Ok(());
            }
            if let Some(failed) = busy
                .iter()
                .find(|s| s.update.as_ref().is_some_and(|u| !u.is_pending()))
            {
                let reason = failed
                    .update
                    .as_ref()
                    .and_then(|u| u.reason.clone())
                    .unwrap_or_default();
                return Err(Error::Conflict {
                    provider: PROVIDER,
                    detail: format!(
                        "AWS did not remove the reverse DNS of {} ({reason}); the Elastic IP \
                         cannot be released until it does: run teardown again",
                        failed.allocation_id
                    ),
                });
            }
            if Instant::now() >= deadline {
                let names: Vec<&str> = busy.iter().map(|s| s.allocation_id.as_str()).collect();
                return Err(Error::Conflict {
                    provider: PROVIDER,
                    detail: format!(
                        "AWS is still removing the reverse DNS of {} after {} s; an Elastic IP \
                         with reverse DNS cannot be released: run teardown again later",
                        names.join(", "),
                        self.ptr_wait.timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(self.ptr_wait.interval).await;
        }
    }
}
