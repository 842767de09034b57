#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
mod client;
mod config;
mod download;
mod error;
mod folders;
mod listing;
pub mod oauth;
mod purge;
mod upload;

pub use backend::{OneDriveBackend, OneDriveBuilder};
pub use client::GraphPool;
pub use config::{FRAGMENT_UNIT, MAX_FRAGMENT, MicrosoftApp, MicrosoftEndpoints, OneDriveOptions};
/// The `reqwest` this crate is built on: `http_client` and the `oauth` functions
/// take its `Client`, so it is a public dependency, re-exported here so that an
/// application builds its client with the very same version.
pub use reqwest;
pub use storage_core::download::Parallel;
pub use storage_core::protocol::HttpVersion;

/// The name [`MicrosoftEndpoints`] had before both provider crates took one
/// naming convention (`GoogleEndpoints` / `MicrosoftEndpoints`).
#[deprecated(since = "0.1.0", note = "renamed to MicrosoftEndpoints")]
pub type GraphEndpoints = MicrosoftEndpoints;
