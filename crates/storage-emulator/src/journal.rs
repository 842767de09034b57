//! The request journal: every request the emulator received, in arrival order.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

pub use crate::origin::Origin;
use crate::origin::Provider;

/// One recorded request.
///
/// Header values are kept verbatim, tokens included, so tests can check where a token went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position in arrival order, starting at 0.
    pub seq: u64,
    /// Identifier of the TCP connection the request came on (unique per emulator).
    pub connection: u64,
    /// The HTTP version it came in: `HTTP/1.1`, or `HTTP/2.0` on a connection
    /// that spoke h2c.
    #[serde(default)]
    pub version: String,
    /// The listener the request arrived on.
    pub origin: Origin,
    /// The provider whose endpoint the path belongs to, if any.
    pub provider: Option<Provider>,
    /// HTTP method, upper case.
    pub method: String,
    /// The path as sent (still percent-encoded).
    pub path: String,
    /// The raw query string without the `?`, if the request had one (possibly empty).
    pub query: Option<String>,
    /// Request headers in order, names lower case.
    pub headers: Vec<(String, String)>,
    /// Size of the request body in bytes.
    pub body_len: u64,
    /// When the request arrived.
    pub at: DateTime<Utc>,
}

impl JournalEntry {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The bearer token of the `Authorization` header, if any.
    pub fn bearer_token(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
    }

    /// The form-decoded value of query parameter `key` (keys are decoded too).
    pub fn query_param(&self, key: &str) -> Option<String> {
        let query = self.query.as_deref()?;
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }
}

/// A snapshot of the journal, with filtering helpers.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    entries: Vec<JournalEntry>,
}

impl Journal {
    /// All recorded requests, in arrival order.
    pub fn entries(&self) -> &[JournalEntry] {
        &self.entries
    }

    /// Number of recorded requests.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The requests for which `pred` holds.
    pub fn filter(&self, pred: impl Fn(&JournalEntry) -> bool) -> Vec<&JournalEntry> {
        self.entries.iter().filter(|e| pred(e)).collect()
    }

    /// The requests with this method whose path starts with `prefix`.
    pub fn requests(&self, method: &str, prefix: &str) -> Vec<&JournalEntry> {
        self.filter(|e| e.method.eq_ignore_ascii_case(method) && e.path.starts_with(prefix))
    }

    /// The requests to one provider.
    pub fn for_provider(&self, provider: Provider) -> Vec<&JournalEntry> {
        self.filter(|e| e.provider == Some(provider))
    }

    /// The requests that arrived on one listener.
    pub fn for_origin(&self, origin: Origin) -> Vec<&JournalEntry> {
        self.filter(|e| e.origin == origin)
    }

    /// The requests that carried `token` as their bearer token.
    pub fn with_bearer(&self, token: &str) -> Vec<&JournalEntry> {
        self.filter(|e| e.bearer_token() == Some(token))
    }

    /// The requests that carried an `Authorization` header of any kind.
    pub fn with_authorization(&self) -> Vec<&JournalEntry> {
        self.filter(|e| e.header("authorization").is_some())
    }

    /// The token requests of both providers: Google's `POST /token` and
    /// Microsoft's `POST /{tenant}/oauth2/v2.0/token`.
    pub fn token_requests(&self) -> Vec<&JournalEntry> {
        self.filter(|e| e.method == "POST" && (e.path == "/token" || e.path.ends_with("/oauth2/v2.0/token")))
    }

    /// How many distinct TCP connections the recorded requests came on.
    pub fn connection_count(&self) -> usize {
        self.entries.iter().map(|e| e.connection).collect::<BTreeSet<_>>().len()
    }
}

/// The live, shared journal.
#[derive(Debug, Default)]
pub(crate) struct JournalLog {
    entries: Mutex<Vec<JournalEntry>>,
}

impl JournalLog {
    /// Appends an entry, assigning its sequence number.
    pub(crate) fn record(&self, mut entry: JournalEntry) {
        let mut entries = self.entries.lock();
        entry.seq = entries.len() as u64;
        entries.push(entry);
    }

    pub(crate) fn snapshot(&self) -> Journal {
        Journal {
            entries: self.entries.lock().clone(),
        }
    }

    pub(crate) fn clear(&self) {
        self.entries.lock().clear();
    }
}
