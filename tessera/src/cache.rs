//! Cache headers for responses that depend on a session.
//!
//! A shared cache (a CDN, a corporate proxy) that stores a response carrying one user's
//! `Set-Cookie` hands that cookie, and so that user's session, to everyone it serves the
//! response to; one that stores a page rendered from a session shows it to the wrong user.
//! So, unless [`SessionConfig::cache_headers`](crate::SessionConfig::cache_headers) is
//! off:
//! - a response whose handler read the session gets `Vary: Cookie`;
//! - a response that sets the session cookie is made private: `Cache-Control: private`
//!   when the application set none, `public` and `s-maxage` dropped from what it set, and a
//!   value that is already `private` or `no-store` left as it is.

use http::header::{CACHE_CONTROL, VARY};
use http::{HeaderMap, HeaderValue};

/// Adds `Vary: Cookie` and makes the response private, as the module docs say.
pub(crate) fn protect(headers: &mut HeaderMap, read: bool, sets_cookie: bool) {
    if read && !varies_by_cookie(headers) {
        headers.append(VARY, HeaderValue::from_static("Cookie"));
    }
    if sets_cookie {
        make_private(headers);
    }
}

fn varies_by_cookie(headers: &HeaderMap) -> bool {
    headers.get_all(VARY).iter().any(|value| {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|name| name == b"*" || name.eq_ignore_ascii_case(b"cookie"))
    })
}

fn make_private(headers: &mut HeaderMap) {
    let directives: Vec<String> = headers
        .get_all(CACHE_CONTROL)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|d| String::from_utf8_lossy(d.trim_ascii()).into_owned())
        .filter(|d| !d.is_empty())
        .collect();
    let name = |d: &str| {
        d.split('=')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    };
    if directives
        .iter()
        .any(|d| matches!(name(d).as_str(), "private" | "no-store"))
    {
        return;
    }
    let mut kept: Vec<&str> = vec!["private"];
    kept.extend(
        directives
            .iter()
            .filter(|d| !matches!(name(d).as_str(), "public" | "s-maxage"))
            .map(String::as_str),
    );
    match HeaderValue::try_from(kept.join(", ")) {
        Ok(value) => {
            headers.insert(CACHE_CONTROL, value);
        }
        // Only from directives that were not valid header text to begin with.
        Err(_) => {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(cache_control: Option<&str>, vary: Option<&str>) -> (Option<String>, Vec<String>) {
        let mut headers = HeaderMap::new();
        if let Some(c) = cache_control {
            headers.insert(CACHE_CONTROL, HeaderValue::from_str(c).unwrap());
        }
        if let Some(v) = vary {
            headers.insert(VARY, HeaderValue::from_str(v).unwrap());
        }
        protect(&mut headers, true, true);
        (
            headers
                .get(CACHE_CONTROL)
                .map(|v| v.to_str().unwrap().to_owned()),
            headers
                .get_all(VARY)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect(),
        )
    }

    #[test]
    fn a_response_with_our_cookie_is_private_and_varies_by_cookie() {
        assert_eq!(
            after(None, None),
            (Some("private".into()), vec!["Cookie".into()])
        );
        assert_eq!(
            after(
                Some("public, max-age=600, s-maxage=3600"),
                Some("Accept-Encoding")
            )
            .0,
            Some("private, max-age=600".into())
        );
        assert_eq!(after(Some("no-store"), None).0, Some("no-store".into()));
        assert_eq!(
            after(Some("Private, max-age=5"), None).0,
            Some("Private, max-age=5".into())
        );
        assert_eq!(
            after(None, Some("accept, cookie")).1,
            vec!["accept, cookie".to_owned()]
        );
        assert_eq!(after(None, Some("*")).1, vec!["*".to_owned()]);
    }
}
