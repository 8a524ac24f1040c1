//! The instance id and region from the instance metadata service (IMDSv2).

mod aws;

use aws::imds::FakeImds;
use std::time::{Duration, Instant};
use troll_providers::aws::{instance_identity, InstanceIdentity};

#[tokio::test]
async fn the_instance_and_region_come_from_imdsv2() {
    let imds = FakeImds::start(&[
        ("/latest/meta-data/instance-id", "i-0123456789abcdef0"),
        ("/latest/meta-data/placement/region", "eu-west-3"),
    ]);
    let id = instance_identity(Some(&imds.url()))
        .await
        .expect("identity");
    assert_eq!(
        id,
        InstanceIdentity {
            instance_id: "i-0123456789abcdef0".into(),
            region: "eu-west-3".into(),
        }
    );
    let seen = imds.seen.lock().unwrap().clone();
    assert_eq!(
        seen.first().map(|s| s.0.as_str()),
        Some("PUT"),
        "token first: {seen:?}"
    );
    assert!(
        seen.iter().filter(|s| s.0 == "GET").all(|s| s.2),
        "every read has the token: {seen:?}"
    );
}

#[tokio::test]
async fn no_metadata_service_says_to_give_the_instance_and_region() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let started = Instant::now();
    let err = instance_identity(Some(&format!("http://127.0.0.1:{port}")))
        .await
        .expect_err("nobody answers");
    assert!(
        err.to_string()
            .contains("give the instance id and the region"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "fails fast: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_metadata_service_without_the_region_is_an_error() {
    let imds = FakeImds::start(&[("/latest/meta-data/instance-id", "i-1")]);
    let err = instance_identity(Some(&imds.url()))
        .await
        .expect_err("no region");
    assert!(err.to_string().contains("placement/region"), "{err}");
}
