//! The conformance suite every backend runs (feature `testkit`).
//!
//! ```
//! use storage_core::{MemoryBackend, testkit};
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! let report = testkit::run_conformance(&MemoryBackend::new()).await;
//! report.assert_passed();
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::backend::{ByteStream, StorageBackend};
use crate::checksum::{Checksum, QuickXorHasher};
use crate::error::StorageError;
use crate::name::{ObjectKey, ObjectName};

mod purge;
mod reads;
pub use purge::{HOSTILE_USER_IDS, PurgeFixture, run_purge_check, seed_two_users, verify_after_purge};
pub use reads::CREATORS;

/// The sizes every round trip covers: empty, one byte, either side of the
/// 320 KiB Graph fragment unit, and past Drive's 5 MiB multipart cut-off.
pub const ROUND_TRIP_SIZES: &[usize] = &[0, 1, 327_679, 327_680, 327_681, 5 * 1024 * 1024 + 7];

/// How many operations the concurrency check runs at once.
pub const CONCURRENCY: usize = 32;

/// One failed check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckFailure {
    /// The check's name, one of [`CHECKS`].
    pub check: &'static str,
    /// What went wrong.
    pub message: String,
}

/// The names of every check, in the order they run.
pub const CHECKS: &[&str] = &[
    "health",
    "round_trip_object",
    "round_trip_stream",
    "stat",
    "overwrite",
    "delete_idempotent",
    "missing_key",
    "invalid_names",
    "hostile_keys",
    "stream_size_mismatch",
    "stream_error",
    "concurrency",
    "contested_name",
    "case_names",
    "case_users",
    "folder_keys",
    "presign",
    "ranges",
    "listing",
    "quota",
    "create_if_absent",
];

/// What a conformance run found.
#[derive(Debug, Clone, Default)]
pub struct ConformanceReport {
    /// The checks that passed.
    pub passed: Vec<&'static str>,
    /// The checks that failed, with why.
    pub failures: Vec<CheckFailure>,
    /// The checks that could not run here, with why (a failure of the harness,
    /// not of the backend: see [`FolderKeys`]).
    pub skipped: Vec<CheckFailure>,
}

impl ConformanceReport {
    /// Whether the named check failed.
    pub fn failed(&self, check: &str) -> bool {
        self.failures.iter().any(|f| f.check == check)
    }

    /// Panics with every failure when any check failed; for use in tests.
    ///
    /// # Panics
    /// When a check failed.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.failures.is_empty(), "conformance failures:\n{self}");
    }
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed.len(),
            self.failures.len(),
            self.skipped.len()
        )?;
        for fail in &self.failures {
            writeln!(f, "  {}: {}", fail.check, fail.message)?;
        }
        for skip in &self.skipped {
            writeln!(f, "  skipped {}: {}", skip.check, skip.message)?;
        }
        Ok(())
    }
}

type CheckResult = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Finds the keys of the folders that hold a user's documents, which the trait
/// never hands out, so that the `folder_keys` check can pass them where a
/// document key belongs.
///
/// [`KeyPrefixFolders`] serves backends whose keys are paths (memory, local); a
/// provider test finds folder ids through its emulator.
#[async_trait::async_trait]
pub trait FolderKeys: Send + Sync {
    /// Keys of the folders holding `user`'s documents, of which `document` is one,
    /// and of any folder above them. Empty when the backend has no folders.
    async fn folder_keys(&self, user: &str, document: &ObjectKey) -> Vec<ObjectKey>;
}

/// [`FolderKeys`] for path-shaped keys: every prefix of the document's key that
/// ends before a `/` (`u1/d1.pdf` gives `u1`).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyPrefixFolders;

#[async_trait::async_trait]
impl FolderKeys for KeyPrefixFolders {
    async fn folder_keys(&self, _user: &str, document: &ObjectKey) -> Vec<ObjectKey> {
        let key = document.as_str();
        key.match_indices('/').map(|(i, _)| ObjectKey::new(&key[..i])).collect()
    }
}

/// Context shared by the checks of one run: a random user id, so that runs
/// never collide, and the backend.
struct Run<'a> {
    backend: &'a dyn StorageBackend,
    user: String,
    folders: &'a dyn FolderKeys,
}

impl Run<'_> {
    fn name(&self, document: &str, ext: &str) -> Result<ObjectName, String> {
        ObjectName::new(&self.user, document, ext).map_err(|e| format!("building a valid name failed: {e}"))
    }

    async fn put(&self, document: &str, body: Bytes) -> Result<ObjectKey, String> {
        let name = self.name(document, ".bin")?;
        let len = body.len();
        self.backend
            .put_object(&name, body, "application/octet-stream")
            .await
            .map_err(|e| format!("put_object of {len} bytes failed: {e}"))
    }

    async fn put_name(&self, name: &ObjectName, body: Bytes) -> Result<ObjectKey, String> {
        self.backend
            .put_object(name, body, "application/pdf")
            .await
            .map_err(|e| format!("put_object({name}) failed: {e}"))
    }

    async fn get(&self, key: &ObjectKey) -> Result<Bytes, String> {
        self.backend
            .get_object(key)
            .await
            .map_err(|e| format!("get_object({key}) failed: {e}"))
    }

    async fn delete(&self, key: &ObjectKey) -> CheckResult {
        self.backend
            .delete_object(key)
            .await
            .map_err(|e| format!("delete_object({key}) failed: {e}"))
    }
}

/// Deterministic pseudo-random bytes for a size and a seed, so failures are
/// reproducible; every test that needs a body can use it.
pub fn payload(size: usize, seed: u64) -> Bytes {
    let mut rng = fastrand::Rng::with_seed(seed ^ size as u64);
    let mut v = vec![0u8; size];
    rng.fill(&mut v);
    Bytes::from(v)
}

fn compare(what: &str, got: &[u8], want: &[u8]) -> CheckResult {
    if got == want {
        return Ok(());
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(want.len()));
    Err(format!(
        "{what}: read {} bytes, wrote {}; first difference at byte {first}",
        got.len(),
        want.len()
    ))
}

fn odd_pieces(body: Bytes) -> ByteStream {
    crate::stream::from_bytes(body, 64 * 1024 + 13)
}

async fn read_stream(backend: &dyn StorageBackend, key: &ObjectKey) -> Result<Bytes, String> {
    let s = backend
        .get_stream(key)
        .await
        .map_err(|e| format!("get_stream({key}) failed: {e}"))?;
    crate::stream::collect(s, 0)
        .await
        .map_err(|e| format!("reading the get_stream body failed: {e}"))
}

async fn health(r: &Run<'_>) -> CheckResult {
    r.backend
        .health_check()
        .await
        .map_err(|e| format!("health_check failed: {e}"))
}

async fn round_trip_object(r: &Run<'_>) -> CheckResult {
    for &size in ROUND_TRIP_SIZES {
        let body = payload(size, 1);
        let key = r.put(&format!("obj-{size}"), body.clone()).await?;
        compare(
            &format!("get_object after put_object of {size}"),
            &r.get(&key).await?,
            &body,
        )?;
        compare(
            &format!("get_stream after put_object of {size}"),
            &read_stream(r.backend, &key).await?,
            &body,
        )?;
        r.delete(&key).await?;
    }
    Ok(())
}

async fn round_trip_stream(r: &Run<'_>) -> CheckResult {
    for &size in ROUND_TRIP_SIZES {
        let body = payload(size, 2);
        let name = r.name(&format!("stream-{size}"), ".bin")?;
        let key = r
            .backend
            .put_stream(&name, odd_pieces(body.clone()), size as u64, "application/octet-stream")
            .await
            .map_err(|e| format!("put_stream of {size} bytes failed: {e}"))?;
        compare(
            &format!("get_stream after put_stream of {size}"),
            &read_stream(r.backend, &key).await?,
            &body,
        )?;
        compare(
            &format!("get_object after put_stream of {size}"),
            &r.get(&key).await?,
            &body,
        )?;
        r.delete(&key).await?;
    }
    Ok(())
}

async fn stat(r: &Run<'_>) -> CheckResult {
    for size in [0, 327_681] {
        let body = payload(size, 3);
        let name = r.name(&format!("stat-{size}"), ".txt")?;
        let key = r
            .backend
            .put_object(&name, body.clone(), "text/plain")
            .await
            .map_err(|e| format!("put_object failed: {e}"))?;
        let meta = r
            .backend
            .stat_object(&key)
            .await
            .map_err(|e| format!("stat_object failed: {e}"))?;
        ensure!(
            meta.size == size as u64,
            "stat_object size is {}, wrote {size}",
            meta.size
        );
        if r.backend.capabilities().keeps_content_type {
            let ct = meta.content_type.as_deref();
            ensure!(
                ct == Some("text/plain"),
                "stat_object content type is {ct:?}, wrote \"text/plain\""
            );
        }
        match meta.checksum {
            Some(Checksum::Md5(d)) => ensure!(
                Checksum::Md5(d) == Checksum::md5_of(&body),
                "stat_object md5 differs from the bytes written"
            ),
            Some(Checksum::QuickXor(d)) => {
                let mut h = QuickXorHasher::new();
                h.update(&body);
                ensure!(
                    Checksum::QuickXor(d) == h.finish(),
                    "stat_object quickXorHash differs from the bytes written"
                );
            }
            None => {}
        }
        r.delete(&key).await?;
    }
    Ok(())
}

async fn overwrite(r: &Run<'_>) -> CheckResult {
    let first = r.put("overwrite", payload(1000, 4)).await?;
    let second_body = payload(2000, 5);
    let second = r.put("overwrite", second_body.clone()).await?;
    compare(
        "get_object after a second put of the same name",
        &r.get(&second).await?,
        &second_body,
    )?;
    r.delete(&second).await?;
    r.delete(&first).await
}

async fn delete_idempotent(r: &Run<'_>) -> CheckResult {
    let key = r.put("delete-twice", payload(10, 6)).await?;
    r.delete(&key).await?;
    r.backend
        .delete_object(&key)
        .await
        .map_err(|e| format!("a second delete_object must be Ok, got: {e}"))?;
    match r.backend.get_object(&key).await {
        Err(StorageError::NotFound { .. }) => Ok(()),
        Ok(_) => Err("get_object after delete_object still returns the object".into()),
        Err(e) => Err(format!("get_object after delete_object must be NotFound, got: {e}")),
    }
}

async fn missing_key(r: &Run<'_>) -> CheckResult {
    let key = r.put("missing", payload(3, 7)).await?;
    r.delete(&key).await?;
    let is_not_found = |res: Result<(), StorageError>, op: &str| match res {
        Err(StorageError::NotFound { .. }) => Ok(()),
        Ok(()) => Err(format!("{op} of a missing key succeeded")),
        Err(e) => Err(format!("{op} of a missing key must be NotFound, got: {e}")),
    };
    is_not_found(r.backend.get_object(&key).await.map(drop), "get_object")?;
    is_not_found(r.backend.get_stream(&key).await.map(drop), "get_stream")?;
    is_not_found(r.backend.stat_object(&key).await.map(drop), "stat_object")?;
    r.backend
        .delete_object(&key)
        .await
        .map_err(|e| format!("delete_object of a missing key must be Ok, got: {e}"))
}

async fn invalid_names(_r: &Run<'_>) -> CheckResult {
    let cases: &[(&str, &str, &str)] = &[
        ("", "d", ""),
        ("u", "", ""),
        ("..", "d", ""),
        ("u", "a/b", ""),
        ("u", "a\\b", ""),
        ("u", "it's", ""),
        ("u", "x:y", ""),
        ("u", "100%", ""),
        ("u", "a#b", ""),
        ("u", "line\nbreak", ""),
        ("u", "d", "pdf"),
        ("u", "d", ".p/f"),
    ];
    for (user, doc, ext) in cases {
        match ObjectName::new(user, doc, ext) {
            Err(StorageError::InvalidInput { .. }) => {}
            other => {
                return Err(format!(
                    "ObjectName::new({user:?}, {doc:?}, {ext:?}) must be InvalidInput, got {other:?}"
                ));
            }
        }
    }
    Ok(())
}

async fn hostile_keys(r: &Run<'_>) -> CheckResult {
    let keys = [
        "",
        "..",
        "../x",
        "/etc/passwd",
        "a/../../b",
        "a/b/../../../c",
        "x\0y",
        "a' or name contains '",
        "%2e%2e/x",
        "a\r\nb",
    ];
    for key in keys {
        let key = ObjectKey::new(key);
        for (op, res) in [
            ("get_object", r.backend.get_object(&key).await.map(drop)),
            ("stat_object", r.backend.stat_object(&key).await.map(drop)),
        ] {
            match res {
                Err(StorageError::InvalidInput { .. } | StorageError::NotFound { .. }) => {}
                Ok(()) => return Err(format!("{op}({key:?}) succeeded")),
                Err(e) => return Err(format!("{op}({key:?}) must be InvalidInput or NotFound, got: {e}")),
            }
        }
        match r.backend.delete_object(&key).await {
            Ok(()) | Err(StorageError::InvalidInput { .. }) => {}
            Err(e) => return Err(format!("delete_object({key:?}) must be Ok or InvalidInput, got: {e}")),
        }
    }
    Ok(())
}

async fn stream_size_mismatch(r: &Run<'_>) -> CheckResult {
    let name = r.name("mismatch", ".bin")?;
    for (actual, declared) in [(100usize, 200u64), (300, 200)] {
        let body = crate::stream::from_bytes(payload(actual, 8), 64);
        match r
            .backend
            .put_stream(&name, body, declared, "application/octet-stream")
            .await
        {
            Err(StorageError::InvalidInput { .. }) => {}
            Ok(key) => {
                let _ = r.backend.delete_object(&key).await;
                return Err(format!("put_stream of {actual} bytes declared as {declared} succeeded"));
            }
            Err(e) => {
                return Err(format!(
                    "put_stream of {actual} bytes declared as {declared} must be InvalidInput, got: {e}"
                ));
            }
        }
    }
    Ok(())
}

async fn stream_error(r: &Run<'_>) -> CheckResult {
    let name = r.name("broken-source", ".bin")?;
    let body: ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(payload(1000, 9)),
        Err(StorageError::transport(
            "source broke",
            std::io::Error::other("source broke"),
        )),
    ]));
    match r
        .backend
        .put_stream(&name, body, 5000, "application/octet-stream")
        .await
    {
        Err(_) => Ok(()),
        Ok(key) => {
            let _ = r.backend.delete_object(&key).await;
            Err("put_stream succeeded although its source failed".into())
        }
    }
}

async fn concurrency(r: &Run<'_>) -> CheckResult {
    let jobs = (0..CONCURRENCY).map(|i| async move {
        let body = payload(1024 + i * 97, 10);
        let key = r.put(&format!("concurrent-{i}"), body.clone()).await?;
        Ok::<_, String>((key, body))
    });
    let stored: Vec<_> = futures::future::join_all(jobs)
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let reads = stored
        .iter()
        .map(|(key, body)| async move { compare(&format!("concurrent get_object({key})"), &r.get(key).await?, body) });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    let deletes = stored.iter().map(|(key, _)| r.delete(key));
    futures::future::join_all(deletes)
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

/// Several puts of one name at once: whatever order they land in, exactly one
/// copy stays, holding one of the bodies sent. (A backend that removes "the
/// other copies" after each put can remove every copy.)
async fn contested_name(r: &Run<'_>) -> CheckResult {
    let bodies: Vec<Bytes> = (0..8).map(|i| payload(500 + i, 20 + i as u64)).collect();
    let keys = futures::future::join_all(bodies.iter().map(|b| r.put("contested", b.clone())))
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    let mut contents: Vec<Bytes> = Vec::new();
    for key in &keys {
        match r.backend.get_object(key).await {
            Ok(b) if !contents.contains(&b) => contents.push(b),
            Ok(_) | Err(StorageError::NotFound { .. }) => {}
            Err(e) => return Err(format!("get_object({key}) after contested puts failed: {e}")),
        }
    }
    for key in &keys {
        r.delete(key).await?;
    }
    match contents.as_slice() {
        [one] if bodies.contains(one) => Ok(()),
        [_] => Err("the copy left after contested puts holds none of the bodies sent".into()),
        [] => Err("contested puts of one name left no readable copy".into()),
        more => Err(format!(
            "contested puts of one name left {} different copies",
            more.len()
        )),
    }
}

/// Document ids that differ only in case are different documents: each keeps its
/// own bytes through put, get, stat, a second put and delete. (OneDrive paths and
/// Drive's name queries ignore case; stored raw, one would replace the other.)
async fn case_names(r: &Run<'_>) -> CheckResult {
    let names = [
        ("report", ".pdf"),
        ("Report", ".pdf"),
        ("REPORT", ".pdf"),
        ("report", ".PDF"),
    ];
    let mut stored = Vec::new();
    for (i, (doc, ext)) in names.iter().enumerate() {
        let name = r.name(doc, ext)?;
        let body = payload(100 + i, 40 + i as u64);
        let key = r.put_name(&name, body.clone()).await?;
        stored.push((name, key, body));
    }
    let outcome = async {
        let check_all = |stage: &'static str, stored: Vec<(ObjectName, ObjectKey, Bytes)>| async move {
            for (name, key, body) in &stored {
                compare(&format!("get_object of {name} {stage}"), &r.get(key).await?, body)?;
                let meta = r
                    .backend
                    .stat_object(key)
                    .await
                    .map_err(|e| format!("stat_object of {name} {stage} failed: {e}"))?;
                ensure!(
                    meta.size == body.len() as u64,
                    "stat_object of {name} {stage} says {} bytes, {} were stored",
                    meta.size,
                    body.len()
                );
            }
            Ok::<(), String>(())
        };
        let keys: Vec<&ObjectKey> = stored.iter().map(|(_, k, _)| k).collect();
        for (i, k) in keys.iter().enumerate() {
            ensure!(
                !keys[i + 1..].contains(k),
                "two names that differ only in case got one key, {k}"
            );
        }
        check_all("after the puts", stored.clone()).await?;
        // A second put of one of them replaces that one only.
        let again = payload(333, 49);
        stored[0].1 = r.put_name(&stored[0].0, again.clone()).await?;
        stored[0].2 = again;
        check_all("after a second put of one of them", stored.clone()).await?;
        // Deleting one leaves the others.
        r.delete(&stored[1].1).await?;
        let (gone_name, gone_key, _) = stored.remove(1);
        match r.backend.get_object(&gone_key).await {
            Err(StorageError::NotFound { .. }) => {}
            other => return Err(format!("get_object of deleted {gone_name} answered {other:?}")),
        }
        check_all("after deleting another of them", stored.clone()).await?;
        Ok(())
    }
    .await;
    for (_, key, _) in &stored {
        let _ = r.backend.delete_object(key).await;
    }
    outcome
}

/// Users whose ids differ only in case never see, replace or purge each other's
/// documents.
async fn case_users(r: &Run<'_>) -> CheckResult {
    let users = [
        format!("{}-case", r.user),
        format!("{}-Case", r.user),
        format!("{}-CASE", r.user),
    ];
    let mut stored = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let name = ObjectName::new(user, "doc", ".pdf").map_err(|e| format!("building a valid name failed: {e}"))?;
        let body = payload(200 + i, 50 + i as u64);
        let key = r.put_name(&name, body.clone()).await?;
        stored.push((name, key, body));
    }
    let outcome = async {
        // A second put for one user replaces that user's document only.
        let again = payload(444, 59);
        stored[1].1 = r.put_name(&stored[1].0, again.clone()).await?;
        stored[1].2 = again;
        for (name, key, body) in &stored {
            compare(&format!("get_object of {name}"), &r.get(key).await?, body)?;
        }
        // Purging one user leaves the others.
        r.backend
            .purge_user(&users[0])
            .await
            .map_err(|e| format!("purge_user({}) failed: {e}", users[0]))?;
        match r.backend.get_object(&stored[0].1).await {
            Err(StorageError::NotFound { .. }) => {}
            other => return Err(format!("{}'s document survived its purge: {other:?}", users[0])),
        }
        for (name, key, body) in &stored[1..] {
            compare(
                &format!("get_object of {name} after purging {}", users[0]),
                &r.get(key).await?,
                body,
            )?;
        }
        Ok(())
    }
    .await;
    for user in &users {
        let _ = r.backend.purge_user(user).await;
    }
    outcome
}

/// A folder's key where a document key belongs: every operation fails with
/// `InvalidInput` or `NotFound` (a delete may also be `Ok`, as for a key that is
/// gone), and nothing is deleted.
async fn folder_keys(r: &Run<'_>) -> Result<bool, String> {
    let body = payload(77, 61);
    let key = r.put("in-a-folder", body.clone()).await?;
    let folders = r.folders.folder_keys(&r.user, &key).await;
    if folders.is_empty() {
        r.delete(&key).await?;
        return Ok(false);
    }
    let refused = |res: &Result<(), StorageError>, also_ok: bool| {
        matches!(
            res,
            Err(StorageError::InvalidInput { .. } | StorageError::NotFound { .. })
        ) || (also_ok && res.is_ok())
    };
    let outcome = async {
        for folder in &folders {
            ensure!(folder != &key, "the folder probe returned the document's own key");
            let got = r.backend.get_object(folder).await.map(drop);
            ensure!(
                refused(&got, false),
                "get_object of folder key {folder} answered {got:?}"
            );
            let stream = r.backend.get_stream(folder).await.map(drop);
            ensure!(
                refused(&stream, false),
                "get_stream of folder key {folder} answered {stream:?}"
            );
            let meta = r.backend.stat_object(folder).await.map(drop);
            ensure!(
                refused(&meta, false),
                "stat_object of folder key {folder} answered {meta:?}"
            );
            let url = r
                .backend
                .presigned_get_url(folder, Duration::from_secs(60))
                .await
                .map(drop);
            ensure!(
                refused(&url, false) || matches!(url, Err(StorageError::Unsupported { .. })),
                "presigned_get_url of folder key {folder} answered {url:?}"
            );
            let deleted = r.backend.delete_object(folder).await;
            ensure!(
                refused(&deleted, true),
                "delete_object of folder key {folder} answered {deleted:?}"
            );
            compare(
                &format!("get_object of a document after delete_object({folder})"),
                &r.get(&key).await?,
                &body,
            )?;
        }
        Ok(true)
    }
    .await;
    let _ = r.backend.delete_object(&key).await;
    outcome
}

async fn presign(r: &Run<'_>) -> CheckResult {
    let caps = r.backend.capabilities();
    let key = r.put("presign", payload(10, 11)).await?;
    let minute = Duration::from_secs(60);
    let get = r.backend.presigned_get_url(&key, minute).await;
    let put = r.backend.generate_presigned_put_url(&key, minute).await;
    let outcome = (|| {
        for (op, max, res) in [
            ("presigned_get_url", caps.presign_get, get),
            ("generate_presigned_put_url", caps.presign_put, put),
        ] {
            match (max, res) {
                (Some(_), Ok(_)) | (None, Err(StorageError::Unsupported { .. })) => {}
                (Some(_), Err(e)) => return Err(format!("{op} is declared but failed: {e}")),
                (None, Ok(_)) => return Err(format!("{op} is not declared but returned a url")),
                (None, Err(e)) => return Err(format!("{op} is not declared, so it must be Unsupported, got: {e}")),
            }
        }
        Ok(())
    })();
    let too_long = match caps.presign_get {
        Some(max) => match r.backend.presigned_get_url(&key, max + Duration::from_secs(1)).await {
            Err(StorageError::InvalidInput { .. }) => Ok(()),
            other => Err(format!(
                "presigned_get_url beyond the declared {max:?} must be InvalidInput, got {other:?}"
            )),
        },
        None => Ok(()),
    };
    r.delete(&key).await?;
    outcome.and(too_long)
}

async fn check<F, Fut>(report: &mut ConformanceReport, name: &'static str, f: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = CheckResult>,
{
    match f().await {
        Ok(()) => report.passed.push(name),
        Err(message) => report.failures.push(CheckFailure { check: name, message }),
    }
}

/// Runs every check in [`CHECKS`] against `backend` and reports each one.
///
/// Objects go under a random user id and are deleted afterwards, so the suite
/// can run against a shared account. Checks that depend on optional features
/// follow [`StorageBackend::capabilities`]. Folder keys are found with
/// [`KeyPrefixFolders`]; where keys are opaque ids the `folder_keys` check is
/// skipped, and [`run_conformance_with`] gives it a probe.
pub async fn run_conformance(backend: &dyn StorageBackend) -> ConformanceReport {
    run_conformance_with(backend, &KeyPrefixFolders).await
}

/// [`run_conformance`], finding folder keys with `folders`.
pub async fn run_conformance_with(backend: &dyn StorageBackend, folders: &dyn FolderKeys) -> ConformanceReport {
    let r = Run {
        backend,
        user: format!("conformance-{:016x}", fastrand::u64(..)),
        folders,
    };
    let r = &r;
    let mut report = ConformanceReport::default();
    check(&mut report, "health", || health(r)).await;
    check(&mut report, "round_trip_object", || round_trip_object(r)).await;
    check(&mut report, "round_trip_stream", || round_trip_stream(r)).await;
    check(&mut report, "stat", || stat(r)).await;
    check(&mut report, "overwrite", || overwrite(r)).await;
    check(&mut report, "delete_idempotent", || delete_idempotent(r)).await;
    check(&mut report, "missing_key", || missing_key(r)).await;
    check(&mut report, "invalid_names", || invalid_names(r)).await;
    check(&mut report, "hostile_keys", || hostile_keys(r)).await;
    check(&mut report, "stream_size_mismatch", || stream_size_mismatch(r)).await;
    check(&mut report, "stream_error", || stream_error(r)).await;
    check(&mut report, "concurrency", || concurrency(r)).await;
    check(&mut report, "contested_name", || contested_name(r)).await;
    check(&mut report, "case_names", || case_names(r)).await;
    check(&mut report, "case_users", || case_users(r)).await;
    match folder_keys(r).await {
        Ok(true) => report.passed.push("folder_keys"),
        Ok(false) => report.skipped.push(CheckFailure {
            check: "folder_keys",
            message: "no folder keys were found; give run_conformance_with a FolderKeys probe".into(),
        }),
        Err(message) => report.failures.push(CheckFailure {
            check: "folder_keys",
            message,
        }),
    }
    check(&mut report, "presign", || presign(r)).await;
    check(&mut report, "ranges", || reads::ranges(r)).await;
    check(&mut report, "listing", || reads::listing(r)).await;
    check(&mut report, "quota", || reads::quota(r)).await;
    check(&mut report, "create_if_absent", || reads::create_if_absent(r)).await;
    report
}

#[cfg(test)]
mod tests {
    //! The kit checks itself: correct backends pass, broken doubles are caught.

    use async_trait::async_trait;
    use url::Url;

    use super::*;
    use crate::meta::ObjectMeta;
    use crate::{LocalBackend, MemoryBackend, Result};

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Flaw {
        LosesLastByte,
        WrongSize,
        DeleteNotIdempotent,
        ClaimsPresign,
        LosesContentType,
    }

    /// A memory backend with one deliberate defect.
    #[derive(Debug)]
    struct Broken {
        inner: MemoryBackend,
        flaw: Flaw,
    }

    impl Broken {
        fn trim(&self, body: Bytes) -> Bytes {
            if self.flaw == Flaw::LosesLastByte && !body.is_empty() {
                body.slice(..body.len() - 1)
            } else {
                body
            }
        }
    }

    #[async_trait]
    impl StorageBackend for Broken {
        async fn put_object(&self, name: &ObjectName, body: Bytes, ct: &str) -> Result<ObjectKey> {
            self.inner.put_object(name, self.trim(body), ct).await
        }
        async fn put_stream(&self, name: &ObjectName, body: ByteStream, size: u64, ct: &str) -> Result<ObjectKey> {
            let all = crate::stream::collect(body, 0).await?;
            if all.len() as u64 != size {
                return Err(StorageError::invalid_input("size"));
            }
            self.inner.put_object(name, self.trim(all), ct).await
        }
        async fn get_object(&self, key: &ObjectKey) -> Result<Bytes> {
            self.inner.get_object(key).await
        }
        async fn get_stream(&self, key: &ObjectKey) -> Result<ByteStream> {
            self.inner.get_stream(key).await
        }
        async fn delete_object(&self, key: &ObjectKey) -> Result<()> {
            if self.flaw == Flaw::DeleteNotIdempotent {
                self.inner.get_object(key).await?;
            }
            self.inner.delete_object(key).await
        }
        async fn stat_object(&self, key: &ObjectKey) -> Result<ObjectMeta> {
            let meta = self.inner.stat_object(key).await?;
            Ok(match self.flaw {
                Flaw::WrongSize => ObjectMeta::new(meta.size + 1),
                Flaw::LosesContentType => ObjectMeta::new(meta.size),
                _ => meta,
            })
        }
        async fn presigned_get_url(&self, key: &ObjectKey, e: Duration) -> Result<Url> {
            self.inner.presigned_get_url(key, e).await
        }
        async fn generate_presigned_put_url(&self, key: &ObjectKey, e: Duration) -> Result<Url> {
            self.inner.generate_presigned_put_url(key, e).await
        }
        async fn health_check(&self) -> Result<()> {
            Ok(())
        }
        async fn get_range(&self, key: &ObjectKey, range: crate::ByteRange) -> Result<ByteStream> {
            self.inner.get_range(key, range).await
        }
        async fn list_user(&self, user_id: &str, page: &crate::PageRequest) -> Result<crate::Page> {
            self.inner.list_user(user_id, page).await
        }
        async fn quota(&self) -> Result<crate::Quota> {
            self.inner.quota().await
        }
        async fn put_stream_if_absent(
            &self,
            name: &ObjectName,
            body: ByteStream,
            size: u64,
            ct: &str,
        ) -> Result<ObjectKey> {
            self.inner.put_stream_if_absent(name, body, size, ct).await
        }
        async fn purge_user(&self, user_id: &str) -> Result<crate::PurgeReport> {
            self.inner.purge_user(user_id).await
        }
        fn capabilities(&self) -> crate::Capabilities {
            match self.flaw {
                Flaw::ClaimsPresign => crate::Capabilities::NONE.with_presign_get(Duration::from_secs(3600)),
                Flaw::LosesContentType => crate::Capabilities::NONE.keeping_content_type(),
                _ => crate::Capabilities::NONE,
            }
        }
    }

    async fn run_broken(flaw: Flaw) -> ConformanceReport {
        run_conformance(&Broken {
            inner: MemoryBackend::new(),
            flaw,
        })
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_backend_passes() {
        let backend = MemoryBackend::new();
        let report = run_conformance(&backend).await;
        report.assert_passed();
        assert_eq!(report.passed, CHECKS);
        assert!(backend.is_empty(), "the kit left {} objects behind", backend.len());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_backend_passes() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path()).unwrap();
        let report = run_conformance(&backend).await;
        report.assert_passed();
        assert_eq!(report.passed, CHECKS);
    }

    #[tokio::test]
    async fn catches_lost_bytes() {
        let report = run_broken(Flaw::LosesLastByte).await;
        assert!(report.failed("round_trip_object"), "{report}");
        assert!(report.failed("round_trip_stream"), "{report}");
        assert!(!report.failed("delete_idempotent"), "{report}");
    }

    #[tokio::test]
    async fn catches_a_wrong_size() {
        let report = run_broken(Flaw::WrongSize).await;
        assert!(report.failed("stat"), "{report}");
        assert!(!report.failed("round_trip_object"), "{report}");
    }

    #[tokio::test]
    async fn catches_a_delete_that_is_not_idempotent() {
        let report = run_broken(Flaw::DeleteNotIdempotent).await;
        assert!(report.failed("delete_idempotent"), "{report}");
        assert!(report.failed("missing_key"), "{report}");
    }

    #[tokio::test]
    async fn catches_a_content_type_that_is_declared_kept_but_lost() {
        let report = run_broken(Flaw::LosesContentType).await;
        assert!(report.failed("stat"), "{report}");
        assert_eq!(report.failures.len(), 1, "{report}");
    }

    #[tokio::test]
    async fn catches_a_capability_the_backend_lacks() {
        let report = run_broken(Flaw::ClaimsPresign).await;
        assert!(report.failed("presign"), "{report}");
        assert_eq!(report.failures.len(), 1, "{report}");
    }
}
