//! Stored session records as a store hands them back: any bytes through the JSON codec,
//! and every decodable record's cookie member rendered as the layer renders it.

#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tessera::fuzzing;
use tessera::record::{to_millis, CookieData, Record};

/// A signed value, as the layer puts in `Set-Cookie`.
const VALUE: &str =
    "s:fxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q.Hs2MnV2pMNtQabcK7W0LlFUzBXCEm09SsJBaM2dbQKI";
/// Cookie names whose prefix changes what the engine accepts from a store.
const NAMES: [&str; 3] = ["connect.sid", "__Host-sid", "__Secure-sid"];

fuzz_target!(|data: &[u8]| {
    let Ok(record) = Record::from_json(data) else {
        return;
    };
    // What Tessera writes, it reads again, as the same session (equal as JavaScript
    // would compare it: numbers by value, dates to the millisecond a `Date` keeps), and
    // writing that gives the same bytes.
    let json = record.to_json();
    let again = Record::from_json(&json).unwrap_or_else(|e| {
        panic!(
            "written record does not decode ({e}): {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_same(&record, &again, &json);
    // And as Node reads them: the application's fields of what Tessera wrote are those
    // of what it read, string by string in UTF-16 (lone surrogates included), number by
    // number as doubles.
    let input = js::parse(data).unwrap_or_else(|| {
        panic!(
            "harness: accepted input is not JSON: {}",
            String::from_utf8_lossy(data)
        )
    });
    let output = js::parse(&json).unwrap_or_else(|| {
        panic!(
            "written record is not JSON for Node: {}",
            String::from_utf8_lossy(&json)
        )
    });
    assert_eq!(
        js::fields(&input),
        js::fields(&output),
        "Node reads other data: {}",
        String::from_utf8_lossy(&json)
    );
    assert_eq!(
        String::from_utf8_lossy(&again.to_json()),
        String::from_utf8_lossy(&json),
        "writing is not stable"
    );

    for name in NAMES {
        for secure in [false, true] {
            // As stored (the engine checks first, but rendering must not panic anyway).
            let _ = fuzzing::set_cookie(name, VALUE, &record.cookie, secure);
            let _ = fuzzing::removal(name, &record.cookie, secure);
            // As the engine renders a loaded record: its attributes checked first.
            let mut cookie = record.cookie.clone();
            fuzzing::check_stored_cookie(name, &mut cookie);
            let header = fuzzing::set_cookie(name, VALUE, &cookie, secure);
            check_header(&header, name, &cookie, cookie.expires.is_some(), secure);
            let header = fuzzing::removal(name, &cookie, secure);
            check_header(&header, name, &cookie, true, secure);
        }
    }
});

/// `header` is one valid header value holding exactly the attributes the cookie asks for.
fn check_header(header: &str, name: &str, cookie: &CookieData, expires: bool, secure: bool) {
    assert!(
        HeaderValue::from_str(header).is_ok(),
        "not a header value: {header:?}"
    );
    assert!(!header.contains(['\r', '\n', '\0']), "{header:?}");
    let mut parts = header.split("; ");
    let first = parts.next().unwrap_or_default();
    assert!(first.starts_with(&format!("{name}=")), "{header:?}");
    assert!(!first.contains(';'), "{header:?}");

    let mut expected: Vec<String> = Vec::new();
    if let Some(domain) = &cookie.domain {
        expected.push(format!("Domain={domain}"));
    }
    if let Some(path) = &cookie.path {
        expected.push(format!("Path={path}"));
    }
    if expires {
        expected.push("Expires".into());
    }
    if cookie.http_only == Some(true) {
        expected.push("HttpOnly".into());
    }
    if secure {
        expected.push("Secure".into());
    }
    if cookie.partitioned == Some(true) {
        expected.push("Partitioned".into());
    }
    match cookie
        .priority
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("low") => expected.push("Priority=Low".into()),
        Some("medium") => expected.push("Priority=Medium".into()),
        Some("high") => expected.push("Priority=High".into()),
        _ => {}
    }
    match &cookie.same_site {
        Some(Value::Bool(true)) => expected.push("SameSite=Strict".into()),
        Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "strict" => expected.push("SameSite=Strict".into()),
            "lax" => expected.push("SameSite=Lax".into()),
            "none" => expected.push("SameSite=None".into()),
            _ => {}
        },
        _ => {}
    }
    let got: Vec<String> = parts
        .map(|p| {
            if let Some(date) = p.strip_prefix("Expires=") {
                // `Date#toUTCString`: `Sun, 29 Nov 2026 09:04:54 GMT`, no `;` in it.
                assert!(date.ends_with(" GMT") && !date.contains(';'), "{header:?}");
                "Expires".to_owned()
            } else {
                p.to_owned()
            }
        })
        .collect();
    assert_eq!(got, expected, "{header:?}");
}

/// The two records are the same session, as Node would see them.
fn assert_same(a: &Record, b: &Record, json: &[u8]) {
    let text = String::from_utf8_lossy(json);
    let (x, y) = (&a.cookie, &b.cookie);
    assert_eq!(x.original_max_age, y.original_max_age, "{text}");
    assert_eq!(x.expires.map(to_millis), y.expires, "{text}");
    assert_eq!(
        (x.partitioned, &x.priority, x.secure, x.http_only),
        (y.partitioned, &y.priority, y.secure, y.http_only),
        "{text}"
    );
    assert_eq!((&x.domain, &x.path), (&y.domain, &y.path), "{text}");
    assert!(
        match (&x.same_site, &y.same_site) {
            (Some(p), Some(q)) => js_eq(p, q),
            (None, None) => true,
            _ => false,
        },
        "{text}"
    );
    assert!(maps_eq(&x.extra, &y.extra), "{text}");
    assert!(maps_eq(&a.data, &b.data), "{text}");
}

fn maps_eq(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((k, v), (l, w))| k == l && js_eq(v, w))
}

/// Equality of JSON values as JavaScript has them: every number is a double, so `1.0`,
/// `1` and `1e0` are one value, and so are `0` and `-0`.
fn js_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(m), Value::Number(n)) => match (m.as_i64(), n.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => match (m.as_u64(), n.as_u64()) {
                (Some(i), Some(j)) => i == j,
                _ => m.as_f64() == n.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| js_eq(v, w))
        }
        (Value::Object(x), Value::Object(y)) => maps_eq(x, y),
        _ => a == b,
    }
}

/// JSON as JavaScript's `JSON.parse` reads it, to compare what Node would see: strings as
/// UTF-16 code units (so a lone surrogate is a value like any other), numbers as doubles,
/// objects with the last of duplicate members at the place of the first and in
/// JavaScript's property order (array-index keys first, ascending, then the others in
/// insertion order).
mod js {
    #[derive(Debug, PartialEq)]
    pub enum Js {
        Null,
        Bool(bool),
        Num(f64),
        Str(Vec<u16>),
        Arr(Vec<Js>),
        Obj(Vec<(Vec<u16>, Js)>),
    }

    /// The members of a top-level object other than `cookie` (which the codec reads
    /// into typed fields and normalizes).
    pub fn fields(value: &Js) -> Vec<&(Vec<u16>, Js)> {
        let cookie: Vec<u16> = "cookie".encode_utf16().collect();
        match value {
            Js::Obj(members) => members.iter().filter(|(k, _)| *k != cookie).collect(),
            _ => Vec::new(),
        }
    }

    pub fn parse(bytes: &[u8]) -> Option<Js> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut p = Parser { s: text.as_bytes(), text, at: 0 };
        let value = p.value(0)?;
        p.ws();
        (p.at == p.s.len()).then_some(value)
    }

    struct Parser<'a> {
        s: &'a [u8],
        text: &'a str,
        at: usize,
    }

    impl Parser<'_> {
        fn ws(&mut self) {
            while matches!(self.s.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.at += 1;
            }
        }

        fn eat(&mut self, b: u8) -> Option<()> {
            (self.s.get(self.at) == Some(&b)).then(|| self.at += 1)
        }

        fn literal(&mut self, word: &str, value: Js) -> Option<Js> {
            self.s[self.at..].starts_with(word.as_bytes()).then(|| {
                self.at += word.len();
                value
            })
        }

        fn value(&mut self, depth: usize) -> Option<Js> {
            if depth > 1000 {
                return None;
            }
            self.ws();
            match *self.s.get(self.at)? {
                b'n' => self.literal("null", Js::Null),
                b't' => self.literal("true", Js::Bool(true)),
                b'f' => self.literal("false", Js::Bool(false)),
                b'"' => self.string().map(Js::Str),
                b'[' => {
                    self.at += 1;
                    let mut items = Vec::new();
                    self.ws();
                    if self.eat(b']').is_some() {
                        return Some(Js::Arr(items));
                    }
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.ws();
                        if self.eat(b',').is_none() {
                            self.eat(b']')?;
                            return Some(Js::Arr(items));
                        }
                    }
                }
                b'{' => {
                    self.at += 1;
                    let mut members: Vec<(Vec<u16>, Js)> = Vec::new();
                    self.ws();
                    if self.eat(b'}').is_none() {
                        loop {
                            self.ws();
                            let key = self.string()?;
                            self.ws();
                            self.eat(b':')?;
                            let value = self.value(depth + 1)?;
                            match members.iter_mut().find(|(k, _)| *k == key) {
                                Some(member) => member.1 = value,
                                None => members.push((key, value)),
                            }
                            self.ws();
                            if self.eat(b',').is_none() {
                                self.eat(b'}')?;
                                break;
                            }
                        }
                    }
                    // Array indices first, in numeric order; a stable sort keeps the
                    // others in insertion order.
                    members.sort_by_key(|(k, _)| array_index(k).map_or((1, 0), |i| (0, i)));
                    Some(Js::Obj(members))
                }
                _ => self.number(),
            }
        }

        fn number(&mut self) -> Option<Js> {
            let start = self.at;
            self.eat(b'-');
            let digits = |p: &mut Self| {
                let from = p.at;
                while p.s.get(p.at).is_some_and(u8::is_ascii_digit) {
                    p.at += 1;
                }
                p.at - from
            };
            if self.eat(b'0').is_none() && digits(self) == 0 {
                return None;
            }
            if self.eat(b'.').is_some() && digits(self) == 0 {
                return None;
            }
            if matches!(self.s.get(self.at), Some(b'e' | b'E')) {
                self.at += 1;
                if matches!(self.s.get(self.at), Some(b'+' | b'-')) {
                    self.at += 1;
                }
                if digits(self) == 0 {
                    return None;
                }
            }
            self.text[start..self.at].parse::<f64>().ok().map(Js::Num)
        }

        fn string(&mut self) -> Option<Vec<u16>> {
            self.eat(b'"')?;
            let mut out = Vec::new();
            loop {
                let b = *self.s.get(self.at)?;
                match b {
                    b'"' => {
                        self.at += 1;
                        return Some(out);
                    }
                    b'\\' => {
                        let e = *self.s.get(self.at + 1)?;
                        self.at += 2;
                        let unit = match e {
                            b'"' => 0x22,
                            b'\\' => 0x5c,
                            b'/' => 0x2f,
                            b'b' => 0x08,
                            b'f' => 0x0c,
                            b'n' => 0x0a,
                            b'r' => 0x0d,
                            b't' => 0x09,
                            b'u' => {
                                let hex = self.text.get(self.at..self.at + 4)?;
                                if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                                    return None;
                                }
                                self.at += 4;
                                u16::from_str_radix(hex, 16).ok()?
                            }
                            _ => return None,
                        };
                        out.push(unit);
                    }
                    0x00..=0x1f => return None,
                    _ => {
                        let c = self.text[self.at..].chars().next()?;
                        let mut buf = [0u16; 2];
                        out.extend_from_slice(c.encode_utf16(&mut buf));
                        self.at += c.len_utf8();
                    }
                }
            }
        }
    }

    /// The key as an array index (a canonical integer below 2^32 - 1), which JavaScript
    /// orders before every other key.
    fn array_index(key: &[u16]) -> Option<u64> {
        let s = String::from_utf16(key).ok()?;
        let i: u64 = s.parse().ok()?;
        (i < u64::from(u32::MAX) && i.to_string() == s).then_some(i)
    }
}
