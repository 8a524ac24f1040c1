//! `troll provision --print-user-data`: cloud-init user data, rendered from
//! `templates/cloud-init.yaml`, that turns a fresh instance into the
//! server of an existing deployment.
//!
//! The instance gets the deployment's show, not its cloud identity: its
//! addresses are recorded there as a static deployment (the same public and
//! local addresses, in the same order), so the instance needs no API key or
//! IAM role, and the PTR records and address leases stay with the
//! deployment that made them (`troll teardown` still releases them). Every
//! value put into the YAML is a JSON string, which YAML reads unchanged;
//! the download URL is also single-quoted for the shell.

use crate::cli::{Context, ProvisionArgs};
use crate::error::{Error, Result};
use crate::state::State;
use sha2::{Digest, Sha256};
use std::io::Read;
use troll_providers::{AddressPair, ProviderKind};

const TEMPLATE: &str = include_str!("../../templates/cloud-init.yaml");
/// Where the user data installs troll and keeps its state (the unit's
/// `StateDirectory`).
pub const EXE: &str = "/usr/local/bin/troll";
pub const STATE_DIR: &str = "/var/lib/troll";

/// What the operator chooses about the instance.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the instance downloads the troll binary (https or http).
    pub binary_url: String,
    /// Its SHA-256, 64 hex digits.
    pub binary_sha256: String,
    /// Passed to `troll serve --dns` through the unit.
    pub dns: Option<std::net::SocketAddr>,
}

pub fn run(ctx: &Context, args: &ProvisionArgs) -> Result<()> {
    if args.provider.is_some()
        || args.message.is_some()
        || args.file.is_some()
        || !args.target.is_empty()
        || !args.hop_address.is_empty()
        || args.ipv4.is_some()
        || args.ipv6
        || args.reserved
    {
        return Err(Error::Usage(
            "--print-user-data describes the deployment as it is and changes nothing; run it without provisioning flags".into(),
        ));
    }
    let binary_url = args.binary_url.clone().ok_or_else(|| {
        Error::Usage(
            "--print-user-data needs --binary-url URL: where the instance downloads this troll binary (upload target/release/troll somewhere it can reach)".into(),
        )
    })?;
    let binary_sha256 = match &args.binary_sha256 {
        Some(hex) => hex.to_ascii_lowercase(),
        None => own_sha256()?,
    };
    let state = ctx
        .store
        .load(&ctx.deployment)?
        .ok_or_else(|| Error::NoDeployment(ctx.deployment.clone()))?;
    let options = Options {
        binary_url,
        binary_sha256,
        dns: args.service_dns,
    };
    print!("{}", render(&state, &options)?);
    Ok(())
}

/// The SHA-256 of the running binary: what an operator uploads is usually
/// the binary they run.
fn own_sha256() -> Result<String> {
    let path =
        std::env::current_exe().map_err(|e| Error::io("cannot find", "troll's own binary", e))?;
    let mut file = std::fs::File::open(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| Error::io("cannot read", &path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The user data for the instance that serves `state`.
pub fn render(state: &State, options: &Options) -> Result<String> {
    check_url(&options.binary_url)?;
    if options.binary_sha256.len() != 64
        || !options.binary_sha256.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(Error::Usage(format!(
            "--binary-sha256 '{}' is not a SHA-256; give the 64 hex digits `sha256sum` prints",
            options.binary_sha256
        )));
    }
    let message_path = format!("/etc/troll/{}.message", state.deployment);
    let handover = Handover::new(state, &message_path, options.dns, None)?;
    Ok(crate::template::render(
        TEMPLATE,
        &[
            ("message", &json(&handover.message)),
            ("binary_url", &format!("'{}'", options.binary_url)),
            ("binary_sha256", &options.binary_sha256),
            ("provision", &json(&handover.provision)),
            ("set_message", &json(&handover.set_message)),
            ("install_service", &json(&handover.install_service)),
            ("deployment", &state.deployment),
        ],
    ))
}

/// How a deployment is handed to its server: the server records the same
/// addresses as a static deployment and stores the same message, so it
/// needs no cloud credential. Shared by the cloud-init user data and
/// `troll deploy`; each field is one troll command line (argv).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// The message text, as the operator wrote it.
    pub message: String,
    /// `troll provision --provider static --target ... --hop-address ...`
    pub provision: Vec<String>,
    /// `troll set-message --file MESSAGE_FILE [--wrap] [--keep-target-name]`
    pub set_message: Vec<String>,
    /// `troll install-service --exe EXE [--dns ADDR] [--interface IF]`
    pub install_service: Vec<String>,
    /// The arguments after `serve` that the service runs with.
    pub serve_args: Vec<String>,
}

impl Handover {
    /// The handover of `state`; `message_file` is where set-message reads
    /// the message on the server (`-`: standard input).
    pub fn new(
        state: &State,
        message_file: &str,
        dns: Option<std::net::SocketAddr>,
        interface: Option<&str>,
    ) -> Result<Handover> {
        if state.provider == Some(ProviderKind::Local) {
            return Err(Error::Usage(format!(
                "deployment '{}' uses the local lab's addresses, which exist only on this machine; provision it with --provider vultr, aws or static first",
                state.deployment
            )));
        }
        let incomplete = |missing, command| Error::Incomplete {
            deployment: state.deployment.clone(),
            missing,
            command,
        };
        if state.targets.is_empty() || state.addresses.is_empty() {
            return Err(incomplete("addresses", "provision"));
        }
        let message = state
            .message
            .as_deref()
            .ok_or_else(|| incomplete("message", "set-message"))?;

        let troll = |command: &[&str]| -> Vec<String> {
            let mut argv: Vec<String> = [EXE, "--state-dir", STATE_DIR, "--deployment"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            argv.push(state.deployment.clone());
            argv.extend(command.iter().map(|s| s.to_string()));
            argv
        };
        let pairs = |pairs: &[AddressPair]| -> String {
            pairs
                .iter()
                .map(|p| {
                    if p.public == p.local {
                        p.public.to_string()
                    } else {
                        format!("{}={}", p.public, p.local)
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut provision = troll(&["provision", "--provider", "static"]);
        for target in &state.targets {
            provision.extend(["--target".to_string(), pairs(std::slice::from_ref(target))]);
        }
        provision.extend(["--hop-address".to_string(), pairs(&state.addresses)]);

        let mut set_message = troll(&["set-message", "--file", message_file]);
        if state.message_options.wrap {
            set_message.push("--wrap".into());
        }
        if state.message_options.keep_target_name {
            set_message.push("--keep-target-name".into());
        }
        if let Some(lines) = state.message_options.window {
            set_message.extend(["--window".to_string(), lines.to_string()]);
        }
        if let Some(footer) = &state.message_options.window_footer {
            set_message.extend(["--window-footer".to_string(), footer.clone()]);
        }
        let mut serve_args = Vec::new();
        if let Some(dns) = dns {
            serve_args.extend(["--dns".to_string(), dns.to_string()]);
        }
        if let Some(interface) = interface {
            serve_args.extend(["--interface".to_string(), interface.to_string()]);
        }
        let mut install_service = troll(&["install-service", "--exe", EXE]);
        install_service.extend(serve_args.iter().cloned());
        Ok(Handover {
            message: message.to_string(),
            provision,
            set_message,
            install_service,
            serve_args,
        })
    }
}

/// A URL the instance can fetch with curl, safe inside single quotes.
fn check_url(url: &str) -> Result<()> {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let chars_ok = url
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '\'' && c != '\\');
    if scheme_ok && chars_ok && url.len() > "https://".len() {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "--binary-url '{url}' is not a plain http(s) URL; give one without spaces or quotes, like https://example.com/troll"
        )))
    }
}

/// A string or a list of strings as JSON, which YAML reads unchanged.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("strings and lists of strings serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            binary_url: "https://example.com/troll".into(),
            binary_sha256: "ab".repeat(32),
            dns: None,
        }
    }

    #[test]
    fn rejects_urls_the_shell_could_misread() {
        for url in [
            "ftp://x/troll",
            "https://x/a b",
            "https://x/'; rm -rf /",
            "https://",
        ] {
            assert!(check_url(url).is_err(), "{url}");
        }
        assert!(check_url("https://example.com/t?x=1&y=2").is_ok());
    }

    #[test]
    fn refuses_a_state_without_addresses() {
        let state = State {
            deployment: "prod".into(),
            ..State::default()
        };
        let err = render(&state, &options()).unwrap_err();
        assert_eq!(
            err.exit_code(),
            1,
            "not a usage error: the state lacks them"
        );
        assert_eq!(
            err.to_string(),
            "deployment 'prod' has no addresses; run `troll provision` first"
        );
    }
}
