//! The reference backend in a real browser: headless Chromium, driven through
//! chromedriver (WebDriver, with `fantoccini`), against the server on the
//! emulator and the emulator's consent pages. Every step leaves a screenshot
//! under `target/browser-e2e/`.
//!
//! Chromium and chromedriver are Debian's `chromium` and `chromium-driver`,
//! which `cargo xtask ci` and `cargo xtask test` install when they are missing
//! (`STORAGE_TEST_CHROMIUM` and `STORAGE_TEST_CHROMEDRIVER` point elsewhere).
//! Without them the tests fail with the reason under `CI=true`, and skip with
//! the reason otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use storage_emulator::EmulatorHandle;
use storage_factory::MemoryCredentialStore;

mod support;

/// The programs, or why the test cannot run.
fn programs() -> Result<(PathBuf, PathBuf), String> {
    let find = |var: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(var) {
            return Some(PathBuf::from(p)).filter(|p| p.is_file());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
            .find(|p| p.is_file())
    };
    let chromium = find(
        "STORAGE_TEST_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let driver = find("STORAGE_TEST_CHROMEDRIVER", &["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Ok((c, d)),
        (c, d) => Err(format!(
            "{} not found: install Debian's chromium and chromium-driver (`cargo xtask test` does), \
             or set STORAGE_TEST_CHROMIUM and STORAGE_TEST_CHROMEDRIVER",
            match (c, d) {
                (None, None) => "chromium and chromedriver",
                (None, _) => "chromium",
                _ => "chromedriver",
            }
        )),
    }
}

/// The programs, or `None` after printing why the test skips; under `CI=true`
/// a missing browser fails the test instead.
fn programs_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    match programs() {
        Ok(p) => Some(p),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{test}: {why}"),
        Err(why) => {
            eprintln!("{test}: skipped: {why}");
            None
        }
    }
}

/// A chromedriver process, killed on drop, and a Chromium session through it.
struct Browser {
    driver: Child,
    client: Client,
    shots: PathBuf,
    downloads: PathBuf,
    profile: PathBuf,
    step: u32,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where the screenshots of `test` go: `target/browser-e2e/{test}/`.
fn shots_dir(test: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = target.join("browser-e2e").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Browser {
    async fn start(test: &str, chromium: &Path, chromedriver: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{test}: chromedriver did not start: {e}"));
        let tmp = std::env::temp_dir().join(format!("storage-browser-{test}-{}", std::process::id()));
        let (profile, downloads) = (tmp.join("profile"), tmp.join("downloads"));
        std::fs::create_dir_all(&downloads).unwrap();
        // The flags a root user in a sandbox with a closed network needs:
        // no sandbox, no GPU, and none of Chromium's background connections.
        let caps = serde_json::json!({
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1000,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads,
                    "download.prompt_for_download": false,
                },
            }
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("{test}: no chromium session through chromedriver: {e}"),
            }
        };
        Self {
            driver,
            client,
            shots: shots_dir(test),
            downloads,
            profile: tmp,
            step: 0,
        }
    }

    /// A screenshot of the page as it is, numbered in the order taken.
    async fn shot(&mut self, what: &str) {
        self.step += 1;
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(self.shots.join(format!("{:02}-{what}.png", self.step)), png).unwrap();
    }

    /// Waits until the page has shown everything it fetched.
    async fn ready(&self) {
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Css("body[data-ready='1']"))
            .await
            .unwrap_or_else(|e| panic!("the page never settled: {e}"));
    }

    async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap().text().await.unwrap()
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// The status cell of `provider` on the page.
    async fn status(&self, provider: &str) -> String {
        self.text(&format!("#conn-{provider} .status")).await
    }

    /// Clicks "Connect"/"Reconnect" for `provider`; stops on its consent page.
    async fn open_consent(&mut self, provider: &str) {
        self.click(&format!("#connect-{provider}")).await;
        self.client
            .wait()
            .at_most(Duration::from_secs(30))
            .for_element(Locator::Id("allow"))
            .await
            .unwrap();
        self.shot(&format!("{provider}-consent")).await;
    }

    /// Answers the consent page with `button` (`allow`, `cancel`); back on the page.
    async fn answer(&mut self, provider: &str, button: &str) {
        self.click(&format!("#{button}")).await;
        self.ready().await;
        self.shot(&format!("{provider}-after-{button}")).await;
    }

    /// The whole connect, "Allow".
    async fn connect(&mut self, provider: &str) {
        self.open_consent(provider).await;
        self.answer(provider, "allow").await;
        assert_eq!(self.text("#notice").await, format!("Connected {provider}."));
        assert_eq!(self.status(provider).await, "connected");
    }

    /// Uploads `file` through the page's form into `provider`.
    async fn upload(&mut self, file: &Path, provider: &str) {
        let input = self.client.find(Locator::Id("file")).await.unwrap();
        input.send_keys(file.to_str().unwrap()).await.unwrap();
        let select = self.client.find(Locator::Id("provider")).await.unwrap();
        select.select_by_value(provider).await.unwrap();
        self.click("#upload").await;
        // `refresh` clears the flag at once; wait for the answer, then the list.
        self.client
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::XPath("//pre[@id='out'][starts-with(., 'Upload')]"))
            .await
            .unwrap();
        self.ready().await;
        let out = self.text("#out").await;
        assert!(out.starts_with("Uploaded: "), "{provider}: {out}");
        self.shot(&format!("{provider}-uploaded")).await;
    }

    /// Clicks the page's link to `provider`'s one document; the bytes the browser saved.
    async fn download(&mut self, provider: &str) -> Vec<u8> {
        let link = self
            .client
            .find(Locator::Css(&format!("a.doc[data-provider='{provider}']")))
            .await
            .unwrap();
        let file = link.attr("download").await.unwrap().unwrap();
        let saved = self.downloads.join(&file);
        let _ = std::fs::remove_file(&saved);
        link.click().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // Chromium writes `{file}.crdownload` and renames it when done.
            if saved.is_file() {
                return std::fs::read(&saved).unwrap();
            }
            assert!(Instant::now() < deadline, "{provider}: {file} was never downloaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A document of `len` bytes that no two offsets of a chunk share.
fn document(dir: &Path, len: usize) -> (PathBuf, Vec<u8>) {
    let body: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(31) % 251) as u8).collect();
    let path = dir.join("scan.pdf");
    std::fs::write(&path, &body).unwrap();
    (path, body)
}

/// What the emulator still holds: live (untrashed) Drive files and folders, and Graph items.
fn held(emu: &EmulatorHandle) -> (usize, usize) {
    let drive = emu.drive_files().into_iter().filter(|f| !f.trashed).count();
    let graph = emu.graph_items().len();
    (drive, graph)
}

/// The emulator, the server, its store rows, and a browser on its home page;
/// `None` when the programs are missing outside CI (the reason is printed).
async fn open_home(test: &str) -> Option<(EmulatorHandle, url::Url, Arc<MemoryCredentialStore>, Browser)> {
    let (chromium, chromedriver) = programs_or_skip(test)?;
    let (emu, server, rows) = support::start().await;
    let b = Browser::start(test, &chromium, &chromedriver).await;
    b.client.goto(server.as_str()).await.unwrap();
    b.ready().await;
    Some((emu, server, rows, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_connects_uploads_downloads_reconnects_and_deletes_the_account() {
    let test = "connect_upload_reauth_delete";
    let Some((emu, server, rows, mut b)) = open_home(test).await else {
        return;
    };
    assert_eq!(b.status("gdrive").await, "not connected");
    b.shot("home").await;

    for provider in ["gdrive", "onedrive"] {
        b.connect(provider).await;
    }
    let session = b.client.get_named_cookie("session").await.unwrap();
    let user = session.value().split('.').next().unwrap().to_owned();
    assert!(
        session.http_only().unwrap_or(false),
        "the session cookie is readable by scripts"
    );

    // Upload through the page into each drive, then download through the page.
    let docs = b.downloads.parent().unwrap().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let (file, body) = document(&docs, 700_001);
    for provider in ["gdrive", "onedrive"] {
        b.upload(&file, provider).await;
    }
    assert_eq!(b.client.find_all(Locator::Css("a.doc")).await.unwrap().len(), 2);
    for provider in ["gdrive", "onedrive"] {
        let got = b.download(provider).await;
        assert!(
            got == body,
            "{provider}: the downloaded bytes differ ({} of {})",
            got.len(),
            body.len()
        );
    }
    b.shot("downloaded").await;

    // The user revokes the grants at the provider: the page says "requires re-auth".
    emu.revoke_grants();
    emu.expire_access_tokens();
    b.client.goto(server.as_str()).await.unwrap();
    b.ready().await;
    for provider in ["gdrive", "onedrive"] {
        assert_eq!(b.status(provider).await, "requires re-auth", "{provider}");
        assert_eq!(b.text(&format!("#connect-{provider}")).await, "Reconnect");
    }
    assert!(b.client.find_all(Locator::Css("a.doc")).await.unwrap().is_empty());
    b.shot("requires-reauth").await;

    // Reconnect both: the documents are listed again and read back the same.
    for provider in ["gdrive", "onedrive"] {
        b.connect(provider).await;
    }
    assert_eq!(b.client.find_all(Locator::Css("a.doc")).await.unwrap().len(), 2);
    let got = b.download("gdrive").await;
    assert!(got == body, "after the reconnect, the bytes differ");
    b.shot("reconnected").await;

    // Delete the account: nothing of the user is left, in the store or the drives.
    b.click("#delete-account").await;
    b.client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::XPath("//pre[@id='out'][starts-with(., 'Account')]"))
        .await
        .unwrap();
    b.ready().await;
    b.shot("account-deleted").await;
    assert!(b.text("#out").await.starts_with("Account deleted: "));
    for provider in ["gdrive", "onedrive"] {
        assert_eq!(b.status(provider).await, "not connected", "{provider}");
        assert!(
            rows.get(&format!("{user}-{provider}")).is_none(),
            "{provider}: a row is left"
        );
    }
    assert_eq!(
        held(&emu),
        (0, 0),
        "the emulator still holds the user's files or folders"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_cancel_and_a_tampered_state_store_nothing() {
    let test = "cancel_and_tampered_state";
    let Some((emu, _server, rows, mut b)) = open_home(test).await else {
        return;
    };

    // "Cancel" on each provider's consent page.
    for provider in ["gdrive", "onedrive"] {
        b.open_consent(provider).await;
        b.answer(provider, "cancel").await;
        assert_eq!(b.text("#notice").await, "Connect failed: access_denied", "{provider}");
        assert_eq!(b.status(provider).await, "not connected");
    }

    // The `state` changed on the consent page before "Allow": the callback refuses it.
    b.open_consent("gdrive").await;
    b.client
        .execute(
            "const s = document.querySelector('input[name=state]'); s.value = 'forged' + s.value;",
            vec![],
        )
        .await
        .unwrap();
    b.answer("gdrive", "allow").await;
    assert_eq!(b.text("#notice").await, "Connect failed: invalid_request");
    assert_eq!(b.status("gdrive").await, "not connected");

    let session = b.client.get_named_cookie("session").await.unwrap();
    let user = session.value().split('.').next().unwrap().to_owned();
    for provider in ["gdrive", "onedrive"] {
        assert!(
            rows.get(&format!("{user}-{provider}")).is_none(),
            "{provider}: a refused connect stored a row"
        );
    }
    emu.shutdown().await;
}
