//! A proxy in front of moto that answers, itself, exactly what moto 5.2
//! lacks, and forwards the rest:
//! - `ModifyAddressAttribute`, `ResetAddressAttribute` (moto: 500 "not
//!   implemented") and `DescribeAddressesAttribute` (moto ignores PTRs): a
//!   small stateful PTR table; an update stays `PENDING` for a few reads,
//!   as AWS's does;
//! - `AssociateAddress` with `PrivateIpAddress` (moto always uses the
//!   primary address): the requested address is remembered and written
//!   into `DescribeAddresses` answers;
//! - EC2's limits, which moto does not enforce: `AddressLimitExceeded`
//!   once the region holds moto's `vpc-max-elastic-ips` Elastic IPs, and
//!   `PrivateIpAddressLimitExceeded` when an interface would hold more
//!   private addresses than its instance type's `Ipv4AddressesPerInterface`
//!   (moto's DescribeInstanceTypes data, which is AWS's);
//! - Route 53 (moto's, on the same server): its calls pass through and
//!   are logged by name, and `ModifyAddressAttribute` is refused
//!   (`InvalidParameterValue`) when a moto hosted zone covers the name and
//!   holds no A record of it pointing at the Elastic IP;
//! - AWS's refusals that troll's ordering depends on: releasing an Elastic
//!   IP that still has reverse DNS or an association, associating with an
//!   address the interface does not have.
//!
//! It can also deny one action (UnauthorizedOperation), fail one action a
//! number of times (throttling, 5xx), and "kill" the client at the N-th
//! call: it stops answering, before or after moto acted, and tells the test
//! so that the test drops the future.

use super::http::{encode, forward, read_request, write_response, Request, Response, Server};
use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakePtr {
    /// AWS's PtrRecord (with the final dot, as AWS shows it).
    pub record: Option<String>,
    /// (value, status) of the last update.
    pub update: Option<(String, String)>,
    reads_left: u32,
}

/// Where the kill lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillPoint {
    /// The N-th call never reaches moto.
    Before,
    /// The N-th call reaches moto (and the fake), its answer is lost.
    After,
}

#[derive(Debug)]
struct Kill {
    at: usize,
    point: KillPoint,
    fired: Option<tokio::sync::oneshot::Sender<String>>,
}

#[derive(Debug, Default)]
pub struct FakeState {
    /// Every action the proxy saw, in order.
    pub calls: Vec<String>,
    pub ptrs: BTreeMap<String, FakePtr>,
    /// association id -> (allocation id, private address)
    pub associations: BTreeMap<String, (String, String)>,
    /// ModifyAddressAttribute calls: (allocation id, name).
    pub ptr_sets: Vec<(String, String)>,
    /// action -> message for UnauthorizedOperation.
    deny: BTreeMap<String, String>,
    /// action -> (status, code, times left)
    fail: BTreeMap<String, (u16, String, u32)>,
    kill: Option<Kill>,
    /// Bumped by disarm(): stalled connections give up.
    generation: u64,
    /// How many DescribeAddressesAttribute reads an update stays pending.
    pub pending_reads: u32,
    /// The region's Elastic IP quota when a test raised it (an account
    /// whose quota AWS raised); `None`: moto's `vpc-max-elastic-ips` (5,
    /// AWS's default).
    pub eip_quota: Option<usize>,
}

#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FakeState>>,
    _server: Server,
}

impl Proxy {
    pub fn start(moto: SocketAddr) -> Proxy {
        let state = Arc::new(Mutex::new(FakeState {
            pending_reads: 1,
            ..FakeState::default()
        }));
        let server = {
            let state = state.clone();
            Server::start("the proxy", move |conn, stop| {
                serve(conn, moto, &state, stop)
            })
        };
        Proxy {
            addr: server.addr,
            state,
            _server: server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// Answers `action` with UnauthorizedOperation and `message`.
    pub fn deny(&self, action: &str, message: &str) {
        self.with(|s| s.deny.insert(action.into(), message.into()));
    }

    /// How many DescribeAddressesAttribute reads an update stays pending,
    /// for the updates to come and those in flight.
    pub fn set_pending_reads(&self, reads: u32) {
        self.with(|s| {
            s.pending_reads = reads;
            for p in s.ptrs.values_mut() {
                p.reads_left = reads;
            }
        });
    }

    /// Raises (or lowers) the region's Elastic IP quota, as AWS does on
    /// request: DescribeAccountAttributes reports it, AllocateAddress
    /// enforces it.
    pub fn set_eip_quota(&self, quota: usize) {
        self.with(|s| s.eip_quota = Some(quota));
    }

    /// Lifts every denial.
    pub fn allow_all(&self) {
        self.with(|s| s.deny.clear());
    }

    /// Fails the next `times` calls of `action` with `status` and `code`.
    pub fn fail(&self, action: &str, status: u16, code: &str, times: u32) {
        self.with(|s| s.fail.insert(action.into(), (status, code.into(), times)));
    }

    /// Stops answering at the `at`-th call from now (1-based); the
    /// receiver fires with the action's name when it happens.
    pub fn arm_kill(&self, at: usize, point: KillPoint) -> tokio::sync::oneshot::Receiver<String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.with(|s| {
            let at = s.calls.len() + at;
            s.kill = Some(Kill {
                at,
                point,
                fired: Some(tx),
            });
        });
        rx
    }

    /// Turns the kill off and lets stalled connections go.
    pub fn disarm(&self) {
        self.with(|s| {
            s.kill = None;
            s.generation += 1;
        });
    }

    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }

    pub fn ptr_sets(&self) -> Vec<(String, String)> {
        self.with(|s| s.ptr_sets.clone())
    }

    /// The fake's PTR table as it will settle: allocation id -> the name
    /// AWS has or is setting; Elastic IPs without one left out.
    pub fn ptr_table(&self) -> BTreeMap<String, String> {
        self.with(|s| {
            s.ptrs
                .iter()
                .filter_map(|(k, p)| {
                    let settled = match &p.update {
                        Some((value, status)) if status == "PENDING" => {
                            (!value.is_empty()).then(|| format!("{}.", value.trim_end_matches('.')))
                        }
                        _ => p.record.clone(),
                    };
                    Some((k.clone(), settled?))
                })
                .collect()
        })
    }

    /// Sets a PTR directly, as if it had been there before troll.
    pub fn preset_ptr(&self, allocation_id: &str, name: &str) {
        self.with(|s| {
            s.ptrs.insert(
                allocation_id.into(),
                FakePtr {
                    record: Some(format!("{}.", name.trim_end_matches('.'))),
                    update: None,
                    reads_left: 0,
                },
            )
        });
    }
}

fn serve(conn: TcpStream, moto: SocketAddr, state: &Mutex<FakeState>, stop: &AtomicBool) {
    let _ = conn.set_nodelay(true);
    let Ok(mut writer) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Ok(Some(req)) = read_request(&mut reader) {
        let form = req.form();
        let action = form
            .get("Action")
            .cloned()
            .unwrap_or_else(|| route53_action(&req));
        let (kill, generation) = {
            let mut s = state.lock().unwrap();
            s.calls.push(action.clone());
            let n = s.calls.len();
            let kill = match &mut s.kill {
                Some(k) if k.at == n => Some((k.point, k.fired.take())),
                _ => None,
            };
            (kill, s.generation)
        };
        // The test hears of the kill once the call is where the point says:
        // not sent on, or done at moto (so a rerun sees its effect, as it
        // would after a real crash once EC2 finished the call).
        let fire = |tx: Option<tokio::sync::oneshot::Sender<String>>| {
            if let Some(tx) = tx {
                let _ = tx.send(action.clone());
            }
        };
        if let Some((KillPoint::Before, tx)) = kill {
            fire(tx);
            stall(state, stop, generation);
            return;
        }
        let response = answer(&req, &form, &action, moto, state);
        if let Some((KillPoint::After, tx)) = kill {
            fire(tx);
            stall(state, stop, generation);
            return;
        }
        let sent = match response {
            Ok(r) => write_response(&mut writer, r.status, &r.content_type, r.body.as_bytes()),
            Err(e) => write_response(&mut writer, 502, "text/plain", e.to_string().as_bytes()),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Holds a killed call until the test disarms the kill (or 20 s pass).
fn stall(state: &Mutex<FakeState>, stop: &AtomicBool, generation: u64) {
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        if state.lock().unwrap().generation != generation {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn xml(status: u16, body: String) -> std::io::Result<Response> {
    Ok(Response {
        status,
        content_type: "text/xml".into(),
        body: format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}"),
    })
}

fn error(status: u16, code: &str, message: &str) -> std::io::Result<Response> {
    xml(
        status,
        format!(
            "<Response><Errors><Error><Code>{code}</Code><Message>{}</Message></Error></Errors>\
             <RequestID>troll-test</RequestID></Response>",
            escape(message)
        ),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Asks moto something on the caller's behalf (same credentials, so moto
/// routes it to EC2 in the same region).
/// moto's DescribeNetworkInterfaces answer for interface `eni`.
fn describe_interface(moto: SocketAddr, like: &Request, eni: &str) -> std::io::Result<Response> {
    ask_moto(
        moto,
        like,
        &[
            ("Action", "DescribeNetworkInterfaces"),
            ("NetworkInterfaceId.1", eni),
        ],
    )
}

fn ask_moto(
    moto: SocketAddr,
    like: &Request,
    params: &[(&str, &str)],
) -> std::io::Result<Response> {
    let body: Vec<String> = params
        .iter()
        .chain([&("Version", "2016-11-15")])
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let mut req = like.clone();
    req.body = body.join("&").into_bytes();
    req.headers.retain(|(k, _)| {
        let k = k.to_ascii_lowercase();
        k == "authorization" || k == "host" || k == "x-amz-date"
    });
    req.headers.push((
        "Content-Type".into(),
        "application/x-www-form-urlencoded".into(),
    ));
    forward(moto, &req)
}

fn tag<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&format!("</{name}>"))? + start;
    Some(&text[start..end])
}

fn answer(
    req: &Request,
    form: &BTreeMap<String, String>,
    action: &str,
    moto: SocketAddr,
    state: &Mutex<FakeState>,
) -> std::io::Result<Response> {
    {
        let mut s = state.lock().unwrap();
        if let Some(message) = s.deny.get(action) {
            return error(403, "UnauthorizedOperation", &message.clone());
        }
        if let Some((status, code, left)) = s.fail.get_mut(action) {
            if *left > 0 {
                *left -= 1;
                let (status, code) = (*status, code.clone());
                return error(status, &code, "injected by the test proxy");
            }
        }
    }
    let param = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    match action {
        "ModifyAddressAttribute" | "ResetAddressAttribute" => {
            let id = param("AllocationId");
            let Some(public) = public_ip(moto, req, id)? else {
                return not_found(id);
            };
            if action == "ModifyAddressAttribute" {
                let name = param("DomainName");
                if let Some(values) = route53_a(moto, req, name)? {
                    if !values.contains(&public) {
                        return error(
                            400,
                            "InvalidParameterValue",
                            &format!(
                                "The forward DNS record of {name} does not resolve to the \
                                 Elastic IP {public}; create an A record for it first"
                            ),
                        );
                    }
                }
            }
            let mut s = state.lock().unwrap();
            let pending_reads = s.pending_reads;
            let value = if action == "ModifyAddressAttribute" {
                let name = param("DomainName").to_string();
                s.ptr_sets.push((id.to_string(), name.clone()));
                name
            } else {
                String::new()
            };
            let ptr = s.ptrs.entry(id.to_string()).or_default();
            ptr.update = Some((value, "PENDING".into()));
            ptr.reads_left = pending_reads;
            let item = address_attribute(id, &public, ptr);
            xml(
                200,
                format!(
                    "<{action}Response xmlns=\"{NS}\"><requestId>troll-test</requestId>\
                     <address>{item}</address></{action}Response>"
                ),
            )
        }
        "DescribeAddressesAttribute" => {
            let ids: Vec<&str> = form
                .iter()
                .filter(|(k, _)| k.starts_with("AllocationId."))
                .map(|(_, v)| v.as_str())
                .collect();
            let mut items = String::new();
            for id in ids {
                let Some(public) = public_ip(moto, req, id)? else {
                    return not_found(id);
                };
                let mut s = state.lock().unwrap();
                let ptr = s.ptrs.entry(id.to_string()).or_default();
                if let Some((value, status)) = &ptr.update {
                    if status == "PENDING" {
                        if ptr.reads_left == 0 {
                            ptr.record = (!value.is_empty())
                                .then(|| format!("{}.", value.trim_end_matches('.')));
                            ptr.update = Some((value.clone(), "SUCCESSFUL".into()));
                        } else {
                            ptr.reads_left -= 1;
                        }
                    }
                }
                items.push_str(&format!(
                    "<item>{}</item>",
                    address_attribute(id, &public, ptr)
                ));
            }
            xml(
                200,
                format!(
                    "<DescribeAddressesAttributeResponse xmlns=\"{NS}\"><requestId>troll-test</requestId>\
                     <addressSet>{items}</addressSet></DescribeAddressesAttributeResponse>"
                ),
            )
        }
        "AssociateAddress" => {
            let private = param("PrivateIpAddress").to_string();
            if !private.is_empty() {
                let eni = param("NetworkInterfaceId");
                let described = describe_interface(moto, req, eni)?;
                if !described
                    .body
                    .contains(&format!("<privateIpAddress>{private}</privateIpAddress>"))
                {
                    return error(
                        400,
                        "InvalidParameterValue",
                        &format!("The private IP address {private} is not assigned to {eni}"),
                    );
                }
            }
            let r = forward(moto, req)?;
            if r.status == 200 && !private.is_empty() {
                if let Some(assoc) = tag(&r.body, "associationId") {
                    let mut s = state.lock().unwrap();
                    s.associations.insert(
                        assoc.to_string(),
                        (param("AllocationId").to_string(), private),
                    );
                }
            }
            Ok(r)
        }
        "AllocateAddress" => {
            let held = ask_moto(moto, req, &[("Action", "DescribeAddresses")])?
                .body
                .matches("<allocationId>")
                .count();
            let attrs = ask_moto(
                moto,
                req,
                &[
                    ("Action", "DescribeAccountAttributes"),
                    ("AttributeName.1", "vpc-max-elastic-ips"),
                ],
            )?;
            let max = state.lock().unwrap().eip_quota.or_else(|| {
                attrs
                    .body
                    .split("<attributeName>vpc-max-elastic-ips</attributeName>")
                    .nth(1)
                    .and_then(|rest| tag(rest, "attributeValue"))
                    .and_then(|v| v.parse::<usize>().ok())
            });
            if max.is_some_and(|max| held >= max) {
                return error(
                    400,
                    "AddressLimitExceeded",
                    "The maximum number of addresses has been reached.",
                );
            }
            forward(moto, req)
        }
        "AssignPrivateIpAddresses" => {
            let eni = param("NetworkInterfaceId");
            let asked = form
                .keys()
                .filter(|k| k.starts_with("PrivateIpAddress."))
                .count()
                + param("SecondaryPrivateIpAddressCount")
                    .parse::<usize>()
                    .unwrap_or(0);
            let described = describe_interface(moto, req, eni)?;
            let held = described.body.matches("<primary>").count();
            let limit = match tag(&described.body, "instanceId") {
                Some(instance) => {
                    let i = ask_moto(
                        moto,
                        req,
                        &[("Action", "DescribeInstances"), ("InstanceId.1", instance)],
                    )?;
                    match tag(&i.body, "instanceType") {
                        Some(t) => tag(
                            &ask_moto(
                                moto,
                                req,
                                &[("Action", "DescribeInstanceTypes"), ("InstanceType.1", t)],
                            )?
                            .body,
                            "ipv4AddressesPerInterface",
                        )
                        .and_then(|n| n.parse::<usize>().ok()),
                        None => None,
                    }
                }
                None => None,
            };
            if limit.is_some_and(|limit| held + asked > limit) {
                return error(
                    400,
                    "PrivateIpAddressLimitExceeded",
                    &format!(
                        "Number of private addresses will exceed limit for network interface {eni}."
                    ),
                );
            }
            forward(moto, req)
        }
        "DescribeAccountAttributes" => {
            let mut r = forward(moto, req)?;
            let quota = state.lock().unwrap().eip_quota;
            if let (Some(quota), 200) = (quota, r.status) {
                let key = "<attributeName>vpc-max-elastic-ips</attributeName>";
                if let Some(at) = r.body.find(key) {
                    let (head, rest) = r.body.split_at(at + key.len());
                    if let Some(value) = tag(rest, "attributeValue") {
                        let rest = rest.replacen(
                            &format!("<attributeValue>{value}<"),
                            &format!("<attributeValue>{quota}<"),
                            1,
                        );
                        r.body = format!("{head}{rest}");
                    }
                }
            }
            Ok(r)
        }
        "DisassociateAddress" => {
            let r = forward(moto, req)?;
            if r.status == 200 {
                state
                    .lock()
                    .unwrap()
                    .associations
                    .remove(param("AssociationId"));
            }
            Ok(r)
        }
        "ReleaseAddress" => {
            let id = param("AllocationId");
            {
                let s = state.lock().unwrap();
                if let Some(p) = s.ptrs.get(id) {
                    let pending = p.update.as_ref().is_some_and(|u| u.1 == "PENDING");
                    if p.record.is_some() || pending {
                        return error(
                            400,
                            "InvalidAddress.Locked",
                            "The Elastic IP has a reverse DNS record; reset it first (test proxy)",
                        );
                    }
                }
            }
            let described = ask_moto(
                moto,
                req,
                &[
                    ("Action", "DescribeAddresses"),
                    ("Filter.1.Name", "allocation-id"),
                    ("Filter.1.Value.1", id),
                ],
            )?;
            if tag(&described.body, "associationId").is_some_and(|a| !a.is_empty()) {
                return error(400, "InvalidIPAddress.InUse", "Address is in use");
            }
            let r = forward(moto, req)?;
            if r.status == 200 {
                let mut s = state.lock().unwrap();
                s.ptrs.remove(id);
                s.associations.retain(|_, (alloc, _)| alloc != id);
            }
            Ok(r)
        }
        "DescribeAddresses" => {
            let mut r = forward(moto, req)?;
            if r.status == 200 {
                let s = state.lock().unwrap();
                r.body = rewrite_private_ips(&r.body, &s.associations);
            }
            Ok(r)
        }
        _ => forward(moto, req),
    }
}

/// A Route 53 call's name (its REST path and method: Route 53 has no
/// `Action` parameter), for the call log, kills and faults.
fn route53_action(req: &Request) -> String {
    let path = req.path.split('?').next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/2013-04-01/") else {
        return String::new();
    };
    let get = req.method.eq_ignore_ascii_case("GET");
    match (rest.split('/').next().unwrap_or(""), get) {
        _ if rest.ends_with("/rrset") && get => "ListResourceRecordSets",
        _ if rest.ends_with("/rrset") => "ChangeResourceRecordSets",
        ("change", _) => "GetChange",
        ("hostedzone", true) => "ListHostedZones",
        ("hostedzone", false) => "CreateHostedZone",
        _ => "Route53",
    }
    .to_string()
}

/// Asks moto's Route 53 (the same server; moto tells the services apart
/// by the credential scope of the signature, which it does not check).
fn ask_route53(moto: SocketAddr, like: &Request, path: &str) -> std::io::Result<Response> {
    let mut headers: Vec<(String, String)> = like
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("host"))
        .cloned()
        .collect();
    headers.push((
        "Authorization".into(),
        "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/route53/aws4_request, \
         SignedHeaders=host, Signature=0"
            .into(),
    ));
    forward(
        moto,
        &Request {
            method: "GET".into(),
            path: path.into(),
            headers,
            body: Vec::new(),
        },
    )
}

/// The A record values of `name` in the moto Route 53 zone that holds it;
/// `None` when no zone there covers the name (the test plays that DNS
/// with a table resolver, as an operator's own DNS host).
fn route53_a(moto: SocketAddr, like: &Request, name: &str) -> std::io::Result<Option<Vec<String>>> {
    let fqdn = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
    let zones = ask_route53(moto, like, "/2013-04-01/hostedzone")?;
    let mut best: Option<(String, String)> = None;
    for block in zones.body.split("<HostedZone>").skip(1) {
        let (Some(id), Some(zone)) = (tag(block, "Id"), tag(block, "Name")) else {
            continue;
        };
        let zone = zone.to_ascii_lowercase();
        let covers = fqdn == zone || fqdn.ends_with(&format!(".{zone}"));
        if covers && best.as_ref().is_none_or(|(_, z)| zone.len() > z.len()) {
            best = Some((id.trim_start_matches("/hostedzone/").to_string(), zone));
        }
    }
    let Some((id, _)) = best else {
        return Ok(None);
    };
    let sets = ask_route53(moto, like, &format!("/2013-04-01/hostedzone/{id}/rrset"))?;
    let mut values = Vec::new();
    for block in sets.body.split("<ResourceRecordSet>").skip(1) {
        let named = tag(block, "Name").is_some_and(|n| n.eq_ignore_ascii_case(&fqdn));
        if named && tag(block, "Type") == Some("A") {
            for v in block.split("<Value>").skip(1) {
                if let Some(end) = v.find("</Value>") {
                    values.push(v[..end].trim().to_string());
                }
            }
        }
    }
    Ok(Some(values))
}

fn not_found(id: &str) -> std::io::Result<Response> {
    error(
        400,
        "InvalidAllocationID.NotFound",
        &format!("The allocation ID '{id}' does not exist"),
    )
}

fn public_ip(moto: SocketAddr, like: &Request, id: &str) -> std::io::Result<Option<String>> {
    let r = ask_moto(
        moto,
        like,
        &[
            ("Action", "DescribeAddresses"),
            ("Filter.1.Name", "allocation-id"),
            ("Filter.1.Value.1", id),
        ],
    )?;
    Ok(tag(&r.body, "publicIp").map(str::to_string))
}

fn address_attribute(id: &str, public: &str, ptr: &FakePtr) -> String {
    let mut out = format!("<publicIp>{public}</publicIp><allocationId>{id}</allocationId>");
    if let Some(record) = &ptr.record {
        out.push_str(&format!("<ptrRecord>{record}</ptrRecord>"));
    }
    if let Some((value, status)) = &ptr.update {
        out.push_str(&format!(
            "<ptrRecordUpdate><value>{value}</value><status>{status}</status></ptrRecordUpdate>"
        ));
    }
    out
}

/// Writes the private address each association asked for into moto's
/// DescribeAddresses items (moto reports the primary address).
fn rewrite_private_ips(body: &str, associations: &BTreeMap<String, (String, String)>) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("<associationId>") {
        let (head, tail) = rest.split_at(start);
        out.push_str(head);
        let id = tag(tail, "associationId").unwrap_or("");
        let item_end = tail.find("</item>").unwrap_or(tail.len());
        let (item, after) = tail.split_at(item_end);
        match associations.get(id) {
            Some((_, private)) => {
                let open = "<privateIpAddress>";
                match (item.find(open), item.find("</privateIpAddress>")) {
                    (Some(a), Some(b)) => {
                        out.push_str(&item[..a + open.len()]);
                        out.push_str(private);
                        out.push_str(&item[b..]);
                    }
                    _ => out.push_str(item),
                }
            }
            None => out.push_str(item),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}
