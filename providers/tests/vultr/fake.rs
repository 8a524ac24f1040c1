//! A stateful fake of the parts of the Vultr API v2 that troll uses: one
//! thread per connection on 127.0.0.1, a world of instances, additional
//! IPv4s, reserved IPs and reverse DNS entries, and switches for faults
//! (status codes, slow answers, dropped connections, a crash gate that
//! stops answering after a given number of calls).

use super::http::{read_request, write_response, Request, Server};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

pub const INSTANCE: &str = "cb676a46-66fd-4dfb-b839-443f2e6c0b60";
pub const OTHER_INSTANCE: &str = "0d9c5fd1-9e1c-4a4e-9a51-3b0e7f9a1c22";
pub const MAIN_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// An additional address that is not troll's: it must survive everything.
pub const FOREIGN_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
pub const V6_NETWORK: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0x6bb, 0, 0, 0, 0);
pub const V6_MAIN: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0x6bb, 0x5400, 0x2ff, 0xfee5, 1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4Entry {
    pub kind: String,
    pub reverse: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inst {
    pub main_ip: Ipv4Addr,
    /// Vultr's cap on extra IPv4 (additional and attached reserved) for
    /// this instance; Vultr does not list it, only refuses past it.
    pub ipv4_cap: Option<usize>,
    pub region: String,
    pub v6: Option<(Ipv6Addr, Ipv6Addr)>,
    /// Main and additional addresses (attached reserved IPs live in
    /// `World::reserved`).
    pub ipv4: BTreeMap<Ipv4Addr, V4Entry>,
    pub v6_reverse: BTreeMap<Ipv6Addr, String>,
    /// The firewall group attached, if any.
    pub firewall_group: Option<String>,
    /// Restarts done through the API.
    pub reboots: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserved {
    pub id: String,
    pub region: String,
    pub subnet: Ipv4Addr,
    pub label: String,
    pub instance_id: Option<String>,
    pub reverse: String,
}

/// A firewall rule: ip_type, protocol, port, subnet, subnet_size.
pub type FwRule = (String, String, String, String, u8);

/// Everything a client can change. Tests compare it before and after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct World {
    pub instances: BTreeMap<String, Inst>,
    pub reserved: BTreeMap<String, Reserved>,
    /// Firewall groups: id -> rules.
    pub firewalls: BTreeMap<String, Vec<FwRule>>,
}

pub fn default_reverse(ip: Ipv4Addr) -> String {
    format!("{ip}.vultr.com")
}

impl World {
    /// One instance with a custom PTR on its main address, a foreign
    /// additional IPv4 and an IPv6 PTR of its own; another instance; two
    /// reserved IPs that belong to others (one labelled like another
    /// troll deployment).
    pub fn standard() -> World {
        let mut ipv4 = BTreeMap::new();
        ipv4.insert(
            MAIN_IP,
            V4Entry {
                kind: "main_ip".into(),
                reverse: "mail.example.com".into(),
            },
        );
        ipv4.insert(
            FOREIGN_IP,
            V4Entry {
                kind: "secondary_ip".into(),
                reverse: "other.example.net".into(),
            },
        );
        let mut v6_reverse = BTreeMap::new();
        v6_reverse.insert(V6_MAIN, "mail6.example.com".to_string());
        let mut instances = BTreeMap::new();
        instances.insert(
            INSTANCE.to_string(),
            Inst {
                main_ip: MAIN_IP,
                ipv4_cap: None,
                region: "ewr".into(),
                v6: Some((V6_NETWORK, V6_MAIN)),
                ipv4,
                v6_reverse,
                firewall_group: None,
                reboots: 0,
            },
        );
        let other_main = Ipv4Addr::new(192, 0, 2, 20);
        let mut other_ipv4 = BTreeMap::new();
        other_ipv4.insert(
            other_main,
            V4Entry {
                kind: "main_ip".into(),
                reverse: default_reverse(other_main),
            },
        );
        instances.insert(
            OTHER_INSTANCE.to_string(),
            Inst {
                main_ip: other_main,
                ipv4_cap: None,
                region: "ewr".into(),
                v6: None,
                ipv4: other_ipv4,
                v6_reverse: BTreeMap::new(),
                firewall_group: None,
                reboots: 0,
            },
        );
        let mut reserved = BTreeMap::new();
        for (id, ip, label, attached) in [
            (
                "11111111-2222-3333-4444-555555555555",
                Ipv4Addr::new(203, 0, 113, 250),
                "web",
                Some(OTHER_INSTANCE),
            ),
            (
                "66666666-7777-8888-9999-000000000000",
                Ipv4Addr::new(203, 0, 113, 251),
                "troll-other",
                None,
            ),
        ] {
            reserved.insert(
                id.to_string(),
                Reserved {
                    id: id.into(),
                    region: "ewr".into(),
                    subnet: ip,
                    label: label.into(),
                    instance_id: attached.map(String::from),
                    reverse: default_reverse(ip),
                },
            );
        }
        World {
            instances,
            reserved,
            firewalls: BTreeMap::new(),
        }
    }

    /// Additional (not main) IPv4s on `instance`, reserved ones excluded.
    pub fn additional(&self, instance: &str) -> Vec<Ipv4Addr> {
        self.instances[instance]
            .ipv4
            .iter()
            .filter(|(_, e)| e.kind == "secondary_ip")
            .map(|(ip, _)| *ip)
            .collect()
    }

    pub fn labelled(&self, label: &str) -> Vec<&Reserved> {
        self.reserved
            .values()
            .filter(|r| r.label == label)
            .collect()
    }
}

/// A fault for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a Vultr error body; change nothing.
    Status(u16),
    /// Do the call, then answer with this status.
    StatusAfter(u16),
    /// Wait, then do the call and answer (the client may have given up).
    Slow(Duration),
    /// Close the connection without an answer; change nothing.
    Drop,
    /// Do the call, then close the connection without an answer.
    DropAfter,
}

/// Stops the fake answering once `after` calls have changed or read the
/// world: later requests are held unanswered until [`Fake::release`]. With
/// `withhold`, call number `after` itself is done but not answered.
#[derive(Debug, Clone, Copy)]
pub struct Gate {
    pub after: usize,
    pub withhold: bool,
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub authorization: String,
}

pub struct State {
    pub world: World,
    next_ip: u32,
    next_id: u32,
    /// Faults for the next requests matching their pattern, in order.
    pub faults: VecDeque<(Option<String>, Fault)>,
    /// A fault for every request.
    pub always: Option<Fault>,
    pub gate: Option<Gate>,
    pub crashed: bool,
    /// Calls that reached the world.
    pub processed: usize,
    pub log: Vec<Logged>,
    pub in_flight: usize,
    pub max_in_flight: usize,
    /// The spec's empty answer to `POST /instances/{id}/ipv4`.
    pub empty_create_answer: bool,
    /// Extra time for every answer.
    pub latency: Duration,
    /// How long an instance stays locked by the task a create, delete,
    /// attach or detach on it starts: meanwhile such calls on it get
    /// Vultr's HTTP 500 "Server is currently locked" and change nothing.
    pub task_time: Duration,
    /// Until when each instance is busy with a task.
    pub busy_until: BTreeMap<String, Instant>,
    /// "Server is currently locked" answers given.
    pub locked_answers: usize,
    /// The instance the metadata document names (`None`: not on one).
    pub metadata_instance: Option<String>,
    /// Largest page the lists give, whatever `per_page` asks.
    pub page_size: usize,
    pub key: String,
}

struct Shared {
    state: Mutex<State>,
    release: Condvar,
    crash: tokio::sync::Notify,
}

pub struct Fake {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    /// Accepts until the fake is dropped (after `release` let held
    /// requests go).
    _server: Server,
}

impl Fake {
    pub fn start(key: &str) -> Fake {
        Fake::with_world(key, World::standard())
    }

    pub fn with_world(key: &str, world: World) -> Fake {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                world,
                next_ip: u32::from(Ipv4Addr::new(203, 0, 113, 10)),
                next_id: 1,
                faults: VecDeque::new(),
                always: None,
                gate: None,
                crashed: false,
                processed: 0,
                log: Vec::new(),
                in_flight: 0,
                max_in_flight: 0,
                empty_create_answer: false,
                latency: Duration::ZERO,
                task_time: Duration::ZERO,
                busy_until: BTreeMap::new(),
                locked_answers: 0,
                metadata_instance: None,
                page_size: 2,
                key: key.to_string(),
            }),
            release: Condvar::new(),
            crash: tokio::sync::Notify::new(),
        });
        let server = {
            let shared = shared.clone();
            Server::start("the fake", move |conn, _| serve(&shared, conn))
        };
        Fake {
            addr: server.addr,
            shared,
            _server: server,
        }
    }

    /// The base URL, with the real API's `/v2` prefix.
    pub fn url(&self) -> String {
        format!("http://{}/v2", self.addr)
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn world(&self) -> World {
        self.state().world.clone()
    }

    pub fn push_faults(&self, pattern: Option<&str>, fault: Fault, count: usize) {
        let mut s = self.state();
        for _ in 0..count {
            s.faults.push_back((pattern.map(String::from), fault));
        }
    }

    /// Resolves when a request was held by the gate.
    pub async fn crashed(&self) {
        self.shared.crash.notified().await
    }

    /// Opens the gate: held requests are dropped unanswered and unprocessed.
    pub fn release(&self) {
        let mut s = self.state();
        s.gate = None;
        s.crashed = false;
        drop(s);
        self.shared.release.notify_all();
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.release();
    }
}

fn error_body(status: u16, message: &str) -> Vec<u8> {
    json!({ "error": message, "status": status })
        .to_string()
        .into_bytes()
}

/// Holds the connection until the gate opens; the request is never done.
fn hold(shared: &Shared, mut s: MutexGuard<'_, State>) {
    if !s.crashed {
        s.crashed = true;
        shared.crash.notify_one();
    }
    while s.gate.is_some() {
        s = shared.release.wait(s).unwrap_or_else(|p| p.into_inner());
    }
}

fn serve(shared: &Shared, conn: TcpStream) {
    let Some(req) = read_request(&conn) else {
        return;
    };
    let mut s = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    s.in_flight += 1;
    s.max_in_flight = s.max_in_flight.max(s.in_flight);
    let index = s.log.len();
    s.log.push(Logged {
        at: Instant::now(),
        method: req.method.clone(),
        path: req.target(),
        status: 0,
        authorization: req.header("authorization").unwrap_or("").to_string(),
    });
    let outcome = answer(shared, s, &req);
    let mut s = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    s.in_flight -= 1;
    match outcome {
        Some((status, body)) => {
            s.log[index].status = status;
            drop(s);
            let headers = [("Content-Type".to_string(), "application/json".to_string())];
            write_response(&conn, status, &headers, &body);
        }
        None => {
            drop(s);
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Decides the answer; `None` drops the connection.
fn answer<'a>(
    shared: &'a Shared,
    mut s: MutexGuard<'a, State>,
    req: &Request,
) -> Option<(u16, Vec<u8>)> {
    let latency = s.latency;
    if !latency.is_zero() {
        drop(s);
        thread::sleep(latency);
        s = shared.state.lock().unwrap_or_else(|p| p.into_inner());
    }
    // The metadata service: on the instance, no key (169.254.169.254).
    if req.method == "GET" && req.path == "/v1.json" {
        return Some(match &s.metadata_instance {
            Some(id) => (
                200,
                json!({ "instanceid": "51e5b1b0", "instance-v2-id": id, "hostname": "troll" })
                    .to_string()
                    .into_bytes(),
            ),
            None => (404, Vec::new()),
        });
    }
    if req.header("authorization") != Some(&format!("Bearer {}", s.key)) {
        return Some((401, error_body(401, "Invalid API token.")));
    }
    if let Some(g) = s.gate {
        if s.processed >= g.after {
            hold(shared, s);
            return None;
        }
    }
    let line = format!("{} {}", req.method, req.path);
    let fault = match s
        .faults
        .iter()
        .position(|(p, _)| p.as_deref().is_none_or(|p| matches(p, &line)))
    {
        Some(i) => s.faults.remove(i).map(|(_, f)| f),
        None => s.always,
    };
    match fault {
        Some(Fault::Status(code)) => {
            return Some((code, error_body(code, "injected failure")));
        }
        Some(Fault::Drop) => return None,
        Some(Fault::Slow(d)) => {
            drop(s);
            thread::sleep(d);
            s = shared.state.lock().unwrap_or_else(|p| p.into_inner());
        }
        _ => {}
    }
    let result = route(&mut s, req);
    s.processed += 1;
    if let Some(g) = s.gate {
        if g.withhold && s.processed == g.after {
            hold(shared, s);
            return None;
        }
    }
    match fault {
        Some(Fault::StatusAfter(code)) => Some((code, error_body(code, "injected failure"))),
        Some(Fault::DropAfter) => None,
        _ => Some(result),
    }
}

/// `pattern` is `METHOD /path`, with a trailing `*` for a prefix.
fn matches(pattern: &str, line: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => line.starts_with(prefix),
        None => line == pattern,
    }
}

fn body_json(req: &Request) -> Result<Value, (u16, Vec<u8>)> {
    let is_json = req
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json"));
    if !is_json {
        return Err((400, error_body(400, "expected a JSON body")));
    }
    serde_json::from_slice(&req.body).map_err(|_| (400, error_body(400, "malformed JSON")))
}

fn field<'a>(body: &'a Value, name: &str) -> Result<&'a str, (u16, Vec<u8>)> {
    body.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| (400, error_body(400, &format!("missing {name}"))))
}

fn is_full_ipv6(text: &str) -> bool {
    let groups: Vec<&str> = text.split(':').collect();
    groups.len() == 8
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn page<T: Clone>(s: &State, req: &Request, items: &[T]) -> (Vec<T>, String) {
    let per_page: usize = req
        .query("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(100)
        .min(s.page_size);
    let start: usize = req
        .query("cursor")
        .and_then(|c| c.strip_prefix("bmV4dA"))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let end = (start + per_page).min(items.len());
    let next = if end < items.len() {
        format!("bmV4dA{end}")
    } else {
        String::new()
    };
    (items[start.min(end)..end].to_vec(), next)
}

fn meta(total: usize, next: String) -> Value {
    json!({ "total": total, "links": { "next": next, "prev": "" } })
}

fn reserved_json(r: &Reserved) -> Value {
    json!({
        "id": r.id, "region": r.region, "ip_type": "v4", "subnet": r.subnet.to_string(),
        "subnet_size": 32, "label": r.label,
        "instance_id": r.instance_id.clone().unwrap_or_default(),
    })
}

/// The instance a call starts a task on, as Vultr locks it: adding or
/// deleting an IPv4, attaching or detaching a reserved IP, reboots and
/// instance updates.
fn task_instance(s: &State, req: &Request) -> Option<String> {
    let path = req.path.strip_prefix("/v2")?;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), parts.as_slice()) {
        ("POST", ["instances", id, "ipv4"])
        | ("DELETE", ["instances", id, "ipv4", _])
        | ("POST", ["instances", id, "reboot"])
        | ("PATCH", ["instances", id]) => Some(id.to_string()),
        ("POST", ["reserved-ips", _, "attach"]) => serde_json::from_slice::<Value>(&req.body)
            .ok()?
            .get("instance_id")?
            .as_str()
            .map(String::from),
        ("POST", ["reserved-ips", rid, "detach"]) => {
            s.world.reserved.get(*rid)?.instance_id.clone()
        }
        _ => None,
    }
}

fn route(s: &mut State, req: &Request) -> (u16, Vec<u8>) {
    let task = task_instance(s, req);
    if let Some(id) = &task {
        if s.busy_until.get(id).is_some_and(|t| Instant::now() < *t) {
            s.locked_answers += 1;
            return (500, error_body(500, "Server is currently locked"));
        }
    }
    let answer = match route_inner(s, req) {
        Ok(r) | Err(r) => r,
    };
    if let (Some(id), true) = (task, answer.0 < 300) {
        if !s.task_time.is_zero() {
            s.busy_until.insert(id, Instant::now() + s.task_time);
        }
    }
    answer
}

/// The number of extra IPv4 (additional and attached reserved) on an
/// instance.
fn extra_ipv4(s: &State, id: &str) -> usize {
    s.world.instances.get(id).map_or(0, |i| {
        i.ipv4.values().filter(|e| e.kind == "secondary_ip").count()
    }) + s
        .world
        .reserved
        .values()
        .filter(|r| r.instance_id.as_deref() == Some(id))
        .count()
}

/// Vultr's refusal past the additional-IPv4 cap.
/// The exact wording of the real API is not documented (see
/// docs/providers/vultr.md); troll reads any 4xx here the same way.
pub const CAP_REFUSAL: &str =
    "Unable to add IP: You have reached the maximum number of IPv4 addresses for this instance. Please contact support.";

fn at_cap(s: &State, id: &str) -> bool {
    s.world
        .instances
        .get(id)
        .and_then(|i| i.ipv4_cap)
        .is_some_and(|cap| extra_ipv4(s, id) >= cap)
}

type Answer = Result<(u16, Vec<u8>), (u16, Vec<u8>)>;

fn not_found(what: &str) -> (u16, Vec<u8>) {
    (404, error_body(404, what))
}

/// Instance `id`, or the API's 404 for it.
fn instance<'a>(world: &'a World, id: &str) -> Result<&'a Inst, (u16, Vec<u8>)> {
    world
        .instances
        .get(id)
        .ok_or_else(|| not_found("Invalid instance-id."))
}

fn instance_mut<'a>(world: &'a mut World, id: &str) -> Result<&'a mut Inst, (u16, Vec<u8>)> {
    world
        .instances
        .get_mut(id)
        .ok_or_else(|| not_found("Invalid instance-id."))
}

/// Reserved IP `rid`, or the API's 404 for it.
fn reserved_mut<'a>(world: &'a mut World, rid: &str) -> Result<&'a mut Reserved, (u16, Vec<u8>)> {
    world
        .reserved
        .get_mut(rid)
        .ok_or_else(|| not_found("Reserved IP not found."))
}

/// An address from the path or the body, or the API's 400 for it.
fn parse_ip<T: std::str::FromStr>(text: &str) -> Result<T, (u16, Vec<u8>)> {
    text.parse()
        .map_err(|_| (400, error_body(400, "Invalid IP")))
}

fn route_inner(s: &mut State, req: &Request) -> Answer {
    let path = req
        .path
        .strip_prefix("/v2")
        .ok_or_else(|| not_found("no such API version"))?;
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method.as_str();
    match (method, parts.as_slice()) {
        ("GET", ["instances", id]) => {
            let i = instance(&s.world, id)?;
            let (net, main6) =
                i.v6.map(|(n, m)| (n.to_string(), m.to_string()))
                    .unwrap_or_default();
            let size = if i.v6.is_some() { 64 } else { 0 };
            let busy = s.busy_until.get(*id).is_some_and(|t| Instant::now() < *t);
            let server_status = if busy { "locked" } else { "ok" };
            let firewall = i.firewall_group.clone().unwrap_or_default();
            let features = if i.v6.is_some() {
                json!(["ipv6"])
            } else {
                json!([])
            };
            let networks = match i.v6 {
                Some(_) => json!([{ "network": net, "main_ip": main6, "network_size": size }]),
                None => json!([]),
            };
            let body = json!({ "instance": {
                "id": id, "os": "Debian 12 x64 (bookworm)", "ram": 1024, "disk": 25,
                "main_ip": i.main_ip.to_string(), "vcpu_count": 1, "region": i.region,
                "plan": "vc2-1c-1gb", "status": "active", "power_status": "running",
                "server_status": server_status, "v6_network": net, "v6_main_ip": main6,
                "v6_network_size": size, "v6_networks": networks, "label": "troll",
                "firewall_group_id": firewall, "features": features, "tags": []
            }});
            Ok((200, body.to_string().into_bytes()))
        }
        ("GET", ["instances"]) => {
            let wanted = req.query("main_ip");
            let all: Vec<Value> = s
                .world
                .instances
                .iter()
                .filter(|(_, i)| wanted.is_none_or(|w| w == i.main_ip.to_string()))
                .map(|(id, i)| json!({ "id": id, "main_ip": i.main_ip.to_string(), "region": i.region }))
                .collect();
            let total = all.len();
            let (items, next) = page(s, req, &all);
            let body = json!({ "instances": items, "meta": meta(total, next) });
            Ok((200, body.to_string().into_bytes()))
        }
        ("PATCH", ["instances", id]) => {
            let body = body_json(req)?;
            let i = instance_mut(&mut s.world, id)?;
            if body.get("enable_ipv6") == Some(&Value::Bool(true)) && i.v6.is_none() {
                // Vultr gives the instance a /64 from its region's block.
                let n = u32::from(i.main_ip) & 0xffff;
                let net = Ipv6Addr::new(0x2001, 0xdb8, 0x77, n as u16, 0, 0, 0, 0);
                let main = Ipv6Addr::new(0x2001, 0xdb8, 0x77, n as u16, 0x5400, 0x2ff, 0xfe00, 1);
                i.v6 = Some((net, main));
            }
            Ok((
                202,
                json!({ "instance": { "id": id } }).to_string().into_bytes(),
            ))
        }
        ("POST", ["instances", id, "reboot"]) => {
            let i = instance_mut(&mut s.world, id)?;
            i.reboots += 1;
            Ok((204, Vec::new()))
        }
        ("GET", ["firewalls", gid, "rules"]) => {
            let rules = s
                .world
                .firewalls
                .get(*gid)
                .ok_or_else(|| not_found("Invalid firewall group."))?;
            let all: Vec<Value> = rules
                .iter()
                .enumerate()
                .map(|(n, (t, proto, port, subnet, size))| {
                    json!({ "id": n + 1, "type": t, "ip_type": t, "action": "accept",
                            "protocol": proto, "port": port, "subnet": subnet,
                            "subnet_size": size, "source": "", "notes": "" })
                })
                .collect();
            let total = all.len();
            let (items, next) = page(s, req, &all);
            let body = json!({ "firewall_rules": items, "meta": meta(total, next) });
            Ok((200, body.to_string().into_bytes()))
        }
        ("GET", ["instances", id, "ipv4"]) => {
            let i = instance(&s.world, id)?;
            let mut all: Vec<Value> = i
                .ipv4
                .iter()
                .map(|(ip, e)| {
                    json!({ "ip": ip.to_string(), "netmask": "255.255.254.0", "gateway": "",
                            "type": e.kind, "reverse": e.reverse })
                })
                .collect();
            all.extend(
                s.world
                    .reserved
                    .values()
                    .filter(|r| r.instance_id.as_deref() == Some(*id))
                    .map(|r| {
                        json!({ "ip": r.subnet.to_string(), "netmask": "255.255.255.255",
                                "gateway": "", "type": "secondary_ip", "reverse": r.reverse })
                    }),
            );
            let total = all.len();
            let (items, next) = page(s, req, &all);
            let body = json!({ "ipv4s": items, "meta": meta(total, next) });
            Ok((200, body.to_string().into_bytes()))
        }
        ("POST", ["instances", id, "ipv4"]) => {
            let body = body_json(req)?;
            if body.get("reboot") != Some(&Value::Bool(false)) {
                return Err((400, error_body(400, "the test fake refuses to reboot")));
            }
            if at_cap(s, id) {
                return Err((400, error_body(400, CAP_REFUSAL)));
            }
            let ip = Ipv4Addr::from(s.next_ip);
            s.next_ip += 1;
            let empty = s.empty_create_answer;
            let i = instance_mut(&mut s.world, id)?;
            i.ipv4.insert(
                ip,
                V4Entry {
                    kind: "secondary_ip".into(),
                    reverse: default_reverse(ip),
                },
            );
            let answer = if empty {
                json!({})
            } else {
                json!({ "ipv4": { "ip": ip.to_string(), "netmask": "255.255.255.255",
                                  "gateway": "", "type": "secondary_ip",
                                  "reverse": default_reverse(ip) } })
            };
            Ok((202, answer.to_string().into_bytes()))
        }
        ("DELETE", ["instances", id, "ipv4", ip]) => {
            let ip: Ipv4Addr = parse_ip(ip)?;
            let i = instance_mut(&mut s.world, id)?;
            match i.ipv4.get(&ip) {
                Some(e) if e.kind == "main_ip" => {
                    Err((400, error_body(400, "cannot delete the main IP")))
                }
                Some(_) => {
                    i.ipv4.remove(&ip);
                    Ok((204, Vec::new()))
                }
                None => Err(not_found("IP not found on this instance")),
            }
        }
        ("POST", ["instances", id, "ipv4", "reverse"]) => {
            let body = body_json(req)?;
            let ip: Ipv4Addr = parse_ip(field(&body, "ip")?)?;
            let name = field(&body, "reverse")?.to_string();
            set_v4_reverse(s, id, ip, Some(name))
        }
        ("POST", ["instances", id, "ipv4", "reverse", "default"]) => {
            let body = body_json(req)?;
            let ip: Ipv4Addr = parse_ip(field(&body, "ip")?)?;
            set_v4_reverse(s, id, ip, None)
        }
        ("GET", ["instances", id, "ipv6", "reverse"]) => {
            let i = instance(&s.world, id)?;
            let list: Vec<Value> = i
                .v6_reverse
                .iter()
                .map(|(ip, name)| {
                    // The API writes addresses half expanded, like its example.
                    let text = ip
                        .segments()
                        .iter()
                        .map(|g| format!("{g:x}"))
                        .collect::<Vec<_>>()
                        .join(":");
                    json!({ "ip": text, "reverse": name })
                })
                .collect();
            Ok((
                200,
                json!({ "reverse_ipv6s": list }).to_string().into_bytes(),
            ))
        }
        ("POST", ["instances", id, "ipv6", "reverse"]) => {
            let body = body_json(req)?;
            let text = field(&body, "ip")?;
            if !is_full_ipv6(text) {
                return Err((400, error_body(400, "IPv6 address must be in full form")));
            }
            let ip: Ipv6Addr = parse_ip(text)?;
            let name = field(&body, "reverse")?.to_string();
            let i = instance_mut(&mut s.world, id)?;
            let Some((net, _)) = i.v6 else {
                return Err((400, error_body(400, "IPv6 is not enabled")));
            };
            if u128::from(ip) >> 64 != u128::from(net) >> 64 {
                return Err((400, error_body(400, "IP is not in this instance's network")));
            }
            i.v6_reverse.insert(ip, name);
            Ok((204, Vec::new()))
        }
        ("DELETE", ["instances", id, "ipv6", "reverse", ip]) => {
            let ip: Ipv6Addr = parse_ip(ip)?;
            let i = instance_mut(&mut s.world, id)?;
            // The spec lists no 404 here: Vultr answers 400 for an entry
            // that is not there.
            match i.v6_reverse.remove(&ip) {
                Some(_) => Ok((204, Vec::new())),
                None => Err((400, error_body(400, "Invalid reverse IPv6 entry."))),
            }
        }
        ("GET", ["reserved-ips"]) => {
            let all: Vec<Value> = s.world.reserved.values().map(reserved_json).collect();
            let total = all.len();
            let (items, next) = page(s, req, &all);
            let body = json!({ "reserved_ips": items, "meta": meta(total, next) });
            Ok((200, body.to_string().into_bytes()))
        }
        ("POST", ["reserved-ips"]) => {
            let body = body_json(req)?;
            let region = field(&body, "region")?.to_string();
            if field(&body, "ip_type")? != "v4" {
                return Err((400, error_body(400, "the test fake only has v4")));
            }
            let label = body
                .get("label")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let ip = Ipv4Addr::from(s.next_ip + 100);
            s.next_ip += 1;
            let id = format!("a0a0a0a0-0000-4000-8000-{:012}", s.next_id);
            s.next_id += 1;
            let r = Reserved {
                id: id.clone(),
                region,
                subnet: ip,
                label,
                instance_id: None,
                reverse: default_reverse(ip),
            };
            let answer = json!({ "reserved_ip": reserved_json(&r) });
            s.world.reserved.insert(id, r);
            Ok((201, answer.to_string().into_bytes()))
        }
        ("POST", ["reserved-ips", rid, "attach"]) => {
            let body = body_json(req)?;
            let instance = field(&body, "instance_id")?.to_string();
            let region = s
                .world
                .instances
                .get(&instance)
                .map(|i| i.region.clone())
                .ok_or_else(|| not_found("Invalid instance-id."))?;
            let r = reserved_mut(&mut s.world, rid)?;
            if r.instance_id.is_some() {
                return Err((400, error_body(400, "Reserved IP is already attached.")));
            }
            if r.region != region {
                return Err((400, error_body(400, "Reserved IP is in another region.")));
            }
            let full = s
                .world
                .instances
                .get(&instance)
                .and_then(|i| i.ipv4_cap)
                .is_some_and(|cap| extra_ipv4(s, &instance) >= cap);
            if full {
                return Err((400, error_body(400, CAP_REFUSAL)));
            }
            let r = reserved_mut(&mut s.world, rid)?;
            r.instance_id = Some(instance);
            Ok((204, Vec::new()))
        }
        ("POST", ["reserved-ips", rid, "detach"]) => {
            let r = reserved_mut(&mut s.world, rid)?;
            if r.instance_id.is_none() {
                return Err((400, error_body(400, "Reserved IP is not attached.")));
            }
            r.instance_id = None;
            r.reverse = default_reverse(r.subnet);
            Ok((204, Vec::new()))
        }
        ("DELETE", ["reserved-ips", rid]) => match s.world.reserved.get(*rid) {
            None => Err(not_found("Reserved IP not found.")),
            Some(r) if r.instance_id.is_some() => {
                Err((400, error_body(400, "Detach the reserved IP first.")))
            }
            Some(_) => {
                s.world.reserved.remove(*rid);
                Ok((204, Vec::new()))
            }
        },
        _ => Err(not_found("no such endpoint in the test fake")),
    }
}

fn set_v4_reverse(s: &mut State, id: &str, ip: Ipv4Addr, name: Option<String>) -> Answer {
    let name = name.unwrap_or_else(|| default_reverse(ip));
    if !s.world.instances.contains_key(id) {
        return Err(not_found("Invalid instance-id."));
    }
    if let Some(r) = s
        .world
        .reserved
        .values_mut()
        .find(|r| r.subnet == ip && r.instance_id.as_deref() == Some(id))
    {
        r.reverse = name;
        return Ok((204, Vec::new()));
    }
    let i = instance_mut(&mut s.world, id)?;
    match i.ipv4.get_mut(&ip) {
        Some(e) => {
            e.reverse = name;
            Ok((204, Vec::new()))
        }
        None => Err((400, error_body(400, "Invalid IP"))),
    }
}
