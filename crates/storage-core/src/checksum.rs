//! Content hashes: md5 (Google Drive, local) and quickXorHash (OneDrive).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::Digest as _;

/// A content hash as a provider reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Checksum {
    /// MD5, as Drive's `md5Checksum` (lowercase hex).
    Md5([u8; 16]),
    /// Microsoft's quickXorHash, as Graph's `file.hashes.quickXorHash` (base64).
    QuickXor([u8; 20]),
}

impl Checksum {
    /// The md5 of `data`.
    ///
    /// ```
    /// use storage_core::Checksum;
    /// assert_eq!(Checksum::md5_of(b"").to_string(), "md5:d41d8cd98f00b204e9800998ecf8427e");
    /// ```
    pub fn md5_of(data: &[u8]) -> Self {
        Self::Md5(md5::Md5::digest(data).into())
    }

    /// The quickXorHash of `data`.
    pub fn quick_xor_of(data: &[u8]) -> Self {
        let mut h = QuickXorHasher::new();
        h.update(data);
        h.finish()
    }

    /// Parses Drive's lowercase-hex `md5Checksum`.
    pub fn from_md5_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            out[i] = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Self::Md5(out))
    }

    /// Parses Graph's base64 `quickXorHash`.
    pub fn from_quick_xor_base64(text: &str) -> Option<Self> {
        let bytes = BASE64.decode(text).ok()?;
        Some(Self::QuickXor(bytes.try_into().ok()?))
    }

    /// The hash in the provider's own text form: hex for md5, base64 for quickXorHash.
    pub fn to_provider_string(&self) -> String {
        match self {
            Self::Md5(d) => d.iter().map(|b| format!("{b:02x}")).collect(),
            Self::QuickXor(d) => BASE64.encode(d),
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let algo = match self {
            Self::Md5(_) => "md5",
            Self::QuickXor(_) => "quickxor",
        };
        write!(f, "{algo}:{}", self.to_provider_string())
    }
}

/// An incremental md5, for hashing a stream as it passes.
#[derive(Debug, Clone, Default)]
pub struct Md5Hasher(md5::Md5);

impl Md5Hasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The hash of everything fed.
    pub fn finish(self) -> Checksum {
        Checksum::Md5(self.0.finalize().into())
    }
}

const QX_WIDTH_BITS: usize = 160;
const QX_SHIFT: usize = 11;

/// Microsoft's quickXorHash, computed incrementally.
///
/// Each input byte is XORed into a 160-bit ring at bit `(11 · i) mod 160`, and
/// the total length (little-endian `u64`) is XORed into the last 8 bytes. Since a
/// byte's bit position depends only on `i mod 160`, the hasher keeps one XOR
/// accumulator per residue and places them on the ring once, at the end; the
/// per-byte cost is one XOR.
///
/// Source: Microsoft, "QuickXorHash" code snippet in the OneDrive API docs
/// (`docs/code-snippets/quickxorhash.md`, github.com/OneDrive/onedrive-api-docs).
///
/// ```
/// use storage_core::{Checksum, QuickXorHasher};
/// let mut h = QuickXorHasher::new();
/// h.update(b"J");
/// assert_eq!(h.finish().to_provider_string(), "SgAAAAAAAAAAAAAAAQAAAAAAAAA=");
/// ```
#[derive(Debug, Clone)]
pub struct QuickXorHasher {
    lanes: [u8; QX_WIDTH_BITS],
    len: u64,
}

impl Default for QuickXorHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl QuickXorHasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self {
            lanes: [0; QX_WIDTH_BITS],
            len: 0,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        // `len % 160` fits in usize on every platform.
        let mut lane = usize::try_from(self.len % QX_WIDTH_BITS as u64).unwrap_or(0);
        let mut rest = data;
        // Align to a lane-0 boundary, then XOR whole 160-byte rows.
        while lane != 0 && !rest.is_empty() {
            self.lanes[lane] ^= rest[0];
            rest = &rest[1..];
            lane = (lane + 1) % QX_WIDTH_BITS;
        }
        let mut rows = rest.chunks_exact(QX_WIDTH_BITS);
        for row in &mut rows {
            for (acc, b) in self.lanes.iter_mut().zip(row) {
                *acc ^= b;
            }
        }
        for (acc, b) in self.lanes.iter_mut().zip(rows.remainder()) {
            *acc ^= b;
        }
        self.len = self.len.wrapping_add(data.len() as u64);
    }

    /// The hash of everything fed.
    pub fn finish(&self) -> Checksum {
        let mut ring = [0u8; QX_WIDTH_BITS / 8];
        for (residue, &byte) in self.lanes.iter().enumerate() {
            if byte == 0 {
                continue;
            }
            let bit = (residue * QX_SHIFT) % QX_WIDTH_BITS;
            // Spread the 8 bits over the ring, wrapping at 160.
            let value = u16::from(byte) << (bit % 8);
            let first = bit / 8;
            ring[first] ^= (value & 0xff) as u8;
            ring[(first + 1) % ring.len()] ^= (value >> 8) as u8;
        }
        for (slot, b) in ring[QX_WIDTH_BITS / 8 - 8..].iter_mut().zip(self.len.to_le_bytes()) {
            *slot ^= b;
        }
        Checksum::QuickXor(ring)
    }
}

/// Which hash an upload window or a verified download computes as bytes pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashKind {
    /// md5, as Google Drive reports.
    Md5,
    /// quickXorHash, as OneDrive reports.
    QuickXor,
}

/// An incremental hasher of either kind.
#[derive(Debug, Clone)]
pub(crate) enum AnyHasher {
    Md5(Md5Hasher),
    QuickXor(QuickXorHasher),
}

impl AnyHasher {
    pub(crate) fn new(kind: HashKind) -> Self {
        match kind {
            HashKind::Md5 => Self::Md5(Md5Hasher::new()),
            HashKind::QuickXor => Self::QuickXor(QuickXorHasher::new()),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => h.update(data),
            Self::QuickXor(h) => h.update(data),
        }
    }

    pub(crate) fn finish(&self) -> Checksum {
        match self {
            Self::Md5(h) => h.clone().finish(),
            Self::QuickXor(h) => h.finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vectors published with rclone's quickxorhash tests (input, hash), both base64.
    const VECTORS: &[(&str, &str)] = &[
        ("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
        ("tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
        ("0pZP", "0rDEEwAAAAAAAAAAAwAAAAAAAAA="),
        ("jRRDVA==", "jaDAEKgAAAAAAAAABAAAAAAAAAA="),
        ("eAV52qE=", "eChAHrQRCgAAAAAABQAAAAAAAAA="),
        ("luBZlaT6", "lgBHFipBCn0AAAAABgAAAAAAAAA="),
        ("qaApEj66lw==", "qQBFCiTgA11cAgAABwAAAAAAAAA="),
        ("/aNzzCFPS/A=", "/RjFHJgRgicsAR4ACAAAAAAAAAA="),
    ];

    /// Bit-by-bit restatement of the algorithm, to check the lane shortcut on long inputs.
    fn naive(data: &[u8]) -> [u8; 20] {
        let mut ring = [0u8; 20];
        for (i, &b) in data.iter().enumerate() {
            let start = (i * QX_SHIFT) % QX_WIDTH_BITS;
            for k in 0..8 {
                if b >> k & 1 == 1 {
                    let pos = (start + k) % QX_WIDTH_BITS;
                    ring[pos / 8] ^= 1 << (pos % 8);
                }
            }
        }
        for (i, b) in (data.len() as u64).to_le_bytes().iter().enumerate() {
            ring[12 + i] ^= b;
        }
        ring
    }

    #[test]
    fn published_vectors() {
        for (input, expected) in VECTORS {
            let data = BASE64.decode(input).unwrap();
            assert_eq!(
                Checksum::quick_xor_of(&data).to_provider_string(),
                *expected,
                "input {input}"
            );
        }
    }

    #[test]
    fn long_inputs_split_anywhere_match_the_naive_form() {
        let mut rng = fastrand::Rng::with_seed(7);
        for len in [159, 160, 161, 1000, 65_537] {
            let data: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let expected = Checksum::QuickXor(naive(&data));
            assert_eq!(Checksum::quick_xor_of(&data), expected, "len {len}");
            let cut = rng.usize(..=len);
            let mut h = QuickXorHasher::new();
            h.update(&data[..cut]);
            h.update(&data[cut..]);
            assert_eq!(h.finish(), expected, "len {len} cut {cut}");
        }
    }

    #[test]
    fn md5_hex_round_trip() {
        let sum = Checksum::md5_of(b"hello");
        let hex = sum.to_provider_string();
        assert_eq!(hex, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(Checksum::from_md5_hex(&hex), Some(sum));
        assert_eq!(Checksum::from_md5_hex("zz"), None);
        let mut h = Md5Hasher::new();
        h.update(b"hel");
        h.update(b"lo");
        assert_eq!(h.finish(), sum);
    }

    #[test]
    fn quick_xor_base64_round_trip() {
        let sum = Checksum::quick_xor_of(b"abc");
        assert_eq!(Checksum::from_quick_xor_base64(&sum.to_provider_string()), Some(sum));
        assert_eq!(Checksum::from_quick_xor_base64("AAAA"), None);
    }
}
