#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
#![allow(
    clippy::result_large_err,
    reason = "handlers short-circuit with ready-made HTTP responses as their error type"
)]

mod consent;
mod control;
mod emulator;
mod endpoints;
mod errors;
pub mod faults;
mod google;
mod grants;
mod http_util;
mod info;
pub mod journal;
mod link;
mod microsoft;
mod origin;
mod pipeline;
mod routes;
mod server;
mod state;

pub use consent::Consent;
pub use emulator::{
    Announcement, AppCredentials, Clients, DriveFileInfo, Emulator, EmulatorBuilder, EmulatorHandle, Endpoints,
    GoogleEndpoints, GraphItemInfo, MicrosoftEndpoints, OAuthEndpoints, Origins, ProviderOAuth, StartError,
};
pub use faults::{FaultAction, FaultController, FaultRule, Provider, RuleId, SignInRequired};
pub use journal::{Journal, JournalEntry, Origin};
pub use link::{LinkProfile, LinkProfileError};
