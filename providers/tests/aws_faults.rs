//! EC2 failures: a denied action is named with where to grant it;
//! throttling and server errors are retried a bounded number of times;
//! reverse DNS that AWS is slow to remove stops teardown with a clear
//! error and nothing lost.

mod aws;

use aws::{client, fast_wait, published, Env};
use aws_sdk_ec2::config::retry::RetryConfig;
use std::time::Duration;
use troll_providers::aws::{AwsProvider, PtrAction, PtrWait};
use troll_providers::{Error, MemoryJournal};

const ENCODED_ONLY: &str =
    "You are not authorized to perform this operation. Encoded authorization failure message: 4f2a";

#[tokio::test]
async fn a_denied_action_is_named_with_the_policy_to_fix() {
    let (env, before, aws, mut journal) = Env::begin("denied").await;

    env.proxy.deny("AllocateAddress", ENCODED_ONLY);
    let err = aws.provision(1, &mut journal).await.expect_err("denied");
    assert_eq!(
        err.to_string(),
        "AWS denied ec2:AllocateAddress; add it to the instance role's policy (see docs/providers/aws.md)"
    );

    // Tagging at allocation needs ec2:CreateTags; AWS says so in the message.
    env.proxy.deny(
        "AllocateAddress",
        "You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/troll/i-1 \
         is not authorized to perform: ec2:CreateTags on resource: arn:aws:ec2:us-east-1:123456789012:elastic-ip/* \
         because no identity-based policy allows the ec2:CreateTags action. Encoded authorization failure message: 9c",
    );
    let err = aws.provision(1, &mut journal).await.expect_err("denied");
    assert!(
        matches!(&err, Error::Permission { action, .. } if action == "ec2:CreateTags"),
        "{err}"
    );

    env.proxy.allow_all();
    env.proxy.deny("AssociateAddress", "");
    let err = aws.provision(1, &mut journal).await.expect_err("denied");
    assert!(
        err.to_string()
            .starts_with("AWS denied ec2:AssociateAddress;"),
        "{err}"
    );

    assert_eq!(count(&env, "AllocateAddress"), 3, "no retries of a denial");

    // With the permissions granted, the same journal finishes and cleans up.
    env.proxy.allow_all();
    let got = aws.provision(1, &mut journal).await.expect("provision");
    env.proxy.deny("ModifyAddressAttribute", ENCODED_ONLY);
    let (dns, recs) = published(&got.hops, &["x"]);
    let err = aws
        .set_ptrs(&recs, &dns, &mut journal)
        .await
        .expect_err("denied");
    assert!(
        err.to_string().contains("ec2:ModifyAddressAttribute"),
        "{err}"
    );
    env.proxy.deny("ReleaseAddress", ENCODED_ONLY);
    let err = aws.teardown(&mut journal).await.expect_err("denied");
    assert!(err.to_string().contains("ec2:ReleaseAddress"), "{err}");
    env.proxy.allow_all();
    env.teardown_to(&aws, &mut journal, &before).await;
}

fn retrying(env: &Env, attempts: u32) -> AwsProvider {
    let retry = RetryConfig::standard()
        .with_max_attempts(attempts)
        .with_initial_backoff(Duration::from_millis(1))
        .with_max_backoff(Duration::from_millis(5));
    AwsProvider::with_client(client(&env.proxy.url(), retry), env.settings("retry"))
        .expect("provider")
        .with_ptr_wait(fast_wait())
}

fn count(env: &Env, action: &str) -> usize {
    env.proxy.calls().iter().filter(|c| *c == action).count()
}

/// Fails DescribeInstances with `status` and `code` (more often than any
/// retry budget), provisions a hop, and returns the error and how many
/// DescribeInstances calls the provision made.
async fn provision_failing(
    env: &Env,
    aws: &AwsProvider,
    journal: &mut MemoryJournal,
    status: u16,
    code: &str,
) -> (Error, usize) {
    env.proxy.fail("DescribeInstances", status, code, 10);
    let calls = count(env, "DescribeInstances");
    let err = aws
        .provision(1, journal)
        .await
        .expect_err(&format!("DescribeInstances still fails with {code}"));
    (err, count(env, "DescribeInstances") - calls)
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_a_bounded_number_of_times() {
    let (env, before, _, mut journal) = Env::begin("retry").await;
    let aws = retrying(&env, 3);

    env.proxy
        .fail("AllocateAddress", 503, "RequestLimitExceeded", 2);
    env.proxy.fail("DescribeInstances", 500, "InternalError", 2);
    aws.provision(1, &mut journal)
        .await
        .expect("retried to success");
    assert_eq!(count(&env, "DescribeInstances"), 3);

    let (err, calls) =
        provision_failing(&env, &aws, &mut journal, 503, "RequestLimitExceeded").await;
    assert!(matches!(err, Error::RateLimited { .. }), "{err}");
    assert_eq!(calls, 3, "bounded");

    let (err, calls) = provision_failing(&env, &aws, &mut journal, 500, "InternalError").await;
    assert!(matches!(err, Error::Api { .. }), "{err}");
    assert!(err.to_string().contains("ec2:DescribeInstances"), "{err}");
    assert_eq!(calls, 3, "bounded");

    // With retries off (as in the other tests) one failure is final.
    env.proxy.fail("DescribeInstances", 500, "InternalError", 1);
    let calls = count(&env, "DescribeInstances");
    let err = env
        .provider("retry")
        .teardown(&mut journal)
        .await
        .expect_err("no retry");
    assert!(matches!(err, Error::Api { .. }), "{err}");
    assert_eq!(count(&env, "DescribeInstances") - calls, 1);

    env.proxy.fail("DescribeInstances", 500, "InternalError", 0);
    env.teardown_to(&aws, &mut journal, &before).await;
}

#[tokio::test]
async fn slow_reverse_dns_removal_stops_teardown_without_losing_anything() {
    let (env, before, aws, mut journal) = Env::begin("slow").await;
    let aws = aws.with_ptr_wait(PtrWait {
        timeout: Duration::from_millis(200),
        interval: Duration::from_millis(20),
    });
    let got = aws.provision(1, &mut journal).await.expect("provision");
    let (dns, recs) = published(&got.hops, &["slow"]);
    aws.set_ptrs(&recs, &dns, &mut journal)
        .await
        .expect("set ptr");

    env.proxy.set_pending_reads(1_000_000);
    let err = aws.teardown(&mut journal).await.expect_err("still pending");
    assert!(
        err.to_string().contains("still removing the reverse DNS"),
        "{err}"
    );
    assert_eq!(
        env.tagged("slow").await.len(),
        2,
        "nothing released with a PTR"
    );

    env.proxy.set_pending_reads(0);
    // The reset is in flight: teardown waits for it instead of resetting again.
    let resets = count(&env, "ResetAddressAttribute");
    env.teardown_to(&aws, &mut journal, &before).await;
    assert_eq!(count(&env, "ResetAddressAttribute"), resets);
}

#[tokio::test]
async fn a_name_aws_refuses_is_reported_and_the_other_lines_still_go() {
    let (env, before, aws, mut journal) = Env::begin("refused").await;
    let got = aws.provision(2, &mut journal).await.expect("provision");
    let (dns, recs) = published(&got.hops, &["first", "second"]);
    env.proxy
        .fail("ModifyAddressAttribute", 400, "InvalidParameterValue", 1);
    let report = aws
        .set_ptrs(&recs, &dns, &mut journal)
        .await
        .expect("set ptrs");
    assert!(
        matches!(&report.outcomes[0].action, PtrAction::Refused { reason } if reason.contains("InvalidParameterValue")),
        "{report:?}"
    );
    assert!(
        matches!(report.outcomes[1].action, PtrAction::Sent { .. }),
        "{report:?}"
    );
    // Run again: the refused one goes now, the other is not sent twice.
    let again = aws
        .set_ptrs(&recs, &dns, &mut journal)
        .await
        .expect("set ptrs again");
    let sent: Vec<bool> = again
        .outcomes
        .iter()
        .map(|o| matches!(o.action, PtrAction::Sent { .. }))
        .collect();
    assert_eq!(sent, [true, false], "{again:?}");
    env.teardown_to(&aws, &mut journal, &before).await;
}
