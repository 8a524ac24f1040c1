//! `troll set-message`: encode a message, plan its hops and store both in
//! the deployment's state, under the deployment's lock. A running `troll
//! serve` is told to follow it (hop table, rules and DNS answers).

use super::print_warnings;
use crate::cli::{Context, MessageInput, SetMessageArgs};
use crate::error::Result;
use crate::plan::{Plan, PlanOptions};
use crate::process::{pid_from_u32, PidError, ServeProcess};
use crate::state::State;

/// Plans a message and prints what the encoder and the plan had to say.
pub(crate) fn plan_message(input: &MessageInput) -> Result<Plan> {
    let plan = plan_of(input)?;
    print_warnings(warnings(input, &plan).iter().map(String::as_str));
    Ok(plan)
}

/// Plans a message, with the options it was encoded with.
pub(crate) fn plan_of(input: &MessageInput) -> Result<Plan> {
    let options = PlanOptions {
        keep_target_name: input.options.keep_target_name,
        window: input.options.window,
        window_footer: input.window_footer.clone(),
    };
    Ok(Plan::new(&input.encoded.lines, options)?)
}

/// What the encoder and the plan had to say about a message.
pub(crate) fn warnings(input: &MessageInput, plan: &Plan) -> Vec<String> {
    let encoder = input.encoded.warnings.iter().map(ToString::to_string);
    encoder.chain(plan.warnings.iter().cloned()).collect()
}

/// Puts a planned message into the state.
pub(crate) fn store_message(state: &mut State, input: &MessageInput, plan: Plan) {
    state.message = Some(input.text.clone());
    state.message_options = input.options.clone();
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
        plan.shows(*target, &locked.state.addresses)?;
    }
    let (hops, names, windows) = (plan.total_hops(), plan.distinct.len(), plan.window_count());
    store_message(&mut locked.state, &input, plan);
    // Delay flags replace the stored delays; without them they stay.
    if let Some(delays) = delays {
        locked.state.delays = delays;
    }
    let delays = locked.state.delays.describe();
    locked.save()?;
    // A cloud deployment publishes the names through its provider's API.
    if !locked.state.targets.is_empty() {
        let provider = crate::cloud::provider_of(&locked.state)?;
        if let Some(provider) = provider.filter(|p| p.publishes_ptr()) {
            let records: Vec<troll_providers::PtrRecord> = locked
                .state
                .ptr_records()?
                .into_iter()
                .map(|p| troll_providers::PtrRecord {
                    address: p.address,
                    name: p.name,
                })
                .collect();
            let report = crate::cloud::block_on(provider.set_ptrs(&mut locked, &records))??;
            for line in &report.lines {
                println!("{line}");
            }
            locked.state.ptrs = locked.state.ptr_records()?;
            locked.save()?;
        }
    }
    let held = locked.state.addresses.len();
    // Taken while the state is locked, so the pid is the one serve recorded.
    let server = locked
        .state
        .serve_pid
        .and_then(|pid| serve_process(ctx, pid));
    drop(locked);

    let windows = if windows > 1 {
        format!(" in {windows} windows (one target address each)")
    } else {
        String::new()
    };
    println!(
        "deployment '{}': message stored, {hops} fake hop(s){windows}, {names} distinct name(s); round-trip delays: {delays}.",
        ctx.deployment
    );
    if held == 0 {
        println!("It has no addresses yet; `troll provision` allocates them.");
    }
    if let Some(server) = server {
        // Told after the lock is released: the reload takes it.
        if server.signal(libc::SIGHUP).is_ok() {
            println!(
                "troll serve (pid {}) reloads the message now.",
                server.pid()
            );
        }
    }
    Ok(())
}

/// The deployment's running `troll serve`, if `pid` (from the state) still
/// is one.
fn serve_process(ctx: &Context, pid: u32) -> Option<ServeProcess> {
    let lock = ctx.store.serve_lock_path(&ctx.deployment);
    match pid_from_u32(pid).and_then(|pid| ServeProcess::open(pid, &lock)) {
        Ok(process) => Some(process),
        // A serve that crashed left its pid behind: nothing to tell.
        Err(PidError::Gone(_)) => None,
        Err(e) => {
            tracing::warn!("not telling troll serve to reload: {e}");
            None
        }
    }
}
