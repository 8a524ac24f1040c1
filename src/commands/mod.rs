//! One module per subcommand. Each takes validated values and returns a
//! `Result`; printing the error and choosing the exit code is `main`'s job.

pub mod check;
pub mod demo;
pub mod demo_internet;
pub mod deploy;
pub mod docs;
pub mod install_service;
pub mod preview;
pub mod provision;
pub mod serve;
pub mod set_message;
pub mod status;
pub mod teardown;
pub mod user_data;
pub mod zone;

use crate::cli::{Cli, Command, Context};
use crate::error::Result;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    // These need no deployment, config or state.
    match cli.command {
        Command::Completions { shell } => return docs::completions(shell),
        Command::Man => return docs::man(),
        _ => {}
    }
    let ctx = Context::new(&cli.global)?;
    match cli.command {
        Command::Preview(args) => preview::run(&ctx, &args),
        Command::SetMessage(args) => set_message::run(&ctx, &args),
        Command::Serve(args) => serve::run(&ctx, &args),
        Command::Provision(args) => provision::run(&ctx, &args),
        Command::Zone(args) => zone::run(&ctx, &args),
        Command::Demo(args) => demo::run(&ctx, &args),
        Command::Status(args) => status::run(&ctx, &args),
        Command::Check(args) => check::run(&ctx, &args),
        Command::InstallService(args) => install_service::run(&ctx, &args),
        Command::Deploy(args) => deploy::run(&ctx, &args),
        Command::Teardown => teardown::run(&ctx),
        Command::Completions { .. } | Command::Man => unreachable!("handled above"),
    }
}

/// Prints the encoder's and the plan's warnings on standard error.
pub(crate) fn print_warnings<'a>(warnings: impl IntoIterator<Item = &'a str>) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// Dollars and cents from cents.
pub(crate) fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}
