//! Endpoints and application settings.

use std::time::Duration;

use serde::Deserialize;
use storage_core::download::Parallel;
use storage_core::protocol::HttpVersion;
use storage_core::{Result, RetryPolicy, Secret, StorageError};
use url::Url;

/// Where the Drive API, the upload paths and Google's OAuth endpoints live.
///
/// Tests and the CLI point these at `storage-emulator`; production code uses
/// [`GoogleEndpoints::production`]. Plain `http` is refused except on a loopback
/// host, so that a token never crosses a network in clear text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GoogleEndpoints {
    /// The API root, ending in `/`: the Drive API is `{root}drive/v3/`, uploads
    /// `{root}upload/drive/v3/files`.
    pub root: Url,
    /// The OAuth token endpoint.
    pub token: Url,
    /// The OAuth authorize endpoint.
    pub authorize: Url,
    /// The OAuth token revocation endpoint, production
    /// `https://oauth2.googleapis.com/revoke`. Endpoints JSON written before it
    /// existed parses without it; see [`revoke_url`](Self::revoke_url).
    #[serde(default)]
    pub revoke: Option<Url>,
}

impl Default for GoogleEndpoints {
    fn default() -> Self {
        Self::production()
    }
}

impl GoogleEndpoints {
    /// Google's production endpoints.
    pub fn production() -> Self {
        let parse = |s: &str| Url::parse(s).unwrap_or_else(|_| unreachable!("constant url {s}"));
        Self {
            root: parse("https://www.googleapis.com/"),
            token: parse("https://oauth2.googleapis.com/token"),
            authorize: parse("https://accounts.google.com/o/oauth2/v2/auth"),
            revoke: Some(parse("https://oauth2.googleapis.com/revoke")),
        }
    }

    /// Checks and builds a set of endpoints.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] when a URL is not `https` (or `http` on a
    /// loopback host), carries a query or fragment, or the root does not end in `/`.
    pub fn new(root: Url, token: Url, authorize: Url) -> Result<Self> {
        let e = Self {
            root,
            token,
            authorize,
            revoke: None,
        };
        e.validate()?;
        Ok(e)
    }

    /// Checks every URL by the rules of [`new`](Self::new).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn validate(&self) -> Result<()> {
        check_url("root", &self.root)?;
        check_url("token", &self.token)?;
        check_url("authorize", &self.authorize)?;
        if let Some(revoke) = &self.revoke {
            check_url("revoke", revoke)?;
        }
        if !self.root.path().ends_with('/') {
            return Err(StorageError::invalid_input("google endpoint root must end in `/`"));
        }
        Ok(())
    }

    /// Sets the token revocation endpoint.
    ///
    /// # Errors
    /// As [`new`](Self::new), for the URL given.
    pub fn with_revoke(mut self, revoke: Url) -> Result<Self> {
        check_url("revoke", &revoke)?;
        self.revoke = Some(revoke);
        Ok(self)
    }

    /// The revocation endpoint: [`revoke`](Self::revoke) when set, otherwise the
    /// token endpoint's sibling `revoke` (`…/token` → `…/revoke`), which is where
    /// both Google and the emulator serve it.
    pub fn revoke_url(&self) -> Url {
        self.revoke
            .clone()
            .unwrap_or_else(|| self.token.join("revoke").unwrap_or_else(|_| self.token.clone()))
    }

    /// `{root}drive/v3/`.
    pub(crate) fn api_base(&self) -> String {
        format!("{}drive/v3/", self.root)
    }

    /// `{root}upload/drive/v3/files`.
    pub(crate) fn upload_files(&self) -> String {
        format!("{}upload/drive/v3/files", self.root)
    }
}

/// Refuses URLs that would send a secret in clear text or carry surprises.
pub(crate) fn check_url(what: &str, url: &Url) -> Result<()> {
    storage_core::endpoint::check_endpoint("google", what, url)
}

/// A Google OAuth client: its id and secret.
#[derive(Clone, PartialEq, Eq)]
pub struct GoogleApp {
    /// The OAuth client id.
    pub client_id: String,
    /// The OAuth client secret; never printed.
    pub client_secret: Secret,
}

impl GoogleApp {
    /// An OAuth client.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<Secret>) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
        }
    }
}

impl std::fmt::Debug for GoogleApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleApp")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .finish()
    }
}

/// 256 KiB: Drive's resumable chunks are multiples of this, except the last.
/// Source: <https://developers.google.com/drive/api/guides/manage-uploads#resumable>.
pub const CHUNK_UNIT: usize = 256 * 1024;

/// Tuning for a [`GoogleDriveBackend`](crate::GoogleDriveBackend).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DriveOptions {
    /// The folder under which per-user folders are made: a folder id, or `root`.
    pub parent_folder: String,
    /// The first resumable chunk: a multiple of 256 KiB, 8 MiB by default.
    /// Chunks double while each takes under two seconds, up to
    /// `upload_memory_budget`.
    pub chunk_size: usize,
    /// The most body bytes one upload holds at once, 64 MiB by default: the
    /// largest chunk (rounded down to 256 KiB), so that a fast link is used
    /// with few round trips and a caller with many uploads in flight can cap
    /// their memory.
    pub upload_memory_budget: usize,
    /// Bodies up to this size go in one multipart request: 5 MiB by default.
    pub multipart_limit: usize,
    /// Retries of throttled and failed calls.
    pub retry: RetryPolicy,
    /// How many times a cut download resumes with a `Range` request (for a
    /// download in parts: each part).
    pub download_resumes: u32,
    /// How large objects are read: by default four ranged requests at once, of
    /// 8 MiB each, for objects of 32 MiB or more; `Parallel::single()` reads
    /// every object in one request.
    pub parallel_download: Parallel,
    /// What google-drive3's API calls speak (the pool's connections): HTTP/2
    /// where TLS negotiates it by default. Everything sent with reqwest
    /// (transfers, session starts, folder creation) speaks HTTP/1.1 (see
    /// [`storage_core::protocol`]).
    pub http: HttpVersion,
    /// Connect timeout of the HTTP clients this crate builds.
    pub connect_timeout: Duration,
    /// The idle timeout, 60 s by default: a request fails when nothing of it
    /// moves for this long (no byte of its body sent, no answer, no byte of
    /// the answer's body), however long it takes as a whole. A reqwest client
    /// given to the backend should not set `timeout` or `read_timeout`, which
    /// are deadlines for an upload's body.
    pub read_timeout: Duration,
}

impl Default for DriveOptions {
    fn default() -> Self {
        Self {
            parent_folder: "root".into(),
            chunk_size: 32 * CHUNK_UNIT,
            upload_memory_budget: 64 * 1024 * 1024,
            multipart_limit: 5 * 1024 * 1024,
            retry: RetryPolicy::new(),
            download_resumes: 5,
            parallel_download: Parallel::default(),
            http: HttpVersion::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
        }
    }
}

impl DriveOptions {
    /// Sets the upload memory budget, lowering the first chunk to fit it
    /// (rounded down to 256 KiB).
    pub fn limit_upload_memory(&mut self, budget: usize) {
        self.upload_memory_budget = budget;
        self.chunk_size = self.chunk_size.min(budget / CHUNK_UNIT * CHUNK_UNIT);
    }

    /// Checks the options.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for a chunk size that is zero or not a
    /// multiple of 256 KiB, a memory budget below the chunk size, or a parent
    /// folder id with characters outside `[A-Za-z0-9_-]`.
    pub fn validate(&self) -> Result<()> {
        if self.chunk_size == 0 || !self.chunk_size.is_multiple_of(CHUNK_UNIT) {
            return Err(StorageError::invalid_input(
                "chunk_size must be a positive multiple of 256 KiB",
            ));
        }
        if self.upload_memory_budget < self.chunk_size {
            return Err(StorageError::invalid_input(
                "upload_memory_budget must hold at least one chunk_size",
            ));
        }
        self.parallel_download.validate()?;
        check_file_id(&self.parent_folder)
            .map_err(|_| StorageError::invalid_input("parent_folder must be a drive folder id or `root`"))
    }
}

/// A Drive file id as the API uses it in paths.
///
/// google-drive3 puts the id into the URL path unescaped, so only ids of
/// `[A-Za-z0-9_-]` (what Drive issues) are let through.
pub(crate) fn check_file_id(id: &str) -> Result<()> {
    let ok = (1..=256).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(
            "a drive key is a file id of letters, digits, `_` and `-`",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_ids_are_checked() {
        assert!(check_file_id("1AbC-_x9").is_ok());
        assert!(check_file_id("root").is_ok());
        for bad in ["", "a/b", "a?b", "a b", "x'", "..", &"a".repeat(257)] {
            assert!(check_file_id(bad).is_err(), "{bad}");
        }
    }

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn production_is_valid_and_http_only_on_loopback() {
        GoogleEndpoints::production().validate().unwrap();
        assert!(
            GoogleEndpoints::new(
                u("http://127.0.0.1:9/"),
                u("http://localhost:9/t"),
                u("http://[::1]:9/a")
            )
            .is_ok()
        );
        assert!(GoogleEndpoints::new(u("http://example.com/"), u("https://x/t"), u("https://x/a")).is_err());
        assert!(GoogleEndpoints::new(u("https://x/api"), u("https://x/t"), u("https://x/a")).is_err());
        assert!(GoogleEndpoints::new(u("https://x/"), u("https://x/t?x=1"), u("https://x/a")).is_err());
    }

    #[test]
    fn app_debug_hides_the_secret() {
        let app = GoogleApp::new("id-1", "very-secret");
        assert!(!format!("{app:?}").contains("very-secret"));
    }

    #[test]
    fn options_check_the_chunk_size() {
        let mut o = DriveOptions::default();
        o.validate().unwrap();
        o.chunk_size = CHUNK_UNIT + 1;
        assert!(o.validate().is_err());
        o.chunk_size = CHUNK_UNIT;
        o.parent_folder = "a' or '1".into();
        assert!(o.validate().is_err());
        let mut small = DriveOptions::default();
        small.limit_upload_memory(5 * 1024 * 1024 + 1);
        assert_eq!(small.chunk_size, 20 * CHUNK_UNIT, "the first chunk fits the budget");
        small.validate().unwrap();
        small.upload_memory_budget = CHUNK_UNIT;
        assert!(small.validate().is_err(), "a budget below the chunk size");
    }
}
