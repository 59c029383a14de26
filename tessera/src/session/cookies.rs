//! The request's session cookie: found among the `Cookie` headers and verified only when
//! the session is first needed, so a route that never looks at its session costs no
//! parsing and no HMAC.

use std::sync::OnceLock;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};

use crate::cookie;
use crate::engine::Engine;
use crate::id::SessionId;
use crate::signing::SecretIndex;

/// The `Cookie` header values of a request, as the layer found them (a cheap reference
/// count each, no copy of the bytes).
pub(crate) enum RawCookies {
    None,
    One(HeaderValue),
    Many(Vec<HeaderValue>),
}

impl RawCookies {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let mut all = headers.get_all(COOKIE).iter();
        match (all.next(), all.next()) {
            (None, _) => RawCookies::None,
            (Some(one), None) => RawCookies::One(one.clone()),
            (Some(first), Some(second)) => {
                let mut many = vec![first.clone(), second.clone()];
                many.extend(all.cloned());
                RawCookies::Many(many)
            }
        }
    }

    fn iter(&self) -> std::slice::Iter<'_, HeaderValue> {
        match self {
            RawCookies::None => [].iter(),
            RawCookies::One(value) => std::slice::from_ref(value).iter(),
            RawCookies::Many(values) => values.iter(),
        }
    }
}

/// What the request's cookie turned out to hold.
pub(crate) struct Verified {
    /// The ID from the first cookie of our name that verified, and which secret verified
    /// it: a stray duplicate (another path or domain, or garbage planted by a subdomain)
    /// cannot knock the user out.
    pub(crate) id: Option<(SessionId, SecretIndex)>,
    /// The verified cookie value, kept to be sent back as it is (no second HMAC) while the
    /// ID and the signing secret stay the same.
    pub(crate) value: Option<String>,
}

/// The request's cookies and, once asked for, what they verified to.
pub(crate) struct RequestCookie {
    raw: RawCookies,
    verified: OnceLock<Verified>,
}

impl RequestCookie {
    pub(crate) fn new(raw: RawCookies) -> Self {
        RequestCookie {
            raw,
            verified: OnceLock::new(),
        }
    }

    /// The request's cookie, parsed and verified on the first call.
    pub(crate) fn verified(&self, engine: &Engine) -> &Verified {
        self.verified.get_or_init(|| {
            let found = cookie::values(self.raw.iter(), &engine.config.name)
                .find_map(|v| engine.secrets.unsign(&v).map(|(id, index)| (id, index, v)));
            match found {
                Some((id, index, value)) => Verified {
                    id: Some((id, index)),
                    value: (index == 0).then_some(value),
                },
                None => Verified {
                    id: None,
                    value: None,
                },
            }
        })
    }

    /// What is known already, without verifying (for `Debug`).
    pub(crate) fn peek(&self) -> Option<&Verified> {
        self.verified.get()
    }
}
