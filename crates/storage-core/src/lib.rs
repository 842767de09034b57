#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

#[cfg(feature = "http")]
pub mod answer;
mod backend;
pub mod checksum;
pub mod detach;
pub mod download;
pub mod endpoint;
mod error;
#[cfg(feature = "http")]
pub mod exchange;
mod hash;
#[cfg(feature = "http")]
pub mod idle;
mod listing;
mod local;
mod memory;
mod meta;
mod name;
#[cfg(feature = "oauth")]
pub mod oauth;
#[cfg(feature = "http")]
pub mod protocol;
pub mod purge;
pub mod range;
pub mod retry;
mod secret;
pub mod session;
pub mod slots;
pub mod stored_name;
pub mod stream;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod upload;

pub use backend::{ByteStream, Capabilities, StorageBackend};
pub use checksum::{Checksum, Md5Hasher, QuickXorHasher};
pub use error::{BoxError, ConnectionReason, Result, StorageError};
pub use listing::{MAX_PAGE_SIZE, ObjectInfo, Page, PageRequest, PageToken, Quota};
pub use local::LocalBackend;
pub use memory::MemoryBackend;
pub use meta::ObjectMeta;
pub use name::{
    MAX_EXTENSION_LEN, MAX_PART_LEN, MAX_STORED_COMPONENT, MAX_STORED_PATH, ObjectKey, ObjectName, validate_part,
    validate_stored_part,
};
pub use purge::{FolderOutcome, PurgeReport};
pub use range::ByteRange;
pub use retry::RetryPolicy;
pub use secret::{Secret, TokenCell};

/// Re-exported so that implementors name the same versions.
pub use async_trait::async_trait;
pub use bytes::Bytes;
pub use url::Url;
