//! The web connect flow against the emulator: `begin_connect`, the provider's
//! consent (answered by the emulator as the test tells it), the callback, and
//! `finish_connect`, with every way it can go wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use storage_core::testkit::payload;
use storage_core::{ObjectName, StorageError};
use storage_emulator::{Consent, Emulator, EmulatorHandle, FaultAction, FaultRule, Provider};
use storage_factory::{
    ConnectError, ConnectOptions, ConnectionStatus, CredentialStore, MemoryCredentialStore, PendingConnect,
    SealedStore, SealingKey, SealingKeys, StorageFactory, is_sealed,
};
use storage_tests::emulator::{factory_builder, quick_retry};

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn keys(byte: u8) -> SealingKeys {
    SealingKeys::new(("connect-1", SealingKey::from_bytes([byte; 32]))).unwrap()
}

fn factory(emu: &EmulatorHandle) -> StorageFactory {
    factory_builder(emu)
        .retry(quick_retry())
        .connect_keys(keys(7))
        .build()
        .unwrap()
}

/// What the user's browser does: follows the authorize URL to the consent
/// screen, which redirects to the callback; the callback URL is returned.
async fn consent(url: &storage_core::Url) -> String {
    let client = storage_factory::reqwest::Client::builder()
        .redirect(storage_factory::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client.get(url.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the consent screen redirects");
    resp.headers()["location"].to_str().unwrap().to_owned()
}

/// `callback` with its `state` replaced.
fn with_state(callback: &str, state: &str) -> String {
    let mut url = url::Url::parse(callback).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" { state.to_owned() } else { v.into_owned() };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_google_and_onedrive_then_store_and_read() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    for provider in ["gdrive", "onedrive"] {
        let begun = factory
            .begin_connect(provider, REDIRECT, &ConnectOptions::default())
            .unwrap();
        let q: std::collections::HashMap<_, _> = begun.authorize_url.query_pairs().into_owned().collect();
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(
            !begun.pending.as_str().contains(&q["state"][..]),
            "the state is sealed, not readable"
        );
        assert!(!format!("{:?}", begun.pending).contains(begun.pending.as_str()));
        let callback = consent(&begun.authorize_url).await;
        let inner = Arc::new(MemoryCredentialStore::new());
        let store = Arc::new(SealedStore::new(inner.clone(), keys(9)));
        let id = format!("conn-{provider}");
        let connected = factory
            .finish_connect(&begun.pending, &callback, store, &id)
            .await
            .unwrap();
        assert!(connected.account.name.is_some(), "{provider}: {:?}", connected.account);
        assert!(connected.account.quota.is_some_and(|q| q.total.is_some()), "{provider}");
        // Stored sealed, in the store the application gave.
        let row = inner.get(&id).unwrap();
        assert!(
            is_sealed(&row.json),
            "{provider}: the credentials are stored in plain text"
        );
        assert_eq!(row.status, ConnectionStatus::Active);
        let name = ObjectName::new("u1", "d1", ".pdf").unwrap();
        let key = connected
            .backend
            .put_object(&name, payload(1000, 1), "application/pdf")
            .await
            .unwrap();
        assert_eq!(connected.backend.get_object(&key).await.unwrap(), payload(1000, 1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_way_a_callback_goes_wrong_is_a_typed_error_and_stores_nothing() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let store = Arc::new(MemoryCredentialStore::new());
    let shared: Arc<dyn CredentialStore> = store.clone();
    let begin = |provider: &str| {
        factory
            .begin_connect(provider, REDIRECT, &ConnectOptions::default())
            .unwrap()
    };

    // A forged or mixed-up callback: another state, or none.
    let begun = begin("gdrive");
    let callback = consent(&begun.authorize_url).await;
    for bad in [with_state(&callback, "forged"), callback.replace("state=", "x=")] {
        let err = factory
            .finish_connect(&begun.pending, &bad, shared.clone(), "c")
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::StateMismatch), "{err}");
    }
    // The same callback, then once more.
    factory
        .finish_connect(&begun.pending, &callback, shared.clone(), "c")
        .await
        .unwrap();
    let err = factory
        .finish_connect(&begun.pending, &callback, shared.clone(), "c2")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Replayed), "{err}");
    store.delete("c").await.unwrap();

    // Expired.
    let short = factory
        .begin_connect(
            "gdrive",
            REDIRECT,
            &ConnectOptions::default().expires_after(Duration::ZERO),
        )
        .unwrap();
    let callback = consent(&short.authorize_url).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let err = factory
        .finish_connect(&short.pending, &callback, shared.clone(), "c")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Expired), "{err}");

    // Tampered, or sealed under other keys.
    let begun = begin("gdrive");
    let callback = consent(&begun.authorize_url).await;
    let mut text = begun.pending.as_str().to_owned();
    let flipped = if text.ends_with('A') { 'B' } else { 'A' };
    text.pop();
    text.push(flipped);
    let err = factory
        .finish_connect(&PendingConnect::from_sealed(text), &callback, shared.clone(), "c")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Tampered), "{err}");
    let other = factory_builder(&emu).connect_keys(keys(8)).build().unwrap();
    let err = other
        .finish_connect(&begun.pending, &callback, shared.clone(), "c")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Tampered), "{err}");

    // The user clicks "Cancel", on either provider.
    emu.set_consent(Consent::Cancel);
    for provider in ["gdrive", "onedrive"] {
        let begun = begin(provider);
        let callback = consent(&begun.authorize_url).await;
        let err = factory
            .finish_connect(&begun.pending, &callback, shared.clone(), "c")
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::AccessDenied), "{provider}: {err}");
    }

    // Google sends no refresh token.
    emu.set_consent(Consent::NoRefreshToken);
    let begun = begin("gdrive");
    let callback = consent(&begun.authorize_url).await;
    let err = factory
        .finish_connect(&begun.pending, &callback, shared.clone(), "c")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::MissingRefreshToken), "{err}");

    // The user unticks the Drive scope.
    let drive_file = storage_factory::storage_gdrive::oauth::SCOPE_DRIVE_FILE;
    emu.set_consent(Consent::Untick(vec![drive_file.to_owned()]));
    let begun = begin("gdrive");
    let callback = consent(&begun.authorize_url).await;
    let err = factory
        .finish_connect(&begun.pending, &callback, shared.clone(), "c")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectError::ScopeNotGranted { scope } if scope == drive_file),
        "{err}"
    );
    assert!(err.to_string().contains(drive_file));

    // The token endpoint fails: its error, after the retries.
    emu.set_consent(Consent::Allow);
    let begun = begin("gdrive");
    let callback = consent(&begun.authorize_url).await;
    emu.faults().add(
        FaultRule::new(FaultAction::status(500))
            .provider(Provider::Google)
            .method("POST")
            .path("/token"),
    );
    let err = factory
        .finish_connect(&begun.pending, &callback, shared.clone(), "c")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ConnectError::Storage(StorageError::Provider { status: 500, .. })),
        "{err}"
    );
    emu.faults().clear();

    // A callback from the provider with another error.
    let begun = begin("gdrive");
    let state = {
        let callback = consent(&begun.authorize_url).await;
        let url = url::Url::parse(&callback).unwrap();
        url.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned()
    };
    let odd = format!("{REDIRECT}?error=server_error&error_description=busy&state={state}");
    let err = factory
        .finish_connect(&begun.pending, &odd, shared.clone(), "c")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectError::Callback { error, .. } if error == "server_error"),
        "{err}"
    );

    assert!(store.get("c").is_none(), "a failed connect stored credentials");
    assert!(store.get("c2").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_after_a_revoked_grant_replaces_the_credentials_and_the_status() {
    let emu = Emulator::start().await.unwrap();
    let factory = factory(&emu);
    let store = Arc::new(MemoryCredentialStore::new());
    let begun = factory
        .begin_connect("gdrive", REDIRECT, &ConnectOptions::default())
        .unwrap();
    let callback = consent(&begun.authorize_url).await;
    let first = factory
        .finish_connect(&begun.pending, &callback, store.clone(), "c")
        .await
        .unwrap();
    let before = store.get("c").unwrap().json.expose().to_owned();
    emu.revoke_grants();
    emu.expire_access_tokens();
    let err = first.backend.health_check().await.unwrap_err();
    assert_eq!(
        err.connection_reason(),
        Some(storage_core::ConnectionReason::InvalidGrant)
    );
    assert_eq!(store.get("c").unwrap().status, ConnectionStatus::RequiresReauth);

    let again = factory
        .begin_connect("gdrive", REDIRECT, &ConnectOptions::default())
        .unwrap();
    let callback = consent(&again.authorize_url).await;
    let second = factory
        .finish_connect(&again.pending, &callback, store.clone(), "c")
        .await
        .unwrap();
    let row = store.get("c").unwrap();
    assert_eq!(row.status, ConnectionStatus::Active);
    assert_ne!(row.json.expose(), before, "the credentials were not replaced");
    second.backend.health_check().await.unwrap();
}

/// The hidden fields and the form of a consent page, as a browser would post them.
fn form_of(html: &str, decision: &str, untick: &[&str]) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(
            tag[start..end]
                .replace("&quot;", "\"")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        )
    };
    let mut form = Vec::new();
    for tag in html.split('<').filter(|t| t.starts_with("input")) {
        let (Some(name), Some(value)) = (attr(tag, "name"), attr(tag, "value")) else {
            continue;
        };
        let kind = attr(tag, "type").unwrap_or_default();
        if kind == "checkbox" && untick.contains(&value.as_str()) {
            continue;
        }
        form.push((name, value));
    }
    form.push(("decision".to_owned(), decision.to_owned()));
    form
}

/// What a user does in a browser: opens the consent page, ticks or unticks,
/// clicks a button; the callback URL the provider redirects to.
async fn click(url: &storage_core::Url, decision: &str, untick: &[&str]) -> String {
    let client = storage_factory::reqwest::Client::builder()
        .redirect(storage_factory::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(url.clone()).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200, "a consent page");
    let html = page.text().await.unwrap();
    assert!(html.contains(">Allow<") && html.contains(">Cancel<") && html.contains("user@emulator.invalid"));
    let posted = client
        .post(url.clone())
        .form(&form_of(&html, decision, untick))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status().as_u16(), 302, "the form redirects to the callback");
    posted.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_pages_allow_cancel_and_untick() {
    let emu = Emulator::builder().consent_page(true).start().await.unwrap();
    let factory = factory(&emu);
    let store: Arc<dyn CredentialStore> = Arc::new(MemoryCredentialStore::new());
    for provider in ["gdrive", "onedrive"] {
        let begun = factory
            .begin_connect(provider, REDIRECT, &ConnectOptions::default())
            .unwrap();
        let callback = click(&begun.authorize_url, "cancel", &[]).await;
        let err = factory
            .finish_connect(&begun.pending, &callback, store.clone(), "c")
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::AccessDenied), "{provider}: {err}");

        let begun = factory
            .begin_connect(provider, REDIRECT, &ConnectOptions::default())
            .unwrap();
        let callback = click(&begun.authorize_url, "allow", &[]).await;
        let connected = factory
            .finish_connect(&begun.pending, &callback, store.clone(), provider)
            .await
            .unwrap();
        connected.backend.health_check().await.unwrap();
    }
    // Google's page has a checkbox per scope; unticking the Drive scope is named.
    let drive_file = storage_factory::storage_gdrive::oauth::SCOPE_DRIVE_FILE;
    let begun = factory
        .begin_connect("gdrive", REDIRECT, &ConnectOptions::default())
        .unwrap();
    let callback = click(&begun.authorize_url, "allow", &[drive_file]).await;
    let err = factory
        .finish_connect(&begun.pending, &callback, store.clone(), "c")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectError::ScopeNotGranted { scope } if scope == drive_file),
        "{err}"
    );
}
