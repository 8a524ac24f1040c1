//! The AWS provider's whole lifecycle against moto (and the proxy that
//! fills moto's gaps): provision, reverse DNS, status, teardown, and what
//! each leaves behind.

mod aws;

use aws::{assert_sent_and_done, aws_entries, records, v4, Env, TableResolver, DOMAIN};
use std::net::IpAddr;
use troll_providers::aws::{kinds, zone_fragment, PtrAction};
use troll_providers::{MemoryJournal, PtrRecord, ResourceStatus};

fn count(journal: &MemoryJournal, kind: &str) -> usize {
    journal.resources.iter().filter(|r| r.kind == kind).count()
}

#[tokio::test]
async fn provision_ptrs_status_teardown_leave_ec2_as_it_was() {
    let env = Env::start().await;
    // Three foreign Elastic IPs, three hops and the target: more than AWS's
    // default quota of 5, so this account had it raised.
    env.proxy.set_eip_quota(10);
    // Things troll must not touch: an unrelated Elastic IP, one of another
    // deployment, one of this deployment's name on another instance.
    env.foreign_eip(&[]).await;
    env.foreign_eip(&[
        ("troll:deployment", "other"),
        ("troll:instance", &env.instance_id),
    ])
    .await;
    env.foreign_eip(&[
        ("troll:deployment", "show"),
        ("troll:instance", "i-elsewhere"),
    ])
    .await;
    let before = env.snapshot().await;
    assert_eq!(before.source_dest_check, Some(true));

    let aws = env.provider("show");
    let mut journal = MemoryJournal::default();
    let got = aws.provision(3, &mut journal).await.expect("provision");
    assert_eq!(got.hops.len(), 3);
    assert_eq!(got.allocated, 4, "three hops and the target");
    assert_eq!(got.interface, env.eni);
    let mut publics: Vec<IpAddr> = got.hops.iter().map(|p| p.public).collect();
    publics.push(got.target.public);
    publics.sort();
    publics.dedup();
    assert_eq!(publics.len(), 4, "distinct Elastic IPs: {got:?}");
    assert_eq!(
        env.tagged("show").await.len(),
        4 + 1,
        "ours plus the other instance's"
    );

    // Each hop's Elastic IP sits on its own secondary private address.
    let after = env.snapshot().await;
    assert_eq!(after.source_dest_check, Some(false));
    assert_eq!(after.private_ips.len(), 4);
    let seen = env
        .client
        .describe_addresses()
        .send()
        .await
        .expect("describe");
    for hop in &got.hops {
        assert!(after.private_ips.contains(&hop.local.to_string()), "{hop}");
        assert_ne!(hop.local, got.target.local);
        let a = seen
            .addresses()
            .iter()
            .find(|a| a.public_ip() == Some(&hop.public.to_string()))
            .expect("the hop's Elastic IP");
        assert_eq!(a.private_ip_address(), Some(hop.local.to_string().as_str()));
        assert_eq!(a.network_interface_id(), Some(env.eni.as_str()));
    }
    assert!(journal
        .resources
        .iter()
        .all(|r| r.status == ResourceStatus::Created));
    assert_eq!(count(&journal, kinds::EIP), 4);
    assert_eq!(count(&journal, kinds::PRIVATE_IP), 3);
    assert_eq!(count(&journal, kinds::ASSOCIATION), 4);
    assert_eq!(count(&journal, kinds::SOURCE_DEST_CHECK), 1);

    // Idempotent: a second provision creates nothing.
    let calls_before = env.proxy.calls().len();
    let again = aws
        .provision(3, &mut journal)
        .await
        .expect("provision again");
    assert_eq!(again.allocated, 0);
    assert_eq!(again.hops, got.hops);
    assert_eq!(again.target, got.target);
    let second: Vec<String> = env.proxy.calls()[calls_before..].to_vec();
    for create in [
        "AllocateAddress",
        "AssignPrivateIpAddresses",
        "AssociateAddress",
        "ModifyNetworkInterfaceAttribute",
    ] {
        assert!(
            !second.iter().any(|c| c == create),
            "second provision called {create}: {second:?}"
        );
    }

    // Reverse DNS: the forward records first; a missing one is not sent.
    let mut wanted = got.hops.clone();
    wanted.push(got.target);
    let recs = records(&wanted, &["hello", "world", "again", "troll"]);
    let forward = aws.forward_records(&recs).expect("forward records");
    assert_eq!(forward[0].name, format!("hello.{DOMAIN}"));
    assert_eq!(
        forward[0].to_string(),
        format!("hello.{DOMAIN} A {}", got.hops[0].public)
    );
    let zone = zone_fragment(&forward, 300);
    assert!(
        zone.contains(&format!(
            "troll.{DOMAIN}.  300  IN  A  {}",
            got.target.public
        )),
        "{zone}"
    );
    let mut dns = TableResolver::default();
    for f in &forward[..3] {
        dns.publish(&f.name, f.address);
    }
    let report = aws
        .set_ptrs(&recs, &dns, &mut journal)
        .await
        .expect("set ptrs");
    assert_sent_and_done(&report.outcomes[..3]);
    assert_eq!(
        report.outcomes[3].action,
        PtrAction::ForwardMissing { found: vec![] }
    );
    assert_eq!(report.missing_forward_records(), vec![forward[3].clone()]);
    assert_eq!(
        env.proxy.ptr_sets().len(),
        3,
        "the unresolved name was not sent"
    );

    // Once the record is published, the last one goes too; the others are
    // not sent again.
    dns.publish(&forward[3].name, forward[3].address);
    let report = aws
        .set_ptrs(&recs, &dns, &mut journal)
        .await
        .expect("set ptrs again");
    for o in &report.outcomes[..3] {
        assert!(
            matches!(
                o.action,
                PtrAction::AlreadySet | PtrAction::AlreadyPending { .. }
            ),
            "{o:?}"
        );
    }
    assert!(matches!(report.outcomes[3].action, PtrAction::Sent { .. }));
    assert_eq!(env.proxy.ptr_sets().len(), 4);

    let status = aws.status(&journal, &dns).await.expect("status");
    let slots: Vec<&str> = status.iter().map(|s| s.slot.as_str()).collect();
    assert_eq!(slots, ["hop-1", "hop-2", "hop-3", "target"]);
    for (s, f) in status.iter().zip(&forward) {
        assert_eq!(s.wanted.as_deref(), Some(f.name.as_str()));
        assert_eq!(s.public, f.address);
        assert_eq!(s.forward, vec![f.address]);
        let shown = s
            .ptr
            .clone()
            .or_else(|| s.update.as_ref().map(|u| u.value.clone()))
            .unwrap_or_default();
        assert_eq!(shown.trim_end_matches('.'), f.name, "{s:?}");
    }
    assert_eq!(status[0].local, Some(v4(got.hops[0].local)));
    assert_eq!(status[3].local, Some(v4(got.target.local)));

    let down = aws.teardown(&mut journal).await.expect("teardown");
    assert_eq!(down.ptrs_reset.len(), 4);
    assert_eq!(down.released.len(), 4);
    assert_eq!(down.unassigned.len(), 3);
    assert_eq!(down.source_dest_check_restored, Some(true));
    assert!(
        aws_entries(&journal).is_empty(),
        "{:?}",
        aws_entries(&journal)
    );
    assert_eq!(env.snapshot().await, before);

    // A second teardown has nothing left to do.
    let again = aws.teardown(&mut journal).await.expect("teardown again");
    assert!(again.released.is_empty() && again.ptrs_reset.is_empty());
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn a_target_elastic_ip_from_before_is_adopted_and_given_back_as_it_was() {
    let env = Env::start().await;
    let (target_id, target_ip) = env.foreign_eip(&[]).await;
    env.associate_with_primary(&target_id).await;
    env.proxy.preset_ptr(&target_id, "mail.example.org");
    let before = env.snapshot().await;

    let aws = env.provider("adopt");
    let mut journal = MemoryJournal::default();
    let got = aws.provision(2, &mut journal).await.expect("provision");
    assert_eq!(got.allocated, 2, "the target was there already");
    assert_eq!(got.target.public, IpAddr::V4(target_ip));

    let mut dns = TableResolver::default();
    let recs = vec![
        PtrRecord {
            address: got.hops[0].public,
            name: "one".into(),
        },
        // The private address works as well as the Elastic IP.
        PtrRecord {
            address: got.hops[1].local,
            name: "two".into(),
        },
        PtrRecord {
            address: got.target.public,
            name: "me".into(),
        },
    ];
    for f in aws
        .forward_records(&[recs[0].clone(), recs[2].clone()])
        .unwrap()
    {
        dns.publish(&f.name, f.address);
    }
    dns.publish(&format!("two.{DOMAIN}"), v4(got.hops[1].public));
    let report = aws
        .set_ptrs(&recs, &dns, &mut journal)
        .await
        .expect("set ptrs");
    assert!(
        report
            .outcomes
            .iter()
            .all(|o| matches!(o.action, PtrAction::Sent { .. })),
        "{report:?}"
    );
    assert_eq!(report.outcomes[1].address, v4(got.hops[1].public));

    let down = aws.teardown(&mut journal).await.expect("teardown");
    assert_eq!(down.released.len(), 2, "never the adopted target");
    assert!(down.ptrs_reset.contains(&target_ip));
    let last = env.proxy.ptr_sets().last().cloned();
    assert_eq!(last, Some((target_id.clone(), "mail.example.org.".into())));
    assert_eq!(env.snapshot().await, before);
    assert!(aws_entries(&journal).is_empty());
}

#[tokio::test]
async fn a_shorter_show_gives_back_its_surplus_hops_and_a_longer_one_adds() {
    let (env, before, aws, mut journal) = Env::begin("resize").await;
    let three = aws.provision(3, &mut journal).await.expect("provision 3");
    let mut dns = TableResolver::default();
    dns.publish(&format!("last.{DOMAIN}"), v4(three.hops[2].public));
    let recs = records(&three.hops[2..], &["last"]);
    aws.set_ptrs(&recs, &dns, &mut journal)
        .await
        .expect("ptr on hop 3");

    let one = aws.provision(1, &mut journal).await.expect("provision 1");
    assert_eq!(one.hops, three.hops[..1]);
    assert_eq!(one.released.len(), 2, "{one:?}");
    assert_eq!(env.tagged("resize").await.len(), 2, "hop 1 and the target");
    assert_eq!(env.snapshot().await.private_ips.len(), 2);

    let two = aws.provision(2, &mut journal).await.expect("provision 2");
    assert_eq!(two.hops[0], three.hops[0]);
    assert_eq!(two.allocated, 1);

    env.teardown_to(&aws, &mut journal, &before).await;
}

#[tokio::test]
async fn teardown_sweeps_tagged_elastic_ips_the_journal_lost() {
    let (env, before, aws, mut journal) = Env::begin("lost").await;
    aws.provision(2, &mut journal).await.expect("provision");
    // The state file is gone: only the tags are left.
    let mut empty = MemoryJournal::default();
    let down = aws.teardown(&mut empty).await.expect("teardown");
    assert_eq!(down.released.len(), 3, "{down:?}");
    assert!(env.tagged("lost").await.is_empty());
    let after = env.snapshot().await;
    assert_eq!(after.addresses, before.addresses);
    // Without the journal troll cannot know which private addresses it
    // assigned, so it leaves them (they cost nothing); with the journal,
    // teardown finishes the job.
    aws.teardown(&mut journal)
        .await
        .expect("teardown with the journal");
    assert_eq!(env.snapshot().await, before);
}
