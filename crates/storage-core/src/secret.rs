//! Secrets that never print, and the shared access-token cell backends read.

use std::fmt;
use std::sync::{Arc, RwLock};

/// A secret string: a token or a client secret.
///
/// `Debug` and `Display` print `[redacted]`; only [`expose`](Self::expose)
/// gives the value, so that every use is visible in review.
///
/// ```
/// use storage_core::Secret;
/// let s = Secret::new("ya29.token");
/// assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
/// assert_eq!(s.expose(), "ya29.token");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Send it only where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// The access token a backend sends, in a cell that the managed layer swaps
/// after a refresh. Clones share the cell.
///
/// A backend reads the cell on every request and never writes it.
///
/// ```
/// use storage_core::TokenCell;
/// let cell = TokenCell::new("old");
/// let backend_view = cell.clone();
/// cell.set("new");
/// assert_eq!(backend_view.get().unwrap().expose(), "new");
/// assert_eq!(format!("{cell:?}"), "TokenCell([redacted])");
/// ```
#[derive(Clone, Default)]
pub struct TokenCell(Arc<RwLock<Option<Secret>>>);

impl TokenCell {
    /// A cell holding `token`.
    pub fn new(token: impl Into<Secret>) -> Self {
        Self(Arc::new(RwLock::new(Some(token.into()))))
    }

    /// An empty cell.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The current token, if any.
    pub fn get(&self) -> Option<Secret> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Replaces the token.
    pub fn set(&self, token: impl Into<Secret>) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(token.into());
    }
}

impl fmt::Debug for TokenCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenCell([redacted])")
    }
}
