//! Token refresh per provider, on the provider crates' OAuth code.

#[cfg(any(feature = "gdrive", feature = "onedrive"))]
use chrono::Utc;
#[cfg(any(feature = "gdrive", feature = "onedrive"))]
use storage_core::ConnectionReason;
use storage_core::{Result, RetryPolicy, StorageError};

use crate::credentials::Credentials;

/// How a connection's token is refreshed. Built once per connection, so the
/// size difference between variants does not matter.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Refresher {
    /// Local and memory connections have no token.
    Nothing,
    #[cfg(feature = "gdrive")]
    Google {
        app: storage_gdrive::GoogleApp,
        token_uri: url::Url,
    },
    #[cfg(feature = "onedrive")]
    Microsoft {
        app: storage_onedrive::MicrosoftApp,
        endpoints: storage_onedrive::MicrosoftEndpoints,
    },
}

#[cfg(any(feature = "gdrive", feature = "onedrive"))]
fn expiry_from(lifetime: std::time::Duration) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(1))
}

/// A connection without a refresh token can only be fixed by the user.
#[cfg(any(feature = "gdrive", feature = "onedrive"))]
fn no_refresh_token() -> StorageError {
    StorageError::CloudConnection {
        reason: ConnectionReason::InvalidGrant,
    }
}

impl Refresher {
    /// New credentials for `creds`: a new access token and expiry, and the
    /// rotated refresh token when the provider sent one (the old one otherwise).
    #[cfg_attr(
        not(any(feature = "gdrive", feature = "onedrive")),
        allow(unused_variables, clippy::unused_async)
    )]
    pub async fn refresh(&self, http: &Http, retry: RetryPolicy, creds: &Credentials) -> Result<Credentials> {
        match (self, creds) {
            #[cfg(feature = "gdrive")]
            (Self::Google { app, token_uri }, Credentials::Gdrive(g)) => {
                let refresh_token = g.refresh_token.clone().ok_or_else(no_refresh_token)?;
                let grant = storage_gdrive::oauth::refresh(http, token_uri, app, &refresh_token, retry).await?;
                let mut next = g.clone();
                next.access_token = grant.access_token;
                next.expiry = Some(expiry_from(grant.expires_in));
                if let Some(rotated) = grant.refresh_token {
                    next.refresh_token = Some(rotated);
                }
                Ok(Credentials::Gdrive(next))
            }
            #[cfg(feature = "onedrive")]
            (Self::Microsoft { app, endpoints }, Credentials::Onedrive(o)) => {
                let refresh_token = o.refresh_token.clone().ok_or_else(no_refresh_token)?;
                let grant = storage_onedrive::oauth::refresh(http, endpoints, app, &refresh_token, retry).await?;
                let mut next = o.clone();
                next.access_token = grant.access_token;
                next.expires_at = Some(expiry_from(grant.expires_in));
                // Microsoft rotates the refresh token on every refresh: keep the new one.
                if let Some(rotated) = grant.refresh_token {
                    next.refresh_token = Some(rotated);
                }
                Ok(Credentials::Onedrive(next))
            }
            _ => Err(StorageError::unsupported(
                "refresh",
                "this connection has no token to refresh",
            )),
        }
    }
}

/// The HTTP client refreshes use.
#[cfg(any(feature = "gdrive", feature = "onedrive"))]
pub(crate) type Http = reqwest::Client;
/// No HTTP client without a cloud provider.
#[cfg(not(any(feature = "gdrive", feature = "onedrive")))]
#[derive(Debug, Clone, Default)]
pub(crate) struct Http;
