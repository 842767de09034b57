//! `PostgresCredentialStore` over TLS. `cargo xtask ci` starts its throwaway
//! PostgreSQL with a server certificate from a throwaway CA and names that CA
//! in `STORAGE_TEST_DATABASE_CA`. Without both variables the test prints why
//! it skips, except under CI (`CI=true`), where it fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use storage_core::{Secret, StorageError};
use storage_factory::{CredentialStore, PostgresCredentialStore};

/// The database URL with `sslmode=require`, and the CA's PEM.
fn server() -> Option<(String, Vec<u8>)> {
    let url = std::env::var("STORAGE_TEST_DATABASE_URL").unwrap_or_default();
    let ca = std::env::var("STORAGE_TEST_DATABASE_CA").unwrap_or_default();
    if url.is_empty() || ca.is_empty() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "STORAGE_TEST_DATABASE_URL and STORAGE_TEST_DATABASE_CA must be set under CI: `cargo xtask ci` sets both"
        );
        eprintln!("skipped: set STORAGE_TEST_DATABASE_URL and STORAGE_TEST_DATABASE_CA (or run `cargo xtask ci`)");
        return None;
    }
    let base = url.split_once('?').map_or(url.as_str(), |(b, _)| b);
    Some((format!("{base}?sslmode=require"), std::fs::read(ca).unwrap()))
}

#[tokio::test]
async fn the_store_speaks_tls_to_a_server_its_ca_vouches_for_and_refuses_others() {
    let Some((url, ca)) = server() else { return };
    let store = PostgresCredentialStore::connect_with_ca(&url, &ca).await.unwrap();
    let id = format!("tls-{}-{:08x}", std::process::id(), fastrand::u32(..));
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
