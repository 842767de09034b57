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

pub use backend::{GoogleDriveBackend, GoogleDriveBuilder};
pub use client::DrivePool;
pub use config::{CHUNK_UNIT, DriveOptions, GoogleApp, GoogleEndpoints};
