//! Exit codes and the one-line error report.

use std::process::ExitCode;

use storage_core::{ConnectionReason, StorageError};

/// Documented exit codes (also in `storage --help`).
pub const EXIT_HELP: &str = "\
exit codes:
  0  success
  1  any other failure
  2  usage error: bad arguments, bad credential or endpoints json, a provider compiled out
  3  not found: no such object, or no such input file
  4  the connection requires re-authorisation (the grant was revoked or expired)
  5  rate limited by the provider, after retries
  6  integrity failure: stored bytes differ from what was sent
  7  the user's storage at the provider is full
  8  the application's request quota at the provider is used up (e.g. drive's daily limit)";

/// What ended a command.
#[derive(Debug)]
pub enum Failure {
    /// A usage problem found by the CLI itself.
    Usage(String),
    /// A file the user named does not exist.
    MissingFile(String),
    /// A library error.
    Storage(StorageError),
    /// Anything else, with context.
    Other(String),
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Self {
        Self::Storage(e)
    }
}

impl Failure {
    /// The exit code for this failure.
    pub fn code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::MissingFile(_) => 3,
            Self::Other(_) => 1,
            Self::Storage(e) => match e {
                StorageError::InvalidInput { .. } | StorageError::FeatureDisabled { .. } => 2,
                StorageError::NotFound { .. } => 3,
                StorageError::CloudConnection {
                    reason: ConnectionReason::InvalidGrant,
                } => 4,
                StorageError::RateLimited { .. } => 5,
                StorageError::Integrity { .. } => 6,
                StorageError::QuotaExceeded | StorageError::InsufficientStorage { .. } => 7,
                StorageError::AppQuotaExceeded { .. } => 8,
                _ => 1,
            },
        }
    }

    /// Prints one human line, and with `verbose` the `source` chain.
    pub fn report(&self, verbose: bool) -> ExitCode {
        let line = match self {
            Self::Usage(m) => format!("usage error: {m}"),
            Self::MissingFile(p) => format!("no such file: {p}"),
            Self::Other(m) => m.clone(),
            Self::Storage(StorageError::CloudConnection {
                reason: ConnectionReason::InvalidGrant,
            }) => "the connection requires re-authorisation: run `storage auth login` again".to_owned(),
            Self::Storage(StorageError::QuotaExceeded) => {
                "the user's storage is full at the provider: free space there, or ask the user to".to_owned()
            }
            Self::Storage(e @ StorageError::AppQuotaExceeded { .. }) => format!(
                "{e}; this application's request quota at the provider is used up for every user, not the user's storage: wait for the provider to reset it, or raise it in the provider's console"
            ),
            Self::Storage(e) => e.to_string(),
        };
        crate::out::err(&format!("storage: {line}"));
        if verbose && let Self::Storage(e) = self {
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                crate::out::err(&format!("  caused by: {s}"));
                source = s.source();
            }
        }
        ExitCode::from(self.code())
    }
}
