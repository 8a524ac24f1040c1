//! The forward A records of the names, in a Route 53 hosted zone the
//! operator names (`--route53-zone`): AWS sets an Elastic IP's reverse DNS
//! only when the name's A record points at it, so with a zone troll
//! publishes those records itself instead of printing them.
//!
//! Crash safety as for EC2: every record is journalled (kind
//! [`kinds::ROUTE53`], `Intent`) before the ChangeResourceRecordSets call
//! that UPSERTs it, and `Created` once Route 53 reports the change INSYNC.
//! A record is deleted only while it still holds exactly the address troll
//! wrote (Route 53 deletes only an exact match), so a record somebody
//! changed since is left alone.

use super::dns::{same_name, ForwardRecord};
use super::ec2::map_sdk_error;
use super::ledger::{entry, extra, extra_v4, kinds, Ledger};
use super::{AwsProvider, PtrWait};
use crate::{Error, Journal, ResourceStatus, Result};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecord, ResourceRecordSet, RrType,
};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Instant;

/// The TTL of the A records troll writes.
pub const RECORD_TTL: i64 = 300;

/// A Route 53 hosted zone troll writes the forward records into.
#[derive(Debug, Clone)]
pub(crate) struct Route53 {
    client: aws_sdk_route53::Client,
    /// The zone id without the `/hostedzone/` prefix.
    zone: String,
}

/// The journal slot of a forward record: its name, lower case.
pub(crate) fn record_slot(name: &str) -> String {
    format!("dns:{}", name.trim_end_matches('.').to_ascii_lowercase())
}

fn a_record(name: &str, address: Ipv4Addr, ttl: i64) -> Result<ResourceRecordSet> {
    let value = ResourceRecord::builder()
        .value(address.to_string())
        .build()
        .map_err(build_error)?;
    ResourceRecordSet::builder()
        .name(format!("{}.", name.trim_end_matches('.')))
        .r#type(RrType::A)
        .ttl(ttl)
        .resource_records(value)
        .build()
        .map_err(build_error)
}

fn build_error(e: aws_sdk_route53::error::BuildError) -> Error {
    Error::Invalid {
        detail: format!("a Route 53 record: {e}"),
    }
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change> {
    Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .map_err(build_error)
}

impl Route53 {
    pub(crate) fn new(client: aws_sdk_route53::Client, zone: &str) -> Result<Route53> {
        let zone = zone.trim().trim_start_matches("/hostedzone/").to_string();
        if zone.is_empty() || !zone.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(Error::Invalid {
                detail: format!(
                    "the Route 53 zone id {zone:?} is not one (it looks like Z0123456789ABCDEFGHIJ; \
                     `aws route53 list-hosted-zones` lists them)"
                ),
            });
        }
        Ok(Route53 { client, zone })
    }

    pub(crate) fn zone(&self) -> &str {
        &self.zone
    }

    /// Sends one change batch and waits (bounded by `wait`) until Route 53
    /// reports it INSYNC.
    async fn apply(&self, changes: Vec<Change>, wait: PtrWait) -> Result<()> {
        let batch = ChangeBatch::builder()
            .comment("troll forward records")
            .set_changes(Some(changes))
            .build()
            .map_err(build_error)?;
        let out = self
            .client
            .change_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| route53_error("route53:ChangeResourceRecordSets", &self.zone, e))?;
        let Some(info) = out.change_info() else {
            return Ok(());
        };
        let id = info.id().to_string();
        let mut status = info.status().clone();
        let deadline = Instant::now() + wait.timeout;
        while status != ChangeStatus::Insync {
            if Instant::now() >= deadline {
                return Err(Error::Api {
                    provider: super::PROVIDER,
                    operation: format!("route53:GetChange {id}"),
                    detail: format!(
                        "the change is still {} after {:?}; run the command again later",
                        status.as_str(),
                        wait.timeout
                    ),
                });
            }
            tokio::time::sleep(wait.interval).await;
            let got = self
                .client
                .get_change()
                .id(&id)
                .send()
                .await
                .map_err(|e| route53_error("route53:GetChange", &id, e))?;
            status = got
                .change_info()
                .map(|c| c.status().clone())
                .unwrap_or(ChangeStatus::Insync);
        }
        Ok(())
    }

    /// The A record set of `name` in the zone, if there is one.
    async fn find(&self, name: &str) -> Result<Option<ResourceRecordSet>> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(&self.zone)
            .start_record_name(&fqdn)
            .start_record_type(RrType::A)
            .max_items(1)
            .send()
            .await
            .map_err(|e| route53_error("route53:ListResourceRecordSets", &self.zone, e))?;
        Ok(out
            .resource_record_sets()
            .iter()
            .find(|s| same_name(s.name(), name) && *s.r#type() == RrType::A)
            .cloned())
    }
}

fn route53_error<E>(
    action: &'static str,
    subject: &str,
    err: aws_sdk_route53::error::SdkError<E, aws_sdk_route53::config::http::HttpResponse>,
) -> Error
where
    E: aws_sdk_route53::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    use aws_sdk_route53::error::ProvideErrorMetadata;
    match err.code() {
        Some("NoSuchHostedZone") => Error::NotFound {
            provider: super::PROVIDER,
            what: format!(
                "Route 53 hosted zone {subject} (check --route53-zone: `aws route53 list-hosted-zones`)"
            ),
        },
        Some("InvalidChangeBatch" | "InvalidInput") => Error::Conflict {
            provider: super::PROVIDER,
            detail: format!(
                "{action} in zone {subject}: {} (the names must lie under the zone's domain)",
                err.message().unwrap_or_default()
            ),
        },
        _ => map_sdk_error(action, subject, err),
    }
}

impl AwsProvider {
    /// Makes the zone hold exactly the deployment's forward records:
    /// UPSERTs `wanted` (those not already written), waits for INSYNC,
    /// then deletes the records troll wrote before that are no longer
    /// wanted. Returns the names now published. Without a zone, nothing.
    pub(crate) async fn sync_forward<J: Journal + ?Sized>(
        &self,
        wanted: &[ForwardRecord],
        ledger: &mut Ledger,
        journal: &mut J,
    ) -> Result<BTreeSet<String>> {
        let Some(r53) = &self.route53 else {
            return Ok(BTreeSet::new());
        };
        let fresh: Vec<&ForwardRecord> = wanted
            .iter()
            .filter(|w| {
                !ledger
                    .get(kinds::ROUTE53, &record_slot(&w.name))
                    .is_some_and(|r| {
                        r.status == ResourceStatus::Created
                            && extra_v4(r, "address") == Some(w.address)
                    })
            })
            .collect();
        if !fresh.is_empty() {
            let mut changes = Vec::with_capacity(fresh.len());
            for w in &fresh {
                ledger.put(record_entry(w, r53.zone(), ResourceStatus::Intent));
                changes.push(change(
                    ChangeAction::Upsert,
                    a_record(&w.name, w.address, RECORD_TTL)?,
                )?);
            }
            ledger.commit(journal)?;
            r53.apply(changes, self.ptr_wait).await?;
            for w in &fresh {
                ledger.put(record_entry(w, r53.zone(), ResourceStatus::Created));
            }
            ledger.commit(journal)?;
        }
        let keep: BTreeSet<String> = wanted.iter().map(|w| record_slot(&w.name)).collect();
        self.delete_forward(ledger, journal, &keep).await?;
        Ok(wanted.iter().map(|w| w.name.to_ascii_lowercase()).collect())
    }

    /// Deletes every record troll wrote whose slot is not in `keep`, when
    /// it still holds the address troll wrote; forgets it either way.
    /// Returns how many records were deleted.
    pub(crate) async fn delete_forward<J: Journal + ?Sized>(
        &self,
        ledger: &mut Ledger,
        journal: &mut J,
        keep: &BTreeSet<String>,
    ) -> Result<usize> {
        let stale: Vec<(String, String, Ipv4Addr)> = ledger
            .all(kinds::ROUTE53)
            .into_iter()
            .filter_map(|r| {
                let slot = extra(r, "slot")?.to_string();
                let name = extra(r, "name")?.to_string();
                Some((slot, name, extra_v4(r, "address")?))
            })
            .filter(|(slot, _, _)| !keep.contains(slot))
            .collect();
        if stale.is_empty() {
            return Ok(0);
        }
        let Some(r53) = &self.route53 else {
            return Err(Error::Invalid {
                detail: format!(
                    "the deployment wrote {} Route 53 record(s) but this run has no zone; give \
                     --route53-zone again",
                    stale.len()
                ),
            });
        };
        let mut changes = Vec::new();
        for (_, name, address) in &stale {
            // Route 53 deletes only an exact match: send what it holds,
            // and only when that is the one address troll wrote.
            if let Some(set) = r53.find(name).await? {
                let values: Vec<&str> = set.resource_records().iter().map(|v| v.value()).collect();
                if values == [address.to_string().as_str()] {
                    changes.push(change(ChangeAction::Delete, set)?);
                }
            }
        }
        let deleted = changes.len();
        if !changes.is_empty() {
            r53.apply(changes, self.ptr_wait).await?;
        }
        for (slot, _, _) in &stale {
            ledger.remove(kinds::ROUTE53, slot);
        }
        ledger.commit(journal)?;
        Ok(deleted)
    }
}

fn record_entry(w: &ForwardRecord, zone: &str, status: ResourceStatus) -> crate::Resource {
    entry(
        kinds::ROUTE53,
        &record_slot(&w.name),
        Some(w.name.clone()),
        status,
        &[
            ("name", w.name.clone()),
            ("address", w.address.to_string()),
            ("zone", zone.to_string()),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_are_checked() {
        let client = aws_sdk_route53::Client::from_conf(
            aws_sdk_route53::Config::builder()
                .behavior_version(aws_config::BehaviorVersion::latest())
                .build(),
        );
        assert_eq!(
            Route53::new(client.clone(), "/hostedzone/Z123ABC")
                .unwrap()
                .zone(),
            "Z123ABC"
        );
        assert!(Route53::new(client.clone(), "").is_err());
        assert!(Route53::new(client, "example.com").is_err());
        assert_eq!(record_slot("Hi.Example.com."), "dns:hi.example.com");
    }

    #[test]
    fn records_are_absolute_a_records() {
        let set = a_record("hi.example.com", Ipv4Addr::new(3, 4, 5, 6), 300).unwrap();
        assert_eq!(set.name(), "hi.example.com.");
        assert_eq!(*set.r#type(), RrType::A);
        assert_eq!(set.ttl(), Some(300));
        assert_eq!(set.resource_records()[0].value(), "3.4.5.6");
    }
}
