//! The fixture both Drive test files build on: an emulator, its Google grant,
//! and a backend with quick retries.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use storage_core::{RetryPolicy, TokenCell};
use storage_emulator::{Emulator, EmulatorHandle};
use storage_gdrive::{DriveOptions, GoogleDriveBackend, GoogleEndpoints};

/// The emulator's Google endpoints, as the backend takes them.
pub fn endpoints(emu: &EmulatorHandle) -> GoogleEndpoints {
    serde_json::from_value(serde_json::to_value(&emu.endpoints().google).unwrap()).unwrap()
}

/// A backend with its own folder cache and pool, as another process would have,
/// retrying quickly under `retry`.
pub fn backend(emu: &EmulatorHandle, token: &str, retry: RetryPolicy) -> GoogleDriveBackend {
    let mut o = DriveOptions::default();
    o.retry = retry
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(50));
    o.read_timeout = Duration::from_secs(5);
    GoogleDriveBackend::builder(TokenCell::new(token))
        .endpoints(endpoints(emu))
        .options(o)
        .build()
        .unwrap()
}

/// A fresh emulator and the access token of its Google grant.
pub async fn start() -> (EmulatorHandle, String) {
    let emu = Emulator::start().await.unwrap();
    let token = emu.google_grant()["access_token"].as_str().unwrap().to_owned();
    (emu, token)
}
