//! Whether a Vultr firewall group admits what traceroute clients send to
//! a show: UDP 33434-33534 (classic traceroute, mtr -u, tracepath), ICMP
//! echo (traceroute -I, mtr, ping), and TCP to port 80 (traceroute -T's and
//! tcptraceroute's default), from anywhere, per family served.

use super::api::FirewallRule;

/// The UDP ports classic traceroute probes (30 hops of 3 probes from
/// 33434, with headroom).
pub const TRACEROUTE_UDP: (u16, u16) = (33434, 33534);
/// The TCP port traceroute -T and tcptraceroute probe by default.
pub const TRACEROUTE_TCP: u16 = 80;

fn covers(port: &str, low: u16, high: u16) -> bool {
    let port = port.trim();
    if port.is_empty() || port == "0" || port == "*" {
        return true;
    }
    let (a, b) = match port.split_once(':').or_else(|| port.split_once('-')) {
        Some((a, b)) => (a.trim().parse::<u16>(), b.trim().parse::<u16>()),
        None => (port.parse::<u16>(), port.parse::<u16>()),
    };
    matches!((a, b), (Ok(a), Ok(b)) if a <= low && b >= high)
}

fn from_anywhere(r: &FirewallRule) -> bool {
    r.subnet_size == 0
}

/// The rules `rules` lacks, as "UDP 33434:33534 (IPv4)" and so on.
pub fn missing(rules: &[FirewallRule], ipv6: bool) -> Vec<String> {
    let mut out = Vec::new();
    let families: &[(&str, &str)] = if ipv6 {
        &[("v4", "IPv4"), ("v6", "IPv6")]
    } else {
        &[("v4", "IPv4")]
    };
    for (t, name) in families {
        let admits = |proto: &str, low: u16, high: u16| {
            rules.iter().any(|r| {
                r.ip_type == *t
                    && r.protocol == proto
                    && from_anywhere(r)
                    && (proto == "icmp" || covers(&r.port, low, high))
            })
        };
        let (low, high) = TRACEROUTE_UDP;
        if !admits("udp", low, high) {
            out.push(format!("UDP {low}:{high} ({name})"));
        }
        if !admits("icmp", 0, 0) {
            out.push(format!("ICMP ({name})"));
        }
        if !admits("tcp", TRACEROUTE_TCP, TRACEROUTE_TCP) {
            out.push(format!("TCP {TRACEROUTE_TCP} ({name})"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(t: &str, proto: &str, port: &str, size: u8) -> FirewallRule {
        FirewallRule {
            ip_type: t.into(),
            protocol: proto.into(),
            port: port.into(),
            subnet: if t == "v4" { "0.0.0.0" } else { "::" }.into(),
            subnet_size: size,
        }
    }

    #[test]
    fn only_rules_from_anywhere_covering_the_range_count() {
        let rules = [
            rule("v4", "udp", "33434:33600", 0),
            rule("v4", "icmp", "", 0),
            rule("v4", "tcp", "22", 0),
            rule("v6", "udp", "33434", 0),
            rule("v6", "icmp", "", 24),
        ];
        assert_eq!(missing(&rules, false), ["TCP 80 (IPv4)"]);
        assert_eq!(
            missing(&rules, true),
            [
                "TCP 80 (IPv4)",
                "UDP 33434:33534 (IPv6)",
                "ICMP (IPv6)",
                "TCP 80 (IPv6)"
            ]
        );
        assert!(covers("", 1, 2) && covers("1:65535", 80, 80) && !covers("81", 80, 80));
    }
}
