//! Reverse DNS: set the names of the hops and the target, writing only what
//! changed, and report what the API has.

use super::api::{InstanceIpv4, ReverseIpv6};
use super::ledger::*;
use super::{PtrReport, PtrStatus, Vultr, BATCH, PROPAGATION_NOTE};
use crate::{Error, Journal, PtrRecord, ResourceStatus, Result};
use futures_util::{stream, StreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The API's current names, read for the families asked about.
struct Names {
    ipv4: Option<Vec<InstanceIpv4>>,
    ipv6: Option<BTreeMap<Ipv6Addr, String>>,
}

impl Names {
    fn v4(&self, address: Ipv4Addr) -> Option<&InstanceIpv4> {
        self.ipv4.as_ref()?.iter().find(|a| a.ip == address)
    }

    /// The name Vultr reports, `None` for none.
    fn reported(&self, address: IpAddr) -> Option<String> {
        let name = match address {
            IpAddr::V4(a) => self.v4(a).map(|e| e.reverse.clone()),
            IpAddr::V6(a) => self.ipv6.as_ref()?.get(&a).cloned(),
        };
        name.filter(|n| !n.trim().is_empty())
    }
}

fn same_name(current: Option<&str>, wanted: &str) -> bool {
    current.is_some_and(|c| c.trim_end_matches('.') == wanted.trim_end_matches('.'))
}

fn check_name(record: &PtrRecord) -> Result<()> {
    let name = &record.name;
    if name.trim_end_matches('.').is_empty()
        || name.len() > 253
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Error::Invalid {
            detail: format!(
                "{:?} cannot be the reverse DNS name of {}: a host name has no spaces and at most 253 characters",
                name, record.address
            ),
        });
    }
    Ok(())
}

impl Vultr {
    /// Reads the names the API has for the families in `addresses`.
    async fn names(&self, addresses: impl Iterator<Item = IpAddr> + Clone) -> Result<Names> {
        let id = &self.instance_id;
        let (want_v4, want_v6) = (
            addresses.clone().any(|a| a.is_ipv4()),
            addresses.clone().any(|a| a.is_ipv6()),
        );
        let v4 = async {
            if want_v4 {
                self.client.list_instance_ipv4(id).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let v6 = async {
            if want_v6 {
                self.client
                    .list_reverse_ipv6(id)
                    .await
                    .map(|list: Vec<ReverseIpv6>| {
                        Some(list.into_iter().map(|r| (r.ip, r.reverse)).collect())
                    })
            } else {
                Ok(None)
            }
        };
        let (ipv4, ipv6) = tokio::try_join!(v4, v6)?;
        Ok(Names { ipv4, ipv6 })
    }

    /// Sets the reverse DNS name of every record's address (the hops and
    /// the target) through the API, writing only names that differ from
    /// what the API has. Each name troll writes is recorded in `journal`
    /// first (with the name it replaces, on addresses troll did not
    /// allocate), so teardown can reset it.
    pub async fn set_ptrs<J: Journal + ?Sized>(
        &self,
        journal: &mut J,
        records: &[PtrRecord],
    ) -> Result<PtrReport> {
        let mut seen = BTreeSet::new();
        for r in records {
            check_name(r)?;
            if !seen.insert(r.address) {
                return Err(Error::DuplicateAddress { address: r.address });
            }
        }
        let want_v6 = records.iter().any(|r| r.address.is_ipv6());
        let instance = async {
            if want_v6 {
                self.client.get_instance(&self.instance_id).await.map(Some)
            } else {
                Ok(None)
            }
        };
        let (instance, names) =
            tokio::try_join!(instance, self.names(records.iter().map(|r| r.address)))?;

        let mut changed = Vec::new();
        let mut unchanged = Vec::new();
        for r in records {
            match r.address {
                IpAddr::V4(a) if names.v4(a).is_none() => {
                    return Err(Error::Invalid {
                        detail: format!(
                            "{a} is not an address of instance {}; provision it first",
                            self.instance_id
                        ),
                    })
                }
                IpAddr::V6(a)
                    if !instance
                        .as_ref()
                        .and_then(|i| i.v6)
                        .is_some_and(|n| n.contains(a)) =>
                {
                    return Err(Error::Invalid {
                        detail: format!(
                            "{a} is not in the IPv6 network of instance {}",
                            self.instance_id
                        ),
                    })
                }
                _ => {}
            }
            let current = names.reported(r.address);
            if same_name(current.as_deref(), &r.name) {
                unchanged.push(r.clone());
            } else {
                changed.push((r.clone(), current));
            }
        }

        let mut ledger = Ledger::open(journal);
        let owned: BTreeSet<IpAddr> = [KIND_IPV4, KIND_RESERVED, KIND_IPV6]
            .iter()
            .flat_map(|k| ledger.addresses(k))
            .collect();
        for (r, current) in &changed {
            let entry = ledger
                .items
                .iter_mut()
                .find(|x| x.kind == KIND_PTR && x.address.map(|a| a.public) == Some(r.address));
            match entry {
                Some(entry) => {
                    entry.extra.insert(EXTRA_NAME.to_string(), r.name.clone());
                    entry.status = ResourceStatus::Intent;
                }
                None => {
                    let mut extra = vec![
                        (EXTRA_INSTANCE, self.instance_id.clone()),
                        (EXTRA_NAME, r.name.clone()),
                    ];
                    if let (false, Some(previous)) = (owned.contains(&r.address), current) {
                        extra.push((EXTRA_PREVIOUS, previous.clone()));
                    }
                    ledger.items.push(resource(
                        KIND_PTR,
                        None,
                        Some(r.address),
                        ResourceStatus::Intent,
                        &extra,
                    ));
                }
            }
        }
        if !changed.is_empty() {
            ledger.save()?;
        }

        let steps = self.steps(changed.len(), "setting reverse DNS on Vultr");
        let one = |r: PtrRecord| async move {
            let done = match r.address {
                IpAddr::V4(a) => {
                    self.client
                        .set_reverse_ipv4(&self.instance_id, a, &r.name)
                        .await
                }
                IpAddr::V6(a) => {
                    self.client
                        .set_reverse_ipv6(&self.instance_id, a, &r.name)
                        .await
                }
            };
            (r, done)
        };
        let to_write: Vec<PtrRecord> = changed.iter().map(|(r, _)| r.clone()).collect();
        let mut results = stream::iter(to_write).map(one).buffer_unordered(BATCH);
        let mut error = None;
        while let Some((r, done)) = results.next().await {
            match done {
                Ok(()) => {
                    if let Some(entry) = ledger.items.iter_mut().find(|x| {
                        x.kind == KIND_PTR && x.address.map(|a| a.public) == Some(r.address)
                    }) {
                        entry.status = ResourceStatus::Created;
                    }
                    ledger.save()?;
                    steps.inc(&format!("{} -> {}", r.address, r.name));
                }
                Err(e) => {
                    steps.note(&e.to_string());
                    error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
        steps.finish(&format!(
            "{} changed, {} unchanged",
            changed.len(),
            unchanged.len()
        ));
        Ok(PtrReport {
            changed: changed.into_iter().map(|(r, _)| r).collect(),
            unchanged,
            note: PROPAGATION_NOTE,
        })
    }

    /// The reverse DNS name the API reports for each address, in order.
    pub async fn ptr_status(&self, addresses: &[IpAddr]) -> Result<Vec<PtrStatus>> {
        let names = self.names(addresses.iter().copied()).await?;
        Ok(addresses
            .iter()
            .map(|&address| PtrStatus {
                address,
                reported: names.reported(address),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_without_the_root_dot() {
        assert!(same_name(Some("a.example."), "a.example"));
        assert!(!same_name(Some("A.example"), "a.example"));
        assert!(!same_name(None, "a.example"));
    }

    #[test]
    fn names_with_spaces_are_refused() {
        let r = PtrRecord {
            address: "192.0.2.1".parse().unwrap(),
            name: "two words".into(),
        };
        assert!(check_name(&r).is_err());
    }
}
