//! Requests per operation, counted in the emulator's journal: the figures the
//! README's "requests per operation" table gives. A change that adds a request
//! to an operation fails here first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use storage_core::testkit::payload;
use storage_core::{ByteRange, ObjectName, StorageBackend};
use storage_emulator::{Emulator, EmulatorHandle};
use storage_factory::storage_gdrive::DriveOptions;
use storage_factory::storage_onedrive::OneDriveOptions;
use storage_testsupport as support;

fn drive(emu: &EmulatorHandle) -> Arc<dyn StorageBackend> {
    let token = emu.google_grant()["access_token"].as_str().unwrap().to_owned();
    Arc::new(support::gdrive::backend_with(emu, &token, DriveOptions::default()))
}

fn onedrive(emu: &EmulatorHandle) -> Arc<dyn StorageBackend> {
    let token = emu.microsoft_grant()["access_token"].as_str().unwrap().to_owned();
    Arc::new(support::onedrive::backend_with(emu, &token, OneDriveOptions::default()))
}

/// Requests the emulator received since the journal was last cleared.
fn sent(emu: &EmulatorHandle) -> Vec<String> {
    emu.journal()
        .entries()
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect()
}

/// (operation, requests) for one provider, in the README's order.
async fn count(emu: &EmulatorHandle, b: &Arc<dyn StorageBackend>) -> Vec<(&'static str, usize, Vec<String>)> {
    let body = payload(64 * 1024, 3);
    let name = ObjectName::new("user-1", "doc", ".pdf").unwrap();
    // The user's folder is found (or made) once per process, then cached.
    b.put_object(
        &ObjectName::new("user-1", "warm", ".pdf").unwrap(),
        Bytes::from_static(b"x"),
        "x/y",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let mut step = |what: &'static str, emu: &EmulatorHandle| {
        let s = sent(emu);
        out.push((what, s.len(), s));
        emu.clear_journal();
    };
    emu.clear_journal();
    let key = b.put_object(&name, body.clone(), "application/pdf").await.unwrap();
    step("put_object, 64 KiB", emu);
    assert_eq!(b.get_object(&key).await.unwrap(), body);
    step("get_object, 64 KiB", emu);
    b.stat_object(&key).await.unwrap();
    step("stat_object", emu);
    let range = storage_core::stream::collect(b.get_range(&key, ByteRange::from(10..20)).await.unwrap(), 0)
        .await
        .unwrap();
    assert_eq!(range, body.slice(10..20));
    step("get_range", emu);
    b.delete_object(&key).await.unwrap();
    step("delete_object", emu);
    b.health_check().await.unwrap();
    step("health_check", emu);
    out
}

fn check(provider: &str, got: &[(&str, usize, Vec<String>)], want: &[(&str, usize)]) {
    for ((what, n, requests), (w, expected)) in got.iter().zip(want) {
        assert_eq!(what, w);
        assert_eq!(n, expected, "{provider} {what}: {requests:?}");
    }
}

#[tokio::test]
async fn requests_per_operation() {
    let emu = Emulator::start().await.unwrap();
    let got = count(&emu, &drive(&emu)).await;
    check(
        "gdrive",
        &got,
        &[
            // Multipart upload, then the name's listing (older copies go after it).
            ("put_object, 64 KiB", 2),
            // files.get and the first ranged part at once: one round trip.
            ("get_object, 64 KiB", 2),
            ("stat_object", 1),
            ("get_range", 2),
            // The kind check (a folder's id must never be deleted), then the delete.
            ("delete_object", 2),
            ("health_check", 1),
        ],
    );
    let emu = Emulator::start().await.unwrap();
    let got = count(&emu, &onedrive(&emu)).await;
    check(
        "onedrive",
        &got,
        &[
            // One simple PUT under a temporary name, then the rename.
            ("put_object, 64 KiB", 2),
            // The item (size, hash, download URL), then the download URL.
            ("get_object, 64 KiB", 2),
            ("stat_object", 1),
            ("get_range", 2),
            // The item (kind, eTag), then the delete of that version.
            ("delete_object", 2),
            ("health_check", 1),
        ],
    );
}
