//! Reading the target: which topology a URL names (one server, a Sentinel-managed master
//! or a cluster), parsed into the plan the builder connects by.
//!
//! redis-rs reads `redis://` URLs itself. The Sentinel and Cluster URLs list several hosts
//! (`HOST:PORT,HOST:PORT,…`), which it does not read, so `MultiHostUrl` does. Every error
//! shows the URL with its password replaced by `***` (`redact`) and says what was
//! expected, so a wrong URL can be reported at start-up in a log anyone may read.

use redis::{Client, RedisConnectionInfo};

use super::builder::{RedisStoreBuilder, Target};
use super::sentinel::SentinelPlan;
use crate::cookie::percent_decode;
use crate::store::StoreError;

/// The shape of a Sentinel URL, for error messages.
const SENTINEL_URL: &str =
    "redis-sentinel://[user:password@]HOST:PORT,HOST:PORT,…/MASTER_NAME[?db=N]";
/// The shape of a Cluster URL, for error messages.
const CLUSTER_URL: &str = "redis-cluster://[user:password@]HOST:PORT,HOST:PORT,…";

/// Where a builder's target points.
pub(crate) enum Plan {
    Standalone(Client, String),
    Sentinel(SentinelPlan, String),
    Cluster(ClusterPlan, String),
}

/// The parsed `redis-cluster://` URL.
pub(crate) struct ClusterPlan {
    pub(super) seeds: Vec<(String, u16)>,
    pub(super) auth: RedisConnectionInfo,
}

/// A URL with several hosts: `scheme://[user:password@]host:port,host:port,…[/path][?query]`.
/// Credentials, path and query values are percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MultiHostUrl {
    hosts: Vec<(String, u16)>,
    username: Option<String>,
    password: Option<String>,
    path: String,
    query: Vec<(String, String)>,
}

impl MultiHostUrl {
    fn parse(url: &str, default_port: u16, shape: &str) -> Result<Self, StoreError> {
        let bad =
            |why: &str| StoreError::Config(format!("{}: {why}; expected {shape}", redact(url)));
        let rest = url
            .split_once("://")
            .map(|(_, rest)| rest)
            .ok_or_else(|| bad("not a URL"))?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, query),
            None => (rest, ""),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, path),
            None => (rest, ""),
        };
        // `redact` takes the user info to the last `@`, so that a password with an
        // unescaped `/` or `?` is hidden. Read here, such a password would end at that
        // `/` or `?` and its rest become the master name or an option, which the store's
        // name and messages show: an `@` past the host list is refused instead.
        if path.contains('@') || query.contains('@') {
            return Err(bad(
                "an `@` after the host list: %-escape it as %40, and a `/`, `?` or `#` in the password as %2F, %3F, %23",
            ));
        }
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (info, None),
                };
                let user =
                    percent_decode(user).ok_or_else(|| bad("bad %-escape in the user name"))?;
                let password = password
                    .map(|p| percent_decode(p).ok_or_else(|| bad("bad %-escape in the password")))
                    .transpose()?;
                (
                    (!user.is_empty()).then_some(user),
                    password.filter(|p| !p.is_empty()),
                )
            }
        };
        let mut parsed_hosts = Vec::new();
        for host in hosts.split(',').map(str::trim) {
            if host.is_empty() {
                return Err(bad("an empty host in the host list"));
            }
            let (name, port) = if let Some(v6) = host.strip_prefix('[') {
                let (name, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("unclosed [ in an IPv6 host"))?;
                match after.strip_prefix(':') {
                    Some(port) => (name, Some(port)),
                    None if after.is_empty() => (name, None),
                    None => return Err(bad("junk after an IPv6 host")),
                }
            } else {
                match host.rsplit_once(':') {
                    Some((name, port)) => (name, Some(port)),
                    None => (host, None),
                }
            };
            let port = match port {
                None => default_port,
                Some(port) => port
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad(&format!("{} is not a port", shown(port, url))))?,
            };
            if name.is_empty() {
                return Err(bad("a host without a name"));
            }
            parsed_hosts.push((name.to_owned(), port));
        }
        let path = percent_decode(path.trim_end_matches('/'))
            .ok_or_else(|| bad("bad %-escape in the path"))?;
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| bad("bad %-escape in an option"))?;
            pairs.push((key.to_owned(), value));
        }
        Ok(MultiHostUrl {
            hosts: parsed_hosts,
            username,
            password,
            path,
            query: pairs,
        })
    }

    /// The URL without credentials or options (for errors and logs).
    fn name(&self, scheme: &str) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|(host, port)| {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            })
            .collect();
        let db = self
            .query
            .iter()
            .find(|(k, _)| k == "db")
            .map(|(_, db)| format!("?db={db}"))
            .unwrap_or_default();
        if self.path.is_empty() {
            format!("{scheme}://{}", hosts.join(","))
        } else {
            format!("{scheme}://{}/{}{db}", hosts.join(","), self.path)
        }
    }
}

/// `piece` of `url`, quoted for a message, when the redacted URL shows it anyway; `***`
/// when it does not (it is then part of what `redact` takes for a credential).
fn shown(piece: &str, url: &str) -> String {
    if redact(url).contains(piece) {
        format!("{piece:?}")
    } else {
        "***".to_owned()
    }
}

/// Refuses what redis-rs would refuse less clearly.
fn check_url(url: &str) -> Result<(), StoreError> {
    let (scheme, rest) = url.split_once("://").unwrap_or_default();
    // As for Sentinel and Cluster URLs (see `MultiHostUrl::parse`): redis-rs would end a
    // password at an unescaped `/`, `?` or `#` and read its rest as the path, query or
    // fragment, while `redact` hides up to the last `@`; the store would then name itself
    // by what the password's start left as host and port. Unix socket URLs have no host
    // and take an `@` in their `pass` option.
    let tcp = matches!(scheme, "redis" | "valkey" | "rediss" | "valkeys");
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    if tcp && rest[authority_end..].contains('@') {
        return Err(StoreError::Config(format!(
            "{}: an `@` after the host: %-escape it as %40, and a `/`, `?` or `#` in the password as %2F, %3F, %23",
            redact(url)
        )));
    }
    match scheme {
        "redis" | "valkey" | "redis+unix" | "valkey+unix" | "unix" => Ok(()),
        "rediss" | "valkeys" if cfg!(feature = "redis-tls") => Ok(()),
        "rediss" | "valkeys" => Err(StoreError::Config(format!(
            "{} asks for TLS, but this build has no Redis TLS support: enable the `redis-tls` cargo feature of tessera",
            redact(url)
        ))),
        _ => Err(StoreError::Config(format!(
            "{} is not a Redis URL: use redis://[user:password@]host:port[/db] (rediss://… for TLS), {SENTINEL_URL} or {CLUSTER_URL}",
            redact(url)
        ))),
    }
}

/// Query options whose value is a credential, matched on the name's end: Sentinel's
/// `sentinel_password`, redis-rs's `pass` for Unix sockets, and any other spelling a user
/// may try.
const CREDENTIAL_KEYS: &[&str] = &["password", "pass", "passwd", "pwd", "secret", "token"];

/// `url` with its credentials replaced by `***`: the password of its user info (or the
/// whole user info when it has no `:`, as a lone user name may be a token) and the value
/// of every credential option.
///
/// Messages show the URL even when it does not parse, and they end up in logs, so what
/// counts as a credential is read generously:
/// - the user info ends at the *last* `@`, wherever it is: a password with an unescaped
///   `/`, `?` or `#` (where a URL parser sees the path, query or fragment start) is still
///   hidden;
/// - options are looked for after every `?` and `&`, not only in the query a parser
///   would find, and a value runs to the next `&`;
/// - both are hidden when they overlap: an `@` inside a credential option cannot be told
///   from the end of a user info whose password holds `&pass=`, so such a URL loses
///   its host from the message too.
pub(crate) fn redact(url: &str) -> String {
    if !url.contains(['@', '?', '&']) {
        return url.to_owned();
    }
    let mut hidden = vec![false; url.len()];
    let mut hide = |range: std::ops::Range<usize>| hidden[range].fill(true);
    let start = url.find("://").map_or(0, |at| at + 3);
    if let Some(at) = url[start..].rfind('@') {
        let info = &url[start..start + at];
        let from = info.find(':').map_or(0, |colon| colon + 1);
        hide(start + from..start + at);
    }
    for (at, _) in url.match_indices(['?', '&']) {
        let option = &url[at + 1..];
        // To the next `&` only: the Sentinel and Cluster URL reader has no fragments, so
        // a `#` is part of the value.
        let end = option.find('&').unwrap_or(option.len());
        let Some((name, _)) = option[..end].split_once('=') else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if CREDENTIAL_KEYS.iter().any(|key| name.ends_with(key)) {
            hide(at + 1 + name.len() + 1..at + 1 + end);
        }
    }
    // Each run of hidden bytes becomes one `***`. Runs start and end next to an ASCII
    // delimiter or at the ends of the URL, so they are character boundaries.
    let mut out = String::with_capacity(url.len());
    let mut at = 0;
    while at < url.len() {
        let run = hidden[at..]
            .iter()
            .position(|&h| h != hidden[at])
            .map_or(url.len(), |len| at + len);
        if hidden[at] {
            out.push_str("***");
        } else {
            out.push_str(&url[at..run]);
        }
        at = run;
    }
    out
}

// The builder's side: its target read into a plan by `connect` and `connect_lazy`, so a bad
// URL is reported there as `StoreError::Config` (`builder` checks nothing).
impl RedisStoreBuilder {
    /// What the target names: one server, a Sentinel-managed master, or a cluster.
    pub(crate) fn plan(&self) -> Result<Plan, StoreError> {
        let Target::Url(url) = &self.target else {
            let (client, name) = self.client()?;
            return Ok(Plan::Standalone(client, name));
        };
        let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or_default();
        match scheme {
            "redis-sentinel" | "valkey-sentinel" => {
                let parsed = MultiHostUrl::parse(url, 26_379, SENTINEL_URL)?;
                let name = parsed.name(scheme);
                let mut data = RedisConnectionInfo::default();
                let mut sentinel_auth = RedisConnectionInfo::default().set_skip_set_lib_name();
                if let Some((user, password)) = &self.options.sentinel_auth {
                    if let Some(user) = user {
                        sentinel_auth = sentinel_auth.set_username(user);
                    }
                    sentinel_auth = sentinel_auth.set_password(password);
                }
                for (key, value) in &parsed.query {
                    match key.as_str() {
                        "db" => {
                            let db = value.parse::<i64>().ok().filter(|db| *db >= 0).ok_or_else(|| {
                                StoreError::Config(format!(
                                    "{}: db must be a database number, not {}; expected {SENTINEL_URL}",
                                    redact(url),
                                    shown(value, url)
                                ))
                            })?;
                            data = data.set_db(db);
                        }
                        "sentinel_username" => sentinel_auth = sentinel_auth.set_username(value),
                        "sentinel_password" => sentinel_auth = sentinel_auth.set_password(value),
                        other => {
                            return Err(StoreError::Config(format!(
                                "{}: unknown option {}; a Sentinel URL takes db, sentinel_username and sentinel_password: {SENTINEL_URL}",
                                redact(url),
                                shown(other, url)
                            )))
                        }
                    }
                }
                if let Some(user) = &parsed.username {
                    data = data.set_username(user);
                }
                if let Some(password) = &parsed.password {
                    data = data.set_password(password);
                }
                if parsed.path.is_empty() || parsed.path.contains('/') {
                    return Err(StoreError::Config(format!(
                        "{} names no master: put the master name the sentinels monitor after the addresses, as in {SENTINEL_URL}",
                        redact(url)
                    )));
                }
                Ok(Plan::Sentinel(
                    SentinelPlan {
                        sentinels: parsed.hosts,
                        master_name: parsed.path,
                        data,
                        sentinel_auth,
                    },
                    name,
                ))
            }
            "redis-cluster" | "valkey-cluster" => {
                let parsed = MultiHostUrl::parse(url, 6_379, CLUSTER_URL)?;
                if !parsed.path.is_empty() || !parsed.query.is_empty() {
                    return Err(StoreError::Config(format!(
                        "{}: a cluster URL has no database or options (a cluster has only database 0); expected {CLUSTER_URL}",
                        redact(url)
                    )));
                }
                let mut auth = RedisConnectionInfo::default();
                if let Some(user) = &parsed.username {
                    auth = auth.set_username(user);
                }
                if let Some(password) = &parsed.password {
                    auth = auth.set_password(password);
                }
                let name = parsed.name(scheme);
                Ok(Plan::Cluster(
                    ClusterPlan {
                        seeds: parsed.hosts,
                        auth,
                    },
                    name,
                ))
            }
            "rediss-sentinel" | "rediss-cluster" | "valkeys-sentinel" | "valkeys-cluster" => {
                Err(StoreError::Config(format!(
                    "{}: TLS to Sentinel or Cluster is not supported yet; use {SENTINEL_URL} or {CLUSTER_URL} on a trusted network",
                    redact(url)
                )))
            }
            _ => {
                let (client, name) = self.client()?;
                Ok(Plan::Standalone(client, name))
            }
        }
    }

    fn client(&self) -> Result<(Client, String), StoreError> {
        let client = match &self.target {
            Target::Client(client) => Client::clone(client),
            Target::Url(url) => {
                check_url(url)?;
                Client::open(url.as_str()).map_err(|e| {
                    StoreError::Config(format!(
                        "Redis URL {}: {e}; expected redis://[user:password@]host:port[/db] or rediss://… for TLS",
                        redact(url)
                    ))
                })?
            }
        };
        let info = client.get_connection_info();
        let scheme = match info.addr() {
            redis::ConnectionAddr::TcpTls { .. } => "rediss",
            redis::ConnectionAddr::Unix(_) => "redis+unix",
            _ => "redis",
        };
        let name = format!("{scheme}://{}/{}", info.addr(), info.redis_settings().db());
        Ok((client, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::redis::RedisStore;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("redis://user:secret@host:6379/2"),
            "redis://user:***@host:6379/2"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    /// Found by the `store_url` fuzz target (fuzz/): a Sentinel password given as an
    /// option, and a password with an unescaped `/` (which ends the authority for a URL
    /// parser), were shown as they are in every message about the URL.
    #[test]
    fn redacts_credential_options_and_unescaped_passwords() {
        for (given, shown) in [
            (
                "redis-sentinel://10.0.0.1:26379/mymaster?sentinel_password=v\0\0\0",
                "redis-sentinel://10.0.0.1:26379/mymaster?sentinel_password=***",
            ),
            (
                "redis-sentinel://h1/m?db=1&sentinel_password=p%40ss&sentinel_username=u",
                "redis-sentinel://h1/m?db=1&sentinel_password=***&sentinel_username=u",
            ),
            // The last `@` may end a user info or sit in an option: both are hidden.
            (
                "redis-sentinel://h1/m?db=1&sentinel_password=p@ss&sentinel_username=u",
                "redis-sentinel://***&sentinel_username=u",
            ),
            (
                "redis://app:x/y?db=1&pass=secret@127.0.0.1:6379/2",
                "redis://app:***",
            ),
            (
                "redis+unix:///run/redis.sock?db=x&pass=secret",
                "redis+unix:///run/redis.sock?db=x&pass=***",
            ),
            (
                "redis://app:valkey://localhost@127.0.0.1:6379/2",
                "redis://app:***@127.0.0.1:6379/2",
            ),
            ("redis://:pa/ss?w#rd@host:1/0", "redis://:***@host:1/0"),
            ("redis://token@host", "redis://***@host"),
            ("user:secret@host", "user:***@host"),
        ] {
            assert_eq!(redact(given), shown, "{given}");
        }
    }

    fn hosts(list: &[(&str, u16)]) -> Vec<(String, u16)> {
        list.iter().map(|(h, p)| (h.to_string(), *p)).collect()
    }

    #[test]
    fn multi_host_urls() {
        let url = MultiHostUrl::parse(
            "redis-sentinel://app:p%40ss%3Aw0rd@10.0.0.1:26379,sentinel-b,[::1]:26380/mymaster?db=2&sentinel_password=s%26cret",
            26_379,
            SENTINEL_URL,
        )
        .unwrap();
        assert_eq!(
            url.hosts,
            hosts(&[
                ("10.0.0.1", 26_379),
                ("sentinel-b", 26_379),
                ("::1", 26_380)
            ])
        );
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("p@ss:w0rd"));
        assert_eq!(url.path, "mymaster");
        assert_eq!(
            url.query,
            vec![
                ("db".to_owned(), "2".to_owned()),
                ("sentinel_password".to_owned(), "s&cret".to_owned())
            ]
        );
        assert_eq!(
            url.name("redis-sentinel"),
            "redis-sentinel://10.0.0.1:26379,sentinel-b:26379,[::1]:26380/mymaster?db=2"
        );

        let url =
            MultiHostUrl::parse("redis-cluster://:pw@a:7000,b:7001", 6_379, CLUSTER_URL).unwrap();
        assert_eq!(url.hosts, hosts(&[("a", 7_000), ("b", 7_001)]));
        assert_eq!((url.username, url.password.as_deref()), (None, Some("pw")));
        assert_eq!(url.path, "");

        for bad in [
            "redis-cluster://a:7000,,b:7001",
            "redis-cluster://a:notaport",
            "redis-cluster://a:0",
            "redis-cluster://:7000",
            "redis-cluster://[::1",
            "redis-cluster://u:bad%zz@a:7000",
        ] {
            assert!(
                matches!(
                    MultiHostUrl::parse(bad, 6_379, CLUSTER_URL),
                    Err(StoreError::Config(_))
                ),
                "{bad}"
            );
        }
    }

    fn plan_of(url: &str) -> Result<Plan, StoreError> {
        RedisStore::builder(url).plan()
    }

    #[test]
    fn topology_urls() {
        let Ok(Plan::Sentinel(plan, name)) =
            plan_of("redis-sentinel://u:secret@127.0.0.1:26379,127.0.0.1:26380/mymaster?db=3")
        else {
            panic!("a Sentinel plan");
        };
        assert_eq!(plan.master_name, "mymaster");
        assert_eq!(plan.sentinels.len(), 2);
        assert_eq!(plan.data.db(), 3);
        assert_eq!(plan.data.username(), Some("u"));
        assert_eq!(plan.data.password(), Some("secret"));
        assert_eq!(
            plan.sentinel_auth.password(),
            None,
            "the URL's password is the data nodes'"
        );
        assert!(!name.contains("secret"), "{name}");

        let Ok(Plan::Sentinel(plan, _)) = RedisStore::builder("redis-sentinel://h/m")
            .sentinel_auth(Some("watcher"), "sentinel-pw")
            .plan()
        else {
            panic!("a Sentinel plan");
        };
        assert_eq!(plan.sentinels, hosts(&[("h", 26_379)]));
        assert_eq!(plan.sentinel_auth.username(), Some("watcher"));
        assert_eq!(plan.sentinel_auth.password(), Some("sentinel-pw"));

        let Ok(Plan::Cluster(plan, name)) = plan_of("redis-cluster://u:secret@a:7000,b:7001")
        else {
            panic!("a Cluster plan");
        };
        assert_eq!(plan.seeds, hosts(&[("a", 7_000), ("b", 7_001)]));
        assert_eq!(plan.auth.password(), Some("secret"));
        assert_eq!(name, "redis-cluster://a:7000,b:7001");

        for bad in [
            "redis-sentinel://127.0.0.1:26379",
            "redis-sentinel://127.0.0.1:26379/",
            "redis-sentinel://127.0.0.1:26379/m?db=x",
            "redis-sentinel://127.0.0.1:26379/m?dbx=1",
            "redis-cluster://a:7000/0",
            "redis-cluster://a:7000?db=1",
            "rediss-cluster://u:secret@a:7000",
        ] {
            let Err(StoreError::Config(message)) = plan_of(bad) else {
                panic!("{bad} must be a Config error");
            };
            assert!(!message.contains("secret"), "{message}");
            assert!(
                message.contains("redis-"),
                "says what is expected: {message}"
            );
        }
    }

    /// Found by the `store_url` fuzz target (fuzz/): with an unescaped `/` or `?` in its
    /// password, a Sentinel URL read the rest of the password as the master name or an
    /// option, and showed it in the store's name and in messages, which `redact` (taking
    /// the user info to the last `@`) hides.
    #[test]
    fn an_unescaped_password_is_not_read_as_hosts_path_or_options() {
        for url in [
            "redis-sentinel://app:1/xyzw@10.0.0.1:26379",
            "redis-sentinel://app:1/mymaster?sentinel_username=abcd@10.0.0.1:26379",
            "redis-sentinel://app:1?db=wxyz@10.0.0.1:26379/m",
            "redis-sentinel://app:1?wxyz=1@10.0.0.1:26379/m",
            "redis-cluster://app:wxyz?@10.0.0.1:7000",
            "redis-cluster://app:7000/wxyz@10.0.0.1:7000",
        ] {
            let Err(StoreError::Config(message)) = plan_of(url) else {
                panic!("{url} must be a Config error");
            };
            assert!(
                !message.contains("wxyz") && !message.contains("abcd"),
                "{message}"
            );
            assert!(message.contains("***"), "{message}");
        }
        // An `@` in an option is refused too (it cannot be told from the end of a user
        // info), with the fix in the message.
        let Err(StoreError::Config(message)) =
            plan_of("redis-sentinel://h:26379/m?sentinel_password=p@ss")
        else {
            panic!("a Config error");
        };
        assert!(message.contains("%40"), "{message}");
        assert!(!message.contains("p@ss"), "{message}");
    }

    /// The same for one server (found by the fuzz target too): redis-rs read the rest of
    /// the password as the query, and the store named itself by the port, part of the
    /// password.
    #[test]
    fn an_unescaped_password_is_not_read_as_a_port() {
        for url in [
            "redis://app:1234?x@127.0.0.1:6379/2",
            "valkey://app:1234#x@127.0.0.1:6379/2",
        ] {
            let Err(StoreError::Config(message)) = plan_of(url) else {
                panic!("{url} must be a Config error");
            };
            assert!(!message.contains("1234"), "{message}");
        }
        assert!(plan_of("redis+unix:///run/redis.sock?pass=p@ss").is_ok());
    }

    #[test]
    fn url_schemes() {
        assert!(check_url("redis://127.0.0.1:6379").is_ok());
        assert!(matches!(
            check_url("http://127.0.0.1"),
            Err(StoreError::Config(_))
        ));
        let tls = check_url("rediss://u:pw@127.0.0.1:6380");
        if cfg!(feature = "redis-tls") {
            assert!(tls.is_ok());
        } else {
            let Err(StoreError::Config(message)) = tls else {
                panic!("rediss:// without redis-tls must be a Config error");
            };
            assert!(message.contains("redis-tls"), "{message}");
            assert!(!message.contains("pw"), "{message}");
        }
    }
}
