//! OAuth grants: authorization codes, refresh tokens and access tokens with expiry and revocation.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use crate::faults::{Provider, SignInRequired};
use crate::http_util::random_id;

/// One user's consent to one client.
#[derive(Debug)]
struct Grant {
    provider: Provider,
    client_id: String,
    scope: String,
    revoked: bool,
    /// Set when the user must sign in again (Microsoft grants): refreshes are refused.
    sign_in: Option<SignInRequired>,
}

#[derive(Debug)]
struct AccessToken {
    grant: u64,
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
struct RefreshToken {
    grant: u64,
    /// Cleared when a rotation replaced it and the emulator invalidates rotated tokens.
    valid: bool,
}

/// An authorization code waiting to be redeemed.
#[derive(Debug, Clone)]
pub(crate) struct PendingCode {
    pub provider: Provider,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    /// Whether the code's grant gets a refresh token (Google: `access_type=offline`;
    /// Microsoft: `offline_access` in `scope`).
    pub offline: bool,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// Tokens handed out by a successful grant or refresh.
#[derive(Debug, Clone)]
pub(crate) struct Issued {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub scope: String,
}

/// Why a refresh or code redemption failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantError {
    /// The token or code was never issued (or was used up).
    Unknown,
    /// The grant was revoked, or the token was rotated away.
    Revoked,
    /// Issued to another client.
    WrongClient,
    /// The code's `redirect_uri` or PKCE verifier does not match.
    Mismatch,
    /// The user must sign in again first.
    SignIn(SignInRequired),
}

/// Why an access token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AccessError {
    Missing,
    Invalid,
    Expired,
}

/// The grant store.
#[derive(Debug, Default)]
pub(crate) struct Grants {
    next_id: u64,
    grants: HashMap<u64, Grant>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    codes: HashMap<String, PendingCode>,
}

fn token(provider: Provider, kind: &str) -> String {
    // Shapes loosely follow the real prefixes (Google access tokens start `ya29.`, Google
    // refresh tokens `1//`); nothing may depend on them.
    match (provider, kind) {
        (Provider::Google, "access") => format!("ya29.emu-{}", random_id(40)),
        (Provider::Google, _) => format!("1//emu-{}", random_id(40)),
        (Provider::Microsoft, "access") => format!("EwB-emu-{}", random_id(48)),
        (Provider::Microsoft, _) => format!("M.C-emu-{}", random_id(48)),
    }
}

impl Grants {
    /// Creates a grant and its first tokens.
    pub(crate) fn issue(
        &mut self,
        provider: Provider,
        client_id: &str,
        scope: &str,
        offline: bool,
        lifetime: Duration,
    ) -> Issued {
        self.next_id += 1;
        let id = self.next_id;
        self.grants.insert(
            id,
            Grant {
                provider,
                client_id: client_id.to_owned(),
                scope: scope.to_owned(),
                revoked: false,
                sign_in: None,
            },
        );
        let refresh_token = offline.then(|| {
            let t = token(provider, "refresh");
            self.refresh.insert(t.clone(), RefreshToken { grant: id, valid: true });
            t
        });
        let (access_token, expires_at) = self.new_access(id, provider, lifetime);
        Issued {
            access_token,
            refresh_token,
            expires_at,
            scope: scope.to_owned(),
        }
    }

    fn new_access(&mut self, grant: u64, provider: Provider, lifetime: Duration) -> (String, DateTime<Utc>) {
        let t = token(provider, "access");
        let expires_at = Utc::now() + lifetime;
        self.access.insert(t.clone(), AccessToken { grant, expires_at });
        (t, expires_at)
    }

    /// Redeems a refresh token. With `rotate`, a new refresh token is issued (Microsoft);
    /// with `invalidate_old` as well, the presented one stops working.
    pub(crate) fn refresh(
        &mut self,
        provider: Provider,
        refresh_token: &str,
        client_id: &str,
        lifetime: Duration,
        rotate: bool,
        invalidate_old: bool,
    ) -> Result<Issued, GrantError> {
        let entry = self.refresh.get(refresh_token).ok_or(GrantError::Unknown)?;
        let grant_id = entry.grant;
        let valid = entry.valid;
        let grant = self.grants.get(&grant_id).ok_or(GrantError::Unknown)?;
        if grant.provider != provider {
            return Err(GrantError::Unknown);
        }
        if grant.revoked || !valid {
            return Err(GrantError::Revoked);
        }
        if grant.client_id != client_id {
            return Err(GrantError::WrongClient);
        }
        if let Some(why) = grant.sign_in {
            return Err(GrantError::SignIn(why));
        }
        let scope = grant.scope.clone();
        let new_refresh = rotate.then(|| {
            let t = token(provider, "refresh");
            self.refresh.insert(
                t.clone(),
                RefreshToken {
                    grant: grant_id,
                    valid: true,
                },
            );
            t
        });
        if rotate
            && invalidate_old
            && let Some(old) = self.refresh.get_mut(refresh_token)
        {
            old.valid = false;
        }
        let (access_token, expires_at) = self.new_access(grant_id, provider, lifetime);
        Ok(Issued {
            access_token,
            refresh_token: new_refresh,
            expires_at,
            scope,
        })
    }

    /// Stores a new authorization code.
    pub(crate) fn create_code(&mut self, code: PendingCode) -> String {
        let value = format!("emu-code-{}", random_id(32));
        self.codes.insert(value.clone(), code);
        value
    }

    /// Redeems an authorization code (once).
    pub(crate) fn redeem_code(
        &mut self,
        provider: Provider,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        code_verifier: Option<&str>,
        lifetime: Duration,
    ) -> Result<Issued, GrantError> {
        let pending = self.codes.remove(code).ok_or(GrantError::Unknown)?;
        if pending.provider != provider || pending.expires_at < Utc::now() {
            return Err(GrantError::Unknown);
        }
        if pending.client_id != client_id {
            return Err(GrantError::WrongClient);
        }
        if redirect_uri.is_some_and(|r| r != pending.redirect_uri) {
            return Err(GrantError::Mismatch);
        }
        if let Some(challenge) = &pending.code_challenge {
            let verifier = code_verifier.ok_or(GrantError::Mismatch)?;
            if !pkce_matches(challenge, pending.code_challenge_method.as_deref(), verifier) {
                return Err(GrantError::Mismatch);
            }
        }
        Ok(self.issue(provider, client_id, &pending.scope, pending.offline, lifetime))
    }

    /// Checks a bearer token; returns its grant id.
    pub(crate) fn check_access(&self, provider: Provider, token: Option<&str>) -> Result<u64, AccessError> {
        let token = token.ok_or(AccessError::Missing)?;
        if token.is_empty() {
            return Err(AccessError::Missing);
        }
        let entry = self.access.get(token).ok_or(AccessError::Invalid)?;
        let grant = self.grants.get(&entry.grant).ok_or(AccessError::Invalid)?;
        if grant.provider != provider || grant.revoked {
            return Err(AccessError::Invalid);
        }
        if entry.expires_at <= Utc::now() {
            return Err(AccessError::Expired);
        }
        Ok(entry.grant)
    }

    /// The grant an access token belongs to, valid or not.
    pub(crate) fn grant_of(&self, token: &str) -> Option<u64> {
        self.access.get(token).map(|a| a.grant)
    }

    /// Makes every access token expired.
    pub(crate) fn expire_all(&mut self) {
        let past = Utc::now() - Duration::seconds(1);
        for t in self.access.values_mut() {
            t.expires_at = past;
        }
    }

    /// Makes one access token expired; returns whether it exists.
    pub(crate) fn expire_one(&mut self, token: &str) -> bool {
        let past = Utc::now() - Duration::seconds(1);
        self.access.get_mut(token).map(|t| t.expires_at = past).is_some()
    }

    /// Makes refreshes of the Microsoft grant behind `token` (an access or
    /// refresh token) answer that the user must sign in; `None` for all
    /// Microsoft grants. Returns how many grants it marked.
    pub(crate) fn require_sign_in(&mut self, token: Option<&str>, why: SignInRequired) -> usize {
        let id = token.and_then(|t| {
            self.refresh
                .get(t)
                .map(|r| r.grant)
                .or_else(|| self.access.get(t).map(|a| a.grant))
        });
        let mut marked = 0;
        for (gid, g) in &mut self.grants {
            if g.provider == Provider::Microsoft && (token.is_none() || id == Some(*gid)) {
                g.sign_in = Some(why);
                marked += 1;
            }
        }
        marked
    }

    /// Revokes every grant: its refresh and access tokens stop working.
    pub(crate) fn revoke_all(&mut self) {
        for g in self.grants.values_mut() {
            g.revoked = true;
        }
    }

    /// Revokes the grant that issued this refresh or access token; returns whether one did.
    /// What a provider's revocation endpoint does with `token` (an access or refresh
    /// token): revokes its grant, refresh and access tokens alike. `false` when the
    /// token is unknown, belongs to another provider, or its grant is already revoked.
    pub(crate) fn revoke_at_endpoint(&mut self, provider: Provider, token: &str) -> bool {
        let id = self
            .refresh
            .get(token)
            .filter(|r| r.valid)
            .map(|r| r.grant)
            .or_else(|| self.access.get(token).map(|a| a.grant));
        match id.and_then(|id| self.grants.get_mut(&id)) {
            Some(g) if g.provider == provider && !g.revoked => {
                g.revoked = true;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn revoke_by_token(&mut self, token: &str) -> bool {
        let id = self
            .refresh
            .get(token)
            .map(|r| r.grant)
            .or_else(|| self.access.get(token).map(|a| a.grant));
        match id.and_then(|id| self.grants.get_mut(&id)) {
            Some(g) => {
                g.revoked = true;
                true
            }
            None => false,
        }
    }
}

/// RFC 7636 §4.6: `S256` compares `BASE64URL-NOPAD(SHA256(verifier))` with the challenge;
/// `plain` (or no method, §4.3 default) compares them directly.
fn pkce_matches(challenge: &str, method: Option<&str>, verifier: &str) -> bool {
    use base64::Engine as _;
    use sha2::Digest as _;
    match method {
        Some("S256") => {
            let digest = sha2::Sha256::digest(verifier.as_bytes());
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest) == challenge
        }
        None | Some("plain") => verifier == challenge,
        Some(_) => false,
    }
}

/// The client id and secret of a token request: from the form body, or from HTTP Basic
/// authentication (RFC 6749 §2.3.1 allows both; Microsoft accepts either,
/// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow>).
pub(crate) fn client_credentials(
    headers: &axum::http::HeaderMap,
    form: &[(String, String)],
) -> (Option<String>, Option<String>) {
    use base64::Engine as _;
    let from_form = |key: &str| crate::http_util::query_get(form, key).map(str::to_owned);
    let basic = crate::http_util::header_str(headers, "authorization")
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|pair| {
            let (id, secret) = pair.split_once(':')?;
            // RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((decode(id)?, decode(secret)?))
        });
    match basic {
        Some((id, secret)) => (Some(id), Some(secret)),
        None => (from_form("client_id"), from_form("client_secret")),
    }
}

/// Seconds from now until `at`, at least 0.
pub(crate) fn seconds_until(at: DateTime<Utc>) -> i64 {
    (at - Utc::now()).num_seconds().max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_vector() {
        // RFC 7636 Appendix B example.
        assert!(pkce_matches(
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            Some("S256"),
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!pkce_matches("abc", Some("S256"), "abc"));
        assert!(pkce_matches("abc", Some("plain"), "abc"));
    }

    #[test]
    fn rotation_and_revocation() {
        let mut g = Grants::default();
        let life = Duration::seconds(60);
        let first = g.issue(Provider::Microsoft, "c", "s", true, life);
        let rt = first.refresh_token.clone().unwrap_or_default();
        let second = g.refresh(Provider::Microsoft, &rt, "c", life, true, false).unwrap();
        let rt2 = second.refresh_token.clone().unwrap_or_default();
        assert_ne!(rt, rt2);
        assert!(g.check_access(Provider::Microsoft, Some(&second.access_token)).is_ok());
        assert_eq!(
            g.refresh(Provider::Microsoft, &rt2, "other", life, true, false)
                .unwrap_err(),
            GrantError::WrongClient
        );
        g.revoke_all();
        assert_eq!(
            g.refresh(Provider::Microsoft, &rt2, "c", life, true, false)
                .unwrap_err(),
            GrantError::Revoked
        );
        assert_eq!(
            g.check_access(Provider::Microsoft, Some(&second.access_token)),
            Err(AccessError::Invalid)
        );
    }

    #[test]
    fn a_grant_that_needs_a_sign_in_refuses_refreshes() {
        let mut g = Grants::default();
        let life = Duration::seconds(60);
        let a = g.issue(Provider::Microsoft, "c", "s", true, life);
        let b = g.issue(Provider::Microsoft, "c", "s", true, life);
        let google = g.issue(Provider::Google, "c", "s", true, life);
        assert_eq!(g.require_sign_in(Some(&a.access_token), SignInRequired::Mfa), 1);
        let rt = |i: &Issued| i.refresh_token.clone().unwrap_or_default();
        assert_eq!(
            g.refresh(Provider::Microsoft, &rt(&a), "c", life, true, false)
                .unwrap_err(),
            GrantError::SignIn(SignInRequired::Mfa)
        );
        assert!(g.check_access(Provider::Microsoft, Some(&a.access_token)).is_ok());
        assert!(g.refresh(Provider::Microsoft, &rt(&b), "c", life, true, false).is_ok());
        assert_eq!(g.require_sign_in(None, SignInRequired::Consent), 2);
        assert!(
            g.refresh(Provider::Google, &rt(&google), "c", life, false, false)
                .is_ok()
        );
    }
}
