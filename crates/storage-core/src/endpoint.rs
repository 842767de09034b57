//! The rule every provider endpoint follows: secrets never cross a network in
//! clear text, and an endpoint URL carries nothing but a location.

use url::Url;

use crate::error::{Result, StorageError};

/// Whether `url` names this machine: `localhost` or a loopback address.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks one endpoint of `provider`: `https` (plain `http` only on a loopback
/// host, for an emulator), and no query, fragment or credentials.
///
/// ```
/// use storage_core::endpoint::check_endpoint;
/// use url::Url;
/// assert!(check_endpoint("google", "token", &Url::parse("https://oauth2.googleapis.com/token").unwrap()).is_ok());
/// assert!(check_endpoint("google", "token", &Url::parse("http://127.0.0.1:9/token").unwrap()).is_ok());
/// assert!(check_endpoint("google", "token", &Url::parse("http://example.com/token").unwrap()).is_err());
/// ```
///
/// # Errors
/// [`StorageError::InvalidInput`] naming the provider and the endpoint.
pub fn check_endpoint(provider: &str, what: &str, url: &Url) -> Result<()> {
    if !(url.scheme() == "https" || url.scheme() == "http" && is_loopback(url)) {
        return Err(StorageError::invalid_input(format!(
            "{provider} {what} endpoint must be https (plain http only on loopback)"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(StorageError::invalid_input(format!(
            "{provider} {what} endpoint must not carry a query, fragment or credentials"
        )));
    }
    Ok(())
}
