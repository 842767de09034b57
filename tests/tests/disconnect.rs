//! `StorageFactory::disconnect` against the emulator: purge, revoke, forget the
//! credentials, and stop every managed handle without network traffic; each
//! step repeatable after a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use bytes::Bytes;
use storage_core::testkit::{PurgeFixture, seed_two_users, verify_after_purge};
use storage_core::{ConnectionReason, ObjectName, StorageError};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule};
use storage_factory::{CredentialStore, FileCredentialStore, MemoryCredentialStore, Purge, Revocation, StorageFactory};
use storage_tests::emulator::{factory_builder, quick_retry};

fn factory(emu: &EmulatorHandle) -> StorageFactory {
    factory_builder(emu)
        .retry(quick_retry().with_max_attempts(2))
        .build()
        .unwrap()
}

fn is_invalid_grant(r: &Result<(), StorageError>) -> bool {
    matches!(r, Err(e) if e.connection_reason() == Some(ConnectionReason::InvalidGrant))
}

/// Nothing of `victim` left and the bystander intact, in the emulator's state.
fn assert_purged_in_emulator(emu: &EmulatorHandle, provider: &str, fixture: &PurgeFixture) {
    if provider == "gdrive" {
        let files = emu.drive_files();
        // The victim's documents are deleted; its folder is in the trash, empty.
        let trashed: Vec<_> = files.iter().filter(|f| f.name == fixture.victim && f.trashed).collect();
        assert!(
            !files.iter().any(|f| f.name == fixture.victim && !f.trashed),
            "victim folder left"
        );
        assert!(!files.iter().any(|f| trashed.iter().any(|t| f.parents.contains(&t.id))));
        for (key, body) in &fixture.bystander_objects {
            assert_eq!(emu.drive_file_content(key.as_str()).unwrap(), body);
        }
        assert_eq!(files.len(), 1 + trashed.len() + fixture.bystander_objects.len());
    } else {
        assert!(emu.graph_item_by_path(&format!("/{}", fixture.victim)).is_none());
        for (key, body) in &fixture.bystander_objects {
            assert_eq!(emu.graph_item_content(key.as_str()).unwrap(), body);
        }
        assert_eq!(emu.graph_items().len(), 1 + fixture.bystander_objects.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_purges_revokes_forgets_and_stops_managed_handles() {
    for provider in ["gdrive", "onedrive"] {
        let emu = Emulator::start().await.unwrap();
        let factory = factory(&emu);
        let store = Arc::new(MemoryCredentialStore::new());
        let grant = if provider == "gdrive" {
            emu.google_grant()
        } else {
            emu.microsoft_grant()
        };
        store.insert("c1", grant.to_string());
        let managed = factory.connect("c1", store.clone()).await.unwrap();
        let fixture = seed_two_users(managed.as_ref(), "alice", "alice-2").await.unwrap();

        let report = factory
            .disconnect("c1", store.clone(), Purge::objects("alice"))
            .await
            .unwrap();
        assert_eq!(report.provider, Some(provider));
        assert_eq!(
            report.purged.map(|p| p.counts()),
            Some(fixture.expected.counts()),
            "{provider}"
        );
        assert!(report.credentials_deleted);
        assert_purged_in_emulator(&emu, provider, &fixture);
        assert!(
            store.get("c1").is_none(),
            "{provider}: the store still holds the connection"
        );

        // Revoked where the provider allows it: the refresh token is refused.
        let mut old = grant.clone();
        old["expiry"] = serde_json::json!("2000-01-01T00:00:00Z");
        old["expires_at"] = serde_json::json!("2000-01-01T00:00:00Z");
        let probe = Arc::new(MemoryCredentialStore::new());
        probe.insert("old", old.to_string());
        let refreshed = factory.connect("old", probe).await.unwrap().health_check().await;
        if provider == "gdrive" {
            assert_eq!(report.revocation, Revocation::Revoked);
            assert!(is_invalid_grant(&refreshed), "{refreshed:?}");
            // And the access token with it.
            let opened = factory.open(&grant.to_string()).unwrap();
            assert!(opened.health_check().await.is_err());
        } else {
            // Microsoft has no revocation endpoint for a delegated refresh token.
            assert_eq!(report.revocation, Revocation::NotOffered);
        }

        // The handle handed out before fails at once, without network traffic.
        emu.clear_journal();
        let connections = emu.connections_accepted();
        let name = ObjectName::new("alice", "late", ".bin").unwrap();
        let put = managed
            .put_object(&name, Bytes::from_static(b"x"), "application/octet-stream")
            .await;
        assert!(
            matches!(&put, Err(e) if e.connection_reason() == Some(ConnectionReason::InvalidGrant)),
            "{put:?}"
        );
        assert!(is_invalid_grant(&managed.health_check().await));
        assert!(matches!(
            managed.purge_user("alice-2").await,
            Err(StorageError::CloudConnection { .. })
        ));
        assert!(matches!(
            factory.connect("c1", store.clone()).await,
            Err(StorageError::NotFound { .. })
        ));
        assert_eq!(
            emu.journal().len(),
            0,
            "{provider}: a disconnected handle made a request"
        );
        assert_eq!(emu.connections_accepted(), connections);

        // Repeating is safe.
        let again = factory
            .disconnect("c1", store.clone(), Purge::objects("alice"))
            .await
            .unwrap();
        assert_eq!(again.revocation, Revocation::AlreadyDisconnected);
        assert!(!again.credentials_deleted);
        assert_purged_in_emulator(&emu, provider, &fixture);
        emu.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revocation_keeps_the_credentials_and_the_next_call_completes() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let store = Arc::new(MemoryCredentialStore::new());
    store.insert("c1", emu.google_grant().to_string());
    let managed = factory.connect("c1", store.clone()).await.unwrap();
    let fixture = seed_two_users(managed.as_ref(), "alice", "bob").await.unwrap();
    // The revocation endpoint drops the connection on every attempt of the first call.
    emu.faults().add(
        FaultRule::new(FaultAction::ResetBeforeResponse)
            .path("/revoke")
            .times(2),
    );
    let err = factory
        .disconnect("c1", store.clone(), Purge::objects("alice"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Transport { .. }), "{err:?}");
    assert!(store.get("c1").is_some(), "credentials kept for the next attempt");
    managed.health_check().await.unwrap();

    let report = factory
        .disconnect("c1", store.clone(), Purge::objects("alice"))
        .await
        .unwrap();
    assert_eq!(
        report.purged,
        Some(storage_core::PurgeReport::default()),
        "already purged"
    );
    assert_eq!(report.revocation, Revocation::Revoked);
    assert!(store.get("c1").is_none());
    assert_purged_in_emulator(&emu, "gdrive", &fixture);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_purge_inside_disconnect_is_finished_by_the_next_call() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let store = Arc::new(MemoryCredentialStore::new());
    store.insert("c1", emu.microsoft_grant().to_string());
    let managed = factory.connect("c1", store.clone()).await.unwrap();
    let fixture = seed_two_users(managed.as_ref(), "alice", "bob").await.unwrap();
    emu.faults().add(
        FaultRule::new(FaultAction::ResetBeforeResponse)
            .method("DELETE")
            .path("/v1.0/me/drive/items/*")
            .times(2),
    );
    let err = factory
        .disconnect("c1", store.clone(), Purge::objects("alice"))
        .await
        .unwrap_err();
    assert!(matches!(err, StorageError::Transport { .. }), "{err:?}");
    assert!(store.get("c1").is_some());
    let report = factory
        .disconnect("c1", store.clone(), Purge::objects("alice"))
        .await
        .unwrap();
    assert_eq!(report.purged.map(|p| p.counts()), Some(fixture.expected.counts()));
    assert_purged_in_emulator(&emu, "onedrive", &fixture);
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_and_memory_connections_disconnect_with_a_purge() {
    let dir = tempfile::tempdir().unwrap();
    let factory = StorageFactory::builder()
        .allow_local(dir.path())
        .allow_memory()
        .build()
        .unwrap();
    let creds = tempfile::tempdir().unwrap();
    let store: Arc<dyn CredentialStore> = Arc::new(FileCredentialStore::in_dir(creds.path()));
    let local = serde_json::json!({"provider": "local", "root": dir.path()});
    for (id, json) in [
        ("local-1", local),
        ("memory-1", serde_json::json!({"provider": "memory"})),
    ] {
        store
            .save_credentials(id, &storage_core::Secret::new(json.to_string()))
            .await
            .unwrap();
        let backend = factory.connect(id, store.clone()).await.unwrap();
        let fixture = seed_two_users(backend.as_ref(), "alice", "alice-2").await.unwrap();
        let report = factory
            .disconnect(id, store.clone(), Purge::objects("alice"))
            .await
            .unwrap();
        assert_eq!(
            report.purged.map(|p| p.counts()),
            Some(fixture.expected.counts()),
            "{id}"
        );
        assert_eq!(report.revocation, Revocation::NotOffered);
        verify_after_purge(backend.as_ref(), &fixture).await.unwrap();
        assert!(!creds.path().join(format!("{id}.json")).exists(), "{id}: file left");
        assert!(matches!(store.load(id).await, Err(StorageError::NotFound { .. })));
    }
    assert!(!dir.path().join("alice").exists());
    assert!(dir.path().join("alice-2").exists());
    // Deleting what is gone is fine.
    store.delete("local-1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_user_ids_stop_disconnect_before_anything_happens() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let store = Arc::new(MemoryCredentialStore::new());
    store.insert("c1", emu.google_grant().to_string());
    emu.clear_journal();
    for id in storage_core::testkit::HOSTILE_USER_IDS {
        let err = factory
            .disconnect("c1", store.clone(), Purge::objects(*id))
            .await
            .unwrap_err();
        assert!(matches!(err, StorageError::InvalidInput { .. }), "{id:?}: {err:?}");
    }
    assert_eq!(emu.journal().len(), 0);
    assert!(store.get("c1").is_some());
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_managed_purge_refreshes_a_refused_token_and_retries_once() {
    for provider in ["gdrive", "onedrive"] {
        let emu = Emulator::start().await.unwrap();
        let factory = factory(&emu);
        let store = Arc::new(MemoryCredentialStore::new());
        let grant = if provider == "gdrive" {
            emu.google_grant()
        } else {
            emu.microsoft_grant()
        };
        store.insert("c1", grant.to_string());
        let managed = factory.connect("c1", store.clone()).await.unwrap();
        let fixture = seed_two_users(managed.as_ref(), "alice", "bob").await.unwrap();
        emu.expire_access_tokens();
        let report = managed.purge_user("alice").await.unwrap();
        assert_eq!(report.counts(), fixture.expected.counts(), "{provider}");
        let saved: serde_json::Value = serde_json::from_str(store.get("c1").unwrap().json.expose()).unwrap();
        assert_ne!(
            saved["access_token"], grant["access_token"],
            "{provider}: no refresh happened"
        );
        assert_purged_in_emulator(&emu, provider, &fixture);
        // A bad user id is refused before the refresh and the request.
        emu.expire_access_tokens();
        emu.clear_journal();
        assert!(matches!(
            managed.purge_user("../bob").await,
            Err(StorageError::InvalidInput { .. })
        ));
        assert_eq!(emu.journal().len(), 0);
        emu.shutdown().await;
    }
}
