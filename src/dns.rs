//! The embedded authoritative DNS server for the shows' reverse zones.
//!
//! traceroute prints a hop's PTR name, so a message only appears if someone
//! answers the reverse lookups of the hop addresses. Cloud providers set PTR
//! records through their APIs; everywhere else (the local lab, a static
//! address block whose reverse zone is delegated to the operator's server,
//! common for IPv6 prefixes) `troll` answers them itself with this module.
//!
//! hickory does the wire format (parsing, name compression, EDNS, UDP and
//! TCP framing); this module only decides the answer. It is deliberately
//! small: one [`ZoneData`] holds every record, [`ZoneData::resolve`] is a pure
//! function from a question to an answer, and [`DnsServer`] runs hickory's
//! `ServerFuture` on a thread of its own so that the synchronous packet loop
//! of `troll serve` can start it, swap its records with [`DnsServer::update`]
//! and stop it. [`render_zone_file`] exports the same zones for BIND, NSD or
//! Knot.
//!
//! Zones are the /24 (IPv4) and /64 (IPv6) reverse zones of the addresses,
//! each with SOA and NS at its apex. Names are matched without regard to case
//! (resolvers randomise it, DNS 0x20), while PTR targets are served with
//! exactly the case they were given: the case is part of the message.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::pin::Pin;
use std::sync::{mpsc, Arc, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use hickory_proto::error::ProtoErrorKind;
use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{NS, PTR, SOA};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;
use hickory_proto::udp::UdpStream;
use hickory_proto::xfer::{BufDnsStreamHandle, DnsStreamHandle, SerialMessage};
use hickory_server::authority::{MessageRequest, MessageResponseBuilder};
use hickory_server::server::{
    Protocol, Request, RequestHandler, ResponseHandle, ResponseHandler, ResponseInfo,
};
use hickory_server::ServerFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// The BIND zone file template; see [`render_zone_file`].
const ZONE_TEMPLATE: &str = include_str!("../templates/reverse.zone");

/// SOA refresh: how often a secondary checks the serial (seconds).
pub const SOA_REFRESH: i32 = 3600;
/// SOA retry: how soon a secondary retries a failed refresh (seconds).
pub const SOA_RETRY: i32 = 600;
/// SOA expire: how long a secondary serves the zone without its primary
/// (seconds; two weeks, as RFC 1912 suggests).
pub const SOA_EXPIRE: i32 = 1_209_600;

/// Default SOA MNAME and NS target: the zones are served by "this host".
/// Operators whose reverse zone is delegated set the name the parent zone
/// delegates to with [`ZoneData::with_nameserver`].
pub const DEFAULT_NAMESERVER: &str = "localhost.";
/// Default SOA RNAME: no mailbox (`.invalid` never resolves, RFC 2606).
pub const DEFAULT_HOSTMASTER: &str = "hostmaster.invalid.";

/// How often, at most, the server logs a summary of the bad queries.
pub const BAD_QUERY_SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// How long an idle TCP client may keep its connection open.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// The EDNS UDP payload size this server offers (DNS flag day 2020).
const EDNS_MAX_PAYLOAD: u16 = 1232;
/// Labels in a /64 reverse zone origin: 16 nibbles, `ip6`, `arpa`.
const IPV6_ZONE_LABELS: usize = 18;
/// Largest TTL DNS allows (RFC 2181 §8).
const MAX_TTL: u32 = i32::MAX as u32;

/// Errors of the embedded DNS server; each names the address or the name at
/// fault and the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// A PTR name is not a valid DNS name.
    #[error("invalid PTR name {name:?} for {address}: {reason}")]
    InvalidName {
        /// The address the name was meant for.
        address: IpAddr,
        /// The name as given.
        name: String,
        /// Why hickory rejected it.
        reason: String,
    },
    /// One address was given two different names.
    #[error("{address} has two PTR names, {first:?} and {second:?}; an address can show only one")]
    ConflictingNames {
        /// The address.
        address: IpAddr,
        /// The name seen first.
        first: String,
        /// The other name.
        second: String,
    },
    /// The SOA/NS server name or the hostmaster name is not a valid DNS name.
    #[error("invalid {field} name {name:?}: {reason}")]
    InvalidServerName {
        /// `nameserver` or `hostmaster`.
        field: &'static str,
        /// The name as given.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The TTL is larger than DNS allows.
    #[error("TTL {ttl} is too large: DNS allows at most {MAX_TTL} seconds")]
    InvalidTtl {
        /// The TTL as given.
        ttl: u32,
    },
    /// A socket could not be bound.
    #[error("cannot bind DNS ({protocol}) on {addr}: {source}{hint}")]
    Bind {
        /// `UDP` or `TCP`.
        protocol: &'static str,
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
        /// What to do about it, empty when there is no advice.
        hint: &'static str,
    },
    /// The server thread or its runtime could not be started.
    #[error("cannot start the DNS server on {addr}: {source}")]
    Start {
        /// The address the server was bound to.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
    },
}

impl DnsError {
    fn bind(protocol: &'static str, addr: SocketAddr, source: io::Error) -> DnsError {
        let hint = match source.kind() {
            io::ErrorKind::PermissionDenied => "; run as root or pick a port above 1023 with --dns",
            io::ErrorKind::AddrInUse => {
                "; another DNS server (systemd-resolved, dnsmasq, a running troll?) holds it, \
                 stop it or pick another address or port with --dns"
            }
            io::ErrorKind::AddrNotAvailable => "; that address is not on this host",
            _ => "",
        };
        DnsError::Bind {
            protocol,
            addr,
            source,
            hint,
        }
    }
}

/// One PTR record: address -> host name.
///
/// The name is served with its case exactly as given (`"Douglas.Adams"` is
/// answered as `Douglas.Adams.`); a trailing dot is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrEntry {
    /// The address whose reverse name gets the record.
    pub address: IpAddr,
    /// The host name the address resolves to.
    pub name: String,
}

/// One reverse zone: its origin and the records in it (indices into
/// `ZoneData::entries`, in address order).
#[derive(Debug, Clone)]
struct Zone {
    origin: Name,
    entries: Vec<usize>,
}

/// The records to serve: PTR records grouped into reverse zones, with the
/// TTL, serial and server names for each zone's SOA and NS.
///
/// Built once with [`ZoneData::new`] and then immutable; the server swaps
/// whole `ZoneData` values, so a query never sees half an update.
#[derive(Debug, Clone)]
pub struct ZoneData {
    entries: Vec<PtrEntry>,
    /// PTR target of `entries[i]`, case kept.
    targets: Vec<Name>,
    /// Reverse name of `entries[i]` (lower case, as hickory builds it).
    owners: Vec<Name>,
    zones: Vec<Zone>,
    zone_index: HashMap<LowerName, usize>,
    ptr_index: HashMap<LowerName, usize>,
    /// Names between a zone apex and a PTR owner (the nibbles of an IPv6
    /// /64 zone): they exist without records, so they answer NODATA, not
    /// NXDOMAIN (RFC 8020), or resolvers that minimise query names stop
    /// there.
    empty_non_terminals: HashSet<LowerName>,
    ttl: u32,
    serial: u32,
    nameserver: Name,
    hostmaster: Name,
}

impl ZoneData {
    /// Groups `entries` into reverse zones: the /24 of each IPv4 address
    /// (`c.b.a.in-addr.arpa.`), the /64 of each IPv6 address (16 nibbles
    /// under `ip6.arpa.`). `ttl` is used for every record and as the SOA
    /// minimum. The serial is the current Unix time; [`DnsServer::update`]
    /// makes sure it increases.
    ///
    /// An address listed twice with the same name is kept once; with two
    /// different names it is an error, as is a name that is not a valid DNS
    /// name (empty, a label over 63 bytes or starting with `-`, characters
    /// other than letters, digits, `-` and `_`, more than 255 bytes).
    pub fn new(entries: Vec<PtrEntry>, ttl: u32) -> Result<ZoneData, DnsError> {
        if ttl > MAX_TTL {
            return Err(DnsError::InvalidTtl { ttl });
        }
        let mut entries = entries;
        entries.sort_by_key(|entry| entry.address);

        let mut kept: Vec<PtrEntry> = Vec::with_capacity(entries.len());
        let mut targets: Vec<Name> = Vec::with_capacity(entries.len());
        for entry in entries {
            let target = parse_fqdn(&entry.name).map_err(|reason| DnsError::InvalidName {
                address: entry.address,
                name: entry.name.clone(),
                reason,
            })?;
            if let (Some(previous), Some(previous_target)) = (kept.last(), targets.last()) {
                if previous.address == entry.address {
                    if previous_target.eq_case(&target) {
                        continue;
                    }
                    return Err(DnsError::ConflictingNames {
                        address: entry.address,
                        first: previous.name.clone(),
                        second: entry.name,
                    });
                }
            }
            kept.push(entry);
            targets.push(target);
        }

        let mut data = ZoneData {
            owners: Vec::with_capacity(kept.len()),
            entries: Vec::new(),
            targets,
            zones: Vec::new(),
            zone_index: HashMap::new(),
            ptr_index: HashMap::new(),
            empty_non_terminals: HashSet::new(),
            ttl,
            serial: unix_time_serial(),
            nameserver: Name::root(),
            hostmaster: Name::root(),
        };
        data.nameserver = parse_fqdn(DEFAULT_NAMESERVER).unwrap_or_else(|_| Name::root());
        data.hostmaster = parse_fqdn(DEFAULT_HOSTMASTER).unwrap_or_else(|_| Name::root());

        for (index, entry) in kept.iter().enumerate() {
            let owner = Name::from(entry.address);
            let origin = zone_origin(entry.address, &owner);
            let zone = *data
                .zone_index
                .entry(LowerName::new(&origin))
                .or_insert_with(|| {
                    data.zones.push(Zone {
                        origin: origin.clone(),
                        entries: Vec::new(),
                    });
                    data.zones.len() - 1
                });
            data.zones[zone].entries.push(index);

            let mut between = owner.base_name();
            while between.num_labels() > origin.num_labels() {
                data.empty_non_terminals.insert(LowerName::new(&between));
                between = between.base_name();
            }
            data.ptr_index.insert(LowerName::new(&owner), index);
            data.owners.push(owner);
        }
        data.entries = kept;
        Ok(data)
    }

    /// Sets the server name used as SOA MNAME and as the NS target of every
    /// zone: the name the parent zone delegates to (default `localhost.`).
    pub fn with_nameserver(mut self, name: &str) -> Result<ZoneData, DnsError> {
        self.nameserver = parse_fqdn(name).map_err(|reason| DnsError::InvalidServerName {
            field: "nameserver",
            name: name.to_owned(),
            reason,
        })?;
        Ok(self)
    }

    /// Sets the SOA RNAME, the zone contact in DNS form
    /// (`hostmaster.example.com.` for hostmaster@example.com; default
    /// `hostmaster.invalid.`).
    pub fn with_hostmaster(mut self, name: &str) -> Result<ZoneData, DnsError> {
        self.hostmaster = parse_fqdn(name).map_err(|reason| DnsError::InvalidServerName {
            field: "hostmaster",
            name: name.to_owned(),
            reason,
        })?;
        Ok(self)
    }

    /// Sets the SOA serial (default: the Unix time when the data was built).
    pub fn with_serial(mut self, serial: u32) -> ZoneData {
        self.serial = serial;
        self
    }

    /// The records, sorted by address, duplicates removed.
    pub fn entries(&self) -> &[PtrEntry] {
        &self.entries
    }

    /// The TTL of every record and the SOA minimum.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The SOA serial of every zone.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// The zone origins (`0.18.198.in-addr.arpa.`), IPv4 first, in address
    /// order: what an operator has delegated to this server.
    pub fn zone_origins(&self) -> Vec<String> {
        self.zones
            .iter()
            .map(|zone| zone.origin.to_ascii())
            .collect()
    }

    /// Answers one question, as the server does for every query.
    ///
    /// `qname` is the name as asked, in whatever case; it becomes the owner
    /// of the answer records. Outside every zone, in a class other than IN,
    /// and for zone transfers, the answer is REFUSED without records;
    /// inside a zone it is authoritative: the records, or NODATA or
    /// NXDOMAIN with the zone's SOA in the authority section.
    pub fn resolve(&self, qname: &Name, qtype: RecordType, qclass: DNSClass) -> Resolution {
        let lower = LowerName::new(qname);
        let zone = match self.zone_of(&lower) {
            Some(zone) if qclass == DNSClass::IN => zone,
            _ => return Resolution::error(ResponseCode::Refused),
        };
        if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            return Resolution::error(ResponseCode::Refused);
        }

        let mut resolution = Resolution {
            response_code: ResponseCode::NoError,
            authoritative: true,
            answers: Vec::new(),
            authority: Vec::new(),
        };
        let wants = |rtype: RecordType| qtype == rtype || qtype == RecordType::ANY;
        if lower == LowerName::new(&zone.origin) {
            if wants(RecordType::SOA) {
                resolution.answers.push(self.soa_record(qname.clone()));
            }
            if wants(RecordType::NS) {
                resolution.answers.push(self.ns_record(qname.clone()));
            }
        } else if let Some(&index) = self.ptr_index.get(&lower) {
            if wants(RecordType::PTR) {
                resolution.answers.push(Record::from_rdata(
                    qname.clone(),
                    self.ttl,
                    RData::PTR(PTR(self.targets[index].clone())),
                ));
            }
        } else if !self.empty_non_terminals.contains(&lower) {
            resolution.response_code = ResponseCode::NXDomain;
        }
        if resolution.answers.is_empty() {
            resolution
                .authority
                .push(self.soa_record(zone.origin.clone()));
        }
        resolution
    }

    /// The zone that contains `name`, if any.
    fn zone_of(&self, name: &LowerName) -> Option<&Zone> {
        let mut candidate = name.clone();
        loop {
            if let Some(&index) = self.zone_index.get(&candidate) {
                return self.zones.get(index);
            }
            if candidate.is_root() {
                return None;
            }
            candidate = candidate.base_name();
        }
    }

    fn soa(&self) -> SOA {
        SOA::new(
            self.nameserver.clone(),
            self.hostmaster.clone(),
            self.serial,
            SOA_REFRESH,
            SOA_RETRY,
            SOA_EXPIRE,
            self.ttl,
        )
    }

    fn soa_record(&self, owner: Name) -> Record {
        Record::from_rdata(owner, self.ttl, RData::SOA(self.soa()))
    }

    fn ns_record(&self, owner: Name) -> Record {
        Record::from_rdata(owner, self.ttl, RData::NS(NS(self.nameserver.clone())))
    }
}

/// The answer to one question: response code, AA flag and sections.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// NOERROR, NXDOMAIN or REFUSED.
    pub response_code: ResponseCode,
    /// Whether the AA bit is set (inside our zones).
    pub authoritative: bool,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section: the zone's SOA on NODATA and NXDOMAIN.
    pub authority: Vec<Record>,
}

impl Resolution {
    fn error(response_code: ResponseCode) -> Resolution {
        Resolution {
            response_code,
            authoritative: false,
            answers: Vec::new(),
            authority: Vec::new(),
        }
    }
}

/// Parses a host name as given by the user into a fully qualified name,
/// keeping its case.
fn parse_fqdn(text: &str) -> Result<Name, String> {
    if text.is_empty() || text == "." {
        return Err("the name is empty".to_owned());
    }
    let mut name = Name::from_ascii(text).map_err(|error| error.to_string())?;
    name.set_fqdn(true);
    Ok(name)
}

/// The reverse zone that holds `owner`, the reverse name of `address`.
fn zone_origin(address: IpAddr, owner: &Name) -> Name {
    match address {
        IpAddr::V4(_) => owner.base_name(),
        IpAddr::V6(_) => owner.trim_to(IPV6_ZONE_LABELS),
    }
}

/// An SOA serial from the clock: seconds since 1970, modulo 2^32 (serial
/// arithmetic, RFC 1982, copes with the wrap in 2106).
fn unix_time_serial() -> u32 {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    (seconds & u64::from(u32::MAX)) as u32
}

/// Whether serial `a` comes after serial `b` (RFC 1982 serial arithmetic).
fn serial_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Renders each reverse zone as a BIND-style zone file (`$ORIGIN`, `$TTL`,
/// SOA, NS, PTRs), from `templates/reverse.zone`. Returns (origin, text)
/// pairs, IPv4 zones first, in address order; NSD and Knot read the same
/// format.
pub fn render_zone_file(data: &ZoneData) -> Vec<(String, String)> {
    let ttl = data.ttl.to_string();
    let serial = data.serial.to_string();
    let refresh = SOA_REFRESH.to_string();
    let retry = SOA_RETRY.to_string();
    let expire = SOA_EXPIRE.to_string();
    let mname = data.nameserver.to_ascii();
    let rname = data.hostmaster.to_ascii();
    data.zones
        .iter()
        .map(|zone| {
            let origin = zone.origin.to_ascii();
            let suffix = format!(".{origin}");
            let records = zone
                .entries
                .iter()
                .map(|&index| {
                    let owner = data.owners[index].to_ascii();
                    let relative = owner.strip_suffix(&suffix).unwrap_or(&owner);
                    format!(
                        "{relative}\tIN\tPTR\t{target}\t; {address}",
                        target = data.targets[index].to_ascii(),
                        address = data.entries[index].address,
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            let text = fill_template(
                ZONE_TEMPLATE,
                &[
                    ("origin", &origin),
                    ("ttl", &ttl),
                    ("mname", &mname),
                    ("rname", &rname),
                    ("serial", &serial),
                    ("refresh", &refresh),
                    ("retry", &retry),
                    ("expire", &expire),
                    ("minimum", &ttl),
                    ("records", &records),
                ],
            );
            (origin, text)
        })
        .collect()
}

/// Replaces each `{{key}}` in `template` with its value, in one pass (a
/// value is never scanned for placeholders). Unknown keys stay as they are.
fn fill_template(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = &after[..end];
        match values.iter().find(|(name, _)| *name == key) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[start..start + 2 + end + 2]),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// A query the server did not answer normally: what a junk flood is made
/// of. Counted, and summarised in the log at most every
/// [`BAD_QUERY_SUMMARY_EVERY`], instead of a log line per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadQuery {
    /// Not even a DNS header: dropped.
    Undecodable,
    /// A header, then garbage: answered FORMERR.
    Malformed,
    /// A response, not a query: dropped (answering would reflect).
    Response,
    /// From port 0 or an unspecified or broadcast address: dropped.
    BadSource,
    /// An opcode other than QUERY: answered NOTIMP.
    NotImplemented,
    /// EDNS version above 0: answered BADVERS.
    BadEdnsVersion,
    /// A name outside the served zones: answered REFUSED.
    Refused,
    /// The answer could not be sent.
    SendFailed,
}

impl BadQuery {
    /// Every kind, in the order they are reported.
    pub const ALL: [BadQuery; 8] = [
        BadQuery::Undecodable,
        BadQuery::Malformed,
        BadQuery::Response,
        BadQuery::BadSource,
        BadQuery::NotImplemented,
        BadQuery::BadEdnsVersion,
        BadQuery::Refused,
        BadQuery::SendFailed,
    ];

    /// The name in logs, counters files and `troll status`.
    pub fn name(self) -> &'static str {
        match self {
            BadQuery::Undecodable => "undecodable",
            BadQuery::Malformed => "malformed",
            BadQuery::Response => "response",
            BadQuery::BadSource => "bad_source",
            BadQuery::NotImplemented => "not_implemented",
            BadQuery::BadEdnsVersion => "bad_edns_version",
            BadQuery::Refused => "refused",
            BadQuery::SendFailed => "send_failed",
        }
    }
}

/// The bad queries seen so far, by kind; shared by the server's tasks and
/// [`DnsServer::bad_queries`].
#[derive(Debug, Default)]
struct BadQueries {
    counts: [AtomicU64; BadQuery::ALL.len()],
}

impl BadQueries {
    fn count(&self, kind: BadQuery) {
        self.counts[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The kinds seen at least once, with their counts.
    fn snapshot(&self) -> BTreeMap<String, u64> {
        BadQuery::ALL
            .iter()
            .map(|&kind| (kind, self.counts[kind as usize].load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .map(|(kind, n)| (kind.name().to_owned(), n))
            .collect()
    }

    fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }
}

/// One log line for a set of counts: `kind=n kind=n`.
pub fn bad_query_summary(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(kind, n)| format!("{kind}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The data the server answers from, shared between the handler and
/// [`DnsServer::update`]; the inner `Arc` is swapped whole.
type SharedData = Arc<RwLock<Arc<ZoneData>>>;

/// hickory's request handler: takes a snapshot of the data, resolves the
/// question, lets hickory encode the response.
#[derive(Debug, Clone)]
struct Handler {
    data: SharedData,
    bad: Arc<BadQueries>,
}

impl Handler {
    fn snapshot(&self) -> Arc<ZoneData> {
        Arc::clone(&self.data.read().unwrap_or_else(PoisonError::into_inner))
    }

    async fn respond<R: ResponseHandler>(&self, request: &Request, mut handle: R) -> ResponseInfo {
        let mut builder = MessageResponseBuilder::from_message_request(request);
        let mut header = Header::response_from_request(request.header());

        if let Some(request_edns) = request.edns() {
            let mut edns = Edns::new();
            edns.set_version(0);
            edns.set_max_payload(request_edns.max_payload().clamp(512, EDNS_MAX_PAYLOAD));
            if request_edns.version() > 0 {
                self.bad.count(BadQuery::BadEdnsVersion);
                header.set_response_code(ResponseCode::BADVERS);
                edns.set_rcode_high(ResponseCode::BADVERS.high());
                builder.edns(edns);
                return self
                    .send(&mut handle, builder.build_no_records(header))
                    .await;
            }
            builder.edns(edns);
        }

        let query = request.query();
        let resolution = if request.message_type() != MessageType::Query {
            // hickory's TCP path drops responses before the handler, and
            // the UDP loop does too: this is not reached from the network.
            self.bad.count(BadQuery::Response);
            Resolution::error(ResponseCode::FormErr)
        } else if request.op_code() != OpCode::Query {
            self.bad.count(BadQuery::NotImplemented);
            Resolution::error(ResponseCode::NotImp)
        } else {
            self.snapshot().resolve(
                query.original().name(),
                query.query_type(),
                query.query_class(),
            )
        };
        if resolution.response_code == ResponseCode::Refused {
            self.bad.count(BadQuery::Refused);
        }
        debug!(
            src = %request.src(),
            protocol = %request.protocol(),
            query = %query,
            rcode = %resolution.response_code,
            answers = resolution.answers.len(),
            "DNS query"
        );
        header.set_response_code(resolution.response_code);
        header.set_authoritative(resolution.authoritative);
        let response = builder.build(
            header,
            resolution.answers.iter(),
            std::iter::empty(),
            resolution.authority.iter(),
            std::iter::empty(),
        );
        self.send(&mut handle, response).await
    }

    /// One datagram from the UDP loop: decoded here, so that junk is
    /// counted rather than logged.
    async fn respond_raw(&self, bytes: &[u8], src: SocketAddr, mut stream: BufDnsStreamHandle) {
        match MessageRequest::from_bytes(bytes) {
            Ok(message) if message.message_type() == MessageType::Response => {
                self.bad.count(BadQuery::Response);
            }
            Ok(message) => {
                let handle = ResponseHandle::new(src, stream, Protocol::Udp);
                self.respond(&Request::new(message, src, Protocol::Udp), handle)
                    .await;
            }
            Err(error) => match *error.kind {
                ProtoErrorKind::FormError { header, .. } => {
                    self.bad.count(BadQuery::Malformed);
                    // As hickory does: FORMERR with the query's id.
                    if header.message_type() == MessageType::Query {
                        let reply = Message::error_msg(
                            header.id(),
                            header.op_code(),
                            ResponseCode::FormErr,
                        );
                        let sent = reply
                            .to_vec()
                            .and_then(|bytes| stream.send(SerialMessage::new(bytes, src)));
                        if let Err(error) = sent {
                            self.bad.count(BadQuery::SendFailed);
                            debug!(%error, "cannot send a DNS FORMERR");
                        }
                    }
                }
                _ => self.bad.count(BadQuery::Undecodable),
            },
        }
    }

    async fn send<'a, R: ResponseHandler>(
        &self,
        handle: &mut R,
        response: hickory_server::authority::MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> ResponseInfo {
        match handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                self.bad.count(BadQuery::SendFailed);
                debug!(%error, "cannot send a DNS response");
                let mut header = Header::new();
                header.set_response_code(ResponseCode::ServFail);
                header.into()
            }
        }
    }
}

/// Whether an answer to `src` could arrive anywhere (hickory's rule).
fn answerable(src: SocketAddr) -> bool {
    let ip_ok = match src.ip() {
        IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_broadcast(),
        IpAddr::V6(ip) => !ip.is_unspecified(),
    };
    src.port() != 0 && ip_ok
}

/// The UDP side: hickory's datagram stream, each datagram decoded and
/// judged by the handler, so every bad one is counted and none is logged.
/// (TCP goes through hickory's `ServerFuture`; its per-message warnings are
/// filtered out of the log, see `main.rs`.)
async fn serve_udp(socket: tokio::net::UdpSocket, handler: Arc<Handler>) {
    // The address is unused: each answer goes to its query's source.
    let (mut stream, stream_handle) =
        UdpStream::with_bound(socket, SocketAddr::from(([127, 255, 255, 254], 0)));
    let mut tasks = JoinSet::new();
    while let Some(message) = stream.next().await {
        while tasks.try_join_next().is_some() {}
        let message = match message {
            Ok(message) => message,
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::NotConnected | io::ErrorKind::ConnectionAborted
                ) =>
            {
                warn!(%error, "the DNS UDP socket failed; no more UDP answers");
                return;
            }
            Err(error) => {
                debug!(%error, "DNS UDP receive error");
                continue;
            }
        };
        let src = message.addr();
        if !answerable(src) {
            handler.bad.count(BadQuery::BadSource);
            continue;
        }
        let handler = Arc::clone(&handler);
        let stream = stream_handle.with_remote_addr(src);
        tasks.spawn(async move { handler.respond_raw(message.bytes(), src, stream).await });
    }
}

/// Logs the bad queries at most every [`BAD_QUERY_SUMMARY_EVERY`], and
/// only when there were new ones.
async fn summarise_bad_queries(bad: Arc<BadQueries>) {
    let mut interval = tokio::time::interval(BAD_QUERY_SUMMARY_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reported = 0;
    loop {
        interval.tick().await;
        let total = bad.total();
        if total > reported {
            info!(
                "DNS: {} bad quer{} in the last {} s ({total} since start): {}",
                total - reported,
                if total - reported == 1 { "y" } else { "ies" },
                BAD_QUERY_SUMMARY_EVERY.as_secs(),
                bad_query_summary(&bad.snapshot())
            );
            reported = total;
        }
    }
}

// `RequestHandler` is declared with `#[async_trait]`; this is the signature
// that macro expands to, written out so that troll does not depend on the
// macro crate for one impl.
impl RequestHandler for Handler {
    fn handle_request<'life0, 'life1, 'async_trait, R>(
        &'life0 self,
        request: &'life1 Request,
        response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: 'async_trait + ResponseHandler,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(self.respond(request, response_handle))
    }
}

/// A running authoritative server for the reverse zones, on UDP and TCP.
///
/// It runs hickory on a current-thread tokio runtime in a thread of its
/// own, so synchronous code can own it. Dropping it stops it, like
/// [`DnsServer::shutdown`].
#[derive(Debug)]
pub struct DnsServer {
    local_addr: SocketAddr,
    data: SharedData,
    bad: Arc<BadQueries>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// The server's UDP and TCP sockets, bound but not yet served.
///
/// Binding needs privileges (port 53: CAP_NET_BIND_SERVICE) that `troll
/// serve` drops before it starts any thread, so it binds with
/// [`DnsServer::bind`], drops them, and then [`BoundDns::start`]s the
/// server thread, which inherits only the reduced set.
#[derive(Debug)]
pub struct BoundDns {
    udp: UdpSocket,
    tcp: TcpListener,
    local_addr: SocketAddr,
}

impl BoundDns {
    /// The address the sockets are bound to, with the port they got.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts answering from `data` on a thread of its own. Returns once
    /// the sockets are registered, so a query sent after it returns is
    /// answered.
    pub fn start(self, data: ZoneData) -> Result<DnsServer, DnsError> {
        let BoundDns {
            udp,
            tcp,
            local_addr,
        } = self;
        let start_error = |source| DnsError::Start {
            addr: local_addr,
            source,
        };
        udp.set_nonblocking(true).map_err(start_error)?;
        tcp.set_nonblocking(true).map_err(start_error)?;

        let zones = data.zone_origins();
        let data: SharedData = Arc::new(RwLock::new(Arc::new(data)));
        let bad = Arc::new(BadQueries::default());
        let handler = Handler {
            data: Arc::clone(&data),
            bad: Arc::clone(&bad),
        };
        let (stop_tx, stop_rx) = oneshot::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("troll-dns".to_owned())
            .spawn(move || serve(handler, udp, tcp, stop_rx, ready_tx))
            .map_err(start_error)?;
        let ready = ready_rx.recv().unwrap_or_else(|_| {
            Err(io::Error::other(
                "the DNS server thread ended during start-up",
            ))
        });
        if let Err(source) = ready {
            // The thread has returned or is about to; its result adds nothing.
            let _ = thread.join();
            return Err(start_error(source));
        }
        info!(addr = %local_addr, zones = ?zones, "serving reverse DNS");
        Ok(DnsServer {
            local_addr,
            data,
            bad,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0 picks a free port, the same for
    /// both; see [`BoundDns::local_addr`]) without serving yet.
    pub fn bind(addr: SocketAddr) -> Result<BoundDns, DnsError> {
        let (udp, tcp) = bind_pair(addr)?;
        let local_addr = udp
            .local_addr()
            .map_err(|source| DnsError::bind("UDP", addr, source))?;
        Ok(BoundDns {
            udp,
            tcp,
            local_addr,
        })
    }

    /// Binds UDP and TCP on `addr` and starts answering from `data`:
    /// [`DnsServer::bind`] then [`BoundDns::start`].
    pub fn start(addr: SocketAddr, data: ZoneData) -> Result<DnsServer, DnsError> {
        DnsServer::bind(addr)?.start(data)
    }

    /// The address the server listens on, with the port it got.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The bad queries so far, by [`BadQuery::name`] (kinds seen at least
    /// once).
    pub fn bad_queries(&self) -> BTreeMap<String, u64> {
        self.bad.snapshot()
    }

    /// Replaces every record without a restart. Queries answered after it
    /// returns see the new data. The SOA serial is made to increase (if
    /// `data`'s serial is not after the current one, it becomes the current
    /// one plus one), so secondaries notice.
    pub fn update(&self, data: ZoneData) {
        let mut data = data;
        let mut current = self.data.write().unwrap_or_else(PoisonError::into_inner);
        if !serial_after(data.serial, current.serial) {
            data.serial = current.serial.wrapping_add(1);
        }
        info!(
            serial = data.serial,
            records = data.entries.len(),
            zones = ?data.zone_origins(),
            "DNS records updated"
        );
        *current = Arc::new(data);
    }

    /// Stops serving, closes the sockets and joins the server thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            // An error means the thread has already ended: nothing to stop.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!(addr = %self.local_addr, "the DNS server thread panicked");
            }
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl fmt::Display for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DNS server on {} (UDP and TCP)", self.local_addr)
    }
}

/// Binds UDP and TCP on the same address and port. With port 0 the kernel
/// picks the UDP port; if that port is taken for TCP, it tries again.
fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    const ATTEMPTS: usize = 16;
    let mut attempt = 1;
    loop {
        let udp = UdpSocket::bind(addr).map_err(|source| DnsError::bind("UDP", addr, source))?;
        let port = udp
            .local_addr()
            .map_err(|source| DnsError::bind("UDP", addr, source))?
            .port();
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        match TcpListener::bind(tcp_addr) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(source)
                if addr.port() == 0
                    && attempt < ATTEMPTS
                    && source.kind() == io::ErrorKind::AddrInUse =>
            {
                attempt += 1;
            }
            Err(source) => return Err(DnsError::bind("TCP", tcp_addr, source)),
        }
    }
}

/// The server thread: a current-thread runtime running hickory until the
/// stop signal (or until the `DnsServer` is dropped).
fn serve(
    handler: Handler,
    udp: UdpSocket,
    tcp: TcpListener,
    stop: oneshot::Receiver<()>,
    ready: mpsc::Sender<io::Result<()>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    runtime.block_on(async move {
        let bad = Arc::clone(&handler.bad);
        let mut server = ServerFuture::new(handler.clone());
        let handler = Arc::new(handler);
        let registered = tokio::net::UdpSocket::from_std(udp)
            .and_then(|udp| server.register_listener_std(tcp, TCP_TIMEOUT).map(|()| udp));
        let udp = match registered {
            Ok(udp) => {
                // start() waits for this message; if it is gone, so is the caller.
                let _ = ready.send(Ok(()));
                udp
            }
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        tokio::select! {
            // Err means the DnsServer was dropped without a signal: stop too.
            _ = stop => {}
            () = serve_udp(udp, handler) => {}
            () = summarise_bad_queries(bad) => {}
        }
        if let Err(error) = server.shutdown_gracefully().await {
            warn!(%error, "the DNS server stopped with an error");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, Query};
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};
    use std::process::Command;
    use std::str::FromStr;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn entry(address: &str, name: &str) -> PtrEntry {
        PtrEntry {
            address: address.parse().unwrap(),
            name: name.to_owned(),
        }
    }

    fn lab_data() -> ZoneData {
        ZoneData::new(
            vec![
                entry("198.18.0.1", "Douglas.Adams"),
                entry("198.18.0.2", "so_long.and-thanks"),
                entry("2001:db8::1", "Marvin.The.Paranoid.Android."),
            ],
            60,
        )
        .unwrap()
    }

    fn start_lab() -> DnsServer {
        DnsServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), lab_data()).unwrap()
    }

    fn request(name: &str, rtype: RecordType) -> Message {
        let mut message = Message::new();
        message
            .set_id(0x7a11)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(false)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        message
    }

    /// Sends one query over UDP with a plain socket: hickory-proto encodes
    /// and decodes, the socket is the network.
    fn ask_udp(server: SocketAddr, message: &Message) -> Message {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        socket.send_to(&message.to_vec().unwrap(), server).unwrap();
        let mut buffer = [0u8; 4096];
        let (length, from) = socket.recv_from(&mut buffer).unwrap();
        assert_eq!(from, server);
        Message::from_vec(&buffer[..length]).unwrap()
    }

    fn ask_tcp(server: SocketAddr, message: &Message) -> Message {
        let mut stream = TcpStream::connect_timeout(&server, TIMEOUT).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let bytes = message.to_vec().unwrap();
        let length = u16::try_from(bytes.len()).unwrap().to_be_bytes();
        stream.write_all(&length).unwrap();
        stream.write_all(&bytes).unwrap();
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).unwrap();
        let mut buffer = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut buffer).unwrap();
        Message::from_vec(&buffer).unwrap()
    }

    fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
        let response = ask_udp(server, &request(name, rtype));
        assert_eq!(response.id(), 0x7a11);
        assert_eq!(response.message_type(), MessageType::Response);
        response
    }

    fn ptr_target(record: &Record) -> String {
        match record.data() {
            Some(RData::PTR(PTR(name))) => name.to_ascii(),
            other => panic!("not a PTR: {other:?}"),
        }
    }

    fn soa_of(record: &Record) -> SOA {
        match record.data() {
            Some(RData::SOA(soa)) => soa.clone(),
            other => panic!("not an SOA: {other:?}"),
        }
    }

    #[test]
    fn ptr_answer_keeps_the_exact_case_and_the_ttl_and_is_authoritative() {
        let server = start_lab();
        let response = ask(
            server.local_addr(),
            "1.0.18.198.in-addr.arpa.",
            RecordType::PTR,
        );
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(response.authoritative());
        assert!(!response.recursion_available());
        assert_eq!(response.answers().len(), 1);
        let answer = &response.answers()[0];
        assert_eq!(ptr_target(answer), "Douglas.Adams.");
        assert_eq!(answer.ttl(), 60);
        assert_eq!(answer.dns_class(), DNSClass::IN);
        assert_eq!(answer.name().to_ascii(), "1.0.18.198.in-addr.arpa.");

        let response = ask(
            server.local_addr(),
            "2.0.18.198.in-addr.arpa.",
            RecordType::PTR,
        );
        assert_eq!(ptr_target(&response.answers()[0]), "so_long.and-thanks.");
        server.shutdown();
    }

    #[test]
    fn query_names_match_in_any_case_and_the_question_case_is_echoed() {
        let server = start_lab();
        let asked = "1.0.18.198.In-AdDr.ARPA.";
        let response = ask(server.local_addr(), asked, RecordType::PTR);
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert_eq!(response.queries()[0].name().to_ascii(), asked);
        let answer = &response.answers()[0];
        assert_eq!(answer.name().to_ascii(), asked);
        assert_eq!(ptr_target(answer), "Douglas.Adams.");
    }

    #[test]
    fn soa_and_ns_answer_at_each_zone_apex() {
        let server = start_lab();
        let data = lab_data();
        for zone in data.zone_origins() {
            let response = ask(server.local_addr(), &zone, RecordType::SOA);
            assert_eq!(response.response_code(), ResponseCode::NoError, "{zone}");
            assert!(response.authoritative());
            assert_eq!(response.answers().len(), 1);
            let soa = soa_of(&response.answers()[0]);
            assert_eq!(soa.mname().to_ascii(), "localhost.");
            assert_eq!(soa.rname().to_ascii(), "hostmaster.invalid.");
            assert_eq!(soa.minimum(), 60);
            assert_eq!(soa.refresh(), SOA_REFRESH);
            assert_eq!(soa.retry(), SOA_RETRY);
            assert_eq!(soa.expire(), SOA_EXPIRE);

            let response = ask(server.local_addr(), &zone, RecordType::NS);
            assert_eq!(response.response_code(), ResponseCode::NoError);
            assert!(response.authoritative());
            match response.answers()[0].data() {
                Some(RData::NS(NS(name))) => assert_eq!(name.to_ascii(), "localhost."),
                other => panic!("not an NS: {other:?}"),
            }
        }
        assert_eq!(
            data.zone_origins(),
            [
                "0.18.198.in-addr.arpa.",
                "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
            ]
        );
    }

    #[test]
    fn configured_server_names_go_into_soa_and_ns() {
        let data = lab_data()
            .with_nameserver("ns1.Example.net")
            .unwrap()
            .with_hostmaster("dns-admin.example.net.")
            .unwrap()
            .with_serial(2024010101);
        let server = DnsServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), data).unwrap();
        let response = ask(
            server.local_addr(),
            "0.18.198.in-addr.arpa.",
            RecordType::SOA,
        );
        let soa = soa_of(&response.answers()[0]);
        assert_eq!(soa.mname().to_ascii(), "ns1.Example.net.");
        assert_eq!(soa.rname().to_ascii(), "dns-admin.example.net.");
        assert_eq!(soa.serial(), 2024010101);
    }

    #[test]
    fn unknown_names_inside_a_zone_are_nxdomain_with_the_soa() {
        let server = start_lab();
        for name in [
            "9.0.18.198.in-addr.arpa.",
            "x.1.0.18.198.in-addr.arpa.",
            "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
        ] {
            let response = ask(server.local_addr(), name, RecordType::PTR);
            assert_eq!(response.response_code(), ResponseCode::NXDomain, "{name}");
            assert!(response.authoritative(), "{name}");
            assert!(response.answers().is_empty());
            assert_eq!(response.name_servers().len(), 1);
            let soa = &response.name_servers()[0];
            assert_eq!(soa.record_type(), RecordType::SOA);
            assert_eq!(soa.ttl(), 60);
            assert!(soa.name().zone_of(&Name::from_ascii(name).unwrap()));
        }
    }

    #[test]
    fn other_types_on_existing_names_are_nodata() {
        let server = start_lab();
        for (name, rtype) in [
            ("1.0.18.198.in-addr.arpa.", RecordType::A),
            ("1.0.18.198.in-addr.arpa.", RecordType::TXT),
            ("0.18.198.in-addr.arpa.", RecordType::PTR),
        ] {
            let response = ask(server.local_addr(), name, rtype);
            assert_eq!(response.response_code(), ResponseCode::NoError, "{name}");
            assert!(response.authoritative());
            assert!(response.answers().is_empty());
            assert_eq!(
                response.name_servers()[0].record_type(),
                RecordType::SOA,
                "{name}"
            );
        }
    }

    #[test]
    fn names_outside_the_zones_are_refused() {
        let server = start_lab();
        for name in [
            "example.com.",
            "1.0.0.10.in-addr.arpa.",
            "18.198.in-addr.arpa.",
            "1.0.19.198.in-addr.arpa.",
        ] {
            let response = ask(server.local_addr(), name, RecordType::PTR);
            assert_eq!(response.response_code(), ResponseCode::Refused, "{name}");
            assert!(!response.authoritative());
            assert!(response.answers().is_empty());
        }
    }

    #[test]
    fn zone_transfers_and_other_classes_are_refused() {
        let data = lab_data();
        let apex = Name::from_ascii("0.18.198.in-addr.arpa.").unwrap();
        let owner = Name::from_ascii("1.0.18.198.in-addr.arpa.").unwrap();
        let axfr = data.resolve(&apex, RecordType::AXFR, DNSClass::IN);
        assert_eq!(axfr.response_code, ResponseCode::Refused);
        let chaos = data.resolve(&owner, RecordType::PTR, DNSClass::CH);
        assert_eq!(chaos.response_code, ResponseCode::Refused);
        let any = data.resolve(&apex, RecordType::ANY, DNSClass::IN);
        assert_eq!(any.answers.len(), 2);
        let any = data.resolve(&owner, RecordType::ANY, DNSClass::IN);
        assert_eq!(ptr_target(&any.answers[0]), "Douglas.Adams.");
    }

    #[test]
    fn tcp_queries_are_answered() {
        let server = start_lab();
        let response = ask_tcp(
            server.local_addr(),
            &request("1.0.18.198.in-addr.arpa.", RecordType::PTR),
        );
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(response.authoritative());
        assert_eq!(ptr_target(&response.answers()[0]), "Douglas.Adams.");
        let response = ask_tcp(
            server.local_addr(),
            &request("0.18.198.in-addr.arpa.", RecordType::SOA),
        );
        assert_eq!(response.answers()[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn update_changes_the_answer_without_a_restart_and_raises_the_serial() {
        let server = start_lab();
        let addr = server.local_addr();
        let zone = "0.18.198.in-addr.arpa.";
        let old_serial = soa_of(&ask(addr, zone, RecordType::SOA).answers()[0]).serial();

        let new = ZoneData::new(
            vec![
                entry("198.18.0.1", "Arthur.Dent"),
                entry("198.18.0.3", "Ford.Prefect"),
            ],
            30,
        )
        .unwrap()
        .with_serial(old_serial);
        server.update(new);

        let response = ask(addr, "1.0.18.198.in-addr.arpa.", RecordType::PTR);
        assert_eq!(ptr_target(&response.answers()[0]), "Arthur.Dent.");
        assert_eq!(response.answers()[0].ttl(), 30);
        let response = ask(addr, "3.0.18.198.in-addr.arpa.", RecordType::PTR);
        assert_eq!(ptr_target(&response.answers()[0]), "Ford.Prefect.");
        let response = ask(addr, "2.0.18.198.in-addr.arpa.", RecordType::PTR);
        assert_eq!(response.response_code(), ResponseCode::NXDomain);
        // The IPv6 zone is gone with its records.
        let response = ask(
            addr,
            "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            RecordType::SOA,
        );
        assert_eq!(response.response_code(), ResponseCode::Refused);

        let new_serial = soa_of(&ask(addr, zone, RecordType::SOA).answers()[0]).serial();
        assert!(serial_after(new_serial, old_serial));
        assert_eq!(new_serial, old_serial.wrapping_add(1));

        // A serial that is already ahead is kept.
        server.update(lab_data().with_serial(new_serial.wrapping_add(100)));
        let newest = soa_of(&ask(addr, zone, RecordType::SOA).answers()[0]).serial();
        assert_eq!(newest, new_serial.wrapping_add(100));
    }

    #[test]
    fn ipv6_ptr_records_are_served_and_empty_non_terminals_are_nodata() {
        let server = start_lab();
        let owner = Name::from(IpAddr::V6(Ipv6Addr::from_str("2001:db8::1").unwrap()));
        let owner = owner.to_ascii();
        assert_eq!(
            owner,
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa."
        );
        let response = ask(server.local_addr(), &owner, RecordType::PTR);
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(response.authoritative());
        assert_eq!(
            ptr_target(&response.answers()[0]),
            "Marvin.The.Paranoid.Android."
        );

        // A name between the /64 apex and the record exists (RFC 8020):
        // NXDOMAIN there would stop resolvers that minimise query names.
        let between = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
        let response = ask(server.local_addr(), between, RecordType::PTR);
        assert_eq!(response.response_code(), ResponseCode::NoError);
        assert!(response.answers().is_empty());
        assert_eq!(response.name_servers()[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn edns_queries_get_edns_answers() {
        let server = start_lab();
        let mut message = request("1.0.18.198.in-addr.arpa.", RecordType::PTR);
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        message.set_edns(edns);
        let response = ask_udp(server.local_addr(), &message);
        assert_eq!(response.response_code(), ResponseCode::NoError);
        let edns = response.extensions().as_ref().expect("an OPT record");
        assert_eq!(edns.max_payload(), EDNS_MAX_PAYLOAD);
        assert_eq!(ptr_target(&response.answers()[0]), "Douglas.Adams.");
    }

    /// Junk is counted by kind, malformed queries still get FORMERR, and
    /// good queries are answered throughout.
    #[test]
    fn junk_is_counted_by_kind_and_good_queries_still_answered() {
        let server = start_lab();
        let addr = server.local_addr();
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        // Shorter than a header.
        socket.send_to(&[0xde, 0xad, 0xbe], addr).unwrap();
        // A query header announcing one question, then garbage.
        let malformed = [0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
        socket.send_to(&malformed, addr).unwrap();
        let mut buffer = [0u8; 512];
        let (length, _) = socket.recv_from(&mut buffer).unwrap();
        let formerr = Message::from_vec(&buffer[..length]).unwrap();
        assert_eq!(formerr.id(), 0x1234);
        assert_eq!(formerr.response_code(), ResponseCode::FormErr);
        // A response (reflection bait): no answer.
        let mut response = request("1.0.18.198.in-addr.arpa.", RecordType::PTR);
        response.set_message_type(MessageType::Response);
        socket.send_to(&response.to_vec().unwrap(), addr).unwrap();
        // Another opcode, and a name outside the zones.
        let mut notify = request("0.18.198.in-addr.arpa.", RecordType::SOA);
        notify.set_op_code(OpCode::Notify);
        assert_eq!(ask_udp(addr, &notify).response_code(), ResponseCode::NotImp);
        assert_eq!(
            ask(addr, "example.com.", RecordType::A).response_code(),
            ResponseCode::Refused
        );
        let good = ask(addr, "1.0.18.198.in-addr.arpa.", RecordType::PTR);
        assert_eq!(ptr_target(&good.answers()[0]), "Douglas.Adams.");
        let expected: BTreeMap<String, u64> = [
            ("undecodable", 1),
            ("malformed", 1),
            ("response", 1),
            ("not_implemented", 1),
            ("refused", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // Each datagram is its own task: wait for the dropped ones too.
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut counts = server.bad_queries();
        while counts != expected && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            counts = server.bad_queries();
        }
        assert_eq!(counts, expected);
        assert_eq!(
            bad_query_summary(&counts),
            "malformed=1 not_implemented=1 refused=1 response=1 undecodable=1"
        );
    }

    #[test]
    fn shutdown_frees_the_port() {
        let server = start_lab();
        let addr = server.local_addr();
        server.shutdown();
        UdpSocket::bind(addr).expect("UDP port free after shutdown");
        TcpListener::bind(addr).expect("TCP port free after shutdown");
    }

    #[test]
    fn a_taken_port_is_a_bind_error_naming_the_address() {
        let taken = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = taken.local_addr().unwrap();
        let error = DnsServer::start(addr, lab_data()).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(&format!("cannot bind DNS (UDP) on {addr}: ")),
            "{text}"
        );
        assert!(
            text.contains("pick another address or port with --dns"),
            "{text}"
        );
    }

    #[test]
    fn invalid_and_conflicting_names_are_rejected() {
        for bad in ["", ".", "two words", "-dash.first", "a..b", &"x".repeat(64)] {
            let error = ZoneData::new(vec![entry("198.18.0.1", bad)], 60).unwrap_err();
            assert!(
                matches!(error, DnsError::InvalidName { ref name, .. } if name == bad),
                "{bad:?}: {error}"
            );
            assert!(error.to_string().contains("198.18.0.1"), "{error}");
        }
        let error = ZoneData::new(
            vec![entry("198.18.0.1", "One"), entry("198.18.0.1", "Two")],
            60,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "198.18.0.1 has two PTR names, \"One\" and \"Two\"; an address can show only one"
        );
        // Same name twice (with or without the dot) is one record.
        let data = ZoneData::new(
            vec![entry("198.18.0.1", "One"), entry("198.18.0.1", "One.")],
            60,
        )
        .unwrap();
        assert_eq!(data.entries().len(), 1);
        // Case matters: these are two different names.
        assert!(ZoneData::new(
            vec![entry("198.18.0.1", "One"), entry("198.18.0.1", "ONE")],
            60
        )
        .is_err());
        assert!(matches!(
            ZoneData::new(Vec::new(), u32::MAX),
            Err(DnsError::InvalidTtl { .. })
        ));
        assert!(lab_data().with_nameserver("bad name").is_err());
    }

    #[test]
    fn zone_files_render_from_the_template() {
        let data = lab_data().with_serial(42);
        let files = render_zone_file(&data);
        assert_eq!(files.len(), 2);
        let (origin, text) = &files[0];
        assert_eq!(origin, "0.18.198.in-addr.arpa.");
        assert_eq!(
            text,
            "; Reverse zone 0.18.198.in-addr.arpa., written by `troll zone --format bind`.\n\
             ; Each PTR name below is one line of a message that traceroute prints.\n\
             ; Load it on the name server to which the parent zone delegates 0.18.198.in-addr.arpa..\n\
             $ORIGIN 0.18.198.in-addr.arpa.\n\
             $TTL 60\n\
             @\tIN\tSOA\tlocalhost. hostmaster.invalid. (\n\
             \t\t42\t; serial\n\
             \t\t3600\t; refresh\n\
             \t\t600\t; retry\n\
             \t\t1209600\t; expire\n\
             \t\t60 )\t; minimum: negative-caching TTL\n\
             @\tIN\tNS\tlocalhost.\n\
             1\tIN\tPTR\tDouglas.Adams.\t; 198.18.0.1\n\
             2\tIN\tPTR\tso_long.and-thanks.\t; 198.18.0.2\n"
        );
        let (origin, text) = &files[1];
        assert_eq!(origin, "0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.");
        assert!(text.ends_with(
            "\n1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0\tIN\tPTR\tMarvin.The.Paranoid.Android.\t; 2001:db8::1\n"
        ));
        assert!(!text.contains("{{"));
    }

    #[test]
    fn templates_are_filled_in_one_pass() {
        assert_eq!(
            fill_template(
                "{{a}} {{b}} {{unknown}} {{open",
                &[("a", "{{b}}"), ("b", "B")]
            ),
            "{{b}} B {{unknown}} {{open"
        );
    }

    /// The zone file loads in BIND's checker.
    #[test]
    fn zone_files_pass_named_checkzone() {
        let checker = which("named-checkzone").expect(
            "named-checkzone is missing; install bind9-utils (scripts/install-deps.sh does)",
        );
        let dir = tempfile::tempdir().unwrap();
        for (origin, text) in render_zone_file(&lab_data()) {
            let path = dir.path().join(format!("{origin}zone"));
            std::fs::write(&path, text).unwrap();
            let output = Command::new(&checker)
                .arg(&origin)
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                output.status.success(),
                "{origin}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// `dig`, the client the behaviour is specified with: flags, case and
    /// TTL as it prints them, over UDP and TCP.
    #[test]
    fn dig_sees_an_authoritative_mixed_case_answer() {
        let dig =
            which("dig").expect("dig is missing; install dnsutils (scripts/install-deps.sh does)");
        let server = start_lab();
        for transport in ["+notcp", "+tcp"] {
            let output = Command::new(&dig)
                .args(["+norecurse", "+tries=1", "+time=3", transport])
                .arg("-p")
                .arg(server.local_addr().port().to_string())
                .args(["@127.0.0.1", "-x", "198.18.0.1"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "{text}");
            assert!(text.contains("status: NOERROR"), "{text}");
            assert!(text.contains("flags: qr aa;"), "{text}");
            assert!(
                text.contains("1.0.18.198.in-addr.arpa. 60\tIN\tPTR\tDouglas.Adams."),
                "{text}"
            );
        }
    }

    fn which(program: &str) -> Option<std::path::PathBuf> {
        let paths = std::env::var_os("PATH")?;
        std::env::split_paths(&paths)
            .chain([std::path::PathBuf::from("/usr/sbin")])
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    }
}
