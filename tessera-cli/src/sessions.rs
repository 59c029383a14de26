//! `tessera sessions …`: count, list, sum up, show, destroy and clear stored sessions, list
//! and revoke one user's (through the per-user index, see `tessera::index`), on
//! any store, through the `Store` trait's admin walk: page by page (SCAN on Redis, never
//! KEYS; keyset pages on SQL), so memory stays bounded by one page whatever the store holds.
//!
//! Only sessions are touched: a key under the prefix whose suffix is not a session ID or
//! whose value is not a session is foreign, reported on stderr and left alone.

use std::io::{BufRead, BufWriter, Write};
use std::ops::ControlFlow;
use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tessera::store::{Page, Walked};

use crate::stores::{self, StoreOptions};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Options every `tessera sessions` command takes.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Session store URL: memory, sqlite://PATH, redis://HOST:PORT, redis-sentinel://…, redis-cluster://…, postgres://USER:PASSWORD@HOST:PORT/DB, mysql://USER:PASSWORD@HOST:PORT/DB
    #[arg(long, env = "SESSION_STORE", hide_env_values = true)]
    store: String,
    /// Key prefix in the store.
    #[arg(long, env = "SESSION_PREFIX", default_value = "myapp:session:")]
    prefix: String,
    /// With an empty --prefix on Redis: every key of the database is taken for a possible
    /// session. Without it an empty prefix is refused, so a mistyped option cannot walk (or
    /// clear) a whole database that other data shares.
    #[arg(long)]
    whole_database: bool,
    /// The session key that names the user, as the application's `index_by` (the demo's
    /// is `user`): for `user`, `revoke-user`, and the user in `list --json` and `stats`.
    #[arg(long, env = "SESSION_INDEX_KEY", default_value = "user")]
    index_key: String,
}

/// The `tessera sessions` commands.
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Print how many sessions are stored.
    Count(StoreArgs),
    /// Print the stored session IDs, one a line.
    List {
        /// One JSON object a line: `id`, `ttl` (seconds, null when it never expires) and
        /// `bytes`.
        #[arg(long)]
        json: bool,
        /// Print at most this many.
        #[arg(long)]
        limit: Option<u64>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print how many sessions there are, their total, mean and largest size, and how
    /// long they have left.
    Stats(StoreArgs),
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
    /// Print the session IDs of one user (from the per-user index, each checked against
    /// the store), one a line.
    User {
        /// The user, as stored under the index key.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete every session of one user ("sign out everywhere"), and say how many.
    RevokeUser {
        /// The user, as stored under the index key.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete every session, and nothing else (asks first, unless --yes).
    Clear {
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Say how many sessions would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Runs one command, printing to stdout.
pub async fn run(command: SessionsCommand) -> Result<(), BoxError> {
    let args = match &command {
        SessionsCommand::Count(a) | SessionsCommand::Stats(a) => a,
        SessionsCommand::List { store, .. }
        | SessionsCommand::Show { store, .. }
        | SessionsCommand::Destroy { store, .. }
        | SessionsCommand::User { store, .. }
        | SessionsCommand::RevokeUser { store, .. }
        | SessionsCommand::Clear { store, .. } => store,
    };
    if args.prefix.is_empty() && is_redis(&args.store) && !args.whole_database {
        return Err(
            "--prefix is empty: every key of the Redis database would be taken for a \
                    session. Give the prefix your sessions use (connect-redis's default is \
                    'sess:'), or pass --whole-database if the database holds sessions only"
                .into(),
        );
    }
    let options = StoreOptions {
        prefix: args.prefix.clone(),
        ttl: Duration::from_secs(86_400),
        // Inspecting must not create: a mistyped path is an error naming it.
        create: false,
    };
    let index = tessera::UserIndex::new(args.index_key.clone())?;
    let store = stores::open(&args.store, &options).await?;
    let mut out = BufWriter::new(std::io::stdout());
    match command {
        SessionsCommand::Count(_) => {
            let walked = walk(&*store, false, None, |_| Ok(())).await?;
            writeln!(out, "{}", walked.sessions)?;
        }
        SessionsCommand::List { json, limit, .. } => {
            let mut printed = 0u64;
            walk(&*store, false, None, |page| {
                for listed in &page.sessions {
                    if limit.is_some_and(|limit| printed >= limit) {
                        return Err(Stop::Done);
                    }
                    if json {
                        let line = serde_json::json!({
                            "id": listed.id.as_str(),
                            "ttl": listed.ttl.map(|t| t.as_secs()),
                            "bytes": listed.bytes,
                            "user": index.user_of(&listed.record),
                        });
                        writeln!(out, "{line}")?;
                    } else {
                        writeln!(out, "{}", listed.id)?;
                    }
                    printed += 1;
                }
                Ok(())
            })
            .await?;
        }
        SessionsCommand::Stats(_) => {
            let mut stats = Stats::default();
            let walked = walk(&*store, false, None, |page| {
                stats.add(page, &index);
                Ok(())
            })
            .await?;
            stats.print(&mut out, &walked)?;
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
        SessionsCommand::User { name, .. } => {
            for session in index.sessions(&*store, &name).await? {
                writeln!(out, "{}", session.id)?;
            }
        }
        SessionsCommand::RevokeUser { name, .. } => {
            let revoked = index.revoke_all(&*store, &name, None).await?;
            writeln!(out, "revoked {revoked} sessions of {name}")?;
        }
        SessionsCommand::Clear { yes, dry_run, .. } => {
            let where_ = format!("{store:?} (prefix {:?})", options.prefix);
            if dry_run {
                let walked = walk(&*store, false, None, |_| Ok(())).await?;
                writeln!(
                    out,
                    "would delete {} sessions from {where_}; nothing deleted (dry run)",
                    walked.sessions
                )?;
                return Ok(out.flush()?);
            }
            let mut total = None;
            if !yes {
                let n = walk(&*store, false, None, |_| Ok(())).await?.sessions;
                eprint!("Delete all {n} sessions from {where_}? Type 'yes' to confirm: ");
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if answer.trim() != "yes" {
                    return Err(
                        "not confirmed; nothing deleted (pass --yes to skip the question)".into(),
                    );
                }
                total = Some(n);
            }
            let walked = walk(&*store, true, total, |_| Ok(())).await?;
            writeln!(out, "deleted {} sessions", walked.deleted)?;
        }
    }
    Ok(out.flush()?)
}

fn is_redis(url: &str) -> bool {
    url.starts_with("redis")
}

/// Why a walker stopped: it had all it wanted, or printing failed.
enum Stop {
    Done,
    Failed(std::io::Error),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Failed(e)
    }
}

/// Walks `store`, handing each page to `each`, with a progress bar on stderr (drawn only
/// when stderr is a terminal) out of `total` sessions when known; reports foreign keys on
/// stderr.
async fn walk(
    store: &dyn tessera::Store,
    delete: bool,
    total: Option<u64>,
    mut each: impl FnMut(&Page) -> Result<(), Stop> + Send,
) -> Result<Walked, BoxError> {
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template(if total.is_some() {
            "{spinner} {msg} {pos}/{len} [{bar:30}] {per_sec}, {eta} left"
        } else {
            "{spinner} {msg} {pos} {per_sec}"
        })
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(if delete { "deleting" } else { "reading" });
    let mut failed = None;
    let walked = store
        .walk(delete, &mut |page: &Page| {
            bar.inc(page.sessions.len() as u64);
            match each(page) {
                Ok(()) => ControlFlow::Continue(()),
                Err(Stop::Done) => ControlFlow::Break(()),
                Err(Stop::Failed(e)) => {
                    failed = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
        .await;
    bar.finish_and_clear();
    let walked = walked?;
    if let Some(e) = failed {
        // A closed pipe (`| head`) is the reader having seen enough.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    if walked.foreign > 0 {
        eprintln!(
            "skipped {} keys under the prefix that are not sessions (left alone)",
            walked.foreign
        );
    }
    Ok(walked)
}

/// What `stats` sums up, one page at a time.
#[derive(Default)]
struct Stats {
    bytes: u64,
    largest: usize,
    /// Sessions whose TTL is under 1 minute, 1 hour, 1 day, 1 week, then longer, then none.
    ttls: [u64; 6],
    /// Sessions that name a user under the index key.
    logged_in: u64,
    /// Sessions per user, for the first [`USERS_COUNTED`] users met: memory stays bounded
    /// whatever the store holds.
    users: std::collections::HashMap<String, u64>,
    /// Users met beyond [`USERS_COUNTED`].
    more_users: bool,
}

/// How many distinct users `stats` counts sessions for (a few MiB at most).
const USERS_COUNTED: usize = 50_000;

const TTL_BUCKETS: [(&str, u64); 4] = [
    ("< 1 minute", 60),
    ("< 1 hour", 3_600),
    ("< 1 day", 86_400),
    ("< 1 week", 604_800),
];

impl Stats {
    fn add(&mut self, page: &Page, index: &tessera::UserIndex) {
        for listed in &page.sessions {
            if let Some(user) = index.user_of(&listed.record) {
                self.logged_in += 1;
                if let Some(n) = self.users.get_mut(&user) {
                    *n += 1;
                } else if self.users.len() < USERS_COUNTED {
                    self.users.insert(user, 1);
                } else {
                    self.more_users = true;
                }
            }
            self.bytes += listed.bytes as u64;
            self.largest = self.largest.max(listed.bytes);
            let bucket = match listed.ttl {
                None => 5,
                Some(ttl) => TTL_BUCKETS
                    .iter()
                    .position(|(_, below)| ttl.as_secs() < *below)
                    .unwrap_or(4),
            };
            self.ttls[bucket] += 1;
        }
    }

    fn print(&self, out: &mut impl Write, walked: &Walked) -> std::io::Result<()> {
        let n = walked.sessions;
        writeln!(out, "sessions: {n}")?;
        writeln!(out, "total bytes: {}", self.bytes)?;
        writeln!(
            out,
            "mean bytes: {}",
            self.bytes.checked_div(n).unwrap_or(0)
        )?;
        writeln!(out, "largest bytes: {}", self.largest)?;
        writeln!(out, "ttl:")?;
        let labels = TTL_BUCKETS
            .iter()
            .map(|(label, _)| *label)
            .chain(["≥ 1 week", "never expires"]);
        for (label, count) in labels.zip(self.ttls) {
            writeln!(out, "  {label}: {count}")?;
        }
        writeln!(out, "logged in: {}", self.logged_in)?;
        if self.more_users {
            writeln!(
                out,
                "users: more than {USERS_COUNTED} (counted the first {USERS_COUNTED})"
            )?;
        } else {
            writeln!(out, "users: {}", self.users.len())?;
        }
        let most = self.users.values().max().copied().unwrap_or(0);
        writeln!(out, "most sessions of one user: {most}")?;
        writeln!(out, "foreign keys skipped: {}", walked.foreign)
    }
}
