//! Drive v3 endpoints and Google OAuth, with plain reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use storage_core::Checksum;
use storage_emulator::Emulator;

const UNIT: usize = 256 * 1024;

#[tokio::test]
async fn multipart_upload_then_metadata_with_string_size_and_md5() {
    let emu = start().await;
    let token = google_token(&emu);
    let data = pattern(1000);
    let file = drive_put(&emu, &token, "a b&c.txt", &data).await;
    assert_eq!(file["name"], "a b&c.txt");
    assert_eq!(file["mimeType"], "text/plain");
    // int64 as a JSON string
    assert_eq!(file["size"], json!("1000"));
    assert_eq!(file["md5Checksum"], json!(Checksum::md5_of(&data).to_provider_string()));
    let id = file["id"].as_str().unwrap();
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));

    let resp = http()
        .get(drive_url(
            &emu,
            &format!("files/{id}?fields=id%2Cname%2Csize%2Cmd5Checksum&alt=json"),
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let meta = json(resp).await;
    assert_eq!(
        meta,
        json!({"id": id, "name": "a b&c.txt", "size": "1000",
               "md5Checksum": Checksum::md5_of(&data).to_provider_string()})
    );

    // default fields: kind,id,name,mimeType
    let meta = json(
        http()
            .get(drive_url(&emu, &format!("files/{id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let keys: Vec<&str> = meta.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 4, "{meta}");
    assert_eq!(meta["kind"], "drive#file");
    assert_eq!(emu.drive_file_content(id).unwrap(), data);
}

#[tokio::test]
async fn media_upload_is_untitled_and_invalid_fields_mask_is_400() {
    let emu = start().await;
    let token = google_token(&emu);
    let resp = http()
        .post(root_url(&emu, "upload/drive/v3/files?uploadType=media"))
        .bearer_auth(&token)
        .header("content-type", "application/pdf")
        .body("%PDF")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let file = json(resp).await;
    assert_eq!(file["name"], "Untitled");
    assert_eq!(file["mimeType"], "application/pdf");

    let resp = http()
        .get(drive_url(
            &emu,
            &format!("files/{}?fields=files(id", file["id"].as_str().unwrap()),
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let err = json(resp).await;
    assert_eq!(err["error"]["code"], 400);

    let resp = http()
        .post(root_url(&emu, "upload/drive/v3/files?uploadType=bogus"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn download_with_range_and_errors() {
    let emu = start().await;
    let token = google_token(&emu);
    let data = pattern(2048);
    let id = drive_put(&emu, &token, "r.bin", &data).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let url = drive_url(&emu, &format!("files/{id}?alt=media"));
    let full = http().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["content-type"], "text/plain");
    assert_eq!(full.bytes().await.unwrap(), data);

    let part = http()
        .get(&url)
        .bearer_auth(&token)
        .header("range", "bytes=500-999")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.headers()["content-range"], "bytes 500-999/2048");
    assert_eq!(part.bytes().await.unwrap(), &data[500..1000]);

    let bad = http()
        .get(&url)
        .bearer_auth(&token)
        .header("range", "bytes=4096-")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 416);

    let missing = http()
        .get(drive_url(&emu, "files/nope?alt=media"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let err = json(missing).await;
    assert_eq!(err["error"]["code"], 404);
    assert_eq!(err["error"]["message"], "File not found: nope.");
    assert_eq!(err["error"]["errors"][0]["reason"], "notFound");
    assert_eq!(err["error"]["errors"][0]["location"], "fileId");
}

#[tokio::test]
async fn delete_is_204_then_404() {
    let emu = start().await;
    let token = google_token(&emu);
    let id = drive_put(&emu, &token, "d.txt", b"x").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // google-drive3 sends a trailing `?`
    let url = drive_url(&emu, &format!("files/{id}?"));
    let resp = http().delete(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert!(emu.drive_files().is_empty());
    let again = http().delete(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test]
async fn folders_list_with_q_and_paging() {
    let emu = start().await;
    let token = google_token(&emu);
    let folder = json(
        http()
            .post(drive_url(&emu, "files?fields=id,mimeType"))
            .bearer_auth(&token)
            .json(&json!({"name": "dir", "mimeType": "application/vnd.google-apps.folder"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let folder_id = folder["id"].as_str().unwrap().to_owned();
    assert_eq!(folder["mimeType"], "application/vnd.google-apps.folder");
    // three files in the folder named "x y", one elsewhere with the same name
    for _ in 0..3 {
        let meta = json!({"name": "x y", "parents": [folder_id]});
        let resp = http()
            .post(drive_url(&emu, "files"))
            .bearer_auth(&token)
            .json(&meta)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    drive_put(&emu, &token, "x y", b"other").await;

    let q = format!("name = 'x y' and '{folder_id}' in parents and trashed = false");
    let list = |page: Option<String>| {
        let mut params = vec![
            ("spaces", "drive".to_owned()),
            ("q", q.clone()),
            ("pageSize", "2".to_owned()),
            ("fields", "nextPageToken,files(id,name)".to_owned()),
            ("alt", "json".to_owned()),
        ];
        if let Some(p) = page {
            params.push(("pageToken", p));
        }
        let url = reqwest::Url::parse_with_params(&drive_url(&emu, "files"), &params).unwrap();
        let token = token.clone();
        async move {
            let resp = http().get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            json(resp).await
        }
    };
    let first = list(None).await;
    assert_eq!(first["files"].as_array().unwrap().len(), 2);
    assert_eq!(first["files"][0].as_object().unwrap().len(), 2);
    let token2 = first["nextPageToken"].as_str().unwrap().to_owned();
    let second = list(Some(token2)).await;
    assert_eq!(second["files"].as_array().unwrap().len(), 1);
    assert!(second.get("nextPageToken").is_none());

    // the 'root' alias and malformed queries
    let url = reqwest::Url::parse_with_params(
        &drive_url(&emu, "files"),
        &[("q", "'root' in parents and name contains 'x'")],
    )
    .unwrap();
    let root_list = json(http().get(url).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(root_list["kind"], "drive#fileList");
    assert_eq!(root_list["files"].as_array().unwrap().len(), 1);
    let url = reqwest::Url::parse_with_params(&drive_url(&emu, "files"), &[("q", "name = ")]).unwrap();
    let bad = http().get(url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    let bad = json(bad).await;
    assert_eq!(bad["error"]["code"], 400);

    // PATCH metadata: rename and move to root
    let id = first["files"][0]["id"].as_str().unwrap();
    let patched = json(
        http()
            .patch(drive_url(
                &emu,
                &format!("files/{id}?addParents=root&removeParents={folder_id}&fields=name,parents"),
            ))
            .bearer_auth(&token)
            .json(&json!({"name": "renamed"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(patched["name"], "renamed");
    assert_ne!(patched["parents"][0], json!(folder_id));

    // deleting the folder removes its remaining children
    let resp = http()
        .delete(drive_url(&emu, &format!("files/{folder_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(emu.drive_files().len(), 2);
}

#[tokio::test]
async fn about_requires_fields_and_uses_strings() {
    let emu = start().await;
    let token = google_token(&emu);
    drive_put(&emu, &token, "a", &[0u8; 10]).await;
    let resp = http()
        .get(drive_url(&emu, "about"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let about = json(
        http()
            .get(drive_url(&emu, "about?fields=user%2CstorageQuota&alt=json"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(about["storageQuota"]["usage"], json!("10"));
    assert!(about["storageQuota"]["limit"].is_string());
    assert_eq!(about["user"]["me"], true);
    assert!(about.get("kind").is_none());
}

#[tokio::test]
async fn api_calls_need_a_valid_token() {
    let emu = start().await;
    let token = google_token(&emu);
    let url = drive_url(&emu, "files");
    let check = |resp: reqwest::Response| async move {
        assert_eq!(resp.status(), 401);
        assert!(resp.headers().contains_key("www-authenticate"));
        let err = json(resp).await;
        assert_eq!(err["error"]["code"], 401);
        assert_eq!(err["error"]["errors"][0]["reason"], "authError");
        assert_eq!(err["error"]["errors"][0]["location"], "Authorization");
    };
    check(http().get(&url).send().await.unwrap()).await;
    check(http().get(&url).bearer_auth("ya29.bogus").send().await.unwrap()).await;
    // a Microsoft token is not a Google token
    check(http().get(&url).bearer_auth(ms_token(&emu)).send().await.unwrap()).await;
    assert_eq!(http().get(&url).bearer_auth(&token).send().await.unwrap().status(), 200);
    emu.expire_access_tokens();
    check(http().get(&url).bearer_auth(&token).send().await.unwrap()).await;
    let fresh = google_token(&emu);
    assert_eq!(http().get(&url).bearer_auth(&fresh).send().await.unwrap().status(), 200);
    emu.revoke_grants();
    check(http().get(&url).bearer_auth(&fresh).send().await.unwrap()).await;
}

/// Starts a resumable session at the path google-drive3 uses or the documented one.
async fn initiate(emu: &storage_emulator::EmulatorHandle, token: &str, path: &str, len: Option<usize>) -> String {
    let mut req = http()
        .post(root_url(emu, path))
        .bearer_auth(token)
        .header("x-upload-content-type", "application/octet-stream")
        .json(&json!({"name": "big.bin"}));
    if let Some(len) = len {
        req = req.header("x-upload-content-length", len.to_string());
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-guploader-uploadid"));
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(resp.bytes().await.unwrap().is_empty());
    location
}

async fn chunk(location: &str, range: &str, body: Vec<u8>, post: bool) -> reqwest::Response {
    let req = if post {
        http().post(location)
    } else {
        http().put(location)
    };
    req.header("content-range", range).body(body).send().await.unwrap()
}

#[tokio::test]
async fn resumable_upload_308_range_and_201() {
    let emu = start().await;
    let token = google_token(&emu);
    let data = pattern(2 * UNIT + 5);
    let location = initiate(
        &emu,
        &token,
        "resumable/upload/drive/v3/files?alt=json&uploadType=resumable&fields=id,size,md5Checksum",
        None,
    )
    .await;
    // the session URI is absolute, on the second origin
    assert!(location.starts_with(emu.content_base().as_str()), "{location}");
    assert!(location.contains("upload_id="));
    assert_eq!(emu.drive_open_sessions(), 1);

    // status query before any byte: 308 without Range
    let status = chunk(&location, &format!("bytes */{}", data.len()), Vec::new(), false).await;
    assert_eq!(status.status(), 308);
    assert!(status.headers().get("range").is_none());

    let total = data.len();
    let first = chunk(
        &location,
        &format!("bytes 0-{}/{total}", UNIT - 1),
        data[..UNIT].to_vec(),
        true,
    )
    .await;
    assert_eq!(first.status(), 308);
    assert_eq!(first.headers()["range"], format!("bytes=0-{}", UNIT - 1));
    // nothing visible yet
    assert!(emu.drive_files().is_empty());

    let status = chunk(&location, &format!("bytes */{total}"), Vec::new(), false).await;
    assert_eq!(status.status(), 308);
    assert_eq!(status.headers()["range"], format!("bytes=0-{}", UNIT - 1));

    let last = chunk(
        &location,
        &format!("bytes {UNIT}-{}/{total}", total - 1),
        data[UNIT..].to_vec(),
        false,
    )
    .await;
    assert_eq!(last.status(), 201);
    let file = json(last).await;
    assert_eq!(file["size"], json!(total.to_string()));
    assert_eq!(file["md5Checksum"], json!(Checksum::md5_of(&data).to_provider_string()));
    assert_eq!(file.as_object().unwrap().len(), 3);
    assert_eq!(emu.drive_file_content(file["id"].as_str().unwrap()).unwrap(), data);
    assert_eq!(emu.drive_open_sessions(), 0);

    // a status query after completion answers with the file again
    let again = chunk(&location, &format!("bytes */{total}"), Vec::new(), false).await;
    assert_eq!(again.status(), 201);
}

#[tokio::test]
async fn resumable_update_finishes_with_200_and_zero_bytes_via_status_query() {
    let emu = start().await;
    let token = google_token(&emu);
    let id = drive_put(&emu, &token, "u.txt", b"old").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resp = http()
        .patch(root_url(
            &emu,
            &format!("upload/drive/v3/files/{id}?uploadType=resumable"),
        ))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let done = chunk(&location, "bytes 0-2/3", b"new".to_vec(), false).await;
    assert_eq!(done.status(), 200);
    assert_eq!(emu.drive_file_content(&id).unwrap(), &b"new"[..]);

    // 0 bytes: `bytes */0` completes the upload
    let location = initiate(&emu, &token, "upload/drive/v3/files?uploadType=resumable", Some(0)).await;
    let done = chunk(&location, "bytes */0", Vec::new(), false).await;
    assert_eq!(done.status(), 201);
    let file = json(done).await;
    assert_eq!(emu.drive_file_content(file["id"].as_str().unwrap()).unwrap().len(), 0);
}

#[tokio::test]
async fn strict_mode_keeps_whole_256k_units_and_rejects_bad_ranges() {
    let emu = start().await;
    let token = google_token(&emu);
    let data = pattern(3 * UNIT);
    let total = data.len();
    let location = initiate(&emu, &token, "upload/drive/v3/files?uploadType=resumable", Some(total)).await;

    // misaligned non-final chunk: only whole 256 KiB units are kept
    let n = UNIT + 100;
    let resp = chunk(
        &location,
        &format!("bytes 0-{}/{total}", n - 1),
        data[..n].to_vec(),
        false,
    )
    .await;
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["range"], format!("bytes=0-{}", UNIT - 1));

    // malformed Content-Range
    let resp = chunk(&location, "bytes 0-x/10", b"x".to_vec(), false).await;
    assert_eq!(resp.status(), 400);
    let err = json(resp).await;
    assert_eq!(err["error"]["message"], "Failed to parse Content-Range header.");
    // a range that does not follow on (gap), as google-drive3 would send after ignoring Range
    let resp = chunk(
        &location,
        &format!("bytes {n}-{}/{total}", total - 1),
        data[n..].to_vec(),
        false,
    )
    .await;
    assert_eq!(resp.status(), 400);
    // a total that changes
    let resp = chunk(
        &location,
        &format!("bytes {UNIT}-{}/{}", UNIT, total + 1),
        vec![0],
        false,
    )
    .await;
    assert_eq!(resp.status(), 400);
    // length that does not match the range
    let resp = chunk(
        &location,
        &format!("bytes {UNIT}-{}/{total}", UNIT + 9),
        vec![0; 3],
        false,
    )
    .await;
    assert_eq!(resp.status(), 400);

    // resuming from Range + 1 completes correctly
    let resp = chunk(
        &location,
        &format!("bytes {UNIT}-{}/{total}", total - 1),
        data[UNIT..].to_vec(),
        false,
    )
    .await;
    assert_eq!(resp.status(), 201);
    let file = json(resp).await;
    assert_eq!(emu.drive_file_content(file["id"].as_str().unwrap()).unwrap(), data);
}

#[tokio::test]
async fn lenient_mode_keeps_misaligned_chunks() {
    let emu = Emulator::builder().lenient(true).start().await.unwrap();
    let token = google_token(&emu);
    let location = initiate(&emu, &token, "upload/drive/v3/files?uploadType=resumable", Some(300)).await;
    let resp = chunk(&location, "bytes 0-99/300", vec![1; 100], false).await;
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["range"], "bytes=0-99");
}

#[tokio::test]
async fn unknown_and_expired_sessions_are_404() {
    let emu = Emulator::builder()
        .upload_session_lifetime(std::time::Duration::from_millis(200))
        .start()
        .await
        .unwrap();
    let token = google_token(&emu);
    let location = initiate(&emu, &token, "upload/drive/v3/files?uploadType=resumable", Some(10)).await;
    let bogus = format!(
        "{}upload/drive/v3/files?uploadType=resumable&upload_id=nope",
        emu.content_base()
    );
    let resp = chunk(&bogus, "bytes 0-9/10", vec![0; 10], false).await;
    assert_eq!(resp.status(), 404);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let resp = chunk(&location, "bytes 0-9/10", vec![0; 10], false).await;
    assert_eq!(resp.status(), 404);
    assert!(emu.drive_files().is_empty());
}

async fn token_request(emu: &storage_emulator::EmulatorHandle, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = http().post(root_url(emu, path)).form(form).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, json(resp).await)
}

#[tokio::test]
async fn google_token_endpoint_refresh_and_errors() {
    let emu = start().await;
    let grant = emu.google_grant();
    assert_eq!(grant["provider"], "gdrive");
    assert_eq!(grant["token_uri"], emu.endpoints().google.token.as_str());
    assert_eq!(grant["client_id"], "emulator-google-client");
    assert!(chrono::DateTime::parse_from_rfc3339(grant["expiry"].as_str().unwrap()).is_ok());
    let rt = grant["refresh_token"].as_str().unwrap();
    let app = emu.google_app().clone();
    let refresh = [
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.as_str()),
        ("refresh_token", rt),
        ("grant_type", "refresh_token"),
    ];
    for path in ["token", "o/oauth2/token"] {
        let (status, body) = token_request(&emu, path, &refresh).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body["expires_in"].as_i64().unwrap() > 3000);
        // Google does not rotate refresh tokens
        assert!(body.get("refresh_token").is_none());
        let access = body["access_token"].as_str().unwrap();
        let resp = http()
            .get(drive_url(&emu, "files"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }

    let (status, body) = token_request(
        &emu,
        "token",
        &[
            ("client_id", app.client_id.as_str()),
            ("client_secret", "wrong"),
            ("refresh_token", rt),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));

    let (status, body) = token_request(
        &emu,
        "token",
        &[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("refresh_token", "1//unknown"),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    let (status, body) = token_request(
        &emu,
        "token",
        &[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("grant_type", "password"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("unsupported_grant_type")));

    emu.revoke_grants();
    let (status, body) = token_request(&emu, "token", &refresh).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );
}

#[tokio::test]
async fn google_authorize_redirects_with_code_and_pkce_exchange() {
    let emu = start().await;
    let app = emu.google_app().clone();
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let redirect = "http://127.0.0.1:9/callback";
    let url = reqwest::Url::parse_with_params(
        emu.endpoints().google.authorize.as_str(),
        &[
            ("client_id", app.client_id.as_str()),
            ("redirect_uri", redirect),
            ("response_type", "code"),
            ("scope", "https://www.googleapis.com/auth/drive.file"),
            ("access_type", "offline"),
            ("prompt", "consent"),
            ("state", "st8"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let resp = http().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect));
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "st8");
    let code = params["code"].clone();

    let exchange = |verifier: &'static str, code: String| {
        let app = app.clone();
        let emu_token = emu.endpoints().google.token.clone();
        async move {
            let resp = http()
                .post(emu_token)
                .form(&[
                    ("code", code.as_str()),
                    ("client_id", app.client_id.as_str()),
                    ("client_secret", app.client_secret.as_str()),
                    ("redirect_uri", redirect),
                    ("grant_type", "authorization_code"),
                    ("code_verifier", verifier),
                ])
                .send()
                .await
                .unwrap();
            (resp.status().as_u16(), json(resp).await)
        }
    };
    let (status, body) = exchange(verifier, code.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["refresh_token"].is_string());
    // a code works once
    let (status, body) = exchange(verifier, code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // wrong verifier
    let resp = http()
        .get(
            reqwest::Url::parse_with_params(
                emu.endpoints().google.authorize.as_str(),
                &[
                    ("client_id", app.client_id.as_str()),
                    ("redirect_uri", redirect),
                    ("response_type", "code"),
                    ("code_challenge", challenge),
                    ("code_challenge_method", "S256"),
                ],
            )
            .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let (status, body) = exchange("wrong-verifier", code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));

    // unknown client
    let resp = http()
        .get(format!(
            "{}?client_id=nope&redirect_uri={redirect}&response_type=code",
            emu.endpoints().google.authorize
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn content_updates_by_media_multipart_and_resumable_path() {
    let emu = start().await;
    let token = google_token(&emu);
    let id = drive_put(&emu, &token, "v.txt", b"one").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let resp = http()
        .patch(root_url(
            &emu,
            &format!("upload/drive/v3/files/{id}?uploadType=media&fields=size,version"),
        ))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("two!")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let file = json(resp).await;
    assert_eq!(file["size"], json!("4"));
    assert_eq!(file["version"], json!("2"));

    let body = "--B\r\ncontent-type: application/json\r\n\r\n{\"name\":\"w.txt\"}\r\n--B\r\ncontent-type: text/plain\r\n\r\nthree\r\n--B--";
    let resp = http()
        .patch(root_url(
            &emu,
            &format!("upload/drive/v3/files/{id}?uploadType=multipart&fields=name"),
        ))
        .bearer_auth(&token)
        .header("content-type", "multipart/related;boundary=B")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(json(resp).await["name"], "w.txt");
    assert_eq!(emu.drive_file_content(&id).unwrap(), &b"three"[..]);

    // google-drive3's files.update + media path
    let resp = http()
        .patch(root_url(
            &emu,
            &format!("resumable/upload/drive/v3/files/{id}?alt=json&uploadType=resumable"),
        ))
        .bearer_auth(&token)
        .header("x-upload-content-type", "text/plain")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = http()
        .post(&location)
        .header("content-range", "bytes 0-3/4")
        .body("four")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(emu.drive_file_content(&id).unwrap(), &b"four"[..]);

    // unknown ids
    let resp = http()
        .patch(root_url(&emu, "upload/drive/v3/files/missing?uploadType=media"))
        .bearer_auth(&token)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // malformed multipart
    let resp = http()
        .post(root_url(&emu, "upload/drive/v3/files?uploadType=multipart"))
        .bearer_auth(&token)
        .header("content-type", "multipart/related; boundary=B")
        .body("--B\r\nbroken")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(json(resp).await["error"]["code"], 400);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_google_error_bodies() {
    let emu = start().await;
    let token = google_token(&emu);
    let resp = http()
        .put(drive_url(&emu, "files/abc"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let err = json(resp).await;
    assert_eq!(err["error"]["code"], 405);
    assert!(err["error"]["errors"][0]["reason"].is_string());
    // an id that is not valid UTF-8 after decoding still gets Drive's JSON 404
    let resp = http()
        .get(drive_url(&emu, "files/%FF%FE"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await["error"]["errors"][0]["reason"], "notFound");
    let resp = http()
        .get(drive_url(&emu, "nothing/here"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(json(resp).await["error"]["code"], 404);
}

#[tokio::test]
async fn refresh_token_of_another_client_is_unauthorized_client() {
    let other = storage_emulator::AppCredentials::new("other-client", "other-secret");
    let emu = Emulator::builder()
        .extra_google_app(other.clone())
        .start()
        .await
        .unwrap();
    let grant = emu.google_grant();
    let rt = grant["refresh_token"].as_str().unwrap();
    let (status, body) = token_request(
        &emu,
        "token",
        &[
            ("client_id", other.client_id.as_str()),
            ("client_secret", other.client_secret.as_str()),
            ("refresh_token", rt),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"error": "unauthorized_client", "error_description": "Unauthorized"})
    );
    // the issuing client still refreshes
    let app = emu.google_app().clone();
    let (status, _) = token_request(
        &emu,
        "token",
        &[
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.as_str()),
            ("refresh_token", rt),
            ("grant_type", "refresh_token"),
        ],
    )
    .await;
    assert_eq!(status, 200);
}

async fn drive_folder(emu: &storage_emulator::EmulatorHandle, token: &str, name: &str) -> String {
    let resp = http()
        .post(drive_url(emu, "files"))
        .bearer_auth(token)
        .json(&json!({"name": name, "mimeType": "application/vnd.google-apps.folder"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    json(resp).await["id"].as_str().unwrap().to_owned()
}

async fn names_matching(emu: &storage_emulator::EmulatorHandle, token: &str, q: &str) -> Vec<String> {
    let resp = http()
        .get(drive_url(emu, "files"))
        .query(&[("q", q), ("fields", "files(name)")])
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut names: Vec<String> = json(resp).await["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// `name =` ignores case while names keep theirs (goindex-theme-acrou PR 86).
#[tokio::test]
async fn name_queries_ignore_case_and_names_keep_it() {
    let emu = start().await;
    let token = google_token(&emu);
    drive_put(&emu, &token, "Report.pdf", b"upper").await;
    drive_put(&emu, &token, "report.pdf", b"lower").await;
    assert_eq!(
        names_matching(&emu, &token, "name = 'REPORT.PDF'").await,
        ["Report.pdf", "report.pdf"]
    );
    assert!(names_matching(&emu, &token, "name != 'report.pdf'").await.is_empty());
    assert_eq!(names_matching(&emu, &token, "name contains 'rep'").await.len(), 2);
}

/// Under `drive.file` a file the user added is invisible to the app, yet a
/// folder delete destroys it; trashing the folder (a `files.update` PATCH)
/// trashes it instead, and it can be restored.
#[tokio::test]
async fn files_the_user_added_are_invisible_but_go_with_their_folder() {
    let emu = start().await;
    let token = google_token(&emu);
    let folder = drive_folder(&emu, &token, "app").await;
    let hidden = emu.drive_add_user_file(&folder, "photo.jpg", b"mine".to_vec()).unwrap();
    assert!(emu.drive_add_user_file("nope", "x", b"x".to_vec()).is_none());
    // Invisible: not listed, 404 to get, update and delete.
    let q = format!("'{folder}' in parents");
    assert!(names_matching(&emu, &token, &q).await.is_empty());
    let get = http()
        .get(drive_url(&emu, &format!("files/{hidden}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 404);
    let patch = http()
        .patch(drive_url(&emu, &format!("files/{hidden}")))
        .bearer_auth(&token)
        .json(&json!({"trashed": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(patch.status(), 404);
    let delete = http()
        .delete(drive_url(&emu, &format!("files/{hidden}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 404);
    assert!(emu.drive_file_content(&hidden).is_some());
    // Trashing the folder trashes what it holds; restoring restores it.
    for trashed in [true, false] {
        let resp = http()
            .patch(drive_url(&emu, &format!("files/{folder}?fields=id,trashed")))
            .bearer_auth(&token)
            .json(&json!({"trashed": trashed}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(json(resp).await["trashed"], json!(trashed));
        let state = emu.drive_files();
        let photo = state.iter().find(|f| f.id == hidden).unwrap();
        assert_eq!(photo.trashed, trashed);
        assert!(!photo.created_by_app);
    }
    // A delete of the folder destroys the invisible file with it.
    let delete = http()
        .delete(drive_url(&emu, &format!("files/{folder}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 204);
    assert!(emu.drive_file_content(&hidden).is_none());
}

/// `files.update` (PATCH): rename, trash and untrash with descendants, move
/// with `addParents`/`removeParents`, and the real service's refusals.
#[tokio::test]
async fn files_update_renames_trashes_and_moves_with_the_strict_checks() {
    let emu = start().await;
    let token = google_token(&emu);
    let c = http();
    let create = |meta: Value| {
        let req = c
            .post(drive_url(&emu, "files?fields=id"))
            .bearer_auth(&token)
            .json(&meta);
        async move { json(req.send().await.unwrap()).await["id"].as_str().unwrap().to_owned() }
    };
    let folder_mime = "application/vnd.google-apps.folder";
    let a = create(json!({"name": "a", "mimeType": folder_mime})).await;
    let b = create(json!({"name": "b", "mimeType": folder_mime})).await;
    let inner = create(json!({"name": "inner", "mimeType": folder_mime, "parents": [a]})).await;
    let doc = create(json!({"name": "doc.pdf", "parents": [inner]})).await;
    let patch = |id: &str, query: &str, body: Value| {
        let req = c
            .patch(drive_url(
                &emu,
                &format!("files/{id}?fields=id,name,parents,trashed{query}"),
            ))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let resp = req.send().await.unwrap();
            (resp.status().as_u16(), json(resp).await)
        }
    };
    let listed = |q: String| {
        let mut url = url::Url::parse(&drive_url(&emu, "files")).unwrap();
        url.query_pairs_mut()
            .append_pair("q", &q)
            .append_pair("fields", "files(id)");
        let req = c.get(url).bearer_auth(&token);
        async move {
            let body = json(req.send().await.unwrap()).await;
            body["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };

    // Rename.
    let (status, body) = patch(&doc, "", json!({"name": "renamed.pdf"})).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("renamed.pdf")));

    // Trash a folder: its descendants go too, and leave `trashed = false` listings.
    let (status, body) = patch(&a, "", json!({"trashed": true})).await;
    assert_eq!((status, body["trashed"].as_bool()), (200, Some(true)));
    assert!(
        listed(format!("'{inner}' in parents and trashed = false"))
            .await
            .is_empty()
    );
    assert_eq!(
        listed(format!("'{inner}' in parents and trashed = true")).await,
        [doc.as_str()]
    );
    // Untrash: the descendants come back.
    assert_eq!(patch(&a, "", json!({"trashed": false})).await.0, 200);
    assert_eq!(
        listed(format!("'{inner}' in parents and trashed = false")).await,
        [doc.as_str()]
    );

    // Move from a's subfolder to b.
    let (status, body) = patch(&doc, &format!("&addParents={b}&removeParents={inner}"), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["parents"], json!([b]));

    // Refusals, each leaving the file as it was.
    let (status, body) = patch(&doc, "", json!({"parents": [a]})).await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (403, Some("fieldNotWritable"))
    );
    for field in ["id", "size", "md5Checksum"] {
        let (status, body) = patch(&doc, "", json!({field: "x"})).await;
        assert_eq!(
            (status, body["error"]["errors"][0]["reason"].as_str()),
            (403, Some("fieldNotWritable")),
            "{field}"
        );
    }
    let (status, body) = patch(&doc, &format!("&addParents={a}"), json!({})).await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (403, Some("cannotAddParent"))
    );
    let (status, _) = patch(&a, &format!("&addParents={inner}&removeParents=root"), json!({})).await;
    assert_eq!(status, 400, "a folder moved into its own subfolder");
    let (status, _) = patch(&doc, "", json!({"trashed": "yes"})).await;
    assert_eq!(status, 400);
    let (status, _) = patch(&doc, &format!("&addParents={doc}&removeParents={b}"), json!({})).await;
    assert_eq!(status, 404, "a file is no folder to move into");
    let (status, _) = patch("missing", "", json!({"name": "x"})).await;
    assert_eq!(status, 404);
    let (_, now) = patch(&doc, "", json!({})).await;
    assert_eq!(
        (now["name"].as_str(), &now["parents"]),
        (Some("renamed.pdf"), &json!([b]))
    );
    assert_eq!(now["trashed"], false);
}
