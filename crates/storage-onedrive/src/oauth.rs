//! Microsoft identity platform (v2.0): the authorize URL, the code exchange and
//! the refresh, with `reqwest`.
//!
//! graph-oauth cannot be used: its token host is one of four fixed Microsoft
//! clouds (no test endpoint), it refreshes before every Graph call, and it drops
//! the refresh token Microsoft rotates on every refresh. Here the endpoint comes
//! from configuration and the rotated token is handed back to the caller.
//! Protocol: <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow>.

use chrono::Utc;
use storage_core::oauth::request_token;
pub use storage_core::oauth::{Pkce, TokenGrant, random_token};
use storage_core::{Result, RetryPolicy, Secret};
use url::Url;

use crate::config::{MicrosoftApp, MicrosoftEndpoints};

/// The scopes this library asks for. `offline_access` is what makes the
/// platform issue a refresh token at all.
pub const SCOPES: &str = "offline_access Files.ReadWrite";

/// The URL to send the user to, with `state` and a PKCE challenge.
///
/// ```
/// use storage_onedrive::{MicrosoftEndpoints, MicrosoftApp, oauth};
/// let pkce = oauth::Pkce::from_verifier("v".repeat(43));
/// let app = MicrosoftApp::new("cid", "secret").with_tenant("consumers");
/// let url = oauth::authorize_url(&MicrosoftEndpoints::production(), &app, "https://app.example/cb", "st", &pkce)?;
/// assert!(url.as_str().starts_with("https://login.microsoftonline.com/consumers/oauth2/v2.0/authorize?"));
/// let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
/// assert!(q["scope"].split(' ').any(|s| s == "offline_access"));
/// assert!(q["scope"].split(' ').any(|s| s == "Files.ReadWrite"));
/// assert!(!url.as_str().contains("secret"));
/// # Ok::<(), storage_core::StorageError>(())
/// ```
///
/// # Errors
/// [`InvalidInput`](storage_core::StorageError::InvalidInput) for an invalid tenant.
pub fn authorize_url(
    endpoints: &MicrosoftEndpoints,
    app: &MicrosoftApp,
    redirect_uri: &str,
    state: &str,
    pkce: &Pkce,
) -> Result<Url> {
    let mut url = endpoints.authorize(&app.tenant)?;
    url.query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_mode", "query")
        .append_pair("scope", SCOPES)
        .append_pair("state", state)
        .append_pair("code_challenge", pkce.challenge())
        .append_pair("code_challenge_method", "S256");
    Ok(url)
}

fn with_secret<'a>(mut form: Vec<(&'a str, &'a str)>, app: &'a MicrosoftApp) -> Vec<(&'a str, &'a str)> {
    // A public client must not send a secret (AADSTS700025).
    if let Some(secret) = &app.client_secret {
        form.push(("client_secret", secret.expose()));
    }
    form
}

/// Exchanges an authorization code for credential JSON in the shape
/// `storage-factory` reads (`"provider":"onedrive"`).
///
/// # Errors
/// `CloudConnection` with `InvalidGrant` for a used or expired code; `Provider`
/// for a refused client or an answer without a refresh token.
pub async fn exchange_code(
    http: &reqwest::Client,
    endpoints: &MicrosoftEndpoints,
    app: &MicrosoftApp,
    code: &str,
    redirect_uri: &str,
    pkce: &Pkce,
) -> Result<serde_json::Value> {
    exchange_code_with_scopes(http, endpoints, app, code, redirect_uri, pkce)
        .await
        .map(|(json, _)| json)
}

/// [`exchange_code`], with the scopes Microsoft granted: `scope` of the token
/// answer, the scopes the access token is valid for, which Microsoft may write
/// with the resource in front (`https://graph.microsoft.com/Files.ReadWrite`).
///
/// # Errors
/// As [`exchange_code`].
pub async fn exchange_code_with_scopes(
    http: &reqwest::Client,
    endpoints: &MicrosoftEndpoints,
    app: &MicrosoftApp,
    code: &str,
    redirect_uri: &str,
    pkce: &Pkce,
) -> Result<(serde_json::Value, Option<String>)> {
    let url = endpoints.token(&app.tenant)?;
    let form = with_secret(
        vec![
            ("client_id", app.client_id.as_str()),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("scope", SCOPES),
            ("code_verifier", pkce.verifier().expose()),
        ],
        app,
    );
    let grant = request_token(http, &url, &form).await?;
    let refresh = grant.refresh_token.ok_or_else(|| {
        storage_core::oauth::missing_refresh_token(
            "microsoft returned no refresh token; the scopes must include offline_access",
        )
    })?;
    let expires_at = Utc::now() + chrono::Duration::from_std(grant.expires_in).unwrap_or(chrono::Duration::hours(1));
    let json = serde_json::json!({
        "provider": "onedrive",
        "access_token": grant.access_token.expose(),
        "refresh_token": refresh.expose(),
        "expires_at": expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    Ok((json, grant.scope))
}

/// Trades a refresh token for a new access token, retrying throttling and
/// server errors by `retry`.
///
/// Microsoft returns a new refresh token on every refresh: it is in
/// [`TokenGrant::refresh_token`], and the caller must persist it.
///
/// # Errors
/// `CloudConnection` with `InvalidGrant` when the user must sign in again, never
/// retried: the grant is revoked or expired (AADSTS70000, 70008, 700082, 50173 …),
/// or Microsoft asks for an interactive sign-in (`interaction_required`:
/// multi-factor authentication, AADSTS50076 and 50079) or consent
/// (`consent_required`, AADSTS65001); see
/// [`REAUTH_AADSTS`](storage_core::oauth::REAUTH_AADSTS). `Provider` with code
/// `invalid_client` when the app's credentials are wrong.
pub async fn refresh(
    http: &reqwest::Client,
    endpoints: &MicrosoftEndpoints,
    app: &MicrosoftApp,
    refresh_token: &Secret,
    retry: RetryPolicy,
) -> Result<TokenGrant> {
    let url = endpoints.token(&app.tenant)?;
    let form = with_secret(
        vec![
            ("client_id", app.client_id.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("scope", SCOPES),
        ],
        app,
    );
    retry.run(|| request_token(http, &url, &form)).await
}
