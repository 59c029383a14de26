//! Store URLs as the CLI shows them: credentials replaced by `***`, in its own messages
//! and in the messages of the stores it opens.
//!
//! A store URL may carry a password (`redis://user:password@host`, `rediss://…`, each
//! host list of `redis-sentinel://` and `redis-cluster://`) and Sentinel's
//! `?sentinel_password=`. Logs and terminal output are read by more people than the
//! secrets are meant for, and are kept longer, so no password is printed, even for a URL
//! that does not parse.

/// Query parameters whose value is a credential (matched on the name's end, so
/// `sentinel_password` and `sentinel_pass` count too).
const CREDENTIAL_KEYS: &[&str] = &["password", "pass", "passwd", "pwd", "secret", "token"];

/// `url` as it may be shown: the password in its user info (or the whole user info
/// when it has no `:`, as a lone user name may be a token) and every credential query
/// value replaced by `***`. `sqlite://` URLs and `memory` have no credentials and are
/// shown as they are (a path may contain `@`).
///
/// The user info is taken to end at the *last* `@`, wherever it is: a password with an
/// unescaped `/` or `?` (which a URL parser would read as the path or the query) is still
/// hidden; an `@` further on at worst hides more than needed.
pub fn url(url: &str) -> String {
    if url.starts_with("sqlite://") || !url.contains(['@', '?']) {
        return url.to_owned();
    }
    let url = redact_query(url);
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url.as_str()),
    };
    let Some(at) = rest.rfind('@') else {
        return url;
    };
    let user = match rest[..at].split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None => "***".to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{user}{}", &rest[at..]),
        None => format!("{user}{}", &rest[at..]),
    }
}

/// `text` (a message about `url`, written by a store) with `url` shown as [`url`] shows
/// it, and every credential of `url` replaced by `***` wherever else it appears: raw, or
/// %-decoded as a store may quote it.
pub fn scrub(text: &str, store_url: &str) -> String {
    let mut text = text.replace(store_url, &url(store_url));
    for secret in credentials(store_url) {
        text = text.replace(&secret, "***");
    }
    text
}

/// The credentials in `url`, raw and %-decoded, longest first (so a longer one is not
/// left half-replaced by a shorter one inside it).
fn credentials(url: &str) -> Vec<String> {
    if url.starts_with("sqlite://") {
        return Vec::new();
    }
    let mut found = Vec::new();
    // The user info is looked for once the query's credentials are out of the way, so an
    // `@` inside one of them does not make the host and path look like user info.
    let without_query = redact_query(url);
    let rest = without_query
        .split_once("://")
        .map_or(without_query.as_str(), |(_, rest)| rest);
    if let Some(at) = rest.rfind('@') {
        let info = &rest[..at];
        found.push(match info.split_once(':') {
            Some((_, password)) => password.to_owned(),
            None => info.to_owned(),
        });
    }
    for (_, value) in credential_params(url) {
        found.push(value.to_owned());
    }
    let decoded: Vec<String> = found.iter().filter_map(|s| percent_decode(s)).collect();
    found.extend(decoded);
    found.retain(|s| !s.is_empty());
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found.dedup();
    found
}

/// Each `name=value` after a `?` or `&` whose name is a credential: the byte range of
/// the value and the value. Found anywhere in the text rather than after the first `?`
/// only, so a `?` inside a password does not shift where the query seems to start.
fn credential_params(url: &str) -> Vec<(std::ops::Range<usize>, &str)> {
    let mut params = Vec::new();
    for (start, _) in url.match_indices(['?', '&']) {
        let pair = &url[start + 1..];
        let end = pair.find(['&', '#']).unwrap_or(pair.len());
        let Some((name, value)) = pair[..end].split_once('=') else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if CREDENTIAL_KEYS.iter().any(|key| name.ends_with(key)) {
            let from = start + 1 + name.len() + 1;
            params.push((from..from + value.len(), value));
        }
    }
    params
}

/// `url` with every credential query value replaced by `***`.
fn redact_query(url: &str) -> String {
    let mut out = String::with_capacity(url.len());
    let mut copied = 0;
    for (range, _) in credential_params(url) {
        if range.start < copied {
            continue;
        }
        out.push_str(&url[copied..range.start]);
        out.push_str("***");
        copied = range.end;
    }
    out.push_str(&url[copied..]);
    out
}

/// `%XX` escapes decoded; `None` when there are none or the result is not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords_in_every_store_url_shape() {
        for (given, shown) in [
            ("redis://user:secret@host:6379/2", "redis://user:***@host:6379/2"),
            ("redis://:secret@host", "redis://:***@host"),
            ("rediss://default:secret@host:6380", "rediss://default:***@host:6380"),
            ("redis://token@host", "redis://***@host"),
            (
                "redis-sentinel://app:p%40ss@10.0.0.1:26379,[::1]:26380/mymaster?db=2&sentinel_password=s%26c",
                "redis-sentinel://app:***@10.0.0.1:26379,[::1]:26380/mymaster?db=2&sentinel_password=***",
            ),
            (
                "redis-cluster://app:secret@h1:7000,h2:7001",
                "redis-cluster://app:***@h1:7000,h2:7001",
            ),
            ("redis://:pa/ss?w@host:1/0", "redis://:***@host:1/0"),
            (
                "redis-sentinel://h1/m?sentinel_password=p@ss&db=1",
                "redis-sentinel://h1/m?sentinel_password=***&db=1",
            ),
            ("user:secret@host", "user:***@host"),
            ("redis://host:6379", "redis://host:6379"),
            ("memory", "memory"),
            ("sqlite:///srv/@team/sessions.db", "sqlite:///srv/@team/sessions.db"),
        ] {
            assert_eq!(url(given), shown, "{given}");
        }
    }

    #[test]
    fn scrubs_credentials_from_messages_about_the_url() {
        let store = "redis://app:p%40ss@host:1/0?x=1&PASSWORD=q";
        let message =
            format!("Redis URL {store}: bad; the password p@ss or p%40ss, and q, in context");
        let scrubbed = scrub(&message, store);
        assert!(
            !scrubbed.contains("p@ss") && !scrubbed.contains("p%40ss"),
            "{scrubbed}"
        );
        assert!(
            scrubbed.contains("redis://app:***@host:1/0?x=1&PASSWORD=***"),
            "{scrubbed}"
        );
        assert!(scrubbed.ends_with(", and ***, in context"), "{scrubbed}");
    }
}
