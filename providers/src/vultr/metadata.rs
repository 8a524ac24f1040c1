//! The instance's own id from Vultr's metadata service, for runs on the
//! instance: `GET http://169.254.169.254/v1.json`, field `instance-v2-id`
//! (the API v2 id; `instanceid` is the v1 one). It answers only on the
//! instance, needs no key, and is reached in plain HTTP on the link-local
//! address; troll asks nothing else of it.
//! <https://www.vultr.com/metadata/>

use crate::{Error, Result};
use std::time::Duration;

/// Where the metadata document is on every Vultr instance.
pub const METADATA_URL: &str = "http://169.254.169.254/v1.json";
/// Overrides [`METADATA_URL`] (tests serve it on 127.0.0.1).
pub const METADATA_URL_ENV: &str = "TROLL_VULTR_METADATA_URL";

/// The API v2 id of the instance troll runs on. `url` defaults to
/// `TROLL_VULTR_METADATA_URL`, then [`METADATA_URL`]; only link-local or
/// loopback addresses are asked.
pub async fn instance_id_from_metadata(url: Option<&str>) -> Result<String> {
    let url = match url {
        Some(u) => u.to_string(),
        None => std::env::var(METADATA_URL_ENV)
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| METADATA_URL.to_string()),
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| Error::Invalid {
        detail: format!("{METADATA_URL_ENV} is not a URL ({url}): {e}"),
    })?;
    let host = parsed.host_str().unwrap_or_default();
    let local = host == "localhost"
        || match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(a)) => a.is_link_local() || a.is_loopback(),
            Ok(std::net::IpAddr::V6(a)) => a.is_loopback(),
            Err(_) => false,
        };
    if !local || parsed.scheme() != "http" {
        return Err(Error::Invalid {
            detail: format!(
                "the Vultr metadata service is plain http on 169.254.169.254 or loopback, not {url}"
            ),
        });
    }
    let unreachable = |why: String| Error::Invalid {
        detail: format!(
            "no --instance given and the Vultr metadata service ({url}) {why}: run troll on the \
             instance, or give --instance ID or --host ITS-MAIN-IPV4"
        ),
    };
    let http = super::client::http_client_builder()
        .timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| unreachable(format!("cannot be asked ({e})")))?;
    let answer = http
        .get(parsed)
        .send()
        .await
        .map_err(|_| unreachable("did not answer".into()))?;
    if !answer.status().is_success() {
        return Err(unreachable(format!(
            "answered HTTP {}",
            answer.status().as_u16()
        )));
    }
    let doc: serde_json::Value = answer
        .json()
        .await
        .map_err(|_| unreachable("sent no JSON document".into()))?;
    doc.get("instance-v2-id")
        .and_then(serde_json::Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| unreachable("has no instance-v2-id".into()))
}
