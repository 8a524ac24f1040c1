//! One function per EC2 call troll makes, each mapping the SDK's answer
//! onto plain values and its failures onto the crate's [`Error`] kinds. The
//! action names here are exactly the ones docs/providers/aws.md grants.

use super::PROVIDER;
use crate::{Error, Result};
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    AccountAttributeName, AddressAttribute, AddressAttributeName, AttributeBooleanValue,
    DomainType, Filter, InstanceType, ResourceType, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// Where a denied action is to be granted.
pub(crate) const POLICY_HINT: &str =
    "add it to the instance role's policy (see docs/providers/aws.md)";

/// The instance's primary network interface, as troll needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interface {
    pub id: String,
    pub subnet_id: String,
    /// The primary private address: the target's local address.
    pub primary: Ipv4Addr,
    /// Every private IPv4 address on the interface, the primary included.
    pub addresses: BTreeSet<Ipv4Addr>,
    pub source_dest_check: Option<bool>,
}

/// The instance, as the limit checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceInfo {
    /// The primary network interface (device index 0).
    pub eni: String,
    /// e.g. `t3.micro`.
    pub instance_type: String,
    /// The security groups of the instance.
    pub security_groups: Vec<String>,
}

/// One inbound permission of a security group, as the probe check needs
/// it: protocol (`udp`, `tcp`, `icmp`, `-1` for all), port range (ICMP:
/// type and code), and whether it is open to every IPv4 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Permission {
    pub protocol: String,
    pub from: i32,
    pub to: i32,
    pub anywhere_v4: bool,
}

/// An Elastic IP as DescribeAddresses shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Eip {
    pub allocation_id: String,
    pub public_ip: Ipv4Addr,
    pub association_id: Option<String>,
    pub network_interface_id: Option<String>,
    pub private_ip: Option<Ipv4Addr>,
    pub tags: BTreeMap<String, String>,
}

/// An Elastic IP's reverse DNS as DescribeAddressesAttribute shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PtrInfo {
    pub allocation_id: String,
    pub ptr: Option<String>,
    pub update: Option<super::PtrUpdate>,
}

impl PtrInfo {
    fn from_sdk(a: &AddressAttribute) -> Option<PtrInfo> {
        Some(PtrInfo {
            allocation_id: a.allocation_id()?.to_string(),
            ptr: a.ptr_record().filter(|p| !p.is_empty()).map(str::to_string),
            update: a.ptr_record_update().map(|u| super::PtrUpdate {
                value: u.value().unwrap_or_default().to_string(),
                status: u.status().unwrap_or_default().to_string(),
                reason: u.reason().map(str::to_string),
            }),
        })
    }
}

/// The EC2 calls, on one SDK client.
#[derive(Debug, Clone)]
pub(crate) struct Ec2 {
    client: Client,
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn parse_v4(action: &'static str, what: &str, text: Option<&str>) -> Result<Ipv4Addr> {
    text.and_then(|t| t.parse().ok()).ok_or_else(|| Error::Api {
        provider: PROVIDER,
        operation: action.to_string(),
        detail: format!("EC2 answered without a readable {what} ({text:?})"),
    })
}

fn missing(action: &'static str, what: &str) -> Error {
    Error::Api {
        provider: PROVIDER,
        operation: action.to_string(),
        detail: format!("EC2 answered without {what}"),
    }
}

impl Ec2 {
    pub fn new(client: Client) -> Ec2 {
        Ec2 { client }
    }

    /// The instance's primary interface id (device index 0) and type.
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstances.html>
    pub async fn instance(&self, instance_id: &str) -> Result<InstanceInfo> {
        const ACTION: &str = "ec2:DescribeInstances";
        let out = self
            .client
            .describe_instances()
            .instance_ids(instance_id)
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, instance_id, e))?;
        let instance = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| i.instance_id() == Some(instance_id))
            .ok_or_else(|| Error::NotFound {
                provider: PROVIDER,
                what: format!("instance {instance_id} in this region"),
            })?;
        let eni = instance
            .network_interfaces()
            .iter()
            .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
            .and_then(|n| n.network_interface_id())
            .map(str::to_string)
            .ok_or_else(|| Error::NotFound {
                provider: PROVIDER,
                what: format!("primary network interface on instance {instance_id}"),
            })?;
        Ok(InstanceInfo {
            eni,
            instance_type: instance
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            security_groups: instance
                .security_groups()
                .iter()
                .filter_map(|g| g.group_id().map(str::to_string))
                .collect(),
        })
    }

    /// The inbound permissions of `groups`.
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSecurityGroups.html>
    pub async fn inbound(&self, groups: &[String]) -> Result<Vec<Permission>> {
        const ACTION: &str = "ec2:DescribeSecurityGroups";
        if groups.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .describe_security_groups()
            .set_group_ids(Some(groups.to_vec()))
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, &groups.join(","), e))?;
        Ok(out
            .security_groups()
            .iter()
            .flat_map(|g| g.ip_permissions())
            .map(|p| Permission {
                protocol: p.ip_protocol().unwrap_or_default().to_ascii_lowercase(),
                from: p.from_port().unwrap_or(-1),
                to: p.to_port().unwrap_or(-1),
                anywhere_v4: p
                    .ip_ranges()
                    .iter()
                    .any(|r| r.cidr_ip() == Some("0.0.0.0/0")),
            })
            .collect())
    }

    /// How many private IPv4 addresses one interface of `instance_type`
    /// holds, the primary included (`None` when EC2 does not say).
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeInstanceTypes.html>
    pub async fn ipv4_per_interface(&self, instance_type: &str) -> Result<Option<u32>> {
        const ACTION: &str = "ec2:DescribeInstanceTypes";
        let out = self
            .client
            .describe_instance_types()
            .instance_types(InstanceType::from(instance_type))
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, instance_type, e))?;
        Ok(out
            .instance_types()
            .iter()
            .find(|t| t.instance_type().map(InstanceType::as_str) == Some(instance_type))
            .and_then(|t| t.network_info()?.ipv4_addresses_per_interface())
            .and_then(|n| u32::try_from(n).ok()))
    }

    /// The region's Elastic IP quota, `vpc-max-elastic-ips` (`None` when
    /// EC2 does not say).
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAccountAttributes.html>
    pub async fn max_elastic_ips(&self) -> Result<Option<u32>> {
        const ACTION: &str = "ec2:DescribeAccountAttributes";
        let out = self
            .client
            .describe_account_attributes()
            .attribute_names(AccountAttributeName::from("vpc-max-elastic-ips"))
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, "vpc-max-elastic-ips", e))?;
        Ok(out
            .account_attributes()
            .iter()
            .find(|a| a.attribute_name() == Some("vpc-max-elastic-ips"))
            .and_then(|a| {
                a.attribute_values()
                    .first()?
                    .attribute_value()?
                    .parse()
                    .ok()
            }))
    }

    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeNetworkInterfaces.html>
    pub async fn interface(&self, eni: &str) -> Result<Interface> {
        const ACTION: &str = "ec2:DescribeNetworkInterfaces";
        let out = self
            .client
            .describe_network_interfaces()
            .network_interface_ids(eni)
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, eni, e))?;
        let n = out
            .network_interfaces()
            .iter()
            .find(|n| n.network_interface_id() == Some(eni))
            .ok_or_else(|| Error::NotFound {
                provider: PROVIDER,
                what: format!("network interface {eni}"),
            })?;
        let primary = parse_v4(ACTION, "primary private address", n.private_ip_address())?;
        let mut addresses = BTreeSet::from([primary]);
        for a in n.private_ip_addresses() {
            addresses.insert(parse_v4(ACTION, "private address", a.private_ip_address())?);
        }
        Ok(Interface {
            id: eni.to_string(),
            subnet_id: n
                .subnet_id()
                .ok_or_else(|| missing(ACTION, "the interface's subnet"))?
                .to_string(),
            primary,
            addresses,
            source_dest_check: n.source_dest_check(),
        })
    }

    /// Every private IPv4 address in use in a subnet, on any interface.
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeNetworkInterfaces.html>
    pub async fn used_addresses(&self, subnet_id: &str) -> Result<BTreeSet<Ipv4Addr>> {
        const ACTION: &str = "ec2:DescribeNetworkInterfaces";
        let mut pages = self
            .client
            .describe_network_interfaces()
            .filters(filter("subnet-id", subnet_id))
            .into_paginator()
            .send();
        let mut used = BTreeSet::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_sdk_error(ACTION, subnet_id, e))?;
            for n in page.network_interfaces() {
                let all = n
                    .private_ip_addresses()
                    .iter()
                    .map(|a| a.private_ip_address());
                for text in all.chain([n.private_ip_address()]).flatten() {
                    if let Ok(a) = text.parse() {
                        used.insert(a);
                    }
                }
            }
        }
        Ok(used)
    }

    /// The subnet's IPv4 block, as network address and prefix length.
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeSubnets.html>
    pub async fn subnet_block(&self, subnet_id: &str) -> Result<(Ipv4Addr, u8)> {
        const ACTION: &str = "ec2:DescribeSubnets";
        let out = self
            .client
            .describe_subnets()
            .subnet_ids(subnet_id)
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, subnet_id, e))?;
        let cidr = out
            .subnets()
            .iter()
            .find(|s| s.subnet_id() == Some(subnet_id))
            .and_then(|s| s.cidr_block())
            .ok_or_else(|| missing(ACTION, "the subnet's IPv4 block"))?;
        parse_cidr(cidr).ok_or_else(|| Error::Api {
            provider: PROVIDER,
            operation: ACTION.to_string(),
            detail: format!("unreadable IPv4 block {cidr:?} of {subnet_id}"),
        })
    }

    /// Elastic IPs matching every filter (name, value).
    pub async fn addresses(&self, filters: &[(&str, &str)]) -> Result<Vec<Eip>> {
        let filters: Vec<Filter> = filters.iter().map(|(n, v)| filter(n, v)).collect();
        self.describe_addresses(filters).await
    }

    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAddresses.html>
    async fn describe_addresses(&self, filters: Vec<Filter>) -> Result<Vec<Eip>> {
        const ACTION: &str = "ec2:DescribeAddresses";
        let subject = filters
            .first()
            .map(|f| f.values().join(","))
            .unwrap_or_default();
        let call = self.client.describe_addresses().set_filters(Some(filters));
        let out = call
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, &subject, e))?;
        out.addresses()
            .iter()
            .map(|a| {
                Ok(Eip {
                    allocation_id: a
                        .allocation_id()
                        .ok_or_else(|| missing(ACTION, "an allocation id"))?
                        .to_string(),
                    public_ip: parse_v4(ACTION, "public address", a.public_ip())?,
                    association_id: a
                        .association_id()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                    network_interface_id: a
                        .network_interface_id()
                        .filter(|s| !s.is_empty())
                        .map(str::to_string),
                    private_ip: a.private_ip_address().and_then(|p| p.parse().ok()),
                    tags: a
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
                        .collect(),
                })
            })
            .collect()
    }

    /// Elastic IPs by allocation id; ids that no longer exist are left out
    /// (a filter, unlike AllocationIds, does not fail on them).
    pub async fn addresses_by_id(&self, ids: &[String]) -> Result<Vec<Eip>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let by_id = Filter::builder()
            .name("allocation-id")
            .set_values(Some(ids.to_vec()))
            .build();
        self.describe_addresses(vec![by_id]).await
    }

    /// A new Elastic IP, tagged at allocation so a crash cannot orphan it.
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AllocateAddress.html>
    pub async fn allocate_address(&self, tags: &[(&str, &str)]) -> Result<(String, Ipv4Addr)> {
        const ACTION: &str = "ec2:AllocateAddress";
        let mut spec = TagSpecification::builder().resource_type(ResourceType::ElasticIp);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        let out = self
            .client
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(spec.build())
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, "", e))?;
        let id = out
            .allocation_id()
            .ok_or_else(|| missing(ACTION, "an allocation id"))?;
        Ok((
            id.to_string(),
            parse_v4(ACTION, "public address", out.public_ip())?,
        ))
    }

    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AssignPrivateIpAddresses.html>
    pub async fn assign_private_addresses(&self, eni: &str, addresses: &[Ipv4Addr]) -> Result<()> {
        const ACTION: &str = "ec2:AssignPrivateIpAddresses";
        let mut call = self
            .client
            .assign_private_ip_addresses()
            .network_interface_id(eni);
        for a in addresses {
            call = call.private_ip_addresses(a.to_string());
        }
        call.send()
            .await
            .map_err(|e| map_sdk_error(ACTION, eni, e))?;
        Ok(())
    }

    /// Associates an Elastic IP with one private address of an interface;
    /// returns the association id.
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AssociateAddress.html>
    pub async fn associate_address(
        &self,
        allocation_id: &str,
        eni: &str,
        private: Ipv4Addr,
    ) -> Result<String> {
        const ACTION: &str = "ec2:AssociateAddress";
        let out = self
            .client
            .associate_address()
            .allocation_id(allocation_id)
            .network_interface_id(eni)
            .private_ip_address(private.to_string())
            .allow_reassociation(false)
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, allocation_id, e))?;
        out.association_id()
            .map(str::to_string)
            .ok_or_else(|| missing(ACTION, "an association id"))
    }

    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyNetworkInterfaceAttribute.html>
    pub async fn set_source_dest_check(&self, eni: &str, value: bool) -> Result<()> {
        const ACTION: &str = "ec2:ModifyNetworkInterfaceAttribute";
        self.client
            .modify_network_interface_attribute()
            .network_interface_id(eni)
            .source_dest_check(AttributeBooleanValue::builder().value(value).build())
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, eni, e))?;
        Ok(())
    }

    /// Sets an Elastic IP's reverse DNS; AWS checks the forward record.
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ModifyAddressAttribute.html>
    pub async fn set_ptr(&self, allocation_id: &str, name: &str) -> Result<PtrInfo> {
        const ACTION: &str = "ec2:ModifyAddressAttribute";
        let out = self
            .client
            .modify_address_attribute()
            .allocation_id(allocation_id)
            .domain_name(name)
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, allocation_id, e))?;
        Ok(out
            .address()
            .and_then(PtrInfo::from_sdk)
            .unwrap_or_else(|| PtrInfo {
                allocation_id: allocation_id.to_string(),
                ptr: None,
                update: None,
            }))
    }

    /// Removes an Elastic IP's reverse DNS (it cannot be released with one).
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ResetAddressAttribute.html>
    pub async fn reset_ptr(&self, allocation_id: &str) -> Result<()> {
        const ACTION: &str = "ec2:ResetAddressAttribute";
        self.client
            .reset_address_attribute()
            .allocation_id(allocation_id)
            .attribute(AddressAttributeName::DomainName)
            .send()
            .await
            .map_err(|e| map_sdk_error(ACTION, allocation_id, e))?;
        Ok(())
    }

    /// The reverse DNS of the given Elastic IPs.
    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DescribeAddressesAttribute.html>
    pub async fn ptrs(&self, allocation_ids: &[String]) -> Result<Vec<PtrInfo>> {
        const ACTION: &str = "ec2:DescribeAddressesAttribute";
        if allocation_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .describe_addresses_attribute()
                .set_allocation_ids(Some(allocation_ids.to_vec()))
                .attribute(AddressAttributeName::DomainName)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| map_sdk_error(ACTION, &allocation_ids.join(","), e))?;
            found.extend(out.addresses().iter().filter_map(PtrInfo::from_sdk));
            match out.next_token().filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t.to_string()),
                None => return Ok(found),
            }
        }
    }

    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_DisassociateAddress.html>
    pub async fn disassociate_address(&self, association_id: &str) -> Result<()> {
        const ACTION: &str = "ec2:DisassociateAddress";
        match self
            .client
            .disassociate_address()
            .association_id(association_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match map_sdk_error(ACTION, association_id, e) {
                // Already gone: what teardown wanted.
                Error::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_ReleaseAddress.html>
    pub async fn release_address(&self, allocation_id: &str) -> Result<()> {
        const ACTION: &str = "ec2:ReleaseAddress";
        match self
            .client
            .release_address()
            .allocation_id(allocation_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match map_sdk_error(ACTION, allocation_id, e) {
                Error::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    /// <https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_UnassignPrivateIpAddresses.html>
    pub async fn unassign_private_addresses(
        &self,
        eni: &str,
        addresses: &[Ipv4Addr],
    ) -> Result<()> {
        const ACTION: &str = "ec2:UnassignPrivateIpAddresses";
        let mut call = self
            .client
            .unassign_private_ip_addresses()
            .network_interface_id(eni);
        for a in addresses {
            call = call.private_ip_addresses(a.to_string());
        }
        call.send()
            .await
            .map_err(|e| map_sdk_error(ACTION, eni, e))?;
        Ok(())
    }
}

/// `10.0.1.0/24` -> (10.0.1.0, 24), the network address masked.
pub(crate) fn parse_cidr(text: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, len) = text.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    if len > 32 {
        return None;
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Some((Ipv4Addr::from(u32::from(addr) & mask), len))
}

/// Maps an SDK failure of `action` (on `subject`, an id or address) onto
/// the crate's error kinds.
pub(crate) fn map_sdk_error<E>(
    action: &'static str,
    subject: &str,
    err: SdkError<E, HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    let context = DisplayErrorContext(&err).to_string();
    classify(action, subject, &code, &message, &context)
}

/// The pure part of [`map_sdk_error`]: EC2 error code and message to an
/// error kind. `context` describes failures without a code (no answer,
/// time-out, unreadable answer).
pub(crate) fn classify(
    action: &'static str,
    subject: &str,
    code: &str,
    message: &str,
    context: &str,
) -> Error {
    let operation = if subject.is_empty() {
        action.to_string()
    } else {
        format!("{action} {subject}")
    };
    match code {
        "UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException" => Error::Permission {
            provider: PROVIDER,
            action: denied_action(message).unwrap_or_else(|| action.to_string()),
            hint: POLICY_HINT.to_string(),
        },
        "AuthFailure"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "IncompleteSignature"
        | "ExpiredToken"
        | "RequestExpired"
        | "MissingAuthenticationToken"
        | "UnrecognizedClientException" => Error::Auth {
            provider: PROVIDER,
            hint: format!(
                "{code} on {operation}: {message} (check the credentials: instance role, \
                 AWS_PROFILE or AWS_ACCESS_KEY_ID, and the clock)"
            ),
        },
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => {
            Error::RateLimited { provider: PROVIDER }
        }
        "AddressLimitExceeded" => Error::Conflict {
            provider: PROVIDER,
            detail: format!(
                "{operation}: the account has no Elastic IP left in this region (the default \
                 limit is 5); release unused ones or ask AWS for a higher limit ({message})"
            ),
        },
        "PrivateIpAddressLimitExceeded" => Error::Conflict {
            provider: PROVIDER,
            detail: format!(
                "{operation}: the instance type allows no more private addresses on one \
                 interface; use fewer distinct lines or a larger instance type ({message})"
            ),
        },
        "InvalidIPAddress.InUse"
        | "Resource.AlreadyAssociated"
        | "InvalidAddress.Locked"
        | "IncorrectState"
        | "OperationNotPermitted"
        | "InvalidParameterValue"
        | "InvalidParameterCombination" => Error::Conflict {
            provider: PROVIDER,
            detail: format!("{operation}: {code}: {message}"),
        },
        c if c.ends_with(".NotFound") => Error::NotFound {
            provider: PROVIDER,
            what: format!("{subject} ({c}: {message})"),
        },
        "" => Error::Api {
            provider: PROVIDER,
            operation,
            detail: context.to_string(),
        },
        c => Error::Api {
            provider: PROVIDER,
            operation,
            detail: format!("{c}: {message}"),
        },
    }
}

/// The action an UnauthorizedOperation message names, when it names one
/// ("... is not authorized to perform: ec2:CreateTags on resource ..."):
/// tagging at allocation is denied as `ec2:CreateTags` inside
/// AllocateAddress, and the message is the only place that says so.
fn denied_action(message: &str) -> Option<String> {
    let rest = &message[message.find("perform: ")? + "perform: ".len()..];
    let action: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
        .collect();
    action.contains(':').then_some(action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_errors_name_the_action() {
        let e = classify(
            "ec2:AllocateAddress",
            "",
            "UnauthorizedOperation",
            "You are not authorized to perform this operation. Encoded authorization failure message: abc",
            "",
        );
        assert_eq!(
            e.to_string(),
            "AWS denied ec2:AllocateAddress; add it to the instance role's policy (see docs/providers/aws.md)"
        );
    }

    #[test]
    fn tagging_at_allocation_is_denied_as_create_tags() {
        let e = classify(
            "ec2:AllocateAddress",
            "",
            "UnauthorizedOperation",
            "You are not authorized to perform this operation. User: arn:aws:sts::1:assumed-role/r/i \
             is not authorized to perform: ec2:CreateTags on resource: arn:aws:ec2:us-east-1:1:elastic-ip/* \
             because no identity-based policy allows the ec2:CreateTags action.",
            "",
        );
        assert!(
            matches!(&e, Error::Permission { action, .. } if action == "ec2:CreateTags"),
            "{e}"
        );
    }

    #[test]
    fn codes_map_onto_the_shared_kinds() {
        let kind = |code: &str| classify("ec2:ReleaseAddress", "eipalloc-1", code, "m", "ctx");
        assert!(matches!(
            kind("RequestLimitExceeded"),
            Error::RateLimited { .. }
        ));
        assert!(matches!(kind("AuthFailure"), Error::Auth { .. }));
        assert!(matches!(
            kind("InvalidAllocationID.NotFound"),
            Error::NotFound { .. }
        ));
        assert!(matches!(
            kind("InvalidIPAddress.InUse"),
            Error::Conflict { .. }
        ));
        assert!(matches!(
            kind("AddressLimitExceeded"),
            Error::Conflict { .. }
        ));
        let other = kind("InternalError");
        assert_eq!(
            other.to_string(),
            "ec2:ReleaseAddress eipalloc-1: InternalError: m"
        );
        let unreachable = kind("");
        assert_eq!(
            unreachable.to_string(),
            "ec2:ReleaseAddress eipalloc-1: ctx"
        );
    }

    #[test]
    fn cidr_blocks_parse_and_mask() {
        assert_eq!(
            parse_cidr("10.0.1.0/24"),
            Some((Ipv4Addr::new(10, 0, 1, 0), 24))
        );
        assert_eq!(
            parse_cidr("10.0.1.9/28"),
            Some((Ipv4Addr::new(10, 0, 1, 0), 28))
        );
        assert_eq!(parse_cidr("10.0.1.0/33"), None);
        assert_eq!(parse_cidr("10.0.1.0"), None);
    }
}
