//! The records: PTR entries grouped into reverse zones with SOA and NS, and
//! [`ZoneData::resolve`], the pure function from a question to an answer.

use super::{
    DnsError, DEFAULT_HOSTMASTER, DEFAULT_NAMESERVER, IPV6_ZONE_LABELS, MAX_TTL, SOA_EXPIRE,
    SOA_REFRESH, SOA_RETRY,
};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{NS, PTR, SOA};
use hickory_proto::rr::{DNSClass, LowerName, Name, RData, Record, RecordType};

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
pub(super) struct Zone {
    pub(super) origin: Name,
    pub(super) entries: Vec<usize>,
}

/// The records to serve: PTR records grouped into reverse zones, with the
/// TTL, serial and server names for each zone's SOA and NS.
///
/// Built once with [`ZoneData::new`] and then immutable; the server swaps
/// whole `ZoneData` values, so a query never sees half an update.
#[derive(Debug, Clone)]
pub struct ZoneData {
    pub(super) entries: Vec<PtrEntry>,
    /// PTR target of `entries[i]`, case kept.
    pub(super) targets: Vec<Name>,
    /// Reverse name of `entries[i]` (lower case, as hickory builds it).
    pub(super) owners: Vec<Name>,
    pub(super) zones: Vec<Zone>,
    pub(super) zone_index: HashMap<LowerName, usize>,
    pub(super) ptr_index: HashMap<LowerName, usize>,
    /// Names between a zone apex and a PTR owner (the nibbles of an IPv6
    /// /64 zone): they exist without records, so they answer NODATA, not
    /// NXDOMAIN (RFC 8020), or resolvers that minimise query names stop
    /// there.
    pub(super) empty_non_terminals: HashSet<LowerName>,
    pub(super) ttl: u32,
    pub(super) serial: u32,
    pub(super) nameserver: Name,
    pub(super) hostmaster: Name,
}

impl ZoneData {
    /// The zones of a deployment's current message: its PTR records with
    /// `ttl`, and `nameserver` as SOA MNAME and NS when given (`serve
    /// --dns` and `troll zone` build them the same way).
    pub fn from_state(
        state: &crate::state::State,
        ttl: u32,
        nameserver: Option<&str>,
    ) -> crate::Result<ZoneData> {
        let entries = state
            .ptr_records()?
            .into_iter()
            .map(|p| PtrEntry {
                address: p.address,
                name: p.name,
            })
            .collect();
        let zone = ZoneData::new(entries, ttl)?;
        Ok(match nameserver {
            Some(ns) => zone.with_nameserver(ns)?,
            None => zone,
        })
    }

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
    pub(super) fn error(response_code: ResponseCode) -> Resolution {
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
pub(super) fn serial_after(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}
