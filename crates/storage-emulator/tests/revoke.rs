//! Google's token revocation endpoint: after a revoke, the grant's refresh token
//! and access tokens are dead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::Value;
use storage_emulator::EmulatorHandle;

async fn revoke(emu: &EmulatorHandle, token: &str) -> (u16, Value) {
    let resp = http()
        .post(emu.endpoints().google.revoke.clone())
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, json(resp).await)
}

#[tokio::test]
async fn revoking_the_refresh_token_kills_the_whole_grant() {
    let emu = start().await;
    let grant = emu.google_grant();
    let other = emu.google_grant();
    let access = grant["access_token"].as_str().unwrap();
    assert_eq!(about_status(&emu, access).await, 200);
    let (status, _) = revoke(&emu, grant["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    let (status, body) = refresh_google(&emu, &grant).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(about_status(&emu, access).await, 401);
    // Again: the token is no longer valid.
    let (status, body) = revoke(&emu, grant["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token")));
    // Another grant is untouched.
    assert_eq!(about_status(&emu, other["access_token"].as_str().unwrap()).await, 200);
    assert_eq!(refresh_google(&emu, &other).await.0, 200);
}

#[tokio::test]
async fn revoking_an_access_token_also_kills_its_refresh_token() {
    let emu = start().await;
    let grant = emu.google_grant();
    let (status, _) = revoke(&emu, grant["access_token"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(refresh_google(&emu, &grant).await.0, 400);
}

#[tokio::test]
async fn unknown_foreign_and_missing_tokens_are_refused() {
    let emu = start().await;
    let (status, body) = revoke(&emu, "1//never-issued").await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_token")));
    // A Microsoft token is not Google's to revoke.
    let ms = emu.microsoft_grant();
    let (status, _) = revoke(&emu, ms["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 400);
    let resp = http().post(emu.endpoints().google.revoke.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["error"], "invalid_request");
}
