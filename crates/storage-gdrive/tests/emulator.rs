//! `GoogleDriveBackend` against `storage-emulator` in strict mode: the
//! conformance kit, and the faults rclone and OpenDAL users suffer from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use storage_core::testkit::payload as data;
use storage_core::{ByteStream, ConnectionReason, ObjectName, RetryPolicy, StorageBackend, StorageError, TokenCell};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, Origin, Provider};
use storage_gdrive::{CHUNK_UNIT, DriveOptions, GoogleApp, GoogleDriveBackend, oauth};
use storage_testsupport::gdrive::{backend_with, endpoints, folders, options};
use storage_testsupport::{name, stream_of};

/// Chunks of 512 KiB keep the fault tests small while still taking several chunks.
const CHUNK: usize = 2 * CHUNK_UNIT;

struct Fixture {
    emu: EmulatorHandle,
    drive: GoogleDriveBackend,
    grant: serde_json::Value,
}

async fn fixture_with(opts: DriveOptions) -> Fixture {
    let emu = Emulator::start().await.unwrap();
    let grant = emu.google_grant();
    let token = grant["access_token"].as_str().unwrap().to_owned();
    let drive = backend_with(&emu, &token, opts);
    Fixture { emu, drive, grant }
}

async fn fixture() -> Fixture {
    fixture_with(options(CHUNK)).await
}

/// Files named `file_name` the emulator holds.
fn files_named(emu: &EmulatorHandle, file_name: &str) -> usize {
    emu.drive_files().iter().filter(|f| f.name == file_name).count()
}

fn chunk_rule(action: FaultAction) -> FaultRule {
    FaultRule::new(action)
        .provider(Provider::Google)
        .origin(Origin::Content)
        .method("PUT")
        .path("/upload/drive/v3/files")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_kit_in_strict_mode() {
    let f = fixture().await;
    let report = storage_core::testkit::run_conformance_with(&f.drive, &folders(&f.emu)).await;
    report.assert_passed();
    assert!(report.skipped.is_empty(), "{report}");
    // No chunk request carried a token: the session URI authorises the upload.
    let journal = f.emu.journal();
    let chunks = journal.for_origin(Origin::Content);
    assert!(!chunks.is_empty(), "the 5 MiB sizes must have gone up resumably");
    assert!(chunks.iter().all(|e| e.header("authorization").is_none()));
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_308_range_resumes_from_what_the_server_kept() {
    let f = fixture().await;
    // The second chunk is kept only in part: the next chunk must start where Range says.
    f.emu.faults().add(
        chunk_rule(FaultAction::AcceptPartialChunk { bytes: 100_000 })
            .skip(1)
            .times(1),
    );
    let body = data(6 * 1024 * 1024 + 11, 1);
    let key = f
        .drive
        .put_stream(
            &name("partial"),
            stream_of(body.clone()),
            body.len() as u64,
            "application/pdf",
        )
        .await
        .unwrap();
    assert_eq!(f.drive.get_object(&key).await.unwrap(), body);
    let starts: Vec<u64> = f
        .emu
        .journal()
        .for_origin(Origin::Content)
        .iter()
        .filter_map(|e| {
            e.header("content-range")?
                .strip_prefix("bytes ")?
                .split('-')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        starts.contains(&(CHUNK as u64 + 100_000)),
        "no chunk resumed at the kept offset: {starts:?}"
    );
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_reset_mid_chunk_queries_the_session_and_resumes() {
    let f = fixture().await;
    f.emu
        .faults()
        .add(chunk_rule(FaultAction::ResetBeforeResponse).skip(2).times(1));
    let body = data(3 * 1024 * 1024 * 2 + 3, 2);
    let key = f
        .drive
        .put_object(&name("reset"), body.clone(), "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(f.drive.get_object(&key).await.unwrap(), body);
    let queries = f
        .emu
        .journal()
        .for_origin(Origin::Content)
        .iter()
        .filter(|e| e.header("content-range").is_some_and(|r| r.starts_with("bytes */")))
        .count();
    assert_eq!(queries, 1, "exactly one status query after the reset");
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_restarts_a_replayable_upload_once() {
    let f = fixture().await;
    f.emu
        .faults()
        .add(chunk_rule(FaultAction::ExpireUploadSession).skip(3).times(1));
    let body = data(6 * 1024 * 1024, 3);
    let key = f
        .drive
        .put_object(&name("expired"), body.clone(), "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(f.drive.get_object(&key).await.unwrap(), body);
    assert_eq!(
        f.emu.journal().requests("POST", "/upload/drive/v3/files").len(),
        2,
        "one restart"
    );
    assert_eq!(files_named(&f.emu, "expired.bin"), 1);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_of_a_consumed_stream_fails_and_leaves_nothing() {
    let f = fixture().await;
    f.emu
        .faults()
        .add(chunk_rule(FaultAction::ExpireUploadSession).skip(3).times(1));
    let body = data(6 * 1024 * 1024, 4);
    let err = f
        .drive
        .put_stream(
            &name("expired-stream"),
            stream_of(body.clone()),
            body.len() as u64,
            "application/octet-stream",
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Provider { status: 404, .. }), "{err:?}");
    assert_eq!(files_named(&f.emu, "expired-stream.bin"), 0);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_429s_with_retry_after_are_waited_out() {
    let f = fixture().await;
    let key = f
        .drive
        .put_object(&name("throttled"), data(1000, 5), "text/plain")
        .await
        .unwrap();
    f.emu.faults().add(
        FaultRule::new(FaultAction::retry_after(429, 1))
            .provider(Provider::Google)
            .method("GET")
            .path("/drive/v3/files/*")
            .times(3),
    );
    let started = Instant::now();
    let meta = f.drive.stat_object(&key).await.unwrap();
    assert_eq!(meta.size, 1000);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "waited {:?}",
        started.elapsed()
    );
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_beyond_the_budget_are_rate_limited() {
    let mut opts = options(CHUNK);
    opts.retry = opts.retry.with_max_attempts(3);
    let f = fixture_with(opts).await;
    let key = f
        .drive
        .put_object(&name("budget"), data(10, 6), "text/plain")
        .await
        .unwrap();
    f.emu.clear_journal();
    f.emu.faults().add(
        FaultRule::new(FaultAction::google_error(403, "userRateLimitExceeded"))
            .provider(Provider::Google)
            .method("GET")
            .path("/drive/v3/files/*"),
    );
    let err = f.drive.stat_object(&key).await.unwrap_err();
    assert!(matches!(err, StorageError::RateLimited { .. }), "{err:?}");
    assert_eq!(
        f.emu.journal().requests("GET", "/drive/v3/files/").len(),
        3,
        "exactly the retry budget"
    );
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_token_expired_and_never_retried() {
    let f = fixture().await;
    let key = f
        .drive
        .put_object(&name("expiring"), data(10, 7), "text/plain")
        .await
        .unwrap();
    f.emu.expire_access_tokens();
    f.emu.clear_journal();
    let err = f.drive.stat_object(&key).await.unwrap_err();
    assert_eq!(err.connection_reason(), Some(ConnectionReason::TokenExpired));
    assert_eq!(f.emu.journal().len(), 1);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_is_invalid_grant_on_refresh() {
    let f = fixture().await;
    let app = GoogleApp::new(&f.emu.google_app().client_id, f.emu.google_app().client_secret.as_str());
    let refresh_token = storage_core::Secret::new(f.grant["refresh_token"].as_str().unwrap());
    let token_uri = endpoints(&f.emu).token;
    let http = reqwest::Client::new();
    let grant = oauth::refresh(&http, &token_uri, &app, &refresh_token, RetryPolicy::never())
        .await
        .unwrap();
    assert!(!grant.access_token.expose().is_empty());
    f.emu.revoke_grants();
    let err = oauth::refresh(&http, &token_uri, &app, &refresh_token, RetryPolicy::new())
        .await
        .unwrap_err();
    assert_eq!(err.connection_reason(), Some(ConnectionReason::InvalidGrant));
    assert_eq!(
        f.emu.journal().requests("POST", "/token").len(),
        2,
        "invalid_grant is never retried"
    );
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_mid_body_resumes_with_range_and_verifies() {
    let f = fixture().await;
    let body = data(3 * 1024 * 1024 + 5, 8);
    let key = f
        .drive
        .put_object(&name("cut"), body.clone(), "application/octet-stream")
        .await
        .unwrap();
    // The metadata and the first part go out at once: cut both after 1 MiB (the
    // metadata is shorter, and goes through).
    f.emu.faults().add(
        FaultRule::new(FaultAction::ResetMidBody {
            after_bytes: 1024 * 1024,
        })
        .provider(Provider::Google)
        .method("GET")
        .path("/drive/v3/files/*")
        .times(2),
    );
    assert_eq!(f.drive.get_object(&key).await.unwrap(), body);
    let ranges: Vec<String> = f
        .emu
        .journal()
        .filter(|e| e.method == "GET")
        .iter()
        .filter_map(|e| e.header("range").map(str::to_owned))
        .collect();
    // The first part, then its resume from the byte after the cut to the last byte.
    assert_eq!(ranges, ["bytes=0-8388607", "bytes=1048576-3145732"]);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_md5_mismatch_is_integrity_and_leaves_no_file() {
    let f = fixture().await;
    // The final chunk's answer claims different bytes than were sent.
    let lying = serde_json::json!({"id": "lie0123456789", "name": "mismatch.bin", "size": "6291456", "md5Checksum": "00000000000000000000000000000000"});
    f.emu.faults().add(
        chunk_rule(FaultAction::Respond {
            status: 201,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some(lying.to_string()),
        })
        .skip(11)
        .times(1),
    );
    let err = f
        .drive
        .put_object(&name("mismatch"), data(6 * 1024 * 1024, 9), "application/octet-stream")
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Integrity { .. }), "{err:?}");
    assert_eq!(files_named(&f.emu, "mismatch.bin"), 0);
    // The backend tried to remove what it was told it had created.
    assert_eq!(
        f.emu
            .journal()
            .requests("DELETE", "/drive/v3/files/lie0123456789")
            .len(),
        1
    );
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_stream_goes_up_in_bounded_memory() {
    let f = fixture_with(options(32 * CHUNK_UNIT)).await;
    const SIZE: u64 = 256 * 1024 * 1024;
    const PIECE: usize = 64 * 1024;
    // A generated stream: nothing of it exists in memory beyond the piece in flight.
    let pieces = (0..SIZE / PIECE as u64).map(|i| Ok(Bytes::from(vec![(i % 251) as u8; PIECE])));
    let stream: ByteStream = Box::pin(futures::stream::iter(pieces));
    let key = f
        .drive
        .put_stream(&name("big"), stream, SIZE, "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(f.drive.stat_object(&key).await.unwrap().size, SIZE);
    let peak = f.drive.peak_upload_buffer();
    assert!(peak <= 32 * CHUNK_UNIT + PIECE, "held {peak} bytes at once");
    assert!(
        peak >= 32 * CHUNK_UNIT,
        "the gauge must have seen full chunks, saw {peak}"
    );
    f.emu.shutdown().await;
}

#[tokio::test]
async fn twenty_sequential_calls_reuse_one_connection() {
    let f = fixture().await;
    let key = f
        .drive
        .put_object(&name("pooled"), data(10, 10), "text/plain")
        .await
        .unwrap();
    f.emu.clear_journal();
    for _ in 0..20 {
        f.drive.stat_object(&key).await.unwrap();
        // hyper hands a finished HTTP/1 connection back to its pool from a task
        // of its own; a call issued in the very same instant can miss it and dial
        // again. On one thread that task runs during the pause, whatever the load
        // (on two, a busy machine could hold it back longer than the pause).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let journal = f.emu.journal();
    assert_eq!(journal.len(), 20);
    let conns: Vec<u64> = journal.entries().iter().map(|e| e.connection).collect();
    assert_eq!(journal.connection_count(), 1, "{conns:?}");
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_puts_for_a_user_make_one_folder() {
    let f = fixture().await;
    let puts = (0..16).map(|i| {
        let drive = f.drive.clone();
        async move {
            drive
                .put_object(
                    &ObjectName::new("fresh-user", &format!("d{i}"), "").unwrap(),
                    data(10, i),
                    "text/plain",
                )
                .await
        }
    });
    for r in futures::future::join_all(puts).await {
        r.unwrap();
    }
    let folders = f
        .emu
        .drive_files()
        .into_iter()
        .filter(|x| x.is_folder && x.name == "fresh-user")
        .count();
    assert_eq!(folders, 1);
    f.emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_puts_of_one_name_keep_exactly_one_readable_copy() {
    let f = fixture().await;
    let n = name("contested");
    // Create the folder first so that the puts race only on the file name.
    f.drive
        .put_object(&name("warm-up"), data(1, 99), "text/plain")
        .await
        .unwrap();
    for round in 0..5u64 {
        let puts = (0..8u64).map(|i| {
            let (drive, n) = (f.drive.clone(), n.clone());
            async move { drive.put_object(&n, data(100, round * 8 + i), "text/plain").await }
        });
        let keys: Vec<_> = futures::future::join_all(puts)
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        // However the cleanups interleave, one copy stays, and it is one of the bodies sent.
        assert_eq!(files_named(&f.emu, "contested.bin"), 1, "round {round}");
        let survivors: Vec<_> = futures::future::join_all(keys.iter().map(|k| f.drive.get_object(k)))
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(survivors.len(), 1, "round {round}");
        assert!((0..8).any(|i| survivors[0] == data(100, round * 8 + i)));
    }
    f.emu.shutdown().await;
}

#[tokio::test]
async fn presigned_urls_are_unsupported_with_a_reason() {
    let drive = GoogleDriveBackend::builder(TokenCell::new("t")).build().unwrap();
    let key = storage_core::ObjectKey::new("abc");
    let err = drive
        .presigned_get_url(&key, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Unsupported { .. }));
    assert!(err.to_string().contains("permanent public permission"), "{err}");
}

#[test]
fn debug_output_holds_no_token() {
    let drive = GoogleDriveBackend::builder(TokenCell::new("ya29.super-secret"))
        .build()
        .unwrap();
    assert!(!format!("{drive:?}").contains("super-secret"));
}
