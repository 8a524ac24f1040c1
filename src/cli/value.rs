//! The parsers that turn the text of a flag or of a config-file value into
//! a typed value, once, when the command line or the file is read: clap's
//! `value_parser` and the config file's serde fields call the same
//! function, so a value means the same wherever it is given, and commands
//! never look at the raw text again.
//!
//! Each error is one sentence that names the bad value and the fix, but not
//! the flag: clap puts the flag in front of it (`invalid value 'x' for
//! '--dns <ADDR:PORT>': ...`), the config file its key (`serve.dns: ...`).

use std::net::{IpAddr, SocketAddr};
use troll_providers::AddressPair;

/// Lines per window (`--window LINES`): hops and the footer, within what a
/// TTL can reach.
pub fn window(text: &str) -> Result<usize, String> {
    use crate::plan::{DEFAULT_WINDOW, MAX_WINDOW, MIN_WINDOW};
    match text.trim().parse::<usize>() {
        Ok(lines) if (MIN_WINDOW..=MAX_WINDOW).contains(&lines) => Ok(lines),
        _ => Err(format!(
            "a window holds {MIN_WINDOW} to {MAX_WINDOW} lines (its hops and its footer); \
             give a number in that range, e.g. {DEFAULT_WINDOW} to fit a default 30-hop trace"
        )),
    }
}

/// The port a resolver given as a bare address is asked on.
pub const DNS_PORT: u16 = 53;

/// An address and port to listen on (`serve --dns`, `serve.dns`).
pub fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("'{text}' is not an address and port; write e.g. 0.0.0.0:53 or [::]:53")
    })
}

/// A DNS server to ask: ADDR (port 53) or ADDR:PORT (`--resolver`).
pub fn resolver(text: &str) -> Result<SocketAddr, String> {
    let trimmed = text.trim();
    trimmed
        .parse::<SocketAddr>()
        .or_else(|_| trimmed.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, DNS_PORT)))
        .map_err(|_| {
            format!("'{text}' is not an address; write ADDR or ADDR:PORT, e.g. 1.1.1.1 or [2606:4700::1111]:53")
        })
}

/// The hop addresses of `serve --hops`, in order; `None` is a silent hop.
/// Whether they are of the target's family is checked with the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopList(pub Vec<Option<IpAddr>>);

/// Parses `198.18.0.1,198.18.0.2,-,198.18.0.3` (`-`: a silent hop).
pub fn hop_list(text: &str) -> Result<HopList, String> {
    text.split(',')
        .map(str::trim)
        .map(|item| match item {
            "-" => Ok(None),
            addr => addr.parse::<IpAddr>().map(Some).map_err(|_| {
                format!("'{addr}' is not an IP address; list addresses separated by commas, `-` for a silent hop")
            }),
        })
        .collect::<Result<_, _>>()
        .map(HopList)
}

/// Addresses of a static deployment, each ADDR or PUBLIC=LOCAL (behind
/// 1:1 NAT), comma-separated (`provision --target`, `--hop-address`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairs(pub Vec<AddressPair>);

/// Parses `198.51.100.1,203.0.113.7=10.0.0.7`; empty items are skipped.
pub fn pairs(text: &str) -> Result<Pairs, String> {
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(|item| troll_providers::parse_pair(item).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()
        .map(Pairs)
}

/// All the addresses of a repeatable [`pairs`] flag, in order.
pub fn all_pairs(given: &[Pairs]) -> Vec<AddressPair> {
    given.iter().flat_map(|p| p.0.iter().copied()).collect()
}

/// A deployment name (`--deployment`, `TROLL_DEPLOYMENT`, `deployment`).
pub fn deployment_name(text: &str) -> Result<String, String> {
    crate::state::check_name(text)
        .map(|()| text.to_string())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_need_a_port() {
        assert_eq!(listen_addr("0.0.0.0:53"), Ok("0.0.0.0:53".parse().unwrap()));
        assert_eq!(listen_addr("[::]:5353"), Ok("[::]:5353".parse().unwrap()));
        for bad in ["0.0.0.0", "localhost:53", "1.2.3.4:99999", ""] {
            let e = listen_addr(bad).unwrap_err();
            assert_eq!(
                e,
                format!("'{bad}' is not an address and port; write e.g. 0.0.0.0:53 or [::]:53")
            );
        }
    }

    #[test]
    fn resolvers_take_port_53_unless_given_one() {
        assert_eq!(resolver("1.1.1.1"), Ok("1.1.1.1:53".parse().unwrap()));
        assert_eq!(
            resolver("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            resolver("2001:db8::1"),
            Ok("[2001:db8::1]:53".parse().unwrap())
        );
        assert_eq!(
            resolver("[2001:db8::1]:54"),
            Ok("[2001:db8::1]:54".parse().unwrap())
        );
        let e = resolver("dns.example").unwrap_err();
        assert!(
            e.starts_with("'dns.example' is not an address; write ADDR or ADDR:PORT"),
            "{e}"
        );
    }

    #[test]
    fn hop_lists_keep_order_and_silent_hops() {
        let a: IpAddr = "198.18.0.1".parse().unwrap();
        let b: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(
            hop_list("198.18.0.1, -,2001:db8::2"),
            Ok(HopList(vec![Some(a), None, Some(b)]))
        );
        let e = hop_list("198.18.0.1,nope").unwrap_err();
        assert_eq!(
            e,
            "'nope' is not an IP address; list addresses separated by commas, `-` for a silent hop"
        );
        assert!(
            hop_list("").is_err(),
            "an empty list is not silently no hops"
        );
    }

    #[test]
    fn pairs_are_addresses_or_public_local() {
        let got = pairs("198.51.100.1,,203.0.113.7=10.0.0.7,").unwrap();
        assert_eq!(
            got.0,
            vec![
                AddressPair::same("198.51.100.1".parse().unwrap()),
                AddressPair {
                    public: "203.0.113.7".parse().unwrap(),
                    local: "10.0.0.7".parse().unwrap(),
                },
            ]
        );
        assert_eq!(all_pairs(&[got.clone(), got.clone()]).len(), 4);
        let e = pairs("198.51.100.1,x").unwrap_err();
        assert!(e.contains("'x' is not an IP address"), "{e}");
        let e = pairs("203.0.113.7=2001:db8::7").unwrap_err();
        assert!(e.contains("same family"), "{e}");
    }

    #[test]
    fn deployment_names_are_checked() {
        assert_eq!(deployment_name("prod-1"), Ok("prod-1".to_string()));
        let e = deployment_name("../x").unwrap_err();
        assert!(e.contains("'../x' is not a valid deployment name"), "{e}");
    }
}
