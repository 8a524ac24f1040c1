//! The real binary: help texts, exit codes, preview and set-message, and
//! the state file's behaviour under crashes and contention.

mod util;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use troll::state::Store;
use util::{run, snapshot, troll, Run};

const SAMPLE: &str = "0----0\nDouglas Adams\nMostly Harmless\n0----0\n\nDon't Panic";

/// The words of a command line that needs no quoting.
fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Runs troll, which must succeed.
#[track_caller]
fn ok(cmd: &mut Command) -> Run {
    let r = run(cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r
}

#[track_caller]
fn assert_has(text: &str, wanted: &str) {
    assert!(text.contains(wanted), "{wanted:?} is not in:\n{text}");
}

/// Runs a validator (systemd-analyze, cloud-init, python3), which must
/// accept what troll wrote; returns what it printed.
#[track_caller]
fn accepted(cmd: &mut Command, installed: &str) -> Vec<u8> {
    let out = cmd.output().expect(installed);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A static deployment: target 203.0.113.10 behind NAT, and `hops`.
fn provision_static(dir: &Path, hops: &str) {
    let target = "--target 203.0.113.10=10.0.0.10";
    ok(troll(dir)
        .args(words(&format!(
            "provision --provider static {target} --hop-address"
        )))
        .arg(hops));
}

#[test]
fn help_texts_match_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    for (args, name) in [
        (vec!["--help"], "help.txt"),
        (vec!["preview", "--help"], "help-preview.txt"),
        (vec!["set-message", "--help"], "help-set-message.txt"),
        (vec!["serve", "--help"], "help-serve.txt"),
        (vec!["provision", "--help"], "help-provision.txt"),
        (vec!["demo", "--help"], "help-demo.txt"),
        (vec!["zone", "--help"], "help-zone.txt"),
        (vec!["teardown", "--help"], "help-teardown.txt"),
        (vec!["status", "--help"], "help-status.txt"),
        (vec!["deploy", "--help"], "help-deploy.txt"),
        (vec!["check", "--help"], "help-check.txt"),
        (
            vec!["install-service", "--help"],
            "help-install-service.txt",
        ),
    ] {
        let r = run(troll(dir.path()).args(&args));
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        snapshot(name, &r.stdout);
    }
}

#[test]
fn preview_of_the_sample_message() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(troll(dir.path()).args(["preview", SAMPLE]));
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "traceroute to Dont.Panic (203.0.113.10), 30 hops max, 60 byte packets"
    );
    assert!(
        lines[4].starts_with(" 4  0----0 (198.51.100.1)  "),
        "{}",
        lines[4]
    );
    assert!(lines[5].starts_with(" 5  Douglas.Adams (198.51.100.2)  "));
    assert!(lines[6].starts_with(" 6  Mostly.Harmless (198.51.100.3)  "));
    assert!(
        lines[7].starts_with(" 7  0----0 (198.51.100.1)  "),
        "border lines share one address"
    );
    assert_eq!(lines[8], " 8  * * *");
    assert!(lines[9].starts_with(" 9  Dont.Panic (203.0.113.10)  "));
    assert_has(&r.stderr, "warning: line 6: 1 apostrophe(s) dropped");
    assert!(r.stdout.contains("need 3 address(es) per family"));
    assert!(r.stdout.contains("vultr  IPv4: 3 address(es), $9.00/month"));
}

#[test]
fn preview_json_is_data() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(troll(dir.path()).args(["preview", "--json", SAMPLE]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["hops"], 5);
    assert_eq!(v["silent_hops"], 1);
    assert_eq!(v["addresses_needed"], 3);
    assert_eq!(v["target_name"], "Dont.Panic");
    assert_eq!(v["trace"][3]["name"], "0----0");
    assert_eq!(v["trace"][7]["kind"], "silent");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
}

#[test]
fn message_from_stdin_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = troll(dir.path())
        .args(["preview", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"a b\nc\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["trace"][3]["name"], "a.b");
    assert_eq!(v["target_name"], "c");

    let file = dir.path().join("msg.txt");
    std::fs::write(&file, "x\ny\nz\n").unwrap();
    let r = run(troll(dir.path())
        .args(["preview", "--json", "--file"])
        .arg(&file));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["hops"], 2);
}

#[test]
fn exit_codes_for_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let empty = run(troll(dir.path()).args(["preview", ""]));
    assert_eq!(empty.code, 2);
    assert_eq!(
        empty.stderr,
        "troll: the message is empty; give at least one line of text\n"
    );

    let unreadable = run(troll(dir.path()).args(["set-message", "--file", "/nonexistent/msg"]));
    assert_eq!(unreadable.code, 1);
    assert!(unreadable
        .stderr
        .contains("cannot read the message from /nonexistent/msg"));

    let long = run(troll(dir.path()).args(["set-message", &format!("ok\n{}", "w".repeat(70))]));
    assert_eq!(long.code, 2);
    assert_has(&long.stderr, "line 2: the word");
    assert!(long.stderr.contains("70 bytes"));

    let strict = run(troll(dir.path()).args(["preview", "--strict", "Don't"]));
    assert_eq!(strict.code, 2);

    let bad_flag = run(troll(dir.path()).args(["preview", "--no-such-flag", "x"]));
    assert_eq!(bad_flag.code, 2);

    let bad_name = run(troll(dir.path()).args(["--deployment", "../x", "preview", "x"]));
    assert_eq!(bad_name.code, 2);
    assert!(bad_name.stderr.contains("not a valid deployment name"));

    let none = run(troll(dir.path()).args(["preview"]));
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("no message given"));
    // Nothing of the failures above left a deployment behind.
    assert!(Store::new(dir.path().join("state"))
        .list()
        .unwrap()
        .is_empty());
}

#[test]
fn set_message_stores_and_preview_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(troll(dir.path()).args(["-d", "lab", "set-message", SAMPLE]));
    assert!(r.stdout.contains("5 fake hop(s), 3 distinct name(s)"));
    let state = Store::new(dir.path().join("state"))
        .load("lab")
        .unwrap()
        .unwrap();
    assert_eq!(state.message.as_deref(), Some(SAMPLE));
    assert_eq!(state.plan.unwrap().distinct.len(), 3);

    let again = ok(troll(dir.path()).args(["-d", "lab", "preview"]));
    assert!(again.stdout.contains("Mostly.Harmless"));

    // A bad message leaves the stored one alone.
    let bad = run(troll(dir.path()).args(["-d", "lab", "set-message", ""]));
    assert_eq!(bad.code, 2);
    let state = Store::new(dir.path().join("state"))
        .load("lab")
        .unwrap()
        .unwrap();
    assert_eq!(state.message.as_deref(), Some(SAMPLE));
}

#[test]
fn delays_are_stored_kept_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let state = || {
        Store::new(dir.path().join("state"))
            .load("lab")
            .unwrap()
            .unwrap()
    };
    let r = ok(troll(dir.path())
        .args(words("-d lab set-message"))
        .arg(SAMPLE)
        .args(words("--hop-delay 20 --line-delay 2=150")));
    assert_has(
        &r.stdout,
        "round-trip delays: 20 ms per hop, line 2: 150 ms",
    );
    assert_eq!(state().delays.hop_ms, 20);
    assert_eq!(state().delays.lines, vec![(2, 150)]);
    // A new message without delay flags keeps them.
    ok(troll(dir.path()).args(["-d", "lab", "set-message", SAMPLE]));
    assert_eq!(state().delays.hop_ms, 20);
    // Over the cap, or a line the message does not have: usage errors
    // that say so, and the stored delays stay.
    let big =
        run(troll(dir.path()).args(["-d", "lab", "set-message", SAMPLE, "--hop-delay", "2500"]));
    assert_eq!(big.code, 2);
    assert_has(&big.stderr, "capped at 2000 ms");
    let line =
        run(troll(dir.path()).args(["-d", "lab", "set-message", SAMPLE, "--line-delay", "40=10"]));
    assert_eq!(line.code, 2);
    assert_has(&line.stderr, "--line-delay 40=...: the message has");
    let serve = run(troll(dir.path()).args(["serve", "--hop-delay", "9999", "--dry-run"]));
    assert_eq!(serve.code, 2);
    assert_has(&serve.stderr, "capped at 2000 ms");
    assert_eq!(state().delays.lines, vec![(2, 150)]);
}

#[test]
fn config_file_and_environment_precedence() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("troll.toml");
    std::fs::write(
        &config,
        "deployment = \"fromfile\"\n[message]\nkeep_target_name = true\n",
    )
    .unwrap();
    let r = ok(troll(dir.path())
        .env("TROLL_CONFIG", &config)
        .args(["set-message", "a\nb"]));
    assert_has(
        &r.stdout,
        "deployment 'fromfile': message stored, 2 fake hop(s)",
    );
    let r = run(troll(dir.path())
        .env("TROLL_CONFIG", &config)
        .env("TROLL_DEPLOYMENT", "fromenv")
        .args(["set-message", "a\nb"]));
    assert_has(&r.stdout, "deployment 'fromenv'");
    let r = run(troll(dir.path())
        .env("TROLL_CONFIG", &config)
        .env("TROLL_DEPLOYMENT", "fromenv")
        .args(["-d", "fromflag", "set-message", "a\nb"]));
    assert_has(&r.stdout, "deployment 'fromflag'");

    std::fs::write(&config, "[serve]\nbogus = 1\n").unwrap();
    let r = run(troll(dir.path())
        .env("TROLL_CONFIG", &config)
        .args(["preview", "x"]));
    assert_eq!(r.code, 2);
    assert_has(&r.stderr, "bogus");
}

#[test]
fn a_bad_value_is_a_usage_error_naming_its_flag_or_its_key() {
    let dir = tempfile::tempdir().unwrap();
    // A flag: clap's usage error, naming the flag, the value and the fix.
    for (args, says) in [
        (
            vec!["serve", "--dns", "nope", "--dry-run"],
            "invalid value 'nope' for '--dns <ADDR:PORT>': 'nope' is not an address and port; write e.g. 0.0.0.0:53 or [::]:53",
        ),
        (
            vec!["serve", "--target", "198.18.0.9", "--hops", "198.18.0.1,x"],
            "invalid value '198.18.0.1,x' for '--hops <LIST>': 'x' is not an IP address",
        ),
        (
            vec!["status", "--resolver", "dns.example"],
            "for '--resolver <ADDR>': 'dns.example' is not an address; write ADDR or ADDR:PORT",
        ),
        (
            vec!["provision", "--provider", "static", "--hop-address", "198.51.100.1,y"],
            "for '--hop-address <ADDR>': 'y' is not an IP address; write ADDR or PUBLIC=LOCAL",
        ),
        (vec!["check", "192.0.2.1", "--max-hops", "0"], "for '--max-hops <N>'"),
        (
            vec!["set-message", "x", "--line-delay", "2=2500"],
            "invalid value '2=2500' for '--line-delay <LINE=MS>': 2500: delays are capped at 2000 ms",
        ),
        (
            vec!["--deployment", "a/b", "status"],
            "for '--deployment <NAME>': 'a/b' is not a valid deployment name",
        ),
    ] {
        let r = run(troll(dir.path()).args(&args));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    // The same value in the config file: the file, the line and the key.
    let config = dir.path().join("troll.toml");
    std::fs::write(&config, "[serve]\nrate = 10\ndns = \"nope\"\n").unwrap();
    let r = run(troll(dir.path())
        .env("TROLL_CONFIG", &config)
        .args(["serve", "--dry-run"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "troll: the config file {} is not valid: line 3: serve.dns: 'nope' is not an address and port; write e.g. 0.0.0.0:53 or [::]:53\n",
            config.display()
        )
    );
    // A good one is used: serve --dns from the file.
    std::fs::write(&config, "[serve]\ndns = \"127.0.0.1:5353\"\n").unwrap();
    ok(troll(dir.path())
        .env("TROLL_CONFIG", &config)
        .args(["preview", "x"]));
}

#[test]
fn lock_contention_names_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("state"));
    let held = store.lock("busy").unwrap();
    let r = run(troll(dir.path()).args(["-d", "busy", "set-message", "x"]));
    assert_eq!(r.code, 1);
    assert_has(
        &r.stderr,
        &format!(
            "in use by another troll command (pid {})",
            std::process::id()
        ),
    );
    drop(held);
    ok(troll(dir.path()).args(["-d", "busy", "set-message", "x"]));
}

#[test]
fn sigkill_mid_write_leaves_a_readable_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("state"));
    let old = "old\nmessage";
    assert_eq!(run(troll(dir.path()).args(["set-message", old])).code, 0);
    // A large message makes the write long enough to be interrupted.
    let big: String = (0..200)
        .map(|i| format!("line number {i} of a long message\n"))
        .collect();
    let file = dir.path().join("big.txt");
    std::fs::write(&file, &big).unwrap();
    let mut killed_early = 0;
    for i in 0..40u64 {
        let mut child = troll(dir.path())
            .args(["set-message", "--file"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(200 * (i % 20)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        if !status.success() {
            killed_early += 1;
        }
        let state = store
            .load("default")
            .expect("state stays readable")
            .unwrap();
        let message = state.message.unwrap();
        assert!(
            message == old || message == big,
            "half-written state: {} bytes",
            message.len()
        );
    }
    assert!(
        killed_early > 0,
        "no run was interrupted; the test proves nothing"
    );
}

#[test]
fn status_json_shape() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run(troll(dir.path()).args(["set-message", "Hop One\n\nTarget"])).code,
        0
    );
    provision_static(dir.path(), "198.51.100.7=10.0.0.7");
    let r = ok(troll(dir.path()).args(["status", "--json", "--no-resolve"]));
    snapshot("status.json", &r.stdout);
    let text = run(troll(dir.path()).args(["status", "--no-resolve"]));
    assert_has(&text.stdout, "198.51.100.7 (local 10.0.0.7)  Hop.One");
    assert!(text.stdout.contains("responder   not running"));
    let missing = run(troll(dir.path()).args(["-d", "nope", "status"]));
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("deployment 'nope' does not exist"));
}

#[test]
fn install_service_renders_a_unit_systemd_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(troll(dir.path()).args(words("-d prod install-service --dry-run --dns 0.0.0.0:53")));
    assert_has(&r.stdout, "--deployment prod serve --dns 0.0.0.0:53");
    let unit = dir.path().join("troll-prod.service");
    std::fs::write(&unit, &r.stdout).unwrap();
    accepted(
        Command::new("systemd-analyze").arg("verify").arg(&unit),
        "systemd-analyze is installed (Debian package systemd)",
    );
    let r = run(troll(dir.path())
        .args(["-d", "prod", "install-service", "--unit-dir"])
        .arg(dir.path().join("units")));
    assert_eq!(r.code, 1, "a missing directory is an error");
    std::fs::create_dir(dir.path().join("units")).unwrap();
    ok(troll(dir.path())
        .args(["-d", "prod", "install-service", "--unit-dir"])
        .arg(dir.path().join("units")));
    assert!(dir.path().join("units/troll-prod.service").exists());
}

#[test]
fn user_data_passes_cloud_init_schema_and_reproduces_the_deployment() {
    let dir = tempfile::tempdir().unwrap();
    let message = "Hop One\nDon't Panic \"quoted\" $HOME\n\nTarget";
    ok(troll(dir.path()).args(["set-message", "--wrap", message]));
    provision_static(dir.path(), "198.51.100.7=10.0.0.7,198.51.100.8");
    let sha = "0123456789abcdef".repeat(4);
    let r = ok(troll(dir.path()).args([
        "provision",
        "--print-user-data",
        "--binary-url",
        "https://example.com/troll?v=1&x=2",
        "--binary-sha256",
        &sha,
    ]));
    let user_data = r.stdout;
    assert!(user_data.starts_with("#cloud-config\n"), "{user_data}");
    assert!(user_data.contains(&format!("echo {sha}'  /usr/local/bin/troll.download'")));
    assert!(!user_data.contains("{{"), "{user_data}");

    // cloud-init's own validation (Debian package cloud-init).
    let file = dir.path().join("user-data.yaml");
    std::fs::write(&file, &user_data).unwrap();
    accepted(
        Command::new("cloud-init")
            .args(["schema", "--config-file"])
            .arg(&file),
        "cloud-init is installed (Debian package cloud-init)",
    );

    // What the instance runs: the written message file and the troll
    // commands of runcmd, read back with the YAML parser cloud-init uses.
    let parsed = accepted(
        Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml; d = yaml.safe_load(open(sys.argv[1])); \
                 print(json.dumps({'files': d['write_files'], 'cmds': d['runcmd']}))",
            ])
            .arg(&file),
        "python3 with yaml (a dependency of cloud-init)",
    );
    let parsed: serde_json::Value = serde_json::from_slice(&parsed).unwrap();
    let files = parsed["files"].as_array().unwrap();
    assert_eq!(files[0]["path"], "/etc/troll/default.message");
    assert_eq!(files[0]["content"], message, "the message survives YAML");
    let instance = tempfile::tempdir().unwrap();
    let message_file = instance.path().join("default.message");
    std::fs::write(&message_file, message).unwrap();
    let troll_cmds: Vec<Vec<String>> = parsed["cmds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| serde_json::from_value::<Vec<String>>(c.clone()).ok())
        .filter(|c| c[0] == "/usr/local/bin/troll")
        .collect();
    assert_eq!(
        troll_cmds.len(),
        3,
        "provision, set-message, install-service"
    );
    for cmd in &troll_cmds {
        assert_eq!(
            &cmd[1..5],
            ["--state-dir", "/var/lib/troll", "--deployment", "default"]
        );
        let args: Vec<std::ffi::OsString> = cmd[5..]
            .iter()
            .map(|a| match a.as_str() {
                "/etc/troll/default.message" => message_file.clone().into_os_string(),
                "/usr/local/bin/troll" => util::troll_bin().into_os_string(),
                a => a.into(),
            })
            .collect();
        let is_install = cmd[5] == "install-service";
        let mut command = troll(instance.path());
        command.args(&args);
        if is_install {
            command.arg("--dry-run");
        }
        let r = run(&mut command);
        assert_eq!(r.code, 0, "{cmd:?}: {}", r.stderr);
        if is_install {
            assert!(r
                .stdout
                .contains("AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN\n"));
        }
    }
    // The instance's deployment shows the same hops with the same names.
    let here = run(troll(dir.path()).args(["zone", "--format", "bind"]));
    let there = run(troll(instance.path()).args(["zone", "--format", "bind"]));
    assert_eq!(here.code, 0, "{}", here.stderr);
    assert_eq!(here.stdout, there.stdout);
    let status = |d: &std::path::Path| {
        let r = run(troll(d).args(["status", "--json", "--no-resolve"]));
        let mut v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v["state_file"] = serde_json::Value::Null;
        v["hops"].clone()
    };
    assert_eq!(status(dir.path()), status(instance.path()));

    // Bad input names the problem.
    for (args, wanted) in [
        (
            vec!["--binary-url", "https://x/a b"],
            "not a plain http(s) URL",
        ),
        (vec![], "needs --binary-url"),
        (
            vec!["--binary-url", "https://x/t", "--binary-sha256", "12"],
            "not a SHA-256",
        ),
    ] {
        let r = run(troll(dir.path())
            .args(["provision", "--print-user-data"])
            .args(&args));
        assert_eq!(r.code, 2, "{args:?}");
        assert!(r.stderr.contains(wanted), "{args:?}: {}", r.stderr);
    }
    let r = run(troll(dir.path()).args(words(
        "-d nope provision --print-user-data --binary-url https://x/t",
    )));
    assert_has(&r.stderr, "deployment 'nope' does not exist");
    let r = run(troll(dir.path()).args(["provision"]));
    assert_eq!(r.code, 2);
    assert_has(&r.stderr, "--provider");
}

#[test]
fn completions_and_man_page_cover_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let r = run(troll(dir.path()).args(["completions", shell]));
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        for command in [
            "set-message",
            "provision",
            "serve",
            "demo",
            "teardown",
            "status",
        ] {
            assert!(
                r.stdout.contains(command),
                "{shell} completions lack {command}"
            );
        }
    }
    let bash = run(troll(dir.path()).args(["completions", "bash"]));
    let file = dir.path().join("troll.bash");
    std::fs::write(&file, bash.stdout).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .status()
        .unwrap();
    assert!(syntax.success(), "bash completions parse");

    let man = ok(troll(dir.path()).arg("man"));
    assert!(
        man.stdout.contains(".TH troll 1"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    for command in ["set\\-message", "provision", "serve", "demo", "teardown"] {
        assert!(man.stdout.contains(command), "the man page lacks {command}");
    }
}

/// `--window LINES`: preview prints every window (its target, the command
/// that traces it, its trace), set-message stores the split, zone exports
/// every window's names, status reports per window; bad values are usage
/// errors naming the fix and leave nothing behind.
#[test]
fn windows_in_preview_set_message_zone_and_status() {
    let dir = tempfile::tempdir().unwrap();
    let text = "One\nTwo\nThree\nFour\nFive\nSix";
    let r = ok(troll(dir.path()).args(["preview", "--window", "3", text]));
    // Hop lines One..Five in windows of 2; Six names the last target.
    assert_has(
        &r.stdout,
        "window 1 of 3: target 203.0.113.10, trace it with `traceroute 203.0.113.10`",
    );
    assert_has(
        &r.stdout,
        "window 2 of 3: target 198.51.100.6, trace it with `traceroute 198.51.100.6`",
    );
    assert_has(&r.stdout, "window 3 of 3: target 198.51.100.7");
    assert_has(&r.stdout, " 4  One (198.51.100.1)");
    assert_has(&r.stdout, " 6  continued.at.198-51-100-6 (203.0.113.10)");
    assert_has(&r.stdout, " 5  Four (198.51.100.4)");
    assert_has(&r.stdout, " 6  continued.at.198-51-100-7 (198.51.100.6)");
    assert_has(&r.stdout, " 4  Five (198.51.100.5)");
    assert_has(&r.stdout, " 5  Six (198.51.100.7)");
    assert_has(
        &r.stdout,
        "5 distinct name(s) and the targets of windows 2 to 3 need 7 address(es)",
    );
    let json = ok(troll(dir.path()).args([
        "preview",
        "--json",
        "--window",
        "3",
        "--window-footer",
        "Next window",
        text,
    ]));
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["windows"].as_array().unwrap().len(), 3);
    assert_eq!(v["windows"][0]["target_name"], "Next.window");
    assert_eq!(v["windows"][2]["target_name"], "Six");
    assert_eq!(v["windows"][1]["command"], "traceroute 198.51.100.6");
    assert_eq!(v["addresses_needed"], 7);

    // Bad values: usage errors, and no deployment is created.
    for (args, says) in [
        (
            vec!["set-message", "--window", "0", text],
            "for '--window <LINES>': a window holds 2 to 241 lines",
        ),
        (
            vec!["set-message", "--window", "1", text],
            "e.g. 15 to fit a default 30-hop trace",
        ),
        (
            vec!["preview", "--window", "500", text],
            "a window holds 2 to 241 lines",
        ),
        (
            vec!["set-message", "--window", "x", text],
            "give a number in that range",
        ),
        (
            vec!["set-message", "--window-footer", "more", text],
            "--window <LINES>",
        ),
        (
            vec!["set-message", "--window", "3", "--window-footer", "", text],
            "--window-footer \"\" ",
        ),
        (
            vec![
                "set-message",
                "--window",
                "3",
                "--window-footer",
                "a\nb",
                text,
            ],
            "has more than one line",
        ),
    ] {
        let r = run(troll(dir.path()).args(&args));
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{args:?}: {}", r.stderr);
    }
    assert!(Store::new(dir.path().join("state"))
        .list()
        .unwrap()
        .is_empty());

    // Stored, and a deployment without the window targets is refused.
    provision_static(
        dir.path(),
        "198.51.100.1,198.51.100.2,198.51.100.3,198.51.100.4,198.51.100.5",
    );
    let short = run(troll(dir.path()).args(["set-message", "--window", "3", text]));
    assert_eq!(short.code, 1, "{}", short.stderr);
    assert_has(
        &short.stderr,
        "needs 7 IPv4 hop address(es) but the deployment has 5",
    );
    provision_static(dir.path(), "198.51.100.1,198.51.100.2,198.51.100.3,198.51.100.4,198.51.100.5,198.51.100.6,198.51.100.7");
    let r = ok(troll(dir.path()).args(["set-message", "--window", "3", text]));
    assert_has(&r.stdout, "5 fake hop(s) in 3 windows");
    let state = Store::new(dir.path().join("state"))
        .load("default")
        .unwrap()
        .unwrap();
    assert_eq!(state.message_options.window, Some(3));
    assert_eq!(state.shows().unwrap().len(), 3);
    // The zone holds every name once: 5 hops and 3 targets' names.
    let zone = ok(troll(dir.path()).args(["zone", "--format", "bind"]));
    for name in [
        "One",
        "Five",
        "continued.at.198-51-100-6",
        "continued.at.198-51-100-7",
        "Six",
    ] {
        assert_has(&zone.stdout, &format!("PTR\t{name}."));
    }
    assert_eq!(zone.stdout.matches("\tPTR\t").count(), 8, "{}", zone.stdout);
    let status = ok(troll(dir.path()).args(["status", "--no-resolve"]));
    assert_has(&status.stdout, "IPv4 w2/3");
    assert_has(&status.stdout, "198.51.100.6  continued.at.198-51-100-7");
    // Preview of the stored message follows its windows.
    let again = ok(troll(dir.path()).args(["preview"]));
    assert_has(&again.stdout, "window 3 of 3: target 198.51.100.7");
    // Serve would add the window targets (this host holds neither) before
    // the rules; without --interface, and with no interface holding the
    // target (10.0.0.10), it can only say so.
    let dry = ok(troll(dir.path()).args(["serve", "--dry-run", "--interface", "eth0"]));
    assert!(
        dry.stdout.starts_with(
            "ip addr add 198.51.100.6/32 dev eth0 label eth0:troll\n\
             ip addr add 198.51.100.7/32 dev eth0 label eth0:troll\n\
             iptables -w -t raw -N TROLL-O-default"
        ),
        "{}",
        dry.stdout
    );
    let dry = ok(troll(dir.path()).args(["serve", "--dry-run"]));
    assert!(!dry.stdout.contains("ip addr"), "{}", dry.stdout);
    assert_has(
        &dry.stderr,
        "the target of window 3 (198.51.100.7) is not an address of this host and no interface holds the deployment's IPv4 target",
    );
}
