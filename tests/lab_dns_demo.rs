//! Names end to end: troll's own DNS server seen by `dig` from the client
//! namespace, a new message while serving, zone export, the static
//! provider, and `troll demo` with every client, leaving nothing behind.

mod util;

use std::process::Command;
use util::lab::{
    check_trace, demo_pid, provision_static, sh, sh_ok, troll_with_state, Expected, Lab, AS_NOBODY,
    MESSAGE, NAMED4, NAMED_TARGET, SERVER_ADDR, TARGET, WAIT_MAX,
};

fn dig(lab: &Lab, args: &[&str]) -> String {
    let server = format!("@{SERVER_ADDR}");
    let mut all = vec!["+norecurse", "+tries=1", "+time=3", server.as_str()];
    all.extend_from_slice(args);
    lab.client_run("dig", &all)
}

#[test]
fn dig_sees_an_authoritative_server_with_exact_case() {
    let mut lab = Lab::new();
    lab.provision(MESSAGE);
    lab.serve(&[
        "--interface",
        "eth0",
        "--dns",
        &format!("{SERVER_ADDR}:53"),
        "--dns-ttl",
        "42",
    ]);

    let out = dig(&lab, &["-x", "198.18.0.3"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains(" aa"), "AA flag:\n{out}");
    assert!(
        out.contains("3.0.18.198.in-addr.arpa. 42\tIN\tPTR\tHOP_three."),
        "exact case and TTL:\n{out}"
    );
    let target = dig(&lab, &["-x", TARGET]);
    assert!(target.contains("PTR\tTarget.Name."), "{target}");

    let tcp = dig(&lab, &["+tcp", "-x", "198.18.0.2"]);
    assert!(tcp.contains("PTR\thop.two."), "TCP:\n{tcp}");

    let soa = dig(&lab, &["0.18.198.in-addr.arpa.", "SOA"]);
    assert!(
        soa.contains("status: NOERROR") && soa.contains("\tSOA\t"),
        "{soa}"
    );
    let ns = dig(&lab, &["0.18.198.in-addr.arpa.", "NS"]);
    assert!(ns.contains("\tNS\t"), "{ns}");

    let missing = dig(&lab, &["-x", "198.18.0.77"]);
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    assert!(missing.contains(" aa"), "{missing}");
    let outside = dig(&lab, &["-x", "192.0.2.1"]);
    assert!(outside.contains("status: REFUSED"), "{outside}");
    let forward = dig(&lab, &["example.com", "A"]);
    assert!(forward.contains("status: REFUSED"), "{forward}");

    // status sees what clients see, the rules, and the running responder.
    let out = sh_ok(
        lab.troll()
            .args(["status", "--json", "--resolver", &SERVER_ADDR.to_string()]),
    );
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["responder"]["running"], true, "{out}");
    assert!(status["responder"]["pid"].as_u64().is_some());
    let hops = status["shows"][0]["hops"].as_array().unwrap();
    assert_eq!(hops[3]["hop"]["wanted"], "HOP_three");
    assert_eq!(hops[3]["hop"]["resolved"], "HOP_three", "{out}");
    assert!(hops[2]["hop"].is_null(), "silent hop");
    assert_eq!(status["shows"][0]["target"]["resolved"], "Target.Name");
    assert!(
        status["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["present"] == true),
        "{out}"
    );
    let text = sh_ok(
        lab.troll()
            .args(["status", "--resolver", &SERVER_ADDR.to_string()]),
    );
    assert!(text.contains("198.18.0.3  HOP_three  ok"), "{text}");
}

/// Regression: 40 000 malformed queries made hickory write 5 464 WARN
/// lines. Junk is now counted by kind and summarised at most every 5 s; the
/// counts show in `troll status`, and good queries are answered throughout.
#[test]
fn a_junk_flood_is_counted_not_logged() {
    const JUNK: usize = 8_000;
    let mut lab = Lab::new();
    lab.provision(MESSAGE);
    let serve = lab.serve(&["--interface", "eth0", "--dns", &format!("{SERVER_ADDR}:53")]);
    let log_before = lab.serve_log(serve).lines().count();
    // Seeded junk, only to the lab's server: too short for a header, a
    // query header then garbage, well-formed responses (reflection bait),
    // and random bytes.
    let flood = format!(
        r#"
import random, socket
random.seed(18)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
def junk(n): return bytes(random.getrandbits(8) for _ in range(n))
for i in range({JUNK}):
    kind = i % 4
    if kind == 0: data = junk(random.randint(0, 11))
    elif kind == 1: data = junk(2) + bytes([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]) + junk(random.randint(1, 30))
    elif kind == 2: data = junk(2) + bytes([0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 1, 97, 0, 0, 1, 0, 1])
    else: data = junk(random.randint(12, 200))
    s.sendto(data, ("{SERVER_ADDR}", 53))
print("sent")
"#
    );
    let out = lab.client_run("python3", &["-c", &flood]);
    assert!(out.contains("sent"), "{out}");
    let answer = dig(&lab, &["+short", "-x", "198.18.0.2"]);
    assert_eq!(answer.trim(), "hop.two.", "still answering after the flood");

    // One summary within the interval (5 s) plus slack for a loaded host.
    lab.wait_for_log(
        serve,
        "bad queries in the last 5 s",
        std::time::Duration::from_secs(20),
    );
    let log = lab.serve_log(serve);
    let added = log.lines().count() - log_before;
    assert!(
        added <= 10,
        "{added} log lines for {JUNK} junk queries:\n{log}"
    );
    assert!(!log.contains("WARN"), "{log}");

    let status = sh_ok(lab.troll().args(["status", "--json", "--no-resolve"]));
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let counts = &status["responder"]["dns_bad_queries"];
    let total: u64 = counts
        .as_object()
        .unwrap_or_else(|| panic!("no DNS counts in {status}"))
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    // Datagrams may be lost in a flood, never invented.
    assert!(
        total > 0 && total <= JUNK as u64,
        "{total} counted of {JUNK}: {counts}"
    );
    for kind in ["undecodable", "malformed", "response"] {
        assert!(counts[kind].as_u64().unwrap_or(0) > 0, "{kind}: {counts}");
    }
    let text = sh_ok(lab.troll().args(["status", "--no-resolve"]));
    assert!(text.contains("dns junk    "), "{text}");
}

#[test]
fn set_message_while_serving_changes_names_and_hops_without_a_restart() {
    let mut lab = Lab::new();
    lab.provision(MESSAGE);
    let serve = lab.serve(&[
        "--interface",
        "eth0",
        "--dns",
        &format!("{SERVER_ADDR}:53"),
        "--dns-ttl",
        "0",
    ]);
    let trace = || lab.client_run("traceroute", &[&WAIT_MAX[..], &[TARGET]].concat());
    check_trace(&trace(), &NAMED4, &NAMED_TARGET, 3);

    // Fewer hops, other silent line, new names: same three addresses.
    lab.set_message_live(serve, "Fresh.Start\nSecond\n\nAll.Done");
    let after: [Expected; 3] = [
        Some(&["Fresh.Start", "198.18.0.1"]),
        Some(&["Second", "198.18.0.2"]),
        None,
    ];
    check_trace(&trace(), &after, &["All.Done", TARGET], 3);
    assert!(
        lab.iptables_snapshot().contains("--ttl-lt 4"),
        "rules follow the new hop count"
    );
}

#[test]
fn static_provider_and_zone_export() {
    let mut lab = Lab::new();
    provision_static(
        || lab.troll(),
        "198.18.7.1,198.18.7.2",
        "Static.One\nStatic.Two\nStatic.Target",
    );
    lab.serve_with_dns();
    let out = lab.client_run("traceroute", &["-w", "3", "-m", "10", TARGET]);
    check_trace(
        &out,
        &[
            Some(&["Static.One", "198.18.7.1"]),
            Some(&["Static.Two", "198.18.7.2"]),
        ],
        &["Static.Target", TARGET],
        3,
    );

    let dir = lab.state_dir.path().join("zones");
    sh_ok(
        lab.troll()
            .args(["zone", "--format", "bind", "--output"])
            .arg(&dir),
    );
    for (origin, expect) in [
        ("7.18.198.in-addr.arpa.", "Static.Two."),
        ("0.19.198.in-addr.arpa.", "Static.Target."),
    ] {
        let path = dir.join(format!("{origin}zone"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(expect), "{text}");
        sh_ok(Command::new("named-checkzone").arg(origin).arg(&path));
    }
    // A message longer than the addresses is refused, and the old one stays.
    let out = sh(lab.troll().args(["set-message", "a\nb\nc\nd"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("needs 3 IPv4 hop address(es) but the deployment has 2"));
}

/// What a demo run may leave: namespaces, /etc/netns overlays, processes,
/// state files. All must be gone.
fn leftovers(pid: u32, state_dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let marker = format!("troll-{pid}-");
    let netns = sh_ok(Command::new("ip").args(["netns", "list"]));
    found.extend(
        netns
            .lines()
            .filter(|l| l.contains(&marker))
            .map(|l| format!("namespace {l}")),
    );
    if let Ok(entries) = std::fs::read_dir("/etc/netns") {
        found.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(&marker))
                .map(|n| format!("/etc/netns/{n}")),
        );
    }
    let links = sh_ok(Command::new("ip").args(["-o", "link"]));
    found.extend(
        links
            .lines()
            .filter(|l| l.contains("trollc") || l.contains("trolls"))
            .map(str::to_string),
    );
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&format!("demo-{pid}")) {
                found.push(format!("process {cmdline}"));
            }
        }
    }
    let files: Vec<String> = std::fs::read_dir(state_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    found.extend(files.into_iter().map(|f| format!("state file {f}")));
    found
}

fn demo(client: &str, expect_lines: &[&str]) {
    util::lab::require_root();
    let state = tempfile::tempdir().unwrap();
    let host_rules = sh_ok(&mut Command::new("iptables-save"))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let child = troll_with_state(state.path())
        .args(["demo", "--client", client])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&child.stdout);
    let err = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "{out}\n{err}");
    let mut at = 0;
    for line in expect_lines {
        let found = out[at..]
            .find(line)
            .unwrap_or_else(|| panic!("{line:?} missing or out of order:\n{out}\n{err}"));
        at += found + line.len();
    }
    // The demo's pid is in its namespace names, printed with the command.
    let pid = demo_pid(&out);
    assert_eq!(leftovers(pid, state.path()), Vec::<String>::new());
    let after = sh_ok(&mut Command::new("iptables-save"))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(after, host_rules, "the host's firewall is untouched");
}

const DEMO_NAMES: [&str; 7] = [
    "0------------------------------0",
    "Douglas.Adams",
    "Mostly.Harmless",
    "0------------------------------0",
    "So.Long.And.Thanks",
    "For.All.The.Fish",
    "Dont.Panic",
];

crate::named_tests! {
    demo_traceroute: demo("traceroute", &DEMO_NAMES);
    demo_traceroute_icmp: demo("traceroute-icmp", &DEMO_NAMES);
    demo_traceroute_tcp: demo("traceroute-tcp", &DEMO_NAMES);
    demo_mtr: demo("mtr", &DEMO_NAMES);
    demo_mtr_udp: demo("mtr-udp", &DEMO_NAMES);
    demo_mtr_tcp: demo("mtr-tcp", &DEMO_NAMES);
    demo_tracepath: demo("tracepath", &DEMO_NAMES);
    demo_inetutils: demo("inetutils", &DEMO_NAMES);
    demo_tcptraceroute: demo("tcptraceroute", &DEMO_NAMES);
}

#[test]
fn demo_keep_then_teardown() {
    util::lab::require_root();
    let state = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = troll_with_state(state.path()).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run(&["demo", "--keep", "Kept.Hop\nKept.Target"]);
    assert!(out.contains("Kept.Hop (198.18.0.1)"), "{out}");
    let deployment = out
        .split("deployment '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .unwrap()
        .to_string();
    let pid: u32 = deployment.trim_start_matches("demo-").parse().unwrap();
    assert!(!leftovers(pid, state.path()).is_empty(), "the lab stays");
    // The printed commands work: try mtr by hand, then tear down.
    let client = format!("troll-{pid}-client");
    let mtr = sh_ok(Command::new("ip").args([
        "netns", "exec", &client, "mtr", "-r", "-w", "-c", "1", TARGET,
    ]));
    assert!(
        mtr.contains("Kept.Hop") && mtr.contains("Kept.Target"),
        "{mtr}"
    );
    let down = run(&["--deployment", &deployment, "teardown"]);
    assert!(down.contains("lab namespaces"), "{down}");
    assert_eq!(leftovers(pid, state.path()), Vec::<String>::new());
}

#[test]
fn demo_refusals_are_one_sentence() {
    let state = tempfile::tempdir().unwrap();
    let out = sh(Command::new("setpriv")
        .args(AS_NOBODY)
        .arg(env!("CARGO_BIN_EXE_troll"))
        .arg("--state-dir")
        .arg(state.path())
        .arg("demo"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "troll: troll demo needs root to create network namespaces; run it with sudo\n"
    );
    util::lab::require_root();
    let out = sh(troll_with_state(state.path())
        .env("PATH", "/nonexistent")
        .args(["demo", "--client", "tracepath"]));
    // A missing tool is not bad input: exit 1, not 2.
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "troll: tracepath is not installed; install the Debian package iputils-tracepath (apt-get install iputils-tracepath)\n"
    );
}
