//! The HTTP side of the Vultr provider: the API key, the settings, and the
//! one request path every API call goes through, so that pacing, retries,
//! time-outs and the mapping of failures onto [`Error`] are written once.

use crate::{Error, Result};
use reqwest::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Where the Vultr API v2 lives.
pub const DEFAULT_API_URL: &str = "https://api.vultr.com/v2";
/// Overrides [`DEFAULT_API_URL`]; tests point the client at local servers.
pub const API_URL_ENV: &str = "TROLL_VULTR_API_URL";
/// The only place the API key is read from.
pub const API_KEY_ENV: &str = "VULTR_API_KEY";
/// What a 401 means for the operator (a 403 names the refused call). The error reads, in one
/// sentence: "the Vultr API rejected the credentials: check that
/// VULTR_API_KEY is set and has API access enabled for this machine's
/// address".
pub const AUTH_HINT: &str =
    "check that VULTR_API_KEY is set and has API access enabled for this machine's address";

/// The provider's name in errors.
pub(crate) const PROVIDER: &str = "Vultr";

/// A Vultr API key. It is only ever written into the `Authorization`
/// header (marked sensitive); its `Debug` prints `<redacted>` and it has no
/// `Display` or `Serialize`, so it cannot reach logs, errors or the state.
#[derive(Clone)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// Checks that `key` can be sent in a header. The error never repeats
    /// the key.
    pub fn new(key: impl Into<String>) -> Result<ApiKey> {
        let key = key.into();
        let key = key.trim();
        if key.is_empty() {
            return Err(Error::Invalid {
                detail: format!("{API_KEY_ENV} is empty; export the API key from the Vultr portal (Account, API)"),
            });
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::Invalid {
                detail: format!(
                    "{API_KEY_ENV} holds characters an API key cannot have (spaces, control or non-ASCII characters)"
                ),
            });
        }
        Ok(ApiKey(key.into()))
    }

    /// Reads the key from `VULTR_API_KEY`, the only place troll takes it
    /// from (never from arguments, which other users can see in `ps`).
    pub fn from_env() -> Result<ApiKey> {
        match std::env::var(API_KEY_ENV) {
            Ok(key) => ApiKey::new(key),
            Err(_) => Err(Error::Invalid {
                detail: format!(
                    "{API_KEY_ENV} is not set; create an API key in the Vultr portal (Account, API), \
                     allow this machine's address, and export it"
                ),
            }),
        }
    }

    fn header(&self) -> Result<HeaderValue> {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| Error::Invalid {
                detail: format!("{API_KEY_ENV} cannot be sent in an HTTP header"),
            })?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the client talks to the API. [`Settings::default`] suits the real
/// API; tests shorten the time-outs and the retry budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Base URL without a trailing slash, e.g. `https://api.vultr.com/v2`.
    /// Plain `http` is only accepted for loopback addresses.
    pub base_url: String,
    /// Longest wait for one request, from connecting to the last byte of
    /// the answer. A mock that hangs fails the attempt instead of troll.
    pub request_timeout: Duration,
    /// Longest total time spent retrying one call (429, 5xx, time-outs,
    /// dropped connections) before it fails with a clear error.
    pub retry_budget: Duration,
    /// First back-off delay; it doubles per attempt, with jitter.
    pub backoff_initial: Duration,
    /// Largest back-off delay.
    pub backoff_max: Duration,
    /// Requests started per second, for all calls of this client together.
    /// Vultr answers 429 above 30 per second; the default is 25, so that no
    /// 1-second window ever holds more than 26 requests.
    pub max_requests_per_second: u32,
    /// Requests in flight at once.
    pub max_in_flight: usize,
    /// Longest time spent waiting for an instance that Vultr reports busy
    /// with another task ("Server is currently locked", HTTP 500) before
    /// giving up with a clear error.
    pub lock_wait: Duration,
    /// Progress bars (on a terminal) or lines (otherwise) on stderr for
    /// multi-step operations.
    pub show_progress: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            base_url: DEFAULT_API_URL.to_string(),
            request_timeout: Duration::from_secs(20),
            retry_budget: Duration::from_secs(60),
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            max_requests_per_second: 25,
            max_in_flight: 8,
            lock_wait: Duration::from_secs(180),
            show_progress: true,
        }
    }
}

impl Settings {
    /// The defaults, with the base URL from `TROLL_VULTR_API_URL` when it is
    /// set and not empty.
    pub fn from_env() -> Settings {
        let mut settings = Settings::default();
        if let Ok(url) = std::env::var(API_URL_ENV) {
            if !url.trim().is_empty() {
                settings.base_url = url.trim().to_string();
            }
        }
        settings
    }
}

/// Whether a request may be sent again when its outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reading, deleting, or setting a value: repeating it is harmless.
    Safe,
    /// Creating something: repeated only when it surely did not reach the
    /// API (429, connection refused). A time-out or a 5xx leaves the
    /// outcome unknown; the caller reconciles with the API's lists.
    Create,
}

/// One API call, described for sending and for error messages.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<serde_json::Value>,
    /// e.g. "deleting additional IPv4 203.0.113.5 on instance X".
    pub operation: String,
    /// What a 404 means is missing, e.g. "instance X".
    pub subject: String,
    pub retry: Retry,
}

impl Call {
    pub fn new(method: Method, path: String, operation: String, subject: String) -> Call {
        let retry = if method == Method::GET || method == Method::DELETE {
            Retry::Safe
        } else {
            Retry::Create
        };
        Call {
            method,
            path,
            query: Vec::new(),
            body: None,
            operation,
            subject,
            retry,
        }
    }

    pub fn body(mut self, body: serde_json::Value) -> Call {
        self.body = Some(body);
        self
    }

    pub fn query(mut self, key: &'static str, value: String) -> Call {
        self.query.push((key, value));
        self
    }

    /// Marks a call that sets a value (reverse DNS, attach, detach):
    /// sending it twice has the same effect as once.
    pub fn idempotent(mut self) -> Call {
        self.retry = Retry::Safe;
        self
    }

    pub fn error(&self, detail: impl Into<String>) -> Error {
        Error::Api {
            provider: PROVIDER,
            operation: self.operation.clone(),
            detail: detail.into(),
        }
    }
}

/// Spaces request starts evenly: each request takes the next free slot, one
/// every `1 / rate` seconds, whichever task sends it. A window of one second
/// therefore holds at most `rate + 1` starts.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    next: std::sync::Mutex<Instant>,
}

impl Pacer {
    fn new(per_second: u32) -> Pacer {
        Pacer {
            interval: Duration::from_secs(1) / per_second.max(1),
            next: std::sync::Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// The outcome of one attempt.
enum Outcome {
    Done(Vec<u8>),
    /// Worth another attempt: why, and how long the API asked to wait.
    Again(String, Option<Duration>),
    /// The instance is busy with another task (Vultr's "Server is
    /// currently locked"): the call did not take effect; worth another
    /// attempt within [`Settings::lock_wait`].
    Locked(String),
    Fail(Error),
}

/// Vultr's answer while an instance task runs: HTTP 500 with "Server is
/// currently locked" (seen e.g. in vultr/ansible-collection-vultr#113).
pub(crate) fn is_locked_message(message: &str) -> bool {
    message.to_ascii_lowercase().contains("currently locked")
}

/// A Vultr API v2 client: one method per API call (see `api.rs`), all
/// through one paced, retrying, time-limited request path. Cheap to clone;
/// clones share the pacing.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    auth: HeaderValue,
    base: String,
    settings: Settings,
    pacer: Pacer,
    in_flight: Semaphore,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base)
            .field("key", &"<redacted>")
            .field("settings", &self.inner.settings)
            .finish()
    }
}

impl Client {
    /// A client for `settings.base_url` with `key`. Checks the URL: `https`,
    /// or `http` to a loopback address only (the key must not cross a
    /// network in clear text).
    pub fn new(settings: Settings, key: ApiKey) -> Result<Client> {
        let base = settings.base_url.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base).map_err(|e| Error::Invalid {
            detail: format!("{API_URL_ENV} is not a URL ({base}): {e}"),
        })?;
        let host = url.host_str().unwrap_or_default();
        let loopback = host == "localhost"
            || host
                .trim_matches(['[', ']'])
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback());
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            other => {
                return Err(Error::Invalid {
                    detail: format!(
                        "the Vultr API URL must use https (plain {other} is only allowed to 127.0.0.1, ::1 or localhost): {base}"
                    ),
                })
            }
        }
        let http = http_client_builder()
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("troll/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Invalid {
                detail: format!("cannot build the HTTP client: {}", chain(&e)),
            })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                auth: key.header()?,
                base,
                pacer: Pacer::new(settings.max_requests_per_second),
                in_flight: Semaphore::new(settings.max_in_flight.max(1)),
                settings,
            }),
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Sends `call` until it succeeds, fails for good, or the retry budget
    /// is spent, and returns the answer's body.
    pub(crate) async fn send(&self, call: &Call) -> Result<Vec<u8>> {
        let settings = &self.inner.settings;
        let started = Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let (reason, asked, budget) = match self.attempt(call).await {
                Outcome::Done(body) => return Ok(body),
                Outcome::Fail(error) => return Err(error),
                Outcome::Again(reason, asked) => (reason, asked, settings.retry_budget),
                Outcome::Locked(reason) if call.retry == Retry::Create => {
                    // Refused before it started; the caller re-lists and
                    // creates again (see provision).
                    return Err(Error::Busy {
                        provider: PROVIDER,
                        operation: call.operation.clone(),
                        detail: reason,
                    });
                }
                Outcome::Locked(reason) => {
                    let budget = settings.lock_wait.max(settings.retry_budget);
                    if settings.show_progress {
                        eprintln!(
                            "  Vultr: the instance is busy with another task; retrying {} (waited {:.0} s of at most {} s)",
                            call.operation,
                            started.elapsed().as_secs_f64(),
                            budget.as_secs()
                        );
                    }
                    (reason, None, budget)
                }
            };
            let delay = backoff(settings, attempt).max(asked.unwrap_or_default());
            if started.elapsed() + delay > budget {
                tracing::warn!(operation = %call.operation, attempt, %reason, "giving up");
                return Err(call.error(format!(
                    "{reason}; gave up after {attempt} attempt(s) in {:.1} s",
                    started.elapsed().as_secs_f64()
                )));
            }
            tracing::info!(
                operation = %call.operation,
                attempt,
                delay_ms = delay.as_millis() as u64,
                %reason,
                "retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// Sends `call` and reads its JSON answer into `T`.
    pub(crate) async fn send_json<T: DeserializeOwned>(&self, call: &Call) -> Result<T> {
        let body = self.send(call).await?;
        serde_json::from_slice(&body)
            .map_err(|e| call.error(format!("the Vultr API's answer could not be read: {e}")))
    }

    async fn attempt(&self, call: &Call) -> Outcome {
        let inner = &self.inner;
        let Ok(_permit) = inner.in_flight.acquire().await else {
            return Outcome::Fail(call.error("the client is shutting down"));
        };
        inner.pacer.wait().await;
        let url = format!("{}{}", inner.base, call.path);
        let mut request = inner
            .http
            .request(call.method.clone(), url)
            .header(AUTHORIZATION, inner.auth.clone());
        if !call.query.is_empty() {
            request = request.query(&call.query);
        }
        if let Some(body) = &call.body {
            request = request.json(body);
        }
        let started = Instant::now();
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => return self.transport_failure(call, &e),
        };
        let status = response.status();
        let asked = retry_after(response.headers().get(RETRY_AFTER));
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(e) => return self.transport_failure(call, &e),
        };
        tracing::debug!(
            method = %call.method,
            path = %call.path,
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "vultr api"
        );
        classify(call, status, body, asked)
    }

    fn transport_failure(&self, call: &Call, error: &reqwest::Error) -> Outcome {
        let timeout = self.inner.settings.request_timeout;
        let reason = if error.is_timeout() {
            format!("no answer within {:.1} s", timeout.as_secs_f64())
        } else if error.is_connect() {
            format!("cannot connect to the Vultr API: {}", chain(error))
        } else {
            format!("the connection failed: {}", chain(error))
        };
        tracing::debug!(method = %call.method, path = %call.path, %reason, "vultr api");
        if call.retry == Retry::Safe || error.is_connect() {
            Outcome::Again(reason, None)
        } else {
            Outcome::Fail(call.error(unknown_outcome(&reason)))
        }
    }
}

fn unknown_outcome(reason: &str) -> String {
    format!("{reason}; the outcome is unknown (the next provision or teardown reconciles it)")
}

fn classify(call: &Call, status: StatusCode, body: Vec<u8>, asked: Option<Duration>) -> Outcome {
    if status.is_success() {
        return Outcome::Done(body);
    }
    let message = api_message(status, &body);
    match status.as_u16() {
        401 => Outcome::Fail(Error::Auth {
            provider: "the Vultr API",
            hint: AUTH_HINT.to_string(),
        }),
        // The key was read, but this call is not allowed: a sub-account
        // user without the permission, or an address outside the key's
        // access control list. Say which call.
        403 => Outcome::Fail(Error::Permission {
            provider: PROVIDER,
            action: call.operation.clone(),
            hint: format!(
                "Vultr answered HTTP 403 ({message}): give the API key's user the permission for this                  (Account, Users) and allow this machine's address in the key's access control"
            ),
        }),
        500 if is_locked_message(&message) => Outcome::Locked(format!(
            "the instance is busy with another task (Vultr: {message}, HTTP 500)"
        )),
        429 => Outcome::Again(
            "the Vultr API is rate-limiting requests (HTTP 429)".to_string(),
            asked,
        ),
        500..=599 => {
            let reason = format!("the Vultr API failed (HTTP {}: {message})", status.as_u16());
            match call.retry {
                Retry::Safe => Outcome::Again(reason, asked),
                Retry::Create => Outcome::Fail(call.error(unknown_outcome(&reason))),
            }
        }
        404 => Outcome::Fail(Error::NotFound {
            provider: PROVIDER,
            what: format!("{} ({}: {message})", call.subject, call.operation),
        }),
        400..=499 => Outcome::Fail(Error::Conflict {
            provider: PROVIDER,
            detail: format!("{}: {message} (HTTP {})", call.operation, status.as_u16()),
        }),
        other => Outcome::Fail(call.error(format!("unexpected HTTP status {other}"))),
    }
}

/// The `error` field of a Vultr error body, or the status's reason.
fn api_message(status: StatusCode, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ApiError {
        error: Option<String>,
    }
    let from_body = serde_json::from_slice::<ApiError>(body)
        .ok()
        .and_then(|e| e.error)
        .map(|e| {
            e.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect::<String>()
        })
        .filter(|e| !e.is_empty());
    from_body.unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("no reason given")
            .to_string()
    })
}

fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let seconds: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(30)))
}

/// The back-off before attempt `attempt + 1`, for callers that retry
/// themselves (a create refused while the instance was locked).
pub(crate) fn backoff_delay(settings: &Settings, attempt: u32) -> Duration {
    backoff(settings, attempt)
}

/// Exponential back-off with jitter: the nth delay is uniformly drawn from
/// the upper half of `initial * 2^(n-1)`, capped at `backoff_max`.
fn backoff(settings: &Settings, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(16);
    let full = settings
        .backoff_initial
        .saturating_mul(1 << exp)
        .min(settings.backoff_max);
    let half = full / 2;
    half + half.mul_f64(fastrand::f64())
}

/// An error and its causes on one line ("error sending request: connection
/// closed before message completed").
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A reqwest builder whose TLS uses rustls on aws-lc. reqwest is built
/// without a crypto provider of its own (see the workspace Cargo.toml), so
/// the process-wide one is installed first; a second call finds it there.
pub(crate) fn http_client_builder() -> reqwest::ClientBuilder {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_real_api_gets_a_tls_client() {
        // Builds rustls with its crypto provider; no request is made.
        let client = Client::new(Settings::default(), ApiKey::new("k").unwrap()).unwrap();
        assert!(format!("{client:?}").contains("https://api.vultr.com/v2"));
    }

    #[test]
    fn plain_http_only_to_loopback() {
        let key = || ApiKey::new("k").unwrap();
        for url in [
            "http://127.0.0.1:8080/v2",
            "http://[::1]:1/",
            "http://localhost/v2",
        ] {
            let settings = Settings {
                base_url: url.into(),
                ..Settings::default()
            };
            assert!(Client::new(settings, key()).is_ok(), "{url}");
        }
        for url in [
            "http://api.vultr.com/v2",
            "http://192.0.2.1/v2",
            "ftp://x/",
            "not a url",
        ] {
            let settings = Settings {
                base_url: url.into(),
                ..Settings::default()
            };
            assert!(Client::new(settings, key()).is_err(), "{url}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let s = Settings::default();
        for attempt in 1..20 {
            let full = s
                .backoff_initial
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(s.backoff_max);
            let d = backoff(&s, attempt);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
    }

    #[tokio::test]
    async fn the_pacer_spaces_requests_evenly() {
        let pacer = Pacer::new(100);
        let start = Instant::now();
        let waits = (0..21).map(|_| pacer.wait());
        futures_util::future::join_all(waits).await;
        // 21 starts at 100 per second, all asked for at once: the last one
        // 200 ms after the first.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(400), "{elapsed:?}");
    }

    #[test]
    fn error_bodies_and_retry_after_are_read() {
        let body = br#"{"error":"Invalid instance-id.","status":404}"#;
        assert_eq!(
            api_message(StatusCode::NOT_FOUND, body),
            "Invalid instance-id."
        );
        assert_eq!(
            api_message(StatusCode::BAD_GATEWAY, b"<html>"),
            "Bad Gateway"
        );
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("3"))),
            Some(Duration::from_secs(3))
        );
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), None);
    }

    #[test]
    fn the_key_is_redacted_and_checked() {
        let key = ApiKey::new("  abc123  ").unwrap();
        assert_eq!(format!("{key:?}"), "<redacted>");
        assert!(ApiKey::new("").is_err());
        let e = ApiKey::new("abc 123").unwrap_err().to_string();
        assert!(!e.contains("abc"), "{e}");
    }
}
