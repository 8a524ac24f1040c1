//! Every told client over the internet lab: three real routers with PTR
//! names, a cloud's stateless 1:1 NAT (both variants), a provider edge that
//! drops wrong-source packets, and Unbound as the clients' resolver asking
//! troll's own DNS server. A `static` deployment of PUBLIC=LOCAL pairs
//! serves on the server behind the NAT. Each client, 5 runs in a row from
//! the far client (3 routers) and one from the near client (1 router),
//! IPv4 through each NAT variant and IPv6 (no NAT, as on AWS). Afterwards
//! the edge has dropped none of troll's replies.

mod util;

use util::internet::{local, public, public6, real_hops, NatMode, Net};
use util::lab::{check_mtr, check_trace, check_tracepath, Expected};

/// Mixed case on purpose: clients must show it as written.
const MESSAGE: &str = "Hop-One\nhop.two\n\nHOP_three\nTarget.Name";
const RUNS: usize = 5;

/// The words each line of a trace from `role` must show: real hops, the
/// show, and the target.
fn expected(role: &str, v6: bool) -> (Vec<Option<Vec<String>>>, Vec<String>) {
    let addr = |n: u8| {
        if v6 {
            public6(n).to_string()
        } else {
            public(n).to_string()
        }
    };
    let mut hops: Vec<Option<Vec<String>>> = real_hops(role, v6)
        .into_iter()
        .map(|w| Some(w.to_vec()))
        .collect();
    hops.push(Some(vec!["Hop-One".into(), addr(1)]));
    hops.push(Some(vec!["hop.two".into(), addr(2)]));
    hops.push(None);
    hops.push(Some(vec!["HOP_three".into(), addr(3)]));
    (hops, vec!["Target.Name".into(), addr(0)])
}

#[derive(Clone, Copy)]
enum Kind {
    Trace,
    Mtr,
    Tracepath,
}

fn check(kind: Kind, out: &str, role: &str, v6: bool) {
    let (hops, target) = expected(role, v6);
    let words: Vec<Option<Vec<&str>>> = hops
        .iter()
        .map(|h| h.as_ref().map(|w| w.iter().map(String::as_str).collect()))
        .collect();
    let hops: Vec<Expected> = words.iter().map(|h| h.as_deref()).collect();
    let target: Vec<&str> = target.iter().map(String::as_str).collect();
    match kind {
        Kind::Trace => check_trace(out, &hops, &target, 3),
        Kind::Mtr => check_mtr(out, &hops, &target),
        Kind::Tracepath => check_tracepath(out, &hops, &target),
    }
}

/// Runs `program flags TARGET` over the NAT that translates quotes: RUNS
/// times from the far client, once from the near one, and (when `v6_flag`
/// is given) from both over IPv6; then reads the edge's counters.
fn runs(kind: Kind, program: &str, flags: &[&str], v6_flag: Option<&str>) {
    runs_over(NatMode::Full, kind, program, flags, v6_flag);
}

fn runs_over(mode: NatMode, kind: Kind, program: &str, flags: &[&str], v6_flag: Option<&str>) {
    {
        let mut net = Net::new(mode);
        net.provision(MESSAGE, 3);
        net.serve();
        let mut cases = vec![("far", false); RUNS];
        cases.push(("near", false));
        if v6_flag.is_some() && mode == NatMode::Full {
            cases.push(("far", true));
            cases.push(("near", true));
        }
        for (run, (role, v6)) in cases.into_iter().enumerate() {
            let mut args = flags.to_vec();
            let target = if v6 {
                public6(0).to_string()
            } else {
                public(0).to_string()
            };
            if v6 {
                args.extend(v6_flag);
            }
            args.push(&target);
            let out = net.client_run(role, program, &args);
            println!("{mode:?} run {run} from {role}: {program} {args:?}\n{out}");
            check(kind, &out, role, v6);
        }
        let counters = net.lab.edge_counters().unwrap();
        println!("edge: {counters:?}");
        assert_eq!(
            (counters.dropped4, counters.dropped6),
            (0, 0),
            "{counters:?}"
        );
        assert!(counters.passed4 > 0, "{counters:?}");
    }
}

#[test]
fn traceroute_udp() {
    runs(
        Kind::Trace,
        "traceroute",
        &["-w", "3", "-m", "12"],
        Some("-6"),
    );
}

#[test]
fn traceroute_icmp() {
    runs(
        Kind::Trace,
        "traceroute",
        &["-I", "-w", "3", "-m", "12"],
        Some("-6"),
    );
}

#[test]
fn traceroute_tcp() {
    runs(
        Kind::Trace,
        "traceroute",
        &["-T", "-w", "3", "-m", "12"],
        Some("-6"),
    );
}

/// inetutils traceroute and tcptraceroute speak IPv4 only.
#[test]
fn inetutils_traceroute() {
    let flags = ["--resolve-hostnames", "-w", "3", "-m", "12"];
    runs(Kind::Trace, "inetutils-traceroute", &flags, None);
    let icmp = ["--resolve-hostnames", "-I", "-w", "3", "-m", "12"];
    runs(Kind::Trace, "inetutils-traceroute", &icmp, None);
}

#[test]
fn tcptraceroute() {
    runs(Kind::Trace, "tcptraceroute", &["-w", "3", "-m", "12"], None);
}

const MTR: [&str; 9] = ["-r", "-w", "-b", "-c", "3", "-i", "0.2", "-m", "12"];

#[test]
fn mtr_icmp() {
    runs(Kind::Mtr, "mtr", &MTR, Some("-6"));
}

#[test]
fn mtr_udp() {
    let flags: Vec<&str> = MTR.iter().copied().chain(["-u"]).collect();
    runs(Kind::Mtr, "mtr", &flags, Some("-6"));
}

#[test]
fn mtr_tcp() {
    let flags: Vec<&str> = MTR.iter().copied().chain(["-T"]).collect();
    runs(Kind::Mtr, "mtr", &flags, Some("-6"));
}

#[test]
fn tracepath() {
    runs(
        Kind::Tracepath,
        "tracepath",
        &["-b", "-m", "12"],
        Some("-6"),
    );
}

/// The edge is real: a packet from an address the server was not given
/// is dropped and counted.
#[test]
fn the_edge_drops_packets_from_unassigned_sources() {
    let net = Net::new(NatMode::Full);
    let server = net.ns("server");
    util::lab::sh_ok(troll::lab::exec(&server, "ip").args([
        "addr",
        "add",
        "10.20.0.250/32",
        "dev",
        "eth0",
    ]));
    let before = net.lab.edge_counters().unwrap();
    let out = util::lab::sh(troll::lab::exec(&server, "ping").args([
        "-c",
        "2",
        "-W",
        "1",
        "-I",
        "10.20.0.250",
        "100.65.1.2",
    ]));
    assert!(!out.status.success(), "a spoofed ping got through");
    let after = net.lab.edge_counters().unwrap();
    assert!(
        after.dropped4 >= before.dropped4 + 2,
        "{before:?} {after:?}"
    );
    // The server's own address passes.
    util::lab::sh_ok(troll::lab::exec(&server, "ping").args(["-c", "1", "-W", "2", "100.65.1.2"]));
}

/// The NAT that translates only the outer header, as a plain 1:1 NAT
/// does. Its ICMP errors reach the client quoting whatever the server put
/// in them, and clients match that quote to their socket (the kernel for
/// traceroute UDP, `-I`, `-T` and tracepath; mtr itself), so the quote
/// must hold the address the client sent to. The responder writes every
/// error of its own (the hops' Time Exceeded, the target's and the hop
/// addresses' port unreachable) quoting the probe with its public
/// destination and the quoted checksums adjusted, the probe byte for byte
/// as sent; the NAT that translates quotes then finds nothing to change.
/// The kernel's own answers past the hops carry no quote for these clients
/// (echo replies, TCP RST/SYN-ACK, whose outer header the NAT maps); its
/// ICMP errors (UDP-Lite, unknown protocols) quote the private address, as
/// any server's behind such a NAT do.
#[test]
fn every_client_over_an_outer_only_nat() {
    let outer = NatMode::OuterOnly;
    let udp = ["-w", "3", "-m", "12"];
    runs_over(outer, Kind::Trace, "traceroute", &udp, None);
    let icmp = ["-I", "-w", "3", "-m", "12"];
    runs_over(outer, Kind::Trace, "traceroute", &icmp, None);
    let tcp = ["-T", "-w", "3", "-m", "12"];
    runs_over(outer, Kind::Trace, "traceroute", &tcp, None);
    let inet = ["--resolve-hostnames", "-w", "3", "-m", "12"];
    runs_over(outer, Kind::Trace, "inetutils-traceroute", &inet, None);
    let inet_icmp = ["--resolve-hostnames", "-I", "-w", "3", "-m", "12"];
    runs_over(outer, Kind::Trace, "inetutils-traceroute", &inet_icmp, None);
    runs_over(outer, Kind::Trace, "tcptraceroute", &udp, None);
    runs_over(outer, Kind::Mtr, "mtr", &MTR, None);
    let mtr_udp: Vec<&str> = MTR.iter().copied().chain(["-u"]).collect();
    runs_over(outer, Kind::Mtr, "mtr", &mtr_udp, None);
    let mtr_tcp: Vec<&str> = MTR.iter().copied().chain(["-T"]).collect();
    runs_over(outer, Kind::Mtr, "mtr", &mtr_tcp, None);
    let tp = ["-b", "-m", "12"];
    runs_over(outer, Kind::Tracepath, "tracepath", &tp, None);
}

/// `troll demo --internet`: the same topology for a user, a real
/// traceroute and then `troll check`, and nothing left afterwards.
#[test]
fn demo_internet_shows_the_message_and_cleans_up() {
    util::lab::require_root();
    let dir = tempfile::tempdir().unwrap();
    let out = util::lab::sh(
        std::process::Command::new(env!("CARGO_BIN_EXE_troll"))
            .arg("--state-dir")
            .arg(dir.path())
            .args(["demo", "--internet", "Hello\nWorld\nTarget"]),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    assert!(stdout.contains("ae0.r1.isp.test (100.65.1.1)"), "{stdout}");
    assert!(stdout.contains(" 4  Hello (198.51.100.101)"), "{stdout}");
    assert!(stdout.contains(" 6  Target (198.51.100.100)"), "{stdout}");
    for protocol in ["udp", "icmp", "tcp"] {
        assert!(
            stdout.contains(&format!("{protocol}: ok: 3 of 3 lines match")),
            "{stdout}"
        );
    }
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let demo_pid = stdout
        .split("troll-inet-")
        .nth(1)
        .and_then(|rest| rest.split('-').next())
        .expect("the demo names its namespaces");
    assert!(
        !left
            .iter()
            .any(|n| n.starts_with(&format!("troll-inet-{demo_pid}-"))),
        "left behind: {left:?}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count(),
        0
    );
}

/// A failing test leaves nothing: namespaces, /etc overlays, Unbound.
#[test]
fn the_lab_is_removed_also_on_panic() {
    let seen = std::sync::Mutex::new((Vec::new(), String::new()));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let net = Net::new(NatMode::OuterOnly);
        let names: Vec<String> = troll::lab::internet::ROLES
            .iter()
            .map(|r| net.ns(r))
            .collect();
        let conf = net.lab.dir.path().display().to_string();
        *seen.lock().unwrap() = (names, conf);
        panic!("a test fails with the lab up");
    }));
    assert!(result.is_err());
    let (names, conf) = seen.into_inner().unwrap();
    assert_eq!(names.len(), 8);
    for ns in &names {
        assert!(
            !std::path::Path::new("/run/netns").join(ns).exists(),
            "{ns} left"
        );
        assert!(
            !troll::lab::LabNames::etc_dir(ns).exists(),
            "/etc/netns/{ns} left"
        );
    }
    let unbound_left = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .any(|cmdline| String::from_utf8_lossy(&cmdline).contains(&conf));
    assert!(!unbound_left, "unbound still runs");
}

/// Windows (`set-message --window 15`): a 40-line message is 39 hop lines
/// in windows of 14, each window's target named by its footer and the
/// last's by line 40. From the far client (3 routers) a plain
/// `traceroute TARGET`, all defaults (30 hops max), reads each window's
/// lines in order and its footer, so the 40 lines are all read; IPv4
/// through the NAT and IPv6, RUNS times. Then `-I` and `-T` once each to
/// the last window: its final hop is the kernel's, as the main target's.
/// The server holds window 2's target already (the operator added it);
/// serve adds window 3's, v4 and v6, and removes it on SIGTERM, and after
/// a SIGKILL `troll teardown` does; the operator's stays throughout.
#[test]
fn a_long_message_reads_in_full_over_its_windows() {
    let line = |i: u8| format!("Line-{i:02}");
    let text: Vec<String> = (1..=40).map(line).collect();
    let mut net = Net::new(NatMode::Full);
    // 39 hop addresses, then the targets of windows 2 and 3.
    net.provision(MESSAGE, 41);
    let server = net.ns("server");
    let v4 = |n: u8| format!("{}/32", local(n));
    let v6 = |n: u8| format!("{}/128", public6(n));
    for args in [
        vec!["addr", "add", &v4(40), "dev", "eth0"],
        vec!["addr", "add", &v6(40), "dev", "eth0", "nodad"],
    ] {
        util::lab::sh_ok(troll::lab::exec(&server, "ip").args(args));
    }
    // The server's eth0 addresses, one `ip -o addr` line each.
    let eth0 = || -> Vec<String> {
        util::lab::sh_ok(
            troll::lab::exec(&server, "ip").args(["-o", "addr", "show", "dev", "eth0"]),
        )
        .lines()
        .map(str::to_string)
        .collect()
    };
    let holds = |lines: &[String], addr: &str| {
        lines
            .iter()
            .any(|l| l.split_whitespace().any(|w| w == addr))
    };
    // Window 3's target is held (v4 and v6) iff `troll`, the operator's
    // window 2 target always.
    let expect = |troll: bool, when: &str| {
        let now = eth0();
        for addr in [v4(41), v6(41)] {
            assert_eq!(holds(&now, &addr), troll, "{when}: {addr} in {now:#?}");
        }
        for addr in [v4(40), v6(40)] {
            assert!(
                holds(&now, &addr),
                "{when}: the operator's {addr} removed: {now:#?}"
            );
        }
    };
    // `--hop-delay 5` gives the lab's path the latency a real one has
    // (this kernel has no netem). Without it every RTT is under 1 ms, and
    // traceroute's default adaptive wait (`-w 5,3,10`: at most 3 times the
    // RTT of the same hop's earlier reply, plus 1 ms) takes a reply that a
    // busy CI machine delays by one 4 ms time slice for lost: measured,
    // one `*` per run with two busy loops beside the test. troll delays its
    // own final-hop answer (UDP) too, so the trace's times keep growing
    // hop by hop as traceroute's hint expects.
    util::lab::sh_ok(net.troll_in("server").args([
        "set-message",
        "--window",
        "15",
        "--hop-delay",
        "5",
        &text.join("\n"),
    ]));
    net.serve();
    let log = std::fs::read_to_string(net.state_dir.path().join("serve-0.log")).unwrap();
    for addr in [local(41).to_string(), public6(41).to_string()] {
        assert!(log.contains(&format!("added {addr} to eth0")), "{log}");
    }
    assert!(!log.contains("not an address of this host"), "{log}");
    expect(true, "serving");
    let serving = eth0();
    // Troll's IPv4 address carries its label, the operator's does not.
    assert!(
        serving
            .iter()
            .any(|l| l.contains(&v4(41)) && l.contains("eth0:troll")),
        "{serving:#?}"
    );
    assert!(
        !serving
            .iter()
            .any(|l| l.contains(&v4(40)) && l.contains("eth0:troll")),
        "{serving:#?}"
    );
    for v6 in [false, true] {
        let addr = |n: u8| {
            if v6 {
                public6(n).to_string()
            } else {
                public(n).to_string()
            }
        };
        let footer = |n: u8| format!("continued.at.{}", addr(n).replace(['.', ':'], "-"));
        let windows = [
            (0, 1..=14, footer(40)),
            (40, 15..=28, footer(41)),
            (41, 29..=39, line(40)),
        ];
        // (flag, window): every window RUNS times, then the last with -I, -T.
        let mut cases: Vec<(Option<&str>, usize)> = Vec::new();
        for _ in 0..RUNS {
            cases.extend((0..windows.len()).map(|w| (None, w)));
        }
        // The kernel answers ICMP and TCP at the target at once, faster
        // than the delayed hops before it, which traceroute's adaptive wait
        // (10 times a later hop's RTT) would then expire: these two wait
        // the default 5 s per probe, nothing adaptive (`-w 5`, as
        // traceroute's manual advises when response times differ).
        cases.push((Some("-I"), 2));
        cases.push((Some("-T"), 2));
        for (run, (flag, w)) in cases.into_iter().enumerate() {
            let (target, lines, name) = windows[w].clone();
            let target = addr(target);
            let mut args: Vec<&str> = flag.into_iter().collect();
            if flag.is_some() {
                args.extend(["-w", "5"]);
            }
            if v6 {
                args.push("-6");
            }
            args.push(target.as_str());
            let out = net.client_run("far", "traceroute", &args);
            println!("run {run}: traceroute {args:?}\n{out}");
            let mut hops: Vec<Vec<String>> = real_hops("far", v6)
                .into_iter()
                .map(|w| w.to_vec())
                .collect();
            hops.extend(lines.map(|i| vec![line(i), addr(i)]));
            let words: Vec<Vec<&str>> = hops
                .iter()
                .map(|h| h.iter().map(String::as_str).collect())
                .collect();
            let expected: Vec<Expected> = words.iter().map(|w| Some(w.as_slice())).collect();
            check_trace(&out, &expected, &[name.as_str(), target.as_str()], 3);
        }
    }
    // A reload to windows of 30 needs only window 2's target (the
    // operator's): serve removes window 3's; back to 15, it adds it again.
    for (lines, reloads, held) in [("30", 1, false), ("15", 2, true)] {
        util::lab::sh_ok(net.troll_in("server").args([
            "set-message",
            "--window",
            lines,
            &text.join("\n"),
        ]));
        net.wait_for_log(0, "reloaded the show", reloads);
        expect(held, &format!("reloaded to --window {lines}"));
    }
    // SIGTERM: serve removes what it added, and only that.
    net.stop(0);
    expect(false, "after SIGTERM");
    // Adding one fails (IPv6 is off on vx0): serve takes back the IPv4
    // one it added, applies no rule, records nothing, and says why.
    for args in [
        vec!["link", "add", "vx0", "type", "veth", "peer", "name", "vx1"],
        vec!["link", "set", "vx0", "up"],
    ] {
        util::lab::sh_ok(troll::lab::exec(&server, "ip").args(args));
    }
    util::lab::sh_ok(
        troll::lab::exec(&server, "sysctl").args(["-qw", "net.ipv6.conf.vx0.disable_ipv6=1"]),
    );
    let failed = util::lab::sh(net.troll_in("server").args(["serve", "--interface", "vx0"]));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some(format!(
            "troll: cannot change the host's addresses: `ip addr add {} dev vx0 nodad noprefixroute` failed (ipv6: IPv6 is disabled on this device); add the address yourself, or choose the interface with --interface",
            v6(41)
        ).as_str()),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("removed {} from vx0", local(41))),
        "{stderr}"
    );
    let vx0 = util::lab::sh_ok(
        troll::lab::exec(&server, "ip").args(["-o", "addr", "show", "dev", "vx0"]),
    );
    assert!(!vx0.contains(&local(41).to_string()), "{vx0}");
    let saved = util::lab::sh_ok(&mut troll::lab::exec(&server, "iptables-save"));
    assert!(!saved.contains("TROLL-"), "{saved}");
    let state = troll::state::Store::new(net.state_dir.path())
        .load("default")
        .unwrap()
        .unwrap();
    assert!(state.rules.is_empty() && state.assigned.is_empty() && state.serve_pid.is_none());
    // Without --interface they go where the target is; after a SIGKILL
    // they stay until teardown removes them.
    net.serve_args(&[]);
    net.kill(1);
    expect(true, "after SIGKILL");
    let said = util::lab::sh_ok(net.troll_in("server").arg("teardown"));
    assert!(
        said.contains("2 leftover window target address(es) removed"),
        "{said}"
    );
    expect(false, "after teardown");
}
