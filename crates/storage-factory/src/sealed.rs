//! Credentials sealed at rest: a `CredentialStore` wrapper that encrypts the
//! credential JSON with XChaCha20-Poly1305 before the inner store sees it.

use std::fmt;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use storage_core::{Result, Secret, StorageError};
use zeroize::{Zeroize, Zeroizing};

use crate::store::{ConnectionStatus, CredentialStore, RefreshLock, StoredCredentials};

/// The envelope version this code writes, and the only one it reads.
const VERSION: &str = "v1";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const MAX_KID_LEN: usize = 64;

/// A 32-byte XChaCha20-Poly1305 key, wiped from memory when dropped.
///
/// `Debug` prints no key material. Keys are named by their id in
/// [`SealingKeys`], not here.
///
/// ```
/// use storage_factory::SealingKey;
///
/// // 32 random bytes in base64, e.g. from `head -c 32 /dev/urandom | base64`.
/// let key = SealingKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
/// assert_eq!(format!("{key:?}"), "SealingKey([redacted])");
/// assert!(SealingKey::from_base64("c2hvcnQ=").is_err());
/// ```
pub struct SealingKey(Zeroizing<[u8; KEY_LEN]>);

impl SealingKey {
    /// A key from its 32 bytes. The caller's copy is the caller's to wipe.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// A key from standard base64 (padding optional, surrounding whitespace
    /// ignored) of exactly 32 bytes.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for text that is not base64 or not 32
    /// bytes; the message never repeats the text.
    pub fn from_base64(text: &str) -> Result<Self> {
        let text = text.trim().trim_end_matches('=');
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD_NO_PAD
                .decode(text)
                .map_err(|_| StorageError::invalid_input("a sealing key is not valid base64"))?,
        );
        if decoded.len() != KEY_LEN {
            return Err(StorageError::invalid_input(format!(
                "a sealing key must be {KEY_LEN} bytes, this one has {}",
                decoded.len()
            )));
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&decoded);
        Ok(Self(key))
    }

    /// A new random key from the operating system.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the operating system has no randomness to give.
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(key.as_mut_slice())?;
        Ok(Self(key))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(Key::from_slice(self.0.as_slice()))
    }
}

impl fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealingKey([redacted])")
    }
}

/// The keys of a [`SealedStore`]: one primary key that seals every write,
/// and any number of old keys that still open blobs sealed before a rotation.
///
/// Each key has an id (1 to 64 ASCII letters, digits, `.`, `_` or `-`) that
/// every blob records, so a blob is opened with the key that sealed it.
/// `Debug` prints the ids only.
///
/// ```
/// use storage_factory::{SealingKey, SealingKeys};
///
/// let keys = SealingKeys::new(("2026-11", SealingKey::from_bytes([2; 32])))?
///     .with_old("2026-05", SealingKey::from_bytes([1; 32]))?;
/// assert_eq!(keys.primary_kid(), "2026-11");
/// assert_eq!(format!("{keys:?}"), r#"SealingKeys { primary: "2026-11", old: ["2026-05"] }"#);
/// # Ok::<(), storage_core::StorageError>(())
/// ```
pub struct SealingKeys {
    /// The primary key first, then the old keys in the order they were added.
    keys: Vec<(String, XChaCha20Poly1305)>,
}

impl SealingKeys {
    /// Keys with `primary` (its id and the key) sealing every write.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for an invalid key id.
    pub fn new(primary: (impl Into<String>, SealingKey)) -> Result<Self> {
        let (kid, key) = primary;
        let kid = valid_kid(kid.into())?;
        Ok(Self {
            keys: vec![(kid, key.cipher())],
        })
    }

    /// Adds a key that opens blobs sealed under `kid` but seals nothing.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for an invalid or repeated key id.
    pub fn with_old(mut self, kid: impl Into<String>, key: SealingKey) -> Result<Self> {
        let kid = valid_kid(kid.into())?;
        if self.cipher(&kid).is_some() {
            return Err(StorageError::invalid_input(format!(
                "the sealing key id `{kid}` is configured twice"
            )));
        }
        self.keys.push((kid, key.cipher()));
        Ok(self)
    }

    /// The id of the key that seals every write.
    pub fn primary_kid(&self) -> &str {
        &self.keys[0].0
    }

    /// Every configured key id, the primary first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(kid, _)| kid.as_str())
    }

    fn primary(&self) -> (&str, &XChaCha20Poly1305) {
        let (kid, cipher) = &self.keys[0];
        (kid, cipher)
    }

    fn cipher(&self, kid: &str) -> Option<&XChaCha20Poly1305> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, c)| c)
    }
}

impl fmt::Debug for SealingKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealingKeys")
            .field("primary", &self.primary_kid())
            .field("old", &self.kids().skip(1).collect::<Vec<_>>())
            .finish()
    }
}

fn valid_kid(kid: String) -> Result<String> {
    let ok = !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(kid)
    } else {
        Err(StorageError::invalid_input(
            "a sealing key id must be 1 to 64 ascii letters, digits, `.`, `_` or `-`",
        ))
    }
}

fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| {
        StorageError::io(
            "failed to draw random bytes from the operating system",
            std::io::Error::other(e.to_string()),
        )
    })
}

/// What a store holds for a sealed connection: a JSON object, so that it fits
/// a text or JSON column and the file store alike.
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The format version, [`VERSION`].
    sealed: String,
    /// The id of the key that sealed it.
    kid: String,
    /// The 24-byte nonce, base64.
    nonce: String,
    /// The ciphertext with its 16-byte tag, base64.
    ct: String,
}

/// The associated data: the format, the key id and the connection id, so that
/// a blob opens only for the row it was sealed for.
fn associated_data(kid: &str, connection_id: &str) -> Vec<u8> {
    // The key id holds no NUL byte and the connection id comes last, so the
    // encoding is unambiguous.
    let mut aad = Vec::with_capacity(32 + kid.len() + connection_id.len());
    aad.extend_from_slice(b"storage-factory sealed ");
    aad.extend_from_slice(VERSION.as_bytes());
    aad.push(0);
    aad.extend_from_slice(kid.as_bytes());
    aad.push(0);
    aad.extend_from_slice(connection_id.as_bytes());
    aad
}

/// A [`CredentialStore`] that seals the credential JSON before the inner store
/// sees it and opens it on the way back.
///
/// - The cipher is XChaCha20-Poly1305 (RustCrypto's audited
///   `chacha20poly1305`) with a random 192-bit nonce per write.
/// - The inner store holds a JSON object
///   `{"sealed":"v1","kid":"…","nonce":"…","ct":"…"}` in place of the
///   credential JSON, so any store that keeps a JSON object or a string keeps it.
/// - The connection id is bound as associated data: a blob copied to another
///   connection's row does not open.
/// - [`rekey`](Self::rekey) rewrites a blob sealed under an old key with the
///   primary key, so keys rotate without downtime: deploy the new key as primary
///   with the old one in [`SealingKeys::with_old`], rekey every connection,
///   then drop the old key.
/// - A wrong key, an unknown key id, a tampered blob or a blob that is not
///   sealed at all is [`StorageError::Integrity`]; nothing of the credentials is
///   returned and no message repeats them.
/// - [`set_status`](CredentialStore::set_status),
///   [`lock_refresh`](CredentialStore::lock_refresh) and
///   [`delete`](CredentialStore::delete) go to the inner store unchanged.
///
/// A new connection is stored with [`seal`](Self::seal), or through
/// [`save_credentials`](CredentialStore::save_credentials) on a store that
/// creates rows on save (the file store does). Existing plaintext rows are
/// migrated the same way: read them from the inner store, save them through the
/// sealed one.
///
/// ```
/// use std::sync::Arc;
/// use storage_core::Secret;
/// use storage_factory::{CredentialStore, MemoryCredentialStore, SealedStore, SealingKey, SealingKeys};
///
/// # async fn run() -> storage_core::Result<()> {
/// // In production the keys come from a secret manager, never from the database.
/// let old = SealingKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
/// let new = SealingKey::from_base64("ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=")?;
///
/// // Before the rotation: one key.
/// let before = SealedStore::new(MemoryCredentialStore::new(), SealingKeys::new(("k1", old))?);
/// let json = Secret::new(r#"{"provider":"memory"}"#);
/// before.inner().insert("conn-42", before.seal("conn-42", &json)?);
/// let row = before.inner().get("conn-42").unwrap();
/// assert!(row.json.expose().starts_with(r#"{"sealed":"v1","kid":"k1""#));
/// assert!(!row.json.expose().contains("memory"));
///
/// // After it: `k2` seals, `k1` still opens, and `rekey` moves the row to `k2`.
/// let old = SealingKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")?;
/// let keys = SealingKeys::new(("k2", new))?.with_old("k1", old)?;
/// let store = Arc::new(SealedStore::new(before.into_inner(), keys));
/// assert_eq!(store.load("conn-42").await?.json, json);
/// assert!(store.rekey("conn-42").await?);
/// assert!(store.inner().get("conn-42").unwrap().json.expose().contains(r#""kid":"k2""#));
/// assert_eq!(store.load("conn-42").await?.json, json);
///
/// // `factory.connect("conn-42", store)` opens the row on load and seals every refresh.
/// # Ok(())
/// # }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(run()).unwrap();
/// ```
pub struct SealedStore<S> {
    inner: S,
    keys: SealingKeys,
    /// Serialises this store's writes with [`rekey`](Self::rekey), so a rekey
    /// never writes back credentials older than a save that raced it.
    writes: tokio::sync::Mutex<()>,
}

impl<S: CredentialStore> SealedStore<S> {
    /// Seals what goes into `inner` with `keys`.
    pub fn new(inner: S, keys: SealingKeys) -> Self {
        Self {
            inner,
            keys,
            writes: tokio::sync::Mutex::new(()),
        }
    }

    /// The wrapped store, which holds only sealed blobs.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped store, dropping the keys.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The configured keys.
    pub fn keys(&self) -> &SealingKeys {
        &self.keys
    }

    /// Seals `json` for `connection_id` under the primary key: the text the
    /// inner store holds.
    ///
    /// # Errors
    /// [`StorageError::Io`] when the operating system has no randomness to give.
    pub fn seal(&self, connection_id: &str, json: &Secret) -> Result<Secret> {
        seal_text(&self.keys, connection_id, json)
    }

    /// Opens a blob that [`seal`](Self::seal) made for `connection_id`.
    ///
    /// # Errors
    /// [`StorageError::Integrity`] when the blob is not sealed, names a key id
    /// that is not configured, or fails authentication (a wrong key, a changed
    /// byte, or a blob sealed for another connection).
    pub fn unseal(&self, connection_id: &str, blob: &Secret) -> Result<Secret> {
        open_text(&self.keys, connection_id, blob)
    }

    /// Rewrites the connection's blob under the primary key when an old key
    /// sealed it; `Ok(true)` when it did, `Ok(false)` when the primary key
    /// already sealed it.
    ///
    /// It holds the inner store's [`lock_refresh`](CredentialStore::lock_refresh)
    /// while it reads and writes, so it never overwrites a refresh running in
    /// another process that shares the store.
    ///
    /// # Errors
    /// Those of [`unseal`](Self::unseal) and of the inner store; on an error the
    /// stored blob is unchanged.
    pub async fn rekey(&self, connection_id: &str) -> Result<bool> {
        let _lock = self.inner.lock_refresh(connection_id).await?;
        let _writes = self.writes.lock().await;
        let stored = self.inner.load(connection_id).await?;
        let envelope = parse_envelope(connection_id, &stored.json)?;
        if envelope.kid == self.keys.primary_kid() {
            return Ok(false);
        }
        let json = open_envelope(&self.keys, connection_id, &envelope)?;
        let blob = self.seal(connection_id, &json)?;
        self.inner.save_credentials(connection_id, &blob).await?;
        Ok(true)
    }
}

/// Seals `json` under the primary key of `keys`, bound to `connection_id` (the
/// associated data): what [`SealedStore::seal`] stores, and how the connect
/// flow seals a pending connect under a context of its own.
pub(crate) fn seal_text(keys: &SealingKeys, connection_id: &str, json: &Secret) -> Result<Secret> {
    let (kid, cipher) = keys.primary();
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let aad = associated_data(kid, connection_id);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: json.expose().as_bytes(),
                aad: &aad,
            },
        )
        .map_err(|_| StorageError::invalid_input("credentials too large to seal"))?;
    let envelope = Envelope {
        sealed: VERSION.to_owned(),
        kid: kid.to_owned(),
        nonce: B64.encode(nonce),
        ct: B64.encode(ct),
    };
    serde_json::to_string(&envelope)
        .map(Secret::new)
        .map_err(|_| StorageError::invalid_input("failed to encode sealed credentials"))
}

/// Opens what [`seal_text`] sealed for `connection_id`.
pub(crate) fn open_text(keys: &SealingKeys, connection_id: &str, blob: &Secret) -> Result<Secret> {
    let envelope = parse_envelope(connection_id, blob)?;
    open_envelope(keys, connection_id, &envelope)
}

fn open_envelope(keys: &SealingKeys, connection_id: &str, envelope: &Envelope) -> Result<Secret> {
    let cipher = keys.cipher(&envelope.kid).ok_or_else(|| {
        StorageError::integrity(format!(
            "the credentials of connection `{connection_id}` are sealed under key id `{}`, which is not configured",
            envelope.kid
        ))
    })?;
    let malformed = || {
        StorageError::integrity(format!(
            "the sealed credentials of connection `{connection_id}` are malformed"
        ))
    };
    let nonce = B64.decode(&envelope.nonce).map_err(|_| malformed())?;
    if nonce.len() != NONCE_LEN {
        return Err(malformed());
    }
    let ct = B64.decode(&envelope.ct).map_err(|_| malformed())?;
    let aad = associated_data(&envelope.kid, connection_id);
    let plain = cipher
        .decrypt(XNonce::from_slice(&nonce), Payload { msg: &ct, aad: &aad })
        .map_err(|_| {
            StorageError::integrity(format!(
                "the sealed credentials of connection `{connection_id}` failed authentication: \
                 a wrong key, a changed blob, or a blob sealed for another connection"
            ))
        })?;
    String::from_utf8(plain).map(Secret::new).map_err(|e| {
        e.into_bytes().zeroize();
        malformed()
    })
}

/// Whether `blob` is a sealed envelope of any format version (a JSON object
/// whose `sealed` key is a string), as opposed to plain credential JSON: what a
/// tool reading a store without keys can tell its user.
///
/// ```
/// use storage_factory::is_sealed;
/// assert!(is_sealed(&r#"{"sealed":"v1","kid":"k1","nonce":"","ct":""}"#.into()));
/// assert!(!is_sealed(&r#"{"provider":"memory"}"#.into()));
/// ```
pub fn is_sealed(blob: &Secret) -> bool {
    serde_json::from_str::<serde_json::Value>(blob.expose())
        .is_ok_and(|v| v.get("sealed").is_some_and(serde_json::Value::is_string))
}

fn parse_envelope(connection_id: &str, blob: &Secret) -> Result<Envelope> {
    // serde's messages can quote the input, which may be plaintext: say nothing of it.
    let not_sealed = || {
        StorageError::integrity(format!(
            "the stored credentials of connection `{connection_id}` are not sealed"
        ))
    };
    let envelope: Envelope = serde_json::from_str(blob.expose()).map_err(|_| not_sealed())?;
    if envelope.sealed != VERSION {
        return Err(StorageError::integrity(format!(
            "the credentials of connection `{connection_id}` use an unknown sealed format"
        )));
    }
    if valid_kid(envelope.kid.clone()).is_err() {
        return Err(StorageError::integrity(format!(
            "the sealed credentials of connection `{connection_id}` name an invalid key id"
        )));
    }
    Ok(envelope)
}

impl<S: fmt::Debug> fmt::Debug for SealedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedStore")
            .field("inner", &self.inner)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: CredentialStore> CredentialStore for SealedStore<S> {
    async fn load(&self, connection_id: &str) -> Result<StoredCredentials> {
        let stored = self.inner.load(connection_id).await?;
        Ok(StoredCredentials {
            json: self.unseal(connection_id, &stored.json)?,
            status: stored.status,
        })
    }

    async fn save_credentials(&self, connection_id: &str, json: &Secret) -> Result<()> {
        let _writes = self.writes.lock().await;
        let blob = self.seal(connection_id, json)?;
        self.inner.save_credentials(connection_id, &blob).await
    }

    async fn set_status(&self, connection_id: &str, status: ConnectionStatus) -> Result<()> {
        self.inner.set_status(connection_id, status).await
    }

    async fn store_connection(&self, connection_id: &str, json: &Secret) -> Result<()> {
        let _writes = self.writes.lock().await;
        let blob = self.seal(connection_id, json)?;
        self.inner.store_connection(connection_id, &blob).await
    }

    async fn lock_refresh(&self, connection_id: &str) -> Result<RefreshLock> {
        self.inner.lock_refresh(connection_id).await
    }

    async fn delete(&self, connection_id: &str) -> Result<()> {
        self.inner.delete(connection_id).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::store::MemoryCredentialStore;

    const JSON: &str = r#"{"provider":"onedrive","access_token":"at-secret","refresh_token":"rt-secret"}"#;

    fn keys(kid: &str, byte: u8) -> SealingKeys {
        SealingKeys::new((kid, SealingKey::from_bytes([byte; 32]))).unwrap()
    }

    fn store(kid: &str, byte: u8) -> SealedStore<MemoryCredentialStore> {
        SealedStore::new(MemoryCredentialStore::new(), keys(kid, byte))
    }

    fn integrity_message(err: StorageError) -> String {
        match err {
            StorageError::Integrity { message } => message,
            other => panic!("expected Integrity, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_round_trip_keeps_the_json_and_stores_none_of_it() {
        let s = store("k1", 1);
        s.inner().insert("c1", s.seal("c1", &Secret::new(JSON)).unwrap());
        assert_eq!(s.load("c1").await.unwrap().json.expose(), JSON);
        s.save_credentials("c1", &Secret::new(JSON.replace("at-secret", "at-2")))
            .await
            .unwrap();
        let raw = s.inner().get("c1").unwrap().json;
        for needle in ["secret", "at-2", "onedrive", "access_token"] {
            assert!(!raw.expose().contains(needle), "{needle} is in the stored blob");
        }
        let v: serde_json::Value = serde_json::from_str(raw.expose()).unwrap();
        assert_eq!(v["sealed"], "v1");
        assert_eq!(v["kid"], "k1");
        assert_eq!(B64.decode(v["nonce"].as_str().unwrap()).unwrap().len(), NONCE_LEN);
        assert!(s.load("c1").await.unwrap().json.expose().contains("at-2"));
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let s = store("k1", 1);
        let (a, b) = (
            s.seal("c1", &Secret::new(JSON)).unwrap(),
            s.seal("c1", &Secret::new(JSON)).unwrap(),
        );
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn a_wrong_key_is_an_integrity_error() {
        let a = store("k1", 1);
        let blob = a.seal("c1", &Secret::new(JSON)).unwrap();
        let b = store("k1", 2);
        b.inner().insert("c1", blob);
        let msg = integrity_message(b.load("c1").await.unwrap_err());
        assert!(msg.contains("failed authentication"), "{msg}");
        assert!(!msg.contains("secret"));
    }

    #[test]
    fn an_unknown_key_id_is_named() {
        let blob = store("k1", 1).seal("c1", &Secret::new(JSON)).unwrap();
        let msg = integrity_message(store("k2", 1).unseal("c1", &blob).unwrap_err());
        assert!(msg.contains("key id `k1`"), "{msg}");
    }

    #[test]
    fn every_flipped_bit_of_nonce_or_ciphertext_is_rejected() {
        let s = store("k1", 1);
        let blob = s.seal("c1", &Secret::new(JSON)).unwrap();
        let env: Envelope = serde_json::from_str(blob.expose()).unwrap();
        for field in ["nonce", "ct"] {
            let bytes = B64.decode(if field == "nonce" { &env.nonce } else { &env.ct }).unwrap();
            for bit in 0..bytes.len() * 8 {
                let mut changed = bytes.clone();
                changed[bit / 8] ^= 1 << (bit % 8);
                let mut v: serde_json::Value = serde_json::from_str(blob.expose()).unwrap();
                v[field] = B64.encode(&changed).into();
                let err = s.unseal("c1", &Secret::new(v.to_string())).unwrap_err();
                assert!(matches!(err, StorageError::Integrity { .. }), "{field} bit {bit}");
            }
        }
    }

    #[test]
    fn a_blob_moved_to_another_connection_does_not_open() {
        let s = store("k1", 1);
        let blob = s.seal("c1", &Secret::new(JSON)).unwrap();
        assert!(s.unseal("c1", &blob).is_ok());
        let msg = integrity_message(s.unseal("c2", &blob).unwrap_err());
        assert!(msg.contains("another connection"), "{msg}");
    }

    #[test]
    fn a_relabelled_kid_does_not_open() {
        // Both keys equal: only the associated data tells the key ids apart.
        let s = SealedStore::new(
            MemoryCredentialStore::new(),
            keys("k1", 1).with_old("k0", SealingKey::from_bytes([1; 32])).unwrap(),
        );
        let blob = s.seal("c1", &Secret::new(JSON)).unwrap();
        let relabelled = blob.expose().replace(r#""kid":"k1""#, r#""kid":"k0""#);
        assert_ne!(relabelled, blob.expose());
        assert!(matches!(
            s.unseal("c1", &Secret::new(relabelled)),
            Err(StorageError::Integrity { .. })
        ));
    }

    #[test]
    fn plaintext_and_malformed_blobs_are_rejected_without_echo() {
        let s = store("k1", 1);
        let good: serde_json::Value = serde_json::from_str(s.seal("c1", &Secret::new(JSON)).unwrap().expose()).unwrap();
        let mut bad_version = good.clone();
        bad_version["sealed"] = "v9".into();
        let mut bad_nonce = good.clone();
        bad_nonce["nonce"] = B64.encode([0u8; 12]).into();
        let mut not_b64 = good.clone();
        not_b64["ct"] = "!!!".into();
        let mut bad_kid = good;
        bad_kid["kid"] = "k 1\u{0}".into();
        for blob in [
            JSON.to_owned(),
            "not json at-secret".to_owned(),
            String::new(),
            bad_version.to_string(),
            bad_nonce.to_string(),
            not_b64.to_string(),
            bad_kid.to_string(),
        ] {
            let msg = integrity_message(s.unseal("c1", &Secret::new(blob.clone())).unwrap_err());
            assert!(!msg.contains("secret"), "{msg}");
            assert!(msg.starts_with("the "), "{msg}");
        }
    }

    #[tokio::test]
    async fn rekey_moves_old_blobs_to_the_primary_key() {
        let old = store("k1", 1);
        old.inner().insert("c1", old.seal("c1", &Secret::new(JSON)).unwrap());
        let rotated = keys("k2", 2).with_old("k1", SealingKey::from_bytes([1; 32])).unwrap();
        let s = SealedStore::new(old.into_inner(), rotated);
        assert_eq!(s.load("c1").await.unwrap().json.expose(), JSON);
        assert!(s.rekey("c1").await.unwrap());
        assert!(!s.rekey("c1").await.unwrap(), "already under the primary key");
        let blob = s.inner().get("c1").unwrap().json;
        assert!(blob.expose().contains(r#""kid":"k2""#));
        // Only the new key is needed from now on.
        let s = SealedStore::new(s.into_inner(), keys("k2", 2));
        assert_eq!(s.load("c1").await.unwrap().json.expose(), JSON);
    }

    #[tokio::test]
    async fn status_lock_and_delete_reach_the_inner_store() {
        let s = store("k1", 1);
        s.inner().insert("c1", s.seal("c1", &Secret::new(JSON)).unwrap());
        s.set_status("c1", ConnectionStatus::RequiresReauth).await.unwrap();
        assert_eq!(s.inner().get("c1").unwrap().status, ConnectionStatus::RequiresReauth);
        assert_eq!(s.load("c1").await.unwrap().status, ConnectionStatus::RequiresReauth);
        drop(s.lock_refresh("c1").await.unwrap());
        s.delete("c1").await.unwrap();
        assert!(s.inner().get("c1").is_none());
        assert!(matches!(s.load("c1").await, Err(StorageError::NotFound { .. })));
    }

    #[test]
    fn key_ids_are_checked() {
        for bad in ["", "a b", "k\u{0}", &"k".repeat(65), "ключ"] {
            assert!(
                SealingKeys::new((bad, SealingKey::from_bytes([1; 32]))).is_err(),
                "{bad:?}"
            );
        }
        let dup = keys("k1", 1).with_old("k1", SealingKey::from_bytes([2; 32]));
        assert!(matches!(dup, Err(StorageError::InvalidInput { .. })));
    }

    #[test]
    fn keys_parse_from_base64_and_never_print() {
        let key = SealingKey::from_base64(" AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        assert_eq!(key.0.as_slice(), (0u8..32).collect::<Vec<_>>().as_slice());
        assert!(SealingKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").is_ok());
        for bad in ["", "not base64!", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="] {
            let err = SealingKey::from_base64(bad).unwrap_err();
            assert!(matches!(err, StorageError::InvalidInput { .. }), "{bad:?}");
        }
        let generated = SealingKey::generate().unwrap();
        assert_ne!(generated.0.as_slice(), SealingKey::generate().unwrap().0.as_slice());
        let s = SealedStore::new(
            MemoryCredentialStore::new(),
            SealingKeys::new(("k2", SealingKey::from_bytes([0xAB; 32])))
                .unwrap()
                .with_old("k1", key)
                .unwrap(),
        );
        let debug = format!("{s:?} {:?} {generated:?}", s.keys());
        assert!(debug.contains("\"k2\"") && debug.contains("\"k1\""), "{debug}");
        for material in ["171", "0xab", "AB, AB", "AAECAwQF", "[0, 1, 2"] {
            assert!(!debug.contains(material), "{material} in {debug}");
        }
    }
}
