//! The Vultr provider through the real CLI: provision, set-message (PTRs
//! through the API), status, teardown, against the stateful fake Vultr API
//! of the providers crate's tests (reused here as it is), which must end
//! exactly as it began. No test reaches the real API.

mod util;

#[path = "../providers/tests/vultr/fake.rs"]
#[allow(dead_code)]
mod fake;
#[path = "../providers/tests/vultr/http.rs"]
mod http;

use util::{run, run_ok, troll};

const KEY: &str = "tk-cli-5b1e0c2d9a7f4e3b8c6d";
/// `troll provision` for the fake's instance.
const PROVISION: [&str; 5] = [
    "provision",
    "--provider",
    "vultr",
    "--instance",
    fake::INSTANCE,
];

fn vultr(dir: &std::path::Path, fake: &fake::Fake) -> std::process::Command {
    let mut cmd = troll(dir);
    cmd.env("VULTR_API_KEY", KEY)
        .env("TROLL_VULTR_API_URL", fake.url());
    cmd
}

#[test]
fn lifecycle_leaves_the_account_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake::Fake::start(KEY);
    let before = fake.world();

    let message = "First Hop\nSecond\n\nFirst Hop\nThe End";
    let two_more = || {
        assert_eq!(
            fake.world().additional(fake::INSTANCE).len(),
            before.additional(fake::INSTANCE).len() + 2
        )
    };

    run_ok(vultr(dir.path(), &fake).args(["set-message", message]));
    run_ok(vultr(dir.path(), &fake).args(PROVISION).arg("--ipv6"));
    two_more();
    // Provisioning again allocates nothing.
    run_ok(vultr(dir.path(), &fake).args(["provision", "--provider", "vultr"]));
    two_more();

    // set-message on a provisioned deployment publishes the names.
    let r = run_ok(vultr(dir.path(), &fake).args(["set-message", message]));
    assert!(r.stdout.contains("reverse name(s) set"), "{}", r.stdout);
    assert!(r.stdout.contains("6 to 12 hours"), "{}", r.stdout);
    let world = fake.world();
    let names: Vec<String> = world.instances[fake::INSTANCE]
        .ipv4
        .values()
        .map(|e| e.reverse.clone())
        .collect();
    assert!(
        names.iter().any(|n| n == "First.Hop") && names.iter().any(|n| n == "Second"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "The.End"),
        "the target's own name: {names:?}"
    );
    assert!(world.instances[fake::INSTANCE]
        .v6_reverse
        .values()
        .any(|n| n == "First.Hop"));

    let r = run_ok(vultr(dir.path(), &fake).args(["status", "--json", "--no-resolve"]));
    let status: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(status["provider"], "vultr");
    assert_eq!(
        status["shows"][0]["hops"][0]["hop"]["reported"], "First.Hop",
        "{}",
        r.stdout
    );
    assert_eq!(status["shows"][0]["target"]["reported"], "The.End");

    let state = std::fs::read_to_string(dir.path().join("state/default.json")).unwrap();
    assert!(!state.contains(KEY), "the key is never stored");

    let r = run_ok(vultr(dir.path(), &fake).args(["teardown"]));
    assert!(r.stdout.contains("additional IPv4 deleted"), "{}", r.stdout);
    assert!(!format!("{}{}", r.stdout, r.stderr).contains(KEY));
    assert_eq!(
        fake.world(),
        before,
        "teardown leaves the account as it was"
    );
    assert!(!dir.path().join("state/default.json").exists());
}

#[test]
fn a_bad_key_is_one_sentence_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake::Fake::start(KEY);
    let before = fake.world();
    let r = run(troll(dir.path())
        .env("VULTR_API_KEY", "wrong-key-0000000000")
        .env("TROLL_VULTR_API_URL", fake.url())
        .args(PROVISION)
        .args(["--ipv4", "2"]));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("VULTR_API_KEY"), "{}", r.stderr);
    assert!(!r.stderr.contains("wrong-key"), "{}", r.stderr);
    assert_eq!(fake.world(), before);
    let missing = run(troll(dir.path())
        .env("TROLL_VULTR_API_URL", fake.url())
        .args(PROVISION)
        .args(["--ipv4", "1"]));
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("VULTR_API_KEY"),
        "{}",
        missing.stderr
    );
}

#[test]
fn a_dry_run_prints_the_plan_and_cost_and_only_reads() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake::Fake::start(KEY);
    let before = fake.world();
    let state_files = |dir: &std::path::Path| {
        walk(dir)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .count()
    };
    let message = ["--message", "First Hop\nSecond\nThird\n\nThe End"];
    let r = run_ok(
        vultr(dir.path(), &fake)
            .args(PROVISION)
            .args(message)
            .arg("--dry-run"),
    );
    let creates = r
        .stdout
        .lines()
        .filter(|l| l.contains(&format!("POST /instances/{}/ipv4", fake::INSTANCE)))
        .count();
    assert_eq!(creates, 3, "{}", r.stdout);
    assert!(r.stdout.contains("$9.00/month"), "{}", r.stdout);
    assert!(
        r.stdout.contains("Dry run: nothing was changed"),
        "{}",
        r.stdout
    );
    let methods: Vec<String> = fake.state().log.iter().map(|l| l.method.clone()).collect();
    assert!(methods.iter().all(|m| m == "GET"), "{methods:?}");
    println!("calls made by the dry run: {}", methods.len());
    assert_eq!(fake.world(), before);
    assert_eq!(state_files(dir.path()), 0, "no state written");

    // The real run prints the same plan, then proceeds.
    let r = run_ok(vultr(dir.path(), &fake).args(PROVISION).args(message));
    assert!(r.stdout.contains("$9.00/month"), "{}", r.stdout);
    assert!(
        r.stdout.contains("restart"),
        "the restart note: {}",
        r.stdout
    );
    run_ok(vultr(dir.path(), &fake).args(["teardown"]));
    assert_eq!(fake.world(), before);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_instance_comes_from_the_metadata_service_or_its_main_ipv4() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake::Fake::start(KEY);
    let wanted = format!("POST /instances/{}/ipv4", fake::INSTANCE);
    let metadata = format!("http://{}/v1.json", fake.addr);
    let dry = [
        "provision",
        "--provider",
        "vultr",
        "--ipv4",
        "1",
        "--dry-run",
    ];
    // Off the instance, no --instance: one sentence naming the ways.
    let r = run(vultr(dir.path(), &fake)
        .env("TROLL_VULTR_METADATA_URL", &metadata)
        .args(dry));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("--instance") && r.stderr.contains("--host"),
        "{}",
        r.stderr
    );
    // On the instance: the metadata document names it.
    fake.state().metadata_instance = Some(fake::INSTANCE.into());
    let r = run_ok(
        vultr(dir.path(), &fake)
            .env("TROLL_VULTR_METADATA_URL", &metadata)
            .args(dry),
    );
    assert!(r.stdout.contains(&wanted), "{}", r.stdout);
    // Elsewhere, by its main IPv4.
    let r = run_ok(
        vultr(dir.path(), &fake)
            .args(dry)
            .args(["--host", &fake::MAIN_IP.to_string()]),
    );
    assert!(r.stdout.contains(&wanted), "{}", r.stdout);
}
