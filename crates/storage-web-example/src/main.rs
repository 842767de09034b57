//! `cargo run -p storage-web-example`: the reference backend against the
//! embedded emulator, whose consent pages stand in for Google's and
//! Microsoft's. Connections go to PostgreSQL through a `SealedStore` when
//! `DATABASE_URL` is set, to sealed files under a temporary directory otherwise.

use std::sync::Arc;

use storage_emulator::Emulator;
use storage_factory::storage_gdrive::GoogleApp;
use storage_factory::storage_onedrive::MicrosoftApp;
use storage_factory::{
    CredentialStore, Endpoints, FileCredentialStore, PostgresCredentialStore, SealedStore, SealingKey, SealingKeys,
    StorageFactory,
};
use storage_web_example::{App, router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emu = Emulator::builder().consent_page(true).start().await?;
    let endpoints = Endpoints::from_json(&serde_json::to_string(emu.endpoints())?)?;
    let (g, m) = (emu.google_app(), emu.microsoft_app());
    let factory = StorageFactory::builder()
        .endpoints(endpoints)
        .google_app(GoogleApp::new(&g.client_id, g.client_secret.as_str()))
        .microsoft_app(MicrosoftApp::new(&m.client_id, m.client_secret.as_str()))
        .connect_keys(SealingKeys::new(("connect", SealingKey::generate()?))?)
        .build()?;
    let keys = SealingKeys::new(("rows", SealingKey::generate()?))?;
    let store: Arc<dyn CredentialStore> = match std::env::var("DATABASE_URL") {
        Ok(url) => Arc::new(SealedStore::new(PostgresCredentialStore::connect(&url).await?, keys)),
        Err(_) => {
            let dir = std::env::temp_dir().join(format!("storage-web-example-{}", std::process::id()));
            Arc::new(SealedStore::new(FileCredentialStore::in_dir(dir), keys))
        }
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
    let base = url::Url::parse(&format!("http://{}/", listener.local_addr()?))?;
    let mut session_key = [0u8; 32];
    let random = storage_factory::storage_core::oauth::random_token(32)?;
    for (k, b) in session_key.iter_mut().zip(random.bytes()) {
        *k = b;
    }
    let app = App {
        factory: Arc::new(factory),
        store,
        session_key: Arc::new(session_key),
        frontend: base.clone(),
        base: base.clone(),
    };
    #[allow(clippy::print_stdout)]
    {
        println!("storage-web-example: open {base} (ctrl-c stops)");
    }
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    emu.shutdown().await;
    Ok(())
}
