//! Which instance troll runs on, from the instance metadata service
//! (IMDSv2: a session token first, then the reads), so that an operator on
//! the instance gives neither the instance id nor the region.

use crate::{Error, Result};
use std::time::Duration;

/// The default endpoint; `AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides it.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

/// The instance and region the metadata service reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIdentity {
    pub instance_id: String,
    pub region: String,
}

/// Asks the metadata service at `endpoint` (default: the standard one, or
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT`) for the instance id and region.
/// Off EC2 this fails within a few seconds with an error that says to
/// give both.
pub async fn instance_identity(endpoint: Option<&str>) -> Result<InstanceIdentity> {
    let mut builder = aws_config::imds::Client::builder()
        .max_attempts(2)
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2));
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint(endpoint).map_err(|e| Error::Invalid {
            detail: format!("the instance metadata endpoint {endpoint:?} is not a URL: {e}"),
        })?;
    }
    let client = builder.build();
    let read = |path: &'static str| {
        let client = client.clone();
        async move {
            let value = client.get(path).await.map_err(|e| Error::Invalid {
                detail: format!(
                    "cannot read {path} from the instance metadata service at {} ({}); \
                     when troll does not run on the EC2 instance, give the instance id and the region",
                    endpoint.unwrap_or("its default address"),
                    aws_sdk_ec2::error::DisplayErrorContext(&e),
                ),
            })?;
            let value = value.as_ref().trim().to_string();
            if value.is_empty() {
                return Err(Error::Invalid {
                    detail: format!("the instance metadata service answered {path} with nothing"),
                });
            }
            Ok(value)
        }
    };
    Ok(InstanceIdentity {
        instance_id: read("/latest/meta-data/instance-id").await?,
        region: read("/latest/meta-data/placement/region").await?,
    })
}
