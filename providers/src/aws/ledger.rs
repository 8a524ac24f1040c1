//! The AWS resources of a deployment as the [`Journal`] holds them.
//!
//! Every entry carries a `slot` in `extra`: `hop-1`, `hop-2`, ... (the
//! distinct named lines, in order), `target`, or `interface` for the
//! source/destination check. One entry per (kind, slot). Resources of other
//! kinds in the journal are kept as they are.

use crate::{AddressPair, Journal, Resource, ResourceStatus, Result};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// Journal kinds written by the AWS provider.
pub mod kinds {
    /// An Elastic IP. `id`: allocation id (absent while `Intent`).
    /// `extra`: `slot`, `public_ip`, and `adopted = "true"` for a target
    /// Elastic IP that was on the instance before troll (never released).
    pub const EIP: &str = "aws-eip";
    /// A secondary private address. `id`: the address (chosen before the
    /// call, so an `Intent` names it exactly). `extra`: `slot`, `eni`.
    pub const PRIVATE_IP: &str = "aws-private-ip";
    /// An Elastic IP's association with a private address. `id`:
    /// association id (absent while `Intent`). `extra`: `slot`,
    /// `allocation_id`, `eni`, `private_ip`.
    pub const ASSOCIATION: &str = "aws-association";
    /// The interface's source/destination check, turned off. `id`: the
    /// interface id. `extra`: `slot = "interface"`, `previous` (`"true"` or
    /// `"false"`: what teardown restores).
    pub const SOURCE_DEST_CHECK: &str = "aws-source-dest-check";
    /// Reverse DNS set on an Elastic IP. `id`: allocation id. `extra`:
    /// `slot`, `name` (the full host name), `previous` (the custom PTR an
    /// adopted target had before, restored on teardown; empty if none).
    pub const PTR: &str = "aws-ptr";
    /// A forward A record troll wrote into the Route 53 zone. `id`: the
    /// name. `extra`: `slot` (`dns:<name>`, lower case), `name`, `address`
    /// (the Elastic IP it points at), `zone`.
    pub const ROUTE53: &str = "aws-route53-a";
}

pub(crate) const TARGET: &str = "target";
pub(crate) const INTERFACE: &str = "interface";

pub(crate) fn hop_slot(i: usize) -> String {
    format!("hop-{i}")
}

/// The hop number of a `hop-N` slot.
pub(crate) fn hop_number(slot: &str) -> Option<usize> {
    slot.strip_prefix("hop-")?.parse().ok()
}

/// Hops in order, then the target, then anything else.
pub(crate) fn slot_order(slot: &str) -> (usize, usize, String) {
    match hop_number(slot) {
        Some(n) => (0, n, String::new()),
        None if slot == TARGET => (1, 0, String::new()),
        None => (2, 0, slot.to_string()),
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Ledger {
    entries: Vec<Resource>,
}

impl Ledger {
    pub fn load<J: Journal + ?Sized>(journal: &J) -> Ledger {
        Ledger {
            entries: journal.resources(),
        }
    }

    /// Makes the current list durable.
    pub fn commit<J: Journal + ?Sized>(&self, journal: &mut J) -> Result<()> {
        journal.record(self.entries.clone())
    }

    pub fn get(&self, kind: &str, slot: &str) -> Option<&Resource> {
        self.entries
            .iter()
            .find(|r| r.kind == kind && slot_of(r) == Some(slot))
    }

    /// Every entry of `kind`, in slot order.
    pub fn all(&self, kind: &str) -> Vec<&Resource> {
        let mut found: Vec<&Resource> = self.entries.iter().filter(|r| r.kind == kind).collect();
        found.sort_by_key(|r| slot_order(slot_of(r).unwrap_or("")));
        found
    }

    /// Adds the entry or replaces the one of the same kind and slot.
    pub fn put(&mut self, entry: Resource) {
        let slot = slot_of(&entry).map(str::to_string);
        match self
            .entries
            .iter_mut()
            .find(|r| r.kind == entry.kind && slot_of(r).map(str::to_string) == slot)
        {
            Some(r) => *r = entry,
            None => self.entries.push(entry),
        }
    }

    pub fn remove(&mut self, kind: &str, slot: &str) {
        self.entries
            .retain(|r| !(r.kind == kind && slot_of(r) == Some(slot)));
    }

    /// Whether any entry of `kind` has this id.
    pub fn has_id(&self, kind: &str, id: &str) -> bool {
        self.entries
            .iter()
            .any(|r| r.kind == kind && r.id.as_deref() == Some(id))
    }

    /// Every slot that has an entry of an AWS kind (the Route 53 records
    /// aside: their slots are names, not addresses).
    pub fn slots(&self) -> Vec<String> {
        let mut slots: Vec<String> = self
            .entries
            .iter()
            .filter(|r| r.kind.starts_with("aws-") && r.kind != kinds::ROUTE53)
            .filter_map(|r| slot_of(r).map(str::to_string))
            .collect();
        slots.sort_by_key(|s| slot_order(s));
        slots.dedup();
        slots
    }
}

pub(crate) fn slot_of(r: &Resource) -> Option<&str> {
    r.extra.get("slot").map(String::as_str)
}

pub(crate) fn extra<'a>(r: &'a Resource, key: &str) -> Option<&'a str> {
    r.extra.get(key).map(String::as_str)
}

pub(crate) fn extra_v4(r: &Resource, key: &str) -> Option<Ipv4Addr> {
    extra(r, key).and_then(|v| v.parse().ok())
}

/// A new entry.
pub(crate) fn entry(
    kind: &str,
    slot: &str,
    id: Option<String>,
    status: ResourceStatus,
    extra: &[(&str, String)],
) -> Resource {
    let mut map = BTreeMap::from([("slot".to_string(), slot.to_string())]);
    for (k, v) in extra {
        map.insert((*k).to_string(), v.clone());
    }
    Resource {
        kind: kind.to_string(),
        id,
        address: None,
        status,
        extra: map,
    }
}

pub(crate) fn pair(public: Ipv4Addr, local: Ipv4Addr) -> AddressPair {
    AddressPair {
        public: IpAddr::V4(public),
        local: IpAddr::V4(local),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryJournal;

    #[test]
    fn one_entry_per_kind_and_slot_and_others_kept() {
        let mut journal = MemoryJournal::default();
        let foreign = Resource {
            kind: "vultr-ipv4".into(),
            id: Some("x".into()),
            address: None,
            status: ResourceStatus::Created,
            extra: BTreeMap::new(),
        };
        journal.resources.push(foreign.clone());
        let mut ledger = Ledger::load(&journal);
        ledger.put(entry(
            kinds::EIP,
            "hop-2",
            None,
            ResourceStatus::Intent,
            &[],
        ));
        ledger.put(entry(
            kinds::EIP,
            "hop-1",
            None,
            ResourceStatus::Intent,
            &[],
        ));
        ledger.put(entry(
            kinds::EIP,
            "hop-2",
            Some("eipalloc-2".into()),
            ResourceStatus::Created,
            &[],
        ));
        ledger.put(entry(kinds::EIP, TARGET, None, ResourceStatus::Intent, &[]));
        ledger.commit(&mut journal).unwrap();
        assert_eq!(journal.resources.len(), 4);
        assert_eq!(journal.resources[0], foreign);
        let slots: Vec<_> = ledger
            .all(kinds::EIP)
            .iter()
            .map(|r| slot_of(r).unwrap())
            .collect();
        assert_eq!(slots, ["hop-1", "hop-2", "target"]);
        assert!(ledger.has_id(kinds::EIP, "eipalloc-2"));
        ledger.remove(kinds::EIP, "hop-2");
        assert_eq!(ledger.slots(), ["hop-1", "target"]);
        assert_eq!(hop_number("hop-12"), Some(12));
        assert_eq!(hop_number("target"), None);
    }
}
