//! The reference backend end to end, as a browser would drive it (cookies,
//! redirects, the emulator's consent pages), against the emulator: connect
//! both providers, upload, download, re-auth after a revoked grant, reconnect,
//! and delete the account, after which the emulator holds nothing of the user.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use reqwest::redirect::Policy;

mod support;
use support::start;

/// A browser: a cookie jar, no automatic redirects.
struct Browser {
    http: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder().redirect(Policy::none()).build().unwrap(),
            cookies: HashMap::new(),
        }
    }

    fn remember(&mut self, resp: &reqwest::Response) {
        for v in resp.headers().get_all("set-cookie") {
            let text = v.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            self.cookies.insert(k.to_owned(), v.to_owned());
        }
    }

    fn jar(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder, ours: bool) -> reqwest::Response {
        let req = if ours { req.header("cookie", self.jar()) } else { req };
        let resp = req.send().await.unwrap();
        if ours {
            self.remember(&resp);
        }
        resp
    }

    /// Follows redirects from `url`, with cookies only for `server`; the last answer.
    async fn visit(&mut self, url: &str, server: &url::Url) -> reqwest::Response {
        let mut url = url.to_owned();
        for _ in 0..10 {
            let ours = url.starts_with(server.as_str());
            let resp = self.send(self.http.get(&url), ours).await;
            if resp.status().as_u16() != 302 {
                return resp;
            }
            url = resp.headers()["location"].to_str().unwrap().to_owned();
            if url.starts_with(&format!("{server}?")) {
                // The frontend: this test reads where it was sent.
                return resp;
            }
        }
        panic!("too many redirects");
    }

    /// The consent page at `consent`, answered with `decision`: the callback URL.
    async fn consent(&self, consent: &str, decision: &str) -> String {
        let page = self.http.get(consent).send().await.unwrap().text().await.unwrap();
        assert!(page.contains(">Allow<") && page.contains(">Cancel<"), "{page}");
        let mut form: Vec<(String, String)> = page
            .split('<')
            .filter(|t| t.starts_with("input type=\"hidden\"") || t.starts_with("input type=\"checkbox\""))
            .filter_map(|t| {
                let field = |n: &str| {
                    let s = t.find(&format!("{n}=\""))? + n.len() + 2;
                    Some(
                        t[s..s + t[s..].find('"')?]
                            .replace("&quot;", "\"")
                            .replace("&amp;", "&"),
                    )
                };
                Some((field("name")?, field("value")?))
            })
            .collect();
        form.push(("decision".into(), decision.into()));
        let posted = self.http.post(consent).form(&form).send().await.unwrap();
        assert_eq!(posted.status().as_u16(), 302);
        posted.headers()["location"].to_str().unwrap().to_owned()
    }

    /// `POST /documents` with a multipart form of `parts`, in order, as a
    /// browser's `FormData` sends it (the `file` part named `scan.pdf`).
    async fn upload(&mut self, server: &url::Url, provider: &str, parts: &[(&str, &[u8])]) -> reqwest::Response {
        let boundary = "----storage-test-7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, value) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            let disposition = if *name == "file" {
                "Content-Disposition: form-data; name=\"file\"; filename=\"scan.pdf\"\r\n\
                 Content-Type: application/pdf\r\n"
                    .to_owned()
            } else {
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n")
            };
            body.extend_from_slice(disposition.as_bytes());
            body.extend_from_slice(b"\r\n");
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let url = server.join(&format!("documents?provider={provider}")).unwrap();
        let req = self
            .http
            .post(url)
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(body);
        self.send(req, true).await
    }

    /// `/connect/{provider}` on the server: the consent page's URL.
    async fn begin(&mut self, server: &url::Url, provider: &str) -> String {
        let resp = self
            .send(
                self.http.get(server.join(&format!("connect/{provider}")).unwrap()),
                true,
            )
            .await;
        assert_eq!(resp.status().as_u16(), 302);
        resp.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Through the connect with `decision`, and back: where the frontend was sent.
    async fn connect_with(&mut self, server: &url::Url, provider: &str, decision: &str) -> String {
        let consent = self.begin(server, provider).await;
        let callback = self.consent(&consent, decision).await;
        self.land(&callback, server).await
    }

    /// Through the connect, "Allow".
    async fn connect(&mut self, server: &url::Url, provider: &str) -> String {
        self.connect_with(server, provider, "allow").await
    }

    /// The server's callback: where it sends the frontend.
    async fn land(&mut self, callback: &str, server: &url::Url) -> String {
        let back = self.visit(callback, server).await;
        back.headers()["location"].to_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_upload_reauth_reconnect_and_delete_the_account() {
    let (emu, server, rows) = start().await;
    let mut browser = Browser::new();
    for provider in ["gdrive", "onedrive"] {
        let landed = browser.connect(&server, provider).await;
        assert!(landed.ends_with(&format!("?connected={provider}")), "{landed}");
    }
    let user = browser.cookies["session"].split('.').next().unwrap().to_owned();
    for (id, row) in [
        ("gdrive", rows.get(&format!("{user}-gdrive"))),
        ("onedrive", rows.get(&format!("{user}-onedrive"))),
    ] {
        assert!(
            storage_web_example::is_sealed(row.unwrap().json.expose()),
            "{id}: a plaintext row"
        );
    }

    // Upload through each provider, then read the bytes back.
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut keys = Vec::new();
    for provider in ["gdrive", "onedrive"] {
        let resp = browser
            .upload(
                &server,
                provider,
                &[("size", body.len().to_string().as_bytes()), ("file", &body)],
            )
            .await;
        assert_eq!(
            resp.status().as_u16(),
            200,
            "{provider}: {}",
            resp.text().await.unwrap()
        );
        let key = resp.json::<serde_json::Value>().await.unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let url = server.join(&format!("documents/{key}?provider={provider}")).unwrap();
        let got = browser.send(browser.http.get(url), true).await.bytes().await.unwrap();
        assert_eq!(got.as_ref(), body.as_slice(), "{provider}: the bytes differ");
        keys.push((provider, key));
    }
    // Without the session, nothing.
    let anonymous = reqwest::get(
        server
            .join(&format!("documents/{}?provider=gdrive", keys[0].1))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);

    // The grants are revoked at the provider: the page says "requires re-auth", with a link.
    emu.revoke_grants();
    emu.expire_access_tokens();
    let url = server
        .join(&format!("documents/{}?provider=gdrive", keys[0].1))
        .unwrap();
    assert_eq!(browser.send(browser.http.get(url), true).await.status().as_u16(), 409);
    let status = |list: &serde_json::Value, p: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["provider"] == p)
            .unwrap()
            .clone()
    };
    let list: serde_json::Value = browser
        .send(browser.http.get(server.join("connections").unwrap()), true)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(status(&list, "gdrive")["status"], "requires_reauth", "{list}");
    assert_eq!(status(&list, "gdrive")["reconnect"], "/connect/gdrive");

    // Reconnect, and the documents are there again.
    let landed = browser.connect(&server, "gdrive").await;
    assert!(landed.ends_with("?connected=gdrive"), "{landed}");
    let url = server
        .join(&format!("documents/{}?provider=gdrive", keys[0].1))
        .unwrap();
    assert_eq!(
        browser
            .send(browser.http.get(url), true)
            .await
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        body.as_slice()
    );
    // OneDrive's grant is revoked too: reconnect it before the account goes.
    let landed = browser.connect(&server, "onedrive").await;
    assert!(landed.ends_with("?connected=onedrive"), "{landed}");

    // Delete the account: every document purged, every connection gone.
    let resp = browser
        .send(browser.http.delete(server.join("account").unwrap()), true)
        .await;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    assert!(rows.get(&format!("{user}-gdrive")).is_none() && rows.get(&format!("{user}-onedrive")).is_none());
    let drive_left = emu
        .drive_files()
        .into_iter()
        .filter(|f| !f.is_folder && !f.trashed)
        .count();
    let graph_left = emu.graph_items().into_iter().filter(|i| !i.is_folder).count();
    assert_eq!(
        (drive_left, graph_left),
        (0, 0),
        "the emulator still holds the user's documents"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_a_tampered_state_land_on_the_frontend_with_an_error() {
    let (emu, server, rows) = start().await;
    let mut browser = Browser::new();
    // Cancel on the consent page.
    let landed = browser.connect_with(&server, "gdrive", "cancel").await;
    assert!(landed.ends_with("?error=access_denied"), "{landed}");

    // A callback whose state was changed on the way.
    let consent = browser.begin(&server, "gdrive").await;
    let callback = browser.consent(&consent, "allow").await;
    let forged = callback.replace("state=", "state=forged");
    let landed = browser.land(&forged, &server).await;
    assert!(landed.ends_with("?error=invalid_request"), "{landed}");
    let user = browser.cookies["session"].split('.').next().unwrap().to_owned();
    assert!(
        rows.get(&format!("{user}-gdrive")).is_none(),
        "a refused connect stored a row"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_whose_size_is_wrong_missing_or_late_stores_nothing() {
    let (emu, server, _rows) = start().await;
    let mut browser = Browser::new();
    let landed = browser.connect(&server, "onedrive").await;
    assert!(landed.ends_with("?connected=onedrive"), "{landed}");
    let landed = browser.connect(&server, "gdrive").await;
    assert!(landed.ends_with("?connected=gdrive"), "{landed}");
    let body = vec![7u8; 100_000];
    for provider in ["gdrive", "onedrive"] {
        for size in [body.len() - 1, body.len() + 1] {
            let size = size.to_string();
            let resp = browser
                .upload(&server, provider, &[("size", size.as_bytes()), ("file", &body)])
                .await;
            assert!(
                resp.status().as_u16() >= 400,
                "{provider}: a {size}-byte claim was accepted"
            );
        }
        let late = browser
            .upload(&server, provider, &[("file", &body), ("size", b"100000")])
            .await;
        assert_eq!(late.status().as_u16(), 400, "{provider}: the size after the file");
        let missing = browser.upload(&server, provider, &[("file", &body)]).await;
        assert_eq!(missing.status().as_u16(), 400, "{provider}: no size");
        let junk = browser
            .upload(&server, provider, &[("size", b"lots"), ("file", &body)])
            .await;
        assert_eq!(junk.status().as_u16(), 400, "{provider}: a size that is no number");
    }
    let drive_docs = emu
        .drive_files()
        .into_iter()
        .filter(|f| !f.is_folder && !f.trashed)
        .count();
    let graph_docs = emu.graph_items().into_iter().filter(|i| !i.is_folder).count();
    assert_eq!((drive_docs, graph_docs), (0, 0), "a refused upload left a document");
    emu.shutdown().await;
}
