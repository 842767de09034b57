//! Google OAuth 2.0: the authorize URL, the code exchange and the refresh.
//!
//! Written with `reqwest` on the shared RFC 6749 helpers of `storage-core`,
//! against an endpoint that comes from configuration (the stock auth crates
//! hard-code Google's URL or swallow `invalid_grant`).
//! Endpoints: <https://developers.google.com/identity/protocols/oauth2/web-server>.

use std::time::Duration;

use chrono::Utc;
pub use storage_core::oauth::{Pkce, TokenGrant, random_token};
use storage_core::oauth::{post_form, request_token};
use storage_core::{Result, RetryPolicy, Secret, StorageError};
use url::Url;

use crate::config::{GoogleApp, GoogleEndpoints};

/// The only scope this library asks for: files the app itself created.
pub const SCOPE_DRIVE_FILE: &str = "https://www.googleapis.com/auth/drive.file";

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

/// Exchanges an authorization code for credential JSON in the shape
/// `storage-factory` reads (`"provider":"gdrive"`).
///
/// # Errors
/// [`StorageError::CloudConnection`] with `InvalidGrant` for a used or expired
/// code; [`StorageError::Provider`] for a refused client or an answer without a
/// refresh token; `Transport` when the endpoint is unreachable.
pub async fn exchange_code(
    http: &reqwest::Client,
    endpoints: &GoogleEndpoints,
    app: &GoogleApp,
    code: &str,
    redirect_uri: &str,
    pkce: &Pkce,
) -> Result<serde_json::Value> {
    exchange_code_with_scopes(http, endpoints, app, code, redirect_uri, pkce)
        .await
        .map(|(json, _)| json)
}

/// [`exchange_code`], with the scopes Google granted (`scope` of the token
/// answer), which can be fewer than were asked for: Google's consent page lets
/// the user untick them.
///
/// # Errors
/// As [`exchange_code`].
pub async fn exchange_code_with_scopes(
    http: &reqwest::Client,
    endpoints: &GoogleEndpoints,
    app: &GoogleApp,
    code: &str,
    redirect_uri: &str,
    pkce: &Pkce,
) -> Result<(serde_json::Value, Option<String>)> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose()),
        ("code_verifier", pkce.verifier().expose()),
    ];
    let grant = request_token(http, &endpoints.token, &form).await?;
    let refresh = grant.refresh_token.ok_or_else(|| {
        storage_core::oauth::missing_refresh_token(
            "google returned no refresh token; the authorize url must ask for offline access with consent",
        )
    })?;
    let expiry = Utc::now() + chrono::Duration::from_std(grant.expires_in).unwrap_or(chrono::Duration::hours(1));
    let json = serde_json::json!({
        "provider": "gdrive",
        "access_token": grant.access_token.expose(),
        "refresh_token": refresh.expose(),
        "expiry": expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "token_uri": endpoints.token.as_str(),
        "client_id": app.client_id,
        "client_secret": app.client_secret.expose(),
    });
    Ok((json, grant.scope))
}

/// Trades a refresh token for a new access token at `token_uri`, retrying
/// throttling and server errors by `retry`.
///
/// # Errors
/// [`StorageError::CloudConnection`] with `InvalidGrant` when the grant is
/// revoked or expired (never retried); `Provider` with code `invalid_client`
/// when the app's credentials are wrong.
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
    retry.run(|| request_token(http, token_uri, &form)).await
}

/// What [`revoke`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// Google revoked the grant: its refresh token and access tokens are dead.
    Revoked,
    /// Google no longer knew the token (revoked or expired already): nothing is
    /// left to revoke.
    AlreadyInvalid,
}

/// Revokes the grant behind `token` (a refresh token revokes the whole grant,
/// access tokens included) at the endpoints' [`revoke_url`](GoogleEndpoints::revoke_url),
/// with the token in the form body, retrying throttling and server errors by `retry`.
/// Repeating it is safe: a token already revoked is [`Revocation::AlreadyInvalid`].
///
/// # Errors
/// `RateLimited` or `Provider` (5xx) once retries are spent, `Provider` for any
/// other refusal, `Transport` when the endpoint is unreachable.
pub async fn revoke(
    http: &reqwest::Client,
    endpoints: &GoogleEndpoints,
    token: &Secret,
    retry: RetryPolicy,
) -> Result<Revocation> {
    let url = endpoints.revoke_url();
    retry
        .run(|| async {
            let answer = post_form(http, &url, &[("token", token.expose())]).await?;
            revoke_answer(answer.status, &answer.body, answer.retry_after)
        })
        .await
}

/// Maps the revocation endpoint's answer: 200 revoked; 400 `invalid_token` means
/// the token was already revoked or expired, which is what revocation wants;
/// anything else as a token endpoint refusal (429 throttled, 5xx retryable).
/// Source: <https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke>.
fn revoke_answer(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
) -> std::result::Result<Revocation, StorageError> {
    if (200..300).contains(&status) {
        return Ok(Revocation::Revoked);
    }
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    if status == 400 && code.as_deref() == Some("invalid_token") {
        return Ok(Revocation::AlreadyInvalid);
    }
    Err(storage_core::oauth::token_error(status, body, retry_after))
}
