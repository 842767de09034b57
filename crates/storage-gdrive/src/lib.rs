//! Google Drive v3 backend for `storage-core`.
//!
//! This crate is a skeleton: the backend lands with its own issue.
#![warn(missing_docs)]
