//! The managed layer's free-space check: a large `put_stream` that cannot fit
//! is refused before a byte is sent, on both providers, and the check can be
//! turned off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use storage_core::testkit::payload;
use storage_core::{ObjectName, StorageError};
use storage_emulator::{Emulator, EmulatorHandle, Origin};
use storage_factory::MemoryCredentialStore;
use storage_tests::emulator::{factory_builder, grant, quick_retry};

const LIMIT: u64 = 3 * 1024 * 1024;
const SIZE: usize = 4 * 1024 * 1024;

async fn emulator() -> EmulatorHandle {
    Emulator::builder()
        .drive_quota_bytes(LIMIT)
        .graph_quota_bytes(Some(LIMIT))
        .start()
        .await
        .unwrap()
}

/// Requests that would carry a body: an upload session's start, or a multipart upload.
fn uploads(emu: &EmulatorHandle) -> usize {
    emu.journal()
        .filter(|e| e.method == "POST" && (e.path.contains("upload") || e.path.contains("createUploadSession")))
        .len()
        + emu
            .journal()
            .for_origin(Origin::Content)
            .iter()
            .filter(|e| e.method == "PUT")
            .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_that_cannot_fit_is_refused_before_a_byte_is_sent() {
    for provider in ["gdrive", "onedrive"] {
        let emu = emulator().await;
        // Checked from 1 MiB here; the default, 8 MiB, is above this test's sizes.
        let factory = factory_builder(&emu)
            .retry(quick_retry())
            .quota_check(Some(1024 * 1024))
            .build()
            .unwrap();
        let store = Arc::new(MemoryCredentialStore::new());
        store.insert("c", grant(&emu, provider).to_string());
        let drive = factory.connect("c", store).await.unwrap();
        let name = ObjectName::new("u", "big", ".bin").unwrap();
        emu.clear_journal();
        let body = storage_core::stream::from_bytes(payload(SIZE, 1), 1 << 20);
        let err = drive
            .put_stream(&name, body, SIZE as u64, "application/octet-stream")
            .await
            .unwrap_err();
        match err {
            StorageError::InsufficientStorage { needed, free } => {
                assert_eq!((needed, free), (SIZE as u64, LIMIT), "{provider}");
            }
            other => panic!("{provider}: expected InsufficientStorage, got {other}"),
        }
        assert_eq!(uploads(&emu), 0, "{provider}: an upload started");
        // A put that fits goes through.
        let small = storage_core::stream::from_bytes(payload(1000, 2), 1000);
        drive
            .put_stream(&name, small, 1000, "application/octet-stream")
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_check_off_the_provider_refuses_instead() {
    for provider in ["gdrive", "onedrive"] {
        let emu = emulator().await;
        let factory = factory_builder(&emu)
            .retry(quick_retry())
            .quota_check(None)
            .build()
            .unwrap();
        let store = Arc::new(MemoryCredentialStore::new());
        store.insert("c", grant(&emu, provider).to_string());
        let drive = factory.connect("c", store).await.unwrap();
        let name = ObjectName::new("u", "big", ".bin").unwrap();
        emu.clear_journal();
        let body = storage_core::stream::from_bytes(payload(SIZE, 1), 1 << 20);
        let err = drive
            .put_stream(&name, body, SIZE as u64, "application/octet-stream")
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::QuotaExceeded), "{provider}: {err}");
        assert!(uploads(&emu) > 0, "{provider}: nothing was sent");
        assert!(
            emu.journal()
                .filter(|e| e.path.ends_with("/about") || e.path == "/v1.0/me/drive")
                .is_empty(),
            "{provider}: the quota was read although the check is off"
        );
    }
}
