//! `troll`: parse, set up logging, dispatch, map errors to exit codes.

use clap::Parser;
use std::process::ExitCode;
use troll::cli::Cli;

fn main() -> ExitCode {
    // Like any Unix tool: `troll status | head` ends quietly.
    // SAFETY: resetting a signal to its default action before any thread
    // starts.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = Cli::parse();
    // A daemon says what it serves; the other commands only warn.
    let daemon = matches!(cli.command, troll::cli::Command::Serve(_));
    init_logging(cli.global.verbose, cli.global.quiet, daemon);
    match troll::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("troll: {err}");
            ExitCode::from(err.exit_code() as u8)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool, daemon: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) if daemon => "info",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // hickory logs a warning per bad packet (a junk flood would fill the
    // journal); troll counts those itself and logs a summary instead.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{default},hickory_server=error,hickory_proto=error"
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}
