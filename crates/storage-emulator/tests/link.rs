//! The emulated link: measured round trips, setup and rates within 10 % of the
//! profile, and bodies that stream through the shaping instead of waiting whole.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use storage_emulator::{Emulator, EmulatorHandle, LinkProfile};

fn within(measured: Duration, expected: Duration, what: &str) {
    let ratio = measured.as_secs_f64() / expected.as_secs_f64();
    assert!(
        (0.9..=1.1).contains(&ratio),
        "{what}: measured {measured:?}, profile says {expected:?} (ratio {ratio:.3})"
    );
}

async fn start(profile: &str) -> EmulatorHandle {
    Emulator::builder()
        .link(profile.parse().unwrap())
        .start()
        .await
        .unwrap()
}

/// Stores `len` bytes through Graph's simple upload; the item's download URL.
async fn put(emu: &EmulatorHandle, client: &reqwest::Client, token: &str, name: &str, len: usize) -> String {
    let body = vec![7u8; len];
    let url = common::graph_url(emu, &format!("me/drive/root:/link/{name}:/content"));
    let resp = client.put(url).bearer_auth(token).body(body).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let item = common::json(resp).await;
    item["@microsoft.graph.downloadUrl"].as_str().unwrap().to_owned()
}

/// Reads a whole body; (time to the first byte of the body, total time).
async fn get(client: &reqwest::Client, url: &str) -> (Duration, Duration, usize) {
    let t = Instant::now();
    let mut resp = client.get(url).send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let mut first = None;
    let mut len = 0;
    while let Some(chunk) = resp.chunk().await.unwrap() {
        first.get_or_insert_with(|| t.elapsed());
        len += chunk.len();
    }
    (first.unwrap_or_default(), t.elapsed(), len)
}

#[tokio::test]
async fn round_trips_and_connection_setup_follow_the_profile() {
    let emu = start("rtt=100ms").await;
    let client = reqwest::Client::new();
    let about = common::drive_url(&emu, "about?fields=user");
    // A new connection: setup (2 × RTT) and one round trip.
    let t = Instant::now();
    assert_eq!(client.get(&about).send().await.unwrap().status(), 401);
    within(t.elapsed(), Duration::from_millis(300), "first request");
    // The same connection again: one round trip each.
    for i in 0..5 {
        let t = Instant::now();
        assert_eq!(client.get(&about).send().await.unwrap().status(), 401);
        within(
            t.elapsed(),
            Duration::from_millis(100),
            &format!("request {i} on a warm connection"),
        );
    }
    assert_eq!(emu.connections_accepted(), 1);

    // A changed profile applies to new connections only.
    emu.set_link(Some(
        LinkProfile::new(Duration::from_millis(200)).with_setup(Duration::ZERO),
    ));
    let t = Instant::now();
    client.get(&about).send().await.unwrap();
    within(
        t.elapsed(),
        Duration::from_millis(100),
        "the old connection keeps its link",
    );
    let fresh = reqwest::Client::new();
    let t = Instant::now();
    fresh.get(&about).send().await.unwrap();
    within(t.elapsed(), Duration::from_millis(200), "a new connection with setup=0");
    emu.set_link(None);
    let t = Instant::now();
    reqwest::Client::new().get(&about).send().await.unwrap();
    assert!(t.elapsed() < Duration::from_millis(30), "no link: {:?}", t.elapsed());
}

#[tokio::test]
async fn the_rate_holds_both_ways() {
    // 16 Mbit/s = 2 MB/s: 2 MB take one second each way.
    let emu = start("rtt=0ms,rate=16mbit").await;
    let client = reqwest::Client::new();
    let token = common::ms_token(&emu);
    let len = 2_000_000;
    let t = Instant::now();
    let url = put(&emu, &client, &token, "up.bin", len).await;
    within(t.elapsed(), Duration::from_secs(1), "2 MB up at 16 Mbit/s");
    let (_, total, got) = get(&client, &url).await;
    assert_eq!(got, len);
    within(total, Duration::from_secs(1), "2 MB down at 16 Mbit/s");

    // Two downloads at once share the link: two seconds for both.
    let t = Instant::now();
    let (one, two) = (reqwest::Client::new(), reqwest::Client::new());
    let (a, b) = tokio::join!(get(&one, &url), get(&two, &url));
    assert_eq!(a.2 + b.2, 2 * len);
    within(t.elapsed(), Duration::from_secs(2), "2 × 2 MB down sharing 16 Mbit/s");
}

#[tokio::test]
async fn each_connection_has_its_own_rate_under_the_link() {
    // A wide link, narrow connections: two downloads at once each take a second.
    let emu = start("rtt=0ms,rate=1gbit,conn_rate=16mbit").await;
    let client = reqwest::Client::new();
    let token = common::ms_token(&emu);
    let len = 2_000_000;
    let url = put(&emu, &client, &token, "conn.bin", len).await;
    let t = Instant::now();
    let (one, two) = (reqwest::Client::new(), reqwest::Client::new());
    let (a, b) = tokio::join!(get(&one, &url), get(&two, &url));
    assert_eq!(a.2 + b.2, 2 * len);
    within(
        t.elapsed(),
        Duration::from_secs(1),
        "2 × 2 MB on two 16 Mbit/s connections",
    );
}

#[tokio::test]
async fn bodies_stream_through_the_shaping() {
    // 16 MB at 64 Mbit/s: two seconds each way.
    let emu = Emulator::builder()
        .link("rtt=20ms,setup=0ms,rate=64mbit".parse().unwrap())
        // As on a real link, little sits in the receiver's buffer.
        .receive_buffer(64 * 1024)
        .start()
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let token = common::ms_token(&emu);
    let len = 16_000_000;

    // Upload: the client's body is pulled as the link drains it, not at once.
    // Only what the kernel's socket buffers hold (a few MB on loopback) runs ahead.
    let started = Instant::now();
    let pulls = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&pulls);
    let pieces = futures::stream::iter((0..len / 100_000).map(move |_| {
        log.lock().push(started.elapsed());
        Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 100_000]))
    }));
    // A path nothing serves: the emulator reads the whole body, then answers 404,
    // so the time is the transfer's and not a handler's.
    let resp = client
        .put(common::root_url(&emu, "nowhere"))
        .header("content-length", len.to_string())
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .unwrap();
    let total = started.elapsed();
    assert_eq!(resp.status(), 404);
    within(total, Duration::from_secs(2), "16 MB up at 64 Mbit/s");
    let pulls = pulls.lock().clone();
    let three_quarters = pulls[pulls.len() * 3 / 4];
    assert!(
        three_quarters > total.mul_f64(0.4),
        "3/4 of the body was taken after {three_quarters:?} of {total:?}: the upload was not paced by the link"
    );

    // Download: the first bytes arrive after a round trip, not after the whole body.
    let url = put(&emu, &client, &token, "stream.bin", len).await;
    let (first, total, got) = get(&client, &url).await;
    assert_eq!(got, len);
    within(total, Duration::from_secs(2), "16 MB down at 64 Mbit/s");
    assert!(first < Duration::from_millis(200), "first body byte after {first:?}");
}
