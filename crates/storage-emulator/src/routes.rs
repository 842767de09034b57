//! URL routing for the two listeners.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::{any, get, post};

use crate::errors;
use crate::faults::Provider;
use crate::google;
use crate::journal::Origin;
use crate::microsoft;
use crate::pipeline::{Ctx, pipeline, provider_of};
use crate::state::Shared;

/// The API listener: Drive v3, Google OAuth, Graph, Microsoft identity.
pub(crate) fn api_router(shared: Arc<Shared>) -> Router {
    let control = shared
        .config
        .control
        .then(|| crate::control::router(Arc::clone(&shared)));
    let api = Router::new()
        // Drive v3 metadata (https://developers.google.com/drive/api/reference/rest/v3/files)
        .route(
            "/drive/v3/files",
            get(google::files::list).post(google::files::create_metadata),
        )
        .route(
            "/drive/v3/files/{id}",
            get(google::files::get)
                .delete(google::files::delete)
                .patch(google::files::update_metadata),
        )
        .route("/drive/v3/about", get(google::files::about))
        // Uploads: the documented `/upload/...` paths and the discovery document's
        // `/resumable/upload/...` path that google-drive3 7.0.0 uses (`src/api.rs`, files.create).
        .route("/upload/drive/v3/files", post(google::upload::create))
        .route(
            "/upload/drive/v3/files/{id}",
            axum::routing::patch(google::upload::update).put(google::upload::update),
        )
        .route("/resumable/upload/drive/v3/files", post(google::upload::create))
        .route(
            "/resumable/upload/drive/v3/files/{id}",
            axum::routing::patch(google::upload::update).put(google::upload::update),
        )
        // Google OAuth: `/token` mirrors https://oauth2.googleapis.com/token; the legacy
        // https://accounts.google.com/o/oauth2/token is what yup-oauth2's authorized-user flow uses.
        .route("/token", post(google::oauth::token))
        .route("/o/oauth2/token", post(google::oauth::token))
        .route(
            "/o/oauth2/v2/auth",
            get(google::oauth::authorize).post(google::oauth::consent),
        )
        // https://oauth2.googleapis.com/revoke
        .route("/revoke", post(google::oauth::revoke))
        // Microsoft identity platform v2.0 (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow)
        .route("/{tenant}/oauth2/v2.0/token", post(microsoft::oauth::token))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(microsoft::oauth::authorize).post(microsoft::oauth::consent),
        )
        // Graph: paths with `root:/…:` addressing do not fit a router; parse them by hand.
        .route("/v1.0/{*rest}", any(microsoft::items::dispatch))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn_with_state(Arc::clone(&shared), pipeline))
        .layer(DefaultBodyLimit::disable())
        .with_state(shared);
    // The control API stays outside the pipeline: neither journaled nor faulted.
    match control {
        Some(control) => api.merge(control),
        None => api,
    }
}

/// The second listener: Drive session URIs, Graph upload URLs and download URLs.
pub(crate) fn content_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/upload/drive/v3/files", any(google::upload::session))
        .route("/up/{session}", any(microsoft::upload::session))
        .route("/dl/{token}", get(microsoft::items::download))
        .fallback(not_found_content)
        .method_not_allowed_fallback(method_not_allowed_content)
        .layer(from_fn_with_state(Arc::clone(&shared), pipeline))
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn not_found(axum::Extension(ctx): axum::Extension<Ctx>) -> Response {
    fallback(&ctx, Origin::Api)
}

async fn not_found_content(axum::Extension(ctx): axum::Extension<Ctx>) -> Response {
    fallback(&ctx, Origin::Content)
}

async fn method_not_allowed(axum::Extension(ctx): axum::Extension<Ctx>) -> Response {
    not_allowed(&ctx, Origin::Api)
}

async fn method_not_allowed_content(axum::Extension(ctx): axum::Extension<Ctx>) -> Response {
    not_allowed(&ctx, Origin::Content)
}

/// 405 in the provider's error shape, so every error body carries `error.code` and a message.
fn not_allowed(ctx: &Ctx, origin: Origin) -> Response {
    let message = format!("Method {} is not allowed on {}", ctx.method, ctx.path);
    match provider_of(origin, &ctx.path) {
        Some(Provider::Microsoft) => errors::graph_error(405, "invalidRequest", &message),
        _ => errors::google_error(405, "badRequest", &message),
    }
}

fn fallback(ctx: &Ctx, origin: Origin) -> Response {
    match provider_of(origin, &ctx.path) {
        Some(Provider::Microsoft) => errors::graph_error(
            400,
            "invalidRequest",
            &format!("Invalid request: {} {}", ctx.method, ctx.path),
        ),
        _ => errors::google_error(404, "notFound", "Not Found"),
    }
}
