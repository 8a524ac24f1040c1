//! Test support for the Vultr provider: a stateful fake of the API, a
//! recording proxy for Prism, and the lifecycle the tests run.
#![allow(dead_code)]

pub mod fake;
pub mod http;
pub mod proxy;

#[path = "../common/notes.rs"]
mod notes;
#[allow(unused_imports)] // Not every test crate looks at notes.
pub use notes::note;

use std::net::IpAddr;
use std::time::Duration;
use troll_providers::vultr::{ApiKey, Client, ProvisionRequest, Provisioned, Settings, Vultr};
use troll_providers::{Journal, MemoryJournal, PtrRecord, Resource};

/// The key the fake accepts.
pub const KEY: &str = "tk-7f3a9c41e2b84d6a0c55d1e9";
pub const DEPLOYMENT: &str = "show1";

/// Settings for tests: short time-outs, a small retry budget, no pacing to
/// speak of, no progress output.
pub fn fast_settings(url: &str) -> Settings {
    Settings {
        base_url: url.to_string(),
        request_timeout: Duration::from_millis(400),
        retry_budget: Duration::from_secs(3),
        backoff_initial: Duration::from_millis(5),
        backoff_max: Duration::from_millis(40),
        max_requests_per_second: 10_000,
        max_in_flight: 8,
        lock_wait: Duration::from_secs(3),
        show_progress: false,
    }
}

/// What the tests provision: troll may turn IPv6 on, never restarts.
pub const fn request(ipv4: usize, ipv6: usize, reserved: bool) -> ProvisionRequest {
    ProvisionRequest {
        ipv4,
        ipv6,
        reserved,
        modify_instance: true,
        reboot: false,
    }
}

/// The provider on `fake`'s instance with [`fast_settings`].
pub fn on_fake(fake: &fake::Fake) -> Vultr {
    provider(fast_settings(&fake.url()))
}

/// A test's start: `fake`, its world as the test found it, the provider on
/// it, and the journal the test begins with.
pub fn started(
    fake: fake::Fake,
    journal: MemoryJournal,
) -> (fake::Fake, fake::World, Vultr, MemoryJournal) {
    let before = fake.world();
    let v = on_fake(&fake);
    (fake, before, v, journal)
}

pub fn provider(settings: Settings) -> Vultr {
    provider_with_key(settings, KEY)
}

pub fn provider_with_key(settings: Settings, key: &str) -> Vultr {
    let client = Client::new(settings, ApiKey::new(key).expect("a valid key")).expect("client");
    Vultr::new(client, fake::INSTANCE, DEPLOYMENT).expect("provider")
}

/// A name per hop and one for the target, as `set-message` would make.
pub fn records_for(p: &Provisioned) -> Vec<PtrRecord> {
    let mut records: Vec<PtrRecord> = p
        .ipv4
        .iter()
        .chain(&p.ipv6)
        .enumerate()
        .map(|(i, a)| PtrRecord {
            address: a.public,
            name: format!("Hop-{}.never.gonna.give.you.up", i + 1),
        })
        .collect();
    for t in std::iter::once(p.target_v4).chain(p.target_v6) {
        records.push(PtrRecord {
            address: t.public,
            name: "The-End.troll.example".into(),
        });
    }
    records
}

/// provision, set the PTRs, read them back, tear down.
pub async fn lifecycle(
    v: &Vultr,
    journal: &mut MemoryJournal,
    request: ProvisionRequest,
) -> troll_providers::Result<()> {
    let p = v.provision(journal, request).await?;
    let records = records_for(&p);
    v.set_ptrs(journal, &records).await?;
    let addresses: Vec<IpAddr> = records.iter().map(|r| r.address).collect();
    v.ptr_status(&addresses).await?;
    v.teardown(journal).await?;
    Ok(())
}

/// The Vultr resources still in a journal.
pub fn vultr_left(journal: &MemoryJournal) -> Vec<Resource> {
    journal
        .resources()
        .into_iter()
        .filter(|r| r.kind.starts_with("vultr-"))
        .collect()
}

/// A resource of another part of troll, which the provider must keep.
pub fn foreign_resource() -> Resource {
    Resource {
        kind: "rules".into(),
        id: Some("troll-chain".into()),
        address: None,
        status: troll_providers::ResourceStatus::Created,
        extra: Default::default(),
    }
}
