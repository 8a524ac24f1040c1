//! The internet in the lab: the path a real user's traceroute takes, in
//! network namespaces. Three forwarding routers with PTR names, clients at
//! one and at three routers, a cloud's stateless 1:1 NAT, a provider edge
//! that drops packets from the server whose source is not assigned to it,
//! and a recursive resolver (Unbound) that resolves the show's reverse
//! zone by asking troll's own DNS server, as public resolvers do.
//!
//! ```text
//!  far --r1--r2--r3-- [nat] -- [edge] -- server
//!                |
//!              near            resolver: Unbound in r1 (100.65.0.53)
//! ```
//!
//! The NAT and the edge work on layer 2 (they are no hop of their own, as
//! an internet gateway and a hypervisor's filter are none): the edge is a
//! kernel bridge with an nftables `netdev` filter whose counters the tests
//! read; the NAT is [`super::nat`], a small forwarder between two packet
//! sockets, because this kernel has no `act_nat`/`pedit` and nftables
//! cannot rewrite the header quoted inside an ICMP error.
//!
//! The server's addresses are private (10.20.0.0/24), each mapped 1:1 to
//! the public 198.51.100.0/24 address with the same host part; IPv6 is
//! public end to end (2001:db8:20::/64), as on AWS. Every veth end has
//! transmit checksum offload off, so the NAT and the edge see whole
//! checksums. Everything is named after [`InternetNames`] and removed by
//! [`Internet::destroy`] (and by `Drop`).

use super::nat::{Nat, NatMode};
use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server's primary private address (troll's DNS server listens here).
pub const SERVER_LOCAL: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 2);
/// The public address the NAT maps [`SERVER_LOCAL`] to.
pub const SERVER_PUBLIC: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// The server's IPv6 address (no NAT for IPv6).
pub const SERVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 2);
/// The resolver's address (Unbound, on r1).
pub const RESOLVER: Ipv4Addr = Ipv4Addr::new(100, 65, 0, 53);
/// The resolver's IPv6 address.
pub const RESOLVER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x65, 0, 0, 0, 0, 0x53);
/// The first host part of the server's show addresses: the target is
/// `.100`, hops `.101` and up (public 198.51.100.x, local 10.20.0.x;
/// IPv6 2001:db8:20::x in hex, 0x100 and up).
pub const FIRST_SHOW_HOST: u8 = 100;
/// How many show addresses the server is assigned (edge) and mapped (NAT).
pub const SHOW_ADDRESSES: u8 = 100;

/// The public address of show host `n` (0 = target).
pub fn public(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, FIRST_SHOW_HOST + n)
}

/// The private address of show host `n` (0 = target).
pub fn local(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 20, 0, FIRST_SHOW_HOST + n)
}

/// The IPv6 address of show host `n` (0 = target).
pub fn public6(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x20, 0, 0, 0, 0, 0x100 + u16::from(n))
}

/// A router interface: its address, its PTR name, and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterPort {
    pub router: &'static str,
    pub addr: Ipv4Addr,
    pub addr6: Ipv6Addr,
    pub name: &'static str,
}

const fn v6(link: u16, host: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0x65, link, 0, 0, 0, host)
}

/// Every router port that answers a client: the hops before the show.
pub const PORTS: [RouterPort; 6] = [
    RouterPort {
        router: "r1",
        addr: Ipv4Addr::new(100, 65, 1, 1),
        addr6: v6(1, 1),
        name: "ae0.r1.isp.test",
    },
    RouterPort {
        router: "r1",
        addr: Ipv4Addr::new(100, 65, 2, 1),
        addr6: v6(2, 1),
        name: "ae1.r1.isp.test",
    },
    RouterPort {
        router: "r2",
        addr: Ipv4Addr::new(100, 65, 2, 2),
        addr6: v6(2, 2),
        name: "ae0.r2.isp.test",
    },
    RouterPort {
        router: "r2",
        addr: Ipv4Addr::new(100, 65, 3, 1),
        addr6: v6(3, 1),
        name: "ae1.r2.isp.test",
    },
    RouterPort {
        router: "r3",
        addr: Ipv4Addr::new(100, 65, 3, 2),
        addr6: v6(3, 2),
        name: "ae0.r3.cloud.test",
    },
    RouterPort {
        router: "r3",
        addr: Ipv4Addr::new(100, 65, 4, 1),
        addr6: v6(4, 1),
        name: "ae1.r3.cloud.test",
    },
];

/// The real hops the far client (behind r1, r2, r3) sees, in order.
pub const FAR_HOPS: [RouterPort; 3] = [PORTS[0], PORTS[2], PORTS[4]];
/// The real hop the near client (on r3) sees.
pub const NEAR_HOPS: [RouterPort; 1] = [PORTS[5]];

/// The namespaces of one internet lab: `PREFIX-ROLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternetNames {
    pub prefix: String,
}

/// The roles, in the order they are created.
pub const ROLES: [&str; 8] = ["far", "near", "r1", "r2", "r3", "nat", "edge", "server"];

impl InternetNames {
    /// Unique names: `PREFIX-PID-N-ROLE`.
    pub fn unique(prefix: &str, n: usize) -> InternetNames {
        InternetNames {
            prefix: format!("{prefix}-{}-{n}", std::process::id()),
        }
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }
}

/// How the lab is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InternetOptions {
    pub nat: NatMode,
    /// The longest a resolver keeps an answer (Unbound's cache-max-ttl),
    /// and a negative one: small, so that a message change shows quickly.
    pub cache_ttl: u32,
}

impl Default for InternetOptions {
    fn default() -> InternetOptions {
        InternetOptions {
            nat: NatMode::Full,
            cache_ttl: 5,
        }
    }
}

/// A running internet lab. `destroy` (or drop) removes it all.
#[derive(Debug)]
pub struct Internet {
    pub names: InternetNames,
    pub options: InternetOptions,
    /// Unbound's config, pid and log.
    pub dir: tempfile::TempDir,
    nat: Option<Nat>,
    unbound: Option<Child>,
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Usage(format!(
                "`{}` is missing; run scripts/install-deps.sh (Debian packages iproute2, nftables, ethtool, unbound)",
                cmd.get_program().to_string_lossy()
            ))
        } else {
            Error::io("cannot run", cmd.get_program().to_string_lossy().as_ref(), e)
        }
    })?;
    if out.status.success() {
        Ok(())
    } else {
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        Err(Error::Lab(format!(
            "`{} {}` failed: {}",
            cmd.get_program().to_string_lossy(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn ip(ns: &str, args: &[&str]) -> Result<()> {
    run(Command::new("ip").arg("-n").arg(ns).args(args))
}

fn in_ns(ns: &str, program: &str, args: &[&str]) -> Result<()> {
    run(super::exec(ns, program).args(args))
}

fn sysctl(ns: &str, setting: &str) -> Result<()> {
    in_ns(ns, "sysctl", &["-qw", setting])
}

impl Internet {
    /// Builds the lab and starts its NAT and resolver. On failure whatever
    /// was created is removed again.
    pub fn create(names: InternetNames, options: InternetOptions) -> Result<Internet> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("cannot create", "a temp dir", e))?;
        let mut lab = Internet {
            names,
            options,
            dir,
            nat: None,
            unbound: None,
        };
        match lab.build() {
            Ok(()) => Ok(lab),
            Err(e) => {
                lab.destroy();
                Err(e)
            }
        }
    }

    pub fn ns(&self, role: &str) -> String {
        self.names.ns(role)
    }

    /// A veth pair between `a`:`a_if` and `b`:`b_if`, offloads off.
    fn link(&self, a: &str, a_if: &str, b: &str, b_if: &str) -> Result<()> {
        let (na, nb) = (self.ns(a), self.ns(b));
        ip(
            &na,
            &[
                "link", "add", "trlx", "type", "veth", "peer", "name", "trly", "netns", &nb,
            ],
        )?;
        ip(&na, &["link", "set", "trlx", "name", a_if])?;
        ip(&nb, &["link", "set", "trly", "name", b_if])?;
        for (ns, dev) in [(&na, a_if), (&nb, b_if)] {
            in_ns(ns, "ethtool", &["-K", dev, "tx", "off"])?;
            ip(ns, &["link", "set", dev, "up"])?;
        }
        Ok(())
    }

    fn addr(&self, role: &str, dev: &str, v4: &str, v6: &str) -> Result<()> {
        let ns = self.ns(role);
        ip(&ns, &["addr", "add", v4, "dev", dev])?;
        ip(&ns, &["addr", "add", v6, "dev", dev, "nodad"])
    }

    fn route(&self, role: &str, to: &str, via: &str) -> Result<()> {
        let ns = self.ns(role);
        let family = if via.contains(':') { "-6" } else { "-4" };
        ip(&ns, &[family, "route", "add", to, "via", via])
    }

    fn build(&mut self) -> Result<()> {
        for role in ROLES {
            run(Command::new("ip").args(["netns", "add", &self.ns(role)]))?;
            ip(&self.ns(role), &["link", "set", "lo", "up"])?;
        }
        for role in ["r1", "r2", "r3"] {
            let ns = self.ns(role);
            sysctl(&ns, "net.ipv4.ip_forward=1")?;
            sysctl(&ns, "net.ipv6.conf.all.forwarding=1")?;
            // A router with a generous control-plane policer: every probe
            // of every test gets its Time Exceeded.
            sysctl(&ns, "net.ipv4.icmp_ratelimit=0")?;
            sysctl(&ns, "net.ipv6.icmp.ratelimit=0")?;
        }
        for role in ["nat", "edge"] {
            // Layer 2 only: no address, no answer of their own.
            sysctl(&self.ns(role), "net.ipv6.conf.all.disable_ipv6=1")?;
            sysctl(&self.ns(role), "net.ipv6.conf.default.disable_ipv6=1")?;
        }
        self.link("far", "eth0", "r1", "eth0")?;
        self.link("r1", "eth1", "r2", "eth0")?;
        self.link("r2", "eth1", "r3", "eth0")?;
        self.link("near", "eth0", "r3", "eth1")?;
        self.link("r3", "eth2", "nat", "pub")?;
        self.link("nat", "priv", "edge", "nat0")?;
        self.link("edge", "srv0", "server", "eth0")?;

        self.addr("far", "eth0", "100.65.1.2/24", "2001:db8:65:1::2/64")?;
        self.addr("near", "eth0", "100.65.4.2/24", "2001:db8:65:4::2/64")?;
        for (port, dev) in PORTS
            .iter()
            .zip(["eth0", "eth1", "eth0", "eth1", "eth0", "eth1"])
        {
            self.addr(
                port.router,
                dev,
                &format!("{}/24", port.addr),
                &format!("{}/64", port.addr6),
            )?;
        }
        self.addr("r3", "eth2", "10.20.0.1/24", "2001:db8:20::1/64")?;
        self.addr(
            "server",
            "eth0",
            &format!("{SERVER_LOCAL}/24"),
            &format!("{SERVER6}/64"),
        )?;
        // The target is an assigned (secondary private) address; hop
        // addresses need only be routed to the server.
        self.addr(
            "server",
            "eth0",
            &format!("{}/32", local(0)),
            &format!("{}/128", public6(0)),
        )?;
        let r1 = self.ns("r1");
        ip(
            &r1,
            &["addr", "add", &format!("{RESOLVER}/32"), "dev", "lo"],
        )?;
        ip(
            &r1,
            &["addr", "add", &format!("{RESOLVER6}/128"), "dev", "lo"],
        )?;

        self.route("far", "default", "100.65.1.1")?;
        self.route("far", "default", "2001:db8:65:1::1")?;
        self.route("near", "default", "100.65.4.1")?;
        self.route("near", "default", "2001:db8:65:4::1")?;
        self.route("r1", "default", "100.65.2.2")?;
        self.route("r1", "default", "2001:db8:65:2::2")?;
        for (to, via) in [
            ("100.65.1.0/24", "100.65.2.1"),
            ("100.65.0.53/32", "100.65.2.1"),
            ("2001:db8:65:1::/64", "2001:db8:65:2::1"),
            ("2001:db8:65::53/128", "2001:db8:65:2::1"),
            ("default", "100.65.3.2"),
            ("default", "2001:db8:65:3::2"),
        ] {
            self.route("r2", to, via)?;
        }
        self.route("r3", "default", "100.65.3.1")?;
        self.route("r3", "default", "2001:db8:65:3::1")?;
        // The public side of the server's addresses is routed to its
        // private primary address: the NAT on the wire translates.
        self.route("r3", "198.51.100.0/24", &SERVER_LOCAL.to_string())?;
        self.route("server", "default", "10.20.0.1")?;
        self.route("server", "default", "2001:db8:20::1")?;

        self.build_edge()?;
        self.nat = Some(Nat::start(
            &self.ns("nat"),
            "pub",
            "priv",
            self.nat_pairs(),
            self.options.nat,
        )?);
        self.start_unbound()?;
        for role in ["far", "near"] {
            self.write_resolver(role)?;
        }
        Ok(())
    }

    /// Every public/private pair of the server.
    pub fn nat_pairs(&self) -> Vec<(Ipv4Addr, Ipv4Addr)> {
        std::iter::once((SERVER_PUBLIC, SERVER_LOCAL))
            .chain((0..SHOW_ADDRESSES).map(|n| (public(n), local(n))))
            .collect()
    }

    /// The edge: a bridge, and a filter on the server's port that passes
    /// only the server's assigned sources, counting both.
    fn build_edge(&self) -> Result<()> {
        let edge = self.ns("edge");
        ip(
            &edge,
            &[
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        )?;
        for dev in ["nat0", "srv0"] {
            ip(&edge, &["link", "set", dev, "master", "br0"])?;
        }
        ip(&edge, &["link", "set", "br0", "up"])?;
        let last = local(SHOW_ADDRESSES - 1);
        let rules = format!(
            "table netdev trolledge {{
  counter passed4 {{ }}
  counter dropped4 {{ }}
  counter passed6 {{ }}
  counter dropped6 {{ }}
  set assigned4 {{ type ipv4_addr; flags interval; elements = {{ {SERVER_LOCAL}, {first}-{last} }}; }}
  set assigned6 {{ type ipv6_addr; flags interval; elements = {{ ::, 2001:db8:20::/64, fe80::/10 }}; }}
  chain from_server {{
    type filter hook ingress device \"srv0\" priority 0; policy accept;
    meta protocol ip ip saddr @assigned4 counter name \"passed4\" accept
    meta protocol ip counter name \"dropped4\" drop
    meta protocol ip6 ip6 saddr @assigned6 counter name \"passed6\" accept
    meta protocol ip6 counter name \"dropped6\" drop
  }}
}}
",
            first = local(0),
        );
        let path = self.dir.path().join("edge.nft");
        std::fs::write(&path, rules).map_err(|e| Error::io("cannot write", &path, e))?;
        in_ns(&edge, "nft", &["-f", &path.to_string_lossy()])
    }

    /// The edge's counters: (passed, dropped) packets from the server.
    pub fn edge_counters(&self) -> Result<EdgeCounters> {
        let out = super::exec(&self.ns("edge"), "nft")
            .args(["list", "counters", "table", "netdev", "trolledge"])
            .output()
            .map_err(|e| Error::io("cannot run", "nft", e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let read = |name: &str| -> u64 {
            text.split(&format!("counter {name} "))
                .nth(1)
                .and_then(|rest| rest.split("packets ").nth(1))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Ok(EdgeCounters {
            passed4: read("passed4"),
            dropped4: read("dropped4"),
            passed6: read("passed6"),
            dropped6: read("dropped6"),
        })
    }

    /// Unbound's config: listen on the resolver addresses, answer the
    /// routers' PTRs itself, and ask troll's DNS server (through the NAT,
    /// at the server's public address) for the show's reverse zones.
    pub fn unbound_conf(&self) -> String {
        let dir = self.dir.path().display();
        let ttl = self.options.cache_ttl;
        let mut conf = format!(
            "server:
  interface: {RESOLVER}
  interface: {RESOLVER6}
  port: 53
  do-daemonize: no
  username: \"\"
  chroot: \"\"
  directory: \"{dir}\"
  pidfile: \"{dir}/unbound.pid\"
  logfile: \"{dir}/unbound.log\"
  use-syslog: no
  verbosity: 1
  num-threads: 1
  so-reuseport: no
  module-config: \"iterator\"
  access-control: 0.0.0.0/0 allow
  access-control: ::/0 allow
  qname-minimisation: no
  cache-max-ttl: {ttl}
  cache-max-negative-ttl: {ttl}
  local-zone: \"100.51.198.in-addr.arpa.\" nodefault
  local-zone: \"8.b.d.0.1.0.0.2.ip6.arpa.\" nodefault
  domain-insecure: \"100.51.198.in-addr.arpa.\"
  domain-insecure: \"0.2.0.0.8.b.d.0.1.0.0.2.ip6.arpa.\"
  local-zone: \"65.100.in-addr.arpa.\" static
  local-zone: \"5.6.0.0.8.b.d.0.1.0.0.2.ip6.arpa.\" static
"
        );
        for port in PORTS {
            conf.push_str(&format!(
                "  local-data-ptr: \"{} {}\"\n",
                port.addr, port.name
            ));
            conf.push_str(&format!(
                "  local-data-ptr: \"{} {}\"\n",
                port.addr6, port.name
            ));
        }
        conf.push_str(&format!(
            "stub-zone:
  name: \"100.51.198.in-addr.arpa.\"
  stub-addr: {SERVER_PUBLIC}
stub-zone:
  name: \"0.2.0.0.8.b.d.0.1.0.0.2.ip6.arpa.\"
  stub-addr: {SERVER_PUBLIC}
"
        ));
        conf
    }

    fn start_unbound(&mut self) -> Result<()> {
        let conf = self.dir.path().join("unbound.conf");
        std::fs::write(&conf, self.unbound_conf())
            .map_err(|e| Error::io("cannot write", &conf, e))?;
        let program = super::which("unbound").ok_or_else(|| {
            Error::Usage(
                "`unbound` is missing; run scripts/install-deps.sh (Debian package unbound)".into(),
            )
        })?;
        let child = super::exec(&self.ns("r1"), &program.to_string_lossy())
            .args(["-d", "-c", &conf.to_string_lossy()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io("cannot run", &program, e))?;
        self.unbound = Some(child);
        let log = self.dir.path().join("unbound.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("start of service") {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.unbound.as_mut().map(Child::try_wait) {
                return Err(Error::Lab(format!(
                    "unbound exited ({status}): {}",
                    text.trim()
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Lab(format!(
                    "unbound did not start: {}",
                    text.trim()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unbound's log (for test failures).
    pub fn resolver_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("unbound.log")).unwrap_or_default()
    }

    /// A client's resolver is Unbound; `troll.lab` names both targets.
    fn write_resolver(&self, role: &str) -> Result<()> {
        let names = super::LabNames {
            client: self.ns(role),
            server: self.ns("server"),
        };
        super::set_resolver(
            &names,
            IpAddr::V4(RESOLVER),
            &[IpAddr::V4(public(0)), IpAddr::V6(public6(0))],
        )
    }

    /// Removes everything; parts already gone are fine.
    pub fn destroy(&mut self) {
        if let Some(mut child) = self.unbound.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(nat) = self.nat.take() {
            nat.stop();
        }
        for role in ROLES {
            destroy_ns(&self.ns(role));
        }
        let _ = std::fs::remove_dir("/etc/netns");
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        self.destroy();
    }
}

/// Counters of the provider edge: packets from the server it passed and
/// dropped, per family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EdgeCounters {
    pub passed4: u64,
    pub dropped4: u64,
    pub passed6: u64,
    pub dropped6: u64,
}

/// Deletes namespace `ns` and its /etc overlay if they exist, first
/// killing what still runs in it (a resolver of a test that died).
pub fn destroy_ns(ns: &str) {
    if super::exists(ns) {
        if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    // SAFETY: kill(2) on a process inside our own lab.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    let dir: PathBuf = super::LabNames::etc_dir(ns);
    if dir.exists() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Removes internet labs named `PREFIX-PID-...` whose process is gone.
pub fn sweep_stale(prefix: &str) {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(&format!("{prefix}-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if !pid.is_empty() && !Path::new(&format!("/proc/{pid}")).exists() {
            destroy_ns(&name);
        }
    }
}
