//! Endpoints and application settings.

use std::time::Duration;

use serde::Deserialize;
use storage_core::download::Parallel;
use storage_core::protocol::HttpVersion;
use storage_core::{Result, RetryPolicy, Secret, StorageError};
use url::Url;

/// The hosts graph-rs-sdk's `use_endpoint` accepts; it panics on any other.
pub(crate) const GRAPH_HOSTS: [&str; 6] = [
    "graph.microsoft.com",
    "graph.microsoft.us",
    "dod-graph.microsoft.us",
    "graph.microsoft.de",
    "microsoftgraph.chinacloudapi.cn",
    "canary.graph.microsoft.com",
];

/// Where Graph and the Microsoft identity platform live.
///
/// Production uses [`MicrosoftEndpoints::production`]; tests and the CLI point these
/// at `storage-emulator` (which needs the `emulator` feature).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MicrosoftEndpoints {
    /// Graph with its version, ending in `/`: `https://graph.microsoft.com/v1.0/`.
    pub graph: Url,
    /// The login base, ending in `/`: `https://login.microsoftonline.com/`.
    pub login: Url,
}

impl Default for MicrosoftEndpoints {
    fn default() -> Self {
        Self::production()
    }
}

impl MicrosoftEndpoints {
    /// Microsoft's production endpoints.
    pub fn production() -> Self {
        let parse = |s: &str| Url::parse(s).unwrap_or_else(|_| unreachable!("constant url {s}"));
        Self {
            graph: parse("https://graph.microsoft.com/v1.0/"),
            login: parse("https://login.microsoftonline.com/"),
        }
    }

    /// The token endpoint of `tenant`.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for a tenant that is not `common`,
    /// `consumers`, `organizations` or a tenant id or domain.
    pub fn token(&self, tenant: &str) -> Result<Url> {
        self.tenant_url(tenant, "token")
    }

    /// The authorize endpoint of `tenant`.
    ///
    /// # Errors
    /// As [`token`](Self::token).
    pub fn authorize(&self, tenant: &str) -> Result<Url> {
        self.tenant_url(tenant, "authorize")
    }

    fn tenant_url(&self, tenant: &str, leaf: &str) -> Result<Url> {
        let ok = !tenant.is_empty()
            && tenant.len() <= 128
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(StorageError::invalid_input(
                "tenant must be common, consumers, organizations or a tenant id",
            ));
        }
        self.login
            .join(&format!("{tenant}/oauth2/v2.0/{leaf}"))
            .map_err(|_| StorageError::invalid_input("login endpoint does not form a url"))
    }

    /// Checks both URLs: https (plain http only on a loopback host), no query,
    /// fragment or credentials, and a path ending in `/`.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] naming the URL at fault.
    pub fn validate(&self) -> Result<()> {
        for (what, url) in [("graph", &self.graph), ("login", &self.login)] {
            storage_core::endpoint::check_endpoint("microsoft", what, url)?;
            if !url.path().ends_with('/') {
                return Err(StorageError::invalid_input(format!(
                    "microsoft {what} endpoint must end in `/`"
                )));
            }
        }
        Ok(())
    }
}

pub(crate) use storage_core::endpoint::is_loopback;

/// A Microsoft identity platform application.
#[derive(Clone, PartialEq, Eq)]
pub struct MicrosoftApp {
    /// The application (client) id.
    pub client_id: String,
    /// The client secret of a confidential client; `None` for a public client,
    /// which must not send one.
    pub client_secret: Option<Secret>,
    /// `common`, `consumers`, `organizations` or a tenant id.
    pub tenant: String,
}

impl MicrosoftApp {
    /// A confidential client on the `common` tenant.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: Some(client_secret.into()),
            tenant: "common".into(),
        }
    }

    /// A public client (no secret) on the `common` tenant.
    pub fn public(client_id: impl Into<String>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: None,
            tenant: "common".into(),
        }
    }

    /// Sets the tenant.
    #[must_use]
    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }
}

impl std::fmt::Debug for MicrosoftApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MicrosoftApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("tenant", &self.tenant)
            .finish()
    }
}

/// 320 KiB: every fragment but the last is a multiple of this.
/// Source: <https://learn.microsoft.com/graph/api/driveitem-createuploadsession#upload-bytes-to-the-upload-session>.
pub const FRAGMENT_UNIT: usize = 320 * 1024;
/// Each fragment request must be smaller than 60 MiB (same source).
pub const MAX_FRAGMENT: usize = 60 * 1024 * 1024;

/// Tuning for a [`OneDriveBackend`](crate::OneDriveBackend).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OneDriveOptions {
    /// The first fragment: a multiple of 320 KiB within 320 KiB–60 MiB; 10 MiB
    /// by default. Fragments double while each takes under two seconds, up to
    /// `upload_memory_budget` and under Graph's 60 MiB.
    pub fragment_size: usize,
    /// The most body bytes one upload holds at once, 64 MiB by default: the
    /// largest fragment is this rounded down to 320 KiB, and under 60 MiB.
    pub upload_memory_budget: usize,
    /// Bodies in memory up to this size go up in one simple `PUT …:/content`
    /// instead of an upload session's two requests: 4 MB by default, the limit
    /// Graph's older documentation gave (it now allows 250 MB,
    /// <https://learn.microsoft.com/graph/api/driveitem-put-content>); 0 sends
    /// every non-empty body through a session.
    pub simple_upload_limit: u64,
    /// Retries of throttled and failed calls.
    pub retry: RetryPolicy,
    /// How many times a cut download resumes with a `Range` request (for a
    /// download in parts: each part).
    pub download_resumes: u32,
    /// How large objects are read: by default four ranged requests at once, of
    /// 8 MiB each, for objects of 32 MiB or more; `Parallel::single()` reads
    /// every object in one request.
    pub parallel_download: Parallel,
    /// What the API calls the backend sends itself speak (next links): HTTP/2
    /// where TLS negotiates it by default. graph-rs-sdk's client negotiates
    /// on its own; upload and download URLs always speak HTTP/1.1 (see
    /// [`storage_core::protocol`]).
    pub http: HttpVersion,
    /// Connect timeout of the HTTP clients this crate builds.
    pub connect_timeout: Duration,
    /// The idle timeout, 60 s by default: a request fails when nothing of it
    /// moves for this long (no byte of its body sent, no answer, no byte of
    /// the answer's body), however long it takes as a whole. A reqwest client
    /// given to the backend should not set `timeout` or `read_timeout`, which
    /// are deadlines for a fragment's body.
    pub read_timeout: Duration,
}

impl Default for OneDriveOptions {
    fn default() -> Self {
        Self {
            fragment_size: 32 * FRAGMENT_UNIT,
            upload_memory_budget: 64 * 1024 * 1024,
            simple_upload_limit: 4_000_000,
            retry: RetryPolicy::new(),
            download_resumes: 5,
            parallel_download: Parallel::default(),
            http: HttpVersion::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl OneDriveOptions {
    /// Sets the upload memory budget, lowering the first fragment to fit it
    /// (rounded down to 320 KiB).
    pub fn limit_upload_memory(&mut self, budget: usize) {
        self.upload_memory_budget = budget;
        self.fragment_size = self.fragment_size.min(budget / FRAGMENT_UNIT * FRAGMENT_UNIT);
    }

    /// Checks the options.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for a fragment size that is not a multiple
    /// of 320 KiB or lies outside 320 KiB–60 MiB, or a memory budget below it.
    pub fn validate(&self) -> Result<()> {
        let f = self.fragment_size;
        if !(FRAGMENT_UNIT..MAX_FRAGMENT).contains(&f) || !f.is_multiple_of(FRAGMENT_UNIT) {
            return Err(StorageError::invalid_input(
                "fragment_size must be a multiple of 320 KiB, at least 320 KiB and under 60 MiB",
            ));
        }
        if self.upload_memory_budget < f {
            return Err(StorageError::invalid_input(
                "upload_memory_budget must hold at least one fragment_size",
            ));
        }
        if self.simple_upload_limit > 250_000_000 {
            return Err(StorageError::invalid_input(
                "simple_upload_limit must not exceed graph's 250 MB",
            ));
        }
        self.parallel_download.validate()
    }

    /// The largest fragment: the budget, rounded down to 320 KiB, under 60 MiB.
    pub(crate) fn max_fragment(&self) -> usize {
        let under_limit = (MAX_FRAGMENT - 1) / FRAGMENT_UNIT * FRAGMENT_UNIT;
        self.upload_memory_budget.min(under_limit).max(self.fragment_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragment_sizes_are_checked() {
        let mut o = OneDriveOptions::default();
        o.validate().unwrap();
        assert_eq!(o.fragment_size, 10 * 1024 * 1024);
        for bad in [0, FRAGMENT_UNIT - 1, FRAGMENT_UNIT + 1, 163_840, 192 * FRAGMENT_UNIT] {
            o.fragment_size = bad;
            assert!(o.validate().is_err(), "{bad}");
        }
        o.fragment_size = FRAGMENT_UNIT;
        o.validate().unwrap();
        // The budget caps the largest fragment, which stays under 60 MiB.
        assert_eq!(o.max_fragment(), 191 * FRAGMENT_UNIT);
        o.upload_memory_budget = 20 * 1024 * 1024;
        assert_eq!(o.max_fragment(), 20 * 1024 * 1024);
        o.upload_memory_budget = FRAGMENT_UNIT - 1;
        assert!(o.validate().is_err(), "a budget below one fragment");
        let mut small = OneDriveOptions::default();
        small.limit_upload_memory(5 * 1024 * 1024);
        assert_eq!(
            small.fragment_size,
            16 * FRAGMENT_UNIT,
            "the first fragment fits the budget"
        );
        small.validate().unwrap();
    }

    #[test]
    fn tenants_and_endpoints() {
        let e = MicrosoftEndpoints::production();
        e.validate().unwrap();
        assert_eq!(
            e.token("consumers").unwrap().as_str(),
            "https://login.microsoftonline.com/consumers/oauth2/v2.0/token"
        );
        assert!(e.token("../x").is_err());
        assert!(e.token("a/b").is_err());
        let bad = MicrosoftEndpoints {
            graph: Url::parse("http://graph.example.com/v1.0/").unwrap(),
            login: e.login.clone(),
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn app_debug_hides_the_secret() {
        assert!(!format!("{:?}", MicrosoftApp::new("id", "s3cr3t")).contains("s3cr3t"));
    }
}
