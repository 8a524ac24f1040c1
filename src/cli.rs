//! The command line, as clap derive types, and its validation into ready
//! values (`Context`, `MessageInput`) so that commands never re-check raw
//! strings.

use crate::config::Config;
use crate::error::{Error, Result};
use crate::message::{self, Encoded, Options};
use crate::state::{MessageOptions, Store};
use clap::{Args, Parser, Subcommand};
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use value::{HopList, Pairs};

pub mod value;

const ABOUT: &str = "Make traceroute to your server print a message, one line per hop.";

const LONG_ABOUT: &str = "\
Make traceroute to your server print a message, one line per hop.

Each line of the message becomes the reverse-DNS name of one fake hop in
front of your server; a responder answers traceroute probes for those hops
and the kernel is kept quiet about them.

Exit codes: 0 success, 1 failure, 2 usage error (bad flags or a message that
cannot be encoded).";

#[derive(Debug, Parser)]
#[command(name = "troll", version, about = ABOUT, long_about = LONG_ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Deployment to act on [default: default]
    #[arg(
        long,
        short = 'd',
        global = true,
        env = "TROLL_DEPLOYMENT",
        hide_env_values = true,
        value_name = "NAME",
        value_parser = value::deployment_name
    )]
    pub deployment: Option<String>,
    /// Directory of state files [default: /var/lib/troll as root, else $XDG_STATE_HOME/troll]
    #[arg(
        long,
        global = true,
        env = "TROLL_STATE_DIR",
        hide_env_values = true,
        value_name = "DIR"
    )]
    pub state_dir: Option<PathBuf>,
    /// Config file [default: ~/.config/troll/troll.toml, then /etc/troll/troll.toml]
    #[arg(
        long,
        global = true,
        env = "TROLL_CONFIG",
        hide_env_values = true,
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output: only errors
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what traceroute would print for a message, with the addresses and cost it needs
    #[command(long_about = PREVIEW_HELP)]
    Preview(PreviewArgs),
    /// Store a message (and its hop plan) in a deployment
    #[command(long_about = SET_MESSAGE_HELP)]
    SetMessage(SetMessageArgs),
    /// Answer traceroute probes for the fake hops (foreground; needs root)
    #[command(long_about = SERVE_HELP)]
    Serve(ServeArgs),
    /// Give a deployment its addresses (local lab range, or your own)
    #[command(long_about = PROVISION_HELP)]
    Provision(ProvisionArgs),
    /// Export the deployment's reverse zone(s) for BIND, NSD or Knot
    #[command(long_about = ZONE_HELP)]
    Zone(ZoneArgs),
    /// Run the whole trick in network namespaces on this machine (needs root)
    #[command(long_about = DEMO_HELP)]
    Demo(DemoArgs),
    /// Show a deployment: hops, wanted and resolved names, rules, responder
    #[command(long_about = STATUS_HELP)]
    Status(StatusArgs),
    /// Trace HOST from here and compare what it shows with the message (no root needed)
    #[command(long_about = CHECK_HELP)]
    Check(CheckArgs),
    /// Install a systemd unit that runs `troll serve` for the deployment
    #[command(long_about = INSTALL_SERVICE_HELP)]
    InstallService(InstallServiceArgs),
    /// Install a provisioned deployment on its server over SSH and start serving it
    #[command(long_about = DEPLOY_HELP)]
    Deploy(DeployArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff)
    Man,
    /// Stop serving, remove every rule and forget the deployment
    #[command(long_about = TEARDOWN_HELP)]
    Teardown,
}

const SERVE_HELP: &str = "\
Answer traceroute probes for the fake hops, in the foreground, until SIGINT
or SIGTERM. Needs root, or CAP_NET_RAW and CAP_NET_ADMIN.

Probes to the target that arrive with TTL t <= N (the number of fake hops)
are hidden from the kernel by iptables rules in chains troll owns, and
answered with ICMP Time Exceeded from hop t's address; later probes get the
target's normal answer. The targets of a message's windows 2.. that the
host lacks are added to it (IPv4 /32, IPv6 /128). The rules and those
addresses are removed on exit (and by the next serve or `troll teardown`
after a crash). SIGHUP reloads the deployment's message; SIGUSR1 logs the
counters.

The show comes from the deployment (see `troll set-message`), or entirely
from flags, for addresses you already have:

Example:
  troll serve --target 203.0.113.10 --hops 198.18.0.1,198.18.0.2,-,198.18.0.3
  troll serve --dry-run        # print the address and firewall commands and exit";

const PROVISION_HELP: &str = "\
Give a deployment the addresses its message needs.

  --provider local   addresses from the lab range 198.18.0.0/15 (what
                     `troll demo` uses); one per distinct line
  --provider static  addresses you already have: --target and --hop-address,
                     each ADDR or PUBLIC=LOCAL (behind 1:1 NAT)
  --provider vultr   additional IPv4 (or --reserved IPs) on --instance ID,
                     and with --ipv6 addresses of its /64; key in VULTR_API_KEY
  --provider aws     one Elastic IP per line on a secondary private address of
                     the instance (id and region from the metadata service
                     when run on it), source/dest check off; --domain names
                     the zone whose A records you publish, or troll writes
                     them with --route53-zone ZONE_ID

Names are then served by `troll serve --dns` or exported with `troll zone`.

--print-user-data changes nothing: it prints cloud-init user data that makes
a fresh or reinstalled instance serve the deployment as it is (its addresses
as a static deployment, its message, a systemd service), downloading troll
from --binary-url and checking it against --binary-sha256 (default: this
binary's). The instance gets no API key; PTRs and leases stay here.

Example:
  troll provision --provider static --target 203.0.113.10 \\
      --hop-address 198.51.100.1,198.51.100.2,198.51.100.3
  troll provision --provider local --message \"$(cat message.txt)\"
  VULTR_API_KEY=... troll provision --provider vultr --instance ID --ipv6
  troll provision --provider aws --domain example.com
  troll provision --print-user-data --binary-url https://example.com/troll";

const ZONE_HELP: &str = "\
Print the reverse zone(s) of the deployment's addresses, with the PTR names
of its message, as zone files for BIND, NSD or Knot (one per /24 or /64).
With --output DIR, write each to DIR/ORIGINzone instead.

Example:
  troll zone --format bind --nameserver ns1.example.com.";

const DEMO_HELP: &str = "\
Run the whole trick on this machine, with no account and no config: create
a client and a server network namespace, provision a `local` deployment,
run the responder and the DNS server in the server namespace, run a real
traceroute client in the client namespace, print what it shows, and remove
everything (also on Ctrl-C or failure). Needs root.

Clients: traceroute (UDP), traceroute-icmp, traceroute-tcp, mtr, mtr-udp,
mtr-tcp, tracepath, inetutils (inetutils-traceroute), tcptraceroute.

Example:
  troll demo
  troll demo --client mtr \"$(printf 'Hello\\nWorld')\"
  troll demo --keep            # leave the lab running and try clients by hand
  troll demo --internet        # routers, cloud NAT, edge, Unbound; then troll check";

const STATUS_HELP: &str = "\
Show a deployment: its provider, the target and every hop with the name it
should have and the name a resolver returns now, whether its firewall
chains are in place, and whether its responder runs (pid, uptime, answered
and dropped probes by reason).

This is the server's own view. For the view from outside (what a
traceroute from the internet shows, hop by hop), run `troll check` from
another machine.

Example:
  troll status
  troll status --resolver 198.51.100.53 --json";

const CHECK_HELP: &str = "\
Trace HOST from this machine and compare, hop by hop, what it shows with
the message: run it from your laptop after provisioning. No root needed:
UDP probes use IP_RECVERR and ICMP uses ping sockets where
net.ipv4.ping_group_range allows (raw sockets as root); TCP SYN probes
need root. A protocol it cannot use is reported as skipped.

The expected show is the deployment's (when its state is on this machine),
or --message / --file, encoded exactly as `troll set-message` does. The
show starts at the first hop that answers from a show address (or with a
show name), after your own real hops. Each fake hop and the target get a
verdict: ok, no answer, wrong address, no PTR yet, wrong name, or out of
hop range. Names are compared byte for byte, through the system resolver
and --resolver ADDR too: two resolvers show PTRs that are only partly
spread.

Exit codes: 0 every line matches for every protocol checked, 1 otherwise,
2 usage error.

Example:
  troll check 203.0.113.10 --file message.txt
  troll check -6 troll.example.com --resolver 1.1.1.1 --json
  troll check 203.0.113.10             # where the deployment's state is";

const INSTALL_SERVICE_HELP: &str = "\
Render templates/troll.service for the deployment and write it to
/etc/systemd/system/troll-DEPLOYMENT.service: `troll serve` with only
CAP_NET_RAW and CAP_NET_ADMIN (and CAP_NET_BIND_SERVICE when --dns listens
on a port below 1024), NoNewPrivileges, a read-only system, and a restart
on failure.

Example:
  troll install-service --dns 0.0.0.0:53
  troll install-service --dry-run";

const TEARDOWN_HELP: &str = "\
Stop the deployment's `troll serve` if one runs, remove every firewall rule
and window target address it recorded, and delete its state. A deployment installed on a server with
`troll deploy` is first stopped and removed there over SSH, then its cloud
resources are released.

Example:
  troll teardown --deployment lab";

const PREVIEW_HELP: &str = "\
Show what Linux traceroute would print for a message, with no root and no
network: a few sample real hops, then one hop per line of the message
(`* * *` for blank lines), then the target with the last line as its name.
Addresses come from the deployment if it has some, else from the
documentation ranges. Warnings, the number of addresses needed and their
monthly cost follow.

Example:
  troll preview \"$(printf 'Douglas Adams\\nMostly Harmless\\n\\nDont Panic')\"";

const SET_MESSAGE_HELP: &str = "\
Encode a message into host names, plan its hops and store both in the
deployment's state (creating the deployment if needed). Every change the
encoder makes is reported; --strict refuses them.

Example:
  troll set-message --deployment lab \"$(printf 'Douglas Adams\\nMostly Harmless')\"
  troll set-message --file message.txt
  fortune -s | troll set-message -";

#[derive(Debug, Args)]
pub struct MessageArgs {
    /// The message: lines separated by newlines; `-` reads standard input
    #[arg(value_name = "MESSAGE", conflicts_with = "file")]
    pub message: Option<String>,
    /// Read the message from a file
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Fail instead of changing any character of the message
    #[arg(long)]
    pub strict: bool,
    /// Split lines longer than one host name over several hops
    #[arg(long)]
    pub wrap: bool,
    /// Make every line a fake hop; the target keeps the name it has
    #[arg(long)]
    pub keep_target_name: bool,
    /// Split the message into windows of LINES lines, each traced to its own target address (one more per window); 15 fits a default 30-hop trace
    #[arg(long, value_name = "LINES", value_parser = value::window)]
    pub window: Option<usize>,
    /// The last line of every window but the last [default: where the next window is, e.g. continued.at.198-51-100-7]
    #[arg(long, value_name = "TEXT", requires = "window")]
    pub window_footer: Option<String>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    /// Print the plan as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetMessageArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    #[command(flatten)]
    pub delays: DelayArgs,
}

/// Round-trip times of the show's replies.
#[derive(Debug, Args, Default)]
pub struct DelayArgs {
    /// Delay hop t's reply by t x MS milliseconds, so times grow like a real path's (at most 2000 per reply); with --line-delay, replaces the stored delays
    #[arg(long, value_name = "MS", value_parser = crate::responder::settings::parse_ms)]
    pub hop_delay: Option<u32>,
    /// Delay one line's replies by MS milliseconds (repeatable; at most 2000), e.g. --line-delay 3=150
    #[arg(long, value_name = "LINE=MS", value_parser = crate::responder::settings::parse_line_delay)]
    pub line_delay: Vec<(usize, u32)>,
}

impl DelayArgs {
    /// The settings the flags give, or `None` when none was given.
    pub fn settings(&self) -> Option<crate::responder::settings::DelaySettings> {
        if self.hop_delay.is_none() && self.line_delay.is_empty() {
            return None;
        }
        let mut lines = self.line_delay.clone();
        lines.sort_by_key(|(line, _)| *line);
        // The last one given for a line wins.
        lines.reverse();
        lines.dedup_by_key(|(line, _)| *line);
        lines.reverse();
        Some(crate::responder::settings::DelaySettings {
            hop_ms: self.hop_delay.unwrap_or(0),
            lines,
        })
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The target's (local) address, IPv4 or IPv6; with --hops, serve without a deployment message
    #[arg(long, value_name = "ADDR")]
    pub target: Option<std::net::IpAddr>,
    /// Hop addresses in order, comma-separated; `-` is a silent hop
    #[arg(long, value_name = "LIST", value_parser = value::hop_list)]
    pub hops: Option<HopList>,
    /// Only read probes arriving on this interface, and add window targets to it [default: all; window targets go where the target is]
    #[arg(long, short = 'i', value_name = "IF")]
    pub interface: Option<String>,
    /// Probes per second one source may send before its excess is dropped (0: no limit) [default: 2000]
    #[arg(long, value_name = "N")]
    pub rate: Option<u32>,
    /// Probes one source may send in a burst [default: 1000]
    #[arg(long, value_name = "N")]
    pub burst: Option<u32>,
    /// How probes are read: from a ring of frames shared with the kernel, or from the socket's queue, a batch per system call
    #[arg(long, value_enum, value_name = "MODE", default_value = "ring")]
    pub rx: crate::responder::socket::RxMode,
    /// Under load, let probes gather this many microseconds before reading them, like a network card's interrupt moderation: fewer wake-ups, at most this much added delay; 0 reads each at once
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub coalesce: u32,
    /// How replies leave: straight back to the probe's link-layer sender (batched), or through the routing table
    #[arg(long, value_enum, value_name = "MODE", default_value = "link")]
    pub tx: crate::responder::socket::TxMode,
    /// Also answer PTR queries for the show's addresses on ADDR:PORT (UDP and TCP)
    #[arg(long, value_name = "ADDR:PORT", value_parser = value::listen_addr)]
    pub dns: Option<SocketAddr>,
    /// TTL of the PTR answers, in seconds [default: 60]
    #[arg(long, value_name = "SECONDS", requires = "dns")]
    pub dns_ttl: Option<u32>,
    /// Name of this name server in the zones' SOA and NS records [default: localhost.]
    #[arg(long, value_name = "NAME", requires = "dns")]
    pub dns_nameserver: Option<String>,
    #[command(flatten)]
    pub delays: DelayArgs,
    /// Print the exact address and firewall commands and exit
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProviderArg {
    /// Addresses from the lab range 198.18.0.0/15 (network namespaces)
    Local,
    /// Addresses you already have
    Static,
    /// Additional or reserved IPv4 and the /64 of a Vultr instance (VULTR_API_KEY)
    Vultr,
    /// Elastic IPs on secondary private addresses of an EC2 instance (AWS default credentials)
    Aws,
}

#[derive(Debug, Args)]
pub struct ProvisionArgs {
    /// Where the addresses come from
    #[arg(
        long,
        value_enum,
        value_name = "PROVIDER",
        required_unless_present = "print_user_data"
    )]
    pub provider: Option<ProviderArg>,
    /// The target: ADDR, or PUBLIC=LOCAL behind 1:1 NAT (static; one per family)
    #[arg(long, value_name = "ADDR", value_parser = value::pairs)]
    pub target: Vec<Pairs>,
    /// Hop addresses, in order: ADDR or PUBLIC=LOCAL, repeated or comma-separated (static)
    #[arg(long, value_name = "ADDR", value_parser = value::pairs)]
    pub hop_address: Vec<Pairs>,
    /// Size for (and store) this message instead of the stored one
    #[arg(long, value_name = "TEXT", conflicts_with = "file")]
    pub message: Option<String>,
    /// Size for (and store) the message in this file
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Exactly this many IPv4 hop addresses (local)
    #[arg(long, value_name = "N")]
    pub ipv4: Option<usize>,
    /// Serve IPv6 too: hop addresses from the instance's (or the lab's) /64, free (local, vultr)
    #[arg(long)]
    pub ipv6: bool,
    /// The cloud instance [default: the recorded one, or the instance metadata service when run on it]
    #[arg(
        long,
        alias = "instance-id",
        value_name = "ID",
        env = "TROLL_INSTANCE",
        hide_env_values = true
    )]
    pub instance: Option<String>,
    /// Find the Vultr instance by its main IPv4 (runs off the instance)
    #[arg(long, value_name = "ADDR", conflicts_with = "instance")]
    pub host: Option<std::net::Ipv4Addr>,
    /// Never change the instance itself: stop with the command instead of turning its IPv6 on (vultr)
    #[arg(long)]
    pub no_modify_instance: bool,
    /// Restart the instance through the API after adding IPv4, and wait until it runs (vultr)
    #[arg(long)]
    pub reboot: bool,
    /// Reserved IPs (labelled "troll-DEPLOYMENT on INSTANCE", attached to it) instead of additional IPv4 (vultr)
    #[arg(long)]
    pub reserved: bool,
    /// The domain the host names live under; you publish their A records (aws)
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// The Route 53 hosted zone of --domain: troll writes the A records there itself and removes them at teardown (aws)
    #[arg(long, value_name = "ZONE_ID")]
    pub route53_zone: Option<String>,
    /// The AWS region [default: the SDK's chain, or the instance metadata service]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Print the create calls in order and the monthly cost; make only read calls, change nothing (vultr, aws)
    #[arg(long)]
    pub dry_run: bool,
    /// Print cloud-init user data that makes a fresh instance serve this deployment; changes nothing
    #[arg(long)]
    pub print_user_data: bool,
    /// Where the instance downloads the troll binary (with --print-user-data)
    #[arg(long, value_name = "URL", requires = "print_user_data")]
    pub binary_url: Option<String>,
    /// The binary's SHA-256 [default: this binary's]
    #[arg(long, value_name = "HEX", requires = "print_user_data")]
    pub binary_sha256: Option<String>,
    /// The instance's service also answers PTR queries here (`troll serve --dns`)
    #[arg(
        long,
        value_name = "ADDR:PORT",
        requires = "print_user_data",
        value_parser = value::listen_addr
    )]
    pub service_dns: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ZoneFormat {
    /// RFC 1035 master file, as BIND, NSD and Knot read it
    Bind,
}

#[derive(Debug, Args)]
pub struct ZoneArgs {
    /// Zone file format
    #[arg(long, value_enum, default_value = "bind")]
    pub format: ZoneFormat,
    /// Write one file per zone into this directory instead of printing
    #[arg(long, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// TTL of the records, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    pub ttl: u32,
    /// The name server the parent zone delegates to (SOA MNAME and NS)
    #[arg(long, value_name = "NAME")]
    pub nameserver: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The message [default: a built-in one]; `-` reads standard input
    #[arg(value_name = "MESSAGE")]
    pub message: Option<String>,
    /// The traceroute client to run in the client namespace
    #[arg(long, value_enum, default_value = "traceroute")]
    pub client: crate::commands::demo::Client,
    /// Leave the lab running and print the commands to try it and tear it down
    #[arg(long)]
    pub keep: bool,
    /// Serve the show over IPv6 too (hops from 2001:db8:18::/64) and trace the IPv6 target
    #[arg(long)]
    pub ipv6: bool,
    /// Over the internet lab: 3 routers, a cloud's 1:1 NAT, a provider edge and Unbound; then `troll check`
    #[arg(long)]
    pub internet: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Ask this DNS server (ADDR or ADDR:PORT) instead of the system resolver
    #[arg(long, value_name = "ADDR", value_parser = value::resolver)]
    pub resolver: Option<SocketAddr>,
    /// Do not look names up
    #[arg(long, conflicts_with = "resolver")]
    pub no_resolve: bool,
    /// Print the status as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckProtocol {
    /// UDP to closed ports (no root; IP_RECVERR)
    Udp,
    /// ICMP echo (ping sockets, or raw as root)
    Icmp,
    /// TCP SYN (raw sockets: root)
    Tcp,
    /// Every protocol
    All,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The server: a name or an address
    #[arg(value_name = "HOST")]
    pub host: String,
    /// Use the IPv4 address of HOST
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Use the IPv6 address of HOST
    #[arg(short = '6')]
    pub ipv6: bool,
    /// The expected message [default: the deployment's]
    #[arg(long, value_name = "TEXT", conflicts_with = "file")]
    pub message: Option<String>,
    /// Read the expected message from a file
    #[arg(long, short = 'f', value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// The message was set with --wrap
    #[arg(long)]
    pub wrap: bool,
    /// The message was set with --keep-target-name
    #[arg(long)]
    pub keep_target_name: bool,
    /// Protocols to probe with [default: every one these privileges allow]
    #[arg(long, value_enum, value_name = "PROTO")]
    pub protocol: Option<CheckProtocol>,
    /// Highest TTL to probe
    #[arg(long, short = 'm', value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u8).range(1..))]
    pub max_hops: u8,
    /// TTLs probed at once
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub parallel: usize,
    /// Seconds to wait for the answers of each batch of TTLs
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub wait: f64,
    /// First UDP destination port (one port per TTL, as traceroute)
    #[arg(long, value_name = "PORT", default_value_t = 33434)]
    pub port: u16,
    /// TCP destination port
    #[arg(long, value_name = "PORT", default_value_t = 80)]
    pub tcp_port: u16,
    /// Also look names up at this DNS server (ADDR or ADDR:PORT)
    #[arg(long, value_name = "ADDR", value_parser = value::resolver)]
    pub resolver: Option<SocketAddr>,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InstallServiceArgs {
    /// Print the unit instead of installing it
    #[arg(long)]
    pub dry_run: bool,
    /// Serve PTR queries too (passed to `troll serve --dns`)
    #[arg(long, value_name = "ADDR:PORT", value_parser = value::listen_addr)]
    pub dns: Option<SocketAddr>,
    /// Passed to `troll serve --interface`
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
    /// The troll binary the unit runs [default: this one]
    #[arg(long, value_name = "PATH")]
    pub exe: Option<PathBuf>,
    /// Where to write the unit
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    pub unit_dir: PathBuf,
}

const DEPLOY_HELP: &str = "\
Install a provisioned deployment on its server over SSH and start serving it.

Run it on your own machine after `troll provision` and `troll set-message`.
It uses the system's OpenSSH client with your SSH config, keys and agent
(SSH_DEST is anything `ssh` accepts: user@host, or a Host from ~/.ssh/config;
the login must be root or may sudo without a password). It checks the
server's architecture, glibc, privileges and free space first, copies the
troll binary to /usr/local/bin/troll (this one, or --binary: the release
binary runs on glibc 2.17 and later), hands the server the deployment's
addresses as a static deployment and its message (no API key leaves this
machine), installs and starts the systemd unit troll-NAME (or, where the
server has no systemd, supervises troll serve itself), and waits until the
responder is up. Running it again updates the server in place: a new
message is set live, and only a new binary, new addresses or new flags
restart the service. `troll teardown` removes it from the server first.

Example:
  troll deploy root@203.0.113.10
  troll deploy admin@myserver --binary troll-0.1.0-x86_64-linux/troll";

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The server, as ssh takes it: [user@]host or a Host of your ssh config
    #[arg(value_name = "SSH_DEST")]
    pub ssh_dest: String,
    /// The troll binary to install [default: this one, when the server's glibc can run it]
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// Run troll serve under troll's own supervision instead of systemd (chosen by itself where the server has no systemd)
    #[arg(long)]
    pub no_systemd: bool,
    /// Extra ssh option, as `ssh -o OPTION` (repeatable), e.g. Port=2222
    #[arg(long = "ssh-option", short = 'o', value_name = "OPTION")]
    pub ssh_option: Vec<String>,
    /// Seconds ssh waits for the connection
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    pub connect_timeout: u64,
    /// Seconds to wait for the responder to come up on the server
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub timeout: u64,
    /// Serve PTR queries on the server too (passed to `troll serve --dns`)
    #[arg(long, value_name = "ADDR:PORT", value_parser = value::listen_addr)]
    pub dns: Option<SocketAddr>,
    /// Passed to `troll serve --interface` on the server
    #[arg(long, value_name = "IF")]
    pub interface: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

/// Settings every command needs, after flags, environment and config file
/// have been merged.
#[derive(Debug)]
pub struct Context {
    pub deployment: String,
    pub store: Store,
    pub config: Config,
}

impl Context {
    pub fn new(global: &GlobalArgs) -> Result<Context> {
        let (config, _) = Config::load(global.config.as_deref())?;
        let deployment = global
            .deployment
            .clone()
            .or_else(|| config.deployment.clone())
            .unwrap_or_else(|| "default".to_string());
        let dir = global
            .state_dir
            .clone()
            .or_else(|| config.state_dir.clone())
            .unwrap_or_else(Store::default_dir);
        Ok(Context {
            deployment,
            store: Store::new(dir),
            config,
        })
    }
}

/// A message read and encoded, with the options that shaped it.
#[derive(Debug, Clone)]
pub struct MessageInput {
    pub text: String,
    pub encoded: Encoded,
    pub options: MessageOptions,
    /// `--window-footer` encoded as a host name.
    pub window_footer: Option<String>,
}

impl MessageArgs {
    /// Whether a message was given at all (else commands may fall back to
    /// the deployment's stored one).
    pub fn given(&self) -> bool {
        self.message.is_some() || self.file.is_some()
    }

    /// Reads the message text from the argument, the file or stdin.
    pub fn read_text(&self) -> Result<String> {
        if let Some(path) = &self.file {
            return std::fs::read_to_string(path).map_err(|source| Error::ReadMessage {
                path: path.display().to_string(),
                source,
            });
        }
        match self.message.as_deref() {
            Some("-") => read_message_stdin(),
            Some(text) => Ok(text.to_string()),
            None => Err(Error::Usage(
                "no message given; pass it as an argument, with --file PATH, or `-` for standard input"
                    .into(),
            )),
        }
    }

    /// The options, with the config file filling what flags leave unset.
    pub fn options(&self, config: &Config) -> (MessageOptions, bool) {
        let m = &config.message;
        let options = MessageOptions {
            wrap: self.wrap || m.wrap.unwrap_or(false),
            keep_target_name: self.keep_target_name || m.keep_target_name.unwrap_or(false),
            window: self.window,
            window_footer: self.window_footer.clone(),
        };
        (options, self.strict || m.strict.unwrap_or(false))
    }

    /// Reads and encodes the message.
    pub fn read(&self, config: &Config) -> Result<MessageInput> {
        let text = self.read_text()?;
        let (options, strict) = self.options(config);
        encode_text(text, options, strict)
    }
}

/// Encodes message text with stored or given options.
pub fn encode_text(text: String, options: MessageOptions, strict: bool) -> Result<MessageInput> {
    let encoded = message::encode(&text, Options { wrap: options.wrap })?;
    let encoded = if strict { encoded.strict()? } else { encoded };
    let window_footer = options
        .window_footer
        .as_deref()
        .map(|text| encode_footer(text, strict))
        .transpose()?;
    Ok(MessageInput {
        text,
        encoded,
        options,
        window_footer,
    })
}

/// Encodes `--window-footer TEXT` as one host name, as a message line is.
fn encode_footer(text: &str, strict: bool) -> Result<String> {
    let usage = |why: &str| {
        Error::Usage(format!(
            "--window-footer {text:?} {why}; give one line of text, e.g. --window-footer \"more at the next address\""
        ))
    };
    let encoded =
        message::encode(text, Options { wrap: false }).map_err(|e| usage(&e.to_string()))?;
    let encoded = if strict { encoded.strict()? } else { encoded };
    match encoded.lines.as_slice() {
        [message::Line::Named { name }] => Ok(name.clone()),
        [message::Line::Silent] => Err(usage("is blank")),
        _ => Err(usage("has more than one line")),
    }
}

/// Reads a message given as `-` from standard input (set-message,
/// provision, preview, demo).
pub fn read_message_stdin() -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|source| Error::ReadMessage {
            path: "standard input".into(),
            source,
        })?;
    Ok(text)
}
