//! Contract test: every request the Vultr provider makes in its lifecycle
//! goes to Prism, which mocks the API from its OpenAPI specification
//! (`shared/specs/vultr-openapi.json`) and validates each request against
//! it. Any `sl-violations` header (Prism's validation errors) fails the test.
//!
//! Prism is installed by `scripts/setup-prism.sh`; without it this test
//! fails and says so. Prism serves the paths without `/v2`, keeps no state
//! (every answer is the specification's example), and can hang on malformed
//! JSON, which the client's time-outs cover.

mod vultr;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use troll_providers::vultr::{ApiKey, Client, Settings, Vultr};
use troll_providers::{MemoryJournal, PtrRecord};
use vultr::proxy::Proxy;
use vultr::request;

/// The operations troll uses, as the specification names their paths.
const OPERATIONS: [&str; 18] = [
    "GET /instances",
    "GET /instances/{instance-id}",
    "PATCH /instances/{instance-id}",
    "POST /instances/{instance-id}/reboot",
    "GET /firewalls/{firewall-group-id}/rules",
    "GET /instances/{instance-id}/ipv4",
    "POST /instances/{instance-id}/ipv4",
    "DELETE /instances/{instance-id}/ipv4/{ipv4}",
    "POST /instances/{instance-id}/ipv4/reverse",
    "POST /instances/{instance-id}/ipv4/reverse/default",
    "GET /instances/{instance-id}/ipv6/reverse",
    "POST /instances/{instance-id}/ipv6/reverse",
    "DELETE /instances/{instance-id}/ipv6/reverse/{ipv6}",
    "GET /reserved-ips",
    "POST /reserved-ips",
    "POST /reserved-ips/{reserved-ip}/attach",
    "POST /reserved-ips/{reserved-ip}/detach",
    "DELETE /reserved-ips/{reserved-ip}",
];

/// The instance id in the specification's examples.
const INSTANCE: &str = "cb676a46-66fd-4dfb-b839-443f2e6c0b60";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("providers/ has a parent")
        .to_path_buf()
}

fn prism_binary() -> PathBuf {
    match std::env::var_os("TROLL_PRISM") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".tools/prism/node_modules/.bin/prism"),
    }
}

/// The specification, or `None` (with a message saying why the test is
/// skipped) where shared/ is not beside the repository.
fn spec() -> Option<PathBuf> {
    // shared/ lies beside the repository, on developer machines and in CI;
    // TROLL_VULTR_SPEC names another copy.
    let path = std::env::var_os("TROLL_VULTR_SPEC").map_or_else(
        || repo_root().join("../shared/specs/vultr-openapi.json"),
        PathBuf::from,
    );
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipped: the Vultr OpenAPI specification is not at {} (shared/ beside the repository); the contract test needs it",
            path.display()
        );
        None
    }
}

/// Prism, killed when dropped, also when the test panics.
struct Prism {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Prism {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

impl Prism {
    fn start(spec: &std::path::Path) -> Prism {
        let bin = prism_binary();
        assert!(
            bin.exists(),
            "Prism is not installed at {}: run scripts/setup-prism.sh (it installs @stoplight/prism-cli with npm into .tools/prism)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log =
            std::env::temp_dir().join(format!("troll-prism-{}-{port}.log", std::process::id()));
        let out = std::fs::File::create(&log).expect("prism log file");
        let child = Command::new(&bin)
            .args(["mock", "-h", "127.0.0.1", "-p", &port.to_string()])
            .arg(spec)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log handle"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}; run scripts/setup-prism.sh",
                    bin.display()
                )
            });
        let mut prism = Prism { child, port, log };
        prism.wait_ready();
        prism
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "Prism exited ({status}) before it was ready:\n{}",
                    self.log_text()
                );
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let req = "GET /reserved-ips HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
                let mut answer = String::new();
                if s.write_all(req.as_bytes()).is_ok()
                    && s.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/1.1")
                {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("Prism did not answer within 60 s:\n{}", self.log_text());
    }
}

/// The specification's path template of a request.
fn operation(method: &str, path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    OPERATIONS.iter().copied().find(|op| {
        let (m, template) = op.split_once(' ').unwrap_or_default();
        let t: Vec<&str> = template.trim_start_matches('/').split('/').collect();
        m == method
            && t.len() == parts.len()
            && t.iter()
                .zip(&parts)
                .all(|(t, p)| t.starts_with('{') || t == p)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_passes_prism_validation() {
    let Some(spec) = spec() else {
        return;
    };
    let prism = Prism::start(&spec);
    let proxy = Proxy::start(([127, 0, 0, 1], prism.port).into());
    let settings = Settings {
        base_url: format!("http://{}", proxy.addr),
        request_timeout: Duration::from_secs(10),
        retry_budget: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        show_progress: false,
        ..Settings::default()
    };
    let client = Client::new(settings, ApiKey::new("prism-contract-key").unwrap()).unwrap();
    let v = Vultr::new(client.clone(), INSTANCE, "contract").unwrap();
    let example_v4: Ipv4Addr = "203.0.113.123".parse().unwrap();
    let hop_v6: Ipv6Addr = "2001:db8:5:6bb::1000".parse().unwrap();

    // Every call once, on its own.
    let instance = client.get_instance(INSTANCE).await.unwrap();
    assert_eq!(instance.main_ip, Ipv4Addr::new(192, 0, 2, 123));
    assert_eq!(instance.region, "ewr");
    assert_eq!(client.list_instance_ipv4(INSTANCE).await.unwrap().len(), 3);
    assert_eq!(
        client.create_instance_ipv4(INSTANCE).await.unwrap(),
        Some(Ipv4Addr::new(192, 0, 2, 123))
    );
    client
        .set_reverse_ipv4(INSTANCE, example_v4, "hop-1.troll.example")
        .await
        .unwrap();
    client
        .reset_reverse_ipv4(INSTANCE, example_v4)
        .await
        .unwrap();
    client
        .delete_instance_ipv4(INSTANCE, example_v4)
        .await
        .unwrap();
    let v6 = client.list_reverse_ipv6(INSTANCE).await.unwrap();
    assert_eq!(v6.len(), 1);
    client
        .set_reverse_ipv6(INSTANCE, hop_v6, "hop-2.troll.example")
        .await
        .unwrap();
    client.delete_reverse_ipv6(INSTANCE, hop_v6).await.unwrap();
    assert_eq!(client.list_reserved_ips().await.unwrap().len(), 2);
    let reserved = client
        .create_reserved_ipv4("ewr", "troll-contract")
        .await
        .unwrap();
    client
        .attach_reserved_ip(&reserved.id, INSTANCE)
        .await
        .unwrap();
    client.detach_reserved_ip(&reserved.id).await.unwrap();
    client.delete_reserved_ip(&reserved.id).await.unwrap();
    // Found by main IPv4 (Prism's example list decides whether it matches;
    // the request is what is checked here).
    let _ = client
        .find_instance_by_main_ip(Ipv4Addr::new(192, 0, 2, 123))
        .await;
    client.enable_ipv6(INSTANCE).await.unwrap();
    client.reboot_instance(INSTANCE).await.unwrap();
    client
        .list_firewall_rules("1234abcd-0000-4000-8000-000000000001")
        .await
        .unwrap();

    // The lifecycle as troll runs it (Prism's answers are its examples, so
    // only the requests matter here, not what they add up to).
    let mut j = MemoryJournal::default();
    let p = v.provision(&mut j, request(1, 0, false)).await.unwrap();
    let hop = p.ipv4[0].public;
    v.set_ptrs(
        &mut j,
        &[PtrRecord {
            address: hop,
            name: "never.gonna.give.you.up".into(),
        }],
    )
    .await
    .unwrap();
    v.ptr_status(&[
        hop,
        IpAddr::V6("2001:db8:5:6bb:5400:2ff:fee5:1".parse().unwrap()),
    ])
    .await
    .unwrap();
    v.teardown(&mut j).await.unwrap();
    let mut j = MemoryJournal::default();
    v.provision(&mut j, request(1, 0, true)).await.unwrap();
    v.teardown(&mut j).await.unwrap();

    let exchanges = proxy.exchanges();
    let violations: Vec<String> = exchanges
        .iter()
        .filter(|e| e.violations.is_some() || !(200..300).contains(&e.status))
        .map(|e| {
            format!(
                "{} {} {} -> {}: {}",
                e.method,
                e.target,
                e.request_body,
                e.status,
                e.violations.as_deref().unwrap_or("")
            )
        })
        .collect();
    assert!(
        violations.is_empty(),
        "Prism found requests that break the specification:\n{}",
        violations.join("\n")
    );
    let unknown: Vec<String> = exchanges
        .iter()
        .filter(|e| operation(&e.method, &e.path).is_none())
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    assert!(unknown.is_empty(), "requests outside the list: {unknown:?}");
    let covered: BTreeSet<&str> = exchanges
        .iter()
        .filter_map(|e| operation(&e.method, &e.path))
        .collect();
    let missing: Vec<&str> = OPERATIONS
        .iter()
        .copied()
        .filter(|o| !covered.contains(o))
        .collect();
    assert!(
        missing.is_empty(),
        "operations never exercised: {missing:?}"
    );
    assert!(exchanges.iter().any(|e| e.target.contains("per_page=500")));
    eprintln!(
        "{} requests, {} operations, no violations",
        exchanges.len(),
        covered.len()
    );

    // The detector itself: a request missing a required field is flagged.
    let mut s = TcpStream::connect(proxy.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = r#"{"ip":"192.0.2.123"}"#;
    let req = format!(
        "POST /instances/{INSTANCE}/ipv4/reverse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    let last = proxy.exchanges().pop().unwrap();
    assert!(
        last.violations
            .as_deref()
            .is_some_and(|v| v.contains("reverse")),
        "Prism flags a bad request: {last:?}"
    );
    drop(proxy);
    drop(prism);
}
