//! Builds the factory and the managed connection from the global flags:
//! `--credentials FILE`, or `--store URL|DIR --connection ID`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use storage_core::{StorageBackend, StorageError};
use storage_factory::storage_gdrive::GoogleApp;
use storage_factory::storage_onedrive::MicrosoftApp;
use storage_factory::{
    CredentialStore, Endpoints, FileCredentialStore, PostgresCredentialStore, SealedStore, SealingKey, SealingKeys,
    StorageFactory,
};

use crate::cli::{Apps, Cli};
use crate::exit::Failure;

/// The connection id the CLI uses with its single-file store.
pub const CONNECTION: &str = "cli";

/// The environment variable with the sealing keys: `kid:base64key[,kid:base64key…]`,
/// the first seals every write, the others only open.
pub const SEAL_KEYS: &str = "STORAGE_SEAL_KEYS";
/// The variable naming a PEM file of CA certificates to trust, alone, for a
/// PostgreSQL store's TLS (a managed database's private CA).
pub const STORE_CA: &str = "STORAGE_STORE_CA";

/// Where the connection's credentials live.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    /// `--credentials FILE`: one JSON file.
    File(&'a Path),
    /// `--store SPEC --connection ID`: one connection of a shared store.
    Store {
        /// The `--store` value.
        spec: &'a str,
        /// The `--connection` value.
        id: &'a str,
    },
}

impl Source<'_> {
    /// The connection as the user named it, for messages.
    pub fn describe(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Store { id, .. } => format!("connection {id}"),
        }
    }
}

/// The source the flags name. clap already refuses `--store` with `--credentials`.
pub fn source(cli: &Cli) -> Result<Source<'_>, Failure> {
    match (&cli.credentials, &cli.store, &cli.connection) {
        (Some(path), None, None) => Ok(Source::File(path)),
        (None, Some(spec), Some(id)) => Ok(Source::Store { spec, id }),
        (None, Some(_), None) => Err(Failure::Usage("--store needs --connection ID".into())),
        (_, None, Some(_)) => Err(Failure::Usage("--connection needs --store".into())),
        (Some(_), Some(_), _) => Err(Failure::Usage("--store and --credentials exclude each other".into())),
        (None, None, None) => Err(Failure::Usage(
            "this command needs --credentials FILE, or --store URL --connection ID".into(),
        )),
    }
}

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

/// The factory for the flags: `local` connections only under `--local-base`.
pub fn factory(endpoints: Endpoints, apps: &Apps, local_base: Option<&Path>) -> Result<StorageFactory, Failure> {
    let mut b = StorageFactory::builder().endpoints(endpoints);
    if let Some(base) = local_base {
        if !base.is_absolute() {
            return Err(Failure::Usage("--local-base takes an absolute directory".into()));
        }
        b = b.allow_local(base);
    }
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

/// The store behind the flags, and the connection id in it.
pub async fn store_for(source: Source<'_>) -> Result<(Arc<dyn CredentialStore>, String), Failure> {
    match source {
        Source::File(path) => {
            if !path.exists() {
                return Err(Failure::MissingFile(path.display().to_string()));
            }
            Ok((Arc::new(FileCredentialStore::single_file(path)), CONNECTION.to_owned()))
        }
        Source::Store { spec, id } => Ok((open_store(spec).await?.store, id.to_owned())),
    }
}

/// The managed connection the flags name; refreshed tokens go back to its store.
pub async fn backend(cli: &Cli) -> Result<Arc<dyn StorageBackend>, Failure> {
    let (store, id) = store_for(source(cli)?).await?;
    let factory = factory(
        endpoints(cli.endpoints.as_deref()).await?,
        &cli.apps,
        cli.local_base.as_deref(),
    )?;
    match factory.connect(&id, store.clone()).await {
        Ok(b) => Ok(b),
        Err(StorageError::InvalidInput { message }) if message.contains("allow_local") => Err(Failure::Usage(
            "local connections open only under --local-base DIR (or $STORAGE_LOCAL_BASE)".into(),
        )),
        // A sealed blob read without keys does not parse as credentials: say why.
        Err(e @ StorageError::InvalidInput { .. }) => match store.load(&id).await {
            Ok(stored) if storage_factory::is_sealed(&stored.json) => Err(Failure::Usage(format!(
                "the credentials of connection {id} are sealed: set {SEAL_KEYS}"
            ))),
            _ => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Which kind of store `--store` names.
#[derive(Debug, Clone)]
pub enum Kind {
    /// A PostgreSQL database.
    Postgres(Arc<PostgresCredentialStore>),
    /// A directory of `{id}.json` files.
    Dir(PathBuf),
}

/// A store opened from `--store`.
#[derive(Debug)]
pub struct Opened {
    /// Plain credential JSON in and out; seals on the way in when keys are set.
    pub store: Arc<dyn CredentialStore>,
    /// The store itself: sealed blobs when sealing is on.
    pub raw: Arc<dyn CredentialStore>,
    /// The sealing wrapper, when [`SEAL_KEYS`] is set.
    pub sealed: Option<Arc<SealedStore<Arc<dyn CredentialStore>>>>,
    /// What kind of store it is.
    pub kind: Kind,
}

/// Opens `postgres://…`, `postgresql://…`, `file:DIR` or a directory, sealed
/// when [`SEAL_KEYS`] is set.
pub async fn open_store(spec: &str) -> Result<Opened, Failure> {
    // Parsed first: a bad key is a usage error before any connection is made.
    let keys = seal_keys()?;
    let (raw, kind): (Arc<dyn CredentialStore>, Kind) =
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            let pg = match std::env::var_os(STORE_CA).filter(|v| !v.is_empty()) {
                Some(path) => {
                    let pem = std::fs::read(&path).map_err(|e| {
                        Failure::Usage(format!("cannot read {STORE_CA} ({}): {e}", Path::new(&path).display()))
                    })?;
                    PostgresCredentialStore::connect_with_ca(spec, &pem).await?
                }
                None => PostgresCredentialStore::connect(spec).await?,
            };
            let pg = Arc::new(pg);
            (pg.clone(), Kind::Postgres(pg))
        } else {
            let dir = Path::new(spec.strip_prefix("file:").unwrap_or(spec));
            if !dir.is_dir() {
                return Err(Failure::Usage(
                    "--store takes postgres://…, file:DIR or an existing directory".into(),
                ));
            }
            (Arc::new(FileCredentialStore::in_dir(dir)), Kind::Dir(dir.to_owned()))
        };
    let sealed = keys.map(|k| Arc::new(SealedStore::new(raw.clone(), k)));
    let store: Arc<dyn CredentialStore> = match &sealed {
        Some(s) => s.clone(),
        None => raw.clone(),
    };
    Ok(Opened {
        store,
        raw,
        sealed,
        kind,
    })
}

/// The keys in [`SEAL_KEYS`], or `None` when it is unset or empty. Messages
/// never repeat the variable's value.
pub fn seal_keys() -> Result<Option<SealingKeys>, Failure> {
    let text = match std::env::var(SEAL_KEYS) {
        Ok(t) if !t.trim().is_empty() => t,
        Ok(_) | Err(std::env::VarError::NotPresent) => return Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Failure::Usage(format!("{SEAL_KEYS} is not valid utf-8")));
        }
    };
    let mut keys: Option<SealingKeys> = None;
    for part in text.split(',') {
        let (kid, b64) = part
            .trim()
            .split_once(':')
            .ok_or_else(|| Failure::Usage(format!("{SEAL_KEYS} takes kid:base64key[,kid:base64key…]")))?;
        let key = SealingKey::from_base64(b64)?;
        keys = Some(match keys {
            None => SealingKeys::new((kid, key))?,
            Some(k) => k.with_old(kid, key)?,
        });
    }
    Ok(keys)
}

/// Whether `e` says the connection does not exist.
pub fn is_not_found(e: &StorageError) -> bool {
    matches!(e, StorageError::NotFound { .. })
}
