//! `PostgresCredentialStore` over TLS. `cargo xtask ci` starts its throwaway
//! PostgreSQL with a server certificate from a throwaway CA and names that CA
//! in `STORAGE_TEST_DATABASE_CA` (see [`storage_tests::postgres`]).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use storage_core::{Secret, StorageError};
use storage_factory::{CredentialStore, PostgresCredentialStore};
use storage_tests::postgres::{database_ca, database_url, require_tls, unique_id};

/// The database URL with `sslmode=require`, and the CA's PEM.
fn server() -> Option<(String, Vec<u8>)> {
    let url = database_url()?;
    let ca = database_ca()?;
    Some((require_tls(&url), std::fs::read(ca).unwrap()))
}

#[tokio::test]
async fn the_store_speaks_tls_to_a_server_its_ca_vouches_for_and_refuses_others() {
    let Some((url, ca)) = server() else { return };
    let store = PostgresCredentialStore::connect_with_ca(&url, &ca).await.unwrap();
    let id = unique_id("tls");
    let json = r#"{"provider":"memory"}"#;
    store.create(&id, &Secret::from(json)).await.unwrap();
    assert_eq!(store.load(&id).await.unwrap().json.expose(), json);

    // The server sees an encrypted session (read from a second, plain session).
    let plain = std::env::var("STORAGE_TEST_DATABASE_URL").unwrap();
    let (client, conn) = tokio_postgres::connect(&plain, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl WHERE ssl AND version LIKE 'TLSv1.%'",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, i64>(0) >= 1, "no tls session on the server");
    store.delete(&id).await.unwrap();

    // The Mozilla roots do not vouch for the throwaway CA: with TLS required the
    // connection fails instead of going on unverified or in plain text.
    match PostgresCredentialStore::connect(&url).await {
        Err(StorageError::Transport { .. }) => {}
        other => panic!("an untrusted server certificate was accepted: {other:?}"),
    }
    // A CA argument without a certificate is refused before any connection.
    for bad in [
        &b""[..],
        b"not pem",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ] {
        assert!(matches!(
            PostgresCredentialStore::connect_with_ca(&url, bad).await,
            Err(StorageError::InvalidInput { .. })
        ));
    }
}
