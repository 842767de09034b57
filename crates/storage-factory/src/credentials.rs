//! Credential JSON: parsing, checking and writing back.
//!
//! The JSON is tagged by `provider`; the other keys follow the original plan:
//!
//! ```json
//! {"provider":"gdrive","access_token":"…","refresh_token":"…","expiry":"2026-11-24T10:00:00Z","token_uri":"https://oauth2.googleapis.com/token","client_id":"…","client_secret":"…"}
//! {"provider":"onedrive","access_token":"…","refresh_token":"…","expires_at":"2026-11-24T10:00:00Z"}
//! {"provider":"local","root":"/var/lib/app/objects"}
//! {"provider":"memory"}
//! ```
//!
//! Every provider parses whatever cargo features are on, so that a credential
//! for a provider that is compiled out is reported as
//! [`FeatureDisabled`](StorageError::FeatureDisabled), not as bad JSON.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use storage_core::{Result, Secret, StorageError};

/// The providers credential JSON may name, in the order error messages list them.
pub const PROVIDERS: &[&str] = &["gdrive", "onedrive", "local", "memory"];

/// A parsed credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// Google Drive.
    Gdrive(GoogleCredentials),
    /// OneDrive.
    Onedrive(OneDriveCredentials),
    /// A local directory.
    Local {
        /// The root directory.
        root: String,
    },
    /// Memory of this process.
    Memory,
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Secret, D::Error> {
    String::deserialize(d).map(Secret::new)
}

fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Secret>, D::Error> {
    Ok(Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(Secret::new))
}

/// Google Drive credentials. `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GoogleCredentials {
    /// The access token.
    #[serde(deserialize_with = "secret")]
    pub access_token: Secret,
    /// The refresh token; without it the connection cannot be refreshed.
    #[serde(default, deserialize_with = "opt_secret")]
    pub refresh_token: Option<Secret>,
    /// When the access token expires.
    #[serde(default)]
    pub expiry: Option<DateTime<Utc>>,
    /// The token endpoint the grant belongs to; must equal the configured one.
    #[serde(default)]
    pub token_uri: Option<String>,
    /// The OAuth client id, when the JSON carries it.
    #[serde(default)]
    pub client_id: Option<String>,
    /// The OAuth client secret, when the JSON carries it.
    #[serde(default, deserialize_with = "opt_secret")]
    pub client_secret: Option<Secret>,
}

/// OneDrive credentials. The app's id, secret and tenant come from the
/// factory's configuration. `Debug` shows no secret.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OneDriveCredentials {
    /// The access token.
    #[serde(deserialize_with = "secret")]
    pub access_token: Secret,
    /// The refresh token; Microsoft rotates it on every refresh.
    #[serde(default, deserialize_with = "opt_secret")]
    pub refresh_token: Option<Secret>,
    /// When the access token expires.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct LocalJson {
    root: String,
}

/// Deserializes `value` as `T`, naming the key at fault but never its value.
fn typed<T: DeserializeOwned>(provider: &str, value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = if let Some(rest) = inner.strip_prefix("missing field `") {
            let key = rest.split('`').next().unwrap_or("");
            format!("{provider} credential json lacks the key `{key}`")
        } else if path == "." {
            format!("{provider} credential json has the wrong shape")
        } else {
            format!("{provider} credential json has an invalid value at key `{path}`")
        };
        StorageError::invalid_input(message)
    })
}

impl Credentials {
    /// Parses credential JSON.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for malformed JSON, a missing or unknown
    /// `provider` (the message lists the known ones) or a missing or invalid
    /// key (named, its value never echoed).
    ///
    /// ```
    /// use storage_factory::Credentials;
    /// let c = Credentials::parse(r#"{"provider":"memory"}"#)?;
    /// assert_eq!(c.provider(), "memory");
    /// let err = Credentials::parse(r#"{"provider":"dropbox","access_token":"secret-xyz"}"#).unwrap_err();
    /// assert!(err.to_string().contains("gdrive, onedrive, local, memory"));
    /// assert!(!err.to_string().contains("secret-xyz"));
    /// # Ok::<(), storage_core::StorageError>(())
    /// ```
    pub fn parse(json: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
            StorageError::invalid_input(format!("credential json does not parse ({})", e.classify_text()))
        })?;
        let provider = match value.get("provider") {
            Some(serde_json::Value::String(p)) => p.clone(),
            Some(_) => {
                return Err(StorageError::invalid_input(
                    "credential key `provider` must be a string",
                ));
            }
            None => return Err(StorageError::invalid_input("credential json lacks the key `provider`")),
        };
        match provider.as_str() {
            "gdrive" => Ok(Self::Gdrive(typed("gdrive", value)?)),
            "onedrive" => Ok(Self::Onedrive(typed("onedrive", value)?)),
            "local" => Ok(Self::Local {
                root: typed::<LocalJson>("local", value)?.root,
            }),
            "memory" => Ok(Self::Memory),
            _ => Err(StorageError::invalid_input(format!(
                "unknown provider in credential json; known providers: {}",
                PROVIDERS.join(", ")
            ))),
        }
    }

    /// The provider name, as in the JSON.
    pub fn provider(&self) -> &'static str {
        match self {
            Self::Gdrive(_) => "gdrive",
            Self::Onedrive(_) => "onedrive",
            Self::Local { .. } => "local",
            Self::Memory => "memory",
        }
    }

    /// When the access token expires, for the providers that have one.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Gdrive(g) => g.expiry,
            Self::Onedrive(o) => o.expires_at,
            _ => None,
        }
    }

    /// The access token, for the providers that have one.
    pub fn access_token(&self) -> Option<&Secret> {
        match self {
            Self::Gdrive(g) => Some(&g.access_token),
            Self::Onedrive(o) => Some(&o.access_token),
            _ => None,
        }
    }

    /// Writes the credential back as JSON, secrets included: for a credential store only.
    pub fn to_json(&self) -> Secret {
        let ts = |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let expose = |s: &Option<Secret>| s.as_ref().map(|s| s.expose().to_owned());
        let mut v = match self {
            Self::Gdrive(g) => serde_json::json!({
                "provider": "gdrive",
                "access_token": g.access_token.expose(),
                "refresh_token": expose(&g.refresh_token),
                "expiry": ts(&g.expiry),
                "token_uri": g.token_uri,
                "client_id": g.client_id,
                "client_secret": expose(&g.client_secret),
            }),
            Self::Onedrive(o) => serde_json::json!({
                "provider": "onedrive",
                "access_token": o.access_token.expose(),
                "refresh_token": expose(&o.refresh_token),
                "expires_at": ts(&o.expires_at),
            }),
            Self::Local { root } => serde_json::json!({"provider": "local", "root": root}),
            Self::Memory => serde_json::json!({"provider": "memory"}),
        };
        if let Some(map) = v.as_object_mut() {
            map.retain(|_, v| !v.is_null());
        }
        Secret::new(v.to_string())
    }
}

/// A short, value-free description of a JSON syntax error.
trait ClassifyText {
    fn classify_text(&self) -> String;
}

impl ClassifyText for serde_json::Error {
    fn classify_text(&self) -> String {
        format!(
            "{:?} error at line {} column {}",
            self.classify(),
            self.line(),
            self.column()
        )
        .to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GDRIVE: &str = r#"{"provider":"gdrive","access_token":"ya29.AAA","refresh_token":"1//rrr","expiry":"2026-11-24T10:00:00Z","token_uri":"https://oauth2.googleapis.com/token","client_id":"cid","client_secret":"csecret"}"#;
    const ONEDRIVE: &str =
        r#"{"provider":"onedrive","access_token":"eyJ0","refresh_token":"M.R3","expires_at":"2026-11-24T10:00:00Z"}"#;

    #[test]
    fn parses_every_shape_and_round_trips() {
        for json in [
            GDRIVE,
            ONEDRIVE,
            r#"{"provider":"local","root":"/tmp/x"}"#,
            r#"{"provider":"memory"}"#,
        ] {
            let c = Credentials::parse(json).unwrap();
            let again = Credentials::parse(c.to_json().expose()).unwrap();
            assert_eq!(c, again, "{json}");
        }
        let Credentials::Gdrive(g) = Credentials::parse(GDRIVE).unwrap() else {
            panic!()
        };
        assert_eq!(g.expiry.unwrap().to_rfc3339(), "2026-11-24T10:00:00+00:00");
        assert_eq!(g.client_secret.unwrap().expose(), "csecret");
    }

    #[test]
    fn errors_name_keys_and_never_values() {
        let e = Credentials::parse(r#"{"provider":"gdrive","refresh_token":"SECRET-R"}"#).unwrap_err();
        assert!(e.to_string().contains("`access_token`"), "{e}");
        assert!(!e.to_string().contains("SECRET-R"));
        let e =
            Credentials::parse(r#"{"provider":"gdrive","access_token":"SECRET-A","expiry":"not a date"}"#).unwrap_err();
        assert!(e.to_string().contains("`expiry`"), "{e}");
        assert!(
            !e.to_string().contains("not a date") && !e.to_string().contains("SECRET-A"),
            "{e}"
        );
        let e = Credentials::parse(r#"{"provider":"gdrive","access_token":"SECRET-A""#).unwrap_err();
        assert!(matches!(e, StorageError::InvalidInput { .. }));
        assert!(!e.to_string().contains("SECRET-A"), "{e}");
        let e = Credentials::parse(r#"{"access_token":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("`provider`"));
        let e = Credentials::parse(r#"{"provider":"s3"}"#).unwrap_err();
        assert!(e.to_string().contains("gdrive, onedrive, local, memory"), "{e}");
    }

    #[test]
    fn debug_hides_secrets() {
        for json in [GDRIVE, ONEDRIVE] {
            let dbg = format!("{:?}", Credentials::parse(json).unwrap());
            for secret in ["ya29.AAA", "1//rrr", "csecret", "eyJ0", "M.R3"] {
                assert!(!dbg.contains(secret), "{dbg}");
            }
        }
    }
}
