//! The window targets `troll serve` adds to the host, and removes again.
//!
//! A window's target (DESIGN.md §8) is a target like the main one: past
//! its hops the kernel answers ping and TCP from it, and on a shared
//! subnet or IPv6 /64 neighbour discovery must find it, so the host must
//! hold it. Serve adds each one the host lacks (IPv4 as `/32` labelled
//! `IF:troll` where the label fits, IPv6 as `/128` with `nodad
//! noprefixroute`: no duplicate address detection delays it, no route is
//! added), on `--interface` or the interface that holds the deployment's
//! target of that family. As with the rules, every address is recorded in
//! the state before it is added, and only what troll added is ever
//! removed: one the operator assigned stays.

use crate::error::{Error, Result};
use crate::state::AssignedAddress;
use serde::Deserialize;
use std::fmt::Write;
use std::net::IpAddr;
use std::process::Command;

/// One address the host holds, and on which interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub interface: String,
    pub address: IpAddr,
}

/// A window target: the window (0-based) and its local address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowTarget {
    pub window: usize,
    pub address: IpAddr,
}

/// What serve does with the window targets, given what the host holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// To add now (and record first).
    pub add: Vec<AssignedAddress>,
    /// Added earlier by this troll and still needed.
    pub keep: Vec<AssignedAddress>,
    /// Added earlier by this troll and no longer needed: to remove.
    pub stale: Vec<AssignedAddress>,
    /// Neither held nor addable: no interface to add them to.
    pub homeless: Vec<WindowTarget>,
}

impl Assignment {
    /// Everything troll holds once `add` is done and `stale` removed.
    pub fn holds(&self) -> Vec<AssignedAddress> {
        self.keep.iter().chain(&self.add).cloned().collect()
    }
}

/// Decides which window targets to add and where. `mains` are the
/// deployment's targets (window 0, one per family), whose interface a
/// window target of the same family goes on unless `interface` is given;
/// `ours` is what troll recorded adding earlier.
pub fn plan(
    wanted: &[WindowTarget],
    mains: &[IpAddr],
    interface: Option<&str>,
    held: &[Held],
    ours: &[AssignedAddress],
) -> Assignment {
    let holder = |address: IpAddr| held.iter().find(|h| h.address == address);
    let mut out = Assignment::default();
    for target in wanted {
        let address = target.address;
        if let Some(mine) = ours.iter().find(|o| o.address == address) {
            if holder(address).is_some() {
                out.keep.push(mine.clone());
                continue;
            }
        } else if holder(address).is_some() {
            // The operator's (or the provider's): not troll's to touch.
            continue;
        }
        let on = interface.map(str::to_string).or_else(|| {
            mains
                .iter()
                .filter(|m| m.is_ipv4() == address.is_ipv4())
                .find_map(|m| holder(*m))
                .map(|h| h.interface.clone())
        });
        match on {
            Some(interface) => out.add.push(AssignedAddress { address, interface }),
            None => out.homeless.push(*target),
        }
    }
    out.stale = ours
        .iter()
        .filter(|o| !wanted.iter().any(|w| w.address == o.address))
        .cloned()
        .collect();
    out
}

/// The IPv4 label that marks an address as troll's (`IF:troll`), if it
/// fits the kernel's 15 characters.
fn label(interface: &str) -> Option<String> {
    let label = format!("{interface}:troll");
    (label.len() <= 15).then_some(label)
}

/// The `ip` arguments that add `a`.
pub fn add_args(a: &AssignedAddress) -> Vec<String> {
    let mut args: Vec<String> = ["addr", "add"].map(String::from).to_vec();
    args.push(prefixed(a.address));
    args.extend(["dev".to_string(), a.interface.clone()]);
    if a.address.is_ipv4() {
        if let Some(label) = label(&a.interface) {
            args.extend(["label".to_string(), label]);
        }
    } else {
        args.extend(["nodad", "noprefixroute"].map(String::from));
    }
    args
}

/// The `ip` arguments that remove `a`.
pub fn del_args(a: &AssignedAddress) -> Vec<String> {
    vec![
        "addr".into(),
        "del".into(),
        prefixed(a.address),
        "dev".into(),
        a.interface.clone(),
    ]
}

fn prefixed(address: IpAddr) -> String {
    let prefix = if address.is_ipv4() { 32 } else { 128 };
    format!("{address}/{prefix}")
}

/// The exact commands `apply` runs, for `--dry-run`.
pub fn describe(add: &[AssignedAddress]) -> String {
    let mut out = String::new();
    for a in add {
        let _ = writeln!(out, "ip {}", add_args(a).join(" "));
    }
    out
}

/// Runs `ip ARGS`; a missing `ip` is the MissingTool error.
pub(crate) fn ip<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Result<std::process::Output> {
    Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::spawn("ip", "iproute2", e))
}

/// `ip`'s complaint, without its `Error: ` and final full stop, to sit
/// inside a sentence.
fn ip_error(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let text = text.strip_prefix("Error: ").unwrap_or(text);
    text.strip_suffix('.').unwrap_or(text).to_string()
}

#[derive(Deserialize)]
struct Link {
    ifname: String,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Deserialize)]
struct AddrInfo {
    local: Option<IpAddr>,
}

/// Parses `ip -j addr show`.
fn parse_held(json: &str) -> Result<Vec<Held>> {
    let links: Vec<Link> = serde_json::from_str(json).map_err(|e| {
        Error::Address(format!(
            "cannot read the host's addresses from `ip -j addr show` ({e}); troll needs iproute2 4.14 or later"
        ))
    })?;
    Ok(links
        .into_iter()
        .flat_map(|link| {
            let interface = link.ifname;
            link.addr_info
                .into_iter()
                .filter_map(|a| a.local)
                .map(move |address| Held {
                    interface: interface.clone(),
                    address,
                })
        })
        .collect())
}

/// Every address of this host (this network namespace), with its interface.
pub fn held() -> Result<Vec<Held>> {
    let out = ip(&["-j", "addr", "show"])?;
    if !out.status.success() {
        return Err(Error::Address(format!(
            "`ip -j addr show` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    parse_held(&String::from_utf8_lossy(&out.stdout))
}

/// Adds each address; if one fails, removes those it added and says which
/// failed and why.
pub fn apply(add: &[AssignedAddress]) -> Result<()> {
    for (i, a) in add.iter().enumerate() {
        let args = add_args(a);
        let out = ip(&args)?;
        if !out.status.success() {
            let _ = remove(&add[..i]);
            return Err(Error::Address(format!(
                "`ip {}` failed ({}); add the address yourself, or choose the interface with --interface",
                args.join(" "),
                ip_error(&out.stderr)
            )));
        }
        tracing::info!("added {} to {}", a.address, a.interface);
    }
    Ok(())
}

/// Removes the addresses troll recorded adding. One that is already gone
/// (removed by hand, or never added before a crash) is fine.
pub fn remove(ours: &[AssignedAddress]) -> Result<()> {
    if ours.is_empty() {
        return Ok(());
    }
    let held = held()?;
    let mut first_error = None;
    for a in ours {
        let present = held
            .iter()
            .any(|h| h.address == a.address && h.interface == a.interface);
        if !present {
            continue;
        }
        let args = del_args(a);
        match ip(&args) {
            Ok(out) if out.status.success() => {
                tracing::info!("removed {} from {}", a.address, a.interface);
            }
            Ok(out) => {
                first_error.get_or_insert(Error::Address(format!(
                    "`ip {}` failed ({})",
                    args.join(" "),
                    ip_error(&out.stderr)
                )));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ours(address: &str, interface: &str) -> AssignedAddress {
        AssignedAddress {
            address: ip(address),
            interface: interface.into(),
        }
    }

    fn held(interface: &str, address: &str) -> Held {
        Held {
            interface: interface.into(),
            address: ip(address),
        }
    }

    fn window(window: usize, address: &str) -> WindowTarget {
        WindowTarget {
            window,
            address: ip(address),
        }
    }

    #[test]
    fn renders_v4_with_a_label_and_v6_without_dad_or_route() {
        assert_eq!(
            describe(&[
                ours("198.51.100.42", "eth0"),
                ours("2001:db8::2a", "eth0"),
                ours("198.51.100.43", "enp0s31f6abc"),
            ]),
            "ip addr add 198.51.100.42/32 dev eth0 label eth0:troll\n\
             ip addr add 2001:db8::2a/128 dev eth0 nodad noprefixroute\n\
             ip addr add 198.51.100.43/32 dev enp0s31f6abc\n"
        );
        assert_eq!(
            del_args(&ours("2001:db8::2a", "eth0")).join(" "),
            "addr del 2001:db8::2a/128 dev eth0"
        );
        assert_eq!(
            del_args(&ours("198.51.100.42", "ens5")).join(" "),
            "addr del 198.51.100.42/32 dev ens5"
        );
    }

    #[test]
    fn window_targets_go_where_the_main_target_of_their_family_is() {
        let host = [
            held("lo", "127.0.0.1"),
            held("eth0", "10.0.0.5"),
            held("eth1", "2001:db8::1"),
            // The operator's: stays untouched.
            held("eth0", "10.0.0.7"),
        ];
        let wanted = [
            window(1, "10.0.0.6"),
            window(2, "10.0.0.7"),
            window(1, "2001:db8::6"),
        ];
        let mains = [ip("10.0.0.5"), ip("2001:db8::1")];
        let got = plan(&wanted, &mains, None, &host, &[]);
        assert_eq!(
            got.add,
            vec![ours("10.0.0.6", "eth0"), ours("2001:db8::6", "eth1")]
        );
        assert!(got.keep.is_empty() && got.stale.is_empty() && got.homeless.is_empty());
        // --interface wins.
        let got = plan(&wanted, &mains, Some("eth9"), &host, &[]);
        assert_eq!(
            got.add,
            vec![ours("10.0.0.6", "eth9"), ours("2001:db8::6", "eth9")]
        );
        // No interface holds the IPv6 target: that one cannot be added.
        let got = plan(&wanted, &mains, None, &host[..2], &[]);
        assert_eq!(
            got.add,
            vec![ours("10.0.0.6", "eth0"), ours("10.0.0.7", "eth0")]
        );
        assert_eq!(got.homeless, vec![window(1, "2001:db8::6")]);
    }

    #[test]
    fn a_reload_keeps_its_own_adds_new_ones_and_removes_the_stale() {
        let host = [
            held("eth0", "10.0.0.5"),
            held("eth0", "10.0.0.6"),
            held("eth0", "10.0.0.8"),
        ];
        let mine = [ours("10.0.0.6", "eth0"), ours("10.0.0.8", "eth0")];
        let got = plan(
            &[window(1, "10.0.0.6"), window(2, "10.0.0.9")],
            &[ip("10.0.0.5")],
            None,
            &host,
            &mine,
        );
        assert_eq!(got.keep, vec![ours("10.0.0.6", "eth0")]);
        assert_eq!(got.add, vec![ours("10.0.0.9", "eth0")]);
        assert_eq!(got.stale, vec![ours("10.0.0.8", "eth0")]);
        assert_eq!(
            got.holds(),
            vec![ours("10.0.0.6", "eth0"), ours("10.0.0.9", "eth0")]
        );
        // One of ours removed by hand is added again.
        let got = plan(
            &[window(1, "10.0.0.6")],
            &[ip("10.0.0.5")],
            None,
            &host[..1],
            &mine[..1],
        );
        assert_eq!(got.add, vec![ours("10.0.0.6", "eth0")]);
        assert!(got.keep.is_empty());
    }

    #[test]
    fn ip_errors_fit_in_a_sentence() {
        assert_eq!(
            ip_error(b"Error: ipv6: IPv6 is disabled on this device.\n"),
            "ipv6: IPv6 is disabled on this device"
        );
        assert_eq!(
            ip_error(b"Cannot find device \"eth9\"\n"),
            "Cannot find device \"eth9\""
        );
    }

    #[test]
    fn reads_ip_json() {
        let json = r#"[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP"],"addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","label":"lo"},{"family":"inet6","local":"::1","prefixlen":128}]},{"ifindex":2,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.20.0.141","prefixlen":32,"label":"eth0:troll"}]},{"ifindex":3,"ifname":"dummy0","addr_info":[]},{"ifindex":4,"ifname":"veth1","link":"x"}]"#;
        assert_eq!(
            parse_held(json).unwrap(),
            vec![
                held("lo", "127.0.0.1"),
                held("lo", "::1"),
                held("eth0", "10.20.0.141"),
            ]
        );
        let err = parse_held("Option \"-j\" is unknown").unwrap_err();
        assert!(err.to_string().contains("iproute2 4.14 or later"), "{err}");
    }
}
