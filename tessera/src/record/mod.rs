//! The stored session record and its JSON codec: the one place that knows the shape
//! express-session and connect-redis put in a store.
//!
//! A record is the session object express serializes: a `cookie` member first, then the
//! application's fields in insertion order:
//!
//! ```json
//! {"cookie":{"originalMaxAge":86400000,"expires":"2026-11-29T09:04:54.097Z","secure":false,"httpOnly":true,"path":"/"},"views":3}
//! ```
//!
//! Fields Tessera does not know (written by a Node app, say) are carried through untouched:
//! the data map keeps insertion order and numbers are written in JavaScript's text (every
//! JavaScript number is a double, written as `JSON.stringify` writes it), so a record read
//! and written back by Tessera is byte-for-byte what Node would write.

use std::time::Duration;

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

use crate::js_number::JsFormatter;

mod surrogates;

use surrogates::{shelter_lone_surrogates, unshelter_lone_surrogates};

/// The application's session fields, in insertion order.
pub type Data = Map<String, Value>;

/// A session as it is kept in a store: its cookie settings and its data.
#[derive(Debug, PartialEq)]
pub struct Record {
    /// The cookie member (`originalMaxAge`, `expires`, attributes).
    pub cookie: CookieData,
    /// The application's fields.
    pub data: Data,
    /// Whether lone UTF-16 surrogates were read (see [`shelter_lone_surrogates`]) and must
    /// be written back as the escapes they came from.
    sheltered: bool,
}

/// The `cookie` member of a stored session, as express-session's `Cookie#toJSON` writes it.
///
/// Every attribute that express may leave out is an `Option`: `None` is not written.
/// `original_max_age` and `expires` are always written, as `null` when unset.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CookieData {
    /// `originalMaxAge`: the max age in milliseconds the cookie was given, or `null` for a
    /// browser-session cookie.
    pub original_max_age: Option<i64>,
    /// `partitioned` (CHIPS).
    pub partitioned: Option<bool>,
    /// `priority`: `"low"`, `"medium"` or `"high"`.
    pub priority: Option<String>,
    /// `expires`: when the cookie (and the session) expires, or `null` for a browser-session
    /// cookie.
    pub expires: Option<OffsetDateTime>,
    /// `secure`.
    pub secure: Option<bool>,
    /// `httpOnly`.
    pub http_only: Option<bool>,
    /// `domain`.
    pub domain: Option<String>,
    /// `path`.
    pub path: Option<String>,
    /// `sameSite`: `true` (strict), `false`, or `"strict"`, `"lax"`, `"none"`.
    pub same_site: Option<Value>,
    /// Members Tessera does not know, kept so a round trip loses nothing.
    pub extra: Map<String, Value>,
}

/// Why a stored value could not be read as a session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not JSON at all, or not an object.
    #[error("stored session is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON value that is not an object.
    #[error("stored session is JSON but not an object")]
    NotAnObject,
    /// No `cookie` member (express-session fails such a request with a 500).
    #[error("stored session has no `cookie` member")]
    MissingCookie,
    /// A `cookie` member of the wrong shape.
    #[error("stored session has a malformed `cookie` member: {0}")]
    BadCookie(&'static str),
}

impl Clone for Record {
    fn clone(&self) -> Self {
        Record {
            cookie: self.cookie.clone(),
            data: self.data.clone(),
            sheltered: self.sheltered,
        }
    }

    // Field by field, so a store overwriting its copy of a session reuses the map's
    // allocations (derived `Clone` would build a new record and drop the old one).
    fn clone_from(&mut self, source: &Self) {
        self.cookie.clone_from(&source.cookie);
        self.data.clone_from(&source.data);
        self.sheltered = source.sheltered;
    }
}

impl Record {
    /// An empty record with the given cookie.
    pub fn new(cookie: CookieData) -> Self {
        Record {
            cookie,
            data: Data::new(),
            sheltered: false,
        }
    }

    /// The record as connect-redis's default serializer writes it (`JSON.stringify`).
    pub fn to_json(&self) -> Vec<u8> {
        // Room for a typical session up front: growing the buffer reallocates.
        let mut json = Vec::with_capacity(256);
        // Serializing maps of JSON values into a Vec cannot fail. Numbers in JavaScript's
        // text (see `js_number`), so what Node stored comes back byte for byte.
        let mut serializer = serde_json::Serializer::with_formatter(&mut json, JsFormatter);
        if self.serialize(&mut serializer).is_err() {
            json.clear();
        }
        if self.sheltered {
            unshelter_lone_surrogates(&json)
        } else {
            json
        }
    }

    /// Reads a record from the JSON express-session and connect-redis store.
    pub fn from_json(bytes: &[u8]) -> Result<Self, DecodeError> {
        let sheltered = shelter_lone_surrogates(bytes)?;
        let json = sheltered.as_deref().unwrap_or(bytes);
        // Straight from the text into the record: no tree of the whole document first.
        // Anything that does not fit (not an object, a `cookie` that is not one) takes the
        // slower path below, which tells exactly what is wrong.
        let mut de = serde_json::Deserializer::from_slice(json);
        if let Ok(decoded) = serde::Deserializer::deserialize_map(&mut de, RecordVisitor) {
            if de.end().is_ok() {
                let mut record = decoded?;
                record.sheltered = sheltered.is_some();
                return Ok(record);
            }
        }
        let value = serde_json::from_slice::<Value>(json)?;
        match value {
            Value::Object(map) => {
                let mut record = Self::from_map(map)?;
                record.sheltered = sheltered.is_some();
                Ok(record)
            }
            _ => Err(DecodeError::NotAnObject),
        }
    }

    fn from_map(mut map: Map<String, Value>) -> Result<Self, DecodeError> {
        // `shift_remove`, not `remove`: the latter swaps the last field into the hole and
        // would reorder the application's data.
        let cookie = match map.shift_remove("cookie") {
            Some(Value::Object(cookie)) => CookieData::from_map(cookie)?,
            Some(_) => return Err(DecodeError::BadCookie("not an object")),
            None => return Err(DecodeError::MissingCookie),
        };
        Ok(Record {
            cookie,
            data: map,
            sheltered: false,
        })
    }

    /// Takes over `other`'s sheltered lone surrogates, when values of `other` were copied
    /// into this record (a merge of two versions of one session).
    pub(crate) fn absorb_shelter(&mut self, other: &Record) {
        self.sheltered |= other.sheltered;
    }

    /// How long a store should keep this record, by connect-redis's rule: until the
    /// cookie expires when it has an expiry, else `default_ttl`.
    pub fn ttl(&self, default_ttl: Duration) -> Ttl {
        Ttl::from_expiry(self.cookie.expires, default_ttl)
    }
}

/// How long a store keeps a session, computed as connect-redis does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    /// Keep it this many whole seconds (rounded up, as connect-redis's `Math.ceil`).
    Seconds(u64),
    /// The cookie has already expired: the record should be deleted, not written
    /// (connect-redis sends `DEL` here).
    Expired,
}

impl Ttl {
    /// The TTL for a session whose cookie expires at `expires` (or never, `None`):
    /// `ceil((expires - now) / 1 s)`, else `default_ttl`.
    pub fn from_expiry(expires: Option<OffsetDateTime>, default_ttl: Duration) -> Ttl {
        match expires {
            Some(at) => {
                let ms = (at - OffsetDateTime::now_utc()).whole_milliseconds();
                if ms <= 0 {
                    Ttl::Expired
                } else {
                    Ttl::Seconds(u64::try_from((ms + 999) / 1000).unwrap_or(u64::MAX))
                }
            }
            None => match default_ttl.as_secs() {
                0 => Ttl::Expired,
                s => Ttl::Seconds(s),
            },
        }
    }

    /// The point in time this TTL ends, from now.
    pub fn deadline(self) -> Option<OffsetDateTime> {
        match self {
            Ttl::Seconds(s) => OffsetDateTime::now_utc().checked_add(time::Duration::seconds(
                i64::try_from(s).unwrap_or(i64::MAX),
            )),
            Ttl::Expired => None,
        }
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1 + self.data.len()))?;
        map.serialize_entry("cookie", &self.cookie)?;
        for (key, value) in &self.data {
            if key != "cookie" {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl Serialize for CookieData {
    // Key order of express-session's `Cookie#data`: originalMaxAge, partitioned, priority,
    // expires, secure, httpOnly, domain, path, sameSite. Undefined members are left out;
    // originalMaxAge and expires are written as null.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("originalMaxAge", &self.original_max_age)?;
        if let Some(v) = &self.partitioned {
            map.serialize_entry("partitioned", v)?;
        }
        if let Some(v) = &self.priority {
            map.serialize_entry("priority", v)?;
        }
        map.serialize_entry("expires", &self.expires.map(format_js_iso))?;
        if let Some(v) = &self.secure {
            map.serialize_entry("secure", v)?;
        }
        if let Some(v) = &self.http_only {
            map.serialize_entry("httpOnly", v)?;
        }
        if let Some(v) = &self.domain {
            map.serialize_entry("domain", v)?;
        }
        if let Some(v) = &self.path {
            map.serialize_entry("path", v)?;
        }
        if let Some(v) = &self.same_site {
            map.serialize_entry("sameSite", v)?;
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Reads a record object: the `cookie` member into [`CookieData`], every other member into
/// the data map, in order. Shape errors of the cookie come back as the visitor's value, so
/// they stay [`DecodeError`]s rather than JSON syntax errors.
struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Result<Record, DecodeError>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a session object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut cookie = None;
        let mut data = Data::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == "cookie" {
                cookie = Some(map.next_value_seed(CookieVisitor)?);
            } else {
                data.insert(key, map.next_value()?);
            }
        }
        Ok(match cookie {
            Some(Ok(cookie)) => Ok(Record {
                cookie,
                data,
                sheltered: false,
            }),
            Some(Err(e)) => Err(e),
            None => Err(DecodeError::MissingCookie),
        })
    }
}

/// Reads the `cookie` object member by member, without building a map of it first.
struct CookieVisitor;

impl<'de> DeserializeSeed<'de> for CookieVisitor {
    type Value = Result<CookieData, DecodeError>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CookieVisitor {
    type Value = Result<CookieData, DecodeError>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a cookie object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut cookie = CookieData::default();
        let mut problem = None;
        while let Some(key) = map.next_key::<Key<'de>>()? {
            let value: Value = map.next_value()?;
            if problem.is_none() {
                problem = cookie.set(key.0, value).err();
            }
        }
        Ok(match problem {
            None => Ok(cookie),
            Some(e) => Err(e),
        })
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl CookieData {
    fn from_map(map: Map<String, Value>) -> Result<Self, DecodeError> {
        let mut cookie = CookieData::default();
        for (key, value) in map {
            cookie.set(Cow::Owned(key), value)?;
        }
        Ok(cookie)
    }

    /// Takes one member of express's cookie object; members it does not know are kept.
    fn set(&mut self, key: Cow<'_, str>, value: Value) -> Result<(), DecodeError> {
        let cookie = self;
        match key.as_ref() {
            "originalMaxAge" => {
                cookie.original_max_age = match &value {
                    Value::Null => None,
                    Value::Number(n) => {
                        Some(max_age_millis(n).ok_or(DecodeError::BadCookie("originalMaxAge"))?)
                    }
                    _ => return Err(DecodeError::BadCookie("originalMaxAge")),
                }
            }
            "expires" => {
                cookie.expires = match &value {
                    Value::Null => None,
                    // Kept in UTC: an offset that takes the date past year 9999 (which
                    // `time` cannot hold in UTC) is refused here, so no later conversion
                    // of a stored date can fail.
                    Value::String(s) => Some(
                        parse_js_iso(s)
                            .or_else(|| {
                                OffsetDateTime::parse(s, &Rfc3339)
                                    .ok()?
                                    .checked_to_offset(UtcOffset::UTC)
                            })
                            .ok_or(DecodeError::BadCookie("expires"))?,
                    ),
                    _ => return Err(DecodeError::BadCookie("expires")),
                }
            }
            "partitioned" => cookie.partitioned = value.as_bool(),
            "priority" => cookie.priority = value.as_str().map(str::to_owned),
            "secure" => cookie.secure = value.as_bool(),
            "httpOnly" => cookie.http_only = value.as_bool(),
            "domain" => cookie.domain = value.as_str().map(str::to_owned),
            "path" => cookie.path = value.as_str().map(str::to_owned),
            "sameSite" => cookie.same_site = Some(value),
            _ => {
                cookie.extra.insert(key.into_owned(), value);
            }
        }
        Ok(())
    }
}

/// `originalMaxAge` as whole milliseconds: `None` (a corrupt record) for a number that
/// is not one an i64 holds, rather than a value saturated into range. (Any i64 is safe
/// downstream: every date computed from it is checked.) `JSON.stringify` writes whole
/// milliseconds; a fraction is tolerated and dropped.
fn max_age_millis(n: &serde_json::Number) -> Option<i64> {
    if let Some(ms) = n.as_i64() {
        return Some(ms);
    }
    // i64's range as doubles is [-2^63, 2^63): compared first, as `as` would saturate.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    let f = n.as_f64().filter(|f| f.is_finite())?;
    (-LIMIT..LIMIT).contains(&f).then_some(f as i64)
}

/// `at` in UTC. A date that `time` cannot hold in UTC (past year 9999 or before -9999 once
/// its offset is applied; only a value built in code can be one, stored ones are refused
/// when read) is clamped to the nearest representable one: rendering never fails.
pub(crate) fn utc(at: OffsetDateTime) -> OffsetDateTime {
    at.checked_to_offset(UtcOffset::UTC).unwrap_or_else(|| {
        if at.offset().is_negative() {
            // The last millisecond of the last day (the time is always valid).
            let last = time::Time::from_hms_milli(23, 59, 59, 999).unwrap_or(time::Time::MIDNIGHT);
            time::Date::MAX.with_time(last).assume_utc()
        } else {
            time::Date::MIN.midnight().assume_utc()
        }
    })
}

/// `Date#toISOString`'s exact shape, `2026-11-29T09:04:54.097Z`, read without a general
/// RFC 3339 parser (every load reads one); `None` for anything else.
fn parse_js_iso(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 24 || b[23] != b'Z' {
        return None;
    }
    for (at, sep) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ] {
        if b[at] != sep {
            return None;
        }
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let month = time::Month::try_from(u8::try_from(num(5, 7)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(num(0, 4)?).ok()?,
        month,
        u8::try_from(num(8, 10)?).ok()?,
    )
    .ok()?;
    let time = time::Time::from_hms_milli(
        u8::try_from(num(11, 13)?).ok()?,
        u8::try_from(num(14, 16)?).ok()?,
        u8::try_from(num(17, 19)?).ok()?,
        u16::try_from(num(20, 23)?).ok()?,
    )
    .ok()?;
    Some(date.with_time(time).assume_utc())
}

/// `Date#toISOString`: `2026-11-29T09:04:54.097Z`, always milliseconds, always UTC.
pub fn format_js_iso(at: OffsetDateTime) -> String {
    let at = utc(at);
    let mut out = String::with_capacity(24);
    push_year(&mut out, at.year());
    out.push('-');
    push_padded(&mut out, u8::from(at.month()).into(), 2);
    out.push('-');
    push_padded(&mut out, at.day().into(), 2);
    out.push('T');
    push_padded(&mut out, at.hour().into(), 2);
    out.push(':');
    push_padded(&mut out, at.minute().into(), 2);
    out.push(':');
    push_padded(&mut out, at.second().into(), 2);
    out.push('.');
    push_padded(&mut out, at.millisecond().into(), 3);
    out.push('Z');
    out
}

/// `n` in decimal, zero-padded to `width` digits. Dates are written on every saved
/// request (the record's `expires`, the cookie's `Expires`): this skips `fmt`'s machinery.
pub(crate) fn push_padded(out: &mut String, n: u32, width: usize) {
    let mut digits = [b'0'; 10];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = at.min(digits.len().saturating_sub(width));
    for &d in &digits[start..] {
        out.push(char::from(d));
    }
}

/// A year as `Date` writes it in these formats: four digits for years 0 to 9999; other
/// years (which `time` only has with its `large-dates` feature) as plain numbers.
pub(crate) fn push_year(out: &mut String, year: i32) {
    match u32::try_from(year) {
        Ok(y) if y <= 9999 => push_padded(out, y, 4),
        _ => {
            use std::fmt::Write as _;
            let _ = write!(out, "{year}");
        }
    }
}

/// Truncates to whole milliseconds, the precision a JavaScript `Date` keeps.
pub fn to_millis(at: OffsetDateTime) -> OffsetDateTime {
    at.replace_nanosecond(at.millisecond() as u32 * 1_000_000)
        .unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Taken from a running express-session 1.19 app (shared/reference/express-session.md).
    const FROM_NODE: &str = r#"{"cookie":{"originalMaxAge":86400000,"expires":"2026-11-29T09:04:54.097Z","secure":false,"httpOnly":true,"path":"/"},"views":3}"#;
    const NO_MAX_AGE: &str = r#"{"cookie":{"originalMaxAge":null,"expires":null,"secure":false,"httpOnly":true,"path":"/"}}"#;

    #[test]
    fn round_trips_express_json_byte_for_byte() {
        for json in [FROM_NODE, NO_MAX_AGE] {
            let record = Record::from_json(json.as_bytes()).unwrap();
            assert_eq!(String::from_utf8(record.to_json()).unwrap(), json);
        }
    }

    #[test]
    fn keeps_unknown_fields_order_and_number_text() {
        // Numbers as JSON.stringify writes them, among them the ones serde_json would
        // write differently (`1e21`, `1.5e300`, `1.2345678901234568e20`).
        let numbers = "[1.5,1e+21,1.5e+300,123456789012345680000,-0.000001,1e-7,5e-324,18446744073709552000,-9007199254740991,0.30000000000000004]";
        let json = format!(
            r#"{{"cookie":{{"originalMaxAge":null,"expires":null,"httpOnly":true,"path":"/","x-custom":1}},"z":1,"a":{{"n":{numbers}}},"m":"ü\u2028"}}"#
        );
        let record = Record::from_json(json.as_bytes()).unwrap();
        assert_eq!(record.data.keys().collect::<Vec<_>>(), ["z", "a", "m"]);
        let out = String::from_utf8(record.to_json()).unwrap();
        assert!(out.contains(numbers), "{out}");
        assert!(out.contains(r#""x-custom":1"#), "{out}");
    }

    #[test]
    fn numbers_from_rust_are_written_as_javascript_would() {
        let mut record = Record::from_json(NO_MAX_AGE.as_bytes()).unwrap();
        record.data.insert("big".into(), serde_json::json!(1e21));
        record.data.insert("whole".into(), serde_json::json!(2.0));
        record.data.insert("u".into(), serde_json::json!(u64::MAX));
        let out = String::from_utf8(record.to_json()).unwrap();
        assert!(
            out.ends_with(r#""big":1e+21,"whole":2,"u":18446744073709551615}"#),
            "{out}"
        );
    }

    #[test]
    fn lone_surrogates_from_javascript_round_trip() {
        // Written by connect-redis for `'😀'.slice(0, 1)` (shared by the interop tests).
        let json = r#"{"cookie":{"originalMaxAge":null,"expires":null},"a":"x\ud83dy","b":"\ude00","pair":"😀","k\udbff":"\\ud83d"}"#;
        let record = Record::from_json(json.as_bytes()).unwrap();
        assert_eq!(String::from_utf8(record.to_json()).unwrap(), json);
        // A whole pair, escaped, is an ordinary character (JSON.stringify writes it raw).
        let pair = Record::from_json(br#"{"cookie":{},"p":"\ud83d\ude00"}"#).unwrap();
        assert_eq!(pair.data["p"], "😀");
        assert_eq!(
            record.data["k\u{10fbff}"].as_str(),
            Some("\\ud83d"),
            "an escaped backslash is no escape"
        );
    }

    /// Found with the `record` fuzz target (fuzz/): the characters that stand for lone
    /// surrogates while a record is read (U+10F800..U+10FFFF) were taken for sheltered
    /// surrogates when the document also held them genuinely. The genuine U+10F800 came
    /// back as a lone `\ud800`, and next to a lone low surrogate as one other character
    /// (`\ud800\udc00`, U+10000): data Node reads differently from what it wrote.
    #[test]
    fn sheltered_surrogates_never_stand_for_genuine_characters() {
        for json in [
            r#"{"cookie":{},"a":"\udbfe\udc00\udc00"}"#,
            r#"{"cookie":{},"a":"\udbff\udfff","b":"\ud800"}"#,
            "{\"cookie\":{},\"a\":\"\u{10f800}\",\"b\":\"\\ud800\"}",
            "{\"\u{10ffff}\":{},\"cookie\":{},\"b\":\"\\udfff\"}",
        ] {
            assert!(
                matches!(
                    Record::from_json(json.as_bytes()),
                    Err(DecodeError::Json(_))
                ),
                "{json}"
            );
        }
        // Without a lone surrogate they are ordinary characters, raw or escaped.
        for (json, chars) in [
            (
                "{\"cookie\":{\"originalMaxAge\":null,\"expires\":null},\"a\":\"\u{10f800}\u{10ffff}\"}",
                "\u{10f800}\u{10ffff}",
            ),
            (
                r#"{"cookie":{"originalMaxAge":null,"expires":null},"a":"\udbfe\udc00"}"#,
                "\u{10f800}",
            ),
        ] {
            let record = Record::from_json(json.as_bytes()).unwrap();
            assert_eq!(record.data["a"], chars, "{json}");
            assert_eq!(Record::from_json(&record.to_json()).unwrap(), record);
        }
    }

    #[test]
    fn refuses_what_express_could_not_load() {
        assert!(matches!(
            Record::from_json(b"not json"),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            Record::from_json(b"[1]"),
            Err(DecodeError::NotAnObject)
        ));
        assert!(matches!(
            Record::from_json(br#"{"views":1}"#),
            Err(DecodeError::MissingCookie)
        ));
        assert!(matches!(
            Record::from_json(br#"{"cookie":{"expires":"yesterday"}}"#),
            Err(DecodeError::BadCookie(_))
        ));
    }

    /// Values a hostile or broken writer could put in the cookie member: each one is a
    /// `DecodeError` (no session), never a panic later when the session is used.
    #[test]
    fn hostile_cookie_members_are_decode_errors() {
        for member in [
            // Past year 9999 once the offset is applied: `time` cannot hold it in UTC.
            r#""originalMaxAge":null,"expires":"9999-12-31T23:59:59.999-01:00""#,
            r#""expires":"9999-12-31T23:00:00-23:59""#,
            // Beyond a JavaScript Date (year 275760) or not dates at all.
            r#""expires":"+275760-09-13T00:00:00.000Z""#,
            r#""expires":"9999-99-99T00:00:00.000Z""#,
            r#""expires":"""#,
            r#""expires":12345"#,
            r#""expires":true"#,
            r#""expires":{}"#,
            // Max ages no i64 of milliseconds holds (they used to be saturated silently).
            r#""originalMaxAge":1e300"#,
            r#""originalMaxAge":-1e300"#,
            r#""originalMaxAge":1.7976931348623157e308"#,
            r#""originalMaxAge":9223372036854775808"#,
            r#""originalMaxAge":-9.3e18"#,
            r#""originalMaxAge":18446744073709551615"#,
            r#""originalMaxAge":"86400000""#,
            r#""originalMaxAge":[]"#,
            r#""originalMaxAge":true"#,
        ] {
            let json = format!(r#"{{"cookie":{{{member}}},"views":1}}"#);
            assert!(
                matches!(
                    Record::from_json(json.as_bytes()),
                    Err(DecodeError::BadCookie(_))
                ),
                "{json}"
            );
        }
    }

    /// The edges that are still valid decode, and every date and number conversion on the
    /// way out (the stored JSON, the cookie's `Expires`, the store's TTL) copes with them.
    #[test]
    fn edge_values_decode_and_render() {
        for member in [
            r#""originalMaxAge":9223372036854775807,"expires":"9999-12-31T23:59:59.999Z""#,
            r#""originalMaxAge":-9223372036854775808,"expires":"0000-01-01T00:00:00.000Z""#,
            r#""originalMaxAge":8640000000000001,"expires":"2026-11-29T09:04:54.097Z""#,
            r#""originalMaxAge":1.5,"expires":"0000-01-01T00:00:00.000+23:59""#,
            r#""originalMaxAge":-9.2e18,"expires":"9999-12-31T23:59:59.999+23:59""#,
        ] {
            let json = format!(r#"{{"cookie":{{{member}}}}}"#);
            let record =
                Record::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
            let expires = record.cookie.expires.unwrap();
            assert!(expires.offset().is_utc(), "{json}");
            let _ = record.to_json();
            let _ = crate::cookie::set_cookie("sid", "v", &record.cookie, false);
            let _ = record.ttl(Duration::from_secs(60)).deadline();
        }
        let r = Record::from_json(br#"{"cookie":{"originalMaxAge":1.5}}"#).unwrap();
        assert_eq!(r.cookie.original_max_age, Some(1));
    }

    /// A date built in code (not read from a store) may have an offset that takes it out
    /// of `time`'s UTC range: it is written as the nearest date that can be, not a panic.
    #[test]
    fn unrepresentable_dates_are_clamped_when_written() {
        use time::macros::datetime;
        let late = datetime!(9999-12-31 23:59:59.999 -1);
        let early = datetime!(-9999-01-01 00:00 +1);
        assert_eq!(format_js_iso(late), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_js_iso(early), "-9999-01-01T00:00:00.000Z");
        let cookie = CookieData {
            expires: Some(late),
            ..CookieData::default()
        };
        assert_eq!(
            crate::cookie::set_cookie("sid", "v", &cookie, false),
            "sid=v; Expires=Fri, 31 Dec 9999 23:59:59 GMT"
        );
        let mut record = Record::new(cookie);
        record.cookie.expires = Some(early);
        assert!(String::from_utf8(record.to_json())
            .unwrap()
            .contains(r#""expires":"-9999-01-01T00:00:00.000Z""#));
    }

    #[test]
    fn reads_to_iso_string_dates_as_rfc_3339_does() {
        for s in [
            "2026-11-29T09:04:54.097Z",
            "2024-02-29T23:59:59.999Z",
            "0001-01-01T00:00:00.000Z",
        ] {
            assert_eq!(
                parse_js_iso(s),
                OffsetDateTime::parse(s, &Rfc3339).ok(),
                "{s}"
            );
        }
        for s in [
            "2026-13-01T00:00:00.000Z",
            "2026-02-30T00:00:00.000Z",
            "2026-11-29T24:00:00.000Z",
            "2026-11-29T09:04:54.097+01:00",
            "2026-11-29 09:04:54.097Z",
            "+2026-11-29T09:04:54.09Z",
        ] {
            assert_eq!(parse_js_iso(s), None, "{s}");
        }
        // Other RFC 3339 forms are still read, by the general parser.
        let r = Record::from_json(br#"{"cookie":{"expires":"2026-11-29T10:04:54.097+01:00"}}"#);
        assert_eq!(
            r.unwrap().cookie.expires,
            OffsetDateTime::parse("2026-11-29T09:04:54.097Z", &Rfc3339).ok()
        );
    }

    #[test]
    fn decodes_odd_documents_as_a_json_tree_would() {
        // The last of duplicate members wins, at the place of the first, as in JSON.parse.
        let r = Record::from_json(
            br#"{"a":1,"cookie":{"path":"/x"},"b":2,"a":3,"cookie":{"path":"/y"}}"#,
        )
        .unwrap();
        assert_eq!(r.cookie.path.as_deref(), Some("/y"));
        assert_eq!(r.data.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(r.data["a"], 3);
        // An escaped key is the same key.
        let r = Record::from_json(br#"{"\u0063ookie":{"p\u0061th":"/"}}"#).unwrap();
        assert_eq!(r.cookie.path.as_deref(), Some("/"));
        assert!(matches!(
            Record::from_json(br#"{"cookie":5}"#),
            Err(DecodeError::BadCookie("not an object"))
        ));
        assert!(matches!(
            Record::from_json(br#"{"cookie":{}} x"#),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            Record::from_json(br#"{"cookie":{"originalMaxAge":"1"}}"#),
            Err(DecodeError::BadCookie("originalMaxAge"))
        ));
    }

    #[test]
    fn ttl_follows_connect_redis() {
        let day = Duration::from_secs(86400);
        assert_eq!(
            Ttl::from_expiry(None, Duration::from_secs(3600)),
            Ttl::Seconds(3600)
        );
        let in_a_day = OffsetDateTime::now_utc() + time::Duration::milliseconds(86_399_500);
        assert_eq!(
            Ttl::from_expiry(Some(in_a_day), Duration::from_secs(3600)),
            Ttl::Seconds(86400)
        );
        let past = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        assert_eq!(Ttl::from_expiry(Some(past), day), Ttl::Expired);
    }

    #[test]
    fn iso_format_matches_to_iso_string() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_795_943_094_097_123_456).unwrap();
        assert_eq!(format_js_iso(at), "2026-11-29T09:04:54.097Z");
    }
}
