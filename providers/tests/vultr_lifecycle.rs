//! The Vultr provider against a stateful fake of the API on 127.0.0.1:
//! the whole lifecycle leaves the fake exactly as it was, with faults
//! injected and with the client killed between any two calls.

mod vultr;

use std::net::IpAddr;
use std::time::{Duration, Instant};
use troll_providers::vultr::{ProvisionRequest, KIND_PTR, KIND_RESERVED};
use troll_providers::{Error, Journal, MemoryJournal};
use vultr::fake::{Fake, Fault, Gate, World, FOREIGN_IP, INSTANCE, MAIN_IP, V6_MAIN};
use vultr::*;

/// The label of this deployment's reserved IPs on [`INSTANCE`].
const LABEL: &str = "troll-show1 on cb676a46-66fd-4dfb-b839-443f2e6c0b60";

const ADDITIONAL: ProvisionRequest = request(2, 2, false);
const RESERVED: ProvisionRequest = request(2, 1, true);

fn journal() -> MemoryJournal {
    MemoryJournal {
        resources: vec![foreign_resource()],
    }
}

fn count(fake: &Fake, method: &str, path_prefix: &str) -> usize {
    fake.state()
        .log
        .iter()
        .filter(|l| l.method == method && l.path.starts_with(path_prefix))
        .count()
}

fn assert_clean(fake: &Fake, before: &World, journal: &MemoryJournal) {
    assert_eq!(&fake.world(), before, "the fake is not as it was");
    assert_eq!(
        vultr_left(journal),
        vec![],
        "Vultr resources left in the journal"
    );
    assert!(
        journal.resources.contains(&foreign_resource()),
        "another part's resource was dropped"
    );
}

#[tokio::test]
async fn additional_ipv4_and_ipv6_lifecycle_leaves_the_fake_as_it_was() {
    let (fake, before, v, mut j) = started(Fake::start(KEY), journal());

    let p = v.provision(&mut j, ADDITIONAL).await.unwrap();
    assert_eq!(p.ipv4.len(), 2);
    assert_eq!(p.ipv6.len(), 2);
    assert_eq!(p.created, 2);
    assert_eq!(p.target_v4.public, IpAddr::V4(MAIN_IP));
    assert_eq!(p.target_v6.map(|t| t.public), Some(IpAddr::V6(V6_MAIN)));
    assert_eq!(p.ipv6[0].public.to_string(), "2001:db8:5:6bb::1000");
    let recorded = j.resources();
    let v4: Vec<_> = recorded.iter().filter(|r| r.kind == "vultr-ipv4").collect();
    assert_eq!(v4.len(), 2);
    for r in &v4 {
        assert_eq!(r.status, troll_providers::ResourceStatus::Created);
        assert_eq!(r.id, r.address.map(|a| a.public.to_string()));
        assert_eq!(r.extra["instance"], INSTANCE);
        assert!(!r.extra.contains_key("intent"));
    }
    let v6: Vec<_> = recorded.iter().filter(|r| r.kind == "vultr-ipv6").collect();
    assert_eq!(v6.len(), 2);
    assert!(v6
        .iter()
        .all(|r| r.extra["network"] == "2001:db8:5:6bb::/64"));
    let world = fake.world();
    assert_eq!(
        world.additional(INSTANCE).len(),
        3,
        "two new and the foreign one"
    );
    assert!(world.additional(INSTANCE).contains(&FOREIGN_IP));

    // Idempotent: nothing new the second time.
    let creates = count(
        &fake,
        "POST",
        "/v2/instances/cb676a46-66fd-4dfb-b839-443f2e6c0b60/ipv4",
    );
    let again = v.provision(&mut j, ADDITIONAL).await.unwrap();
    assert_eq!(again.created, 0);
    assert_eq!(again.ipv4, p.ipv4);
    assert_eq!(again.ipv6, p.ipv6);
    assert_eq!(
        count(
            &fake,
            "POST",
            "/v2/instances/cb676a46-66fd-4dfb-b839-443f2e6c0b60/ipv4"
        ),
        creates
    );

    let records = records_for(&p);
    let report = v.set_ptrs(&mut j, &records).await.unwrap();
    assert_eq!(report.changed.len(), records.len());
    assert!(report.note.contains("6 to 12 hours"));
    let status = v
        .ptr_status(&records.iter().map(|r| r.address).collect::<Vec<_>>())
        .await
        .unwrap();
    for (s, r) in status.iter().zip(&records) {
        assert_eq!(
            s.reported.as_deref(),
            Some(r.name.as_str()),
            "{}",
            r.address
        );
    }
    // Only what changed is written.
    let posts = count(
        &fake,
        "POST",
        "/v2/instances/cb676a46-66fd-4dfb-b839-443f2e6c0b60/ipv",
    );
    let report = v.set_ptrs(&mut j, &records).await.unwrap();
    assert_eq!(report.changed.len(), 0);
    assert_eq!(report.unchanged.len(), records.len());
    assert_eq!(
        count(
            &fake,
            "POST",
            "/v2/instances/cb676a46-66fd-4dfb-b839-443f2e6c0b60/ipv"
        ),
        posts
    );
    let mut one_changed = records.clone();
    one_changed[0].name = "Changed.troll.example".into();
    let report = v.set_ptrs(&mut j, &one_changed).await.unwrap();
    assert_eq!(report.changed, vec![one_changed[0].clone()]);

    // The target's previous names are kept for teardown.
    let ptrs: Vec<_> = j
        .resources()
        .into_iter()
        .filter(|r| r.kind == KIND_PTR)
        .collect();
    let target = ptrs
        .iter()
        .find(|r| r.address.map(|a| a.public) == Some(IpAddr::V4(MAIN_IP)))
        .unwrap();
    assert_eq!(target.extra["previous"], "mail.example.com");

    let t = v.teardown(&mut j).await.unwrap();
    assert_eq!(t.ipv4_deleted.len(), 2);
    assert_eq!(t.ptrs_reset, records.len());
    assert_clean(&fake, &before, &j);

    // A second teardown has nothing to do and does nothing.
    let t = v.teardown(&mut j).await.unwrap();
    assert_eq!(
        t.ptrs_reset + t.ipv4_deleted.len() + t.reserved_deleted.len(),
        0
    );
    assert_clean(&fake, &before, &j);
}

#[tokio::test]
async fn reserved_ip_lifecycle_leaves_the_fake_as_it_was() {
    let (fake, before, v, mut j) = started(Fake::start(KEY), journal());
    let p = v.provision(&mut j, RESERVED).await.unwrap();
    assert_eq!(p.ipv4.len(), 2);
    let world = fake.world();
    let ours = world.labelled(LABEL);
    assert_eq!(ours.len(), 2);
    assert!(ours
        .iter()
        .all(|r| r.instance_id.as_deref() == Some(INSTANCE)));
    assert_eq!(world.additional(INSTANCE), vec![FOREIGN_IP]);
    let recorded: Vec<_> = j
        .resources()
        .into_iter()
        .filter(|r| r.kind == KIND_RESERVED)
        .collect();
    assert_eq!(recorded.len(), 2);
    assert!(recorded.iter().all(|r| r.extra["label"] == LABEL));

    let again = v.provision(&mut j, RESERVED).await.unwrap();
    assert_eq!(again.created, 0);
    assert_eq!(fake.world(), world);

    let records = records_for(&p);
    v.set_ptrs(&mut j, &records).await.unwrap();
    let reported = v.ptr_status(&[p.ipv4[0].public]).await.unwrap();
    assert_eq!(
        reported[0].reported.as_deref(),
        Some("Hop-1.never.gonna.give.you.up")
    );
    let t = v.teardown(&mut j).await.unwrap();
    assert_eq!(t.reserved_deleted.len(), 2);
    assert_clean(&fake, &before, &j);
}

#[tokio::test]
async fn more_addresses_later_adds_only_the_difference_and_mixes_kinds() {
    let (fake, before, v, mut j) = started(Fake::start(KEY), journal());
    v.provision(&mut j, request(1, 0, false)).await.unwrap();
    let p = v.provision(&mut j, request(3, 3, true)).await.unwrap();
    assert_eq!((p.ipv4.len(), p.ipv6.len(), p.created), (3, 3, 2));
    assert_eq!(fake.world().labelled(LABEL).len(), 2);
    v.teardown(&mut j).await.unwrap();
    assert_clean(&fake, &before, &j);
}

#[tokio::test]
async fn a_create_answer_without_the_address_is_found_in_the_list() {
    // The specification promises an empty object for POST /instances/{id}/ipv4.
    let fake = Fake::start(KEY);
    fake.state().empty_create_answer = true;
    let (fake, before, v, mut j) = started(fake, journal());
    let p = v.provision(&mut j, ADDITIONAL).await.unwrap();
    assert_eq!(p.ipv4.len(), 2);
    assert_eq!(fake.world().additional(INSTANCE).len(), 3);
    assert!(p.ipv4.iter().all(|a| a.public != IpAddr::V4(FOREIGN_IP)));
    v.teardown(&mut j).await.unwrap();
    assert_clean(&fake, &before, &j);
}

/// Runs the lifecycle with `faults` queued and checks it still ends clean.
async fn survives(faults: &[(Option<&str>, Fault, usize)], request: ProvisionRequest) -> Fake {
    let fake = Fake::start(KEY);
    for (pattern, fault, n) in faults {
        fake.push_faults(*pattern, *fault, *n);
    }
    let (fake, before, v, mut j) = started(fake, journal());
    lifecycle(&v, &mut j, request).await.unwrap();
    assert_clean(&fake, &before, &j);
    assert!(
        fake.state().faults.is_empty(),
        "every injected fault was hit"
    );
    fake
}

#[tokio::test]
async fn bursts_of_429_are_retried() {
    let fake = survives(&[(None, Fault::Status(429), 12)], ADDITIONAL).await;
    assert_eq!(
        fake.state().log.iter().filter(|l| l.status == 429).count(),
        12
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    survives(
        &[
            (None, Fault::Status(500), 3),
            (Some("GET *"), Fault::Status(503), 3),
        ],
        RESERVED,
    )
    .await;
}

#[tokio::test]
async fn slow_answers_time_out_and_are_retried() {
    let slow = Fault::Slow(Duration::from_millis(700));
    let reverse = format!("POST /v2/instances/{INSTANCE}/ipv4/reverse");
    survives(
        &[
            (Some("GET *"), slow, 2),
            (Some(reverse.as_str()), slow, 1),
            (Some("DELETE *"), slow, 1),
        ],
        ADDITIONAL,
    )
    .await;
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    survives(
        &[
            (Some("GET *"), Fault::Drop, 3),
            (Some("POST *"), Fault::DropAfter, 3),
            (Some("DELETE *"), Fault::DropAfter, 2),
        ],
        ADDITIONAL,
    )
    .await;
}

#[tokio::test]
async fn creates_with_unknown_outcome_are_adopted_not_repeated() {
    let ipv4 = format!("POST /v2/instances/{INSTANCE}/ipv4");
    for fault in [
        Fault::DropAfter,
        Fault::StatusAfter(500),
        Fault::Slow(Duration::from_millis(700)),
        Fault::Drop,
        Fault::Status(502),
    ] {
        let fake = survives(&[(Some(ipv4.as_str()), fault, 2)], ADDITIONAL).await;
        // Two addresses wanted: at most two creates reached the world per
        // success, and nothing leaked (checked by `survives`).
        drop(fake);
        let fake = survives(&[(Some("POST /v2/reserved-ips"), fault, 1)], RESERVED).await;
        drop(fake);
    }
}

#[tokio::test]
async fn repeated_attach_and_detach_count_as_done() {
    // The first attach and detach take effect but their answers are lost;
    // the retries find them done ("already attached", "not attached").
    let fake = survives(
        &[(Some("POST /v2/reserved-ips/*"), Fault::DropAfter, 2)],
        RESERVED,
    )
    .await;
    let refused = fake.state().log.iter().filter(|l| l.status == 400).count();
    assert!(refused >= 1, "a repeated call was refused and settled");
}

#[tokio::test]
async fn unknown_outcomes_never_make_more_addresses_than_asked() {
    let fake = Fake::start(KEY);
    let ipv4 = format!("POST /v2/instances/{INSTANCE}/ipv4");
    fake.push_faults(Some(&ipv4), Fault::DropAfter, 2);
    fake.push_faults(Some("POST /v2/reserved-ips"), Fault::StatusAfter(500), 1);
    let v = on_fake(&fake);
    let mut j = journal();
    let p = v.provision(&mut j, request(2, 0, false)).await.unwrap();
    assert_eq!(p.ipv4.len(), 2);
    assert_eq!(p.adopted, 2);
    assert_eq!(fake.world().additional(INSTANCE).len(), 3);
    let p = v.provision(&mut j, request(3, 0, true)).await.unwrap();
    assert_eq!(p.ipv4.len(), 3);
    assert_eq!(fake.world().labelled(LABEL).len(), 1);
    v.teardown(&mut j).await.unwrap();
}

#[tokio::test]
async fn persistent_failure_ends_in_a_clear_error_within_the_budget() {
    let fake = Fake::start(KEY);
    fake.state().always = Some(Fault::Status(500));
    let mut settings = fast_settings(&fake.url());
    settings.retry_budget = Duration::from_millis(800);
    let v = provider(settings);
    let mut j = journal();
    let started = Instant::now();
    let e = v.provision(&mut j, ADDITIONAL).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let text = e.to_string();
    assert!(matches!(e, Error::Api { .. }), "{e:?}");
    assert!(text.contains(INSTANCE), "{text}");
    assert!(text.contains("HTTP 500"), "{text}");
    assert!(text.contains("gave up after"), "{text}");

    // A delete that keeps failing names the address.
    fake.state().always = None;
    v.provision(&mut j, ADDITIONAL).await.unwrap();
    fake.state().always = Some(Fault::Drop);
    let e = v.teardown(&mut j).await.unwrap_err().to_string();
    // Whichever list failed first is named.
    assert!(
        e.starts_with("listing the IPv4 addresses of instance")
            || e.starts_with("listing the account's reserved IPs"),
        "{e}"
    );
    assert!(
        e.contains("connection closed") && e.contains("gave up after"),
        "{e}"
    );
    fake.state().always = Some(Fault::Status(503));
    let e = {
        // Past the lists, the deletes fail: the message names the address.
        let deletes = format!("DELETE /v2/instances/{INSTANCE}/ipv4/*");
        fake.state().always = None;
        fake.push_faults(Some(&deletes), Fault::Status(503), 1000);
        v.teardown(&mut j).await.unwrap_err().to_string()
    };
    assert!(e.starts_with("deleting additional IPv4 203.0.113."), "{e}");
    assert!(e.contains(&format!("on instance {INSTANCE}")), "{e}");
    fake.state().faults.clear();
    v.teardown(&mut j).await.unwrap();
    assert_eq!(vultr_left(&j), vec![]);
}

#[tokio::test]
async fn rejected_key_is_one_sentence() {
    let fake = Fake::start("another-key");
    let v = on_fake(&fake);
    let mut j = journal();
    let e = v.provision(&mut j, ADDITIONAL).await.unwrap_err();
    assert!(matches!(e, Error::Auth { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the Vultr API rejected the credentials: check that VULTR_API_KEY is set and has API access enabled for this machine's address"
    );
    // Not retried: one attempt per call.
    assert!(fake.state().log.len() <= 3);
}

#[tokio::test]
async fn a_missing_instance_is_named() {
    let fake = Fake::start(KEY);
    let client = troll_providers::vultr::Client::new(
        fast_settings(&fake.url()),
        troll_providers::vultr::ApiKey::new(KEY).unwrap(),
    )
    .unwrap();
    let v = troll_providers::vultr::Vultr::new(client, "deadbeef-0000", "show1").unwrap();
    let e = v.provision(&mut journal(), ADDITIONAL).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("instance deadbeef-0000"), "{e}");
}

#[tokio::test]
async fn bad_input_is_refused_before_any_call() {
    let fake = Fake::start(KEY);
    let v = on_fake(&fake);
    let mut j = journal();
    let e = v
        .set_ptrs(
            &mut j,
            &[troll_providers::PtrRecord {
                address: "192.0.2.99".parse().unwrap(),
                name: "x.example".into(),
            }],
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("192.0.2.99 is not an address of instance"),
        "{e}"
    );
    let e = v
        .set_ptrs(
            &mut j,
            &[troll_providers::PtrRecord {
                address: IpAddr::V4(MAIN_IP),
                name: "two words".into(),
            }],
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Invalid { .. }));
    assert!(troll_providers::vultr::Vultr::new(v.client().clone(), "../account", "x").is_err());
    assert!(troll_providers::vultr::Vultr::new(v.client().clone(), INSTANCE, "a b").is_err());
    let mut no_v6 = World::standard();
    no_v6.instances.get_mut(INSTANCE).unwrap().v6 = None;
    let fake = Fake::with_world(KEY, no_v6);
    let v = on_fake(&fake);
    let e = v
        .provision(
            &mut j,
            ProvisionRequest {
                modify_instance: false,
                ..ADDITIONAL
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("has IPv6 off"), "{e}");
    assert_eq!(
        fake.world().additional(INSTANCE),
        vec![FOREIGN_IP],
        "nothing created"
    );
}

#[tokio::test]
async fn creates_go_one_at_a_time_and_reverse_names_in_parallel() {
    let fake = Fake::start(KEY);
    fake.state().latency = Duration::from_millis(30);
    let v = on_fake(&fake);
    let mut j = journal();
    let p = v.provision(&mut j, request(6, 0, false)).await.unwrap();
    // Each create starts a task on the instance: the next one starts only
    // after the previous answer (which takes at least the latency).
    let starts: Vec<Instant> = fake
        .state()
        .log
        .iter()
        .filter(|l| l.method == "POST" && l.path.ends_with("/ipv4"))
        .map(|l| l.at)
        .collect();
    assert_eq!(starts.len(), 6);
    for w in starts.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(30), "{starts:?}");
    }
    fake.state().max_in_flight = 0;
    v.set_ptrs(&mut j, &records_for(&p)).await.unwrap();
    assert!(
        fake.state().max_in_flight >= 4,
        "max in flight {}",
        fake.state().max_in_flight
    );
    v.teardown(&mut j).await.unwrap();
}

#[tokio::test]
async fn teardown_sweeps_what_only_the_label_knows() {
    // State lost after a reserved IP was made: teardown finds it by label,
    // and leaves other deployments' reserved IPs alone.
    let (fake, before, v, mut j) = started(Fake::start(KEY), journal());
    v.provision(&mut j, RESERVED).await.unwrap();
    let mut lost = journal();
    let t = v.teardown(&mut lost).await.unwrap();
    assert_eq!(t.adopted, 2);
    assert_eq!(t.reserved_deleted.len(), 2);
    let mut world = fake.world();
    // The IPv6 names set by nobody are untouched; the reserved IPs are gone.
    assert_eq!(world.reserved, before.reserved);
    world.instances = before.instances.clone();
    assert_eq!(world, before);
}

/// How the client dies.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// Before call K+1 reaches the API.
    Before,
    /// After call K took effect, before its answer arrived.
    Unanswered,
}

/// How the operator recovers.
#[derive(Debug, Clone, Copy)]
enum Recovery {
    /// Runs the whole lifecycle again.
    Again,
    /// Gives up and tears down.
    Teardown,
}

/// Kills the client at call `k`, recovers, and checks nothing leaked.
/// Returns whether the client was killed (it was not when the lifecycle
/// needs `k` calls or fewer).
async fn crash_at(
    world: fn() -> World,
    request: ProvisionRequest,
    k: usize,
    crash: Crash,
    recovery: Recovery,
) -> bool {
    let fake = Fake::with_world(KEY, world());
    let before = fake.world();
    let settings = fast_settings(&fake.url());
    let mut j = journal();
    fake.state().gate = Some(Gate {
        after: k,
        withhold: matches!(crash, Crash::Unanswered),
    });
    let crashed = {
        let v = provider(settings.clone());
        tokio::select! {
            r = lifecycle(&v, &mut j, request) => {
                r.unwrap_or_else(|e| panic!("no crash at {k} ({crash:?}) but {e}"));
                false
            }
            _ = fake.crashed() => true,
        }
    };
    fake.release();
    // A new process: a new client, the journal as it was written.
    let v = provider(settings);
    let context = format!("crash at call {k} ({crash:?}), recovery {recovery:?}");
    if let Recovery::Again = recovery {
        let p = v
            .provision(&mut j, request)
            .await
            .unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(p.ipv4.len(), request.ipv4, "{context}");
        let world = fake.world();
        let extra = if request.reserved { 0 } else { request.ipv4 };
        assert_eq!(
            world.additional(INSTANCE).len(),
            1 + extra,
            "{context}: leaked IPv4"
        );
        let labelled = world.labelled(LABEL).len();
        let wanted = if request.reserved { request.ipv4 } else { 0 };
        assert_eq!(labelled, wanted, "{context}: leaked reserved IPs");
        let records = records_for(&p);
        v.set_ptrs(&mut j, &records)
            .await
            .unwrap_or_else(|e| panic!("{context}: {e}"));
    }
    // Either way the operator ends with a teardown.
    v.teardown(&mut j)
        .await
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    // What the operator allowed stays: IPv6 turned on, restarts done.
    let mut after = fake.world();
    let inst = after.instances.get_mut(INSTANCE).unwrap();
    inst.v6 = before.instances[INSTANCE].v6;
    inst.reboots = 0;
    assert_eq!(after, before, "{context}: the fake is not as it was");
    assert_eq!(vultr_left(&j), vec![], "{context}");
    crashed
}

async fn calls_in_a_lifecycle(world: fn() -> World, request: ProvisionRequest) -> usize {
    let fake = Fake::with_world(KEY, world());
    let v = on_fake(&fake);
    lifecycle(&v, &mut journal(), request).await.unwrap();
    let n = fake.state().processed;
    n
}

async fn crash_everywhere(request: ProvisionRequest) {
    crash_everywhere_in(World::standard, request).await;
}

/// An instance with IPv6 off and a firewall group, provisioned with
/// `--reboot`: the PATCH, the restart and the firewall read are call
/// positions too.
fn changing_world() -> World {
    let mut world = World::standard();
    let inst = world.instances.get_mut(INSTANCE).unwrap();
    inst.v6 = None;
    inst.v6_reverse.clear();
    inst.firewall_group = Some("fw-1".into());
    world.firewalls.insert("fw-1".into(), Vec::new());
    world
}

async fn crash_everywhere_in(world: fn() -> World, request: ProvisionRequest) {
    let total = calls_in_a_lifecycle(world, request).await;
    assert!(total > 10, "{total}");
    eprintln!("{request:?}: {total} calls in a lifecycle; crashing at each");
    for k in 0..=total {
        for recovery in [Recovery::Again, Recovery::Teardown] {
            let crashed = crash_at(world, request, k, Crash::Before, recovery).await;
            assert_eq!(crashed, k < total, "call {k} of {total}");
            if k > 0 {
                let crashed = crash_at(world, request, k, Crash::Unanswered, recovery).await;
                assert_eq!(crashed, k <= total, "call {k} of {total}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_any_two_calls_leaks_nothing_additional() {
    crash_everywhere(ADDITIONAL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_any_two_calls_leaks_nothing_reserved() {
    crash_everywhere(RESERVED).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_any_two_calls_leaks_nothing_when_ipv6_is_turned_on_and_it_reboots() {
    crash_everywhere_in(
        changing_world,
        ProvisionRequest {
            reboot: true,
            ..ADDITIONAL
        },
    )
    .await;
}

#[tokio::test]
async fn a_journal_that_cannot_write_stops_before_any_create() {
    struct Broken;
    impl Journal for Broken {
        fn resources(&self) -> Vec<troll_providers::Resource> {
            Vec::new()
        }
        fn record(&mut self, _: Vec<troll_providers::Resource>) -> troll_providers::Result<()> {
            Err(Error::Journal("disk full".into()))
        }
    }
    let fake = Fake::start(KEY);
    let v = on_fake(&fake);
    let e = v.provision(&mut Broken, ADDITIONAL).await.unwrap_err();
    assert!(matches!(e, Error::Journal(_)), "{e:?}");
    assert_eq!(
        count(&fake, "POST", "/v2/"),
        0,
        "nothing created without a record"
    );
}

#[test]
fn the_operations_can_run_on_any_runtime_thread() {
    fn send<T: Send>(_: &T) {}
    let v = provider(fast_settings("http://127.0.0.1:9/v2"));
    let mut j = journal();
    send(&v.provision(&mut j, ADDITIONAL));
    send(&v.set_ptrs(&mut j, &[]));
    send(&v.ptr_status(&[]));
    send(&v.teardown(&mut j));
}
