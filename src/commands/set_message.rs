//! `troll set-message`: encode a message, plan its hops and store both in
//! the deployment's state, under the deployment's lock.

use super::print_warnings;
use crate::cli::{Context, SetMessageArgs};
use crate::error::Result;
use crate::plan::{Plan, PlanOptions};

pub fn run(ctx: &Context, args: &SetMessageArgs) -> Result<()> {
    // Read and check everything before touching the state: a bad message
    // must leave the deployment exactly as it was.
    let input = args.message.read(&ctx.config)?;
    let plan = Plan::new(
        &input.encoded.lines,
        PlanOptions {
            keep_target_name: input.options.keep_target_name,
        },
    )?;
    let mut locked = ctx.store.lock(&ctx.deployment)?;
    for target in &locked.state.targets {
        // A deployment with addresses must be able to show the new message.
        plan.show(*target, &locked.state.addresses)?;
    }
    let state = &mut locked.state;
    state.message = Some(input.text.clone());
    state.message_options = input.options;
    state.lines = input.encoded.lines.clone();
    state.plan = Some(plan.clone());
    locked.save()?;

    print_warnings(
        input
            .encoded
            .warnings
            .iter()
            .map(ToString::to_string)
            .chain(plan.warnings.iter().cloned())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str),
    );
    let held = locked.state.addresses.len();
    println!(
        "deployment '{}': message stored, {} fake hop(s), {} distinct name(s).",
        ctx.deployment,
        plan.hop_count(),
        plan.addresses_needed()
    );
    if locked.state.provider.is_none() {
        println!("It has no addresses yet ({held} held); `troll provision` allocates them.");
    }
    Ok(())
}
