//! Connections in one PostgreSQL table, with compare-and-swap writes and a
//! refresh lock that holds across processes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use storage_core::{Result, Secret, StorageError};
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::{ConnectionStatus, CredentialStore, RefreshLock, StoredCredentials};

/// The table [`PostgresCredentialStore`] keeps connections in.
pub const TABLE: &str = "storage_connections";

/// First key of every advisory lock this store takes, so that its locks never
/// meet an application's own advisory locks on the same second key.
const LOCK_SPACE: i32 = 0x5354_4f52;

/// Second key of the lock that serialises migrations.
const MIGRATION_LOCK: i32 = 0;

/// The embedded migrations, applied in order and recorded by number in
/// `storage_schema_migrations`. Append only: never edit one that shipped.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE storage_connections (
        connection_id text PRIMARY KEY,
        provider      text NOT NULL,
        credentials   text NOT NULL,
        status        text NOT NULL DEFAULT 'active',
        version       bigint NOT NULL DEFAULT 1,
        updated_at    timestamptz NOT NULL DEFAULT now()
    )",
)];

/// Connections' credentials in the PostgreSQL table [`TABLE`]: the connection
/// id, the provider, the credentials (opaque text: plain JSON, or a sealed blob
/// when wrapped in a sealing store), the status, a version and the update time.
///
/// - [`connect`](Self::connect) creates or upgrades the table with embedded,
///   numbered migrations, so the application runs no DDL of its own.
/// - Every write is a compare-and-swap on the version: the store remembers the
///   version it last read or wrote for each connection, and a write that finds
///   another version changed nothing and fails with
///   [`StorageError::Provider`] `{ status: 409, code: Some("conflict"), .. }`.
///   Load again before writing again.
/// - [`lock_refresh`](CredentialStore::lock_refresh) opens a dedicated database
///   connection, begins a transaction and takes a transaction-scoped advisory
///   lock on the connection id; the returned guard keeps that transaction open
///   until it drops. A managed connection reloads the row under the lock, so
///   when several processes find a token expired, one refreshes and the others
///   use its token. A process that dies while it holds the lock loses its
///   database session, which releases the lock; the row is only ever written
///   by single atomic statements, so nothing is left half-written.
///
/// The URL is a libpq-style `postgres://user:password@host:port/db?sslmode=…`.
/// TLS is rustls with the Mozilla root certificates, or only your CA with
/// [`connect_with_ca`](Self::connect_with_ca); `sslmode=prefer` (the default)
/// uses it when the server offers it, `require` insists on it.
///
/// ```no_run
/// # async fn demo() -> storage_core::Result<()> {
/// use std::sync::Arc;
/// use storage_factory::{PostgresCredentialStore, StorageFactory};
///
/// let store = Arc::new(PostgresCredentialStore::connect("postgres://app@db.internal/app").await?);
/// store.create("conn-42", &r#"{"provider":"memory"}"#.into()).await?;
/// let factory = StorageFactory::builder().allow_memory().build()?;
/// let backend = factory.connect("conn-42", store).await?;
/// # Ok(()) }
/// ```
pub struct PostgresCredentialStore {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    client: tokio::sync::Mutex<Option<Arc<Client>>>,
    versions: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for PostgresCredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The configuration holds the password: print only where it points.
        f.debug_struct("PostgresCredentialStore")
            .field("hosts", &self.config.get_hosts().len())
            .field("dbname", &self.config.get_dbname())
            .field("table", &TABLE)
            .finish_non_exhaustive()
    }
}

impl PostgresCredentialStore {
    /// Connects to the database at `url` and applies the migrations it has
    /// not seen yet. Several processes may connect at once: migrations run
    /// under an advisory lock.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for a URL that does not parse;
    /// [`StorageError::Transport`] when the server cannot be reached or refuses
    /// a statement.
    pub async fn connect(url: &str) -> Result<Self> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self::connect_with_roots(url, roots).await
    }

    /// Connects like [`connect`](Self::connect), but trusts only the CA
    /// certificates in `ca_pem` (PEM, one or more) for TLS: the private CA of a
    /// managed database (Amazon RDS, Cloud SQL, Azure) or your own. Use it with
    /// `sslmode=require` so that the connection cannot fall back to plain text.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] when `ca_pem` holds no usable certificate;
    /// otherwise as [`connect`](Self::connect).
    pub async fn connect_with_ca(url: &str, ca_pem: &[u8]) -> Result<Self> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject as _;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem) {
            let cert = cert.map_err(|_| StorageError::invalid_input("the ca certificates are not valid pem"))?;
            roots
                .add(cert)
                .map_err(|_| StorageError::invalid_input("a ca certificate could not be used as a trust anchor"))?;
        }
        if roots.is_empty() {
            return Err(StorageError::invalid_input("no ca certificate was found in the pem"));
        }
        Self::connect_with_roots(url, roots).await
    }

    async fn connect_with_roots(url: &str, roots: rustls::RootCertStore) -> Result<Self> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|_| StorageError::invalid_input("the postgresql url does not parse"))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls_config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StorageError::transport("failed to configure tls for postgresql", e))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let store = Self {
            config,
            tls: MakeRustlsConnect::new(tls_config),
            client: tokio::sync::Mutex::new(None),
            versions: Mutex::new(HashMap::new()),
        };
        let mut client = store.open_session().await?;
        migrate(&mut client).await?;
        *store.client.lock().await = Some(Arc::new(client));
        Ok(store)
    }

    /// Adds a connection. Its provider is read from the JSON's `provider` key
    /// when there is one (a sealed blob has none: `unknown`).
    ///
    /// # Errors
    /// `Provider { status: 409, code: Some("conflict"), .. }` when the id exists.
    pub async fn create(&self, connection_id: &str, json: &Secret) -> Result<()> {
        let client = self.client().await?;
        let provider = provider_of(json).unwrap_or_else(|| "unknown".to_owned());
        let rows = client
            .query(
                "INSERT INTO storage_connections (connection_id, provider, credentials) VALUES ($1, $2, $3)
                 ON CONFLICT (connection_id) DO NOTHING RETURNING version",
                &[&connection_id, &provider, &json.expose()],
            )
            .await
            .map_err(|e| db_error("failed to insert a connection", e))?;
        let row = rows
            .first()
            .ok_or_else(|| conflict(connection_id, "the connection already exists"))?;
        self.remember(connection_id, row.get(0));
        Ok(())
    }

    /// Every connection id in the table, sorted; for listings. Nothing of the
    /// credentials is read.
    ///
    /// # Errors
    /// [`StorageError::Transport`] when the server cannot be reached.
    pub async fn connection_ids(&self) -> Result<Vec<String>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT connection_id FROM storage_connections ORDER BY connection_id",
                &[],
            )
            .await
            .map_err(|e| db_error("failed to list connections", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// A session of its own, with its driver task spawned on the runtime.
    async fn open_session(&self) -> Result<Client> {
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(|e| db_error("failed to connect to postgresql", e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "a postgresql session ended with an error");
            }
        });
        Ok(client)
    }

    /// The shared session, opened again if the server closed it.
    async fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let client = Arc::new(self.open_session().await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // Every update is one insert or remove: a poisoned map is still sound.
        self.versions.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn remember(&self, connection_id: &str, version: i64) {
        self.versions().insert(connection_id.to_owned(), version);
    }

    fn known_version(&self, connection_id: &str) -> Option<i64> {
        self.versions().get(connection_id).copied()
    }

    /// After an update touched no row: gone, or changed by someone else.
    async fn lost_write(&self, client: &Client, connection_id: &str) -> StorageError {
        match client
            .query_opt(
                "SELECT version FROM storage_connections WHERE connection_id = $1",
                &[&connection_id],
            )
            .await
        {
            Ok(None) => {
                self.versions().remove(connection_id);
                StorageError::not_found(connection_id)
            }
            Ok(Some(_)) => conflict(connection_id, "another writer changed the connection since it was read"),
            Err(e) => db_error("failed to check a connection's version", e),
        }
    }
}

async fn migrate(client: &mut Client) -> Result<()> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| db_error("failed to begin a migration", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCK_SPACE, &MIGRATION_LOCK])
        .await
        .map_err(|e| db_error("failed to lock for a migration", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS storage_schema_migrations (
            version    integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(|e| db_error("failed to create the migration table", e))?;
    let applied: i32 = tx
        .query_one("SELECT COALESCE(max(version), 0) FROM storage_schema_migrations", &[])
        .await
        .map_err(|e| db_error("failed to read the schema version", e))?
        .get(0);
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| db_error(format!("failed to apply migration {version}"), e))?;
        tx.execute(
            "INSERT INTO storage_schema_migrations (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(|e| db_error(format!("failed to record migration {version}"), e))?;
    }
    tx.commit()
        .await
        .map_err(|e| db_error("failed to commit the migrations", e))
}

fn db_error(message: impl Into<String>, e: tokio_postgres::Error) -> StorageError {
    StorageError::transport(message, e)
}

fn conflict(connection_id: &str, why: &str) -> StorageError {
    StorageError::Provider {
        status: 409,
        code: Some("conflict".to_owned()),
        message: format!("connection {connection_id}: {why}; load it again before writing"),
    }
}

fn provider_of(json: &Secret) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json.expose()).ok()?;
    value.get("provider")?.as_str().map(str::to_owned)
}

/// The open transaction holding the advisory lock; dropping the session ends
/// the transaction, which releases the lock.
struct HeldLock {
    _session: Client,
}

#[async_trait]
impl CredentialStore for PostgresCredentialStore {
    async fn load(&self, connection_id: &str) -> Result<StoredCredentials> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                "SELECT credentials, status, version FROM storage_connections WHERE connection_id = $1",
                &[&connection_id],
            )
            .await
            .map_err(|e| db_error("failed to load a connection", e))?
            .ok_or_else(|| StorageError::not_found(connection_id))?;
        let json: String = row.get(0);
        let status: String = row.get(1);
        self.remember(connection_id, row.get(2));
        Ok(StoredCredentials {
            json: Secret::new(json),
            status: ConnectionStatus::parse(&status).unwrap_or(ConnectionStatus::RequiresReauth),
        })
    }

    /// Compare-and-swap on the version last read; a connection this store has
    /// never read is created instead (and conflicts if it exists).
    async fn save_credentials(&self, connection_id: &str, json: &Secret) -> Result<()> {
        let Some(version) = self.known_version(connection_id) else {
            return self.create(connection_id, json).await;
        };
        let client = self.client().await?;
        let provider = provider_of(json);
        let rows = client
            .query(
                "UPDATE storage_connections
                 SET credentials = $2, provider = COALESCE($3, provider), version = version + 1, updated_at = now()
                 WHERE connection_id = $1 AND version = $4 RETURNING version",
                &[&connection_id, &json.expose(), &provider, &version],
            )
            .await
            .map_err(|e| db_error("failed to save a connection", e))?;
        match rows.first() {
            Some(row) => {
                self.remember(connection_id, row.get(0));
                Ok(())
            }
            None => Err(self.lost_write(&client, connection_id).await),
        }
    }

    /// Compare-and-swap on the version last read, like
    /// [`save_credentials`](Self::save_credentials).
    /// One upsert: the row is created, or its credentials replaced and its
    /// status set to `active`, with a new version.
    async fn store_connection(&self, connection_id: &str, json: &Secret) -> Result<()> {
        let client = self.client().await?;
        let provider = provider_of(json).unwrap_or_else(|| "unknown".to_owned());
        let row = client
            .query_one(
                "INSERT INTO storage_connections (connection_id, provider, credentials) VALUES ($1, $2, $3)
                 ON CONFLICT (connection_id) DO UPDATE SET credentials = EXCLUDED.credentials,
                   provider = EXCLUDED.provider, status = 'active',
                   version = storage_connections.version + 1, updated_at = now()
                 RETURNING version",
                &[&connection_id, &provider, &json.expose()],
            )
            .await
            .map_err(|e| db_error("failed to store a connection", e))?;
        self.remember(connection_id, row.get(0));
        Ok(())
    }

    async fn set_status(&self, connection_id: &str, status: ConnectionStatus) -> Result<()> {
        let client = self.client().await?;
        let Some(version) = self.known_version(connection_id) else {
            return Err(conflict(connection_id, "the connection was never read by this store"));
        };
        let rows = client
            .query(
                "UPDATE storage_connections SET status = $2, version = version + 1, updated_at = now()
                 WHERE connection_id = $1 AND version = $3 RETURNING version",
                &[&connection_id, &status.as_str(), &version],
            )
            .await
            .map_err(|e| db_error("failed to record a connection's status", e))?;
        match rows.first() {
            Some(row) => {
                self.remember(connection_id, row.get(0));
                Ok(())
            }
            None => Err(self.lost_write(&client, connection_id).await),
        }
    }

    async fn lock_refresh(&self, connection_id: &str) -> Result<RefreshLock> {
        let session = self.open_session().await?;
        session
            .batch_execute("BEGIN; SET LOCAL lock_timeout = '60s'")
            .await
            .map_err(|e| db_error("failed to begin the refresh lock's transaction", e))?;
        session
            .execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&LOCK_SPACE, &connection_id],
            )
            .await
            .map_err(|e| db_error("failed to take the refresh lock", e))?;
        Ok(RefreshLock::new(HeldLock { _session: session }))
    }

    async fn delete(&self, connection_id: &str) -> Result<()> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM storage_connections WHERE connection_id = $1",
                &[&connection_id],
            )
            .await
            .map_err(|e| db_error("failed to delete a connection", e))?;
        self.versions().remove(connection_id);
        Ok(())
    }
}
