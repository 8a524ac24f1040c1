//! IPv6 end to end in the lab: hop addresses from a /64 routed to the
//! server and configured on no interface (as an instance's /64 is), names
//! from troll's DNS server (ip6.arpa), real clients over IPv6 in 5
//! consecutive runs, the same message over IPv4 and IPv6 for one host
//! name, `troll demo --ipv6`, and everything restored afterwards.
//!
//! inetutils traceroute and tcptraceroute have no IPv6 mode, so they are
//! covered by the IPv4 tests only.

mod util;

use std::process::Command;
use util::lab::{
    check_mtr, check_trace, check_tracepath, demo_pid, routes, runs_in_a_row, sh_ok,
    troll_with_state, Lab, MESSAGE, MTR_REPORT, NAMED4, NAMED6, SERVER_ADDR, TARGET, TARGET6,
    WAIT_MAX,
};

const TARGET6_NAMED: [&str; 2] = ["Target.Name", TARGET6];

/// `program -6 FLAGS -w 3 -m 10 TARGET6` against the usual show, `RUNS`
/// times.
fn runs(program: &str, flags: &[&str]) {
    let lab = Lab::serving_names(true);
    let args = [&["-6"][..], flags, &WAIT_MAX, &[TARGET6]].concat();
    runs_in_a_row(&lab, program, &args, |out| {
        check_trace(out, &NAMED6, &TARGET6_NAMED, 3)
    });
}

fn mtr_runs(extra: &[&str]) {
    let lab = Lab::serving_names(true);
    let args = [&["-6"][..], &MTR_REPORT, extra, &[TARGET6]].concat();
    runs_in_a_row(&lab, "mtr", &args, |out| {
        check_mtr(out, &NAMED6, &TARGET6_NAMED)
    });
}

crate::named_tests! {
    traceroute6_udp: runs("traceroute", &[]);
    traceroute6_icmp: runs("traceroute", &["-I"]);
    traceroute6_tcp: runs("traceroute", &["-T"]);
    mtr6_icmp: mtr_runs(&[]);
    mtr6_udp: mtr_runs(&["-u"]);
    mtr6_tcp: mtr_runs(&["-T"]);
}

/// Probes longer than a ring frame (1300 bytes, UDP and ICMPv6) come whole
/// through the socket queue and get the same answers.
#[test]
fn traceroute6_long_probes() {
    let lab = Lab::serving_names(true);
    for flags in [
        ["-6", "-w", "3", "-m", "10"].as_slice(),
        &["-6", "-I", "-w", "3", "-m", "10"],
    ] {
        let mut args = flags.to_vec();
        args.extend([TARGET6, "1300"]);
        let out = lab.client_run("traceroute", &args);
        println!("traceroute {args:?}\n{out}");
        check_trace(&out, &NAMED6, &TARGET6_NAMED, 3);
    }
}

#[test]
fn tracepath6() {
    let lab = Lab::serving_names(true);
    let args = ["-6", "-b", "-m", "10", TARGET6];
    runs_in_a_row(&lab, "tracepath", &args, |out| {
        check_tracepath(out, &NAMED6, &TARGET6_NAMED)
    });
}

#[test]
fn one_host_name_shows_the_same_message_over_ipv4_and_ipv6() {
    let lab = Lab::serving_names(true);
    let v4 = lab.client_run("traceroute", &["-4", "-w", "3", "-m", "10", "troll.lab"]);
    check_trace(&v4, &NAMED4, &["Target.Name", TARGET], 3);
    let v6 = lab.client_run("traceroute", &["-6", "-w", "3", "-m", "10", "troll.lab"]);
    check_trace(&v6, &NAMED6, &TARGET6_NAMED, 3);
    let dig = lab.client_run(
        "dig",
        &[
            "+norecurse",
            &format!("@{SERVER_ADDR}"),
            "-x",
            "2001:db8:18::3",
        ],
    );
    let answer = dig
        .lines()
        .find(|l| l.contains("\tPTR") || l.contains("PTR\t"));
    assert!(
        answer.is_some_and(|l| l.ends_with(" HOP_three.") || l.ends_with("\tHOP_three.")),
        "{dig}"
    );
    assert!(dig.contains(" aa"), "{dig}");
}

#[test]
fn the_host_keeps_working_and_everything_is_restored() {
    let mut lab = Lab::new();
    let before = (
        lab.iptables_snapshot(),
        lab.sysctl_snapshot(),
        routes(&lab, &lab.server),
    );
    lab.provision_ipv6(MESSAGE);
    let serve = lab.serve_with_dns();
    assert!(
        lab.iptables_snapshot().contains("--hl-lt 6"),
        "{}",
        lab.iptables_snapshot()
    );
    // The server's own IPv6 address answers ping from the kernel, and the
    // target answers ping past the fake hops.
    let ping = lab.client_run(
        "ping",
        &["-6", "-c", "3", "-i", "0.2", "-W", "1", "2001:db8:19:fe::2"],
    );
    assert!(ping.contains("3 received"), "{ping}");
    let ping = lab.client_run("ping", &["-6", "-c", "3", "-i", "0.2", "-W", "1", TARGET6]);
    assert!(ping.contains("3 received"), "{ping}");
    // A UDP service on the target keeps answering over IPv6.
    let service = format!(
        r#"
import socket
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.bind(("{TARGET6}", 7000))
while True:
    d, a = u.recvfrom(2048); u.sendto(d, a)
"#
    );
    lab.spawn(&lab.server.clone(), "python3", &["-c", &service]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let client = format!(
        r#"
import socket
u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); u.settimeout(3); u.connect(("{TARGET6}", 7000))
for i in range(10):
    u.send(b"ping%d" % i); assert u.recv(100) == b"ping%d" % i
print("udp6 ok")
"#
    );
    let out = lab.client_run("python3", &["-c", &client]);
    assert!(out.contains("udp6 ok"), "{out}");
    let status = lab.stop(serve, libc::SIGTERM);
    assert!(status.success(), "{}", lab.serve_log(serve));
    let after = (
        lab.iptables_snapshot(),
        lab.sysctl_snapshot(),
        routes(&lab, &lab.server),
    );
    assert_eq!(after, before);
}

#[test]
fn demo_ipv6() {
    util::lab::require_root();
    let state = tempfile::tempdir().unwrap();
    let out = troll_with_state(state.path())
        .args(["demo", "--ipv6", "--client", "traceroute"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("traceroute -6 "), "{text}");
    for line in [
        "Douglas.Adams (2001:db8:18::2)",
        "Mostly.Harmless (2001:db8:18::3)",
        "Dont.Panic (2001:db8:19::1)",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    let netns = sh_ok(Command::new("ip").args(["netns", "list"]));
    let pid = demo_pid(&text);
    assert!(!netns.contains(&format!("troll-{pid}-")), "{netns}");
    assert!(
        std::fs::read_dir(state.path()).unwrap().next().is_none(),
        "state left behind"
    );
    let refused = troll_with_state(state.path())
        .args(["demo", "--ipv6", "--client", "tcptraceroute"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("cannot trace over IPv6"));
}
