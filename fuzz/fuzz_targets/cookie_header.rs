//! `Cookie` header values as a client sends them: our cookie found among others, its
//! signature checked against a fixed secret list, and the value written back.
//!
//! The input is one or more header values separated by `\n` (a header value cannot hold
//! a line feed, so each line is one `Cookie` header of the request).

#![no_main]

use std::sync::OnceLock;

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tessera::fuzzing;
use tessera::record::CookieData;
use tessera::signing::Secrets;
use tessera::SessionId;

/// The signing secret first, then a retired one that still verifies. The seeds under
/// `corpus/cookie_header/` are signed with these.
const SECRETS: [&str; 2] = ["keyboard cat", "old secret"];
const NAME: &str = "connect.sid";
/// `cookie::MAX_COOKIE_VALUE_LEN`: no longer value is handed to the layer.
const MAX_VALUE_LEN: usize = 512;

fn secrets() -> &'static Secrets {
    static SECRETS_LIST: OnceLock<Secrets> = OnceLock::new();
    SECRETS_LIST.get_or_init(|| Secrets::new(SECRETS).expect("fixed, non-empty secrets"))
}

fuzz_target!(|data: &[u8]| {
    let headers: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let values = fuzzing::cookie_values(&headers, NAME);
    for value in &values {
        assert!(value.len() <= MAX_VALUE_LEN, "oversized value handed on");
        check_value(value);
    }
    // The first value that verifies is the session the layer uses; any other cookie
    // name must not change which one that is.
    let _ = values.iter().find_map(|v| secrets().unsign(v));
    // The whole input as one cookie value, too: unsign must take any string.
    if let Ok(text) = std::str::from_utf8(data) {
        check_value(text);
    }
});

fn check_value(value: &str) {
    if let Some((id, index)) = secrets().unsign(value) {
        // Only a value that one of the secrets signed verifies: signing the ID again with
        // that secret gives the same value, byte for byte.
        assert!(index < SECRETS.len());
        let signer = Secrets::new([SECRETS[index]]).expect("a non-empty secret");
        assert_eq!(signer.sign(&id), value, "verified, but signs differently");
        assert_eq!(SessionId::parse(id.as_str()).as_ref(), Some(&id));
        if index == 0 {
            assert_eq!(secrets().sign(&id), value);
        }
    }
    if value.len() > MAX_VALUE_LEN {
        return;
    }
    // Written in a `Set-Cookie` and sent back by the browser, the value reads as itself.
    let header = fuzzing::set_cookie(NAME, value, &CookieData::default(), false);
    assert!(
        HeaderValue::from_str(&header).is_ok(),
        "not a header value: {header:?}"
    );
    assert!(!header.contains(';'), "the value broke out: {header:?}");
    let back = fuzzing::cookie_values(&[header.as_bytes()], NAME);
    assert_eq!(back, [value], "{header:?}");
}
