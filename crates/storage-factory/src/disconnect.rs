//! The end of a connection: purge, revoke, forget, and stop every managed handle.

use std::sync::Arc;

use storage_core::{PurgeReport, Result, StorageError, validate_part};

use crate::credentials::Credentials;
use crate::factory::StorageFactory;
use crate::store::CredentialStore;

/// Whether [`StorageFactory::disconnect`] removes the user's objects first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purge {
    /// Leave the objects where they are.
    None,
    /// Remove every object stored for `user_id` through this connection, and the
    /// user's folder, before the grant is revoked.
    Objects {
        /// The application's user id, as in the `ObjectName`s it stored.
        user_id: String,
    },
}

impl Purge {
    /// [`Purge::Objects`] for `user_id`.
    pub fn objects(user_id: impl Into<String>) -> Self {
        Self::Objects {
            user_id: user_id.into(),
        }
    }
}

/// What happened to the grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Revocation {
    /// The provider revoked it: the refresh token and its access tokens are dead.
    Revoked,
    /// The provider no longer knew the token (already revoked or expired).
    AlreadyInvalid,
    /// The provider has no endpoint to revoke it: Microsoft offers none for a
    /// delegated refresh token, and local and memory connections hold no grant.
    /// The user removes the app's access in their account settings.
    NotOffered,
    /// The stored credentials were already gone: a previous disconnect finished
    /// the revocation and the deletion.
    AlreadyDisconnected,
}

/// What one [`StorageFactory::disconnect`] call did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DisconnectReport {
    /// The provider of the connection, when its credentials were still stored.
    pub provider: Option<&'static str>,
    /// What the purge removed; `None` without [`Purge::Objects`], or when the
    /// connection was already gone.
    pub purged: Option<PurgeReport>,
    /// What happened to the grant.
    pub revocation: Revocation,
    /// Whether this call deleted stored credentials (`false` when they were
    /// already gone).
    pub credentials_deleted: bool,
}

impl StorageFactory {
    /// Ends connection `connection_id` of `store`, in this order:
    ///
    /// 1. with [`Purge::Objects`], removes every object of that user through a
    ///    managed backend (refreshing the token if needed), and the user's folder;
    /// 2. revokes the grant where the provider has an endpoint for it (Google);
    ///    Microsoft has none for a delegated refresh token ([`Revocation::NotOffered`]);
    /// 3. deletes the credentials from the store ([`CredentialStore::delete`]);
    /// 4. marks the connection disconnected: every managed backend this factory
    ///    handed out for it fails at once from then on, without network traffic,
    ///    with `CloudConnection` `InvalidGrant`.
    ///
    /// Every step can be repeated: a failure leaves a state from which calling
    /// `disconnect` again completes the work (the purge and the revocation are
    /// idempotent, and deleting what is gone is `Ok`). Once the credentials are
    /// gone, a further call reports [`Revocation::AlreadyDisconnected`] and purges
    /// nothing, since no grant is left to reach the objects with.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use storage_factory::{MemoryCredentialStore, Purge, Revocation, StorageFactory};
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let factory = StorageFactory::builder().allow_memory().build()?;
    /// let store = Arc::new(MemoryCredentialStore::new());
    /// store.insert("conn-1", r#"{"provider":"memory"}"#);
    /// let report = factory.disconnect("conn-1", store.clone(), Purge::objects("user-1")).await?;
    /// assert_eq!(report.revocation, Revocation::NotOffered);
    /// assert!(report.credentials_deleted && store.get("conn-1").is_none());
    /// let again = factory.disconnect("conn-1", store, Purge::objects("user-1")).await?;
    /// assert_eq!(again.revocation, Revocation::AlreadyDisconnected);
    /// # Ok::<(), storage_core::StorageError>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// `InvalidInput` for a bad user id (before anything happens); with
    /// [`Purge::Objects`], `CloudConnection` `InvalidGrant` when the connection
    /// already requires re-authorisation (the objects cannot be reached: the user
    /// must authorise again, or call with [`Purge::None`]); the purge's, the
    /// revocation's and the store's errors otherwise. Nothing after a failed
    /// step runs.
    pub async fn disconnect(
        &self,
        connection_id: &str,
        store: Arc<dyn CredentialStore>,
        purge: Purge,
    ) -> Result<DisconnectReport> {
        if let Purge::Objects { user_id } = &purge {
            validate_part("user_id", user_id)?;
        }
        let stored = match store.load(connection_id).await {
            Ok(s) => s,
            Err(StorageError::NotFound { .. }) => {
                self.connections.mark_disconnected(connection_id);
                return Ok(DisconnectReport {
                    provider: None,
                    purged: None,
                    revocation: Revocation::AlreadyDisconnected,
                    credentials_deleted: false,
                });
            }
            Err(e) => return Err(e),
        };
        let provider = Credentials::parse(stored.json.expose())?.provider();
        let purged = match &purge {
            Purge::Objects { user_id } => {
                let backend = self.connect(connection_id, Arc::clone(&store)).await?;
                let report = backend.purge_user(user_id).await?;
                tracing::info!(connection = %connection_id, provider, objects = report.objects, bytes = report.bytes, "purged the user's objects");
                Some(report)
            }
            Purge::None => None,
        };
        // The purge may have refreshed, and a provider may have rotated the token.
        let creds = match store.load(connection_id).await {
            Ok(s) => Credentials::parse(s.json.expose())?,
            Err(StorageError::NotFound { .. }) => Credentials::parse(stored.json.expose())?,
            Err(e) => return Err(e),
        };
        let revocation = self.revoke(&creds).await?;
        tracing::info!(connection = %connection_id, provider, ?revocation, "revocation step done");
        store.delete(connection_id).await?;
        self.connections.mark_disconnected(connection_id);
        tracing::info!(connection = %connection_id, provider, "connection disconnected");
        Ok(DisconnectReport {
            provider: Some(provider),
            purged,
            revocation,
            credentials_deleted: true,
        })
    }

    #[cfg_attr(not(feature = "gdrive"), allow(clippy::unused_async))]
    async fn revoke(&self, creds: &Credentials) -> Result<Revocation> {
        match creds {
            #[cfg(feature = "gdrive")]
            Credentials::Gdrive(g) => {
                // A refresh token revokes the whole grant; an access token alone
                // is all there is for a connection stored without one.
                let token = g.refresh_token.as_ref().unwrap_or(&g.access_token);
                let outcome =
                    storage_gdrive::oauth::revoke(&self.token_http, &self.google_endpoints(), token, self.retry)
                        .await?;
                Ok(match outcome {
                    storage_gdrive::oauth::Revocation::AlreadyInvalid => Revocation::AlreadyInvalid,
                    _ => Revocation::Revoked,
                })
            }
            _ => Ok(Revocation::NotOffered),
        }
    }
}
