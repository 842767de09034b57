//! The floor: the same protocol with plain `reqwest`, and nothing else — no
//! retries, no hashing, no validation, no folder or name bookkeeping.

use bytes::Bytes;
use futures::StreamExt as _;

/// Where the floor talks, and with which token.
#[derive(Clone)]
pub struct Floor {
    pub http: reqwest::Client,
    pub google_root: String,
    pub graph: String,
    pub google_token: String,
    pub microsoft_token: String,
}

type R<T> = Result<T, String>;

fn err<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

impl Floor {
    /// Drive resumable upload in `chunk`-byte chunks; returns the file id.
    pub async fn drive_put(&self, name: &str, data: &Bytes, chunk: usize) -> R<String> {
        let start = self
            .http
            .post(format!(
                "{}upload/drive/v3/files?uploadType=resumable",
                self.google_root
            ))
            .bearer_auth(&self.google_token)
            .header("X-Upload-Content-Length", data.len())
            .json(&serde_json::json!({"name": name, "parents": ["root"]}))
            .send()
            .await
            .map_err(err)?;
        let session = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or("no location")?
            .to_owned();
        let total = data.len();
        let mut offset = 0;
        loop {
            let end = (offset + chunk).min(total);
            let resp = self
                .http
                .put(&session)
                .header("Content-Range", format!("bytes {offset}-{}/{total}", end - 1))
                .body(data.slice(offset..end))
                .send()
                .await
                .map_err(err)?;
            match resp.status().as_u16() {
                308 => offset = end,
                200 | 201 => {
                    let v: serde_json::Value = resp.json().await.map_err(err)?;
                    return Ok(v["id"].as_str().unwrap_or_default().to_owned());
                }
                s => return Err(format!("chunk answered {s}")),
            }
        }
    }

    /// Drive multipart upload of a small body; returns the file id.
    pub async fn drive_put_small(&self, name: &str, data: &Bytes) -> R<String> {
        let boundary = "floorboundary";
        let mut body = Vec::with_capacity(data.len() + 256);
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{{\"name\":\"{name}\",\"parents\":[\"root\"]}}\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(format!("\r\n--{boundary}--").as_bytes());
        let resp = self
            .http
            .post(format!(
                "{}upload/drive/v3/files?uploadType=multipart",
                self.google_root
            ))
            .bearer_auth(&self.google_token)
            .header("Content-Type", format!("multipart/related; boundary={boundary}"))
            .body(body)
            .send()
            .await
            .map_err(err)?;
        let v: serde_json::Value = resp.json().await.map_err(err)?;
        Ok(v["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Drive `alt=media` download; returns the byte count.
    pub async fn drive_get(&self, id: &str) -> R<u64> {
        let resp = self
            .http
            .get(format!("{}drive/v3/files/{id}?alt=media", self.google_root))
            .bearer_auth(&self.google_token)
            .send()
            .await
            .map_err(err)?;
        drain(resp).await
    }

    /// OneDrive upload session in `fragment`-byte fragments; returns the item id.
    pub async fn onedrive_put(&self, name: &str, data: &Bytes, fragment: usize) -> R<String> {
        let start = self
            .http
            .post(format!(
                "{}me/drive/root:/floor/{name}:/createUploadSession",
                self.graph
            ))
            .bearer_auth(&self.microsoft_token)
            .json(&serde_json::json!({"item": {"@microsoft.graph.conflictBehavior": "replace"}}))
            .send()
            .await
            .map_err(err)?;
        let v: serde_json::Value = start.json().await.map_err(err)?;
        let url = v["uploadUrl"].as_str().ok_or("no uploadUrl")?.to_owned();
        let total = data.len();
        let mut offset = 0;
        loop {
            let end = (offset + fragment).min(total);
            let resp = self
                .http
                .put(&url)
                .header("Content-Range", format!("bytes {offset}-{}/{total}", end - 1))
                .body(data.slice(offset..end))
                .send()
                .await
                .map_err(err)?;
            match resp.status().as_u16() {
                202 => {
                    let _ = resp.bytes().await;
                    offset = end;
                }
                200 | 201 => {
                    let v: serde_json::Value = resp.json().await.map_err(err)?;
                    return Ok(v["id"].as_str().unwrap_or_default().to_owned());
                }
                s => return Err(format!("fragment answered {s}")),
            }
        }
    }

    /// OneDrive download through the item's download URL; returns the byte count.
    pub async fn onedrive_get(&self, id: &str) -> R<u64> {
        let meta: serde_json::Value = self
            .http
            .get(format!(
                "{}me/drive/items/{id}?$select=id,@microsoft.graph.downloadUrl",
                self.graph
            ))
            .bearer_auth(&self.microsoft_token)
            .send()
            .await
            .map_err(err)?
            .json()
            .await
            .map_err(err)?;
        let url = meta["@microsoft.graph.downloadUrl"].as_str().ok_or("no downloadUrl")?;
        drain(self.http.get(url).send().await.map_err(err)?).await
    }
}

async fn drain(resp: reqwest::Response) -> R<u64> {
    if !resp.status().is_success() {
        return Err(format!("download answered {}", resp.status()));
    }
    let mut n = 0u64;
    let mut s = resp.bytes_stream();
    while let Some(piece) = s.next().await {
        n += piece.map_err(err)?.len() as u64;
    }
    Ok(n)
}
