//! A local emulator of the Google Drive v3, Microsoft Graph (OneDrive) and OAuth token
//! endpoints, with fault injection and a request journal.
//!
//! [`Emulator::start`] binds two ports on 127.0.0.1: one serves the APIs (Drive v3, Google's token
//! and authorize endpoints, Graph's `/v1.0/me/drive/...`, Microsoft's token and authorize
//! endpoints), the other serves what production puts on other hosts: Drive resumable session
//! URIs, Graph `uploadUrl`s and Graph pre-authenticated download URLs.
//!
//! The emulator is strict by default: it rejects what the real services reject (misaligned
//! fragments, `Authorization` on a Graph `uploadUrl`, malformed `Content-Range`, missing or expired
//! access tokens). [`EmulatorBuilder::lenient`] relaxes the upload rules for probing.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use storage_emulator::{Emulator, FaultAction, FaultRule, Provider};
//!
//! let emu = Emulator::start().await?;
//! let credentials = emu.google_grant(); // {"provider":"gdrive","access_token":...}
//! emu.faults().add(
//!     FaultRule::new(FaultAction::google_error(403, "userRateLimitExceeded"))
//!         .provider(Provider::Google)
//!         .path("/drive/v3/files/*")
//!         .times(1),
//! );
//! // ... point a client at emu.endpoints() ...
//! assert!(emu.journal().connection_count() <= 1);
//! emu.shutdown().await;
//! # let _ = credentials;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![allow(
    clippy::result_large_err,
    reason = "handlers short-circuit with ready-made HTTP responses as their error type"
)]

mod emulator;
mod errors;
pub mod faults;
mod google;
mod grants;
mod http_util;
pub mod journal;
mod microsoft;
mod pipeline;
mod routes;
mod server;
mod state;

pub use emulator::{
    AppCredentials, DriveFileInfo, Emulator, EmulatorBuilder, EmulatorHandle, Endpoints, GoogleEndpoints,
    GraphItemInfo, MicrosoftEndpoints, StartError,
};
pub use faults::{FaultAction, FaultController, FaultRule, Provider, RuleId};
pub use journal::{Journal, JournalEntry, Origin};
