//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use storage_emulator::{Emulator, EmulatorHandle};

/// A client that does not follow redirects, so 302/308 stay visible.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub async fn start() -> EmulatorHandle {
    Emulator::start().await.unwrap()
}

pub fn google_token(emu: &EmulatorHandle) -> String {
    emu.google_grant()["access_token"].as_str().unwrap().to_owned()
}

pub fn ms_token(emu: &EmulatorHandle) -> String {
    emu.microsoft_grant()["access_token"].as_str().unwrap().to_owned()
}

pub fn drive_url(emu: &EmulatorHandle, rest: &str) -> String {
    format!("{}{rest}", emu.endpoints().google.api)
}

pub fn root_url(emu: &EmulatorHandle, rest: &str) -> String {
    format!("{}{rest}", emu.endpoints().google.root)
}

pub fn graph_url(emu: &EmulatorHandle, rest: &str) -> String {
    format!("{}{rest}", emu.endpoints().microsoft.graph)
}

pub async fn json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Bytes with a recognisable pattern.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Uploads `data` with uploadType=multipart; returns the File JSON (fields=*).
pub async fn drive_put(emu: &EmulatorHandle, token: &str, name: &str, data: &[u8]) -> Value {
    let meta = serde_json::json!({"name": name}).to_string();
    let mut body = Vec::new();
    body.extend_from_slice(b"--XX\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n");
    body.extend_from_slice(meta.as_bytes());
    body.extend_from_slice(b"\r\n--XX\r\nContent-Type: text/plain\r\n\r\n");
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n--XX--\r\n");
    let resp = http()
        .post(root_url(emu, "upload/drive/v3/files?uploadType=multipart&fields=*"))
        .bearer_auth(token)
        .header("content-type", "multipart/related; boundary=XX")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    json(resp).await
}

/// Uploads `data` with a simple Graph PUT to `root:/{path}:/content`; returns the driveItem.
pub async fn graph_put(emu: &EmulatorHandle, token: &str, path: &str, data: &[u8]) -> Value {
    let resp = http()
        .put(graph_url(emu, &format!("me/drive/root:/{path}:/content")))
        .bearer_auth(token)
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    json(resp).await
}

/// A Google refresh with the grant's own client: its status and body.
pub async fn refresh_google(emu: &EmulatorHandle, grant: &Value) -> (u16, Value) {
    let resp = http()
        .post(emu.endpoints().google.token.clone())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", grant["refresh_token"].as_str().unwrap()),
            ("client_id", grant["client_id"].as_str().unwrap()),
            ("client_secret", grant["client_secret"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, json(resp).await)
}

/// The status of Drive's `about` with this access token.
pub async fn about_status(emu: &EmulatorHandle, access: &str) -> u16 {
    http()
        .get(drive_url(emu, "about?fields=user"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
