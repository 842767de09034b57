//! The purge check: two users with objects at every round-trip size; purging one
//! removes exactly that user's objects and leaves the other's byte for byte.

use bytes::Bytes;

use super::{ROUND_TRIP_SIZES, compare, payload};
use crate::backend::StorageBackend;
use crate::error::StorageError;
use crate::name::{ObjectKey, ObjectName};
use crate::purge::PurgeReport;

/// Objects stored for the two users of a purge check.
#[derive(Debug, Clone)]
pub struct PurgeFixture {
    /// The user that gets purged.
    pub victim: String,
    /// The user that must stay intact.
    pub bystander: String,
    /// The victim's keys.
    pub victim_keys: Vec<ObjectKey>,
    /// The bystander's keys and bytes.
    pub bystander_objects: Vec<(ObjectKey, Bytes)>,
    /// What purging the victim must report.
    pub expected: PurgeReport,
}

/// Stores one object of every [`ROUND_TRIP_SIZES`] size for `victim` and for
/// `bystander`; both get the same document ids, so only the user tells them apart.
///
/// # Errors
/// The first failed put, described.
pub async fn seed_two_users(
    backend: &dyn StorageBackend,
    victim: &str,
    bystander: &str,
) -> Result<PurgeFixture, String> {
    let mut fixture = PurgeFixture {
        victim: victim.to_owned(),
        bystander: bystander.to_owned(),
        victim_keys: Vec::new(),
        bystander_objects: Vec::new(),
        expected: PurgeReport::default(),
    };
    for (i, &size) in ROUND_TRIP_SIZES.iter().enumerate() {
        for (user, seed) in [(victim, 11), (bystander, 29)] {
            let name = ObjectName::new(user, &format!("doc-{i}"), ".bin").map_err(|e| e.to_string())?;
            let body = payload(size, seed);
            let key = backend
                .put_object(&name, body.clone(), "application/octet-stream")
                .await
                .map_err(|e| format!("put of {size} bytes for {user} failed: {e}"))?;
            if user == victim {
                fixture.victim_keys.push(key);
                fixture.expected += PurgeReport::new(1, size as u64);
            } else {
                fixture.bystander_objects.push((key, body));
            }
        }
    }
    Ok(fixture)
}

/// Checks through the backend that the victim's objects are gone and the
/// bystander's read back unchanged.
///
/// # Errors
/// What differs.
pub async fn verify_after_purge(backend: &dyn StorageBackend, fixture: &PurgeFixture) -> Result<(), String> {
    for key in &fixture.victim_keys {
        match backend.get_object(key).await {
            Err(StorageError::NotFound { .. }) => {}
            Ok(b) => return Err(format!("a purged object ({} bytes) still reads back", b.len())),
            Err(e) => return Err(format!("reading a purged object failed with {e}, not not-found")),
        }
    }
    for (key, body) in &fixture.bystander_objects {
        let got = backend
            .get_object(key)
            .await
            .map_err(|e| format!("the other user's object of {} bytes is unreadable: {e}", body.len()))?;
        compare("the other user's object after the purge", &got, body)?;
    }
    Ok(())
}

/// Seeds both users, purges the victim, checks the report, the objects and that
/// a second purge reports nothing; returns the fixture for backend-specific
/// checks of what is left (a listing of the folder, the emulator's state).
///
/// # Errors
/// What went wrong, described.
pub async fn run_purge_check(
    backend: &dyn StorageBackend,
    victim: &str,
    bystander: &str,
) -> Result<PurgeFixture, String> {
    let fixture = seed_two_users(backend, victim, bystander).await?;
    let report = backend
        .purge_user(victim)
        .await
        .map_err(|e| format!("purge_user failed: {e}"))?;
    if report.counts() != fixture.expected.counts() {
        return Err(format!("purge reported {report}, expected {}", fixture.expected));
    }
    verify_after_purge(backend, &fixture).await?;
    let again = backend
        .purge_user(victim)
        .await
        .map_err(|e| format!("a second purge_user failed: {e}"))?;
    if !again.is_empty() {
        return Err(format!("a second purge reported {again}, expected nothing"));
    }
    Ok(fixture)
}

/// User ids that must be refused before any request: empty, `.`, `..`, paths,
/// separators, query and quote characters, control characters, too long.
pub const HOSTILE_USER_IDS: &[&str] = &[
    "", ".", "..", "/", "a/b", "../x", "a\\b", "root:", ":", "a'b", "a\"b", "a%2Fb", "a#b", "a?b", "a*", "a\0b", "a\nb",
];
