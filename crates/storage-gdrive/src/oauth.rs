//! Google OAuth 2.0: the authorize URL, the code exchange and the refresh, with `reqwest`.
//!
//! Secrets travel only in form bodies, never in a URL (RFC 6749 §2.3.1), and no
//! `Debug` or error text here holds a token or the client secret.
//! Endpoints: <https://developers.google.com/identity/protocols/oauth2/web-server>.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::Digest as _;
use storage_core::{ConnectionReason, Result, RetryPolicy, Secret, StorageError};
use url::Url;

use crate::config::{GoogleApp, GoogleEndpoints};
use crate::error::transport;

/// The only scope this library asks for: files the app itself created.
pub const SCOPE_DRIVE_FILE: &str = "https://www.googleapis.com/auth/drive.file";

/// A PKCE verifier and its S256 challenge (RFC 7636).
#[derive(Clone)]
pub struct Pkce {
    verifier: Secret,
    challenge: String,
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("challenge", &self.challenge)
            .finish_non_exhaustive()
    }
}

impl Pkce {
    /// A fresh verifier of 64 random URL-safe characters from the OS generator.
    ///
    /// # Errors
    /// [`StorageError::Transport`] when the OS has no randomness to give.
    pub fn generate() -> Result<Self> {
        Ok(Self::from_verifier(random_token(48)?))
    }

    /// A PKCE pair from a verifier kept by the caller between the redirect and the exchange.
    pub fn from_verifier(verifier: impl Into<String>) -> Self {
        let verifier = verifier.into();
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        Self {
            verifier: Secret::new(verifier),
            challenge,
        }
    }

    /// The verifier, sent with the code exchange.
    pub fn verifier(&self) -> &Secret {
        &self.verifier
    }

    /// The S256 challenge, sent in the authorize URL.
    pub fn challenge(&self) -> &str {
        &self.challenge
    }
}

/// `n` random bytes from the OS, base64url without padding: for `state` and PKCE.
///
/// # Errors
/// [`StorageError::Transport`] when the OS has no randomness to give.
pub fn random_token(n: usize) -> Result<String> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| StorageError::Transport {
        message: format!("no randomness from the operating system: {e}"),
        source: None,
    })?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// The URL to send the user to.
///
/// It always asks for offline access with a consent prompt, so that Google
/// returns a refresh token every time, and carries `state` and a PKCE challenge.
///
/// ```
/// use storage_gdrive::{GoogleApp, GoogleEndpoints, oauth};
/// let pkce = oauth::Pkce::from_verifier("v".repeat(43));
/// let url = oauth::authorize_url(&GoogleEndpoints::production(), &GoogleApp::new("cid", "secret"),
///     "https://app.example/callback", "st4te", &pkce);
/// let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
/// assert_eq!(q["access_type"], "offline");
/// assert_eq!(q["prompt"], "consent");
/// assert_eq!(q["code_challenge_method"], "S256");
/// assert!(!url.as_str().contains("secret"));
/// ```
pub fn authorize_url(
    endpoints: &GoogleEndpoints,
    app: &GoogleApp,
    redirect_uri: &str,
    state: &str,
    pkce: &Pkce,
) -> Url {
    let mut url = endpoints.authorize.clone();
    url.query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPE_DRIVE_FILE)
        .append_pair("access_type", "offline")
        .append_pair("prompt", "consent")
        .append_pair("include_granted_scopes", "true")
        .append_pair("state", state)
        .append_pair("code_challenge", pkce.challenge())
        .append_pair("code_challenge_method", "S256");
    url
}

/// A token endpoint's answer.
#[derive(Clone)]
pub struct TokenGrant {
    /// The new access token.
    pub access_token: Secret,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// A refresh token, when the endpoint sent one (Google usually does not on refresh).
    pub refresh_token: Option<Secret>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &self.access_token)
            .field("expires_at", &self.expires_at)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Deserialize)]
struct RawGrant {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
}

/// Exchanges an authorization code for credential JSON in the shape
/// `storage-factory` reads (`"provider":"gdrive"`).
///
/// # Errors
/// [`StorageError::CloudConnection`] with `InvalidGrant` for a used or expired
/// code; [`StorageError::Provider`] for a refused client; `Transport` otherwise.
pub async fn exchange_code(
    http: &reqwest::Client,
    endpoints: &GoogleEndpoints,
    app: &GoogleApp,
    code: &str,
    redirect_uri: &str,
    pkce: &Pkce,
) -> Result<serde_json::Value> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose()),
        ("code_verifier", pkce.verifier().expose()),
    ];
    let grant = post_token(http, &endpoints.token, &form).await?;
    let refresh = grant.refresh_token.ok_or_else(|| StorageError::Provider {
        status: 200,
        code: Some("missingRefreshToken".into()),
        message: "google returned no refresh token; the authorize url must ask for offline access with consent".into(),
    })?;
    Ok(serde_json::json!({
        "provider": "gdrive",
        "access_token": grant.access_token.expose(),
        "refresh_token": refresh.expose(),
        "expiry": grant.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "token_uri": endpoints.token.as_str(),
        "client_id": app.client_id,
        "client_secret": app.client_secret.expose(),
    }))
}

/// Trades a refresh token for a new access token, retrying throttling and
/// server errors by `retry`.
///
/// # Errors
/// [`StorageError::CloudConnection`] with [`ConnectionReason::InvalidGrant`]
/// when the grant is revoked or expired (never retried); `Provider` with code
/// `invalid_client` when the app's credentials are wrong.
pub async fn refresh(
    http: &reqwest::Client,
    token_uri: &Url,
    app: &GoogleApp,
    refresh_token: &Secret,
    retry: RetryPolicy,
) -> Result<TokenGrant> {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose()),
    ];
    retry.run(|| post_token(http, token_uri, &form)).await
}

async fn post_token(http: &reqwest::Client, url: &Url, form: &[(&str, &str)]) -> Result<TokenGrant> {
    let resp = http
        .post(url.clone())
        .form(form)
        .send()
        .await
        .map_err(|e| transport("the token endpoint is unreachable", e))?;
    let status = resp.status().as_u16();
    let retry_after = crate::error::retry_after(resp.headers());
    let body = resp
        .bytes()
        .await
        .map_err(|e| transport("failed to read the token endpoint's answer", e))?;
    if (200..300).contains(&status) {
        let raw: RawGrant = serde_json::from_slice(&body).map_err(|_| StorageError::Provider {
            status,
            code: Some("malformedResponse".into()),
            message: "the token endpoint's answer is not a token grant".into(),
        })?;
        let lifetime = Duration::from_secs(raw.expires_in.unwrap_or(3600));
        let expires_at = Utc::now() + chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(1));
        return Ok(TokenGrant {
            access_token: Secret::new(raw.access_token),
            expires_at,
            refresh_token: raw.refresh_token.map(Secret::new),
        });
    }
    Err(token_error(status, &body, retry_after))
}

/// Maps a token endpoint refusal (RFC 6749 §5.2).
fn token_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> StorageError {
    let code = serde_json::from_slice::<OAuthError>(body).ok().map(|e| e.error);
    match code.as_deref() {
        Some("invalid_grant") => StorageError::CloudConnection {
            reason: ConnectionReason::InvalidGrant,
        },
        _ if status == 429 => StorageError::RateLimited { retry_after },
        Some(c @ ("invalid_client" | "unauthorized_client")) => StorageError::Provider {
            status,
            code: Some(c.to_owned()),
            message: "the oauth client id or secret was refused; check the app configuration".into(),
        },
        _ => StorageError::Provider {
            status,
            code,
            message: "the token endpoint refused the request".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_appendix_b() {
        let p = Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert_eq!(p.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert!(!format!("{p:?}").contains("dBjft"));
    }

    #[test]
    fn token_errors() {
        let e = token_error(
            400,
            br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
            None,
        );
        assert_eq!(e.connection_reason(), Some(ConnectionReason::InvalidGrant));
        assert!(!e.is_retryable());
        let e = token_error(401, br#"{"error":"invalid_client"}"#, None);
        assert!(
            matches!(e, StorageError::Provider { status: 401, ref code, .. } if code.as_deref() == Some("invalid_client"))
        );
        assert!(token_error(503, b"oops", None).is_retryable());
        assert!(
            token_error(429, b"", Some(Duration::from_secs(2)))
                .retry_after()
                .is_some()
        );
    }

    #[test]
    fn random_tokens_differ() {
        assert_ne!(random_token(16).unwrap(), random_token(16).unwrap());
    }
}
