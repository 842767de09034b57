#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `purge_user` on the embedded backends: exactly one user's objects go, hostile
//! user ids are refused before anything is touched.

use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;
use storage_core::testkit::{HOSTILE_USER_IDS, run_purge_check};
use storage_core::{LocalBackend, MemoryBackend, ObjectName, StorageBackend, StorageError, validate_part};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(base, &path, out);
            } else {
                out.push(path.strip_prefix(base).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn memory_purge_removes_exactly_one_user() {
    let backend = MemoryBackend::new();
    // The bystander's id is the victim's with a suffix: a different user.
    let fixture = run_purge_check(&backend, "alice", "alice-2").await.unwrap();
    assert_eq!(backend.len(), fixture.bystander_objects.len());
}

#[tokio::test]
async fn local_purge_removes_exactly_one_user_and_the_folder() {
    let dir = tempfile::tempdir().unwrap();
    let backend = LocalBackend::new(dir.path()).unwrap();
    let fixture = run_purge_check(&backend, "alice", "alice-2").await.unwrap();
    assert!(!dir.path().join("alice").exists(), "the user folder is gone");
    let left = files_under(dir.path());
    assert_eq!(left.len(), fixture.bystander_objects.len());
    assert!(left.iter().all(|p| p.starts_with("alice-2/")), "{left:?}");
}

#[tokio::test]
async fn local_purge_removes_leftover_temporaries_and_unlinks_without_following() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let backend = LocalBackend::new(&root).unwrap();
    let outside = dir.path().join("outside.txt");
    std::fs::write(&outside, b"keep me").unwrap();
    backend
        .put_object(
            &ObjectName::new("u", "d", ".txt").unwrap(),
            Bytes::from_static(b"abc"),
            "t",
        )
        .await
        .unwrap();
    // A temporary of a put that crashed, and a link a hostile process left.
    std::fs::write(root.join("u/d.txt#0123.part"), b"partial").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&outside, root.join("u/link.txt")).unwrap();
    let report = backend.purge_user("u").await.unwrap();
    assert_eq!((report.objects, report.bytes), (1, 3));
    assert!(!root.join("u").exists());
    assert_eq!(std::fs::read(&outside).unwrap(), b"keep me");
}

#[cfg(unix)]
#[tokio::test]
async fn local_purge_refuses_a_user_folder_that_links_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let backend = LocalBackend::new(&root).unwrap();
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("f.txt"), b"secret").unwrap();
    std::os::unix::fs::symlink(&outside, root.join("evil")).unwrap();
    assert!(matches!(
        backend.purge_user("evil").await,
        Err(StorageError::InvalidInput { .. })
    ));
    assert_eq!(std::fs::read(outside.join("f.txt")).unwrap(), b"secret");
}

#[tokio::test]
async fn hostile_user_ids_are_refused_by_both_embedded_backends() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let local = LocalBackend::new(&root).unwrap();
    let memory = MemoryBackend::new();
    let name = ObjectName::new("u", "d", "").unwrap();
    local.put_object(&name, Bytes::from_static(b"x"), "t").await.unwrap();
    memory.put_object(&name, Bytes::from_static(b"x"), "t").await.unwrap();
    let too_long = "a".repeat(129);
    for id in HOSTILE_USER_IDS.iter().copied().chain([too_long.as_str()]) {
        for backend in [&local as &dyn StorageBackend, &memory] {
            let err = backend.purge_user(id).await.unwrap_err();
            assert!(matches!(err, StorageError::InvalidInput { .. }), "{id:?}: {err:?}");
        }
    }
    assert!(root.join("u/d").exists());
    assert_eq!(memory.len(), 1);
}

#[tokio::test]
async fn purging_a_user_with_nothing_stored_is_an_empty_report() {
    let dir = tempfile::tempdir().unwrap();
    let local = LocalBackend::new(dir.path()).unwrap();
    assert!(local.purge_user("nobody").await.unwrap().is_empty());
    assert!(MemoryBackend::new().purge_user("nobody").await.unwrap().is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever the user id, a purge either refuses it (exactly when the name
    /// rules do) or removes that one user's folder: never the root, a parent, or
    /// another user's files.
    #[test]
    fn a_purge_touches_nothing_but_the_named_user(
        id in prop_oneof![
            "[a-z.]{0,3}",
            "\\PC{0,12}",
            "(\\.\\./|/|\\\\|root:?)[a-z]{0,3}",
            Just("root".to_owned()),
            Just("alice".to_owned()),
        ]
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside.txt");
        std::fs::write(&outside, b"keep").unwrap();
        let local = LocalBackend::new(&root).unwrap();
        let memory = MemoryBackend::new();
        let others = ["alice", "alice-2", "root", "b"];
        rt().block_on(async {
            for user in others {
                let name = ObjectName::new(user, "d", ".bin").unwrap();
                local.put_object(&name, Bytes::from_static(b"data"), "t").await.unwrap();
                memory.put_object(&name, Bytes::from_static(b"data"), "t").await.unwrap();
            }
        });
        let valid = validate_part("user_id", &id).is_ok();
        let (l, m) = rt().block_on(async { (local.purge_user(&id).await, memory.purge_user(&id).await) });
        if valid {
            prop_assert!(l.is_ok(), "{:?}", l);
            prop_assert!(m.is_ok(), "{:?}", m);
        } else {
            prop_assert!(matches!(l, Err(StorageError::InvalidInput { .. })), "{:?}", l);
            prop_assert!(matches!(m, Err(StorageError::InvalidInput { .. })), "{:?}", m);
        }
        let expected: Vec<String> = others
            .iter()
            .filter(|u| !(valid && **u == id))
            .map(|u| format!("{u}/d.bin"))
            .collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        prop_assert_eq!(files_under(&root), expected_sorted);
        prop_assert_eq!(memory.len(), expected.len());
        prop_assert!(outside.exists());
    }
}
