//! OAuth 2.0 pieces both providers share (feature `oauth`): PKCE, random
//! `state` values, and the token request with its error mapping.
//!
//! Secrets travel only in form bodies, never in a URL (RFC 6749 §2.3.1), and no
//! `Debug` or error text here holds a token or a client secret.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::Digest as _;
use url::Url;

use crate::error::{ConnectionReason, Result, StorageError};
use crate::secret::Secret;

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
    ///
    /// ```
    /// // RFC 7636, appendix B.
    /// let p = storage_core::oauth::Pkce::from_verifier("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
    /// assert_eq!(p.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    /// ```
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

/// A token endpoint's answer.
#[derive(Clone)]
pub struct TokenGrant {
    /// The new access token.
    pub access_token: Secret,
    /// How long it lives from now.
    pub expires_in: Duration,
    /// A refresh token, when the endpoint sent one: Microsoft rotates it on
    /// every refresh, Google usually sends none on refresh.
    pub refresh_token: Option<Secret>,
    /// The scopes granted, space-separated (RFC 6749 §5.1), when the endpoint
    /// said: Google lets a user untick scopes on its consent page.
    pub scope: Option<String>,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &self.access_token)
            .field("expires_in", &self.expires_in)
            .field("refresh_token", &self.refresh_token)
            .finish()
    }
}

#[derive(Deserialize)]
struct RawGrant {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_codes: Vec<u64>,
}

/// What an OAuth endpoint answered to a form `POST`.
#[derive(Debug)]
pub struct FormAnswer {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After`, when the endpoint sent one.
    pub retry_after: Option<Duration>,
    /// The whole body (token endpoints answer with small JSON).
    pub body: bytes::Bytes,
}

/// `POST`s `form` (`application/x-www-form-urlencoded`) to an OAuth endpoint
/// (token or revocation) and reads the whole answer, whatever its status.
///
/// # Errors
/// `Transport` when the endpoint is unreachable or the answer is cut.
pub async fn post_form(http: &reqwest::Client, url: &Url, form: &[(&str, &str)]) -> Result<FormAnswer> {
    let resp = http
        .post(url.clone())
        .form(form)
        .send()
        .await
        .map_err(|e| crate::answer::transport("the oauth endpoint is unreachable", e))?;
    let status = resp.status().as_u16();
    let retry_after = crate::answer::retry_after(resp.headers());
    let body = resp
        .bytes()
        .await
        .map_err(|e| crate::answer::transport("failed to read the oauth endpoint's answer", e))?;
    Ok(FormAnswer {
        status,
        retry_after,
        body,
    })
}

/// POSTs `form` to a token endpoint and reads the grant.
///
/// # Errors
/// - [`StorageError::CloudConnection`] with [`ConnectionReason::InvalidGrant`]
///   for `invalid_grant`: the refresh token is revoked or expired, or the code is used;
/// - [`StorageError::Provider`] with code `invalid_client` or
///   `unauthorized_client` when the app's credentials are wrong (configuration,
///   not re-authorisation);
/// - [`StorageError::RateLimited`] for 429, `Provider` for 5xx (both retryable),
///   [`StorageError::Transport`] when the endpoint is unreachable.
pub async fn request_token(http: &reqwest::Client, url: &Url, form: &[(&str, &str)]) -> Result<TokenGrant> {
    let FormAnswer {
        status,
        retry_after,
        body,
    } = post_form(http, url, form).await?;
    if !(200..300).contains(&status) {
        return Err(token_error(status, &body, retry_after));
    }
    let raw: RawGrant = serde_json::from_slice(&body).map_err(|_| StorageError::Provider {
        status,
        code: Some("malformedResponse".into()),
        message: "the token endpoint's answer is not a token grant".into(),
    })?;
    // `expires_in` is a number, though some endpoints send a numeric string.
    let secs = match raw.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(TokenGrant {
        access_token: Secret::new(raw.access_token),
        expires_in: Duration::from_secs(secs.unwrap_or(3600)),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret::new),
        scope: raw.scope,
    })
}

/// OAuth `error` values that mean the user must sign in again: `invalid_grant`
/// (RFC 6749 §5.2), and `interaction_required` and `consent_required`
/// (OpenID Connect Core 1.0 §3.1.2.6), which Microsoft's token endpoint sends
/// when multi-factor authentication or consent is missing
/// (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow>).
const REAUTH_ERRORS: &[&str] = &["invalid_grant", "interaction_required", "consent_required"];

/// Microsoft AADSTS codes that mean the user must sign in again, whatever
/// `error` came with them
/// (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>):
/// 50076 and 50079 (multi-factor authentication required, or its enrolment),
/// 65001 (no consent), 50173 (grant revoked), 70000 and 70008 (refresh token
/// invalid or expired), 700082 (inactive too long), 70043 (Conditional Access
/// sign-in frequency), 700084 (a single-page app's 24 h limit).
pub const REAUTH_AADSTS: &[u64] = &[50_076, 50_079, 65_001, 50_173, 70_000, 70_008, 700_082, 70_043, 700_084];

/// A code exchange whose grant carries no refresh token: the connection could
/// not outlive its first access token. `hint` says what the authorize request
/// must ask for.
#[must_use]
pub fn missing_refresh_token(hint: &str) -> StorageError {
    StorageError::Provider {
        status: 200,
        code: Some("missingRefreshToken".into()),
        message: hint.to_owned(),
    }
}

/// Maps a token endpoint refusal (RFC 6749 §5.2; Microsoft adds `error_codes`
/// with AADSTS numbers).
///
/// - A refusal that asks the user to sign in again (`error` `invalid_grant`,
///   `interaction_required` or `consent_required`, or a code of
///   [`REAUTH_AADSTS`]) is
///   [`StorageError::CloudConnection`] with [`ConnectionReason::InvalidGrant`].
///   That variant has no message; the `error` and the AADSTS code go to the
///   log (a `warn` event), and never a token.
/// - Other refusals are `Provider`, with the AADSTS code in the message.
pub fn token_error(status: u16, body: &[u8], retry_after: Option<Duration>) -> StorageError {
    let parsed = serde_json::from_slice::<OAuthError>(body).ok();
    let code = parsed.as_ref().and_then(|e| e.error_codes.first().copied());
    let aadsts = code.map(|c| format!(" (AADSTS{c})")).unwrap_or_default();
    let error = parsed.as_ref().map(|e| e.error.as_str());
    let reauth = error.is_some_and(|e| REAUTH_ERRORS.contains(&e)) || code.is_some_and(|c| REAUTH_AADSTS.contains(&c));
    if reauth {
        tracing::warn!(
            status,
            error = error.unwrap_or(""),
            aadsts = code,
            "the token endpoint says the user must sign in again"
        );
        return StorageError::CloudConnection {
            reason: ConnectionReason::InvalidGrant,
        };
    }
    match error {
        _ if status == 429 => StorageError::RateLimited { retry_after },
        Some(c @ ("invalid_client" | "unauthorized_client")) => StorageError::Provider {
            status,
            code: Some(c.to_owned()),
            message: format!("the oauth client id or secret was refused{aadsts}; check the app configuration"),
        },
        other => StorageError::Provider {
            status,
            code: other.map(str::to_owned),
            message: format!("the token endpoint refused the request{aadsts}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_errors() {
        let e = token_error(
            400,
            br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#,
            None,
        );
        assert_eq!(e.connection_reason(), Some(ConnectionReason::InvalidGrant));
        assert!(!e.is_retryable());
        let e = token_error(400, br#"{"error":"invalid_grant","error_codes":[700082]}"#, None);
        assert_eq!(e.connection_reason(), Some(ConnectionReason::InvalidGrant));
        let e = token_error(401, br#"{"error":"invalid_client","error_codes":[7000215]}"#, None);
        assert!(
            matches!(e, StorageError::Provider { status: 401, ref code, ref message } if code.as_deref() == Some("invalid_client") && message.contains("AADSTS7000215"))
        );
        assert!(!e.is_retryable());
        assert!(token_error(503, b"oops", None).is_retryable());
        // Sign in again: OpenID Connect's errors, and Microsoft's codes whatever the error.
        for body in [
            &br#"{"error":"interaction_required","error_codes":[50076]}"#[..],
            br#"{"error":"interaction_required","error_codes":[50079]}"#,
            br#"{"error":"consent_required","error_codes":[65001]}"#,
            br#"{"error":"invalid_request","error_codes":[50076]}"#,
            br#"{"error":"invalid_grant","error_codes":[70043]}"#,
        ] {
            let e = token_error(400, body, None);
            assert_eq!(e.connection_reason(), Some(ConnectionReason::InvalidGrant), "{e:?}");
        }
        let e = token_error(400, br#"{"error":"invalid_scope","error_codes":[70011]}"#, None);
        assert!(matches!(e, StorageError::Provider { ref message, .. } if message.contains("AADSTS70011")));
        assert_eq!(
            token_error(429, b"", Some(Duration::from_secs(2))).retry_after(),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn random_tokens_differ_and_pkce_hides_its_verifier() {
        assert_ne!(random_token(16).unwrap(), random_token(16).unwrap());
        let p = Pkce::generate().unwrap();
        assert!(!format!("{p:?}").contains(p.verifier().expose()));
        assert_eq!(p.verifier().expose().len(), 64);
    }
}
