#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod backend;
mod client;
mod config;
mod download;
mod error;
mod folders;
mod lanes;
mod listing;
mod multipart;
pub mod oauth;
mod purge;
mod upload;

pub use backend::{GoogleDriveBackend, GoogleDriveBuilder};
pub use client::DrivePool;
pub use config::{CHUNK_UNIT, DriveOptions, GoogleApp, GoogleEndpoints};
/// The `reqwest` this crate is built on: `http_client` and the `oauth` functions
/// take its `Client`, so it is a public dependency, re-exported here so that an
/// application builds its client with the very same version.
pub use reqwest;
pub use storage_core::download::Parallel;
pub use storage_core::protocol::HttpVersion;
