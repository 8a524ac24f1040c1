//! Route 53 forward records against moto (through the proxy): troll
//! writes the A records of the names before it sets the reverse names,
//! replaces them when the message changes, and deletes them at teardown;
//! without the A record, EC2 (the proxy, as AWS) refuses the reverse name.

mod aws;

use aws::{assert_sent_and_done, aws_entries, records, route53_client, Env, TableResolver, DOMAIN};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use troll_providers::aws::{kinds, PtrAction};
use troll_providers::{AddressPair, MemoryJournal, ResourceStatus};

/// What the zone should hold: `<name>.DOMAIN` -> the pair's Elastic IP.
fn expected(pairs: &[AddressPair], names: &[&str]) -> BTreeMap<String, Vec<String>> {
    pairs
        .iter()
        .zip(names)
        .map(|(p, n)| (format!("{n}.{DOMAIN}"), vec![p.public.to_string()]))
        .collect()
}

/// An A record written outside troll, straight into moto.
async fn foreign_record(env: &Env, zone: &str, name: &str, value: &str) {
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(RrType::A)
        .ttl(60)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap();
    route53_client(&format!("http://{}", env.moto.addr))
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(
                    Change::builder()
                        .action(ChangeAction::Upsert)
                        .resource_record_set(set)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("a foreign record");
}

#[tokio::test]
async fn records_are_created_follow_the_message_and_go_at_teardown() {
    let env = Env::start().await;
    let zone = env.route53_zone().await;
    foreign_record(&env, &zone, &format!("keep.{DOMAIN}."), "192.0.2.7").await;
    let aws = env.provider_with_zone("r53", &zone);
    assert_eq!(aws.route53_zone(), Some(zone.as_str()));
    let mut journal = MemoryJournal::default();
    let got = aws.provision(2, &mut journal).await.expect("provision");
    let mut pairs = got.hops.clone();
    pairs.push(got.target);
    // No resolver knows the names: troll wrote them, so it need not ask.
    let nobody = TableResolver::default();

    let first = ["one", "two", "me"];
    let calls = env.proxy.calls().len();
    let report = aws
        .set_ptrs(&records(&pairs, &first), &nobody, &mut journal)
        .await
        .expect("set ptrs");
    assert_sent_and_done(&report.outcomes);
    let mut want = expected(&pairs, &first);
    want.insert(format!("keep.{DOMAIN}"), vec!["192.0.2.7".into()]);
    assert_eq!(env.route53_records(&zone).await, want);
    // The records went in (one batch) before the first reverse name.
    let log = env.proxy.calls()[calls..].to_vec();
    let change = log.iter().position(|c| c == "ChangeResourceRecordSets");
    let modify = log.iter().position(|c| c == "ModifyAddressAttribute");
    assert!(change.is_some() && change < modify, "{log:?}");
    assert_eq!(
        log.iter()
            .filter(|c| *c == "ChangeResourceRecordSets")
            .count(),
        1,
        "{log:?}"
    );
    let journalled: Vec<_> = journal
        .resources
        .iter()
        .filter(|r| r.kind == kinds::ROUTE53)
        .collect();
    assert_eq!(journalled.len(), 3);
    assert!(journalled
        .iter()
        .all(|r| r.status == ResourceStatus::Created));

    // Running it again changes nothing at Route 53.
    let calls = env.proxy.calls().len();
    aws.set_ptrs(&records(&pairs, &first), &nobody, &mut journal)
        .await
        .expect("set ptrs again");
    let log = env.proxy.calls()[calls..].to_vec();
    assert!(
        !log.iter().any(|c| c == "ChangeResourceRecordSets"),
        "{log:?}"
    );

    // A new message: the second line changes; its old record goes.
    let second = ["one", "three", "me"];
    let report = aws
        .set_ptrs(&records(&pairs, &second), &nobody, &mut journal)
        .await
        .expect("set ptrs for the new message");
    assert!(matches!(report.outcomes[1].action, PtrAction::Sent { .. }));
    assert_eq!(report.outcomes[0].action, PtrAction::AlreadySet);
    let mut want = expected(&pairs, &second);
    want.insert(format!("keep.{DOMAIN}"), vec!["192.0.2.7".into()]);
    assert_eq!(env.route53_records(&zone).await, want);
    assert!(env
        .proxy
        .ptr_sets()
        .iter()
        .any(|(_, n)| n == &format!("three.{DOMAIN}")));

    // Teardown removes every record of the deployment, nothing else.
    let torn = aws.teardown(&mut journal).await.expect("teardown");
    assert_eq!(torn.forward_deleted, 3);
    assert_eq!(
        env.route53_records(&zone).await,
        BTreeMap::from([(format!("keep.{DOMAIN}"), vec!["192.0.2.7".to_string()])])
    );
    assert!(aws_entries(&journal).is_empty(), "{:?}", journal.resources);
    assert!(env.tagged("r53").await.is_empty());
}

#[tokio::test]
async fn without_the_a_record_aws_refuses_that_reverse_name_only() {
    let env = Env::start().await;
    let zone = env.route53_zone().await;
    // troll without a zone: the operator publishes the records.
    let aws = env.provider("manual");
    let mut journal = MemoryJournal::default();
    let got = aws.provision(2, &mut journal).await.expect("provision");
    let pairs = got.hops.clone();
    let recs = records(&pairs, &["yes", "no"]);
    // Only the first is in the zone; a stale resolver cache claims both.
    let IpAddr::V4(first) = pairs[0].public else {
        panic!("IPv4")
    };
    foreign_record(&env, &zone, &format!("yes.{DOMAIN}."), &first.to_string()).await;
    let mut cached = TableResolver::default();
    for p in &pairs {
        if let IpAddr::V4(v4) = p.public {
            cached.publish(&format!("yes.{DOMAIN}"), v4);
            cached.publish(&format!("no.{DOMAIN}"), v4);
        }
    }
    let report = aws
        .set_ptrs(&recs, &cached, &mut journal)
        .await
        .expect("one refusal does not fail the run");
    assert!(
        matches!(report.outcomes[0].action, PtrAction::Sent { .. }),
        "{:?}",
        report.outcomes[0]
    );
    match &report.outcomes[1].action {
        PtrAction::Refused { reason } => assert!(
            reason.contains("InvalidParameterValue") && reason.contains(&format!("no.{DOMAIN}")),
            "{reason}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        env.proxy
            .ptr_table()
            .values()
            .filter(|n| n.starts_with("no."))
            .count(),
        0
    );
    aws.teardown(&mut journal).await.expect("teardown");
    assert!(env.tagged("manual").await.is_empty());
}
