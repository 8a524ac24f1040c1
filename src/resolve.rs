//! Reverse lookups, to show what clients will see: through the system's
//! resolver (what traceroute itself uses), or straight from one DNS server
//! (`--resolver ADDR`), e.g. troll's own or a provider's, without caches.

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

/// The PTR name of `addr`, or `None` when there is none (or no answer).
pub fn reverse(addr: IpAddr, resolver: Option<SocketAddr>) -> Option<String> {
    match resolver {
        Some(server) => query_ptr(addr, server),
        // glibc's own lookup, as every client does it.
        None => troll_providers::aws::SystemResolver::reverse(addr),
    }
}

/// One PTR query over UDP to `server`.
fn query_ptr(addr: IpAddr, server: SocketAddr) -> Option<String> {
    let mut message = Message::new();
    message
        .set_id(rand_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from(addr), RecordType::PTR));
    let bytes = message.to_vec().ok()?;
    let local: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().ok()?
    } else {
        "[::]:0".parse().ok()?
    };
    let socket = UdpSocket::bind(local).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    socket.send_to(&bytes, server).ok()?;
    let mut buf = [0u8; 4096];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    let answer = Message::from_vec(&buf[..len]).ok()?;
    if answer.id() != message.id() {
        return None;
    }
    answer
        .answers()
        .iter()
        .find_map(|record| match record.data() {
            Some(RData::PTR(ptr)) => Some(ptr.0.to_string().trim_end_matches('.').to_string()),
            _ => None,
        })
}

fn rand_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id()) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::{DnsServer, PtrEntry, ZoneData};

    #[test]
    fn asks_one_server_directly_and_keeps_the_case() {
        let data = ZoneData::new(
            vec![PtrEntry {
                address: "198.18.0.1".parse().unwrap(),
                name: "Mixed.Case".into(),
            }],
            60,
        )
        .unwrap();
        let server = DnsServer::start("127.0.0.1:0".parse().unwrap(), data).unwrap();
        let at = Some(server.local_addr());
        assert_eq!(
            reverse("198.18.0.1".parse().unwrap(), at).as_deref(),
            Some("Mixed.Case")
        );
        assert_eq!(reverse("198.18.0.2".parse().unwrap(), at), None);
        server.shutdown();
    }
}
