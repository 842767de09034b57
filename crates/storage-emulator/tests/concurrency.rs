//! Load: many concurrent requests and concurrent upload sessions on one emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;
use storage_core::Checksum;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests() {
    let emu = start().await;
    let g = google_token(&emu);
    let m = ms_token(&emu);
    let data = pattern(4096);
    let id = drive_put(&emu, &g, "shared.bin", &data).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    graph_put(&emu, &m, "shared.bin", &data).await;
    let client = http();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let client = client.clone();
        let (g, m, id, data) = (g.clone(), m.clone(), id.clone(), data.clone());
        let drive_media = drive_url(&emu, &format!("files/{id}?alt=media"));
        let drive_meta = drive_url(&emu, &format!("files/{id}?fields=size"));
        let graph_item = graph_url(&emu, "me/drive/root:/shared.bin:");
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => {
                    let resp = client.get(drive_media).bearer_auth(&g).send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    assert_eq!(resp.bytes().await.unwrap(), data);
                }
                1 => {
                    let resp = client.get(drive_meta).bearer_auth(&g).send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    assert_eq!(resp.json::<serde_json::Value>().await.unwrap(), json!({"size": "4096"}));
                }
                _ => {
                    let resp = client.get(graph_item).bearer_auth(&m).send().await.unwrap();
                    assert_eq!(resp.status(), 200);
                    let item: serde_json::Value = resp.json().await.unwrap();
                    assert_eq!(item["size"], 4096);
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(emu.journal().len(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_upload_sessions_keep_their_own_bytes() {
    let emu = start().await;
    let g = google_token(&emu);
    let m = ms_token(&emu);
    let client = http();
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let client = client.clone();
        let (g, m) = (g.clone(), m.clone());
        let drive_start = root_url(&emu, "upload/drive/v3/files?uploadType=resumable&fields=id,md5Checksum");
        let graph_start = graph_url(&emu, &format!("me/drive/root:/c/{i}.bin:/createUploadSession"));
        tasks.push(tokio::spawn(async move {
            // Drive: three 256 KiB chunks + a tail, unique content per session
            let unit = 256 * 1024;
            let data: Vec<u8> = (0..3 * unit + 11).map(|j| (j as u8).wrapping_mul(i + 1)).collect();
            let resp = client
                .post(drive_start)
                .bearer_auth(&g)
                .json(&json!({"name": format!("{i}.bin")}))
                .send()
                .await
                .unwrap();
            let location = resp.headers()["location"].to_str().unwrap().to_owned();
            let mut offset = 0;
            while offset < data.len() {
                let end = (offset + unit).min(data.len());
                let resp = client
                    .put(&location)
                    .header("content-range", format!("bytes {offset}-{}/{}", end - 1, data.len()))
                    .body(data[offset..end].to_vec())
                    .send()
                    .await
                    .unwrap();
                if end < data.len() {
                    assert_eq!(resp.status(), 308);
                } else {
                    assert_eq!(resp.status(), 201);
                    let file: serde_json::Value = resp.json().await.unwrap();
                    assert_eq!(file["md5Checksum"], json!(Checksum::md5_of(&data).to_provider_string()));
                }
                offset = end;
                tokio::task::yield_now().await;
            }
            // Graph: two 320 KiB fragments + a tail
            let frag = 320 * 1024;
            let gdata: Vec<u8> = (0..2 * frag + 5).map(|j| (j as u8) ^ i).collect();
            let resp = client
                .post(graph_start)
                .bearer_auth(&m)
                .json(&json!({}))
                .send()
                .await
                .unwrap();
            let session: serde_json::Value = resp.json().await.unwrap();
            let url = session["uploadUrl"].as_str().unwrap().to_owned();
            let mut offset = 0;
            while offset < gdata.len() {
                let end = (offset + frag).min(gdata.len());
                let resp = client
                    .put(&url)
                    .header("content-range", format!("bytes {offset}-{}/{}", end - 1, gdata.len()))
                    .body(gdata[offset..end].to_vec())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), if end < gdata.len() { 202 } else { 201 });
                offset = end;
                tokio::task::yield_now().await;
            }
            (i, data, gdata)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let files = emu.drive_files();
    assert_eq!(files.len(), 8);
    for (i, data, gdata) in results {
        let file = files.iter().find(|f| f.name == format!("{i}.bin")).unwrap();
        assert_eq!(emu.drive_file_content(&file.id).unwrap(), data);
        let item = emu.graph_item_by_path(&format!("/c/{i}.bin")).unwrap();
        assert_eq!(emu.graph_item_content(&item.id).unwrap(), gdata);
        assert_eq!(
            item.quick_xor_hash,
            Some(Checksum::quick_xor_of(&gdata).to_provider_string())
        );
    }
    assert_eq!(emu.drive_open_sessions(), 0);
    assert_eq!(emu.graph_open_sessions(), 0);
}
