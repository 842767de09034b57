//! HTTP/2 for API calls, HTTP/1.1 connections of their own for transfers,
//! checked in the emulator's journal (which records each request's version
//! and connection) against an emulator that speaks h2c.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use storage_core::protocol::HttpVersion;
use storage_core::testkit::payload;
use storage_core::{ObjectName, StorageBackend};
use storage_emulator::{Emulator, EmulatorHandle, JournalEntry};
use storage_factory::MemoryCredentialStore;
use storage_factory::storage_gdrive::DriveOptions;
use storage_factory::storage_onedrive::OneDriveOptions;
use storage_tests::emulator::{factory_builder, grant};
use storage_testsupport as support;

const MIB: usize = 1024 * 1024;

/// A transfer: a resumable chunk or upload fragment (`Content-Range`), a
/// ranged read, or a request whose body is a document (a Drive multipart
/// upload or `alt=media` read).
fn is_transfer(e: &JournalEntry) -> bool {
    e.header("content-range").is_some()
        || e.header("range").is_some()
        || e.query_param("uploadType").as_deref() == Some("multipart")
        || e.query_param("alt").as_deref() == Some("media")
}

/// A Drive request sent with reqwest rather than google-drive3: a transfer, a
/// resumable session's start, or a folder's creation.
fn is_drive_reqwest(e: &JournalEntry) -> bool {
    is_transfer(e) || is_session_start(e) || is_folder_creation(e)
}

fn is_session_start(e: &JournalEntry) -> bool {
    e.query_param("uploadType").as_deref() == Some("resumable")
}

/// A `POST` of metadata alone.
fn is_folder_creation(e: &JournalEntry) -> bool {
    e.method == "POST" && e.path.ends_with("/drive/v3/files")
}

/// A Drive backend whose API calls speak h2c to `emu`.
fn drive_on_h2c(emu: &EmulatorHandle) -> storage_factory::storage_gdrive::GoogleDriveBackend {
    let token = grant(emu, "gdrive")["access_token"].as_str().unwrap().to_owned();
    let mut options = DriveOptions::default();
    options.http = HttpVersion::H2c;
    support::gdrive::backend_with(emu, &token, options)
}

fn connections<'a>(entries: impl Iterator<Item = &'a JournalEntry>) -> BTreeSet<u64> {
    entries.map(|e| e.connection).collect()
}

fn versions<'a>(entries: impl Iterator<Item = &'a JournalEntry>) -> BTreeSet<String> {
    entries.map(|e| e.version.clone()).collect()
}

/// The parallel read of 40 MiB: five ranged parts, four at a time, each on a
/// connection of its own.
fn assert_parts_apart(transfers: &[&JournalEntry]) {
    let parts = transfers
        .iter()
        .filter(|e| e.method == "GET" && e.header("range").is_some_and(|r| r.starts_with("bytes=")));
    assert!(connections(parts.copied()).len() >= 4);
}

/// 32 small puts, stats and gets at once, then a 40 MiB put and a parallel get.
async fn exercise(b: &Arc<dyn StorageBackend>, emu: &EmulatorHandle) {
    let warm = ObjectName::new("user-h2", "warm", ".bin").unwrap();
    b.put_object(&warm, Bytes::from_static(b"x"), "x/y").await.unwrap();
    emu.clear_journal();
    let small = payload(64 * 1024, 5);
    let keys = futures::future::join_all((0..32).map(|i| {
        let name = ObjectName::new("user-h2", &format!("small-{i}"), ".bin").unwrap();
        let (b, small) = (Arc::clone(b), small.clone());
        async move { b.put_object(&name, small, "application/octet-stream").await.unwrap() }
    }))
    .await;
    futures::future::join_all(keys.iter().map(|k| async {
        b.stat_object(k).await.unwrap();
        assert_eq!(b.get_object(k).await.unwrap(), small);
    }))
    .await;
    let big = payload(40 * MIB, 9);
    let name = ObjectName::new("user-h2", "big", ".bin").unwrap();
    let key = b
        .put_stream(
            &name,
            support::stream_of(big.clone()),
            big.len() as u64,
            "application/octet-stream",
        )
        .await
        .unwrap();
    assert_eq!(b.get_object(&key).await.unwrap(), big);
}

#[tokio::test]
async fn drive_api_calls_share_an_h2c_connection_and_transfers_get_their_own() {
    let emu = Emulator::start().await.unwrap();
    let b: Arc<dyn StorageBackend> = Arc::new(drive_on_h2c(&emu));
    exercise(&b, &emu).await;
    // A user folder created under the journal's eyes.
    let fresh = ObjectName::new("user-h2-new", "one", ".bin").unwrap();
    b.put_object(&fresh, Bytes::from_static(b"y"), "x/y").await.unwrap();
    let journal = emu.journal();
    let hub: Vec<_> = journal.entries().iter().filter(|e| !is_drive_reqwest(e)).collect();
    let reqwest: Vec<_> = journal.entries().iter().filter(|e| is_drive_reqwest(e)).collect();
    assert!(
        hub.len() > 96 && reqwest.len() > 32,
        "{} through google-drive3, {} with reqwest",
        hub.len(),
        reqwest.len()
    );
    assert_eq!(versions(hub.iter().copied()), BTreeSet::from(["HTTP/2.0".to_owned()]));
    // google-drive3's pool: one connection for every API call it makes.
    assert_eq!(
        connections(hub.iter().copied()).len(),
        1,
        "{:?}",
        connections(hub.iter().copied())
    );
    // Everything sent with reqwest, folder creation and session starts
    // included, shares the HTTP/1.1 pool: no second HTTP/2 connection to
    // Drive's one origin for a call made now and then.
    assert!(reqwest.iter().any(|e| is_session_start(e)));
    assert!(reqwest.iter().any(|e| is_folder_creation(e)));
    assert_eq!(
        versions(reqwest.iter().copied()),
        BTreeSet::from(["HTTP/1.1".to_owned()])
    );
    let transfers: Vec<_> = reqwest.into_iter().filter(|e| is_transfer(e)).collect();
    assert_parts_apart(&transfers);
    emu.shutdown().await;
}

#[tokio::test]
async fn onedrive_transfers_go_on_http1_and_listings_on_h2c() {
    let emu = Emulator::start().await.unwrap();
    let token = grant(&emu, "onedrive")["access_token"].as_str().unwrap().to_owned();
    let mut options = OneDriveOptions::default();
    options.http = HttpVersion::H2c;
    let b: Arc<dyn StorageBackend> = Arc::new(support::onedrive::backend_with(&emu, &token, options));
    exercise(&b, &emu).await;
    let journal = emu.journal();
    let transfers: Vec<_> = journal.entries().iter().filter(|e| is_transfer(e)).collect();
    assert_eq!(
        versions(transfers.iter().copied()),
        BTreeSet::from(["HTTP/1.1".to_owned()])
    );
    assert_parts_apart(&transfers);

    // Listing is sent by the backend's own reqwest client, first page and
    // next links alike (graph-rs-sdk's client picks its version itself, and
    // speaks HTTP/1.1 over plain http).
    emu.clear_journal();
    let request = storage_core::PageRequest::first(2).unwrap();
    let first = b.list_user("user-h2", &request).await.unwrap();
    let token = first.next.expect("34 objects fill more than a page of 2");
    let second = b.list_user("user-h2", &request.after(token)).await.unwrap();
    assert_eq!(second.items.len(), 2);
    let journal = emu.journal();
    assert!(journal.len() >= 2);
    assert_eq!(
        versions(journal.entries().iter()),
        BTreeSet::from(["HTTP/2.0".to_owned()])
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_under_200_calls_costs_one_refresh_on_two_drive_connections() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory_builder(&emu).http_version(HttpVersion::H2c).build().unwrap();
    let own = grant(&emu, "gdrive");
    let store = Arc::new(MemoryCredentialStore::new());
    store.insert("storm", own.to_string());
    let b = factory.connect("storm", store).await.unwrap();
    let name = ObjectName::new("user-h2", "token", ".bin").unwrap();
    let key = b
        .put_object(&name, Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    assert!(emu.expire_access_token(own["access_token"].as_str().unwrap()));
    emu.clear_journal();
    let results = futures::future::join_all((0..200).map(|_| b.stat_object(&key))).await;
    assert!(results.iter().all(Result::is_ok));
    let journal = emu.journal();
    assert_eq!(journal.token_requests().len(), 1);
    let calls: Vec<_> = journal
        .entries()
        .iter()
        .filter(|e| !journal.token_requests().iter().any(|t| t.seq == e.seq))
        .collect();
    assert!(calls.len() >= 200, "{} calls", calls.len());
    assert_eq!(versions(calls.iter().copied()), BTreeSet::from(["HTTP/2.0".to_owned()]));
    // The emulator allows 100 streams per connection: the calls past them go
    // on a second connection instead of waiting for a stream.
    assert_eq!(connections(calls.iter().copied()).len(), 2);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_hundred_drive_calls_in_flight_share_one_connection() {
    let emu = Emulator::start().await.unwrap();
    let b = drive_on_h2c(&emu);
    let name = ObjectName::new("user-h2", "lanes", ".bin").unwrap();
    let key = b
        .put_object(&name, Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    emu.clear_journal();
    let results = futures::future::join_all((0..100).map(|_| b.stat_object(&key))).await;
    assert!(results.iter().all(Result::is_ok));
    let journal = emu.journal();
    assert_eq!(journal.entries().len(), 100);
    assert_eq!(connections(journal.entries().iter()).len(), 1);
    emu.shutdown().await;
}
