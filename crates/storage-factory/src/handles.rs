//! The disconnect flags of the managed connections a factory handed out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The disconnect flag of each managed connection the factory handed out.
///
/// A connection's flag is shared by its handles; `disconnect` sets it and
/// forgets it, so that a later `connect` of the same id (the user authorised
/// again) gets a fresh flag while the old handles stay dead.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    flags: Mutex<HashMap<String, Weak<AtomicBool>>>,
}

impl Connections {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<AtomicBool>>> {
        // Every update is one insert or remove: a poisoned map is still sound.
        self.flags.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The flag for `id`'s live handles, made when there is none.
    pub(crate) fn flag(&self, id: &str) -> Arc<AtomicBool> {
        let mut map = self.map();
        if let Some(flag) = map.get(id).and_then(Weak::upgrade) {
            return flag;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let flag = Arc::new(AtomicBool::new(false));
        map.insert(id.to_owned(), Arc::downgrade(&flag));
        flag
    }

    /// Makes every handle of `id` fail at once from now on.
    pub(crate) fn mark_disconnected(&self, id: &str) {
        if let Some(flag) = self.map().remove(id).and_then(|w| w.upgrade()) {
            flag.store(true, Ordering::SeqCst);
        }
    }
}
