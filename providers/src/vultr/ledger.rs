//! The deployment's journal as the Vultr provider uses it: a working copy
//! of the resource list, written back whole after every change, so that
//! what is on disk always says what may exist at Vultr.

use crate::{AddressPair, Journal, Resource, ResourceStatus, Result};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// An additional IPv4 on the instance; `id` is the address (Vultr names
/// additional IPv4s by address).
pub const KIND_IPV4: &str = "vultr-ipv4";
/// A reserved IPv4 created with the deployment's label; `id` is Vultr's id.
pub const KIND_RESERVED: &str = "vultr-reserved-ip";
/// An IPv6 hop address taken from the instance's /64 (nothing to create).
pub const KIND_IPV6: &str = "vultr-ipv6";
/// A reverse DNS name troll set, with the name it replaced if any.
pub const KIND_PTR: &str = "vultr-ptr";

/// `extra` keys.
pub const EXTRA_INSTANCE: &str = "instance";
/// Marks one intent so its outcome can replace it.
pub const EXTRA_INTENT: &str = "intent";
/// On an additional-IPv4 intent: the instance's secondary addresses before
/// the create call, comma-separated.
pub const EXTRA_BEFORE: &str = "before";
pub const EXTRA_LABEL: &str = "label";
pub const EXTRA_REGION: &str = "region";
/// On an IPv6 hop: the network it was taken from, `prefix/len`.
pub const EXTRA_NETWORK: &str = "network";
/// On a PTR: the name troll set.
pub const EXTRA_NAME: &str = "name";
/// On a PTR of an address troll did not allocate: the name it had before.
pub const EXTRA_PREVIOUS: &str = "previous";

pub(crate) struct Ledger<'j, J: Journal + ?Sized> {
    journal: &'j mut J,
    pub items: Vec<Resource>,
}

impl<'j, J: Journal + ?Sized> Ledger<'j, J> {
    pub fn open(journal: &'j mut J) -> Ledger<'j, J> {
        let items = journal.resources();
        Ledger { journal, items }
    }

    /// Makes the working copy durable.
    pub fn save(&mut self) -> Result<()> {
        self.journal.record(self.items.clone())
    }

    pub fn of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.items.iter().filter(move |r| r.kind == kind)
    }

    pub fn created<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.of(kind)
            .filter(|r| r.status == ResourceStatus::Created)
    }

    pub fn intents<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Resource> + 'a {
        self.of(kind).filter(|r| r.status == ResourceStatus::Intent)
    }

    /// The public addresses of created resources of `kind`.
    pub fn addresses(&self, kind: &str) -> Vec<IpAddr> {
        self.created(kind)
            .filter_map(|r| r.address.map(|a| a.public))
            .collect()
    }

    /// Removes the resources `pred` selects; says whether any was.
    pub fn remove(&mut self, pred: impl Fn(&Resource) -> bool) -> bool {
        let before = self.items.len();
        self.items.retain(|r| !pred(r));
        self.items.len() != before
    }

    /// Replaces the intent marked `token` with `resource`.
    pub fn fulfil(&mut self, token: &str, resource: Resource) {
        match self
            .items
            .iter_mut()
            .find(|r| r.extra.get(EXTRA_INTENT).map(String::as_str) == Some(token))
        {
            Some(slot) => *slot = resource,
            None => self.items.push(resource),
        }
    }
}

/// A resource of `kind` with `extra` built from pairs.
pub(crate) fn resource(
    kind: &str,
    id: Option<String>,
    address: Option<IpAddr>,
    status: ResourceStatus,
    extra: &[(&str, String)],
) -> Resource {
    Resource {
        kind: kind.to_string(),
        id,
        address: address.map(AddressPair::same),
        status,
        extra: extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// A token that marks one intent.
pub(crate) fn token() -> String {
    format!("{:016x}", fastrand::u64(..))
}
