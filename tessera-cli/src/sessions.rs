//! `tessera sessions …`: count, list, show, destroy and clear stored sessions, on any store,
//! through the `Store` trait's admin operations (SCAN in pages on Redis, never KEYS).

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::stores::{self, StoreOptions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Options every `tessera sessions` command takes.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Session store URL: memory, sqlite://PATH, redis://HOST:PORT, redis-sentinel://…, redis-cluster://…, postgres://USER:PASSWORD@HOST:PORT/DB, mysql://USER:PASSWORD@HOST:PORT/DB
    #[arg(long, env = "SESSION_STORE")]
    store: String,
    /// Key prefix in the store.
    #[arg(long, env = "SESSION_PREFIX", default_value = "myapp:session:")]
    prefix: String,
}

/// The `tessera sessions` commands.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Print how many sessions are stored.
    Count(StoreArgs),
    /// Print every stored session ID, one a line.
    List(StoreArgs),
    /// Print one session's stored JSON, pretty, with its remaining TTL.
    Show {
        /// The session ID (as in `list`). One in 64 generated IDs starts with `-`: it is
        /// still the ID, not an option.
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete one session.
    Destroy {
        /// The session ID (as in `list`). One in 64 generated IDs starts with `-`: it is
        /// still the ID, not an option.
        #[arg(allow_hyphen_values = true)]
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete every session (asks first, unless --yes).
    Clear {
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs one command, printing to stdout.
pub async fn run(command: SessionsCommand) -> Result<(), BoxError> {
    let args = match &command {
        SessionsCommand::Count(a) | SessionsCommand::List(a) => a,
        SessionsCommand::Show { store, .. }
        | SessionsCommand::Destroy { store, .. }
        | SessionsCommand::Clear { store, .. } => store,
    };
    let options = StoreOptions {
        prefix: args.prefix.clone(),
        ttl: Duration::from_secs(86_400),
    };
    let store = stores::open(&args.store, &options).await?;
    let mut out = std::io::stdout().lock();
    match command {
        SessionsCommand::Count(_) => writeln!(out, "{}", store.count().await?)?,
        SessionsCommand::List(_) => {
            for id in store.ids().await? {
                writeln!(out, "{id}")?;
            }
        }
        SessionsCommand::Show { id, .. } => {
            let Some(stored) = store.inspect(&id).await? else {
                return Err(format!("no session {id:?} in the store").into());
            };
            match serde_json::from_slice::<serde_json::Value>(&stored.value) {
                Ok(json) => writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?,
                Err(_) => writeln!(out, "(not JSON) {}", String::from_utf8_lossy(&stored.value))?,
            }
            match stored.ttl {
                Some(ttl) => writeln!(out, "ttl: {}s", ttl.as_secs())?,
                None => writeln!(out, "ttl: none (never expires)")?,
            }
        }
        SessionsCommand::Destroy { id, .. } => {
            let Some(parsed) = tessera::SessionId::parse(&id) else {
                return Err(format!("{id:?} is not a session ID").into());
            };
            if store.inspect(&id).await?.is_none() {
                return Err(format!("no session {id:?} in the store").into());
            }
            store.destroy(&parsed).await?;
            writeln!(out, "destroyed {id}")?;
        }
        SessionsCommand::Clear { yes, .. } => {
            if !yes {
                let n = store.count().await?;
                eprint!(
                    "Delete all {n} sessions from {}? Type 'yes' to confirm: ",
                    args_store(&options, &store)
                );
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if answer.trim() != "yes" {
                    return Err(
                        "not confirmed; nothing deleted (pass --yes to skip the question)".into(),
                    );
                }
            }
            let n = store.clear().await?;
            writeln!(out, "deleted {n} sessions")?;
        }
    }
    Ok(())
}

fn args_store(options: &StoreOptions, store: &std::sync::Arc<dyn tessera::Store>) -> String {
    format!("{store:?} (prefix {:?})", options.prefix)
}
