//! `troll provision`: give a deployment its addresses. `local` takes them
//! from the lab range, `static` records the operator's own. Running it
//! again allocates nothing new that the deployment already has.

use super::set_message::{plan_message, store_message};
use crate::cli::value::all_pairs;
use crate::cli::{encode_text, Context, ProviderArg, ProvisionArgs};
use crate::error::{Error, Result};
use troll_providers::{
    AddressRequest, Family, LocalProvider, Provider, ProviderKind, StaticProvider,
};

pub fn run(ctx: &Context, args: &ProvisionArgs) -> Result<()> {
    if args.print_user_data {
        return super::user_data::run(ctx, args);
    }
    let Some(provider) = args.provider else {
        return Err(Error::Usage("troll provision needs --provider".into()));
    };
    // Everything is checked before the state is touched.
    let input = match (&args.message, &args.file) {
        (Some(text), _) => Some(encode_text(text.clone(), Default::default(), false)?),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|source| Error::ReadMessage {
                path: path.display().to_string(),
                source,
            })?;
            Some(encode_text(text, Default::default(), false)?)
        }
        (None, None) => None,
    };
    let new_plan = input.as_ref().map(plan_message).transpose()?;

    let mut locked = ctx.store.lock(&ctx.deployment)?;
    let needed = new_plan
        .as_ref()
        .or(locked.state.plan.as_ref())
        .map(|p| p.addresses_needed());
    let kind = match provider {
        ProviderArg::Local => ProviderKind::Local,
        ProviderArg::Static => ProviderKind::Static,
        ProviderArg::Vultr => ProviderKind::Vultr,
        ProviderArg::Aws => ProviderKind::Aws,
    };
    let cloud = matches!(kind, ProviderKind::Vultr | ProviderKind::Aws);
    // A family the deployment serves stays served by a later provision.
    let ipv6 = args.ipv6
        || locked
            .state
            .targets
            .iter()
            .any(|t| t.family() == Family::Ipv6);
    if kind == ProviderKind::Aws && args.ipv6 {
        return Err(Error::Usage(
            "--ipv6 does not work with --provider aws: AWS offers no reverse DNS for its IPv6 addresses, so IPv6 hops could not carry the message; drop --ipv6".into(),
        ));
    }
    if cloud && (!args.target.is_empty() || !args.hop_address.is_empty()) {
        return Err(Error::Usage(format!(
            "--target and --hop-address are for --provider static; {kind} allocates its own"
        )));
    }
    let size = |held: usize| -> Result<usize> {
        let count = args.ipv4.or(needed).ok_or_else(|| {
            Error::Usage(
                "no message to size the deployment; give --message TEXT, --file PATH or --ipv4 N, or run `troll set-message` first"
                    .into(),
            )
        })?;
        Ok(count.max(held))
    };
    if let Some(existing) = locked.state.provider.filter(|p| *p != kind) {
        return Err(Error::Usage(format!(
            "deployment '{}' is provisioned with the {existing} provider; run `troll teardown` first or pick another --deployment",
            ctx.deployment
        )));
    }

    if args.dry_run && !cloud {
        return Err(Error::Usage(format!(
            "--dry-run is for --provider vultr or aws; the {kind} provider makes no API call (use `troll preview` to see the plan)"
        )));
    }
    let (targets, addresses) = match kind {
        ProviderKind::Static => {
            let hops = all_pairs(&args.hop_address);
            let count = |family| hops.iter().filter(|p| p.family() == family).count();
            let (v4, v6) = (count(Family::Ipv4), count(Family::Ipv6));
            let provider = StaticProvider::new(all_pairs(&args.target), hops)?;
            let request = AddressRequest { ipv4: v4, ipv6: v6 };
            let out = crate::cloud::block_on(provider.provision(&mut locked, request))??;
            (out.targets, out.addresses)
        }
        ProviderKind::Local => {
            if !args.target.is_empty() || !args.hop_address.is_empty() {
                return Err(Error::Usage(
                    "--target and --hop-address are for --provider static; the local provider picks its own".into(),
                ));
            }
            // Keep what the deployment holds; only add what is missing.
            let held = |family| {
                let addresses = &locked.state.addresses;
                addresses.iter().filter(|a| a.family() == family).count()
            };
            let count = size(held(Family::Ipv4).max(held(Family::Ipv6)))?;
            let families: &[Family] = if ipv6 {
                &[Family::Ipv4, Family::Ipv6]
            } else {
                &[Family::Ipv4]
            };
            let provider = LocalProvider::new(families);
            let request = AddressRequest {
                ipv4: count,
                ipv6: if ipv6 { count } else { 0 },
            };
            let out = crate::cloud::block_on(provider.provision(&mut locked, request))??;
            (out.targets, out.addresses)
        }
        ProviderKind::Vultr => {
            let instance = crate::cloud::vultr_instance(
                args.instance.clone(),
                locked.state.instance.clone(),
                args.host,
            )?;
            let options = crate::cloud::VultrOptions {
                ipv6,
                reserved: args.reserved,
                modify_instance: !args.no_modify_instance,
                reboot: args.reboot,
            };
            let held = locked
                .state
                .addresses
                .iter()
                .filter(|a| a.family() == Family::Ipv4)
                .count();
            let count = size(held)?;
            if args.dry_run {
                let plan = crate::cloud::plan_vultr(
                    &locked.state,
                    &instance,
                    &ctx.deployment,
                    count,
                    options,
                )?;
                print!("{}", plan.render());
                println!(
                    "Dry run: nothing was changed ({} read call(s)).",
                    plan.reads
                );
                return Ok(());
            }
            // Record the instance before any call, so teardown can find it.
            locked.state.provider = Some(kind);
            locked.state.instance = Some(instance.clone());
            locked.save()?;
            let (targets, addresses) = crate::cloud::provision_vultr(
                &mut locked,
                &instance,
                &ctx.deployment,
                count,
                options,
            )?;
            (targets, addresses)
        }
        ProviderKind::Aws => {
            let domain = args.domain.clone().or(locked.state.domain.clone()).ok_or_else(|| {
                Error::Usage(
                    "--provider aws needs --domain DOMAIN: AWS sets a reverse name only when a forward A record under a domain you control points to the Elastic IP".into(),
                )
            })?;
            let count = size(locked.state.addresses.len())?;
            let settings = troll_providers::aws::AwsSettings {
                deployment: ctx.deployment.clone(),
                domain: domain.clone(),
                instance_id: args.instance.clone().or(locked.state.instance.clone()),
                region: args.region.clone().or(locked.state.region.clone()),
            };
            if args.dry_run {
                let plan = crate::cloud::plan_aws(&locked.state, settings, count)?;
                print!("{}", plan.render());
                println!(
                    "Dry run: nothing was changed ({} read call(s)).",
                    plan.reads
                );
                return Ok(());
            }
            locked.state.provider = Some(kind);
            locked.state.domain = Some(domain);
            if let Some(zone) = &args.route53_zone {
                locked.state.route53_zone = Some(zone.trim().to_string());
            }
            locked.save()?;
            let (instance, region, targets, addresses) =
                crate::cloud::provision_aws(&mut locked, settings, count)?;
            locked.state.instance = Some(instance);
            locked.state.region = Some(region);
            (targets, addresses)
        }
    };

    if let Some(plan) = new_plan.as_ref().or(locked.state.plan.as_ref()) {
        for target in &targets {
            plan.show(*target, &addresses)?;
        }
    }
    let state = &mut locked.state;
    state.provider = Some(kind);
    state.targets = targets;
    state.addresses = addresses;
    if let (Some(input), Some(plan)) = (&input, new_plan) {
        store_message(state, input, plan);
    }
    locked.save()?;
    let state = &locked.state;
    println!(
        "deployment '{}' ({kind}): target {}, {} hop address(es).",
        ctx.deployment,
        state
            .targets
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        state.addresses.len()
    );
    if state.plan.is_none() {
        println!("Store a message with `troll set-message`, then run `troll serve`.");
    }
    Ok(())
}
