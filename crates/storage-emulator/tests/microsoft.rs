//! Graph drive endpoints and the Microsoft token endpoint, with plain reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::*;
use serde_json::{Value, json};
use storage_emulator::{Emulator, EmulatorHandle};

const UNIT: usize = 320 * 1024;

#[tokio::test]
async fn drive_resource_has_numeric_quota() {
    let emu = start().await;
    let token = ms_token(&emu);
    let resp = http()
        .get(graph_url(&emu, "me/drive"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let drive = json(resp).await;
    assert!(drive["id"].is_string());
    assert!(drive["quota"]["total"].is_u64());
    assert!(drive["quota"]["used"].is_u64());
    assert_eq!(drive["quota"]["state"], "normal");
    let selected = json(
        http()
            .get(graph_url(&emu, "me/drive?%24select=id%2CdriveType"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(selected.as_object().unwrap().len(), 2, "{selected}");
}

#[tokio::test]
async fn put_content_get_by_path_and_id_with_select() {
    let emu = start().await;
    let token = ms_token(&emu);
    let data = pattern(1234);
    let item = graph_put(&emu, &token, "dir%20one/a%20b&c%23d.txt", &data).await;
    assert_eq!(item["name"], "a b&c#d.txt");
    // size is a JSON number on Graph
    assert_eq!(item["size"], json!(1234));
    assert!(item["file"]["hashes"]["quickXorHash"].is_string());
    assert_eq!(item["parentReference"]["path"], "/drive/root:/dir one");
    let id = item["id"].as_str().unwrap().to_owned();

    // by path, case-insensitive, with the trailing colon graph-rs-sdk sends
    let by_path = json(
        http()
            .get(graph_url(&emu, "me/drive/root:/DIR%20ONE/A%20B&c%23d.txt:"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(by_path["id"], json!(id));

    let selected = json(
        http()
            .get(graph_url(
                &emu,
                &format!("me/drive/items/{id}?%24select=id%2C%40microsoft.graph.downloadUrl"),
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(selected.as_object().unwrap().len(), 2, "{selected}");
    let download = selected["@microsoft.graph.downloadUrl"].as_str().unwrap();
    assert!(download.starts_with(emu.content_base().as_str()));

    // the download URL needs no token and serves ranges
    let full = http().get(download).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.bytes().await.unwrap(), data);
    let part = http().get(download).header("range", "bytes=0-9").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 0-9/1234");
    assert_eq!(part.bytes().await.unwrap(), &data[..10]);
    let bad = http()
        .get(download)
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);

    // replacing: 200, new content and hash
    let resp = http()
        .put(graph_url(&emu, &format!("me/drive/items/{id}/content")))
        .bearer_auth(&token)
        .body("new")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let replaced = json(resp).await;
    assert_eq!(replaced["id"], json!(id));
    assert_eq!(replaced["size"], 3);
    assert_eq!(emu.graph_item_content(&id).unwrap(), &b"new"[..]);
    assert!(emu.graph_item_by_path("/dir one/a b&c#d.txt").is_some());

    // conflictBehavior=fail in the query
    let resp = http()
        .put(graph_url(
            &emu,
            "me/drive/root:/dir%20one/a%20b&c%23d.txt:/content?@microsoft.graph.conflictBehavior=fail",
        ))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(json(resp).await["error"]["code"], "nameAlreadyExists");
}

#[tokio::test]
async fn upload_to_parent_item_relative_path_keeps_html_escaped_name() {
    let emu = start().await;
    let token = ms_token(&emu);
    let folder = graph_put(&emu, &token, "p/x.txt", b"x").await["parentReference"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = http()
        .put(graph_url(
            &emu,
            &format!("me/drive/items/{folder}:/a&amp;b%20c%23.txt:/content"),
        ))
        .bearer_auth(&token)
        .body("y")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(json(resp).await["name"], "a&amp;b c#.txt");
}

#[tokio::test]
async fn content_redirects_to_the_download_host() {
    let emu = start().await;
    let token = ms_token(&emu);
    let item = graph_put(&emu, &token, "f.bin", b"hello").await;
    let id = item["id"].as_str().unwrap();
    let resp = http()
        .get(graph_url(&emu, &format!("me/drive/items/{id}/content")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let api_port = emu.endpoints().microsoft.graph.port();
    let dl_port = reqwest::Url::parse(&location).unwrap().port();
    assert_ne!(api_port, dl_port);
    // a redirect-following client gets the bytes and drops the token on the other port
    emu.clear_journal();
    let body = get_following(&token, &graph_url(&emu, "me/drive/root:/f.bin:/content")).await;
    assert_eq!(body, b"hello");
    let journal = emu.journal();
    let downloads = journal.filter(|e| e.path.starts_with("/dl/"));
    assert_eq!(downloads.len(), 1);
    assert!(downloads[0].bearer_token().is_none());
    assert!(
        http()
            .get(graph_url(&emu, "me/drive/items/nope/content"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
            == 404
    );
}

/// GET following redirects, as graph-rs-sdk's client does.
async fn get_following(token: &str, url: &str) -> Vec<u8> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(2))
        .build()
        .unwrap();
    let resp = client.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn download_url_can_reject_authorization() {
    let emu = Emulator::builder()
        .reject_auth_on_download_url(true)
        .start()
        .await
        .unwrap();
    let token = ms_token(&emu);
    let item = graph_put(&emu, &token, "f.bin", b"hello").await;
    let url = item["@microsoft.graph.downloadUrl"].as_str().unwrap();
    assert_eq!(http().get(url).bearer_auth(&token).send().await.unwrap().status(), 401);
    assert_eq!(http().get(url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn children_paging_with_absolute_next_link_and_delete() {
    let emu = start().await;
    let token = ms_token(&emu);
    for i in 0..5 {
        graph_put(&emu, &token, &format!("list/f{i}.txt"), b"x").await;
    }
    let folder = emu.graph_item_by_path("/list").unwrap();
    assert!(folder.is_folder);
    let mut url = graph_url(&emu, &format!("me/drive/items/{}/children?%24top=2", folder.id));
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let page = json(http().get(&url).bearer_auth(&token).send().await.unwrap()).await;
        pages += 1;
        for item in page["value"].as_array().unwrap() {
            names.push(item["name"].as_str().unwrap().to_owned());
        }
        match page["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(emu.endpoints().microsoft.graph.as_str()), "{next}");
                url = next.to_owned();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt"]);

    let root = json(
        http()
            .get(graph_url(&emu, "me/drive/root/children"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(root["value"][0]["folder"]["childCount"], 5);

    let resp = http()
        .delete(graph_url(&emu, &format!("me/drive/items/{}", folder.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(emu.graph_items().is_empty());
    let resp = http()
        .delete(graph_url(&emu, &format!("me/drive/items/{}", folder.id)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let err = json(resp).await;
    assert_eq!(err["error"]["code"], "itemNotFound");
    assert!(err["error"]["innerError"]["request-id"].is_string());
    assert!(err["error"]["innerError"]["date"].is_string());
}

#[tokio::test]
async fn illegal_names_and_unknown_paths() {
    let emu = start().await;
    let token = ms_token(&emu);
    for bad in ["a%3Ab.txt", "a%7Cb", "CON", "trailing."] {
        let resp = http()
            .put(graph_url(&emu, &format!("me/drive/root:/{bad}:/content")))
            .bearer_auth(&token)
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{bad}");
        let err = json(resp).await;
        assert_eq!(err["error"]["code"], "invalidRequest");
        assert_eq!(err["error"]["innerError"]["code"], "invalidPath");
    }
    let resp = http()
        .get(graph_url(&emu, "me/drive/root:/missing.txt:"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http()
        .get(graph_url(&emu, "me/calendar"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn graph_calls_need_a_valid_token() {
    let emu = start().await;
    let url = graph_url(&emu, "me/drive");
    let check = |resp: reqwest::Response, message: &'static str| async move {
        assert_eq!(resp.status(), 401);
        let err = json(resp).await;
        assert_eq!(err["error"]["code"], "InvalidAuthenticationToken");
        assert_eq!(err["error"]["message"], message);
    };
    check(http().get(&url).send().await.unwrap(), "Access token is empty.").await;
    check(
        http().get(&url).bearer_auth("garbage").send().await.unwrap(),
        "CompactToken parsing failed with error code: 80049217",
    )
    .await;
    check(
        http().get(&url).bearer_auth(google_token(&emu)).send().await.unwrap(),
        "CompactToken parsing failed with error code: 80049217",
    )
    .await;
    let token = ms_token(&emu);
    assert_eq!(http().get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
    emu.expire_access_tokens();
    check(
        http().get(&url).bearer_auth(&token).send().await.unwrap(),
        "Lifetime validation failed, the token is expired.",
    )
    .await;
}

async fn create_session(emu: &EmulatorHandle, token: &str, path: &str, body: Value) -> String {
    let resp = http()
        .post(graph_url(emu, &format!("me/drive/root:/{path}:/createUploadSession")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let session = json(resp).await;
    assert!(session["expirationDateTime"].is_string());
    session["uploadUrl"].as_str().unwrap().to_owned()
}

async fn fragment(url: &str, first: usize, data: &[u8], total: usize) -> reqwest::Response {
    http()
        .put(url)
        .header(
            "content-range",
            format!("bytes {first}-{}/{total}", first + data.len() - 1),
        )
        .body(data.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn upload_session_fragments_202_then_201_and_416_on_overlap() {
    let emu = start().await;
    let token = ms_token(&emu);
    let data = pattern(2 * UNIT + 77);
    let total = data.len();
    let url = create_session(
        &emu,
        &token,
        "s/big.bin",
        json!({"item": {"@microsoft.graph.conflictBehavior": "replace"}}),
    )
    .await;
    assert!(url.starts_with(emu.content_base().as_str()));
    assert_eq!(emu.graph_open_sessions(), 1);

    let resp = fragment(&url, 0, &data[..UNIT], total).await;
    assert_eq!(resp.status(), 202);
    let body = json(resp).await;
    assert_eq!(body["nextExpectedRanges"], json!([format!("{UNIT}-")]));
    assert!(emu.graph_item_by_path("/s/big.bin").is_none());

    // overlap
    let resp = fragment(&url, 0, &data[..UNIT], total).await;
    assert_eq!(resp.status(), 416);
    let err = json(resp).await;
    assert_eq!(err["error"]["code"], "invalidRange");
    assert_eq!(err["error"]["innerError"]["code"], "fragmentOverlap");

    // status
    let status = json(http().get(&url).send().await.unwrap()).await;
    assert_eq!(status["nextExpectedRanges"], json!([format!("{UNIT}-")]));

    let resp = fragment(&url, UNIT, &data[UNIT..2 * UNIT], total).await;
    assert_eq!(resp.status(), 202);
    let resp = fragment(&url, 2 * UNIT, &data[2 * UNIT..], total).await;
    assert_eq!(resp.status(), 201);
    let item = json(resp).await;
    assert_eq!(item["size"], json!(total));
    assert_eq!(emu.graph_item_content(item["id"].as_str().unwrap()).unwrap(), data);
    assert_eq!(emu.graph_open_sessions(), 0);
    // the session is gone
    assert_eq!(http().get(&url).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn upload_session_strict_rejections() {
    let emu = start().await;
    let token = ms_token(&emu);
    let total = 3 * UNIT;
    let data = pattern(total);
    let url = create_session(&emu, &token, "strict.bin", json!({})).await;

    // Authorization on the uploadUrl
    let resp = http()
        .put(&url)
        .bearer_auth(&token)
        .header("content-range", format!("bytes 0-{}/{total}", UNIT - 1))
        .body(data[..UNIT].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // not a multiple of 320 KiB
    assert_eq!(fragment(&url, 0, &data[..163_840], total).await.status(), 400);
    // malformed and missing Content-Range
    let resp = http()
        .put(&url)
        .header("content-range", "bytes 0-/x")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = http().put(&url).body("x").send().await.unwrap();
    assert_eq!(resp.status(), 400);
    // a gap
    assert_eq!(fragment(&url, UNIT, &data[UNIT..2 * UNIT], total).await.status(), 416);
    // a different total
    assert_eq!(fragment(&url, 0, &data[..UNIT], total + 1).await.status(), 202);
    let resp = fragment(&url, UNIT, &data[UNIT..2 * UNIT], total).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        json(resp).await["error"]["innerError"]["code"],
        "fragmentLengthMismatch"
    );
    // nothing was committed
    assert!(emu.graph_item_by_path("/strict.bin").is_none());

    // 60 MiB per request
    let big = 60 * 1024 * 1024;
    let url = create_session(&emu, &token, "huge.bin", json!({})).await;
    let resp = fragment(&url, 0, &vec![0u8; big], big + UNIT).await;
    assert_eq!(resp.status(), 413);

    // cancel: 204, then 404
    let resp = http().delete(&url).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(http().get(&url).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn upload_session_lenient_accepts_small_fragments_and_authorization() {
    let emu = Emulator::builder().lenient(true).start().await.unwrap();
    let token = ms_token(&emu);
    let url = create_session(&emu, &token, "l.bin", json!({})).await;
    let resp = http()
        .put(&url)
        .bearer_auth(&token)
        .header("content-range", "bytes 0-9/20")
        .body(vec![1u8; 10])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(fragment(&url, 10, &[2u8; 10], 20).await.status(), 201);
}

#[tokio::test]
async fn upload_session_conflicts_name_mismatch_and_expiry() {
    let emu = Emulator::builder()
        .upload_session_lifetime(std::time::Duration::from_millis(1500))
        .start()
        .await
        .unwrap();
    let token = ms_token(&emu);
    graph_put(&emu, &token, "exists.txt", b"x").await;
    // default conflict behaviour for sessions is fail
    let resp = http()
        .post(graph_url(&emu, "me/drive/root:/exists.txt:/createUploadSession"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let resp = http()
        .post(graph_url(&emu, "me/drive/root:/a.txt:/createUploadSession"))
        .bearer_auth(&token)
        .json(&json!({"item": {"name": "b.txt"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // rename
    let url = create_session(
        &emu,
        &token,
        "exists.txt",
        json!({"item": {"@microsoft.graph.conflictBehavior": "rename"}}),
    )
    .await;
    let resp = fragment(&url, 0, b"abc", 3).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(json(resp).await["name"], "exists 1.txt");
    // expiry
    let url = create_session(&emu, &token, "late.bin", json!({})).await;
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    assert_eq!(fragment(&url, 0, b"abc", 3).await.status(), 404);
    // quota
    let resp = http()
        .post(graph_url(&emu, "me/drive/root:/q.bin:/createUploadSession"))
        .bearer_auth(&token)
        .json(&json!({"item": {"fileSize": 1u64 << 50}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 507);
}

/// quickXorHash vectors published in rclone's `backend/onedrive/quickxorhash` tests
/// (input and expected output both base64).
#[tokio::test]
async fn quick_xor_hash_matches_published_vectors() {
    let emu = start().await;
    let token = ms_token(&emu);
    let vectors = [
        ("", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        ("Sg==", "SgAAAAAAAAAAAAAAAQAAAAAAAAA="),
        ("tbQ=", "taAFAAAAAAAAAAAAAgAAAAAAAAA="),
        ("0pZP", "0rDEEwAAAAAAAAAAAwAAAAAAAAA="),
    ];
    for (i, (input, expected)) in vectors.iter().enumerate() {
        let data = base64::engine::general_purpose::STANDARD.decode(input).unwrap();
        let item = graph_put(&emu, &token, &format!("v{i}.bin"), &data).await;
        // OneDrive reports no hash for an empty file (onedrive-api-docs issue 1704).
        let shown = if data.is_empty() { json!(null) } else { json!(expected) };
        assert_eq!(item["file"]["hashes"]["quickXorHash"], shown, "vector {input}");
        let info = emu.graph_item_by_path(&format!("/v{i}.bin")).unwrap();
        assert_eq!(info.quick_xor_hash.as_deref(), Some(*expected));
    }
}

async fn ms_token_request(emu: &EmulatorHandle, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http()
        .post(emu.endpoints().microsoft.token(tenant))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, json(resp).await)
}

#[tokio::test]
async fn microsoft_token_endpoint_rotates_and_revokes() {
    let emu = start().await;
    let grant = emu.microsoft_grant();
    assert_eq!(grant["provider"], "onedrive");
    assert!(chrono::DateTime::parse_from_rfc3339(grant["expires_at"].as_str().unwrap()).is_ok());
    assert_eq!(grant.as_object().unwrap().len(), 4);
    let app = emu.microsoft_app().clone();
    let rt1 = grant["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |rt: String| {
        let app = app.clone();
        let emu = &emu;
        async move {
            ms_token_request(
                emu,
                "common",
                &[
                    ("client_id", app.client_id.as_str()),
                    ("client_secret", app.client_secret.as_str()),
                    ("refresh_token", rt.as_str()),
                    ("grant_type", "refresh_token"),
                    ("scope", "Files.ReadWrite offline_access"),
                ],
            )
            .await
        }
    };
    let (status, body) = refresh(rt1.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_i64());
    assert!(body["ext_expires_in"].is_i64());
    let rt2 = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt1, rt2, "a new refresh token on every refresh");
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(
        http()
            .get(graph_url(&emu, "me/drive"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // the old one still works by default
    assert_eq!(refresh(rt1.clone()).await.0, 200);

    // wrong secret, unknown client, unknown token, missing parameter
    let (status, body) = ms_token_request(
        &emu,
        "common",
        &[
            ("client_id", app.client_id.as_str()),
            ("client_secret", "x"),
            ("refresh_token", &rt2),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
    assert_eq!(body["error_codes"], json!([7_000_215]));
    let (status, body) = ms_token_request(
        &emu,
        "consumers",
        &[("client_id", "nope"), ("grant_type", "refresh_token")],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unauthorized_client")));
    let (status, body) = refresh("M.C-unknown".to_owned()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(body["error_codes"], json!([70_000]));
    let (status, body) = ms_token_request(
        &emu,
        "common",
        &[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));

    emu.revoke_grants();
    let (status, body) = refresh(rt2).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], json!([50_173]));
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS50173:"));
    for key in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(body[key].is_string(), "{key}");
    }
}

#[tokio::test]
async fn microsoft_rotated_tokens_can_be_invalidated_and_basic_auth_works() {
    let emu = Emulator::builder()
        .invalidate_rotated_refresh_tokens(true)
        .start()
        .await
        .unwrap();
    let app = emu.microsoft_app().clone();
    let rt1 = emu.microsoft_grant()["refresh_token"].as_str().unwrap().to_owned();
    let resp = http()
        .post(emu.endpoints().microsoft.token("organizations"))
        .basic_auth(&app.client_id, Some(&app.client_secret))
        .form(&[("refresh_token", rt1.as_str()), ("grant_type", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, body) = ms_token_request(
        &emu,
        "common",
        &[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("refresh_token", rt1.as_str()),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn microsoft_authorize_and_code_exchange() {
    let emu = start().await;
    let app = emu.microsoft_app().clone();
    let redirect = "http://localhost:8400/cb";
    let authorize = |scope: &'static str| {
        let url = reqwest::Url::parse_with_params(
            emu.endpoints().microsoft.authorize("common").as_str(),
            &[
                ("client_id", app.client_id.as_str()),
                ("response_type", "code"),
                ("redirect_uri", redirect),
                ("response_mode", "query"),
                ("scope", scope),
                ("state", "abc"),
                ("code_challenge", "plainchallenge"),
                ("code_challenge_method", "plain"),
            ],
        )
        .unwrap();
        async move {
            let resp = http().get(url).send().await.unwrap();
            assert_eq!(resp.status(), 302);
            let loc = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
            let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
            assert_eq!(q["state"], "abc");
            q["code"].clone()
        }
    };
    let exchange = |code: String| {
        let app = app.clone();
        let emu = &emu;
        async move {
            ms_token_request(
                emu,
                "common",
                &[
                    ("client_id", app.client_id.as_str()),
                    ("client_secret", app.client_secret.as_str()),
                    ("code", code.as_str()),
                    ("redirect_uri", redirect),
                    ("grant_type", "authorization_code"),
                    ("code_verifier", "plainchallenge"),
                ],
            )
            .await
        }
    };
    let (status, body) = exchange(authorize("offline_access Files.ReadWrite").await).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string());
    // without offline_access no refresh token
    let (status, body) = exchange(authorize("Files.ReadWrite").await).await;
    assert_eq!(status, 200);
    assert!(body.get("refresh_token").is_none());
    let (status, body) = exchange("bogus".to_owned()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn folders_drives_path_and_session_update_by_id() {
    let emu = start().await;
    let token = ms_token(&emu);
    let resp = http()
        .post(graph_url(&emu, "me/drive/root/children"))
        .bearer_auth(&token)
        .json(&json!({"name": "New Folder", "folder": {}, "@microsoft.graph.conflictBehavior": "fail"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let folder = json(resp).await;
    assert_eq!(folder["folder"]["childCount"], 0);
    let resp = http()
        .post(graph_url(&emu, "me/drive/root/children"))
        .bearer_auth(&token)
        .json(&json!({"name": "new folder", "folder": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409, "names are case-insensitive");

    let item = graph_put(&emu, &token, "New%20Folder/f.txt", b"v1").await;
    let id = item["id"].as_str().unwrap();
    let drive_id = item["parentReference"]["driveId"].as_str().unwrap();
    let resp = http()
        .get(graph_url(&emu, &format!("drives/{drive_id}/items/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http()
        .get(graph_url(&emu, &format!("drives/other/items/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // a session on an existing item replaces its content, keeping the id
    let resp = http()
        .post(graph_url(&emu, &format!("me/drive/items/{id}/createUploadSession")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let url = json(resp).await["uploadUrl"].as_str().unwrap().to_owned();
    let resp = fragment(&url, 0, b"version two", 11).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp).await["id"], json!(id));
    assert_eq!(emu.graph_item_content(id).unwrap(), &b"version two"[..]);

    // 405 in Graph's shape
    let resp = http()
        .patch(graph_url(&emu, "me/drive"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(json(resp).await["error"]["code"], "invalidRequest");
    let resp = http()
        .post(format!("{}up/nope", emu.content_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn download_urls_are_signed_and_expire() {
    let emu = Emulator::builder()
        .download_url_lifetime(std::time::Duration::from_secs(2))
        .start()
        .await
        .unwrap();
    let token = ms_token(&emu);
    let item = graph_put(&emu, &token, "exp.bin", b"data").await;
    let url = item["@microsoft.graph.downloadUrl"].as_str().unwrap().to_owned();
    assert!(url.contains("tempauth="));
    assert_eq!(http().get(&url).send().await.unwrap().status(), 200);
    let tampered = format!("{}0", url);
    assert_eq!(http().get(&tampered).send().await.unwrap().status(), 401);
    let stripped = url.split('?').next().unwrap();
    assert_eq!(http().get(stripped).send().await.unwrap().status(), 401);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let resp = http().get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    // a fresh URL works again; a replaced file's old URL is gone
    let fresh = json(
        http()
            .get(graph_url(
                &emu,
                "me/drive/root:/exp.bin:?%24select=%40microsoft.graph.downloadUrl",
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await["@microsoft.graph.downloadUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(http().get(&fresh).send().await.unwrap().status(), 200);
    graph_put(&emu, &token, "exp.bin", b"new data").await;
    assert_eq!(http().get(&fresh).send().await.unwrap().status(), 404);
}

/// `PATCH` renames; a clash in any case is 409 whatever `conflictBehavior`
/// says; `if-match` guards updates and deletes with 412.
#[tokio::test]
async fn rename_never_replaces_and_if_match_guards_delete() {
    let emu = start().await;
    let token = ms_token(&emu);
    let a = graph_put(&emu, &token, "dir/a.bin", b"a").await;
    graph_put(&emu, &token, "dir/B.bin", b"b").await;
    let id = a["id"].as_str().unwrap();
    let patch = |url: String, body: Value| {
        let token = token.clone();
        async move { http().patch(url).bearer_auth(token).json(&body).send().await.unwrap() }
    };
    let clash = patch(
        graph_url(
            &emu,
            &format!("me/drive/items/{id}?@microsoft.graph.conflictBehavior=replace"),
        ),
        json!({"name": "b.bin"}),
    )
    .await;
    assert_eq!(clash.status(), 409);
    assert_eq!(json(clash).await["error"]["code"], "nameAlreadyExists");
    assert!(emu.graph_item_by_path("/dir/B.bin").is_some(), "nothing was replaced");
    let renamed = patch(
        graph_url(&emu, &format!("me/drive/items/{id}")),
        json!({"name": "c.bin"}),
    )
    .await;
    assert_eq!(renamed.status(), 200);
    let renamed = json(renamed).await;
    assert_eq!(renamed["name"], "c.bin");
    assert_eq!(renamed["id"], a["id"]);
    let etag = renamed["eTag"].as_str().unwrap().to_owned();
    // The eTag read before the rename no longer matches.
    let stale = http()
        .delete(graph_url(&emu, &format!("me/drive/items/{id}")))
        .bearer_auth(&token)
        .header("if-match", a["eTag"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let fresh = http()
        .delete(graph_url(&emu, &format!("me/drive/items/{id}")))
        .bearer_auth(&token)
        .header("if-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 204);
    assert!(emu.graph_item_by_path("/dir/c.bin").is_none());
}

/// A leading `~` is refused, as OneDrive for Business does.
#[tokio::test]
async fn a_leading_tilde_is_an_invalid_name() {
    let emu = start().await;
    let token = ms_token(&emu);
    let resp = http()
        .put(graph_url(&emu, "me/drive/root:/~lock.bin:/content"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}
