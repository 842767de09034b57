#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(all(feature = "sealed", any(feature = "gdrive", feature = "onedrive")))]
mod connect;
mod credentials;
mod disconnect;
mod factory;
mod file_store;
mod handles;
mod managed;
#[cfg(feature = "postgres")]
mod postgres;
mod refresh;
#[cfg(feature = "sealed")]
mod sealed;
mod store;

#[cfg(all(feature = "sealed", any(feature = "gdrive", feature = "onedrive")))]
pub use connect::{
    AccountInfo, BegunConnect, ConnectError, ConnectOptions, Connected, DEFAULT_CONNECT_TTL, PendingConnect,
};
pub use credentials::{Credentials, GoogleCredentials, OneDriveCredentials, PROVIDERS};
pub use disconnect::{DisconnectReport, Purge, Revocation};
pub use factory::{Endpoints, StorageFactory, StorageFactoryBuilder};
pub use file_store::FileCredentialStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresCredentialStore, TABLE as POSTGRES_TABLE};
#[cfg(feature = "sealed")]
pub use sealed::{SealedStore, SealingKey, SealingKeys, is_sealed};
pub use store::{ConnectionStatus, CredentialStore, MemoryCredentialStore, RefreshLock, StoredCredentials};

pub use async_trait::async_trait;
/// The `reqwest` behind [`StorageFactoryBuilder::http_client`]: a public
/// dependency, re-exported so that an application builds its client with the
/// very same version.
#[cfg(any(feature = "gdrive", feature = "onedrive"))]
pub use reqwest;
pub use storage_core;
#[cfg(feature = "gdrive")]
pub use storage_gdrive;
#[cfg(feature = "onedrive")]
pub use storage_onedrive;
