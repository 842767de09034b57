//! OneDrive's ranged reads, listing, quota and conditional create against
//! `storage-emulator`, where the kit alone cannot reach: pages that Graph cuts
//! short, next links that were tampered with or expired, quotas with and
//! without the facet, and a download host that ignores `Range`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use storage_core::testkit::{payload, run_conformance_with};
use storage_core::{ByteRange, ObjectName, PageRequest, PageToken, RetryPolicy, StorageBackend, StorageError};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, Origin, Provider};
use storage_testsupport::onedrive::{backend, folders, start};

fn token_of(emu: &EmulatorHandle) -> String {
    emu.microsoft_grant()["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_passes_when_graph_cuts_every_page_to_two_items() {
    let emu = Emulator::builder().max_page_size(2).start().await.unwrap();
    let drive = backend(&emu, &token_of(&emu), RetryPolicy::new());
    run_conformance_with(&drive, &folders(&emu)).await.assert_passed();
    let paged = emu.journal().filter(|e| e.query_param("$skiptoken").is_some()).len();
    assert!(paged >= 3, "only {paged} requests followed a next link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_is_followed_only_on_graph_and_for_the_users_folder() {
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
    let link = next.as_str().to_owned();
    assert!(
        link.starts_with(emu.endpoints().microsoft.graph.as_str().trim_end_matches('/')),
        "{link}"
    );
    // Alice's link names Alice's folder: listing Bob with it is refused.
    let err = drive
        .list_user("bob", &PageRequest::first(1).unwrap().after(next.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err}");
    // A link moved to another host never gets the bearer.
    let moved = link.replacen("127.0.0.1", "localhost", 1);
    let before = emu.journal().len();
    let err = drive
        .list_user("alice", &PageRequest::first(1).unwrap().after(PageToken::new(moved)))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }), "{err}");
    assert_eq!(emu.journal().len(), before, "a refused link sent a request");
    // An expired `$skiptoken`: the caller is told to start over.
    emu.faults().add(
        FaultRule::new(FaultAction::status(410))
            .provider(Provider::Microsoft)
            .method("GET")
            .path("/v1.0/me/drive/items/*/children")
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
async fn quota_with_the_facet_and_without_it() {
    let emu = Emulator::builder()
        .graph_quota_bytes(Some(5_000_000))
        .start()
        .await
        .unwrap();
    let drive = backend(&emu, &token_of(&emu), RetryPolicy::new());
    drive
        .put_object(&ObjectName::new("u", "d", "").unwrap(), payload(1000, 3), "text/plain")
        .await
        .unwrap();
    let q = drive.quota().await.unwrap();
    assert_eq!(
        (q.total, q.used, q.remaining),
        (Some(5_000_000), Some(1000), Some(4_999_000))
    );

    let bare = Emulator::builder().graph_quota_bytes(None).start().await.unwrap();
    let drive = backend(&bare, &token_of(&bare), RetryPolicy::new());
    let q = drive.quota().await.unwrap();
    assert_eq!(
        (q.total, q.used, q.remaining),
        (None, None, None),
        "a missing facet is unknown, not zero"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_that_the_download_host_ignores_is_still_the_range() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    let text: String = (0..5_000).map(|i| format!("{i:05}")).collect();
    let body = Bytes::from(text.clone());
    let key = drive
        .put_object(&ObjectName::new("u", "r", ".txt").unwrap(), body.clone(), "text/plain")
        .await
        .unwrap();
    emu.faults().add(
        FaultRule::new(FaultAction::Respond {
            status: 200,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: Some(text),
        })
        .provider(Provider::Microsoft)
        .origin(Origin::Content)
        .method("GET")
        .times(1),
    );
    let got = drive.get_range(&key, ByteRange::last(123)).await.unwrap();
    let got = storage_core::stream::collect(got, 0).await.unwrap();
    assert_eq!(got, body.slice(body.len() - 123..));
}
