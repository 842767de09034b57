//! Round-trips a document through `LocalBackend` in a temporary directory.
//!
//! Run with `cargo run --example quickstart -p storage-core`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use bytes::Bytes;
use storage_core::{LocalBackend, ObjectName, StorageBackend, StorageError};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), StorageError> {
    let dir = tempfile::tempdir().map_err(|e| StorageError::io("failed to create a temporary directory", e))?;
    let backend = LocalBackend::new(dir.path())?;
    let name = ObjectName::new("user-1", "scan-0001", ".pdf")?;
    let body = Bytes::from(vec![42u8; 3 * 1024 * 1024]);

    let key = backend.put_object(&name, body.clone(), "application/pdf").await?;
    println!(
        "put     {key} ({} bytes) under {}",
        body.len(),
        backend.root().display()
    );
    let meta = backend.stat_object(&key).await?;
    println!(
        "stat    size={} checksum={}",
        meta.size,
        meta.checksum.map(|c| c.to_string()).unwrap_or_default()
    );
    let read = backend.get_object(&key).await?;
    if read != body {
        return Err(StorageError::integrity(
            "the bytes read back differ from the bytes written",
        ));
    }
    println!("get     {} bytes, identical", read.len());
    backend.delete_object(&key).await?;
    backend.delete_object(&key).await?;
    println!("delete  twice, both ok");
    println!("quickstart: all steps passed");
    Ok(())
}
