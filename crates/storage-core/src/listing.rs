//! What `list_user` and `quota` return: pages of a user's objects, and the
//! drive's storage figures.

use std::time::SystemTime;

use crate::checksum::Checksum;
use crate::error::{Result, StorageError};
use crate::name::{ObjectKey, ObjectName};

/// The most objects one page may ask for (Drive's `pageSize` limit).
pub const MAX_PAGE_SIZE: u32 = 1000;

/// A continuation token of `list_user`, opaque to the caller, who may store it
/// and hand it back later. A backend checks a token before it follows it: a
/// OneDrive token is a URL, and one that leads off the Graph origin is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken(String);

impl PageToken {
    /// A token as stored by the caller.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// The token's text, to store.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which page `list_user` returns: up to `size` objects, after `token`.
///
/// ```
/// use storage_core::{PageRequest, PageToken};
/// let first = PageRequest::first(50).unwrap();
/// assert_eq!(first.size(), 50);
/// let next = first.after(PageToken::new("t"));
/// assert_eq!(next.token().map(PageToken::as_str), Some("t"));
/// assert!(PageRequest::first(0).is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    size: u32,
    token: Option<PageToken>,
}

impl Default for PageRequest {
    /// The first page of 100.
    fn default() -> Self {
        Self { size: 100, token: None }
    }
}

impl PageRequest {
    /// The first page of up to `size` objects (1 to [`MAX_PAGE_SIZE`]).
    ///
    /// # Errors
    /// `InvalidInput` for a size outside that range.
    pub fn first(size: u32) -> Result<Self> {
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(StorageError::invalid_input(format!(
                "a page holds 1 to {MAX_PAGE_SIZE} objects"
            )));
        }
        Ok(Self { size, token: None })
    }

    /// The page after the one that returned `token`, of the same size.
    #[must_use]
    pub fn after(&self, token: PageToken) -> Self {
        Self {
            size: self.size,
            token: Some(token),
        }
    }

    /// The page size.
    #[must_use]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The continuation token, when this is not the first page.
    #[must_use]
    pub fn token(&self) -> Option<&PageToken> {
        self.token.as_ref()
    }
}

/// One stored object, as a listing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ObjectInfo {
    /// The name it was stored under.
    pub name: ObjectName,
    /// Its key.
    pub key: ObjectKey,
    /// Size in bytes.
    pub size: u64,
    /// The provider's content hash, when it reports one.
    pub checksum: Option<Checksum>,
    /// When it was last written, when the backend knows.
    pub modified: Option<SystemTime>,
}

impl ObjectInfo {
    /// An entry with a name, key and size.
    #[must_use]
    pub fn new(name: ObjectName, key: ObjectKey, size: u64) -> Self {
        Self {
            name,
            key,
            size,
            checksum: None,
            modified: None,
        }
    }

    /// Sets the checksum.
    #[must_use]
    pub fn with_checksum(mut self, checksum: Option<Checksum>) -> Self {
        self.checksum = checksum;
        self
    }

    /// Sets the modified time.
    #[must_use]
    pub fn with_modified(mut self, modified: Option<SystemTime>) -> Self {
        self.modified = modified;
        self
    }
}

/// One page of a listing: the objects, and the token of the next page when
/// there may be more. A page can hold fewer objects than asked for (a provider
/// page may hold files the app did not store, which are left out) and still
/// have a next page.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Page {
    /// The objects, in the backend's order.
    pub items: Vec<ObjectInfo>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<PageToken>,
}

impl Page {
    /// A page of `items`, followed by `next`.
    #[must_use]
    pub fn new(items: Vec<ObjectInfo>, next: Option<PageToken>) -> Self {
        Self { items, next }
    }
}

/// The storage figures of the user's drive, in bytes. A figure the provider
/// does not report, or an unlimited quota, is `None`, never zero.
///
/// ```
/// use storage_core::Quota;
/// let q = Quota::new(Some(100), Some(30), None);
/// assert_eq!(q.remaining, Some(70)); // derived when the provider gives total and used
/// assert_eq!(Quota::new(None, Some(30), None).remaining, None); // unlimited
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Quota {
    /// The limit; `None` when unlimited or unknown.
    pub total: Option<u64>,
    /// What is used.
    pub used: Option<u64>,
    /// What is left; `None` when unlimited or unknown.
    pub remaining: Option<u64>,
}

impl Quota {
    /// Figures as the provider reports them; `remaining`, when not reported, is
    /// derived from `total` and `used`.
    #[must_use]
    pub fn new(total: Option<u64>, used: Option<u64>, remaining: Option<u64>) -> Self {
        let remaining = remaining.or_else(|| Some(total?.saturating_sub(used?)));
        Self { total, used, remaining }
    }
}

/// One page of `entries` (sort key, object), for backends that list by
/// themselves: sorted by key, starting after the key in `page`'s token, whose
/// next token is the last key returned.
pub(crate) fn page_of(mut entries: Vec<(String, ObjectInfo)>, page: &PageRequest) -> Page {
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let start = match page.token() {
        Some(after) => entries.partition_point(|(k, _)| k.as_str() <= after.as_str()),
        None => 0,
    };
    let size = usize::try_from(page.size()).unwrap_or(usize::MAX);
    let rest = entries.len() - start;
    let taken: Vec<(String, ObjectInfo)> = entries.into_iter().skip(start).take(size).collect();
    let next = (rest > taken.len())
        .then(|| taken.last().map(|(k, _)| PageToken::new(k.clone())))
        .flatten();
    Page::new(taken.into_iter().map(|(_, info)| info).collect(), next)
}
