//! `storage purge` and `storage disconnect`: the commands that destroy things,
//! behind a confirmation.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::sync::Arc;

use storage_core::validate_part;
use storage_factory::{CredentialStore, FileCredentialStore, Purge, Revocation};

use crate::cli::Cli;
use crate::connect::{self, Source};
use crate::exit::Failure;
use crate::out;

/// What the user does where no provider endpoint can revoke the grant.
const MICROSOFT_REVOKE_HINT: &str = "microsoft offers no endpoint to revoke a delegated refresh token: remove the app's access at https://account.live.com/consent/Manage (personal account) or https://myapps.microsoft.com (work or school account)";

/// Asks on a terminal; without one, `--yes` is required.
fn confirm(question: &str, yes: bool) -> Result<(), Failure> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "refusing to destroy anything without confirmation: pass --yes".into(),
        ));
    }
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{question} [y/N] ");
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Failure::Other(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Failure::Other("cancelled: nothing was changed".into()))
    }
}

/// `storage purge --user U`.
pub async fn purge(cli: &Cli, user: &str, yes: bool) -> Result<(), Failure> {
    // Checked before the prompt and before any request.
    validate_part("user_id", user)?;
    let backend = connect::backend(cli).await?;
    confirm(
        &format!("delete every object of user {user:?} through this connection?"),
        yes,
    )?;
    let report = backend.purge_user(user).await?;
    out::line(&format!(
        "purged user {user}: {} objects, {} bytes",
        report.objects, report.bytes
    ));
    Ok(())
}

/// `storage disconnect [--purge --user U]`.
pub async fn disconnect(cli: &Cli, user: Option<&str>, yes: bool) -> Result<(), Failure> {
    if let Some(u) = user {
        validate_part("user_id", u)?;
    }
    let source = connect::source(cli)?;
    let what = source.describe();
    // `store_for` refuses a missing --credentials file; a disconnect repeated
    // after the file went reports "already disconnected" instead.
    let (store, id): (Arc<dyn CredentialStore>, String) = match source {
        Source::File(path) => (
            Arc::new(FileCredentialStore::single_file(path)),
            connect::CONNECTION.to_owned(),
        ),
        Source::Store { .. } => connect::store_for(source).await?,
    };
    let factory = connect::factory(
        connect::endpoints(cli.endpoints.as_deref()).await?,
        &cli.apps,
        cli.local_base.as_deref(),
    )?;
    let question = match user {
        Some(u) => format!("delete every object of user {u:?}, revoke the grant and delete {what}?"),
        None => format!("revoke the grant and delete {what}?"),
    };
    confirm(&question, yes)?;
    let purge = user.map_or(Purge::None, Purge::objects);
    let report = factory.disconnect(&id, store, purge).await?;
    if let (Some(p), Some(u)) = (report.purged, user) {
        out::line(&format!("purged user {u}: {} objects, {} bytes", p.objects, p.bytes));
    }
    let revocation = match report.revocation {
        Revocation::Revoked => "grant revoked".to_owned(),
        Revocation::AlreadyInvalid => "grant already revoked or expired".to_owned(),
        Revocation::NotOffered if report.provider == Some("onedrive") => MICROSOFT_REVOKE_HINT.to_owned(),
        Revocation::NotOffered => "no grant to revoke".to_owned(),
        Revocation::AlreadyDisconnected => "already disconnected: no credentials left".to_owned(),
        _ => "grant: unknown outcome".to_owned(),
    };
    out::line(&revocation);
    if report.credentials_deleted {
        out::line(&format!("deleted {what}"));
    }
    Ok(())
}
