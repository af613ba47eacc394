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
    init_logging(cli.verbosity());
    match nucleus::commands::dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            nucleus::sandbox::report(&e);
            ExitCode::from(e.exit_status() as u8)
        }
    }
}

/// Help and version go to stdout with status 0. Every other parse error
/// keeps clap's whole message (the argument it is about, a similar one,
/// the possible values, the usage line) on stderr, with status 125 like
/// any failure of nucleus.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let rendered = e.render().to_string();
    // An unexpected word that is not a flag is usually the command, put
    // before the `--` that must precede it.
    let stray_word = e.get(clap::error::ContextKind::InvalidArg).is_some_and(|v| !v.to_string().starts_with('-'));
    let mut text = String::new();
    for (i, line) in rendered.trim_end().lines().enumerate() {
        if i == 0 {
            let line = line.strip_prefix("error: ").unwrap_or(line);
            text.push_str(&format!("nucleus: {}\n", nucleus::error::printable(line)));
            if e.kind() == ErrorKind::UnknownArgument && stray_word {
                text.push_str(
                    "\n  tip: the program and its arguments go after `--`: nucleus run INSTALLABLE -- COMMAND ARG...\n",
                );
            }
        } else {
            text.push_str(&format!("{}\n", nucleus::error::printable(line)));
        }
    }
    eprint!("{text}");
    ExitCode::from(EXIT_NUCLEUS_FAILED as u8)
}

/// 0: errors only (-q); 1: warnings; 2: what nucleus is doing (-v);
/// 3: debug (-vv). RUST_LOG overrides.
fn init_logging(verbosity: u8) {
    let default = match verbosity {
        0 => "error",
        1 => "warn",
        2 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).event_format(OneLine).init();
}

/// Messages as nucleus prints its own: `nucleus: warning: …`, one line,
/// control characters escaped.
struct OneLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for OneLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error: ",
            tracing::Level::WARN => "warning: ",
            tracing::Level::INFO => "",
            _ => "debug: ",
        };
        let mut text = String::new();
        use tracing_subscriber::fmt::FormatFields;
        ctx.format_fields(tracing_subscriber::fmt::format::Writer::new(&mut text), event)?;
        writeln!(writer, "nucleus: {level}{}", nucleus::error::printable(&text))
    }
}
