//! Session IDs: how they are made and what counts as well formed.
//!
//! express-session (through uid-safe) makes an ID from 24 bytes of the OS CSPRNG, encoded
//! as base64url without padding: 32 characters of `[A-Za-z0-9_-]`. Tessera makes the same,
//! so IDs written by either side look alike in the store.
//!
//! An ID from a cookie is checked for shape *before* anything else happens with it: a value
//! that could not have been generated is never used as a store key, so a client cannot make
//! the store look up (or a log print) arbitrary bytes.

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The longest ID Tessera accepts from a cookie or a generator.
///
/// Generous next to the 32 characters of a default ID, so custom generators (UUIDs, prefixed
/// IDs) fit, while a client cannot make us carry kilobytes of key around.
pub const MAX_ID_LEN: usize = 128;

/// A session ID: a short ASCII string of `[A-Za-z0-9_-]`.
///
/// A `SessionId` is always well formed: it can only be made by [`SessionId::generate`] or by
/// [`SessionId::parse`], which checks the shape.
///
/// Cloning is a reference count, not a copy: a request passes its ID around a few times.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Arc<str>);

impl SessionId {
    /// A new random ID as express-session makes it: 24 bytes from the OS CSPRNG, base64url,
    /// no padding (32 characters).
    ///
    /// # Errors
    /// [`IdError::Random`] when the operating system cannot supply random bytes.
    pub fn generate() -> Result<Self, IdError> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| IdError::Random(e.to_string()))?;
        Ok(SessionId(URL_SAFE_NO_PAD.encode(bytes).into()))
    }

    /// Checks that `s` has the shape of an ID and wraps it; `None` when it does not.
    ///
    /// Accepted: 1 to [`MAX_ID_LEN`] characters, each an ASCII letter, digit, `-` or `_`.
    pub fn parse(s: &str) -> Option<Self> {
        if is_well_formed(s) {
            Some(SessionId(s.into()))
        } else {
            None
        }
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a session ID could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The operating system's random number generator failed (the text is its error).
    /// Nothing in Tessera can fix it: check that the process may read `/dev/urandom` or
    /// call `getrandom(2)` (a sandbox or seccomp profile may forbid it).
    #[error("the operating system could not supply random bytes for a session ID ({0}); check that this process may use the OS random number generator")]
    Random(String),
}

/// Whether `s` has the shape of a session ID (see [`SessionId::parse`]).
pub fn is_well_formed(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    // IDs are bearer credentials: debug output shows only a prefix, enough to correlate
    // log lines, not enough to hijack the session.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: String = self.0.chars().take(6).collect();
        write!(f, "SessionId({shown}…)")
    }
}

impl AsRef<str> for SessionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Makes session IDs. The default is [`SessionId::generate`]; set another with
/// [`SessionConfig::id_generator`](crate::SessionConfig::id_generator), for example to prefix
/// IDs per tenant.
///
/// The generator must return well-formed IDs (see [`SessionId::parse`]); an ill-formed one is
/// an error at request time, logged, never sent to a client.
pub type IdGenerator = Arc<dyn Fn() -> Option<String> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_express_shape() {
        let id = SessionId::generate().unwrap();
        assert_eq!(id.as_str().len(), 32);
        assert!(is_well_formed(id.as_str()));
        assert_ne!(id, SessionId::generate().unwrap());
    }

    #[test]
    fn rejects_what_could_not_be_an_id() {
        for bad in [
            "",
            "a b",
            "abc.def",
            "x".repeat(129).as_str(),
            "é",
            "a/b",
            "a+b",
            "a==",
        ] {
            assert!(SessionId::parse(bad).is_none(), "{bad:?}");
        }
        assert!(SessionId::parse("fxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q").is_some());
    }

    #[test]
    fn debug_does_not_leak_the_id() {
        let id = SessionId::parse("fxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q").unwrap();
        assert_eq!(format!("{id:?}"), "SessionId(fxwMrC…)");
    }
}
