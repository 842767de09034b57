//! Credentials in JSON files, written atomically with mode 0600.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use storage_core::{Result, Secret, StorageError, validate_part};

use crate::store::{ConnectionStatus, CredentialStore, RefreshLock, StoredCredentials};

/// One JSON file per connection: the credential JSON, plus a `"status"` key
/// once the connection needs re-authorisation.
///
/// - Writes go to a temporary file in the same folder (mode 0600), are fsynced
///   and renamed into place, so a crash leaves the old file or the new one.
/// - [`lock_refresh`](CredentialStore::lock_refresh) takes an exclusive OS lock
///   on `{file}.lock`, so two processes never refresh one connection at once;
///   the managed connection loads the file again under the lock and uses a
///   token another process already refreshed.
/// - [`save_credentials`](CredentialStore::save_credentials) and
///   [`set_status`](CredentialStore::set_status) read, change and write the
///   file under an exclusive OS lock on `{file}.write.lock`, so that writers in
///   other threads and processes never undo each other (a save keeps a
///   `RequiresReauth` mark made meanwhile).
/// - [`delete`](CredentialStore::delete) takes both locks before it removes the
///   file, and removes the lock files while it holds them: whoever waited on a
///   lock file that is gone locks the new one instead, so no two holders ever
///   meet on different files.
#[derive(Debug, Clone)]
pub struct FileCredentialStore {
    place: Place,
}

#[derive(Debug, Clone)]
enum Place {
    /// `{dir}/{connection_id}.json`.
    Dir(PathBuf),
    /// One file, whatever the connection id (the CLI's `--credentials FILE`).
    File(PathBuf),
}

impl FileCredentialStore {
    /// Connections as `{dir}/{connection_id}.json`; connection ids follow the
    /// name-part rules of `ObjectName`.
    pub fn in_dir(dir: impl Into<PathBuf>) -> Self {
        Self {
            place: Place::Dir(dir.into()),
        }
    }

    /// One file that holds the only connection.
    pub fn single_file(path: impl Into<PathBuf>) -> Self {
        Self {
            place: Place::File(path.into()),
        }
    }

    fn path(&self, id: &str) -> Result<PathBuf> {
        match &self.place {
            Place::File(p) => Ok(p.clone()),
            Place::Dir(d) => {
                validate_part("connection id", id)?;
                Ok(d.join(format!("{id}.json")))
            }
        }
    }

    /// `{file}{suffix}`: the lock files beside a connection's file.
    fn lock_path(&self, id: &str, suffix: &str) -> Result<PathBuf> {
        let mut p = self.path(id)?.into_os_string();
        p.push(suffix);
        Ok(PathBuf::from(p))
    }

    /// The exclusive lock of `{file}{suffix}`, held until the file drops.
    async fn lock(&self, id: &str, suffix: &str) -> Result<std::fs::File> {
        let path = self.lock_path(id, suffix)?;
        tokio::task::spawn_blocking(move || lock_file(&path))
            .await
            .map_err(|_| {
                StorageError::io(
                    "a credential lock was interrupted",
                    std::io::Error::other("task failed"),
                )
            })?
            .map_err(|e| StorageError::io("failed to lock a credential file", e))
    }

    async fn read(&self, id: &str) -> Result<(PathBuf, serde_json::Map<String, serde_json::Value>)> {
        let path = self.path(id)?;
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(StorageError::not_found(id)),
            Err(e) => return Err(StorageError::io("failed to read a credential file", e)),
        };
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(serde_json::Value::Object(map)) => Ok((path, map)),
            _ => Err(StorageError::invalid_input(
                "a credential file does not hold a json object",
            )),
        }
    }

    async fn write(path: PathBuf, map: serde_json::Map<String, serde_json::Value>) -> Result<()> {
        let text = serde_json::Value::Object(map).to_string();
        tokio::task::spawn_blocking(move || write_atomically(&path, text.as_bytes()))
            .await
            .map_err(|_| {
                StorageError::io(
                    "a credential write was interrupted",
                    std::io::Error::other("task failed"),
                )
            })?
    }
}

const REFRESH_LOCK: &str = ".lock";
const WRITE_LOCK: &str = ".write.lock";

/// Opens (0600) and exclusively locks `path`; again when, once locked, the file
/// is no longer the one at `path` because a deletion removed it meanwhile.
fn lock_file(path: &Path) -> std::io::Result<std::fs::File> {
    loop {
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let f = opts.open(path)?;
        f.lock()?;
        if still_at(&f, path)? {
            return Ok(f);
        }
    }
}

/// Whether the open file `f` is still the file at `path`.
#[cfg(unix)]
fn still_at(f: &std::fs::File, path: &Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let held = f.metadata()?;
    match std::fs::metadata(path) {
        Ok(now) => Ok(held.dev() == now.dev() && held.ino() == now.ino()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Lock files are never removed where files cannot be compared by identity.
#[cfg(not(unix))]
fn still_at(_: &std::fs::File, _: &Path) -> std::io::Result<bool> {
    Ok(true)
}

/// Temporary file (0600), fsync, rename, fsync of the folder.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("credentials");
    let tmp = dir.join(format!(".{name}.{:016x}.tmp", std::process::id() as u64 ^ nanos()));
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| StorageError::io("failed to write a credential file", e))
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[async_trait]
impl CredentialStore for FileCredentialStore {
    async fn load(&self, connection_id: &str) -> Result<StoredCredentials> {
        let (_, mut map) = self.read(connection_id).await?;
        let status = map
            .remove("status")
            .and_then(|s| s.as_str().and_then(ConnectionStatus::parse))
            .unwrap_or(ConnectionStatus::Active);
        Ok(StoredCredentials {
            json: Secret::new(serde_json::Value::Object(map).to_string()),
            status,
        })
    }

    async fn save_credentials(&self, connection_id: &str, json: &Secret) -> Result<()> {
        let _write = self.lock(connection_id, WRITE_LOCK).await?;
        let status = match self.read(connection_id).await {
            Ok((_, map)) => map.get("status").cloned(),
            Err(StorageError::NotFound { .. }) => None,
            Err(e) => return Err(e),
        };
        let mut map = match serde_json::from_str::<serde_json::Value>(json.expose()) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(StorageError::invalid_input("credentials to save are not a json object")),
        };
        if let Some(s) = status {
            map.insert("status".into(), s);
        }
        Self::write(self.path(connection_id)?, map).await
    }

    async fn set_status(&self, connection_id: &str, status: ConnectionStatus) -> Result<()> {
        let _write = self.lock(connection_id, WRITE_LOCK).await?;
        let (path, mut map) = self.read(connection_id).await?;
        match status {
            ConnectionStatus::Active => map.remove("status"),
            other => map.insert("status".into(), other.as_str().into()),
        };
        Self::write(path, map).await
    }

    /// One atomic file write, without a `status` (which is `Active`).
    async fn store_connection(&self, connection_id: &str, json: &Secret) -> Result<()> {
        let _write = self.lock(connection_id, WRITE_LOCK).await?;
        let mut map = match serde_json::from_str::<serde_json::Value>(json.expose()) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => return Err(StorageError::invalid_input("credentials to save are not a json object")),
        };
        map.remove("status");
        Self::write(self.path(connection_id)?, map).await
    }

    async fn lock_refresh(&self, connection_id: &str) -> Result<RefreshLock> {
        let file = self.lock(connection_id, REFRESH_LOCK).await?;
        // Dropping the file releases the lock.
        Ok(RefreshLock::new(file))
    }

    /// Removes the connection's file, under both locks, and the lock files
    /// while it holds them; a missing file is `Ok`.
    async fn delete(&self, connection_id: &str) -> Result<()> {
        let path = self.path(connection_id)?;
        let refresh = self.lock(connection_id, REFRESH_LOCK).await?;
        let write = self.lock(connection_id, WRITE_LOCK).await?;
        let mut doomed = vec![path.clone()];
        if cfg!(unix) {
            doomed.push(self.lock_path(connection_id, WRITE_LOCK)?);
            doomed.push(self.lock_path(connection_id, REFRESH_LOCK)?);
        }
        for p in doomed {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io("failed to delete a credential file", e)),
            }
        }
        drop((write, refresh));
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        // Makes the removal durable; best effort, the file is already gone.
        let _ = tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all()).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip_status_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCredentialStore::in_dir(dir.path());
        let json = Secret::new(r#"{"provider":"memory"}"#);
        assert!(matches!(store.load("c1").await, Err(StorageError::NotFound { .. })));
        store.save_credentials("c1", &json).await.unwrap();
        let got = store.load("c1").await.unwrap();
        assert_eq!(got.status, ConnectionStatus::Active);
        assert_eq!(got.json.expose(), r#"{"provider":"memory"}"#);
        store.set_status("c1", ConnectionStatus::RequiresReauth).await.unwrap();
        // A later save keeps the status.
        store.save_credentials("c1", &json).await.unwrap();
        assert_eq!(store.load("c1").await.unwrap().status, ConnectionStatus::RequiresReauth);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join("c1.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(store.load("../etc").await.is_err());
    }

    #[tokio::test]
    async fn store_connection_creates_or_replaces_and_clears_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCredentialStore::in_dir(dir.path());
        let first = Secret::new(r#"{"provider":"memory","n":1}"#);
        store.store_connection("c1", &first).await.unwrap();
        assert_eq!(store.load("c1").await.unwrap().status, ConnectionStatus::Active);
        store.set_status("c1", ConnectionStatus::RequiresReauth).await.unwrap();
        let second = Secret::new(r#"{"provider":"memory","n":2,"status":"requires_reauth"}"#);
        store.store_connection("c1", &second).await.unwrap();
        let got = store.load("c1").await.unwrap();
        assert_eq!(got.status, ConnectionStatus::Active);
        assert!(got.json.expose().contains(r#""n":2"#), "{}", got.json.expose());
    }

    #[tokio::test]
    async fn the_refresh_lock_excludes_a_second_holder() {
        let dir = tempfile::tempdir().unwrap();
        let a = FileCredentialStore::in_dir(dir.path());
        let b = FileCredentialStore::in_dir(dir.path());
        let held = a.lock_refresh("c1").await.unwrap();
        let waiting = tokio::spawn(async move { b.lock_refresh("c1").await.map(drop) });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(
            !waiting.is_finished(),
            "a second lock was granted while the first was held"
        );
        drop(held);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
