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
pub use config::{FRAGMENT_UNIT, GraphEndpoints, MAX_FRAGMENT, MicrosoftApp, OneDriveOptions};
