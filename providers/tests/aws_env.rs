//! The provider built the way the CLI builds it: endpoint from
//! `AWS_ENDPOINT_URL_EC2`, credentials from the environment, instance and
//! region from the metadata service. Alone in its test binary because it
//! sets process environment variables.

mod aws;

use aws::imds::FakeImds;
use aws::Env;
use troll_providers::aws::{AwsProvider, AwsSettings};
use troll_providers::MemoryJournal;

#[tokio::test]
async fn connect_reads_the_standard_environment_and_the_metadata_service() {
    let env = Env::start().await;
    let before = env.snapshot().await;
    let imds = FakeImds::start(&[
        ("/latest/meta-data/instance-id", env.instance_id.as_str()),
        ("/latest/meta-data/placement/region", aws::REGION),
    ]);
    let home = std::env::temp_dir().join(format!("troll-aws-env-{}", std::process::id()));
    // SAFETY (edition 2021: not unsafe yet): this binary has one test, and
    // the variables are set before any thread reads them.
    for (k, v) in [
        ("AWS_ENDPOINT_URL_EC2", env.proxy.url()),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_CONFIG_FILE", home.join("config").display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("credentials").display().to_string(),
        ),
    ] {
        std::env::set_var(k, v);
    }
    for k in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
    ] {
        std::env::remove_var(k);
    }

    let aws = AwsProvider::connect(AwsSettings {
        deployment: "env".into(),
        domain: "example.com".into(),
        instance_id: None,
        region: None,
    })
    .await
    .expect("connect");
    assert_eq!(aws.instance_id(), env.instance_id);
    assert_eq!(aws.region(), aws::REGION);

    let calls = env.proxy.calls().len();
    let mut journal = MemoryJournal::default();
    let got = aws
        .provision(1, &mut journal)
        .await
        .expect("provision through the env endpoint");
    assert_eq!(got.hops.len(), 1);
    assert!(
        env.proxy.calls().len() > calls,
        "the calls went through AWS_ENDPOINT_URL_EC2"
    );
    aws.teardown(&mut journal).await.expect("teardown");
    assert_eq!(env.snapshot().await, before);
}
