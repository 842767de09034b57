//! `OneDriveBackend` against `storage-emulator` in strict mode (illegal fragment
//! sizes and `Authorization` on an `uploadUrl` are refused): the conformance
//! kit, and the faults that break rclone's and OpenDAL's uploads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use storage_core::testkit::payload as data;
use storage_core::{
    ByteStream, ConnectionReason, ObjectKey, ObjectName, RetryPolicy, StorageBackend, StorageError, TokenCell,
};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, Origin, Provider};
use storage_onedrive::{FRAGMENT_UNIT, MicrosoftApp, MicrosoftEndpoints, OneDriveBackend, OneDriveOptions, oauth};
use storage_testsupport::onedrive::{backend_with, endpoints, folders, options};
use storage_testsupport::{name, stream_of};

/// Fragments of 640 KiB keep the fault tests small while taking several fragments.
const FRAGMENT: usize = 2 * FRAGMENT_UNIT;

struct Fixture {
    emu: EmulatorHandle,
    drive: OneDriveBackend,
    grant: serde_json::Value,
}

async fn fixture_with(opts: OneDriveOptions) -> Fixture {
    let emu = Emulator::start().await.unwrap();
    let grant = emu.microsoft_grant();
    let drive = backend_with(&emu, grant["access_token"].as_str().unwrap(), opts);
    Fixture { emu, drive, grant }
}

async fn fixture() -> Fixture {
    fixture_with(options(FRAGMENT)).await
}

fn fragment_rule(action: FaultAction) -> FaultRule {
    FaultRule::new(action)
        .origin(Origin::Content)
        .method("PUT")
        .path("/up/*")
}

/// The declared ranges of every fragment PUT, in order.
fn fragment_ranges(emu: &EmulatorHandle) -> Vec<(u64, u64)> {
    emu.journal()
        .for_origin(Origin::Content)
        .iter()
        .filter(|e| e.method == "PUT")
        .filter_map(|e| {
            let r = e.header("content-range")?.strip_prefix("bytes ")?;
            let (span, _) = r.split_once('/')?;
            let (a, b) = span.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// No request to the upload or download origin carried `Authorization`, and
/// every fragment but each upload's last is a multiple of 320 KiB.
fn assert_clean_wire(emu: &EmulatorHandle) {
    let journal = emu.journal();
    let content = journal.for_origin(Origin::Content);
    assert!(
        content.iter().all(|e| e.header("authorization").is_none()),
        "a bearer reached the content origin"
    );
    for e in content.iter().filter(|e| e.method == "PUT") {
        let r = e.header("content-range").unwrap();
        let (span, total) = r.strip_prefix("bytes ").unwrap().split_once('/').unwrap();
        let (a, b) = span.split_once('-').unwrap();
        let (a, b, total): (u64, u64, u64) = (a.parse().unwrap(), b.parse().unwrap(), total.parse().unwrap());
        assert!(
            b + 1 == total || (b + 1 - a) % FRAGMENT_UNIT as u64 == 0,
            "illegal fragment {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_kit_in_strict_mode() {
    let f = fixture().await;
    let report = storage_core::testkit::run_conformance_with(&f.drive, &folders(&f.emu)).await;
    report.assert_passed();
    assert!(report.skipped.is_empty(), "{report}");
    assert!(!fragment_ranges(&f.emu).is_empty());
    assert_clean_wire(&f.emu);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fragment_accepted_in_part_resumes_from_next_expected_ranges() {
    let f = fixture().await;
    f.emu.faults().add(
        fragment_rule(FaultAction::AcceptPartialChunk {
            bytes: FRAGMENT_UNIT as u64,
        })
        .skip(1)
        .times(1),
    );
    let body = data(5 * FRAGMENT + 17, 1);
    let key = f
        .drive
        .put_stream(&name("partial"), stream_of(body.clone()), body.len() as u64, "x/y")
        .await
        .unwrap();
    assert_eq!(f.drive.get_object(&key).await.unwrap(), body);
    let starts: Vec<u64> = fragment_ranges(&f.emu).iter().map(|r| r.0).collect();
    assert!(starts.contains(&((FRAGMENT + FRAGMENT_UNIT) as u64)), "{starts:?}");
    assert_clean_wire(&f.emu);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlap_416_asks_the_session_and_goes_on() {
    let f = fixture().await;
    f.emu.faults().add(
        fragment_rule(FaultAction::Respond {
            status: 416,
            headers: vec![],
            body: None,
        })
        .skip(2)
        .times(1),
    );
    let body = data(4 * FRAGMENT + 3, 2);
    let key = f.drive.put_object(&name("overlap"), body.clone(), "x/y").await.unwrap();
    assert_eq!(f.drive.get_object(&key).await.unwrap(), body);
    let status_gets = f
        .emu
        .journal()
        .for_origin(Origin::Content)
        .iter()
        .filter(|e| e.method == "GET" && e.path.starts_with("/up/"))
        .count();
    assert_eq!(status_gets, 1);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_fragment_resumes() {
    let f = fixture().await;
    f.emu
        .faults()
        .add(fragment_rule(FaultAction::ResetBeforeResponse).skip(1).times(1));
    let body = data(4 * FRAGMENT, 3);
    let key = f
        .drive
        .put_stream(&name("reset"), stream_of(body.clone()), body.len() as u64, "x/y")
        .await
        .unwrap();
    assert_eq!(f.drive.get_object(&key).await.unwrap(), body);
    assert_clean_wire(&f.emu);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_restarts_once_for_bytes_and_cancels_for_streams() {
    let f = fixture().await;
    f.emu
        .faults()
        .add(fragment_rule(FaultAction::ExpireUploadSession).skip(2).times(1));
    let body = data(4 * FRAGMENT, 4);
    let key = f.drive.put_object(&name("expired"), body.clone(), "x/y").await.unwrap();
    assert_eq!(f.drive.get_object(&key).await.unwrap(), body);
    assert_eq!(
        f.emu
            .journal()
            .filter(|e| e.method == "POST" && e.path.ends_with(":/createUploadSession"))
            .len(),
        2
    );

    f.emu
        .faults()
        .add(fragment_rule(FaultAction::ExpireUploadSession).skip(2).times(1));
    let err = f
        .drive
        .put_stream(
            &name("expired-stream"),
            stream_of(body.clone()),
            body.len() as u64,
            "x/y",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Provider { status: 404, .. }), "{err:?}");
    assert!(f.emu.graph_item_by_path("/user-1/expired-stream.bin").is_none());
    assert_eq!(f.emu.graph_open_sessions(), 0, "the failed session was cancelled");
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_with_retry_after_is_waited_out() {
    let f = fixture().await;
    let key = f
        .drive
        .put_object(&name("throttled"), data(100, 5), "x/y")
        .await
        .unwrap();
    f.emu.faults().add(
        FaultRule::new(FaultAction::retry_after(429, 1))
            .provider(Provider::Microsoft)
            .method("GET")
            .path("/v1.0/me/drive/items/*")
            .times(1),
    );
    f.emu.faults().add(
        FaultRule::new(FaultAction::retry_after(503, 1))
            .provider(Provider::Microsoft)
            .method("GET")
            .path("/v1.0/me/drive/items/*")
            .times(1),
    );
    let started = Instant::now();
    assert_eq!(f.drive.stat_object(&key).await.unwrap().size, 100);
    assert!(started.elapsed() >= Duration::from_secs(2), "{:?}", started.elapsed());
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_beyond_the_budget_is_rate_limited() {
    let mut opts = options(FRAGMENT);
    opts.retry = opts.retry.with_max_attempts(3);
    let f = fixture_with(opts).await;
    let key = f.drive.put_object(&name("budget"), data(10, 6), "x/y").await.unwrap();
    f.emu.clear_journal();
    f.emu.faults().add(
        FaultRule::new(FaultAction::retry_after(429, 0))
            .provider(Provider::Microsoft)
            .method("GET")
            .path("/v1.0/me/drive/items/*"),
    );
    let err = f.drive.stat_object(&key).await.unwrap_err();
    assert!(matches!(err, StorageError::RateLimited { .. }), "{err:?}");
    assert_eq!(f.emu.journal().requests("GET", "/v1.0/me/drive/items/").len(), 3);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_token_expired() {
    let f = fixture().await;
    let key = f.drive.put_object(&name("expiring"), data(10, 7), "x/y").await.unwrap();
    f.emu.expire_access_tokens();
    f.emu.clear_journal();
    let err = f.drive.stat_object(&key).await.unwrap_err();
    assert_eq!(err.connection_reason(), Some(ConnectionReason::TokenExpired));
    assert_eq!(f.emu.journal().len(), 1, "a refused token is not retried");
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_a_revoked_grant_is_invalid_grant() {
    let f = fixture().await;
    let app_creds = f.emu.microsoft_app();
    let app = MicrosoftApp::new(&app_creds.client_id, app_creds.client_secret.as_str());
    let http = reqwest::Client::new();
    let first = storage_core::Secret::new(f.grant["refresh_token"].as_str().unwrap());
    let grant = oauth::refresh(&http, &endpoints(&f.emu), &app, &first, RetryPolicy::never())
        .await
        .unwrap();
    let rotated = grant.refresh_token.expect("microsoft rotates the refresh token");
    assert_ne!(rotated.expose(), first.expose());
    // The new access token works.
    let drive = OneDriveBackend::builder(TokenCell::new(grant.access_token.expose()))
        .endpoints(endpoints(&f.emu))
        .build()
        .unwrap();
    drive.health_check().await.unwrap();
    f.emu.revoke_grants();
    let err = oauth::refresh(&http, &endpoints(&f.emu), &app, &rotated, RetryPolicy::new())
        .await
        .unwrap_err();
    assert_eq!(err.connection_reason(), Some(ConnectionReason::InvalidGrant));
    assert_eq!(
        f.emu.journal().requests("POST", "/common/oauth2/v2.0/token").len(),
        2,
        "never retried"
    );
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_mid_body_resumes_and_verifies() {
    let f = fixture().await;
    let body = data(3 * 1024 * 1024 + 9, 8);
    let key = f.drive.put_object(&name("cut"), body.clone(), "x/y").await.unwrap();
    f.emu.faults().add(
        FaultRule::new(FaultAction::TruncateBody {
            after_bytes: 1024 * 1024,
        })
        .origin(Origin::Content)
        .method("GET")
        .path("/dl/*")
        .times(1),
    );
    assert_eq!(f.drive.get_object(&key).await.unwrap(), body);
    let journal = f.emu.journal();
    let ranged = journal.filter(|e| e.path.starts_with("/dl/") && e.header("range").is_some());
    assert_eq!(ranged.len(), 1);
    assert_clean_wire(&f.emu);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_xor_mismatch_is_integrity_and_leaves_nothing() {
    let f = fixture().await;
    let body = data(3 * FRAGMENT, 9);
    // The last fragment's answer reports another hash than the bytes sent.
    let lie = serde_json::json!({"id": "01LIE", "name": "mismatch.bin", "size": body.len(), "file": {"hashes": {"quickXorHash": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}}});
    f.emu.faults().add(
        fragment_rule(FaultAction::Respond {
            status: 201,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(lie.to_string()),
        })
        .skip(2)
        .times(1),
    );
    let err = f.drive.put_object(&name("mismatch"), body, "x/y").await.unwrap_err();
    assert!(matches!(err, StorageError::Integrity { .. }), "{err:?}");
    assert!(f.emu.graph_item_by_path("/user-1/mismatch.bin").is_none());
    assert_eq!(
        f.emu.journal().requests("DELETE", "/v1.0/me/drive/items/01LIE").len(),
        1,
        "the item was deleted"
    );
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_stream_goes_up_in_bounded_memory() {
    let f = fixture_with(options(32 * FRAGMENT_UNIT)).await;
    const SIZE: u64 = 256 * 1024 * 1024;
    const PIECE: usize = 64 * 1024;
    let pieces = (0..SIZE / PIECE as u64).map(|i| Ok(Bytes::from(vec![(i % 251) as u8; PIECE])));
    let stream: ByteStream = Box::pin(futures::stream::iter(pieces));
    let key = f.drive.put_stream(&name("big"), stream, SIZE, "x/y").await.unwrap();
    assert_eq!(f.drive.stat_object(&key).await.unwrap().size, SIZE);
    let peak = f.drive.peak_upload_buffer();
    assert!(peak <= 32 * FRAGMENT_UNIT + PIECE, "held {peak} bytes at once");
    assert!(peak >= 32 * FRAGMENT_UNIT, "{peak}");
    assert_clean_wire(&f.emu);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_get_urls_read_without_credentials_for_up_to_an_hour() {
    let f = fixture().await;
    let body = data(1000, 10);
    let key = f.drive.put_object(&name("shared"), body.clone(), "x/y").await.unwrap();
    let url = f.drive.presigned_get_url(&key, Duration::from_secs(900)).await.unwrap();
    let got = reqwest::get(url).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, body);
    let err = f
        .drive
        .presigned_get_url(&key, Duration::from_secs(3601))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }));
    let err = f
        .drive
        .generate_presigned_put_url(&key, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }));
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_keys_never_reach_a_url() {
    let f = fixture().await;
    f.emu.clear_journal();
    for key in ["../x", "a/b", "root:/x:", "x?y", "x#y", "x y"] {
        let err = f.drive.stat_object(&ObjectKey::new(key)).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidInput { .. }), "{key}: {err:?}");
    }
    assert!(f.emu.journal().is_empty());
    f.emu.shutdown().await;
}

#[test]
fn foreign_hosts_are_refused_not_panicked_on() {
    let endpoints = MicrosoftEndpoints {
        graph: url::Url::parse("https://graph.example.com/v1.0/").unwrap(),
        login: url::Url::parse("https://login.microsoftonline.com/").unwrap(),
    };
    let err = OneDriveBackend::builder(TokenCell::new("t"))
        .endpoints(endpoints)
        .build()
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidInput { .. }));
    let dbg = format!(
        "{:?}",
        OneDriveBackend::builder(TokenCell::new("eyJ-secret-token"))
            .build()
            .unwrap()
    );
    assert!(!dbg.contains("secret-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_sharing_one_graph_pool_each_send_their_own_token() {
    let emu = Emulator::start().await.unwrap();
    let pool = storage_onedrive::GraphPool::new(&endpoints(&emu), &options(FRAGMENT)).unwrap();
    let (a, b) = (emu.microsoft_grant(), emu.microsoft_grant());
    let build = |g: &serde_json::Value| {
        OneDriveBackend::builder(TokenCell::new(g["access_token"].as_str().unwrap()))
            .endpoints(endpoints(&emu))
            .options(options(FRAGMENT))
            .pool(pool.clone())
            .build()
            .unwrap()
    };
    let (da, db) = (build(&a), build(&b));
    let calls = (0..20).map(|i| {
        let d = if i % 2 == 0 { da.clone() } else { db.clone() };
        async move { d.health_check().await }
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    let journal = emu.journal();
    let ta = a["access_token"].as_str().unwrap();
    let tb = b["access_token"].as_str().unwrap();
    assert_eq!(journal.with_bearer(ta).len(), 10);
    assert_eq!(journal.with_bearer(tb).len(), 10);
    assert!(emu.expire_access_token(ta));
    assert_eq!(
        da.health_check().await.unwrap_err().connection_reason(),
        Some(ConnectionReason::TokenExpired)
    );
    db.health_check().await.unwrap();
    emu.shutdown().await;
}

/// A replacing put whose bytes arrive damaged (the last fragment is corrupted in
/// transit, so OneDrive's quickXorHash differs from what was sent) is `Integrity`,
/// and the previous version, which the caller was told is stored, still reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_verification_of_a_replacing_put_keeps_the_previous_version() {
    let f = fixture().await;
    let first = data(3 * FRAGMENT, 21);
    let key = f
        .drive
        .put_object(&name("precious"), first.clone(), "x/y")
        .await
        .unwrap();
    f.emu.faults().add(
        fragment_rule(FaultAction::CorruptRequestBody { offset: 17 })
            .skip(2)
            .times(1),
    );
    let second = data(3 * FRAGMENT, 22);
    let err = f.drive.put_object(&name("precious"), second, "x/y").await.unwrap_err();
    assert!(matches!(err, StorageError::Integrity { .. }), "{err:?}");
    assert_eq!(
        f.drive.get_object(&key).await.unwrap(),
        first,
        "the previous version was destroyed"
    );
    // No damaged copy is left behind under any name.
    let files: Vec<_> = f.emu.graph_items().into_iter().filter(|i| !i.is_folder).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    f.emu.shutdown().await;
}

/// Users whose ids differ only in case, through the backend's own paths: each keeps
/// its own folder, and a purge of one leaves the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_differing_in_case_get_their_own_folders() {
    let f = fixture().await;
    let a = ObjectName::new("Alice", "d1", ".pdf").unwrap();
    let b = ObjectName::new("alice", "d1", ".pdf").unwrap();
    let ka = f.drive.put_object(&a, data(10, 1), "x/y").await.unwrap();
    let kb = f.drive.put_object(&b, data(20, 2), "x/y").await.unwrap();
    assert_ne!(ka, kb);
    assert_eq!(f.drive.get_object(&ka).await.unwrap(), data(10, 1));
    assert_eq!(f.drive.get_object(&kb).await.unwrap(), data(20, 2));
    f.drive.purge_user("alice").await.unwrap();
    assert_eq!(f.drive.get_object(&ka).await.unwrap(), data(10, 1));
    assert!(matches!(
        f.drive.get_object(&kb).await,
        Err(StorageError::NotFound { .. })
    ));
    f.emu.shutdown().await;
}
