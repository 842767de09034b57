//! The floor: the same protocol with plain `reqwest`, and nothing else — no
//! retries, no hashing, no validation.
//!
//! "The same protocol" means the same requests. A Drive object is reached by
//! its file id and its name is not unique, so the library asks for the file's
//! size and md5 before a download and lists the name after an upload (to
//! remove an older copy); the floor sends those requests too and ignores the
//! answers. OneDrive needs no such requests. Scenario 2 prints the requests per
//! operation of both, so a difference would show.

use bytes::Bytes;
use futures::StreamExt as _;

use crate::{R, s};

/// Where the floor talks, and with which token.
#[derive(Clone)]
pub struct Floor {
    pub http: reqwest::Client,
    pub google_root: String,
    pub graph: String,
    pub google_token: String,
    pub microsoft_token: String,
    /// The Drive folder the floor's files go in, made by [`Floor::make_drive_folder`].
    pub drive_folder: String,
    /// The OneDrive folder the floor's files go in, made by [`Floor::make_onedrive_folder`].
    pub onedrive_folder: String,
}

/// The fields the library asks for on every Drive file.
const FILE_FIELDS: &str = "id,name,mimeType,size,md5Checksum,parents,createdTime";

impl Floor {
    /// Drive resumable upload in `chunk`-byte chunks; returns the file id.
    pub async fn drive_put(&self, name: &str, data: &Bytes, chunk: usize) -> R<String> {
        let start = self
            .http
            .post(format!(
                "{}upload/drive/v3/files?uploadType=resumable&fields={FILE_FIELDS}",
                self.google_root
            ))
            .bearer_auth(&self.google_token)
            .header("X-Upload-Content-Length", data.len())
            .json(&serde_json::json!({"name": name, "parents": [self.drive_folder]}))
            .send()
            .await
            .map_err(s)?;
        let session = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("no location")?
            .to_owned();
        let file = self.put_pieces(&session, data, chunk, 308).await?;
        self.drive_list_name(name).await?;
        Ok(file["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Sends `data` to an upload session URL in `piece`-byte pieces with
    /// `Content-Range`; `more` is the status that asks for the next piece.
    /// Returns the JSON of the final answer.
    async fn put_pieces(&self, url: &str, data: &Bytes, piece: usize, more: u16) -> R<serde_json::Value> {
        let total = data.len();
        let mut offset = 0;
        loop {
            let end = (offset + piece).min(total);
            let resp = self
                .http
                .put(url)
                .header("Content-Range", format!("bytes {offset}-{}/{total}", end - 1))
                .body(data.slice(offset..end))
                .send()
                .await
                .map_err(s)?;
            match resp.status().as_u16() {
                status if status == more => {
                    resp.bytes().await.map_err(s)?;
                    offset = end;
                }
                200 | 201 => return resp.json().await.map_err(s),
                status => return Err(format!("upload piece answered {status}")),
            }
        }
    }

    /// Drive multipart upload of a small body; returns the file id.
    pub async fn drive_put_small(&self, name: &str, data: &Bytes) -> R<String> {
        let boundary = "floorboundary";
        let mut body = Vec::with_capacity(data.len() + 256);
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{{\"name\":\"{name}\",\"parents\":[\"{}\"]}}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n", self.drive_folder).as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--").as_bytes());
        let resp = self
            .http
            .post(format!(
                "{}upload/drive/v3/files?uploadType=multipart&fields={FILE_FIELDS}",
                self.google_root
            ))
            .bearer_auth(&self.google_token)
            .header("Content-Type", format!("multipart/related; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .map_err(s)?;
        let v: serde_json::Value = resp.json().await.map_err(s)?;
        self.drive_list_name(name).await?;
        Ok(v["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Makes the folder the floor's files go in (outside any timing).
    pub async fn make_drive_folder(&mut self) -> R<()> {
        let v: serde_json::Value = self
            .http
            .post(format!("{}drive/v3/files?fields=id", self.google_root))
            .bearer_auth(&self.google_token)
            .json(&serde_json::json!({"name": "floor", "mimeType": "application/vnd.google-apps.folder", "parents": ["root"]}))
            .send()
            .await
            .map_err(s)?
            .json()
            .await
            .map_err(s)?;
        self.drive_folder = v["id"].as_str().ok_or("no folder id")?.to_owned();
        Ok(())
    }

    /// The library's query for other files of one name in the folder.
    async fn drive_list_name(&self, name: &str) -> R<()> {
        let q = format!(
            "name = '{name}' and '{}' in parents and trashed = false",
            self.drive_folder
        );
        let resp = self
            .http
            .get(format!("{}drive/v3/files", self.google_root))
            .query(&[
                ("q", q.as_str()),
                ("pageSize", "1000"),
                (
                    "fields",
                    "nextPageToken,files(id,name,mimeType,size,md5Checksum,createdTime)",
                ),
            ])
            .bearer_auth(&self.google_token)
            .send()
            .await
            .map_err(s)?;
        resp.bytes().await.map_err(s)?;
        Ok(())
    }

    /// Drive `files.get` for the size and md5, then the `alt=media` download;
    /// returns the byte count.
    ///
    /// `whole` gathers the body into one buffer, as `get_object` must;
    /// otherwise it is only counted, as a reader of `get_stream` would.
    pub async fn drive_get(&self, id: &str, whole: bool) -> R<u64> {
        self.http
            .get(format!("{}drive/v3/files/{id}?fields={FILE_FIELDS}", self.google_root))
            .bearer_auth(&self.google_token)
            .send()
            .await
            .map_err(s)?
            .bytes()
            .await
            .map_err(s)?;
        let resp = self
            .http
            .get(format!("{}drive/v3/files/{id}?alt=media", self.google_root))
            .bearer_auth(&self.google_token)
            .send()
            .await
            .map_err(s)?;
        drain(resp, whole).await
    }

    /// Makes the folder the floor's OneDrive files go in (outside any timing).
    pub async fn make_onedrive_folder(&mut self) -> R<()> {
        let v: serde_json::Value = self
            .http
            .post(format!("{}me/drive/root/children", self.graph))
            .bearer_auth(&self.microsoft_token)
            .json(&serde_json::json!({"name": "floor", "folder": {}}))
            .send()
            .await
            .map_err(s)?
            .json()
            .await
            .map_err(s)?;
        self.onedrive_folder = v["id"].as_str().ok_or("no folder id")?.to_owned();
        Ok(())
    }

    /// The library's OneDrive put: an upload session for a new file under a
    /// temporary name in the folder, `fragment`-byte fragments, then a rename to
    /// the object's name; returns the item id.
    pub async fn onedrive_put(&self, name: &str, data: &Bytes, fragment: usize) -> R<String> {
        let start = self
            .http
            .post(format!(
                "{}me/drive/items/{}:/tmp-{name}:/createUploadSession",
                self.graph, self.onedrive_folder
            ))
            .bearer_auth(&self.microsoft_token)
            .json(&serde_json::json!({"item": {"@microsoft.graph.conflictBehavior": "fail"}}))
            .send()
            .await
            .map_err(s)?;
        let v: serde_json::Value = start.json().await.map_err(s)?;
        let url = v["uploadUrl"].as_str().ok_or("no uploadUrl")?.to_owned();
        let item = self.put_pieces(&url, data, fragment, 202).await?;
        let id = item["id"].as_str().unwrap_or_default().to_owned();
        let renamed = self
            .http
            .patch(format!("{}me/drive/items/{id}", self.graph))
            .bearer_auth(&self.microsoft_token)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .map_err(s)?;
        if !renamed.status().is_success() {
            return Err(format!("rename answered {}", renamed.status()));
        }
        renamed.bytes().await.map_err(s)?;
        Ok(id)
    }

    /// OneDrive download through the item's download URL; returns the byte count.
    /// `whole` as for [`Floor::drive_get`].
    pub async fn onedrive_get(&self, id: &str, whole: bool) -> R<u64> {
        let meta: serde_json::Value = self
            .http
            .get(format!(
                "{}me/drive/items/{id}?$select=id,@microsoft.graph.downloadUrl",
                self.graph
            ))
            .bearer_auth(&self.microsoft_token)
            .send()
            .await
            .map_err(s)?
            .json()
            .await
            .map_err(s)?;
        let url = meta["@microsoft.graph.downloadUrl"].as_str().ok_or("no downloadUrl")?;
        drain(self.http.get(url).send().await.map_err(s)?, whole).await
    }
}

async fn drain(resp: reqwest::Response, whole: bool) -> R<u64> {
    if !resp.status().is_success() {
        return Err(format!("download answered {}", resp.status()));
    }
    if whole {
        return Ok(resp.bytes().await.map_err(s)?.len() as u64);
    }
    let mut n = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(piece) = body.next().await {
        n += piece.map_err(s)?.len() as u64;
    }
    Ok(n)
}
