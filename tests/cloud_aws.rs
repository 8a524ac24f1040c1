//! The AWS provider through the real CLI, against moto (with the providers
//! crate's proxy in front for what moto lacks, reused here as it is):
//! provision, set-message (forward records checked first), status and
//! teardown, which must leave EC2 exactly as it was. No test reaches AWS.

mod util;

#[path = "../providers/tests/aws/mod.rs"]
mod aws;

use std::process::Command;
use util::{run, run_ok, troll};

fn aws_troll(dir: &std::path::Path, env: &aws::Env) -> Command {
    let mut cmd = troll(dir);
    cmd.env("AWS_ENDPOINT_URL", env.proxy.url())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", aws::REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

/// moto (behind the proxy) and the runtime its helpers run on.
fn moto() -> (tokio::runtime::Runtime, aws::Env) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = rt.block_on(aws::Env::start());
    (rt, env)
}

/// `troll provision` for moto's instance in `aws::DOMAIN`, with `extra`;
/// it succeeds.
fn provision(dir: &std::path::Path, env: &aws::Env, extra: &[&str]) {
    let mut cmd = aws_troll(dir, env);
    cmd.args(["provision", "--provider", "aws", "--instance-id"])
        .args([
            &env.instance_id,
            "--region",
            aws::REGION,
            "--domain",
            aws::DOMAIN,
        ])
        .args(extra);
    run_ok(&mut cmd);
}

#[test]
fn lifecycle_leaves_ec2_as_it_was() {
    let (rt, env) = moto();
    let before = rt.block_on(env.snapshot());
    let dir = tempfile::tempdir().unwrap();
    let message = "Hop One\nHop Two\n\nHop One\nThe End";

    run_ok(aws_troll(dir.path(), &env).args(["set-message", message]));
    provision(dir.path(), &env, &[]);
    assert!(
        !rt.block_on(env.tagged("default")).is_empty(),
        "Elastic IPs tagged with the deployment"
    );
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/default.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["provider"], "aws");
    assert_eq!(
        state["addresses"].as_array().unwrap().len(),
        2,
        "one Elastic IP per distinct line"
    );
    let hop = &state["addresses"][0];
    assert_ne!(
        hop["public"], hop["local"],
        "public Elastic IP, private local address"
    );

    // Again: nothing new.
    let tagged = rt.block_on(env.tagged("default")).len();
    run_ok(aws_troll(dir.path(), &env).args(["provision", "--provider", "aws"]));
    assert_eq!(rt.block_on(env.tagged("default")).len(), tagged);

    // No forward records exist for these names: reported, not sent.
    let r = run_ok(aws_troll(dir.path(), &env).args(["set-message", message]));
    assert!(r.stdout.contains("Create these A records"), "{}", r.stdout);
    assert!(r.stdout.contains("Hop.One.example.com"), "{}", r.stdout);
    assert!(
        env.proxy.ptr_sets().is_empty(),
        "nothing sent to AWS without its forward record"
    );

    let r = run_ok(aws_troll(dir.path(), &env).args(["status", "--json", "--no-resolve"]));
    let status: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(status["provider"], "aws");
    assert_eq!(status["shows"][0]["hops"][0]["hop"]["wanted"], "Hop.One");
    let line = status["shows"][0]["hops"][0]["hop"]["reported"].to_string();
    assert!(
        line.contains("no reverse name: publish its forward A record"),
        "{line}"
    );

    let r = run_ok(aws_troll(dir.path(), &env).args(["teardown"]));
    assert!(r.stdout.contains("Elastic IP(s) released"), "{}", r.stdout);
    assert_eq!(
        rt.block_on(env.snapshot()),
        before,
        "teardown leaves EC2 as it was"
    );
}

#[test]
fn aws_needs_a_domain() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(troll(dir.path()).args(["provision", "--provider", "aws", "--ipv4", "2"]));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--domain"), "{}", r.stderr);
}

#[test]
fn aws_with_ipv6_is_a_clear_error_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(troll(dir.path()).args([
        "provision",
        "--provider",
        "aws",
        "--domain",
        "example.com",
        "--ipv4",
        "1",
        "--ipv6",
    ]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--ipv6") && r.stderr.contains("no reverse DNS for its IPv6"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn a_dry_run_prints_the_plan_and_cost_and_only_describes() {
    let (rt, env) = moto();
    let before = rt.block_on(env.snapshot());
    let dir = tempfile::tempdir().unwrap();
    let r = run_ok(aws_troll(dir.path(), &env).args([
        "provision",
        "--provider",
        "aws",
        "--domain",
        "example.com",
        "--instance",
        &env.instance_id,
        "--message",
        "Hop One\nHop Two\n\nThe End",
        "--dry-run",
    ]));
    let allocations = r.stdout.matches("ec2:AllocateAddress").count();
    assert_eq!(allocations, 3, "two hops and the target: {}", r.stdout);
    assert!(r.stdout.contains("$10.95/month"), "{}", r.stdout);
    assert!(r.stdout.contains("SSH session"), "{}", r.stdout);
    let calls = env.proxy.calls();
    assert!(calls.iter().all(|c| c.starts_with("Describe")), "{calls:?}");
    println!("calls made by the AWS dry run: {}", calls.len());
    assert_eq!(rt.block_on(env.snapshot()), before);
}

#[test]
fn route53_zone_gets_the_a_records_and_loses_them_at_teardown() {
    let (rt, env) = moto();
    let zone = rt.block_on(env.route53_zone());
    let dir = tempfile::tempdir().unwrap();
    run_ok(aws_troll(dir.path(), &env).args(["set-message", "Hop One\nThe End"]));
    provision(dir.path(), &env, &["--route53-zone", &zone]);
    let r = run_ok(aws_troll(dir.path(), &env).args(["set-message", "Hop One\nThe End"]));
    assert!(r.stdout.contains("Route 53"), "{}", r.stdout);
    assert!(!r.stdout.contains("Create these A records"), "{}", r.stdout);
    let records = rt.block_on(env.route53_records(&zone));
    assert!(
        records.contains_key("Hop.One.example.com") || records.contains_key("hop.one.example.com"),
        "{records:?}"
    );
    assert_eq!(
        env.proxy.ptr_sets().len(),
        records.len(),
        "every reverse name sent once its record was written: {records:?}"
    );
    let r = run_ok(aws_troll(dir.path(), &env).args(["teardown"]));
    assert!(
        r.stdout.contains("Route 53 record(s) deleted"),
        "{}",
        r.stdout
    );
    assert!(rt.block_on(env.route53_records(&zone)).is_empty());
    assert!(rt.block_on(env.tagged("default")).is_empty());
}
