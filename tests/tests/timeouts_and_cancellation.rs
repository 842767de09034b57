//! Timeouts and cancellation on both providers: a hung server never hangs a
//! call, a dropped `put_stream` commits nothing (and OneDrive's session is
//! cancelled), a `get_stream` dropped halfway gives its connection back, and
//! an overwrite or a purge dropped halfway leaves nothing lost or stale.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use storage_core::testkit::payload as data;
use storage_core::{ByteStream, ObjectName, RetryPolicy, StorageBackend, StorageError, TokenCell};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, Origin};
use storage_factory::storage_gdrive::{CHUNK_UNIT, DriveOptions, GoogleApp, GoogleDriveBackend, GoogleEndpoints};
use storage_factory::storage_onedrive::{
    FRAGMENT_UNIT, MicrosoftApp, MicrosoftEndpoints, OneDriveBackend, OneDriveOptions,
};
use storage_factory::{Endpoints, MemoryCredentialStore, StorageFactory};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum P {
    Gdrive,
    Onedrive,
}

const READ_TIMEOUT: Duration = Duration::from_millis(300);

fn policy() -> RetryPolicy {
    RetryPolicy::new()
        .with_max_attempts(2)
        .with_initial_backoff(Duration::from_millis(5))
        .with_max_backoff(Duration::from_millis(10))
}

fn name(doc: &str) -> ObjectName {
    ObjectName::new("user-c", doc, ".bin").unwrap()
}

/// The unit of a resumable piece.
fn unit(p: P) -> usize {
    match p {
        P::Gdrive => CHUNK_UNIT,
        P::Onedrive => FRAGMENT_UNIT,
    }
}

fn backend(p: P, emu: &EmulatorHandle) -> Arc<dyn StorageBackend> {
    match p {
        P::Gdrive => {
            let grant = emu.google_grant();
            let endpoints: GoogleEndpoints =
                serde_json::from_value(serde_json::to_value(&emu.endpoints().google).unwrap()).unwrap();
            let mut o = DriveOptions::default();
            o.chunk_size = CHUNK_UNIT;
            o.multipart_limit = 64 * 1024;
            o.retry = policy();
            o.read_timeout = READ_TIMEOUT;
            o.connect_timeout = Duration::from_secs(1);
            Arc::new(
                GoogleDriveBackend::builder(TokenCell::new(grant["access_token"].as_str().unwrap()))
                    .endpoints(endpoints)
                    .options(o)
                    .build()
                    .unwrap(),
            )
        }
        P::Onedrive => {
            let grant = emu.microsoft_grant();
            let endpoints: MicrosoftEndpoints =
                serde_json::from_value(serde_json::to_value(&emu.endpoints().microsoft).unwrap()).unwrap();
            let mut o = OneDriveOptions::default();
            o.fragment_size = FRAGMENT_UNIT;
            o.retry = policy();
            o.read_timeout = READ_TIMEOUT;
            o.connect_timeout = Duration::from_secs(1);
            Arc::new(
                OneDriveBackend::builder(TokenCell::new(grant["access_token"].as_str().unwrap()))
                    .endpoints(endpoints)
                    .options(o)
                    .build()
                    .unwrap(),
            )
        }
    }
}

/// No request on the content origin carried a token.
fn no_token_on_the_content_origin(emu: &EmulatorHandle) {
    let journal = emu.journal();
    let leaked = journal.filter(|e| e.origin == Origin::Content && e.header("authorization").is_some());
    assert!(
        leaked.is_empty(),
        "{} requests carried a token to the content origin",
        leaked.len()
    );
}

/// Every operation, and a managed connection's refresh, against a server that
/// accepts connections but never answers: each call ends with `Transport` well
/// within attempts × read timeout plus backoff, never hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_never_hangs_a_call() {
    for p in [P::Gdrive, P::Onedrive] {
        let emu = Emulator::start().await.unwrap();
        let b = backend(p, &emu);
        let small = data(1000, 1);
        let large = data(unit(p) + 5, 2);
        let key = b.put_object(&name("there"), small.clone(), "a/b").await.unwrap();
        emu.faults().add(FaultRule::new(FaultAction::Delay { millis: 60_000 }));
        let calls: Vec<(&str, futures::future::BoxFuture<'_, Result<(), StorageError>>)> = vec![
            (
                "put small",
                Box::pin(async { b.put_object(&name("a"), small.clone(), "a/b").await.map(drop) }),
            ),
            (
                "put resumable",
                Box::pin(async { b.put_object(&name("b"), large.clone(), "a/b").await.map(drop) }),
            ),
            (
                "put_stream",
                Box::pin(async {
                    let s = storage_core::stream::from_bytes(large.clone(), 10_000);
                    b.put_stream(&name("c"), s, large.len() as u64, "a/b").await.map(drop)
                }),
            ),
            ("get", Box::pin(async { b.get_object(&key).await.map(drop) })),
            ("get_stream", Box::pin(async { b.get_stream(&key).await.map(drop) })),
            ("stat", Box::pin(async { b.stat_object(&key).await.map(drop) })),
            ("delete", Box::pin(async { b.delete_object(&key).await })),
            ("health", Box::pin(async { b.health_check().await })),
        ];
        for (op, call) in calls {
            let started = Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(10), call)
                .await
                .unwrap_or_else(|_| panic!("{p:?} {op} hung"));
            let took = started.elapsed();
            assert!(
                matches!(result, Err(StorageError::Transport { .. })),
                "{p:?} {op}: {result:?}"
            );
            // Two attempts of 300 ms each, a little backoff, and for uploads a
            // status query per failure.
            assert!(took < Duration::from_secs(3), "{p:?} {op} took {took:?}");
        }
        no_token_on_the_content_origin(&emu);
        drop(emu);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_token_endpoint_never_hangs_a_managed_call() {
    for p in [P::Gdrive, P::Onedrive] {
        let emu = Emulator::start().await.unwrap();
        let g = emu.google_app();
        let m = emu.microsoft_app();
        let factory = StorageFactory::builder()
            .endpoints(Endpoints::from_json(&serde_json::to_string(emu.endpoints()).unwrap()).unwrap())
            .google_app(GoogleApp::new(&g.client_id, g.client_secret.as_str()))
            .microsoft_app(MicrosoftApp::new(&m.client_id, m.client_secret.as_str()))
            .retry(policy())
            .timeouts(Duration::from_secs(1), READ_TIMEOUT)
            .build()
            .unwrap();
        let store = Arc::new(MemoryCredentialStore::new());
        let grant = match p {
            P::Gdrive => emu.google_grant(),
            P::Onedrive => emu.microsoft_grant(),
        };
        store.insert("c", grant.to_string());
        let b = factory.connect("c", store).await.unwrap();
        emu.expire_access_tokens();
        emu.faults().add(
            FaultRule::new(FaultAction::Delay { millis: 60_000 })
                .method("POST")
                .path("*token"),
        );
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(10), b.health_check())
            .await
            .unwrap_or_else(|_| panic!("{p:?} refresh hung"));
        assert!(
            matches!(result, Err(StorageError::Transport { .. })),
            "{p:?}: {result:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{p:?}: {:?}",
            started.elapsed()
        );
        no_token_on_the_content_origin(&emu);
        drop(emu);
    }
}

/// A body that yields one whole piece and then never another byte.
fn stalling_body(first: Bytes) -> ByteStream {
    Box::pin(futures::stream::iter(vec![Ok(first)]).chain(futures::stream::pending()))
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A `put_stream` dropped after its first piece was stored commits nothing; a
/// OneDrive session is cancelled with `DELETE uploadUrl` (without a token).
/// Drive has no way to cancel a resumable session: it stays open, holding no
/// visible file, until Drive expires it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_put_stream_commits_nothing_and_cancels_the_session() {
    for p in [P::Gdrive, P::Onedrive] {
        let emu = Emulator::start().await.unwrap();
        let b = backend(p, &emu);
        let size = 3 * unit(p) as u64;
        let upload = {
            let b = Arc::clone(&b);
            let body = stalling_body(data(unit(p), 3));
            tokio::spawn(async move { b.put_stream(&name("dropped"), body, size, "a/b").await })
        };
        let pieces = || {
            emu.journal()
                .filter(|e| e.origin == Origin::Content && e.method == "PUT" && e.body_len > 0)
                .len()
        };
        wait_for("the first piece", || pieces() == 1).await;
        // The first piece is acknowledged before the upload asks the body for more.
        tokio::time::sleep(Duration::from_millis(100)).await;
        upload.abort();
        assert!(upload.await.unwrap_err().is_cancelled());
        match p {
            P::Gdrive => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert!(
                    emu.drive_files().iter().all(|f| f.name != "dropped.bin"),
                    "a dropped upload committed a file"
                );
                assert_eq!(
                    emu.drive_open_sessions(),
                    1,
                    "drive has no cancel: the session stays open"
                );
            }
            P::Onedrive => {
                wait_for("the session to be cancelled", || emu.graph_open_sessions() == 0).await;
                assert!(emu.graph_item_by_path("/user-c/dropped.bin").is_none());
                let journal = emu.journal();
                let deletes = journal.filter(|e| e.origin == Origin::Content && e.method == "DELETE");
                assert_eq!(deletes.len(), 1, "one DELETE uploadUrl");
                assert!(deletes[0].header("authorization").is_none());
            }
        }
        assert_eq!(pieces(), 1, "nothing was sent after the drop");
        no_token_on_the_content_origin(&emu);
        emu.shutdown().await;
    }
}

/// Open file descriptors of this process (Linux), or `None` elsewhere.
fn open_fds() -> Option<usize> {
    std::fs::read_dir("/proc/self/fd").ok().map(Iterator::count)
}

/// Fifty downloads dropped after their first piece leave no connection behind:
/// the process holds about as many descriptors as before, and the next call works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_stream_dropped_halfway_releases_its_connection() {
    for p in [P::Gdrive, P::Onedrive] {
        let emu = Emulator::start().await.unwrap();
        let b = backend(p, &emu);
        let body = data(4 * 1024 * 1024, 4);
        let key = b.put_object(&name("big"), body.clone(), "a/b").await.unwrap();
        let start = open_fds();
        // The control: streams that are held keep their connections, and it shows.
        let held: Vec<ByteStream> = futures::future::join_all((0..10).map(|_| b.get_stream(&key)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
        if let (Some(b0), Some(a)) = (start, open_fds()) {
            assert!(
                a >= b0 + 10,
                "{p:?}: ten open downloads should hold ten connections ({b0} -> {a})"
            );
        }
        drop(held);
        // Concurrent metadata calls left idle connections in the pools, as they may;
        // let the dropped bodies close, warm up with one whole download, then count.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(b.get_object(&key).await.unwrap(), body);
        let before = open_fds();
        for _ in 0..50 {
            let mut s = b.get_stream(&key).await.unwrap();
            let first = s.next().await.unwrap().unwrap();
            assert!(!first.is_empty() && first.len() < body.len());
            drop(s);
        }
        // Closing is asynchronous on both ends; give it up to 5 s.
        let mut after = open_fds();
        for _ in 0..250 {
            if let (Some(b0), Some(a)) = (before, after)
                && a <= b0 + 6
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            after = open_fds();
        }
        if let (Some(b0), Some(a)) = (before, after) {
            assert!(
                a <= b0 + 6,
                "{p:?}: {b0} descriptors before, {a} after 50 dropped downloads"
            );
        }
        let started = Instant::now();
        assert_eq!(b.get_object(&key).await.unwrap(), body);
        assert!(started.elapsed() < Duration::from_secs(2));
        no_token_on_the_content_origin(&emu);
        emu.shutdown().await;
    }
}

/// The idle timeout of the slow-link tests: the old total deadline, scaled down.
const IDLE: Duration = Duration::from_secs(2);

/// A backend with a 2 s idle timeout, one attempt per call, and pieces of 20 MiB
/// (Drive: multipart up to 21 MiB for a multipart case, else resumable chunks of
/// 20 MiB; OneDrive: fragments of 64 × 320 KiB).
fn slow_link_backend(upload: Upload, emu: &EmulatorHandle) -> Arc<dyn StorageBackend> {
    let once = RetryPolicy::never();
    match upload.provider() {
        P::Gdrive => {
            let grant = emu.google_grant();
            let endpoints: GoogleEndpoints =
                serde_json::from_value(serde_json::to_value(&emu.endpoints().google).unwrap()).unwrap();
            let mut o = DriveOptions::default();
            o.chunk_size = 80 * CHUNK_UNIT;
            o.multipart_limit = match upload {
                Upload::DriveMultipart => 21 * 1024 * 1024,
                _ => 64 * 1024,
            };
            o.retry = once;
            o.read_timeout = IDLE;
            Arc::new(
                GoogleDriveBackend::builder(TokenCell::new(grant["access_token"].as_str().unwrap()))
                    .endpoints(endpoints)
                    .options(o)
                    .build()
                    .unwrap(),
            )
        }
        P::Onedrive => {
            let grant = emu.microsoft_grant();
            let endpoints: MicrosoftEndpoints =
                serde_json::from_value(serde_json::to_value(&emu.endpoints().microsoft).unwrap()).unwrap();
            let mut o = OneDriveOptions::default();
            o.fragment_size = 64 * FRAGMENT_UNIT;
            o.retry = once;
            o.read_timeout = IDLE;
            Arc::new(
                OneDriveBackend::builder(TokenCell::new(grant["access_token"].as_str().unwrap()))
                    .endpoints(endpoints)
                    .options(o)
                    .build()
                    .unwrap(),
            )
        }
    }
}

/// Where the big upload request of each case goes: Drive's multipart POST,
/// Drive's resumable chunk PUT, OneDrive's fragment PUT.
#[derive(Debug, Clone, Copy)]
enum Upload {
    DriveMultipart,
    DriveResumable,
    OneDriveFragment,
}

impl Upload {
    const ALL: [Self; 3] = [Self::DriveMultipart, Self::DriveResumable, Self::OneDriveFragment];

    fn provider(self) -> P {
        match self {
            Self::DriveMultipart | Self::DriveResumable => P::Gdrive,
            Self::OneDriveFragment => P::Onedrive,
        }
    }

    /// The body: 20 MiB in one request, plus a second small piece for sessions.
    fn size(self) -> usize {
        match self {
            Self::DriveMultipart => 20 * 1024 * 1024,
            Self::DriveResumable => 80 * CHUNK_UNIT + 1,
            Self::OneDriveFragment => 64 * FRAGMENT_UNIT + 1,
        }
    }

    fn rule(self, action: FaultAction) -> FaultRule {
        let rule = FaultRule::new(action).times(1);
        match self {
            Self::DriveMultipart => rule.origin(Origin::Api).method("POST").path("/upload/drive/v3/files"),
            Self::DriveResumable => rule.origin(Origin::Content).method("PUT").path("/upload/*"),
            Self::OneDriveFragment => rule.origin(Origin::Content).method("PUT").path("/up/*"),
        }
    }
}

/// A body dripped over a slow link for about 5 s, well past the 2 s that used
/// to be a deadline for the whole request: it keeps moving, so it goes through.
///
/// The rate, 4 MiB/s, is what a 2 s idle timeout can tell from a stall on
/// loopback: the client's kernel may take a few MiB of the body at once (send
/// buffers grow to 4 MiB on Linux), and drains them at the drip's rate without
/// the client seeing progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_a_slow_link_outlasts_the_idle_timeout() {
    let failures: Vec<String> = futures::future::join_all(Upload::ALL.map(slow_upload))
        .await
        .into_iter()
        .flatten()
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// One case of the slow-link test, on an emulator of its own; what went wrong.
async fn slow_upload(upload: Upload) -> Option<String> {
    // A slow link holds little in flight: a small receive buffer stands in for it.
    let emu = Emulator::builder().receive_buffer(64 * 1024).start().await.unwrap();
    let b = slow_link_backend(upload, &emu);
    let body = data(upload.size(), 7);
    // 20 MiB at 256 KiB every 62 ms (4 MiB/s): 5 s on the wire.
    let drip = emu.faults().add(upload.rule(FaultAction::DripRequestBody {
        bytes: 256 * 1024,
        every_millis: 62,
    }));
    let started = Instant::now();
    let key = match b.put_object(&name("slow"), body.clone(), "a/b").await {
        Ok(key) => key,
        Err(e) => return Some(format!("{upload:?} after {:?}: {e}", started.elapsed())),
    };
    let took = started.elapsed();
    assert_eq!(emu.faults().fired(drip), 1, "{upload:?}: the drip applied");
    assert!(took > 2 * IDLE, "{upload:?}: the link was not slow ({took:?})");
    assert_eq!(b.get_object(&key).await.unwrap(), body, "{upload:?}");
    emu.shutdown().await;
    None
}

/// A body that stops moving fails after the idle timeout, not at the end of
/// the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_whose_link_stalls_fails_after_the_idle_timeout() {
    for upload in Upload::ALL {
        let emu = Emulator::start().await.unwrap();
        let b = slow_link_backend(upload, &emu);
        let body = data(upload.size(), 8);
        emu.faults().add(upload.rule(FaultAction::StallRequestBody {
            after_bytes: 1024 * 1024,
            millis: 30_000,
        }));
        let started = Instant::now();
        let result = tokio::time::timeout(Duration::from_secs(20), b.put_object(&name("stalled"), body, "a/b"))
            .await
            .unwrap_or_else(|_| panic!("{upload:?}: a stalled upload hung"));
        let took = started.elapsed();
        assert!(
            matches!(result, Err(StorageError::Transport { .. })),
            "{upload:?}: {result:?}"
        );
        assert!(took >= IDLE, "{upload:?}: failed before the idle timeout ({took:?})");
        assert!(took < IDLE * 3, "{upload:?}: took {took:?}");
        drop(emu);
    }
}

/// The documents the emulator holds (no folders, nothing trashed): name and bytes.
fn documents(p: P, emu: &EmulatorHandle) -> Vec<(String, Bytes)> {
    storage_tests::emulator::documents(emu, if p == P::Gdrive { "gdrive" } else { "onedrive" })
}

/// Holds the next `method` request to `path` on the API origin for 200 ms (less
/// than the read timeout, so nothing is retried), runs `call` on a task, and
/// drops it once that request has reached the emulator; then waits for the
/// emulator to end what it received.
async fn drop_while_held<T: Send + 'static>(
    emu: &EmulatorHandle,
    method: &str,
    path: &str,
    call: impl std::future::Future<Output = T> + Send + 'static,
) {
    emu.faults().add(
        FaultRule::new(FaultAction::Delay { millis: 200 })
            .origin(Origin::Api)
            .method(method)
            .path(path)
            .times(1),
    );
    emu.clear_journal();
    let task = tokio::spawn(call);
    let prefix = path.trim_end_matches('*');
    let held = || {
        emu.journal()
            .filter(|e| e.origin == Origin::Api && e.method == method && e.path.starts_with(prefix))
            .len()
    };
    wait_for(&format!("the held {method} {path}"), || held() > 0).await;
    task.abort();
    let _ = task.await;
    tokio::time::sleep(Duration::from_millis(400)).await;
}

/// A put that replaces a document, dropped once its new file is stored and
/// the old version is on its way out (Drive: the listing of older copies;
/// OneDrive: the old version's move to the recycle bin, before the new file,
/// under its temporary name, is renamed). The steps after the upload run to
/// their end: the name holds the new bytes, once, and no temporary file stays.
/// Before, Drive kept both copies, and OneDrive's name held nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overwrite_dropped_after_its_upload_still_ends_with_the_new_version() {
    for p in [P::Gdrive, P::Onedrive] {
        for streamed in [false, true] {
            let case = format!("{p:?}, {}", if streamed { "put_stream" } else { "put_object" });
            let emu = Emulator::start().await.unwrap();
            let b = backend(p, &emu);
            let doc = name("replaced");
            b.put_object(&doc, Bytes::from_static(b"old version"), "a/b")
                .await
                .unwrap();
            let (method, path) = match p {
                P::Gdrive => ("GET", "/drive/v3/files"),
                P::Onedrive => ("DELETE", "/v1.0/me/drive/items/*"),
            };
            let new = data(100_000, 9);
            let put = {
                let (b, doc, new) = (Arc::clone(&b), doc.clone(), new.clone());
                async move {
                    if streamed {
                        let body = storage_core::stream::from_bytes(new.clone(), 16 * 1024);
                        b.put_stream(&doc, body, new.len() as u64, "a/b").await
                    } else {
                        b.put_object(&doc, new, "a/b").await
                    }
                }
            };
            drop_while_held(&emu, method, path, put).await;
            let stored = doc.stored_file_name();
            let settled = || {
                let docs = documents(p, &emu);
                docs.len() == 1 && docs[0].0 == stored && docs[0].1 == new
            };
            let deadline = Instant::now() + Duration::from_secs(5);
            while !settled() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let docs: Vec<(String, usize)> = documents(p, &emu).into_iter().map(|(n, b)| (n, b.len())).collect();
            assert!(settled(), "{case}: the emulator holds {docs:?}");
            emu.shutdown().await;
        }
    }
}

/// A purge dropped once the user's folder is on its way to the trash (Drive)
/// or the recycle bin (OneDrive): the folder's id is forgotten before, so the
/// next put finds or makes a live folder, and a listing shows what it stored.
/// Before, Drive's put went into the trashed folder, where no listing looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_dropped_halfway_leaves_no_stale_folder_for_the_next_put() {
    for p in [P::Gdrive, P::Onedrive] {
        let emu = Emulator::start().await.unwrap();
        let b = backend(p, &emu);
        b.put_object(&name("before"), Bytes::from_static(b"gone"), "a/b")
            .await
            .unwrap();
        let (method, path) = match p {
            P::Gdrive => ("PATCH", "/drive/v3/files/*"),
            P::Onedrive => ("DELETE", "/v1.0/me/drive/items/*"),
        };
        let purge = {
            let b = Arc::clone(&b);
            async move { b.purge_user("user-c").await }
        };
        drop_while_held(&emu, method, path, purge).await;
        let body = storage_core::stream::from_bytes(Bytes::from_static(b"after the purge"), 4);
        let key = b
            .put_stream(&name("after"), body, 15, "a/b")
            .await
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let page = b
            .list_user("user-c", &storage_core::PageRequest::default())
            .await
            .unwrap_or_else(|e| panic!("{p:?}: {e}"));
        let keys: Vec<_> = page.items.iter().map(|i| i.key.clone()).collect();
        assert_eq!(keys, [key], "{p:?}: the listing shows the put after the purge");
        emu.shutdown().await;
    }
}

/// A OneDrive `put_stream` dropped while the answer to its last fragment is on
/// its way: the session committed the file under the upload's temporary name,
/// and the guard that cancels the session deletes it too. Before, the file
/// stayed, hidden from listings and counted against the user's quota.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_stream_dropped_at_its_last_answer_leaves_no_temporary_file() {
    let emu = Emulator::start().await.unwrap();
    let b = backend(P::Onedrive, &emu);
    let size = 2 * unit(P::Onedrive) + 1000;
    // Every fragment is stored at once and answered 200 ms later (less than the
    // read timeout).
    emu.faults().add(
        FaultRule::new(FaultAction::DelayResponse { millis: 200 })
            .origin(Origin::Content)
            .method("PUT"),
    );
    let put = {
        let b = Arc::clone(&b);
        let body = storage_core::stream::from_bytes(data(size, 5), 64 * 1024);
        tokio::spawn(async move { b.put_stream(&name("last"), body, size as u64, "a/b").await })
    };
    let last = format!("-{}/{size}", size - 1);
    let sent_last = || {
        emu.journal()
            .filter(|e| e.origin == Origin::Content && e.method == "PUT")
            .iter()
            .any(|e| e.header("content-range").is_some_and(|r| r.ends_with(&last)))
    };
    wait_for("the last fragment", sent_last).await;
    put.abort();
    assert!(put.await.unwrap_err().is_cancelled());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !documents(P::Onedrive, &emu).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left: Vec<String> = documents(P::Onedrive, &emu).into_iter().map(|d| d.0).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    no_token_on_the_content_origin(&emu);
    emu.shutdown().await;
}
