//! The bridge between the synchronous commands and the providers: building
//! a deployment's provider (from its state, or from `troll provision`'s
//! flags) through [`troll_providers::build`], and running the provider's
//! async calls on a small runtime.

use crate::cli::value::all_pairs;
use crate::cli::ProvisionArgs;
use crate::error::{Error, Result};
use crate::state::{Locked, ReadJournal, State};
use std::sync::OnceLock;
use troll_providers::aws::AwsSettings;
use troll_providers::{
    vultr, AddressRequest, Family, Provider, ProviderKind, ProviderSettings, ProvisionPlan,
    Provisioned,
};

/// Runs one provider future to completion, on the process's one runtime.
/// One, not one per call: a provider is built in one call and used in the
/// next, and the pooled connections its HTTP client opened are served by
/// tasks of the runtime that opened them, which would die with it.
pub fn block_on<F: std::future::Future>(future: F) -> Result<F::Output> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = match RUNTIME.get() {
        Some(runtime) => runtime,
        None => {
            let built = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::io("cannot start the async runtime", "tokio", e))?;
            RUNTIME.get_or_init(|| built)
        }
    };
    Ok(runtime.block_on(future))
}

/// Builds the provider recorded in the state (cloud credentials from the
/// environment); `None` for a deployment not provisioned yet.
pub fn provider_of(state: &State) -> Result<Option<Box<dyn Provider>>> {
    let Some(kind) = state.provider else {
        return Ok(None);
    };
    let instance = || {
        state.instance.clone().ok_or_else(|| Error::StateCorrupt {
            path: state.deployment.clone().into(),
            detail: "a cloud deployment without an instance id".into(),
        })
    };
    let settings = match kind {
        ProviderKind::Local => ProviderSettings::Local {
            families: state.targets.iter().map(|t| t.family()).collect(),
        },
        ProviderKind::Static => ProviderSettings::Static {
            targets: state.targets.clone(),
            hops: state.addresses.clone(),
        },
        ProviderKind::Vultr => ProviderSettings::Vultr {
            instance: instance()?,
            deployment: state.deployment.clone(),
            options: vultr::Options::default(),
        },
        ProviderKind::Aws => ProviderSettings::Aws {
            settings: AwsSettings {
                deployment: state.deployment.clone(),
                domain: state.domain.clone().unwrap_or_default(),
                instance_id: Some(instance()?),
                region: state.region.clone(),
            },
            route53_zone: state.route53_zone.clone(),
        },
    };
    Ok(Some(block_on(troll_providers::build(settings))??))
}

/// What `troll provision` asks of a provider, from its flags and what the
/// deployment holds.
#[derive(Debug, Clone)]
pub struct ProvisionSpec {
    pub settings: ProviderSettings,
    pub request: AddressRequest,
    /// What the state must record before the provider's first call, so
    /// that teardown finds whatever an interrupted run created; `None` for
    /// a provider that makes no call.
    pub record_first: Option<RecordFirst>,
}

/// The state fields a cloud provision records before its first call.
#[derive(Debug, Clone, Default)]
pub struct RecordFirst {
    pub instance: Option<String>,
    pub domain: Option<String>,
    pub route53_zone: Option<String>,
}

impl RecordFirst {
    /// Writes the fields into `state` (the caller saves it).
    pub fn apply(&self, kind: ProviderKind, state: &mut State) {
        state.provider = Some(kind);
        if let Some(instance) = &self.instance {
            state.instance = Some(instance.clone());
        }
        if let Some(domain) = &self.domain {
            state.domain = Some(domain.clone());
        }
        if let Some(zone) = &self.route53_zone {
            state.route53_zone = Some(zone.clone());
        }
    }
}

/// Checks the flags `kind` takes and works out its settings and request.
/// `ipv6`: the deployment serves IPv6; `size(held)`: how many hops, given
/// how many the deployment holds already.
pub fn provision_spec(
    deployment: &str,
    args: &ProvisionArgs,
    state: &State,
    kind: ProviderKind,
    ipv6: bool,
    size: impl Fn(usize) -> Result<usize>,
) -> Result<ProvisionSpec> {
    let held = |family| {
        state
            .addresses
            .iter()
            .filter(|a| a.family() == family)
            .count()
    };
    Ok(match kind {
        ProviderKind::Static => {
            let hops = all_pairs(&args.hop_address);
            let count = |family| hops.iter().filter(|p| p.family() == family).count();
            let request = AddressRequest {
                ipv4: count(Family::Ipv4),
                ipv6: count(Family::Ipv6),
            };
            ProvisionSpec {
                settings: ProviderSettings::Static {
                    targets: all_pairs(&args.target),
                    hops,
                },
                request,
                record_first: None,
            }
        }
        ProviderKind::Local => {
            if !args.target.is_empty() || !args.hop_address.is_empty() {
                return Err(Error::Usage(
                    "--target and --hop-address are for --provider static; the local provider picks its own".into(),
                ));
            }
            // Keep what the deployment holds; only add what is missing.
            let count = size(held(Family::Ipv4).max(held(Family::Ipv6)))?;
            let families = if ipv6 {
                vec![Family::Ipv4, Family::Ipv6]
            } else {
                vec![Family::Ipv4]
            };
            ProvisionSpec {
                settings: ProviderSettings::Local { families },
                request: AddressRequest {
                    ipv4: count,
                    ipv6: if ipv6 { count } else { 0 },
                },
                record_first: None,
            }
        }
        ProviderKind::Vultr => {
            let instance =
                vultr_instance(args.instance.clone(), state.instance.clone(), args.host)?;
            let options = vultr::Options {
                ipv6,
                reserved: args.reserved,
                modify_instance: !args.no_modify_instance,
                reboot: args.reboot,
            };
            let count = size(held(Family::Ipv4))?;
            ProvisionSpec {
                record_first: Some(RecordFirst {
                    instance: Some(instance.clone()),
                    ..RecordFirst::default()
                }),
                settings: ProviderSettings::Vultr {
                    instance,
                    deployment: deployment.to_string(),
                    options,
                },
                request: AddressRequest {
                    ipv4: count,
                    ipv6: if ipv6 { count } else { 0 },
                },
            }
        }
        ProviderKind::Aws => {
            let domain = args.domain.clone().or(state.domain.clone()).ok_or_else(|| {
                Error::Usage(
                    "--provider aws needs --domain DOMAIN: AWS sets a reverse name only when a forward A record under a domain you control points to the Elastic IP".into(),
                )
            })?;
            let count = size(state.addresses.len())?;
            ProvisionSpec {
                record_first: Some(RecordFirst {
                    domain: Some(domain.clone()),
                    route53_zone: args.route53_zone.as_ref().map(|z| z.trim().to_string()),
                    ..RecordFirst::default()
                }),
                // The zone is needed only to publish names: provisioning
                // makes no Route 53 call.
                settings: ProviderSettings::Aws {
                    settings: AwsSettings {
                        deployment: deployment.to_string(),
                        domain,
                        instance_id: args.instance.clone().or(state.instance.clone()),
                        region: args.region.clone().or(state.region.clone()),
                    },
                    route53_zone: None,
                },
                request: AddressRequest {
                    ipv4: count,
                    ipv6: 0,
                },
            }
        }
    })
}

/// What the provision would do, from read calls only; `None` for a
/// provider that makes no call.
pub fn plan(state: &State, spec: ProvisionSpec) -> Result<Option<ProvisionPlan>> {
    let provider = block_on(troll_providers::build(spec.settings))??;
    Ok(block_on(provider.plan(&ReadJournal(state), spec.request))??)
}

/// Provisions: prints the plan and its cost (cloud providers), makes the
/// calls, and prints the provider's notes.
pub fn provision(locked: &mut Locked, spec: ProvisionSpec) -> Result<Provisioned> {
    let provider = block_on(troll_providers::build(spec.settings))??;
    if let Some(plan) = block_on(provider.plan(&ReadJournal(&locked.state), spec.request))?? {
        print!("{}", plan.render());
    }
    let out = block_on(provider.provision(locked, spec.request))??;
    for note in &out.notes {
        println!("{note}");
    }
    Ok(out)
}

/// The Vultr instance to serve on: `--instance`, the one recorded, the
/// one whose main IPv4 is `--host`, or (on the instance) the metadata
/// service's `instance-v2-id`.
pub fn vultr_instance(
    given: Option<String>,
    recorded: Option<String>,
    host: Option<std::net::Ipv4Addr>,
) -> Result<String> {
    if let Some(id) = given.or(recorded) {
        return Ok(id);
    }
    if let Some(ip) = host {
        let client = vultr::Client::new(vultr::Settings::from_env(), vultr::ApiKey::from_env()?)?;
        return Ok(block_on(client.find_instance_by_main_ip(ip))??);
    }
    Ok(block_on(vultr::instance_id_from_metadata(None))??)
}
