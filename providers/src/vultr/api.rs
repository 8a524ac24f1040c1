//! One function per Vultr API v2 call that troll makes, each with its API
//! reference above it, and the answers as typed values. The API's JSON is
//! read into lenient private structs first (every field optional) and then
//! checked, so an odd answer is an error naming the call, never a panic.

use super::client::{Call, Client};
use crate::{Error, Result};
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Lists ask for the largest page the API gives.
const PER_PAGE: u32 = 500;
/// A list longer than this many pages is an API fault, not a real list.
const MAX_PAGES: usize = 200;

/// An instance, as far as troll needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// The instance's main IPv4 address: the default target.
    pub main_ip: Ipv4Addr,
    pub region: String,
    /// The instance's IPv6 network, when IPv6 is enabled on it.
    pub v6: Option<V6Network>,
    /// The firewall group attached to it, if any.
    pub firewall_group_id: Option<String>,
    /// `running` once booted (`power_status`).
    pub power_status: String,
    /// `ok` once no task runs on it (`server_status`).
    pub server_status: String,
}

impl Instance {
    /// Running, and no task in progress.
    pub fn is_ready(&self) -> bool {
        self.power_status == "running"
            && (self.server_status.is_empty() || self.server_status == "ok")
    }
}

/// One inbound rule of a firewall group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallRule {
    /// `v4` or `v6`.
    pub ip_type: String,
    /// `icmp`, `tcp`, `udp`, `gre` (lower case).
    pub protocol: String,
    /// A port, a range `low:high`, or empty for all.
    pub port: String,
    pub subnet: String,
    pub subnet_size: u8,
}

/// The IPv6 network routed to an instance (a /64 at Vultr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V6Network {
    pub network: Ipv6Addr,
    pub prefix_len: u8,
    /// The instance's own address in it: the default IPv6 target.
    pub main_ip: Option<Ipv6Addr>,
}

impl V6Network {
    pub fn contains(&self, address: Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix_len))
            .unwrap_or(0);
        u128::from(address) & mask == u128::from(self.network) & mask
    }
}

/// One IPv4 address of an instance, with its reverse DNS name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceIpv4 {
    pub ip: Ipv4Addr,
    /// `main_ip`, `secondary_ip` or `private`.
    pub kind: String,
    pub reverse: String,
}

impl InstanceIpv4 {
    /// Public and not the main address: an additional IPv4 or an attached
    /// reserved IP.
    pub fn is_secondary(&self) -> bool {
        self.kind != "main_ip" && self.kind != "private"
    }
}

/// One IPv6 reverse DNS entry of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReverseIpv6 {
    pub ip: Ipv6Addr,
    pub reverse: String,
}

/// A reserved IP of the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedIp {
    pub id: String,
    pub region: String,
    /// `v4` or `v6`.
    pub ip_type: String,
    /// For a reserved IPv4, the address itself.
    pub subnet: String,
    pub label: String,
    /// The instance it is attached to.
    pub instance_id: Option<String>,
}

impl ReservedIp {
    /// The address of a reserved IPv4.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        self.subnet.parse().ok()
    }
}

/// An IPv6 address in the full form the reverse DNS calls want:
/// `2001:0db8:0000:0000:0000:0000:0000:1000`.
pub fn expanded(address: Ipv6Addr) -> String {
    address
        .segments()
        .iter()
        .map(|s| format!("{s:04x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// An id the API gave us, checked before it goes into a path.
fn segment(what: &str, id: &str) -> Result<String> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(id.to_string())
    } else {
        Err(Error::Invalid {
            detail: format!("{what} {id:?} is not a Vultr id (letters, digits and '-' only)"),
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Meta {
    links: Links,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Links {
    next: Option<String>,
}

impl Client {
    /// Follows `meta.links.next` cursors until the last page; `items` takes
    /// one page's entries out of its answer.
    async fn list_pages<P, T>(
        &self,
        make: impl Fn() -> Call,
        items: impl Fn(P) -> (Vec<T>, Meta),
    ) -> Result<Vec<T>>
    where
        P: serde::de::DeserializeOwned,
    {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let mut call = make().query("per_page", PER_PAGE.to_string());
            if let Some(c) = &cursor {
                call = call.query("cursor", c.clone());
            }
            let page: P = self.send_json(&call).await?;
            let (entries, meta) = items(page);
            all.extend(entries);
            match meta.links.next.filter(|n| !n.is_empty()) {
                Some(next) if seen.insert(next.clone()) => cursor = Some(next),
                Some(_) => return Err(call.error("the API sent the same page cursor twice")),
                None => return Ok(all),
            }
        }
        Err(make().error(format!("the list has more than {MAX_PAGES} pages")))
    }

    /// `GET /instances/{instance-id}`
    /// <https://www.vultr.com/api/#tag/instances/operation/get-instance>
    pub async fn get_instance(&self, instance_id: &str) -> Result<Instance> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::GET,
            format!("/instances/{id}"),
            format!("getting instance {id}"),
            format!("instance {id}"),
        );
        #[derive(Deserialize)]
        struct Answer {
            instance: RawInstance,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct RawInstance {
            id: Option<String>,
            main_ip: Option<String>,
            region: Option<String>,
            v6_network: Option<String>,
            v6_network_size: Option<u32>,
            v6_main_ip: Option<String>,
            v6_networks: Vec<RawV6>,
            firewall_group_id: Option<String>,
            power_status: Option<String>,
            server_status: Option<String>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct RawV6 {
            network: Option<String>,
            main_ip: Option<String>,
            network_size: Option<u32>,
        }
        let raw = self.send_json::<Answer>(&call).await?.instance;
        let main_ip = raw
            .main_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .ok_or_else(|| call.error("the instance has no main IPv4 address"))?;
        let flat = RawV6 {
            network: raw.v6_network,
            main_ip: raw.v6_main_ip,
            network_size: raw.v6_network_size,
        };
        let v6 = std::iter::once(flat)
            .chain(raw.v6_networks)
            .find(|n| n.network.as_deref().is_some_and(|n| !n.is_empty()))
            .map(|n| {
                let network: Ipv6Addr =
                    n.network
                        .as_deref()
                        .unwrap_or_default()
                        .parse()
                        .map_err(|_| {
                            call.error(format!(
                                "the instance's IPv6 network {:?} is not an address",
                                n.network
                            ))
                        })?;
                let prefix_len = n.network_size.unwrap_or(64);
                if !(1..=128).contains(&prefix_len) {
                    return Err(call.error(format!(
                        "the IPv6 network size /{prefix_len} is not possible"
                    )));
                }
                let main_ip = n.main_ip.as_deref().and_then(|ip| ip.parse().ok());
                Ok(V6Network {
                    network,
                    prefix_len: prefix_len as u8,
                    main_ip,
                })
            })
            .transpose()?;
        Ok(Instance {
            id: raw.id.filter(|i| !i.is_empty()).unwrap_or(id),
            main_ip,
            region: raw.region.unwrap_or_default(),
            v6,
            firewall_group_id: raw.firewall_group_id.filter(|g| !g.is_empty()),
            power_status: raw.power_status.unwrap_or_default(),
            server_status: raw.server_status.unwrap_or_default(),
        })
    }

    /// `GET /instances/{instance-id}/ipv4`
    /// <https://www.vultr.com/api/#tag/instances/operation/get-instance-ipv4>
    pub async fn list_instance_ipv4(&self, instance_id: &str) -> Result<Vec<InstanceIpv4>> {
        let id = segment("instance", instance_id)?;
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Page {
            ipv4s: Vec<RawIpv4>,
            meta: Meta,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct RawIpv4 {
            ip: String,
            #[serde(rename = "type")]
            kind: String,
            reverse: String,
        }
        let make = || {
            Call::new(
                Method::GET,
                format!("/instances/{id}/ipv4"),
                format!("listing the IPv4 addresses of instance {id}"),
                format!("instance {id}"),
            )
        };
        let raw = self.list_pages(make, |p: Page| (p.ipv4s, p.meta)).await?;
        raw.into_iter()
            .map(|r| {
                let ip = r.ip.parse().map_err(|_| {
                    make().error(format!(
                        "the API listed {:?}, which is not an IPv4 address",
                        r.ip
                    ))
                })?;
                Ok(InstanceIpv4 {
                    ip,
                    kind: r.kind,
                    reverse: r.reverse,
                })
            })
            .collect()
    }

    /// `POST /instances/{instance-id}/ipv4` with `reboot: false` (the API's
    /// default reboots the instance). Returns the new address when the
    /// answer names it; the specification promises an empty object, so the
    /// caller must be able to find the address in the list instead.
    /// <https://www.vultr.com/api/#tag/instances/operation/create-instance-ipv4>
    pub async fn create_instance_ipv4(&self, instance_id: &str) -> Result<Option<Ipv4Addr>> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::POST,
            format!("/instances/{id}/ipv4"),
            format!("adding an IPv4 address to instance {id}"),
            format!("instance {id}"),
        )
        .body(json!({ "reboot": false }));
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Answer {
            ipv4: Option<RawIp>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct RawIp {
            ip: Option<String>,
        }
        let body = self.send(&call).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| call.error(format!("the Vultr API's answer could not be read: {e}")))?;
        match answer.ipv4.and_then(|i| i.ip) {
            None => Ok(None),
            Some(ip) => ip.parse().map(Some).map_err(|_| {
                call.error(format!(
                    "the API answered {ip:?}, which is not an IPv4 address"
                ))
            }),
        }
    }

    /// `DELETE /instances/{instance-id}/ipv4/{ipv4}`
    /// <https://www.vultr.com/api/#tag/instances/operation/delete-instance-ipv4>
    pub async fn delete_instance_ipv4(&self, instance_id: &str, ip: Ipv4Addr) -> Result<()> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::DELETE,
            format!("/instances/{id}/ipv4/{ip}"),
            format!("deleting additional IPv4 {ip} on instance {id}"),
            format!("additional IPv4 {ip} on instance {id}"),
        );
        self.send(&call).await.map(drop)
    }

    /// `POST /instances/{instance-id}/ipv4/reverse`
    /// <https://www.vultr.com/api/#tag/instances/operation/create-instance-reverse-ipv4>
    pub async fn set_reverse_ipv4(
        &self,
        instance_id: &str,
        ip: Ipv4Addr,
        name: &str,
    ) -> Result<()> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::POST,
            format!("/instances/{id}/ipv4/reverse"),
            format!("setting the reverse DNS of {ip} on instance {id} to {name}"),
            format!("IPv4 {ip} on instance {id}"),
        )
        .body(json!({ "ip": ip.to_string(), "reverse": name }))
        .idempotent();
        self.send(&call).await.map(drop)
    }

    /// `POST /instances/{instance-id}/ipv4/reverse/default`
    /// <https://www.vultr.com/api/#tag/instances/operation/post-instances-instance-id-ipv4-reverse-default>
    pub async fn reset_reverse_ipv4(&self, instance_id: &str, ip: Ipv4Addr) -> Result<()> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::POST,
            format!("/instances/{id}/ipv4/reverse/default"),
            format!("resetting the reverse DNS of {ip} on instance {id}"),
            format!("IPv4 {ip} on instance {id}"),
        )
        .body(json!({ "ip": ip.to_string() }))
        .idempotent();
        self.send(&call).await.map(drop)
    }

    /// `GET /instances/{instance-id}/ipv6/reverse`
    /// <https://www.vultr.com/api/#tag/instances/operation/list-instance-ipv6-reverse>
    pub async fn list_reverse_ipv6(&self, instance_id: &str) -> Result<Vec<ReverseIpv6>> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::GET,
            format!("/instances/{id}/ipv6/reverse"),
            format!("listing the IPv6 reverse DNS entries of instance {id}"),
            format!("instance {id}"),
        );
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Answer {
            reverse_ipv6s: Vec<RawReverse>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct RawReverse {
            ip: String,
            reverse: String,
        }
        let answer: Answer = self.send_json(&call).await?;
        answer
            .reverse_ipv6s
            .into_iter()
            .map(|r| {
                let ip = r.ip.parse().map_err(|_| {
                    call.error(format!(
                        "the API listed {:?}, which is not an IPv6 address",
                        r.ip
                    ))
                })?;
                Ok(ReverseIpv6 {
                    ip,
                    reverse: r.reverse,
                })
            })
            .collect()
    }

    /// `POST /instances/{instance-id}/ipv6/reverse`, the address in full form.
    /// <https://www.vultr.com/api/#tag/instances/operation/create-instance-reverse-ipv6>
    pub async fn set_reverse_ipv6(
        &self,
        instance_id: &str,
        ip: Ipv6Addr,
        name: &str,
    ) -> Result<()> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::POST,
            format!("/instances/{id}/ipv6/reverse"),
            format!("setting the reverse DNS of {ip} on instance {id} to {name}"),
            format!("IPv6 {ip} on instance {id}"),
        )
        .body(json!({ "ip": expanded(ip), "reverse": name }))
        .idempotent();
        self.send(&call).await.map(drop)
    }

    /// `DELETE /instances/{instance-id}/ipv6/reverse/{ipv6}`
    /// <https://www.vultr.com/api/#tag/instances/operation/delete-instance-reverse-ipv6>
    pub async fn delete_reverse_ipv6(&self, instance_id: &str, ip: Ipv6Addr) -> Result<()> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::DELETE,
            format!("/instances/{id}/ipv6/reverse/{}", expanded(ip)),
            format!("deleting the reverse DNS of {ip} on instance {id}"),
            format!("a reverse DNS entry for {ip} on instance {id}"),
        );
        self.send(&call).await.map(drop)
    }

    /// `PATCH /instances/{instance-id}` with `enable_ipv6: true`: gives
    /// the instance its IPv6 /64 (setting it twice changes nothing).
    /// <https://www.vultr.com/api/#tag/instances/operation/update-instance>
    pub async fn enable_ipv6(&self, instance_id: &str) -> Result<()> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::PATCH,
            format!("/instances/{id}"),
            format!("turning IPv6 on for instance {id}"),
            format!("instance {id}"),
        )
        .body(json!({ "enable_ipv6": true }))
        .idempotent();
        self.send(&call).await.map(drop)
    }

    /// `POST /instances/{instance-id}/reboot`
    /// <https://www.vultr.com/api/#tag/instances/operation/reboot-instance>
    pub async fn reboot_instance(&self, instance_id: &str) -> Result<()> {
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::POST,
            format!("/instances/{id}/reboot"),
            format!("restarting instance {id}"),
            format!("instance {id}"),
        )
        .idempotent();
        self.send(&call).await.map(drop)
    }

    /// `GET /instances?main_ip=ADDR`: the id of the instance whose main
    /// IPv4 is `ip`.
    /// <https://www.vultr.com/api/#tag/instances/operation/list-instances>
    pub async fn find_instance_by_main_ip(&self, ip: Ipv4Addr) -> Result<String> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Page {
            instances: Vec<RawListed>,
            meta: Meta,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct RawListed {
            id: Option<String>,
            main_ip: Option<String>,
        }
        let make = || {
            Call::new(
                Method::GET,
                "/instances".to_string(),
                format!("finding the instance with main IPv4 {ip}"),
                format!("an instance with main IPv4 {ip}"),
            )
            .query("main_ip", ip.to_string())
        };
        let listed = self
            .list_pages(make, |p: Page| (p.instances, p.meta))
            .await?;
        let ids: Vec<String> = listed
            .into_iter()
            .filter(|i| i.main_ip.as_deref() == Some(ip.to_string().as_str()))
            .filter_map(|i| i.id.filter(|id| !id.is_empty()))
            .collect();
        match ids.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(Error::NotFound {
                provider: super::client::PROVIDER,
                what: format!("instance with main IPv4 {ip} in this account"),
            }),
            _ => Err(Error::Invalid {
                detail: format!(
                    "{} instances have main IPv4 {ip}; give --instance ID",
                    ids.len()
                ),
            }),
        }
    }

    /// `GET /firewalls/{firewall-group-id}/rules`
    /// <https://www.vultr.com/api/#tag/firewall/operation/list-firewall-group-rules>
    pub async fn list_firewall_rules(&self, group_id: &str) -> Result<Vec<FirewallRule>> {
        let id = segment("firewall group", group_id)?;
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Page {
            firewall_rules: Vec<RawRule>,
            meta: Meta,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct RawRule {
            ip_type: Option<String>,
            protocol: Option<String>,
            port: Option<String>,
            subnet: Option<String>,
            subnet_size: Option<u8>,
        }
        let make = || {
            Call::new(
                Method::GET,
                format!("/firewalls/{id}/rules"),
                format!("listing the rules of firewall group {id}"),
                format!("firewall group {id}"),
            )
        };
        let raw = self
            .list_pages(make, |p: Page| (p.firewall_rules, p.meta))
            .await?;
        Ok(raw
            .into_iter()
            .map(|r| FirewallRule {
                ip_type: r.ip_type.unwrap_or_default().to_ascii_lowercase(),
                protocol: r.protocol.unwrap_or_default().to_ascii_lowercase(),
                port: r.port.unwrap_or_default(),
                subnet: r.subnet.unwrap_or_default(),
                subnet_size: r.subnet_size.unwrap_or(0),
            })
            .collect())
    }

    /// `GET /reserved-ips` (the API has no label filter; callers filter).
    /// <https://www.vultr.com/api/#tag/reserved-ip/operation/list-reserved-ips>
    pub async fn list_reserved_ips(&self) -> Result<Vec<ReservedIp>> {
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Page {
            reserved_ips: Vec<RawReserved>,
            meta: Meta,
        }
        let make = || {
            Call::new(
                Method::GET,
                "/reserved-ips".to_string(),
                "listing the account's reserved IPs".to_string(),
                "reserved IP list".to_string(),
            )
        };
        let raw = self
            .list_pages(make, |p: Page| (p.reserved_ips, p.meta))
            .await?;
        Ok(raw.into_iter().map(RawReserved::into_reserved).collect())
    }

    /// `POST /reserved-ips` with `ip_type: v4`.
    /// <https://www.vultr.com/api/#tag/reserved-ip/operation/create-reserved-ip>
    pub async fn create_reserved_ipv4(&self, region: &str, label: &str) -> Result<ReservedIp> {
        let call = Call::new(
            Method::POST,
            "/reserved-ips".to_string(),
            format!("creating a reserved IPv4 labelled {label} in region {region}"),
            format!("region {region}"),
        )
        .body(json!({ "region": region, "ip_type": "v4", "label": label }));
        #[derive(Deserialize)]
        struct Answer {
            reserved_ip: RawReserved,
        }
        let answer: Answer = self.send_json(&call).await?;
        let reserved = answer.reserved_ip.into_reserved();
        if reserved.id.is_empty() || reserved.ipv4().is_none() {
            return Err(call.error(format!(
                "the answer has no id or IPv4 address (id {:?}, subnet {:?}); the next provision or teardown finds it by its label",
                reserved.id, reserved.subnet
            )));
        }
        Ok(reserved)
    }

    /// `POST /reserved-ips/{reserved-ip}/attach`
    /// <https://www.vultr.com/api/#tag/reserved-ip/operation/attach-reserved-ip>
    pub async fn attach_reserved_ip(&self, reserved_id: &str, instance_id: &str) -> Result<()> {
        let rid = segment("reserved IP", reserved_id)?;
        let id = segment("instance", instance_id)?;
        let call = Call::new(
            Method::POST,
            format!("/reserved-ips/{rid}/attach"),
            format!("attaching reserved IP {rid} to instance {id}"),
            format!("reserved IP {rid} or instance {id}"),
        )
        .body(json!({ "instance_id": id }))
        .idempotent();
        self.send(&call).await.map(drop)
    }

    /// `POST /reserved-ips/{reserved-ip}/detach`
    /// <https://www.vultr.com/api/#tag/reserved-ip/operation/detach-reserved-ip>
    pub async fn detach_reserved_ip(&self, reserved_id: &str) -> Result<()> {
        let rid = segment("reserved IP", reserved_id)?;
        let call = Call::new(
            Method::POST,
            format!("/reserved-ips/{rid}/detach"),
            format!("detaching reserved IP {rid}"),
            format!("reserved IP {rid}"),
        )
        .idempotent();
        self.send(&call).await.map(drop)
    }

    /// `DELETE /reserved-ips/{reserved-ip}`
    /// <https://www.vultr.com/api/#tag/reserved-ip/operation/delete-reserved-ip>
    pub async fn delete_reserved_ip(&self, reserved_id: &str) -> Result<()> {
        let rid = segment("reserved IP", reserved_id)?;
        let call = Call::new(
            Method::DELETE,
            format!("/reserved-ips/{rid}"),
            format!("deleting reserved IP {rid}"),
            format!("reserved IP {rid}"),
        );
        self.send(&call).await.map(drop)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawReserved {
    id: Option<String>,
    region: Option<String>,
    ip_type: Option<String>,
    subnet: Option<String>,
    label: Option<String>,
    instance_id: Option<String>,
}

impl RawReserved {
    fn into_reserved(self) -> ReservedIp {
        ReservedIp {
            id: self.id.unwrap_or_default(),
            region: self.region.unwrap_or_default(),
            ip_type: self.ip_type.unwrap_or_default(),
            subnet: self.subnet.unwrap_or_default(),
            label: self.label.unwrap_or_default(),
            instance_id: self.instance_id.filter(|i| !i.is_empty()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_in_full_form() {
        let a: Ipv6Addr = "2001:db8:5:6bb::1000".parse().unwrap();
        assert_eq!(expanded(a), "2001:0db8:0005:06bb:0000:0000:0000:1000");
    }

    #[test]
    fn network_membership() {
        let net = V6Network {
            network: "2001:db8:5:6bb::".parse().unwrap(),
            prefix_len: 64,
            main_ip: None,
        };
        assert!(net.contains("2001:db8:5:6bb:ffff::1".parse().unwrap()));
        assert!(!net.contains("2001:db8:5:6bc::1".parse().unwrap()));
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_path() {
        assert!(segment("instance", "cb676a46-66fd-4dfb-b839-443f2e6c0b60").is_ok());
        assert!(segment("instance", "../account").is_err());
        assert!(segment("instance", "").is_err());
        assert!(segment("instance", "a/b").is_err());
    }
}
