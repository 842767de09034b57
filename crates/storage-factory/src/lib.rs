//! Picks a storage backend at runtime from the enabled cargo features and credential JSON.
//!
//! This crate is a skeleton: the factory lands with its own issue. Its features
//! already exist so that builds can select providers.
#![warn(missing_docs)]

pub use storage_core;
#[cfg(feature = "gdrive")]
pub use storage_gdrive;
#[cfg(feature = "onedrive")]
pub use storage_onedrive;
