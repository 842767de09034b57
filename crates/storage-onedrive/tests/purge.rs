//! `purge_user` on OneDrive against `storage-emulator`: exactly one user's
//! `root:/{user_id}` folder goes, checked in the emulator's state; an interrupted
//! purge is finished by the next call; hostile user ids never reach the network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use proptest::prelude::*;
use storage_core::testkit::{HOSTILE_USER_IDS, PurgeFixture, run_purge_check, seed_two_users, verify_after_purge};
use storage_core::{ObjectName, RetryPolicy, StorageBackend, StorageError, validate_part};
use storage_emulator::{EmulatorHandle, FaultAction, FaultRule, Provider};
use storage_testsupport::onedrive::{backend, start};

/// Paths of every item at or below `/{user}` (the emulator compares paths
/// without case, as OneDrive does; this compares them exactly).
fn paths_of(emu: &EmulatorHandle, user: &str) -> Vec<String> {
    let folder = format!("/{user}");
    emu.graph_items()
        .into_iter()
        .map(|i| i.path)
        .filter(|p| *p == folder || p.starts_with(&format!("{folder}/")))
        .collect()
}

fn assert_only_bystander_left(emu: &EmulatorHandle, fixture: &PurgeFixture) {
    assert_eq!(paths_of(emu, &fixture.victim), Vec::<String>::new());
    assert_eq!(
        paths_of(emu, &fixture.bystander).len(),
        1 + fixture.bystander_objects.len()
    );
    for (key, body) in &fixture.bystander_objects {
        assert_eq!(
            emu.graph_item_content(key.as_str()).unwrap(),
            body,
            "bystander bytes changed"
        );
    }
    assert_eq!(
        emu.graph_items().len(),
        1 + fixture.bystander_objects.len(),
        "nothing else exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_exactly_one_users_folder_and_files() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    let fixture = run_purge_check(&drive, "alice", "alice-2").await.unwrap();
    assert_only_bystander_left(&emu, &fixture);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_purge_is_finished_by_the_next_call() {
    for (action, second_reports_all) in [
        (FaultAction::ResetBeforeResponse, true),
        (FaultAction::ResetAfterProcessing, false),
    ] {
        let (emu, token) = start().await;
        let seeder = backend(&emu, &token, RetryPolicy::new());
        let fixture = seed_two_users(&seeder, "alice", "bob").await.unwrap();
        // No retries, so the dropped connection reaches the caller.
        let drive = backend(&emu, &token, RetryPolicy::never());
        emu.faults().add(
            FaultRule::new(action.clone())
                .provider(Provider::Microsoft)
                .method("DELETE")
                .path("/v1.0/me/drive/items/*")
                .times(1),
        );
        let first = drive.purge_user("alice").await.unwrap_err();
        assert!(matches!(first, StorageError::Transport { .. }), "{action:?}: {first:?}");
        let second = drive.purge_user("alice").await.unwrap();
        if second_reports_all {
            assert_eq!(second.counts(), fixture.expected.counts(), "{action:?}");
        } else {
            assert!(second.is_empty(), "{action:?}: {second}");
        }
        verify_after_purge(&seeder, &fixture).await.unwrap();
        assert_only_bystander_left(&emu, &fixture);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_id_differing_only_in_case_never_takes_the_other_users_folder() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    let key = drive
        .put_object(
            &ObjectName::new("alice", "d", ".bin").unwrap(),
            Bytes::from_static(b"mine"),
            "application/octet-stream",
        )
        .await
        .unwrap();
    // `root:/ALICE:` finds `alice`'s folder on OneDrive, which ignores case; the
    // purge of `ALICE` (stored as `^a^l^i^c^e`) has nothing and takes nothing.
    let report = drive.purge_user("ALICE").await.unwrap();
    assert!(report.is_empty(), "{report}");
    assert_eq!(drive.get_object(&key).await.unwrap(), Bytes::from_static(b"mine"));
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
            let name = ObjectName::new(user, "d", ".bin").unwrap();
            drive
                .put_object(&name, Bytes::from_static(b"data"), "application/octet-stream")
                .await
                .unwrap();
        }
    });
    let before = emu.graph_items().len();
    let config = ProptestConfig::with_cases(48);
    proptest!(config, |(id in prop_oneof![
        "[a-z.]{0,3}",
        "\\PC{0,10}",
        "(\\.\\./|/|\\\\|root:?|:|%2F)[a-z]{0,3}",
        Just("root".to_owned()),
        Just("alice-2x".to_owned()),
        Just("ALICE".to_owned()),
    ])| {
        prop_assume!(!others.iter().any(|o| o.eq_ignore_ascii_case(&id)) || id == "ALICE");
        emu.clear_journal();
        let result = rt.block_on(drive.purge_user(&id));
        if validate_part("user_id", &id).is_err() {
            prop_assert!(matches!(result, Err(StorageError::InvalidInput { .. })), "{:?}", result);
            prop_assert_eq!(emu.journal().len(), 0);
        } else {
            prop_assert!(result.as_ref().is_ok_and(|r| r.is_empty()), "{:?}", result);
        }
        prop_assert_eq!(emu.graph_items().len(), before);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_named_root_is_a_folder_not_the_drive_root() {
    let (emu, token) = start().await;
    let drive = backend(&emu, &token, RetryPolicy::new());
    let fixture = run_purge_check(&drive, "root", "alice").await.unwrap();
    assert_only_bystander_left(&emu, &fixture);
}
