//! The `Cookie` and `Set-Cookie` header syntax, as express-session (through the `cookie`
//! package, 0.7) reads and writes it.
//!
//! Reading follows `cookie.parse` (on the header's bytes, so a non-ASCII byte in another
//! cookie costs us nothing): pairs split on `;`, surrounding double quotes stripped,
//! a value URL-decoded only when it contains `%` (on a decoding error the raw value is
//! kept). Unlike express, every cookie of our name is returned, in order, so the layer can
//! use the first one that verifies rather than losing the session to a stray duplicate.
//!
//! Writing follows `cookie.serialize`: the value `encodeURIComponent`-encoded, then the
//! attributes in its order (Domain, Path, Expires, HttpOnly, Secure, Partitioned, Priority,
//! SameSite). express never writes `Max-Age`, only `Expires`, and neither do we.
//!
//! Written here rather than taken from the `cookie` crate, which writes the attributes in
//! another order, has no `Priority`, and fails on a value that does not percent-decode
//! where `cookie.parse` keeps it raw.

use http::HeaderValue;
use serde_json::Value;
use time::OffsetDateTime;

use crate::record::{push_padded, push_year, utc, CookieData};

/// The longest cookie value (after decoding) that is looked at. A signed default ID is 77
/// bytes; anything far longer is an attack or an accident, and is ignored unparsed.
pub const MAX_COOKIE_VALUE_LEN: usize = 512;

/// Every value of cookie `name` in a request's `Cookie` headers, in order, decoded.
///
/// The headers are read as bytes: another cookie's value may hold bytes that are not
/// ASCII (a browser sends `document.cookie = "name=José"` as UTF-8), and that must not
/// hide ours. Only a value of our own name must be UTF-8; one that is not, or is longer
/// than [`MAX_COOKIE_VALUE_LEN`], is skipped.
pub fn values<'h>(
    headers: impl IntoIterator<Item = &'h HeaderValue> + 'h,
    name: &'h str,
) -> impl Iterator<Item = String> + 'h {
    headers
        .into_iter()
        .flat_map(|h| h.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let at = pair.iter().position(|&b| b == b'=')?;
            let (key, value) = (&pair[..at], &pair[at + 1..]);
            if key.trim_ascii() != name.as_bytes() {
                return None;
            }
            let mut value = std::str::from_utf8(value.trim_ascii()).ok()?;
            if value.len() > MAX_COOKIE_VALUE_LEN * 3 {
                return None;
            }
            if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
                value = &value[1..value.len() - 1];
            }
            let decoded = if value.contains('%') {
                percent_decode(value).unwrap_or_else(|| value.to_owned())
            } else {
                value.to_owned()
            };
            (decoded.len() <= MAX_COOKIE_VALUE_LEN).then_some(decoded)
        })
}

/// `decodeURIComponent`: `None` on a malformed escape or bytes that are not UTF-8. Also
/// decodes the credentials of store URLs.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    // Everything between escapes is copied as it is, a run at a time.
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        out.extend_from_slice(&rest[..at]);
        let hex = rest.get(at + 1..at + 3)?;
        out.push(hex_value(hex[0])? << 4 | hex_value(hex[1])?);
        rest = &rest[at + 3..];
    }
    out.extend_from_slice(rest);
    String::from_utf8(out).ok()
}

/// One hexadecimal digit's value (`from_str_radix` would also take a sign, which
/// `decodeURIComponent` does not).
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `encodeURIComponent`: everything but `A-Z a-z 0-9 - _ . ! ~ * ' ( )` percent-encoded.
fn percent_encode(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Runs of unreserved characters are copied whole: a signed ID has only a few bytes to
    // escape (`:`, and `+` or `/` from the signature's base64). A run is ASCII, so its
    // ends are character boundaries.
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        if matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')')
        {
            continue;
        }
        if start < i {
            out.push_str(&s[start..i]);
        }
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
        start = i + 1;
    }
    if start < s.len() {
        out.push_str(&s[start..]);
    }
}

/// A `Set-Cookie` value for `name=value` with the attributes of a stored cookie.
///
/// `secure` is passed separately because with `secure: auto` it is decided per request.
pub fn set_cookie(name: &str, value: &str, cookie: &CookieData, secure: bool) -> String {
    render(name, value, cookie, cookie.expires, secure)
}

/// A `Set-Cookie` that makes the browser drop the cookie: empty value, expired in 1970,
/// same name, path and domain as the one it replaces.
pub fn removal(name: &str, cookie: &CookieData, secure: bool) -> String {
    render(name, "", cookie, Some(OffsetDateTime::UNIX_EPOCH), secure)
}

fn render(
    name: &str,
    value: &str,
    cookie: &CookieData,
    expires: Option<OffsetDateTime>,
    secure: bool,
) -> String {
    let mut out = String::with_capacity(160);
    out.push_str(name);
    out.push('=');
    percent_encode(value, &mut out);
    if let Some(domain) = &cookie.domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    if let Some(path) = &cookie.path {
        out.push_str("; Path=");
        out.push_str(path);
    }
    if let Some(at) = expires {
        out.push_str("; Expires=");
        http_date(at, &mut out);
    }
    if cookie.http_only == Some(true) {
        out.push_str("; HttpOnly");
    }
    if secure {
        out.push_str("; Secure");
    }
    if cookie.partitioned == Some(true) {
        out.push_str("; Partitioned");
    }
    if let Some(priority) = cookie.priority.as_deref() {
        match priority.to_ascii_lowercase().as_str() {
            "low" => out.push_str("; Priority=Low"),
            "medium" => out.push_str("; Priority=Medium"),
            "high" => out.push_str("; Priority=High"),
            _ => {}
        }
    }
    match &cookie.same_site {
        Some(Value::Bool(true)) => out.push_str("; SameSite=Strict"),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "strict" => out.push_str("; SameSite=Strict"),
            "lax" => out.push_str("; SameSite=Lax"),
            "none" => out.push_str("; SameSite=None"),
            _ => {}
        },
        _ => {}
    }
    out
}

/// `Date#toUTCString`: `Sun, 29 Nov 2026 09:04:54 GMT`.
fn http_date(at: OffsetDateTime, out: &mut String) {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let at = utc(at);
    out.push_str(DAYS[at.weekday().number_days_from_monday() as usize]);
    out.push_str(", ");
    push_padded(out, at.day().into(), 2);
    out.push(' ');
    out.push_str(MONTHS[u8::from(at.month()) as usize - 1]);
    out.push(' ');
    push_year(out, at.year());
    out.push(' ');
    push_padded(out, at.hour().into(), 2);
    out.push(':');
    push_padded(out, at.minute().into(), 2);
    out.push(':');
    push_padded(out, at.second().into(), 2);
    out.push_str(" GMT");
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::COOKIE;
    use http::HeaderMap;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_every_value_of_the_name_in_order() {
        let h = headers(&["a=1; connect.sid=first; b=2", "connect.sid=\"s%3Asecond\""]);
        let got: Vec<_> = values(h.get_all(COOKIE), "connect.sid").collect();
        assert_eq!(got, ["first", "s:second"]);
    }

    #[test]
    fn encodes_and_decodes_as_javascript_uri_components() {
        let mut out = String::new();
        percent_encode("s:é+/a b.c-_!~*'()", &mut out);
        assert_eq!(out, "s%3A%C3%A9%2B%2Fa%20b.c-_!~*'()");
        assert_eq!(percent_decode(&out).as_deref(), Some("s:é+/a b.c-_!~*'()"));
        assert_eq!(percent_decode("%3a%3A").as_deref(), Some("::"));
        for bad in ["%", "%3", "%+1", "%zz", "%C3", "a%"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn writes_dates_as_javascript_does() {
        let mut out = String::new();
        http_date(
            time::macros::datetime!(0005-01-02 03:04:05.006 UTC),
            &mut out,
        );
        assert_eq!(out, "Sun, 02 Jan 0005 03:04:05 GMT");
        assert_eq!(
            crate::record::format_js_iso(time::macros::datetime!(0005-01-02 03:04:05.006 UTC)),
            "0005-01-02T03:04:05.006Z"
        );
        let mut out = String::new();
        push_padded(&mut out, 12_345, 2);
        push_padded(&mut out, 7, 3);
        push_padded(&mut out, 0, 1);
        assert_eq!(out, "123450070");
    }

    #[test]
    fn other_cookies_may_hold_any_byte() {
        let mut h = HeaderMap::new();
        for v in [
            b"a=Jos\xc3\xa9; connect.sid=one; b=\xff".as_slice(),
            b"connect.sid=s%3A\xff; connect.sid=two".as_slice(),
            b"\xe9=x; connect.sid\xe9=y; connect.sid = three ".as_slice(),
        ] {
            h.append(COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        let got: Vec<_> = values(h.get_all(COOKIE), "connect.sid").collect();
        assert_eq!(got, ["one", "two", "three"]);
    }

    #[test]
    fn keeps_raw_value_on_bad_escape_and_skips_oversized() {
        let long = format!("connect.sid={}", "a".repeat(MAX_COOKIE_VALUE_LEN + 1));
        let h = headers(&["connect.sid=%E0%A4%A", &long]);
        let got: Vec<_> = values(h.get_all(COOKIE), "connect.sid").collect();
        assert_eq!(got, ["%E0%A4%A"]);
    }

    #[test]
    fn writes_attributes_in_express_order() {
        // The example cookie of shared/reference/express-session.md, from a running app.
        let cookie = CookieData {
            expires: Some(time::macros::datetime!(2026-11-29 09:04:54.097 UTC)),
            http_only: Some(true),
            path: Some("/".into()),
            ..CookieData::default()
        };
        let value =
            "s:fxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q.t03XZrgJ/+0XNdPYID/iw9L9l7h/K4wd8fOUjnocFEk";
        assert_eq!(
            set_cookie("connect.sid", value, &cookie, false),
            "connect.sid=s%3AfxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q.t03XZrgJ%2F%2B0XNdPYID%2Fiw9L9l7h%2FK4wd8fOUjnocFEk; Path=/; Expires=Sun, 29 Nov 2026 09:04:54 GMT; HttpOnly"
        );
        let all = CookieData {
            domain: Some("example.com".into()),
            partitioned: Some(true),
            priority: Some("high".into()),
            same_site: Some(Value::String("none".into())),
            ..cookie
        };
        assert_eq!(
            removal("sid", &all, true),
            "sid=; Domain=example.com; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Secure; Partitioned; Priority=High; SameSite=None"
        );
    }
}
