//! A kill at every call position of a whole run (provision, reverse DNS,
//! teardown) followed by a re-run leaks nothing: the journal's intents and
//! the deployment's tags are enough to find everything.
//!
//! The forward records go into a moto Route 53 zone, so the Route 53
//! calls (ChangeResourceRecordSets, GetChange, ListResourceRecordSets) are
//! positions too. The proxy stops answering at the N-th EC2 or Route 53 call, either before moto sees
//! it or after moto acted (the answer is lost); the test then drops the
//! run's future, as a killed process would stop, and runs again.

mod aws;

use aws::{aws_entries, published, Env, KillPoint};
use std::time::Instant;
use troll_providers::aws::{AwsProvider, Provisioned};
use troll_providers::MemoryJournal;

const HOPS: usize = 2;
const NAMES: [&str; HOPS + 1] = ["one", "two", "me"];

/// A whole run: provision, reverse DNS, teardown.
async fn run(aws: &AwsProvider, journal: &mut MemoryJournal) -> troll_providers::Result<()> {
    let got = aws.provision(HOPS, journal).await?;
    ptrs_and_teardown(aws, journal, got).await
}

/// Publishes the forward records of the Elastic IPs, sets the PTRs (what
/// an operator does between provision and set-message), tears down.
async fn ptrs_and_teardown(
    aws: &AwsProvider,
    journal: &mut MemoryJournal,
    got: Provisioned,
) -> troll_providers::Result<()> {
    let mut pairs = got.hops.clone();
    pairs.push(got.target);
    let (dns, recs) = published(&pairs, &NAMES);
    aws.set_ptrs(&recs, &dns, journal).await?;
    aws.teardown(journal).await?;
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Recovery {
    /// provision, set the PTRs, teardown.
    RunAgain,
    /// teardown straight away.
    Teardown,
}

async fn kill_everywhere(point: KillPoint, recovery: Recovery) {
    let env = Env::start().await;
    env.foreign_eip(&[]).await;
    let before = env.snapshot().await;
    // The forward records go into a Route 53 zone, so the loop covers
    // their calls too.
    let zone = env.route53_zone().await;
    let aws = env.provider_with_zone("crash", &zone);

    let start = env.proxy.calls().len();
    run(&aws, &mut MemoryJournal::default())
        .await
        .expect("a clean run");
    let total = env.proxy.calls().len() - start;
    assert!(total > 20, "a run makes {total} calls");
    assert_eq!(env.snapshot().await, before);
    let clean_run = env.proxy.calls()[start..].to_vec();
    assert!(
        clean_run.iter().any(|c| c == "ChangeResourceRecordSets"),
        "{clean_run:?}"
    );
    assert!(env.route53_records(&zone).await.is_empty());

    let started = Instant::now();
    for at in 1..=total {
        let mut journal = MemoryJournal::default();
        let killed = env.proxy.arm_kill(at, point);
        let action = tokio::select! {
            biased;
            action = killed => action.expect("the kill fired"),
            done = run(&aws, &mut journal) => panic!("the run ended before call {at}: {done:?}"),
        };
        env.proxy.disarm();
        let context =
            format!("killed {point:?} call {at} of {total} ({action}), then {recovery:?}");

        match recovery {
            Recovery::RunAgain => {
                let got = aws
                    .provision(HOPS, &mut journal)
                    .await
                    .unwrap_or_else(|e| panic!("{context}: provision: {e}"));
                assert_eq!(got.hops.len(), HOPS);
                assert_eq!(
                    env.tagged("crash").await.len(),
                    HOPS + 1,
                    "{context}: nothing allocated twice"
                );
                ptrs_and_teardown(&aws, &mut journal, got)
                    .await
                    .unwrap_or_else(|e| panic!("{context}: run: {e}"));
            }
            Recovery::Teardown => {
                aws.teardown(&mut journal)
                    .await
                    .unwrap_or_else(|e| panic!("{context}: teardown: {e}"));
            }
        }
        assert!(
            aws_entries(&journal).is_empty(),
            "{context}: journal left {:?}",
            journal.resources
        );
        assert!(
            env.tagged("crash").await.is_empty(),
            "{context}: tagged Elastic IPs left"
        );
        assert_eq!(env.snapshot().await, before, "{context}");
        assert_eq!(
            env.route53_records(&zone).await,
            Default::default(),
            "{context}: Route 53 records left"
        );
    }
    eprintln!(
        "{total} kill positions, {point:?}, {recovery:?}: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_kill_before_any_call_then_a_rerun_leaks_nothing() {
    kill_everywhere(KillPoint::Before, Recovery::RunAgain).await;
}

#[tokio::test]
async fn a_kill_after_any_call_then_a_rerun_leaks_nothing() {
    kill_everywhere(KillPoint::After, Recovery::RunAgain).await;
}

#[tokio::test]
async fn a_kill_after_any_call_then_teardown_leaks_nothing() {
    kill_everywhere(KillPoint::After, Recovery::Teardown).await;
}
