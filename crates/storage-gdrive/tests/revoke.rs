//! `oauth::revoke` against `storage-emulator`, and the endpoints' `revoke` URL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use storage_core::{ConnectionReason, RetryPolicy, Secret};
use storage_emulator::Emulator;
use storage_gdrive::oauth::{self, Revocation};
use storage_gdrive::{GoogleApp, GoogleEndpoints};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_kills_the_refresh_token_and_repeating_is_safe() {
    let emu = Emulator::start().await.unwrap();
    let endpoints: GoogleEndpoints =
        serde_json::from_value(serde_json::to_value(&emu.endpoints().google).unwrap()).unwrap();
    assert_eq!(endpoints.revoke_url(), emu.endpoints().google.revoke);
    let grant = emu.google_grant();
    let refresh = Secret::new(grant["refresh_token"].as_str().unwrap());
    let app = GoogleApp::new(
        grant["client_id"].as_str().unwrap(),
        grant["client_secret"].as_str().unwrap(),
    );
    let http = reqwest::Client::new();
    let retry = RetryPolicy::never();
    oauth::refresh(&http, &endpoints.token, &app, &refresh, retry)
        .await
        .unwrap();
    assert_eq!(
        oauth::revoke(&http, &endpoints, &refresh, retry).await.unwrap(),
        Revocation::Revoked
    );
    let err = oauth::refresh(&http, &endpoints.token, &app, &refresh, retry)
        .await
        .unwrap_err();
    assert_eq!(err.connection_reason(), Some(ConnectionReason::InvalidGrant));
    assert_eq!(
        oauth::revoke(&http, &endpoints, &refresh, retry).await.unwrap(),
        Revocation::AlreadyInvalid
    );
}

#[test]
fn endpoints_json_without_revoke_still_parses_and_derives_it_from_the_token_url() {
    let old = r#"{"root":"http://127.0.0.1:9/","token":"http://127.0.0.1:9/token","authorize":"http://127.0.0.1:9/o/oauth2/v2/auth"}"#;
    let e: GoogleEndpoints = serde_json::from_str(old).unwrap();
    e.validate().unwrap();
    assert_eq!(e.revoke_url().as_str(), "http://127.0.0.1:9/revoke");
    assert_eq!(
        GoogleEndpoints::production().revoke_url().as_str(),
        "https://oauth2.googleapis.com/revoke"
    );
    let bad: GoogleEndpoints = serde_json::from_str(
        r#"{"root":"https://x/","token":"https://x/token","authorize":"https://x/a","revoke":"http://example.com/revoke"}"#,
    )
    .unwrap();
    assert!(bad.validate().is_err(), "plain http off loopback is refused");
}
