//! EC2's limits, met before anything is allocated: private addresses per
//! interface (from DescribeInstanceTypes, moto's data being AWS's) and the
//! region's Elastic IP quota (DescribeAccountAttributes). The proxy in
//! front of moto enforces both as EC2 does, so a check that came too late
//! would show as a refusal after an allocation.

mod aws;

use aws::{note, Env};
use aws_sdk_ec2::types::InstanceType;
use troll_providers::{Error, MemoryJournal};

/// The calls that create or change something.
fn changes(calls: &[String]) -> Vec<String> {
    calls
        .iter()
        .filter(|c| !c.starts_with("Describe"))
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_t3_micro_with_two_hops_is_refused_before_any_allocation() {
    let (env, before, aws, mut journal) = Env::begin_on(InstanceType::T3Micro, "micro").await;
    let err = aws.provision(2, &mut journal).await.expect_err("refused");
    let text = err.to_string();
    assert!(matches!(err, Error::Limit { .. }), "{err:?}");
    assert!(text.contains("t3.micro"), "{text}");
    assert!(text.contains("holds 2 private IPv4"), "{text}");
    assert!(text.contains("at most 1 hop"), "{text}");
    assert!(text.contains("t3.small"), "names a type that fits: {text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert_eq!(changes(&env.proxy.calls()), Vec::<String>::new());
    assert_eq!(env.snapshot().await, before, "moto holds no new Elastic IP");
    assert!(journal.resources.is_empty(), "{:?}", journal.resources);

    // One hop fits a t3.micro, and goes away again.
    aws.provision(1, &mut journal).await.expect("one hop fits");
    env.teardown_to(&aws, &mut journal, &before).await;
}

#[tokio::test]
async fn a_t3_small_holds_three_hops_and_ec2_refuses_a_fourth_address() {
    let (env, before, aws, mut journal) = Env::begin_on(InstanceType::T3Small, "small").await;
    let got = aws.provision(3, &mut journal).await.expect("three hops");
    assert_eq!(got.hops.len(), 3);
    let err = aws.provision(4, &mut journal).await.expect_err("four");
    assert!(err.to_string().contains("at most 3 hop"), "{err}");
    // The emulator refuses as EC2 does when a client skips the check.
    let refused = env
        .client
        .assign_private_ip_addresses()
        .network_interface_id(&env.eni)
        .secondary_private_ip_address_count(1)
        .send()
        .await
        .expect_err("EC2 refuses a fifth private address on a t3.small");
    let code = aws_sdk_ec2::error::ProvideErrorMetadata::code(&refused).map(str::to_string);
    assert_eq!(code.as_deref(), Some("PrivateIpAddressLimitExceeded"));
    env.teardown_to(&aws, &mut journal, &before).await;
}

#[tokio::test]
async fn the_elastic_ip_quota_counts_the_hops_and_the_target() {
    let env = Env::start().await;
    // AWS's default quota is 5; the account holds 3 already.
    for _ in 0..3 {
        env.foreign_eip(&[]).await;
    }
    let before = env.snapshot().await;
    let aws = env.provider("quota");
    let mut journal = MemoryJournal::default();
    let err = aws
        .provision(2, &mut journal)
        .await
        .expect_err("2 + target > 2 left");
    let text = err.to_string();
    assert!(text.contains("vpc-max-elastic-ips) is 5"), "{text}");
    assert!(text.contains("holds 3"), "{text}");
    assert!(text.contains("needs 3 more"), "{text}");
    assert_eq!(changes(&env.proxy.calls()), Vec::<String>::new());
    assert_eq!(env.snapshot().await, before);

    // One hop and the target fit exactly; the proxy then refuses a sixth
    // Elastic IP as EC2 does.
    aws.provision(1, &mut journal)
        .await
        .expect("1 + target fit");
    let refused = env
        .client
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .expect_err("the quota is reached");
    let code = aws_sdk_ec2::error::ProvideErrorMetadata::code(&refused).map(str::to_string);
    assert_eq!(code.as_deref(), Some("AddressLimitExceeded"));

    // A raised quota lets the longer show through.
    env.proxy.set_eip_quota(6);
    aws.provision(2, &mut journal).await.expect("quota raised");
    env.teardown_to(&aws, &mut journal, &before).await;
}

#[tokio::test]
async fn security_groups_that_keep_probes_out_are_named() {
    let (env, before, aws, mut journal) = Env::begin("groups").await;
    let got = aws.provision(1, &mut journal).await.expect("provision");
    let note = note(&got.notes, "security group");
    assert!(
        note.contains("UDP 33434-33534")
            && note.contains("ICMP echo request")
            && note.contains("TCP 80"),
        "{note}"
    );
    // Open to the world: nothing to say any more.
    env.direct
        .authorize_security_group_ingress()
        .group_id(&env.group_id)
        .ip_protocol("-1")
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .expect("open the group");
    let got = aws.provision(1, &mut journal).await.expect("provision");
    assert!(
        !got.notes.iter().any(|n| n.contains("security group")),
        "{:?}",
        got.notes
    );
    env.teardown_to(&aws, &mut journal, &before).await;
}
