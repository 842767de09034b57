//! Google OAuth 2.0: the token endpoint (`refresh_token` and `authorization_code` grants) and
//! the authorize page.
//!
//! Sources: <https://developers.google.com/identity/protocols/oauth2/web-server> (requests,
//! `access_type=offline`, responses) and RFC 6749 §4.1, §5.2, §6.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::consent::Consent;
use crate::errors::json_response;
use crate::faults::Provider;
use crate::grants::{GrantError, Issued, PendingCode, client_credentials, seconds_until};
use crate::http_util::parse_query;
use crate::pipeline::Ctx;
use crate::state::{ClientCheck, Shared};

const TOKEN_JSON: &str = "application/json; charset=utf-8";

/// An OAuth error body `{"error","error_description"}` (RFC 6749 §5.2).
///
/// Google's pairings: revoked or expired refresh token → 400 `invalid_grant` "Token has been
/// expired or revoked." (github.com/fregante/chrome-webstore-upload issue 48); wrong secret or
/// unknown client → 401 `invalid_client` "Unauthorized" (github.com/hrishikeshrt/
/// google_drive_ocr issue 8); refresh token of another client → 401 `unauthorized_client`
/// "Unauthorized" (github.com/baptisteArno/typebot.io issue 580).
fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    json_response(
        status,
        &json!({"error": error, "error_description": description}),
        TOKEN_JSON,
    )
}

/// A successful token response: `access_token`, `expires_in` (a number), `scope`,
/// `token_type: "Bearer"`, and `refresh_token` only when one was issued: Google omits it on
/// refresh (<https://developers.google.com/identity/protocols/oauth2/web-server#offline>).
fn token_response(issued: &Issued) -> Response {
    let mut body = json!({
        "access_token": issued.access_token,
        "expires_in": seconds_until(issued.expires_at),
        "scope": issued.scope,
        "token_type": "Bearer",
    });
    if let Some(rt) = &issued.refresh_token {
        body["refresh_token"] = Value::String(rt.clone());
    }
    json_response(200, &body, TOKEN_JSON)
}

/// `POST /token` (and the legacy `/o/oauth2/token`), form-encoded.
pub(crate) async fn token(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let form = parse_query(std::str::from_utf8(&ctx.body).ok());
    let get = |k: &str| crate::http_util::query_get(&form, k);
    let (client_id, secret) = client_credentials(&ctx.headers, &form);
    let Some(client_id) = client_id else {
        return oauth_error(400, "invalid_request", "Missing required parameter: client_id");
    };
    // A missing secret is a wrong one: the token endpoint sees only confidential clients.
    match shared
        .config
        .check_google(&client_id, Some(secret.as_deref().unwrap_or_default()))
    {
        // Text UNCONFIRMED.
        ClientCheck::Unknown => return oauth_error(401, "invalid_client", "The OAuth client was not found."),
        ClientCheck::WrongSecret => return oauth_error(401, "invalid_client", "Unauthorized"),
        ClientCheck::Accepted => {}
    }
    let lifetime = shared.config.token_lifetime;
    match get("grant_type") {
        Some("refresh_token") => {
            let Some(rt) = get("refresh_token") else {
                return oauth_error(400, "invalid_request", "Missing required parameter: refresh_token");
            };
            let result = shared
                .grants
                .lock()
                .refresh(Provider::Google, rt, &client_id, lifetime, false, false);
            match result {
                Ok(issued) => token_response(&issued),
                Err(GrantError::WrongClient) => oauth_error(401, "unauthorized_client", "Unauthorized"),
                Err(_) => oauth_error(400, "invalid_grant", "Token has been expired or revoked."),
            }
        }
        Some("authorization_code") => {
            let Some(code) = get("code") else {
                return oauth_error(400, "invalid_request", "Missing required parameter: code");
            };
            let result = shared.grants.lock().redeem_code(
                Provider::Google,
                code,
                &client_id,
                get("redirect_uri"),
                get("code_verifier"),
                lifetime,
            );
            match result {
                Ok(issued) => token_response(&issued),
                Err(GrantError::WrongClient) => oauth_error(401, "unauthorized_client", "Unauthorized"),
                // Texts UNCONFIRMED.
                Err(GrantError::Mismatch) => oauth_error(400, "invalid_grant", "Bad Request"),
                Err(_) => oauth_error(400, "invalid_grant", "Malformed auth code."),
            }
        }
        Some(other) => oauth_error(400, "unsupported_grant_type", &format!("Invalid grant_type: {other}")),
        None => oauth_error(400, "invalid_request", "Missing required parameter: grant_type"),
    }
}

/// `POST /revoke` with `token` (an access or a refresh token) in the form body: revokes the
/// whole grant, so its refresh token and every access token stop working
/// (<https://developers.google.com/identity/protocols/oauth2/web-server#tokenrevoke>: 200 on
/// success, 400 with an error code otherwise). An unknown or already revoked token is 400
/// `invalid_token` "Token expired or revoked" (text UNCONFIRMED).
pub(crate) async fn revoke(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let form = parse_query(std::str::from_utf8(&ctx.body).ok());
    let Some(token) = crate::http_util::query_get(&form, "token") else {
        // Text UNCONFIRMED.
        return oauth_error(400, "invalid_request", "Missing required parameter: token");
    };
    if shared.grants.lock().revoke_at_endpoint(Provider::Google, token) {
        json_response(200, &json!({}), TOKEN_JSON)
    } else {
        oauth_error(400, "invalid_token", "Token expired or revoked")
    }
}

/// `GET /o/oauth2/v2/auth`: with a consent page, shows it; otherwise answers the consent
/// screen at once as [`Consent`] says and redirects (302) to `redirect_uri` with `code` (or
/// `error`) and `state` (RFC 6749 §4.1.2). A refresh token is granted only with
/// `access_type=offline` (<https://developers.google.com/identity/protocols/oauth2/web-server#offline>).
pub(crate) async fn authorize(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    if let Err(resp) = checked(&shared, &ctx.query) {
        return resp;
    }
    if shared.config.consent_page {
        return crate::http_util::html(crate::consent::page("Google", &ctx.query, true));
    }
    let consent = shared.consent.lock().clone();
    answer(&shared, &ctx.query, &consent)
}

/// `POST /o/oauth2/v2/auth`: the consent page's form, "Allow" (with the scopes left
/// ticked) or "Cancel".
pub(crate) async fn consent(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&ctx.body).into_owned().collect();
    let consent = crate::consent::decision(&form, true);
    answer(&shared, &form, &consent)
}

/// The client and redirect URI of an authorize request, or the page Google shows instead.
fn checked(shared: &Shared, params: &[(String, String)]) -> Result<(String, url::Url), Response> {
    let param = |k| crate::http_util::query_get(params, k);
    let Some(client_id) = param("client_id").filter(|id| shared.config.check_google(id, None) == ClientCheck::Accepted)
    else {
        // Google shows an error page "Error 401: invalid_client" (page text UNCONFIRMED).
        return Err((StatusCode::UNAUTHORIZED, "Error 401: invalid_client").into_response());
    };
    let Some(redirect) = param("redirect_uri").and_then(|r| url::Url::parse(r).ok()) else {
        return Err((
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request (missing or invalid redirect_uri)",
        )
            .into_response());
    };
    Ok((client_id.to_owned(), redirect))
}

/// The redirect that answers an authorize request with `consent`.
fn answer(shared: &Shared, params: &[(String, String)], consent: &Consent) -> Response {
    let (client_id, redirect) = match checked(shared, params) {
        Ok(ok) => ok,
        Err(resp) => return resp,
    };
    let param = |k| crate::http_util::query_get(params, k);
    let mut out: Vec<(String, String)> = Vec::new();
    if *consent == Consent::Cancel {
        out.push(("error".into(), "access_denied".into()));
    } else if param("response_type") == Some("code") {
        let scope = consent.granted(param("scope").unwrap_or_default());
        let code = shared.grants.lock().create_code(PendingCode {
            provider: Provider::Google,
            client_id,
            redirect_uri: redirect.as_str().to_owned(),
            scope: scope.clone(),
            offline: param("access_type") == Some("offline") && *consent != Consent::NoRefreshToken,
            code_challenge: param("code_challenge").map(str::to_owned),
            code_challenge_method: param("code_challenge_method").map(str::to_owned),
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(10),
        });
        out.push(("code".into(), code));
        out.push(("scope".into(), scope));
    } else {
        out.push(("error".into(), "unsupported_response_type".into()));
    }
    if let Some(state) = param("state") {
        out.push(("state".into(), state.to_owned()));
    }
    redirect_with(redirect, &out)
}

/// A 302 to `url` with `params` appended to its query.
pub(crate) fn redirect_with(mut url: url::Url, params: &[(String, String)]) -> Response {
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(url.as_str()) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}
