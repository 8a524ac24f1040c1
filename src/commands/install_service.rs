//! `troll install-service`: render the systemd unit for a deployment's
//! `troll serve` from `templates/troll.service` and install it.

use crate::cli::{Context, InstallServiceArgs};
use crate::error::{Error, Result};
use std::path::PathBuf;

const TEMPLATE: &str = include_str!("../../templates/troll.service");

/// The unit's text for `deployment`, running `exe serve ARGS`. It gets
/// CAP_NET_RAW and CAP_NET_ADMIN, and CAP_NET_BIND_SERVICE only when
/// `dns` listens on a privileged port.
pub fn render(exe: &str, deployment: &str, serve_args: &[String]) -> String {
    let args: String = serve_args.iter().map(|a| format!(" {a}")).collect();
    let dns_port = serve_args
        .iter()
        .position(|a| a == "--dns")
        .and_then(|i| serve_args.get(i + 1))
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|port| port.parse::<u16>().ok());
    let capabilities = match dns_port {
        Some(port) if port < 1024 => "CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE",
        _ => "CAP_NET_RAW CAP_NET_ADMIN",
    };
    crate::template::render(
        TEMPLATE,
        &[
            ("capabilities", capabilities),
            ("exe", exe),
            ("deployment", deployment),
            ("serve_args", &args),
        ],
    )
}

pub fn run(ctx: &Context, args: &InstallServiceArgs) -> Result<()> {
    let exe = match &args.exe {
        Some(exe) => exe.clone(),
        None => std::env::current_exe()
            .map_err(|e| Error::io("cannot find", "troll's own binary", e))?,
    };
    let mut serve_args = Vec::new();
    if let Some(dns) = &args.dns {
        serve_args.extend(["--dns".to_string(), dns.to_string()]);
    }
    if let Some(interface) = &args.interface {
        serve_args.extend(["--interface".to_string(), interface.clone()]);
    }
    let unit = render(&exe.to_string_lossy(), &ctx.deployment, &serve_args);
    if args.dry_run {
        print!("{unit}");
        return Ok(());
    }
    let path: PathBuf = args
        .unit_dir
        .join(format!("troll-{}.service", ctx.deployment));
    std::fs::write(&path, &unit).map_err(|e| Error::io("cannot write", &path, e))?;
    println!("wrote {}", path.display());
    println!(
        "start it with: systemctl daemon-reload && systemctl enable --now troll-{}",
        ctx.deployment
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_placeholder() {
        let unit = render(
            "/usr/local/bin/troll",
            "prod",
            &["--dns".into(), "0.0.0.0:53".into()],
        );
        assert!(!unit.contains("{{"), "{unit}");
        assert!(unit.contains(
            "ExecStart=/usr/local/bin/troll --state-dir /var/lib/troll --deployment prod serve --dns 0.0.0.0:53\n"
        ));
        assert!(
            unit.contains("AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE\n")
        );
        assert!(unit.contains("NoNewPrivileges=yes"));
    }

    #[test]
    fn a_path_that_looks_like_a_placeholder_stays_as_it_is() {
        let unit = render("/opt/{{deployment}}/troll", "prod", &[]);
        assert!(
            unit.contains("\nExecStart=/opt/{{deployment}}/troll --state-dir /var/lib/troll --deployment prod serve\n"),
            "{unit}"
        );
    }

    #[test]
    fn grants_only_raw_and_admin_without_a_privileged_dns_port() {
        for args in [vec![], vec!["--dns".to_string(), "[::]:5353".to_string()]] {
            let unit = render("/usr/local/bin/troll", "prod", &args);
            assert!(
                unit.contains("\nCapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN\n"),
                "{unit}"
            );
            assert!(unit.contains("\nAmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN\n"));
        }
    }
}
