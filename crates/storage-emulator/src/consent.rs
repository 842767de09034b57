//! What the user does on a provider's consent screen, which the emulator's
//! authorize endpoints answer at once instead of showing a page.

use serde::{Deserialize, Serialize};

/// The user's answer on the consent screen, for every authorize request until
/// it is changed ([`EmulatorHandle::set_consent`](crate::EmulatorHandle::set_consent)).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "answer", content = "scopes")]
#[non_exhaustive]
pub enum Consent {
    /// "Allow", every scope asked for (the default).
    #[default]
    Allow,
    /// "Cancel": the redirect carries `error=access_denied` and no code, as
    /// both services document (Google:
    /// <https://developers.google.com/identity/protocols/oauth2/web-server#handlingresponse>;
    /// Microsoft, with AADSTS65004 "User declined to consent":
    /// <https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow#error-response>).
    Cancel,
    /// "Allow" with these scopes unticked: Google's granular consent lets a
    /// user grant some of the scopes asked for, and the code's grant (and the
    /// token answer's `scope`) then holds only the rest
    /// (<https://developers.google.com/identity/protocols/oauth2/resources/granular-permissions>).
    Untick(Vec<String>),
    /// "Allow", but the grant carries no refresh token, as Google answers an
    /// app the user already consented to when the request does not insist on
    /// a consent prompt
    /// (<https://developers.google.com/identity/protocols/oauth2/web-server#offline>).
    NoRefreshToken,
}

impl Consent {
    /// The scopes granted of those asked for (`scope`, space-separated).
    pub(crate) fn granted(&self, asked: &str) -> String {
        match self {
            Self::Untick(dropped) => asked
                .split(' ')
                .filter(|s| !s.is_empty() && !dropped.iter().any(|d| d == s))
                .collect::<Vec<_>>()
                .join(" "),
            _ => asked.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unticked_scopes_are_left_out() {
        let c = Consent::Untick(vec!["b".into()]);
        assert_eq!(c.granted("a b c"), "a c");
        assert_eq!(Consent::Allow.granted("a b"), "a b");
    }
}
