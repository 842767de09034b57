//! Where connections' credentials live between calls: the `CredentialStore`
//! trait and an in-memory store.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use storage_core::{Result, Secret, StorageError};

/// Whether a connection can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// Usable.
    Active,
    /// The grant was revoked or expired: the user must authorise again. A
    /// managed connection in this state fails at once, without network traffic.
    RequiresReauth,
}

impl ConnectionStatus {
    /// `active` or `requires_reauth`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::RequiresReauth => "requires_reauth",
        }
    }

    /// The inverse of [`as_str`](Self::as_str); anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "requires_reauth" => Some(Self::RequiresReauth),
            _ => None,
        }
    }
}

/// A connection as a store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The credential JSON, secrets included.
    pub json: Secret,
    /// Whether the connection can be used.
    pub status: ConnectionStatus,
}

/// Held while a refresh runs, so that other processes sharing the store wait
/// for it and then use its result; dropping it releases the lock.
pub struct RefreshLock(#[allow(dead_code)] Option<Box<dyn Send + Sync>>);

impl RefreshLock {
    /// A lock that holds nothing: enough within one process, where the managed
    /// connection already lets one refresh run at a time.
    pub fn in_process() -> Self {
        Self(None)
    }

    /// A lock released when `guard` drops.
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Self(Some(Box::new(guard)))
    }
}

impl std::fmt::Debug for RefreshLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshLock")
    }
}

/// The application's storage for connections' credentials.
///
/// A managed connection ([`StorageFactory::connect`](crate::StorageFactory::connect))
/// loads the credentials once, calls [`save_credentials`](Self::save_credentials)
/// after every refresh (with the rotated refresh token, when the provider sent
/// one) and [`set_status`](Self::set_status) when the user must authorise again.
/// Before a refresh it takes [`lock_refresh`](Self::lock_refresh) and loads
/// again, so that when several processes share a store, one refreshes and the
/// others use its token.
///
/// An application keeping connections in SQL implements it in a few lines:
///
/// ```no_run
/// use storage_core::{Result, Secret, StorageError};
/// use storage_factory::{ConnectionStatus, CredentialStore, StoredCredentials, async_trait};
///
/// /// Stands in for the application's database handle (sqlx, tokio-postgres …).
/// #[derive(Debug)]
/// struct Db;
/// impl Db {
///     async fn query_row(&self, _sql: &str, _id: &str) -> Option<(String, String)> { None }
///     async fn execute(&self, _sql: &str, _a: &str, _b: &str) -> bool { true }
/// }
///
/// #[derive(Debug)]
/// struct SqlStore { db: Db }
///
/// #[async_trait]
/// impl CredentialStore for SqlStore {
///     async fn load(&self, id: &str) -> Result<StoredCredentials> {
///         let (json, status) = self.db
///             .query_row("SELECT credentials, status FROM connections WHERE id = $1", id).await
///             .ok_or_else(|| StorageError::not_found(id))?;
///         Ok(StoredCredentials {
///             json: Secret::new(json), // decrypt here if the column is encrypted
///             status: ConnectionStatus::parse(&status).unwrap_or(ConnectionStatus::Active),
///         })
///     }
///     async fn save_credentials(&self, id: &str, json: &Secret) -> Result<()> {
///         self.db.execute("UPDATE connections SET credentials = $2 WHERE id = $1", id, json.expose()).await;
///         Ok(())
///     }
///     async fn set_status(&self, id: &str, status: ConnectionStatus) -> Result<()> {
///         self.db.execute("UPDATE connections SET status = $2 WHERE id = $1", id, status.as_str()).await;
///         Ok(())
///     }
/// }
/// ```
#[async_trait]
pub trait CredentialStore: Send + Sync + std::fmt::Debug {
    /// The connection's credential JSON and status.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] for an unknown connection.
    async fn load(&self, connection_id: &str) -> Result<StoredCredentials>;

    /// Replaces the connection's credential JSON.
    async fn save_credentials(&self, connection_id: &str, json: &Secret) -> Result<()>;

    /// Records the connection's status.
    async fn set_status(&self, connection_id: &str, status: ConnectionStatus) -> Result<()>;

    /// Stores the credentials of a connection just made, or made again after
    /// [`ConnectionStatus::RequiresReauth`], with status `Active`, replacing what
    /// the connection held: what [`StorageFactory::finish_connect`](crate::StorageFactory::finish_connect)
    /// calls. The default makes two writes (`save_credentials`, then
    /// `set_status`), and fails for a connection the store does not know yet;
    /// the shipped stores create or replace the row in one write.
    ///
    /// # Errors
    /// The store's own failures.
    async fn store_connection(&self, connection_id: &str, json: &Secret) -> Result<()> {
        self.save_credentials(connection_id, json).await?;
        self.set_status(connection_id, ConnectionStatus::Active).await
    }

    /// Serialises refreshes of one connection across processes; the default
    /// serialises nothing beyond what the managed connection does in-process.
    async fn lock_refresh(&self, _connection_id: &str) -> Result<RefreshLock> {
        Ok(RefreshLock::in_process())
    }

    /// Forgets the connection and its credentials, for
    /// [`StorageFactory::disconnect`](crate::StorageFactory::disconnect).
    /// A connection that is already gone is `Ok`, so a disconnect can be repeated.
    ///
    /// The default is [`Unsupported`](StorageError::Unsupported), so that a store
    /// written before this method existed still compiles, and a disconnect through
    /// it stops before claiming the credentials are gone. Both shipped stores
    /// implement it.
    ///
    /// # Errors
    /// `Unsupported` by default; the store's own failures otherwise.
    async fn delete(&self, _connection_id: &str) -> Result<()> {
        Err(StorageError::unsupported(
            "delete",
            "this credential store cannot delete a connection; implement CredentialStore::delete",
        ))
    }
}

/// A shared store is a store: `SealedStore<Arc<dyn CredentialStore>>` wraps a
/// store that other code also holds.
#[async_trait]
impl<S: CredentialStore + ?Sized> CredentialStore for std::sync::Arc<S> {
    async fn load(&self, connection_id: &str) -> Result<StoredCredentials> {
        (**self).load(connection_id).await
    }

    async fn save_credentials(&self, connection_id: &str, json: &Secret) -> Result<()> {
        (**self).save_credentials(connection_id, json).await
    }

    async fn set_status(&self, connection_id: &str, status: ConnectionStatus) -> Result<()> {
        (**self).set_status(connection_id, status).await
    }

    async fn store_connection(&self, connection_id: &str, json: &Secret) -> Result<()> {
        (**self).store_connection(connection_id, json).await
    }

    async fn lock_refresh(&self, connection_id: &str) -> Result<RefreshLock> {
        (**self).lock_refresh(connection_id).await
    }

    async fn delete(&self, connection_id: &str) -> Result<()> {
        (**self).delete(connection_id).await
    }
}

/// Connections kept in this process, for tests and single-process tools.
#[derive(Debug, Default)]
pub struct MemoryCredentialStore {
    rows: Mutex<HashMap<String, StoredCredentials>>,
}

impl MemoryCredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an active connection.
    pub fn insert(&self, connection_id: impl Into<String>, json: impl Into<Secret>) {
        self.rows().insert(
            connection_id.into(),
            StoredCredentials {
                json: json.into(),
                status: ConnectionStatus::Active,
            },
        );
    }

    /// The stored connection, if any.
    pub fn get(&self, connection_id: &str) -> Option<StoredCredentials> {
        self.rows().get(connection_id).cloned()
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<String, StoredCredentials>> {
        // Every update is one insert or field write: a poisoned map is still sound.
        self.rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl CredentialStore for MemoryCredentialStore {
    async fn load(&self, connection_id: &str) -> Result<StoredCredentials> {
        self.get(connection_id)
            .ok_or_else(|| StorageError::not_found(connection_id))
    }

    async fn save_credentials(&self, connection_id: &str, json: &Secret) -> Result<()> {
        let mut rows = self.rows();
        let row = rows
            .get_mut(connection_id)
            .ok_or_else(|| StorageError::not_found(connection_id))?;
        row.json = json.clone();
        Ok(())
    }

    async fn set_status(&self, connection_id: &str, status: ConnectionStatus) -> Result<()> {
        let mut rows = self.rows();
        let row = rows
            .get_mut(connection_id)
            .ok_or_else(|| StorageError::not_found(connection_id))?;
        row.status = status;
        Ok(())
    }

    async fn store_connection(&self, connection_id: &str, json: &Secret) -> Result<()> {
        self.insert(connection_id, json.clone());
        Ok(())
    }

    async fn delete(&self, connection_id: &str) -> Result<()> {
        self.rows().remove(connection_id);
        Ok(())
    }
}
