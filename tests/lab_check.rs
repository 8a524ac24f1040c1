//! `troll check` over the internet lab (3 routers, the cloud NAT, the
//! edge, Unbound as the client's resolver), from the far client, in each
//! situation of issue 15: all ok; serve stopped; PTRs gone; the message
//! changed on the server but not in --file; a show longer than
//! --max-hops; over UDP, ICMP and TCP, as root and as nobody.

mod util;

use serde_json::Value;
use util::internet::{public, NatMode, Net};

const MESSAGE: &str = "Hop-One\nhop.two\n\nHOP_three\nTarget.Name";
/// The resolver's cache-max-ttl in the lab, plus slack.
const CACHE_WAIT: std::time::Duration = std::time::Duration::from_secs(7);

fn serving() -> (Net, tempfile::NamedTempFile) {
    let mut net = Net::new(NatMode::Full);
    net.provision(MESSAGE, 3);
    net.serve();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, MESSAGE.as_bytes()).unwrap();
    // Readable by nobody too (the unprivileged check).
    std::fs::set_permissions(
        file.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    (net, file)
}

struct Checked {
    code: i32,
    json: Value,
    stderr: String,
}

/// `troll check --json ARGS TARGET` in the far client.
fn check(net: &Net, user: Option<&str>, args: &[&str]) -> Checked {
    let target = public(0).to_string();
    let mut cmd = std::process::Command::new("ip");
    cmd.args(["netns", "exec", &net.ns("far")]);
    if let Some(user) = user {
        cmd.args([
            "setpriv",
            "--reuid",
            user,
            "--regid",
            "nogroup",
            "--clear-groups",
            "--",
        ]);
    }
    cmd.arg(env!("CARGO_BIN_EXE_troll"))
        .args(["check", "--json", "--wait", "2"])
        .args(args)
        .arg(&target)
        .env("TROLL_STATE_DIR", NO_STATE)
        .env_remove("RUST_LOG");
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    println!(
        "troll check {args:?} ({user:?}): exit {:?}\n{stdout}{stderr}",
        out.status.code()
    );
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    Checked {
        code: out.status.code().unwrap_or(-1),
        json,
        stderr,
    }
}

/// A `troll check --json` run that succeeded, printed.
fn checked_ok(out: util::Run) -> Checked {
    println!("{}{}", out.stdout, out.stderr);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    Checked {
        code: 0,
        json: serde_json::from_str(&out.stdout).unwrap(),
        stderr: out.stderr,
    }
}

/// The verdicts of one protocol, fake hops then the target.
fn verdicts(c: &Checked, protocol: &str) -> Vec<String> {
    let p = c.json["protocols"]
        .as_array()
        .unwrap_or_else(|| panic!("no JSON: {}", c.stderr))
        .iter()
        .find(|p| p["protocol"] == protocol)
        .unwrap_or_else(|| panic!("no {protocol} in {}", c.json));
    assert_eq!(p["status"], "checked", "{p}");
    p["report"]["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["verdict"].as_str().unwrap().to_string())
        .collect()
}

fn status(c: &Checked, protocol: &str) -> String {
    c.json["protocols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["protocol"] == protocol)
        .map_or("absent".into(), |p| {
            p["status"].as_str().unwrap().to_string()
        })
}

const ALL_OK: [&str; 5] = ["ok"; 5];
/// A state dir that does not exist: the show comes from the arguments.
const NO_STATE: &str = "/nonexistent/troll-check-test";

/// `troll ARGS` in namespace `role`, with `TROLL_STATE_DIR=STATE` when
/// given, run to its end.
fn troll_run(net: &Net, role: &str, state: Option<&std::path::Path>, args: &[&str]) -> util::Run {
    let mut cmd = troll::lab::exec(&net.ns(role), env!("CARGO_BIN_EXE_troll"));
    cmd.args(args);
    if let Some(state) = state {
        cmd.env("TROLL_STATE_DIR", state);
    }
    util::run(&mut cmd)
}

#[test]
fn all_ok_over_udp_icmp_and_tcp_then_serve_stopped() {
    let (mut net, file) = serving();
    let file = file.path().to_str().unwrap();
    let troll_dns = format!("{}", troll::lab::internet::SERVER_PUBLIC);
    let c = check(&net, None, &["--file", file, "--resolver", &troll_dns]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    for protocol in ["udp", "icmp", "tcp"] {
        assert_eq!(verdicts(&c, protocol), ALL_OK, "{protocol}");
    }
    let report = &c.json["protocols"][0]["report"];
    assert_eq!(report["start"], 4, "3 real hops first: {report}");
    assert_eq!(report["real_hops"].as_array().unwrap().len(), 3);

    // The plain text form says the same.
    let target = public(0).to_string();
    let args = ["check", "--protocol", "udp", "--file", file, &target];
    let text = troll_run(&net, "far", Some(NO_STATE.as_ref()), &args);
    let stdout = text.stdout;
    assert_eq!(text.code, 0, "{stdout}");
    assert!(
        stdout.contains("udp: the show starts at hop 4, after 3 real hop(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("udp: ok: 5 of 5 lines match"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("Hop-One") && l.contains("198.51.100.101") && l.ends_with("ok")),
        "{stdout}"
    );

    // Serve stopped: the target's kernel answers where the show was.
    net.stop(0);
    let c = check(&net, None, &["--file", file, "--protocol", "all"]);
    assert_eq!(c.code, 1);
    for protocol in ["udp", "icmp", "tcp"] {
        assert_eq!(verdicts(&c, protocol)[..4], ["no answer"; 4], "{protocol}");
    }
    assert!(
        c.stderr
            .starts_with("troll: the show at 198.51.100.100 does not match"),
        "{}",
        c.stderr
    );
    assert_eq!(c.stderr.lines().count(), 1, "{}", c.stderr);
}

#[test]
fn names_gone_and_a_changed_message() {
    let (mut net, file) = serving();
    let file = file.path().to_str().unwrap();
    // The message changes on the server, not in the file: hop 2's name is
    // stale, seen through Unbound once the cached PTR expires.
    let changed = MESSAGE.replace("hop.two", "hop.TWO");
    util::lab::sh_ok(net.troll_in("server").args(["set-message", &changed]));
    let troll_dns = troll::lab::internet::SERVER_PUBLIC.to_string();
    // troll's own server at once...
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let c = check(
            &net,
            None,
            &[
                "--file",
                file,
                "--protocol",
                "udp",
                "--resolver",
                &troll_dns,
            ],
        );
        if verdicts(&c, "udp")[1] == "wrong name" {
            assert_eq!(c.code, 1);
            assert_eq!(verdicts(&c, "udp"), ["ok", "wrong name", "ok", "ok", "ok"]);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not follow the change"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // ...and the system resolver (Unbound) after the PTR's cache time.
    std::thread::sleep(CACHE_WAIT);
    for protocol in ["udp", "icmp", "tcp"] {
        let c = check(&net, None, &["--file", file, "--protocol", protocol]);
        assert_eq!(c.code, 1);
        assert_eq!(
            verdicts(&c, protocol),
            ["ok", "wrong name", "ok", "ok", "ok"],
            "{protocol}"
        );
    }
    // With the changed message the show is right again.
    let c = check(&net, None, &["--message", &changed, "--protocol", "udp"]);
    assert_eq!(
        (c.code, verdicts(&c, "udp")),
        (0, ALL_OK.map(String::from).to_vec())
    );

    // Serving without the DNS server: the hops answer, their names are gone.
    net.stop(0);
    net.serve_without_dns();
    std::thread::sleep(CACHE_WAIT);
    for protocol in ["udp", "icmp", "tcp"] {
        let c = check(&net, None, &["--message", &changed, "--protocol", protocol]);
        assert_eq!(c.code, 1);
        // The target falls back to the client's /etc/hosts (`troll.lab`),
        // a name glibc finds once DNS has none: not the one expected.
        assert_eq!(
            verdicts(&c, protocol),
            ["no PTR yet", "no PTR yet", "ok", "no PTR yet", "wrong name"],
            "{protocol}"
        );
    }
}

#[test]
fn a_show_longer_than_max_hops() {
    let (net, file) = serving();
    let file = file.path().to_str().unwrap();
    for protocol in ["udp", "icmp", "tcp"] {
        let c = check(
            &net,
            None,
            &["--file", file, "--protocol", protocol, "--max-hops", "5"],
        );
        assert_eq!(c.code, 1);
        assert_eq!(
            verdicts(&c, protocol),
            [
                "ok",
                "ok",
                "out of hop range",
                "out of hop range",
                "out of hop range"
            ],
            "{protocol}"
        );
        assert_eq!(c.json["protocols"][0]["report"]["needs_max_hops"], 8);
    }
    let target = public(0).to_string();
    let args = [
        "check",
        "--protocol",
        "udp",
        "--max-hops",
        "5",
        "--file",
        file,
        &target,
    ];
    let out = troll_run(&net, "far", Some(NO_STATE.as_ref()), &args);
    assert!(out.stdout.contains("`traceroute -m 8`"), "{}", out.stdout);
}

/// No root: UDP works, ICMP only where ping sockets are allowed, TCP is
/// skipped, not failed.
#[test]
fn unprivileged_check() {
    let (net, file) = serving();
    let file = file.path().to_str().unwrap();
    let far = net.ns("far");
    // A fresh namespace allows ping sockets to nobody ("1 0").
    util::lab::sh_ok(
        troll::lab::exec(&far, "sysctl").args(["-qw", "net.ipv4.ping_group_range=1 0"]),
    );
    let c = check(&net, Some("nobody"), &["--file", file]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert_eq!(verdicts(&c, "udp"), ALL_OK);
    assert_eq!(
        (status(&c, "icmp"), status(&c, "tcp")),
        ("skipped".into(), "skipped".into())
    );

    util::lab::sh_ok(
        troll::lab::exec(&far, "sysctl").args(["-qw", "net.ipv4.ping_group_range=0 2147483647"]),
    );
    let c = check(&net, Some("nobody"), &["--file", file]);
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert_eq!(verdicts(&c, "udp"), ALL_OK);
    assert_eq!(verdicts(&c, "icmp"), ALL_OK);
    assert_eq!(status(&c, "tcp"), "skipped");

    // Only TCP asked for, without root: nothing to check, one line.
    let c = check(&net, Some("nobody"), &["--file", file, "--protocol", "tcp"]);
    assert_eq!(c.code, 1);
    assert!(c.stderr.contains("run as root"), "{}", c.stderr);
    assert_eq!(c.stderr.lines().count(), 1, "{}", c.stderr);
}

#[test]
fn unknown_and_unreachable_hosts() {
    let net = Net::new(NatMode::Full);
    let args = ["check", "--message", "a\nb", "no-such-host.invalid"];
    let out = troll_run(&net, "far", None, &args);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "troll: cannot resolve host 'no-such-host.invalid'; check the name, or give the target's address"
    );
    // The NAT's namespace has no route anywhere.
    let args = [
        "check",
        "--protocol",
        "udp",
        "--message",
        "a\nb",
        "198.51.100.100",
    ];
    let out = troll_run(&net, "nat", None, &args);
    let unreachable = out.stderr;
    assert_eq!(out.code, 1, "{unreachable}");
    assert!(
        unreachable.starts_with("troll: cannot reach 198.51.100.100"),
        "{unreachable}"
    );
    assert_eq!(unreachable.lines().count(), 1, "{unreachable}");
}

/// Where the deployment's state is, HOST alone is enough: the show and
/// the address of every hop come from it.
#[test]
fn the_deployment_gives_the_show_and_its_addresses() {
    let (net, _file) = serving();
    let state = Some(net.state_dir.path());
    let target = public(0).to_string();
    let args = ["check", "--json", "--protocol", "udp", &target];
    let c = checked_ok(troll_run(&net, "far", state, &args));
    assert_eq!(verdicts(&c, "udp"), ALL_OK);
    let lines = &c.json["protocols"][0]["report"]["lines"];
    assert_eq!(lines[0]["address"], public(1).to_string());
    assert_eq!(lines[3]["address"], public(3).to_string());
    // A host that is not the deployment's target is a usage error.
    let out = troll_run(&net, "far", state, &["check", "100.65.1.1"]);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .contains("is not a target of deployment 'default'"),
        "{}",
        out.stderr
    );
}

/// A message split with `--window`: `troll check` given the first
/// window's target traces every window and reports per window; given
/// another window's target, that window alone.
#[test]
fn windows_are_checked_one_by_one() {
    let mut net = Net::new(NatMode::Full);
    net.provision(MESSAGE, 5);
    // Hop lines A..D in windows of 2 and E naming the last window's
    // target, the address after the 4 hop addresses (serve adds it to the
    // server).
    util::lab::sh_ok(net.troll_in("server").args([
        "set-message",
        "--window",
        "3",
        "A\nB\nC\nD\nE",
    ]));
    net.serve();
    let state = Some(net.state_dir.path());
    let first = public(0).to_string();
    let args = ["check", "--json", "--protocol", "udp", &first];
    let c = checked_ok(troll_run(&net, "far", state, &args));
    assert_eq!(c.json["ok"], true);
    let windows = c.json["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2);
    for (w, (address, names)) in [
        (public(0), ["A", "B", "continued.at.198-51-100-105"]),
        (public(5), ["C", "D", "E"]),
    ]
    .iter()
    .enumerate()
    {
        let window = Checked {
            code: 0,
            json: windows[w].clone(),
            stderr: String::new(),
        };
        assert_eq!(window.json["window"], w);
        assert_eq!(window.json["address"], address.to_string());
        assert_eq!(verdicts(&window, "udp"), ["ok"; 3]);
        let lines = window.json["protocols"][0]["report"]["lines"]
            .as_array()
            .unwrap();
        let expected: Vec<&str> = lines
            .iter()
            .map(|l| l["expected"].as_str().unwrap())
            .collect();
        assert_eq!(expected, names);
    }
    let second = public(5).to_string();
    let text = troll_run(&net, "far", state, &["check", "--protocol", "udp", &second]);
    assert_eq!(text.code, 0, "{}{}", text.stdout, text.stderr);
    assert!(
        text.stdout.contains("udp: ok: 3 of 3 lines match"),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains("window 1 of"), "{}", text.stdout);
}

/// Numbers for the report, not a pass/fail check: how long `troll check`
/// takes for a 10-line show and how many probes it sends, against
/// traceroute (UDP, -I, -T) for the same show. Run with
/// `cargo test --test lab_check -- --ignored --nocapture bench`.
#[test]
#[ignore = "a benchmark: prints numbers"]
fn bench_check_against_traceroute() {
    let mut net = Net::new(NatMode::Full);
    // Ten lines, one of them blank (a silent hop), as messages have.
    let message = "L1\nL2\nL3\nL4\n\nL6\nL7\nL8\nL9\nTen";
    net.provision(message, 8);
    net.serve();
    let far = net.ns("far");
    let target = public(0).to_string();
    let nft = |args: &str| {
        util::lab::sh_ok(troll::lab::exec(&far, "sh").args(["-c", &format!("nft {args}")]));
    };
    nft("add table ip bench");
    nft("'add chain ip bench out { type filter hook output priority 0; }'");
    nft(&format!("add rule ip bench out ip daddr {target} counter"));
    // Probes sent to the target since the last call.
    let seen = std::cell::Cell::new(0u64);
    let probes = || -> u64 {
        let out = util::lab::sh_ok(
            troll::lab::exec(&far, "nft").args(["list", "chain", "ip", "bench", "out"]),
        );
        let total: u64 = out
            .split("packets ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap()
            .parse()
            .unwrap();
        total - seen.replace(total)
    };
    probes();
    // (label, command, what its output must contain)
    let mut runs: Vec<(String, Vec<&str>, &str)> = Vec::new();
    for (label, method) in [
        ("traceroute (UDP)", None),
        ("traceroute -I", Some("-I")),
        ("traceroute -T", Some("-T")),
    ] {
        let cmd = ["traceroute"]
            .into_iter()
            .chain(method)
            .chain(["-w", "3", "-m", "30", &target])
            .collect();
        runs.push((label.to_string(), cmd, "Ten (198.51.100.100)"));
    }
    let bin = env!("CARGO_BIN_EXE_troll");
    for protocol in ["udp", "icmp", "tcp", "all"] {
        let cmd = vec![
            bin,
            "check",
            "--protocol",
            protocol,
            "--message",
            message,
            &target,
        ];
        let label = format!("troll check --protocol {protocol}");
        runs.push((label, cmd, "ok: 10 of 10 lines match"));
    }
    for (label, cmd, expect) in runs {
        let started = std::time::Instant::now();
        let out = net.client_run("far", cmd[0], &cmd[1..]);
        let took = started.elapsed();
        assert!(out.contains(expect), "{out}");
        println!(
            "BENCH {label}: {:.2} s, {} probes",
            took.as_secs_f64(),
            probes()
        );
    }
}

/// IPv6 (no NAT, as on AWS): the same verdicts over all three protocols.
#[test]
fn ipv6_all_ok_over_udp_icmp_and_tcp() {
    let (net, file) = serving();
    let file = file.path().to_str().unwrap();
    let target = util::internet::public6(0).to_string();
    let args = ["check", "-6", "--json", "--file", file, &target];
    let c = checked_ok(troll_run(&net, "far", Some(NO_STATE.as_ref()), &args));
    for protocol in ["udp", "icmp", "tcp"] {
        assert_eq!(verdicts(&c, protocol), ALL_OK, "{protocol}");
    }
    assert_eq!(c.json["protocols"][2]["report"]["start"], 4);
    assert_eq!(
        c.json["protocols"][0]["report"]["lines"][0]["address"],
        "2001:db8:20::101"
    );
}

/// Behind a NAT that leaves the header quoted in ICMP errors alone, the
/// responder's errors quote the probe with the target's public address
/// (as the client sent it), so check matches them over every protocol (its
/// raw sockets match the quote as strictly as a client's kernel does).
#[test]
fn an_outer_only_nat_is_all_ok() {
    let mut net = Net::new(NatMode::OuterOnly);
    net.provision(MESSAGE, 3);
    net.serve();
    let c = check(
        &net,
        None,
        &[
            "--message",
            MESSAGE,
            "--protocol",
            "all",
            "--max-hops",
            "10",
        ],
    );
    for protocol in ["udp", "icmp", "tcp"] {
        assert_eq!(verdicts(&c, protocol), ALL_OK, "{protocol}");
    }
    assert_eq!(c.code, 0);
}
