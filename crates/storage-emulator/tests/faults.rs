//! Fault injection and the request journal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use storage_emulator::{Emulator, FaultAction, FaultRule, Origin, Provider};

#[tokio::test]
async fn respond_with_status_headers_and_provider_bodies() {
    let emu = start().await;
    let g = google_token(&emu);
    let m = ms_token(&emu);
    let faults = emu.faults();
    let rule = faults.add(
        FaultRule::new(FaultAction::retry_after(503, 7))
            .provider(Provider::Google)
            .method("GET")
            .path("/drive/v3/files*")
            .skip(1)
            .times(2),
    );
    let url = drive_url(&emu, "files");
    let statuses = {
        let mut out = Vec::new();
        for _ in 0..4 {
            let resp = http().get(&url).bearer_auth(&g).send().await.unwrap();
            let status = resp.status().as_u16();
            if status == 503 {
                assert_eq!(resp.headers()["retry-after"], "7");
                let body = json(resp).await;
                assert_eq!(body["error"]["code"], 503);
                assert_eq!(body["error"]["errors"][0]["reason"], "backendError");
            }
            out.push(status);
        }
        out
    };
    assert_eq!(statuses, [200, 503, 503, 200]);
    assert_eq!(faults.fired(rule), 2);
    // the rule does not touch Graph
    assert_eq!(
        http()
            .get(graph_url(&emu, "me/drive"))
            .bearer_auth(&m)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    faults.add(
        FaultRule::new(FaultAction::retry_after(429, 3))
            .provider(Provider::Microsoft)
            .times(1),
    );
    let resp = http()
        .get(graph_url(&emu, "me/drive"))
        .bearer_auth(&m)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    assert_eq!(json(resp).await["error"]["code"], "activityLimitReached");

    for reason in ["userRateLimitExceeded", "rateLimitExceeded"] {
        faults.add(
            FaultRule::new(FaultAction::google_error(403, reason))
                .path("/drive/*")
                .times(1),
        );
        let resp = http().get(&url).bearer_auth(&g).send().await.unwrap();
        assert_eq!(resp.status(), 403);
        let body = json(resp).await;
        assert_eq!(body["error"]["code"], 403);
        assert_eq!(body["error"]["errors"][0]["reason"], reason);
        assert_eq!(body["error"]["errors"][0]["domain"], "usageLimits");
    }
    for status in [500, 502] {
        faults.add(FaultRule::new(FaultAction::status(status)).times(1));
        assert_eq!(
            http().get(&url).bearer_auth(&g).send().await.unwrap().status().as_u16(),
            status
        );
        faults.add(FaultRule::new(FaultAction::status(status)).times(1));
        let resp = http()
            .get(graph_url(&emu, "me/drive"))
            .bearer_auth(&m)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        assert!(json(resp).await["error"]["code"].is_string());
    }
    // explicit body and header
    faults.add(
        FaultRule::new(FaultAction::Respond {
            status: 502,
            headers: vec![("x-test".into(), "1".into())],
            body: Some("<html>bad gateway</html>".into()),
        })
        .times(1),
    );
    let resp = http().get(&url).bearer_auth(&g).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.headers()["x-test"], "1");
    assert_eq!(resp.text().await.unwrap(), "<html>bad gateway</html>");
    assert!(faults.active().iter().all(|r| r.times.is_some()));
    assert_eq!(http().get(&url).bearer_auth(&g).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn reset_before_response_breaks_the_request_only_once() {
    let emu = start().await;
    let g = google_token(&emu);
    emu.faults().add(
        FaultRule::new(FaultAction::ResetBeforeResponse)
            .path("/drive/v3/files")
            .times(1),
    );
    let url = drive_url(&emu, "files");
    let err = http().get(&url).bearer_auth(&g).send().await.unwrap_err();
    assert!(err.is_request() || err.is_connect() || err.is_body(), "{err:?}");
    assert_eq!(http().get(&url).bearer_auth(&g).send().await.unwrap().status(), 200);
}

async fn big_file(emu: &storage_emulator::EmulatorHandle, g: &str) -> (String, Vec<u8>) {
    let data = pattern(200_000);
    let id = drive_put(emu, g, "big.bin", &data).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (id, data)
}

#[tokio::test]
async fn reset_mid_body_and_truncate_cut_downloads() {
    let emu = start().await;
    let g = google_token(&emu);
    let (id, data) = big_file(&emu, &g).await;
    let url = drive_url(&emu, &format!("files/{id}?alt=media"));
    for action in [
        FaultAction::ResetMidBody { after_bytes: 1000 },
        FaultAction::TruncateBody { after_bytes: 1000 },
    ] {
        emu.faults()
            .add(FaultRule::new(action.clone()).path("/drive/v3/files/*").times(1));
        let resp = http().get(&url).bearer_auth(&g).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.content_length(), Some(data.len() as u64));
        let mut resp = resp;
        let mut got = Vec::new();
        let outcome = loop {
            match resp.chunk().await {
                Ok(Some(c)) => got.extend_from_slice(&c),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        assert!(outcome.is_err(), "{action:?} should fail the body");
        assert_eq!(got.len(), 1000, "{action:?}");
        assert_eq!(got, &data[..1000]);
    }
    // the next download is whole
    let resp = http().get(&url).bearer_auth(&g).send().await.unwrap();
    assert_eq!(resp.bytes().await.unwrap(), data);
}

#[tokio::test]
async fn partial_chunk_shows_in_range_and_next_expected_ranges() {
    let emu = start().await;
    let g = google_token(&emu);
    let unit = 256 * 1024;
    let data = pattern(3 * unit);
    let resp = http()
        .post(root_url(&emu, "upload/drive/v3/files?uploadType=resumable"))
        .bearer_auth(&g)
        .json(&json!({"name": "p.bin"}))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    emu.faults().add(
        FaultRule::new(FaultAction::AcceptPartialChunk { bytes: unit as u64 })
            .origin(Origin::Content)
            .times(1),
    );
    let resp = http()
        .put(&location)
        .header("content-range", format!("bytes 0-{}/{}", 2 * unit - 1, data.len()))
        .body(data[..2 * unit].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["range"], format!("bytes=0-{}", unit - 1));
    let resp = http()
        .put(&location)
        .header(
            "content-range",
            format!("bytes {unit}-{}/{}", data.len() - 1, data.len()),
        )
        .body(data[unit..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let id = json(resp).await["id"].as_str().unwrap().to_owned();
    assert_eq!(emu.drive_file_content(&id).unwrap(), data);

    // Graph: the session reports fewer bytes
    let m = ms_token(&emu);
    let frag = 320 * 1024;
    let resp = http()
        .post(graph_url(&emu, "me/drive/root:/p.bin:/createUploadSession"))
        .bearer_auth(&m)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let upload_url = json(resp).await["uploadUrl"].as_str().unwrap().to_owned();
    emu.faults().add(
        FaultRule::new(FaultAction::AcceptPartialChunk { bytes: 1000 })
            .path("/up/*")
            .times(1),
    );
    let resp = http()
        .put(&upload_url)
        .header("content-range", format!("bytes 0-{}/{}", frag - 1, 2 * frag))
        .body(vec![7u8; frag])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(json(resp).await["nextExpectedRanges"], json!(["1000-"]));
}

#[tokio::test]
async fn expire_upload_session_fault() {
    let emu = start().await;
    let g = google_token(&emu);
    let m = ms_token(&emu);
    let resp = http()
        .post(root_url(&emu, "upload/drive/v3/files?uploadType=resumable"))
        .bearer_auth(&g)
        .json(&json!({"name": "e.bin"}))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let resp = http()
        .post(graph_url(&emu, "me/drive/root:/e.bin:/createUploadSession"))
        .bearer_auth(&m)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let upload_url = json(resp).await["uploadUrl"].as_str().unwrap().to_owned();
    emu.faults()
        .add(FaultRule::new(FaultAction::ExpireUploadSession).origin(Origin::Content));
    let resp = http()
        .put(&location)
        .header("content-range", "bytes 0-2/3")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = http()
        .put(&upload_url)
        .header("content-range", "bytes 0-2/3")
        .body("abc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(emu.graph_open_sessions(), 0);
    assert!(emu.drive_files().is_empty() && emu.graph_items().is_empty());
}

#[tokio::test]
async fn delay_fault_slows_matching_requests() {
    let emu = start().await;
    let g = google_token(&emu);
    let rule = emu.faults().add(
        FaultRule::new(FaultAction::Delay { millis: 300 })
            .method("GET")
            .times(1),
    );
    let url = drive_url(&emu, "files");
    let started = Instant::now();
    assert_eq!(http().get(&url).bearer_auth(&g).send().await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(http().get(&url).bearer_auth(&g).send().await.unwrap().status(), 200);
    assert_eq!(emu.faults().fired(rule), 1);
}

#[tokio::test]
async fn rate_limit_per_grant() {
    let emu = start().await;
    let a = google_token(&emu);
    let b = google_token(&emu);
    emu.faults().add(FaultRule::new(FaultAction::RateLimitPerGrant {
        limit: 2,
        window_millis: 60_000,
        retry_after_secs: None,
    }));
    let url = drive_url(&emu, "files");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(http().get(&url).bearer_auth(&a).send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 403]);
    let resp = http().get(&url).bearer_auth(&a).send().await.unwrap();
    assert_eq!(
        json(resp).await["error"]["errors"][0]["reason"],
        "userRateLimitExceeded"
    );
    assert_eq!(http().get(&url).bearer_auth(&b).send().await.unwrap().status(), 200);

    let emu = Emulator::builder()
        .fault(FaultRule::new(FaultAction::RateLimitPerGrant {
            limit: 1,
            window_millis: 60_000,
            retry_after_secs: Some(5),
        }))
        .start()
        .await
        .unwrap();
    let m = ms_token(&emu);
    let url = graph_url(&emu, "me/drive");
    assert_eq!(http().get(&url).bearer_auth(&m).send().await.unwrap().status(), 200);
    let resp = http().get(&url).bearer_auth(&m).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "5");
}

#[tokio::test]
async fn rules_load_from_json() {
    let emu = start().await;
    let g = google_token(&emu);
    let ids = emu
        .faults()
        .add_json(
            r#"[{"provider":"google","path":"/drive/v3/about","times":1,"action":{"kind":"respond","status":500}}]"#,
        )
        .unwrap();
    assert_eq!(ids.len(), 1);
    let url = drive_url(&emu, "about?fields=user");
    assert_eq!(http().get(&url).bearer_auth(&g).send().await.unwrap().status(), 500);
    assert_eq!(http().get(&url).bearer_auth(&g).send().await.unwrap().status(), 200);
    assert!(emu.faults().remove(ids[0]));
    assert!(emu.faults().add_json("[{\"action\":{\"kind\":\"nope\"}}]").is_err());
}

#[tokio::test]
async fn journal_records_requests_tokens_and_connections() {
    let emu = start().await;
    let g = google_token(&emu);
    let m = ms_token(&emu);
    let client = http();
    for _ in 0..3 {
        client
            .get(drive_url(&emu, "files?q=name+%3D+%27x+y%27"))
            .bearer_auth(&g)
            .send()
            .await
            .unwrap();
    }
    let item = graph_put(&emu, &m, "j.txt", b"12345").await;
    let url = item["@microsoft.graph.downloadUrl"].as_str().unwrap();
    reqwest::Client::new()
        .get(url)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let journal = emu.journal();
    assert_eq!(journal.len(), 5);
    let lists = journal.requests("GET", "/drive/v3/files");
    assert_eq!(lists.len(), 3);
    assert_eq!(lists[0].query_param("q").as_deref(), Some("name = 'x y'"));
    assert_eq!(lists[0].bearer_token(), Some(g.as_str()));
    assert_eq!(lists[0].provider, Some(Provider::Google));
    // the reused client kept one connection for its three requests
    assert_eq!(
        lists
            .iter()
            .map(|e| e.connection)
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        1
    );
    let put = journal.requests("PUT", "/v1.0/");
    assert_eq!(put[0].body_len, 5);
    assert_eq!(journal.with_bearer(&m).len(), 1);
    let dl = journal.for_origin(Origin::Content);
    assert_eq!(dl.len(), 1);
    assert!(dl[0].header("authorization").is_none());
    assert_eq!(journal.for_provider(Provider::Microsoft).len(), 2);
    assert_eq!(journal.with_authorization().len(), 4);
    assert!(journal.connection_count() >= 2);
    assert!(emu.connections_accepted() >= journal.connection_count() as u64);
    let seqs: Vec<u64> = journal.entries().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    emu.clear_journal();
    assert!(emu.journal().is_empty());
}

#[tokio::test]
async fn reset_after_processing_keeps_the_stored_chunk() {
    let emu = start().await;
    let g = google_token(&emu);
    let unit = 256 * 1024;
    let resp = http()
        .post(root_url(&emu, "upload/drive/v3/files?uploadType=resumable"))
        .bearer_auth(&g)
        .json(&json!({"name": "lost-answer.bin"}))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    emu.faults().add(
        FaultRule::new(FaultAction::ResetAfterProcessing)
            .origin(Origin::Content)
            .times(1),
    );
    let err = http()
        .put(&location)
        .header("content-range", format!("bytes 0-{}/{}", unit - 1, 2 * unit))
        .body(vec![1u8; unit])
        .send()
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_body() || err.is_connect(), "{err:?}");
    // the server kept the chunk: the status query says so
    let resp = http()
        .put(&location)
        .header("content-range", format!("bytes */{}", 2 * unit))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["range"], format!("bytes=0-{}", unit - 1));

    // Graph: resending the fragment overlaps (416); the status shows where to go on
    let m = ms_token(&emu);
    let frag = 320 * 1024;
    let resp = http()
        .post(graph_url(&emu, "me/drive/root:/lost.bin:/createUploadSession"))
        .bearer_auth(&m)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let url = json(resp).await["uploadUrl"].as_str().unwrap().to_owned();
    emu.faults()
        .add(FaultRule::new(FaultAction::ResetAfterProcessing).path("/up/*").times(1));
    let send = || {
        http()
            .put(&url)
            .header("content-range", format!("bytes 0-{}/{}", frag - 1, 2 * frag))
            .body(vec![2u8; frag])
            .send()
    };
    assert!(send().await.is_err());
    assert_eq!(send().await.unwrap().status(), 416);
    let status = json(http().get(&url).send().await.unwrap()).await;
    assert_eq!(status["nextExpectedRanges"], json!([format!("{frag}-")]));
}

/// `delay_response` serves first and answers late; `delay` waits first, and
/// either way a client that gives up does not undo the request.
#[tokio::test]
async fn delayed_answers_and_dropped_clients_do_not_undo_requests() {
    let emu = start().await;
    let g = google_token(&emu);
    let create = |name: &'static str| {
        http()
            .post(drive_url(&emu, "files"))
            .bearer_auth(&g)
            .timeout(Duration::from_millis(100))
            .json(&json!({"name": name}))
            .send()
    };
    for (action, name) in [
        (FaultAction::DelayResponse { millis: 400 }, "answered-late"),
        (FaultAction::Delay { millis: 400 }, "served-late"),
    ] {
        emu.faults().add(FaultRule::new(action).method("POST").times(1));
        let err = create(name).await.unwrap_err();
        assert!(err.is_timeout(), "{name}: {err:?}");
        let deadline = Instant::now() + Duration::from_secs(3);
        while !emu.drive_files().iter().any(|f| f.name == name) {
            assert!(Instant::now() < deadline, "{name}: the request was undone");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
