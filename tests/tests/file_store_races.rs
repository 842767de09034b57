//! `FileCredentialStore` under concurrent writers: threads of one process and
//! other processes saving credentials and marking the connection at once lose
//! no status, and a deletion never removes a lock someone holds.
//!
//! The other processes are this test binary started again with [`CHILD`] set,
//! which then runs only `file_store_child`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use storage_core::Secret;
use storage_factory::{ConnectionStatus, CredentialStore, FileCredentialStore};

/// Set in a child process: the store's directory.
const CHILD: &str = "STORAGE_TEST_FILE_STORE_CHILD";
/// The worker number a child plays.
const WORKER: &str = "STORAGE_TEST_FILE_STORE_WORKER";
const THREADS: usize = 8;
const PROCESSES: usize = 2;
const SAVES: usize = 30;
const ROUNDS: usize = 3;

/// One writer: `SAVES` saves of its own credential JSON, and one mark of the
/// connection as requiring re-authorisation halfway through.
fn work(dir: &std::path::Path, worker: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = FileCredentialStore::in_dir(dir);
        for i in 0..SAVES {
            let json = serde_json::json!({"provider": "memory", "worker": worker, "save": i});
            store
                .save_credentials("c1", &Secret::new(json.to_string()))
                .await
                .unwrap();
            if i == SAVES / 2 {
                store.set_status("c1", ConnectionStatus::RequiresReauth).await.unwrap();
            }
        }
    });
}

/// Runs only as a child of the test below; in a plain run it does nothing.
#[test]
fn file_store_child() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let worker: usize = std::env::var(WORKER).unwrap().parse().unwrap();
    work(std::path::Path::new(&dir), worker);
}

#[test]
fn eight_threads_and_two_processes_saving_and_marking_lose_no_status() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..ROUNDS {
        let store = FileCredentialStore::in_dir(dir.path());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            store
                .save_credentials("c1", &Secret::new(r#"{"provider":"memory"}"#))
                .await
                .unwrap();
            store.set_status("c1", ConnectionStatus::Active).await.unwrap();
        });
        let children: Vec<_> = (0..PROCESSES)
            .map(|p| {
                Command::new(std::env::current_exe().unwrap())
                    .args(["--exact", "file_store_child", "--nocapture", "--test-threads=1"])
                    .env(CHILD, dir.path())
                    .env(WORKER, (THREADS + p).to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let dir = dir.path().to_owned();
                std::thread::spawn(move || work(&dir, t))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for mut c in children {
            assert!(c.wait().unwrap().success(), "a child failed");
        }
        let stored = rt.block_on(store.load("c1")).unwrap();
        assert_eq!(
            stored.status,
            ConnectionStatus::RequiresReauth,
            "round {round}: a save dropped the re-authorisation mark"
        );
        let json: serde_json::Value = serde_json::from_str(stored.json.expose()).unwrap();
        assert_eq!(
            json["save"],
            SAVES - 1,
            "round {round}: the last save of some writer won"
        );
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
}

/// A deletion waits for the holder of the refresh lock, and the lock still
/// excludes a second holder afterwards, also for a waiter that opened the lock
/// file before the deletion removed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_never_removes_a_lock_someone_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = || Arc::new(FileCredentialStore::in_dir(dir.path()));
    store()
        .save_credentials("c1", &Secret::new(r#"{"provider":"memory"}"#))
        .await
        .unwrap();
    let held = store().lock_refresh("c1").await.unwrap();
    let deleter = store();
    let deleting = tokio::spawn(async move { deleter.delete("c1").await });
    let waiter = store();
    let waiting = tokio::spawn(async move { waiter.lock_refresh("c1").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !deleting.is_finished(),
        "the deletion went ahead while another holder had the lock"
    );
    assert!(!waiting.is_finished(), "a second holder got the lock");
    drop(held);
    // The waiter gets the lock, before or after the deletion.
    let second = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiter got the lock")
        .unwrap()
        .unwrap();
    let third_store = store();
    let third = tokio::spawn(async move { third_store.lock_refresh("c1").await.map(drop) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!third.is_finished(), "two holders of the lock at once");
    drop(second);
    tokio::time::timeout(Duration::from_secs(5), deleting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(store().load("c1").await.is_err(), "the connection is gone");
}
