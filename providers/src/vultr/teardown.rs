//! `teardown`: give back exactly what the deployment holds at Vultr, and
//! nothing else, writing the journal as it goes so that a re-run finishes
//! an interrupted one.

use super::api::ReservedIp;
use super::ledger::*;
use super::{TeardownReport, Vultr, BATCH};
use crate::{Error, Journal, Resource, Result};
use futures_util::{stream, StreamExt};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

/// A delete that finds nothing to delete has done its job.
fn gone_is_done(result: Result<()>) -> Result<()> {
    match result {
        Err(Error::NotFound { .. }) => Ok(()),
        other => other,
    }
}

fn address_of(r: &Resource) -> Option<IpAddr> {
    r.address.map(|a| a.public)
}

impl Vultr {
    /// Resets the reverse DNS names troll set, deletes the additional IPv4s,
    /// and detaches and deletes the reserved IPs of this deployment (those
    /// in `journal`, those an interrupted run left behind per its intents,
    /// and those carrying its label), then forgets the IPv6 hop addresses.
    /// Every step is written to `journal` when done; after an error, running
    /// it again finishes the job. Other resources in `journal` are kept.
    pub async fn teardown<J: Journal + ?Sized>(&self, journal: &mut J) -> Result<TeardownReport> {
        let mut ledger = Ledger::open(journal);
        let mut report = TeardownReport::default();
        let ipv4 = async {
            match self.client.list_instance_ipv4(&self.instance_id).await {
                Ok(list) => Ok(Some(list)),
                // The instance is gone, and its additional addresses with it.
                Err(Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let has_v6_ptrs = ledger
            .of(KIND_PTR)
            .any(|r| matches!(address_of(r), Some(IpAddr::V6(_))));
        let reverse_v6 = async {
            if !has_v6_ptrs {
                return Ok(None);
            }
            match self.client.list_reverse_ipv6(&self.instance_id).await {
                Ok(list) => Ok(Some(list)),
                Err(Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        };
        let (ipv4, reserved, reverse_v6) =
            tokio::try_join!(ipv4, self.client.list_reserved_ips(), reverse_v6)?;
        // The reverse IPv6 entries Vultr has: one removed outside troll is
        // gone, not an error (the spec lists no 404 for its delete; Vultr
        // answers 400).
        let listed_v6: Option<BTreeSet<std::net::Ipv6Addr>> =
            reverse_v6.map(|l| l.into_iter().map(|e| e.ip).collect());
        report.adopted = self.reconcile(&mut ledger, ipv4.as_deref(), Some(&reserved))?;
        let on_instance: BTreeSet<Ipv4Addr> = ipv4.iter().flatten().map(|a| a.ip).collect();
        let instance_gone = ipv4.is_none();

        let steps = self.steps(
            ledger.of(KIND_PTR).count()
                + ledger.of(KIND_IPV4).count()
                + ledger.of(KIND_RESERVED).count(),
            "tearing down the Vultr deployment",
        );
        let mut error: Option<Error> = None;

        // 1. Reverse DNS names, while their addresses still exist.
        let ptrs: Vec<Resource> = ledger.of(KIND_PTR).cloned().collect();
        let one = |r: Resource| {
            let on_instance = &on_instance;
            let listed_v6 = &listed_v6;
            async move {
                let previous = r.extra.get(EXTRA_PREVIOUS).filter(|p| !p.is_empty());
                let id = &self.instance_id;
                let done = match address_of(&r) {
                    None => Ok(false),
                    Some(IpAddr::V4(a)) if !on_instance.contains(&a) => Ok(false),
                    Some(IpAddr::V4(a)) => match previous {
                        Some(p) => self.client.set_reverse_ipv4(id, a, p).await,
                        None => self.client.reset_reverse_ipv4(id, a).await,
                    }
                    .map(|()| true),
                    Some(IpAddr::V6(_)) if instance_gone => Ok(false),
                    Some(IpAddr::V6(a)) => match previous {
                        Some(p) => self.client.set_reverse_ipv6(id, a, p).await.map(|()| true),
                        None if listed_v6.as_ref().is_some_and(|l| !l.contains(&a)) => Ok(false),
                        None => self.delete_reverse_v6(a).await.map(|()| true),
                    },
                };
                // An address that vanished meanwhile has no name to reset.
                let done = match done {
                    Err(Error::NotFound { .. }) => Ok(false),
                    other => other,
                };
                (r, done)
            }
        };
        let mut results = stream::iter(ptrs).map(one).buffer_unordered(BATCH);
        while let Some((r, done)) = results.next().await {
            match done {
                Ok(reset) => {
                    ledger.remove(|x| x.kind == KIND_PTR && address_of(x) == address_of(&r));
                    ledger.save()?;
                    report.ptrs_reset += usize::from(reset);
                    steps.inc(&format!(
                        "reverse DNS of {}",
                        address_of(&r).map(|a| a.to_string()).unwrap_or_default()
                    ));
                }
                Err(e) => {
                    steps.note(&e.to_string());
                    error.get_or_insert(e);
                }
            }
        }
        drop(results);

        // 2. Additional IPv4s.
        let ipv4s: Vec<Resource> = ledger.of(KIND_IPV4).cloned().collect();
        let one = |r: Resource| {
            let on_instance = &on_instance;
            async move {
                let done = match address_of(&r) {
                    Some(IpAddr::V4(a)) if on_instance.contains(&a) => {
                        gone_is_done(self.client.delete_instance_ipv4(&self.instance_id, a).await)
                            .map(|()| Some(a))
                    }
                    _ => Ok(None),
                };
                (r, done)
            }
        };
        // One at a time: each delete starts a task on the instance.
        let mut results = stream::iter(ipv4s).map(one).buffered(1);
        while let Some((r, done)) = results.next().await {
            match done {
                Ok(deleted) => {
                    ledger.remove(|x| x == &r);
                    ledger.save()?;
                    report.ipv4_deleted.extend(deleted);
                    steps.inc(&format!(
                        "additional IPv4 {}",
                        r.id.as_deref().unwrap_or("")
                    ));
                }
                Err(e) => {
                    steps.note(&e.to_string());
                    error.get_or_insert(e);
                }
            }
        }
        drop(results);

        // 3. Reserved IPs: detach, then delete.
        let held: Vec<Resource> = ledger.of(KIND_RESERVED).cloned().collect();
        let one = |r: Resource| {
            let reserved = &reserved;
            async move {
                let listed = reserved
                    .iter()
                    .find(|l| Some(l.id.as_str()) == r.id.as_deref());
                let done = match listed {
                    None => Ok(None),
                    Some(l) => self.release_reserved(l).await.map(|()| Some(l.id.clone())),
                };
                (r, done)
            }
        };
        // One at a time: each detach starts a task on the instance.
        let mut results = stream::iter(held).map(one).buffered(1);
        while let Some((r, done)) = results.next().await {
            match done {
                Ok(deleted) => {
                    ledger.remove(|x| x == &r);
                    ledger.save()?;
                    report.reserved_deleted.extend(deleted);
                    steps.inc(&format!("reserved IP {}", r.id.as_deref().unwrap_or("")));
                }
                Err(e) => {
                    steps.note(&e.to_string());
                    error.get_or_insert(e);
                }
            }
        }
        drop(results);

        // 4. IPv6 hop addresses: nothing to give back but the record.
        if ledger.remove(|x| x.kind == KIND_IPV6) {
            ledger.save()?;
        }
        if let Some(e) = error {
            return Err(e);
        }
        steps.finish("done");
        Ok(report)
    }

    /// Deletes the reverse name of `a`. Vultr answers 400 (the spec lists
    /// no 404) for an entry that is not there, e.g. when a retried delete
    /// already went through: an entry the listing no longer shows is gone.
    async fn delete_reverse_v6(&self, a: std::net::Ipv6Addr) -> Result<()> {
        let id = &self.instance_id;
        match self.client.delete_reverse_ipv6(id, a).await {
            Err(e @ (Error::Conflict { .. } | Error::NotFound { .. })) => {
                let listed = self.client.list_reverse_ipv6(id).await?;
                if listed.iter().any(|r| r.ip == a) {
                    Err(e)
                } else {
                    Ok(())
                }
            }
            other => other,
        }
    }

    /// Detaches a reserved IP (when attached) and deletes it.
    async fn release_reserved(&self, reserved: &ReservedIp) -> Result<()> {
        if reserved.instance_id.is_some() {
            match self.client.detach_reserved_ip(&reserved.id).await {
                // Detached already (a retried call): deleting settles it.
                Ok(()) | Err(Error::Conflict { .. }) | Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        gone_is_done(self.client.delete_reserved_ip(&reserved.id).await)
    }
}
