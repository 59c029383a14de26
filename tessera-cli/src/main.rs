//! `tessera`: the article's session demo (`tessera serve`) and session administration
//! (`tessera sessions …`) on any store Tessera supports, chosen by URL.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod account;
mod demo;
mod login;
mod redact;
mod sessions;
mod stores;

/// Sessions for Rust web services, compatible with express-session.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the session demo: a view counter at `/`, `/logout` ends the session, and
    /// sign-in with "sign out everywhere" (`/login`, `/sessions`, `/logout-everywhere`).
    Serve(demo::ServeArgs),
    /// Inspect and manage stored sessions.
    #[command(subcommand)]
    Sessions(sessions::SessionsCommand),
}

/// `tessera` with no command: `serve` with its defaults and environment.
#[derive(Debug, Parser)]
struct ServeOnly {
    #[command(flatten)]
    args: demo::ServeArgs,
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            // `cargo run --release` with no arguments serves the demo.
            None => demo::serve(ServeOnly::parse_from(["tessera"]).args).await,
            Some(Command::Serve(args)) => demo::serve(args).await,
            Some(Command::Sessions(command)) => sessions::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr; `RUST_LOG` (e.g. `debug`, `tessera=debug,info`) picks the levels.
fn init_tracing() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| s.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(filter)
        .init();
}
