//! Values cached by key, each behind its own async lock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// One key's cached value and its lock.
pub type Slot<V> = Arc<tokio::sync::Mutex<Option<V>>>;

/// Values by key (a provider's folder ids by user, say), each behind its own
/// lock: a caller holds one key's lock across a slow lookup-or-create, so that
/// concurrent callers for that key make one, while callers for other keys go on.
///
/// ```
/// use storage_core::slots::Slots;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let folders: Slots<String> = Slots::default();
/// {
///     let slot = folders.slot("alice");
///     let mut cached = slot.lock().await;
///     if cached.is_none() {
///         *cached = Some("folder-1".to_owned()); // looked up or created
///     }
/// }
/// assert_eq!(folders.slot("alice").lock().await.as_deref(), Some("folder-1"));
/// folders.forget("alice").await;
/// assert!(folders.slot("alice").lock().await.is_none());
/// # });
/// ```
#[derive(Debug)]
pub struct Slots<V> {
    slots: Mutex<HashMap<String, Slot<V>>>,
}

impl<V> Default for Slots<V> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<V> Slots<V> {
    /// The slot of `key`, created empty on first use.
    pub fn slot(&self, key: &str) -> Slot<V> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(key.to_owned()).or_default())
    }

    /// Empties the slot of `key`, once its current holder is done.
    pub async fn forget(&self, key: &str) {
        *self.slot(key).lock().await = None;
    }
}
