//! Interop on SQL: the Node peer (`interop/app.js`) on connect-pg-simple 10 (`STORE=pg`) or
//! express-mysql-session 3 (`STORE=mysql`) and the real `tessera serve --store
//! postgres://…` / `--store mysql://…` share one table, one secret and one browser, and
//! each continues the other's sessions.
//!
//! Every flow runs on PostgreSQL and on MariaDB (`mod postgres`, `mod mariadb`). One private
//! server of each kind serves the tests that overlap in time; each test has a table of its
//! own. As in `interop.rs`, one reqwest cookie jar plays the browser for both apps (cookies
//! are not port-specific).
//!
//! Needs `node` and `interop/node_modules` (`npm ci` in `interop/`; `scripts/test` does it),
//! PostgreSQL and MariaDB installed (their binaries only; `scripts/test` installs them).

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

use serde_json::Value;
use test_support::{
    browser, counter_views, MariaDbServer, NodeApp, PostgresServer, TempDir, TesseraServer,
};

const SECRET: &str = "sql interop: keyboard cat";
const LOGGED_OUT: &str = "Logged out successfully!";

/// Which database both apps use.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// PostgreSQL: connect-pg-simple 10 and `PostgresStore`.
    Postgres,
    /// MariaDB: express-mysql-session 3 and `MySqlStore`.
    MariaDb,
}

/// The running database server of a test, shared with the tests that overlap in time.
enum Database {
    Postgres(Arc<PostgresServer>),
    MariaDb(Arc<MariaDbServer>),
}

static POSTGRES: Mutex<Weak<PostgresServer>> = Mutex::new(Weak::new());
static MARIADB: Mutex<Weak<MariaDbServer>> = Mutex::new(Weak::new());

/// The server in `slot`, started when none runs; the last test using it stops it.
fn shared<T>(slot: &Mutex<Weak<T>>, start: fn() -> T) -> Arc<T> {
    let mut current = slot.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(running) = current.upgrade() {
        return running;
    }
    let started = Arc::new(start());
    *current = Arc::downgrade(&started);
    started
}

impl Database {
    fn start(kind: Kind) -> Self {
        match kind {
            Kind::Postgres => Database::Postgres(shared(&POSTGRES, PostgresServer::start)),
            Kind::MariaDb => Database::MariaDb(shared(&MARIADB, MariaDbServer::start)),
        }
    }

    fn url(&self) -> String {
        match self {
            Database::Postgres(server) => server.url(),
            Database::MariaDb(server) => server.url(),
        }
    }

    /// Runs one query; its rows, columns separated by `|`.
    fn query(&self, sql: &str) -> String {
        match self {
            Database::Postgres(server) => server.psql(sql),
            Database::MariaDb(server) => server.sql(sql).replace('\t', "|"),
        }
    }
}

/// A fresh table name.
fn table_name() -> String {
    let id = tessera::SessionId::generate().unwrap();
    format!(
        "t_{}",
        &id.as_str()[..20].to_ascii_lowercase().replace('-', "_")
    )
}

/// One database, one table, one Node app and one Tessera, configured alike.
struct Servers {
    kind: Kind,
    db: Database,
    table: String,
    node: NodeApp,
    tessera: TesseraServer,
    _cwd: TempDir,
}

/// Which app creates the table.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Creator {
    Tessera,
    Node,
}

impl Servers {
    /// `creator` starts first and creates the table; the other must not (the Node app is
    /// told not to create it, Tessera checks its shape).
    fn start_with(kind: Kind, creator: Creator) -> Self {
        let db = Database::start(kind);
        let table = table_name();
        let cwd = tempfile::tempdir().unwrap();
        let (node, tessera) = match creator {
            Creator::Tessera => {
                let tessera = start_tessera(&db, &table, cwd.path());
                (start_node(&db, kind, &table, false), tessera)
            }
            Creator::Node => {
                let node = start_node(&db, kind, &table, true);
                (node, start_tessera(&db, &table, cwd.path()))
            }
        };
        Servers {
            kind,
            db,
            table,
            node,
            tessera,
            _cwd: cwd,
        }
    }

    fn node(&self, path: &str) -> String {
        format!("{}{path}", self.node.url())
    }

    fn tessera(&self, path: &str) -> String {
        format!("{}{path}", self.tessera.url())
    }

    /// `(stored JSON, expiry in Unix seconds)` of the row for `id`, if there is one.
    fn row(&self, id: &str) -> Option<(String, i64)> {
        let sql = match self.kind {
            Kind::Postgres => format!(
                "SELECT sess::text, extract(epoch FROM expire)::int8 FROM {} WHERE sid = '{id}'",
                self.table
            ),
            Kind::MariaDb => format!(
                "SELECT data, expires FROM {} WHERE session_id = '{id}'",
                self.table
            ),
        };
        let out = self.db.query(&sql);
        let (json, expiry) = out.rsplit_once('|')?;
        Some((json.to_owned(), expiry.parse().expect("an integer expiry")))
    }

    fn rows(&self) -> u64 {
        self.db
            .query(&format!("SELECT count(*) FROM {}", self.table))
            .parse()
            .unwrap()
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- Node app log:\n{}\n--- tessera log:\n{}",
                self.node.log(),
                self.tessera.log()
            );
        }
    }
}

fn start_node(db: &Database, kind: Kind, table: &str, create: bool) -> NodeApp {
    let store = match kind {
        Kind::Postgres => "pg",
        Kind::MariaDb => "mysql",
    };
    NodeApp::start(&[
        ("STORE", store),
        ("DATABASE_URL", &db.url()),
        ("SESSION_TABLE", table),
        ("CREATE_TABLE", if create { "1" } else { "0" }),
        ("SESSION_SECRET", SECRET),
        ("SESSION_TTL", "3600"),
        ("COOKIE_MAX_AGE", "86400"),
    ])
}

fn start_tessera(db: &Database, table: &str, cwd: &Path) -> TesseraServer {
    let url = format!("{}?table={table}", db.url());
    TesseraServer::start(
        Path::new(env!("CARGO_BIN_EXE_tessera")),
        cwd,
        &[
            "--store",
            &url,
            "--secret",
            SECRET,
            "--ttl",
            "3600",
            "--cookie-max-age",
            "86400",
        ],
        &[],
    )
}

/// `tessera sessions ARGS… --store URL?table=TABLE`; its stdout, or a panic with stderr.
fn sessions(s: &Servers, args: &[&str]) -> String {
    let url = format!("{}?table={}", s.db.url(), s.table);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .arg("sessions")
        .args(args)
        .args(["--store", &url])
        .env_remove("SESSION_STORE")
        .output()
        .expect("run tessera sessions");
    assert!(
        out.status.success(),
        "tessera sessions {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

/// GET through the browser, expecting 200; the body.
async fn get(client: &reqwest::Client, url: &str) -> String {
    let response = client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "GET {url}: {body}");
    body
}

/// Runs each flow once per database, as its own test.
macro_rules! for_each_database {
    ($($flow:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $flow() {
                    super::$flow(super::Kind::Postgres).await
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $flow() {
                    super::$flow(super::Kind::MariaDb).await
                }
            )*
        }
    };
}

for_each_database!(
    counter_alternates_between_node_and_tessera,
    tessera_starts_node_continues,
    logout_on_node_ends_the_session_for_both,
    logout_on_tessera_ends_the_session_for_both,
    tessera_runs_on_a_table_node_created,
    both_store_the_same_row_shape_and_expiry,
    tessera_sessions_manages_node_sessions,
    a_user_logged_in_on_node_is_listed_and_signed_out_by_tessera,
);

/// Starts servers off the test's runtime (starting a database blocks for a second or so).
async fn servers(kind: Kind, creator: Creator) -> Servers {
    tokio::task::spawn_blocking(move || Servers::start_with(kind, creator))
        .await
        .unwrap()
}

/// Node, Tessera, Node, …: one session, every visit counted, on a table Tessera created
/// and the Node app was told not to create.
async fn counter_alternates_between_node_and_tessera(kind: Kind) {
    let s = servers(kind, Creator::Tessera).await;
    let client = browser();
    for n in 1..=6u64 {
        let url = if n % 2 == 1 {
            s.node("/")
        } else {
            s.tessera("/")
        };
        assert_eq!(
            counter_views(&get(&client, &url).await),
            n,
            "visit {n} on {url}"
        );
    }
    assert_eq!(s.rows(), 1, "one session, one row");
    let id = get(&client, &s.node("/id")).await;
    let (json, _) = s.row(&id).expect("the session's row");
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap()["views"], 6);
}

async fn tessera_starts_node_continues(kind: Kind) {
    let s = servers(kind, Creator::Tessera).await;
    let client = browser();
    assert_eq!(counter_views(&get(&client, &s.tessera("/")).await), 1);
    assert_eq!(counter_views(&get(&client, &s.tessera("/")).await), 2);
    assert_eq!(counter_views(&get(&client, &s.node("/")).await), 3);
    assert_eq!(get(&client, &s.node("/views")).await, "3");
}

async fn logout_on_node_ends_the_session_for_both(kind: Kind) {
    let s = servers(kind, Creator::Tessera).await;
    let client = browser();
    get(&client, &s.tessera("/")).await;
    assert_eq!(counter_views(&get(&client, &s.node("/")).await), 2);
    let id = get(&client, &s.node("/id")).await;
    assert!(s.row(&id).is_some());
    assert_eq!(get(&client, &s.node("/logout")).await, LOGGED_OUT);
    assert!(s.row(&id).is_none(), "Node deleted the row");
    // express leaves the cookie in the browser: Tessera finds no session under it.
    assert_eq!(counter_views(&get(&client, &s.tessera("/")).await), 1);
    assert_eq!(counter_views(&get(&client, &s.node("/")).await), 2);
    assert!(s.row(&id).is_none(), "the old session stayed gone");
}

async fn logout_on_tessera_ends_the_session_for_both(kind: Kind) {
    let s = servers(kind, Creator::Tessera).await;
    let client = browser();
    get(&client, &s.node("/")).await;
    assert_eq!(counter_views(&get(&client, &s.tessera("/")).await), 2);
    let id = get(&client, &s.node("/id")).await;
    assert_eq!(get(&client, &s.tessera("/logout")).await, LOGGED_OUT);
    assert!(s.row(&id).is_none(), "Tessera deleted the row");
    assert_eq!(counter_views(&get(&client, &s.node("/")).await), 1);
    assert_eq!(counter_views(&get(&client, &s.tessera("/")).await), 2);
    assert_eq!(s.rows(), 1);
}

/// The Node store creates its own table (connect-pg-simple's `table.sql`,
/// express-mysql-session's `schema.sql`); Tessera accepts it and both share it.
///
/// The only test that lets connect-pg-simple create a table: it names the constraint
/// `session_pkey` and the index `IDX_session_expire` whatever the table, so a second such
/// table in one schema fails (Tessera names them after the table).
async fn tessera_runs_on_a_table_node_created(kind: Kind) {
    let s = servers(kind, Creator::Node).await;
    let client = browser();
    assert_eq!(counter_views(&get(&client, &s.node("/")).await), 1);
    assert_eq!(counter_views(&get(&client, &s.tessera("/")).await), 2);
    assert_eq!(counter_views(&get(&client, &s.node("/")).await), 3);
    assert_eq!(counter_views(&get(&client, &s.tessera("/")).await), 4);
}

/// Both write the same JSON shape and derive the row's expiry from the cookie by the Node
/// store's rule: connect-pg-simple rounds up (`Math.ceil`), express-mysql-session rounds
/// (`Math.round`).
async fn both_store_the_same_row_shape_and_expiry(kind: Kind) {
    let s = servers(kind, Creator::Tessera).await;
    let client = browser();
    get(&client, &s.node("/")).await;
    let id = get(&client, &s.node("/id")).await;
    // `/id` changes nothing, so the Node store only touched the row: its expiry is that
    // request's, its JSON the first one's. A save writes both from one cookie.
    get(&client, &s.node("/")).await;
    let by_node = s.row(&id).unwrap();
    get(&client, &s.tessera("/")).await;
    let by_tessera = s.row(&id).unwrap();
    let expected_expiry = |json: &str| {
        let value: Value = serde_json::from_str(json).unwrap();
        let expires = value["cookie"]["expires"].as_str().unwrap().to_owned();
        let at =
            time::OffsetDateTime::parse(&expires, &time::format_description::well_known::Rfc3339)
                .unwrap();
        let ms = (at.unix_timestamp_nanos() / 1_000_000) as i64;
        match kind {
            Kind::Postgres => (ms + 999).div_euclid(1000),
            Kind::MariaDb => (ms + 500).div_euclid(1000),
        }
    };
    for (who, (json, expiry)) in [("node", &by_node), ("tessera", &by_tessera)] {
        assert_eq!(*expiry, expected_expiry(json), "{who}: {json}");
    }
    let keys = |json: &str| -> Vec<String> {
        let value: Value = serde_json::from_str(json).unwrap();
        value.as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(keys(&by_node.0), keys(&by_tessera.0));
    let cookie = |json: &str| -> Vec<String> {
        let value: Value = serde_json::from_str(json).unwrap();
        value["cookie"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(cookie(&by_node.0), cookie(&by_tessera.0));
    assert!(
        by_tessera
            .0
            .starts_with(r#"{"cookie":{"originalMaxAge":86400000,"expires":""#),
        "{}",
        by_tessera.0
    );
}

/// The admin commands on the shared table: a session the Node app created is listed,
/// shown and destroyed by `tessera sessions`.
async fn tessera_sessions_manages_node_sessions(kind: Kind) {
    let s = servers(kind, Creator::Tessera).await;
    let client = browser();
    get(&client, &s.node("/")).await;
    get(&client, &s.node("/")).await;
    let id = get(&client, &s.node("/id")).await;
    let admin = tokio::task::spawn_blocking(move || {
        assert_eq!(sessions(&s, &["count"]), "1");
        assert_eq!(sessions(&s, &["list"]), id);
        let shown = sessions(&s, &["show", &id]);
        assert!(shown.contains("\"views\": 2"), "{shown}");
        sessions(&s, &["destroy", &id]);
        assert_eq!(sessions(&s, &["count"]), "0");
        s
    });
    let s = admin.await.unwrap();
    assert_eq!(counter_views(&get(&client, &s.node("/")).await), 1);
}

/// The SQL stores' index is a query on the stored JSON, so a session the Node app logged
/// in (`req.session.user = …`) is one of the user's sessions for Tessera too: listed
/// beside a Tessera login, and ended by "sign out everywhere".
async fn a_user_logged_in_on_node_is_listed_and_signed_out_by_tessera(kind: Kind) {
    let s = servers(kind, Creator::Tessera).await;
    let on_node = browser();
    get(&on_node, &s.node("/")).await;
    assert_eq!(
        get(&on_node, &s.node("/set?key=user&value=nora")).await,
        "set"
    );
    let on_tessera = browser();
    let login = on_tessera
        .post(s.tessera("/login"))
        .form(&[("user", "nora")])
        .send()
        .await
        .unwrap();
    assert_eq!(login.text().await.unwrap(), "Logged in as nora.");
    let listed = get(&on_tessera, &s.tessera("/sessions")).await;
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let node_id = get(&on_node, &s.node("/id")).await;
    let s = tokio::task::spawn_blocking(move || {
        let ids = sessions(&s, &["user", "nora"]);
        assert!(ids.lines().any(|id| id == node_id), "{ids}");
        s
    })
    .await
    .unwrap();
    let ended = on_tessera
        .post(s.tessera("/logout-everywhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(ended.text().await.unwrap(), "Signed out of 2 sessions.");
    assert_eq!(s.rows(), 0, "both rows deleted");
    assert_eq!(
        counter_views(&get(&on_node, &s.node("/")).await),
        1,
        "a new session on Node"
    );
}
