//! Flash messages: one-shot notices kept in the session between a form's POST and the page
//! it redirects to.
//!
//! Why it is here: a form handler that answers with a redirect (POST-redirect-GET, so a
//! reload does not submit the form again) has no page of its own to say "Saved." on. It
//! pushes the notice into the session instead; the page it redirects to takes the notices
//! out and shows them, once. This is connect-flash's `req.flash()`, kept under one
//! reserved key, [`KEY`], as a JSON list of `{"level": …, "text": …}`.
//!
//! Pushing goes through [`Session::update`], so two requests that flash at once both
//! land. At most [`MAX_MESSAGES`] are kept (the oldest go first): a client that posts and
//! never reads cannot grow its session without bound. A stored value that is not such a
//! list (written by another app) is dropped, never an error on every page.
//!
//! ```
//! use tessera::flash::{self, Level};
//!
//! # async fn handlers(session: tessera::Session) -> Result<(), tessera::SessionError> {
//! // In the POST handler, before redirecting:
//! flash::push(&session, Level::Success, "Signed out of 2 other sessions.").await?;
//! // In the page it redirects to:
//! for message in flash::take(&session).await? {
//!     println!("[{}] {}", message.level, message.text);
//! }
//! # Ok(()) }
//! ```

use std::fmt;

use serde_json::{Map, Value};

use crate::{Session, SessionError};

/// The session key the messages are kept under.
pub const KEY: &str = "_flash";

/// The most messages kept at once; pushing more drops the oldest.
pub const MAX_MESSAGES: usize = 16;

/// How a message should look: a page usually maps it to a CSS class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Level {
    /// Neutral information.
    Info,
    /// An action succeeded.
    Success,
    /// Something the user should look at.
    Warning,
    /// An action failed.
    Error,
}

impl Level {
    /// The level's name in lowercase (`info`, `success`, `warning`, `error`), as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }

    /// The level named `name` (as [`as_str`](Self::as_str) writes it).
    pub fn from_name(name: &str) -> Option<Self> {
        [Level::Info, Level::Success, Level::Warning, Level::Error]
            .into_iter()
            .find(|level| level.as_str() == name)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One flash message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash {
    /// How it should look.
    pub level: Level,
    /// What it says, as plain text (escape it when putting it in HTML).
    pub text: String,
}

impl Flash {
    /// The stored form: `{"level": "info", "text": "…"}`.
    fn to_value(&self) -> Value {
        let mut object = Map::new();
        object.insert("level".into(), self.level.as_str().into());
        object.insert("text".into(), self.text.clone().into());
        Value::Object(object)
    }

    /// A message from its stored form.
    fn from_value(value: &Value) -> Option<Self> {
        Some(Flash {
            level: Level::from_name(value.get("level")?.as_str()?)?,
            text: value.get("text")?.as_str()?.to_owned(),
        })
    }
}

/// Adds a message for the next page that calls [`take`].
///
/// # Errors
/// The session's errors (store failures, a destroyed session,
/// [`SessionError::TooLarge`]).
pub async fn push(
    session: &Session,
    level: Level,
    text: impl Into<String>,
) -> Result<(), SessionError> {
    let message = Flash {
        level,
        text: text.into(),
    };
    session
        .update(KEY, move |old: Option<Value>| {
            let mut messages = old.map(messages).unwrap_or_default();
            messages.push(message.clone());
            let extra = messages.len().saturating_sub(MAX_MESSAGES);
            messages.drain(..extra);
            Value::Array(messages.iter().map(Flash::to_value).collect())
        })
        .await?;
    Ok(())
}

/// Removes and returns the messages pushed since the last call, oldest first; empty when
/// there are none. A session without messages is not modified (no store write).
///
/// # Errors
/// The session's errors (store failures, a destroyed session).
pub async fn take(session: &Session) -> Result<Vec<Flash>, SessionError> {
    Ok(session
        .remove_value(KEY)
        .await?
        .map(messages)
        .unwrap_or_default())
}

/// The messages in a stored value; none when it is not a list of messages.
fn messages(value: Value) -> Vec<Flash> {
    let parsed = match &value {
        Value::Array(items) => items.iter().map(Flash::from_value).collect(),
        _ => None,
    };
    parsed.unwrap_or_else(|| {
        tracing::warn!(
            key = KEY,
            "dropping a flash value that is not a list of messages"
        );
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_stored_as_level_and_text() {
        let stored = Value::Array(vec![Flash {
            level: Level::Warning,
            text: "Careful".into(),
        }
        .to_value()]);
        assert_eq!(
            stored,
            serde_json::json!([{"level": "warning", "text": "Careful"}])
        );
        assert_eq!(messages(stored)[0].level.to_string(), "warning");
    }

    #[test]
    fn a_foreign_value_reads_as_no_messages() {
        assert!(messages(serde_json::json!("hello")).is_empty());
        assert!(messages(serde_json::json!([{"level": "loud", "text": "x"}])).is_empty());
    }
}
