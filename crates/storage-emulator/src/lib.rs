//! A local emulator of the Google Drive v3, Microsoft Graph and OAuth token endpoints.
//!
//! This crate is a skeleton: the emulator lands with its own issue.
#![warn(missing_docs)]
