//! Live tests against real Google Drive and OneDrive accounts. Opt-in: each runs
//! only when its environment variable names a credential JSON file, and says
//! why it skipped otherwise. Everything happens under a random user id, which is
//! purged at the end, so a run leaves nothing behind.
//!
//! - `STORAGE_TEST_GDRIVE_CREDENTIALS=FILE` with `STORAGE_GOOGLE_CLIENT_ID` and
//!   `STORAGE_GOOGLE_CLIENT_SECRET` when the file does not carry them;
//! - `STORAGE_TEST_ONEDRIVE_CREDENTIALS=FILE` with `STORAGE_MICROSOFT_CLIENT_ID`,
//!   optional `STORAGE_MICROSOFT_CLIENT_SECRET` and `STORAGE_MICROSOFT_TENANT`.
//!
//! The credential file is a managed connection: refreshed tokens are written back to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::Arc;

use storage_core::testkit::run_conformance;
use storage_factory::storage_gdrive::GoogleApp;
use storage_factory::storage_onedrive::MicrosoftApp;
use storage_factory::{FileCredentialStore, StorageFactory};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn factory() -> StorageFactory {
    let mut b = StorageFactory::builder();
    if let (Some(id), Some(secret)) = (env("STORAGE_GOOGLE_CLIENT_ID"), env("STORAGE_GOOGLE_CLIENT_SECRET")) {
        b = b.google_app(GoogleApp::new(id, secret));
    }
    if let Some(id) = env("STORAGE_MICROSOFT_CLIENT_ID") {
        let app = match env("STORAGE_MICROSOFT_CLIENT_SECRET") {
            Some(s) => MicrosoftApp::new(id, s),
            None => MicrosoftApp::public(id),
        };
        b = b.microsoft_app(app.with_tenant(env("STORAGE_MICROSOFT_TENANT").unwrap_or_else(|| "common".into())));
    }
    b.build().unwrap()
}

async fn live(provider: &str, variable: &str) {
    let Some(path) = env(variable) else {
        eprintln!("skipped live {provider} test: set {variable} to a credential JSON file to run it");
        return;
    };
    let store = Arc::new(FileCredentialStore::single_file(path));
    let backend = factory().connect("live", store).await.unwrap();
    backend.health_check().await.unwrap();
    // The kit works under its own random user id and deletes what it stores.
    let report = run_conformance(backend.as_ref()).await;
    report.assert_passed();
    let user = format!("live-{:016x}", fastrand_like());
    let name = storage_core::ObjectName::new(&user, "probe", ".txt").unwrap();
    backend
        .put_object(&name, storage_core::Bytes::from_static(b"live"), "text/plain")
        .await
        .unwrap();
    let purged = backend.purge_user(&user).await.unwrap();
    assert_eq!(purged.objects, 1);
}

/// A random-enough suffix without another dependency.
fn fastrand_like() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_google_drive() {
    live("google drive", "STORAGE_TEST_GDRIVE_CREDENTIALS").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_onedrive() {
    live("onedrive", "STORAGE_TEST_ONEDRIVE_CREDENTIALS").await;
}
