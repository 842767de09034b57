//! Google: Drive v3 files, uploads and about; Google OAuth.

pub(crate) mod fields;
pub(crate) mod files;
pub(crate) mod multipart;
pub(crate) mod oauth;
pub(crate) mod query;
pub(crate) mod store;
pub(crate) mod upload;

use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::errors;
use crate::faults::Provider;
use crate::grants::AccessError;
use crate::pipeline::Ctx;
use crate::state::Shared;

/// Checks the request's bearer token against Google grants.
///
/// A missing, unknown, revoked or expired token gets 401 with reason `authError`, message
/// "Invalid Credentials", `location: "Authorization"`, `locationType: "header"`
/// (<https://developers.google.com/drive/api/guides/handle-errors#resolve_a_401_error_invalid_credentials>).
/// The `WWW-Authenticate: Bearer realm="https://accounts.google.com/", error="invalid_token"`
/// header follows RFC 6750 §3; its exact text on Drive is UNCONFIRMED.
pub(crate) fn authorize(shared: &Shared, ctx: &Ctx) -> Result<u64, Response> {
    match shared.grants.lock().check_access(Provider::Google, ctx.bearer()) {
        Ok(grant) => Ok(grant),
        Err(why) => {
            let mut resp = errors::google_error_at(401, "authError", "Invalid Credentials", "Authorization", "header");
            let challenge = match why {
                AccessError::Missing => r#"Bearer realm="https://accounts.google.com/""#,
                AccessError::Invalid | AccessError::Expired => {
                    r#"Bearer realm="https://accounts.google.com/", error="invalid_token""#
                }
            };
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
            Err(resp)
        }
    }
}
