//! Vultr as it really behaves, taught to the fake: an instance locked
//! while the task a create started runs ("Server is currently locked",
//! HTTP 500), the additional-IPv4 cap Vultr does not list, reserved IPs of
//! the same deployment name on two instances, and reverse IPv6 entries
//! removed outside troll (a delete of a missing one is a 400).

mod vultr;

use std::net::IpAddr;
use std::time::Duration;
use troll_providers::vultr::{expanded, ApiKey, Client, Vultr};
use troll_providers::{Error, MemoryJournal};
use vultr::fake::{Fake, World, INSTANCE, OTHER_INSTANCE};
use vultr::*;

/// A fake whose instance tasks (started by a create) take `task_time`.
fn busy(task_time: Duration) -> Fake {
    let fake = Fake::start(KEY);
    fake.state().task_time = task_time;
    fake
}

fn on(fake: &Fake, instance: &str) -> Vultr {
    let client = Client::new(fast_settings(&fake.url()), ApiKey::new(KEY).unwrap()).unwrap();
    Vultr::new(client, instance, DEPLOYMENT).unwrap()
}

#[tokio::test]
async fn a_locked_instance_is_waited_for_and_the_run_completes() {
    for reserved in [false, true] {
        let (fake, before, v, mut j) =
            started(busy(Duration::from_millis(60)), MemoryJournal::default());
        let p = v
            .provision(&mut j, request(3, 1, reserved))
            .await
            .expect("complete despite the lock");
        assert_eq!(p.ipv4.len(), 3);
        let locked = fake.state().locked_answers;
        assert!(locked > 0, "the fake locked the instance");
        // Exactly three addresses: no refused create took effect, none
        // was repeated.
        let world = fake.world();
        let extra = world.additional(INSTANCE).len() - 1 + world.labelled(v.label()).len();
        assert_eq!(extra, 3, "reserved={reserved}: {world:?}");
        v.teardown(&mut j).await.expect("teardown waits too");
        assert_eq!(fake.world(), before, "reserved={reserved}");
    }
}

#[tokio::test]
async fn an_instance_that_stays_locked_ends_in_one_clear_sentence() {
    let (fake, before, v, mut j) = started(busy(Duration::from_secs(30)), MemoryJournal::default());
    // The first create goes through and starts a long task.
    let err = v.provision(&mut j, request(2, 0, false)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Busy { .. }), "{err:?}");
    assert!(text.contains("stayed busy"), "{text}");
    assert!(text.contains("run provision again"), "{text}");
    // What was made is recorded, and teardown (once the task is over)
    // gives it back.
    assert_eq!(vultr_left(&j).len(), 1, "{:?}", j.resources);
    fake.state().busy_until.clear();
    v.teardown(&mut j).await.unwrap();
    assert_eq!(fake.world(), before);
}

#[tokio::test]
async fn the_ipv4_cap_is_a_clean_refusal_naming_support() {
    for reserved in [false, true] {
        let mut world = World::standard();
        // The foreign additional address counts: one more fits.
        world.instances.get_mut(INSTANCE).unwrap().ipv4_cap = Some(2);
        let fake = Fake::with_world(KEY, world);
        fake.state().task_time = Duration::from_millis(20);
        let (fake, before, v, mut j) = started(fake, MemoryJournal::default());
        let err = v
            .provision(&mut j, request(3, 0, reserved))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Limit { .. }), "{err:?}");
        assert!(text.contains("cap"), "{text}");
        assert!(text.contains("Vultr support"), "{text}");
        assert!(text.contains("holds 1 of the 3"), "{text}");
        assert!(!text.contains('\n'), "{text}");
        // The journal holds exactly what Vultr holds for the deployment:
        // the one address that fitted, and no unattached reserved IP.
        let world = fake.world();
        let ours = world.additional(INSTANCE).len() - 1 + world.labelled(v.label()).len();
        assert_eq!(ours, 1, "reserved={reserved}: {world:?}");
        assert_eq!(
            world
                .labelled(v.label())
                .iter()
                .filter(|r| r.instance_id.is_none())
                .count(),
            0
        );
        assert_eq!(vultr_left(&j).len(), 1, "{:?}", j.resources);
        v.teardown(&mut j).await.unwrap();
        assert_eq!(fake.world(), before, "reserved={reserved}");
    }
}

#[tokio::test]
async fn reserved_deployments_of_one_name_on_two_instances_do_not_touch_each_other() {
    let fake = Fake::start(KEY);
    let before = fake.world();
    let a = on(&fake, INSTANCE);
    let b = on(&fake, OTHER_INSTANCE);
    assert_ne!(a.label(), b.label());
    let (mut ja, mut jb) = (MemoryJournal::default(), MemoryJournal::default());
    let pa = a.provision(&mut ja, request(2, 0, true)).await.unwrap();
    let pb = b.provision(&mut jb, request(2, 0, true)).await.unwrap();
    assert_eq!(pa.created, 2);
    assert_eq!((pb.created, pb.adopted), (2, 0), "b adopts none of a's");
    let b_ips: Vec<IpAddr> = pb.ipv4.iter().map(|p| p.public).collect();
    assert!(pa.ipv4.iter().all(|p| !b_ips.contains(&p.public)));
    // Provision on a again adopts nothing of b's; teardown of a (even from
    // a lost state) leaves b's reserved IPs attached to b.
    let again = a.provision(&mut ja, request(2, 0, true)).await.unwrap();
    assert_eq!((again.created, again.adopted), (0, 0));
    let mut lost = MemoryJournal::default();
    a.teardown(&mut lost).await.unwrap();
    a.teardown(&mut ja).await.unwrap();
    let world = fake.world();
    let of_b = world.labelled(b.label());
    assert_eq!(of_b.len(), 2);
    assert!(of_b
        .iter()
        .all(|r| r.instance_id.as_deref() == Some(OTHER_INSTANCE)));
    assert!(world.labelled(a.label()).is_empty());
    b.teardown(&mut jb).await.unwrap();
    assert_eq!(fake.world(), before);
}

#[tokio::test]
async fn a_reverse_ipv6_entry_removed_elsewhere_does_not_jam_teardown() {
    let fake = Fake::start(KEY);
    let (fake, before, v, mut j) = started(fake, MemoryJournal::default());
    let p = v.provision(&mut j, request(1, 2, false)).await.unwrap();
    v.set_ptrs(&mut j, &records_for(&p)).await.unwrap();
    // Someone deletes one IPv6 name in the portal.
    let gone = p.ipv6[0].public;
    let IpAddr::V6(gone) = gone else { panic!() };
    fake.state()
        .world
        .instances
        .get_mut(INSTANCE)
        .unwrap()
        .v6_reverse
        .remove(&gone);
    v.teardown(&mut j)
        .await
        .expect("an entry not listed is gone");
    assert!(vultr_left(&j).is_empty());
    assert_eq!(fake.world(), before);
    let deletes_of_gone = fake
        .state()
        .log
        .iter()
        .filter(|l| l.method == "DELETE" && l.path.contains(&expanded(gone)))
        .count();
    assert_eq!(deletes_of_gone, 0);
}

#[tokio::test]
async fn a_403_names_the_refused_call() {
    let fake = Fake::start(KEY);
    fake.push_faults(
        Some("POST /v2/instances/*"),
        vultr::fake::Fault::Status(403),
        1,
    );
    let v = on_fake(&fake);
    let mut j = MemoryJournal::default();
    let err = v.provision(&mut j, request(1, 0, false)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Permission { .. }), "{err:?}");
    assert!(text.contains("adding"), "names the call: {text}");
    assert!(!text.contains("check that VULTR_API_KEY is set"), "{text}");
    v.teardown(&mut j).await.unwrap();
}

#[tokio::test]
async fn ipv6_off_is_turned_on_before_any_create_or_refused_with_the_command() {
    let mut world = World::standard();
    world.instances.get_mut(INSTANCE).unwrap().v6 = None;
    let fake = Fake::with_world(KEY, world);
    let (fake, before, v, mut j) = started(fake, MemoryJournal::default());
    let mut forbid = request(1, 1, false);
    forbid.modify_instance = false;
    let err = v.provision(&mut j, forbid).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("--no-modify-instance"), "{text}");
    assert!(
        text.contains(r#"{"enable_ipv6":true}"#),
        "the command: {text}"
    );
    assert_eq!(fake.world(), before, "nothing created, nothing changed");
    let posts = fake
        .state()
        .log
        .iter()
        .filter(|l| l.method != "GET")
        .count();
    assert_eq!(posts, 0);

    let p = v.provision(&mut j, request(1, 1, false)).await.unwrap();
    assert_eq!(p.ipv6.len(), 1);
    assert!(
        p.notes.iter().any(|n| n.contains("turned IPv6 on")),
        "{:?}",
        p.notes
    );
    assert!(fake.world().instances[INSTANCE].v6.is_some());
    v.teardown(&mut j).await.unwrap();
    let mut after = fake.world();
    after.instances.get_mut(INSTANCE).unwrap().v6 = None;
    assert_eq!(after, before, "only the IPv6 the operator allowed stays");
}

#[tokio::test]
async fn reboot_restarts_and_waits_and_without_it_a_note_says_when() {
    let (fake, before, v, mut j) =
        started(busy(Duration::from_millis(50)), MemoryJournal::default());
    let p = v.provision(&mut j, request(1, 0, false)).await.unwrap();
    assert!(
        p.notes.iter().any(|n| n.contains("--reboot")),
        "{:?}",
        p.notes
    );
    assert_eq!(
        fake.world().instances[INSTANCE].reboots,
        0,
        "never by surprise"
    );
    let mut with = request(2, 0, false);
    with.reboot = true;
    let p = v.provision(&mut j, with).await.unwrap();
    assert!(
        p.notes.iter().any(|n| n.contains("restarted")),
        "{:?}",
        p.notes
    );
    assert_eq!(fake.world().instances[INSTANCE].reboots, 1);
    assert!(fake
        .state()
        .busy_until
        .values()
        .all(|t| *t <= std::time::Instant::now()));
    v.teardown(&mut j).await.unwrap();
    let mut after = fake.world();
    after.instances.get_mut(INSTANCE).unwrap().reboots = 0;
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_firewall_group_without_the_probe_rules_is_named() {
    let mut world = World::standard();
    world.instances.get_mut(INSTANCE).unwrap().firewall_group = Some("fw-1".into());
    world.firewalls.insert(
        "fw-1".into(),
        vec![
            (
                "v4".into(),
                "udp".into(),
                "33434:33534".into(),
                "0.0.0.0".into(),
                0,
            ),
            ("v4".into(), "tcp".into(), "22".into(), "0.0.0.0".into(), 0),
        ],
    );
    let fake = Fake::with_world(KEY, world);
    let v = on_fake(&fake);
    let mut j = MemoryJournal::default();
    let p = v.provision(&mut j, request(1, 0, false)).await.unwrap();
    let note = note(&p.notes, "firewall group fw-1");
    assert!(
        note.contains("ICMP (IPv4)") && note.contains("TCP 80 (IPv4)"),
        "{note}"
    );
    assert!(!note.contains("UDP"), "{note}");
    v.teardown(&mut j).await.unwrap();
}

#[tokio::test]
async fn the_instance_is_found_by_metadata_or_by_its_main_ipv4() {
    let fake = Fake::start(KEY);
    let url = format!("http://{}/v1.json", fake.addr);
    let err = troll_providers::vultr::instance_id_from_metadata(Some(&url))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--instance"), "{err}");
    fake.state().metadata_instance = Some(INSTANCE.into());
    let id = troll_providers::vultr::instance_id_from_metadata(Some(&url))
        .await
        .unwrap();
    assert_eq!(id, INSTANCE);
    // Only the link-local service or loopback is asked.
    assert!(
        troll_providers::vultr::instance_id_from_metadata(Some("http://192.0.2.1/v1.json"))
            .await
            .is_err()
    );
    let client = Client::new(fast_settings(&fake.url()), ApiKey::new(KEY).unwrap()).unwrap();
    let found = client
        .find_instance_by_main_ip(vultr::fake::MAIN_IP)
        .await
        .unwrap();
    assert_eq!(found, INSTANCE);
    assert!(client
        .find_instance_by_main_ip("192.0.2.99".parse().unwrap())
        .await
        .is_err());
}
