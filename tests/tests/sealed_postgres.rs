//! `SealedStore` over `PostgresCredentialStore`: credentials round-trip, a
//! refresh is written back sealed, keys rotate with `rekey`, a blob moved to
//! another row does not open, and the table itself, read with plain SQL, holds
//! no token and no client secret in any column.
//!
//! Needs `STORAGE_TEST_DATABASE_URL` (`cargo xtask ci` starts a throwaway
//! cluster and sets it); without it the tests print why they skip, except
//! under CI (`CI=true`), where they fail. The direct reads connect without TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::Arc;

use storage_core::{Secret, StorageError};
use storage_emulator::{Emulator, EmulatorHandle};
use storage_factory::{CredentialStore, PostgresCredentialStore, SealedStore, SealingKey, SealingKeys, StorageFactory};
use storage_tests::emulator::factory_builder;
use storage_tests::postgres::{database_url, unique_id};

fn factory(emu: &EmulatorHandle) -> StorageFactory {
    factory_builder(emu).build().unwrap()
}

fn keys(primary: (&str, u8), old: Option<(&str, u8)>) -> SealingKeys {
    let k = SealingKeys::new((primary.0, SealingKey::from_bytes([primary.1; 32]))).unwrap();
    match old {
        Some((kid, byte)) => k.with_old(kid, SealingKey::from_bytes([byte; 32])).unwrap(),
        None => k,
    }
}

async fn sealed(url: &str, keys: SealingKeys) -> Arc<SealedStore<PostgresCredentialStore>> {
    Arc::new(SealedStore::new(
        PostgresCredentialStore::connect(url).await.unwrap(),
        keys,
    ))
}

/// The tokens and the client secret of credential JSON, when present.
fn secrets(json: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    ["access_token", "refresh_token", "client_secret"]
        .iter()
        .filter_map(|k| v[k].as_str().map(str::to_owned))
        .collect()
}

/// A session of plain SQL, beside the store.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Every column of the connection's row, each cast to text and to bytes, and
/// the whole row as JSON: whatever columns a later migration adds.
async fn raw_row(db: &tokio_postgres::Client, id: &str) -> Vec<String> {
    let columns: Vec<String> = db
        .query(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            &[&storage_factory::POSTGRES_TABLE],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(columns.len() >= 6, "{columns:?}");
    let mut out = Vec::new();
    for c in &columns {
        let q = format!(
            "SELECT {c}::text, convert_to({c}::text, 'UTF8') FROM {} WHERE connection_id = $1",
            storage_factory::POSTGRES_TABLE
        );
        let row = db.query_one(&q, &[&id]).await.unwrap();
        let text: String = row.get(0);
        let bytes: Vec<u8> = row.get(1);
        out.push(text);
        out.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    let q = format!(
        "SELECT to_jsonb(t)::text FROM {} t WHERE connection_id = $1",
        storage_factory::POSTGRES_TABLE
    );
    out.push(db.query_one(&q, &[&id]).await.unwrap().get(0));
    out
}

fn assert_no_secret(row: &[String], secrets: &[String]) {
    assert!(!secrets.is_empty());
    for cell in row {
        for s in secrets {
            assert!(!cell.contains(s.as_str()), "a secret is in the table in plaintext");
        }
        for word in ["access_token", "refresh_token", "client_secret"] {
            assert!(!cell.contains(word), "{word} is in the table");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_postgresql_rows_round_trip_and_hold_no_plaintext_secret() {
    let Some(url) = database_url() else { return };
    let db = sql(&url).await;
    let emu = Emulator::builder()
        .invalidate_rotated_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    for provider in ["gdrive", "onedrive"] {
        let grant = if provider == "gdrive" {
            emu.google_grant()
        } else {
            emu.microsoft_grant()
        }
        .to_string();
        let mut all = secrets(&grant);
        if provider == "gdrive" {
            assert_eq!(all.len(), 3, "the google grant carries a client secret");
        }
        let id = unique_id(&format!("sealed-{provider}"));
        let store = sealed(&url, keys(("k1", 1), None)).await;
        store.save_credentials(&id, &Secret::new(grant.clone())).await.unwrap();

        // Round trip, through this store and through a second process's store.
        assert_eq!(store.load(&id).await.unwrap().json.expose(), grant);
        let other = sealed(&url, keys(("k1", 1), None)).await;
        assert_eq!(other.load(&id).await.unwrap().json.expose(), grant);
        let row = raw_row(&db, &id).await;
        assert!(
            row.iter().any(|c| c.contains(r#""kid":"k1""#)),
            "the row holds a sealed blob"
        );
        assert_no_secret(&row, &all);

        // A refresh writes back a sealed blob.
        let backend = factory(&emu).connect(&id, store.clone()).await.unwrap();
        emu.expire_access_tokens();
        backend.health_check().await.unwrap();
        let refreshed = store.load(&id).await.unwrap().json;
        assert_ne!(refreshed.expose(), grant, "{provider}: the refresh was saved");
        all.extend(secrets(refreshed.expose()));
        assert_no_secret(&raw_row(&db, &id).await, &all);

        // Rotation: k2 seals, k1 still opens, rekey moves the row to k2.
        let rotated = sealed(&url, keys(("k2", 2), Some(("k1", 1)))).await;
        assert_eq!(rotated.load(&id).await.unwrap().json, refreshed);
        assert!(rotated.rekey(&id).await.unwrap());
        assert!(!rotated.rekey(&id).await.unwrap(), "a second rekey has nothing to do");
        let row = raw_row(&db, &id).await;
        assert!(row.iter().any(|c| c.contains(r#""kid":"k2""#)), "rekeyed under k2");
        assert_no_secret(&row, &all);
        let k2_only = sealed(&url, keys(("k2", 2), None)).await;
        assert_eq!(k2_only.load(&id).await.unwrap().json, refreshed);
        // The old key alone no longer opens the row.
        let err = store.load(&id).await.unwrap_err();
        assert!(matches!(err, StorageError::Integrity { .. }), "{err:?}");

        // A blob copied into another connection's row does not open there.
        let victim = unique_id("sealed-victim");
        k2_only
            .save_credentials(&victim, &Secret::new(r#"{"provider":"memory"}"#))
            .await
            .unwrap();
        let q = format!(
            "UPDATE {t} SET credentials = (SELECT credentials FROM {t} WHERE connection_id = $1) WHERE connection_id = $2",
            t = storage_factory::POSTGRES_TABLE
        );
        assert_eq!(db.execute(&q, &[&id, &victim]).await.unwrap(), 1);
        let err = k2_only.load(&victim).await.unwrap_err();
        match &err {
            StorageError::Integrity { message } => assert!(message.contains("failed authentication"), "{message}"),
            other => panic!("expected Integrity, got {other:?}"),
        }
        for s in &all {
            assert!(!format!("{err} {err:?}").contains(s.as_str()));
        }

        k2_only.delete(&id).await.unwrap();
        k2_only.delete(&victim).await.unwrap();
    }
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_connection_is_one_upsert_that_clears_the_status() {
    let Some(url) = database_url() else { return };
    let store = sealed(&url, keys(("k1", 1), None)).await;
    let id = unique_id("store-connection");
    let first = Secret::new(r#"{"provider":"memory","n":1}"#);
    store.store_connection(&id, &first).await.unwrap();
    let got = store.load(&id).await.unwrap();
    assert_eq!(
        (got.json.expose(), got.status),
        (first.expose(), storage_factory::ConnectionStatus::Active)
    );
    store
        .set_status(&id, storage_factory::ConnectionStatus::RequiresReauth)
        .await
        .unwrap();
    // Another process's store, which never read the row, reconnects it.
    let other = sealed(&url, keys(("k1", 1), None)).await;
    let second = Secret::new(r#"{"provider":"memory","n":2}"#);
    other.store_connection(&id, &second).await.unwrap();
    let got = store.load(&id).await.unwrap();
    assert_eq!(
        (got.json.expose(), got.status),
        (second.expose(), storage_factory::ConnectionStatus::Active)
    );
    let db = sql(&url).await;
    assert!(
        raw_row(&db, &id).await.iter().all(|c| !c.contains(r#""n":2"#)),
        "stored unsealed"
    );
    store.delete(&id).await.unwrap();
}
