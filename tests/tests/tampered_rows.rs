//! Tampered credential rows stay contained: a factory opens `local` and
//! `memory` connections only where the application enabled them, `local` roots
//! only under the base directory it configured, and refuses everything else
//! with `InvalidInput` naming the rule, before any I/O.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use storage_core::StorageError;
use storage_factory::{MemoryCredentialStore, StorageFactory};

fn local(root: &str) -> String {
    serde_json::json!({"provider": "local", "root": root}).to_string()
}

fn refused(result: storage_core::Result<Arc<dyn storage_core::StorageBackend>>, rule: &str) -> String {
    match result {
        Ok(b) => panic!("a tampered row opened {b:?}"),
        Err(StorageError::InvalidInput { message }) => {
            assert!(message.contains(rule), "the message names the rule `{rule}`: {message}");
            message
        }
        Err(e) => panic!("not InvalidInput: {e:?}"),
    }
}

/// `open` and `connect` alike: the row is refused by both.
async fn both_refuse(factory: &StorageFactory, json: &str, rule: &str) {
    refused(factory.open(json), rule);
    let store = Arc::new(MemoryCredentialStore::new());
    store.insert("c1", json);
    refused(factory.connect("c1", store).await, rule);
}

#[tokio::test]
async fn a_default_factory_opens_no_local_or_memory_row() {
    let factory = StorageFactory::builder().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let created = dir.path().join("made-by-a-row");
    both_refuse(&factory, r#"{"provider":"memory"}"#, "allow_memory").await;
    both_refuse(&factory, &local("/"), "allow_local").await;
    both_refuse(&factory, &local(created.to_str().unwrap()), "allow_local").await;
    assert!(!created.exists(), "a refused row touched the filesystem");
}

#[tokio::test]
async fn local_roots_must_lie_under_the_allowed_base() {
    let base = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let factory = StorageFactory::builder().allow_local(base.path()).build().unwrap();
    let b = base.path().to_str().unwrap();
    // Not created by a refused row: the checks come before any I/O.
    let escape = elsewhere.path().join("escaped");
    let e = escape.to_str().unwrap();
    for (root, rule) in [
        ("/".to_owned(), "under the base"),
        (e.to_owned(), "under the base"),
        (
            format!("{b}/../{}", escape.file_name().unwrap().to_str().unwrap()),
            "`..`",
        ),
        (format!("{b}/tenant/../../escaped"), "`..`"),
        ("../escaped".to_owned(), "`..`"),
        (format!("{b}-sibling"), "under the base"),
    ] {
        both_refuse(&factory, &local(&root), rule).await;
    }
    assert!(!escape.exists(), "a refused row touched the filesystem");
    assert!(!std::path::Path::new(&format!("{b}-sibling")).exists());
    // Memory is enabled separately.
    both_refuse(&factory, r#"{"provider":"memory"}"#, "allow_memory").await;
    // Under the base, absolute or relative, a row opens.
    for root in [format!("{b}/tenant-1"), "tenant-2".to_owned(), b.to_owned()] {
        let backend = factory.open(&local(&root)).unwrap();
        backend.health_check().await.unwrap();
    }
    assert!(base.path().join("tenant-1").is_dir() && base.path().join("tenant-2").is_dir());
}

/// A symbolic link under the base that points outside it is not a way out.
#[cfg(unix)]
#[tokio::test]
async fn a_symbolic_link_under_the_base_does_not_lead_out() {
    let base = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), base.path().join("link")).unwrap();
    let factory = StorageFactory::builder().allow_local(base.path()).build().unwrap();
    for root in ["link", "link/deeper"] {
        both_refuse(&factory, &local(root), "under the base").await;
    }
    assert!(
        !elsewhere.path().join("deeper").exists(),
        "nothing was created outside the base"
    );
}

#[tokio::test]
async fn memory_opens_only_when_allowed_and_is_one_store_per_factory() {
    let factory = StorageFactory::builder().allow_memory().build().unwrap();
    let a = factory.open(r#"{"provider":"memory"}"#).unwrap();
    let b = factory.open(r#"{"provider":"memory"}"#).unwrap();
    let name = storage_core::ObjectName::new("u", "d", "").unwrap();
    let key = a
        .put_object(&name, storage_core::Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    assert_eq!(b.get_object(&key).await.unwrap().as_ref(), b"x");
    both_refuse(&factory, &local("/"), "allow_local").await;
    assert!(
        StorageFactory::builder().allow_local("relative/dir").build().is_err(),
        "the base must be absolute"
    );
}
