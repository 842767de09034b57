//! What Drive must never destroy, against `storage-emulator`: files the user put
//! into the app's folder (invisible to a `drive.file` app), and documents stored in
//! a folder that lost a creation race between independently built backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use storage_core::testkit::payload;
use storage_core::{ObjectKey, ObjectName, RetryPolicy, StorageBackend};
use storage_emulator::{EmulatorHandle, FaultAction, FaultRule, Provider};
use storage_gdrive::GoogleDriveBackend;

use storage_testsupport::gdrive::start;

/// A backend with its own folder cache and pool, as another process would have.
fn backend(emu: &EmulatorHandle, token: &str) -> GoogleDriveBackend {
    storage_testsupport::gdrive::backend(emu, token, RetryPolicy::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_never_destroys_a_file_the_user_put_in_the_folder() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token);
    let mut keys = Vec::new();
    for doc in ["scan-1", "scan-2"] {
        let name = ObjectName::new("alice", doc, ".pdf").unwrap();
        keys.push(
            drive
                .put_object(&name, payload(1000, 1), "application/pdf")
                .await
                .unwrap(),
        );
    }
    let folder = emu.drive_ancestors(keys[0].as_str())[0].clone();
    let photo = emu
        .drive_add_user_file(&folder, "holiday.jpg", Bytes::from_static(b"JFIF the user's own"))
        .unwrap();

    let report = drive.purge_user("alice").await.unwrap();

    assert_eq!(
        (report.objects, report.bytes),
        (2, 2000),
        "only the app's documents count"
    );
    for key in &keys {
        assert!(
            emu.drive_file_content(key.as_str()).is_none(),
            "the app's {key} is gone"
        );
    }
    let left = emu.drive_files();
    let photo_now = left.iter().find(|f| f.id == photo);
    assert!(photo_now.is_some(), "the user's own file was destroyed with the folder");
    assert_eq!(
        emu.drive_file_content(&photo).unwrap(),
        Bytes::from_static(b"JFIF the user's own")
    );
    let folder_now = left.iter().find(|f| f.id == folder).unwrap();
    assert!(
        folder_now.trashed,
        "the folder goes to the trash, with what the app cannot see"
    );
    assert_eq!(report.folder, storage_core::FolderOutcome::Trashed, "{report}");
    // A second purge finds nothing more to do, and still destroys nothing.
    let again = drive.purge_user("alice").await.unwrap();
    assert!(again.is_empty(), "{again}");
    assert!(emu.drive_file_content(&photo).is_some());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_folder_key_never_reaches_the_users_own_files() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token);
    let name = ObjectName::new("bob", "doc", ".pdf").unwrap();
    let key = drive
        .put_object(&name, payload(10, 2), "application/pdf")
        .await
        .unwrap();
    let folder = emu.drive_ancestors(key.as_str())[0].clone();
    let photo = emu
        .drive_add_user_file(&folder, "mine.jpg", Bytes::from_static(b"x"))
        .unwrap();
    assert!(drive.delete_object(&ObjectKey::new(folder.clone())).await.is_err());
    assert!(emu.drive_file_content(&photo).is_some());
    assert_eq!(drive.get_object(&key).await.unwrap(), payload(10, 2));
    emu.shutdown().await;
}

/// Three backends, each with its own folder cache (three processes), store a
/// new user's first documents while the folder is being created. Creating backend
/// `late` is held up (a delay fault on its create), and backend `early` is held up
/// between its create and its re-check (a delay fault on the listing), so that a
/// third backend stores a document in `early`'s folder before `early` sees the
/// other folder. Whichever folder wins, every acknowledged document reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_race_between_processes_loses_no_acknowledged_document() {
    let (emu, token) = start().await;
    let mut acknowledged: Vec<(GoogleDriveBackend, ObjectKey, Bytes)> = Vec::new();
    for round in 0..6u64 {
        let user = format!("racer-{round}");
        let (late, early, third) = (backend(&emu, &token), backend(&emu, &token), backend(&emu, &token));
        emu.faults().clear();
        // The first folder create (late's) waits 900 ms before it is served.
        emu.faults().add(
            FaultRule::new(FaultAction::Delay { millis: 900 })
                .provider(Provider::Google)
                .method("POST")
                .path("/drive/v3/files")
                .times(1),
        );
        let body = |i: u64| payload(300 + i as usize, round * 10 + i);
        let late_put = {
            let (late, name, b) = (late.clone(), ObjectName::new(&user, "late", ".pdf").unwrap(), body(0));
            tokio::spawn(async move { late.put_object(&name, b, "application/pdf").await.map(|k| (late, k)) })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Early's lookup and create go through; the next listing (its re-check) waits 1.5 s.
        emu.faults().add(
            FaultRule::new(FaultAction::Delay { millis: 1500 })
                .provider(Provider::Google)
                .method("GET")
                .path("/drive/v3/files")
                .skip(1)
                .times(1),
        );
        let early_put = {
            let (early, name, b) = (early.clone(), ObjectName::new(&user, "early", ".pdf").unwrap(), body(1));
            tokio::spawn(async move { early.put_object(&name, b, "application/pdf").await.map(|k| (early, k)) })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        // The third sees only early's folder and stores into it.
        let third_name = ObjectName::new(&user, "third", ".pdf").unwrap();
        let third_key = third.put_object(&third_name, body(2), "application/pdf").await.unwrap();
        acknowledged.push((third, third_key, body(2)));
        let (early, early_key) = early_put.await.unwrap().unwrap();
        acknowledged.push((early, early_key, body(1)));
        let (late, late_key) = late_put.await.unwrap().unwrap();
        acknowledged.push((late, late_key, body(0)));
    }
    emu.faults().clear();
    let reader = backend(&emu, &token);
    for (_, key, body) in &acknowledged {
        assert_eq!(
            reader.get_object(key).await.unwrap(),
            body,
            "an acknowledged document was lost"
        );
    }
    // A later call for each user (a fresh backend) finds every document still there.
    for round in 0..6u64 {
        let user = format!("racer-{round}");
        let fresh = backend(&emu, &token);
        let name = ObjectName::new(&user, "after", ".pdf").unwrap();
        fresh
            .put_object(&name, payload(5, 99), "application/pdf")
            .await
            .unwrap();
    }
    for (_, key, body) in &acknowledged {
        assert_eq!(reader.get_object(key).await.unwrap(), body, "lost after a later call");
    }
    emu.shutdown().await;
}

/// One user's slow folder lookup does not hold up another user's first put: the
/// folder cache locks per user (before, one lock for all users was held across
/// the network calls).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_put_for_one_user_does_not_stall_another_user() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token);
    // The first folder lookup (the slow user's) waits 2 s.
    emu.faults().add(
        FaultRule::new(FaultAction::Delay { millis: 2000 })
            .provider(Provider::Google)
            .method("GET")
            .path("/drive/v3/files")
            .times(1),
    );
    let slow = {
        let drive = drive.clone();
        tokio::spawn(async move {
            let name = ObjectName::new("slow", "d", ".pdf").unwrap();
            drive.put_object(&name, payload(10, 1), "application/pdf").await
        })
    };
    // The slow user's lookup has met the delay once the emulator recorded it
    // (a fixed pause could let the quick user's lookup meet it instead).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while emu
        .journal()
        .filter(|e| e.method == "GET" && e.path == "/drive/v3/files")
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow put never looked up its folder"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let name = ObjectName::new("quick", "d", ".pdf").unwrap();
    drive
        .put_object(&name, payload(10, 2), "application/pdf")
        .await
        .unwrap();
    assert!(
        !slow.is_finished(),
        "the other user's put finished only after the slow one"
    );
    slow.await.unwrap().unwrap();
    emu.shutdown().await;
}
