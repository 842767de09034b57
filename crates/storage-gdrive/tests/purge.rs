//! `purge_user` on Google Drive against `storage-emulator`: exactly one user's
//! folder and files go, checked in the emulator's state; an interrupted purge is
//! finished by the next call; hostile user ids never reach the network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use storage_core::testkit::{HOSTILE_USER_IDS, PurgeFixture, run_purge_check, seed_two_users, verify_after_purge};
use storage_core::{RetryPolicy, StorageBackend, StorageError, validate_part};
use storage_emulator::{EmulatorHandle, FaultAction, FaultRule, Provider};

use storage_testsupport::gdrive::{backend, start};

/// The ids of the folders named `user` outside the trash, of those in the trash, and
/// of the files in any of them, in the emulator.
fn state_of(emu: &EmulatorHandle, user: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let files = emu.drive_files();
    let named = |trashed: bool| -> Vec<String> {
        files
            .iter()
            .filter(|f| f.is_folder && f.name == user && f.trashed == trashed)
            .map(|f| f.id.clone())
            .collect()
    };
    let (live, trashed) = (named(false), named(true));
    let inside = files
        .iter()
        .filter(|f| f.parents.iter().any(|p| live.contains(p) || trashed.contains(p)))
        .map(|f| f.id.clone())
        .collect();
    (live, trashed, inside)
}

/// The victim's documents are gone and its folders are in the trash, empty; the
/// bystander's folder and bytes are untouched; nothing else exists.
fn assert_only_bystander_left(emu: &EmulatorHandle, fixture: &PurgeFixture) {
    let (live, trashed, inside) = state_of(emu, &fixture.victim);
    assert!(
        live.is_empty() && inside.is_empty(),
        "left of the victim: {live:?} {inside:?}"
    );
    assert!(!trashed.is_empty(), "the victim's folder goes to the trash");
    let (live, trashed_bystander, inside) = state_of(emu, &fixture.bystander);
    assert_eq!(live.len(), 1);
    assert!(trashed_bystander.is_empty());
    assert_eq!(inside.len(), fixture.bystander_objects.len());
    for (key, body) in &fixture.bystander_objects {
        assert_eq!(
            emu.drive_file_content(key.as_str()).unwrap(),
            body,
            "bystander bytes changed"
        );
        assert!(!emu.drive_files().iter().any(|f| f.id == key.as_str() && f.trashed));
    }
    assert_eq!(
        emu.drive_files().len(),
        1 + trashed.len() + fixture.bystander_objects.len(),
        "nothing else exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_exactly_one_users_folder_and_files() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    let fixture = run_purge_check(&drive, "alice", "alice-2").await.unwrap();
    assert_only_bystander_left(&emu, &fixture);
    // Only the victim's folder is in the trash; its documents were deleted, not trashed.
    let trashed: Vec<_> = emu.drive_files().into_iter().filter(|f| f.trashed).collect();
    assert_eq!(trashed.len(), 1, "{trashed:?}");
    assert!(trashed[0].is_folder && trashed[0].name == "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_every_duplicate_folder_of_the_user() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    let fixture = seed_two_users(&drive, "bob", "carol").await.unwrap();
    // Two processes racing to create a user's folder can leave two of one name;
    // make the second one with the Drive API directly.
    let resp = reqwest::Client::new()
        .post(format!("{}files", emu.endpoints().google.api))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "name": "bob",
            "mimeType": "application/vnd.google-apps.folder",
            "parents": ["root"],
        }))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    assert_eq!(state_of(&emu, "bob").0.len(), 2);
    let report = drive.purge_user("bob").await.unwrap();
    assert_eq!(report.counts(), fixture.expected.counts());
    verify_after_purge(&drive, &fixture).await.unwrap();
    assert_only_bystander_left(&emu, &fixture);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_purge_is_finished_by_the_next_call() {
    // The first document's delete is dropped before Drive serves it, or after.
    for (action, first_delete_done) in [
        (FaultAction::ResetBeforeResponse, false),
        (FaultAction::ResetAfterProcessing, true),
    ] {
        let (emu, token) = start().await;
        let seeder = backend(&emu, &token, RetryPolicy::new());
        let fixture = seed_two_users(&seeder, "alice", "bob").await.unwrap();
        // No retries, so the dropped connection reaches the caller.
        let drive = backend(&emu, &token, RetryPolicy::never());
        emu.faults().add(
            FaultRule::new(action.clone())
                .provider(Provider::Google)
                .method("DELETE")
                .path("/drive/v3/files/*")
                .times(1),
        );
        let first = drive.purge_user("alice").await.unwrap_err();
        assert!(matches!(first, StorageError::Transport { .. }), "{action:?}: {first:?}");
        let second = drive.purge_user("alice").await.unwrap();
        if first_delete_done {
            assert_eq!(second.objects, fixture.expected.objects - 1, "{action:?}: {second}");
        } else {
            assert_eq!(second.counts(), fixture.expected.counts(), "{action:?}");
        }
        verify_after_purge(&seeder, &fixture).await.unwrap();
        assert_only_bystander_left(&emu, &fixture);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_user_ids_are_refused_before_any_request() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    emu.clear_journal();
    let too_long = "a".repeat(129);
    for id in HOSTILE_USER_IDS.iter().copied().chain([too_long.as_str()]) {
        let err = drive.purge_user(id).await.unwrap_err();
        assert!(matches!(err, StorageError::InvalidInput { .. }), "{id:?}: {err:?}");
    }
    assert_eq!(emu.journal().len(), 0, "a refused id made a request");
}

#[test]
fn any_user_id_is_refused_offline_or_touches_only_its_own_folder() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (emu, token) = rt.block_on(start());
    let drive = backend(&emu, &token, RetryPolicy::new());
    let others = ["alice", "alice-2", "root", "b"];
    rt.block_on(async {
        for user in others {
            let name = storage_core::ObjectName::new(user, "d", ".bin").unwrap();
            drive
                .put_object(&name, bytes::Bytes::from_static(b"data"), "application/octet-stream")
                .await
                .unwrap();
        }
    });
    let before = emu.drive_files().len();
    let config = ProptestConfig::with_cases(48);
    proptest!(config, |(id in prop_oneof![
        "[a-z.]{0,3}",
        "\\PC{0,10}",
        "(\\.\\./|/|\\\\|root:?|'|\")[a-z']{0,3}",
        Just("root".to_owned()),
        Just("alice-2x".to_owned()),
        Just("ALICE".to_owned()),
    ])| {
        prop_assume!(!others.contains(&id.as_str()));
        emu.clear_journal();
        let result = rt.block_on(drive.purge_user(&id));
        if validate_part("user_id", &id).is_err() {
            prop_assert!(matches!(result, Err(StorageError::InvalidInput { .. })), "{:?}", result);
            prop_assert_eq!(emu.journal().len(), 0);
        } else {
            prop_assert!(result.as_ref().is_ok_and(|r| r.is_empty()), "{:?}", result);
        }
        prop_assert_eq!(emu.drive_files().len(), before);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_named_root_is_a_folder_not_the_drive_root() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    let fixture = run_purge_check(&drive, "root", "alice").await.unwrap();
    assert_only_bystander_left(&emu, &fixture);
}
