//! Parse, run, map errors to exit codes — nothing else.

use std::process::ExitCode;

use clap::Parser;
use nucleus::cli::Cli;
use nucleus::error::EXIT_NUCLEUS_FAILED;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    init_logging(cli.verbose);
    match nucleus::commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("nucleus: {e}");
            ExitCode::from(EXIT_NUCLEUS_FAILED as u8)
        }
    }
}

/// Help and version go to stdout with status 0; every other parse error is
/// one line plus a hint, with status 125 like any failure of nucleus.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    let first = match e.kind() {
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => "a subcommand is required",
        _ => rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments"),
    };
    eprintln!("nucleus: {}", first.trim_start_matches("error: "));
    eprintln!("nucleus: see 'nucleus --help' (or 'nucleus COMMAND --help')");
    ExitCode::from(EXIT_NUCLEUS_FAILED as u8)
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
