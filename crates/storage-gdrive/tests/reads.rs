//! Drive's ranged reads, listing, quota and conditional create against
//! `storage-emulator`, where the kit alone cannot reach: pages that Drive cuts
//! short, tokens that were tampered with or expired, quotas with and without a
//! limit, and a range Drive ignores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use storage_core::testkit::{payload, run_conformance_with};
use storage_core::{ByteRange, ObjectName, PageRequest, PageToken, RetryPolicy, StorageBackend, StorageError};
use storage_emulator::{Emulator, FaultAction, FaultRule, Provider};
use storage_testsupport::gdrive::{backend, folders, start};

async fn token_of(emu: &storage_emulator::EmulatorHandle) -> String {
    emu.google_grant()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_when_drive_cuts_every_page_to_two_files() {
    let emu = Emulator::builder().max_page_size(2).start().await.unwrap();
    let drive = backend(&emu, &token_of(&emu).await, RetryPolicy::new());
    run_conformance_with(&drive, &folders(&emu)).await.assert_passed();
    // The listing and the name lookups really paged.
    let paged = emu.journal().filter(|e| e.query_param("pageToken").is_some()).len();
    assert!(paged > 3, "only {paged} requests followed a page token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_token_is_bound_to_its_user_and_an_expired_one_is_invalid_input() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    for doc in ["a", "b", "c"] {
        let name = ObjectName::new("alice", doc, ".pdf").unwrap();
        drive
            .put_object(&name, payload(10, 1), "application/pdf")
            .await
            .unwrap();
    }
    drive
        .put_object(&ObjectName::new("bob", "x", "").unwrap(), payload(5, 2), "text/plain")
        .await
        .unwrap();
    let first = drive.list_user("alice", &PageRequest::first(1).unwrap()).await.unwrap();
    let next = first.next.clone().expect("three objects in pages of one");
    // Alice's token does not list Bob's folder, and a forged one is refused.
    for user in ["bob", "Alice"] {
        let err = drive
            .list_user(user, &PageRequest::first(1).unwrap().after(next.clone()))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidInput { .. }), "{user}: {err}");
    }
    let forged = PageRequest::first(1).unwrap().after(PageToken::new("garbage"));
    assert!(matches!(
        drive.list_user("alice", &forged).await,
        Err(StorageError::InvalidInput { .. })
    ));
    // Drive answers a token it no longer honours with 400: the caller is told to start over.
    emu.faults().add(
        FaultRule::new(FaultAction::google_error(400, "invalid"))
            .provider(Provider::Google)
            .method("GET")
            .path("/drive/v3/files")
            .skip(1)
            .times(1),
    );
    let err = drive
        .list_user("alice", &PageRequest::first(1).unwrap().after(next))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StorageError::InvalidInput { message } if message.contains("first page")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_with_a_limit_and_without_one() {
    let emu = Emulator::builder().drive_quota_bytes(1_000_000).start().await.unwrap();
    let drive = backend(&emu, &token_of(&emu).await, RetryPolicy::new());
    drive
        .put_object(&ObjectName::new("u", "d", "").unwrap(), payload(1000, 3), "text/plain")
        .await
        .unwrap();
    let q = drive.quota().await.unwrap();
    assert_eq!(
        (q.total, q.used, q.remaining),
        (Some(1_000_000), Some(1000), Some(999_000))
    );

    let unlimited = Emulator::builder().drive_quota_unlimited().start().await.unwrap();
    let drive = backend(&unlimited, &token_of(&unlimited).await, RetryPolicy::new());
    let q = drive.quota().await.unwrap();
    assert_eq!((q.total, q.remaining), (None, None), "no limit is unlimited, not zero");
    assert_eq!(q.used, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_that_drive_ignores_is_still_the_range() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    // Text, so that the fault below can carry the same body.
    let text: String = (0..5_000).map(|i| format!("{i:05}")).collect();
    let body = Bytes::from(text.clone());
    let key = drive
        .put_object(&ObjectName::new("u", "r", ".txt").unwrap(), body.clone(), "text/plain")
        .await
        .unwrap();
    // A proxy that drops `Range`: the whole body with 200, after the metadata read.
    emu.faults().add(
        FaultRule::new(FaultAction::Respond {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: Some(text),
        })
        .provider(Provider::Google)
        .method("GET")
        .path("/drive/v3/files/*")
        .skip(1)
        .times(1),
    );
    let got = drive.get_range(&key, ByteRange::from(100..200)).await.unwrap();
    let got = storage_core::stream::collect(got, 0).await.unwrap();
    assert_eq!(got, body.slice(100..200));
}
