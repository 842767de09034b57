//! `storage connections list` and `storage connections import`: the
//! connections of a shared `--store`. Nothing here prints a token or a secret.

use storage_core::Secret;
use storage_factory::{ConnectionStatus, Credentials};

use crate::connect::{self, Kind, Opened};
use crate::exit::Failure;
use crate::out;

/// One row of `connections list`.
struct Row {
    id: String,
    provider: Option<&'static str>,
    status: ConnectionStatus,
    expires_at: Option<String>,
    /// Why the credentials could not be read (never their content).
    note: Option<String>,
}

/// `storage connections list`.
pub async fn list(spec: &str, json: bool) -> Result<(), Failure> {
    let opened = connect::open_store(spec).await?;
    let mut rows = Vec::new();
    for id in ids(&opened).await? {
        let stored = match opened.raw.load(&id).await {
            Ok(s) => s,
            // Deleted since it was listed.
            Err(e) if connect::is_not_found(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        rows.push(row(&opened, id, stored.json, stored.status));
    }
    if json {
        let items: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "provider": r.provider,
                    "status": r.status.as_str(),
                    "access_token_expires_at": r.expires_at,
                    "error": r.note,
                })
            })
            .collect();
        out::line(&serde_json::Value::Array(items).to_string());
        return Ok(());
    }
    let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(0).max(2);
    out::line(&format!(
        "{:width$}  {:8}  {:15}  access token expires",
        "id", "provider", "status"
    ));
    for r in &rows {
        let mut line = format!(
            "{:width$}  {:8}  {:15}  {}",
            r.id,
            r.provider.unwrap_or("-"),
            r.status.as_str(),
            r.expires_at.as_deref().unwrap_or("-")
        );
        if let Some(n) = &r.note {
            line.push_str(&format!("  ({n})"));
        }
        out::line(line.trim_end());
    }
    Ok(())
}

/// Provider and expiry from the credentials, opened when they are sealed.
fn row(opened: &Opened, id: String, stored: Secret, status: ConnectionStatus) -> Row {
    let failed = |id: String, note: String| Row {
        id,
        provider: None,
        status,
        expires_at: None,
        note: Some(note),
    };
    if opened.sealed.is_none() && storage_factory::is_sealed(&stored) {
        return failed(id, format!("sealed: set {} to read it", connect::SEAL_KEYS));
    }
    let plain = match &opened.sealed {
        Some(s) => s.unseal(&id, &stored),
        None => Ok(stored),
    };
    match plain.and_then(|json| Credentials::parse(json.expose())) {
        Ok(c) => Row {
            id,
            provider: Some(c.provider()),
            status,
            expires_at: c
                .expires_at()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            note: None,
        },
        // The messages name keys and key ids, never values.
        Err(e) => failed(id, e.to_string()),
    }
}

/// Every connection id in the store.
async fn ids(opened: &Opened) -> Result<Vec<String>, Failure> {
    match &opened.kind {
        Kind::Postgres(pg) => Ok(pg.connection_ids().await?),
        Kind::Dir(dir) => {
            let entries =
                std::fs::read_dir(dir).map_err(|e| Failure::Other(format!("cannot list {}: {e}", dir.display())))?;
            let mut ids: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".json").map(str::to_owned))
                .filter(|id| storage_core::validate_part("connection id", id).is_ok())
                .collect();
            ids.sort();
            Ok(ids)
        }
    }
}

/// `storage connections import FILE`.
pub async fn import(spec: &str, id: &str, file: &std::path::Path, replace: bool) -> Result<(), Failure> {
    let text = connect::read(file).await?;
    let creds = Credentials::parse(&text)?;
    let opened = connect::open_store(spec).await?;
    let exists = match opened.raw.load(id).await {
        Ok(_) => true,
        Err(e) if connect::is_not_found(&e) => false,
        Err(e) => return Err(e.into()),
    };
    if exists && !replace {
        return Err(Failure::Usage(format!(
            "connection {id} exists already: pass --replace to overwrite it"
        )));
    }
    opened.store.save_credentials(id, &creds.to_json()).await?;
    if exists {
        opened.store.set_status(id, ConnectionStatus::Active).await?;
    }
    out::line(&format!(
        "{} connection {id} ({}){}",
        if exists { "replaced" } else { "imported" },
        creds.provider(),
        if opened.sealed.is_some() { ", sealed" } else { "" }
    ));
    Ok(())
}
