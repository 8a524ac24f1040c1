//! `troll provision`: give a deployment its addresses. `local` takes them
//! from the lab range, `static` records the operator's own. Running it
//! again allocates nothing new that the deployment already has.

use super::set_message::{plan_message, store_message};
use crate::cli::{encode_text, Context, ProviderArg, ProvisionArgs};
use crate::error::{Error, Result};
use troll_providers::{Family, ProviderKind};

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
        return Err(no_dry_run(kind));
    }
    let spec =
        crate::cloud::provision_spec(&ctx.deployment, args, &locked.state, kind, ipv6, size)?;
    if args.dry_run {
        let plan = crate::cloud::plan(&locked.state, spec)?.ok_or_else(|| no_dry_run(kind))?;
        print!("{}", plan.render());
        println!(
            "Dry run: nothing was changed ({} read call(s)).",
            plan.reads
        );
        return Ok(());
    }
    if let Some(first) = &spec.record_first {
        // Recorded before any call, so teardown can find what it creates.
        first.apply(kind, &mut locked.state);
        locked.save()?;
    }
    let provisioned = crate::cloud::provision(&mut locked, spec)?;
    if let Some(instance) = provisioned.instance {
        locked.state.instance = Some(instance);
    }
    if let Some(region) = provisioned.region {
        locked.state.region = Some(region);
    }
    let (targets, addresses) = (provisioned.targets, provisioned.addresses);

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

/// Why `--dry-run` does not apply to `kind`.
fn no_dry_run(kind: ProviderKind) -> Error {
    Error::Usage(format!(
        "--dry-run is for --provider vultr or aws; the {kind} provider makes no API call (use `troll preview` to see the plan)"
    ))
}
