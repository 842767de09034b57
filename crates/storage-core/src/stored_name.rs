//! How an [`ObjectName`](crate::ObjectName) is spelled at a provider: an encoding
//! that survives case-insensitive name matching.
//!
//! OneDrive paths ignore case (`root:/u/Report.pdf:` and `root:/u/report.pdf:`
//! address one item), and Drive's `name = '…'` query ignores case although Drive
//! keeps both names. Stored raw, `Report` and `report` would share an object, and
//! users `Alice` and `alice` a folder. So every character whose case can change is
//! written with a `^` escape, and `^` is refused in names:
//!
//! | original | stored | rule |
//! |---|---|---|
//! | `report-7.pdf` | `report-7.pdf` | lower case, digits, punctuation and uncased scripts stay as they are |
//! | `Report.PDF` | `^report.^p^d^f` | an upper-case letter is `^` and its lower-case letter |
//! | `Straße` | `^stra^_df_e` | a letter whose case does not round-trip one-to-one is `^_{hex code point}_` |
//! | `v1.2` with no extension | `v1^.2` | see below ([`ObjectName::stored_file_name`](crate::ObjectName::stored_file_name)) |
//!
//! The stored form holds no letter that has an upper-case partner other than its own
//! lower-case self, so two stored forms that differ in any character still differ
//! when a provider compares them without regard to case. The encoding is a
//! prefix-free code, hence injective; names in lower case keep their old spelling,
//! so data stored before the encoding stays where it is. The decoder reads only the
//! escapes the encoder writes, so a part read from a key has one spelling (`^‰`
//! is not a second way to write `‰`).
//!
//! A document id that ends in something that looks like an extension (`v1.2`), stored
//! with no extension, would read like document `v1` with extension `.2`; its last
//! dot is written `^.` so the two stay apart.

use std::fmt::Write as _;

/// The escape character; refused in every name part.
pub(crate) const ESCAPE: char = '^';

/// A dot that does not begin an extension.
pub(crate) const ESCAPED_DOT: &str = "^.";

/// Whether `c` can stand for itself: it has no case, or it is a lower-case letter
/// whose upper case is one character that lowers back to `c`.
fn stands_for_itself(c: char) -> bool {
    if c == ESCAPE {
        return false;
    }
    let mut lower = c.to_lowercase();
    if lower.next() != Some(c) || lower.next().is_some() {
        return false;
    }
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) if u == c => true,
        (Some(u), None) => {
            let mut back = u.to_lowercase();
            back.next() == Some(c) && back.next().is_none()
        }
        _ => false,
    }
}

/// The lower-case partner of an upper-case letter, when `^` + that letter names it
/// unambiguously.
fn simple_lower(c: char) -> Option<char> {
    let mut lower = c.to_lowercase();
    let l = lower.next()?;
    if lower.next().is_some() || !stands_for_itself(l) {
        return None;
    }
    let mut upper = l.to_uppercase();
    (upper.next() == Some(c) && upper.next().is_none()).then_some(l)
}

fn push_encoded(out: &mut String, c: char) {
    if stands_for_itself(c) {
        out.push(c);
    } else if let Some(l) = simple_lower(c) {
        out.push(ESCAPE);
        out.push(l);
    } else {
        // Writing to a String cannot fail.
        let _ = write!(out, "{ESCAPE}_{:x}_", u32::from(c));
    }
}

/// The stored spelling of one name part (a user id, or a file name without the
/// extension rule): see the [module docs](self).
///
/// ```
/// use storage_core::stored_name::encode_part;
///
/// assert_eq!(encode_part("alice"), "alice");
/// assert_eq!(encode_part("Alice"), "^alice");
/// assert_ne!(encode_part("Alice").to_lowercase(), encode_part("alice").to_lowercase());
/// ```
pub fn encode_part(part: &str) -> String {
    let mut out = String::with_capacity(part.len() + 8);
    for c in part.chars() {
        push_encoded(&mut out, c);
    }
    out
}

/// Reads a stored part back; `None` when it is not a well-formed stored part.
///
/// A part stored before the encoding (say `Alice`, from an older version) reads
/// back as itself: characters outside an escape pass through.
///
/// ```
/// use storage_core::stored_name::{decode_part, encode_part};
///
/// for name in ["alice", "Alice", "Straße", "ǅemal", "日本"] {
///     assert_eq!(decode_part(&encode_part(name)).as_deref(), Some(name));
/// }
/// assert_eq!(decode_part("^"), None);
/// ```
pub fn decode_part(stored: &str) -> Option<String> {
    let mut out = String::with_capacity(stored.len());
    let mut chars = stored.chars();
    while let Some(c) = chars.next() {
        if c != ESCAPE {
            out.push(c);
            continue;
        }
        match chars.next()? {
            // Only the escapes `push_encoded` writes are read, so that a part has
            // one spelling: not `^_41_` for `^a`, `^_0df_` for `^_df_`, nor `^‰`
            // for `‰`.
            '_' => {
                let hex: String = chars.by_ref().take_while(|&h| h != '_').collect();
                if hex.is_empty() || hex.len() > 6 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return None;
                }
                let c = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                if hex.starts_with('0') || stands_for_itself(c) || simple_lower(c).is_some() {
                    return None;
                }
                out.push(c);
            }
            '.' => out.push('.'),
            l => {
                let mut upper = l.to_uppercase();
                let u = upper.next()?;
                if upper.next().is_some() || u == l || simple_lower(u) != Some(l) {
                    return None;
                }
                out.push(u);
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A provider that compares names without regard to case, by any folding.
    fn fold(s: &str) -> String {
        s.to_lowercase()
    }

    fn fold_upper(s: &str) -> String {
        s.to_uppercase()
    }

    #[test]
    fn lower_case_names_keep_their_spelling() {
        for name in ["alice", "doc-42", "u_1.x", "日本", "ü", "a b", "100"] {
            assert_eq!(encode_part(name), name);
        }
    }

    #[test]
    fn names_differing_only_in_case_stay_apart_under_any_folding() {
        let names = [
            "report", "Report", "REPORT", "rEport", "straße", "STRASSE", "strasse", "Straße", "ǆ", "ǅ", "Ǆ", "σ", "ς",
            "Σ", "k", "K", "\u{212a}", "i", "I", "ı", "İ", "ſ", "s", "S", "ﬀ", "ff", "FF",
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let (ea, eb) = (encode_part(a), encode_part(b));
                assert_ne!(fold(&ea), fold(&eb), "{a} ~ {b}: {ea} ~ {eb}");
                assert_ne!(fold_upper(&ea), fold_upper(&eb), "{a} ~ {b}: {ea} ~ {eb}");
            }
        }
    }

    #[test]
    fn every_part_round_trips() {
        for name in ["Report", "Straße", "İstanbul", "\u{212a}elvin", "ǅ", "ﬀ", "Ωmega", "x"] {
            assert_eq!(decode_part(&encode_part(name)).as_deref(), Some(name), "{name}");
        }
    }

    /// Every escape names one character one way: `^‰` (an escape before a
    /// character without case), `^_41_` (the hex form of a letter `^a` names) and
    /// `^_0e9_` (a leading zero) are refused, so a part has one spelling.
    #[test]
    fn escapes_that_are_not_the_encoding_are_refused() {
        for bad in [
            "^‰", "^1", "^-", "^_41_", "^_61_", "^_e9_", "^_0df_", "^_DF_", "^_2030_",
        ] {
            assert_eq!(decode_part(bad), None, "{bad}");
        }
        for c in ['A', 'ß', 'ǅ', 'İ', '\u{212a}', '‰', 'a', '1'] {
            let stored = encode_part(&c.to_string());
            assert_eq!(decode_part(&stored), Some(c.to_string()), "{c}");
        }
    }

    #[test]
    fn malformed_stored_parts_are_refused() {
        for bad in ["^", "a^", "^_", "^__", "^_zz_", "^_110000_", "^_1234567_", "^A"] {
            assert_eq!(decode_part(bad), None, "{bad}");
        }
    }
}
