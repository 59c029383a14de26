//! Interop with a live Node app: the article's express-session + connect-redis app
//! (`interop/app.js`) and the real `tessera serve` binary share one real `redis-server`, one
//! secret list and one browser, and each continues the other's sessions.
//!
//! Every flow runs against both Node peers: connect-redis 8.1.0 with ioredis (the article's
//! stack) and connect-redis 9 with node-redis 5 (`mod ioredis_connect_redis_8`,
//! `mod node_redis_connect_redis_9`).
//!
//! The browser: one reqwest client, one cookie jar, for both servers. Both listen on
//! 127.0.0.1 on different ports; cookies are not port-specific (RFC 6265 §8.5) and reqwest's
//! jar (`cookie_store`) matches on host and path only, so the cookie one server sets is sent
//! to the other, as a browser behind one load balancer would. Flows that need a precise
//! cookie (an old one after logout, one signed with a retired secret) send the `Cookie`
//! header themselves with a jarless client.
//!
//! Needs `node` and `interop/node_modules` (`npm ci` in `interop/`; `scripts/test` does it):
//! without them every test here fails saying so.

use std::path::Path;
use std::time::Duration;

use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::Value;
use tessera::record::Record;
use tessera::signing::Secrets;
use test_support::{browser, NodeApp, RedisServer, TesseraServer};
use time::OffsetDateTime;

const PREFIX: &str = "myapp:session:";
const SECRET: &str = "interop: keyboard cat";
const COOKIE_NAME: &str = "connect.sid";
const WELCOME: &str = "Welcome to the session demo! Visit again to see the view count increase.";
const LOGGED_OUT: &str = "Logged out successfully!";
const DAY: i64 = 86_400;
/// The SameSite both apps use: Tessera's default, set on the Node side (express sends none
/// by default). `Servers::start_without_same_site` runs both the express way.
const SAME_SITE: &str = "lax";

/// The Node peer's Redis client and connect-redis version (`CLIENT` of `interop/app.js`).
#[derive(Debug, Clone, Copy)]
enum Peer {
    /// connect-redis 8.1.0 + ioredis 5: the article's stack.
    Ioredis,
    /// connect-redis 9 + node-redis 5.
    NodeRedis,
}

impl Peer {
    fn client(self) -> &'static str {
        match self {
            Peer::Ioredis => "ioredis",
            Peer::NodeRedis => "node-redis",
        }
    }
}

/// Runs each flow once per Node peer, as its own test.
macro_rules! for_each_peer {
    ($($flow:ident),* $(,)?) => {
        mod ioredis_connect_redis_8 {
            $(
                #[tokio::test]
                async fn $flow() {
                    super::$flow(super::Peer::Ioredis).await
                }
            )*
        }
        mod node_redis_connect_redis_9 {
            $(
                #[tokio::test]
                async fn $flow() {
                    super::$flow(super::Peer::NodeRedis).await
                }
            )*
        }
    };
}

for_each_peer!(
    counter_alternates_between_node_and_tessera,
    tessera_starts_node_continues,
    logout_on_node_ends_the_session_for_both,
    logout_on_tessera_ends_the_session_for_both,
    every_json_kind_survives_a_tessera_write,
    secret_rotation_accepts_old_cookies_on_both_sides,
    set_cookie_attributes_match,
    ttl_and_stored_shape_match,
    browser_session_cookie_uses_the_ttl_option_on_both_sides,
    node_record_round_trips_through_tessera_codec,
    node_cookie_verifies_with_tessera_signing,
    node_writes_are_not_lost_to_concurrent_tessera_requests,
    node_keeps_the_creation_time_and_the_absolute_timeout_still_ends_the_session,
    a_node_session_gets_its_creation_time_when_tessera_first_saves_it,
    a_node_logout_drops_the_session_from_the_users_list,
);

// ---------------------------------------------------------------------------------------
// The servers
// ---------------------------------------------------------------------------------------

/// One Redis, one Node app and one Tessera, configured alike (the article's options).
struct Servers {
    redis: RedisServer,
    node: NodeApp,
    tessera: TesseraServer,
}

impl Servers {
    /// Both apps with cookie maxAge one day, sharing `SECRET`.
    fn start(peer: Peer) -> Self {
        Self::start_with(peer, SECRET, DAY as u64)
    }

    fn start_with(peer: Peer, secrets: &str, max_age_secs: u64) -> Self {
        let redis = RedisServer::start();
        let node = start_node(&redis, peer, secrets, max_age_secs);
        let tessera = start_tessera(&redis, secrets, max_age_secs);
        Servers {
            redis,
            node,
            tessera,
        }
    }

    /// Both apps with no SameSite attribute: the article's express app as it is, and
    /// Tessera with `--cookie-same-site unset` (its opt-out of the Lax default).
    fn start_without_same_site(peer: Peer) -> Self {
        let redis = RedisServer::start();
        let node = start_node_with(&redis, peer, SECRET, DAY as u64, None);
        let tessera =
            start_tessera_with(&redis, SECRET, DAY as u64, &["--cookie-same-site", "unset"]);
        Servers {
            redis,
            node,
            tessera,
        }
    }

    /// The raw stored value under `PREFIX + id` (empty when there is none).
    fn raw(&self, id: &str) -> String {
        self.redis.cli(&["GET", &key(id)])
    }

    fn exists(&self, id: &str) -> bool {
        self.redis.cli(&["EXISTS", &key(id)]) == "1"
    }

    fn ttl(&self, id: &str) -> i64 {
        let out = self.redis.cli(&["TTL", &key(id)]);
        out.parse()
            .unwrap_or_else(|_| panic!("TTL answered {out:?}"))
    }

    /// Every session key in Redis.
    fn session_keys(&self) -> Vec<String> {
        let out = self.redis.cli(&["KEYS", &format!("{PREFIX}*")]);
        out.lines().map(str::to_owned).collect()
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

fn start_node(redis: &RedisServer, peer: Peer, secrets: &str, max_age_secs: u64) -> NodeApp {
    start_node_with(redis, peer, secrets, max_age_secs, Some(SAME_SITE))
}

fn start_node_with(
    redis: &RedisServer,
    peer: Peer,
    secrets: &str,
    max_age_secs: u64,
    same_site: Option<&str>,
) -> NodeApp {
    let (url, max_age) = (redis.url(), max_age_secs.to_string());
    let mut env = vec![
        ("CLIENT", peer.client()),
        ("REDIS_URL", url.as_str()),
        ("SESSION_SECRET", secrets),
        ("SESSION_PREFIX", PREFIX),
        ("SESSION_TTL", "3600"),
        ("COOKIE_MAX_AGE", max_age.as_str()),
    ];
    if let Some(same_site) = same_site {
        env.push(("COOKIE_SAME_SITE", same_site));
    }
    NodeApp::start(&env)
}

fn start_tessera(redis: &RedisServer, secrets: &str, max_age_secs: u64) -> TesseraServer {
    start_tessera_with(redis, secrets, max_age_secs, &[])
}

fn start_tessera_with(
    redis: &RedisServer,
    secrets: &str,
    max_age_secs: u64,
    extra: &[&str],
) -> TesseraServer {
    let (url, max_age) = (redis.url(), max_age_secs.to_string());
    // `--secrets`, the comma-separated list, as the Node app's SESSION_SECRET is. The
    // absolute timeout is on (a day, unless a flow sets its own): its creation time
    // must ride along in every session Node saves.
    let mut args = vec![];
    if !extra.contains(&"--absolute-timeout") {
        args.extend_from_slice(&["--absolute-timeout", "86400"]);
    }
    args.extend_from_slice(&[
        "--store",
        &url,
        "--secrets",
        secrets,
        "--prefix",
        PREFIX,
        "--ttl",
        "3600",
        "--cookie-max-age",
        &max_age,
    ]);
    args.extend_from_slice(extra);
    TesseraServer::start(
        Path::new(env!("CARGO_BIN_EXE_tessera")),
        redis.dir.path(),
        &args,
        &[],
    )
}

fn key(id: &str) -> String {
    format!("{PREFIX}{id}")
}

/// The counter's text after `n` visits (the article's).
fn visited(n: u64) -> String {
    if n == 1 {
        WELCOME.to_owned()
    } else {
        format!("You have visited this page {n} times.")
    }
}

// ---------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------

/// A response, with what the tests look at.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
    set_cookies: Vec<String>,
}

impl Reply {
    /// Our session cookie's `Set-Cookie`, which must be there.
    fn session_cookie(&self) -> SetCookie {
        self.maybe_session_cookie()
            .unwrap_or_else(|| panic!("no {COOKIE_NAME} Set-Cookie in {self:?}"))
    }

    fn maybe_session_cookie(&self) -> Option<SetCookie> {
        self.set_cookies
            .iter()
            .map(|raw| SetCookie::parse(raw))
            .find(|c| c.name == COOKIE_NAME)
    }
}

/// GET with `client` (its own jar, if it has one), plus an explicit cookie if given.
async fn get_with(client: &reqwest::Client, url: &str, cookie: Option<&SetCookie>) -> Reply {
    let mut request = client.get(url);
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie.pair());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status().as_u16();
    let set_cookies = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("ASCII Set-Cookie").to_owned())
        .collect();
    let body = response.text().await.expect("response body");
    Reply {
        status,
        body,
        set_cookies,
    }
}

/// GET through a browser (cookie jar), expecting 200.
async fn get(client: &reqwest::Client, url: &str) -> Reply {
    let reply = get_with(client, url, None).await;
    assert_eq!(reply.status, 200, "GET {url}: {reply:?}");
    reply
}

/// A client without a cookie jar: the test says which cookie to send.
fn jarless() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build an HTTP client")
}

/// GET with exactly `cookie` (or none), expecting 200.
async fn get_as(url: &str, cookie: Option<&SetCookie>) -> Reply {
    let reply = get_with(&jarless(), url, cookie).await;
    assert_eq!(reply.status, 200, "GET {url}: {reply:?}");
    reply
}

/// One `Set-Cookie` header, split into its parts.
#[derive(Debug, Clone)]
struct SetCookie {
    raw: String,
    name: String,
    /// The value as sent (URL-encoded).
    value: String,
    /// `(name, value)` of each attribute, in order.
    attributes: Vec<(String, Option<String>)>,
}

impl SetCookie {
    fn parse(raw: &str) -> Self {
        let mut parts = raw.split("; ");
        let (name, value) = parts
            .next()
            .and_then(|p| p.split_once('='))
            .unwrap_or_else(|| panic!("Set-Cookie without name=value: {raw:?}"));
        let attributes = parts
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (p.to_owned(), None),
            })
            .collect();
        SetCookie {
            raw: raw.to_owned(),
            name: name.to_owned(),
            value: value.to_owned(),
            attributes,
        }
    }

    /// `name=value`, for a `Cookie` header.
    fn pair(&self) -> String {
        format!("{}={}", self.name, self.value)
    }

    /// The value URL-decoded: `s:<id>.<signature>`.
    fn decoded(&self) -> String {
        percent_decode(&self.value)
    }

    /// The session ID it carries.
    fn id(&self) -> String {
        let decoded = self.decoded();
        let signed = decoded
            .strip_prefix("s:")
            .unwrap_or_else(|| panic!("cookie value without s: prefix: {:?}", self.raw));
        let (id, _) = signed
            .rsplit_once('.')
            .unwrap_or_else(|| panic!("cookie value without signature: {:?}", self.raw));
        id.to_owned()
    }

    fn attribute_names(&self) -> Vec<&str> {
        self.attributes.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    }

    fn expires(&self) -> OffsetDateTime {
        let text = self
            .attribute("Expires")
            .unwrap_or_else(|| panic!("no Expires in {:?}", self.raw));
        parse_http_date(text)
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).expect("complete %XX escape");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("UTF-8 cookie value")
}

/// `Sun, 29 Nov 2026 09:04:54 GMT`.
fn parse_http_date(text: &str) -> OffsetDateTime {
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    time::PrimitiveDateTime::parse(text, format)
        .unwrap_or_else(|e| panic!("Expires {text:?} is not an HTTP date: {e}"))
        .assume_utc()
}

/// Asserts `at` is `secs` seconds from now, give or take a few.
fn assert_about_from_now(at: OffsetDateTime, secs: i64, what: &str) {
    let off = (at - OffsetDateTime::now_utc()).whole_seconds() - secs;
    assert!(off.abs() <= 5, "{what}: {at} is not {secs} s from now");
}

// ---------------------------------------------------------------------------------------
// Stored JSON
// ---------------------------------------------------------------------------------------

/// Splits a stored session's JSON into its `cookie` member (`{…}`) and the rest (the
/// application's fields, `,"views":1,…}` or `}`). The cookie member holds no nested object.
fn split_cookie(json: &str) -> (&str, &str) {
    let cookie = json
        .strip_prefix(r#"{"cookie":"#)
        .unwrap_or_else(|| panic!("stored session does not start with its cookie: {json}"));
    let end = cookie.find('}').expect("cookie member closes") + 1;
    (&cookie[..end], &cookie[end..])
}

/// `raw` without the creation time Tessera appends to a session Node created (the
/// absolute timeout is on): `,"_tessera":{"created":…}` at the very end, and nothing else.
fn without_creation_time(raw: &str) -> String {
    let Some(at) = raw.rfind(r#","_tessera":{"created":"#) else {
        return raw.to_owned();
    };
    let tail = &raw[at + r#","_tessera":{"created":"#.len()..];
    let digits = tail.trim_end_matches("}}");
    assert!(
        tail.ends_with("}}") && digits.bytes().all(|b| b.is_ascii_digit()),
        "only the creation time is appended: {raw}"
    );
    format!("{}}}", &raw[..at])
}

fn parse_json(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON ({e}): {json:?}"))
}

fn keys_of(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// Checks a stored session against express-session's shape: `cookie` first (its members in
/// `Cookie#data` order), then `views`; TTL and expiry one cookie max age (`max_age`
/// seconds; 0 for a browser-session cookie, kept for the `ttl` option, 3600 s).
fn assert_stored_shape(servers: &Servers, id: &str, views: u64, max_age: i64, who: &str) {
    let raw = servers.raw(id);
    let stored = parse_json(&raw);
    // Tessera's reserved member rides along, wherever the writer put it.
    let mut keys = keys_of(&stored);
    if let Some(at) = keys.iter().position(|k| *k == "_tessera") {
        keys.remove(at);
        assert!(
            stored["_tessera"]["created"].as_i64().is_some(),
            "{who} wrote {raw}"
        );
    }
    assert_eq!(keys, ["cookie", "views"], "{who} wrote {raw}");
    assert_eq!(stored["views"].as_u64(), Some(views), "{who} wrote {raw}");
    let cookie = &stored["cookie"];
    assert_eq!(
        keys_of(cookie),
        [
            "originalMaxAge",
            "expires",
            "secure",
            "httpOnly",
            "path",
            "sameSite"
        ],
        "{who} wrote {raw}"
    );
    assert_eq!(
        cookie["sameSite"].as_str(),
        Some(SAME_SITE),
        "{who} wrote {raw}"
    );
    assert_eq!(cookie["secure"], Value::Bool(false), "{who} wrote {raw}");
    assert_eq!(cookie["httpOnly"], Value::Bool(true), "{who} wrote {raw}");
    assert_eq!(cookie["path"].as_str(), Some("/"), "{who} wrote {raw}");
    let ttl = servers.ttl(id);
    if max_age == 0 {
        assert_eq!(cookie["originalMaxAge"], Value::Null, "{who} wrote {raw}");
        assert_eq!(cookie["expires"], Value::Null, "{who} wrote {raw}");
        assert!((3595..=3600).contains(&ttl), "{who}: TTL {ttl}, not 3600");
        return;
    }
    // express's Cookie recomputes originalMaxAge from `expires - now` when it resets the
    // expiry, so Node's value drifts a millisecond now and then; Tessera's is exact.
    let original = cookie["originalMaxAge"].as_i64().expect("originalMaxAge");
    assert!(
        (max_age * 1000 - 100..=max_age * 1000).contains(&original),
        "{who} wrote originalMaxAge {original}"
    );
    let expires = cookie["expires"].as_str().expect("expires is a string");
    assert!(
        is_js_iso(expires),
        "{who} wrote expires {expires:?}, not Date#toISOString"
    );
    let at = OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
        .expect("expires parses");
    assert_about_from_now(at, max_age, who);
    assert!(
        (max_age - 5..=max_age).contains(&ttl),
        "{who}: TTL {ttl}, not about {max_age}"
    );
}

/// `Date#toISOString`: `2026-11-29T09:04:54.097Z`.
fn is_js_iso(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

// ---------------------------------------------------------------------------------------
// The flows
// ---------------------------------------------------------------------------------------

/// Node starts a session, Tessera continues it, Node continues it, … ten rounds, in one
/// browser: the counter never skips or restarts, and it stays one session.
async fn counter_alternates_between_node_and_tessera(peer: Peer) {
    let servers = Servers::start(peer);
    let browser = browser();
    let mut visits = 0;
    for round in 1..=10 {
        for (side, url) in [
            ("Node", servers.node.url()),
            ("Tessera", servers.tessera.url()),
        ] {
            visits += 1;
            let reply = get(&browser, &format!("{url}/")).await;
            assert_eq!(reply.body, visited(visits), "round {round}, {side}");
        }
    }
    let keys = servers.session_keys();
    assert_eq!(keys.len(), 1, "one session throughout: {keys:?}");
    let id = &keys[0][PREFIX.len()..];
    assert_stored_shape(&servers, id, visits, DAY, "the last writer (Tessera)");
    let node_views = get(&browser, &format!("{}/views", servers.node.url())).await;
    assert_eq!(node_views.body, visits.to_string());
}

/// Tessera starts a session; Node continues it under the same ID.
async fn tessera_starts_node_continues(peer: Peer) {
    let servers = Servers::start(peer);
    let browser = browser();
    let first = get(&browser, &format!("{}/", servers.tessera.url())).await;
    assert_eq!(first.body, WELCOME);
    let id = first.session_cookie().id();
    assert!(servers.exists(&id), "Tessera stored the new session");

    for n in 2..=4 {
        let reply = get(&browser, &format!("{}/", servers.node.url())).await;
        assert_eq!(reply.body, visited(n));
    }
    let node_id = get(&browser, &format!("{}/id", servers.node.url())).await;
    assert_eq!(node_id.body, id, "Node uses the ID Tessera issued");
    assert_eq!(servers.session_keys(), [key(&id)]);
}

async fn logout_on_node_ends_the_session_for_both(peer: Peer) {
    logout_ends_the_session_for_both(peer, Side::Node).await
}

async fn logout_on_tessera_ends_the_session_for_both(peer: Peer) {
    logout_ends_the_session_for_both(peer, Side::Tessera).await
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Node,
    Tessera,
}

/// A session both sides used; `/logout` on `side` deletes the key; the next visit on either
/// side is a new session ("Welcome…"), even with the old cookie, and the old key stays gone.
async fn logout_ends_the_session_for_both(peer: Peer, side: Side) {
    let servers = Servers::start(peer);
    let (node, tessera) = (servers.node.url(), servers.tessera.url());
    let (here, there) = match side {
        Side::Node => (&node, &tessera),
        Side::Tessera => (&tessera, &node),
    };
    let browser = browser();
    let first = get(&browser, &format!("{there}/")).await;
    assert_eq!(first.body, WELCOME);
    let old = first.session_cookie();
    let old_id = old.id();
    assert_eq!(get(&browser, &format!("{here}/")).await.body, visited(2));
    assert!(servers.exists(&old_id));

    let logout = get(&browser, &format!("{here}/logout")).await;
    assert_eq!(logout.body, LOGGED_OUT);
    assert!(!servers.exists(&old_id), "{side:?} logout deleted the key");
    match side {
        // express-session's destroy leaves the cookie in the browser.
        Side::Node => assert!(logout.maybe_session_cookie().is_none(), "{logout:?}"),
        // Tessera clears it: same name and path, empty value, expired.
        Side::Tessera => {
            let removal = logout.session_cookie();
            assert_eq!(removal.value, "", "{removal:?}");
            assert_eq!(removal.attribute("Path"), Some("/"), "{removal:?}");
            assert_eq!(
                removal.attribute("Expires"),
                Some("Thu, 01 Jan 1970 00:00:00 GMT"),
                "{removal:?}"
            );
        }
    }

    // Whatever the browser still holds, the other side starts over.
    let next = get(&browser, &format!("{there}/")).await;
    assert_eq!(
        next.body, WELCOME,
        "first visit to the other side after logout"
    );
    assert_ne!(next.session_cookie().id(), old_id, "a new session ID");

    // Even a client that kept the old cookie gets a new session on both sides.
    for url in [&node, &tessera] {
        let reply = get_as(&format!("{url}/"), Some(&old)).await;
        assert_eq!(reply.body, WELCOME, "{url} with the logged-out cookie");
        assert_ne!(reply.session_cookie().id(), old_id);
    }
    assert!(
        !servers.exists(&old_id),
        "the logged-out session stays gone"
    );
}

/// Node stores every kind of JSON value; Tessera then changes `views`. Node reads back
/// exactly what it stored, and the raw Redis value differs only in `views` and the cookie
/// member (whose expiry every write renews): same key order, same number text, same
/// string escapes.
async fn every_json_kind_survives_a_tessera_write(peer: Peer) {
    let servers = Servers::start(peer);
    let browser = browser();
    let node = servers.node.url();
    assert_eq!(get(&browser, &format!("{node}/")).await.body, WELCOME);
    let kinds = get(&browser, &format!("{node}/set-json")).await.body;
    let id = get(&browser, &format!("{node}/id")).await.body;
    let raw_before = servers.raw(&id);
    let node_before = get(&browser, &format!("{node}/session")).await.body;
    let (cookie_before, data_before) = split_cookie(&raw_before);
    assert_eq!(
        data_before,
        format!(r#","views":1,"kinds":{kinds}}}"#),
        "Node stored what it set"
    );
    assert_eq!(split_cookie(&node_before).1, data_before);

    let tessera = get(&browser, &format!("{}/", servers.tessera.url())).await;
    assert_eq!(tessera.body, visited(2));

    let raw_after = without_creation_time(&servers.raw(&id));
    let (cookie_after, data_after) = split_cookie(&raw_after);
    let expected = data_before.replacen(r#","views":1,"#, r#","views":2,"#, 1);
    assert_eq!(
        data_after, expected,
        "Tessera rewrote Node's fields\n  before: {raw_before}\n  after:  {raw_after}"
    );
    assert_eq!(
        keys_of(&parse_json(cookie_after)),
        keys_of(&parse_json(cookie_before)),
        "cookie member order\n  before: {cookie_before}\n  after:  {cookie_after}"
    );

    let node_after = without_creation_time(&get(&browser, &format!("{node}/session")).await.body);
    assert_eq!(
        split_cookie(&node_after).1,
        expected,
        "what Node reads after Tessera's write"
    );
    assert_eq!(get(&browser, &format!("{node}/")).await.body, visited(3));
}

/// Secret rotation: Node on `[new, old]`, Tessera on `--secrets new,old`. A cookie signed
/// with `old` (minted by a Node and by a Tessera that only know `old`) is accepted by both,
/// which continue the session and re-sign it with `new`; the re-signed cookie works on both.
async fn secret_rotation_accepts_old_cookies_on_both_sides(peer: Peer) {
    const OLD: &str = "the old secret";
    const NEW: &str = "the new secret";
    let rotating = Servers::start_with(peer, &format!("{NEW},{OLD}"), DAY as u64);
    let node_old = start_node(&rotating.redis, peer, OLD, DAY as u64);
    let tessera_old = start_tessera(&rotating.redis, OLD, DAY as u64);
    let old_only = Secrets::new([OLD]).unwrap();
    let new_only = Secrets::new([NEW]).unwrap();
    let rotating_servers = [
        ("Node [new, old]", rotating.node.url()),
        ("Tessera --secrets new,old", rotating.tessera.url()),
    ];

    for (minter, url) in [
        ("Node [old]", node_old.url()),
        ("Tessera old", tessera_old.url()),
    ] {
        let minted = get_as(&format!("{url}/"), None).await;
        assert_eq!(minted.body, WELCOME, "{minter}");
        let old_cookie = minted.session_cookie();
        let (id, _) = old_only
            .unsign(&old_cookie.decoded())
            .unwrap_or_else(|| panic!("{minter} signs with the old secret: {old_cookie:?}"));
        assert_eq!(id.as_str(), old_cookie.id());

        let mut visits = 1;
        let mut resigned = Vec::new();
        for (name, url) in &rotating_servers {
            visits += 1;
            let reply = get_as(&format!("{url}/"), Some(&old_cookie)).await;
            assert_eq!(
                reply.body,
                visited(visits),
                "{name} accepts a cookie {minter} signed with the old secret"
            );
            let cookie = reply.session_cookie();
            let (again, _) = new_only
                .unsign(&cookie.decoded())
                .unwrap_or_else(|| panic!("{name} re-signs with the new secret: {cookie:?}"));
            assert_eq!(again, id, "{name} keeps the session ID");
            resigned.push(cookie);
        }
        assert_eq!(
            resigned[0].value, resigned[1].value,
            "both sides re-sign to the same cookie value"
        );
        for (name, url) in &rotating_servers {
            visits += 1;
            let reply = get_as(&format!("{url}/"), Some(&resigned[0])).await;
            assert_eq!(reply.body, visited(visits), "{name}, re-signed cookie");
        }
        // The servers that only know the old secret do not know the new one.
        for (name, url) in [
            ("Node [old]", node_old.url()),
            ("Tessera old", tessera_old.url()),
        ] {
            let reply = get_as(&format!("{url}/"), Some(&resigned[0])).await;
            assert_eq!(reply.body, WELCOME, "{name} with a cookie signed with new");
        }
    }
}

/// The `Set-Cookie` each side sends, attribute by attribute: same name, `s%3A…` value,
/// `Path=/`, `Expires` a day out (within seconds of each other), `HttpOnly`,
/// `SameSite=Lax`, no `Max-Age`, same order. For the same session both sides send the very
/// same value. And the same without SameSite: the article's express app as it is, and
/// Tessera with its opt-out.
async fn set_cookie_attributes_match(peer: Peer) {
    set_cookie_attributes_match_on(
        Servers::start(peer),
        &["Path", "Expires", "HttpOnly", "SameSite"],
    )
    .await;
    set_cookie_attributes_match_on(
        Servers::start_without_same_site(peer),
        &["Path", "Expires", "HttpOnly"],
    )
    .await;
}

async fn set_cookie_attributes_match_on(servers: Servers, attributes: &[&str]) {
    let (node, tessera) = (servers.node.url(), servers.tessera.url());
    let node_new = get_as(&format!("{node}/"), None).await.session_cookie();
    let tessera_new = get_as(&format!("{tessera}/"), None).await.session_cookie();
    let secrets = Secrets::new([SECRET]).unwrap();

    for (who, cookie) in [("Node", &node_new), ("Tessera", &tessera_new)] {
        assert_eq!(cookie.name, COOKIE_NAME, "{who}: {}", cookie.raw);
        // s%3A<32-char id>.<43-char base64 signature, / and + encoded>
        assert!(cookie.value.starts_with("s%3A"), "{who}: {}", cookie.raw);
        assert!(
            cookie
                .value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"%-_.".contains(&b)),
            "{who}: value not URL-encoded: {}",
            cookie.raw
        );
        let decoded = cookie.decoded();
        let (id, signature) = decoded[2..].rsplit_once('.').expect("id.signature");
        assert_eq!(id.len(), 32, "{who}: {}", cookie.raw);
        assert_eq!(signature.len(), 43, "{who}: {}", cookie.raw);
        assert!(secrets.unsign(&decoded).is_some(), "{who}: {}", cookie.raw);
        assert_eq!(
            cookie.attribute_names(),
            attributes,
            "{who}: attributes and their order (no Max-Age): {}",
            cookie.raw
        );
        assert_eq!(cookie.attribute("Path"), Some("/"), "{who}");
        if attributes.contains(&"SameSite") {
            assert_eq!(cookie.attribute("SameSite"), Some("Lax"), "{who}");
        }
        assert_about_from_now(cookie.expires(), DAY, who);
    }
    let apart = (node_new.expires() - tessera_new.expires()).abs();
    assert!(
        apart <= time::Duration::seconds(3),
        "Expires {apart} apart:\n  {}\n  {}",
        node_new.raw,
        tessera_new.raw
    );

    // Each side continues the other's session and sends back the same cookie value, with
    // the same attributes.
    for (who, url, cookie) in [
        ("Node", &node, &tessera_new),
        ("Tessera", &tessera, &node_new),
    ] {
        let reply = get_as(&format!("{url}/"), Some(cookie)).await;
        assert_eq!(reply.body, visited(2), "{who}");
        let sent = reply.session_cookie();
        assert_eq!(sent.value, cookie.value, "{who} re-sends the same value");
        assert_eq!(sent.attribute_names(), attributes, "{who}: {}", sent.raw);
        assert_about_from_now(sent.expires(), DAY, who);
    }
}

/// The key's TTL after a write from each side is one cookie max age (~86400 s: connect-
/// redis ignores the `ttl` option when the cookie has an expiry), and both store the same
/// key and the same JSON shape.
async fn ttl_and_stored_shape_match(peer: Peer) {
    let servers = Servers::start(peer);
    let (node, tessera) = (servers.node.url(), servers.tessera.url());

    let browser_a = browser();
    let id = get(&browser_a, &format!("{node}/"))
        .await
        .session_cookie()
        .id();
    assert_eq!(servers.session_keys(), [key(&id)]);
    assert_stored_shape(&servers, &id, 1, DAY, "Node (new session)");
    servers.redis.cli(&["EXPIRE", &key(&id), "100"]);
    get(&browser_a, &format!("{tessera}/")).await;
    assert_eq!(
        servers.session_keys(),
        [key(&id)],
        "Tessera wrote the same key"
    );
    assert_stored_shape(&servers, &id, 2, DAY, "Tessera (Node's session)");

    let browser_b = browser();
    let id = get(&browser_b, &format!("{tessera}/"))
        .await
        .session_cookie()
        .id();
    assert_eq!(servers.session_keys().len(), 2);
    assert_stored_shape(&servers, &id, 1, DAY, "Tessera (new session)");
    servers.redis.cli(&["EXPIRE", &key(&id), "100"]);
    get(&browser_b, &format!("{node}/")).await;
    assert_eq!(servers.session_keys().len(), 2, "Node wrote the same key");
    assert!(servers.exists(&id));
    assert_stored_shape(&servers, &id, 2, DAY, "Node (Tessera's session)");
}

/// With no cookie maxAge (a browser-session cookie), both sides keep the key for the
/// `ttl` option (3600 s), store `originalMaxAge` and `expires` as null, send no
/// `Expires`, and send no cookie at all for a continued session.
async fn browser_session_cookie_uses_the_ttl_option_on_both_sides(peer: Peer) {
    let servers = Servers::start_with(peer, SECRET, 0);
    let (node, tessera) = (servers.node.url(), servers.tessera.url());
    for (first, then) in [(&node, &tessera), (&tessera, &node)] {
        let browser = browser();
        let reply = get(&browser, &format!("{first}/")).await;
        let cookie = reply.session_cookie();
        assert_eq!(
            cookie.attribute_names(),
            ["Path", "HttpOnly", "SameSite"],
            "{first}: {}",
            cookie.raw
        );
        let id = cookie.id();
        assert_stored_shape(&servers, &id, 1, 0, first);
        let reply = get(&browser, &format!("{then}/")).await;
        assert_eq!(reply.body, visited(2));
        assert!(
            reply.maybe_session_cookie().is_none(),
            "{then} sends no cookie for a continued browser-session cookie: {reply:?}"
        );
        assert_stored_shape(&servers, &id, 2, 0, then);
    }
}

/// Codec level, without the tessera binary: the bytes connect-redis stores (every kind of
/// JSON value included) read and write back through Tessera's record codec unchanged.
async fn node_record_round_trips_through_tessera_codec(peer: Peer) {
    let redis = RedisServer::start();
    let node = start_node(&redis, peer, SECRET, DAY as u64);
    let browser = browser();
    get(&browser, &format!("{}/", node.url())).await;
    get(&browser, &format!("{}/set-json", node.url())).await;
    let id = get(&browser, &format!("{}/id", node.url())).await.body;
    let raw = redis.cli(&["GET", &key(&id)]);
    let record = Record::from_json(raw.as_bytes())
        .unwrap_or_else(|e| panic!("Tessera cannot read Node's record ({e}): {raw}"));
    assert_eq!(String::from_utf8(record.to_json()).unwrap(), raw);
}

/// Codec level, without the tessera binary: Tessera's signing verifies express's cookie
/// and finds the ID express uses.
async fn node_cookie_verifies_with_tessera_signing(peer: Peer) {
    let redis = RedisServer::start();
    let node = start_node(&redis, peer, SECRET, DAY as u64);
    let browser = browser();
    let cookie = get(&browser, &format!("{}/", node.url()))
        .await
        .session_cookie();
    let id = get(&browser, &format!("{}/id", node.url())).await.body;
    let secrets = Secrets::new([SECRET]).unwrap();
    let (verified, index) = secrets
        .unsign(&cookie.decoded())
        .unwrap_or_else(|| panic!("Tessera rejects express's cookie {cookie:?}"));
    assert_eq!((verified.as_str(), index), (id.as_str(), 0));
    assert_eq!(secrets.sign(&verified), cookie.decoded());
}

/// JavaScript strings may hold half a surrogate pair (`'😀'.slice(0, 1)`, text truncated
/// by UTF-16 length); `JSON.stringify` writes it as the escape `"\ud83d"` and express
/// reads it back. Rust strings cannot hold it; Tessera's record codec shelters it and
/// writes the same escape back, so the session continues and the field is kept.
#[tokio::test]
async fn node_session_with_a_lone_surrogate_continues_on_tessera() {
    let servers = Servers::start(Peer::Ioredis);
    let browser = browser();
    let node = servers.node.url();
    assert_eq!(get(&browser, &format!("{node}/")).await.body, WELCOME);
    let written = get(&browser, &format!("{node}/set-lone-surrogate"))
        .await
        .body;
    assert_eq!(written, r#""\ud83d""#);
    let id = get(&browser, &format!("{node}/id")).await.body;
    let raw_before = servers.raw(&id);
    assert!(
        raw_before.ends_with(r#","views":1,"truncated":"\ud83d"}"#),
        "{raw_before}"
    );

    let reply = get(&browser, &format!("{}/", servers.tessera.url())).await;
    assert_eq!(
        reply.body,
        visited(2),
        "Tessera continues Node's session; stored: {raw_before}"
    );
    assert_eq!(servers.session_keys(), [key(&id)], "no second session");
    let raw_after = without_creation_time(&servers.raw(&id));
    assert!(
        raw_after.ends_with(r#","views":2,"truncated":"\ud83d"}"#),
        "{raw_after}"
    );
}

/// Runs `node -e script` with `input` on its stdin and returns its stdout; fails the test
/// (with Node's stderr) when Node is missing or the script fails.
fn node_eval(script: &str, input: &str) -> String {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("node")
        .args(["-e", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (scripts/test installs it): {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin.write_all(input.as_bytes()).expect("write to node");
    drop(stdin);
    let out = child.wait_with_output().expect("node runs");
    assert!(
        out.status.success(),
        "node failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("node writes UTF-8")
}

/// A small deterministic generator (xorshift64*), so a failure names a reproducible case.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Fails unless two records' `n` arrays of numbers are the same text, naming the first
/// number that differs (a whole 20,000-number record would be unreadable).
fn assert_same_numbers(failure: &str, node: &str, tessera: &str) {
    if node == tessera {
        return;
    }
    let numbers = |record: &str| -> Vec<String> {
        let (_, array) = record.split_once(r#""n":["#).expect("the array");
        let array = array.trim_end_matches('}').trim_end_matches(']');
        array.split(',').map(str::to_owned).collect()
    };
    let (a, b) = (numbers(node), numbers(tessera));
    match a.iter().zip(&b).position(|(x, y)| x != y) {
        Some(i) => panic!(
            "{failure}: element {i}: Node {:?}, Tessera {:?}",
            a[i], b[i]
        ),
        None => panic!(
            "{failure}: {} numbers from Node, {} from Tessera",
            a.len(),
            b.len()
        ),
    }
}

/// Node's numbers through Tessera's record codec: 20,000 doubles of every shape (random
/// bit patterns, integers of every size, short decimals at every scale, the edges of
/// plain notation at 1e-7 and 1e21) as `JSON.stringify` writes them come back from
/// `Record::from_json` + `to_json` as the same bytes.
#[test]
fn javascript_numbers_round_trip_through_tessera_codec() {
    let script = r#"
        let s = 0x9E3779B97F4A7C15n;
        const next = () => { s ^= s >> 12n; s ^= (s << 25n) & 0xFFFFFFFFFFFFFFFFn; s ^= s >> 27n;
                             return (s * 0x2545F4914F6CDD1Dn) & 0xFFFFFFFFFFFFFFFFn; };
        const view = new DataView(new ArrayBuffer(8));
        const numbers = [];
        while (numbers.length < 20000) {
            const r = next();
            switch (numbers.length % 5) {
                case 0: { view.setBigUint64(0, r); const d = view.getFloat64(0);
                          if (Number.isFinite(d)) numbers.push(d); break; }
                case 1: numbers.push(Number(r >> (r % 64n)) * (r % 2n ? -1 : 1)); break;
                case 2: numbers.push(Number(r % 100000n) / 10 ** Number(r % 8n) * 10 ** (Number((r >> 8n) % 60n) - 30)); break;
                case 3: numbers.push((1 + Number(r % 1000n) / 1000) * 10 ** (Number((r >> 16n) % 4n) - 8)); break;
                case 4: numbers.push((1 + Number(r % 1000n) / 1000) * 10 ** (Number((r >> 16n) % 4n) + 19)); break;
            }
        }
        process.stdout.write(JSON.stringify({ cookie: { originalMaxAge: null, expires: null }, n: numbers }));
    "#;
    let raw = node_eval(script, "");
    let record = Record::from_json(raw.as_bytes()).expect("Tessera reads Node's numbers");
    let written = String::from_utf8(record.to_json()).expect("UTF-8");
    assert_same_numbers("Tessera wrote Node's numbers differently", &raw, &written);
}

/// Tessera's numbers through Node: 20,000 doubles from random bit patterns, written in a
/// record by Tessera, are what `JSON.stringify(JSON.parse(…))` writes back in Node.
#[test]
fn tessera_numbers_are_written_as_node_writes_them() {
    let mut random = Xorshift(0x9E37_79B9_7F4A_7C15);
    let mut record = Record::from_json(br#"{"cookie":{"originalMaxAge":null,"expires":null}}"#)
        .expect("a record");
    let numbers: Vec<Value> = std::iter::from_fn(|| Some(f64::from_bits(random.next())))
        .filter(|d| d.is_finite())
        .take(20_000)
        .map(Value::from)
        .collect();
    record.data.insert("n".into(), Value::Array(numbers));
    let ours = String::from_utf8(record.to_json()).expect("UTF-8");
    let node = node_eval(
        "let t = ''; process.stdin.on('data', (c) => (t += c)); \
         process.stdin.on('end', () => process.stdout.write(JSON.stringify(JSON.parse(t))));",
        &ours,
    );
    assert_same_numbers("Node writes Tessera's numbers differently", &node, &ours);
}

/// A Node app writes its own keys, one after another, while Tessera requests of the same
/// session run all the time: Tessera's guarded commit sees each Node write and merges
/// into it, so none of the Node app's keys is lost (without the guard, a Tessera request
/// that loaded before a Node write and saved after it drops that key).
async fn node_writes_are_not_lost_to_concurrent_tessera_requests(peer: Peer) {
    let servers = Servers::start(peer);
    let first = get_as(&servers.tessera.url(), None).await;
    let cookie = first.session_cookie();
    let id = cookie.id();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tessera_url = servers.tessera.url();
    let hammers: Vec<_> = (0..6)
        .map(|_| {
            let (stop, cookie, url) = (stop.clone(), cookie.clone(), tessera_url.clone());
            tokio::spawn(async move {
                let mut answered = 0u32;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let reply = get_as(&url, Some(&cookie)).await;
                    assert_eq!(reply.status, 200, "{reply:?}");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let node_writes = 25;
    for n in 0..node_writes {
        let url = format!("{}/set?key=node{n}&value={n}", servers.node.url());
        let reply = get_as(&url, Some(&cookie)).await;
        assert_eq!(
            (reply.status, reply.body.as_str()),
            (200, "set"),
            "{reply:?}"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut tessera_requests = 0;
    for hammer in hammers {
        tessera_requests += hammer.await.unwrap();
    }
    assert!(tessera_requests > 0);
    let stored = parse_json(&servers.raw(&id));
    for n in 0..node_writes {
        assert_eq!(
            stored[format!("node{n}")],
            Value::String(n.to_string()),
            "the Node app's key node{n} was lost ({tessera_requests} Tessera requests ran): {stored}"
        );
    }
}

/// The creation time Tessera stores (`_tessera.created`) survives Node saving the
/// session, and the absolute timeout then ends it on Tessera however active it was.
async fn node_keeps_the_creation_time_and_the_absolute_timeout_still_ends_the_session(peer: Peer) {
    let redis = RedisServer::start();
    let node = start_node(&redis, peer, SECRET, DAY as u64);
    let tessera = start_tessera_with(&redis, SECRET, DAY as u64, &["--absolute-timeout", "4"]);
    let servers = Servers {
        redis,
        node,
        tessera,
    };
    let browser = browser();
    let started = std::time::Instant::now();
    let first = get(&browser, &format!("{}/", servers.tessera.url())).await;
    assert_eq!(first.body, WELCOME);
    let id = first.session_cookie().id();
    let created = parse_json(&servers.raw(&id))["_tessera"]["created"].clone();
    assert!(created.as_i64().is_some(), "{}", servers.raw(&id));
    for n in 2..=3 {
        let reply = get(&browser, &format!("{}/", servers.node.url())).await;
        assert_eq!(reply.body, visited(n));
    }
    let after_node = parse_json(&servers.raw(&id));
    assert_eq!(after_node["views"], 3, "Node saved it");
    assert_eq!(
        after_node["_tessera"]["created"], created,
        "Node kept the creation time"
    );
    let reply = get(&browser, &format!("{}/", servers.tessera.url())).await;
    assert_eq!(reply.body, visited(4), "within the absolute timeout");
    tokio::time::sleep(
        Duration::from_secs(4).saturating_sub(started.elapsed()) + Duration::from_millis(300),
    )
    .await;
    let reply = get(&browser, &format!("{}/", servers.tessera.url())).await;
    assert_eq!(
        reply.body, WELCOME,
        "a new session past the absolute timeout"
    );
    assert!(!servers.exists(&id), "the old session was deleted");
}

/// A session Node created has no creation time; Tessera gives it one the first time it
/// loads it (and saves it), and counts the absolute timeout from then.
async fn a_node_session_gets_its_creation_time_when_tessera_first_saves_it(peer: Peer) {
    let servers = Servers::start(peer);
    let browser = browser();
    let first = get(&browser, &format!("{}/", servers.node.url())).await;
    assert_eq!(first.body, WELCOME);
    let id = first.session_cookie().id();
    assert!(parse_json(&servers.raw(&id)).get("_tessera").is_none());
    let before = OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let reply = get(&browser, &format!("{}/", servers.tessera.url())).await;
    assert_eq!(reply.body, visited(2));
    let stored = parse_json(&servers.raw(&id));
    let created = stored["_tessera"]["created"].as_i64().expect("stamped");
    assert!(created >= before - 1000, "{stored}");
    let reply = get(&browser, &format!("{}/", servers.node.url())).await;
    assert_eq!(reply.body, visited(3));
    assert_eq!(
        parse_json(&servers.raw(&id))["_tessera"]["created"],
        created
    );
}

/// A user logged in twice on Tessera; one browser logs out on Node (express-session's
/// `destroy`, a plain `DEL` behind the index's back): the user's list shows one session,
/// and the stale entry is pruned from the index on the way.
async fn a_node_logout_drops_the_session_from_the_users_list(peer: Peer) {
    let servers = Servers::start(peer);
    let (laptop, phone) = (browser(), browser());
    for client in [&laptop, &phone] {
        let reply = client
            .post(format!("{}/login", servers.tessera.url()))
            .form(&[("user", "olga")])
            .send()
            .await
            .unwrap();
        assert_eq!(reply.text().await.unwrap(), "Logged in as olga.");
    }
    let index = "tessera-index:user:olga";
    assert_eq!(servers.redis.cli(&["ZCARD", index]), "2");
    let out = get(&phone, &format!("{}/logout", servers.node.url())).await;
    assert_eq!(out.body, LOGGED_OUT);
    let listed = get(&laptop, &format!("{}/sessions", servers.tessera.url())).await;
    let listed: Vec<Value> = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(servers.redis.cli(&["ZCARD", index]), "1", "pruned");
}
