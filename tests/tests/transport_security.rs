//! Transport security: production endpoints are https, plain http only on
//! loopback; redirects never carry a token to another origin and never loop
//! for ever; the conformance kit on both providers sends no `Authorization` to
//! the content origin. (The fault matrix checks the same for every cell, and
//! scans its whole log for every token.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use storage_core::testkit::run_conformance;
use storage_core::{ObjectName, RetryPolicy};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, Origin, Provider};
use storage_factory::storage_gdrive::GoogleEndpoints;
use storage_factory::storage_onedrive::MicrosoftEndpoints;
use storage_factory::{Endpoints, StorageFactory};
use storage_tests::emulator::{factory_builder, grant};
use url::Url;

fn factory(emu: &EmulatorHandle) -> StorageFactory {
    factory_builder(emu)
        .retry(
            RetryPolicy::new()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(20)),
        )
        .timeouts(Duration::from_secs(2), Duration::from_secs(5))
        .build()
        .unwrap()
}

#[test]
fn production_endpoints_are_https_only() {
    let g = GoogleEndpoints::production();
    let m = MicrosoftEndpoints::production();
    let mut urls = vec![&g.root, &g.token, &g.authorize, &m.graph, &m.login];
    urls.extend(g.revoke.as_ref());
    for u in urls {
        assert_eq!(u.scheme(), "https", "{u}");
    }
    assert!(m.token("common").unwrap().scheme() == "https");
    // Plain http is refused unless the host is a loopback address.
    for (section, url) in [
        (
            "google",
            r#"{"root":"http://drive.example/","token":"http://drive.example/t","authorize":"http://drive.example/a"}"#,
        ),
        (
            "microsoft",
            r#"{"graph":"http://graph.example/v1.0/","login":"http://login.example/"}"#,
        ),
    ] {
        let json = format!(r#"{{"{section}": {url}}}"#);
        let err = Endpoints::from_json(&json).unwrap_err();
        assert!(err.to_string().contains("https"), "{section}: {err}");
        let loopback = json
            .replace("drive.example", "127.0.0.1:9")
            .replace("graph.example", "127.0.0.1:9")
            .replace("login.example", "[::1]:9");
        Endpoints::from_json(&loopback).unwrap();
    }
    // An https URL carrying credentials or a query is refused too.
    let bad = GoogleEndpoints::new(
        Url::parse("https://user:pw@drive.example/").unwrap(),
        Url::parse("https://drive.example/t").unwrap(),
        Url::parse("https://drive.example/a").unwrap(),
    );
    assert!(bad.is_err());
}

/// The paths each provider's calls take on the API origin.
fn api_paths(provider: &str) -> (Provider, &'static str) {
    if provider == "gdrive" {
        (Provider::Google, "/drive/v3/*")
    } else {
        (Provider::Microsoft, "/v1.0/*")
    }
}

/// Every API answer redirects once to the content origin: whatever the call
/// makes of it, no token arrives there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_never_carries_the_token_to_another_origin() {
    for provider in ["gdrive", "onedrive"] {
        for status in [301, 302, 307, 308] {
            let emu = Emulator::start().await.unwrap();
            let b = factory(&emu).open(&grant(&emu, provider).to_string()).unwrap();
            let name = ObjectName::new("u", "r", ".bin").unwrap();
            let key = b.put_object(&name, Bytes::from_static(b"abc"), "a/b").await.unwrap();
            let (p, path) = api_paths(provider);
            let elsewhere = format!("{}stolen", emu.content_base());
            let rule = emu.faults().add(
                FaultRule::new(FaultAction::Respond {
                    status,
                    headers: vec![("Location".into(), elsewhere.clone())],
                    body: Some(String::new()),
                })
                .provider(p)
                .origin(Origin::Api)
                .path(path),
            );
            let _ = b.stat_object(&key).await;
            let _ = b.get_object(&key).await;
            let _ = b.health_check().await;
            let _ = b.delete_object(&key).await;
            assert!(
                emu.faults().fired(rule) >= 4,
                "{provider} {status}: the redirects were not served"
            );
            let journal = emu.journal();
            let stolen = journal.filter(|e| e.origin == Origin::Content && e.path == "/stolen");
            assert!(
                stolen.iter().all(|e| e.header("authorization").is_none()),
                "{provider} {status}: a redirect carried the token to another origin"
            );
            assert!(
                journal
                    .for_origin(Origin::Content)
                    .iter()
                    .all(|e| e.header("authorization").is_none())
            );
            emu.shutdown().await;
        }
    }
}

/// A redirect loop ends: every call returns, having made a bounded number of requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_loop_ends() {
    for provider in ["gdrive", "onedrive"] {
        let emu = Emulator::start().await.unwrap();
        let b = factory(&emu).open(&grant(&emu, provider).to_string()).unwrap();
        let (p, path) = api_paths(provider);
        let here = if provider == "gdrive" {
            format!("{}drive/v3/about", emu.endpoints().google.root)
        } else {
            format!("{}me/drive", emu.endpoints().microsoft.graph)
        };
        let rule = emu.faults().add(
            FaultRule::new(FaultAction::Respond {
                status: 302,
                headers: vec![("Location".into(), here)],
                body: Some(String::new()),
            })
            .provider(p)
            .origin(Origin::Api)
            .path(path),
        );
        let result = tokio::time::timeout(Duration::from_secs(10), b.health_check()).await;
        let result = result.unwrap_or_else(|_| panic!("{provider}: a redirect loop hung"));
        assert!(result.is_err(), "{provider}: a redirect loop is not health");
        assert!(emu.faults().fired(rule) >= 1, "{provider}: the loop was not served");
        // Three attempts, each following at most reqwest's default ten redirects.
        let requests = emu.journal().len();
        assert!(requests <= 3 * 11, "{provider}: {requests} requests");
        emu.shutdown().await;
    }
}

/// The whole conformance kit, on both providers, through the factory: every
/// upload and download URL request goes without `Authorization`, and every
/// API request carries the connection's own token and no other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kit_sends_tokens_only_to_the_api_origin() {
    for provider in ["gdrive", "onedrive"] {
        let emu = Emulator::start().await.unwrap();
        let json = grant(&emu, provider);
        let b = factory(&emu).open(&json.to_string()).unwrap();
        let report = run_conformance(b.as_ref()).await;
        assert!(report.failures.is_empty(), "{provider}: {report}");
        // Over Drive's 5 MiB multipart limit: a resumable session for sure.
        let big = Bytes::from(vec![7u8; 5 * 1024 * 1024 + 1]);
        let name = ObjectName::new("u", "big", ".bin").unwrap();
        let key = b.put_object(&name, big.clone(), "a/b").await.unwrap();
        assert_eq!(b.get_object(&key).await.unwrap(), big);
        let journal = emu.journal();
        let content = journal.for_origin(Origin::Content);
        assert!(
            !content.is_empty(),
            "{provider}: the kit must have used the content origin"
        );
        assert!(
            content.iter().all(|e| e.header("authorization").is_none()),
            "{provider}: a token went to the content origin"
        );
        let token = json["access_token"].as_str().unwrap();
        for e in journal.for_origin(Origin::Api) {
            if let Some(t) = e.bearer_token() {
                assert_eq!(t, token, "{provider}: {} {} carried another token", e.method, e.path);
            }
            assert!(
                e.query.as_deref().is_none_or(|q| !q.contains(token)),
                "{provider}: a token travelled in a query string"
            );
        }
        emu.shutdown().await;
    }
}
