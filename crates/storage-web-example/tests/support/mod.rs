//! What the tests of the reference backend share: the server on the emulator.

use std::sync::Arc;

use storage_emulator::{Emulator, EmulatorHandle};
use storage_factory::storage_gdrive::GoogleApp;
use storage_factory::storage_onedrive::MicrosoftApp;
use storage_factory::{Endpoints, MemoryCredentialStore, SealedStore, SealingKey, SealingKeys, StorageFactory};
use storage_web_example::{App, router};

/// The emulator with its consent pages, and the server on a free port in
/// front of it (its own frontend), keeping connections in a sealed in-memory
/// store: the emulator, the server's base URL and the store's raw rows.
pub async fn start() -> (EmulatorHandle, url::Url, Arc<MemoryCredentialStore>) {
    let emu = Emulator::builder().consent_page(true).start().await.unwrap();
    let endpoints = Endpoints::from_json(&serde_json::to_string(emu.endpoints()).unwrap()).unwrap();
    let (g, m) = (emu.google_app(), emu.microsoft_app());
    let factory = StorageFactory::builder()
        .endpoints(endpoints)
        .google_app(GoogleApp::new(&g.client_id, g.client_secret.as_str()))
        .microsoft_app(MicrosoftApp::new(&m.client_id, m.client_secret.as_str()))
        .connect_keys(SealingKeys::new(("c", SealingKey::from_bytes([3; 32]))).unwrap())
        .build()
        .unwrap();
    let rows = Arc::new(MemoryCredentialStore::new());
    let store = Arc::new(SealedStore::new(
        rows.clone(),
        SealingKeys::new(("r", SealingKey::from_bytes([4; 32]))).unwrap(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    let app = App {
        factory: Arc::new(factory),
        store,
        session_key: Arc::new([5; 32]),
        frontend: base.clone(),
        base: base.clone(),
    };
    tokio::spawn(async move { axum::serve(listener, router(app)).await });
    (emu, base, rows)
}
