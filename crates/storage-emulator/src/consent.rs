//! What the user does on a provider's consent screen: answered at once as
//! [`Consent`] says, or, with a consent page, by the user in a browser.

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

/// The consent page the authorize endpoints show when the emulator runs with
/// [`EmulatorBuilder::consent_page`](crate::EmulatorBuilder::consent_page): an
/// account chooser (the one emulated account), a checkbox per scope for Google
/// (Microsoft asks for all or nothing), and "Allow" and "Cancel", which post
/// the form back to the same path. Every query parameter of the authorize
/// request rides along as a hidden field.
pub(crate) fn page(provider: &str, query: &[(String, String)], per_scope: bool) -> String {
    let hidden: String = query
        .iter()
        .map(|(k, v)| format!(r#"<input type="hidden" name="{}" value="{}">"#, escape(k), escape(v)))
        .collect();
    let scopes = crate::http_util::query_get(query, "scope").unwrap_or_default();
    let choices: String = if per_scope {
        scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| {
                format!(
                    r#"<label><input type="checkbox" name="grant" value="{0}" checked> {0}</label><br>"#,
                    escape(s)
                )
            })
            .collect()
    } else {
        format!("<p>Permissions: {}</p>", escape(scopes))
    };
    format!(
        r#"<!doctype html>
<html><head><meta charset="utf-8"><title>{provider} consent (storage-emulator)</title></head>
<body>
<h1>Sign in with {provider}</h1>
<form method="post">
{hidden}
<fieldset><legend>Choose an account</legend>
<label><input type="radio" name="account" value="user@emulator.invalid" checked> Emulator User (user@emulator.invalid)</label>
</fieldset>
<fieldset><legend>The application asks for</legend>
{choices}
</fieldset>
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="cancel" id="cancel">Cancel</button>
</form>
</body></html>
"#
    )
}

/// What the posted consent form says: "Cancel", or "Allow" with the scopes
/// left ticked (for a page with a checkbox per scope).
pub(crate) fn decision(form: &[(String, String)], per_scope: bool) -> Consent {
    if crate::http_util::query_get(form, "decision") != Some("allow") {
        return Consent::Cancel;
    }
    if !per_scope {
        return Consent::Allow;
    }
    let asked = crate::http_util::query_get(form, "scope").unwrap_or_default();
    let granted: Vec<&str> = form
        .iter()
        .filter(|(k, _)| k == "grant")
        .map(|(_, v)| v.as_str())
        .collect();
    let unticked: Vec<String> = asked
        .split(' ')
        .filter(|s| !s.is_empty() && !granted.contains(s))
        .map(str::to_owned)
        .collect();
    if unticked.is_empty() {
        Consent::Allow
    } else {
        Consent::Untick(unticked)
    }
}

/// Text for an HTML attribute or element.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
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

    #[test]
    fn the_page_carries_the_request_and_escapes_it() {
        let q = vec![
            ("scope".to_owned(), "a b".to_owned()),
            ("state".to_owned(), r#"x"><script>"#.to_owned()),
        ];
        let html = page("Google", &q, true);
        assert!(html.contains(r#"name="grant" value="a" checked"#));
        assert!(html.contains(r#"value="x&quot;&gt;&lt;script&gt;""#), "{html}");
        assert!(!html.contains("<script>"));
        assert!(html.contains(">Allow<") && html.contains(">Cancel<"));
    }

    #[test]
    fn the_form_decides() {
        let form = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            decision(&form(&[("decision", "cancel"), ("scope", "a b")]), true),
            Consent::Cancel
        );
        assert_eq!(decision(&form(&[("scope", "a b")]), true), Consent::Cancel);
        assert_eq!(
            decision(
                &form(&[("decision", "allow"), ("scope", "a b"), ("grant", "a"), ("grant", "b")]),
                true
            ),
            Consent::Allow
        );
        assert_eq!(
            decision(&form(&[("decision", "allow"), ("scope", "a b"), ("grant", "b")]), true),
            Consent::Untick(vec!["a".into()])
        );
        assert_eq!(
            decision(&form(&[("decision", "allow"), ("scope", "a b")]), false),
            Consent::Allow
        );
    }
}
