//! `troll provision`: give a deployment its addresses. `local` takes them
//! from the lab range, `static` records the operator's own. Running it
//! again allocates nothing new that the deployment already has.

use super::set_message::{plan_message, store_message};
use crate::cli::{encode_text, Context, ProviderArg, ProvisionArgs};
use crate::error::{Error, Result};
use troll_providers::{
    parse_pair, AddressRequest, Family, LocalProvider, Provider, ProviderKind, StaticProvider,
};

pub fn run(ctx: &Context, args: &ProvisionArgs) -> Result<()> {
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
    let kind = match args.provider {
        ProviderArg::Local => ProviderKind::Local,
        ProviderArg::Static => ProviderKind::Static,
    };
    if let Some(existing) = locked.state.provider.filter(|p| *p != kind) {
        return Err(Error::Usage(format!(
            "deployment '{}' is provisioned with the {existing} provider; run `troll teardown` first or pick another --deployment",
            ctx.deployment
        )));
    }
    let needed = new_plan
        .as_ref()
        .or(locked.state.plan.as_ref())
        .map(|p| p.addresses_needed());

    let (targets, addresses) = match kind {
        ProviderKind::Static => {
            let parse_all = |items: &[String]| -> Result<Vec<_>> {
                items
                    .iter()
                    .flat_map(|i| i.split(','))
                    .filter(|i| !i.trim().is_empty())
                    .map(|i| parse_pair(i).map_err(Error::from))
                    .collect()
            };
            let mut provider =
                StaticProvider::new(parse_all(&args.target)?, parse_all(&args.hop_address)?)?;
            let v4 = args
                .hop_address
                .iter()
                .flat_map(|i| i.split(','))
                .filter(|i| !i.contains(':'))
                .count();
            let v6 = args
                .hop_address
                .iter()
                .flat_map(|i| i.split(','))
                .filter(|i| i.contains(':'))
                .count();
            let addresses = provider.allocate(AddressRequest { ipv4: v4, ipv6: v6 })?;
            (provider.targets(), addresses)
        }
        ProviderKind::Local => {
            if !args.target.is_empty() || !args.hop_address.is_empty() {
                return Err(Error::Usage(
                    "--target and --hop-address are for --provider static; the local provider picks its own".into(),
                ));
            }
            let count = args.ipv4.or(needed).ok_or_else(|| {
                Error::Usage(
                    "no message to size the deployment; give --message TEXT, --file PATH or --ipv4 N, or run `troll set-message` first"
                        .into(),
                )
            })?;
            // Keep what the deployment holds; only add what is missing.
            let held = |family| {
                let addresses = &locked.state.addresses;
                addresses.iter().filter(|a| a.family() == family).count()
            };
            let count = count.max(held(Family::Ipv4)).max(held(Family::Ipv6));
            let families: &[Family] = if args.ipv6 {
                &[Family::Ipv4, Family::Ipv6]
            } else {
                &[Family::Ipv4]
            };
            let mut provider = LocalProvider::new(families);
            let addresses = provider.allocate(AddressRequest {
                ipv4: count,
                ipv6: if args.ipv6 { count } else { 0 },
            })?;
            (provider.targets(), addresses)
        }
        ProviderKind::Vultr | ProviderKind::Aws => {
            unreachable!("not offered by the command line yet")
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
