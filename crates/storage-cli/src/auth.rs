//! `storage auth`: connect a real account.

use std::path::Path;

use storage_core::oauth::{Pkce, random_token};
use storage_factory::Endpoints;
use storage_factory::storage_gdrive::{self, GoogleApp};
use storage_factory::storage_onedrive::{self, MicrosoftApp};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::cli::{Apps, Provider};
use crate::exit::Failure;
use crate::out;

fn google_app(apps: &Apps) -> Result<GoogleApp, Failure> {
    match (&apps.google_client_id, &apps.google_client_secret) {
        (Some(id), Some(secret)) => Ok(GoogleApp::new(id.clone(), secret.clone())),
        _ => Err(Failure::Usage(
            "google needs --google-client-id and --google-client-secret (or STORAGE_GOOGLE_CLIENT_ID/_SECRET)".into(),
        )),
    }
}

fn microsoft_app(apps: &Apps) -> Result<MicrosoftApp, Failure> {
    let id = apps.microsoft_client_id.clone().ok_or_else(|| {
        Failure::Usage("microsoft needs --microsoft-client-id (or STORAGE_MICROSOFT_CLIENT_ID)".into())
    })?;
    let app = match &apps.microsoft_client_secret {
        Some(s) => MicrosoftApp::new(id, s.clone()),
        None => MicrosoftApp::public(id),
    };
    Ok(app.with_tenant(apps.microsoft_tenant.clone()))
}

/// The authorize URL for `provider`.
pub fn url(
    provider: Provider,
    endpoints: &Endpoints,
    apps: &Apps,
    redirect: &str,
    state: &str,
    pkce: &Pkce,
) -> Result<url::Url, Failure> {
    Ok(match provider {
        Provider::Gdrive => storage_gdrive::oauth::authorize_url(
            &endpoints.google.clone().unwrap_or_default(),
            &google_app(apps)?,
            redirect,
            state,
            pkce,
        ),
        Provider::Onedrive => storage_onedrive::oauth::authorize_url(
            &endpoints.microsoft.clone().unwrap_or_default(),
            &microsoft_app(apps)?,
            redirect,
            state,
            pkce,
        )?,
    })
}

/// `storage auth url`.
pub fn print_url(
    provider: Provider,
    endpoints: &Endpoints,
    apps: &Apps,
    redirect: &str,
    state: Option<String>,
) -> Result<(), Failure> {
    let state = match state {
        Some(s) => s,
        None => random_token(16)?,
    };
    let pkce = Pkce::generate()?;
    out::line(url(provider, endpoints, apps, redirect, &state, &pkce)?.as_str());
    out::err(&format!("state:    {state}"));
    out::err(&format!(
        "verifier: {}   (pass it to `storage auth exchange --verifier`)",
        pkce.verifier().expose()
    ));
    Ok(())
}

/// Exchanges a code and writes the credential JSON with mode 0600.
pub async fn exchange(
    provider: Provider,
    endpoints: &Endpoints,
    apps: &Apps,
    code: &str,
    redirect: &str,
    pkce: &Pkce,
    output: &Path,
) -> Result<(), Failure> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Failure::Other(format!("cannot build an http client: {e}")))?;
    let json = match provider {
        Provider::Gdrive => {
            storage_gdrive::oauth::exchange_code(
                &http,
                &endpoints.google.clone().unwrap_or_default(),
                &google_app(apps)?,
                code,
                redirect,
                pkce,
            )
            .await?
        }
        Provider::Onedrive => {
            storage_onedrive::oauth::exchange_code(
                &http,
                &endpoints.microsoft.clone().unwrap_or_default(),
                &microsoft_app(apps)?,
                code,
                redirect,
                pkce,
            )
            .await?
        }
    };
    let store = storage_factory::FileCredentialStore::single_file(output);
    storage_factory::CredentialStore::save_credentials(
        &store,
        crate::connect::CONNECTION,
        &storage_core::Secret::new(json.to_string()),
    )
    .await?;
    out::err(&format!(
        "storage: credentials written to {} (mode 0600)",
        output.display()
    ));
    Ok(())
}

/// `storage auth login`: a one-shot loopback redirect listener.
pub async fn login(
    provider: Provider,
    endpoints: &Endpoints,
    apps: &Apps,
    port: u16,
    output: &Path,
) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| Failure::Other(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let local = listener.local_addr().map_err(|e| Failure::Other(e.to_string()))?;
    let redirect = format!("http://127.0.0.1:{}/callback", local.port());
    let state = random_token(16)?;
    let pkce = Pkce::generate()?;
    out::line(url(provider, endpoints, apps, &redirect, &state, &pkce)?.as_str());
    out::err("storage: open the url above in a browser; waiting for the redirect…");
    loop {
        let (mut sock, _) = listener.accept().await.map_err(|e| Failure::Other(e.to_string()))?;
        let mut buf = vec![0u8; 8192];
        let n = sock.read(&mut buf).await.unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]).to_string();
        let target = head
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or("/");
        let Ok(parsed) = url::Url::parse(&format!("http://127.0.0.1{target}")) else {
            continue;
        };
        if parsed.path() != "/callback" {
            let _ = sock
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
            continue;
        }
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        let body: &[u8] = if q.get("state") != Some(&state) {
            b"state mismatch; close this tab"
        } else if q.contains_key("code") {
            b"connected; you may close this tab"
        } else {
            b"the provider refused the request; close this tab"
        };
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        let _ = sock.write_all(reply.as_bytes()).await;
        let _ = sock.write_all(body).await;
        if q.get("state") != Some(&state) {
            return Err(Failure::Other("the redirect carried another state: refusing it".into()));
        }
        let Some(code) = q.get("code") else {
            return Err(Failure::Other(format!(
                "the provider refused: {}",
                q.get("error").map(String::as_str).unwrap_or("no code")
            )));
        };
        return exchange(provider, endpoints, apps, code, &redirect, &pkce, output).await;
    }
}
