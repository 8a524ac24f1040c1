//! The local lab: a client and a server network namespace joined by a veth
//! pair, so the whole trick runs on one machine without touching the
//! host's own network. `troll demo` builds one; the tests build many.
//!
//! Addresses come from the benchmarking range 198.18.0.0/15 and the
//! documentation prefix 2001:db8::/32: the link is 198.19.254.0/24 and
//! 2001:db8:19:fe::/64, the targets sit on the server's interface, and the
//! hop addresses are configured nowhere (they only appear as the source of
//! the responder's replies; for IPv6 they are any addresses of a /64 that
//! routes to the server, as an instance's /64 does). The client's resolver
//! points at the server, where `troll serve --dns` answers the PTR queries,
//! and the name `troll.lab` resolves to the targets of both families. Everything the lab creates
//! is named in [`LabNames`] so that it can be removed completely, also by a
//! later `troll teardown` after a crash.

pub mod internet;
pub mod nat;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::Command;

/// The client's address on the lab link.
pub const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 1);
/// The server's own address on the lab link; the kernel answers it as usual,
/// and the DNS server listens on it.
pub const SERVER_ADDR: Ipv4Addr = Ipv4Addr::new(198, 19, 254, 2);
/// The client's IPv6 address on the lab link.
pub const CLIENT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x19, 0xfe, 0, 0, 0, 1);
/// The server's own IPv6 address on the lab link.
pub const SERVER_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x19, 0xfe, 0, 0, 0, 2);
/// The name of the target(s) in the client namespace (`/etc/hosts`), so
/// `traceroute -4 troll.lab` and `traceroute -6 troll.lab` trace the same
/// server.
pub const TARGET_NAME: &str = "troll.lab";
/// The interface name inside both namespaces.
pub const LINK: &str = "eth0";

/// Everything one lab creates, recorded in the deployment's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabNames {
    pub client: String,
    pub server: String,
}

impl LabNames {
    /// Unique names: `PREFIX-PID-N-client` and `...-server`.
    pub fn unique(prefix: &str, n: usize) -> LabNames {
        let pid = std::process::id();
        LabNames {
            client: format!("{prefix}-{pid}-{n}-client"),
            server: format!("{prefix}-{pid}-{n}-server"),
        }
    }

    /// The per-namespace /etc overlay that `ip netns exec` mounts.
    pub fn etc_dir(ns: &str) -> PathBuf {
        PathBuf::from("/etc/netns").join(ns)
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = crate::hostaddr::ip(args)?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Lab(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Creates both namespaces, the veth pair between them, the addresses and
/// routes, and `targets` on the server's interface. On failure, whatever
/// was created is removed again.
pub fn create(names: &LabNames, targets: &[IpAddr]) -> Result<()> {
    let result = build(names, targets);
    if result.is_err() {
        let _ = destroy(names);
    }
    result
}

fn build(names: &LabNames, targets: &[IpAddr]) -> Result<()> {
    let (c, s) = (names.client.as_str(), names.server.as_str());
    ip(&["netns", "add", c])?;
    ip(&["netns", "add", s])?;
    // Temporary names inside the client namespace cannot clash with the
    // host's interfaces; both ends are then renamed to eth0.
    ip(&[
        "-n", c, "link", "add", "trollc", "type", "veth", "peer", "name", "trolls", "netns", s,
    ])?;
    ip(&["-n", c, "link", "set", "trollc", "name", LINK])?;
    ip(&["-n", s, "link", "set", "trolls", "name", LINK])?;
    for (ns, addr, addr6) in [
        (c, CLIENT_ADDR, CLIENT_ADDR6),
        (s, SERVER_ADDR, SERVER_ADDR6),
    ] {
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", LINK])?;
        // No duplicate address detection: the link is ours alone, and DAD
        // would hold the address back for a second or two.
        ip(&[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr6}/64"),
            "dev",
            LINK,
            "nodad",
        ])?;
        ip(&["-n", ns, "link", "set", LINK, "up"])?;
    }
    for target in targets {
        let prefix = if target.is_ipv4() { "32" } else { "128" };
        let addr = format!("{target}/{prefix}");
        ip(&["-n", s, "addr", "add", &addr, "dev", LINK, "nodad"]
            [..if target.is_ipv4() { 7 } else { 8 }])?;
    }
    for (ns, via) in [(c, SERVER_ADDR.to_string()), (s, CLIENT_ADDR.to_string())] {
        ip(&["-n", ns, "route", "add", "default", "via", &via])?;
    }
    for (ns, via) in [(c, SERVER_ADDR6.to_string()), (s, CLIENT_ADDR6.to_string())] {
        ip(&["-n", ns, "-6", "route", "add", "default", "via", &via])?;
    }
    Ok(())
}

/// Points the client namespace's resolver at `nameserver` and names the
/// `targets` [`TARGET_NAME`], through the `/etc/netns/NAME/` overlay that
/// `ip netns exec` mounts over /etc: `resolv.conf`, `hosts`, and an
/// `nsswitch.conf` that asks DNS before the hosts file, so that reverse
/// lookups of the target give its PTR name, not `troll.lab`.
pub fn set_resolver(names: &LabNames, nameserver: IpAddr, targets: &[IpAddr]) -> Result<()> {
    let dir = LabNames::etc_dir(&names.client);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let write = |file: &str, text: String| {
        let path = dir.join(file);
        std::fs::write(&path, text).map_err(|e| Error::io("cannot write", &path, e))
    };
    write(
        "resolv.conf",
        format!("nameserver {nameserver}\noptions timeout:2 attempts:2\n"),
    )?;
    let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost\n");
    for target in targets {
        hosts.push_str(&format!("{target}\t{TARGET_NAME}\n"));
    }
    write("hosts", hosts)?;
    let host_nsswitch = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
    let mut nsswitch: String = host_nsswitch
        .lines()
        .filter(|l| !l.trim_start().starts_with("hosts:"))
        .map(|l| format!("{l}\n"))
        .collect();
    nsswitch.push_str("hosts: dns files\n");
    write("nsswitch.conf", nsswitch)
}

/// Removes both namespaces (which removes the veth pair and every rule and
/// sysctl inside them) and their /etc overlays. Parts already gone are fine.
pub fn destroy(names: &LabNames) -> Result<()> {
    let mut first_error = None;
    for ns in [&names.client, &names.server] {
        if exists(ns) {
            if let Err(e) = ip(&["netns", "del", ns]) {
                first_error.get_or_insert(e);
            }
        }
        let dir = LabNames::etc_dir(ns);
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                first_error.get_or_insert(Error::io("cannot remove", &dir, e));
            }
        }
    }
    // /etc/netns itself goes too once no namespace uses it (fails, as it
    // should, while it holds anything).
    let _ = std::fs::remove_dir("/etc/netns");
    first_error.map_or(Ok(()), Err)
}

/// Whether a network namespace of that name exists.
pub fn exists(ns: &str) -> bool {
    PathBuf::from("/run/netns").join(ns).exists()
}

/// A command that runs `program` inside namespace `ns`.
pub fn exec(ns: &str, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, program]);
    cmd
}

/// Whether we run as root (the lab and `serve` need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}
