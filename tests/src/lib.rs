//! Cross-crate integration tests live in `tests/tests/`. This library compiles
//! the workspace README's example as a doctest, so it stays true, and holds the
//! helpers that several test crates share.
#![doc = include_str!("../../README.md")]

/// The PostgreSQL server the tests use: `cargo xtask ci` (and `cargo xtask
/// test`) start a throwaway cluster and set `STORAGE_TEST_DATABASE_URL` and
/// `STORAGE_TEST_DATABASE_CA`. Without them a test prints why it skips, except
/// under CI, where it fails.
pub mod postgres {
    /// Whether this runs under CI: `CI` set to anything but empty, `false` or `0`.
    pub fn under_ci() -> bool {
        std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
    }

    /// The value of `var`, or `None` with the reason printed; under CI a missing
    /// value fails the test.
    fn required(var: &str, what: &str) -> Option<String> {
        match std::env::var(var) {
            Ok(v) if !v.is_empty() => Some(v),
            _ => {
                assert!(
                    !under_ci(),
                    "{var} is not set under CI: `cargo xtask ci` starts a throwaway postgresql and sets it"
                );
                #[allow(clippy::print_stderr)]
                {
                    eprintln!("skipped: set {var} (or run `cargo xtask ci`) to run the {what}");
                }
                None
            }
        }
    }

    /// `STORAGE_TEST_DATABASE_URL`: a `postgres://…` URL.
    pub fn database_url() -> Option<String> {
        required("STORAGE_TEST_DATABASE_URL", "postgresql tests")
    }

    /// `STORAGE_TEST_DATABASE_CA`: the path of the PEM CA that signed the
    /// server's certificate.
    pub fn database_ca() -> Option<String> {
        required("STORAGE_TEST_DATABASE_CA", "postgresql tls tests")
    }

    /// `url` with `sslmode=require` in place of its query.
    pub fn require_tls(url: &str) -> String {
        let base = url.split_once('?').map_or(url, |(b, _)| b);
        format!("{base}?sslmode=require")
    }

    /// A connection id no other run uses, so tests can share one database.
    pub fn unique_id(prefix: &str) -> String {
        format!("{prefix}-{}-{:08x}", std::process::id(), fastrand::u32(..))
    }
}

/// A factory wired to an emulator, as most cross-crate tests need it.
pub mod emulator {
    use std::time::Duration;

    use storage_core::RetryPolicy;
    use storage_emulator::EmulatorHandle;
    use storage_factory::storage_gdrive::GoogleApp;
    use storage_factory::storage_onedrive::MicrosoftApp;
    use storage_factory::{Endpoints, StorageFactory, StorageFactoryBuilder};

    /// A factory builder with `emu`'s endpoints and both providers' apps.
    ///
    /// # Panics
    /// When the emulator's endpoints do not parse as [`Endpoints`].
    pub fn factory_builder(emu: &EmulatorHandle) -> StorageFactoryBuilder {
        let g = emu.google_app();
        let m = emu.microsoft_app();
        #[allow(clippy::unwrap_used)]
        let endpoints = Endpoints::from_json(&serde_json::to_string(emu.endpoints()).unwrap()).unwrap();
        StorageFactory::builder()
            .endpoints(endpoints)
            .google_app(GoogleApp::new(&g.client_id, g.client_secret.as_str()))
            .microsoft_app(MicrosoftApp::new(&m.client_id, m.client_secret.as_str()))
    }

    /// Retries 10 ms apart at first and at most 50 ms, so that tests stay fast.
    pub fn quick_retry() -> RetryPolicy {
        RetryPolicy::new()
            .with_initial_backoff(Duration::from_millis(10))
            .with_max_backoff(Duration::from_millis(50))
    }

    /// The documents the emulator holds for `provider` (`gdrive` or
    /// `onedrive`), with their bytes: no folders, nothing trashed.
    pub fn documents(emu: &EmulatorHandle, provider: &str) -> Vec<(String, bytes::Bytes)> {
        if provider == "gdrive" {
            emu.drive_files()
                .into_iter()
                .filter(|f| !f.is_folder && !f.trashed)
                .map(|f| (f.name, emu.drive_file_content(&f.id).unwrap_or_default()))
                .collect()
        } else {
            emu.graph_items()
                .into_iter()
                .filter(|i| !i.is_folder)
                .map(|i| (i.name, emu.graph_item_content(&i.id).unwrap_or_default()))
                .collect()
        }
    }

    /// The emulator's credential JSON for `provider` (`gdrive` or `onedrive`).
    pub fn grant(emu: &EmulatorHandle, provider: &str) -> serde_json::Value {
        if provider == "gdrive" {
            emu.google_grant()
        } else {
            emu.microsoft_grant()
        }
    }
}
