#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
mod client;
mod config;
mod download;
mod error;
mod folders;
pub mod oauth;
mod purge;
mod upload;

pub use backend::{OneDriveBackend, OneDriveBuilder};
pub use client::GraphPool;
pub use config::{FRAGMENT_UNIT, MAX_FRAGMENT, MicrosoftApp, MicrosoftEndpoints, OneDriveOptions};

/// The name [`MicrosoftEndpoints`] had before both provider crates took one
/// naming convention (`GoogleEndpoints` / `MicrosoftEndpoints`).
#[deprecated(since = "0.1.0", note = "renamed to MicrosoftEndpoints")]
pub type GraphEndpoints = MicrosoftEndpoints;
