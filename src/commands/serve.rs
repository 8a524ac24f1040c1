//! `troll serve`: keep the kernel quiet about the fake hops and answer
//! probes for them, in the foreground, until SIGINT or SIGTERM.
//!
//! Order matters for "never break the host": the sockets are opened first
//! (a missing privilege fails before anything changes), the rules are
//! recorded in the state before they are applied (a crash is cleaned up by
//! the next serve or teardown), and on exit they are removed and the state
//! says so.

use crate::cli::{Context, ServeArgs};
use crate::dns::{DnsServer, ZoneData};
use crate::error::{Error, Result};
use crate::hostaddr::{self, Assignment, WindowTarget};
use crate::plan::Hop;
use crate::responder::decide::Table;
use crate::responder::ports::ProcPorts;
use crate::responder::ratelimit::{RateLimiter, DEFAULT_BURST, DEFAULT_RATE};
use crate::responder::settings::DelaySettings;
use crate::responder::socket::LinkIo;
use crate::responder::{Control, Counters, Moderation, Responder};
use crate::rules::{self, Target, MARK};
use crate::state::{AppliedRule, AssignedAddress, State, Store};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use troll_providers::Family;

/// Default TTL of the PTR answers: low, so a new message shows quickly.
pub const DEFAULT_DNS_TTL: u32 = 60;

/// One show as the responder needs it: the target's local address and the
/// local address answering each arrival TTL (`None`: silent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireShow {
    pub target: IpAddr,
    pub hops: Vec<Option<IpAddr>>,
    /// `(local, public)` for the target and each named hop whose public
    /// address differs (behind a 1:1 NAT): the responder's errors quote the
    /// probe with the public one.
    pub public: Vec<(IpAddr, IpAddr)>,
}

/// The shows to serve: from flags if given, else from the deployment.
pub fn wire_shows(
    args: &ServeArgs,
    state: Option<&State>,
    deployment: &str,
) -> Result<Vec<WireShow>> {
    match (&args.target, &args.hops) {
        (Some(target), hops) => {
            let hops = hops.as_ref().map(|h| h.0.clone()).unwrap_or_default();
            let family = Family::of(*target);
            if let Some(other) = hops.iter().flatten().find(|h| Family::of(**h) != family) {
                return Err(Error::Usage(format!(
                    "--hops: {other} is not an {family} address like the target; a show is in one family"
                )));
            }
            if hops.iter().flatten().any(|h| h == target) {
                return Err(Error::Usage(format!(
                    "--hops contains the target {target}; hop addresses must differ from it"
                )));
            }
            Ok(vec![WireShow {
                target: *target,
                hops,
                public: Vec::new(),
            }])
        }
        (None, Some(_)) => Err(Error::Usage("--hops needs --target".into())),
        (None, None) => {
            let state = state.ok_or_else(|| Error::NoDeployment(deployment.to_string()))?;
            let mut shows = Vec::new();
            for show in state.shows()? {
                let hops = show
                    .hops
                    .iter()
                    .map(|hop| match hop {
                        Hop::Named { address, .. } => Some(address.local),
                        Hop::Silent => None,
                    })
                    .collect();
                let public = std::iter::once(show.target)
                    .chain(show.hops.iter().filter_map(|hop| match hop {
                        Hop::Named { address, .. } => Some(*address),
                        Hop::Silent => None,
                    }))
                    .filter(|pair| pair.public != pair.local)
                    .map(|pair| (pair.local, pair.public))
                    .collect();
                shows.push(WireShow {
                    target: show.target.local,
                    hops,
                    public,
                });
            }
            Ok(shows)
        }
    }
}

/// The targets of windows 2.. (of a message split with `--window`) and
/// the deployment's main targets (window 1's, one per family); none for a
/// show from flags, which has no windows.
fn window_targets(args: &ServeArgs, state: Option<&State>) -> (Vec<WindowTarget>, Vec<IpAddr>) {
    if args.target.is_some() {
        return (Vec::new(), Vec::new());
    }
    let Some(shows) = state.and_then(|s| s.shows().ok()) else {
        return (Vec::new(), Vec::new());
    };
    let wanted = shows
        .iter()
        .filter(|show| show.window > 0)
        .map(|show| WindowTarget {
            window: show.window,
            address: show.target.local,
        })
        .collect();
    let mains = shows
        .iter()
        .filter(|show| show.window == 0)
        .map(|show| show.target.local)
        .collect();
    (wanted, mains)
}

/// Which window targets to add to the host and which of troll's earlier
/// ones (`ours`) to remove. Reads the host's addresses only when there is
/// something to decide.
fn assignment(
    args: &ServeArgs,
    state: Option<&State>,
    interface: Option<&str>,
    ours: &[AssignedAddress],
) -> Result<Assignment> {
    let (wanted, mains) = window_targets(args, state);
    if wanted.is_empty() && ours.is_empty() {
        return Ok(Assignment::default());
    }
    let held = hostaddr::held()?;
    let assignment = hostaddr::plan(&wanted, &mains, interface, &held, ours);
    // A window target troll cannot add: no interface holds the main
    // target of its family, and none was given.
    for target in &assignment.homeless {
        let addr = target.address;
        let (family, prefix) = if addr.is_ipv4() {
            ("IPv4", 32)
        } else {
            ("IPv6", 128)
        };
        tracing::warn!(
            "the target of window {} ({addr}) is not an address of this host and no interface holds the deployment's {family} target to add it to: its last hop gets no echo reply or TCP answer; give --interface, or add it yourself (`ip addr add {addr}/{prefix} dev IF`)",
            target.window + 1,
        );
    }
    Ok(assignment)
}

/// Settings of the embedded DNS server.
#[derive(Debug, Clone)]
struct DnsSettings {
    addr: SocketAddr,
    ttl: u32,
    nameserver: Option<String>,
}

impl DnsSettings {
    fn from_args(
        args: &ServeArgs,
        config: &crate::config::ServeConfig,
    ) -> Result<Option<DnsSettings>> {
        if args.target.is_some() && args.dns.is_none() {
            // The config file's DNS address is for deployments with names.
            return Ok(None);
        }
        let Some(addr) = args.dns.or(config.dns) else {
            return Ok(None);
        };
        if args.target.is_some() {
            return Err(Error::Usage(
                "--dns serves the names of a deployment's message; with --target/--hops there are none (store a message with `troll set-message` and provision the addresses instead)".into(),
            ));
        }
        Ok(Some(DnsSettings {
            addr,
            ttl: args.dns_ttl.or(config.dns_ttl).unwrap_or(DEFAULT_DNS_TTL),
            nameserver: args.dns_nameserver.clone(),
        }))
    }

    /// The zones of the deployment's current message.
    fn zone(&self, state: Option<&State>, deployment: &str) -> Result<ZoneData> {
        let state = state.ok_or_else(|| Error::NoDeployment(deployment.to_string()))?;
        ZoneData::from_state(state, self.ttl, self.nameserver.as_deref())
    }
}

/// The rules for the shows' targets and for their hop addresses, which
/// answer as router interfaces.
fn render(deployment: &str, shows: &[WireShow]) -> Vec<AppliedRule> {
    let targets: Vec<Target> = shows
        .iter()
        .map(|s| Target {
            address: s.target,
            hops: s.hops.len(),
            hop_address: false,
        })
        .chain(table(shows).hop_addresses().map(|(address, hops)| Target {
            address,
            hops,
            hop_address: true,
        }))
        .collect();
    rules::render(deployment, &targets)
}

/// The round-trip delays to serve: the flags' if given, else the
/// deployment's stored ones.
fn delay_settings(args: &ServeArgs, state: Option<&State>) -> DelaySettings {
    args.delays
        .settings()
        .or_else(|| state.map(|s| s.delays.clone()))
        .unwrap_or_default()
}

fn table(shows: &[WireShow]) -> Table {
    Table::router(shows.iter().map(|s| (s.target, s.hops.clone())))
        .with_public(shows.iter().flat_map(|s| s.public.iter().copied()))
}

/// Removes what an earlier serve recorded and left behind (after a crash
/// or SIGKILL): its rules and the window targets it added; and forgets it.
pub fn clean_leftovers(state: &mut State) -> Result<()> {
    if !state.rules.is_empty() {
        tracing::info!(
            "removing {} chain(s) left by an earlier run",
            state.rules.len()
        );
        rules::remove(&state.rules)?;
        state.rules.clear();
    }
    if !state.assigned.is_empty() {
        tracing::info!(
            "removing {} address(es) added by an earlier run",
            state.assigned.len()
        );
        hostaddr::remove(&state.assigned)?;
        state.assigned.clear();
    }
    Ok(())
}

pub fn run(ctx: &Context, args: &ServeArgs) -> Result<()> {
    let deployment = ctx.deployment.as_str();
    let state = ctx.store.load(deployment)?;
    let shows = wire_shows(args, state.as_ref(), deployment)?;
    let mut rules = render(deployment, &shows);
    let serve_cfg = &ctx.config.serve;
    let interface = args
        .interface
        .clone()
        .or_else(|| serve_cfg.interface.clone());
    if args.dry_run {
        let ours = state
            .as_ref()
            .map(|s| s.assigned.as_slice())
            .unwrap_or_default();
        let addresses = assignment(args, state.as_ref(), interface.as_deref(), ours)?;
        print!(
            "{}{}",
            hostaddr::describe(&addresses.add),
            rules::describe(&rules)
        );
        return Ok(());
    }

    // Check every setting before anything changes.
    DnsSettings::from_args(args, serve_cfg)?;
    // Sockets first: without the privilege nothing must change.
    let mut io = LinkIo::open(
        interface.as_deref(),
        MARK,
        Duration::from_millis(200),
        args.rx,
        args.tx,
    )
    .map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            Error::Privilege(
                "troll serve needs root, or CAP_NET_RAW and CAP_NET_ADMIN, to read probes and send replies; run it with sudo".into(),
            )
        } else {
            Error::Responder {
                op: "cannot open the sockets",
                interface: interface.clone(),
                source: e,
            }
        }
    })?;
    let _serving = ctx.store.serve_lock(deployment)?;
    let dns_settings = DnsSettings::from_args(args, serve_cfg)?;
    // Bound now, while binding port 53 is allowed; served only after the
    // privileges are dropped, so its thread never holds more than the rest.
    let dns_bound = match &dns_settings {
        Some(settings) => Some((
            DnsServer::bind(settings.addr)?,
            settings.zone(state.as_ref(), deployment)?,
        )),
        None => None,
    };

    {
        let mut locked = ctx.store.lock(deployment)?;
        clean_leftovers(&mut locked.state)?;
        // After the leftovers are gone: an address an earlier run added is
        // not mistaken for the operator's.
        let addresses = assignment(args, state.as_ref(), interface.as_deref(), &[])?;
        rules::mark_new_tables(&mut rules, &[])?;
        locked.state.rules = rules.clone();
        locked.state.assigned = addresses.add.clone();
        locked.state.serve_pid = Some(std::process::id());
        locked.save()?;
        // `hostaddr::apply` takes back its own on failure.
        let applied = hostaddr::apply(&addresses.add).and_then(|()| {
            rules::apply(&rules).inspect_err(|_| {
                let _ = hostaddr::remove(&addresses.add);
            })
        });
        if let Err(e) = applied {
            let _ = rules::remove(&rules);
            locked.state.rules.clear();
            locked.state.assigned.clear();
            locked.state.serve_pid = None;
            locked.save()?;
            return Err(e);
        }
    }

    let control = Control::default();
    for (signal, flag) in [
        (signal_hook::consts::SIGINT, &control.stop),
        (signal_hook::consts::SIGTERM, &control.stop),
        (signal_hook::consts::SIGHUP, &control.reload),
        (signal_hook::consts::SIGUSR1, &control.dump),
    ] {
        if let Err(e) = signal_hook::flag::register(signal, flag.clone()) {
            withdraw(&ctx.store, deployment)?;
            return Err(Error::Responder {
                op: "cannot install a signal handler",
                interface: None,
                source: e,
            });
        }
    }

    let rate = args.rate.or(serve_cfg.rate).unwrap_or(DEFAULT_RATE);
    let burst = args.burst.or(serve_cfg.burst).unwrap_or(DEFAULT_BURST);
    let mut responder = Responder::new(
        table(&shows),
        ProcPorts::new(),
        RateLimiter::new(rate, burst),
    );
    let delays = delay_settings(args, state.as_ref());
    responder.delays = delays.delays();
    tracing::info!("round-trip delays: {}", delays.describe());
    for show in &shows {
        let named = show.hops.iter().flatten().count();
        tracing::info!(
            "serving {}: {} fake hop(s), {} answered, {} silent; rate limit {rate}/s, burst {burst} per source",
            show.target,
            show.hops.len(),
            named,
            show.hops.len() - named
        );
    }

    // Every socket is open and no thread runs yet: capset and the bounding
    // set act on the calling thread only, so every thread started from here
    // on (the DNS server's) inherits the reduced set.
    match crate::privileges::drop_all_but_net() {
        Ok(line) => tracing::info!("{line}"),
        Err(e) => tracing::warn!("could not drop privileges: {e}"),
    }
    let dns = match dns_bound {
        Some((bound, zone)) => match bound.start(zone) {
            Ok(server) => {
                tracing::info!(
                    "answering PTR queries on {} (UDP and TCP)",
                    server.local_addr()
                );
                Some(server)
            }
            Err(e) => {
                withdraw(&ctx.store, deployment)?;
                return Err(e.into());
            }
        },
        None => None,
    };
    tracing::info!("ready: answering probes for {} target(s)", shows.len());
    let store = ctx.store.clone();
    let counters_path = store.counters_path(deployment);
    let mut saved = SavedCounters::default();
    let started = Instant::now();
    // The moderation pause is short; the default timer slack (50 us)
    // would double it.
    // SAFETY: prctl with an integer argument; no memory is passed.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 5_000 as libc::c_ulong) };
    let moderation = Moderation::new(Duration::from_micros(args.coalesce.into()));
    let result = responder.run(&mut io, &control, Duration::from_secs(1), moderation, |r| {
        if control.dump.swap(false, Ordering::Relaxed) {
            tracing::info!(
                "counters after {:?}: {}",
                started.elapsed(),
                r.counters.summary()
            );
        }
        if control.reload.swap(false, Ordering::Relaxed) {
            reload(
                &store,
                deployment,
                args,
                interface.as_deref(),
                r,
                dns.as_ref().zip(dns_settings.as_ref()),
            );
        }
        let dns_bad_queries = dns.as_ref().map(DnsServer::bad_queries).unwrap_or_default();
        if r.counters != saved.responder || dns_bad_queries != saved.dns_bad_queries {
            saved = SavedCounters {
                responder: r.counters.clone(),
                dns_bad_queries,
            };
            save_counters(&counters_path, &saved);
        }
    });

    tracing::info!("stopping; counters: {}", responder.counters.summary());
    let saved = SavedCounters {
        responder: responder.counters.clone(),
        dns_bad_queries: dns.as_ref().map(DnsServer::bad_queries).unwrap_or_default(),
    };
    if let Some(server) = dns {
        if !saved.dns_bad_queries.is_empty() {
            tracing::info!(
                "DNS bad queries: {}",
                crate::dns::bad_query_summary(&saved.dns_bad_queries)
            );
        }
        server.shutdown();
    }
    save_counters(&counters_path, &saved);
    withdraw(&ctx.store, deployment)?;
    result.map_err(|e| Error::Responder {
        op: "receiving failed",
        interface,
        source: e,
    })
}

/// Removes the rules this serve applied and the addresses it added, and
/// says in the state that it no longer serves.
fn withdraw(store: &Store, deployment: &str) -> Result<()> {
    let mut locked = store.lock(deployment)?;
    let removed = rules::remove(&locked.state.rules);
    let unassigned = hostaddr::remove(&locked.state.assigned);
    locked.state.rules.clear();
    locked.state.assigned.clear();
    locked.state.serve_pid = None;
    locked.save()?;
    removed.and(unassigned)
}

/// SIGHUP: a new message was stored; follow it (hop table and rules).
fn reload(
    store: &Store,
    deployment: &str,
    args: &ServeArgs,
    interface: Option<&str>,
    responder: &mut Responder<ProcPorts>,
    dns: Option<(&DnsServer, &DnsSettings)>,
) {
    let outcome = (|| -> Result<usize> {
        let state = store.load(deployment)?;
        let shows = wire_shows(args, state.as_ref(), deployment)?;
        // Build everything first: a bad new state changes nothing.
        let zone = dns
            .map(|(_, s)| s.zone(state.as_ref(), deployment))
            .transpose()?;
        let mut rules = render(deployment, &shows);
        let mut locked = store.lock(deployment)?;
        let addresses = assignment(args, state.as_ref(), interface, &locked.state.assigned)?;
        let old = std::mem::take(&mut locked.state.rules);
        rules::mark_new_tables(&mut rules, &old)?;
        // Record the union first: a crash now still removes both.
        locked.state.rules = old.iter().chain(&rules).cloned().collect();
        let old_assigned = locked.state.assigned.clone();
        locked.state.assigned.extend(addresses.add.iter().cloned());
        locked.save()?;
        if let Err(e) = hostaddr::apply(&addresses.add) {
            // Nothing new was added (apply takes back its own).
            locked.state.rules = old;
            locked.state.assigned = old_assigned;
            locked.save()?;
            return Err(e);
        }
        rules::apply(&rules)?;
        let stale: Vec<AppliedRule> = old
            .into_iter()
            .filter(|o| !rules.iter().any(|n| n.chain == o.chain))
            .collect();
        rules::remove(&stale)?;
        hostaddr::remove(&addresses.stale)?;
        locked.state.rules = rules;
        locked.state.assigned = addresses.holds();
        locked.save()?;
        responder.table = table(&shows);
        responder.delays = delay_settings(args, state.as_ref()).delays();
        if let (Some((server, _)), Some(zone)) = (dns, zone) {
            server.update(zone);
        }
        Ok(shows.iter().map(|s| s.hops.len()).sum())
    })();
    match outcome {
        Ok(hops) => tracing::info!("reloaded the show: {hops} fake hop(s)"),
        Err(e) => tracing::error!("reload failed, still serving the previous show: {e}"),
    }
}

/// What serve writes to the counters file (`troll status` reads it): the
/// responder's counters and, with `--dns`, the bad DNS queries by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCounters {
    #[serde(flatten)]
    pub responder: Counters,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dns_bad_queries: BTreeMap<String, u64>,
}

fn save_counters(path: &std::path::Path, counters: &SavedCounters) {
    let snapshot = SavedCounters {
        responder: counters.responder.snapshot(),
        dns_bad_queries: counters.dns_bad_queries.clone(),
    };
    let text = serde_json::to_string_pretty(&snapshot).expect("counters are plain data");
    let tmp = path.with_extension("json.tmp");
    if let Err(e) = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path)) {
        tracing::warn!("cannot save counters to {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve_args(flags: &[&str]) -> ServeArgs {
        use clap::Parser;
        let argv = ["troll", "serve"].iter().chain(flags);
        match crate::cli::Cli::try_parse_from(argv).unwrap().command {
            crate::cli::Command::Serve(args) => args,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn hops_from_flags_are_of_the_targets_family_and_not_the_target() {
        let shows = |flags: &[&str]| wire_shows(&serve_args(flags), None, "lab");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let got = shows(&[
            "--target",
            "198.18.0.9",
            "--hops",
            "198.18.0.1, -,198.18.0.3",
        ])
        .unwrap();
        assert_eq!(
            got,
            vec![WireShow {
                target: ip("198.18.0.9"),
                hops: vec![Some(ip("198.18.0.1")), None, Some(ip("198.18.0.3"))],
                public: Vec::new(),
            }]
        );
        let err = shows(&["--target", "198.18.0.9", "--hops", "2001:db8::1,-"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string()
                .contains("2001:db8::1 is not an IPv4 address like the target"),
            "{err}"
        );
        let err = shows(&["--target", "198.18.0.9", "--hops", "198.18.0.9"]).unwrap_err();
        assert!(err.to_string().contains("contains the target"), "{err}");
        let err = shows(&["--hops", "198.18.0.1"]).unwrap_err();
        assert_eq!(err.to_string(), "--hops needs --target");
        assert_eq!(
            shows(&["--target", "2001:db8::9", "--hops", "2001:db8::1,-"]).unwrap()[0]
                .hops
                .len(),
            2
        );
    }

    #[test]
    fn the_table_knows_the_public_addresses() {
        let addr = |s: &str| s.parse::<IpAddr>().unwrap();
        let shows = [WireShow {
            target: addr("10.20.0.100"),
            hops: vec![Some(addr("10.20.0.101")), None],
            public: vec![
                (addr("10.20.0.100"), addr("198.51.100.100")),
                (addr("10.20.0.101"), addr("198.51.100.101")),
            ],
        }];
        let table = table(&shows);
        assert_eq!(
            table.public(addr("10.20.0.100")),
            Some(addr("198.51.100.100"))
        );
        // The hop address answers as an interface, quoting its own.
        assert_eq!(
            table.public(addr("10.20.0.101")),
            Some(addr("198.51.100.101"))
        );
    }
}
