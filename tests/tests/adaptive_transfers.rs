//! Growing chunks and parallel downloads under faults, on both providers.
//!
//! Uploads start at one unit (256 KiB on Drive, 320 KiB on OneDrive) and grow
//! to a budget of four units, behind an emulated 20 ms round trip; every piece index meets, in turn, a reset before
//! the answer, a reset after the server stored the piece, a partial accept, a
//! 429 with `Retry-After` and an expired session. Downloads read in parts of
//! 256 KiB, three at a time, and every part's request meets, in turn, a cut
//! mid-body, a truncated body and a 503. Each cell runs on a fresh emulator:
//! the fault must fire, and nothing may be lost: the object reads back whole,
//! or a failed upload leaves no object behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use storage_core::download::Parallel;
use storage_core::testkit::payload;
use storage_core::{ObjectName, RetryPolicy, StorageBackend, StorageError};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, Origin};
use storage_factory::storage_gdrive::{CHUNK_UNIT, DriveOptions};
use storage_factory::storage_onedrive::{FRAGMENT_UNIT, OneDriveOptions};
use storage_testsupport as support;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    Gdrive,
    Onedrive,
}

fn policy() -> RetryPolicy {
    RetryPolicy::new()
        .with_max_attempts(4)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(20))
}

fn backend(p: P, emu: &EmulatorHandle) -> Arc<dyn StorageBackend> {
    let parts = Parallel::new(3, 256 * 1024, 0);
    match p {
        P::Gdrive => {
            let mut o = DriveOptions::default();
            o.chunk_size = CHUNK_UNIT;
            o.upload_memory_budget = 4 * CHUNK_UNIT;
            o.multipart_limit = 0;
            o.retry = policy();
            o.parallel_download = parts;
            Arc::new(support::gdrive::backend_with(emu, &token(&emu.google_grant()), o))
        }
        P::Onedrive => {
            let mut o = OneDriveOptions::default();
            o.fragment_size = FRAGMENT_UNIT;
            o.upload_memory_budget = 4 * FRAGMENT_UNIT;
            o.retry = policy();
            o.parallel_download = parts;
            Arc::new(support::onedrive::backend_with(emu, &token(&emu.microsoft_grant()), o))
        }
    }
}

/// The access token of a grant's credential JSON.
fn token(grant: &serde_json::Value) -> String {
    grant["access_token"].as_str().unwrap().to_owned()
}

fn unit(p: P) -> usize {
    if p == P::Gdrive { CHUNK_UNIT } else { FRAGMENT_UNIT }
}

/// An emulator behind a round trip of `rtt_ms`, where larger pieces pay (on
/// bare loopback the window stops growing once doubling no longer speeds it up).
async fn emulator_behind(rtt_ms: u32) -> EmulatorHandle {
    Emulator::builder()
        .link(format!("rtt={rtt_ms}ms,setup=0ms").parse().unwrap())
        .start()
        .await
        .unwrap()
}

/// The fault cells' link: 20 ms keeps 60 cells quick.
async fn far_emulator() -> EmulatorHandle {
    emulator_behind(20).await
}

/// The link of the tests that check how far the pieces grow: a doubled piece
/// goes on growing while it moves bytes 5 % faster, so a stall during one
/// piece may stop the growth; at 20 ms a stall of about 18 ms does that, which
/// a busy machine can cause, at 100 ms it takes about 90 ms.
async fn growth_emulator() -> EmulatorHandle {
    emulator_behind(100).await
}

/// Pieces of 1, 2, 4, 4 and 4 units, then a short tail: six pieces.
fn upload_body(p: P) -> Bytes {
    payload(15 * unit(p) + 1234, 7)
}

/// The body as a stream of quarter units, so that windows fill exactly (a
/// window holds up to one stream piece beyond its size).
fn source(p: P, body: &Bytes) -> storage_core::ByteStream {
    storage_core::stream::from_bytes(body.clone(), unit(p) / 4)
}

fn upload_path(p: P) -> &'static str {
    if p == P::Gdrive {
        "/upload/drive/v3/files"
    } else {
        "/up/*"
    }
}

/// Documents the emulator holds (no folders, nothing trashed): (name, bytes).
fn stored(p: P, emu: &EmulatorHandle) -> Vec<(String, Bytes)> {
    storage_tests::emulator::documents(emu, if p == P::Gdrive { "gdrive" } else { "onedrive" })
}

/// The sizes of the pieces sent to the content origin, in order.
fn pieces(emu: &EmulatorHandle) -> Vec<u64> {
    emu.journal()
        .filter(|e| e.origin == Origin::Content && e.method == "PUT" && e.body_len > 0)
        .iter()
        .map(|e| e.body_len)
        .collect()
}

fn upload_faults(p: P) -> Vec<(&'static str, FaultAction)> {
    vec![
        ("reset before the answer", FaultAction::ResetBeforeResponse),
        ("reset after storing", FaultAction::ResetAfterProcessing),
        (
            "partial accept",
            FaultAction::AcceptPartialChunk { bytes: unit(p) as u64 },
        ),
        ("429", FaultAction::retry_after(429, 0)),
        ("expired session", FaultAction::ExpireUploadSession),
    ]
}

#[tokio::test]
async fn without_faults_pieces_grow_to_the_budget() {
    for p in [P::Gdrive, P::Onedrive] {
        let emu = growth_emulator().await;
        let b = backend(p, &emu);
        let body = upload_body(p);
        let name = ObjectName::new("u", "grow", ".bin").unwrap();
        let key = b
            .put_stream(&name, source(p, &body), body.len() as u64, "x/y")
            .await
            .unwrap();
        let u = unit(p) as u64;
        assert_eq!(pieces(&emu), [u, 2 * u, 4 * u, 4 * u, 4 * u, 1234], "{p:?}");
        assert_eq!(b.get_object(&key).await.unwrap(), body, "{p:?}");
    }
}

#[tokio::test]
async fn every_piece_survives_every_upload_fault() {
    let mut cells = 0;
    for p in [P::Gdrive, P::Onedrive] {
        let body = upload_body(p);
        for (what, action) in upload_faults(p) {
            for piece in 0..6u32 {
                let emu = far_emulator().await;
                let b = backend(p, &emu);
                let rule = emu.faults().add(
                    FaultRule::new(action.clone())
                        .origin(Origin::Content)
                        .method("PUT")
                        .path(upload_path(p))
                        .skip(piece)
                        .times(1),
                );
                let name = ObjectName::new("u", "doc", ".bin").unwrap();
                let put = b.put_stream(&name, source(p, &body), body.len() as u64, "x/y").await;
                let cell = format!("{p:?}, {what}, piece {piece}");
                assert_eq!(
                    emu.faults().fired(rule),
                    1,
                    "{cell}: the fault did not fire; pieces {:?}, {put:?}",
                    pieces(&emu)
                );
                let docs = stored(p, &emu);
                match put {
                    Ok(key) => {
                        assert_eq!(b.get_object(&key).await.unwrap(), body, "{cell}");
                        assert_eq!(
                            docs.len(),
                            1,
                            "{cell}: {:?}",
                            docs.iter().map(|d| &d.0).collect::<Vec<_>>()
                        );
                    }
                    // A stream cannot be replayed once the server acknowledged
                    // some of it: an expired session then ends the upload, and
                    // nothing half-written is left.
                    Err(StorageError::Provider { code, .. })
                        if what == "expired session"
                            && piece > 0
                            && code.as_deref() == Some("uploadSessionExpired") =>
                    {
                        assert!(docs.is_empty(), "{cell}: {} documents left", docs.len());
                    }
                    Err(e) => panic!("{cell}: {e}"),
                }
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 60);
}

fn download_faults() -> Vec<(&'static str, FaultAction)> {
    vec![
        ("cut mid-body", FaultAction::ResetMidBody { after_bytes: 100_000 }),
        ("truncated body", FaultAction::TruncateBody { after_bytes: 50_000 }),
        ("503", FaultAction::retry_after(503, 0)),
    ]
}

#[tokio::test]
async fn every_part_of_a_parallel_download_survives_a_cut() {
    let body = payload(5 * 256 * 1024 + 999, 11);
    let mut cells = 0;
    for p in [P::Gdrive, P::Onedrive] {
        for (what, action) in download_faults() {
            // Six parts; on Drive the first GET is the metadata read.
            let requests = if p == P::Gdrive { 7 } else { 6 };
            for request in 0..requests {
                let emu = Emulator::start().await.unwrap();
                let b = backend(p, &emu);
                let name = ObjectName::new("u", "read", ".bin").unwrap();
                let key = b.put_object(&name, body.clone(), "x/y").await.unwrap();
                let (origin, path) = match p {
                    P::Gdrive => (Origin::Api, "/drive/v3/files/*"),
                    P::Onedrive => (Origin::Content, "/dl/*"),
                };
                let rule = emu.faults().add(
                    FaultRule::new(action.clone())
                        .origin(origin)
                        .method("GET")
                        .path(path)
                        .skip(request)
                        .times(1),
                );
                emu.clear_journal();
                let cell = format!("{p:?}, {what}, request {request}");
                let got = storage_core::stream::collect(b.get_stream(&key).await.unwrap(), 0).await;
                assert_eq!(got.unwrap(), body, "{cell}");
                assert_eq!(emu.faults().fired(rule), 1, "{cell}: the fault did not fire");
                let ranged = emu
                    .journal()
                    .filter(|e| e.method == "GET" && e.header("range").is_some())
                    .len();
                assert!(ranged >= 6, "{cell}: {ranged} ranged requests");
                cells += 1;
            }
        }
    }
    assert_eq!(cells, 39);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_pieces_stay_within_the_memory_budget() {
    const PIECE: usize = 64 * 1024;
    const SIZE: usize = 48 * 1024 * 1024;
    let budget = 4 * 1024 * 1024;
    let generated = || {
        let it = (0..SIZE / PIECE).map(|i| Ok(Bytes::from(vec![(i % 251) as u8; PIECE])));
        Box::pin(futures::stream::iter(it)) as storage_core::ByteStream
    };
    let name = ObjectName::new("u", "budget", ".bin").unwrap();

    let emu = growth_emulator().await;
    let mut o = DriveOptions::default();
    o.chunk_size = CHUNK_UNIT;
    o.upload_memory_budget = budget;
    let drive = support::gdrive::backend_with(&emu, &token(&emu.google_grant()), o);
    drive.put_stream(&name, generated(), SIZE as u64, "x/y").await.unwrap();
    let peak = drive.peak_upload_buffer();
    assert!(
        (budget..=budget + PIECE).contains(&peak),
        "drive held {peak} bytes at once"
    );
    assert_eq!(*pieces(&emu).iter().max().unwrap(), budget as u64);

    let emu = growth_emulator().await;
    let mut o = OneDriveOptions::default();
    o.fragment_size = FRAGMENT_UNIT;
    o.upload_memory_budget = budget;
    let onedrive = support::onedrive::backend_with(&emu, &token(&emu.microsoft_grant()), o);
    onedrive
        .put_stream(&name, generated(), SIZE as u64, "x/y")
        .await
        .unwrap();
    let peak = onedrive.peak_upload_buffer();
    // The largest fragment is the budget rounded down to 320 KiB.
    let largest = budget / FRAGMENT_UNIT * FRAGMENT_UNIT;
    assert!(
        (largest..=budget + PIECE).contains(&peak),
        "onedrive held {peak} bytes at once"
    );
    assert_eq!(*pieces(&emu).iter().max().unwrap(), largest as u64);
}
