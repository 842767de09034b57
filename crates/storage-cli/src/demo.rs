//! `storage demo`: the whole lifecycle on the embedded emulator, as a table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use storage_core::{ConnectionReason, Md5Hasher, ObjectName, StorageBackend, StorageError};
use storage_emulator::{Emulator, EmulatorHandle};
use storage_factory::storage_gdrive::GoogleApp;
use storage_factory::storage_onedrive::MicrosoftApp;
use storage_factory::{ConnectionStatus, CredentialStore, Endpoints, FileCredentialStore, StorageFactory};

use crate::exit::Failure;
use crate::out;
use crate::progress;

/// One line of the result table.
struct Row {
    step: &'static str,
    backend: &'static str,
    ok: bool,
    detail: String,
    bytes: Option<u64>,
    took: Duration,
}

#[derive(Default)]
struct Table(Vec<Row>);

impl Table {
    fn add(
        &mut self,
        step: &'static str,
        backend: &'static str,
        ok: bool,
        detail: impl Into<String>,
        bytes: Option<u64>,
        took: Duration,
    ) {
        let detail = detail.into();
        out::err(&format!(
            "  {} {step:<22} {backend:<9} {detail}",
            if ok { "ok  " } else { "FAIL" }
        ));
        self.0.push(Row {
            step,
            backend,
            ok,
            detail,
            bytes,
            took,
        });
    }

    fn print(&self) {
        out::line("");
        out::line(&format!(
            "{:<24} {:<9} {:<6} {:>10} {:>9} {:>9}  {}",
            "step", "backend", "result", "bytes", "time", "MiB/s", "detail"
        ));
        out::line(&"-".repeat(100));
        for r in &self.0 {
            let bytes = r.bytes.map(|b| b.to_string()).unwrap_or_else(|| "-".into());
            let rate = match r.bytes {
                Some(b) if b > 0 && !r.took.is_zero() => {
                    format!("{:.1}", b as f64 / 1_048_576.0 / r.took.as_secs_f64())
                }
                _ => "-".into(),
            };
            out::line(&format!(
                "{:<24} {:<9} {:<6} {:>10} {:>8.0?} {:>9}  {}",
                r.step,
                r.backend,
                if r.ok { "ok" } else { "FAIL" },
                bytes,
                r.took,
                rate,
                r.detail
            ));
        }
    }

    fn all_ok(&self) -> bool {
        self.0.iter().all(|r| r.ok)
    }
}

/// The demo's bodies: the conformance kit's deterministic bytes, so a failure is reproducible.
fn deterministic(size: usize) -> Bytes {
    storage_core::testkit::payload(size, 0x9e37_79b9_7f4a_7c15)
}

/// The access and refresh tokens a store holds, for comparison only (never printed).
async fn tokens(store: &FileCredentialStore, id: &str) -> (String, String) {
    let Ok(stored) = store.load(id).await else {
        return (String::new(), String::new());
    };
    let v: serde_json::Value = serde_json::from_str(stored.json.expose()).unwrap_or_default();
    let get = |k: &str| v.get(k).and_then(|t| t.as_str()).unwrap_or_default().to_owned();
    (get("access_token"), get("refresh_token"))
}

/// The demo's factory: the emulator's endpoints and apps, and local
/// connections under the demo's own work directory `local_base`.
fn factory(emu: &EmulatorHandle, local_base: &std::path::Path) -> Result<StorageFactory, Failure> {
    let endpoints = serde_json::to_string(emu.endpoints()).map_err(|e| Failure::Other(e.to_string()))?;
    let g = emu.google_app();
    let m = emu.microsoft_app();
    Ok(StorageFactory::builder()
        .endpoints(Endpoints::from_json(&endpoints)?)
        .google_app(GoogleApp::new(g.client_id.clone(), g.client_secret.clone()))
        .microsoft_app(MicrosoftApp::new(m.client_id.clone(), m.client_secret.clone()))
        .allow_local(local_base)
        .build()?)
}

/// Runs the demo; `Ok` only if every step behaved as expected.
pub async fn run(size_mib: u64, quiet: bool) -> Result<(), Failure> {
    let emu = Emulator::start()
        .await
        .map_err(|e| Failure::Other(format!("cannot start the emulator: {e}")))?;
    let work = tempfile::tempdir().map_err(|e| Failure::Other(format!("cannot create a work directory: {e}")))?;
    let cred_dir = work.path().join("credentials");
    std::fs::create_dir_all(&cred_dir).map_err(|e| Failure::Other(e.to_string()))?;
    let store = FileCredentialStore::in_dir(&cred_dir);
    let local = serde_json::json!({"provider": "local", "root": work.path().join("objects")});
    for (id, json) in [
        ("gdrive", emu.google_grant()),
        ("onedrive", emu.microsoft_grant()),
        ("local", local),
    ] {
        store
            .save_credentials(id, &storage_core::Secret::new(json.to_string()))
            .await?;
    }
    let store = Arc::new(store);
    let factory = factory(&emu, work.path())?;
    out::err(&format!("storage demo: emulator at {}", emu.endpoints().google.root));
    out::err(&format!("storage demo: credentials in {}", cred_dir.display()));

    let size = usize::try_from(size_mib * 1024 * 1024).map_err(|_| Failure::Usage("--size-mib is too large".into()))?;
    let data = deterministic(size);
    let mut want = Md5Hasher::new();
    want.update(&data);
    let want = want.finish();
    let mut table = Table::default();

    for id in ["gdrive", "onedrive", "local"] {
        let backend = factory.connect(id, store.clone()).await?;
        lifecycle(&mut table, id, backend.as_ref(), &data, want, quiet).await;
    }

    for id in ["gdrive", "onedrive"] {
        let backend = factory.connect(id, store.clone()).await?;
        let (access, refresh) = tokens(&store, id).await;
        emu.expire_access_tokens();
        let t = Instant::now();
        let health = backend.health_check().await;
        let (access2, refresh2) = tokens(&store, id).await;
        let saved = access2 != access && !access2.is_empty();
        let detail = match (&health, saved) {
            (Ok(()), true) if refresh2 != refresh => {
                "expired token refreshed; new access and rotated refresh token saved".to_owned()
            }
            (Ok(()), true) => "expired token refreshed; new access token saved".to_owned(),
            (Ok(()), false) => "call succeeded but the store was not updated".to_owned(),
            (Err(e), _) => format!("refresh failed: {e}"),
        };
        table.add("token refresh", id, health.is_ok() && saved, detail, None, t.elapsed());
    }

    presign(&mut table, &factory, &store).await?;

    emu.revoke_grants();
    emu.expire_access_tokens();
    for id in ["gdrive", "onedrive"] {
        let backend = factory.connect(id, store.clone()).await?;
        let t = Instant::now();
        let first = backend.health_check().await;
        let status = store.load(id).await.map(|s| s.status).ok();
        emu.clear_journal();
        let again = backend.health_check().await;
        let silent = emu.journal().is_empty();
        let invalid = |r: &Result<(), StorageError>| matches!(r, Err(e) if e.connection_reason() == Some(ConnectionReason::InvalidGrant));
        let ok = invalid(&first) && invalid(&again) && status == Some(ConnectionStatus::RequiresReauth) && silent;
        let detail = if ok {
            "grant revoked: marked requires_reauth; later calls fail without network".to_owned()
        } else {
            format!("unexpected: first={first:?} status={status:?} silent={silent}")
        };
        table.add("revoked grant", id, ok, detail, None, t.elapsed());
    }

    table.print();
    emu.shutdown().await;
    if table.all_ok() {
        out::line("\nevery step behaved as expected");
        Ok(())
    } else {
        Err(Failure::Other("some demo steps did not behave as expected".into()))
    }
}

/// put (streamed, with a progress bar), stat, get (verified), delete.
async fn lifecycle(
    table: &mut Table,
    id: &'static str,
    backend: &dyn StorageBackend,
    data: &Bytes,
    want: storage_core::Checksum,
    quiet: bool,
) {
    let size = data.len() as u64;
    let Ok(name) = ObjectName::new("demo-user", "scan-0001", ".pdf") else {
        return;
    };
    let bar = progress::bar(size, id, quiet);
    let stream = progress::track(storage_core::stream::from_bytes(data.clone(), 256 * 1024), bar.clone());
    let t = Instant::now();
    let put = backend.put_stream(&name, stream, size, "application/pdf").await;
    bar.finish_and_clear();
    let key = match put {
        Ok(k) => {
            let detail = if id == "local" {
                "written atomically (temporary file, fsync, rename)"
            } else {
                "uploaded; size and hash verified against the provider's"
            };
            table.add("put (streamed)", id, true, detail, Some(size), t.elapsed());
            k
        }
        Err(e) => {
            table.add("put (streamed)", id, false, e.to_string(), Some(size), t.elapsed());
            return;
        }
    };
    let t = Instant::now();
    match backend.stat_object(&key).await {
        Ok(m) => table.add(
            "stat",
            id,
            m.size == size,
            format!(
                "size {} checksum {}",
                m.size,
                m.checksum.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
            ),
            None,
            t.elapsed(),
        ),
        Err(e) => table.add("stat", id, false, e.to_string(), None, t.elapsed()),
    }
    let t = Instant::now();
    let got = async {
        let mut s = backend.get_stream(&key).await?;
        let mut h = Md5Hasher::new();
        let mut n = 0u64;
        while let Some(piece) = s.next().await {
            let piece = piece?;
            n += piece.len() as u64;
            h.update(&piece);
        }
        Ok::<_, StorageError>((n, h.finish()))
    }
    .await;
    match got {
        Ok((n, h)) => table.add(
            "get (streamed)",
            id,
            n == size && h == want,
            "bytes identical (md5 compared)",
            Some(n),
            t.elapsed(),
        ),
        Err(e) => table.add("get (streamed)", id, false, e.to_string(), None, t.elapsed()),
    }
    let t = Instant::now();
    let deleted = backend.delete_object(&key).await;
    let gone = matches!(backend.stat_object(&key).await, Err(StorageError::NotFound { .. }));
    let again = backend.delete_object(&key).await;
    table.add(
        "delete",
        id,
        deleted.is_ok() && gone && again.is_ok(),
        "deleted; stat is NotFound; a second delete is ok",
        None,
        t.elapsed(),
    );
}

async fn presign(table: &mut Table, factory: &StorageFactory, store: &Arc<FileCredentialStore>) -> Result<(), Failure> {
    let body = deterministic(64 * 1024);
    let name = ObjectName::new("demo-user", "shared-1", ".pdf")?;
    for id in ["onedrive", "gdrive"] {
        let backend = factory.connect(id, store.clone()).await?;
        let t = Instant::now();
        let key = backend.put_object(&name, body.clone(), "application/pdf").await?;
        let url = backend.presigned_get_url(&key, Duration::from_secs(15 * 60)).await;
        let (ok, detail) = match (id, url) {
            ("onedrive", Ok(url)) => match reqwest::get(url).await {
                Ok(resp) => match resp.bytes().await {
                    Ok(b) if b == body => (true, "pre-authenticated url read without credentials".to_owned()),
                    _ => (false, "the url did not return the object".to_owned()),
                },
                Err(e) => (false, format!("fetching the url failed: {e}")),
            },
            ("gdrive", Err(StorageError::Unsupported { .. })) => {
                (true, "unsupported, as designed: drive has no expiring urls".to_owned())
            }
            (_, other) => (
                false,
                format!("unexpected: {:?}", other.map(|u| u.host_str().map(str::to_owned))),
            ),
        };
        table.add("presigned get url", id, ok, detail, None, t.elapsed());
        backend.delete_object(&key).await?;
    }
    Ok(())
}
