//! HTTP/2 by prior knowledge (h2c) on the same ports as HTTP/1.1: many
//! streams on one connection, at most 100 at once, and a reset that ends them all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{drive_url, google_token, start};
use storage_emulator::{Emulator, EmulatorHandle, FaultAction, FaultRule, LinkProfile};

fn h2c() -> reqwest::Client {
    reqwest::Client::builder().http2_prior_knowledge().build().unwrap()
}

/// An emulator behind a 200 ms round trip, a Drive token, the `about` URL,
/// and an h2c client whose connection is open.
async fn warm_h2c() -> (EmulatorHandle, String, String, reqwest::Client) {
    let profile: LinkProfile = "rtt=200ms,setup=0ms".parse().unwrap();
    let emu = Emulator::builder().link(profile).start().await.unwrap();
    let g = google_token(&emu);
    let url = drive_url(&emu, "about?fields=user");
    let client = h2c();
    client.get(&url).bearer_auth(&g).send().await.unwrap();
    (emu, g, url, client)
}

#[tokio::test]
async fn one_h2c_connection_carries_every_request_and_http1_still_works() {
    let emu = start().await;
    let g = google_token(&emu);
    let url = drive_url(&emu, "about?fields=user");
    let client = h2c();
    let answers = futures::future::join_all((0..150).map(|_| client.get(&url).bearer_auth(&g).send())).await;
    for a in answers {
        let resp = a.unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
    }
    let journal = emu.journal();
    assert_eq!(journal.len(), 150);
    assert_eq!(
        journal.connection_count(),
        1,
        "150 requests on h2c took several connections"
    );
    assert!(journal.entries().iter().all(|e| e.version == "HTTP/2.0"));

    emu.clear_journal();
    let resp = reqwest::Client::builder()
        .http1_only()
        .build()
        .unwrap()
        .get(&url)
        .bearer_auth(&g)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (resp.version(), resp.status().as_u16()),
        (reqwest::Version::HTTP_11, 200)
    );
    assert_eq!(emu.journal().entries()[0].version, "HTTP/1.1");
    emu.shutdown().await;
}

#[tokio::test]
async fn an_h2c_connection_holds_at_most_100_streams_at_once() {
    // Every request waits 100 ms in each direction, so 150 sent at once
    // overlap: with 100 streams allowed the last 50 wait a round trip for
    // the first answers.
    let (emu, g, url, client) = warm_h2c().await;
    emu.clear_journal();
    let t = Instant::now();
    let mut arrivals = futures::future::join_all((0..150).map(|_| {
        let request = client.get(&url).bearer_auth(&g).send();
        async move {
            request.await.unwrap();
            t.elapsed()
        }
    }))
    .await;
    arrivals.sort();
    assert_eq!(emu.journal().connection_count(), 1);
    // The first 100 answers come after one round trip, the other 50 after two.
    assert!(arrivals[99] < Duration::from_millis(380), "{:?}", arrivals[99]);
    assert!(arrivals[100] >= Duration::from_millis(390), "{:?}", arrivals[100]);
    assert!(arrivals[149] < Duration::from_millis(580), "{:?}", arrivals[149]);
    emu.shutdown().await;
}

#[tokio::test]
async fn a_reset_ends_every_stream_of_the_h2c_connection() {
    let (emu, g, slow, client) = warm_h2c().await;
    let files = drive_url(&emu, "files");
    emu.faults().add(
        FaultRule::new(FaultAction::ResetBeforeResponse)
            .path("/drive/v3/files")
            .times(1),
    );
    // The about request is in flight (waiting out its half round trip back)
    // when the files request on the same connection meets the reset.
    let (about, listed) = tokio::join!(client.get(&slow).bearer_auth(&g).send(), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        client.get(&files).bearer_auth(&g).send().await
    });
    assert!(listed.is_err(), "the reset request was answered");
    assert!(about.is_err(), "a stream of the reset connection was answered");
    // The next request opens a new connection.
    let resp = client.get(&files).bearer_auth(&g).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(emu.journal().connection_count(), 2);
    emu.shutdown().await;
}
