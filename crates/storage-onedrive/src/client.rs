//! Raw Graph calls: graph-rs-sdk's `GraphClient` for drive, item, delete and
//! session creation, `reqwest` for what goes to pre-authenticated URLs; and the
//! token source graph-rs-sdk reads.

use std::future::Future;

use bytes::Bytes;
use graph_core::identity::ForceTokenRefresh;
use graph_rs_sdk::error::{AuthExecutionError, AuthExecutionResult};
use graph_rs_sdk::http::BodyRead;
use graph_rs_sdk::identity::ClientApplication;
use graph_rs_sdk::{GraphClient, GraphClientConfiguration, GraphFailure, GraphResult};
use reqwest::Method;
use serde::Deserialize;
use storage_core::{ConnectionReason, ObjectName, Result, StorageError, TokenCell};

use crate::config::{GRAPH_HOSTS, GraphEndpoints, OneDriveOptions, is_loopback};
use crate::error::{answer_error, read_json};

/// The fields every item read asks for.
const SELECT: (&str, &str) = ("$select", "id,name,size,file,folder,@microsoft.graph.downloadUrl");

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

/// The URL path segments of `me/drive/root:/{user_id}/{document_id}{extension}:`
/// followed by `tail`,
/// the path address of an object. graph-rs-sdk percent-encodes them one by one; the name
/// rules of [`ObjectName`] keep `/`, `:`, `#`, `%` and `?` out of the parts, so
/// the path cannot break out.
fn by_path(name: &ObjectName, tail: &[&str]) -> Vec<String> {
    let mut path = vec![
        "me".to_owned(),
        "drive".to_owned(),
        "root:".to_owned(),
        name.user_id().to_owned(),
        format!("{}:", name.file_name()),
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
    endpoints: GraphEndpoints,
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
    pub fn new(endpoints: &GraphEndpoints, options: &OneDriveOptions) -> Result<Self> {
        Ok(Self {
            graph: graph_client(endpoints, options)?,
            endpoints: endpoints.clone(),
        })
    }
}

/// One Graph client, one reqwest client, the cell and the options; clones share all.
#[derive(Clone)]
pub(crate) struct GraphApi {
    graph: GraphClient,
    pub http: reqwest::Client,
    pub tokens: TokenCell,
    pub endpoints: GraphEndpoints,
    pub options: OneDriveOptions,
}

impl std::fmt::Debug for GraphApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphApi")
            .field("endpoints", &self.endpoints)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The reqwest client for uploadUrls and download URLs: it follows no redirect
/// and carries no credentials of its own. It has a connect timeout and no
/// `read_timeout` (a deadline for a fragment's body): [`GraphApi::send_raw`]
/// applies the idle timeout instead.
pub(crate) fn default_http(options: &OneDriveOptions) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .map_err(|e| StorageError::transport("failed to build the http client", e))
}

/// Builds a `GraphClient` for `endpoints` without ever reaching
/// `use_endpoint`'s panic on an unknown host.
fn graph_client(endpoints: &GraphEndpoints, options: &OneDriveOptions) -> Result<GraphClient> {
    endpoints.validate()?;
    // graph-rs-sdk appends path segments itself; give it the base without the trailing `/`.
    let mut base = endpoints.graph.clone();
    let trimmed = base.path().trim_end_matches('/').to_owned();
    base.set_path(&trimmed);
    // No total timeout: `GraphApi::send` applies the idle timeout to every call.
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

impl GraphApi {
    pub fn new(
        tokens: TokenCell,
        endpoints: GraphEndpoints,
        options: OneDriveOptions,
        http: reqwest::Client,
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

    /// Sends one reqwest request to an upload or download URL, with `body`
    /// when given, under the idle timeout (`options.read_timeout`): it fails
    /// when for that long nothing of the body is sent and no answer comes, or
    /// later no piece of the answer's body arrives; `what` names it in the error.
    pub(crate) async fn send_raw(
        &self,
        req: reqwest::RequestBuilder,
        body: Option<Bytes>,
        what: &str,
    ) -> Result<reqwest::Response> {
        storage_core::idle::send(req, body, self.options.read_timeout, what).await
    }

    fn failure(&self, e: GraphFailure) -> StorageError {
        if self.tokens.get().is_none() {
            return StorageError::CloudConnection {
                reason: ConnectionReason::TokenExpired,
            };
        }
        StorageError::Transport {
            message: format!(
                "graph request failed: {}",
                e.to_string().chars().take(200).collect::<String>()
            ),
            source: None,
        }
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
        query: Option<(&str, &str)>,
        body: Option<BodyRead>,
    ) -> impl Future<Output = GraphResult<reqwest::Response>> + Send {
        let mut req = self.graph.custom(method, body).extend_path(path);
        if let Some((key, value)) = query {
            req = req.append_query_pair(key, value);
        }
        req.send()
    }

    /// An item by id, with its hash and download URL.
    pub async fn get_item(&self, id: &str) -> Result<DriveItem> {
        check_item_id(id)?;
        self.options
            .retry
            .run(|| async {
                let resp = self
                    .send(self.request(Method::GET, &["me", "drive", "items", id], Some(SELECT), None))
                    .await?;
                read_json(resp, Some(id)).await
            })
            .await
    }

    /// The item at an object's path, with its hash.
    pub async fn get_item_by_path(&self, name: &ObjectName) -> Result<DriveItem> {
        let path = by_path(name, &[]);
        self.options
            .retry
            .run(|| async {
                let resp = self.send(self.request(Method::GET, &path, Some(SELECT), None)).await?;
                read_json(resp, None).await
            })
            .await
    }

    /// Deletes an item; one already gone is `Ok`.
    pub async fn delete(&self, id: &str) -> Result<()> {
        check_item_id(id)?;
        let res = self
            .options
            .retry
            .run(|| async {
                let resp = self
                    .send(self.request(Method::DELETE, &["me", "drive", "items", id], None, None))
                    .await?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(answer_error(resp, Some(id)).await)
                }
            })
            .await;
        match res {
            Err(StorageError::NotFound { .. }) => Ok(()),
            other => other,
        }
    }

    /// `GET /me/drive`: a cheap authenticated call.
    pub async fn drive(&self) -> Result<()> {
        self.options
            .retry
            .run(|| async {
                let resp = self
                    .send(self.request(Method::GET, &["me", "drive"], None, None))
                    .await?;
                read_json::<serde_json::Value>(resp, None).await.map(drop)
            })
            .await
    }

    /// Creates an upload session at the object's path, replacing an existing
    /// file of that name, and returns its `uploadUrl`.
    pub async fn create_session(&self, name: &ObjectName, size: u64) -> Result<String> {
        let path = by_path(name, &["createUploadSession"]);
        let body = serde_json::json!({"item": {
            "@microsoft.graph.conflictBehavior": "replace",
            "name": name.file_name(),
            "fileSize": size,
        }});
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Session {
            upload_url: String,
        }
        self.options
            .retry
            .run(|| async {
                let resp = self
                    .send(self.request(
                        Method::POST,
                        &path,
                        None,
                        Some(BodyRead::from_serialize(&body).map_err(|e| self.failure(e))?),
                    ))
                    .await?;
                let s: Session = read_json(resp, None).await?;
                Ok(s.upload_url)
            })
            .await
    }

    /// A simple `PUT …:/content`: only for empty files, which an upload session
    /// cannot carry (a fragment needs at least one byte).
    pub async fn put_small(&self, name: &ObjectName, body: Bytes) -> Result<DriveItem> {
        let path = by_path(name, &["content"]);
        self.options
            .retry
            .run(|| async {
                let resp = self
                    .send(self.request(Method::PUT, &path, None, Some(BodyRead::from(body.to_vec()))))
                    .await?;
                read_json(resp, None).await
            })
            .await
    }

    /// `GET` a pre-authenticated download URL from `offset`, without credentials.
    pub async fn fetch(&self, url: &str, offset: u64) -> Result<reqwest::Response> {
        let mut req = self.http.get(url);
        if offset > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        self.send_raw(req, None, "failed to read a download url").await
    }
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
    fn paths_address_the_user_folder() {
        let n = ObjectName::new("u-1", "doc", ".pdf").unwrap();
        assert_eq!(by_path(&n, &[]).join("/"), "me/drive/root:/u-1/doc.pdf:");
        assert_eq!(
            by_path(&n, &["content"]).join("/"),
            "me/drive/root:/u-1/doc.pdf:/content"
        );
    }
}
