//! Builds the factory and the managed connection from the global flags.

use std::path::Path;
use std::sync::Arc;

use storage_core::StorageBackend;
use storage_factory::storage_gdrive::GoogleApp;
use storage_factory::storage_onedrive::MicrosoftApp;
use storage_factory::{Endpoints, FileCredentialStore, StorageFactory};

use crate::cli::Apps;
use crate::exit::Failure;

/// The connection id the CLI uses with its single-file store.
pub const CONNECTION: &str = "cli";

/// Reads `--endpoints`, production when absent.
pub async fn endpoints(path: Option<&Path>) -> Result<Endpoints, Failure> {
    match path {
        None => Ok(Endpoints::production()),
        Some(p) => {
            let text = read(p).await?;
            Ok(Endpoints::from_json(&text)?)
        }
    }
}

/// Reads a file the user named; a missing one is exit code 3.
pub async fn read(path: &Path) -> Result<String, Failure> {
    match tokio::fs::read_to_string(path).await {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::MissingFile(path.display().to_string())),
        Err(e) => Err(Failure::Other(format!("cannot read {}: {e}", path.display()))),
    }
}

/// The factory for the flags.
pub fn factory(endpoints: Endpoints, apps: &Apps) -> Result<StorageFactory, Failure> {
    let mut b = StorageFactory::builder().endpoints(endpoints);
    if let (Some(id), Some(secret)) = (&apps.google_client_id, &apps.google_client_secret) {
        b = b.google_app(GoogleApp::new(id.clone(), secret.clone()));
    }
    if let Some(id) = &apps.microsoft_client_id {
        let app = match &apps.microsoft_client_secret {
            Some(s) => MicrosoftApp::new(id.clone(), s.clone()),
            None => MicrosoftApp::public(id.clone()),
        };
        b = b.microsoft_app(app.with_tenant(apps.microsoft_tenant.clone()));
    }
    Ok(b.build()?)
}

/// The managed connection behind `--credentials FILE`.
pub async fn backend(
    endpoints_path: Option<&Path>,
    credentials: Option<&Path>,
    apps: &Apps,
) -> Result<Arc<dyn StorageBackend>, Failure> {
    let Some(path) = credentials else {
        return Err(Failure::Usage("this command needs --credentials FILE".into()));
    };
    if !path.exists() {
        return Err(Failure::MissingFile(path.display().to_string()));
    }
    let factory = factory(endpoints(endpoints_path).await?, apps)?;
    let store = Arc::new(FileCredentialStore::single_file(path));
    Ok(factory.connect(CONNECTION, store).await?)
}
