//! `troll set-message`: encode a message, plan its hops and store both in
//! the deployment's state, under the deployment's lock. A running `troll
//! serve` is told to follow it (hop table, rules and DNS answers).

use super::print_warnings;
use crate::cli::{Context, MessageInput, SetMessageArgs};
use crate::error::Result;
use crate::plan::{Plan, PlanOptions};
use crate::state::State;

/// Plans a message and prints what the encoder and the plan had to say.
pub(crate) fn plan_message(input: &MessageInput) -> Result<Plan> {
    let plan = Plan::new(
        &input.encoded.lines,
        PlanOptions {
            keep_target_name: input.options.keep_target_name,
        },
    )?;
    let warnings: Vec<String> = input
        .encoded
        .warnings
        .iter()
        .map(ToString::to_string)
        .chain(plan.warnings.iter().cloned())
        .collect();
    print_warnings(warnings.iter().map(String::as_str));
    Ok(plan)
}

/// Puts a planned message into the state.
pub(crate) fn store_message(state: &mut State, input: &MessageInput, plan: Plan) {
    state.message = Some(input.text.clone());
    state.message_options = input.options;
    state.lines = input.encoded.lines.clone();
    state.plan = Some(plan);
}

pub fn run(ctx: &Context, args: &SetMessageArgs) -> Result<()> {
    // Read and check everything before touching the state: a bad message
    // must leave the deployment exactly as it was.
    let input = args.message.read(&ctx.config)?;
    let delays = args.delays.settings();
    if let Some(delays) = &delays {
        let lines = input.encoded.lines.len();
        if let Some((line, _)) = delays.lines.iter().find(|(line, _)| *line > lines) {
            return Err(crate::error::Error::Usage(format!(
                "--line-delay {line}=...: the message has {lines} line(s); give a line from 1 to {lines}"
            )));
        }
    }
    let plan = plan_message(&input)?;
    let mut locked = ctx.store.lock(&ctx.deployment)?;
    for target in &locked.state.targets {
        // A deployment with addresses must be able to show the new message.
        plan.show(*target, &locked.state.addresses)?;
    }
    let (hops, names) = (plan.hop_count(), plan.addresses_needed());
    store_message(&mut locked.state, &input, plan);
    // Delay flags replace the stored delays; without them they stay.
    if let Some(delays) = delays {
        locked.state.delays = delays;
    }
    let delays = locked.state.delays.describe();
    locked.save()?;
    // A cloud deployment publishes the names through its provider's API.
    if !locked.state.targets.is_empty() {
        if let Some(cloud) = crate::cloud::Cloud::of(&locked.state)? {
            let records: Vec<troll_providers::PtrRecord> = locked
                .state
                .ptr_records()?
                .into_iter()
                .map(|p| troll_providers::PtrRecord {
                    address: p.address,
                    name: p.name,
                })
                .collect();
            cloud.publish(&records, &mut locked)?;
            locked.state.ptrs = locked.state.ptr_records()?;
            locked.save()?;
        }
    }
    let (held, served) = (locked.state.addresses.len(), locked.state.serve_pid);
    drop(locked);

    println!(
        "deployment '{}': message stored, {hops} fake hop(s), {names} distinct name(s); round-trip delays: {delays}.",
        ctx.deployment
    );
    if held == 0 {
        println!("It has no addresses yet; `troll provision` allocates them.");
    }
    if let Some(pid) = served {
        notify_server(ctx, pid);
    }
    Ok(())
}

/// Tells the deployment's running `troll serve` to reload (SIGHUP), if it
/// still runs.
fn notify_server(ctx: &Context, pid: u32) {
    // The serve lock is free exactly when no serve runs.
    if ctx.store.serve_lock(&ctx.deployment).is_ok() {
        return;
    }
    // SAFETY: kill(2) with the pid that holds the deployment's serve lock.
    if unsafe { libc::kill(pid as i32, libc::SIGHUP) } == 0 {
        println!("troll serve (pid {pid}) reloads the message now.");
    }
}
