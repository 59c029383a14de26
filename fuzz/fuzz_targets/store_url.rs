//! Redis store URLs (`redis://`, `rediss://`, `redis+unix://`, `redis-sentinel://`,
//! `redis-cluster://`) read as `RedisStore::connect` reads them, and the credentials in
//! them hidden from every message and name the store shows.
//!
//! Two inputs from each string: the string as a URL, its passwords found as RFC 3986
//! reads them (the user info's password, and credential query options); and the string
//! as the password itself, put into a URL of each shape, unescaped, so that a password
//! holding `/`, `?`, `@` or `#` (which a user may well paste unescaped) is still one the
//! messages must not show.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera::fuzzing;

/// URLs of each shape with `{pw}` as the password. Most of them are wrong in some other
/// way as well, so that the error messages, which quote the URL, are exercised.
const USERINFO_TEMPLATES: &[&str] = &[
    "redis://app:{pw}@127.0.0.1:6379/2",
    "redis://app:{pw}@127.0.0.1:6379/not-a-db",
    "rediss://app:{pw}@127.0.0.1:6380/0",
    "valkey://:{pw}@127.0.0.1:70000",
    "redis-sentinel://app:{pw}@10.0.0.1:26379,10.0.0.2:26380/mymaster?db=2",
    "redis-sentinel://app:{pw}@10.0.0.1:26379,10.0.0.2:26380/mymaster?db=x",
    "redis-sentinel://app:{pw}@10.0.0.1:26379,10.0.0.2:x/mymaster",
    "redis-sentinel://app:{pw}@10.0.0.1:26379",
    "redis-cluster://app:{pw}@10.0.0.1:7000,10.0.0.2:7001",
    "redis-cluster://:{pw}@10.0.0.1:7000,,10.0.0.2:7001",
    "redis-cluster://:{pw}@10.0.0.1:7000/0",
    "rediss-cluster://app:{pw}@10.0.0.1:7000",
    "http://app:{pw}@10.0.0.1:7000",
];
/// URLs with `{pw}` as the value of a credential option (the value ends at `&` or `#`).
const QUERY_TEMPLATES: &[&str] = &[
    "redis-sentinel://10.0.0.1:26379/mymaster?sentinel_password={pw}",
    "redis-sentinel://10.0.0.1:26379/mymaster?sentinel_password={pw}&db=x",
    "redis-sentinel://10.0.0.1:26379/mymaster?sentinel_password={pw}&other=1",
    "redis+unix:///run/redis.sock?db=x&pass={pw}",
    "redis://10.0.0.1:6379/x?password={pw}",
];
/// Every fixed text of the messages (theirs and redis-rs's), so that a "password" found
/// there is not taken for a leak.
const FIXED_TEXT: &str = concat!(
    "redis-sentinel://[user:password@]HOST:PORT,HOST:PORT,…/MASTER_NAME[?db=N] ",
    "redis-cluster://[user:password@]HOST:PORT,HOST:PORT,… ",
    "redis://[user:password@]host:port[/db] (rediss://… for TLS) ",
    "is not a Redis URL: use asks for TLS, but this build has no Redis TLS support: ",
    "enable the `redis-tls` cargo feature of tessera ",
    "names no master: put the master name the sentinels monitor after the addresses, as in ",
    "a cluster URL has no database or options (a cluster has only database 0); expected ",
    "TLS to Sentinel or Cluster is not supported yet; use on a trusted network ",
    "db must be a database number, not unknown option; a Sentinel URL takes db, ",
    "sentinel_username and sentinel_password: not a URL an empty host in the host list ",
    "unclosed [ in an IPv6 host junk after an IPv6 host is not a port a host without a name ",
    "bad %-escape in the user name bad %-escape in the password bad %-escape in the path ",
    "bad %-escape in an option Redis URL or rediss://… for TLS ",
    "Invalid database number Missing hostname Redis URL did not parse ",
    "invalid port number relative URL without a base empty host invalid IPv4 address ",
    "invalid IPv6 address invalid international domain name invalid domain character ",
    "Username is not valid UTF-8 string Password is not valid UTF-8 string ",
    "Cannot connect to a wildcard address (0.0.0.0 or ::) ",
    "can't connect with TLS, the feature is not enabled ",
    "Invalid protocol version invalid client configuration redis-rs: ",
    "- InvalidClientConfig ClientError Invalid URL ",
    "session store configuration: ",
    "an `@` after the host list: %-escape it as %40, and a `/`, `?` or `#` in the password ",
    "as %2F, %3F, %23 an `@` after the host: "
);

fuzz_target!(|text: &str| {
    let secrets = rfc_secrets(text);
    check(text, &secrets);

    // The input as a password, in URLs of each shape.
    let templates = USERINFO_TEMPLATES.iter().chain(
        QUERY_TEMPLATES
            .iter()
            .filter(|_| !text.contains(['&', '#'])),
    );
    for template in templates {
        let url = template.replace("{pw}", text);
        let fixed = template.replace("{pw}", "");
        // What the store says of this URL shape with a harmless password: a piece of the
        // password that it says anyway (its scheme after "Redis URL ", say) is no leak.
        let neutral = match fuzzing::redis_url(&template.replace("{pw}", "p")) {
            Ok(name) => name,
            Err(message) => message,
        };
        // The password, and each piece of it between URL delimiters: a parser that cuts
        // the password at one of them must not quote the piece either.
        let secrets: Vec<String> = std::iter::once(text)
            .chain(text.split(['/', '?', '#', '@', '&', ',', ':', '=', '[', ']']))
            .filter(|s| usable_secret(s, &url) && !fixed.contains(s) && !neutral.contains(s))
            .map(str::to_owned)
            .collect();
        check(&url, &secrets);
    }
});

/// Reads `url` as the store does, and checks that no secret shows in what it says.
fn check(url: &str, secrets: &[String]) {
    let redacted = fuzzing::redact(url);
    let read = fuzzing::redis_url(url);
    let said = match &read {
        Ok(name) => name,
        Err(message) => message,
    };
    for secret in secrets {
        for form in [Some(secret.clone()), percent_decoded(secret)]
            .into_iter()
            .flatten()
        {
            assert!(
                !redacted.contains(&form),
                "redact({url:?}) = {redacted:?} shows {form:?}"
            );
            assert!(
                !said.contains(&form),
                "{url:?} read as {read:?} shows {form:?}"
            );
        }
    }
}

/// The passwords in `url` as RFC 3986 reads it: the user info's password (the user info
/// ends at the last `@` of the authority, which ends at the first `/`, `?` or `#`), and
/// the values of query options named like credentials. Only those that could not appear
/// in a message by chance are returned.
fn rfc_secrets(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Some((_, rest)) = url.split_once("://") else {
        return found;
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    if let Some(at) = authority.rfind('@') {
        if let Some((_, password)) = authority[..at].split_once(':') {
            found.push(password.to_owned());
        }
    }
    if let Some((_, query)) = rest.split_once('?') {
        let query = query.split('#').next().unwrap_or_default();
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=') {
                let key = key.to_ascii_lowercase();
                if key.ends_with("password") || key == "pass" {
                    found.push(value.to_owned());
                }
            }
        }
    }
    found.retain(|s| usable_secret(s, url));
    found
}

/// Whether a leak of `secret` can be told from chance: long enough, not the `***` that
/// replaces it, found once in the URL and nowhere in the messages' own text.
fn usable_secret(secret: &str, url: &str) -> bool {
    secret.chars().count() >= 4
        && !secret.contains('*')
        && url.matches(secret).count() == 1
        && !FIXED_TEXT.contains(secret)
        && percent_decoded(secret)
            .is_none_or(|d| d.chars().count() >= 4 && !FIXED_TEXT.contains(&d) && !url.contains(&d))
}

/// `%XX` decoded, when there is an escape and the result is UTF-8.
fn percent_decoded(s: &str) -> Option<String> {
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
