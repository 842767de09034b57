//! The unmodified official clients against the emulator: google-drive3 7.0.0 (`DriveHub`) and
//! graph-rs-sdk 3.0.1 (`GraphClient`), changed only in their base URLs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Cursor;

use common::*;
use google_drive3::api::File;
use google_drive3::{DriveHub, hyper_util};
use graph_rs_sdk::http::{BodyRead, Url};
use graph_rs_sdk::{GraphClient, GraphClientConfiguration, ODataQuery};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use storage_core::Checksum;
use storage_emulator::{EmulatorHandle, Origin};

type Hub = DriveHub<hyper_util::client::legacy::connect::HttpConnector>;

/// A `DriveHub` as an application builds one, with both base URLs pointed at the emulator.
fn hub(emu: &EmulatorHandle, token: String) -> Hub {
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
    let mut hub = DriveHub::new(client, token);
    hub.base_url(emu.endpoints().google.api.to_string());
    hub.root_url(emu.endpoints().google.root.to_string());
    hub
}

#[tokio::test]
async fn drive_hub_create_get_download_list_delete() {
    let emu = start().await;
    let hub = hub(&emu, google_token(&emu));
    let data = pattern(10_000);
    let mime: mime::Mime = "text/plain".parse().unwrap();

    let folder = File {
        name: Some("sdk dir".into()),
        mime_type: Some("application/vnd.google-apps.folder".into()),
        ..Default::default()
    };
    // files.create in google-drive3 always uploads; a folder goes up as a 0-byte multipart
    let (_, folder) = hub
        .files()
        .create(folder)
        .param("fields", "id")
        .upload(Cursor::new(Vec::new()), "application/octet-stream".parse().unwrap())
        .await
        .unwrap();
    let folder_id = folder.id.unwrap();

    // create (multipart upload)
    let request = File {
        name: Some("x y's.txt".into()),
        parents: Some(vec![folder_id.clone()]),
        ..Default::default()
    };
    let (resp, created) = hub
        .files()
        .create(request)
        .param("fields", "id,name,size,md5Checksum")
        .upload(Cursor::new(data.clone()), mime.clone())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let id = created.id.clone().unwrap();
    assert_eq!(created.size, Some(10_000));
    assert_eq!(
        created.md5_checksum.as_deref(),
        Some(Checksum::md5_of(&data).to_provider_string().as_str())
    );

    // get metadata
    let (_, meta) = hub
        .files()
        .get(&id)
        .param("fields", "id,name,size,md5Checksum,parents")
        .supports_all_drives(true)
        .doit()
        .await
        .unwrap();
    assert_eq!(meta.name.as_deref(), Some("x y's.txt"));
    assert_eq!(meta.size, Some(10_000));
    assert_eq!(meta.parents, Some(vec![folder_id.clone()]));

    // download
    let (resp, _) = hub.files().get(&id).param("alt", "media").doit().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, data);

    // list with the query the backend uses (escaped quote)
    let q = format!("name = 'x y\\'s.txt' and '{folder_id}' in parents and trashed = false");
    let (_, list) = hub
        .files()
        .list()
        .q(&q)
        .page_size(100)
        .spaces("drive")
        .param("fields", "nextPageToken,files(id,name)")
        .doit()
        .await
        .unwrap();
    let files = list.files.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].id.as_deref(), Some(id.as_str()));
    assert!(list.next_page_token.is_none());

    // about
    let (_, about) = hub
        .about()
        .get()
        .param("fields", "user,storageQuota")
        .doit()
        .await
        .unwrap();
    assert_eq!(about.storage_quota.unwrap().usage, Some(10_000));

    // delete, then a 404 surfaces as BadRequest with error.code = 404
    let resp = hub.files().delete(&id).doit().await.unwrap();
    assert_eq!(resp.status(), 204);
    match hub.files().get(&id).doit().await {
        Err(google_drive3::Error::BadRequest(v)) => {
            assert_eq!(v["error"]["code"], 404);
            assert_eq!(v["error"]["errors"][0]["reason"], "notFound");
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
    assert_eq!(emu.drive_files().len(), 1);
    let journal = emu.journal();
    assert!(
        journal
            .requests("DELETE", "/drive/v3/files/")
            .iter()
            .all(|e| e.query.as_deref() == Some(""))
    );
}

#[tokio::test]
async fn drive_hub_resumable_upload_uses_the_resumable_path_without_authorization() {
    let emu = start().await;
    let token = google_token(&emu);
    let hub = hub(&emu, token.clone());
    let data = pattern(300_000);
    let (_, file) = hub
        .files()
        .create(File {
            name: Some("r.bin".into()),
            ..Default::default()
        })
        .param("fields", "id,size")
        .upload_resumable(Cursor::new(data.clone()), "application/octet-stream".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(file.size, Some(300_000));
    assert_eq!(emu.drive_file_content(&file.id.unwrap()).unwrap(), data);
    let journal = emu.journal();
    assert_eq!(journal.requests("POST", "/resumable/upload/drive/v3/files").len(), 1);
    let chunks = journal.for_origin(Origin::Content);
    assert!(!chunks.is_empty());
    assert!(chunks.iter().all(|e| e.header("authorization").is_none()));
}

#[tokio::test]
async fn drive_hub_sees_expired_tokens_as_401_bodies() {
    let emu = start().await;
    let hub = hub(&emu, google_token(&emu));
    emu.expire_access_tokens();
    match hub.files().list().doit().await {
        Err(google_drive3::Error::BadRequest(v)) => {
            assert_eq!(v["error"]["code"], 401);
            assert_eq!(v["error"]["errors"][0]["reason"], "authError");
        }
        other => panic!("expected BadRequest, got {other:?}"),
    }
}

/// A `GraphClient` as an application builds one for a test endpoint.
fn graph(emu: &EmulatorHandle, token: &str) -> GraphClient {
    let cfg = GraphClientConfiguration::new()
        .access_token(token)
        .https_only(false)
        .referer(false);
    let mut client = GraphClient::from(cfg);
    let base = emu.endpoints().microsoft.graph.as_str().trim_end_matches('/');
    client.use_test_endpoint(&Url::parse(base).unwrap());
    client
}

#[tokio::test]
async fn graph_client_drive_path_session_download_delete() {
    let emu = start().await;
    let token = ms_token(&emu);
    let client = graph(&emu, &token);

    let resp = client.me().drive().get_drive().send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let drive: Value = resp.json().await.unwrap();
    assert_eq!(drive["driveType"], "business");

    // simple upload by path, then get it by path
    let data = pattern(5000);
    let resp = client
        .me()
        .drive()
        .item_by_path(":/sdk dir/a b&c#d.txt:")
        .update_items_content(BodyRead::from(data.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let resp = client
        .me()
        .drive()
        .item_by_path(":/sdk dir/a b&c#d.txt:")
        .get_items()
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let item: Value = resp.json().await.unwrap();
    assert_eq!(item["name"], "a b&c#d.txt");
    assert_eq!(item["size"], 5000);
    assert_eq!(
        item["file"]["hashes"]["quickXorHash"],
        json!(Checksum::quick_xor_of(&data).to_provider_string())
    );
    let id = item["id"].as_str().unwrap().to_owned();

    // $select
    let resp = client
        .me()
        .drive()
        .item(&id)
        .get_items()
        .select(&["id", "@microsoft.graph.downloadUrl"])
        .send()
        .await
        .unwrap();
    let selected: Value = resp.json().await.unwrap();
    assert_eq!(selected.as_object().unwrap().len(), 2);

    // create an upload session, send fragments with plain reqwest (no Authorization)
    let resp = client
        .me()
        .drive()
        .item_by_path(":/sdk dir/big.bin:")
        .create_upload_session(&json!({"item": {"@microsoft.graph.conflictBehavior": "replace"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let session: Value = resp.json().await.unwrap();
    let upload_url = session["uploadUrl"].as_str().unwrap();
    let frag = 320 * 1024;
    let big = pattern(frag + 10);
    let resp = http()
        .put(upload_url)
        .header("content-range", format!("bytes 0-{}/{}", frag - 1, big.len()))
        .body(big[..frag].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let resp = http()
        .put(upload_url)
        .header("content-range", format!("bytes {frag}-{}/{}", big.len() - 1, big.len()))
        .body(big[frag..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);

    // children
    let folder = emu.graph_item_by_path("/sdk dir").unwrap();
    let resp = client
        .me()
        .drive()
        .item(&folder.id)
        .list_children()
        .top("1")
        .send()
        .await
        .unwrap();
    let page: Value = resp.json().await.unwrap();
    assert_eq!(page["value"].as_array().unwrap().len(), 1);
    assert!(page["@odata.nextLink"].is_string());

    // download: 302 followed to the other port, which never sees the token
    emu.clear_journal();
    let resp = client.me().drive().item(&id).get_items_content().send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), data);
    let journal = emu.journal();
    let downloads = journal.for_origin(Origin::Content);
    assert_eq!(downloads.len(), 1);
    assert!(downloads[0].header("authorization").is_none());
    assert!(downloads[0].header("referer").is_none());

    // delete
    let resp = client.me().drive().item(&id).delete_items().send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = client.me().drive().item(&id).get_items().send().await.unwrap();
    assert_eq!(resp.status(), 404);
    assert!(emu.graph_item_by_path("/sdk dir/a b&c#d.txt").is_none());
    assert!(emu.graph_item_by_path("/sdk dir/big.bin").is_some());
}
