//! Microsoft: Graph drive items, upload sessions and downloads; the identity platform.

pub(crate) mod answers;
pub(crate) mod items;
pub(crate) mod names;
pub(crate) mod oauth;
pub(crate) mod path;
pub(crate) mod store;
pub(crate) mod upload;
pub(crate) mod write;

use axum::response::Response;

use crate::errors;
use crate::faults::Provider;
use crate::grants::AccessError;
use crate::pipeline::Ctx;
use crate::state::Shared;

/// Checks the request's bearer token against Microsoft grants.
///
/// A missing token gets 401 `InvalidAuthenticationToken` "Access token is empty."; a malformed
/// one "CompactToken parsing failed with error code: 80049217" (both from real captures quoted
/// in several clients; <https://learn.microsoft.com/graph/errors> lists the code and status);
/// an expired one "Lifetime validation failed, the token is expired." (text UNCONFIRMED).
pub(crate) fn authorize(shared: &Shared, ctx: &Ctx) -> Result<u64, Response> {
    let checked = shared.grants.lock().check_access(Provider::Microsoft, ctx.bearer());
    checked.map_err(|why| {
        let message = match why {
            AccessError::Missing => "Access token is empty.",
            AccessError::Invalid => "CompactToken parsing failed with error code: 80049217",
            AccessError::Expired => "Lifetime validation failed, the token is expired.",
        };
        errors::graph_error(401, "InvalidAuthenticationToken", message)
    })
}
