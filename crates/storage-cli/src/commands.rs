//! The object commands: put, get, stat, rm, health, presign; and `emulator`.

use std::sync::Arc;

use futures::StreamExt as _;
use storage_core::{ByteRange, ObjectKey, ObjectName, PageRequest, StorageBackend, StorageError};
use tokio::io::AsyncWriteExt as _;

use crate::exit::Failure;
use crate::out;
use crate::progress;

/// `storage put`.
pub async fn put(
    backend: Arc<dyn StorageBackend>,
    name: ObjectName,
    content_type: &str,
    path: &str,
    quiet: bool,
) -> Result<(), Failure> {
    let key = if path == "-" {
        let mut buf = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut buf)
            .await
            .map_err(|e| Failure::Other(format!("cannot read stdin: {e}")))?;
        backend.put_object(&name, buf.into(), content_type).await?
    } else {
        let file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Failure::MissingFile(path.to_owned())),
            Err(e) => return Err(Failure::Other(format!("cannot open {path}: {e}"))),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| Failure::Other(format!("cannot read {path}: {e}")))?
            .len();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map(|r| r.map_err(|e| StorageError::io("failed to read the input file", e)));
        let bar = progress::bar(size, "upload", quiet);
        let key = backend
            .put_stream(
                &name,
                progress::track(Box::pin(stream), bar.clone()),
                size,
                content_type,
            )
            .await;
        bar.finish_and_clear();
        key?
    };
    out::line(key.as_str());
    Ok(())
}

/// `storage get`.
pub async fn get(
    backend: Arc<dyn StorageBackend>,
    key: &str,
    output: &str,
    range: Option<ByteRange>,
    quiet: bool,
) -> Result<(), Failure> {
    let key = ObjectKey::new(key);
    let size = backend.stat_object(&key).await?.size;
    let (stream, len) = match range {
        None => (backend.get_stream(&key).await?, size),
        Some(r) => {
            let (_, len) = r.resolve(size)?;
            (backend.get_range(&key, r).await?, len)
        }
    };
    let bar = progress::bar(len, "download", quiet);
    let mut stream = progress::track(stream, bar.clone());
    let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if output == "-" {
        Box::new(tokio::io::stdout())
    } else {
        Box::new(
            tokio::fs::File::create(output)
                .await
                .map_err(|e| Failure::Other(format!("cannot create {output}: {e}")))?,
        )
    };
    while let Some(piece) = stream.next().await {
        let piece = piece?;
        sink.write_all(&piece)
            .await
            .map_err(|e| Failure::Other(format!("cannot write {output}: {e}")))?;
    }
    sink.flush()
        .await
        .map_err(|e| Failure::Other(format!("cannot write {output}: {e}")))?;
    bar.finish_and_clear();
    Ok(())
}

/// `storage stat`.
pub async fn stat(backend: Arc<dyn StorageBackend>, key: &str, json: bool) -> Result<(), Failure> {
    let meta = backend.stat_object(&ObjectKey::new(key)).await?;
    if json {
        let v = serde_json::json!({
            "key": key,
            "size": meta.size,
            "content_type": meta.content_type,
            "checksum": meta.checksum.map(|c| c.to_string()),
        });
        out::line(&v.to_string());
    } else {
        out::line(&format!("key           {key}"));
        out::line(&format!("size          {}", meta.size));
        out::line(&format!(
            "content type  {}",
            meta.content_type.unwrap_or_else(|| "-".into())
        ));
        out::line(&format!(
            "checksum      {}",
            meta.checksum.map(|c| c.to_string()).unwrap_or_else(|| "-".into())
        ));
    }
    Ok(())
}

/// `storage ls`: every page, as it arrives.
pub async fn ls(backend: Arc<dyn StorageBackend>, user: &str, page_size: u32, json: bool) -> Result<(), Failure> {
    let mut request = PageRequest::first(page_size)?;
    loop {
        let page = backend.list_user(user, &request).await?;
        for item in &page.items {
            let modified = item
                .modified
                .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339());
            if json {
                let v = serde_json::json!({
                    "key": item.key.as_str(),
                    "user": item.name.user_id(),
                    "document": item.name.document_id(),
                    "extension": item.name.extension(),
                    "size": item.size,
                    "checksum": item.checksum.map(|c| c.to_string()),
                    "modified": modified,
                });
                out::line(&v.to_string());
            } else {
                out::line(&format!(
                    "{}\t{}\t{}\t{}",
                    item.key,
                    item.size,
                    modified.as_deref().unwrap_or("-"),
                    item.name.file_name()
                ));
            }
        }
        match page.next {
            Some(token) => request = request.after(token),
            None => return Ok(()),
        }
    }
}

/// `storage quota`.
pub async fn quota(backend: Arc<dyn StorageBackend>, json: bool) -> Result<(), Failure> {
    let q = backend.quota().await?;
    if json {
        let v = serde_json::json!({"total": q.total, "used": q.used, "remaining": q.remaining});
        out::line(&v.to_string());
    } else {
        let show = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |n| n.to_string());
        out::line(&format!("total      {}", show(q.total)));
        out::line(&format!("used       {}", show(q.used)));
        out::line(&format!("remaining  {}", show(q.remaining)));
    }
    Ok(())
}

/// `storage emulator`.
pub async fn emulator(port: u16, lenient: bool, consent_page: bool) -> Result<(), Failure> {
    let emu = storage_emulator::Emulator::builder()
        .port(port)
        .lenient(lenient)
        .consent_page(consent_page)
        .log_requests(true)
        .start()
        .await
        .map_err(|e| Failure::Other(format!("cannot start the emulator: {e}")))?;
    let json = serde_json::to_string(emu.endpoints()).map_err(|e| Failure::Other(e.to_string()))?;
    out::line(&json);
    out::err("storage: emulator running; stop it with ctrl-c");
    let _ = tokio::signal::ctrl_c().await;
    emu.shutdown().await;
    Ok(())
}
