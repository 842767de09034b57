//! The fixtures that the tests of both provider crates share: an emulator with
//! a grant, a backend wired to it with quick retries, the conformance kit's
//! folder probe, and the small helpers every test file wants.
//!
//! Each provider crate's integration tests depend on this crate with that
//! provider's feature, so a Drive test compiles nothing of OneDrive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use storage_core::{ByteStream, ObjectKey, ObjectName, RetryPolicy};
use storage_emulator::EmulatorHandle;

/// `retry` with backoffs short enough for tests (10 ms, at most 50 ms).
#[must_use]
pub fn quick(retry: RetryPolicy) -> RetryPolicy {
    retry
        .with_initial_backoff(Duration::from_millis(10))
        .with_max_backoff(Duration::from_millis(50))
}

/// The idle timeout the fixtures' backends use: long for a loaded CI machine,
/// short next to the default.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A test document of user `user-1` with extension `.bin`.
#[must_use]
pub fn name(doc: &str) -> ObjectName {
    ObjectName::new("user-1", doc, ".bin").unwrap()
}

/// `body` as a stream of odd-sized pieces (100 003 bytes), as a network would
/// deliver it.
#[must_use]
pub fn stream_of(body: Bytes) -> ByteStream {
    storage_core::stream::from_bytes(body, 100_003)
}

/// The emulator's endpoints for one provider, as that provider's crate takes
/// them: both sides serialise the same JSON.
fn convert<T: serde::de::DeserializeOwned>(value: &impl serde::Serialize) -> T {
    serde_json::from_value(serde_json::to_value(value).unwrap()).unwrap()
}

/// The conformance kit's folder probe: every folder above a document, as the
/// emulator stores it, through `ancestors`.
#[derive(Debug)]
pub struct EmulatorFolders<'a> {
    emu: &'a EmulatorHandle,
    ancestors: fn(&EmulatorHandle, &str) -> Vec<String>,
}

#[storage_core::async_trait]
impl storage_core::testkit::FolderKeys for EmulatorFolders<'_> {
    async fn folder_keys(&self, _user: &str, document: &ObjectKey) -> Vec<ObjectKey> {
        (self.ancestors)(self.emu, document.as_str())
            .into_iter()
            .map(ObjectKey::new)
            .collect()
    }
}

/// Google Drive fixtures.
#[cfg(feature = "gdrive")]
pub mod gdrive {
    use storage_core::{RetryPolicy, TokenCell};
    use storage_emulator::{Emulator, EmulatorHandle};
    use storage_gdrive::{DriveOptions, GoogleDriveBackend, GoogleEndpoints};

    use super::{EmulatorFolders, READ_TIMEOUT, convert, quick};

    /// The emulator's Google endpoints.
    #[must_use]
    pub fn endpoints(emu: &EmulatorHandle) -> GoogleEndpoints {
        convert(&emu.endpoints().google)
    }

    /// Options with chunks of `chunk` bytes (a budget of one chunk, so they do
    /// not grow), quick retries and [`READ_TIMEOUT`].
    #[must_use]
    pub fn options(chunk: usize) -> DriveOptions {
        let mut o = DriveOptions::default();
        o.chunk_size = chunk;
        o.upload_memory_budget = chunk;
        o.retry = quick(RetryPolicy::new());
        o.read_timeout = READ_TIMEOUT;
        o
    }

    /// A backend with its own folder cache and pool, as another process would
    /// have, under `options`.
    #[must_use]
    pub fn backend_with(emu: &EmulatorHandle, token: &str, options: DriveOptions) -> GoogleDriveBackend {
        GoogleDriveBackend::builder(TokenCell::new(token))
            .endpoints(endpoints(emu))
            .options(options)
            .build()
            .unwrap()
    }

    /// A backend with the default chunk size, retrying quickly under `retry`.
    #[must_use]
    pub fn backend(emu: &EmulatorHandle, token: &str, retry: RetryPolicy) -> GoogleDriveBackend {
        let mut o = options(DriveOptions::default().chunk_size);
        o.retry = quick(retry);
        backend_with(emu, token, o)
    }

    /// A fresh emulator and the access token of its Google grant.
    pub async fn start() -> (EmulatorHandle, String) {
        let emu = Emulator::start().await.unwrap();
        let token = emu.google_grant()["access_token"].as_str().unwrap().to_owned();
        (emu, token)
    }

    /// The folder probe over Drive's parents.
    #[must_use]
    pub fn folders(emu: &EmulatorHandle) -> EmulatorFolders<'_> {
        EmulatorFolders {
            emu,
            ancestors: EmulatorHandle::drive_ancestors,
        }
    }
}

/// OneDrive fixtures.
#[cfg(feature = "onedrive")]
pub mod onedrive {
    use storage_core::{RetryPolicy, TokenCell};
    use storage_emulator::{Emulator, EmulatorHandle};
    use storage_onedrive::{MicrosoftEndpoints, OneDriveBackend, OneDriveOptions};

    use super::{EmulatorFolders, READ_TIMEOUT, convert, quick};

    /// The emulator's Microsoft endpoints.
    #[must_use]
    pub fn endpoints(emu: &EmulatorHandle) -> MicrosoftEndpoints {
        convert(&emu.endpoints().microsoft)
    }

    /// Options with fragments of `fragment` bytes (a budget of one fragment,
    /// so they do not grow; every non-empty body in a session), quick retries
    /// and [`READ_TIMEOUT`].
    #[must_use]
    pub fn options(fragment: usize) -> OneDriveOptions {
        let mut o = OneDriveOptions::default();
        o.fragment_size = fragment;
        o.upload_memory_budget = fragment;
        o.simple_upload_limit = 0;
        o.retry = quick(RetryPolicy::new());
        o.read_timeout = READ_TIMEOUT;
        o
    }

    /// A backend with its own folder cache and pool, as another process would
    /// have, under `options`.
    #[must_use]
    pub fn backend_with(emu: &EmulatorHandle, token: &str, options: OneDriveOptions) -> OneDriveBackend {
        OneDriveBackend::builder(TokenCell::new(token))
            .endpoints(endpoints(emu))
            .options(options)
            .build()
            .unwrap()
    }

    /// A backend with the default fragment size, retrying quickly under `retry`.
    #[must_use]
    pub fn backend(emu: &EmulatorHandle, token: &str, retry: RetryPolicy) -> OneDriveBackend {
        let mut o = options(OneDriveOptions::default().fragment_size);
        o.retry = quick(retry);
        backend_with(emu, token, o)
    }

    /// A fresh emulator and the access token of its Microsoft grant.
    pub async fn start() -> (EmulatorHandle, String) {
        let emu = Emulator::start().await.unwrap();
        let token = emu.microsoft_grant()["access_token"].as_str().unwrap().to_owned();
        (emu, token)
    }

    /// The folder probe over OneDrive's parents.
    #[must_use]
    pub fn folders(emu: &EmulatorHandle) -> EmulatorFolders<'_> {
        EmulatorFolders {
            emu,
            ancestors: EmulatorHandle::graph_ancestors,
        }
    }
}
