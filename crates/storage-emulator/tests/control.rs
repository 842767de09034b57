//! The control API over HTTP: every verb, and its refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{about_status, http, json, refresh_google};
use reqwest::StatusCode;
use serde_json::{Value, json};
use storage_emulator::{AppCredentials, Emulator, EmulatorHandle};

async fn start() -> (EmulatorHandle, String) {
    let emu = Emulator::builder().control_api(true).start().await.unwrap();
    let control = emu.announcement().control.unwrap().to_string();
    (emu, control)
}

async fn call(method: reqwest::Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = http().request(method, url);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    (status, json(resp).await)
}

async fn get(url: &str) -> (StatusCode, Value) {
    call(reqwest::Method::GET, url, None).await
}

async fn post(url: &str, body: Value) -> (StatusCode, Value) {
    call(reqwest::Method::POST, url, Some(body)).await
}

async fn delete(url: &str) -> (StatusCode, Value) {
    call(reqwest::Method::DELETE, url, None).await
}

#[tokio::test]
async fn the_index_lists_every_verb_and_the_announcement() {
    let (emu, control) = start().await;
    let (status, index) = get(&control).await;
    assert_eq!(status, 200);
    assert_eq!(index["announcement"], json!(emu.announcement()));
    let verbs = index["verbs"].as_array().unwrap();
    assert!(verbs.len() >= 15, "{verbs:?}");
    for v in verbs {
        assert!(v["path"].as_str().unwrap().starts_with("/__emulator/"), "{v}");
    }
    let (status, announcement) = get(&format!("{control}announcement")).await;
    assert_eq!(status, 200);
    assert_eq!(announcement, json!(emu.announcement()));
}

#[tokio::test]
async fn grants_are_issued_expired_and_revoked() {
    let (emu, control) = start().await;
    let (status, google) = post(&format!("{control}grants"), json!({"provider": "gdrive"})).await;
    assert_eq!(status, 200, "{google}");
    assert_eq!(google["provider"], "gdrive");
    assert_eq!(google["token_uri"], emu.endpoints().google.token.as_str());
    let token = google["access_token"].as_str().unwrap().to_owned();
    assert_eq!(about_status(&emu, &token).await, 200);
    let (status, ms) = post(&format!("{control}grants"), json!({"provider": "onedrive"})).await;
    assert_eq!(status, 200);
    assert_eq!(ms["provider"], "onedrive");

    // Expire one token: only it fails.
    let (_, other) = post(&format!("{control}grants"), json!({"provider": "gdrive"})).await;
    let other_token = other["access_token"].as_str().unwrap();
    let (status, _) = post(&format!("{control}tokens/expire"), json!({"token": token})).await;
    assert_eq!(status, 200);
    assert_eq!(about_status(&emu, &token).await, 401);
    assert_eq!(about_status(&emu, other_token).await, 200);
    // Expire all.
    assert_eq!(post(&format!("{control}tokens/expire"), json!({})).await.0, 200);
    assert_eq!(about_status(&emu, other_token).await, 401);
    // A refresh still works; then revoke that grant: refresh is invalid_grant.
    assert_eq!(refresh_google(&emu, &google).await.0, 200);
    let (status, _) = post(
        &format!("{control}grants/revoke"),
        json!({"token": google["refresh_token"]}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = refresh_google(&emu, &google).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(refresh_google(&emu, &other).await.0, 200, "another grant survives");
    // Revoke all.
    assert_eq!(post(&format!("{control}grants/revoke"), json!({})).await.0, 200);
    assert_eq!(refresh_google(&emu, &other).await.0, 400);

    // Refusals: unknown tokens, providers, fields, and bodies that are no JSON.
    for verb in ["tokens/expire", "grants/revoke"] {
        let (status, body) = post(&format!("{control}{verb}"), json!({"token": "nope"})).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("unknown_token"))
        );
    }
    let (status, body) = post(&format!("{control}grants"), json!({"provider": "dropbox"})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unknown_provider"))
    );
    let (status, body) = post(&format!("{control}grants"), json!({"provider": "gdrive", "x": 1})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_json"))
    );
    let resp = http()
        .post(format!("{control}grants"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn sign_in_and_consent_answers_are_set_over_http() {
    let (emu, control) = start().await;
    let (_, ms) = post(&format!("{control}grants"), json!({"provider": "onedrive"})).await;
    let (status, body) = post(
        &format!("{control}sign-in-required"),
        json!({"why": "mfa", "token": ms["refresh_token"]}),
    )
    .await;
    assert_eq!((status, body["grants"].as_u64()), (StatusCode::OK, Some(1)));
    let app = emu.microsoft_app();
    let resp = http()
        .post(emu.endpoints().microsoft.token("common"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", ms["refresh_token"].as_str().unwrap()),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["error"], "interaction_required");
    let (status, _) = post(&format!("{control}sign-in-required"), json!({"why": "sleepy"})).await;
    assert_eq!(status, 400);

    // "Cancel" on the next consent screen.
    let (status, _) = call(
        reqwest::Method::PUT,
        &format!("{control}consent"),
        Some(json!({"answer": "cancel"})),
    )
    .await;
    assert_eq!(status, 200);
    let mut authorize = emu.endpoints().google.authorize.clone();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &emu.google_app().client_id)
        .append_pair("redirect_uri", "http://127.0.0.1:1/cb")
        .append_pair("response_type", "code")
        .append_pair("scope", "https://www.googleapis.com/auth/drive.file")
        .append_pair("state", "s");
    let resp = http().get(authorize.clone()).send().await.unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("error=access_denied"), "{location}");
    let (status, _) = call(
        reqwest::Method::PUT,
        &format!("{control}consent"),
        Some(json!({"answer": "allow"})),
    )
    .await;
    assert_eq!(status, 200);
    let resp = http().get(authorize).send().await.unwrap();
    assert!(resp.headers()["location"].to_str().unwrap().contains("code="));
}

#[tokio::test]
async fn fault_rules_are_added_listed_and_removed() {
    let (emu, control) = start().await;
    let token = common::google_token(&emu);
    let rule = json!({"path": "/drive/v3/about", "times": 1, "action": {"kind": "respond", "status": 503}});
    let (status, added) = post(&format!("{control}faults"), rule.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let id = added["ids"][0].as_u64().unwrap();
    assert_eq!(about_status(&emu, &token).await, 503);
    assert_eq!(about_status(&emu, &token).await, 200, "times: 1");
    let (_, listed) = get(&format!("{control}faults")).await;
    assert_eq!(listed[0]["id"].as_u64(), Some(id));
    assert_eq!(listed[0]["fired"], 1);
    assert_eq!(listed[0]["active"], false);
    assert_eq!(listed[0]["rule"]["path"], "/drive/v3/about");

    // An array adds several; a bad one in it adds none.
    let (status, added) = post(&format!("{control}faults"), json!([rule, rule])).await;
    assert_eq!(
        (status, added["ids"].as_array().map(Vec::len)),
        (StatusCode::CREATED, Some(2))
    );
    for bad in [
        json!({"action": {"kind": "explode"}}),
        json!([rule, {"path": "/x"}]),
        json!({"action": {"kind": "respond", "status": "teapot"}}),
        json!(42),
    ] {
        let (status, body) = post(&format!("{control}faults"), bad.clone()).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("bad_rule")),
            "{bad}"
        );
    }
    let resp = http().post(format!("{control}faults")).body("[{").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(get(&format!("{control}faults")).await.1.as_array().unwrap().len(), 3);

    let second = added["ids"][0].as_u64().unwrap();
    assert_eq!(delete(&format!("{control}faults/{second}")).await.0, 200);
    assert_eq!(delete(&format!("{control}faults/{second}")).await.0, 404);
    assert_eq!(delete(&format!("{control}faults/abc")).await.0, 400);
    let (status, body) = delete(&format!("{control}faults")).await;
    assert_eq!((status, body["removed"].as_u64()), (StatusCode::OK, Some(2)));
    assert!(emu.faults().active().is_empty());
    assert_eq!(about_status(&emu, &token).await, 200);
}

#[tokio::test]
async fn the_journal_is_read_redacted_unless_asked_and_cleared() {
    let (emu, control) = start().await;
    let token = common::google_token(&emu);
    assert_eq!(about_status(&emu, &token).await, 200);
    let (status, journal) = get(&format!("{control}journal")).await;
    assert_eq!(status, 200);
    assert_eq!(journal["tokens"], "redacted");
    let entries = journal["entries"].as_array().unwrap();
    // The control calls themselves are not journaled.
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["path"], "/drive/v3/about");
    assert!(!journal.to_string().contains(&token), "a token in the redacted journal");
    assert!(journal.to_string().contains("Bearer [redacted]"));
    let (_, shown) = get(&format!("{control}journal?tokens=show")).await;
    assert!(shown.to_string().contains(&token));
    assert_eq!(get(&format!("{control}journal?tokens=maybe")).await.0, 400);
    let (status, body) = delete(&format!("{control}journal")).await;
    assert_eq!((status, body["removed"].as_u64()), (StatusCode::OK, Some(1)));
    assert!(emu.journal().is_empty());
}

#[tokio::test]
async fn state_is_read_and_reset() {
    let (emu, control) = start().await;
    let token = common::google_token(&emu);
    // A file through the API.
    let resp = http()
        .post(format!("{}files?uploadType=media", emu.endpoints().google.upload))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = json(resp).await["id"].as_str().unwrap().to_owned();
    let (status, state) = get(&format!("{control}state")).await;
    assert_eq!(status, 200);
    let files = state["drive"]["files"].as_array().unwrap();
    let file = files.iter().find(|f| f["id"] == id.as_str()).unwrap();
    assert_eq!(file["size"], 5);
    assert_eq!(file["md5_checksum"], "5d41402abc4b2a76b9719d911017c592");
    let bytes = http()
        .get(format!("{control}drive/files/{id}/content"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], b"hello");
    assert_eq!(get(&format!("{control}drive/files/nope/content")).await.0, 404);
    assert_eq!(get(&format!("{control}graph/items/nope/content")).await.0, 404);

    // A file the user made outside the app, in a folder the app made.
    let resp = http()
        .post(format!("{}files", emu.endpoints().google.api))
        .bearer_auth(&token)
        .json(&json!({"name": "docs", "mimeType": "application/vnd.google-apps.folder"}))
        .send()
        .await
        .unwrap();
    let folder = json(resp).await["id"].as_str().unwrap().to_owned();
    let (status, added) = post(
        &format!("{control}drive/user-files"),
        json!({"parent": folder, "name": "holiday.jpg", "content_base64": "aGk="}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let user_file = added["id"].as_str().unwrap();
    assert_eq!(emu.drive_file_content(user_file).unwrap(), "hi");
    let (status, _) = post(
        &format!("{control}drive/user-files"),
        json!({"parent": id, "name": "x", "content_base64": ""}),
    )
    .await;
    assert_eq!(status, 404, "a file is no folder");
    let (status, _) = post(
        &format!("{control}drive/user-files"),
        json!({"parent": folder, "name": "x", "content_base64": "%%"}),
    )
    .await;
    assert_eq!(status, 400);

    let (status, _) = delete(&format!("{control}state")).await;
    assert_eq!(status, 200);
    let (_, state) = get(&format!("{control}state")).await;
    let left: Vec<&Value> = state["drive"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] == id.as_str() || f["id"] == folder.as_str())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(state["graph"]["items"].as_array().unwrap().is_empty());
    assert_eq!(about_status(&emu, &token).await, 200, "grants survive a reset");
}

#[tokio::test]
async fn unknown_verbs_wrong_methods_and_a_library_default_are_refused() {
    let (_emu, control) = start().await;
    let (status, body) = get(&format!("{control}teleport")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_verb"))
    );
    let (status, body) = get(&format!("{control}grants/revoke/now")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_verb"))
    );
    let (status, body) = get(&format!("{control}grants")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method_not_allowed"))
    );

    // Off by default in the library: the path is just an unknown Drive path.
    let emu = Emulator::start().await.unwrap();
    assert!(emu.announcement().control.is_none());
    let url = format!("{}__emulator/grants", emu.endpoints().google.root);
    let (status, body) = post(&url, json!({"provider": "gdrive"})).await;
    assert_eq!(status, 404);
    assert!(
        body.get("access_token").is_none() && body["error"]["code"] == 404,
        "{body}"
    );
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let (_emu, control) = start().await;
    for (name, value) in [
        ("host", "evil.example"),
        ("host", "127.0.0.1.evil.example:80"),
        ("origin", "http://evil.example"),
    ] {
        let resp = http()
            .post(format!("{control}grants"))
            .header(name, value)
            .json(&json!({"provider": "gdrive"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{name}: {value}");
        let body = json(resp).await;
        assert!(body.get("access_token").is_none(), "{body}");
    }
    let resp = http()
        .get(&control)
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a page on loopback may call it");
}

/// This machine's address on its default route, if it has one.
fn non_loopback_address() -> Option<std::net::IpAddr> {
    // Connecting a UDP socket sends nothing; it only picks the source address.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn a_peer_off_loopback_is_refused() {
    let Some(ip) = non_loopback_address() else {
        assert!(
            std::env::var("CI").is_err(),
            "this machine has no non-loopback address to test from"
        );
        eprintln!("skipped: this machine has no non-loopback address");
        return;
    };
    let emu = Emulator::builder()
        .control_api(true)
        .bind_address("0.0.0.0".parse().unwrap())
        .start()
        .await
        .unwrap();
    let port = emu.endpoints().google.root.port().unwrap();
    let at = |host: &str| format!("http://{host}:{port}/__emulator/grants");
    // Over the machine's own address the peer is that address, not loopback.
    let resp = http()
        .post(at(&ip.to_string()))
        .header("host", format!("127.0.0.1:{port}"))
        .json(&json!({"provider": "gdrive"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let body = json(resp).await;
    assert_eq!(body["error"]["code"], "not_loopback", "{body}");
    // The API itself answers there (a container's host may use it).
    let about = http()
        .get(format!("http://{ip}:{port}/drive/v3/about"))
        .send()
        .await
        .unwrap();
    assert_eq!(about.status(), 401);
    // And the same verb over loopback works.
    assert_eq!(post(&at("127.0.0.1"), json!({"provider": "gdrive"})).await.0, 200);
}

#[tokio::test]
async fn extra_and_any_clients_are_accepted() {
    let emu = Emulator::builder()
        .extra_microsoft_app(AppCredentials::new("ms-2", "ms-2-secret"))
        .start()
        .await
        .unwrap();
    let clients = emu.announcement().clients;
    assert_eq!(clients.microsoft.len(), 2);
    assert!(!clients.any_client);
    let token = |emu: &EmulatorHandle, id: &str, secret: &str| {
        let url = emu.endpoints().microsoft.token("common");
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", "unknown".to_owned()),
            ("client_id", id.to_owned()),
            ("client_secret", secret.to_owned()),
        ];
        async move {
            let resp = http().post(url).form(&form).send().await.unwrap();
            json(resp).await["error"].as_str().unwrap().to_owned()
        }
    };
    // A known client gets as far as the refresh token.
    assert_eq!(token(&emu, "ms-2", "ms-2-secret").await, "invalid_grant");
    assert_eq!(token(&emu, "ms-2", "wrong").await, "invalid_client");
    assert_eq!(token(&emu, "ms-3", "x").await, "unauthorized_client");

    let any = Emulator::builder().accept_any_client(true).start().await.unwrap();
    assert!(any.announcement().clients.any_client);
    assert_eq!(token(&any, "anything", "x").await, "invalid_grant");
    // A registered client still needs its own secret.
    assert_eq!(token(&any, "emulator-microsoft-client", "x").await, "invalid_client");
}

#[tokio::test]
async fn the_link_is_read_set_and_removed() {
    let (emu, control) = start().await;
    let url = format!("{control}link");
    assert_eq!(get(&url).await, (StatusCode::OK, json!({"profile": null})));
    let put = |body: Value| call(reqwest::Method::PUT, &url, Some(body));
    let (status, err) = put(json!({"profile": "rtt=fast"})).await;
    assert_eq!(status, 400, "{err}");
    assert_eq!(err["error"]["code"], "bad_json");
    assert!(err["error"]["message"].as_str().unwrap().contains("rtt"), "{err}");
    assert_eq!(emu.link(), None, "a bad profile changes nothing");

    let (status, set) = put(json!({"profile": "rtt=60ms,setup=0ms,conn_rate=8mbit"})).await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set["profile"], "rtt=60ms,setup=0ms,conn_rate=8mbit");
    assert_eq!(get(&url).await.1, set);
    assert_eq!(emu.link().unwrap().rtt(), std::time::Duration::from_millis(60));
    // A new connection to the API now crosses the link.
    let t = std::time::Instant::now();
    assert_eq!(about_status(&emu, "no-token").await, 401);
    assert!(t.elapsed() >= std::time::Duration::from_millis(60), "{:?}", t.elapsed());

    assert_eq!(put(json!({"profile": null})).await.1, json!({"profile": null}));
    assert_eq!(emu.link(), None);
}
