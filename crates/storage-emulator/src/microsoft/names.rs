//! OneDrive name rules.
//!
//! Source: "Addressing items" / invalid file names,
//! github.com/OneDrive/onedrive-api-docs `docs/rest-api/concepts/addressing-driveitems.md`
//! (reserved characters `/ \ * < > ? : |`, leading `~`, trailing `.`), and
//! <https://support.microsoft.com/office/restrictions-and-limitations-in-onedrive-and-sharepoint-64883a5d-228e-48f5-b3d2-eb39e07630fa>
//! (`"` is also invalid; reserved names `.lock`, `CON`, `PRN`, `AUX`, `NUL`, `COM0`-`COM9`,
//! `LPT0`-`LPT9`, `_vti_`, `desktop.ini`, names starting `~$`; 255 characters per component).
//! Leading and trailing spaces are rejected as rclone's OneDrive encoder assumes
//! (github.com/rclone/rclone `backend/onedrive/onedrive.go`).

/// Why a name is refused, or `None` when it is acceptable.
pub(crate) fn invalid_reason(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("Name cannot be empty.");
    }
    if name.chars().count() > 255 {
        return Some("Name is too long.");
    }
    if name
        .chars()
        .any(|c| matches!(c, '/' | '\\' | '*' | '<' | '>' | '?' | ':' | '|' | '"') || c.is_control())
    {
        return Some("Name contains invalid characters.");
    }
    if name.starts_with(' ') || name.ends_with(' ') || name.ends_with('.') {
        return Some("Name cannot begin or end with a space or end with a period.");
    }
    if name.starts_with("~$") || name.contains("_vti_") {
        return Some("Name contains a reserved pattern.");
    }
    // A leading `~` is refused on OneDrive for Business (addressing-driveitems.md above); the
    // emulated drive is a Business one (`store::DRIVE_TYPE`).
    if name.starts_with('~') {
        return Some("Name cannot begin with a tilde.");
    }
    let lower = name.to_ascii_lowercase();
    let stem = lower.split('.').next().unwrap_or_default();
    let reserved_device = matches!(stem, "con" | "prn" | "aux" | "nul")
        || ((stem.starts_with("com") || stem.starts_with("lpt"))
            && stem.len() == 4
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved_device || lower == ".lock" || lower == "desktop.ini" {
        return Some("Name is a reserved name.");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        for ok in ["a.txt", "a&amp;b c#.txt", "100%.bin", "dir one", "Ünïcode"] {
            assert_eq!(invalid_reason(ok), None, "{ok}");
        }
        for bad in [
            "",
            "a:b",
            "a?b",
            "a\"b",
            "a|b",
            " lead",
            "trail ",
            "dot.",
            "~$tmp",
            "~tmp",
            "CON",
            "com1.txt",
            "desktop.ini",
            "x_vti_y",
            "a/b",
        ] {
            assert!(invalid_reason(bad).is_some(), "{bad}");
        }
    }
}
