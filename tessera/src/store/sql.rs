//! What the two SQL stores ([`PostgresStore`](super::PostgresStore) and
//! [`MySqlStore`](super::MySqlStore)) share: the background prune job, a store's name with
//! the URL's password hidden, the expiry arithmetic of their Node twins, and the per-call
//! timeout.
//!
//! Both stores keep rows of the Node stores' tables, which expire by a timestamp column
//! instead of by themselves as Redis keys do: every statement compares that column with
//! now, and a job deletes the expired rows now and then so the table does not grow.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use tokio::sync::oneshot;

use super::StoreError;

/// `url` with the password of its user info, and the value of any `password` or `pass`
/// query parameter, replaced by `***`: what a store shows of its URL in logs and errors.
pub(crate) fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    // The user info ends at the last `@` before the path.
    let authority_end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let mut shown = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        shown.push_str(scheme);
        shown.push_str("://");
    }
    shown.push_str(&authority);
    shown.push_str(path);
    if let Some(query) = query {
        shown.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _)) if is_secret_param(key) => format!("{key}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        shown.push_str(&pairs.join("&"));
    }
    shown
}

fn is_secret_param(key: &str) -> bool {
    key.eq_ignore_ascii_case("password") || key.eq_ignore_ascii_case("pass")
}

/// Splits the query parameters Tessera reads (`names`) off a database URL: answers the
/// URL without them (for the driver, which refuses parameters it does not know) and their
/// percent-decoded values.
pub(crate) fn take_params(
    url: &str,
    names: &[&str],
) -> Result<(String, Vec<(String, String)>), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if names.contains(&key) {
            let value = percent_decode(value)
                .ok_or_else(|| format!("the `{key}` parameter has a bad %-escape"))?;
            taken.push((key.to_owned(), value));
        } else {
            kept.push(pair);
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, taken))
}

/// Decodes `%XX` escapes (and `+` as a space, as in a query string); `None` for a bad
/// escape or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
}

/// `at` in Unix milliseconds (the precision of the cookie's `expires` in the JSON).
pub(crate) fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// JavaScript's `Math.ceil(ms / 1000)` (connect-pg-simple's rounding).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn ceil_seconds(ms: i64) -> i64 {
    ms.saturating_add(999).div_euclid(1000)
}

/// JavaScript's `Math.round(ms / 1000)` (express-mysql-session's rounding; halves round
/// up, as `Math.round` does).
#[cfg_attr(not(feature = "mysql"), allow(dead_code))]
pub(crate) fn round_seconds(ms: i64) -> i64 {
    ms.saturating_add(500).div_euclid(1000)
}

/// `ms` after now, in Unix milliseconds.
pub(crate) fn ms_from_now(ttl: Duration) -> i64 {
    now_ms().saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX))
}

/// The time left until `expires_ms`, in whole seconds rounded down: the stores keep
/// whole seconds, so a session saved to live 600 s shows at most 600 s, as Redis's `TTL`.
pub(crate) fn ttl_until(expires_ms: i64) -> Duration {
    let left = expires_ms.saturating_sub(now_ms()).max(0);
    Duration::from_secs(u64::try_from(left / 1000).unwrap_or(0))
}

/// Runs `call` within `after`; [`StoreError::Timeout`] when it does not end in time.
pub(crate) async fn within<T>(
    store: &str,
    op: &'static str,
    after: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(after, call).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Timeout {
            store: store.to_owned(),
            op,
            after,
        }),
    }
}

/// Stops the prune job when dropped: a store holds it, so the job ends with the last
/// clone of the store.
#[derive(Debug)]
pub(crate) struct PruneGuard {
    _stop: oneshot::Sender<()>,
}

/// Starts the background job that runs `prune` (which deletes the expired rows and
/// answers how many) every `interval`, each wait randomized to 50–150 % of it as
/// connect-pg-simple does, so that instances started together do not prune together.
///
/// Needs a tokio runtime (the stores' constructors are async, so they run on one). A
/// failed prune is logged and tried again at the next interval.
pub(crate) fn spawn_prune<F, Fut>(label: String, interval: Duration, prune: F) -> PruneGuard
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64, StoreError>> + Send,
{
    let (stop, mut stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                // The sender is never used: only its drop (the store's) ends the wait.
                _ = &mut stopped => return,
                () = tokio::time::sleep(jittered(interval)) => {}
            }
            match prune().await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(store = %label, deleted, "pruned expired sessions"),
                Err(error) => {
                    tracing::warn!(%error, "pruning expired sessions failed; trying again later")
                }
            }
        }
    });
    PruneGuard { _stop: stop }
}

/// `interval` × a random factor in [0.5, 1.5).
fn jittered(interval: Duration) -> Duration {
    // Without randomness (it never fails on Linux), the interval itself.
    let fraction = getrandom::u64().map_or(0.5, |r| (r >> 11) as f64 / (1u64 << 53) as f64);
    interval.mul_f64(0.5 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://ada:s3cr%40t@db.example:5432/app?schema=public&table=s"),
            "postgres://ada:***@db.example:5432/app?schema=public&table=s"
        );
        assert_eq!(
            redact_url("mysql://ada@db/app"),
            "mysql://ada@db/app",
            "no password, nothing hidden"
        );
        assert_eq!(
            redact_url("postgresql://db/app?user=ada&password=hunter2&sslmode=disable"),
            "postgresql://db/app?user=ada&password=***&sslmode=disable"
        );
        assert_eq!(
            redact_url("mysql://a:b@c@host/db"),
            "mysql://a:***@host/db",
            "an @ in the password"
        );
    }

    #[test]
    fn takes_tessera_params_and_keeps_the_drivers() {
        let (url, taken) = take_params(
            "postgres://h/db?sslmode=disable&table=my%20sessions&schema=app",
            &["schema", "table"],
        )
        .unwrap();
        assert_eq!(url, "postgres://h/db?sslmode=disable");
        assert_eq!(
            taken,
            vec![
                ("table".to_owned(), "my sessions".to_owned()),
                ("schema".to_owned(), "app".to_owned())
            ]
        );
        let (url, taken) = take_params("mysql://h/db?table=t", &["table"]).unwrap();
        assert_eq!((url.as_str(), taken.len()), ("mysql://h/db", 1));
        assert!(take_params("mysql://h/db?table=%zz", &["table"]).is_err());
    }

    #[test]
    fn seconds_round_as_javascript() {
        assert_eq!(ceil_seconds(1_000), 1);
        assert_eq!(ceil_seconds(1_001), 2);
        assert_eq!(ceil_seconds(-1), 0);
        assert_eq!(round_seconds(1_499), 1);
        assert_eq!(round_seconds(1_500), 2);
        assert_eq!(round_seconds(-500), 0, "Math.round(-0.5) is -0");
    }

    #[test]
    fn jitter_stays_within_half_and_one_and_a_half() {
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(900));
            assert!(d >= Duration::from_secs(450) && d < Duration::from_secs(1350));
        }
    }
}
