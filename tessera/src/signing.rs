//! The signed cookie value, byte for byte as express-session (cookie-signature) writes it.
//!
//! Format: `s:` + id + `.` + base64(HMAC-SHA256(key = secret, message = id)), standard
//! alphabet, `=` padding removed. Verification checks the signature against every
//! configured secret in order (key rotation: sign with the first, accept any) and compares
//! in constant time, so a client learns nothing from how long a rejection took.
//!
//! This module is the only place that knows the format; `cookie` handles the header syntax
//! around it and the layer only sees IDs. Written here rather than taken from the `cookie`
//! crate's signed jar, whose format (the MAC before the value, derived keys) is not
//! cookie-signature's.

use std::fmt;

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::id::SessionId;

type HmacSha256 = Hmac<Sha256>;

/// Length of the base64 signature without padding (32 bytes → 43 characters).
const SIG_LEN: usize = 43;

/// One or more secrets: the first signs, any verifies.
///
/// Each secret's HMAC key schedule is computed once, here, rather than on every request.
#[derive(Clone)]
pub struct Secrets {
    keys: Vec<HmacSha256>,
}

/// Why a set of secrets was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SecretError {
    /// No secret was given.
    #[error("no session secret given: set at least one (the first signs, all verify)")]
    Missing,
    /// One of the secrets is the empty string.
    #[error("session secret {index} is empty: every secret needs at least one byte")]
    Empty {
        /// Position of the empty secret in the list.
        index: usize,
    },
}

/// A session's non-secret handle (see [`Secrets::handle`]): 22 characters of base64url.
/// Safe to log, to put in events and to show to users; it changes when the signing secret
/// does.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionHandle(String);

impl SessionHandle {
    /// The handle's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string that is not a session handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session handle: expected 22 characters of base64url")]
pub struct HandleError;

impl std::str::FromStr for SessionHandle {
    type Err = HandleError;

    /// Reads a handle back from its text (a form field, a URL), checking only its shape.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shaped = s.len() == 22
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if shaped {
            Ok(SessionHandle(s.to_owned()))
        } else {
            Err(HandleError)
        }
    }
}

impl fmt::Display for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which secret verified a cookie: `0` is the signing secret; anything else means the
/// cookie should be re-signed when a Set-Cookie goes out anyway.
pub type SecretIndex = usize;

impl Secrets {
    /// Secrets in order of preference. Fails when the list is empty or a secret is empty.
    pub fn new<I, S>(secrets: I) -> Result<Self, SecretError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut keys = Vec::new();
        for (index, secret) in secrets.into_iter().enumerate() {
            let secret = secret.as_ref();
            if secret.is_empty() {
                return Err(SecretError::Empty { index });
            }
            // HMAC accepts keys of any length; this cannot fail.
            let key =
                HmacSha256::new_from_slice(secret).map_err(|_| SecretError::Empty { index })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(SecretError::Missing);
        }
        Ok(Secrets { keys })
    }

    /// The non-secret handle of `id`: what logs, events and listings shown to users carry
    /// instead of the ID, which is a bearer credential. A keyed digest (HMAC-SHA256 with
    /// the signing secret, over a label and the ID, 16 bytes in base64url): the same ID
    /// always has the same handle under one signing secret, and without the secret
    /// nobody can tell a handle's ID, or forge one for a known ID.
    pub fn handle(&self, id: &SessionId) -> SessionHandle {
        let mut mac = self.keys[0].clone();
        mac.update(b"tessera session handle\0");
        mac.update(id.as_str().as_bytes());
        let digest = mac.finalize().into_bytes();
        SessionHandle(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]))
    }

    /// The signed value for `id`, unencoded: `s:<id>.<signature>`.
    pub fn sign(&self, id: &SessionId) -> String {
        let mut out = String::with_capacity(2 + id.as_str().len() + 1 + SIG_LEN);
        out.push_str("s:");
        out.push_str(id.as_str());
        out.push('.');
        STANDARD_NO_PAD.encode_string(self.mac(0, id.as_str()), &mut out);
        out
    }

    /// Verifies an unencoded cookie value (`s:<id>.<signature>`) and returns the ID and the
    /// index of the secret that signed it.
    ///
    /// `None` for anything else: no `s:` prefix, no dot, a bad signature, or an ID that is
    /// not well formed. Like cookie-signature, the ID is everything before the *last* dot.
    pub fn unsign(&self, value: &str) -> Option<(SessionId, SecretIndex)> {
        let signed = value.strip_prefix("s:")?;
        let dot = signed.rfind('.')?;
        let (id, sig) = (&signed[..dot], &signed[dot + 1..]);
        // Cheap shape checks first: they reject garbage without computing any HMAC.
        if sig.len() != SIG_LEN {
            return None;
        }
        let id = SessionId::parse(id)?;
        let mut expected = [0u8; SIG_LEN + 1];
        for index in 0..self.keys.len() {
            let len = STANDARD_NO_PAD
                .encode_slice(self.mac(index, id.as_str()), &mut expected)
                .ok()?;
            if bool::from(expected[..len].ct_eq(sig.as_bytes())) {
                return Some((id, index));
            }
        }
        None
    }

    fn mac(&self, index: usize, message: &str) -> [u8; 32] {
        let mut mac = self.keys[index].clone();
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({} configured)", self.keys.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors computed independently of this code, with Python's standard library:
    //   python3 -c "import hmac,hashlib,base64;print(base64.b64encode(hmac.new(
    //     b'SECRET',b'ID',hashlib.sha256).digest()).decode().rstrip('='))"
    // The second one is also the example cookie in shared/reference/express-session.md,
    // taken from a running express-session app.
    const VECTORS: &[(&str, &str, &str)] = &[
        (
            "keyboard cat",
            "fxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q",
            "Hs2MnV2pMNtQabcK7W0LlFUzBXCEm09SsJBaM2dbQKI",
        ),
        (
            "your_secret_key_here",
            "fxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q",
            "t03XZrgJ/+0XNdPYID/iw9L9l7h/K4wd8fOUjnocFEk",
        ),
        (
            "old secret",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "1ZcyApXlC9QQpVL6kIx89PBWexkac6AiQGCZg+XpPOM",
        ),
    ];

    #[test]
    fn signs_like_cookie_signature() {
        for (secret, id, sig) in VECTORS {
            let secrets = Secrets::new([secret]).unwrap();
            let id = SessionId::parse(id).unwrap();
            assert_eq!(secrets.sign(&id), format!("s:{id}.{sig}"));
            assert_eq!(secrets.unsign(&format!("s:{id}.{sig}")), Some((id, 0)));
        }
    }

    #[test]
    fn accepts_any_configured_secret_and_says_which() {
        let secrets = Secrets::new(["new secret", "old secret"]).unwrap();
        let (_, id, sig) = VECTORS[2];
        let (got, index) = secrets.unsign(&format!("s:{id}.{sig}")).unwrap();
        assert_eq!((got.as_str(), index), (id, 1));
    }

    #[test]
    fn rejects_tampering_and_garbage() {
        let secrets = Secrets::new(["keyboard cat"]).unwrap();
        let (_, id, sig) = VECTORS[0];
        let flipped = format!("s:{id}.{}", sig.replace('H', "h"));
        let other_id = format!("s:gxwMrCEq1F1ZXbF5fUKGyD7ewVI7DY1Q.{sig}");
        for bad in [
            flipped.as_str(),
            other_id.as_str(),
            &format!("{id}.{sig}"),
            &format!("s:{id}"),
            &format!("s:{id}.{sig}="),
            "s:",
            "",
            "s:.",
            &format!("s:a.b.{sig}"),
        ] {
            assert_eq!(secrets.unsign(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn refuses_empty_secrets() {
        assert_eq!(
            Secrets::new(Vec::<&str>::new()).err(),
            Some(SecretError::Missing)
        );
        assert_eq!(
            Secrets::new(["a", ""]).err(),
            Some(SecretError::Empty { index: 1 })
        );
    }
}
