//! The Vultr API key never leaves the Authorization header: not in logs
//! (every tracing and log record at TRACE, reqwest's and hyper's included),
//! not in the journal, not in Debug output, not in error messages.

mod vultr;

use std::io::Write;
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use tracing_subscriber::util::SubscriberInitExt;
use troll_providers::vultr::{ApiKey, Client, Vultr};
use troll_providers::{Error, MemoryJournal};
use vultr::fake::{Fake, Fault, INSTANCE};
use vultr::{fast_settings, lifecycle, records_for, request};

const SECRET: &str = "ZX9-secret-KEY-4c1d2b8e7f60a3";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fn capture() -> Capture {
    static INIT: Once = Once::new();
    static CAPTURE: Mutex<Option<Capture>> = Mutex::new(None);
    INIT.call_once(|| {
        let c = Capture::default();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(c.clone())
            .finish()
            .try_init()
            .expect("the only subscriber in this test binary");
        *CAPTURE.lock().unwrap() = Some(c);
    });
    CAPTURE.lock().unwrap().clone().expect("initialised")
}

fn secret_client(url: &str) -> Vultr {
    let client = Client::new(fast_settings(url), ApiKey::new(SECRET).unwrap()).unwrap();
    Vultr::new(client, INSTANCE, "show1").unwrap()
}

fn assert_secret_free(what: &str, text: &str) {
    // The whole key, and any distinctive half of it.
    for needle in [SECRET, &SECRET[..14], &SECRET[14..]] {
        assert!(!text.contains(needle), "{what} contains the key: {text}");
    }
}

#[tokio::test]
async fn the_key_stays_in_the_authorization_header() {
    let logs = capture();
    let mut texts: Vec<(String, String)> = Vec::new();

    // A whole lifecycle, with retries, on a fake that wants the key.
    let fake = Fake::start(SECRET);
    fake.push_faults(None, Fault::Status(429), 3);
    fake.push_faults(Some("GET *"), Fault::Drop, 2);
    fake.push_faults(Some("DELETE *"), Fault::Status(500), 2);
    let v = secret_client(&fake.url());
    let mut j = MemoryJournal::default();
    let wanted = request(2, 2, false);
    let p = v.provision(&mut j, wanted).await.unwrap();
    v.set_ptrs(&mut j, &records_for(&p)).await.unwrap();
    texts.push((
        "journal".into(),
        serde_json::to_string(&j.resources).unwrap(),
    ));
    texts.push(("journal debug".into(), format!("{j:?}")));
    v.teardown(&mut j).await.unwrap();
    let mut reserved = MemoryJournal::default();
    lifecycle(&v, &mut reserved, request(1, 0, true))
        .await
        .unwrap();
    assert!(
        fake.state()
            .log
            .iter()
            .all(|l| l.authorization == format!("Bearer {SECRET}")),
        "the key was sent on every request"
    );

    // Every kind of error.
    let mut errors: Vec<Error> = Vec::new();
    let wrong = Fake::start("the-right-key");
    errors.push(
        secret_client(&wrong.url())
            .provision(&mut j, wanted)
            .await
            .unwrap_err(),
    );
    fake.state().always = Some(Fault::Status(503));
    errors.push(v.provision(&mut j, wanted).await.unwrap_err());
    fake.state().always = Some(Fault::Slow(Duration::from_millis(600)));
    errors.push(v.teardown(&mut j).await.unwrap_err());
    fake.state().always = None;
    let bad = Client::new(fast_settings(&fake.url()), ApiKey::new(SECRET).unwrap()).unwrap();
    errors.push(
        Vultr::new(bad.clone(), "nope-0000", "show1")
            .unwrap()
            .provision(&mut j, wanted)
            .await
            .unwrap_err(),
    );
    errors.push(ApiKey::new(format!("{SECRET} {SECRET}")).unwrap_err());
    errors.push(ApiKey::new(format!("{SECRET}\u{e9}")).unwrap_err());
    // Plain http off loopback is refused before any request is made.
    let insecure = fast_settings("http://192.0.2.1/v2");
    errors.push(Client::new(insecure, ApiKey::new(SECRET).unwrap()).unwrap_err());
    for e in &errors {
        texts.push(("error".into(), e.to_string()));
        texts.push(("error debug".into(), format!("{e:?}")));
    }
    assert!(matches!(errors[0], Error::Auth { .. }));

    // The key from the environment, as troll reads it.
    std::env::set_var("VULTR_API_KEY", SECRET);
    std::env::set_var("TROLL_VULTR_API_URL", fake.url());
    let from_env = Vultr::from_env(INSTANCE, "show2").unwrap();
    let mut env_journal = MemoryJournal::default();
    lifecycle(&from_env, &mut env_journal, request(1, 1, false))
        .await
        .unwrap();
    std::env::remove_var("VULTR_API_KEY");
    std::env::remove_var("TROLL_VULTR_API_URL");
    assert!(Vultr::from_env(INSTANCE, "show2").is_err());

    let key = ApiKey::new(SECRET).unwrap();
    assert_eq!(format!("{key:?}"), "<redacted>");
    texts.push(("key debug".into(), format!("{key:?} {key:#?}")));
    texts.push(("client debug".into(), format!("{bad:?} {bad:#?}")));
    texts.push(("provider debug".into(), format!("{v:?} {from_env:#?}")));
    texts.push((
        "journals".into(),
        format!("{j:?} {reserved:?} {env_journal:?}"),
    ));

    let log_text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        log_text.contains("vultr api"),
        "the capture works: {log_text}"
    );
    assert!(log_text.contains("retrying"), "retries are logged");
    assert!(log_text.contains("TRACE") || log_text.contains("DEBUG"));
    texts.push(("logs".into(), log_text));
    for (what, text) in &texts {
        assert_secret_free(what, text);
    }
}
