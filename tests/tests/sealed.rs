//! `SealedStore` under managed connections against the emulator: refreshed
//! credentials are written back sealed, keys rotate with `rekey`, and a wrong
//! key, a changed blob or a blob moved between connections stops `connect`
//! with an integrity error. The inner stores are read directly to check that no
//! secret reaches them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use storage_core::{Secret, StorageError};
use storage_emulator::{Emulator, EmulatorHandle};
use storage_factory::{
    CredentialStore, FileCredentialStore, MemoryCredentialStore, SealedStore, SealingKey, SealingKeys, StorageFactory,
};
use storage_tests::emulator::{factory_builder, quick_retry};

fn factory(emu: &EmulatorHandle) -> StorageFactory {
    factory_builder(emu).retry(quick_retry()).build().unwrap()
}

fn key(byte: u8) -> SealingKey {
    SealingKey::from_bytes([byte; 32])
}

fn one_key(kid: &str, byte: u8) -> SealingKeys {
    SealingKeys::new((kid, key(byte))).unwrap()
}

fn sealed_memory(keys: SealingKeys) -> Arc<SealedStore<MemoryCredentialStore>> {
    Arc::new(SealedStore::new(MemoryCredentialStore::new(), keys))
}

fn token_requests(emu: &EmulatorHandle) -> usize {
    emu.journal().token_requests().len()
}

/// The secret strings of a grant: tokens and the client secret, when present.
fn secrets(grant: &serde_json::Value) -> Vec<String> {
    ["access_token", "refresh_token", "client_secret"]
        .iter()
        .filter_map(|k| grant[k].as_str().map(str::to_owned))
        .collect()
}

fn assert_sealed(raw: &str, kid: &str, secrets: &[String]) {
    let v: serde_json::Value = serde_json::from_str(raw).unwrap();
    assert_eq!(v["sealed"], "v1", "{raw}");
    assert_eq!(v["kid"], kid, "{raw}");
    for s in secrets {
        assert!(!raw.contains(s.as_str()), "a secret reached the inner store");
    }
    for word in ["access_token", "refresh_token", "provider"] {
        assert!(!raw.contains(word), "{word} reached the inner store");
    }
}

fn integrity_message(err: StorageError) -> String {
    match err {
        StorageError::Integrity { message } => message,
        other => panic!("expected Integrity, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_through_a_sealed_store_writes_back_a_sealed_blob() {
    for provider in ["gdrive", "onedrive"] {
        let emu = Emulator::builder()
            .invalidate_rotated_refresh_tokens(true)
            .start()
            .await
            .unwrap();
        let factory = factory(&emu);
        let store = sealed_memory(one_key("k1", 1));
        let grant = if provider == "gdrive" {
            emu.google_grant()
        } else {
            emu.microsoft_grant()
        };
        store
            .inner()
            .insert("c1", store.seal("c1", &Secret::new(grant.to_string())).unwrap());
        let before = store.inner().get("c1").unwrap().json;
        assert_sealed(before.expose(), "k1", &secrets(&grant));

        let backend = factory.connect("c1", store.clone()).await.unwrap();
        emu.expire_access_tokens();
        emu.clear_journal();
        backend.health_check().await.unwrap();
        assert_eq!(token_requests(&emu), 1, "{provider}");

        let after = store.inner().get("c1").unwrap().json;
        assert_ne!(after, before, "{provider}: the refresh was saved");
        let saved: serde_json::Value = serde_json::from_str(store.load("c1").await.unwrap().json.expose()).unwrap();
        assert_ne!(saved["access_token"], grant["access_token"], "{provider}");
        let mut all = secrets(&grant);
        all.extend(secrets(&saved));
        assert_sealed(after.expose(), "k1", &all);

        // A new connection from the sealed row works with the saved, rotated token.
        let again = factory.connect("c1", store.clone()).await.unwrap();
        emu.expire_access_tokens();
        again.health_check().await.unwrap();
        emu.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_with_rekey_and_the_old_key_can_then_go() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let grant = emu.microsoft_grant();
    let before = SealedStore::new(MemoryCredentialStore::new(), one_key("2026-05", 1));
    for id in ["c1", "c2"] {
        before
            .inner()
            .insert(id, before.seal(id, &Secret::new(grant.to_string())).unwrap());
    }

    // The new key seals; the old one still opens.
    let rotated = SealingKeys::new(("2026-11", key(2)))
        .unwrap()
        .with_old("2026-05", key(1))
        .unwrap();
    let store = Arc::new(SealedStore::new(before.into_inner(), rotated));
    factory
        .connect("c1", store.clone())
        .await
        .unwrap()
        .health_check()
        .await
        .unwrap();
    for id in ["c1", "c2"] {
        assert!(store.rekey(id).await.unwrap(), "{id} was under the old key");
        assert!(!store.rekey(id).await.unwrap(), "{id} is already under the new key");
        assert_sealed(
            store.inner().get(id).unwrap().json.expose(),
            "2026-11",
            &secrets(&grant),
        );
    }

    // Without the old key, every row still opens.
    let rows = MemoryCredentialStore::new();
    for id in ["c1", "c2"] {
        rows.insert(id, store.inner().get(id).unwrap().json);
    }
    let store = Arc::new(SealedStore::new(rows, one_key("2026-11", 2)));
    for id in ["c1", "c2"] {
        let backend = factory.connect(id, store.clone()).await.unwrap();
        emu.expire_access_tokens();
        backend.health_check().await.unwrap();
        assert_sealed(store.inner().get(id).unwrap().json.expose(), "2026-11", &[]);
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_a_flipped_bit_and_a_swapped_blob_stop_connect() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let grant = emu.google_grant();
    let store = sealed_memory(one_key("k1", 1));
    for id in ["alice", "bob"] {
        store
            .inner()
            .insert(id, store.seal(id, &Secret::new(grant.to_string())).unwrap());
    }
    let alice = store.inner().get("alice").unwrap().json;
    let bob = store.inner().get("bob").unwrap().json;
    let check = |msg: String, want: &str| {
        assert!(msg.contains(want), "{msg}");
        for s in secrets(&grant) {
            assert!(!msg.contains(s.as_str()), "the error repeats a secret");
        }
    };

    // A wrong key under the right id.
    let wrong = Arc::new(SealedStore::new(MemoryCredentialStore::new(), one_key("k1", 9)));
    wrong.inner().insert("alice", alice.clone());
    let err = factory.connect("alice", wrong).await.unwrap_err();
    check(integrity_message(err), "failed authentication");

    // A key id that is not configured.
    let other = Arc::new(SealedStore::new(MemoryCredentialStore::new(), one_key("k2", 1)));
    other.inner().insert("alice", alice.clone());
    let err = factory.connect("alice", other).await.unwrap_err();
    check(integrity_message(err), "key id `k1`");

    // One flipped bit of the ciphertext.
    let mut env: serde_json::Value = serde_json::from_str(alice.expose()).unwrap();
    let mut ct = env["ct"].as_str().unwrap().to_owned().into_bytes();
    // Changing one base64 letter changes the bits it encodes.
    ct[10] = if ct[10] == b'A' { b'B' } else { b'A' };
    env["ct"] = String::from_utf8(ct).unwrap().into();
    store.inner().insert("alice", env.to_string());
    let err = factory.connect("alice", store.clone()).await.unwrap_err();
    check(integrity_message(err), "failed authentication");

    // Bob's blob copied into Alice's row: both rows hold a valid blob, neither opens as the other.
    store.inner().insert("alice", bob.clone());
    let err = factory.connect("alice", store.clone()).await.unwrap_err();
    check(integrity_message(err), "another connection");
    store.inner().insert("bob", alice.clone());
    assert!(matches!(store.load("bob").await, Err(StorageError::Integrity { .. })));

    // Put back, both connect.
    store.inner().insert("alice", alice);
    store.inner().insert("bob", bob);
    for id in ["alice", "bob"] {
        factory
            .connect(id, store.clone())
            .await
            .unwrap()
            .health_check()
            .await
            .unwrap();
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_store_under_a_sealed_store_holds_no_secret_on_disk() {
    let emu = Emulator::builder()
        .invalidate_rotated_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let factory = factory(&emu);
    let dir = tempfile::tempdir().unwrap();
    let grant = emu.microsoft_grant();
    let store = Arc::new(SealedStore::new(
        FileCredentialStore::in_dir(dir.path()),
        one_key("k1", 1),
    ));
    // The file store creates the row on save: a plaintext connection is sealed on the way in.
    store
        .save_credentials("c1", &Secret::new(grant.to_string()))
        .await
        .unwrap();
    let backend = factory.connect("c1", store.clone()).await.unwrap();
    emu.expire_access_tokens();
    backend.health_check().await.unwrap();
    let saved: serde_json::Value = serde_json::from_str(store.load("c1").await.unwrap().json.expose()).unwrap();
    assert_ne!(
        saved["refresh_token"], grant["refresh_token"],
        "the rotated token was saved"
    );

    // Status writes keep the blob intact.
    store
        .set_status("c1", storage_factory::ConnectionStatus::RequiresReauth)
        .await
        .unwrap();
    assert_eq!(
        store.load("c1").await.unwrap().status,
        storage_factory::ConnectionStatus::RequiresReauth
    );

    let mut all = secrets(&grant);
    all.extend(secrets(&saved));
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for s in &all {
            assert!(!text.contains(s.as_str()), "a secret is on disk");
        }
        files += 1;
    }
    assert!(files >= 1);
    let raw = std::fs::read_to_string(dir.path().join("c1.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["status"], "requires_reauth");
    v.as_object_mut().unwrap().remove("status");
    assert_sealed(&v.to_string(), "k1", &all);
    emu.shutdown().await;
}
