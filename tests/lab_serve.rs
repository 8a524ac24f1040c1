//! `troll serve` in a two-namespace lab, proven with real traceroute
//! clients: every client lists the hops in order with their names (served
//! by `troll serve --dns`) and addresses, shows the silent hop as silent,
//! reaches the target, and gets an answer to every probe, in 5 consecutive
//! runs. Also: the host keeps working (its other address, real services on
//! the target) and every rule and sysctl is restored afterwards.

mod util;

use util::lab::{
    check_mtr, check_trace, check_tracepath, parse_traceroute, runs_in_a_row, sh, sh_ok, Lab,
    AS_NOBODY, HOPS, MTR_REPORT, NAMED4, NAMED_TARGET, NUMERIC4, RUNS, SERVER_ADDR, TARGET,
    WAIT_MAX,
};

fn lab_serving_flags() -> (Lab, usize) {
    let mut lab = Lab::new();
    let serve = lab.serve(&["--target", TARGET, "--hops", HOPS]);
    (lab, serve)
}

/// `program FLAGS -w 3 -m 10 TARGET` against the usual show, `RUNS` times.
fn runs(program: &str, flags: &[&str]) {
    let lab = Lab::serving_names(false);
    let args = [flags, &WAIT_MAX, &[TARGET]].concat();
    runs_in_a_row(&lab, program, &args, |out| {
        check_trace(out, &NAMED4, &NAMED_TARGET, 3)
    });
}

fn mtr_runs(extra: &[&str]) {
    let lab = Lab::serving_names(false);
    let args = [&MTR_REPORT[..], extra, &[TARGET]].concat();
    runs_in_a_row(&lab, "mtr", &args, |out| {
        check_mtr(out, &NAMED4, &NAMED_TARGET)
    });
}

crate::named_tests! {
    mtr_icmp: mtr_runs(&[]);
    mtr_udp: mtr_runs(&["-u"]);
    mtr_tcp: mtr_runs(&["-T"]);
    traceroute_udp: runs("traceroute", &[]);
    traceroute_icmp: runs("traceroute", &["-I"]);
    traceroute_tcp: runs("traceroute", &["-T"]);
    inetutils_traceroute_udp: runs("inetutils-traceroute", &["--resolve-hostnames"]);
    inetutils_traceroute_icmp: runs("inetutils-traceroute", &["--resolve-hostnames", "-I"]);
    tcptraceroute: runs("tcptraceroute", &[]);
}

#[test]
fn tracepath() {
    let lab = Lab::serving_names(false);
    runs_in_a_row(&lab, "tracepath", &["-b", "-m", "10", TARGET], |out| {
        check_tracepath(out, &NAMED4, &NAMED_TARGET)
    });
}

#[test]
fn numeric_show_from_flags() {
    let (lab, _) = lab_serving_flags();
    for _ in 0..RUNS {
        let out = lab.client_run("traceroute", &["-n", "-w", "3", "-m", "10", TARGET]);
        check_trace(&out, &NUMERIC4, &[TARGET], 3);
    }
}

/// The other two ways in and out: probes read from the socket's queue
/// (`--rx queue`) instead of the ring, replies through the routing table
/// and OUTPUT (`--tx routed`) instead of straight back over the link, no
/// moderation: the same trace, UDP and ICMP.
#[test]
fn routed_replies_show_the_same_trace() {
    let mut lab = Lab::new();
    lab.serve(&[
        "--target",
        TARGET,
        "--hops",
        HOPS,
        "--rx",
        "queue",
        "--tx",
        "routed",
        "--coalesce",
        "0",
    ]);
    for args in [
        ["-n", "-w", "3", "-m", "10", TARGET].as_slice(),
        &["-n", "-I", "-w", "3", "-m", "10", TARGET],
    ] {
        for _ in 0..RUNS {
            let out = lab.client_run("traceroute", args);
            check_trace(&out, &NUMERIC4, &[TARGET], 3);
        }
    }
}

/// Probes too long for a ring frame (1400 bytes, UDP and ICMP) reach the
/// responder whole through the socket queue and get the same answers.
#[test]
fn long_probes_get_the_same_trace() {
    let (lab, _) = lab_serving_flags();
    for args in [
        ["-n", "-w", "3", "-m", "10", TARGET, "1400"].as_slice(),
        &["-n", "-I", "-w", "3", "-m", "10", TARGET, "1400"],
    ] {
        for _ in 0..RUNS {
            let out = lab.client_run("traceroute", args);
            check_trace(&out, &NUMERIC4, &[TARGET], 3);
        }
    }
}

/// The interface serve reads on goes down and comes back: serve keeps
/// running, says so, and answers again (ring and queue paths).
#[test]
fn an_interface_flap_does_not_stop_serving() {
    for rx in ["ring", "queue"] {
        let mut lab = Lab::new();
        let serve = lab.serve(&[
            "--target",
            TARGET,
            "--hops",
            HOPS,
            "--interface",
            "eth0",
            "--rx",
            rx,
        ]);
        let ip = |args: &[&str]| sh_ok(lab.exec(&lab.server, "ip").args(args));
        ip(&["link", "set", "eth0", "down"]);
        std::thread::sleep(std::time::Duration::from_millis(500));
        ip(&["link", "set", "eth0", "up"]);
        // Going down took the server's default route with it.
        let via = troll::lab::CLIENT_ADDR.to_string();
        ip(&["route", "replace", "default", "via", &via]);
        let out = lab.client_run("traceroute", &["-n", "-w", "3", "-m", "10", TARGET]);
        check_trace(&out, &NUMERIC4, &[TARGET], 3);
        let log = lab.serve_log(serve);
        assert!(log.contains("the interface went down"), "--rx {rx}:\n{log}");
        assert!(
            lab.stop(serve, libc::SIGTERM).success(),
            "--rx {rx}:\n{}",
            lab.serve_log(serve)
        );
    }
}

/// The server tracing its own target: probes and replies over loopback.
#[test]
fn the_server_traces_its_own_target() {
    let (lab, _) = lab_serving_flags();
    for args in [
        ["-n", "-w", "3", "-m", "10", TARGET].as_slice(),
        &["-n", "-I", "-w", "3", "-m", "10", TARGET],
    ] {
        let out = sh(std::process::Command::new("timeout")
            .args(["60", "ip", "netns", "exec", &lab.server, "traceroute"])
            .args(args));
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        check_trace(&out, &NUMERIC4, &[TARGET], 3);
    }
}

#[test]
fn back_to_back_traceroutes_see_the_target_on_every_probe() {
    let (lab, _) = lab_serving_flags();
    // The kernel would allow 6 port unreachables, then 1/s: the second run
    // would show `*` at the target if the kernel answered the final hop.
    for _ in 0..3 {
        let out = lab.client_run(
            "traceroute",
            &["-n", "-w", "3", "-q", "5", "-m", "10", TARGET],
        );
        let last = parse_traceroute(&out).pop().unwrap();
        assert_eq!(
            (last.words.clone(), last.answered),
            (vec![TARGET.to_string()], 5),
            "{out}"
        );
    }
}

#[test]
fn the_host_keeps_working_while_serving() {
    let mut lab = Lab::new();
    // A UDP and a TCP echo service on the target.
    let service = format!(
        r#"
import socket, threading
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("{TARGET}", 7000))
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); t.bind(("{TARGET}", 7001)); t.listen()
def udp():
    while True:
        d, a = u.recvfrom(2048); u.sendto(d, a)
threading.Thread(target=udp, daemon=True).start()
while True:
    c, _ = t.accept(); c.sendall(c.recv(2048)); c.close()
"#
    );
    lab.spawn(&lab.server.clone(), "python3", &["-c", &service]);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before_rules = lab.iptables_snapshot();
    let before_sysctl = lab.sysctl_snapshot();
    let serve = lab.serve(&["--target", TARGET, "--hops", HOPS]);
    // Once set up, serve keeps only CAP_NET_ADMIN and CAP_NET_RAW.
    assert_threads_reduced(lab.pid(serve));
    assert!(lab
        .serve_log(serve)
        .contains("dropped privileges: keeping only CAP_NET_ADMIN and CAP_NET_RAW"));

    let client = format!(
        r#"
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(3); u.connect(("{TARGET}", 7000))
for i in range(20):
    u.send(b"ping%d" % i); assert u.recv(100) == b"ping%d" % i
t = socket.create_connection(("{TARGET}", 7001), timeout=3); t.sendall(b"hello"); assert t.recv(100) == b"hello"
try:
    socket.create_connection(("{TARGET}", 7002), timeout=3); sys.exit("closed port accepted")
except ConnectionRefusedError:
    pass
print("services ok")
"#
    );
    let out = lab.client_run("python3", &["-c", &client]);
    assert!(out.contains("services ok"), "{out}");
    let server = SERVER_ADDR.to_string();
    let ping = lab.client_run("ping", &["-c", "5", "-i", "0.2", "-W", "1", &server]);
    assert!(ping.contains("5 received"), "{ping}");
    let ping_target = lab.client_run("ping", &["-c", "3", "-i", "0.2", "-W", "1", TARGET]);
    assert!(ping_target.contains("3 received"), "{ping_target}");

    let status = lab.stop(serve, libc::SIGTERM);
    assert!(status.success(), "{}", lab.serve_log(serve));
    assert_eq!(lab.iptables_snapshot(), before_rules);
    assert_eq!(lab.sysctl_snapshot(), before_sysctl);
    let log = lab.serve_log(serve);
    assert!(log.contains("stopping; counters: received="), "{log}");
}

/// CAP_NET_ADMIN and CAP_NET_RAW, as /proc shows a capability set.
const NET_CAPS: u64 = 0x3000;

/// Checks every thread of process `pid` (capset and the bounding set are per
/// thread, so the process's own status line is not enough): effective,
/// permitted and bounding sets are exactly CAP_NET_ADMIN and CAP_NET_RAW,
/// inheritable and ambient hold nothing else. Returns the thread names.
fn assert_threads_reduced(pid: u32) -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in\n{status}"))
                .trim()
                .to_owned()
        };
        let thread = field("Name:");
        for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
            let value = u64::from_str_radix(&field(set), 16).unwrap();
            assert_eq!(value, NET_CAPS, "thread {thread}: {set} {value:#x}");
        }
        for set in ["CapInh:", "CapAmb:"] {
            let value = u64::from_str_radix(&field(set), 16).unwrap();
            assert_eq!(value & !NET_CAPS, 0, "thread {thread}: {set} {value:#x}");
        }
        names.push(thread);
    }
    names
}

/// Regression: the DNS thread, which parses untrusted packets, started
/// before the drop and kept every capability (CapEff 000001fffeffffff).
#[test]
fn every_thread_keeps_only_net_caps_with_dns_and_after_a_reload() {
    let mut lab = Lab::serving_names(false);
    let serve = 0;
    let pid = lab.pid(serve);
    let threads = assert_threads_reduced(pid);
    assert!(
        threads.iter().any(|t| t == "troll-dns"),
        "the DNS server runs in its own thread: {threads:?}"
    );
    let out = lab.client_run(
        "dig",
        &[
            "+norecurse",
            "+tries=1",
            "+time=3",
            &format!("@{SERVER_ADDR}"),
            "+short",
            "-x",
            "198.18.0.2",
        ],
    );
    assert_eq!(
        out.trim(),
        "hop.two.",
        "the DNS server answers after the drop"
    );

    lab.set_message_live(serve, "Fresh.Start\nSecond");
    let after = assert_threads_reduced(pid);
    assert_eq!(
        after, threads,
        "a reload starts no thread and keeps the set"
    );
    let status = lab.stop(serve, libc::SIGTERM);
    assert!(status.success(), "{}", lab.serve_log(serve));
}

/// Without `--dns` serve is one thread, reduced too.
#[test]
fn serve_without_dns_is_one_reduced_thread() {
    let (lab, serve) = lab_serving_flags();
    let threads = assert_threads_reduced(lab.pid(serve));
    assert_eq!(threads.len(), 1, "{threads:?}");
}

/// teardown signals the running serve through a pidfd, after checking it
/// is this deployment's serve, and waits for it to restore the rules.
#[test]
fn teardown_stops_a_running_serve() {
    let mut lab = Lab::new();
    let before_rules = lab.iptables_snapshot();
    let serve = lab.serve(&["--target", TARGET, "--hops", HOPS]);
    let pid = lab.pid(serve);
    let out = sh_ok(lab.troll().arg("teardown"));
    assert!(
        out.contains(&format!(
            "troll serve (pid {pid}) stopped and its rules removed"
        )),
        "{out}"
    );
    let status = lab.stop(serve, 0);
    assert!(status.success(), "{}", lab.serve_log(serve));
    assert_eq!(lab.iptables_snapshot(), before_rules);
}

#[test]
fn sigkill_then_teardown_restores_everything() {
    let mut lab = Lab::new();
    let before_rules = lab.iptables_snapshot();
    let before_sysctl = lab.sysctl_snapshot();
    let serve = lab.serve(&["--target", TARGET, "--hops", HOPS]);
    assert!(lab.iptables_snapshot().contains("TROLL-I-default"));
    lab.stop(serve, libc::SIGKILL);
    assert!(
        lab.iptables_snapshot().contains("TROLL-I-default"),
        "SIGKILL leaves the rules"
    );
    let out = sh_ok(lab.troll().arg("teardown"));
    assert!(
        out.contains("2 leftover firewall chain(s) removed"),
        "{out}"
    );
    assert_eq!(lab.iptables_snapshot(), before_rules);
    assert_eq!(lab.sysctl_snapshot(), before_sysctl);
}

#[test]
fn sigkill_then_serve_cleans_up_and_two_serves_never_double_rules() {
    let mut lab = Lab::new();
    let first = lab.serve(&["--target", TARGET, "--hops", HOPS]);
    let rules = lab.iptables_snapshot();
    lab.stop(first, libc::SIGKILL);
    let second = lab.serve(&["--target", TARGET, "--hops", HOPS]);
    assert_eq!(
        lab.iptables_snapshot(),
        rules,
        "the restart re-applies the same rules, once"
    );
    // A second serve of the same deployment is refused, changing nothing.
    let out = sh(lab
        .troll()
        .args(["serve", "--target", TARGET, "--hops", HOPS]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already being served"));
    assert_eq!(lab.iptables_snapshot(), rules);
    let out = lab.client_run("traceroute", &["-n", "-w", "3", "-m", "10", TARGET]);
    check_trace(&out, &NUMERIC4, &[TARGET], 3);
    lab.stop(second, libc::SIGTERM);
    assert!(!lab.iptables_snapshot().contains("TROLL"));
}

#[test]
fn dry_run_prints_the_rules_and_changes_nothing() {
    let lab = Lab::new();
    let before = lab.iptables_snapshot();
    let out = sh_ok(
        lab.troll()
            .args(["serve", "--dry-run", "--target", TARGET, "--hops", HOPS]),
    );
    assert!(
        out.contains("-d 198.19.0.1/32 -m ttl --ttl-lt 6 -j DROP"),
        "{out}"
    );
    assert_eq!(lab.iptables_snapshot(), before);
}

#[test]
fn serve_without_privilege_changes_nothing() {
    let lab = Lab::new();
    let before = lab.iptables_snapshot();
    // setpriv drops every capability; troll must say so and touch nothing.
    let out = sh(lab
        .exec(&lab.server, "setpriv")
        .args(AS_NOBODY)
        .arg(env!("CARGO_BIN_EXE_troll"))
        .args([
            "--state-dir",
            "/tmp",
            "serve",
            "--target",
            TARGET,
            "--hops",
            HOPS,
        ]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs root, or CAP_NET_RAW and CAP_NET_ADMIN"),
        "{err}"
    );
    assert_eq!(lab.iptables_snapshot(), before);
}
