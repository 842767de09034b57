//! Microsoft identity platform v2.0: `/{tenant}/oauth2/v2.0/token` and `/authorize`.
//!
//! Source unless noted:
//! <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow>.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::consent::Consent;
use crate::errors::json_response;
use crate::faults::Provider;
use crate::grants::{GrantError, Issued, PendingCode, client_credentials, seconds_until};
use crate::http_util::{parse_query, random_uuid};
use crate::pipeline::Ctx;
use crate::state::{ClientCheck, Shared};

/// An error body: `error`, `error_description` starting `AADSTS<n>:` and ending with trace and
/// correlation ids and a timestamp, `error_codes: [n]`, `timestamp`, `trace_id`,
/// `correlation_id`, `error_uri`
/// (<https://learn.microsoft.com/entra/identity-platform/reference-error-codes>).
fn aad_error(shared: &Shared, status: u16, error: &str, code: u32, text: &str) -> Response {
    let trace = random_uuid();
    let correlation = random_uuid();
    let timestamp = chrono::Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string();
    let description =
        format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {timestamp}");
    let error_uri = format!("{}error?code={code}", shared.endpoints.microsoft.login.as_str());
    json_response(
        status,
        &json!({
            "error": error,
            "error_description": description,
            "error_codes": [code],
            "timestamp": timestamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": error_uri,
        }),
        "application/json; charset=utf-8",
    )
}

/// 200: `token_type`, `scope`, `expires_in`, `ext_expires_in`, `access_token`, and
/// `refresh_token` (a new one on every refresh: "Microsoft Entra ID returns a new refresh token
/// … replace the old one").
fn token_response(issued: &Issued) -> Response {
    let expires = seconds_until(issued.expires_at);
    let mut body = json!({
        "token_type": "Bearer",
        "scope": issued.scope,
        "expires_in": expires,
        "ext_expires_in": expires,
        "access_token": issued.access_token,
    });
    if let Some(rt) = &issued.refresh_token {
        body["refresh_token"] = Value::String(rt.clone());
    }
    json_response(200, &body, "application/json; charset=utf-8")
}

/// `POST /{tenant}/oauth2/v2.0/token`, form-encoded; any tenant is accepted.
///
/// Errors (AADSTS codes from the reference list; the `error` pairings marked there):
/// missing parameter → 400 `invalid_request` 900144; unknown client → 400
/// `unauthorized_client` 700016; wrong secret → 401 `invalid_client` 7000215 (the 401 is
/// UNCONFIRMED); unknown refresh token → 400 `invalid_grant` 70000; revoked grant → 400
/// `invalid_grant` 50173; unknown or reused code → 400 `invalid_grant` 70000; PKCE mismatch →
/// 400 `invalid_grant` 501481 (UNCONFIRMED); other grant types → 400
/// `unsupported_grant_type` 70003 (UNCONFIRMED).
pub(crate) async fn token(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let tenant = ctx.first_segment();
    let form = parse_query(std::str::from_utf8(&ctx.body).ok());
    let get = |k: &str| crate::http_util::query_get(&form, k);
    let (client_id, secret) = client_credentials(&ctx.headers, &form);
    let Some(client_id) = client_id else {
        return aad_error(
            &shared,
            400,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let check = shared
        .config
        .check_microsoft(&client_id, Some(secret.as_deref().unwrap_or_default()));
    if check == ClientCheck::Unknown {
        return aad_error(
            &shared,
            400,
            "unauthorized_client",
            700_016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    if check == ClientCheck::WrongSecret {
        return aad_error(
            &shared,
            401,
            "invalid_client",
            7_000_215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    let lifetime = shared.config.token_lifetime;
    match get("grant_type") {
        Some("refresh_token") => {
            let Some(rt) = get("refresh_token") else {
                return aad_error(
                    &shared,
                    400,
                    "invalid_request",
                    900_144,
                    "The request body must contain the following parameter: 'refresh_token'.",
                );
            };
            let result = shared.grants.lock().refresh(
                Provider::Microsoft,
                rt,
                &client_id,
                lifetime,
                true,
                shared.config.invalidate_rotated_refresh_tokens,
            );
            match result {
                Ok(issued) => token_response(&issued),
                Err(GrantError::SignIn(why)) => aad_error(&shared, 400, why.error(), why.code(), why.text()),
                Err(GrantError::Revoked) => aad_error(
                    &shared,
                    400,
                    "invalid_grant",
                    50_173,
                    "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
                ),
                Err(_) => aad_error(
                    &shared,
                    400,
                    "invalid_grant",
                    70_000,
                    "The provided value for the 'refresh_token' is not valid.",
                ),
            }
        }
        Some("authorization_code") => {
            let Some(code) = get("code") else {
                return aad_error(
                    &shared,
                    400,
                    "invalid_request",
                    900_144,
                    "The request body must contain the following parameter: 'code'.",
                );
            };
            let result = shared.grants.lock().redeem_code(
                Provider::Microsoft,
                code,
                &client_id,
                get("redirect_uri"),
                get("code_verifier"),
                lifetime,
            );
            match result {
                Ok(issued) => token_response(&issued),
                Err(GrantError::Mismatch) => aad_error(
                    &shared,
                    400,
                    "invalid_grant",
                    501_481,
                    "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                ),
                Err(_) => aad_error(
                    &shared,
                    400,
                    "invalid_grant",
                    70_000,
                    "The provided authorization code is not valid or was already redeemed.",
                ),
            }
        }
        Some(other) => aad_error(
            &shared,
            400,
            "unsupported_grant_type",
            70_003,
            &format!("The app requested an unsupported grant type '{other}'."),
        ),
        None => aad_error(
            &shared,
            400,
            "invalid_request",
            900_144,
            "The request body must contain the following parameter: 'grant_type'.",
        ),
    }
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: with a consent page, shows it; otherwise answers at
/// once as [`Consent`] says and redirects (302) with `code` (or `error`) and `state`. A refresh
/// token comes only with `offline_access` in `scope`.
pub(crate) async fn authorize(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    if let Err(resp) = checked(&shared, &ctx.query) {
        return resp;
    }
    if shared.config.consent_page {
        // Microsoft asks for the permissions as a whole: no checkbox per scope.
        return crate::http_util::html(crate::consent::page("Microsoft", &ctx.query, false));
    }
    let consent = shared.consent.lock().clone();
    answer(&shared, &ctx.query, &consent)
}

/// `POST /{tenant}/oauth2/v2.0/authorize`: the consent page's form, "Allow" or "Cancel".
pub(crate) async fn consent(State(shared): State<Arc<Shared>>, Extension(ctx): Extension<Ctx>) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&ctx.body).into_owned().collect();
    let consent = crate::consent::decision(&form, false);
    answer(&shared, &form, &consent)
}

/// The redirect URI of an authorize request for the configured client, or the error page.
fn checked(shared: &Shared, params: &[(String, String)]) -> Result<(String, url::Url), Response> {
    let param = |k| crate::http_util::query_get(params, k);
    let Some(client_id) =
        param("client_id").filter(|id| shared.config.check_microsoft(id, None) == ClientCheck::Accepted)
    else {
        return Err((
            StatusCode::BAD_REQUEST,
            "AADSTS700016: Application not found in the directory.",
        )
            .into_response());
    };
    param("redirect_uri")
        .and_then(|r| url::Url::parse(r).ok())
        .map(|r| (client_id.to_owned(), r))
        .ok_or_else(|| {
            (
                StatusCode::BAD_REQUEST,
                "AADSTS900144: The request body must contain the following parameter: 'redirect_uri'.",
            )
                .into_response()
        })
}

/// The redirect that answers an authorize request with `consent`.
fn answer(shared: &Shared, params: &[(String, String)], consent: &Consent) -> Response {
    let (client_id, redirect) = match checked(shared, params) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let param = |k| crate::http_util::query_get(params, k);
    let mut out: Vec<(String, String)> = Vec::new();
    if *consent == Consent::Cancel {
        out.push(("error".into(), "access_denied".into()));
        out.push((
            "error_description".into(),
            "AADSTS65004: User declined to consent to access the app.".into(),
        ));
    } else if param("response_type") == Some("code") {
        let scope = consent.granted(param("scope").unwrap_or_default());
        let code = shared.grants.lock().create_code(PendingCode {
            provider: Provider::Microsoft,
            client_id,
            redirect_uri: redirect.as_str().to_owned(),
            offline: scope.split(' ').any(|s| s == "offline_access") && *consent != Consent::NoRefreshToken,
            scope,
            code_challenge: param("code_challenge").map(str::to_owned),
            code_challenge_method: param("code_challenge_method").map(str::to_owned),
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(10),
        });
        out.push(("code".into(), code));
    } else {
        out.push(("error".into(), "unsupported_response_type".into()));
    }
    if let Some(state) = param("state") {
        out.push(("state".into(), state.to_owned()));
    }
    crate::google::oauth::redirect_with(redirect, &out)
}
