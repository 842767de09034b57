//! Raw Graph calls: graph-rs-sdk's `GraphClient` for drive, item, delete and
//! session creation, `reqwest` for what goes to pre-authenticated URLs; and the
//! token source graph-rs-sdk reads.

use std::future::Future;

use bytes::Bytes;
use futures::StreamExt as _;
use graph_core::identity::ForceTokenRefresh;
use graph_rs_sdk::error::{AuthExecutionError, AuthExecutionResult};
use graph_rs_sdk::http::BodyRead;
use graph_rs_sdk::identity::ClientApplication;
use graph_rs_sdk::{GraphClient, GraphClientConfiguration, GraphFailure, GraphResult};
use reqwest::Method;
use serde::Deserialize;
use storage_core::exchange::Exchange;
use storage_core::{ByteStream, ConnectionReason, Result, StorageError, TokenCell};

use crate::config::{GRAPH_HOSTS, MicrosoftEndpoints, OneDriveOptions, is_loopback};
use crate::error::{answer_error, read_json, transport};

/// The fields every item read asks for.
const SELECT: (&str, &str) = ("$select", "id,name,size,file,folder,eTag,@microsoft.graph.downloadUrl");
/// Fail, never replace, on a name clash: a write never overwrites bytes in place.
const FAIL_ON_CONFLICT: (&str, &str) = ("@microsoft.graph.conflictBehavior", "fail");

/// A OneDrive item id as it may enter a URL path: ids look like
/// `01NKDM7HMOJTVYMDOSXFDK2QJDXCDI3WUK` (Business) or `12319191!11919` (Personal).
pub(crate) fn check_item_id(id: &str) -> Result<()> {
    let ok = (1..=256).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'!' | b'_' | b'-' | b'.'))
        && id != "."
        && id != "..";
    if ok {
        Ok(())
    } else {
        Err(StorageError::invalid_input(
            "a onedrive key is an item id of letters, digits, `!`, `.`, `_` and `-`",
        ))
    }
}

/// Where a write lands: a file name inside a folder item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slot {
    /// The folder's item id.
    pub folder: String,
    /// The file's stored name.
    pub name: String,
}

/// The URL path segments of `me/drive/items/{folder}:/{name}:` followed by `tail`.
/// graph-rs-sdk percent-encodes them one by one; stored names hold no `/`, `:`,
/// `#`, `%` or `?` (the rules of [`storage_core::ObjectName`]), so the path cannot break out.
fn in_folder(slot: &Slot, tail: &[&str]) -> Vec<String> {
    let mut path = vec![
        "me".to_owned(),
        "drive".to_owned(),
        "items".to_owned(),
        format!("{}:", slot.folder),
        format!("{}:", slot.name),
    ];
    path.extend(tail.iter().map(|t| (*t).to_owned()));
    path
}

/// The item fields this crate reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct DriveItem {
    #[serde(default)]
    pub id: String,
    /// Graph sends sizes as JSON numbers.
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub file: Option<FileFacet>,
    #[serde(default)]
    pub folder: Option<serde_json::Value>,
    #[serde(default, rename = "@microsoft.graph.downloadUrl")]
    pub download_url: Option<String>,
    /// The stored name, exactly as OneDrive keeps it (its lookups ignore case).
    #[serde(default)]
    pub name: Option<String>,
    /// The version tag a conditional delete names.
    #[serde(default, rename = "eTag")]
    pub e_tag: Option<String>,
    /// When the item last changed, when the request asked for it.
    #[serde(default, rename = "lastModifiedDateTime")]
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FileFacet {
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub hashes: Option<Hashes>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Hashes {
    #[serde(default)]
    pub quick_xor_hash: Option<String>,
}

impl DriveItem {
    pub fn quick_xor(&self) -> Option<&str> {
        self.file.as_ref()?.hashes.as_ref()?.quick_xor_hash.as_deref()
    }

    /// Whether the item is named exactly `name`, case included.
    pub fn named(&self, name: &str) -> bool {
        self.name.as_deref() == Some(name)
    }

    /// The item as a stored document, the only thing a key may name: a folder,
    /// or an item with no file facet (a OneNote notebook, a package), is
    /// `InvalidInput`.
    pub fn into_document(self) -> Result<Self> {
        if self.folder.is_some() {
            return Err(StorageError::invalid_input(
                "the key names a onedrive folder, not a stored document",
            ));
        }
        if self.file.is_none() {
            return Err(StorageError::invalid_input(
                "the key names a onedrive item that is not a file",
            ));
        }
        Ok(self)
    }
}

tokio::task_local! {
    /// The token cell of the connection whose request is running.
    static CURRENT: TokenCell;
}

/// Hands graph-rs-sdk the token of the connection whose request is being sent.
///
/// graph-rs-sdk asks its `ClientApplication` for a token inside the request's
/// own future, so a task-local scope set around each call lets one
/// `GraphClient` (and one connection pool) serve every connection. It never
/// refreshes: graph-oauth would refresh before every call, against a fixed host,
/// and drop the refresh token Microsoft rotates.
#[derive(Clone)]
struct ScopedToken;

impl ScopedToken {
    fn current() -> Option<String> {
        CURRENT
            .try_with(|cell| cell.get())
            .ok()
            .flatten()
            .map(|t| t.expose().to_owned())
    }

    fn missing() -> AuthExecutionError {
        AuthExecutionError::Other("no access token for this request".into())
    }
}

#[async_trait::async_trait]
impl ClientApplication for ScopedToken {
    fn get_token_silent(&mut self) -> AuthExecutionResult<String> {
        Self::current().ok_or_else(Self::missing)
    }

    async fn get_token_silent_async(&mut self) -> AuthExecutionResult<String> {
        Self::current().ok_or_else(Self::missing)
    }

    fn with_force_token_refresh(&mut self, _force: ForceTokenRefresh) {}
}

/// graph-rs-sdk's client and its connection pool, shareable by every backend of
/// an application for the same endpoints: one pool, whatever the number of
/// connections. Each request carries its own connection's token.
#[derive(Clone)]
pub struct GraphPool {
    graph: GraphClient,
    endpoints: MicrosoftEndpoints,
}

impl std::fmt::Debug for GraphPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphPool")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl GraphPool {
    /// A client for `endpoints`.
    ///
    /// # Errors
    /// [`StorageError::InvalidInput`] for endpoints graph-rs-sdk would panic on.
    pub fn new(endpoints: &MicrosoftEndpoints, options: &OneDriveOptions) -> Result<Self> {
        Ok(Self {
            graph: graph_client(endpoints, options)?,
            endpoints: endpoints.clone(),
        })
    }
}

/// One Graph client, one reqwest client, the cell and the options; clones share all.
#[derive(Clone)]
pub(crate) struct OneDriveClient {
    graph: GraphClient,
    /// API calls sent without graph-rs-sdk (next links).
    pub http: reqwest::Client,
    /// Upload and download URLs (see [`storage_core::protocol`]).
    pub transfer: reqwest::Client,
    pub tokens: TokenCell,
    pub endpoints: MicrosoftEndpoints,
    pub options: OneDriveOptions,
}

impl std::fmt::Debug for OneDriveClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneDriveClient")
            .field("endpoints", &self.endpoints)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The reqwest client for API calls sent without graph-rs-sdk (listing pages)
/// when the caller gives none. Like the transfer client it follows no
/// redirect and carries no credentials of its own; it has a connect timeout
/// and no `read_timeout` (a deadline for a body): [`Exchange`] applies the
/// idle timeout instead.
pub(crate) fn default_http(options: &OneDriveOptions) -> Result<reqwest::Client> {
    options
        .http
        .api_client(client_builder(options))
        .build()
        .map_err(|e| StorageError::transport("failed to build the http client", e))
}

/// Builds the API client and the transfer client (see
/// [`storage_core::protocol::clients`]) when the caller gives neither.
pub(crate) fn default_clients(options: &OneDriveOptions) -> Result<(reqwest::Client, reqwest::Client)> {
    storage_core::protocol::clients(options.http, || client_builder(options))
        .map_err(|e| StorageError::transport("failed to build the http client", e))
}

fn client_builder(options: &OneDriveOptions) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
}

/// Builds a `GraphClient` for `endpoints` without ever reaching
/// `use_endpoint`'s panic on an unknown host.
fn graph_client(endpoints: &MicrosoftEndpoints, options: &OneDriveOptions) -> Result<GraphClient> {
    endpoints.validate()?;
    // graph-rs-sdk appends path segments itself; give it the base without the trailing `/`.
    let mut base = endpoints.graph.clone();
    let trimmed = base.path().trim_end_matches('/').to_owned();
    base.set_path(&trimmed);
    // No total timeout: `OneDriveClient::send` applies the idle timeout to every call.
    let config = GraphClientConfiguration::new()
        .client_application(ScopedToken)
        .referer(false)
        .connect_timeout(options.connect_timeout);
    let known = matches!(base.host_str(), Some(h) if GRAPH_HOSTS.contains(&h));
    if known && base.scheme() == "https" {
        let mut client = GraphClient::from(config);
        client.use_endpoint(&base);
        return Ok(client);
    }
    test_client(config, &base)
}

#[cfg(feature = "emulator")]
fn test_client(config: GraphClientConfiguration, base: &url::Url) -> Result<GraphClient> {
    if !is_loopback(base) {
        return Err(StorageError::invalid_input(
            "graph endpoint must be a microsoft graph host or a loopback emulator",
        ));
    }
    let mut client = GraphClient::from(config.https_only(false));
    client.use_test_endpoint(base);
    Ok(client)
}

#[cfg(not(feature = "emulator"))]
fn test_client(_config: GraphClientConfiguration, base: &url::Url) -> Result<GraphClient> {
    let hint = if is_loopback(base) {
        "; a local emulator needs the `emulator` feature"
    } else {
        ""
    };
    Err(StorageError::invalid_input(format!(
        "graph endpoint must be a microsoft graph host{hint}"
    )))
}

impl OneDriveClient {
    pub fn new(
        tokens: TokenCell,
        endpoints: MicrosoftEndpoints,
        options: OneDriveOptions,
        (http, transfer): (reqwest::Client, reqwest::Client),
        pool: Option<GraphPool>,
    ) -> Result<Self> {
        options.validate()?;
        let pool = match pool {
            Some(p) if p.endpoints == endpoints => p,
            Some(_) => {
                return Err(StorageError::invalid_input(
                    "the graph pool was built for other endpoints",
                ));
            }
            None => GraphPool::new(&endpoints, &options)?,
        };
        Ok(Self {
            graph: pool.graph,
            http,
            transfer,
            tokens,
            endpoints,
            options,
        })
    }

    /// Sends one graph-rs-sdk request under the idle timeout
    /// (`options.read_timeout`). Its body is small JSON, so the wait for the
    /// answer's headers is idle time; the answer's body is then watched piece
    /// by piece. graph-rs-sdk returns `Ok` for every status: the caller checks it.
    async fn send(&self, req: impl Future<Output = GraphResult<reqwest::Response>>) -> Result<reqwest::Response> {
        let idle = self.options.read_timeout;
        match tokio::time::timeout(idle, CURRENT.scope(self.tokens.clone(), req)).await {
            Err(_) => Err(storage_core::idle::idle_error("graph did not answer", idle)),
            Ok(Ok(resp)) => storage_core::idle::watch(resp, idle),
            Ok(Err(e)) => Err(self.failure(e)),
        }
    }

    fn failure(&self, e: GraphFailure) -> StorageError {
        if self.tokens.get().is_none() {
            return StorageError::CloudConnection {
                reason: ConnectionReason::TokenExpired,
            };
        }
        // The SDK's error stays boxed as the source, never in the message.
        StorageError::transport("graph request failed", e)
    }

    /// A graph-rs-sdk request to `{graph}/{segments…}`.
    ///
    /// This is `GraphClient::custom`, not the typed builders
    /// (`me().drive().item(id)…`): those render every URL through a freshly
    /// built handlebars registry, which `cargo xtask bench` (scenario 2,
    /// profiled with `perf`) measured at 7.6% of all CPU, about half of what
    /// the library added over raw reqwest. `custom` sends the same request
    /// through the same client, token source and middleware.
    fn request<S: AsRef<str>>(
        &self,
        method: Method,
        path: &[S],
        extras: &Extras<'_>,
    ) -> Result<impl Future<Output = GraphResult<reqwest::Response>> + Send> {
        let body = match (extras.json, &extras.bytes) {
            (Some(json), _) => Some(BodyRead::from_serialize(json).map_err(|e| self.failure(e))?),
            (None, Some(bytes)) => Some(BodyRead::from(bytes.to_vec())),
            (None, None) => None,
        };
        let mut req = self.graph.custom(method, body).extend_path(path);
        if let Some((key, value)) = extras.query {
            req = req.append_query_pair(key, value);
        }
        if let Some(tag) = extras.if_match {
            let value = reqwest::header::HeaderValue::from_str(tag)
                .map_err(|_| StorageError::invalid_input("onedrive sent an etag that is not a header value"))?;
            req = req.header(reqwest::header::IF_MATCH, value);
        }
        Ok(req.send())
    }

    /// The one door for graph-rs-sdk calls: the request, with this
    /// connection's token and the idle timeout, under the retry policy, each
    /// answer read by `read` (a failure status through `error::classify`).
    async fn graph<T, S, R, Fut>(&self, method: Method, path: &[S], extras: Extras<'_>, read: R) -> Result<T>
    where
        S: AsRef<str> + Sync,
        R: Fn(reqwest::Response) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.options
            .retry
            .run(|| async {
                let resp = self.send(self.request(method.clone(), path, &extras)?).await?;
                read(resp).await
            })
            .await
    }

    /// A Graph API call with a JSON answer, through [`OneDriveClient::graph`];
    /// `key` names the item for `NotFound`.
    async fn call<T, S>(
        &self,
        method: Method,
        path: &[S],
        query: Option<(&str, &str)>,
        body: Option<&serde_json::Value>,
        key: Option<&str>,
    ) -> Result<T>
    where
        T: serde::de::DeserializeOwned,
        S: AsRef<str> + Sync,
    {
        let extras = Extras {
            query,
            json: body,
            ..Extras::default()
        };
        self.graph(method, path, extras, |resp| read_json(resp, key)).await
    }

    /// The door for reqwest requests to the Graph API (a next link): this
    /// connection's bearer, the idle timeout and the retry policy.
    fn api<'a>(&'a self, what: &'a str) -> Exchange<'a> {
        Exchange::new(what, self.options.read_timeout)
            .bearer(&self.tokens)
            .retry(&self.options.retry)
    }

    /// The door for pre-authenticated upload and download URLs: no
    /// `Authorization` (a bearer on a fragment PUT may be answered 401, and a
    /// token sent where it is not needed is a token exposed), the idle
    /// timeout, one attempt: the session driver and the download's resume
    /// budget decide what happens next.
    fn preauthorised<'a>(&'a self, what: &'a str) -> Exchange<'a> {
        Exchange::new(what, self.options.read_timeout)
    }

    /// An item by id, with its hash and download URL.
    pub async fn get_item(&self, id: &str) -> Result<DriveItem> {
        check_item_id(id)?;
        self.call(Method::GET, &["me", "drive", "items", id], Some(SELECT), None, Some(id))
            .await
    }

    /// A stored document by key: [`OneDriveClient::get_item`] and
    /// [`DriveItem::into_document`].
    pub async fn document(&self, id: &str) -> Result<DriveItem> {
        self.get_item(id).await?.into_document()
    }

    /// The item at a path of segments below `me/drive/`, or `None` when there is none.
    async fn item_at<S: AsRef<str> + Sync>(&self, path: &[S]) -> Result<Option<DriveItem>> {
        match self
            .call::<DriveItem, S>(Method::GET, path, Some(SELECT), None, None)
            .await
        {
            Ok(item) => Ok(Some(item)),
            Err(StorageError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The item at `root:/{name}:`. OneDrive matches the name without regard to
    /// case; the caller checks [`DriveItem::named`].
    pub async fn top_level(&self, name: &str) -> Result<Option<DriveItem>> {
        self.item_at(&[
            "me".to_owned(),
            "drive".to_owned(),
            "root:".to_owned(),
            format!("{name}:"),
        ])
        .await
    }

    /// The item at a slot (a name in a folder), matched without regard to case.
    pub async fn item_in(&self, slot: &Slot) -> Result<Option<DriveItem>> {
        self.item_at(&in_folder(slot, &[])).await
    }

    /// Every item directly in a folder, across `@odata.nextLink` pages.
    pub async fn children(&self, folder_id: &str) -> Result<Vec<DriveItem>> {
        let mut items = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let (page, link) = self.children_page(folder_id, 200, next.as_deref()).await?;
            items.extend(page);
            match link {
                Some(l) => next = Some(l),
                None => return Ok(items),
            }
        }
    }

    /// One page of up to `top` items directly in a folder, from the start or
    /// from `next` (an `@odata.nextLink`), and the next link when there is one.
    ///
    /// A next link is followed only when it stays on the configured Graph
    /// origin and names this folder: graph-rs-sdk would send the bearer to
    /// wherever a link points, and a link handed back by a caller (a stored page
    /// token) may have been altered.
    pub async fn children_page(
        &self,
        folder_id: &str,
        top: u32,
        next: Option<&str>,
    ) -> Result<(Vec<DriveItem>, Option<String>)> {
        /// One page of `…/children`.
        #[derive(Debug, Deserialize)]
        struct Page {
            #[serde(default)]
            value: Vec<DriveItem>,
            #[serde(default, rename = "@odata.nextLink")]
            next: Option<String>,
        }
        check_item_id(folder_id)?;
        let url = match next {
            Some(link) => self.next_link(link, folder_id)?,
            None => {
                let mut url = self.endpoints.graph.clone();
                url.path_segments_mut()
                    .map_err(|()| StorageError::invalid_input("the graph endpoint cannot hold a path"))?
                    .pop_if_empty()
                    .extend(["me", "drive", "items", folder_id, "children"]);
                url.query_pairs_mut()
                    .append_pair("$select", "id,name,size,file,folder,lastModifiedDateTime")
                    .append_pair("$top", &top.to_string());
                url
            }
        };
        let page: Page = self
            .api("failed to list a folder")
            .run(|| self.http.get(url.clone()), None, |resp| read_json(resp, None))
            .await?;
        Ok((page.value, page.next))
    }

    /// A next link, checked: on the Graph origin, and naming `folder_id` as a
    /// path segment.
    fn next_link(&self, link: &str, folder_id: &str) -> Result<url::Url> {
        let parsed =
            url::Url::parse(link).map_err(|_| StorageError::invalid_input("a graph next link does not parse"))?;
        if parsed.origin() != self.endpoints.graph.origin() {
            return Err(StorageError::invalid_input("a graph next link leads to another host"));
        }
        let names_folder = parsed
            .path_segments()
            .is_some_and(|mut segments| segments.any(|s| s == folder_id));
        if !names_folder {
            return Err(StorageError::invalid_input("a graph next link names another folder"));
        }
        Ok(parsed)
    }

    /// Creates a folder at the top of the drive; `None` when an item of that
    /// name (in any case) exists already.
    pub async fn create_top_folder(&self, name: &str) -> Result<Option<DriveItem>> {
        let body = serde_json::json!({
            "name": name,
            "folder": {},
            "@microsoft.graph.conflictBehavior": "fail",
        });
        let path = ["me", "drive", "root", "children"];
        match self
            .call::<DriveItem, _>(Method::POST, &path, None, Some(&body), None)
            .await
        {
            Ok(item) => Ok(Some(item)),
            Err(StorageError::Provider { status: 409, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Renames an item; `None` when another item of that name (in any case) is
    /// in the way. A rename never replaces: whether Graph honours
    /// `conflictBehavior=replace` on an update is undocumented.
    pub async fn rename(&self, id: &str, name: &str) -> Result<Option<DriveItem>> {
        check_item_id(id)?;
        let body = serde_json::json!({ "name": name });
        let path = ["me", "drive", "items", id];
        match self
            .call::<DriveItem, _>(Method::PATCH, &path, None, Some(&body), Some(id))
            .await
        {
            Ok(item) => Ok(Some(item)),
            Err(StorageError::Provider { status: 409, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Deletes an item (to the recycle bin); one already gone is `Ok`. With an
    /// `etag`, only that version of the item is deleted: `Ok(false)` when it has
    /// changed since (412).
    pub async fn delete_version(&self, id: &str, etag: Option<&str>) -> Result<bool> {
        check_item_id(id)?;
        let extras = Extras {
            if_match: etag,
            ..Extras::default()
        };
        let path = ["me", "drive", "items", id];
        let res = self
            .graph(Method::DELETE, &path, extras, |resp| async move {
                match resp.status().as_u16() {
                    200..=299 => Ok(true),
                    412 => Ok(false),
                    _ => Err(answer_error(resp, Some(id)).await),
                }
            })
            .await;
        match res {
            Err(StorageError::NotFound { .. }) => Ok(true),
            other => other,
        }
    }

    /// Deletes an item (to the recycle bin); one already gone is `Ok`.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.delete_version(id, None).await.map(drop)
    }

    /// `GET /me/drive?$select=quota`: `total`, `used` and `remaining` are
    /// numbers of bytes; each is optional, as the quota facet itself is
    /// (<https://learn.microsoft.com/graph/api/resources/quota>).
    pub async fn quota(&self) -> Result<storage_core::Quota> {
        let drive: serde_json::Value = self
            .call(Method::GET, &["me", "drive"], Some(("$select", "quota")), None, None)
            .await?;
        let figure = |k: &str| {
            drive
                .get("quota")
                .and_then(|q| q.get(k))
                .and_then(serde_json::Value::as_u64)
        };
        Ok(storage_core::Quota::new(
            figure("total"),
            figure("used"),
            figure("remaining"),
        ))
    }

    /// `GET /me/drive?$select=owner`: the owner's email, or else display name
    /// (an identitySet, <https://learn.microsoft.com/graph/api/resources/identityset>).
    pub async fn account_name(&self) -> Result<Option<String>> {
        let drive: serde_json::Value = self
            .call(Method::GET, &["me", "drive"], Some(("$select", "owner")), None, None)
            .await?;
        let user = &drive["owner"]["user"];
        Ok(user["email"]
            .as_str()
            .or_else(|| user["displayName"].as_str())
            .map(str::to_owned))
    }

    /// `GET /me/drive`: a cheap authenticated call.
    pub async fn drive(&self) -> Result<()> {
        self.call::<serde_json::Value, _>(Method::GET, &["me", "drive"], None, None, None)
            .await
            .map(drop)
    }

    /// Creates an upload session for a new file at `slot` and returns its
    /// `uploadUrl`. The session fails rather than replace a file of that name.
    pub async fn create_session(&self, slot: &Slot, size: u64) -> Result<String> {
        let path = in_folder(slot, &["createUploadSession"]);
        let body = serde_json::json!({"item": {
            "@microsoft.graph.conflictBehavior": "fail",
            "name": slot.name,
            "fileSize": size,
        }});
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Session {
            upload_url: String,
        }
        let session: Session = self.call(Method::POST, &path, None, Some(&body), None).await?;
        Ok(session.upload_url)
    }

    /// A simple `PUT …:/content` of a new file at `slot`: only for empty files,
    /// which an upload session cannot carry (a fragment needs at least one byte).
    pub async fn put_small(&self, slot: &Slot, body: Bytes) -> Result<DriveItem> {
        let path = in_folder(slot, &["content"]);
        let extras = Extras {
            query: Some(FAIL_ON_CONFLICT),
            bytes: Some(body),
            ..Extras::default()
        };
        self.graph(Method::PUT, &path, extras, |resp| read_json(resp, None))
            .await
    }

    /// `PUT`s bytes `first..` of an upload of `total` bytes to its session's
    /// `uploadUrl`; the caller reads the answer (202, 200/201, 404, 416).
    pub async fn put_fragment(&self, url: &str, first: u64, piece: Bytes, total: u64) -> Result<reqwest::Response> {
        let last = first + piece.len() as u64 - 1;
        let range = format!("bytes {first}-{last}/{total}");
        self.preauthorised("an upload fragment was cut")
            .send(
                || self.transfer.put(url).header(reqwest::header::CONTENT_RANGE, &range),
                Some(piece),
            )
            .await
    }

    /// `GET uploadUrl`: which bytes the session expects next.
    pub async fn session_status(&self, url: &str) -> Result<reqwest::Response> {
        self.preauthorised("failed to query an upload session")
            .send(|| self.transfer.get(url), None)
            .await
    }

    /// `DELETE uploadUrl`: cancels a session; best effort, since the session
    /// expires by itself.
    pub async fn cancel_session(&self, url: &str) {
        let _ = self
            .preauthorised("failed to cancel an upload session")
            .send(|| self.transfer.delete(url), None)
            .await;
    }

    /// The body of a pre-authenticated download URL from `offset`, sent
    /// without credentials. A server that ignores the range and answers 200
    /// with the whole body is tolerated: the first `offset` bytes are skipped.
    ///
    /// With `last`, the body ends at byte `last` (inclusive): a ranged read,
    /// retried like an API call (429 and 5xx).
    pub async fn download(&self, url: &str, offset: u64, last: Option<u64>) -> Result<ByteStream> {
        let ranged = offset > 0 || last.is_some();
        let range = match last {
            Some(last) => format!("bytes={offset}-{last}"),
            None => format!("bytes={offset}-"),
        };
        let build = || {
            let req = self.transfer.get(url);
            if ranged {
                req.header(reqwest::header::RANGE, &range)
            } else {
                req
            }
        };
        let mut door = self.preauthorised("failed to read a download url");
        if last.is_some() {
            door = door.retry(&self.options.retry);
        }
        let resp = door
            .run(build, None, |resp| async move {
                match resp.status().as_u16() {
                    200 => Ok(resp),
                    206 if ranged => Ok(resp),
                    _ => Err(answer_error(resp, None).await),
                }
            })
            .await?;
        let status = resp.status().as_u16();
        let body: ByteStream = Box::pin(
            resp.bytes_stream()
                .map(|r| r.map_err(|e| transport("a onedrive download was cut", e))),
        );
        Ok(if status == 200 && offset > 0 {
            storage_core::stream::skip(body, offset)
        } else {
            body
        })
    }
}

/// What a graph-rs-sdk request carries besides its method and path.
#[derive(Default)]
struct Extras<'a> {
    query: Option<(&'a str, &'a str)>,
    json: Option<&'a serde_json::Value>,
    bytes: Option<Bytes>,
    if_match: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_ids_are_checked() {
        for ok in ["01NKDM7HMOJTVYMDOSXFDK2QJDXCDI3WUK", "12319191!11919", "a.b_c-d"] {
            assert!(check_item_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "..", "a/b", "a:b", "a b", "x%2F", "a?b", &"a".repeat(257)] {
            assert!(check_item_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn slots_address_a_name_in_a_folder() {
        let slot = Slot {
            folder: "01ABC".into(),
            name: "doc.pdf".into(),
        };
        assert_eq!(in_folder(&slot, &[]).join("/"), "me/drive/items/01ABC:/doc.pdf:");
        assert_eq!(
            in_folder(&slot, &["content"]).join("/"),
            "me/drive/items/01ABC:/doc.pdf:/content"
        );
    }
}
