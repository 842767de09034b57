//! Validated object names and provider-native keys.

use std::fmt;

use crate::error::{Result, StorageError};
use crate::stored_name::{ESCAPE, ESCAPED_DOT, decode_part, encode_part};

/// The longest a name part may be, in bytes.
pub const MAX_PART_LEN: usize = 128;
/// The longest an extension may be after its dot, in characters.
pub const MAX_EXTENSION_LEN: usize = 16;

/// Characters that may never stand in a name part.
///
/// They close path injection in OneDrive's `root:/{path}:` addressing, quote
/// injection in Drive queries, and the characters that Windows-backed drives refuse.
/// `^` is the escape of the stored spelling ([`crate::stored_name`]).
const FORBIDDEN: &[char] = &['/', '\\', ':', '*', '?', '"', '<', '>', '|', '#', '%', '\'', ESCAPE];

/// The longest stored name component OneDrive takes, in characters.
pub const MAX_STORED_COMPONENT: usize = 255;
/// The longest stored path, `{user}/{file}` with its leading `/`, that OneDrive
/// takes, in characters ("the entire decoded file path must be fewer than 400
/// characters", Restrictions and limitations in OneDrive and SharePoint).
pub const MAX_STORED_PATH: usize = 399;

/// The validated parts of a provider-side name.
///
/// The provider file name is `{document_id}{extension}`, stored under a folder
/// named by `user_id`; it is never a human file name. Providers store the
/// spelling of [`crate::stored_name`] ([`ObjectName::stored_user`],
/// [`ObjectName::stored_file_name`]), so that two names that differ in any
/// byte, case included, never share an object or a folder.
///
/// ```
/// use storage_core::ObjectName;
///
/// let name = ObjectName::new("user-7", "doc-42", ".pdf")?;
/// assert_eq!(name.file_name(), "doc-42.pdf");
/// assert_eq!(name.path(), "user-7/doc-42.pdf");
/// assert_eq!(name.stored_path(), "user-7/doc-42.pdf");
/// let upper = ObjectName::new("User-7", "Doc-42", ".pdf")?;
/// assert_eq!(upper.stored_path(), "^user-7/^doc-42.pdf");
/// assert!(ObjectName::new("user-7", "../etc", ".pdf").is_err());
/// # Ok::<(), storage_core::StorageError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectName {
    user_id: String,
    document_id: String,
    extension: String,
}

impl ObjectName {
    /// Validates the parts, returning [`StorageError::InvalidInput`] on a bad one.
    ///
    /// # Errors
    /// A part that is empty, longer than [`MAX_PART_LEN`] bytes, `.` or `..`, or
    /// that holds a control character or one of `/ \ : * ? " < > | # % '`; an
    /// extension that is not empty or `.` followed by 1 to 16 ASCII alphanumerics;
    /// a part or file name that OneDrive reserves (see [`validate_part`]); a stored
    /// spelling longer than OneDrive takes ([`MAX_STORED_COMPONENT`] per part,
    /// [`MAX_STORED_PATH`] in all), which only names heavy with escaped letters reach.
    pub fn new(user_id: &str, document_id: &str, extension: &str) -> Result<Self> {
        validate_part("user_id", user_id)?;
        validate_part("document_id", document_id)?;
        validate_extension(extension)?;
        // The stored name as a whole, e.g. `desktop` + `.ini`.
        if let Some(p) = reserved_problem(&format!("{document_id}{extension}")) {
            return Err(StorageError::invalid_input(format!("file name {p}")));
        }
        let user = encode_part(user_id).chars().count();
        let file = encode_file_name(document_id, extension).chars().count();
        if user > MAX_STORED_COMPONENT || file > MAX_STORED_COMPONENT || user + file + 2 > MAX_STORED_PATH {
            return Err(StorageError::invalid_input(
                "name is too long once its capital letters are escaped for the provider; onedrive takes 255 characters a part and 399 a path",
            ));
        }
        Ok(Self {
            user_id: user_id.to_owned(),
            document_id: document_id.to_owned(),
            extension: extension.to_owned(),
        })
    }

    /// The user the object belongs to.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The document's identifier.
    pub fn document_id(&self) -> &str {
        &self.document_id
    }

    /// The extension, empty or starting with `.`.
    pub fn extension(&self) -> &str {
        &self.extension
    }

    /// `{document_id}{extension}`, the name the provider stores.
    pub fn file_name(&self) -> String {
        format!("{}{}", self.document_id, self.extension)
    }

    /// `{user_id}/{document_id}{extension}`.
    pub fn path(&self) -> String {
        format!("{}/{}{}", self.user_id, self.document_id, self.extension)
    }

    /// The user folder's name at the provider ([`crate::stored_name`]).
    pub fn stored_user(&self) -> String {
        encode_part(&self.user_id)
    }

    /// The file's name at the provider ([`crate::stored_name`]).
    ///
    /// A document id that ends in what looks like an extension (`v1.2`), stored
    /// with no extension, would read like document `v1` with extension `.2`; its
    /// last dot is written `^.` so the two stay apart.
    ///
    /// ```
    /// use storage_core::ObjectName;
    ///
    /// let stored = |d, e| ObjectName::new("u", d, e).unwrap().stored_file_name();
    /// assert_eq!(stored("doc-1", ".pdf"), "doc-1.pdf");
    /// assert_eq!(stored("Doc-1", ".PDF"), "^doc-1.^p^d^f");
    /// assert_eq!(stored("v1.2", ""), "v1^.2");
    /// assert_eq!(stored("v1", ".2"), "v1.2");
    /// ```
    pub fn stored_file_name(&self) -> String {
        encode_file_name(&self.document_id, &self.extension)
    }

    /// The name whose stored file name, in the folder of `user_id`, is
    /// `stored`: the inverse of [`ObjectName::stored_file_name`]. `None` for a
    /// file this library did not store (a temporary upload, a legacy or a
    /// foreign name), which a listing leaves out.
    ///
    /// ```
    /// use storage_core::ObjectName;
    ///
    /// for (doc, ext) in [("doc-1", ".pdf"), ("Doc-1", ".PDF"), ("v1.2", ""), ("v1", ".2"), ("Straße", "")] {
    ///     let name = ObjectName::new("u", doc, ext).unwrap();
    ///     assert_eq!(ObjectName::from_stored("u", &name.stored_file_name()), Some(name));
    /// }
    /// assert_eq!(ObjectName::from_stored("u", "Report.pdf"), None); // not a stored spelling
    /// assert_eq!(ObjectName::from_stored("u", "^^upload-1f"), None);
    /// ```
    #[must_use]
    pub fn from_stored(user_id: &str, stored: &str) -> Option<Self> {
        // The extension starts at the last dot that is not the escaped `^.`.
        let mut dot = None;
        let mut escaped = false;
        for (i, c) in stored.char_indices() {
            if escaped {
                escaped = false;
            } else if c == ESCAPE {
                escaped = true;
            } else if c == '.' {
                dot = Some(i);
            }
        }
        let split = dot.filter(|&i| i > 0).and_then(|i| {
            let ext = decode_part(&stored[i..])?;
            validate_extension(&ext).ok()?;
            Some((decode_part(&stored[..i])?, ext))
        });
        let (document_id, extension) = match split {
            Some(parts) => parts,
            None => (decode_part(stored)?, String::new()),
        };
        let name = Self::new(user_id, &document_id, &extension).ok()?;
        (name.stored_file_name() == stored).then_some(name)
    }

    /// `{stored_user}/{stored_file_name}`.
    pub fn stored_path(&self) -> String {
        format!("{}/{}", self.stored_user(), self.stored_file_name())
    }
}

/// Whether a document id would be read as carrying an extension: it ends in `.`
/// and 1 to 16 ASCII letters or digits; the offset of that dot.
fn extension_like_tail(document_id: &str) -> Option<usize> {
    let dot = document_id.rfind('.')?;
    let tail = &document_id[dot + 1..];
    let ok =
        dot > 0 && (1..=MAX_EXTENSION_LEN).contains(&tail.len()) && tail.bytes().all(|b| b.is_ascii_alphanumeric());
    ok.then_some(dot)
}

/// The stored file name of a document id and extension.
fn encode_file_name(document_id: &str, extension: &str) -> String {
    match extension_like_tail(document_id).filter(|_| extension.is_empty()) {
        Some(dot) => {
            let mut out = encode_part(&document_id[..dot]);
            out.push_str(ESCAPED_DOT);
            out.push_str(&encode_part(&document_id[dot + 1..]));
            out
        }
        None => encode_part(document_id) + &encode_part(extension),
    }
}

/// Checks a stored part (read from a key or a listing): it must read back
/// ([`decode_part`]) to a part that passes [`validate_part`].
///
/// # Errors
/// [`StorageError::InvalidInput`] naming `what`.
pub fn validate_stored_part(what: &str, stored: &str) -> Result<()> {
    let Some(original) = decode_part(stored) else {
        return Err(StorageError::invalid_input(format!(
            "{what} is not a stored name (a `^` escape is malformed)"
        )));
    };
    validate_part(what, &original)
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.user_id, self.document_id, self.extension)
    }
}

/// Checks one name part (a user id, a document id, or a stored file name) by the
/// rules of [`ObjectName::new`].
///
/// # Errors
/// [`StorageError::InvalidInput`] naming `what`; the value is not echoed when it
/// holds control characters.
pub fn validate_part(what: &str, value: &str) -> Result<()> {
    let problem = if value.is_empty() {
        Some("is empty")
    } else if value.len() > MAX_PART_LEN {
        Some("is longer than 128 bytes")
    } else if value == "." || value == ".." {
        Some("is `.` or `..`")
    } else if value.chars().any(char::is_control) {
        Some("holds a control character")
    } else if value.contains(FORBIDDEN) {
        Some("holds one of / \\ : * ? \" < > | # % ' ^")
    } else {
        reserved_problem(value)
    };
    match problem {
        Some(p) => Err(StorageError::invalid_input(format!("{what} {p}"))),
        None => Ok(()),
    }
}

/// Names OneDrive refuses although their characters are fine: leading or
/// trailing whitespace, a trailing `.`, a leading `~` (OneDrive for Business), `_vti_`, the Windows
/// device names (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`, `LPT0`–`LPT9`, with
/// any extension), `.lock` and `desktop.ini`. Sources: OneDrive "Addressing
/// items" and "Restrictions and limitations in OneDrive and SharePoint". They are
/// refused for every backend, so that a name one backend takes every backend
/// takes (found by the `hostile_input` property test: such names reached Graph
/// and came back as a 400).
fn reserved_problem(name: &str) -> Option<&'static str> {
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Some("begins or ends with whitespace");
    }
    if name.ends_with('.') {
        return Some("ends with `.`");
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with('~') || lower.contains("_vti_") {
        return Some("holds a pattern onedrive reserves (a leading `~`, `_vti_`)");
    }
    let stem = lower.split('.').next().unwrap_or_default();
    let device = matches!(stem, "con" | "prn" | "aux" | "nul")
        || stem.len() == 4
            && (stem.starts_with("com") || stem.starts_with("lpt"))
            && stem.as_bytes()[3].is_ascii_digit();
    if device || lower == ".lock" || lower == "desktop.ini" {
        return Some("is a name onedrive reserves");
    }
    None
}

fn validate_extension(ext: &str) -> Result<()> {
    if ext.is_empty() {
        return Ok(());
    }
    let ok = ext.strip_prefix('.').is_some_and(|rest| {
        (1..=MAX_EXTENSION_LEN).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(
            "extension must be empty or `.` followed by 1 to 16 ascii letters or digits",
        ))
    }
}

/// A provider-native handle returned by `put`: a Drive file id, a OneDrive item
/// id, or a local relative path.
///
/// Backends validate a key before it reaches a URL or a path.
///
/// ```
/// use storage_core::ObjectKey;
///
/// let key = ObjectKey::new("1AbC");
/// assert_eq!(key.as_str(), "1AbC");
/// assert_eq!(key.to_string(), "1AbC");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Wraps a provider-native key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unwraps the key.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for ObjectKey {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for ObjectKey {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(user: &str, doc: &str, ext: &str) -> bool {
        matches!(ObjectName::new(user, doc, ext), Err(StorageError::InvalidInput { .. }))
    }

    #[test]
    fn accepts_ordinary_names() {
        let n = ObjectName::new("u1", "d_1-x.y", ".PDF").unwrap();
        assert_eq!(n.file_name(), "d_1-x.y.PDF");
        assert_eq!(n.to_string(), "u1/d_1-x.y.PDF");
        assert!(ObjectName::new("u", "d", "").is_ok());
        assert!(ObjectName::new("ü", "日本", ".txt").is_ok());
        assert!(ObjectName::new(&"a".repeat(128), "d", ".abcdefghij123456").is_ok());
    }

    #[test]
    fn rejects_every_forbidden_character_in_every_part() {
        for c in FORBIDDEN {
            let bad = format!("a{c}b");
            assert!(invalid(&bad, "d", ""), "user {bad}");
            assert!(invalid("u", &bad, ""), "document {bad}");
        }
    }

    #[test]
    fn rejects_bad_parts() {
        assert!(invalid("", "d", ""));
        assert!(invalid("u", "", ""));
        assert!(invalid(".", "d", ""));
        assert!(invalid("u", "..", ""));
        assert!(invalid("u\n", "d", ""));
        assert!(invalid("u", "d\u{7f}", ""));
        assert!(invalid("u", "d\u{0}", ""));
        assert!(invalid(&"a".repeat(129), "d", ""));
        // 128 bytes is the limit, counted in bytes, not characters.
        assert!(invalid(&"é".repeat(65), "d", ""));
    }

    #[test]
    fn rejects_bad_extensions() {
        for ext in [
            "pdf",
            ".",
            ".p-f",
            ".p df",
            ".abcdefghij1234567",
            "..pdf",
            ".pdf/",
            ".é",
        ] {
            assert!(invalid("u", "d", ext), "{ext:?}");
        }
    }

    #[test]
    fn rejects_names_onedrive_reserves() {
        for (user, doc, ext) in [
            (" u", "d", ""),
            ("u ", "d", ""),
            ("u", "d\u{3000}", ""),
            ("u.", "d", ""),
            ("...", "d", ""),
            ("u", "d.", ""),
            ("u", "~$d", ""),
            ("u", "~d", ""),
            ("~u", "d", ""),
            ("u", "a_vti_b", ""),
            ("CON", "d", ""),
            ("u", "com1", ".txt"),
            ("u", "Lpt9.x", ""),
            ("u", "desktop", ".ini"),
            ("u", ".lock", ""),
        ] {
            assert!(invalid(user, doc, ext), "{user:?} {doc:?} {ext:?}");
        }
        for (user, doc, ext) in [
            ("u.x", "d", ""),
            ("u", "console", ".txt"),
            ("u", "com10", ""),
            ("u", "a b", ""),
        ] {
            assert!(!invalid(user, doc, ext), "{user:?} {doc:?} {ext:?}");
        }
    }

    #[test]
    fn stored_names_that_would_be_too_long_are_refused() {
        // 128 bytes of capitals double when escaped.
        assert!(ObjectName::new(&"A".repeat(127), "d", "").is_ok());
        assert!(invalid(&"A".repeat(128), "d", ""));
        assert!(invalid("u", &"ß".repeat(64), ""));
        // Each part fits, the path does not.
        assert!(invalid(&"A".repeat(120), &"B".repeat(120), ""));
        assert!(ObjectName::new(&"a".repeat(128), &"b".repeat(128), ".abcdefghij123456").is_ok());
    }

    #[test]
    fn stored_file_names_keep_document_and_extension_apart() {
        let pairs = [
            ("v1.2", ""),
            ("v1", ".2"),
            ("a.pdf", ""),
            ("a", ".pdf"),
            ("A", ".pdf"),
            ("a", ".PDF"),
        ];
        for (i, a) in pairs.iter().enumerate() {
            for b in &pairs[i + 1..] {
                let (ea, eb) = (encode_file_name(a.0, a.1), encode_file_name(b.0, b.1));
                assert_ne!(ea.to_lowercase(), eb.to_lowercase(), "{a:?} ~ {b:?}");
            }
        }
        assert_eq!(encode_file_name("doc-42", ""), "doc-42");
        assert_eq!(encode_file_name("a.b-c", ""), "a.b-c");
        assert_eq!(decode_part(&encode_file_name("v1.2", "")).as_deref(), Some("v1.2"));
    }

    #[test]
    fn errors_name_the_part() {
        let err = ObjectName::new("u", "a/b", "").unwrap_err();
        assert!(err.to_string().contains("document_id"), "{err}");
    }
}
