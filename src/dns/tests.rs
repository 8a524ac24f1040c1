//! Tests of the whole server: queries over real sockets, zone files
//! through named-checkzone, dig.

use super::server::EDNS_MAX_PAYLOAD;
use super::zone::serial_after;
use super::*;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{NS, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};
use std::net::{TcpListener, UdpSocket};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

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

/// The lab server's answers to `questions`, asked of one server over UDP.
fn ask_lab<'a>(questions: &[(&'a str, RecordType)]) -> Vec<(&'a str, Message)> {
    let server = start_lab();
    questions
        .iter()
        .map(|&(name, rtype)| (name, ask(server.local_addr(), name, rtype)))
        .collect()
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

/// Checks a negative answer from the zone (NXDOMAIN or NODATA): `code`,
/// authoritative, no answer, the zone's SOA alone in the authority section;
/// returns that SOA.
fn negative<'a>(response: &'a Message, code: ResponseCode, name: &str) -> &'a Record {
    assert_eq!(response.response_code(), code, "{name}");
    assert!(response.authoritative(), "{name}");
    assert!(response.answers().is_empty(), "{name}");
    assert_eq!(response.name_servers().len(), 1, "{name}");
    let soa = &response.name_servers()[0];
    assert_eq!(soa.record_type(), RecordType::SOA, "{name}");
    soa
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
    for (name, response) in ask_lab(&[
        ("9.0.18.198.in-addr.arpa.", RecordType::PTR),
        ("x.1.0.18.198.in-addr.arpa.", RecordType::PTR),
        (
            "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.",
            RecordType::PTR,
        ),
    ]) {
        let soa = negative(&response, ResponseCode::NXDomain, name);
        assert_eq!(soa.ttl(), 60);
        assert!(soa.name().zone_of(&Name::from_ascii(name).unwrap()));
    }
}

#[test]
fn other_types_on_existing_names_are_nodata() {
    for (name, response) in ask_lab(&[
        ("1.0.18.198.in-addr.arpa.", RecordType::A),
        ("1.0.18.198.in-addr.arpa.", RecordType::TXT),
        ("0.18.198.in-addr.arpa.", RecordType::PTR),
    ]) {
        negative(&response, ResponseCode::NoError, name);
    }
}

#[test]
fn names_outside_the_zones_are_refused() {
    for (name, response) in ask_lab(&[
        ("example.com.", RecordType::PTR),
        ("1.0.0.10.in-addr.arpa.", RecordType::PTR),
        ("18.198.in-addr.arpa.", RecordType::PTR),
        ("1.0.19.198.in-addr.arpa.", RecordType::PTR),
    ]) {
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
    negative(&response, ResponseCode::NoError, between);
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

/// The zone file loads in BIND's checker.
#[test]
fn zone_files_pass_named_checkzone() {
    let checker = which("named-checkzone")
        .expect("named-checkzone is missing; install bind9-utils (scripts/install-deps.sh does)");
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
